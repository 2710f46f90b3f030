package gateway

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestGoldenNGINX(t *testing.T) {
	ingesttest.InFormatDir(t, NGINXFormat)
	ingesttest.Golden(t, NewNGINX())
}

func TestAppendsNGINX(t *testing.T) {
	ingesttest.InFormatDir(t, NGINXFormat)
	ingesttest.Appends(t, ingesttest.ExactlyOne(NewNGINX()), ingesttest.Line(t, "elastic-nginx-access-combined.log", 1))
}

func FuzzDecodeNGINX(f *testing.F) {
	ingesttest.InFormatDir(f, NGINXFormat)
	ingesttest.Fuzz(f, ingesttest.ExactlyOne(NewNGINX()),
		[]byte(`h 1.2.3.4 - u [01/Jan/2024:00:00:00 +0000] "GET /a?b HTTP/1.1" 200 1 "r" "ua" "x" 1 0.1 [a] [] 1.1.1.1:1, 2.2.2.2:2 : 3.3.3.3:3 1, 2 : 3 0.1, 0.2 : 0.3 502, 200 : 200 id`))
}

func BenchmarkDecodeNGINX(b *testing.B) {
	ingesttest.InFormatDir(b, NGINXFormat)
	ingesttest.Bench(b, NewNGINX())
}

