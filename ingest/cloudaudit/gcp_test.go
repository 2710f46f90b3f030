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

const gcpPanther = "panther-analysis-gcp-auditlog-rule-tests.ndjson"

func TestGoldenGCPAudit(t *testing.T) {
	ingesttest.InFormatDir(t, FormatGCPAudit)
	ingesttest.Golden(t, NewGCPAudit())
}

func TestDecodeGCPAudit(t *testing.T) {
	ingesttest.InFormatDir(t, FormatGCPAudit)
	tests := []struct {
		name, file                                string
		line                                      int
		id, identity, kind, cred, peer, ip, ua    string
		action, resource, account, region, result string
		errorCode, time                           string
		issuance                                  *schemas.Issuance
	}{
		{
			name: "service account key created under delegation", file: "gcp-variants.ndjson", line: 1,
			id: "gcp:1a2b3c4d5e", identity: "gcp:sa/deployer@payments-prod.iam.gserviceaccount.com", kind: "service_account",
			cred: "0f1e2d3c4b5a69788796a5b4c3d2e1f001234567", peer: "gcp:sa/ci-runner@build-infra.iam.gserviceaccount.com",
			ip: "34.121.8.17", ua: "google-api-go-client/0.5 Terraform/1.7.4",
			action: "iam:CreateServiceAccountKey", resource: "projects/-/serviceAccounts/102938475610293847561",
			account: "payments-prod", result: "success", time: "2024-06-10T06:13:20.951Z",
			issuance: &schemas.Issuance{Credential: "9a8b7c6d5e4f30211203f4e5d6c7b8a9fedcba98", CredentialType: "gcp_sa_key",
				Subject: "gcp:sa/backup-agent@payments-prod.iam.gserviceaccount.com", Issuer: "gcp:iam",
				Requester: "gcp:sa/deployer@payments-prod.iam.gserviceaccount.com"},
		},
		{
			name: "short-lived access token for another service account", file: "gcp-variants.ndjson", line: 2,
			id: "gcp:9z8y7x6w", identity: "gcp:sa/ci-runner@build-infra.iam.gserviceaccount.com", kind: "service_account",
			ip: "2600:1900:4000:9a::12", ua: "google-cloud-sdk gcloud/470.0.0",
			action: "iamcredentials:GenerateAccessToken", resource: "projects/-/serviceAccounts/110000000000000000001",
			account: "payments-prod", result: "success", time: "2024-06-10T06:13:05.1Z",
			issuance: &schemas.Issuance{CredentialType: "gcp_access_token", Subject: "gcp:sa/deployer@payments-prod.iam.gserviceaccount.com",
				Issuer: "gcp:iam", TTLSeconds: 900, Requester: "gcp:sa/ci-runner@build-infra.iam.gserviceaccount.com"},
		},
		{
			name: "PERMISSION_DENIED key creation is denied, no issuance", file: "gcp-variants.ndjson", line: 3,
			id: "gcp:den1ed", identity: "gcp:sa/reporting@payments-prod.iam.gserviceaccount.com", kind: "service_account",
			ip: "10.8.0.5", action: "iam:CreateServiceAccountKey", resource: "projects/-/serviceAccounts/deployer@payments-prod.iam.gserviceaccount.com",
			account: "payments-prod", result: "denied", errorCode: "PERMISSION_DENIED", time: "2024-06-10T06:20:00Z",
		},
		{
			name: "anonymous UNAUTHENTICATED read falls back to the caller address", file: "gcp-variants.ndjson", line: 4,
			id: "gcp:unauth16", identity: "ip:198.51.100.23", kind: "unknown", ip: "198.51.100.23", ua: "curl/8.4.0",
			action: "storage:objects.get", resource: "projects/_/buckets/payments-exports/objects/ledger.csv",
			account: "payments-prod", region: "europe-west1", result: "denied", errorCode: "UNAUTHENTICATED", time: "2024-06-10T06:21:00Z",
		},
		{
			name: "GKE service account in principalEmail", file: "gcp-variants.ndjson", line: 5,
			id: "gcp:gke-sa-1", identity: "k8s:sa/prod-eu/payments/ledger-api", kind: "service_account", ip: "10.4.1.20", ua: "ledger-api/2.3",
			action: "k8s:get:secrets", resource: "core/v1/namespaces/payments/secrets/db-password",
			account: "payments-prod", region: "europe-west1", result: "failure", errorCode: "NOT_FOUND", time: "2024-06-10T06:22:00.5Z",
		},
		{
			name: "human user, REST method name", file: gcpPanther, line: 1,
			id: "gcp:12345", identity: "gcp:user/user1@company.io", kind: "user", ip: "1.2.3.4",
			ua:     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/110.0.0.0 Safari/537.36,gzip(gfe),gzip(gfe)",
			action: "compute:subnetworks.patch", resource: "projects/test-project/regions/us-central1/subnetworks/default",
			account: "test-project", region: "us-central1", result: "success", time: "2023-03-08T18:52:52.114Z",
		},
		{
			name: "service-account key in use, Panther time format", file: gcpPanther, line: 13,
			identity: "gcp:sa/whodoneit@some-project.iam.gserviceaccount.com", kind: "service_account", cred: "123er456788",
			ip: "189.163.74.177", ua: "(gzip),gzip(gfe),gzip(gfe)",
			action: "cloudbuild:CloudBuild.CreateBuild", resource: "projects/some-project/builds",
			account: "some-project", region: "global", result: "success", time: "2024-01-25T11:55:08.919358Z",
		},
		{
			name: "granted=false without a status is denied; SignJwt is not minted", file: gcpPanther, line: 71,
			id: "gcp:1hu88qbef4d2o", identity: "gcp:sa/some-project@company.iam.gserviceaccount.com", kind: "service_account",
			cred: "a378358365ff3d22e9c1a72fecf4605ddff76b47", ip: "1.2.3.4",
			action: "iamcredentials:SignJwt", resource: "projects/-/serviceAccounts/114885146936855121342",
			account: "some-project", result: "denied", errorCode: "PERMISSION_DENIED", time: "2024-02-26T17:15:16.314854Z",
		},
	}
	d := NewGCPAudit()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw := ingesttest.Line(t, tc.file, tc.line)
			ev := ingesttest.DecodeOne(t, d, raw)
			if tc.id == "" {
				tc.id = ev.ID // checked by the golden file
			}
			checkFields(t, []field{
				{"id", ev.ID, tc.id},
				{"identity.id", ev.Identity.ID, tc.identity},
				{"identity.kind", string(ev.Identity.Kind), tc.kind},
				{"credential.id", ev.Credential.ID, tc.cred},
				{"actor.peer", ev.Actor.Peer, tc.peer},
				{"actor.ip", ev.Actor.IP, tc.ip},
				{"actor.user_agent", ev.Actor.UserAgent, tc.ua},
				{"action", ev.Action, tc.action},
				{"target.resource", ev.Target.Resource, tc.resource},
				{"source.account", ev.Source.Account, tc.account},
				{"source.region", ev.Source.Region, tc.region},
				{"source.provider", ev.Source.Provider, "gcp"},
				{"outcome.result", string(ev.Outcome.Result), tc.result},
				{"outcome.error_code", ev.Outcome.ErrorCode, tc.errorCode},
				{"time", ev.Time.Format(time.RFC3339Nano), tc.time},
			})
			if tc.cred != "" && ev.Credential.Type != "gcp_sa_key" {
				t.Errorf("credential.type = %q", ev.Credential.Type)
			}
			if !reflect.DeepEqual(ev.Issuance, tc.issuance) {
				t.Errorf("issuance = %+v, want %+v", ev.Issuance, tc.issuance)
			}
		})
	}
}

