package glob_test

import (
	"testing"

	"github.com/nhisentry/nhisentry/internal/glob"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"*", "", true},
		{"*", "spiffe://td/ns/a/sa/b", true},
		{"spiffe://*/ns/kube-system/*", "spiffe://prod.example/ns/kube-system/sa/coredns", true},
		{"spiffe://*/ns/kube-system/*", "spiffe://prod.example/ns/default/sa/kube-system", false},
		{"*:role/*/ci-*", "aws:role/111122223333/ci-deployer", true},
		{"*:role/*/ci-*", "aws:user/111122223333/ci-deployer", false},
		{"a?c", "abc", true},
		{"a?c", "aéc", true}, // ? is one character, not one byte
		{"a?c", "ac", false},
		{"*a*b*c*", "xxaxxbxxcxx", true},
		{"*a*b*c*", "xxaxxcxxbxx", false},
		{"exact", "exact", true},
		{"exact", "exactly", false},
		{"", "", true},
		{"", "x", false},
		{"k8s:sa/*", "k8s:node/prod/n1", false},
		{"*Let's Encrypt*", "/C=US/CN=R3/O=Let's Encrypt", true},
		{"k8s:*:secrets", "k8s:get:secrets/x", false},
		{"??", "é", false},
		{"*b*b*", "abab", true},
		{"*b*b*", "ab", false},
	}
	for _, tt := range tests {
		if got := glob.Match(tt.pattern, tt.s); got != tt.want {
			t.Errorf("Match(%q, %q) = %v, want %v", tt.pattern, tt.s, got, tt.want)
		}
	}
	if !glob.Any([]string{"x", "spiffe://*"}, "spiffe://td/a") || glob.Any(nil, "x") {
		t.Error("Any")
	}
}

func FuzzMatch(f *testing.F) {
	f.Add("*a?c*", "xxabcxx")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if glob.Match(pattern, s) != glob.Match(pattern, s) {
			t.Fatal("not deterministic")
		}
		if !glob.Match("*", s) {
			t.Fatal("* must match anything")
		}
		if pattern != "" && !containsMeta(pattern) && glob.Match(pattern, s) != (pattern == s) {
			t.Fatalf("literal pattern %q vs %q", pattern, s)
		}
	})
}

func containsMeta(p string) bool {
	for i := 0; i < len(p); i++ {
		if p[i] == '*' || p[i] == '?' {
			return true
		}
	}
	return false
}
