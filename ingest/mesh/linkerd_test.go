package mesh

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	linkerdJSON   = "linkerd-website-access-log-json.ndjson"
	linkerdApache = "linkerd-website-access-log-apache.log"
)

var linkerdTraffic = schemas.Identity{ID: "spiffe://cluster.local/ns/booksapp/sa/traffic", Kind: schemas.KindWorkload, Name: "booksapp/traffic"}

func TestGoldenLinkerdJSON(t *testing.T) {
	ingesttest.InFormatDir(t, FormatLinkerdJSON)
	ingesttest.Golden(t, ingesttest.ExactlyOne(NewLinkerdJSON()))
}

func TestGoldenLinkerdText(t *testing.T) {
	ingesttest.InFormatDir(t, FormatLinkerdText)
	ingesttest.Golden(t, ingesttest.ExactlyOne(NewLinkerdText()))
}

func TestDecodeLinkerdJSON(t *testing.T) {
	ingesttest.InFormatDir(t, FormatLinkerdJSON)
	runDecodeCases(t, NewLinkerdJSON(), []decodeCase{
		{
			name: "client.id maps to the SPIFFE ID", file: linkerdJSON, line: 3,
			want: want{
				identity: linkerdTraffic, peer: linkerdTraffic.ID,
				action: "GET /authors/{id}", service: "webapp", result: schemas.ResultSuccess,
				ip: "10.42.0.70", time: "2022-08-23T20:33:42.551Z", provider: "linkerd",
				userAgent: "Go-http-client/1.1", namespace: "booksapp",
				status: 200, bytesOut: 2350, durationMS: 6.998222,
			},
		},
		{
			name: "POST with request bytes", file: linkerdJSON, line: 2,
			want: want{
				identity: linkerdTraffic, peer: linkerdTraffic.ID,
				action: "POST /authors", service: "webapp", result: schemas.ResultSuccess,
				ip: "10.42.0.70", time: "2022-08-23T20:33:42.436Z", status: 303, bytesIn: 33,
			},
		},
		{
			name: "no client id: the probe's address", file: linkerdJSON, line: 5,
			want: want{
				identity: schemas.Identity{ID: "ip:10.42.0.1", Kind: schemas.KindUnknown},
				action:   "GET /ping", service: "10.42.0.69", result: schemas.ResultSuccess,
				ip: "10.42.0.1", time: "2022-08-23T20:33:49.254Z", userAgent: "kube-probe/1.24", bytesOut: 4,
			},
		},
		{
			name: "numbers as numbers, dotted service account, other trust domain, 403",
			in:   `{"client.addr":"[fd00::1]:4000","client.id":"my.sa.payments.serviceaccount.identity.linkerd.prod.example","host":"api:80","method":"DELETE","uri":"/v1/payments/8812","status":403,"timestamp":"2024-01-02T03:04:05Z","total_ns":2000000,"request_bytes":1,"response_bytes":2}`,
			want: want{
				identity: schemas.Identity{ID: "spiffe://prod.example/ns/payments/sa/my.sa", Kind: schemas.KindWorkload, Name: "payments/my.sa"},
				peer:     "spiffe://prod.example/ns/payments/sa/my.sa",
				action:   "DELETE /v1/payments/{id}", service: "api", result: schemas.ResultDenied,
				ip: "fd00::1", time: "2024-01-02T03:04:05.000Z", status: 403, bytesIn: 1, bytesOut: 2, durationMS: 2,
			},
		},
	})
}

func TestDecodeLinkerdText(t *testing.T) {
	ingesttest.InFormatDir(t, FormatLinkerdText)
	runDecodeCases(t, NewLinkerdText(), []decodeCase{
		{
			name: "client id and absolute URI", file: linkerdApache, line: 3,
			want: want{
				identity: linkerdTraffic, peer: linkerdTraffic.ID,
				action: "GET /authors/{id}", service: "webapp", result: schemas.ResultSuccess,
				ip: "10.42.0.63", time: "2022-08-23T20:28:20.301Z", provider: "linkerd", namespace: "booksapp", status: 200,
			},
		},
		{
			name: "no client id, path URI", file: linkerdApache, line: 5,
			want: want{
				identity: schemas.Identity{ID: "ip:10.42.0.1", Kind: schemas.KindUnknown},
				action:   "GET /ping", result: schemas.ResultSuccess,
				ip: "10.42.0.1", time: "2022-08-23T20:28:23.049Z",
			},
		},
		{
			name: "Apache time, response size, 503",
			in:   `10.42.0.63:51160 traffic.booksapp.serviceaccount.identity.linkerd.cluster.local - [23/Aug/2022:20:28:20 +0000] "GET http://webapp:7000 HTTP/2.0" 503 17`,
			want: want{
				identity: linkerdTraffic, peer: linkerdTraffic.ID,
				action: "GET /", service: "webapp", result: schemas.ResultFailure,
				ip: "10.42.0.63", time: "2022-08-23T20:28:20.000Z", status: 503, bytesOut: 17,
			},
		},
	})
}

func TestDecodeLinkerdJSONErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatLinkerdJSON)
	valid := string(ingesttest.Line(t, linkerdJSON, 1))
	ingesttest.Errors(t, NewLinkerdJSON(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonInvalidJSON},
		{Name: "truncated", In: valid[:len(valid)/2], Reason: ingest.ReasonInvalidJSON},
		{Name: "apache line", In: `10.42.0.1:43682 - - [2022-08-23T20:28:23.049685223Z] "GET /ping HTTP/1.1" 200`, Reason: ingest.ReasonInvalidJSON},
		{Name: "not an object", In: `[1]`, Reason: ingest.ReasonNotAnEvent},
		{Name: "another app's JSON log", In: `{"level":"info","msg":"started"}`, Reason: ingest.ReasonNotAnEvent},
		{Name: "invalid UTF-8", In: strings.Replace(valid, "Go-http-client/1.1", "\xff\xfe", 1), Reason: ingest.ReasonInvalidUTF8},
		{Name: "too deep", In: `{"a":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`, Reason: ingest.ReasonTooDeep},
		{Name: "status string", In: strings.Replace(valid, `"status":200`, `"status":"200"`, 1), Reason: ingest.ReasonBadField},
		{Name: "status out of range", In: strings.Replace(valid, `"status":200`, `"status":70000`, 1), Reason: ingest.ReasonBadField},
		{Name: "bytes overflow", In: strings.Replace(valid, `"response_bytes":"19627"`, `"response_bytes":"184467440737095516150"`, 1), Reason: ingest.ReasonBadField},
		{Name: "negative bytes", In: strings.Replace(valid, `"response_bytes":"19627"`, `"response_bytes":-1`, 1), Reason: ingest.ReasonBadField},
		{Name: "total_ns object", In: strings.Replace(valid, `"total_ns":"14441135"`, `"total_ns":{}`, 1), Reason: ingest.ReasonBadField},
		{Name: "no timestamp", In: strings.Replace(valid, `"timestamp":"2022-08-23T20:33:42.321746212Z",`, ``, 1), Reason: ingest.ReasonMissingField},
		{Name: "bad timestamp", In: strings.Replace(valid, `2022-08-23T20:33:42.321746212Z`, `yesterday`, 1), Reason: ingest.ReasonBadField},
		{Name: "no method", In: strings.Replace(valid, `"method":"GET",`, ``, 1), Reason: ingest.ReasonMissingField},
		{Name: "client.id not a Linkerd identity", In: strings.Replace(valid, `traffic.booksapp.serviceaccount.identity.linkerd.cluster.local`, `traffic.booksapp`, 1), Reason: ingest.ReasonBadField},
		{Name: "client.id without namespace", In: strings.Replace(valid, `traffic.booksapp.serviceaccount`, `traffic.serviceaccount`, 1), Reason: ingest.ReasonBadField},
		{Name: "client.id with an invalid trust domain", In: strings.Replace(valid, `linkerd.cluster.local`, `linkerd.Cluster/x`, 1), Reason: ingest.ReasonBadField},
		{Name: "no client id and no address", In: strings.Replace(strings.Replace(valid, `"client.addr":"10.42.0.70:32996",`, ``, 1), `"client.id":"traffic.booksapp.serviceaccount.identity.linkerd.cluster.local"`, `"client.id":"-"`, 1), Reason: ingest.ReasonMissingField},
	})
}

func TestDecodeLinkerdTextErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatLinkerdText)
	valid := string(ingesttest.Line(t, linkerdApache, 1))
	ingesttest.Errors(t, NewLinkerdText(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonNotAnEvent},
		{Name: "truncated", In: valid[:len(valid)/2], Reason: ingest.ReasonNotAnEvent},
		{Name: "truncated after the time", In: valid[:strings.IndexByte(valid, ']')+8], Reason: ingest.ReasonBadField},
		{Name: "JSON line", In: `{"client.addr":"10.42.0.70:32996"}`, Reason: ingest.ReasonNotAnEvent},
		{Name: "proxy log line", In: `[     0.002s]  INFO ThreadId(01) linkerd2_proxy: release 2.180.0`, Reason: ingest.ReasonNotAnEvent},
		{Name: "invalid UTF-8", In: strings.Replace(valid, "webapp", "\xff\xfe", 1), Reason: ingest.ReasonInvalidUTF8},
		{Name: "status not a number", In: strings.Replace(valid, `" 200`, `" OK`, 1), Reason: ingest.ReasonBadField},
		{Name: "status out of range", In: strings.Replace(valid, `" 200`, `" 70000`, 1), Reason: ingest.ReasonBadField},
		{Name: "bytes overflow", In: valid + " 184467440737095516150", Reason: ingest.ReasonBadField},
		{Name: "request of two words", In: strings.Replace(valid, ` HTTP/2.0"`, `"`, 1), Reason: ingest.ReasonBadField},
		{Name: "bad timestamp", In: strings.Replace(valid, `2022-08-23T20:28:20.071809491Z`, `now`, 1), Reason: ingest.ReasonBadField},
		{Name: "empty timestamp", In: strings.Replace(valid, `2022-08-23T20:28:20.071809491Z`, ``, 1), Reason: ingest.ReasonMissingField},
		{Name: "client.id not a Linkerd identity", In: strings.Replace(valid, `traffic.booksapp.serviceaccount.identity.linkerd.cluster.local`, `someone`, 1), Reason: ingest.ReasonBadField},
		{Name: "no client id and no address", In: strings.Replace(strings.Replace(valid, `10.42.0.63:51160`, `-`, 1), `traffic.booksapp.serviceaccount.identity.linkerd.cluster.local`, `-`, 1), Reason: ingest.ReasonMissingField},
	})
}

func TestMaxRecordBytesLinkerd(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		ingesttest.InFormatDir(t, FormatLinkerdJSON)
		d := NewLinkerdJSON()
		ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, ingesttest.Line(t, linkerdJSON, 1))
	})
	t.Run("text", func(t *testing.T) {
		ingesttest.InFormatDir(t, FormatLinkerdText)
		d := NewLinkerdText()
		ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, ingesttest.Line(t, linkerdApache, 1))
	})
}

func TestDecodeAppendsLinkerd(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		ingesttest.InFormatDir(t, FormatLinkerdJSON)
		ingesttest.Appends(t, ingesttest.ExactlyOne(NewLinkerdJSON()), ingesttest.Line(t, linkerdJSON, 1))
	})
	t.Run("text", func(t *testing.T) {
		ingesttest.InFormatDir(t, FormatLinkerdText)
		ingesttest.Appends(t, ingesttest.ExactlyOne(NewLinkerdText()), ingesttest.Line(t, linkerdApache, 1))
	})
}

func FuzzDecodeLinkerdJSON(f *testing.F) {
	ingesttest.InFormatDir(f, FormatLinkerdJSON)
	ingesttest.Fuzz(f, ingesttest.ExactlyOne(NewLinkerdJSON()),
		[]byte(`{"client.addr":"1.2.3.4:5","client.id":"a.b.serviceaccount.identity.linkerd.td","method":"GET","uri":"http://x","status":0,"timestamp":"2024-01-02T03:04:05Z","total_ns":1}`))
}

func FuzzDecodeLinkerdText(f *testing.F) {
	ingesttest.InFormatDir(f, FormatLinkerdText)
	ingesttest.Fuzz(f, ingesttest.ExactlyOne(NewLinkerdText()),
		[]byte(`1.2.3.4:5 a.b.serviceaccount.identity.linkerd.td - [23/Aug/2022:20:28:20 +0000] "GET http://x HTTP/1.1" 401 -`))
}

func BenchmarkDecodeLinkerdJSON(b *testing.B) {
	ingesttest.InFormatDir(b, FormatLinkerdJSON)
	ingesttest.Bench(b, NewLinkerdJSON())
}

func BenchmarkDecodeLinkerdText(b *testing.B) {
	ingesttest.InFormatDir(b, FormatLinkerdText)
	ingesttest.Bench(b, NewLinkerdText())
}
