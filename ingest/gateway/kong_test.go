package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.ndjson")

// inputs returns the testdata input files and their lines.
func inputs(t testing.TB) map[string][][]byte {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.ndjson")
	if err != nil {
		t.Fatal(err)
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

// TestGolden decodes every testdata line and compares the events (and the
// dead letters of lines that do not decode) with <input>.golden.ndjson.
func TestGolden(t *testing.T) {
	d := New()
	for path, lines := range inputs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var got bytes.Buffer
			for i, line := range lines {
				rec := ingest.Record{Topic: "gateway", Partition: 1, Offset: int64(i), Value: line}
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
			golden := strings.TrimSuffix(path, ".ndjson") + ".golden.ndjson"
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

func line(t *testing.T, file string, n int) []byte {
	t.Helper()
	lines := inputs(t)["testdata/"+file]
	if n > len(lines) {
		t.Fatalf("%s has %d lines, want line %d", file, len(lines), n)
	}
	return lines[n-1]
}

// TestDecode checks the fields the detectors depend on, record by record.
func TestDecode(t *testing.T) {
	tests := []struct {
		name       string
		file       string
		line       int
		id         string
		identity   schemas.Identity
		credential string
		action     string
		service    string
		result     schemas.Result
		status     int
		ip, ua     string
		time       string
		bytesIn    uint64
		bytesOut   uint64
		durationMS float64
	}{
		{
			name: "Kong docs file-log: credential of consumer foo", file: "kong-file-log.ndjson", line: 1,
			identity:   schemas.Identity{ID: "apikey:kong:c62c1455-9b1d-4f2d-8797-509ba83b8ae8", Kind: schemas.KindAPIKey, Name: "foo"},
			credential: "c62c1455-9b1d-4f2d-8797-509ba83b8ae8",
			action:     "GET /log", service: "httpbin.org", result: schemas.ResultSuccess, status: 200,
			ip: "192.168.144.1", ua: "HTTPie/2.4.0", time: "2021-02-25T05:57:48.342Z",
			bytesIn: 138, bytesOut: 827, durationMS: 515,
		},
		{
			name: "consumer without credential, repeated header, request id header", file: "kong-variants.ndjson", line: 1,
			id:       "kong:3bbc02522d5c49febd89104e9b61770b",
			identity: schemas.Identity{ID: "apikey:kong:consumer/0c8a1e6f-3b7d-4d25-9f1e-52a6c7b8d901", Kind: schemas.KindAPIKey, Name: "billing-job"},
			action:   "GET /v1/invoices/{id}", service: "httpbin.org", result: schemas.ResultSuccess, status: 200,
			ip: "192.168.144.1", ua: "billing-job/1.4", time: "2021-02-25T05:58:20.123Z",
			bytesIn: 138, bytesOut: 827, durationMS: 515,
		},
		{
			name: "unauthenticated 401 falls back to the client IP", file: "kong-variants.ndjson", line: 2,
			identity: schemas.Identity{ID: "ip:203.0.113.7", Kind: schemas.KindUnknown},
			action:   "POST /admin/keys", service: "httpbin.org", result: schemas.ResultDenied, status: 401,
			ip: "203.0.113.7", ua: "HTTPie/2.4.0", time: "2021-02-25T06:00:00.456Z",
			bytesIn: 412, bytesOut: 96, durationMS: 2,
		},
		{
			name: "upstream timeout, Kong 3.5 request.id", file: "kong-variants.ndjson", line: 3,
			id:         "kong:8f2c6d4e0a1b4c3d9e8f7a6b5c4d3e2f",
			identity:   schemas.Identity{ID: "apikey:kong:c62c1455-9b1d-4f2d-8797-509ba83b8ae8", Kind: schemas.KindAPIKey, Name: "foo"},
			credential: "c62c1455-9b1d-4f2d-8797-509ba83b8ae8",
			action:     "GET /log", service: "payments", result: schemas.ResultFailure, status: 504,
			ip: "192.168.144.1", ua: "HTTPie/2.4.0", time: "2021-02-25T06:01:40.789Z",
			bytesIn: 138, bytesOut: 0, durationMS: 60001,
		},
	}
	d := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := line(t, tc.file, tc.line)
			evs, err := d.Decode(nil, ingest.Record{Value: raw})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			wantID := tc.id
			if wantID == "" {
				wantID = schemas.HashID(Format, raw)
			}
			if ev.ID != wantID || ev.Identity != tc.identity || ev.Credential.ID != tc.credential ||
				ev.Action != tc.action || ev.Service != tc.service ||
				ev.Outcome.Result != tc.result || ev.Outcome.Status != tc.status ||
				ev.Actor.IP != tc.ip || ev.Actor.UserAgent != tc.ua ||
				ev.Time.Format("2006-01-02T15:04:05.000Z07:00") != tc.time ||
				ev.BytesIn != tc.bytesIn || ev.BytesOut != tc.bytesOut || ev.DurationMS != tc.durationMS ||
				ev.Source.Family != schemas.FamilyGateway {
				t.Errorf("got %+v\nwant %+v", ev, tc)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := string(line(t, "kong-file-log.ndjson", 1))
	tests := []struct {
		name   string
		in     string
		reason string
	}{
		{"empty", "", ingest.ReasonInvalidJSON},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON},
		{"proxy access log line", `172.19.0.1 - - [25/Feb/2021:05:57:48 +0000] "GET /log HTTP/1.1" 200 503 "-" "HTTPie/2.4.0"`, ingest.ReasonInvalidJSON},
		{"not an object", `[{"started_at":1}]`, ingest.ReasonNotAnEvent},
		{"invalid UTF-8", strings.Replace(valid, `"username":"foo"`, "\"username\":\"f\xc3\x28\"", 1), ingest.ReasonInvalidUTF8},
		{"too deep", `{"request":{"headers":{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}}`, ingest.ReasonTooDeep},
		{"status is an object", strings.Replace(valid, `"status":200`, `"status":{"code":200}`, 1), ingest.ReasonBadField},
		{"status out of range", strings.Replace(valid, `"status":200`, `"status":1200`, 1), ingest.ReasonBadField},
		{"size overflow", strings.Replace(valid, `"size":138`, `"size":1e30`, 1), ingest.ReasonBadField},
		{"started_at overflow", strings.Replace(valid, `"started_at":1614232668342`, `"started_at":9223372036854775808`, 1), ingest.ReasonBadField},
		{"started_at past year 9999", strings.Replace(valid, `"started_at":1614232668342`, `"started_at":253402300800000`, 1), ingest.ReasonBadField},
		{"started_at as a string", strings.Replace(valid, `"started_at":1614232668342`, `"started_at":"2021-02-25T05:57:48Z"`, 1), ingest.ReasonBadField},
		{"no started_at", strings.Replace(valid, `,"started_at":1614232668342`, ``, 1), ingest.ReasonMissingField},
		{"bad client_ip", strings.Replace(valid, `"client_ip":"192.168.144.1"`, `"client_ip":"not-an-ip"`, 1), ingest.ReasonBadField},
		{"request is a string", strings.Replace(valid, `"request":{`, `"request":"x","r":{`, 1), ingest.ReasonBadField},
		{"no method", strings.Replace(valid, `"method":"GET"`, `"method":null`, 1), ingest.ReasonMissingField},
		{"nobody to blame", `{"started_at":1614232668342,"request":{"method":"GET","uri":"/"}}`, ingest.ReasonMissingField},
	}
	d := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := d.Decode(nil, ingest.Record{Value: []byte(tc.in)})
			var de *ingest.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DecodeError", err)
			}
			if de.Reason != tc.reason || de.Format != Format {
				t.Errorf("got %s/%s (%s), want reason %s", de.Format, de.Reason, de.Detail, tc.reason)
			}
			if len(evs) != 0 {
				t.Errorf("got %d events with an error", len(evs))
			}
		})
	}
}

