// Package ingesttest is the shared harness of decoder tests: testdata inputs
// read line by line, golden files of the normalized events (rewritten with
// -update), the decoder contract checks, a fuzz body and a benchmark body,
// so every decoder package tests the same things the same way.
package ingesttest

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.ndjson")

// Inputs returns the records of every testdata input file (golden files
// excluded), by path: one per line of *.ndjson and *.log files, one per JSON
// document of *.json files (which may be pretty-printed), and the whole of a
// *.jwt file.
func Inputs(t testing.TB) map[string][][]byte {
	t.Helper()
	var paths []string
	for _, glob := range []string{"testdata/*.ndjson", "testdata/*.log", "testdata/*.json", "testdata/*.jwt"} {
		p, err := filepath.Glob(glob)
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p...)
	}
	out := map[string][][]byte{}
	for _, p := range paths {
		if strings.HasSuffix(p, ".golden.ndjson") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(p) {
		case ".json":
			dec := json.NewDecoder(bytes.NewReader(b))
			for {
				var doc json.RawMessage
				if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				out[p] = append(out[p], doc)
			}
			continue
		case ".jwt":
			out[p] = append(out[p], bytes.TrimSpace(b))
			continue
		}
		for line := range bytes.Lines(b) {
			if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 {
				out[p] = append(out[p], line)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no testdata inputs")
	}
	return out
}

// Line returns line n (1-based) of testdata/file.
func Line(t testing.TB, file string, n int) []byte {
	t.Helper()
	lines := Inputs(t)["testdata/"+file]
	if n < 1 || n > len(lines) {
		t.Fatalf("%s has %d lines, want line %d", file, len(lines), n)
	}
	return lines[n-1]
}

// Golden decodes every input line and compares the events, and the dead
// letters of lines that do not decode, with <input>.golden.ndjson.
func Golden(t *testing.T, d ingest.Decoder) {
	t.Helper()
	for path, lines := range Inputs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var got bytes.Buffer
			for i, line := range lines {
				rec := ingest.Record{Topic: "golden", Partition: 1, Offset: int64(i), Value: line}
				evs, err := d.Decode(nil, rec)
				if err != nil {
					var de *ingest.DecodeError
					if !errors.As(err, &de) {
						t.Fatalf("line %d: error %T is not a *DecodeError", i+1, err)
					}
					writeJSON(t, &got, map[string]any{"dead_letter": map[string]any{"line": i + 1, "reason": de.Reason, "detail": de.Detail}})
				}
				for _, ev := range evs {
					writeJSON(t, &got, ev)
				}
			}
			golden := strings.TrimSuffix(path, filepath.Ext(path)) + ".golden.ndjson"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s differs from the decoded events; run go test -update and review the diff\ngot:\n%s", golden, got.Bytes())
			}
		})
	}
}

func writeJSON(t *testing.T, w *bytes.Buffer, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.WriteByte('\n')
}

// ErrorCase is a record that must be dead-lettered with Reason.
type ErrorCase struct {
	Name, In, Reason string
}

// Errors checks that each case fails with a *DecodeError of the decoder's
// format and the case's reason, and appends nothing.
func Errors(t *testing.T, d ingest.Decoder, cases []ErrorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			evs, err := d.Decode(nil, ingest.Record{Value: []byte(tc.In)})
			var de *ingest.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DecodeError", err)
			}
			if de.Reason != tc.Reason || de.Format != d.Format() {
				t.Errorf("got %s/%s (%s), want reason %s", de.Format, de.Reason, de.Detail, tc.Reason)
			}
			if len(evs) != 0 {
				t.Errorf("got %d events with an error", len(evs))
			}
		})
	}
}

// Appends checks the Decoder contract on a valid record: events are appended
// to dst, and a failed record leaves dst as it was.
func Appends(t *testing.T, d ingest.Decoder, valid []byte) {
	t.Helper()
	dst := make([]schemas.Event, 1, 4)
	dst, err := d.Decode(dst, ingest.Record{Value: valid})
	if err != nil || len(dst) < 2 {
		t.Fatalf("len = %d, err = %v; want at least 2, nil", len(dst), err)
	}
	n := len(dst)
	dst, err = d.Decode(dst, ingest.Record{Value: []byte("{")})
	if err == nil || len(dst) != n {
		t.Fatalf("len = %d, err = %v; want %d and an error", len(dst), err, n)
	}
}

