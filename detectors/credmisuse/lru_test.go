package credmisuse

import "testing"

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
