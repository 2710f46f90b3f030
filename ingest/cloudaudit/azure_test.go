package cloudaudit

import (
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
)

const azurePanther = "panther-analysis-azure-monitoractivity-rule-tests.ndjson"

func TestGoldenAzureActivity(t *testing.T) {
	ingesttest.InFormatDir(t, FormatAzureActivity)
	ingesttest.Golden(t, NewAzureActivity())
}

func TestDecodeAzureActivity(t *testing.T) {
	ingesttest.InFormatDir(t, FormatAzureActivity)
	type want struct {
		id, identity, kind, cred, ip, ua, action, resource, account, region, result, errorCode, time string
		status                                                                                       int
	}
	tests := []struct {
		name, file string
		line       int
		want       []want
	}{
		{
			name: "REST shape: service principal denied a role assignment", file: "azure-activity-variants.ndjson", line: 1,
			want: []want{{
				id: "azure:e1f2a3b4-c5d6-4e7f-8091-a2b3c4d5e6f7", identity: "azure:sp/5b7e3c1a-2f4d-4e6a-9b8c-0d1e2f3a4b5c", kind: "service_principal",
				ip: "20.50.2.17", action: "azure:microsoft.authorization/roleassignments/write",
				resource: "/subscriptions/9f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8/resourceGroups/payments/providers/Microsoft.Authorization/roleAssignments/3a4b5c6d",
				account:  "9f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8", result: "denied", errorCode: "Forbidden", time: "2024-06-10T07:01:02.345678Z",
			}},
		},
		{
			name: "Event Hub records: a user's token with an appid is the user; SP failure", file: "azure-activity-variants.ndjson", line: 2,
			want: []want{
				{
					identity: "azure:user/ops.admin@contoso.com", kind: "user", ip: "203.0.113.9", action: "azure:microsoft.keyvault/vaults/write",
					resource: "/SUBSCRIPTIONS/9F1C2B3A-4D5E-6F70-8192-A3B4C5D6E7F8/RESOURCEGROUPS/PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/PAY-KV",
					account:  "9f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8", region: "global", result: "success", time: "2024-06-10T07:05:00Z",
				},
				{
					identity: "azure:sp/6e5d4c3b-2a19-08f7-e6d5-c4b3a2918070", kind: "service_principal", ip: "203.0.113.9", action: "azure:microsoft.keyvault/vaults/write",
					resource: "/SUBSCRIPTIONS/9F1C2B3A-4D5E-6F70-8192-A3B4C5D6E7F8/RESOURCEGROUPS/PAYMENTS/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/PAY-KV",
					account:  "9f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8", region: "global", result: "failure", errorCode: "Conflict", time: "2024-06-10T07:05:03Z",
				},
			},
		},
		{
			name: "AuthorizationFailed is denied", file: "azure-activity-variants.ndjson", line: 3,
			want: []want{{
				identity: "azure:sp/c0ffee00-1234-4abc-9def-0123456789ab", kind: "service_principal", ip: "198.51.100.77",
				action: "azure:microsoft.keyvault/vaults/secrets/read", resource: "/subscriptions/9f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8/resourceGroups/payments/providers/Microsoft.KeyVault/vaults/pay-kv/secrets/db",
				account: "9f1c2b3a-4d5e-6f70-8192-a3b4c5d6e7f8", region: "westeurope", result: "denied", errorCode: "AuthorizationFailed", time: "2024-06-10T07:09:00Z",
			}},
		},
		{
			name: "no caller logged: the address identifies it", file: azurePanther, line: 1,
			want: []want{{
				identity: "ip:1.1.1.1", kind: "unknown", ip: "1.1.1.1", action: "azure:microsoft.insights/actiongroups/delete",
				resource: "/subscriptions/12345678-1234-1234-1234-123456789abc/resourceGroups/myresourcegroup/providers/Microsoft.Insights/actionGroups/securityteam",
				account:  "12345678-1234-1234-1234-123456789abc", region: "eastus", result: "success", status: 200, time: "2024-12-17T10:30:00Z",
			}},
		},
		{
			name: "Storage SAS access, address with port, 409", file: azurePanther, line: 162,
			want: []want{{
				identity: "azure:storagekey/mystorageaccount/key1", kind: "api_key", cred: "key1(EXAMPLE_HASH)", ip: "1.1.1.1",
				ua:     "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/7.7.7.7 Safari/537.36",
				action: "azure:getblobmetadata", resource: "/subscriptions/12345678-1234-1234-1234-123456789abc/resourceGroups/myresourcegroup/providers/Microsoft.Storage/storageAccounts/mystorageaccount/blobServices/default",
				account: "12345678-1234-1234-1234-123456789abc", region: "westus2", result: "failure", status: 409, time: "2024-12-19T19:15:07.295Z",
			}},
		},
	}
	d := NewAzureActivity()
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
				if w.id == "" {
					w.id = ev.ID
				}
				checkFields(t, []field{
					{"id", ev.ID, w.id},
					{"identity.id", ev.Identity.ID, w.identity},
					{"identity.kind", string(ev.Identity.Kind), w.kind},
					{"credential.id", ev.Credential.ID, w.cred},
					{"actor.ip", ev.Actor.IP, w.ip},
					{"actor.user_agent", ev.Actor.UserAgent, w.ua},
					{"action", ev.Action, w.action},
					{"target.resource", ev.Target.Resource, w.resource},
					{"source.account", ev.Source.Account, w.account},
					{"source.region", ev.Source.Region, w.region},
					{"outcome.result", string(ev.Outcome.Result), w.result},
					{"outcome.error_code", ev.Outcome.ErrorCode, w.errorCode},
					{"time", ev.Time.Format(time.RFC3339Nano), w.time},
				})
				if ev.Outcome.Status != w.status {
					t.Errorf("outcome.status = %d, want %d", ev.Outcome.Status, w.status)
				}
			}
			if len(evs) == 2 && evs[0].ID == evs[1].ID {
				t.Errorf("two records of one batch share id %q", evs[0].ID)
			}
		})
	}
}

