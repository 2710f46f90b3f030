package mesh

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestGoldenEnvoyText(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEnvoyText)
	ingesttest.Golden(t, ingesttest.ExactlyOne(NewEnvoyText()))
}

func TestDecodeEnvoyText(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEnvoyText)
	const (
		envoy   = "elastic-envoyproxy-test-log.log"
		istio   = "elastic-istio-access-logs-text.log"
		failed  = "elastic-istio-access-logs-failed.log"
		gateway = "crowdsec-hub-envoy-gateway-json-cri.log"
	)
	chrome := "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/104.0.5112.102 Safari/537.36"
	runDecodeCases(t, NewEnvoyText(), []decodeCase{
		{
			name: "envoy default format: caller from X-Forwarded-For", file: envoy, line: 4,
			want: want{
				id:       "envoy:078d1daa-b786-4d6d-85a5-7e4366adaa19:outbound:2019-04-11T00:51:07.980Z",
				identity: schemas.Identity{ID: "ip:172.17.0.3", Kind: schemas.KindUnknown},
				action:   "GET /elastic/", service: "www.elastic.co", result: schemas.ResultSuccess,
				ip: "172.17.0.3", time: "2019-04-11T00:51:07.980Z",
				userAgent: "curl/7.59.0", status: 301, durationMS: 41,
			},
		},
		{
			name: "envoy default format: no route is a 404 with the flag as error code", file: envoy, line: 3,
			want: want{
				id:       "envoy:58436667-bf70-4fd0-9fe9-cdadadecfd55:outbound:2019-04-11T00:31:55.439Z",
				identity: schemas.Identity{ID: "ip:172.17.0.3", Kind: schemas.KindUnknown},
				action:   "GET /elastic", service: "192.168.99.107", result: schemas.ResultSuccess, errorCode: "NR",
				ip: "172.17.0.3", time: "2019-04-11T00:31:55.439Z", status: 404,
			},
		},
		{
			name: "Ambassador ACCESS prefix", file: envoy, line: 5,
			want: want{
				id:       "envoy:b7ba9b4c-f4b7-47c2-9718-c23aa1465f49:outbound:2024-04-25T17:51:55.294Z",
				identity: schemas.Identity{ID: "ip:192.168.0.9", Kind: schemas.KindUnknown},
				action:   "GET /backend/", service: "localhost", result: schemas.ResultSuccess,
				ip: "192.168.0.9", time: "2024-04-25T17:51:55.294Z", provider: "ambassador", bytesOut: 141,
			},
		},
		{
			name: "Ambassador line in a Kubernetes collector wrapper, 501", file: envoy, line: 6,
			want: want{
				id:       "envoy:413bf460-bd56-4515-ada4-2a69c5e78e54:outbound:2019-04-10T03:49:34.451Z",
				identity: schemas.Identity{ID: "ip:172.17.0.3", Kind: schemas.KindUnknown},
				action:   "GET /httpbin/status/{id}", service: "httpbin.org", result: schemas.ResultFailure,
				ip: "172.17.0.3", time: "2019-04-10T03:49:34.451Z", provider: "ambassador", status: 501, durationMS: 180,
			},
		},
		{
			name: "envoy TCP line with an X-Forwarded-For cannot happen, but TCP is tcp",
			in:   `[2019-04-08T16:50:12.533Z] "- - -" 0 - 87 254 4 - "10.1.2.3" "-" "-" "-" "172.27.0.2:80"`,
			want: want{
				identity: schemas.Identity{ID: "ip:10.1.2.3", Kind: schemas.KindUnknown},
				action:   "tcp", result: schemas.ResultSuccess,
				ip: "10.1.2.3", time: "2019-04-08T16:50:12.533Z", bytesIn: 87, bytesOut: 254, durationMS: 4,
			},
		},
		{
			name: "envoy gateway CRI-wrapped text, IPv6 X-Forwarded-For in brackets", file: gateway, line: 5,
			want: want{
				id:       "envoy:test-request-id:outbound:2026-01-24T01:34:36.743Z",
				identity: schemas.Identity{ID: "ip:fd00:1234:5678::5a24", Kind: schemas.KindUnknown},
				action:   "GET /test", service: "example.com", result: schemas.ResultSuccess,
				ip: "fd00:1234:5678::5a24", time: "2026-01-24T01:34:36.743Z", bytesOut: 256, durationMS: 50,
			},
		},
		{
			name: "X-Forwarded-For list: the first hop", file: gateway, line: 9,
			want: want{
				id:       "envoy:multi-ip-clf-v4:outbound:2026-01-24T01:37:00.000Z",
				identity: schemas.Identity{ID: "ip:192.168.1.100", Kind: schemas.KindUnknown},
				action:   "GET /api/proxy", service: "proxy.example.com", result: schemas.ResultSuccess,
				ip: "192.168.1.100", time: "2026-01-24T01:37:00.000Z",
			},
		},
		{
			name: "istio inbound: caller is the downstream remote address", file: istio, line: 1,
			want: want{
				id:       "envoy:785918d6-06b6-9312-bf77-6d9bd968dc21:inbound:2022-07-20T09:52:24.955Z",
				identity: schemas.Identity{ID: "ip:10.68.1.7", Kind: schemas.KindUnknown},
				action:   "GET /details/{id}", service: "details", result: schemas.ResultSuccess,
				ip: "10.68.1.7", time: "2022-07-20T09:52:24.955Z",
				resource: "details.default.svc.cluster.local", provider: "istio", status: 200, bytesOut: 178, durationMS: 2,
			},
		},
		{
			name: "istio outbound: service from the upstream cluster", file: istio, line: 4,
			want: want{
				id:       "envoy:00bcf1d7-12c4-93b9-b36a-bc0faac8e428:outbound:2022-08-22T13:08:23.188Z",
				identity: schemas.Identity{ID: "ip:10.124.2.6", Kind: schemas.KindUnknown},
				action:   "GET /reviews/{id}", service: "reviews", result: schemas.ResultSuccess,
				ip: "10.124.2.6", time: "2022-08-22T13:08:23.188Z", resource: "reviews.default.svc.cluster.local",
			},
		},
		{
			name: "istio IPv6 downstream address", file: istio, line: 8,
			want: want{
				id:       "envoy:72f12c1b-8a44-9a62-b28e-2296da5b1118:inbound:2022-08-22T13:20:22.460Z",
				identity: schemas.Identity{ID: "ip:2a02:cf40::4e36", Kind: schemas.KindUnknown},
				action:   "GET /ratings/{id}", service: "ratings", result: schemas.ResultSuccess,
				ip: "2a02:cf40::4e36", time: "2022-08-22T13:20:22.460Z",
			},
		},
		{
			name: "istio no healthy upstream", file: failed, line: 1,
			want: want{
				id:       "envoy:5735b2d0-4949-9384-b082-9d4c368eb9dc:outbound:2022-06-22T10:17:14.118Z",
				identity: schemas.Identity{ID: "ip:172.17.0.6", Kind: schemas.KindUnknown},
				action:   "GET /status/{id}", service: "httpbin", result: schemas.ResultFailure, errorCode: "no_healthy_upstream",
				ip: "172.17.0.6", time: "2022-06-22T10:17:14.118Z", resource: "httpbin.default.svc.cluster.local", status: 503,
			},
		},
		{
			name: "istio codec error", file: failed, line: 5,
			want: want{
				identity: schemas.Identity{ID: "ip:10.128.0.60", Kind: schemas.KindUnknown},
				action:   "http", result: schemas.ResultSuccess, errorCode: "http1.codec_error",
				ip: "10.128.0.60", time: "2022-09-01T09:36:33.553Z", status: 400, bytesOut: 11, durationMS: 46,
			},
		},
		{
			name: "istio inbound connection failure", file: failed, line: 7,
			want: want{
				id:       "envoy:56446678-64f3-9fbf-9c4a-eca01fafba4d:inbound:2022-09-01T13:15:09.085Z",
				identity: schemas.Identity{ID: "ip:10.124.1.6", Kind: schemas.KindUnknown},
				action:   "GET /reviews/{id}", service: "reviews", result: schemas.ResultFailure,
				errorCode: "upstream_reset_before_response_started{connection_failure,delayed_connect_error:_111}",
				ip:        "10.124.1.6", time: "2022-09-01T13:15:09.085Z", userAgent: chrome,
				resource: "reviews.default.svc.cluster.local",
			},
		},
		{
			name: "istio downstream disconnect: status 0 is a failure", file: failed, line: 8,
			want: want{
				id:       "envoy:2dc64af2-bd13-9962-819e-0b72064e7909:inbound:2022-09-01T13:08:55.358Z",
				identity: schemas.Identity{ID: "ip:10.128.0.60", Kind: schemas.KindUnknown},
				action:   "GET /productpage", service: "35.232.196.88", result: schemas.ResultFailure, errorCode: "downstream_remote_disconnect",
				ip: "10.128.0.60", time: "2022-09-01T13:08:55.358Z", durationMS: 746,
			},
		},
		{
			name: "RBAC denial in Istio's text format",
			in:   `[2024-05-04T10:11:04.964Z] "GET /reviews/1 HTTP/1.1" 403 - rbac_access_denied_matched_policy[none] - "-" 0 19 0 - "-" "curl/8.7.1" "8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f" "reviews:9080" "-" inbound|9080|| - 10.244.1.9:9080 10.244.2.31:41234 outbound_.9080_._.reviews.default.svc.cluster.local -`,
			want: want{
				id:       "envoy:8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f:inbound:2024-05-04T10:11:04.964Z",
				identity: schemas.Identity{ID: "ip:10.244.2.31", Kind: schemas.KindUnknown},
				action:   "GET /reviews/{id}", service: "reviews", result: schemas.ResultDenied,
				errorCode: "rbac_access_denied_matched_policy[none]",
				ip:        "10.244.2.31", time: "2024-05-04T10:11:04.964Z", status: 403,
			},
		},
		{
			name: "quote inside the User-Agent (not followed by a space)",
			in:   `[2019-04-11T00:51:07.980Z] "GET / HTTP/1.1" 200 - 0 0 1 1 "10.0.0.1" "evil"agent" "-" "a:80" "-"`,
			want: want{
				identity: schemas.Identity{ID: "ip:10.0.0.1", Kind: schemas.KindUnknown},
				action:   "GET /", service: "a", result: schemas.ResultSuccess,
				ip: "10.0.0.1", time: "2019-04-11T00:51:07.980Z", userAgent: `evil"agent`,
			},
		},
	})
}

func TestDecodeEnvoyTextErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEnvoyText)
	valid := string(ingesttest.Line(t, "elastic-istio-access-logs-text.log", 1))
	envoy := string(ingesttest.Line(t, "elastic-envoyproxy-test-log.log", 4))
	ingesttest.Errors(t, NewEnvoyText(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonNotAnEvent},
		{Name: "whitespace", In: " \n", Reason: ingest.ReasonNotAnEvent},
		{Name: "truncated", In: valid[:len(valid)/2], Reason: ingest.ReasonBadField},
		{Name: "truncated in the request", In: valid[:40], Reason: ingest.ReasonBadField},
		{Name: "one field missing", In: valid[:strings.LastIndexByte(valid, ' ')], Reason: ingest.ReasonBadField},
		{Name: "one field too many", In: valid + " extra", Reason: ingest.ReasonBadField},
		{Name: "JSON line", In: `{"start_time":"2024-05-04T09:59:05Z"}`, Reason: ingest.ReasonNotAnEvent},
		{Name: "envoy application log", In: `[2024-05-04 09:59:05.027][1][info][main] [source/server/server.cc:923] starting main dispatch loop`, Reason: ingest.ReasonNotAnEvent},
		{Name: "envoy application log, bracket level", In: `[info][main] starting`, Reason: ingest.ReasonNotAnEvent},
		{Name: "not a log line", In: `hello world`, Reason: ingest.ReasonNotAnEvent},
		{Name: "invalid UTF-8", In: strings.Replace(envoy, "curl/7.59.0", "curl/\xff\xfe", 1), Reason: ingest.ReasonInvalidUTF8},
		{Name: "invalid UTF-8 in a Docker wrapper", In: `{"log":"` + "\xff" + `","stream":"stdout"}`, Reason: ingest.ReasonInvalidUTF8},
		{Name: "deep Docker wrapper", In: `{"log":"x","stream":"stdout","k":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`, Reason: ingest.ReasonTooDeep},
		{Name: "bad start time", In: strings.Replace(envoy, "2019-04-11T00:51:07.980Z", "2019-04-11 00:51:07", 1), Reason: ingest.ReasonBadField},
		{Name: "response code not a number", In: strings.Replace(envoy, `" 301 -`, `" abc -`, 1), Reason: ingest.ReasonBadField},
		{Name: "response code out of range", In: strings.Replace(envoy, `" 301 -`, `" 70000 -`, 1), Reason: ingest.ReasonBadField},
		{Name: "bytes overflow", In: strings.Replace(envoy, `- 0 0 41 39`, `- 0 184467440737095516150 41 39`, 1), Reason: ingest.ReasonBadField},
		{Name: "negative bytes", In: strings.Replace(envoy, `- 0 0 41 39`, `- -1 0 41 39`, 1), Reason: ingest.ReasonBadField},
		{Name: "duration not a number", In: strings.Replace(envoy, `- 0 0 41 39`, `- 0 0 4.1 39`, 1), Reason: ingest.ReasonBadField},
		{Name: "quoted where bare expected", In: strings.Replace(envoy, `- 0 0 41 39`, `"-" 0 0 41 39`, 1), Reason: ingest.ReasonBadField},
		{Name: "request of two words", In: strings.Replace(envoy, `"GET /elastic/ HTTP/1.1"`, `"GET /elastic/"`, 1), Reason: ingest.ReasonBadField},
		{Name: "unclosed quote", In: `[2019-04-11T00:51:07.980Z] "GET / HTTP/1.1`, Reason: ingest.ReasonBadField},
		{Name: "no address to identify the caller", In: string(ingesttest.Line(t, "elastic-envoyproxy-test-log.log", 2)), Reason: ingest.ReasonMissingField},
		{Name: "TCP without any address", In: string(ingesttest.Line(t, "elastic-envoyproxy-test-log.log", 1)), Reason: ingest.ReasonMissingField},
	})
}

func TestMaxRecordBytesEnvoyText(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEnvoyText)
	d := NewEnvoyText()
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, ingesttest.Line(t, "elastic-istio-access-logs-text.log", 1))
}

func TestDecodeAppendsEnvoyText(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEnvoyText)
	ingesttest.Appends(t, ingesttest.ExactlyOne(NewEnvoyText()), ingesttest.Line(t, "elastic-istio-access-logs-text.log", 1))
}

func FuzzDecodeEnvoyText(f *testing.F) {
	ingesttest.InFormatDir(f, FormatEnvoyText)
	ingesttest.Fuzz(f, ingesttest.ExactlyOne(NewEnvoyText()),
		[]byte(`ACCESS [2019-04-06T06:20:05.972Z] "- - -" 0 UF,URX 0 0 0 - "10.0.0.1" "-" "-" "-" "127.0.0.1:9200"`))
}

func BenchmarkDecodeEnvoyText(b *testing.B) {
	ingesttest.InFormatDir(b, FormatEnvoyText)
	ingesttest.Bench(b, NewEnvoyText())
}
