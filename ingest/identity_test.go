package ingest

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/schemas"
)

func TestAWSIdentity(t *testing.T) {
	tests := []struct {
		arn     string
		id      string
		kind    schemas.IdentityKind
		name    string
		session string
		wantErr bool
	}{
		{arn: "arn:aws:sts::123456789012:assumed-role/Name/session", id: "aws:role/123456789012/Name", kind: schemas.KindRole, name: "Name", session: "session"},
		{arn: "arn:aws:sts::111111111111:assumed-role/testrole/tester@example.com", id: "aws:role/111111111111/testrole", kind: schemas.KindRole, name: "testrole", session: "tester@example.com"},
		{arn: "arn:aws:sts::123456789012:assumed-role/MyAppRole/i-0abcdef1234567890", id: "aws:role/123456789012/MyAppRole", kind: schemas.KindRole, name: "MyAppRole", session: "i-0abcdef1234567890"},
		{arn: "arn:aws:iam::123456789012:user/path/x", id: "aws:user/123456789012/x", kind: schemas.KindUser, name: "x"},
		{arn: "arn:aws:iam::444455556666:user/JaneDoe", id: "aws:user/444455556666/JaneDoe", kind: schemas.KindUser, name: "JaneDoe"},
		{arn: "arn:aws:iam::123456789012:role/path/to/Name", id: "aws:role/123456789012/Name", kind: schemas.KindRole, name: "Name"},
		{arn: "arn:aws-cn:iam::123456789012:role/Name", id: "aws:role/123456789012/Name", kind: schemas.KindRole, name: "Name"},
		{arn: "arn:aws:iam::123456789012:root", id: "aws:root/123456789012", kind: schemas.KindUser, name: "root"},
		{arn: "arn:aws:sts::123456789012:federated-user/bob", id: "aws:federated-user/123456789012/bob", kind: schemas.KindUser, name: "bob"},
		{arn: "", wantErr: true},
		{arn: "redacted", wantErr: true},
		{arn: "arn:aws:iam::123456789012:saml-provider/Shibboleth", wantErr: true},
		{arn: "arn:aws:s3:::bucket", wantErr: true},
		{arn: "arn:aws:sts::123456789012:assumed-role/OnlyRole", wantErr: true},
		{arn: "arn:aws:iam::123456789012:user/", wantErr: true},
		{arn: "arn:aws:iam:::role/Name", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.arn, func(t *testing.T) {
			id, session, err := AWSIdentity(tc.arn)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("got %+v, want an error", id)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.ID != tc.id || id.Kind != tc.kind || id.Name != tc.name || session != tc.session {
				t.Errorf("got %+v session %q, want %s %s %s session %q", id, session, tc.id, tc.kind, tc.name, tc.session)
			}
		})
	}
}

func TestSPIFFEIdentity(t *testing.T) {
	tests := []struct {
		uri string
		ok  bool
	}{
		{"spiffe://cluster.local/ns/default/sa/curl", true},
		{"spiffe://example.org", true},
		{"spiffe://prod.acme-corp_1/payments/api.v2", true},
		{"spiffe://Cluster.local/ns/x", false},     // upper-case trust domain
		{"spiffe://cluster.local:443/ns/x", false}, // port
		{"spiffe://user@cluster.local/ns/x", false},
		{"spiffe:///ns/x", false},
		{"spiffe://cluster.local/", false}, // trailing slash
		{"spiffe://cluster.local/ns//x", false},
		{"spiffe://cluster.local/ns/../x", false},
		{"spiffe://cluster.local/ns/./x", false},
		{"spiffe://cluster.local/ns/x?y=1", false},
		{"spiffe://cluster.local/ns/x#f", false},
		{"spiffe://cluster.local/ns/%41", false},
		{"https://cluster.local/ns/x", false},
		{"SPIFFE://cluster.local/ns/x", false},
		{"", false},
		{"spiffe://td/" + strings.Repeat("a", 2048), false},
	}
	for _, tc := range tests {
		t.Run(tc.uri, func(t *testing.T) {
			id, err := SPIFFEIdentity(tc.uri)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && (id.ID != tc.uri || id.Kind != schemas.KindWorkload) {
				t.Errorf("got %+v", id)
			}
		})
	}
}

