package cloudaudit

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

// TestGolden decodes every testdata line and compares the events (and the
// dead letters of lines that do not decode) with <input>.golden.ndjson.
func TestGolden(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	ingesttest.Golden(t, New())
}

// TestDecode checks the fields the detectors depend on, record by record,
// on AWS's own documentation examples.
func TestDecode(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
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
			raw := ingesttest.Line(t, "awsdocs.ndjson", tc.line)
			ev := ingesttest.DecodeOne(t, d, raw)
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
	ingesttest.InFormatDir(t, Format)
	d := New()
	file := ingesttest.Line(t, "records.ndjson", 1)
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
	evs, err = d.Decode(nil, ingest.Record{Value: ingesttest.Line(t, "records.ndjson", 2)})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[1].ID != schemas.HashID(Format, ingesttest.Line(t, "records.ndjson", 2))+"/1" {
		t.Errorf("got %d events, second id %q", len(evs), evs[len(evs)-1].ID)
	}

	evs, err = d.Decode(nil, ingest.Record{Value: []byte(`{"Records":[]}`)})
	if err != nil || len(evs) != 0 {
		t.Errorf("empty file: %d events, err %v", len(evs), err)
	}
}

func TestDecodeErrors(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	valid := string(ingesttest.Line(t, "awsdocs.ndjson", 5))
	file := string(ingesttest.Line(t, "records.ndjson", 1))
	panther := ingesttest.Inputs(t)["testdata/panther.ndjson"]
	checkErrors(t, New(), []errorCase{
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
	})
}

func TestMaxRecordBytes(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	raw := ingesttest.Line(t, "awsdocs.ndjson", 1)
	d := &Decoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}

// TestDecodeAppends checks the Decoder contract: events are appended to dst
// and a failed record leaves dst as it was.
func TestDecodeAppends(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	ingesttest.Appends(t, New(), ingesttest.Line(t, "awsdocs.ndjson", 1))
	// A whole file appends all of its events.
	ingesttest.Appends(t, New(), ingesttest.Line(t, "records.ndjson", 1))
}

func FuzzDecode(f *testing.F) {
	ingesttest.InFormatDir(f, Format)
	ingesttest.Fuzz(f, New(), []byte(`{"Records":[{"eventTime":"2024-01-15 10:30:00","eventSource":"sts.amazonaws.com","eventName":"AssumeRole","userIdentity":{"type":"AWSService","invokedBy":"ec2.amazonaws.com"},"requestParameters":"x","responseElements":{"credentials":{"expiration":7}}}]}`))
}

func BenchmarkDecode(b *testing.B) {
	ingesttest.InFormatDir(b, Format)
	ingesttest.Bench(b, New())
}

// TestLargeLogFile: an S3 log file of a few thousand events, several MiB once
// inflated, decodes whole with the default decoder.
func TestLargeLogFile(t *testing.T) {
	ingesttest.InFormatDir(t, Format)
	one := ingesttest.Line(t, "awsdocs.ndjson", 1)
	var b bytes.Buffer
	b.WriteString(`{"Records":[`)
	const n = 4000
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(bytes.Replace(one, []byte(`"eventID":"`), []byte(fmt.Sprintf(`"eventID":"%d-`, i)), 1))
	}
	b.WriteString(`]}`)
	if b.Len() < 2<<20 {
		t.Fatalf("file is only %d bytes; the test needs one over the 1 MiB single-record limit", b.Len())
	}
	evs, err := New().Decode(nil, ingest.Record{Value: b.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != n {
		t.Fatalf("%d events, want %d", len(evs), n)
	}
}
