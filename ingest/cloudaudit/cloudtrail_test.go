package cloudaudit

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
	"time"

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
				rec := ingest.Record{Topic: "cloudtrail", Partition: 1, Offset: int64(i), Value: line}
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

// TestDecode checks the fields the detectors depend on, record by record,
// on AWS's own documentation examples.
func TestDecode(t *testing.T) {
	tests := []struct {
		name     string
		line     int
		id       string
		identity string
		kind     schemas.IdentityKind
		session  string
		cred     schemas.Credential
		action   string
		resource string
		account  string
		result   schemas.Result
		ip       string
		time     string
		issuance *schemas.Issuance
	}{
		{
			name: "IAM user through the console", line: 1, id: "cEXAMPLE-127e-4632-980d-505a4EXAMPLE",
			identity: "aws:user/444455556666/JaneDoe", kind: schemas.KindUser,
			cred:   schemas.Credential{ID: "AKIAI44QH8DHBEXAMPLE", Type: "aws_access_key"},
			action: "iam:GetUserPolicy", resource: "arn:aws:iam::444455556666:user/JaneDoe", account: "444455556666",
			result: schemas.ResultSuccess, time: "2014-07-15T21:40:14Z",
		},
		{
			name: "IAM user assumes a role in another account", line: 2, id: "dEXAMPLE-ac7f-466c-a608-4ac8dEXAMPLE",
			identity: "aws:user/777788889999/JohnDoe", kind: schemas.KindUser,
			cred:   schemas.Credential{ID: "AKIAQRSTUVWXYZEXAMPLE", Type: "aws_access_key"},
			action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/EC2-dev", account: "111122223333",
			result: schemas.ResultSuccess, ip: "192.0.2.101", time: "2014-07-18T15:07:39Z",
			// The example's expiration is nine years after the call: no ttl.
			issuance: &schemas.Issuance{Credential: "AKIAQRSTUVWXYZEXAMPLE", CredentialType: "aws_sts", Subject: "aws:role/111122223333/EC2-dev", Issuer: "aws:sts", Requester: "aws:user/777788889999/JohnDoe"},
		},
		{
			name: "cross-account principal", line: 3, id: "dEXAMPLE-ac7f-466c-a608-4ac8dEXAMPLE",
			identity: "aws:account/777788889999", kind: schemas.KindUnknown,
			action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/EC2-dev", account: "777788889999",
			result: schemas.ResultSuccess, ip: "192.0.2.101", time: "2014-07-18T15:07:39Z",
			issuance: &schemas.Issuance{Credential: "AKIAQRSTUVWXYZEXAMPLE", CredentialType: "aws_sts", Subject: "aws:role/111122223333/EC2-dev", Issuer: "aws:sts", TTLSeconds: 3600, Requester: "aws:account/777788889999"},
		},
		{
			name: "role chaining with a ttl from the expiration", line: 4, id: "1917948f-3042-46ec-98e2-62865EXAMPLE",
			identity: "aws:role/111111111111/JohnRole1", kind: schemas.KindRole, session: "JohnRole1",
			cred:   schemas.Credential{ID: "AKIAI44QH8DHBEXAMPLE", Type: "aws_access_key"},
			action: "sts:AssumeRole", resource: "arn:aws:iam::111111111111:role/JohnRole2", account: "111111111111",
			result: schemas.ResultSuccess, ip: "123.145.67.89", time: "2019-10-02T22:12:29Z",
			issuance: &schemas.Issuance{Credential: "ASIAWHOJDLGPOEXAMPLE", CredentialType: "aws_sts", Subject: "aws:role/111111111111/test-role", Issuer: "aws:sts", TTLSeconds: 3600, Requester: "aws:role/111111111111/JohnRole1"},
		},
		{
			name: "assumed role deletes a bucket", line: 5, id: "dEXAMPLE-265a-41e0-9352-4401bEXAMPLE",
			identity: "aws:role/777788889999/AssumeNothing", kind: schemas.KindRole, session: "devdsk",
			cred:   schemas.Credential{ID: "AKIAQRSTUVWXYZEXAMPLE", Type: "aws_access_key"},
			action: "s3:DeleteBucket", resource: "arn:aws:s3:::my-test-bucket-cross-account", account: "777788889999",
			result: schemas.ResultSuccess, ip: "192.0.2.1", time: "2016-11-14T17:25:45Z",
		},
		{
			name: "SAML user resolves to the role it assumes", line: 6, id: "dEXAMPLE-265a-41e0-9352-4401bEXAMPLE",
			identity: "aws:role/444455556666/SAMLTestRoleShibboleth", kind: schemas.KindRole, session: "MyAssignedRoleSessionName",
			action: "sts:AssumeRoleWithSAML", resource: "arn:aws:iam::444455556666:role/SAMLTestRoleShibboleth", account: "444455556666",
			result: schemas.ResultSuccess, ip: "192.0.2.101", time: "2019-11-01T19:14:36Z",
			issuance: &schemas.Issuance{Credential: "AKIAIOSFODNN7EXAMPLE", CredentialType: "aws_sts", Subject: "aws:role/444455556666/SAMLTestRoleShibboleth", Issuer: "aws:sts", TTLSeconds: 3600, Requester: "aws:role/444455556666/SAMLTestRoleShibboleth"},
		},
		{
			name: "web identity resolves to the role it assumes", line: 7, id: "bEXAMPLE-0b30-4246-b28c-e3da3EXAMPLE",
			identity: "aws:role/444455556666/FederatedWebIdentityRole", kind: schemas.KindRole, session: "MyAssignedRoleSessionName",
			action: "sts:AssumeRoleWithWebIdentity", resource: "arn:aws:iam::444455556666:role/FederatedWebIdentityRole", account: "444455556666",
			result: schemas.ResultSuccess, ip: "192.0.2.101", time: "2016-03-23T01:39:51Z",
			issuance: &schemas.Issuance{Credential: "ASIACQRSTUVWRAOEXAMPLE", CredentialType: "aws_sts", Subject: "aws:role/444455556666/FederatedWebIdentityRole", Issuer: "aws:sts", TTLSeconds: 3600, Requester: "aws:role/444455556666/FederatedWebIdentityRole"},
		},
		{
			name: "failed console sign-in has no errorCode", line: 8, id: "11ea990b-4678-4bcd-8fbe-62509088b7cf",
			identity: "aws:user/111122223333/JaneDoe", kind: schemas.KindUser,
			action: "signin:ConsoleLogin", account: "111122223333",
			result: schemas.ResultFailure, ip: "192.0.2.100", time: "2014-07-08T17:35:27Z",
		},
		{
			name: "unknown user name hidden by CloudTrail", line: 9, id: "a7654656-0417-45c6-9386-ea8231385051",
			identity: "aws:user/123456789012/HIDDEN_DUE_TO_SECURITY_REASONS", kind: schemas.KindUser,
			action: "signin:ConsoleLogin", account: "123456789012",
			result: schemas.ResultFailure, ip: "192.0.2.101", time: "2015-03-31T22:20:42Z",
		},
	}
	d := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := line(t, "awsdocs.ndjson", tc.line)
			evs, err := d.Decode(nil, ingest.Record{Value: raw})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 {
				t.Fatalf("got %d events, want 1", len(evs))
			}
			ev := evs[0]
			checks := []struct{ field, got, want string }{
				{"id", ev.ID, tc.id},
				{"identity.id", ev.Identity.ID, tc.identity},
				{"identity.kind", string(ev.Identity.Kind), string(tc.kind)},
				{"actor.session", ev.Actor.Session, tc.session},
				{"credential.id", ev.Credential.ID, tc.cred.ID},
				{"credential.type", ev.Credential.Type, tc.cred.Type},
				{"action", ev.Action, tc.action},
				{"target.resource", ev.Target.Resource, tc.resource},
				{"source.account", ev.Source.Account, tc.account},
				{"source.region", ev.Source.Region, "us-east-2"},
				{"source.provider", ev.Source.Provider, "aws"},
				{"outcome.result", string(ev.Outcome.Result), string(tc.result)},
				{"actor.ip", ev.Actor.IP, tc.ip},
				{"time", ev.Time.Format(time.RFC3339), tc.time},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
				}
			}
			if !reflect.DeepEqual(ev.Issuance, tc.issuance) {
				t.Errorf("issuance = %+v, want %+v", ev.Issuance, tc.issuance)
			}
		})
	}
}

