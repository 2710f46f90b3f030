package gateway

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

// TestGolden decodes every testdata line and compares the events (and the
// dead letters of lines that do not decode) with <input>.golden.ndjson.
func TestGolden(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	ingesttest.Golden(t, New())
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
	ingesttest.InFormatDir(t, Format)
	d := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := ingesttest.Line(t, tc.file, tc.line)
			ev := ingesttest.DecodeOne(t, d, raw)
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
	ingesttest.InFormatDir(t, Format)
	valid := string(ingesttest.Line(t, "kong-file-log.ndjson", 1))
	ingesttest.Errors(t, New(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonInvalidJSON},
		{Name: "truncated", In: valid[:len(valid)/2], Reason: ingest.ReasonInvalidJSON},
		{Name: "proxy access log line", In: `172.19.0.1 - - [25/Feb/2021:05:57:48 +0000] "GET /log HTTP/1.1" 200 503 "-" "HTTPie/2.4.0"`, Reason: ingest.ReasonInvalidJSON},
		{Name: "not an object", In: `[{"started_at":1}]`, Reason: ingest.ReasonNotAnEvent},
		{Name: "invalid UTF-8", In: strings.Replace(valid, `"username":"foo"`, "\"username\":\"f\xc3\x28\"", 1), Reason: ingest.ReasonInvalidUTF8},
		{Name: "too deep", In: `{"request":{"headers":{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}}`, Reason: ingest.ReasonTooDeep},
		{Name: "status is an object", In: strings.Replace(valid, `"status":200`, `"status":{"code":200}`, 1), Reason: ingest.ReasonBadField},
		{Name: "status out of range", In: strings.Replace(valid, `"status":200`, `"status":1200`, 1), Reason: ingest.ReasonBadField},
		{Name: "size overflow", In: strings.Replace(valid, `"size":138`, `"size":1e30`, 1), Reason: ingest.ReasonBadField},
		{Name: "started_at overflow", In: strings.Replace(valid, `"started_at":1614232668342`, `"started_at":9223372036854775808`, 1), Reason: ingest.ReasonBadField},
		{Name: "started_at past year 9999", In: strings.Replace(valid, `"started_at":1614232668342`, `"started_at":253402300800000`, 1), Reason: ingest.ReasonBadField},
		{Name: "started_at as a string", In: strings.Replace(valid, `"started_at":1614232668342`, `"started_at":"2021-02-25T05:57:48Z"`, 1), Reason: ingest.ReasonBadField},
		{Name: "no started_at", In: strings.Replace(valid, `,"started_at":1614232668342`, ``, 1), Reason: ingest.ReasonMissingField},
		{Name: "bad client_ip", In: strings.Replace(valid, `"client_ip":"192.168.144.1"`, `"client_ip":"not-an-ip"`, 1), Reason: ingest.ReasonBadField},
		{Name: "request is a string", In: strings.Replace(valid, `"request":{`, `"request":"x","r":{`, 1), Reason: ingest.ReasonBadField},
		{Name: "no method", In: strings.Replace(valid, `"method":"GET"`, `"method":null`, 1), Reason: ingest.ReasonMissingField},
		{Name: "nobody to blame", In: `{"started_at":1614232668342,"request":{"method":"GET","uri":"/"}}`, Reason: ingest.ReasonMissingField},
	})
}

func TestMaxRecordBytes(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	raw := ingesttest.Line(t, "kong-file-log.ndjson", 1)
	d := &Decoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}

// TestDecodeAppends checks the Decoder contract: events are appended to dst
// and a failed record leaves dst as it was; a Kong entry is exactly one event.
func TestDecodeAppends(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	ingesttest.Appends(t, ingesttest.ExactlyOne(New()), ingesttest.Line(t, "kong-file-log.ndjson", 1))
}

func FuzzDecode(f *testing.F) {
	ingesttest.InFormatDir(f, Format)
	ingesttest.Fuzz(f, ingesttest.ExactlyOne(New()),
		[]byte(`{"started_at":1614232668342,"client_ip":"::1","request":{"method":"GET","uri":"/a/1","headers":{"user-agent":["x"]}}}`))
}

func BenchmarkDecode(b *testing.B) {
	ingesttest.InFormatDir(b, Format)
	ingesttest.Bench(b, New())
}
