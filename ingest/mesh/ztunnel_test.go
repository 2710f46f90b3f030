package mesh

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestGoldenZtunnel(t *testing.T) {
	ingesttest.InFormatDir(t, FormatZtunnel)
	ingesttest.Golden(t, ingesttest.ExactlyOne(NewZtunnel()))
}

func TestDecodeZtunnel(t *testing.T) {
	ingesttest.InFormatDir(t, FormatZtunnel)
	const file = "istio-io-ztunnel-access-spiffe.log"
	curl := schemas.Identity{ID: "spiffe://cluster.local/ns/default/sa/curl", Kind: schemas.KindWorkload}
	runDecodeCases(t, NewZtunnel(), []decodeCase{
		{
			name: "inbound: the caller is the verified source identity", file: file, line: 1,
			want: want{
				identity: curl, peer: curl.ID,
				target: "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
				action: "tcp", service: "productpage.default.svc.cluster.local", result: schemas.ResultSuccess,
				ip: "10.244.1.12", time: "2024-05-04T09:59:05.028Z",
				resource: "productpage.default.svc.cluster.local", provider: "istio",
				workload: "curl-7656cf8794-r7zb9", namespace: "default",
				bytesIn: 80, bytesOut: 175, durationMS: 1,
			},
		},
		{
			name: "outbound: same caller, bytes seen from the other side", file: file, line: 2,
			want: want{
				identity: curl,
				target:   "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
				action:   "tcp", service: "productpage.default.svc.cluster.local", result: schemas.ResultSuccess,
				ip: "10.244.1.12", time: "2024-05-04T09:59:05.028Z",
				workload: "curl-7656cf8794-r7zb9", namespace: "default",
				bytesIn: 80, bytesOut: 175, durationMS: 1,
			},
		},
		{
			name: "outbound to reviews", file: file, line: 6,
			want: want{
				identity: curl,
				target:   "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
				action:   "tcp", service: "reviews.default.svc.cluster.local", result: schemas.ResultSuccess,
				ip: "10.244.1.12", time: "2024-05-04T10:11:04.979Z", bytesIn: 84, bytesOut: 169, durationMS: 2,
			},
		},
		{
			name: "tab-separated, policy rejection is a denial",
			in: "2024-05-04T10:11:04.964851Z\terror\taccess\tconnection complete\tsrc.addr=10.244.2.31:35520 src.workload=\"sleep\" src.namespace=\"sandbox\" " +
				"src.identity=\"spiffe://cluster.local/ns/sandbox/sa/sleep\" dst.addr=10.244.1.9:15008 dst.service=\"reviews.default.svc.cluster.local\" " +
				"dst.identity=\"spiffe://cluster.local/ns/default/sa/bookinfo-reviews\" direction=\"inbound\" bytes_sent=0 bytes_recv=0 duration=\"350µs\" " +
				`error="connection closed due to policy rejection: allow policies exist, but none allowed"`,
			want: want{
				identity: schemas.Identity{ID: "spiffe://cluster.local/ns/sandbox/sa/sleep", Kind: schemas.KindWorkload},
				peer:     "spiffe://cluster.local/ns/sandbox/sa/sleep",
				target:   "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
				action:   "tcp", service: "reviews.default.svc.cluster.local", result: schemas.ResultDenied,
				errorCode: "connection closed due to policy rejection: allow policies exist, but none allowed",
				ip:        "10.244.2.31", time: "2024-05-04T10:11:04.964Z", workload: "sleep", durationMS: 0.35,
			},
		},
		{
			name: "plain-text source without identity: IP, escaped quote in a value",
			in:   `2024-05-04T10:11:04.964851Z info access connection complete src.addr=192.168.1.5:4000 dst.addr=10.244.1.9:9080 dst.workload="a\"b" direction="inbound" bytes_sent=1 bytes_recv=2 duration="1.5s"`,
			want: want{
				identity: schemas.Identity{ID: "ip:192.168.1.5", Kind: schemas.KindUnknown},
				action:   "tcp", service: `a"b`, result: schemas.ResultSuccess,
				ip: "192.168.1.5", time: "2024-05-04T10:11:04.964Z", bytesIn: 2, bytesOut: 1, durationMS: 1500,
			},
		},
	})
}

func TestDecodeZtunnelErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatZtunnel)
	valid := string(ingesttest.Line(t, "istio-io-ztunnel-access-spiffe.log", 1))
	ingesttest.Errors(t, NewZtunnel(), []ingesttest.ErrorCase{
		{Name: "empty", In: "", Reason: ingest.ReasonNotAnEvent},
		{Name: "truncated in a quote", In: valid[:len(valid)-2], Reason: ingest.ReasonBadField},
		{Name: "truncated before the fields", In: valid[:40], Reason: ingest.ReasonNotAnEvent},
		{Name: "ztunnel application log", In: `2024-05-04T09:59:05.028709Z info xds::client:xds{id=2} received response type_url="type.googleapis.com/istio.workload.Address" size=1`, Reason: ingest.ReasonNotAnEvent},
		{Name: "connection opened", In: strings.Replace(valid, "connection complete", "connection opened", 1), Reason: ingest.ReasonNotAnEvent},
		{Name: "JSON", In: `{"level":"info"}`, Reason: ingest.ReasonNotAnEvent},
		{Name: "invalid UTF-8", In: strings.Replace(valid, "curl-7656cf8794-r7zb9", "\xff\xfe", 1), Reason: ingest.ReasonInvalidUTF8},
		{Name: "bad time", In: strings.Replace(valid, "2024-05-04T09:59:05.028709Z", "May 4 09:59:05", 1), Reason: ingest.ReasonNotAnEvent},
		{Name: "unparsable time", In: strings.Replace(valid, "2024-05-04T09:59:05.028709Z", "2024-05-04T09:59:05", 1), Reason: ingest.ReasonBadField},
		{Name: "invalid SPIFFE ID", In: strings.Replace(valid, `src.identity="spiffe://cluster.local/ns/default/sa/curl"`, `src.identity="spiffe://Cluster/ns/../sa/curl"`, 1), Reason: ingest.ReasonBadField},
		{Name: "invalid destination SPIFFE ID", In: strings.Replace(valid, `dst.identity="spiffe://`, `dst.identity="http://`, 1), Reason: ingest.ReasonBadField},
		{Name: "bytes overflow", In: strings.Replace(valid, "bytes_sent=175", "bytes_sent=184467440737095516150", 1), Reason: ingest.ReasonBadField},
		{Name: "negative bytes", In: strings.Replace(valid, "bytes_sent=175", "bytes_sent=-1", 1), Reason: ingest.ReasonBadField},
		{Name: "bad duration", In: strings.Replace(valid, `duration="1ms"`, `duration="soon"`, 1), Reason: ingest.ReasonBadField},
		{Name: "a word that is not key=value", In: valid + " stray", Reason: ingest.ReasonBadField},
		{Name: "too many fields", In: valid + strings.Repeat(" k=v", 64), Reason: ingest.ReasonBadField},
		{Name: "no identity and no address", In: `2024-05-04T10:11:04.964851Z info access connection complete direction="inbound"`, Reason: ingest.ReasonMissingField},
	})
}

func TestMaxRecordBytesZtunnel(t *testing.T) {
	ingesttest.InFormatDir(t, FormatZtunnel)
	d := NewZtunnel()
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, ingesttest.Line(t, "istio-io-ztunnel-access-spiffe.log", 1))
}

func TestDecodeAppendsZtunnel(t *testing.T) {
	ingesttest.InFormatDir(t, FormatZtunnel)
	ingesttest.Appends(t, ingesttest.ExactlyOne(NewZtunnel()), ingesttest.Line(t, "istio-io-ztunnel-access-spiffe.log", 1))
}

func FuzzDecodeZtunnel(f *testing.F) {
	ingesttest.InFormatDir(f, FormatZtunnel)
	ingesttest.Fuzz(f, ingesttest.ExactlyOne(NewZtunnel()),
		[]byte(`2024-05-04T10:11:04.964851Z	error	access	connection complete	src.addr=1.2.3.4:5 error="policy rejection" k="a\"b"`))
}

func BenchmarkDecodeZtunnel(b *testing.B) {
	ingesttest.InFormatDir(b, FormatZtunnel)
	ingesttest.Bench(b, NewZtunnel())
}
