package issuance

import (
	"reflect"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	spireQuickstart = "spiffe-io-spire-server-k8s-quickstart.log"
	spireAPI        = "spire-server-api.log"
	quickAgent      = "spiffe://example.org/spire/agent/k8s_sat/demo-cluster/578c8d2a-4713-468c-9619-35d5b3ec848e"
	prodAgent       = "spiffe://prod.example.com/spire/agent/k8s_psat/prod-eu/6a1f0e0e-2c1b-4b8e-9d6f-0f6c1b2a3d4e"
	paymentsAPI     = "spiffe://prod.example.com/ns/prod/sa/payments-api"
)

func TestGoldenSPIREServer(t *testing.T) {
	ingesttest.InFormatDir(t, SPIREServerFormat)
	ingesttest.Golden(t, NewSPIREServer())
}

func TestDecodeSPIREServer(t *testing.T) {
	ingesttest.InFormatDir(t, SPIREServerFormat)
	tests := []struct {
		name      string
		file      string
		line      int
		identity  string
		action    string
		ip        string
		cred      schemas.Credential
		issuance  *schemas.Issuance
		expiresAt string
	}{
		{
			name: "quickstart: agent SVID signed, the agent is the requester", file: spireQuickstart, line: 6,
			identity: quickAgent, action: "spire:sign_x509_svid", expiresAt: "2019-10-17T21:48:55Z",
			issuance: &schemas.Issuance{CredentialType: "x509_svid", Subject: quickAgent, Issuer: "spire:example.org", TTLSeconds: 3600, Requester: quickAgent},
		},
		{
			name: "quickstart: node attestation completed", file: spireQuickstart, line: 7,
			identity: quickAgent, action: "spire:attest_agent", ip: "10.0.2.15",
			issuance: &schemas.Issuance{CredentialType: "x509_svid", Subject: quickAgent, Issuer: "spire:example.org", Requester: quickAgent},
		},
		{
			name: "workload X509-SVID signed for the calling agent, decimal serial to hex", file: spireAPI, line: 1,
			identity: prodAgent, action: "spire:sign_x509_svid", ip: "10.0.7.21", expiresAt: "2024-03-05T11:15:02Z",
			issuance: &schemas.Issuance{Credential: "d61ea7489a0aa893c40768b7dadba7df", CredentialType: "x509_svid", Subject: paymentsAPI, SANs: []string{"payments-api.prod.svc"}, Issuer: "spire:prod.example.com", TTLSeconds: 3600, Requester: prodAgent},
		},
		{
			name: "JWT-SVID", file: spireAPI, line: 2,
			identity: prodAgent, action: "spire:sign_jwt_svid", ip: "10.0.7.21", expiresAt: "2024-03-05T10:20:40Z",
			issuance: &schemas.Issuance{CredentialType: "jwt_svid", Subject: paymentsAPI, Issuer: "spire:prod.example.com", TTLSeconds: 300, Requester: prodAgent},
		},
		{
			name: "agent attestation (SPIRE 1.x) by agent_id", file: spireAPI, line: 3,
			identity: prodAgent, action: "spire:attest_agent", ip: "10.0.3.4",
			issuance: &schemas.Issuance{CredentialType: "x509_svid", Subject: prodAgent, Issuer: "spire:prod.example.com", Requester: prodAgent},
		},
		{
			name: "logrus JSON", file: spireAPI, line: 4,
			identity: "spiffe://prod.example.com/spire/agent/k8s_psat/prod-eu/9c8b7a6f-5e4d-4c3b-2a1f-0e9d8c7b6a5f", action: "spire:sign_x509_svid", ip: "10.0.7.22", expiresAt: "2024-03-05T11:16:40Z",
			issuance: &schemas.Issuance{Credential: "112210f47de98115", CredentialType: "x509_svid", Subject: "spiffe://prod.example.com/ns/billing/sa/ledger", Issuer: "spire:prod.example.com", TTLSeconds: 3600, Requester: "spiffe://prod.example.com/spire/agent/k8s_psat/prod-eu/9c8b7a6f-5e4d-4c3b-2a1f-0e9d8c7b6a5f"},
		},
		{
			name: "agent: workload fetched its X509-SVID", file: spireAPI, line: 5,
			identity: paymentsAPI, action: "spire:agent:fetch_x509_svid", expiresAt: "2024-03-05T11:15:02.345Z",
			issuance: &schemas.Issuance{CredentialType: "x509_svid", Subject: paymentsAPI, Issuer: "spire:prod.example.com", TTLSeconds: 3599, Requester: paymentsAPI},
		},
	}
	d := NewSPIREServer()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := ingesttest.Line(t, tc.file, tc.line)
			ev := ingesttest.DecodeOne(t, d, raw)
			if ev.ID != schemas.HashID(SPIREServerFormat, raw) || ev.Identity != (schemas.Identity{ID: tc.identity, Kind: schemas.KindWorkload}) ||
				ev.Action != tc.action || ev.Actor.IP != tc.ip || ev.Outcome.Result != schemas.ResultSuccess || ev.Time.IsZero() ||
				ev.Credential.ID != tc.issuance.Credential || ev.Credential.Type != tc.issuance.CredentialType || !ev.Credential.IssuedAt.Equal(ev.Time.Time) ||
				ev.Target.Resource != tc.issuance.Subject {
				t.Errorf("got %+v", ev)
			}
			if got := ev.Credential.ExpiresAt; (tc.expiresAt == "") != got.IsZero() || (tc.expiresAt != "" && got.Format("2006-01-02T15:04:05.999Z07:00") != tc.expiresAt) {
				t.Errorf("expires_at %v, want %q", got, tc.expiresAt)
			}
			if !reflect.DeepEqual(ev.Issuance, tc.issuance) {
				t.Errorf("issuance = %+v, want %+v", ev.Issuance, tc.issuance)
			}
		})
	}
}

