package cloudaudit

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	signInPanther = "panther-analysis-azure-signin-rule-tests.ndjson"
	auditPanther  = "panther-analysis-azure-entra-auditlogs-rule-tests.ndjson"
)

func TestGoldenEntraSignIn(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEntraSignIn)
	ingesttest.Golden(t, NewEntraSignIn())
}

func TestDecodeEntraSignIn(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEntraSignIn)
	tests := []struct {
		name, file                                                         string
		line                                                               int
		id, identity, kind, cred, ip, action, resource, result, code, time string
	}{
		{
			name: "managed identity to Key Vault", file: "entra-signin-variants.ndjson", line: 1,
			id: "entra:66ea54eb-6301-4ee5-be62-ff5a759b8100", identity: "azure:sp/3f2e1d0c-9b8a-4766-8554-433221100fed", kind: "service_principal",
			ip: "10.20.0.4", action: "entra:signin:Azure Key Vault", resource: "cfa8b339-82a2-471a-a3c9-0fc0be7a4093",
			result: "success", time: "2024-06-10T08:00:01.234567Z",
		},
		{
			name: "service principal blocked by conditional access", file: "entra-signin-variants.ndjson", line: 2,
			id: "entra:77ea54eb-6301-4ee5-be62-ff5a759b8101", identity: "azure:sp/5b7e3c1a-2f4d-4e6a-9b8c-0d1e2f3a4b5c", kind: "service_principal",
			cred: "4c1d2e3f-5a6b-4c7d-8e9f-0a1b2c3d4e5f", ip: "185.220.101.4", action: "entra:signin:Windows Azure Service Management API",
			resource: "Windows Azure Service Management API", result: "denied", code: "53003", time: "2024-06-10T08:01:59Z",
		},
		{
			name: "service principal with an invalid client secret (lower-cased keys)", file: signInPanther, line: 6,
			id: "entra:36658c78-02d9-4d8f-84ee-5ca4a3fdefef", identity: "azure:sp/cfceb902-8fab-4f8c-88ba-374d3c975c3a", kind: "service_principal",
			ip: "12.12.12.12", action: "entra:signin:Azure Storage", resource: "037694de-8c7d-498d-917d-edb650090fa5",
			result: "failure", code: "7000215", time: "2023-07-26T22:58:30.983201Z",
		},
		{
			name: "service principal signs in with a key", file: signInPanther, line: 7,
			id: "entra:55270060-d8fe-435e-9bf2-219a1d456b60", identity: "azure:sp/3b245ca3-dcce-4a54-a070-49ad8de02963", kind: "service_principal",
			cred: "2afc776a-4e79-4588-b2ad-f62c94d6bea8", ip: "12.12.12.12", action: "entra:signin:Office 365 Management APIs",
			resource: "9cc31481-8822-49ff-b638-552ecc26c777", result: "success", time: "2023-07-27T13:59:53.69168Z",
		},
		{
			name: "user sign-in through an app is the user", file: signInPanther, line: 1,
			identity: "azure:user/aragorn@lotr.com", kind: "user", ip: "2.2.2.2", action: "entra:signin:Microsoft Graph",
			resource: "Microsoft Graph", result: "success", time: "2025-01-15T09:30:45.123Z",
		},
		{
			name: "locked account", file: signInPanther, line: 3,
			identity: "azure:user/boromir@lotr.com", kind: "user", ip: "4.4.4.4", action: "entra:signin:Microsoft Graph",
			resource: "Microsoft Graph", result: "failure", code: "50053", time: "2025-01-15T08:15:23.456Z",
		},
	}
	d := NewEntraSignIn()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := ingesttest.Line(t, tc.file, tc.line)
			ev := ingesttest.DecodeOne(t, d, raw)
			if tc.id == "" {
				tc.id = schemas.HashID(FormatEntraSignIn, raw)
			}
			checkFields(t, []field{
				{"id", ev.ID, tc.id},
				{"identity.id", ev.Identity.ID, tc.identity},
				{"identity.kind", string(ev.Identity.Kind), tc.kind},
				{"credential.id", ev.Credential.ID, tc.cred},
				{"actor.ip", ev.Actor.IP, tc.ip},
				{"action", ev.Action, tc.action},
				{"target.resource", ev.Target.Resource, tc.resource},
				{"outcome.result", string(ev.Outcome.Result), tc.result},
				{"outcome.error_code", ev.Outcome.ErrorCode, tc.code},
				{"time", ev.Time.Format(time.RFC3339Nano), tc.time},
				{"source.provider", ev.Source.Provider, "azure"},
			})
			if tc.cred != "" && ev.Credential.Type != "azure_client_credential" {
				t.Errorf("credential.type = %q", ev.Credential.Type)
			}
		})
	}
}

func TestDecodeEntraSignInErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEntraSignIn)
	valid := string(ingesttest.Line(t, "entra-signin-variants.ndjson", 2))
	checkErrors(t, NewEntraSignIn(), []errorCase{
		{"empty", "", ingest.ReasonInvalidJSON, ""},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON, ""},
		{"not an object", `null`, ingest.ReasonNotAnEvent, ""},
		{"invalid UTF-8", strings.Replace(valid, "deploy-pipeline", "deploy\xe2\x28pipeline", 1), ingest.ReasonInvalidUTF8, ""},
		{"too deep", `{"properties":{"x":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`, ingest.ReasonTooDeep, ""},
		{"createdDateTime does not parse", strings.Replace(valid, `2024-06-10T08:01:59.0000000Z`, `today`, 1), ingest.ReasonBadField, "createdDateTime"},
		{"time is a number", strings.Replace(strings.Replace(valid, `"createdDateTime":"2024-06-10T08:01:59.0000000Z",`, ``, 1), `"time":"2024-06-10T08:02:00.0000000Z"`, `"time":1e999`, 1), ingest.ReasonBadField, "time"},
		{"no time", `{"category":"ServicePrincipalSignInLogs","properties":{"appId":"a"}}`, ingest.ReasonMissingField, "time"},
		{"no identity", `{"time":"2024-06-10T08:02:00Z","category":"ServicePrincipalSignInLogs","properties":{"ipAddress":"1.2.3.4"}}`, ingest.ReasonMissingField, "appId"},
		{"properties is a string", `{"time":"2024-06-10T08:02:00Z","properties":"x"}`, ingest.ReasonMissingField, ""},
		{"an audit log record", `{"category":"AuditLogs","properties":{}}`, ingest.ReasonNotAnEvent, "AuditLogs"},
		{"no properties", `{"time":"2024-06-10T08:02:00Z"}`, ingest.ReasonNotAnEvent, "properties"},
	})
}

func TestSignInOutcome(t *testing.T) {
	tests := []struct {
		code, resultType string
		want             schemas.Result
	}{
		{"0", "", schemas.ResultSuccess},
		{"", "Success", schemas.ResultSuccess},
		{"", "Failure", schemas.ResultFailure},
		{"", "50126", schemas.ResultFailure},
		{"7000215", "", schemas.ResultFailure},
		{"53003", "", schemas.ResultDenied},
		{"50105", "", schemas.ResultDenied},
	}
	for _, tc := range tests {
		if got := signInOutcome(tc.code, tc.resultType); got.Result != tc.want {
			t.Errorf("signInOutcome(%q, %q) = %+v, want %s", tc.code, tc.resultType, got, tc.want)
		}
	}
}

func TestDecodeEntraSignInAppends(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEntraSignIn)
	ingesttest.Appends(t, NewEntraSignIn(), ingesttest.Line(t, "entra-signin-variants.ndjson", 1))
}

func FuzzDecodeEntraSignIn(f *testing.F) {
	ingesttest.InFormatDir(f, FormatEntraSignIn)
	ingesttest.Fuzz(f, NewEntraSignIn())
}

func BenchmarkDecodeEntraSignIn(b *testing.B) {
	ingesttest.InFormatDir(b, FormatEntraSignIn)
	ingesttest.Bench(b, NewEntraSignIn())
}

func TestGoldenEntraAudit(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEntraAudit)
	ingesttest.Golden(t, NewEntraAudit())
}