func TestDecodeAzureActivityErrors(t *testing.T) {
	ingesttest.InFormatDir(t, FormatAzureActivity)
	valid := string(ingesttest.Line(t, "azure-activity-variants.ndjson", 3))
	batch := string(ingesttest.Line(t, "azure-activity-variants.ndjson", 2))
	checkErrors(t, NewAzureActivity(), []errorCase{
		{"empty", "", ingest.ReasonInvalidJSON, ""},
		{"truncated", valid[:len(valid)/2], ingest.ReasonInvalidJSON, ""},
		{"not an object", `"x"`, ingest.ReasonNotAnEvent, ""},
		{"invalid UTF-8", strings.Replace(valid, "westeurope", "west\xc3europe", 1), ingest.ReasonInvalidUTF8, ""},
		{"too deep", `{"properties":` + strings.Repeat(`{"a":`, 70) + `1` + strings.Repeat(`}`, 70) + `}`, ingest.ReasonTooDeep, ""},
		{"time is a number", strings.Replace(valid, `"time":"2024-06-10T07:09:00.0000000Z"`, `"time":1718003340`, 1), ingest.ReasonBadField, "time"},
		{"time overflows", strings.Replace(valid, `"time":"2024-06-10T07:09:00.0000000Z"`, `"time":1e999`, 1), ingest.ReasonBadField, "time"},
		{"time does not parse", strings.Replace(valid, `2024-06-10T07:09:00.0000000Z`, `yesterday`, 1), ingest.ReasonBadField, "time"},
		{"no time", strings.Replace(valid, `"time":"2024-06-10T07:09:00.0000000Z",`, ``, 1), ingest.ReasonMissingField, "time"},
		{"no operationName", strings.Replace(valid, `"operationName":"Microsoft.KeyVault/vaults/secrets/read",`, ``, 1), ingest.ReasonMissingField, "operationName"},
		{"nobody to identify", `{"time":"2024-06-10T07:09:00Z","operationName":"Microsoft.X/y/read"}`, ingest.ReasonMissingField, "caller"},
		{"records is an object", `{"records":{}}`, ingest.ReasonBadField, "records"},
		{"bad record in a batch", strings.Replace(batch, `"time":"2024-06-10T07:05:03.0000000Z"`, `"time":"later"`, 1), ingest.ReasonBadField, "records[1]: time"},
		{"not an activity record", `{"kind":"Event","verb":"get"}`, ingest.ReasonNotAnEvent, "not an Azure Activity"},
	})
}

func TestDecodeAzureActivityAppends(t *testing.T) {
	ingesttest.InFormatDir(t, FormatAzureActivity)
	ingesttest.Appends(t, NewAzureActivity(), ingesttest.Line(t, "azure-activity-variants.ndjson", 1))
	ingesttest.Appends(t, NewAzureActivity(), ingesttest.Line(t, "azure-activity-variants.ndjson", 2))
}

func FuzzDecodeAzureActivity(f *testing.F) {
	ingesttest.InFormatDir(f, FormatAzureActivity)
	ingesttest.Fuzz(f, NewAzureActivity(),
		[]byte(`{"records":[{"time":"2024-01-01T00:00:00Z","operationName":{"value":"a/b"},"caller":"x@y","statusCode":"403"}]}`))
}

func BenchmarkDecodeAzureActivity(b *testing.B) {
	ingesttest.InFormatDir(b, FormatAzureActivity)
	ingesttest.Bench(b, NewAzureActivity())
}
