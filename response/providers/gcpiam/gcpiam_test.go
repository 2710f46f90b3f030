package gcpiam

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"maps"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/providertest"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	testToken = "ya29.nhisentry-test-token"
	ledger    = "ledger@payments-prod.iam.gserviceaccount.com"
	ledgerKey = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	compute   = "123456789-compute@developer.gserviceaccount.com"
)

func writeFile(t *testing.T, name, v string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func newTestProvider(t *testing.T, c Config) response.Provider {
	t.Helper()
	if c.CredentialsFile == "" && c.Token.IsZero() {
		c.Token = secure.Secret{File: writeFile(t, "token", testToken+"\n")}
	}
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func saTarget(email, key string) response.Target {
	t := response.Target{Identity: schemas.Identity{ID: "gcp:sa/" + email, Kind: schemas.KindServiceAccount, Name: email}}
	if key != "" {
		t.Credential, t.CredentialType = key, "gcp_sa_key"
	}
	return t
}

func request(action response.Action, target response.Target) response.Request {
	return response.Request{ID: "req-1", Action: action, Provider: "gcp_iam", Target: target, FindingID: "f-1", Reason: "test", At: time.Date(2026, 11, 22, 9, 30, 15, 0, time.UTC)}
}

// serviceAccountFile writes a service-account key file whose token_uri is
// the fake's, and gives the fake the public key to check assertions.
func serviceAccountFile(t *testing.T, fake *iamFake, tokenURI string) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	fake.key = &key.PublicKey
	b, _ := json.Marshal(map[string]string{
		"type": "service_account", "project_id": "sec-tools", "private_key_id": "0123abcd",
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": "nhisentry@sec-tools.iam.gserviceaccount.com", "client_id": "1", "token_uri": tokenURI,
	})
	return writeFile(t, "sa.json", string(b))
}

func TestValidate(t *testing.T) {
	user := writeFile(t, "user.json", `{"type":"authorized_user","client_id":"x","client_secret":"y","refresh_token":"z"}`)
	tests := []struct {
		name string
		c    Config
		want []string
	}{
		{"application default credentials", Config{}, nil},
		{"token", Config{Token: secure.Secret{File: writeFile(t, "tok", "ya29.x")}, Endpoint: "http://127.0.0.1:8080/", Timeout: time.Second}, nil},
		{"both", Config{CredentialsFile: user, Token: secure.Secret{Env: "X"}}, []string{"g: set credentials_file or token, not both"}},
		{"a person's credentials", Config{CredentialsFile: user}, []string{`g.credentials_file: credentials of type "authorized_user", want one of`}},
		{"everything wrong", Config{Token: secure.Secret{Env: "NHI_TEST_UNSET_TOKEN"}, Endpoint: "iam.googleapis.com", Timeout: -time.Second}, []string{
			"g.token: secret: environment variable NHI_TEST_UNSET_TOKEN is not set",
			"g.endpoint: want an absolute http or https URL",
			"g.timeout: -1s is negative",
		}},
		{"missing file", Config{CredentialsFile: filepath.Join(t.TempDir(), "nope.json")}, []string{"g.credentials_file: open"}},
		{"not JSON", Config{CredentialsFile: writeFile(t, "x.json", "key")}, []string{"g.credentials_file: not a credentials JSON file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.c.Validate("g")
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
}

func TestCheck(t *testing.T) {
	p := newTestProvider(t, Config{Endpoint: "http://127.0.0.1:1"})
	tests := []struct {
		name   string
		action response.Action
		target response.Target
		ok     bool
	}{
		{"disable a key", response.ActionDisable, saTarget(ledger, ledgerKey), true},
		{"disable the account", response.ActionDisable, saTarget(ledger, ""), true},
		{"disable with a minted token in the evidence", response.ActionDisable, response.Target{Identity: saTarget(ledger, "").Identity, Credential: "", CredentialType: "gcp_access_token"}, true},
		{"isolate", response.ActionIsolate, saTarget(compute, ledgerKey), true},
		{"malformed key id", response.ActionDisable, saTarget(ledger, "../../x"), false},
		{"revoke", response.ActionRevoke, saTarget(ledger, ledgerKey), false},
		{"notify", response.ActionNotify, saTarget(ledger, ""), false},
		{"a person", response.ActionDisable, response.Target{Identity: schemas.Identity{ID: "gcp:user/ana@example.com", Kind: schemas.KindUser}}, false},
		{"an AWS role", response.ActionIsolate, response.Target{Identity: schemas.Identity{ID: "aws:role/123456789012/x", Kind: schemas.KindRole}}, false},
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

func TestDisableAndUndo(t *testing.T) {
	tests := []struct {
		name     string
		action   response.Action
		target   response.Target
		resource string // the fake's state key
		path     string
		detail   string
	}{
		{"key", response.ActionDisable, saTarget(ledger, ledgerKey), ledger + "/keys/" + ledgerKey,
			"/v1/projects/payments-prod/serviceAccounts/" + ledger + "/keys/" + ledgerKey, "key " + ledgerKey + " of " + ledger},
		{"account", response.ActionDisable, saTarget(ledger, ""), ledger,
			"/v1/projects/payments-prod/serviceAccounts/" + ledger, "service account " + ledger},
		{"isolated account whose email names no project", response.ActionIsolate, saTarget(compute, ledgerKey), compute,
			"/v1/projects/-/serviceAccounts/" + compute, "service account " + compute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newIAMFake(testToken)
			srv := httptest.NewServer(fake)
			defer srv.Close()
			p := newTestProvider(t, Config{Endpoint: srv.URL + "/"})
			ctx := context.Background()
			req := request(tt.action, tt.target)

			done, err := p.Do(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if !fake.disabled(tt.resource) || done.Detail != tt.detail+" disabled" {
				t.Fatalf("after Do: disabled=%v, result %+v", fake.disabled(tt.resource), done)
			}
			auth := "Bearer " + testToken
			want := []fakeRequest{{"GET", tt.path, "", auth, ""}, {"POST", tt.path + ":disable", "{}", auth, "application/json"}}
			if got := fake.requests(); !slices.Equal(got, want) {
				t.Fatalf("requests\n%+v\nwant\n%+v", got, want)
			}

			again, err := p.Do(ctx, req)
			if err != nil || again.Detail != tt.detail+" was already disabled" || again.Undo["previous"] != "disabled" {
				t.Fatalf("repeated Do: %+v, %v", again, err)
			}
			if res, err := p.Undo(ctx, req, again); err != nil || !fake.disabled(tt.resource) || !strings.Contains(res.Detail, "left disabled") {
				t.Fatalf("undo of the repeat, which found it disabled: %+v, %v, disabled=%v", res, err, fake.disabled(tt.resource))
			}
			for range 2 { // Undo is idempotent
				res, err := p.Undo(ctx, req, done)
				if err != nil || fake.disabled(tt.resource) || res.Detail != tt.detail+" enabled" {
					t.Fatalf("Undo: %+v, %v, disabled=%v", res, err, fake.disabled(tt.resource))
				}
			}
			if got := fake.requests(); got[len(got)-1] != (fakeRequest{"POST", tt.path + ":enable", "{}", auth, "application/json"}) {
				t.Errorf("last request %+v, want POST %s:enable {}", got[len(got)-1], tt.path)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	jsonType := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name     string
		target   response.Target
		faults   []providertest.Fault
		token    string
		want     providertest.Class
		msg      string
		requests int
	}{
		{"unknown account under the wildcard", saTarget("ghost@developer.gserviceaccount.com", ""), nil, testToken, providertest.Permanent,
			"gcp_iam: GET projects/-/serviceAccounts/ghost@developer.gserviceaccount.com: HTTP 403: PERMISSION_DENIED Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist).", 1},
		{"unknown key in a named project", saTarget(ledger, "ffff"), nil, testToken, providertest.Permanent, "HTTP 404: NOT_FOUND", 1},
		{"wrong token", saTarget(ledger, ""), nil, "ya29.stale", providertest.Permanent, "HTTP 401: UNAUTHENTICATED", 1},
		{"precondition", saTarget(ledger, ""), []providertest.Fault{{}, {Status: 400, Header: jsonType, Body: `{"error":{"code":400,"message":"Precondition check failed.","status":"FAILED_PRECONDITION"}}`}}, testToken, providertest.Permanent, "HTTP 400: FAILED_PRECONDITION", 2},
		{"quota", saTarget(ledger, ""), []providertest.Fault{{Status: 429, Header: jsonType, Body: `{"error":{"code":429,"message":"Quota exceeded","status":"RESOURCE_EXHAUSTED"}}`}}, testToken, providertest.Retryable, "HTTP 429: RESOURCE_EXHAUSTED Quota exceeded", 1},
		{"unavailable on disable", saTarget(ledger, ledgerKey), []providertest.Fault{{}, {Status: 503, Header: jsonType, Body: `{"error":{"code":503,"message":"The service is currently unavailable.","status":"UNAVAILABLE"}}`}}, testToken, providertest.Retryable, "HTTP 503: UNAVAILABLE", 2},
		{"concurrent change", saTarget(ledger, ""), []providertest.Fault{{}, {Status: 409, Header: jsonType, Body: `{"error":{"code":409,"message":"There were concurrent policy changes.","status":"ABORTED"}}`}}, testToken, providertest.Retryable, "HTTP 409: ABORTED", 2},
		{"bad gateway page", saTarget(ledger, ""), []providertest.Fault{{Status: 502, Body: "<html>\n<b>502</b>\n</html>"}}, testToken, providertest.Retryable, "HTTP 502: <html> <b>502</b> </html>", 1},
		{"timeout", saTarget(ledger, ""), []providertest.Fault{{Delay: 5 * time.Second}}, testToken, providertest.Retryable, "GET projects/payments-prod/serviceAccounts/" + ledger, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := &providertest.Faults{Next: newIAMFake(testToken)}
			faults.Inject(tt.faults...)
			srv := httptest.NewServer(faults)
			defer srv.Close()
			p := newTestProvider(t, Config{Endpoint: srv.URL, Token: secure.Secret{File: writeFile(t, "token", tt.token)}, Timeout: 300 * time.Millisecond})
			_, err := p.Do(context.Background(), request(response.ActionDisable, tt.target))
			providertest.WantClass(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q lacks %q", err, tt.msg)
			}
			if strings.Contains(err.Error(), tt.token) {
				t.Errorf("error %q shows the token", err)
			}
			if n := faults.Requests(); n != tt.requests {
				t.Errorf("%d requests, want %d", n, tt.requests)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	ctx := context.Background()
	req := request(response.ActionDisable, saTarget(ledger, ""))

	t.Run("service-account key file", func(t *testing.T) {
		fake := newIAMFake(testToken)
		srv := httptest.NewServer(fake)
		defer srv.Close()
		p := newTestProvider(t, Config{Endpoint: srv.URL, CredentialsFile: serviceAccountFile(t, fake, srv.URL+"/token")})
		done, err := p.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Undo(ctx, req, done); err != nil {
			t.Fatal(err)
		}
		fake.mu.Lock()
		defer fake.mu.Unlock()
		if fake.grants != 1 {
			t.Errorf("%d tokens granted for 3 calls, want 1 reused", fake.grants)
		}
	})

	t.Run("refused grant", func(t *testing.T) {
		fake := newIAMFake(testToken)
		srv := httptest.NewServer(fake)
		defer srv.Close()
		// The fake does not know the key: as if it were deleted at Google.
		p := newTestProvider(t, Config{Endpoint: srv.URL, CredentialsFile: serviceAccountFile(t, &iamFake{}, srv.URL+"/token")})
		_, err := p.Do(ctx, req)
		providertest.WantClass(t, err, providertest.Permanent)
		if !strings.Contains(err.Error(), "invalid_grant") || len(fake.requests()) != 0 {
			t.Errorf("error %v after %d IAM requests; want invalid_grant before any", err, len(fake.requests()))
		}
	})

	t.Run("application default credentials", func(t *testing.T) {
		fake := newIAMFake(testToken)
		srv := httptest.NewServer(fake)
		defer srv.Close()
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", serviceAccountFile(t, fake, srv.URL+"/token"))
		p, err := New(Config{Endpoint: srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Do(ctx, req); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("no application default credentials", func(t *testing.T) {
		t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
		p, err := New(Config{Endpoint: "http://127.0.0.1:1"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Do(ctx, req)
		providertest.WantClass(t, err, providertest.Permanent)
	})

	t.Run("token file read at every call", func(t *testing.T) {
		fake := newIAMFake("ya29.first")
		srv := httptest.NewServer(fake)
		defer srv.Close()
		file := writeFile(t, "token", "ya29.first\n")
		p := newTestProvider(t, Config{Endpoint: srv.URL, Token: secure.Secret{File: file}})
		done, err := p.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		fake.mu.Lock()
		fake.token = "ya29.second"
		fake.mu.Unlock()
		if err := os.WriteFile(file, []byte("ya29.second\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Undo(ctx, req, done); err != nil {
			t.Fatalf("Undo after the token was rotated: %v", err)
		}
	})
}

func TestUndoWithoutState(t *testing.T) {
	p := newTestProvider(t, Config{Endpoint: "http://127.0.0.1:1"})
	for _, u := range []map[string]string{nil, {"service_account": "not an email"}, {"service_account": ledger, "key_id": "../x"}} {
		_, err := p.Undo(context.Background(), request(response.ActionDisable, saTarget(ledger, "")), response.Result{Undo: maps.Clone(u)})
		providertest.WantClass(t, err, providertest.Permanent)
	}
}