func TestMaxRecordBytes(t *testing.T) {
	raw := line(t, "kong-file-log.ndjson", 1)
	d := &Decoder{MaxRecordBytes: len(raw) - 1}
	_, err := d.Decode(nil, ingest.Record{Value: raw})
	var de *ingest.DecodeError
	if !errors.As(err, &de) || de.Reason != ingest.ReasonTooLarge {
		t.Fatalf("err = %v, want %s", err, ingest.ReasonTooLarge)
	}
	d.MaxRecordBytes = len(raw)
	if _, err := d.Decode(nil, ingest.Record{Value: raw}); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeAppends checks the Decoder contract: events are appended to dst
// and a failed record leaves dst as it was.
func TestDecodeAppends(t *testing.T) {
	d := New()
	dst := make([]schemas.Event, 1, 4)
	dst, err := d.Decode(dst, ingest.Record{Value: line(t, "kong-file-log.ndjson", 1)})
	if err != nil || len(dst) != 2 {
		t.Fatalf("len = %d, err = %v; want 2, nil", len(dst), err)
	}
	dst, err = d.Decode(dst, ingest.Record{Value: []byte("{")})
	if err == nil || len(dst) != 2 {
		t.Fatalf("len = %d, err = %v; want 2 and an error", len(dst), err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, lines := range inputs(f) {
		for _, l := range lines {
			f.Add(l)
		}
	}
	f.Add([]byte(`{"started_at":1614232668342,"client_ip":"::1","request":{"method":"GET","uri":"/a/1","headers":{"user-agent":["x"]}}}`))
	d := New()
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
		if len(evs) != 1 {
			t.Fatalf("%d events, want 1", len(evs))
		}
		ev := evs[0]
		if ev.ID == "" || ev.Identity.ID == "" || ev.Time.IsZero() || ev.Action == "" {
			t.Fatalf("incomplete event %+v", ev)
		}
		if _, err := json.Marshal(ev); err != nil {
			t.Fatalf("event does not encode: %v", err)
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	d := New()
	var recs [][]byte
	size := 0
	for _, lines := range inputs(b) {
		for _, l := range lines {
			if _, err := d.Decode(nil, ingest.Record{Value: l}); err != nil {
				continue // the dead letters of the golden files are not the common case
			}
			recs = append(recs, l)
			size += len(l)
		}
	}
	dst := make([]schemas.Event, 0, 1)
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
