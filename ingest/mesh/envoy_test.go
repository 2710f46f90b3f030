package mesh

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestGolden(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	ingesttest.Golden(t, ingesttest.ExactlyOne(New()))
}

// TestDecode checks the fields the detectors depend on, record by record.
func TestDecode(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	const istio = "elastic-istio-access-logs-json.ndjson"
	const gateway = "crowdsec-hub-envoy-gateway-json-cri.log"
	runDecodeCases(t, New(), []decodeCase{
		{
			name: "istio inbound without principals falls back to the source IP", file: istio, line: 1,
			want: want{
				id:       "envoy:9fcc7101-13bd-9753-98d6-820806088d9d:inbound:2022-09-08T12:51:05.656Z",
				identity: schemas.Identity{ID: "ip:10.124.0.13", Kind: schemas.KindUnknown},
				action:   "GET /reviews/{id}", service: "reviews", result: schemas.ResultSuccess,
				ip: "10.124.0.13", time: "2022-09-08T12:51:05.656Z",
				resource: "reviews.default.svc.cluster.local", provider: "istio",
				userAgent: "curl/7.79.1", status: 200, bytesOut: 358, durationMS: 15,
			},
		},
		{
			name: "IPv6 source address loses its brackets and port", file: istio, line: 2,
			want: want{
				id:       "envoy:9fcc7101-13bd-9753-98d6-820806088d9d:inbound:2022-09-08T12:51:05.656Z",
				identity: schemas.Identity{ID: "ip:2a02:cf40::4e36", Kind: schemas.KindUnknown},
				action:   "GET /reviews/{id}", service: "reviews", result: schemas.ResultSuccess,
				ip: "2a02:cf40::4e36", time: "2022-09-08T12:51:05.656Z",
			},
		},
		{
			name: "codec error: no method, no request id", file: istio, line: 3,
			want: want{
				identity: schemas.Identity{ID: "ip:10.128.0.60", Kind: schemas.KindUnknown},
				action:   "http", result: schemas.ResultSuccess, errorCode: "http1.codec_error",
				ip: "10.128.0.60", time: "2022-09-01T09:36:33.553Z", status: 400,
			},
		},
		{
			name: "envoy gateway in a CRI wrapper, :authority key", file: gateway, line: 1,
			want: want{
				id:       "envoy:3bbc0252-2d5c-49fe-bd89-104e9b61770b:outbound:2025-12-31T16:37:40.479Z",
				identity: schemas.Identity{ID: "ip:10.0.0.12", Kind: schemas.KindUnknown},
				action:   "GET /assets/image.webp", service: "www.example.com", result: schemas.ResultSuccess,
				ip: "10.0.0.12", time: "2025-12-31T16:37:40.479Z",
				resource: "httproute/app/app-www-example-com/rule/0", provider: "envoy-gateway",
				bytesOut: 121258, durationMS: 11,
			},
		},
		{
			name: "envoy gateway header-named keys", file: gateway, line: 3,
			want: want{
				id:       "envoy:fff03852-5ae8-468b-a528-434d095ddc49:outbound:2025-12-31T17:30:03.228Z",
				identity: schemas.Identity{ID: "ip:172.16.2.33", Kind: schemas.KindUnknown},
				action:   "HEAD /.env", service: "foo.example.com", result: schemas.ResultSuccess,
				ip: "172.16.2.33", time: "2025-12-31T17:30:03.228Z", userAgent: "curl/8.5.0", status: 404,
			},
		},
		{
			name: "envoy gateway IPv6 remote address preferred over X-Forwarded-For", file: gateway, line: 8,
			want: want{
				id:       "envoy:multi-ip-v6-test-id:outbound:2026-01-24T01:36:00.000Z",
				identity: schemas.Identity{ID: "ip:fd00:1234:5678::1", Kind: schemas.KindUnknown},
				action:   "POST /api/create", service: "proxy6.example.com", result: schemas.ResultSuccess,
				ip: "fd00:1234:5678::1", time: "2026-01-24T01:36:00.000Z", status: 201, bytesOut: 1024,
			},
		},
		{
			name: "no downstream address: first X-Forwarded-For hop",
			in:   `{"start_time":"2024-05-04T09:59:05Z","method":"GET","path":"/x","response_code":200,"x-forwarded-for":"[2001:db8::7]:443, 10.0.0.1"}`,
			want: want{
				identity: schemas.Identity{ID: "ip:2001:db8::7", Kind: schemas.KindUnknown},
				action:   "GET /x", result: schemas.ResultSuccess,
				ip: "2001:db8::7", time: "2024-05-04T09:59:05.000Z",
			},
		},
		{
			name: "inbound: the caller is the downstream peer", file: "principals.ndjson", line: 1,
			want: want{
				id:       "envoy:0f5a3c1e-6b2d-4c8e-9a71-2d3e4f5a6b7c:inbound:2024-05-04T09:59:05.027Z",
				identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload},
				peer:     "spiffe://cluster.local/ns/default/sa/curl",
				target:   "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
				action:   "GET /api/v1/products/{id}/reviews", service: "productpage", result: schemas.ResultSuccess,
				ip: "10.244.1.12", time: "2024-05-04T09:59:05.027Z", namespace: "default",
			},
		},
		{
			name: "outbound: the caller is the local workload", file: "principals.ndjson", line: 2,
			want: want{
				id:       "envoy:0f5a3c1e-6b2d-4c8e-9a71-2d3e4f5a6b7c:outbound:2024-05-04T09:59:05.026Z",
				identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload},
				target:   "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
				action:   "GET /api/v1/products/{id}/reviews", service: "productpage", result: schemas.ResultSuccess,
				ip: "10.244.1.12", time: "2024-05-04T09:59:05.026Z",
			},
		},
		{
			name: "RBAC denial", file: "principals.ndjson", line: 3,
			want: want{
				id:       "envoy:8c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f:inbound:2024-05-04T10:11:04.964Z",
				identity: schemas.Identity{ID: "spiffe://cluster.local/ns/sandbox/sa/default", Kind: schemas.KindWorkload},
				peer:     "spiffe://cluster.local/ns/sandbox/sa/default",
				target:   "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
				action:   "DELETE /reviews/{id}", service: "reviews", result: schemas.ResultDenied,
				errorCode: "rbac_access_denied_matched_policy[none]",
				ip:        "10.244.2.31", time: "2024-05-04T10:11:04.964Z", status: 403,
			},
		},
		{
			name: "ext_authz denial, UUID in the path", file: "principals.ndjson", line: 4,
			want: want{
				id:       "envoy:a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d:inbound:2024-05-04T10:11:04.969Z",
				identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload},
				peer:     "spiffe://cluster.local/ns/default/sa/curl",
				target:   "spiffe://cluster.local/ns/prod/sa/payments",
				action:   "POST /v1/payments/{id}/refund", service: "payments.prod", result: schemas.ResultDenied,
				errorCode: "ext_authz_denied",
				ip:        "10.244.1.12", time: "2024-05-04T10:11:04.969Z",
			},
		},
		{
			name: "TCP with Istio source/destination principals", file: "principals.ndjson", line: 5,
			want: want{
				identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload},
				target:   "spiffe://cluster.local/ns/db/sa/postgres",
				action:   "tcp", result: schemas.ResultSuccess,
				ip: "10.244.1.12", time: "2024-05-04T10:11:04.974Z",
			},
		},
		{
			name: "503 upstream failure, SPIFFE ID second of two URI SANs", file: "principals.ndjson", line: 6,
			want: want{
				id:       "envoy:56446678-64f3-9fbf-9c4a-eca01fafba4d:outbound:2024-05-04T10:11:04.979Z",
				identity: schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/bookinfo-reviews", Kind: schemas.KindWorkload},
				target:   "spiffe://cluster.local/ns/default/sa/bookinfo-ratings",
				action:   "GET /ratings/{id}", service: "ratings", result: schemas.ResultFailure,
				errorCode: "upstream_reset_before_response_started{connection_failure}",
				ip:        "10.244.1.9", time: "2024-05-04T10:11:04.979Z", status: 503,
			},
		},
	})
}

