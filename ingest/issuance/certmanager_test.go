package issuance

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

// goldenCertManager is the decoder of the golden files: Year 2024 dates the
// klog lines that embed no full timestamp (the harness records carry no
// Kafka time).
func goldenCertManager() *CertManagerDecoder {
	d := NewCertManager()
	d.Year = 2024
	return d
}

const cmFixture = "cert-manager-website-controller-log-lines.log"

func TestGoldenCertManager(t *testing.T) {
	ingesttest.InFormatDir(t, CertManagerFormat)
	ingesttest.Golden(t, goldenCertManager())
}

func TestDecodeCertManager(t *testing.T) {
	ingesttest.InFormatDir(t, CertManagerFormat)
	controller := schemas.Identity{ID: "k8s:sa/default/cert-manager/cert-manager", Kind: schemas.KindServiceAccount, Name: "cert-manager/cert-manager"}
	tests := []struct {
		name     string
		file     string
		line     int
		time     string
		action   string
		resource string
		result   schemas.Result
		issuance *schemas.Issuance
	}{
		{
			name: "Approved condition, year from the embedded timestamp", file: cmFixture, line: 1,
			time: "2022-01-13T16:51:59.186482Z", action: "certmanager:approved", resource: "certificaterequest/istio-csr-8ddcs",
			result: schemas.ResultSuccess, issuance: &schemas.Issuance{CredentialType: "x509_certificate"},
		},
		{
			name: "Ready condition", file: cmFixture, line: 2,
			time: "2022-01-13T16:51:59.258876Z", action: "certmanager:ready", resource: "certificaterequest/istio-csr-8ddcs",
			result: schemas.ResultSuccess, issuance: &schemas.Issuance{CredentialType: "x509_certificate"},
		},
		{
			name: "structured klog serving certificate, year from Year", file: cmFixture, line: 6,
			time: "2024-07-19T15:21:28.115018Z", action: "certmanager:serving_certificate_updated",
			result: schemas.ResultSuccess, issuance: &schemas.Issuance{CredentialType: "x509_certificate", Subject: "cert-manager-metrics", SANs: []string{"cert-manager-metrics"}},
		},
		{
			name: "JSON certificate issued with requester and issuer", file: "certmanager-json.ndjson", line: 2,
			time: "2024-01-13T13:31:59.243118Z", action: "certmanager:issued", resource: "certificaterequest/prod/payments-api-tls-1",
			result: schemas.ResultSuccess, issuance: &schemas.Issuance{CredentialType: "x509_certificate", Issuer: "cert-manager:clusterissuer/internal-ca", Requester: "k8s:certificaterequest/prod/payments-api-tls-1"},
		},
		{
			name: "JSON Denied condition", file: "certmanager-json.ndjson", line: 4,
			time: "2024-01-13T13:33:21.5Z", action: "certmanager:denied", resource: "certificaterequest/wildcard-tls-1",
			result: schemas.ResultDenied,
		},
		{
			name: "CRI-wrapped structured klog", file: "certmanager-json.ndjson", line: 6,
			time: "2024-01-13T13:31:59.3Z", action: "certmanager:issued", resource: "certificaterequest/billing/ledger-client-3",
			result: schemas.ResultSuccess, issuance: &schemas.Issuance{CredentialType: "x509_certificate", Issuer: "cert-manager:issuer/vault-issuer", Requester: "k8s:certificaterequest/billing/ledger-client-3"},
		},
	}
	d := goldenCertManager()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := ingesttest.Line(t, tc.file, tc.line)
			ev := ingesttest.DecodeOne(t, d, raw)
			want, _ := time.Parse(time.RFC3339Nano, tc.time)
			if ev.ID != schemas.HashID(CertManagerFormat, ingest.Unwrap(raw)) || !ev.Time.Equal(want) || ev.Identity != controller ||
				ev.Action != tc.action || ev.Target.Resource != tc.resource || ev.Outcome.Result != tc.result ||
				ev.Source.Family != schemas.FamilyIssuance || ev.Source.Cluster != "default" {
				t.Errorf("got %+v", ev)
			}
			if !reflect.DeepEqual(ev.Issuance, tc.issuance) {
				t.Errorf("issuance = %+v, want %+v", ev.Issuance, tc.issuance)
			}
		})
	}
}

// TestCertManagerYear checks the year rule of klog lines: the embedded
// timestamp, then Year, then the Kafka record time (the year before when the
// line would be more than a day in the future), else missing_field.
func TestCertManagerYear(t *testing.T) {
	ingesttest.InFormatDir(t, CertManagerFormat)
	serving := ingesttest.Line(t, cmFixture, 6) // I0719 15:21:28.115018, no embedded year
	approved := ingesttest.Line(t, cmFixture, 1)
	at := func(s string) time.Time { v, _ := time.Parse(time.RFC3339, s); return v }
	tests := []struct {
		name    string
		year    int
		recTime time.Time
		raw     []byte
		want    string
	}{
		{"record time", 0, at("2023-08-01T00:00:00Z"), serving, "2023-07-19T15:21:28.115018Z"},
		{"record in January, line in July: previous year", 0, at("2024-01-02T00:00:00Z"), serving, "2023-07-19T15:21:28.115018Z"},
		{"Year beats the record time", 2021, at("2023-08-01T00:00:00Z"), serving, "2021-07-19T15:21:28.115018Z"},
		{"embedded timestamp beats Year", 2019, time.Time{}, approved, "2022-01-13T16:51:59.186482Z"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := NewCertManager()
			d.Year = tc.year
			evs, err := d.Decode(nil, ingest.Record{Value: tc.raw, Time: tc.recTime})
			if err != nil {
				t.Fatal(err)
			}
			if got := evs[0].Time.Format(time.RFC3339Nano); got != tc.want {
				t.Errorf("time %s, want %s", got, tc.want)
			}
		})
	}
	ingesttest.Errors(t, NewCertManager(), []ingesttest.ErrorCase{{Name: "no year anywhere", In: string(serving), Reason: ingest.ReasonMissingField}})
}

