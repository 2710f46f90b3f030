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

const eksPanther = "panther-analysis-eks-audit-rule-tests.ndjson"

func TestGoldenK8sAudit(t *testing.T) {
	ingesttest.InFormatDir(t, FormatK8sAudit)
	ingesttest.Golden(t, NewK8sAudit())
}

func TestDecodeK8sAudit(t *testing.T) {
	ingesttest.InFormatDir(t, FormatK8sAudit)
	type want struct {
		id, identity, kind, cred, ip, ua, node, workload, action, resource, cluster, provider, result, time string
		status                                                                                              int
		durationMS                                                                                          float64
		issuance                                                                                            *schemas.Issuance
	}
	tests := []struct {
		name, file string
		line       int
		want       []want
	}{
		{name: "RequestReceived stage is not an event", file: "k8s-variants.ndjson", line: 1},
		{
			name: "TokenRequest by a service account", file: "k8s-variants.ndjson", line: 2,
			want: []want{{
				id: "k8s:4d3c2b1a-0f9e-4d8c-b7a6-958473625140/ResponseComplete", identity: "k8s:sa/default/payments/deployer", kind: "service_account",
				cred: "JTI=0e9f8a7b-6c5d-4e3f-8a1b-2c3d4e5f6a7b", ip: "10.4.1.22", ua: "deployer/1.0", node: "node-a", workload: "deployer-7c9d8-abcde",
				action: "k8s:create:serviceaccounts/token", resource: "payments/serviceaccounts/ledger-api", cluster: "default", provider: "kubernetes",
				result: "success", status: 201, time: "2024-06-10T10:00:00.1Z", durationMS: 12.5,
				issuance: &schemas.Issuance{Credential: "JTI=6f5e4d3c-2b1a-4098-8776-655443322110", CredentialType: "k8s_sa_token",
					Subject: "k8s:sa/default/payments/ledger-api", SANs: []string{"pod:ledger-api-5f6d7-xyz12"}, Issuer: "k8s:default",
					TTLSeconds: 600, Requester: "k8s:sa/default/payments/deployer"},
			}},
		},
		{
			name: "forbid decision is denied", file: "k8s-variants.ndjson", line: 3,
			want: []want{{
				id: "k8s:7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d/ResponseComplete", identity: "k8s:sa/default/payments/ledger-api", kind: "service_account",
				ip: "10.4.1.23", ua: "kubectl/v1.30.1 (linux/amd64) kubernetes/abc1234", action: "k8s:get:secrets", resource: "kube-system/secrets/bootstrap-token-abcdef",
				cluster: "default", provider: "kubernetes", result: "denied", status: 403, time: "2024-06-10T10:01:00Z", durationMS: 2,
			}},
		},
		{
			name: "EventList: node on a non-resource URL; the watch's ResponseStarted is dropped", file: "k8s-variants.ndjson", line: 4,
			want: []want{{
				id: "k8s:b1b2b3b4-0000-4000-8000-000000000001/ResponseComplete", identity: "k8s:node/default/node-a", kind: "unknown",
				ip: "10.4.0.10", ua: "kubelet/v1.30.1", node: "node-a", action: "k8s:get:/healthz", resource: "/healthz",
				cluster: "default", provider: "kubernetes", result: "success", status: 200, time: "2024-06-10T10:02:00Z", durationMS: 0.4,
			}},
		},
		{
			name: "AKS diagnostic record in an Event Hub batch", file: "k8s-variants.ndjson", line: 5,
			want: []want{{
				id: "k8s:c0c1c2c3-1111-4222-8333-444455556666/ResponseComplete", identity: "k8s:user/aks-pay/masterclient", kind: "user",
				ip: "20.61.0.9", ua: "kubectl/v1.29.2", action: "k8s:create:pods/exec", resource: "payments/pods/ledger-api-5f6d7-xyz12",
				cluster: "aks-pay", provider: "azure", result: "success", status: 101, time: "2024-06-10T10:02:59.5Z", durationMS: 500,
			}},
		},
		{
			name: "EKS CloudWatch Logs batch names the cluster", file: "k8s-variants.ndjson", line: 6,
			want: []want{{
				id: "k8s:d0d1d2d3-2222-4333-8444-555566667777/ResponseComplete", identity: "k8s:sa/prod-us/payments/ledger-api", kind: "service_account",
				ip: "192.168.12.40", ua: "python-requests/2.31", action: "k8s:list:secrets", resource: "payments/secrets",
				cluster: "prod-us", provider: "aws", result: "success", status: 200, time: "2024-06-10T10:04:00Z", durationMS: 31,
			}},
		},
		{
			name: "a legacy token names its Secret", file: "k8s-variants.ndjson", line: 8,
			want: []want{{
				id: "k8s:5e4d3c2b-1a0f-4e9d-8c7b-6a5948372615/ResponseComplete", identity: "k8s:sa/default/payments/legacy-batch", kind: "service_account",
				cred: "legacy-batch-token", ip: "203.0.113.77", ua: "curl/8.5.0", action: "k8s:get:secrets", resource: "payments/secrets/db-password",
				cluster: "default", provider: "kubernetes", result: "success", status: 200, time: "2024-06-10T10:05:00Z", durationMS: 3,
			}},
		},
		{
			name: "kubelet TokenRequest from EKS with the issued credential id", file: eksPanther, line: 17,
			want: []want{{
				id: "k8s:e5ca89e7-8686-4b7c-b666-f8b863b6f21c/ResponseComplete", identity: "k8s:node/default/ip-192-168-3-178.us-west-2.compute.internal", kind: "unknown",
				ip: "54.212.83.236", ua: "kubelet/v1.32.0 (linux/arm64) kubernetes/e105b10", node: "ip-192-168-3-178.us-west-2.compute.internal",
				action: "k8s:create:serviceaccounts/token", resource: "kube-system/serviceaccounts/kube-proxy", cluster: "default", provider: "kubernetes",
				result: "success", status: 201, time: "2025-08-26T17:40:49.320496Z", durationMS: 10.121,
				issuance: &schemas.Issuance{Credential: "JTI=2e6389af-b8bc-4c26-92d2-714fbe9cb4fa", CredentialType: "k8s_sa_token",
					Subject: "k8s:sa/default/kube-system/kube-proxy", Issuer: "k8s:default", Requester: "k8s:node/default/ip-192-168-3-178.us-west-2.compute.internal"},
			}},
		},
	}
	d := NewK8sAudit()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := d.Decode(nil, ingest.Record{Value: ingesttest.Line(t, tc.file, tc.line)})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != len(tc.want) {
				t.Fatalf("got %d events, want %d", len(evs), len(tc.want))
			}
			for i, w := range tc.want {
				ev := evs[i]
				checkFields(t, []field{
					{"id", ev.ID, w.id},
					{"identity.id", ev.Identity.ID, w.identity},
					{"identity.kind", string(ev.Identity.Kind), w.kind},
					{"credential.id", ev.Credential.ID, w.cred},
					{"actor.ip", ev.Actor.IP, w.ip},
					{"actor.user_agent", ev.Actor.UserAgent, w.ua},
					{"actor.node", ev.Actor.Node, w.node},
					{"actor.workload", ev.Actor.Workload, w.workload},
					{"action", ev.Action, w.action},
					{"target.resource", ev.Target.Resource, w.resource},
					{"source.cluster", ev.Source.Cluster, w.cluster},
					{"source.provider", ev.Source.Provider, w.provider},
					{"outcome.result", string(ev.Outcome.Result), w.result},
					{"time", ev.Time.Format(time.RFC3339Nano), w.time},
				})
				if ev.Outcome.Status != w.status || ev.DurationMS != w.durationMS {
					t.Errorf("status %d duration %v, want %d %v", ev.Outcome.Status, ev.DurationMS, w.status, w.durationMS)
				}
				if !reflect.DeepEqual(ev.Issuance, w.issuance) {
					t.Errorf("issuance = %+v, want %+v", ev.Issuance, w.issuance)
				}
			}
		})
	}
}

