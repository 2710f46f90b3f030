package gateway

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestGoldenNGINXJSON(t *testing.T) {
	ingesttest.InFormatDir(t, NGINXJSONFormat)
	ingesttest.Golden(t, NewNGINXJSON())
}

func TestAppendsNGINXJSON(t *testing.T) {
	ingesttest.InFormatDir(t, NGINXJSONFormat)
	ingesttest.Appends(t, ingesttest.ExactlyOne(NewNGINXJSON()), ingesttest.Line(t, "nginx-json.ndjson", 1))
}

func FuzzDecodeNGINXJSON(f *testing.F) {
	ingesttest.InFormatDir(f, NGINXJSONFormat)
	ingesttest.Fuzz(f, ingesttest.ExactlyOne(NewNGINXJSON()),
		[]byte(`{"msec":"1.5","remote_addr":"::1","request_method":"GET","request_uri":"/a/1","status":200}`))
}

func BenchmarkDecodeNGINXJSON(b *testing.B) {
	ingesttest.InFormatDir(b, NGINXJSONFormat)
	ingesttest.Bench(b, NewNGINXJSON())
}

func TestDecodeNGINXJSON(t *testing.T) {
	src := schemas.Source{Family: schemas.FamilyGateway, Format: NGINXJSONFormat, Provider: "nginx"}
	checkDecode(t, NewNGINXJSON(), []want{
		{
			name: "msec time, request line, req_id, upstream", file: "nginx-json.ndjson", line: 1,
			id: "nginx_json:0f3b6c2a9d8e4f1a7b5c3d2e1f0a9b8c", source: src, time: "2024-06-10T06:30:00.123000Z",
			identity: schemas.Identity{ID: "ip:10.2.0.21", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "10.2.0.21", UserAgent: "ledger-reconciler/3.4.1"},
			action:   "GET /api/v2/accounts/{id}/balance", service: "ledger.internal.example.com",
			target:  schemas.Target{Resource: "/api/v2/accounts/77421/balance", Peer: "ip:10.2.7.14"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesIn: 512, bytesOut: 348, durationMS: 12,
		},
		{
			name: "basic-auth user denied", file: "nginx-json.ndjson", line: 2,
			id: "nginx_json:4c2d8e1f0a9b7c6d5e4f3a2b1c0d9e8f", source: src, time: "2024-06-10T06:30:05.000000Z",
			identity:   schemas.Identity{ID: "nginx:user/backup-agent", Kind: schemas.KindUnknown, Name: "backup-agent"},
			credential: schemas.Credential{Type: "http_basic"},
			actor:      schemas.Actor{IP: "10.2.0.22", UserAgent: "rclone/v1.66.0"},
			action:     "PUT /dav/backups/2024-06-10/db.tar.gz", service: "files.internal.example.com",
			target:  schemas.Target{Resource: "/dav/backups/2024-06-10/db.tar.gz"},
			outcome: schemas.Outcome{Result: schemas.ResultDenied, Status: 403}, bytesIn: 1048910, bytesOut: 153, durationMS: 4,
		},
		{
			name: "ingress-nginx keys, bare numbers, time_local, retried upstreams", file: "nginx-json.ndjson", line: 3,
			id: "nginx_json:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b", source: schemas.Source{Family: schemas.FamilyGateway, Format: NGINXJSONFormat, Provider: "ingress-nginx"},
			time:     "2024-06-10T06:30:09.000000Z",
			identity: schemas.Identity{ID: "ip:2001:db8::25", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "2001:db8::25", UserAgent: "Apollo-Client/3.10"},
			action:   "POST /graphql", service: "payments-graphql-8080",
			target:  schemas.Target{Resource: "/graphql", Peer: "ip:10.2.9.2"},
			outcome: schemas.Outcome{Result: schemas.ResultFailure, Status: 502}, bytesIn: 733, bytesOut: 166, durationMS: 5002,
		},
		{
			name: "empty variables, no request id", file: "nginx-json.ndjson", line: 4,
			hashID: true, source: src, time: "2024-06-10T06:30:12.000000Z",
			identity: schemas.Identity{ID: "ip:198.51.100.200", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "198.51.100.200", UserAgent: "Mozilla/5.0 (compatible; scanner)"},
			action:   "GET /.env", target: schemas.Target{Resource: "/.env"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 404}, bytesIn: 180, bytesOut: 153,
		},
	})
}

func TestDecodeErrorsNGINXJSON(t *testing.T) {
	ingesttest.InFormatDir(t, NGINXJSONFormat)
	valid := string(ingesttest.Line(t, "nginx-json.ndjson", 1))
	ingesttest.Errors(t, NewNGINXJSON(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonInvalidJSON},
		{Name: "truncated", In: valid[:len(valid)/2], Reason: ingest.ReasonInvalidJSON},
		{Name: "text access log", In: `10.0.0.1 - - [10/Jun/2024:06:20:06 +0000] "GET / HTTP/1.0" 200 612`, Reason: ingest.ReasonInvalidJSON},
		{Name: "not an object", In: `"remote_addr"`, Reason: ingest.ReasonNotAnEvent},
		{Name: "other JSON", In: `{"level":"error","msg":"upstream timed out"}`, Reason: ingest.ReasonNotAnEvent},
		{Name: "invalid UTF-8", In: strings.Replace(valid, "ledger-reconciler", "ledger-\xe2\x82", 1), Reason: ingest.ReasonInvalidUTF8},
		{Name: "too deep", In: `{"remote_addr":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, Reason: ingest.ReasonTooDeep},
		{Name: "status is an object", In: strings.Replace(valid, `"status":"200"`, `"status":{}`, 1), Reason: ingest.ReasonBadField},
		{Name: "status out of range", In: strings.Replace(valid, `"status":"200"`, `"status":-1`, 1), Reason: ingest.ReasonBadField},
		{Name: "huge bytes", In: strings.Replace(valid, `"body_bytes_sent":"348"`, `"body_bytes_sent":1e400`, 1), Reason: ingest.ReasonBadField},
		{Name: "msec overflow", In: strings.Replace(valid, `"msec":"1718001000.123"`, `"msec":"99999999999999999999.1"`, 1), Reason: ingest.ReasonBadField},
		{Name: "msec past 9999", In: strings.Replace(valid, `"msec":"1718001000.123"`, `"msec":253402300800`, 1), Reason: ingest.ReasonBadField},
		{Name: "bad time_iso8601", In: `{"time_iso8601":"today","remote_addr":"10.0.0.1","request":"GET / HTTP/1.1"}`, Reason: ingest.ReasonBadField},
		{Name: "no time", In: `{"remote_addr":"10.0.0.1","request":"GET / HTTP/1.1","status":"200"}`, Reason: ingest.ReasonMissingField},
		{Name: "no request", In: `{"remote_addr":"10.0.0.1","time_local":"10/Jun/2024:06:30:09 +0000","status":"200"}`, Reason: ingest.ReasonMissingField},
		{Name: "no remote_addr", In: `{"request":"GET / HTTP/1.1","time_local":"10/Jun/2024:06:30:09 +0000","status":"200"}`, Reason: ingest.ReasonMissingField},
		{Name: "bad remote_addr", In: strings.Replace(valid, `"remote_addr":"10.2.0.21"`, `"remote_addr":"unix:"`, 1), Reason: ingest.ReasonBadField},
		{Name: "bad request_time", In: strings.Replace(valid, `"request_time":"0.012"`, `"request_time":"NaN"`, 1), Reason: ingest.ReasonBadField},
	})
}
