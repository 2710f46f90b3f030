package ingest

import (
	"bytes"
	"strings"
	"testing"
)

func TestReadRecords(t *testing.T) {
	pretty := "{\n  \"a\": 1\n}\n{\n  \"b\": 2\n}\n"
	tests := []struct {
		name string
		in   []byte
		want []string
	}{
		{"ndjson", []byte("{\"a\":1}\n\n{\"b\":2}\n"), []string{`{"a":1}`, `{"b":2}`}},
		{"text lines", []byte("line one\r\nline two"), []string{"line one", "line two"}},
		{"pretty documents", []byte(pretty), []string{"{\n  \"a\": 1\n}", "{\n  \"b\": 2\n}"}},
		{"array", []byte(`[{"a":1}, {"b":2}]`), []string{`{"a":1}`, `{"b":2}`}},
		{"records file is one record", []byte(`{"Records":[{"a":1},{"b":2}]}`), []string{`{"Records":[{"a":1},{"b":2}]}`}},
		{"gzip", gz(t, []byte("x\ny\n")), []string{"x", "y"}},
		{"broken pretty document keeps the rest", []byte("{\n \"a\": 1\n}\n{\n \"b\": \n"), []string{"{\n \"a\": 1\n}", "{\n \"b\":"}},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := ReadRecords(bytes.NewReader(tt.in), "f", func(r Record) error {
				if r.Topic != "f" || r.Offset < 1 {
					t.Errorf("record position %s/%d", r.Topic, r.Offset)
				}
				got = append(got, string(r.Value))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
