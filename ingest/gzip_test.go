package ingest

import (
	"bytes"
	"compress/gzip"
	"testing"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestGunzip(t *testing.T) {
	plain := []byte(`{"Records":[]}`)
	big := gz(t, bytes.Repeat([]byte("a"), 1<<20))
	tests := []struct {
		name   string
		in     []byte
		want   []byte
		reason string
	}{
		{name: "plain passes through", in: plain, want: plain},
		{name: "gzip inflates", in: gz(t, plain), want: plain},
		{name: "truncated gzip", in: gz(t, plain)[:15], reason: ReasonCompression},
		{name: "bomb past the limit", in: big, reason: ReasonTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, de := Gunzip(tt.in, 1000)
			if tt.reason != "" {
				if de == nil || de.Reason != tt.reason {
					t.Fatalf("got %v, want reason %s", de, tt.reason)
				}
				return
			}
			if de != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("got %q, %v", got, de)
			}
		})
	}
}
