package credmisuse

import "testing"

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
