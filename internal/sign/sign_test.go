package sign

import (
	"net/http"
	"testing"
	"time"
)

// The wanted HMACs were computed with OpenSSL, independently of Go:
//
//	printf '%s' '1793973010.{"a":1}' | openssl dgst -sha256 -hmac whsec-7f3b2a9c41d8e6f0
func TestSignature(t *testing.T) {
	tests := []struct {
		name, key, ts, body, want string
	}{
		{"json body", "whsec-7f3b2a9c41d8e6f0", "1793973010", `{"a":1}`, "3880b4cef81e2ba4f6421e0e1660ea90f3f615075a01a9d8cb5ea52815e79fd0"},
		{"empty body", "k", "0", "", "6b4a4b8b3c40f1e8f53a3d36682e5f99f7ad2ac1df1c93dfe336f329167641e7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Signature(tt.key, tt.ts, []byte(tt.body)); got != tt.want {
				t.Errorf("Signature = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSet(t *testing.T) {
	h := http.Header{}
	Set(h, "whsec-7f3b2a9c41d8e6f0", time.Unix(1793973010, 999_000_000), []byte(`{"a":1}`))
	want := http.Header{
		HeaderTimestamp: {"1793973010"},
		HeaderSignature: {"sha256=3880b4cef81e2ba4f6421e0e1660ea90f3f615075a01a9d8cb5ea52815e79fd0"},
	}
	for name, v := range want {
		if h.Get(name) != v[0] {
			t.Errorf("%s = %q, want %q", name, h.Get(name), v[0])
		}
	}
	if len(h) != len(want) {
		t.Errorf("headers %v, want only %v", h, want)
	}
}