// Fuzz seeds f with every input line and extra, then checks that any input
// gives either complete, encodable events or a *DecodeError with a reason
// and no events.
func Fuzz(f *testing.F, d ingest.Decoder, extra ...[]byte) {
	for _, lines := range Inputs(f) {
		for _, l := range lines {
			f.Add(l)
		}
	}
	for _, e := range extra {
		f.Add(e)
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		evs, err := d.Decode(nil, ingest.Record{Value: raw})
		if err != nil {
			var de *ingest.DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v is not a *DecodeError with a reason", err)
			}
			if len(evs) != 0 {
				t.Fatalf("%d events with an error", len(evs))
			}
			return
		}
		for _, ev := range evs {
			if ev.ID == "" || ev.Identity.ID == "" || ev.Time.IsZero() || ev.Action == "" {
				t.Fatalf("incomplete event %+v", ev)
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("event does not encode: %v", err)
			}
		}
	})
}

// Bench decodes the input lines that decode, round robin, reporting bytes
// and allocations per record.
func Bench(b *testing.B, d ingest.Decoder) {
	var recs [][]byte
	size := 0
	for _, lines := range Inputs(b) {
		for _, l := range lines {
			if _, err := d.Decode(nil, ingest.Record{Value: l}); err != nil {
				continue // dead letters are not the common case
			}
			recs = append(recs, l)
			size += len(l)
		}
	}
	if len(recs) == 0 {
		b.Fatal("no decodable inputs")
	}
	dst := make([]schemas.Event, 0, 4)
	b.SetBytes(int64(size / len(recs)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var err error
		dst, err = d.Decode(dst[:0], ingest.Record{Value: recs[i%len(recs)]})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// InFormatDir changes the working directory to testdata/<format> for the
// rest of tb. Decoder packages keep each decoder's inputs and golden files
// in testdata/<format>/testdata/, so that the harness, which reads
// testdata/* relative to the working directory, sees only that decoder's
// files. A fuzz worker process starts in the directory its coordinator was
// in, which is testdata/<format> already: there InFormatDir stays.
func InFormatDir(tb testing.TB, format string) {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	if filepath.Base(wd) == format && filepath.Base(filepath.Dir(wd)) == "testdata" {
		return
	}
	tb.Chdir(filepath.Join("testdata", format))
}

// ExactlyOne wraps a decoder whose every decoded record holds exactly one
// event, so that the harness's golden, contract and fuzz runs also check
// that no record yields zero or several: such a record returns an error
// that is not a *DecodeError, which fails them.
func ExactlyOne(d ingest.Decoder) ingest.Decoder { return exactlyOne{d} }

type exactlyOne struct{ ingest.Decoder }

func (o exactlyOne) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	n := len(dst)
	out, err := o.Decoder.Decode(dst, rec)
	if err == nil && len(out)-n != 1 {
		return dst, fmt.Errorf("%s: decoded %d events, want exactly 1", o.Format(), len(out)-n)
	}
	return out, err
}

// MaxRecordBytes checks d's record size limit with raw, a record d decodes:
// after set(len(raw)-1) raw must fail as too_large (a *DecodeError of d's
// format that appends nothing), and after set(len(raw)) it must decode.
func MaxRecordBytes(t *testing.T, d ingest.Decoder, set func(int), raw []byte) {
	t.Helper()
	set(len(raw) - 1)
	Errors(t, d, []ErrorCase{{Name: "one byte over", In: string(raw), Reason: ingest.ReasonTooLarge}})
	set(len(raw))
	if _, err := d.Decode(nil, ingest.Record{Value: raw}); err != nil {
		t.Fatalf("a record of exactly MaxRecordBytes: %v", err)
	}
}

// DecodeOne decodes raw with d and requires exactly one event, which it
// returns.
func DecodeOne(t testing.TB, d ingest.Decoder, raw []byte) schemas.Event {
	t.Helper()
	evs, err := d.Decode(nil, ingest.Record{Value: raw})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 {
		t.Fatalf("got %d events, want 1", len(evs))
	}
	return evs[0]
}
