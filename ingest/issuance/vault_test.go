package issuance

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.ndjson")

// inputs returns the testdata input files and their lines.
func inputs(t testing.TB) map[string][][]byte {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][][]byte{}
	for _, p := range paths {
		if strings.HasSuffix(p, ".golden.ndjson") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for line := range bytes.Lines(b) {
			if line = bytes.TrimRight(line, "\r\n"); len(line) > 0 {
				out[p] = append(out[p], line)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no testdata inputs")
	}
	return out
}

// TestGolden decodes every testdata line and compares the events (and the
// dead letters of lines that do not decode) with <input>.golden.ndjson.
func TestGolden(t *testing.T) {
	d := New()
	for path, lines := range inputs(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			var got bytes.Buffer
			for i, line := range lines {
				rec := ingest.Record{Topic: "vault", Partition: 1, Offset: int64(i), Value: line}
				evs, err := d.Decode(nil, rec)
				if err != nil {
					var de *ingest.DecodeError
					if !errors.As(err, &de) {
						t.Fatalf("line %d: error %T is not a *DecodeError", i+1, err)
					}
					writeJSON(t, &got, map[string]any{"dead_letter": map[string]any{"line": i + 1, "reason": de.Reason, "detail": de.Detail}})
				}
				for _, ev := range evs {
					writeJSON(t, &got, ev)
				}
			}
			golden := strings.TrimSuffix(path, ".ndjson") + ".golden.ndjson"
			if *update {
				if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("%s differs from the decoded events; run go test -update and review the diff\ngot:\n%s", golden, got.Bytes())
			}
		})
	}
}

func writeJSON(t *testing.T, w *bytes.Buffer, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.WriteByte('\n')
}

func line(t *testing.T, file string, n int) []byte {
	t.Helper()
	lines := inputs(t)["testdata/"+file]
	if n > len(lines) {
		t.Fatalf("%s has %d lines, want line %d", file, len(lines), n)
	}
	return lines[n-1]
}

const (
	rootAccessor  = "hmac-sha256:a01c4d69aa0bc6ea78d41ab81f0780cccbb2594e820c5823214327fa1b8d1802"
	adminAccessor = "hmac-sha256:18e2ca53bac3d2821fe22b5ad63969fb79ff13bc07525f320ceafefefc93f907"
)

// TestDecode checks the fields the detectors depend on, entry by entry.
func TestDecode(t *testing.T) {
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
			raw := line(t, tc.file, tc.line)
			evs, err := d.Decode(nil, ingest.Record{Value: raw})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
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
	d := New()
	n := 0
	for _, l := range inputs(t)["testdata/vault-audit.ndjson"] {
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
	d := New()
	d.Cluster = "prod-eu"
	evs, err := d.Decode(nil, ingest.Record{Value: line(t, "vault-k8s.ndjson", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got := evs[0].Identity.ID; got != "k8s:sa/prod-eu/prod/payments-api" {
		t.Errorf("identity %q", got)
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := string(line(t, "vault-audit.ndjson", 73))
	tests := []struct {
		name   string
		in     string
		reason string
	}{
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
	}
	d := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := d.Decode(nil, ingest.Record{Value: []byte(tc.in)})
			var de *ingest.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DecodeError", err)
			}
			if de.Reason != tc.reason || de.Format != Format {
				t.Errorf("got %s/%s (%s), want reason %s", de.Format, de.Reason, de.Detail, tc.reason)
			}
			if len(evs) != 0 {
				t.Errorf("got %d events with an error", len(evs))
			}
		})
	}
}

func TestMaxRecordBytes(t *testing.T) {
	raw := line(t, "vault-audit.ndjson", 73)
	d := &Decoder{MaxRecordBytes: len(raw) - 1}
	_, err := d.Decode(nil, ingest.Record{Value: raw})
	var de *ingest.DecodeError
	if !errors.As(err, &de) || de.Reason != ingest.ReasonTooLarge {
		t.Fatalf("err = %v, want %s", err, ingest.ReasonTooLarge)
	}
	d.MaxRecordBytes = len(raw)
	if _, err := d.Decode(nil, ingest.Record{Value: raw}); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeAppends checks the Decoder contract: events are appended to dst
// and a failed record leaves dst as it was.
func TestDecodeAppends(t *testing.T) {
	d := New()
	dst := make([]schemas.Event, 1, 4)
	dst, err := d.Decode(dst, ingest.Record{Value: line(t, "vault-audit.ndjson", 73)})
	if err != nil || len(dst) != 2 {
		t.Fatalf("len = %d, err = %v; want 2, nil", len(dst), err)
	}
	dst, err = d.Decode(dst, ingest.Record{Value: []byte("{")})
	if err == nil || len(dst) != 2 {
		t.Fatalf("len = %d, err = %v; want 2 and an error", len(dst), err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, lines := range inputs(f) {
		for _, l := range lines {
			f.Add(l)
		}
	}
	f.Add([]byte(`{"time":"2020-04-30T14:28:01Z","type":"response","auth":{"metadata":{"service_account_namespace":"a","service_account_name":"b"}},"request":{"operation":"update","path":"pki/issue/x"},"response":{"data":{"serial_number":"1","expiration":1}}}`))
	d := New()
	f.Fuzz(func(t *testing.T, raw []byte) {
		evs, err := d.Decode(nil, ingest.Record{Value: raw})
		if err != nil {
			var de *ingest.DecodeError
			if !errors.As(err, &de) || de.Reason == "" {
				t.Fatalf("error %v is not a *DecodeError with a reason", err)
			}
			if len(evs) != 0 {
				t.Fatalf("%d events with an error", len(evs))
			}
			return
		}
		for _, ev := range evs { // none for a request entry
			if ev.ID == "" || ev.Identity.ID == "" || ev.Time.IsZero() || ev.Action == "" {
				t.Fatalf("incomplete event %+v", ev)
			}
			if _, err := json.Marshal(ev); err != nil {
				t.Fatalf("event does not encode: %v", err)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	d := New()
	var recs [][]byte
	size := 0
	for _, lines := range inputs(b) {
		for _, l := range lines {
			if _, err := d.Decode(nil, ingest.Record{Value: l}); err != nil {
				continue // the dead letters of the golden files are not the common case
			}
			recs = append(recs, l)
			size += len(l)
		}
	}
	dst := make([]schemas.Event, 0, 1)
	b.SetBytes(int64(size / len(recs)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var err error
		dst, err = d.Decode(dst[:0], ingest.Record{Value: recs[i%len(recs)]})
		if err != nil {
			b.Fatal(err)
		}
		i++
	}
}
