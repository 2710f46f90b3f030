package issuance

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

// TestGolden decodes every testdata/vault_audit/testdata line and compares
// the events (and the dead letters of lines that do not decode) with
// <input>.golden.ndjson.
func TestGolden(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	ingesttest.Golden(t, New())
}

const (
	rootAccessor  = "hmac-sha256:a01c4d69aa0bc6ea78d41ab81f0780cccbb2594e820c5823214327fa1b8d1802"
	adminAccessor = "hmac-sha256:18e2ca53bac3d2821fe22b5ad63969fb79ff13bc07525f320ceafefefc93f907"
)

// TestDecode checks the fields the detectors depend on, entry by entry.
func TestDecode(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	tests := []struct {
		name      string
		file      string
		line      int
		id        string
		identity  schemas.Identity
		cred      string
		action    string
		resource  string
		result    schemas.Result
		errorCode string
		ip        string
		issuance  *schemas.Issuance
	}{
		{
			name: "root creates an admin token", file: "vault-audit.ndjson", line: 9,
			id:       "vault:c324cbda-fedf-337b-7203-8d524a223023:response",
			identity: schemas.Identity{ID: "vault:accessor/" + rootAccessor, Kind: schemas.KindToken, Name: "root"},
			cred:     rootAccessor, action: "vault:update:auth/token/create/admins", resource: "auth/token/create/admins",
			result: schemas.ResultSuccess, ip: "10.10.42.222",
			issuance: &schemas.Issuance{Credential: adminAccessor, CredentialType: "vault_token", Subject: "vault:accessor/" + adminAccessor, Issuer: "vault", Requester: "vault:accessor/" + rootAccessor},
		},
		{
			name: "approle login mints a token for its entity", file: "vault-audit.ndjson", line: 19,
			id:       "vault:86093ffd-00ec-4910-01de-0e24bb603551:response",
			identity: schemas.Identity{ID: "vault:entity/c116f480-fef9-1013-791e-76dbfcbb031a", Kind: schemas.KindUnknown, Name: "approle"},
			cred:     "hmac-sha256:019e7479fb6641f0ae74327b5178bc54e2eb8a2fb11de637aa254ff3ddb2230e",
			action:   "vault:update:auth/approle/login", resource: "auth/approle/login",
			result: schemas.ResultSuccess, ip: "10.10.42.222",
			issuance: &schemas.Issuance{Credential: "hmac-sha256:019e7479fb6641f0ae74327b5178bc54e2eb8a2fb11de637aa254ff3ddb2230e", CredentialType: "vault_token", Subject: "vault:entity/c116f480-fef9-1013-791e-76dbfcbb031a", Issuer: "vault", Requester: "vault:entity/c116f480-fef9-1013-791e-76dbfcbb031a"},
		},
		{
			name: "PKI certificate issued", file: "vault-audit.ndjson", line: 73,
			id:       "vault:9df70d99-f1bf-4731-1122-0edced409e02:response",
			identity: schemas.Identity{ID: "vault:accessor/" + adminAccessor, Kind: schemas.KindToken, Name: "token-lab-admins"},
			cred:     adminAccessor, action: "vault:update:pki_int/issue/example-dot-com", resource: "pki_int/issue/example-dot-com",
			result: schemas.ResultSuccess, ip: "10.10.42.222",
			issuance: &schemas.Issuance{
				Credential: "hmac-sha256:c0ce2d9efa367a3bb2b90c45df5f317ab19faea66e52b585e3e1054d9785aec3", CredentialType: "x509_certificate",
				Subject: "hmac-sha256:c5e245e29c0e0e07c269a71118065cd0db3ea53555058b4cbce4fd6bffca1b5e", Issuer: "vault:pki_int",
				TTLSeconds: 21600, Requester: "vault:accessor/" + adminAccessor,
			},
		},
		{
			name: "permission denied without accessor: the token HMAC is the identity", file: "vault-audit.ndjson", line: 129,
			id:       "vault:aa3fb59c-1378-8ded-42ee-a79a0aabc944:response",
			identity: schemas.Identity{ID: "vault:token/hmac-sha256:b3ad21bd848fc7cad7b14aa8aeab7dbbc16d29989ac4e5840082e24998c102ef", Kind: schemas.KindToken},
			action:   "vault:read:sys/internal/ui/mounts/kv-v2/lab", resource: "sys/internal/ui/mounts/kv-v2/lab",
			result: schemas.ResultDenied, errorCode: "permission denied", ip: "10.10.42.210",
		},
		{
			name: "missing client token: only the address is known", file: "vault-audit.ndjson", line: 131,
			id:       "vault:dca97571-56f7-8e93-4dde-10cd99b58699:response",
			identity: schemas.Identity{ID: "ip:10.10.42.222", Kind: schemas.KindUnknown},
			action:   "vault:read:sys/internal/ui/mounts/kv-v2", resource: "sys/internal/ui/mounts/kv-v2",
			result: schemas.ResultDenied, errorCode: "missing client token", ip: "10.10.42.222",
		},
		{
			name: "wrapped error that is not a denial", file: "vault-audit.ndjson", line: 135,
			id:       "vault:ead783eb-a7e1-6a82-9898-0ff5048a2bb9:response",
			identity: schemas.Identity{ID: "vault:accessor/hmac-sha256:9c8eb2e781fee4079e9e83d85d1dad2d3227694ab68f52306115452c5ef102e4", Kind: schemas.KindToken, Name: "token"},
			cred:     "hmac-sha256:9c8eb2e781fee4079e9e83d85d1dad2d3227694ab68f52306115452c5ef102e4",
			action:   "vault:list:approle/role/", resource: "approle/role/",
			result: schemas.ResultFailure, errorCode: "unsupported path", ip: "10.10.42.222",
		},
		{
			name: "kubernetes auth login", file: "vault-k8s.ndjson", line: 1,
			id:       "vault:4b8e2f1c-6a3d-4e9b-b7c5-1d0e2f3a4b5c:response",
			identity: schemas.Identity{ID: "k8s:sa/default/prod/payments-api", Kind: schemas.KindServiceAccount, Name: "prod/payments-api"},
			cred:     "hmac-sha256:e504f875bae59926ab594a0b512033cb907c777fa8d8ec9742e03abe61590d32",
			action:   "vault:update:auth/kubernetes/login", resource: "auth/kubernetes/login",
			result: schemas.ResultSuccess, ip: "10.244.3.17",
			issuance: &schemas.Issuance{Credential: "hmac-sha256:e504f875bae59926ab594a0b512033cb907c777fa8d8ec9742e03abe61590d32", CredentialType: "vault_token", Subject: "k8s:sa/default/prod/payments-api", Issuer: "vault", TTLSeconds: 3600, Requester: "k8s:sa/default/prod/payments-api"},
		},
		{
			name: "service account denied database credentials", file: "vault-k8s.ndjson", line: 2,
			id:       "vault:9c1b2a3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d:response",
			identity: schemas.Identity{ID: "k8s:sa/default/prod/payments-api", Kind: schemas.KindServiceAccount, Name: "prod/payments-api"},
			cred:     "hmac-sha256:1f2e3d4c5b6a", action: "vault:read:database/creds/admin", resource: "database/creds/admin",
			result: schemas.ResultDenied, errorCode: "permission denied", ip: "10.244.3.17",
		},
		{
			name: "lease id in the path is templated", file: "vault-k8s.ndjson", line: 3,
			id:       "vault:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4e:response",
			identity: schemas.Identity{ID: "vault:accessor/" + rootAccessor, Kind: schemas.KindToken, Name: "root"},
			cred:     rootAccessor, action: "vault:update:sys/leases/lookup/database/creds/readonly/{id}",
			resource: "sys/leases/lookup/database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6",
			result:   schemas.ResultSuccess, ip: "10.10.42.222",
		},
	}
	d := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := ingesttest.Line(t, tc.file, tc.line)
			ev := ingesttest.DecodeOne(t, d, raw)
			wantID := tc.id
			if wantID == "" {
				wantID = schemas.HashID(Format, raw)
			}
			if ev.ID != wantID || ev.Identity != tc.identity || ev.Credential.ID != tc.cred ||
				ev.Action != tc.action || ev.Target.Resource != tc.resource ||
				ev.Outcome.Result != tc.result || ev.Outcome.ErrorCode != tc.errorCode || ev.Actor.IP != tc.ip ||
				ev.Source.Family != schemas.FamilyIssuance || ev.Time.IsZero() {
				t.Errorf("got %+v\nwant %+v", ev, tc)
			}
			if !reflect.DeepEqual(ev.Issuance, tc.issuance) {
				t.Errorf("issuance = %+v, want %+v", ev.Issuance, tc.issuance)
			}
		})
	}
}

