package awsiam

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/providertest"
)

// iamFake speaks the IAM Query protocol for one user with one active key
// and one role without policies: form-encoded Action=… requests, XML
// replies in IAM's namespace. moto covers the state; this fake is for
// faults and for what goes over the wire.
type iamFake struct {
	mu    sync.Mutex
	forms []url.Values
	auth  []string
}

const iamNS = "https://iam.amazonaws.com/doc/2010-05-08/"

func (f *iamFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.forms = append(f.forms, r.PostForm)
	f.auth = append(f.auth, r.Header.Get("Authorization"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml")
	action := r.PostForm.Get("Action")
	switch action {
	case "ListAccessKeys":
		fmt.Fprintf(w, `<ListAccessKeysResponse xmlns="%s"><ListAccessKeysResult><AccessKeyMetadata><member><UserName>ci-bot</UserName><AccessKeyId>AKIAIOSFODNN7EXAMPLE</AccessKeyId><Status>Active</Status><CreateDate>2026-01-05T10:00:00Z</CreateDate></member></AccessKeyMetadata><IsTruncated>false</IsTruncated></ListAccessKeysResult><ResponseMetadata><RequestId>r1</RequestId></ResponseMetadata></ListAccessKeysResponse>`, iamNS)
	case "GetRolePolicy":
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, errorXML("Sender", "NoSuchEntity", "The role policy with name AWSRevokeOlderSessions cannot be found."))
	case "UpdateAccessKey", "PutRolePolicy", "DeleteRolePolicy":
		fmt.Fprintf(w, `<%sResponse xmlns="%s"><ResponseMetadata><RequestId>r2</RequestId></ResponseMetadata></%sResponse>`, action, iamNS, action)
	default:
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, errorXML("Sender", "InvalidAction", "unknown action "+action))
	}
}

func errorXML(typ, code, msg string) string {
	return fmt.Sprintf(`<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>e1</RequestId></ErrorResponse>`, iamNS, typ, code, msg)
}

func (f *iamFake) requests() ([]url.Values, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]url.Values(nil), f.forms...), append([]string(nil), f.auth...)
}

func TestWireRequests(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		req  response.Request
		want []url.Values
	}{
		{"disable an access key", request(response.ActionDisable, userTarget("ci-bot", "AKIAIOSFODNN7EXAMPLE")), []url.Values{
			{"Action": {"ListAccessKeys"}, "UserName": {"ci-bot"}, "Version": {"2010-05-08"}},
			{"Action": {"UpdateAccessKey"}, "AccessKeyId": {"AKIAIOSFODNN7EXAMPLE"}, "Status": {"Inactive"}, "UserName": {"ci-bot"}, "Version": {"2010-05-08"}},
		}},
		{"revoke a role's sessions", request(response.ActionRevoke, roleTarget("media-api", "ASIAIOSFODNN7EXAMPLE")), []url.Values{
			{"Action": {"GetRolePolicy"}, "PolicyName": {"AWSRevokeOlderSessions"}, "RoleName": {"media-api"}, "Version": {"2010-05-08"}},
			{"Action": {"PutRolePolicy"}, "PolicyDocument": {revokeDocument(at)}, "PolicyName": {"AWSRevokeOlderSessions"}, "RoleName": {"media-api"}, "Version": {"2010-05-08"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := &iamFake{}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			p := newTestProvider(t, srv.URL, 0)
			if _, err := p.Do(ctx, tt.req); err != nil {
				t.Fatal(err)
			}
			forms, auth := fake.requests()
			if fmt.Sprint(forms) != fmt.Sprint(tt.want) {
				t.Fatalf("requests\n%v\nwant\n%v", forms, tt.want)
			}
			for i, a := range auth {
				// SigV4 with the configured key, for IAM in us-east-1.
				if !strings.HasPrefix(a, "AWS4-HMAC-SHA256 Credential="+testKeyID+"/") || !strings.Contains(a, "/us-east-1/iam/aws4_request, SignedHeaders=") || !strings.Contains(a, "Signature=") {
					t.Errorf("request %d Authorization %q is not SigV4 for iam in us-east-1", i, a)
				}
			}
		})
	}
}

func TestFaults(t *testing.T) {
	xml := map[string]string{"Content-Type": "text/xml"}
	tests := []struct {
		name     string
		faults   []providertest.Fault
		want     providertest.Class
		requests int // the provider must not retry by itself
	}{
		{"throttled", []providertest.Fault{{Status: 400, Header: xml, Body: errorXML("Sender", "Throttling", "Rate exceeded")}}, providertest.Retryable, 1},
		{"service failure on the update", []providertest.Fault{{}, {Status: 500, Header: xml, Body: errorXML("Receiver", "ServiceFailure", "internal")}}, providertest.Retryable, 2},
		{"503 without a body", []providertest.Fault{{Status: 503}}, providertest.Retryable, 1},
		{"entity temporarily unmodifiable", []providertest.Fault{{}, {Status: 409, Header: xml, Body: errorXML("Sender", "EntityTemporarilyUnmodifiable", "busy")}}, providertest.Retryable, 2},
		{"timeout", []providertest.Fault{{Delay: 5 * time.Second}}, providertest.Retryable, 1},
		{"access denied", []providertest.Fault{{Status: 403, Header: xml, Body: errorXML("Sender", "AccessDenied", "not authorized to perform iam:ListAccessKeys")}}, providertest.Permanent, 1},
		{"invalid input", []providertest.Fault{{}, {Status: 400, Header: xml, Body: errorXML("Sender", "InvalidInput", "bad key")}}, providertest.Permanent, 2},
		{"key gone between the calls", []providertest.Fault{{}, {Status: 404, Header: xml, Body: errorXML("Sender", "NoSuchEntity", "The Access Key with id AKIAIOSFODNN7EXAMPLE cannot be found")}}, providertest.Permanent, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := &providertest.Faults{Next: &iamFake{}}
			faults.Inject(tt.faults...)
			srv := httptest.NewServer(faults)
			defer srv.Close()
			p := newTestProvider(t, srv.URL, 300*time.Millisecond)
			_, err := p.Do(context.Background(), request(response.ActionDisable, userTarget("ci-bot", "AKIAIOSFODNN7EXAMPLE")))
			providertest.WantClass(t, err, tt.want)
			if !strings.HasPrefix(err.Error(), "aws_iam: ") {
				t.Errorf("error %q does not name the provider", err)
			}
			if n := faults.Requests(); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
		})
	}
}