func TestOutcome(t *testing.T) {
	tests := []struct {
		code, message string
		want          schemas.Result
	}{
		{"", "", schemas.ResultSuccess},
		{"AccessDenied", "", schemas.ResultDenied},
		{"AccessDeniedException", "", schemas.ResultDenied},
		{"UnauthorizedOperation", "", schemas.ResultDenied},
		{"Client.UnauthorizedOperation", "", schemas.ResultDenied},
		{"VpceAccessDenied", "", schemas.ResultDenied},
		{"Forbidden", "", schemas.ResultDenied},
		{"NoSuchEntity", "", schemas.ResultFailure},
		{"ExpiredToken", "", schemas.ResultFailure},
		{"", "Failed authentication", schemas.ResultFailure},
	}
	for _, tc := range tests {
		r := trailEvent{ErrorCode: tc.code, ErrorMessage: tc.message}
		if got := r.outcome(&responseElements{}); got.Result != tc.want || got.ErrorCode != tc.code {
			t.Errorf("outcome(%q, %q) = %+v, want %s", tc.code, tc.message, got, tc.want)
		}
	}
}

func TestDecodeRecords(t *testing.T) {
	d := New()
	file := line(t, "records.ndjson", 1)
	evs, err := d.Decode(nil, ingest.Record{Topic: "cloudtrail", Offset: 7, Value: file})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, ev := range evs {
		ids = append(ids, ev.ID)
		if ev.Provenance.Offset != 7 {
			t.Errorf("provenance %+v, want offset 7", ev.Provenance)
		}
	}
	want := []string{"cEXAMPLE-127e-4632-980d-505a4EXAMPLE", "1917948f-3042-46ec-98e2-62865EXAMPLE", "dEXAMPLE-265a-41e0-9352-4401bEXAMPLE"}
	if !reflect.DeepEqual(ids, want) {
		t.Errorf("ids %q, want %q", ids, want)
	}

	// An event without eventID in a file gets the file's hash and its index.
	evs, err = d.Decode(nil, ingest.Record{Value: line(t, "records.ndjson", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].ID != schemas.HashID(Format, line(t, "records.ndjson", 2))+"/1" {
		t.Errorf("got %d events, second id %q", len(evs), evs[len(evs)-1].ID)
	}

	evs, err = d.Decode(nil, ingest.Record{Value: []byte(`{"Records":[]}`)})
	if err != nil || len(evs) != 0 {
		t.Errorf("empty file: %d events, err %v", len(evs), err)
	}
}

func TestDecodeErrors(t *testing.T) {
	valid := string(line(t, "awsdocs.ndjson", 5))
	file := string(line(t, "records.ndjson", 1))
	panther := inputs(t)["testdata/panther.ndjson"]
	tests := []struct {
		name   string
		in     string
		reason string
		detail string // a substring of Detail, when set
	}{
		{"empty", "", ingest.ReasonInvalidJSON, ""},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON, ""},
		{"truncated file", file[:len(file)-2], ingest.ReasonInvalidJSON, ""},
		{"not an object", `[` + valid + `]`, ingest.ReasonNotAnEvent, ""},
		{"trail configuration, not an event", string(panther[0]), ingest.ReasonNotAnEvent, ""},
		{"invalid UTF-8", strings.Replace(valid, `devdsk"`, "dev\xe0\x80dsk\"", 1), ingest.ReasonInvalidUTF8, ""},
		{"too deep", `{"requestParameters":` + strings.Repeat(`{"a":`, 64) + `1` + strings.Repeat(`}`, 64) + `}`, ingest.ReasonTooDeep, ""},
		{"eventTime is a number", strings.Replace(valid, `"eventTime":"2016-11-14T17:25:45Z"`, `"eventTime":1479144345`, 1), ingest.ReasonBadField, "eventTime"},
		{"eventTime overflows", strings.Replace(valid, `"eventTime":"2016-11-14T17:25:45Z"`, `"eventTime":1e999`, 1), ingest.ReasonBadField, "eventTime"},
		{"eventTime does not parse", strings.Replace(valid, `2016-11-14T17:25:45Z`, `14/Nov/2016:17:25:45`, 1), ingest.ReasonBadField, "eventTime"},
		{"no eventTime", strings.Replace(valid, `"eventTime":"2016-11-14T17:25:45Z",`, ``, 1), ingest.ReasonMissingField, "eventTime"},
		{"userIdentity is a string", strings.Replace(valid, `"userIdentity":{`, `"userIdentity":"x","u":{`, 1), ingest.ReasonBadField, "userIdentity"},
		{"resources is an object", strings.Replace(valid, `"eventType"`, `"resources":{"ARN":"x"},"eventType"`, 1), ingest.ReasonBadField, "resources"},
		{"no userIdentity", `{"eventTime":"2016-11-14T17:25:45Z","eventSource":"ec2.amazonaws.com","eventName":"DescribeInstances"}`, ingest.ReasonMissingField, "userIdentity"},
		{"userIdentity names nobody", `{"eventTime":"2016-11-14T17:25:45Z","eventSource":"s3.amazonaws.com","eventName":"DeleteBucket","userIdentity":{}}`, ingest.ReasonMissingField, "userIdentity"},
		{"unparsable principal ARN", `{"eventTime":"2016-11-14T17:25:45Z","eventName":"X","userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::123:group/admins"}}`, ingest.ReasonBadField, "arn"},
		{"bad record in a file", `{"Records":[` + valid + `,{"eventName":"X","userIdentity":{}}]}`, ingest.ReasonMissingField, "Records[1]: "},
		{"wrong type in a file", `{"Records":[` + valid + `,` + valid + `,{"eventTime":[]}]}`, ingest.ReasonBadField, "Records.2"},
	}
	d := New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]schemas.Event, 1)
			evs, err := d.Decode(dst, ingest.Record{Value: []byte(tc.in)})
			var de *ingest.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a *DecodeError", err)
			}
			if de.Reason != tc.reason || de.Format != Format || !strings.Contains(de.Detail, tc.detail) {
				t.Errorf("got %s/%s (%s), want reason %s, detail with %q", de.Format, de.Reason, de.Detail, tc.reason, tc.detail)
			}
			if len(evs) != 1 {
				t.Errorf("dst has %d events after an error, want it unchanged (1)", len(evs))
			}
		})
	}
}

func TestMaxRecordBytes(t *testing.T) {
	raw := line(t, "awsdocs.ndjson", 1)
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
	dst, err := d.Decode(dst, ingest.Record{Value: line(t, "awsdocs.ndjson", 1)})
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
	f.Add([]byte(`{"Records":[{"eventTime":"2024-01-15 10:30:00","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","userIdentity":{"type":"AWSService","invokedBy":"ec2.amazonaws.com"},"requestParameters":"x","responseElements":{"credentials":{"expiration":7}}}]}`))
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
		for _, ev := range evs { // a file may hold any number of events
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