func TestGCPAction(t *testing.T) {
	tests := []struct{ service, method, want string }{
		{"iam.googleapis.com", "google.iam.admin.v1.CreateServiceAccountKey", "iam:CreateServiceAccountKey"},
		{"logging.googleapis.com", "google.logging.v2.ConfigServiceV2.UpdateSink", "logging:ConfigServiceV2.UpdateSink"},
		{"compute.googleapis.com", "v1.compute.instances.insert", "compute:instances.insert"},
		{"compute.googleapis.com", "beta.compute.instances.insert", "compute:beta.compute.instances.insert"},
		{"storage.googleapis.com", "storage.objects.get", "storage:objects.get"},
		{"storage.googleapis.com", "google.storage.objects.get", "storage:objects.get"},
		{"k8s.io", "io.k8s.core.v1.pods.exec.create", "k8s:create:pods/exec"},
		{"k8s.io", "io.k8s.readyz", "k8s:io.k8s.readyz"},
		{"cloudresourcemanager.googleapis.com", "SetIamPolicy", "cloudresourcemanager:SetIamPolicy"},
		{"", "x", "gcp:x"},
	}
	for _, tc := range tests {
		if got := gcpAction(tc.service, tc.method); got != tc.want {
			t.Errorf("gcpAction(%q, %q) = %q, want %q", tc.service, tc.method, got, tc.want)
		}
	}
}

func TestDecodeGCPAuditErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatGCPAudit)
	valid := string(ingesttest.Line(t, "gcp-variants.ndjson", 3))
	checkErrors(t, NewGCPAudit(), []errorCase{
		{"empty", "", ingest.ReasonInvalidJSON, ""},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON, ""},
		{"not an object", `[` + valid + `]`, ingest.ReasonNotAnEvent, ""},
		{"invalid UTF-8", strings.Replace(valid, "reporting@", "rep\xffrting@", 1), ingest.ReasonInvalidUTF8, ""},
		{"too deep", `{"protoPayload":{"request":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}}`, ingest.ReasonTooDeep, ""},
		{"timestamp is a number", strings.Replace(valid, `"timestamp":"2024-06-10T06:20:00Z"`, `"timestamp":1718000400`, 1), ingest.ReasonBadField, "timestamp"},
		{"timestamp does not parse", strings.Replace(valid, `2024-06-10T06:20:00Z`, `10/Jun/2024`, 1), ingest.ReasonBadField, "timestamp"},
		{"no time at all", strings.Replace(valid, `,"timestamp":"2024-06-10T06:20:00Z"`, ``, 1), ingest.ReasonMissingField, "time"},
		{"granted is a string", strings.Replace(valid, `"granted":false`, `"granted":"no"`, 1), ingest.ReasonBadField, "granted"},
		{"huge number for a flag", strings.Replace(valid, `"granted":false`, `"granted":1e999`, 1), ingest.ReasonBadField, "granted"},
		{"no principal", strings.Replace(strings.Replace(valid, `"principalEmail":"reporting@payments-prod.iam.gserviceaccount.com"`, ``, 1), `"callerIp":"10.8.0.5"`, ``, 1), ingest.ReasonMissingField, "principal"},
		{"no methodName", strings.Replace(valid, `"methodName":"google.iam.admin.v1.CreateServiceAccountKey",`, ``, 1), ingest.ReasonMissingField, "methodName"},
		{"not an audit log payload", strings.Replace(valid, `google.cloud.audit.AuditLog`, `google.cloud.audit.Other`, 1), ingest.ReasonNotAnEvent, "@type"},
		{"application log entry", string(ingesttest.Line(t, "gcp-variants.ndjson", 6)), ingest.ReasonNotAnEvent, "textPayload"},
		{"no protoPayload", `{"insertId":"x","timestamp":"2024-06-10T06:20:00Z"}`, ingest.ReasonNotAnEvent, "protoPayload"},
	})
}

// TestGCPAuditHugeStatus: a status code that fits no integer is an unknown
// error, not a dead letter: the rest of the record is sound.
func TestGCPAuditHugeStatus(t *testing.T) {
	ingesttest.InFormatDir(t, FormatGCPAudit)
	raw := strings.Replace(string(ingesttest.Line(t, "gcp-variants.ndjson", 3)), `"code":7`, `"code":99999999999999999999999`, 1)
	ev := ingesttest.DecodeOne(t, NewGCPAudit(), []byte(raw))
	if ev.Outcome.Result != schemas.ResultFailure || ev.Outcome.ErrorCode != "UNKNOWN" {
		t.Errorf("outcome = %+v, want failure/UNKNOWN", ev.Outcome)
	}
}

func TestDecodeGCPAuditAppends(t *testing.T) {
	ingesttest.InFormatDir(t, FormatGCPAudit)
	ingesttest.Appends(t, NewGCPAudit(), ingesttest.Line(t, "gcp-variants.ndjson", 1))
}

func FuzzDecodeGCPAudit(f *testing.F) {
	ingesttest.InFormatDir(f, FormatGCPAudit)
	ingesttest.Fuzz(f, NewGCPAudit(),
		[]byte(`{"protoPayload":{"methodName":"io.k8s.v1","authenticationInfo":{"principalSubject":"x"},"status":{"code":"7"}},"timestamp":"2024-01-01 00:00:00"}`),
		[]byte(`{"protoPayload":{"methodName":"a..b","requestMetadata":{"callerIp":"[::1]:80"}},"receiveTimestamp":"0000-01-01T00:00:00Z"}`))
}

func BenchmarkDecodeGCPAudit(b *testing.B) {
	ingesttest.InFormatDir(b, FormatGCPAudit)
	ingesttest.Bench(b, NewGCPAudit())
}