func TestDecodeErrors(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	valid := string(ingesttest.Line(t, "principals.ndjson", 1))
	ingesttest.Errors(t, New(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonInvalidJSON},
		{Name: "whitespace", In: " \n", Reason: ingest.ReasonInvalidJSON},
		{Name: "truncated", In: valid[:len(valid)/2], Reason: ingest.ReasonInvalidJSON},
		{Name: "trailing garbage", In: valid + "x", Reason: ingest.ReasonInvalidJSON},
		{Name: "text format line", In: `[2022-06-22T10:17:14.118Z] "GET /status/418 HTTP/1.1" 503 UH`, Reason: ingest.ReasonNotAnEvent},
		{Name: "text format line in a CRI wrapper", In: `2026-01-24T01:37:00.000000000+00:00 stdout F [2026-01-24T01:37:00.000Z] "GET /api/proxy HTTP/1.1" 200 - 0 512 30 15 "-" "-" "-" "-" "-"`, Reason: ingest.ReasonNotAnEvent},
		{Name: "not an object", In: `["a"]`, Reason: ingest.ReasonNotAnEvent},
		{Name: "null", In: `null`, Reason: ingest.ReasonNotAnEvent},
		{Name: "invalid UTF-8", In: `{"start_time":"2024-05-04T09:59:05Z","user_agent":"` + "\xff\xfe" + `"}`, Reason: ingest.ReasonInvalidUTF8},
		{Name: "invalid UTF-8 in a Docker wrapper", In: `{"log":"{\"start_time\":\"2024-05-04T09:59:05Z\",\"user_agent\":\"` + "\xff" + `\"}","stream":"stdout"}`, Reason: ingest.ReasonInvalidUTF8},
		{Name: "too deep", In: `{"a":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`, Reason: ingest.ReasonTooDeep},
		{Name: "response_code object", In: strings.Replace(valid, `"response_code":200`, `"response_code":{"v":200}`, 1), Reason: ingest.ReasonBadField},
		{Name: "response_code string", In: strings.Replace(valid, `"response_code":200`, `"response_code":"200"`, 1), Reason: ingest.ReasonBadField},
		{Name: "response_code out of range", In: strings.Replace(valid, `"response_code":200`, `"response_code":70000`, 1), Reason: ingest.ReasonBadField},
		{Name: "bytes overflow", In: strings.Replace(valid, `"bytes_sent":5293`, `"bytes_sent":184467440737095516150`, 1), Reason: ingest.ReasonBadField},
		{Name: "negative bytes", In: strings.Replace(valid, `"bytes_sent":5293`, `"bytes_sent":-1`, 1), Reason: ingest.ReasonBadField},
		{Name: "duration overflow", In: strings.Replace(valid, `"duration":12`, `"duration":1e999`, 1), Reason: ingest.ReasonBadField},
		{Name: "no start_time", In: strings.Replace(valid, `"start_time":"2024-05-04T09:59:05.027Z"`, `"start_time":null`, 1), Reason: ingest.ReasonMissingField},
		{Name: "bad start_time", In: strings.Replace(valid, `2024-05-04T09:59:05.027Z`, `04/May/2024:09:59:05`, 1), Reason: ingest.ReasonBadField},
		{Name: "invalid SPIFFE ID", In: strings.Replace(valid, `spiffe://cluster.local/ns/default/sa/curl`, `spiffe://Cluster.local/ns/../sa/curl`, 1), Reason: ingest.ReasonBadField},
		{Name: "no principal and no address", In: `{"start_time":"2024-05-04T09:59:05Z","downstream_remote_address":"envoy://internal"}`, Reason: ingest.ReasonMissingField},
		{Name: "X-Forwarded-For not an address", In: `{"start_time":"2024-05-04T09:59:05Z","x_forwarded_for":"unknown"}`, Reason: ingest.ReasonMissingField},
	})
}

func TestMaxRecordBytes(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	d := New()
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, ingesttest.Line(t, "principals.ndjson", 1))
	// The limit applies to the record as read, wrapper included.
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, ingesttest.Line(t, "crowdsec-hub-envoy-gateway-json-cri.log", 1))
}

// TestDecodeAppends checks the Decoder contract: events are appended to dst
// and a failed record leaves dst as it was.
func TestDecodeAppends(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	ingesttest.Appends(t, ingesttest.ExactlyOne(New()), ingesttest.Line(t, "principals.ndjson", 1))
}

func FuzzDecode(f *testing.F) {
	ingesttest.InFormatDir(f, Format)
	ingesttest.Fuzz(f, ingesttest.ExactlyOne(New()),
		[]byte(`{"start_time":"2024-05-04T09:59:05Z","upstream_cluster":"inbound|1||","downstream_peer_uri_san":"spiffe://a/b"}`))
}

func BenchmarkDecode(b *testing.B) {
	ingesttest.InFormatDir(b, Format)
	ingesttest.Bench(b, New())
}