func TestCertManagerConfig(t *testing.T) {
	ingesttest.InFormatDir(t, CertManagerFormat)
	d := &CertManagerDecoder{Cluster: "prod-eu", Namespace: "security", ServiceAccount: "cm-controller"}
	evs, err := d.Decode(nil, ingest.Record{Value: ingesttest.Line(t, cmFixture, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := evs[0].Identity.ID; got != "k8s:sa/prod-eu/security/cm-controller" {
		t.Errorf("identity %q", got)
	}
	d.Namespace = "a/b"
	if _, err := d.Decode(nil, ingest.Record{Value: ingesttest.Line(t, cmFixture, 1)}); err == nil {
		t.Error("bad namespace accepted")
	}
}

func TestDecodeErrorsCertManager(t *testing.T) {
	ingesttest.InFormatDir(t, CertManagerFormat)
	klog := string(ingesttest.Line(t, cmFixture, 1))
	js := string(ingesttest.Line(t, "certmanager-json.ndjson", 2))
	ingesttest.Errors(t, goldenCertManager(), errorCases([][3]string{
		{"empty", "", ingest.ReasonNotAnEvent},
		{"not klog", "hello world, this is not a klog line at all", ingest.ReasonNotAnEvent},
		{"truncated header", klog[:30], ingest.ReasonNotAnEvent},
		{"bad month", strings.Replace(klog, "I0113", "I1313", 1), ingest.ReasonBadField},
		{"bad clock", strings.Replace(klog, "16:51:59", "16:5x:59", 1), ingest.ReasonBadField},
		{"date that does not exist", strings.Replace(strings.Replace(klog, "I0113", "I0230", 1), "2022-01-13", "2022-02-30", 1), ingest.ReasonBadField},
		{"invalid UTF-8", strings.Replace(klog, "istio", "ist\xffio", 1), ingest.ReasonInvalidUTF8},
		{"unterminated structured message", `I0719 15:21:28.115018       1 dynamic_source.go:290] "Updated cert-manager TLS certificate`, ingest.ReasonBadField},
		{"other condition", strings.Replace(klog, `"Approved"`, `"Issued"`, 1), ingest.ReasonNotAnEvent},
		{"JSON truncated", js[:len(js)/2], ingest.ReasonInvalidJSON},
		{"JSON invalid UTF-8", strings.Replace(js, "certificate issued", "certificate \xff issued", 1), ingest.ReasonInvalidUTF8},
		{"JSON too deep", `{"msg":"x","a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, ingest.ReasonTooDeep},
		{"JSON msg is a number", strings.Replace(js, `"msg":"certificate issued"`, `"msg":7`, 1), ingest.ReasonBadField},
		{"JSON no msg", `{"ts":1705152719.2}`, ingest.ReasonNotAnEvent},
		{"JSON no ts", strings.Replace(js, `"ts":1705152719.243118,`, ``, 1), ingest.ReasonMissingField},
		{"JSON huge ts", strings.Replace(js, `1705152719.243118`, `1e300`, 1), ingest.ReasonBadField},
		{"JSON ts not a time", strings.Replace(js, `1705152719.243118`, `"yesterday"`, 1), ingest.ReasonBadField},
		{"JSON not an object", `["certificate issued"]`, ingest.ReasonNotAnEvent},
	}))
}

func TestMaxRecordBytesCertManager(t *testing.T) {
	ingesttest.InFormatDir(t, CertManagerFormat)
	raw := ingesttest.Line(t, cmFixture, 1)
	d := &CertManagerDecoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}

func TestDecodeAppendsCertManager(t *testing.T) {
	ingesttest.InFormatDir(t, CertManagerFormat)
	ingesttest.Appends(t, goldenCertManager(), ingesttest.Line(t, cmFixture, 1))
}

func FuzzDecodeCertManager(f *testing.F) {
	ingesttest.InFormatDir(f, CertManagerFormat)
	ingesttest.Fuzz(f, goldenCertManager(),
		[]byte(`I0101 00:00:00.000000 1 x.go:1] "issued certificate" key="a/b" DNSNames=["a","b"] logger="cert-manager.certificaterequests"`),
		[]byte(`{"ts":"2024-01-01T00:00:00Z","msg":"new certificate","DNSNames":["x"],"level":"warn"}`))
}

func BenchmarkDecodeCertManager(b *testing.B) {
	ingesttest.InFormatDir(b, CertManagerFormat)
	ingesttest.Bench(b, goldenCertManager())
}