func TestNormalizeSerial(t *testing.T) {
	for _, tc := range []struct {
		in      string
		decimal bool
		want    string
	}{
		{"284613952918233129340312893422193846239", true, "d61ea7489a0aa893c40768b7dadba7df"},
		{"37A3A72033B9AFF73A4BED5BB4F7CE6746E", false, "37a3a72033b9aff73a4bed5bb4f7ce6746e"},
		{"03:7a:3a", true, "37a3a"},
		{"0x00FF", true, "ff"},
		{"0", false, "0"},
	} {
		if got, err := normalizeSerial(tc.in, tc.decimal); err != nil || got != tc.want {
			t.Errorf("normalizeSerial(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "xyz", "-5", strings.Repeat("1", 300)} {
		if _, err := normalizeSerial(bad, true); err == nil {
			t.Errorf("normalizeSerial(%q) accepted", bad)
		}
	}
}

func TestDecodeErrorsSPIREServer(t *testing.T) {
	ingesttest.InFormatDir(t, SPIREServerFormat)
	signed := string(ingesttest.Line(t, spireAPI, 1))
	js := string(ingesttest.Line(t, spireAPI, 4))
	ingesttest.Errors(t, NewSPIREServer(), errorCases([][3]string{
		{"empty", "", ingest.ReasonNotAnEvent},
		{"start-up line", string(ingesttest.Line(t, spireQuickstart, 2)), ingest.ReasonNotAnEvent},
		{"health checker line", "2019/10/17 20:50:51 [DEBUG] Starting checker name=agent", ingest.ReasonNotAnEvent},
		{"truncated in a quote", signed[:58], ingest.ReasonBadField},
		{"no msg", signed[:47], ingest.ReasonMissingField},
		{"invalid UTF-8", strings.Replace(signed, "payments", "pay\xffments", 1), ingest.ReasonInvalidUTF8},
		{"no time value", strings.Replace(signed, `time="2024-03-05T10:15:02.345678Z"`, `time=`, 1), ingest.ReasonMissingField},
		{"bad time", strings.Replace(signed, `2024-03-05T10:15:02.345678Z`, `05/Mar/2024`, 1), ingest.ReasonBadField},
		{"no spiffe_id", `time="2024-03-05T10:15:02Z" level=debug msg="Signed X509 SVID" expiration="2024-03-05T11:15:02Z"`, ingest.ReasonMissingField},
		{"bad spiffe_id", strings.Replace(signed, `spiffe_id="spiffe://prod.example.com/ns/prod/sa/payments-api"`, `spiffe_id="https://x/y"`, 1), ingest.ReasonBadField},
		{"bad caller_id", strings.Replace(signed, `caller_id="spiffe://prod.example.com/spire`, `caller_id="spiffe://PROD/spire`, 1), ingest.ReasonBadField},
		{"bad serial", strings.Replace(signed, `serial_num=284613952918233129340312893422193846239`, `serial_num=12z`, 1), ingest.ReasonBadField},
		{"bad expiration", strings.Replace(signed, `expiration="2024-03-05T11:15:02Z"`, `expiration=soon`, 1), ingest.ReasonBadField},
		{"huge expiration", strings.Replace(signed, `expiration="2024-03-05T11:15:02Z"`, `expiration=1e300`, 1), ingest.ReasonBadField},
		{"bad ttl", strings.Replace(string(ingesttest.Line(t, spireAPI, 5)), "ttl=3598.845", "ttl=NaN", 1), ingest.ReasonBadField},
		{"JSON truncated", js[:len(js)/2], ingest.ReasonInvalidJSON},
		{"JSON msg is a number", strings.Replace(js, `"msg":"Signed X509 SVID"`, `"msg":1`, 1), ingest.ReasonNotAnEvent},
		{"JSON bad string", `{"time":"2024-03-05T10:15:02Z","msg":"Signed X509 SVID","spiffe_id":"\ud800"}`, ingest.ReasonBadField},
		{"JSON too deep", `{"msg":"x","a":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, ingest.ReasonTooDeep},
		{"JSON without time and msg", `{"level":"info"}`, ingest.ReasonNotAnEvent},
		{"failure line", string(ingesttest.Line(t, spireAPI, 6)), ingest.ReasonNotAnEvent},
	}))
}

func TestMaxRecordBytesSPIREServer(t *testing.T) {
	ingesttest.InFormatDir(t, SPIREServerFormat)
	raw := ingesttest.Line(t, spireAPI, 1)
	d := &SPIREServerDecoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}

func TestDecodeAppendsSPIREServer(t *testing.T) {
	ingesttest.InFormatDir(t, SPIREServerFormat)
	ingesttest.Appends(t, NewSPIREServer(), ingesttest.Line(t, spireAPI, 1))
}

func FuzzDecodeSPIREServer(f *testing.F) {
	ingesttest.InFormatDir(f, SPIREServerFormat)
	ingesttest.Fuzz(f, NewSPIREServer(),
		[]byte(`time="2024-01-01T00:00:00Z" msg="Fetched JWT SVID" spiffe_id=spiffe://a/b ttl=1e30`),
		[]byte(`{"time":"2024-01-01T00:00:00Z","msg":"Signed JWT SVID","spiffe_id":"spiffe://a/b","expires_at":1704070800}`))
}

func BenchmarkDecodeSPIREServer(b *testing.B) {
	ingesttest.InFormatDir(b, SPIREServerFormat)
	ingesttest.Bench(b, NewSPIREServer())
}