func TestDecodeEntraAudit(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEntraAudit)
	tests := []struct {
		name, file                                                   string
		line                                                         int
		id, identity, kind, ip, action, resource, result, code, time string
		issuance                                                     *schemas.Issuance
	}{
		{
			name: "app adds a client secret to an application", file: "entra-audit-variants.ndjson", line: 1,
			id: "entra:Directory_1a2b3c4d_XYZ12_123456789", identity: "azure:sp/5b7e3c1a-2f4d-4e6a-9b8c-0d1e2f3a4b5c", kind: "service_principal",
			action: "entra:Update application – Certificates and secrets management", resource: "Application/9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
			result: "success", time: "2024-06-10T08:59:58.123456Z",
			issuance: &schemas.Issuance{Credential: "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9", CredentialType: "azure_client_secret",
				Subject: "azure:sp/c0ffee00-1234-4abc-9def-0123456789ab", Issuer: "azure:entra", Requester: "azure:sp/5b7e3c1a-2f4d-4e6a-9b8c-0d1e2f3a4b5c"},
		},
		{
			name: "insufficient privileges is denied, nothing issued", file: "entra-audit-variants.ndjson", line: 2,
			id: "entra:Directory_failed_1", identity: "azure:user/intern@contoso.com", kind: "user", ip: "203.0.113.5",
			action: "entra:Add service principal credentials", resource: "ServicePrincipal/0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
			result: "denied", code: "Insufficient privileges to complete the operation.", time: "2024-06-10T09:05:00Z",
		},
		{
			name: "user adds service principal credentials, key id not logged", file: auditPanther, line: 20,
			identity: "azure:user/frodo@lotr.com", kind: "user", ip: "2.2.2.2",
			action: "entra:Add service principal credentials", resource: "ServicePrincipal/sp-app-456",
			result: "success", time: "2025-01-15T09:30:20.123456Z",
			issuance: &schemas.Issuance{CredentialType: "azure_client_secret", Subject: "azure:object/sp-app-456", Issuer: "azure:entra", Requester: "azure:user/frodo@lotr.com"},
		},
		{
			name: "failed invitation", file: auditPanther, line: 9,
			id: "entra:Invited Users_123456789", identity: "azure:user/denethor@lotr.com", kind: "user", ip: "1.2.3.4",
			action: "entra:Invite external user", resource: "User/123456789", result: "failure", time: "2024-09-23T14:33:09",
		},
	}
	d := NewEntraAudit()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := ingesttest.Line(t, tc.file, tc.line)
			ev := ingesttest.DecodeOne(t, d, raw)
			if tc.id == "" {
				tc.id = schemas.HashID(FormatEntraAudit, raw)
			}
			checkFields(t, []field{
				{"id", ev.ID, tc.id},
				{"identity.id", ev.Identity.ID, tc.identity},
				{"identity.kind", string(ev.Identity.Kind), tc.kind},
				{"actor.ip", ev.Actor.IP, tc.ip},
				{"action", ev.Action, tc.action},
				{"target.resource", ev.Target.Resource, tc.resource},
				{"outcome.result", string(ev.Outcome.Result), tc.result},
				{"outcome.error_code", ev.Outcome.ErrorCode, tc.code},
				{"time", ev.Time.Format(time.RFC3339Nano)[:len(tc.time)], tc.time},
			})
			if !reflect.DeepEqual(ev.Issuance, tc.issuance) {
				t.Errorf("issuance = %+v, want %+v", ev.Issuance, tc.issuance)
			}
		})
	}
}

func TestDecodeEntraAuditErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEntraAudit)
	valid := string(ingesttest.Line(t, "entra-audit-variants.ndjson", 2))
	checkErrors(t, NewEntraAudit(), []errorCase{
		{"empty", "", ingest.ReasonInvalidJSON, ""},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON, ""},
		{"not an object", `1`, ingest.ReasonNotAnEvent, ""},
		{"invalid UTF-8", strings.Replace(valid, "intern@", "int\xffern@", 1), ingest.ReasonInvalidUTF8, ""},
		{"too deep", `{"properties":{"targetResources":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`, ingest.ReasonTooDeep, ""},
		{"activityDateTime does not parse", strings.Replace(valid, `"activityDateTime":"2024-06-10T09:05:00.0000000Z"`, `"activityDateTime":"soon"`, 1), ingest.ReasonBadField, "activityDateTime"},
		{"time is huge", `{"time":1e999,"operationName":"x","properties":{}}`, ingest.ReasonBadField, "time"},
		{"no time", `{"operationName":"x","properties":{"initiatedBy":{"user":{"userPrincipalName":"a@b"}}}}`, ingest.ReasonMissingField, "time"},
		{"no initiator", strings.Replace(valid, `"initiatedBy":{"user":{"userPrincipalName":"intern@contoso.com","ipAddress":"203.0.113.5"}},`, ``, 1), ingest.ReasonMissingField, "initiatedBy"},
		{"no operation", `{"time":"2024-06-10T09:05:00Z","properties":{}}`, ingest.ReasonMissingField, "operationName"},
		{"a sign-in record", `{"category":"SignInLogs","properties":{}}`, ingest.ReasonNotAnEvent, "sign-in"},
		{"no properties", `{"time":"2024-06-10T09:05:00Z","operationName":"x"}`, ingest.ReasonNotAnEvent, "properties"},
	})
}

func TestDecodeEntraAuditAppends(t *testing.T) {
	ingesttest.InFormatDir(t, FormatEntraAudit)
	ingesttest.Appends(t, NewEntraAudit(), ingesttest.Line(t, "entra-audit-variants.ndjson", 1))
}

func FuzzDecodeEntraAudit(f *testing.F) {
	ingesttest.InFormatDir(f, FormatEntraAudit)
	ingesttest.Fuzz(f, NewEntraAudit())
}

func BenchmarkDecodeEntraAudit(b *testing.B) {
	ingesttest.InFormatDir(b, FormatEntraAudit)
	ingesttest.Bench(b, NewEntraAudit())
}