func TestDecodeNGINX(t *testing.T) {
	src := schemas.Source{Family: schemas.FamilyGateway, Format: NGINXFormat, Provider: "nginx"}
	ingress := schemas.Source{Family: schemas.FamilyGateway, Format: NGINXFormat, Provider: "ingress-nginx"}
	const chrome54 = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/54.0.2840.59 Safari/537.36"
	checkDecode(t, NewNGINX(), []want{
		{
			name: "combined, local time zone +0200", file: "elastic-nginx-access-combined.log", line: 1,
			hashID: true, source: src, time: "2016-10-25T12:49:33.000000Z",
			identity: schemas.Identity{ID: "ip:67.43.156.13", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "67.43.156.13", UserAgent: chrome54}, action: "GET /",
			target: schemas.Target{Resource: "/"}, outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesOut: 612,
		},
		{
			name: "combined 304 with zero bytes", file: "elastic-nginx-access-combined.log", line: 10,
			hashID: true, source: src, time: "2016-12-07T10:04:58.000000Z",
			identity: schemas.Identity{ID: "ip:127.0.0.1", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "127.0.0.1", UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:49.0) Gecko/20100101 Firefox/49.0"},
			action:   "GET /", target: schemas.Target{Resource: "/"}, outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 304},
		},
		{
			name: "vhost prefix names the service", file: "elastic-nginx-access-combined.log", line: 13,
			hashID: true, source: src, time: "2020-06-09T19:10:39.000000Z",
			identity: schemas.Identity{ID: "ip:192.168.0.1", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "192.168.0.1", UserAgent: "Mozilla/5.0 (Linux; Android 5.1.1; KFFOWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/81.2.16 like Chrome/81.0.4044.138 Safari/537.36"},
			action:   "GET /A%20Beka%20G1%20Howe/029_AND_30/15%20reading%20elephants.mp4", service: "lessons.example.com",
			target:  schemas.Target{Resource: "/A%20Beka%20G1%20Howe/029_AND_30/15%20reading%20elephants.mp4"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 206}, bytesOut: 7648063,
		},
		{
			name: "upstreaminfo: templated id, upstream name, req id, request time", file: "elastic-nginx-ingress-controller-access-upstreaminfo.log", line: 2,
			id: "nginx:68fa971ce4dfce685fdc01c877bfa645", source: ingress, time: "2020-02-07T11:49:15.000000Z",
			identity: schemas.Identity{ID: "ip:192.168.64.1", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "192.168.64.1", UserAgent: "curl/7.54.0"}, action: "GET /products/{id}", service: "default-web-8080",
			target:  schemas.Target{Resource: "/products/42", Peer: "ip:172.17.0.5"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesIn: 91, bytesOut: 59, durationMS: 1,
		},
		{
			name: "upstreaminfo: method NGINX rejected", file: "elastic-nginx-ingress-controller-access-upstreaminfo.log", line: 5,
			id: "nginx:4c7d2079340e68353c7d0dfff00b904b", source: ingress, time: "2020-02-07T11:49:50.000000Z",
			identity: schemas.Identity{ID: "ip:192.168.64.1", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "192.168.64.1"}, action: "INVALID /products/{id}",
			target:  schemas.Target{Resource: "/products/42"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 400, ErrorCode: "invalid_request_line"}, bytesOut: 163,
		},
		{
			name: "upstreaminfo: query string dropped", file: "elastic-nginx-ingress-controller-access-upstreaminfo.log", line: 19,
			id: "nginx:9a7babf34ca4ee59d90ac48d452a9214", source: ingress, time: "2020-02-07T12:00:28.000000Z",
			identity: schemas.Identity{ID: "ip:67.43.156.13", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "67.43.156.13", UserAgent: "python-requests/2.22.0"}, action: "GET /products/{id}", service: "default-web-8080",
			target:  schemas.Target{Resource: "/products/42", Peer: "ip:172.17.0.5"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesIn: 197, bytesOut: 59,
		},
		{
			name: "upstreaminfo: basic-auth user over IPv6", file: "elastic-nginx-ingress-controller-access-upstreaminfo.log", line: 23,
			id: "nginx:3db73c6c673c4256ade033a6ce08c2ab", source: ingress, time: "2022-08-24T21:04:17.000000Z",
			identity:   schemas.Identity{ID: "nginx:user/remote_monitoring_user", Kind: schemas.KindUnknown, Name: "remote_monitoring_user"},
			credential: schemas.Credential{Type: "http_basic"},
			actor:      schemas.Actor{IP: "2a02:cf40::", UserAgent: "Elastic-metricbeat/7.16.3 (linux; amd64; e7cede6a62ed4452bd9044fc6f4947df; 2022-01-07 00:50:33 +0000 UTC)"},
			action:     "POST /_bulk", service: "esmon-esmon-es-http-9200",
			target:  schemas.Target{Resource: "/_bulk", Peer: "ip:2a02:cf40::"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesIn: 2057, bytesOut: 470, durationMS: 33,
		},
		{
			name: "upstreaminfo: retried upstreams, the last one answered", file: "elastic-nginx-ingress-controller-access-upstreaminfo.log", line: 24,
			id: "nginx:3db73c6c673c4256ade033a6ce08c2ab", source: ingress, time: "2022-08-24T18:05:41.000000Z",
			identity: schemas.Identity{ID: "ip:2a02:cf40::4e36", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "2a02:cf40::4e36", UserAgent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/104.0.0.0 Safari/537.36"},
			action:   "GET /favicon.ico", service: "localhost-8080",
			target:  schemas.Target{Resource: "/favicon.ico", Peer: "ip:2a02:cf40::4e36"},
			outcome: schemas.Outcome{Result: schemas.ResultFailure, Status: 502}, bytesIn: 27, bytesOut: 552,
		},
		{
			name: "basic-auth user, id-like segment kept as a word", file: "nginx-variants.log", line: 2,
			hashID: true, source: src, time: "2024-06-10T06:20:01.000000Z",
			identity:   schemas.Identity{ID: "nginx:user/metrics-scraper", Kind: schemas.KindUnknown, Name: "metrics-scraper"},
			credential: schemas.Credential{Type: "http_basic"},
			actor:      schemas.Actor{IP: "10.2.0.15", UserAgent: "Prometheus/2.52.0"}, action: "GET /metrics/node/ip-10-2-0-7",
			target: schemas.Target{Resource: "/metrics/node/ip-10-2-0-7"}, outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesOut: 18342,
		},
		{
			name: "main format (x-forwarded-for ignored), 401 denied", file: "nginx-variants.log", line: 3,
			hashID: true, source: src, time: "2024-06-10T06:20:02.000000Z",
			identity: schemas.Identity{ID: "ip:10.2.0.16", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "10.2.0.16", UserAgent: "curl/8.5.0"}, action: "POST /api/v1/tokens",
			target: schemas.Target{Resource: "/api/v1/tokens"}, outcome: schemas.Outcome{Result: schemas.ResultDenied, Status: 401}, bytesOut: 61,
		},
		{
			name: "CRI-wrapped line, UUID templated, 403 denied", file: "nginx-variants.log", line: 4,
			hashID: true, source: src, time: "2024-06-10T06:20:03.000000Z",
			identity: schemas.Identity{ID: "ip:10.2.0.17", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "10.2.0.17", UserAgent: "kubectl/v1.30.1 (linux/amd64) kubernetes/7c48c2b"}, action: "GET /api/v1/secrets/{id}",
			target: schemas.Target{Resource: "/api/v1/secrets/8f14e45f-ceea-467f-a0e6-3b8c2d1e9f00"}, outcome: schemas.Outcome{Result: schemas.ResultDenied, Status: 403}, bytesOut: 153,
		},
		{
			name: "TLS handshake on the HTTP port", file: "nginx-variants.log", line: 5,
			hashID: true, source: src, time: "2024-06-10T06:20:04.000000Z",
			identity: schemas.Identity{ID: "ip:203.0.113.99", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "203.0.113.99"}, action: "INVALID",
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 400, ErrorCode: "invalid_request_line"}, bytesOut: 157,
		},
		{
			name: "Common Log Format", file: "nginx-variants.log", line: 7,
			hashID: true, source: src, time: "2024-06-10T06:20:06.000000Z",
			identity: schemas.Identity{ID: "ip:192.0.2.10", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "192.0.2.10"}, action: "GET /",
			target: schemas.Target{Resource: "/"}, outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 200}, bytesOut: 612,
		},
		{
			name: "CONNECT through the default backend", file: "nginx-variants.log", line: 9,
			id: "nginx:6b1f0a2e9c8d7b6a5f4e3d2c1b0a9f8e", source: ingress, time: "2024-06-10T06:20:08.000000Z",
			identity: schemas.Identity{ID: "ip:10.2.0.18", Kind: schemas.KindUnknown},
			actor:    schemas.Actor{IP: "10.2.0.18", UserAgent: "Go-http-client/1.1"}, action: "CONNECT", service: "ingress-nginx-default-backend-80",
			target:  schemas.Target{Resource: "proxy.example.com:443", Peer: "ip:10.2.5.6"},
			outcome: schemas.Outcome{Result: schemas.ResultSuccess, Status: 405}, bytesIn: 120, bytesOut: 157, durationMS: 2,
		},
	})
}

func TestDecodeErrorsNGINX(t *testing.T) {
	ingesttest.InFormatDir(t, NGINXFormat)
	valid := string(ingesttest.Line(t, "elastic-nginx-ingress-controller-access-upstreaminfo.log", 1))
	ingesttest.Errors(t, NewNGINX(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonNotAnEvent},
		{Name: "error-log line", In: `2024/06/10 06:20:07 [crit] 7#7: *9 connect() to unix:/run/php.sock failed (2: No such file or directory)`, Reason: ingest.ReasonNotAnEvent},
		{Name: "app log line", In: `level=info msg="configuration changes detected, backend reload required"`, Reason: ingest.ReasonNotAnEvent},
		{Name: "klog line", In: `I0610 06:20:07.123456       7 controller.go:190] "Configuration changes detected, backend reload required"`, Reason: ingest.ReasonNotAnEvent},
		{Name: "JSON line", In: `{"remote_addr":"10.0.0.1"}`, Reason: ingest.ReasonNotAnEvent},
		{Name: "truncated in the request", In: valid[:60], Reason: ingest.ReasonBadField},
		{Name: "truncated in the time", In: valid[:30], Reason: ingest.ReasonBadField},
		{Name: "truncated after the request", In: valid[:strings.Index(valid, `" 200`)+1], Reason: ingest.ReasonMissingField},
		{Name: "truncated in the user agent", In: valid[:strings.Index(valid, `curl`)], Reason: ingest.ReasonBadField},
		{Name: "truncated in upstreaminfo", In: valid[:strings.Index(valid, `[]`)], Reason: ingest.ReasonBadField},
		{Name: "invalid UTF-8", In: strings.Replace(valid, "curl", "cu\xc3\x28rl", 1), Reason: ingest.ReasonInvalidUTF8},
		{Name: "bad remote_addr", In: strings.Replace(valid, "192.168.64.1 ", "192.168.64.300 ", 1), Reason: ingest.ReasonBadField},
		{Name: "bad time", In: strings.Replace(valid, "07/Feb/2020", "07/Fbr/2020", 1), Reason: ingest.ReasonBadField},
		{Name: "status not a number", In: strings.Replace(valid, `" 200 59`, `" OK 59`, 1), Reason: ingest.ReasonBadField},
		{Name: "status out of range", In: strings.Replace(valid, `" 200 59`, `" 2000 59`, 1), Reason: ingest.ReasonBadField},
		{Name: "huge body_bytes_sent", In: strings.Replace(valid, `" 200 59`, `" 200 99999999999999999999999`, 1), Reason: ingest.ReasonBadField},
		{Name: "negative request_time", In: strings.Replace(valid, ` 89 0.001 `, ` 89 -0.001 `, 1), Reason: ingest.ReasonBadField},
		{Name: "huge request_time", In: strings.Replace(valid, ` 89 0.001 `, ` 89 1e300 `, 1), Reason: ingest.ReasonBadField},
		{Name: "request_length not a number", In: strings.Replace(valid, ` 89 0.001 `, ` x 0.001 `, 1), Reason: ingest.ReasonBadField},
		{Name: "unknown trailing fields", In: strings.Replace(valid, ` [default-web-8080] [] `, ` default-web-8080 `, 1), Reason: ingest.ReasonBadField},
		{Name: "missing req_id", In: valid[:strings.LastIndexByte(valid, ' ')], Reason: ingest.ReasonBadField},
	})
}

func TestMaxRecordBytesNGINX(t *testing.T) {
	ingesttest.InFormatDir(t, NGINXFormat)
	raw := ingesttest.Line(t, "elastic-nginx-access-combined.log", 1)
	d := &NGINXDecoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}
