package awsiam

import (
	"context"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/providertest"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	testAccount = "123456789012" // moto's default account
	testKeyID   = "AKIAFAKEFAKEFAKEFAKE"
)

// at is when the tests' requests were planned.
var at = time.Date(2026, 11, 22, 9, 30, 15, 0, time.UTC)

func secretFile(t *testing.T, v string) secure.Secret {
	t.Helper()
	f := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return secure.Secret{File: f}
}

func newTestProvider(t *testing.T, endpoint string, timeout time.Duration) response.Provider {
	t.Helper()
	p, err := New(Config{Account: testAccount, Endpoint: endpoint, AccessKeyID: testKeyID, SecretAccessKey: secretFile(t, "fake-secret"), Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func userTarget(name, key string) response.Target {
	return response.Target{Identity: schemas.Identity{ID: "aws:user/" + testAccount + "/" + name, Kind: schemas.KindUser, Name: name}, Credential: key, CredentialType: "aws_access_key"}
}

func roleTarget(name, key string) response.Target {
	return response.Target{Identity: schemas.Identity{ID: "aws:role/" + testAccount + "/" + name, Kind: schemas.KindRole, Name: name}, Credential: key, CredentialType: "aws_sts"}
}

func request(action response.Action, target response.Target) response.Request {
	return response.Request{ID: "req-1", Action: action, Provider: "aws_iam", Target: target, FindingID: "f-1", Reason: "test", At: at}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		c    Config
		want []string
	}{
		{"minimal", Config{Account: testAccount}, nil},
		{"static credentials", Config{Account: testAccount, AccessKeyID: testKeyID, SecretAccessKey: secretFile(t, "s")}, nil},
		{"everything wrong", Config{Account: "12345", Region: "US East", Endpoint: "iam.local:4566", AccessKeyID: testKeyID, SecretAccessKey: secure.Secret{Env: "NHI_TEST_UNSET_SECRET"}, Timeout: -time.Second}, []string{
			`p.account: "12345", want the 12-digit AWS account id`,
			`p.region: "US East" is not a region name`,
			"p.endpoint: want an absolute http or https URL",
			"p.secret_access_key: secret: environment variable NHI_TEST_UNSET_SECRET is not set",
			"p.timeout: -1s is negative",
		}},
		{"secret without key id", Config{Account: testAccount, SecretAccessKey: secretFile(t, "s")}, []string{"p.access_key_id: required with secret_access_key"}},
		{"key id without secret", Config{Account: testAccount, AccessKeyID: testKeyID}, []string{"p.secret_access_key: no secret configured"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.c.Validate("p")
			if len(errs) != len(tt.want) {
				t.Fatalf("got %d errors %v, want %d", len(errs), errs, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("error %d: %q, want it to start with %q", i, errs[i], w)
				}
			}
		})
	}
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "aws_iam.account") {
		t.Errorf("New without account: %v, want the default name in the error", err)
	}
}

func TestCheck(t *testing.T) {
	p := newTestProvider(t, "http://127.0.0.1:1", 0)
	other := userTarget("ci-bot", "AKIAIOSFODNN7EXAMPLE")
	other.Identity.ID = "aws:user/999999999999/ci-bot"
	byFields := response.Target{Identity: schemas.Identity{ID: "aws:principal/x", Kind: schemas.KindRole}, Account: testAccount, Name: "media-api"}
	tests := []struct {
		name   string
		action response.Action
		target response.Target
		ok     bool
	}{
		{"disable a user's access key", response.ActionDisable, userTarget("ci-bot", "AKIAIOSFODNN7EXAMPLE"), true},
		{"disable a user without a key", response.ActionDisable, userTarget("ci-bot", ""), false},
		{"disable a user's session key", response.ActionDisable, userTarget("ci-bot", "ASIAIOSFODNN7EXAMPLE"), false},
		{"disable a role", response.ActionDisable, roleTarget("media-api", ""), false},
		{"isolate a role", response.ActionIsolate, roleTarget("media-api", ""), true},
		{"revoke a role's session key", response.ActionRevoke, roleTarget("media-api", "ASIAIOSFODNN7EXAMPLE"), true},
		{"role located by account and name", response.ActionIsolate, byFields, true},
		{"isolate a user", response.ActionIsolate, userTarget("ci-bot", "AKIAIOSFODNN7EXAMPLE"), false},
		{"notify", response.ActionNotify, roleTarget("media-api", ""), false},
		{"another account", response.ActionDisable, other, false},
		{"not AWS", response.ActionIsolate, response.Target{Identity: schemas.Identity{ID: "gcp:sa/a@p.iam.gserviceaccount.com", Kind: schemas.KindServiceAccount}}, false},
		{"role with a path-like name", response.ActionIsolate, response.Target{Identity: schemas.Identity{ID: "aws:role/" + testAccount + "/a/b"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.action, tt.target)
			if tt.ok != (err == nil) || (err != nil && !errors.Is(err, response.ErrNotApplicable)) {
				t.Fatalf("Check = %v, want ok=%v or ErrNotApplicable", err, tt.ok)
			}
		})
	}
}

func TestPolicyDocuments(t *testing.T) {
	doc := revokeDocument(at.Add(999 * time.Millisecond).In(time.FixedZone("CET", 3600)))
	want := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":["*"],"Resource":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-22T09:30:15Z"}}}]}`
	if doc != want {
		t.Fatalf("revokeDocument:\n%s\nwant\n%s", doc, want)
	}
	console := `{"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*", "Condition": {"DateLessThan": {"aws:TokenIssueTime": "2026-11-20T08:00:00.123Z"}}}]}`
	tests := []struct {
		name string
		doc  string
		want time.Time
		ok   bool
	}{
		{"ours", doc, at, true},
		{"the console's", console, time.Date(2026, 11, 20, 8, 0, 0, 123e6, time.UTC), true},
		{"an allow", strings.Replace(doc, "Deny", "Allow", 1), time.Time{}, false},
		{"narrower action", strings.Replace(doc, `["*"]`, `["s3:*"]`, 1), time.Time{}, false},
		{"two statements", `{"Statement":[{},{}]}`, time.Time{}, false},
		{"not JSON", "%7B", time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := revokeTime(tt.doc)
			if ok != tt.ok || !got.Equal(tt.want) {
				t.Errorf("revokeTime = %v, %v; want %v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	if !sameJSON(doc, `{ "Statement":[{"Resource":["*"],"Effect":"Deny","Action":["*"],"Condition":{"DateLessThan":{"aws:TokenIssueTime":"2026-11-22T09:30:15Z"}}}], "Version":"2012-10-17"}`) {
		t.Error("sameJSON: reordered keys and spacing should compare equal")
	}
	if sameJSON(doc, console) {
		t.Error("sameJSON: different documents compared equal")
	}
}

// motoIAM is a client for setting up and reading moto's state, apart from
// the provider's.
func motoIAM(url string) *iam.Client {
	return iam.New(iam.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("testing", "testing", ""),
	})
}

func keyStatus(t *testing.T, c *iam.Client, user, key string) types.StatusType {
	t.Helper()
	out, err := c.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range out.AccessKeyMetadata {
		if aws.ToString(k.AccessKeyId) == key {
			return k.Status
		}
	}
	t.Fatalf("no key %s for %s", key, user)
	return ""
}

func TestMotoDisableAccessKey(t *testing.T) {
	url := needMoto(t)
	ctx := context.Background()
	c := motoIAM(url)
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("ci-bot")}); err != nil {
		t.Fatal(err)
	}
	created, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("ci-bot")})
	if err != nil {
		t.Fatal(err)
	}
	key := aws.ToString(created.AccessKey.AccessKeyId)
	p := newTestProvider(t, url, 0)
	req := request(response.ActionDisable, userTarget("ci-bot", key))
	if err := p.Check(req.Action, req.Target); err != nil {
		t.Fatal(err)
	}

	done, err := p.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := keyStatus(t, c, "ci-bot", key); got != types.StatusTypeInactive {
		t.Fatalf("after Do: %s, want Inactive", got)
	}
	wantUndo := map[string]string{"user": "ci-bot", "access_key_id": key, "previous_status": "Active"}
	if !maps.Equal(done.Undo, wantUndo) || !strings.Contains(done.Detail, "set Inactive (was Active)") {
		t.Fatalf("Do result %+v, want undo %v", done, wantUndo)
	}

	again, err := p.Do(ctx, req)
	if err != nil || !strings.Contains(again.Detail, "already Inactive") {
		t.Fatalf("repeated Do: %+v, %v", again, err)
	}
	if _, err := p.Undo(ctx, req, again); err != nil {
		t.Fatal(err)
	}
	if got := keyStatus(t, c, "ci-bot", key); got != types.StatusTypeInactive {
		t.Fatalf("undo of the repeat, which found it Inactive, enabled it: %s", got)
	}

	for range 2 { // Undo is idempotent too
		if _, err := p.Undo(ctx, req, done); err != nil {
			t.Fatal(err)
		}
		if got := keyStatus(t, c, "ci-bot", key); got != types.StatusTypeActive {
			t.Fatalf("after Undo: %s, want Active", got)
		}
	}
}

func TestMotoUnknownAccessKey(t *testing.T) {
	url := needMoto(t)
	ctx := context.Background()
	c := motoIAM(url)
	if _, err := c.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("ci-bot")}); err != nil {
		t.Fatal(err)
	}
	p := newTestProvider(t, url, 0)
	tests := []struct {
		name   string
		target response.Target
		want   string
	}{
		{"key of no one", userTarget("ci-bot", "AKIAIOSFODNN7EXAMPLE"), "access key AKIAIOSFODNN7EXAMPLE is not a key of user ci-bot"},
		{"unknown user", userTarget("ghost", "AKIAIOSFODNN7EXAMPLE"), "ListAccessKeys user ghost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Do(ctx, request(response.ActionDisable, tt.target))
			providertest.WantClass(t, err, providertest.Permanent)
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
	_, err := p.Undo(ctx, request(response.ActionDisable, userTarget("ci-bot", "AKIAIOSFODNN7EXAMPLE")),
		response.Result{Undo: map[string]string{"user": "ci-bot", "access_key_id": "AKIAIOSFODNN7EXAMPLE", "previous_status": "Active"}})
	providertest.WantClass(t, err, providertest.Permanent)
}

func rolePolicies(t *testing.T, c *iam.Client, role string) []string {
	t.Helper()
	out, err := c.ListRolePolicies(context.Background(), &iam.ListRolePoliciesInput{RoleName: aws.String(role)})
	if err != nil {
		t.Fatal(err)
	}
	return out.PolicyNames
}

func revokePolicy(t *testing.T, c *iam.Client, role string) string {
	t.Helper()
	out, err := c.GetRolePolicy(context.Background(), &iam.GetRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(revokePolicyName)})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := decodePolicy(aws.ToString(out.PolicyDocument))
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

func createRole(t *testing.T, c *iam.Client, role string) {
	t.Helper()
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	if _, err := c.CreateRole(context.Background(), &iam.CreateRoleInput{RoleName: aws.String(role), AssumeRolePolicyDocument: aws.String(trust)}); err != nil {
		t.Fatal(err)
	}
}

func putRevokePolicy(t *testing.T, c *iam.Client, role, doc string) {
	t.Helper()
	if _, err := c.PutRolePolicy(context.Background(), &iam.PutRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(revokePolicyName), PolicyDocument: aws.String(doc)}); err != nil {
		t.Fatal(err)
	}
}

func TestMotoRevokeRoleSessions(t *testing.T) {
	url := needMoto(t)
	ctx := context.Background()
	c := motoIAM(url)
	createRole(t, c, "media-api")
	p := newTestProvider(t, url, 0)
	for _, action := range []response.Action{response.ActionIsolate, response.ActionRevoke} {
		t.Run(string(action), func(t *testing.T) {
			req := request(action, roleTarget("media-api", "ASIAIOSFODNN7EXAMPLE"))
			done, err := p.Do(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			want := revokeDocument(at)
			if got := revokePolicy(t, c, "media-api"); got != want {
				t.Fatalf("policy after Do:\n%s\nwant\n%s", got, want)
			}
			if !maps.Equal(done.Undo, map[string]string{"role": "media-api", "policy_document": want}) {
				t.Fatalf("undo state %v", done.Undo)
			}
			again, err := p.Do(ctx, req)
			if err != nil || !maps.Equal(again.Undo, done.Undo) || revokePolicy(t, c, "media-api") != want {
				t.Fatalf("repeated Do: %+v, %v", again, err)
			}
			for range 2 {
				if _, err := p.Undo(ctx, req, done); err != nil {
					t.Fatal(err)
				}
				if got := rolePolicies(t, c, "media-api"); len(got) != 0 {
					t.Fatalf("policies after Undo: %v, want none", got)
				}
			}
		})
	}
}

func TestMotoRevokeOverExistingPolicy(t *testing.T) {
	url := needMoto(t)
	ctx := context.Background()
	c := motoIAM(url)
	createRole(t, c, "media-api")
	p := newTestProvider(t, url, 0)
	req := request(response.ActionIsolate, roleTarget("media-api", ""))

	// An earlier console revocation is replaced, and restored by Undo.
	earlier := revokeDocument(at.Add(-48 * time.Hour))
	putRevokePolicy(t, c, "media-api", earlier)
	done, err := p.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := revokePolicy(t, c, "media-api"); got != revokeDocument(at) {
		t.Fatalf("policy after Do: %s", got)
	}
	if _, err := p.Undo(ctx, req, done); err != nil {
		t.Fatal(err)
	}
	if got := revokePolicy(t, c, "media-api"); got != earlier {
		t.Fatalf("policy after Undo: %s, want the earlier one back", got)
	}

	// A later one cuts more: left alone, and Undo leaves it too.
	later := revokeDocument(at.Add(time.Hour))
	putRevokePolicy(t, c, "media-api", later)
	done, err = p.Do(ctx, req)
	if err != nil || !strings.Contains(done.Detail, "already denies sessions issued before 2026-11-22T10:30:15Z") {
		t.Fatalf("Do over a later revocation: %+v, %v", done, err)
	}
	if _, err := p.Undo(ctx, req, done); err != nil {
		t.Fatal(err)
	}
	if got := revokePolicy(t, c, "media-api"); got != later {
		t.Fatalf("policy after Do and Undo: %s, want the later one untouched", got)
	}

	// Changed after Do: Undo refuses to remove someone else's policy.
	if _, err := c.DeleteRolePolicy(ctx, &iam.DeleteRolePolicyInput{RoleName: aws.String("media-api"), PolicyName: aws.String(revokePolicyName)}); err != nil {
		t.Fatal(err)
	}
	done, err = p.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	putRevokePolicy(t, c, "media-api", later)
	_, err = p.Undo(ctx, req, done)
	providertest.WantClass(t, err, providertest.Permanent)
	if got := revokePolicy(t, c, "media-api"); got != later {
		t.Fatalf("policy after a refused Undo: %s", got)
	}
}

func TestMotoUnknownRole(t *testing.T) {
	url := needMoto(t)
	p := newTestProvider(t, url, 0)
	req := request(response.ActionIsolate, roleTarget("ghost", ""))
	_, err := p.Do(context.Background(), req)
	providertest.WantClass(t, err, providertest.Permanent)
	// Nothing to undo on a role that is gone.
	res, err := p.Undo(context.Background(), req, response.Result{Undo: map[string]string{"role": "ghost", "policy_document": revokeDocument(at)}})
	if err != nil || !strings.Contains(res.Detail, "already removed") {
		t.Fatalf("Undo on a missing role: %+v, %v", res, err)
	}
}
