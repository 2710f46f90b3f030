package credmisuse

import (
	"slices"
	"testing"
)

func (l *lru[V]) keys() []string {
	var ks []string
	for i := l.head; i >= 0; i = l.nodes[i].next {
		ks = append(ks, l.nodes[i].key)
	}
	return ks
}

func TestLRU(t *testing.T) {
	l := newLRU[int]()
	for i, k := range []string{"a", "b", "c"} {
		*l.add(k) = i
	}
	if v, ok := l.get("a", true); !ok || *v != 0 {
		t.Fatalf("get a: %v %v", v, ok)
	}
	if got := l.keys(); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("order after touching a: %v", got)
	}
	l.get("b", false)
	if k, _, _ := l.oldest(); k != "b" {
		t.Fatalf("a lookup without touch moved b: oldest %s", k)
	}
	l.removeOldest()
	l.remove("a")
	l.remove("nope")
	if got := l.keys(); !slices.Equal(got, []string{"c"}) || l.Len() != 1 {
		t.Fatalf("after removals: %v (len %d)", got, l.Len())
	}
	*l.add("d") = 3
	*l.add("e") = 4
	*l.add("f") = 5
	if len(l.nodes) != 4 || len(l.free) != 0 {
		t.Fatalf("freed slots are not reused: %d nodes, %d free", len(l.nodes), len(l.free))
	}
	if got := l.keys(); !slices.Equal(got, []string{"c", "d", "e", "f"}) {
		t.Fatalf("order: %v", got)
	}
	for l.Len() > 0 {
		l.removeOldest()
	}
	if l.head != -1 || l.tail != -1 {
		t.Fatalf("empty list has head %d tail %d", l.head, l.tail)
	}
}

func TestGlob(t *testing.T) {
	for _, c := range []struct {
		p, s string
		want bool
	}{
		{"spiffe://*", "spiffe://example.org/ns/a/sa/b", true},
		{"k8s:sa/*", "k8s:sa/prod/payments/api", true},
		{"k8s:sa/*", "k8s:node/prod/n1", false},
		{"vault", "vault", true},
		{"vault", "vaultx", false},
		{"*Let's Encrypt*", "/C=US/CN=R3/O=Let's Encrypt", true},
		{"spire:?xample.org", "spire:example.org", true},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "axxbyy", false},
		{"", "", true},
		{"*", "", true},
	} {
		if got := glob(c.p, c.s); got != c.want {
			t.Errorf("glob(%q, %q) = %v", c.p, c.s, got)
		}
	}
}

func TestAccessKeyIn(t *testing.T) {
	for s, want := range map[string]string{
		"AKIAIOSFODNN7EXAMPLE": "AKIAIOSFODNN7EXAMPLE",
		"arn:aws:iam::111122223333:user/etl/accesskey/ASIAIOSFODNN7EXAMPLE": "ASIAIOSFODNN7EXAMPLE",
		"arn:aws:iam::111122223333:user/etl":                                "",
		"XAKIAIOSFODNN7EXAMPLE":                                             "",
		"AKIAIOSFODNN7EXAMPLEX":                                             "",
	} {
		if got := accessKeyIn(s); got != want {
			t.Errorf("accessKeyIn(%q) = %q, want %q", s, got, want)
		}
	}
}
