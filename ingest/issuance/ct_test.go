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

const ctExample = "certstream-server-example-message.json"

func TestGoldenCTCertstream(t *testing.T) {
	ingesttest.InFormatDir(t, CTCertstreamFormat)
	ingesttest.Golden(t, NewCTCertstream())
}

func TestDecodeCTCertstream(t *testing.T) {
	ingesttest.InFormatDir(t, CTCertstreamFormat)
	raw := ingesttest.Line(t, ctExample, 1)
	evs, err := NewCTCertstream().Decode(nil, ingest.Record{Value: raw})
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events, err %v", len(evs), err)
	}
	ev := evs[0]
	const serial = "37a3a72033b9aff73a4bed5bb4f7ce6746e"
	if ev.ID != "ct:ct.googleapis.com/logs/argon2020/:343999487" ||
		ev.Time.Format(time.RFC3339Nano) != "2020-02-15T04:39:18.477939Z" ||
		ev.Identity != (schemas.Identity{ID: "cert:Let's Encrypt Authority X3/" + serial, Kind: schemas.KindCertificate, Name: "access.smm-cheap.com"}) ||
		ev.Source.Provider != "ct.googleapis.com/logs/argon2020/" || ev.Service != "Google 'Argon2020' log" ||
		ev.Action != "ct:logged" || ev.Outcome.Result != schemas.ResultSuccess ||
		ev.Target.Resource != "http://ct.googleapis.com/logs/argon2020/ct/v1/get-entries?start=343999487&end=343999487" ||
		ev.Credential.ID != serial || ev.Credential.Type != "x509_certificate" ||
		ev.Credential.IssuedAt.Unix() != 1581737741 || ev.Credential.ExpiresAt.Unix() != 1589513741 {
		t.Errorf("got %+v", ev)
	}
	want := &schemas.Issuance{
		Credential: serial, CredentialType: "x509_certificate", Subject: "access.smm-cheap.com",
		SANs:   []string{"access.smm-cheap.com", "www.access.smm-cheap.com"},
		Issuer: "/C=US/CN=Let's Encrypt Authority X3/O=Let's Encrypt", TTLSeconds: 1589513741 - 1581737741,
	}
	if !reflect.DeepEqual(ev.Issuance, want) {
		t.Errorf("issuance = %+v, want %+v", ev.Issuance, want)
	}
}

// TestCTVariants covers the shapes the fixtures lack: the leaf's own issuer
// field (newer certstream), a fingerprint instead of a serial, a precert.
func TestCTVariants(t *testing.T) {
	const base = `{"message_type":"certificate_update","data":{"update_type":"PrecertLogEntry","leaf_cert":{"subject":{"CN":"api.example.com"},%s"all_domains":["api.example.com"],"not_before":1700000000,"not_after":1707776000},"chain":[{"subject":{"CN":"Chain CA","O":"Chain Org"}}],"cert_index":7,"seen":1700000100.25,"source":{"name":"Test log","url":"ct.example.net/2024/"}}}`
	for _, tc := range []struct{ name, leaf, id, cred, issuer string }{
		{"leaf issuer wins over the chain", `"issuer":{"O":"Issuer Org","aggregated":"/O=Issuer Org"},"serial_number":"00AB",`, "cert:Issuer Org/ab", "ab", "/O=Issuer Org"},
		{"fingerprint fallback", `"fingerprint":"84:E0:18",`, "cert:Chain CA/sha1:84e018", "sha1:84e018", "Chain CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := NewCTCertstream().Decode(nil, ingest.Record{Value: []byte(strings.Replace(base, "%s", tc.leaf, 1))})
			if err != nil {
				t.Fatal(err)
			}
			ev := evs[0]
			if ev.Identity.ID != tc.id || ev.Credential.ID != tc.cred || ev.Issuance.Issuer != tc.issuer || ev.ID != "ct:ct.example.net/2024/:7" || ev.Issuance.TTLSeconds != 7776000 {
				t.Errorf("got %+v %+v", ev, ev.Issuance)
			}
		})
	}
}