func TestK8sAuditCluster(t *testing.T) {
	ingesttest.InFormatDir(t, FormatK8sAudit)
	d := &K8sAuditDecoder{Cluster: "prod-eu"}
	ev := ingesttest.DecodeOne(t, d, ingesttest.Line(t, "k8s-variants.ndjson", 3))
	if ev.Identity.ID != "k8s:sa/prod-eu/payments/ledger-api" || ev.Source.Cluster != "prod-eu" {
		t.Errorf("identity %q cluster %q", ev.Identity.ID, ev.Source.Cluster)
	}
}

func TestDecodeK8sAuditErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatK8sAudit)
	valid := string(ingesttest.Line(t, "k8s-variants.ndjson", 3))
	aks := string(ingesttest.Line(t, "k8s-variants.ndjson", 5))
	checkErrors(t, NewK8sAudit(), []errorCase{
		{"empty", "", ingest.ReasonInvalidJSON, ""},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON, ""},
		{"not an object", `[]`, ingest.ReasonNotAnEvent, ""},
		{"Falco's kind 0", `{"kind": 0}`, ingest.ReasonNotAnEvent, `kind "0"`},
		{"no kind", `{"verb":"get"}`, ingest.ReasonNotAnEvent, "no kind"},
		{"core/v1 Event", string(ingesttest.Line(t, "k8s-variants.ndjson", 7)), ingest.ReasonNotAnEvent, "apiVersion"},
		{"invalid UTF-8", strings.Replace(valid, "ledger-api", "ledger\xc0api", 1), ingest.ReasonInvalidUTF8, ""},
		{"too deep", `{"kind":"Event","requestObject":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `}`, ingest.ReasonTooDeep, ""},
		{"code overflows", strings.Replace(valid, `"code":403`, `"code":1e999`, 1), ingest.ReasonBadField, "code"},
		{"huge code", strings.Replace(valid, `"code":403`, `"code":99999999999999999999`, 1), ingest.ReasonBadField, "code"},
		{"timestamp does not parse", strings.Replace(valid, `"requestReceivedTimestamp":"2024-06-10T10:01:00.000000Z"`, `"requestReceivedTimestamp":"now"`, 1), ingest.ReasonBadField, "requestReceivedTimestamp"},
		{"no time", strings.Replace(strings.Replace(valid, `"requestReceivedTimestamp":"2024-06-10T10:01:00.000000Z",`, ``, 1), `"stageTimestamp":"2024-06-10T10:01:00.002000Z",`, ``, 1), ingest.ReasonMissingField, "time"},
		{"no user", strings.Replace(valid, `"username":"system:serviceaccount:payments:ledger-api",`, ``, 1), ingest.ReasonMissingField, "username"},
		{"malformed service account", strings.Replace(valid, `system:serviceaccount:payments:ledger-api`, `system:serviceaccount:payments`, 1), ingest.ReasonBadField, "username"},
		{"user is a string", strings.Replace(valid, `"user":{`, `"user":"x","u":{`, 1), ingest.ReasonBadField, "user"},
		{"no verb", strings.Replace(valid, `"verb":"get",`, ``, 1), ingest.ReasonMissingField, "verb"},
		{"unknown stage", strings.Replace(valid, `ResponseComplete`, `Done`, 1), ingest.ReasonBadField, "stage"},
		{"AKS log is not JSON", strings.Replace(aks, `"log":"{`, `"log":"I0610 {`, 1), ingest.ReasonInvalidJSON, "records[0]: properties.log"},
		{"AKS record without log", `{"category":"kube-audit","properties":{}}`, ingest.ReasonNotAnEvent, "properties.log"},
		{"bad event in a batch", `{"records":[{"properties":{"log":"{\"kind\":\"Event\"}"}}]}`, ingest.ReasonMissingField, "records[0]: properties.log: verb"},
	})
}

func TestDecodeK8sAuditAppends(t *testing.T) {
	ingesttest.InFormatDir(t, FormatK8sAudit)
	ingesttest.Appends(t, NewK8sAudit(), ingesttest.Line(t, "k8s-variants.ndjson", 2))
	ingesttest.Appends(t, NewK8sAudit(), ingesttest.Line(t, "k8s-variants.ndjson", 5))
}

func FuzzDecodeK8sAudit(f *testing.F) {
	ingesttest.InFormatDir(f, FormatK8sAudit)
	ingesttest.Fuzz(f, NewK8sAudit(),
		[]byte(`{"logGroup":"/aws/eks/c/cluster","logEvents":[{"timestamp":1,"message":"{\"kind\":\"Event\",\"verb\":\"get\",\"user\":{\"username\":\"system:node:\"}}"}]}`),
		[]byte(`{"kind":"EventList","items":[{"verb":"create","user":{"username":"a"},"objectRef":{"resource":"serviceaccounts","subresource":"token"},"stageTimestamp":"2024-01-01T00:00:00Z","requestObject":{"spec":{"expirationSeconds":-1}}}]}`))
}

func BenchmarkDecodeK8sAudit(b *testing.B) {
	ingesttest.InFormatDir(b, FormatK8sAudit)
	ingesttest.Bench(b, NewK8sAudit())
}