// TestRequestEntries checks that request entries yield nothing: the
// response entry of the same call is the event.
func TestRequestEntries(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	d := New()
	n := 0
	for _, l := range ingesttest.Inputs(t)["testdata/vault-audit.ndjson"] {
		if !bytes.Contains(l, []byte(`"type":"request"`)) {
			continue
		}
		n++
		evs, err := d.Decode(nil, ingest.Record{Value: l})
		if err != nil || len(evs) != 0 {
			t.Fatalf("request entry: %d events, err %v", len(evs), err)
		}
	}
	if n == 0 {
		t.Fatal("no request entries in testdata")
	}
}

func TestCluster(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	d := New()
	d.Cluster = "prod-eu"
	evs, err := d.Decode(nil, ingest.Record{Value: ingesttest.Line(t, "vault-k8s.ndjson", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := evs[0].Identity.ID; got != "k8s:sa/prod-eu/prod/payments-api" {
		t.Errorf("identity %q", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	valid := string(ingesttest.Line(t, "vault-audit.ndjson", 73))
	ingesttest.Errors(t, New(), errorCases([][3]string{
		{"empty", "", ingest.ReasonInvalidJSON},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON},
		{"syslog framing", `<134>1 2020-04-30T14:27:10Z vault - - - ` + valid, ingest.ReasonInvalidJSON},
		{"not an object", `"response"`, ingest.ReasonNotAnEvent},
		{"unknown entry type", strings.Replace(valid, `"type":"response"`, `"type":"event"`, 1), ingest.ReasonNotAnEvent},
		{"no type", strings.Replace(valid, `"type":"response",`, ``, 1), ingest.ReasonNotAnEvent},
		{"invalid UTF-8", strings.Replace(valid, `"operation":"update"`, "\"operation\":\"upd\xf0\x28\x8c\xbcte\"", 1), ingest.ReasonInvalidUTF8},
		{"too deep", `{"type":"response","request":{"data":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`, ingest.ReasonTooDeep},
		{"time is a number", strings.Replace(valid, `"time":"2020-04-30T14:28:01.6167423Z"`, `"time":1588256881`, 1), ingest.ReasonBadField},
		{"time does not parse", strings.Replace(valid, `2020-04-30T14:28:01.6167423Z`, `30/Apr/2020 14:28:01`, 1), ingest.ReasonBadField},
		{"no time", strings.Replace(valid, `"time":"2020-04-30T14:28:01.6167423Z",`, ``, 1), ingest.ReasonMissingField},
		{"auth is an array", strings.Replace(valid, `"auth":{`, `"auth":[],"x":{`, 1), ingest.ReasonBadField},
		{"token_ttl overflows", strings.Replace(valid, `"token_type":"service"`, `"token_ttl":9223372036854775808`, 1), ingest.ReasonBadField},
		{"no operation", strings.Replace(valid, `"operation":"update",`, ``, 1), ingest.ReasonMissingField},
		{"nobody to blame", `{"time":"2020-04-30T14:28:01Z","type":"response","request":{"operation":"read","path":"sys/health"}}`, ingest.ReasonMissingField},
		{"raw token is never an identity", `{"time":"2020-04-30T14:28:01Z","type":"response","auth":{"client_token":"hvs.CAESIJ0"},"request":{"operation":"read","path":"sys/health"}}`, ingest.ReasonMissingField},
		{"bad service account", `{"time":"2020-04-30T14:28:01Z","type":"response","auth":{"metadata":{"service_account_name":"x"}},"request":{"operation":"read","path":"sys/health"}}`, ingest.ReasonBadField},
	}))
}

func TestMaxRecordBytes(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	raw := ingesttest.Line(t, "vault-audit.ndjson", 73)
	d := &Decoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}

// TestDecodeAppends checks the Decoder contract: events are appended to dst
// and a failed record leaves dst as it was.
func TestDecodeAppends(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	ingesttest.Appends(t, New(), ingesttest.Line(t, "vault-audit.ndjson", 73))
}

func FuzzDecode(f *testing.F) {
	ingesttest.InFormatDir(f, Format)
	ingesttest.Fuzz(f, New(),
		[]byte(`{"time":"2020-04-30T14:28:01Z","type":"response","auth":{"metadata":{"service_account_namespace":"a","service_account_name":"b"}},"request":{"operation":"update","path":"pki/issue/x"},"response":{"data":{"serial_number":"1","expiration":1}}}`))
}

func BenchmarkDecode(b *testing.B) {
	ingesttest.InFormatDir(b, Format)
	ingesttest.Bench(b, New())
}