func TestK8sUsername(t *testing.T) {
	tests := []struct {
		cluster, user string
		id            string
	}{
		{"prod", "system:serviceaccount:kube-system:replicaset-controller", "k8s:sa/prod/kube-system/replicaset-controller"},
		{"default", "system:serviceaccount:cert-manager:cert-manager-cainjector", "k8s:sa/default/cert-manager/cert-manager-cainjector"},
		{"prod", "system:serviceaccount:ns", ""},
		{"prod", "system:serviceaccount::name", ""},
		{"prod", "system:serviceaccount:ns:", ""},
		{"prod", "system:serviceaccount:ns:a:b", ""},
		{"prod", "system:node:ip-10-0-0-1", ""},
		{"prod", "kubernetes-admin", ""},
		{"", "system:serviceaccount:ns:name", ""},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			id, err := K8sUsername(tc.cluster, tc.user)
			if tc.id == "" {
				if err == nil {
					t.Fatalf("got %+v, want an error", id)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if id.ID != tc.id || id.Kind != schemas.KindServiceAccount {
				t.Errorf("got %+v, want %s", id, tc.id)
			}
		})
	}
}

func TestAPIKeyAndIPIdentity(t *testing.T) {
	if got := APIKeyIdentity("kong", "c62c1455-9b1d-4f2d-8797-509ba83b8ae8"); got.ID != "apikey:kong:c62c1455-9b1d-4f2d-8797-509ba83b8ae8" || got.Kind != schemas.KindAPIKey {
		t.Errorf("APIKeyIdentity = %+v", got)
	}
	if got := IPIdentity("2a02:cf40::4e36"); got.ID != "ip:2a02:cf40::4e36" || got.Kind != schemas.KindUnknown {
		t.Errorf("IPIdentity = %+v", got)
	}
}

func TestTemplatePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/v1/payments/8812", "/v1/payments/{id}"},
		{"/v1/payments/8812?expand=true#x", "/v1/payments/{id}"},
		{"/v1/payments/3f2b5c8e-9d41-4e7a-b0c2-6a1f7e8d9c01/refund", "/v1/payments/{id}/refund"},
		{"/payments.v1.PaymentService/GetPayment", "/payments.v1.PaymentService/GetPayment"},
		{"/grpc.health.v1alpha2.Health/Check", "/grpc.health.v1alpha2.Health/Check"},
		{"/v1/tokens/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.sig12345", "/v1/tokens/{id}"},
		{"/reviews/0", "/reviews/{id}"},
		{"/objects/5d41402abc4b2a76b9719d911017c592", "/objects/{id}"},
		{"/tokens/dGhpcyBpcyBhIHRva2VuIDEyMw==", "/tokens/{id}"},
		{"/sessions/AbC123xYz789QwE456rTy", "/sessions/{id}"},
		{"/instances/i-0abcdef1234567890/stop", "/instances/{id}/stop"},
		{"auth/token/lookup/hmac-sha256:9b35c04bcf44c677b6bf03df2f72340c", "auth/token/lookup/{id}"},
		{"sys/leases/lookup/database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6", "sys/leases/lookup/database/creds/readonly/{id}"},
		// words, versions, names and short tokens stay
		{"/api/v1/products", "/api/v1/products"},
		{"/", "/"},
		{"", ""},
		{"/.env", "/.env"},
		{"/assets/image.webp", "/assets/image.webp"},
		{"pki_int/issue/example-dot-com", "pki_int/issue/example-dot-com"},
		{"auth/userpass/login/lab-user-1", "auth/userpass/login/lab-user-1"},
		{"transit/encrypt/my-key-100", "transit/encrypt/my-key-100"},
		{"pki/root/sign-intermediate", "pki/root/sign-intermediate"},
		{"/beef/cafe", "/beef/cafe"},
		{"/a//b/", "/a//b/"},
	}
	for _, tc := range tests {
		if got := TemplatePath(tc.in); got != tc.want {
			t.Errorf("TemplatePath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCheckJSON(t *testing.T) {
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name   string
		in     string
		reason string // "" means accepted
	}{
		{"object", `{"a":[1,{"b":"c"}]}`, ""},
		{"multi-byte UTF-8", `{"a":"héllo ✓ 😀"}`, ""},
		{"escaped quote does not end the string", `{"a":"x\"[[[[","b":1}`, ""},
		{"escaped backslash ends before the quote", `{"a":"x\\","b":[1]}`, ""},
		{"brackets inside strings do not count", `{"a":"` + deep(100) + `"}`, ""},
		{"depth at the limit", deep(64), ""},
		{"depth over the limit", deep(65), ReasonTooDeep},
		{"objects count too", strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 65), ReasonTooDeep},
		{"invalid byte in a string", "{\"a\":\"\xff\"}", ReasonInvalidUTF8},
		{"truncated sequence in a string", "{\"a\":\"\xe2\x82\"}", ReasonInvalidUTF8},
		{"overlong encoding", "{\"a\":\"\xc0\xaf\"}", ReasonInvalidUTF8},
		{"surrogate half", "{\"a\":\"\xed\xa0\x80\"}", ReasonInvalidUTF8},
		{"invalid byte outside a string", "{\"a\":1\xff}", ReasonInvalidUTF8},
		{"valid UTF-8 outside a string is the parser's business", `{"a":1é}`, ""},
		{"escape at the very end", `{"a":"\`, ""},
		{"truncated JSON is the parser's business", `{"a":"b`, ""},
		{"empty", "", ""},
		{"one value too many", "[" + strings.Repeat("1,", MaxFields) + "1]", ReasonTooManyFields},
		{"values at the limit", "[" + strings.Repeat("1,", MaxFields-1) + "1]", ""},
		{"a large record may hold more values, at 8 bytes each", "[" + strings.Repeat(`"abcdef",`, 150_000) + "1]", ""},
		{"but not more tightly packed", "[" + strings.Repeat(`"a",`, 150_000) + "1]", ReasonTooManyFields},
		{"commas inside strings do not count", `{"a":"` + strings.Repeat(",", MaxFields) + `"}`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			de := CheckJSON([]byte(tc.in), 64)
			switch {
			case tc.reason == "" && de != nil:
				t.Fatalf("rejected: %v", de)
			case tc.reason != "" && de == nil:
				t.Fatalf("accepted, want %s", tc.reason)
			case de != nil && de.Reason != tc.reason:
				t.Fatalf("reason %s (%s), want %s", de.Reason, de.Detail, tc.reason)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	type rec struct {
		N int    `json:"n"`
		S string `json:"s"`
	}
	tests := []struct {
		name   string
		in     string
		max    int
		reason string
	}{
		{"ok", `{"n":1,"s":"x"}`, 100, ""},
		{"leading whitespace", " \n{\"n\":1}", 100, ""},
		{"too large", `{"n":1}`, 3, ReasonTooLarge},
		{"empty", ``, 100, ReasonInvalidJSON},
		{"truncated", `{"n":`, 100, ReasonInvalidJSON},
		{"not JSON", `n=1`, 100, ReasonInvalidJSON},
		{"array", `[1]`, 100, ReasonNotAnEvent},
		{"string", `"x"`, 100, ReasonNotAnEvent},
		{"null", ` null`, 100, ReasonNotAnEvent},
		{"wrong type", `{"n":"1"}`, 100, ReasonBadField},
		{"overflow", `{"n":99999999999999999999}`, 100, ReasonBadField},
		{"invalid UTF-8", "{\"s\":\"\xff\"}", 100, ReasonInvalidUTF8},
		{"too deep", `{"s":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, 1000, ReasonTooDeep},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v rec
			de := DecodeJSON("test", []byte(tc.in), tc.max, DefaultMaxDepth, &v)
			if tc.reason == "" {
				if de != nil {
					t.Fatal(de)
				}
				return
			}
			if de == nil || de.Reason != tc.reason || de.Format != "test" {
				t.Fatalf("got %v, want reason %s", de, tc.reason)
			}
		})
	}
}

func BenchmarkCheckJSON(b *testing.B) {
	raw := []byte(`{"authority":"reviews:9080","bytes_received":0,"bytes_sent":358,"downstream_remote_address":"10.124.0.13:43612","duration":15,"method":"GET","path":"/reviews/0","protocol":"HTTP/1.1","request_id":"9fcc7101-13bd-9753-98d6-820806088d9d","response_code":200,"response_flags":"-","start_time":"2022-09-08T12:51:05.656Z","upstream_cluster":"inbound|9080||","user_agent":"curl/7.79.1 – ✓"}`)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if de := CheckJSON(raw, DefaultMaxDepth); de != nil {
			b.Fatal(de)
		}
	}
}

func BenchmarkTemplatePath(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = TemplatePath("/v1/payments/3f2b5c8e-9d41-4e7a-b0c2-6a1f7e8d9c01/refund?x=1")
		_ = TemplatePath("/api/v1/products")
	}
}