func TestDecodeErrorsCTCertstream(t *testing.T) {
	ingesttest.InFormatDir(t, CTCertstreamFormat)
	valid := string(ingesttest.Line(t, ctExample, 1))
	ingesttest.Errors(t, NewCTCertstream(), errorCases([][3]string{
		{"empty", "", ingest.ReasonInvalidJSON},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON},
		{"heartbeat", `{"message_type":"heartbeat","timestamp":1508483726.86}`, ingest.ReasonNotAnEvent},
		{"no message_type", `{"data":{}}`, ingest.ReasonNotAnEvent},
		{"not an object", `[1,2]`, ingest.ReasonNotAnEvent},
		{"invalid UTF-8", strings.Replace(valid, "smm-cheap", "smm-\xffcheap", 1), ingest.ReasonInvalidUTF8},
		{"too deep", `{"message_type":"certificate_update","x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, ingest.ReasonTooDeep},
		{"no leaf", `{"message_type":"certificate_update","data":{"seen":1}}`, ingest.ReasonMissingField},
		{"no seen", strings.Replace(valid, `"seen":1581741558.477939,`, ``, 1), ingest.ReasonMissingField},
		{"seen is a string", strings.Replace(valid, `"seen":1581741558.477939`, `"seen":"today"`, 1), ingest.ReasonBadField},
		{"seen is huge", strings.Replace(valid, `"seen":1581741558.477939`, `"seen":1e300`, 1), ingest.ReasonBadField},
		{"seen overflows float", strings.Replace(valid, `"seen":1581741558.477939`, `"seen":1e400`, 1), ingest.ReasonBadField},
		{"negative not_after", strings.Replace(valid, `"not_after":1589513741`, `"not_after":-5`, 1), ingest.ReasonBadField},
		{"cert_index overflows", strings.Replace(valid, `343999487,`, `92233720368547758080,`, 1), ingest.ReasonBadField},
		{"no cert_index", strings.Replace(valid, `"cert_index":343999487,`, ``, 1), ingest.ReasonMissingField},
		{"no source", strings.Replace(valid, `"source":{"name":"Google 'Argon2020' log","url":"ct.googleapis.com/logs/argon2020/"},`, ``, 1), ingest.ReasonMissingField},
		{"serial not hex", strings.Replace(valid, `"37A3A72033B9AFF73A4BED5BB4F7CE6746E"`, `"XYZ"`, 1), ingest.ReasonBadField},
		{"all_domains is a string", strings.Replace(valid, `"all_domains":["access.smm-cheap.com","www.access.smm-cheap.com"]`, `"all_domains":"x"`, 1), ingest.ReasonBadField},
		{"no serial, no fingerprint", string(ingesttest.Line(t, "certstream-server-readme-message-pretty.json", 1)), ingest.ReasonMissingField},
	}))
}

func TestDecodeAppendsCTCertstream(t *testing.T) {
	ingesttest.InFormatDir(t, CTCertstreamFormat)
	ingesttest.Appends(t, NewCTCertstream(), ingesttest.Line(t, ctExample, 1))
}

func TestMaxRecordBytesCTCertstream(t *testing.T) {
	ingesttest.InFormatDir(t, CTCertstreamFormat)
	raw := ingesttest.Line(t, ctExample, 1)
	d := &CTCertstreamDecoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}

func FuzzDecodeCTCertstream(f *testing.F) {
	ingesttest.InFormatDir(f, CTCertstreamFormat)
	ingesttest.Fuzz(f, NewCTCertstream())
}

func BenchmarkDecodeCTCertstream(b *testing.B) {
	ingesttest.InFormatDir(b, CTCertstreamFormat)
	ingesttest.Bench(b, NewCTCertstream())
}
