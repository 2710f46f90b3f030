package mesh

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
				rec := ingest.Record{Topic: "mesh", Partition: 1, Offset: int64(i), Value: line}
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
		name      string
		file      string
		line      int
		id        string
		identity  schemas.Identity
		peer      string // Actor.Peer
		target    string // Target.Peer
		action    string
		service   string
		result    schemas.Result
		errorCode string
		ip        string
		time      string
	}{
		{
			name: "istio inbound without principals falls back to the source IP", file: "istio-json.ndjson", line: 1,
			id:       "envoy:9fcc7101-13bd-9753-98d6-820806088d9d:inbound:2022-09-08T12:51:05.656Z",
			identity: schemas.Identity{ID: "ip:10.124.0.13", Kind: schemas.KindUnknown},
			action:   "GET /reviews/{id}", service: "reviews", result: schemas.ResultSuccess,
			ip: "10.124.0.13", time: "2022-09-08T12:51:05.656Z",
		},
		{
			name: "IPv6 source address loses its brackets and port", file: "istio-json.ndjson", line: 2,
			id:       "envoy:9fcc7101-13bd-9753-98d6-820806088d9d:inbound:2022-09-08T12:51:05.656Z",
			identity: schemas.Identity{ID: "ip:2a02:cf40::4e36", Kind: schemas.KindUnknown},
			action:   "GET /reviews/{id}", service: "reviews", result: schemas.ResultSuccess,
			ip: "2a02:cf40::4e36", time: "2022-09-08T12:51:05.656Z",
		},
		{
			name: "codec error: no method, no request id", file: "istio-json.ndjson", line: 3,
			identity: schemas.Identity{ID: "ip:10.128.0.60", Kind: schemas.KindUnknown},
			action:   "http", result: schemas.ResultSuccess, errorCode: "http1.codec_error",
			ip: "10.128.0.60", time: "2022-09-01T09:36:33.553Z",
		},
		{
			name: "envoy gateway header-named keys", file: "envoy-gateway-json.ndjson", line: 3,
			id:       "envoy:fff03852-5ae8-468b-a528-434d095ddc49:outbound:2025-12-31T17:30:03.228Z",
			identity: schemas.Identity{ID: "ip:172.16.2.33", Kind: schemas.KindUnknown},
			action:   "HEAD /.env", service: "foo.example.com", result: schemas.ResultSuccess,
			ip: "172.16.2.33", time: "2025-12-31T17:30:03.228Z",
		},
		{
			name: "inbound: the caller is the downstream peer", file: "principals.ndjson", line: 1,
			id:       "envoy:0f5a3c1e-6b2d-4c8e-9a71-2d3e4f5a6b7c:inbound:2024-05-04T09:59:05.027Z",
			identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload},
			peer:     "spiffe://cluster.local/ns/default/sa/curl",
			target:   "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
			action:   "GET /api/v1/products/{id}/reviews", service: "productpage", result: schemas.ResultSuccess,
			ip: "10.244.1.12", time: "2024-05-04T09:59:05.027Z",
		},
		{
			name: "outbound: the caller is the local workload", file: "principals.ndjson", line: 2,
			id:       "envoy:0f5a3c1e-6b2d-4c8e-9a71-2d3e4f5a6b7c:outbound:2024-05-04T09:59:05.026Z",
			identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload},
			target:   "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
			action:   "GET /api/v1/products/{id}/reviews", service: "productpage", result: schemas.ResultSuccess,
			ip: "10.244.1.12", time: "2024-05-04T09:59:05.026Z",
		},
		{
			name: "RBAC denial", file: "principals.ndjson", line: 3,
			id:       "envoy:8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f:inbound:2024-05-04T10:11:04.964Z",
			identity: schemas.Identity{ID: "spiffe://cluster.local/ns/sandbox/sa/default", Kind: schemas.KindWorkload},
			peer:     "spiffe://cluster.local/ns/sandbox/sa/default",
			target:   "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
			action:   "DELETE /reviews/{id}", service: "reviews", result: schemas.ResultDenied,
			errorCode: "rbac_access_denied_matched_policy[none]",
			ip:        "10.244.2.31", time: "2024-05-04T10:11:04.964Z",
		},
		{
			name: "ext_authz denial, UUID in the path", file: "principals.ndjson", line: 4,
			id:       "envoy:a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d:inbound:2024-05-04T10:11:04.969Z",
			identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload},
			peer:     "spiffe://cluster.local/ns/default/sa/curl",
			target:   "spiffe://cluster.local/ns/prod/sa/payments",
			action:   "POST /v1/payments/{id}/refund", service: "payments.prod", result: schemas.ResultDenied,
			errorCode: "ext_authz_denied",
			ip:        "10.244.1.12", time: "2024-05-04T10:11:04.969Z",
		},
		{
			name: "TCP with Istio source/destination principals", file: "principals.ndjson", line: 5,
			identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload},
			target:   "spiffe://cluster.local/ns/db/sa/postgres",
			action:   "tcp", result: schemas.ResultSuccess,
			ip: "10.244.1.12", time: "2024-05-04T10:11:04.974Z",
		},
		{
			name: "503 upstream failure, SPIFFE ID second of two URI SANs", file: "principals.ndjson", line: 6,
			id:       "envoy:56446678-64f3-9fbf-9c4a-eca01fafba4d:outbound:2024-05-04T10:11:04.979Z",
			identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews", Kind: schemas.KindWorkload},
			target:   "spiffe://cluster.local/ns/default/sa/bookinfo-ratings",
			action:   "GET /ratings/{id}", service: "ratings", result: schemas.ResultFailure,
			errorCode: "upstream_reset_before_response_started{connection_failure}",
			ip:        "10.244.1.9", time: "2024-05-04T10:11:04.979Z",
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
			checks := []struct{ field, got, want string }{
				{"id", ev.ID, wantID},
				{"identity.id", ev.Identity.ID, tc.identity.ID},
				{"identity.kind", string(ev.Identity.Kind), string(tc.identity.Kind)},
				{"actor.peer", ev.Actor.Peer, tc.peer},
				{"target.peer", ev.Target.Peer, tc.target},
				{"action", ev.Action, tc.action},
				{"service", ev.Service, tc.service},
				{"outcome.result", string(ev.Outcome.Result), string(tc.result)},
				{"outcome.error_code", ev.Outcome.ErrorCode, tc.errorCode},
				{"actor.ip", ev.Actor.IP, tc.ip},
				{"time", ev.Time.Format("2006-01-02T15:04:05.000Z07:00"), tc.time},
				{"source.family", string(ev.Source.Family), string(schemas.FamilyMesh)},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
				}
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := string(line(t, "principals.ndjson", 1))
	tests := []struct {
		name   string
		in     string
		reason string
	}{
		{"empty", "", ingest.ReasonInvalidJSON},
		{"whitespace", " \n", ingest.ReasonInvalidJSON},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON},
		{"trailing garbage", valid + "x", ingest.ReasonInvalidJSON},
		{"text format line", `[2022-06-22T10:17:14.118Z] "GET /status/418 HTTP/1.1" 503 UH`, ingest.ReasonInvalidJSON},
		{"not an object", `["a"]`, ingest.ReasonNotAnEvent},
		{"null", `null`, ingest.ReasonNotAnEvent},
		{"invalid UTF-8", `{"start_time":"2024-05-04T09:59:05Z","user_agent":"` + "\xff\xfe" + `"}`, ingest.ReasonInvalidUTF8},
		{"too deep", `{"a":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`, ingest.ReasonTooDeep},
		{"response_code object", strings.Replace(valid, `"response_code":200`, `"response_code":{"v":200}`, 1), ingest.ReasonBadField},
		{"response_code string", strings.Replace(valid, `"response_code":200`, `"response_code":"200"`, 1), ingest.ReasonBadField},
		{"response_code out of range", strings.Replace(valid, `"response_code":200`, `"response_code":70000`, 1), ingest.ReasonBadField},
		{"bytes overflow", strings.Replace(valid, `"bytes_sent":5293`, `"bytes_sent":184467440737095516150`, 1), ingest.ReasonBadField},
		{"negative bytes", strings.Replace(valid, `"bytes_sent":5293`, `"bytes_sent":-1`, 1), ingest.ReasonBadField},
		{"duration overflow", strings.Replace(valid, `"duration":12`, `"duration":1e999`, 1), ingest.ReasonBadField},
		{"no start_time", strings.Replace(valid, `"start_time":"2024-05-04T09:59:05.027Z"`, `"start_time":null`, 1), ingest.ReasonMissingField},
		{"bad start_time", strings.Replace(valid, `2024-05-04T09:59:05.027Z`, `04/May/2024:09:59:05`, 1), ingest.ReasonBadField},
		{"invalid SPIFFE ID", strings.Replace(valid, `spiffe://cluster.local/ns/default/sa/curl`, `spiffe://Cluster.local/ns/../sa/curl`, 1), ingest.ReasonBadField},
		{"no principal and no address", `{"start_time":"2024-05-04T09:59:05Z","downstream_remote_address":"envoy://internal"}`, ingest.ReasonMissingField},
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
	raw := line(t, "principals.ndjson", 1)
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
	dst, err := d.Decode(dst, ingest.Record{Value: line(t, "principals.ndjson", 1)})
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
	f.Add([]byte(`{"start_time":"2024-05-04T09:59:05Z","upstream_cluster":"inbound|1||","downstream_peer_uri_san":"spiffe://a/b"}`))
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
