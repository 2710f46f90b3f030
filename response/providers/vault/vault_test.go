package vault

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/secure/securetest"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/providertest"
	"github.com/nhisentry/nhisentry/schemas"
)

const testToken = "hvs.CAESIJ1nhisentryTestToken"

func tokenFile(t *testing.T, v string) secure.Secret {
	t.Helper()
	f := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(f, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return secure.Secret{File: f}
}

func newTestProvider(t *testing.T, c Config) response.Provider {
	t.Helper()
	if c.Token.IsZero() {
		c.Token = tokenFile(t, testToken)
	}
	p, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func revoke(target response.Target) response.Request {
	return response.Request{ID: "req-1", Action: response.ActionRevoke, Provider: "vault", Target: target, FindingID: "f-1", Reason: "test",
		At: time.Date(2026, 11, 22, 9, 30, 15, 0, time.UTC)}
}

func tokenTarget(accessor string) response.Target {
	return response.Target{Identity: schemas.Identity{ID: "k8s:sa/prod/payments/ledger", Kind: schemas.KindServiceAccount}, Credential: accessor, CredentialType: "vault_token", Issuer: "vault"}
}

func certTarget(serial, issuer string) response.Target {
	return response.Target{Identity: schemas.Identity{ID: "spiffe://td/ns/payments/sa/ledger", Kind: schemas.KindWorkload}, Credential: serial, CredentialType: "x509_certificate", Issuer: issuer}
}

func TestValidate(t *testing.T) {
	cert := securetest.SelfSigned(t)
	tests := []struct {
		name string
		c    Config
		want []string
	}{
		{"minimal", Config{Address: "https://vault.example.com:8200", Token: tokenFile(t, "x")}, nil},
		{"everything", Config{Address: "https://vault.example.com:8200", Token: tokenFile(t, "x"), Namespace: "team-a/", PKIMount: "pki/int", TLS: secure.TLS{Enabled: true, CAFile: cert.CertFile}, Timeout: time.Second}, nil},
		{"everything wrong", Config{Address: "vault:8200", PKIMount: "/pki", Namespace: "a b", Timeout: -time.Second, TLS: secure.TLS{Enabled: true, CertFile: cert.CertFile}}, []string{
			"v.address: want an absolute http or https URL",
			"v.token: no secret configured",
			`v.pki_mount: "/pki" is not a mount path`,
			`v.namespace: "a b" is not a namespace path`,
			"v.timeout: -1s is negative",
			"v.tls: cert_file and key_file go together",
		}},
		{"no address", Config{Token: tokenFile(t, "x")}, []string{"v.address: required"}},
		{"tls over http", Config{Address: "http://vault:8200", Token: tokenFile(t, "x"), TLS: secure.TLS{Enabled: true}}, []string{"v.address: tls is enabled, so the address must be https"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.c.Validate("v")
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
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "vault.address: required") {
		t.Errorf("New(Config{}): %v, want the default name in the error", err)
	}
}

func TestCheck(t *testing.T) {
	p := newTestProvider(t, Config{Address: "http://127.0.0.1:1"})
	tests := []struct {
		name   string
		action response.Action
		target response.Target
		ok     bool
	}{
		{"token accessor", response.ActionRevoke, tokenTarget("hmm7nvY2n4aKqYPOhc0fjjPX"), true},
		{"accessor identity", response.ActionRevoke, response.Target{Identity: schemas.Identity{ID: "vault:accessor/hmm7nvY2n4aKqYPOhc0fjjPX", Kind: schemas.KindToken}}, true},
		{"lease", response.ActionRevoke, response.Target{Credential: "aws/creds/deploy/abc", CredentialType: "vault_lease"}, true},
		{"certificate of a named mount", response.ActionRevoke, certTarget("39:dd:2e:90", "vault:pki_int"), true},
		{"certificate, no issuer", response.ActionRevoke, certTarget("39-DD-2E-90", ""), true},
		{"certificate of cert-manager", response.ActionRevoke, certTarget("39:dd:2e:90", "cert-manager:letsencrypt"), false},
		{"certificate with a decimal serial", response.ActionRevoke, certTarget("1234567", ""), false},
		{"token without accessor", response.ActionRevoke, tokenTarget(""), false},
		{"AWS key", response.ActionRevoke, response.Target{Credential: "AKIAIOSFODNN7EXAMPLE", CredentialType: "aws_access_key"}, false},
		{"disable", response.ActionDisable, tokenTarget("hmm7nvY2n4aKqYPOhc0fjjPX"), false},
		{"isolate", response.ActionIsolate, tokenTarget("hmm7nvY2n4aKqYPOhc0fjjPX"), false},
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

func TestRevoke(t *testing.T) {
	// What NewClient would otherwise pick up from the environment.
	t.Setenv("VAULT_TOKEN", "hvs.from-the-environment")
	t.Setenv("VAULT_NAMESPACE", "env-ns")
	t.Setenv("VAULT_HEADERS", `{"X-Leak":"1"}`)
	tests := []struct {
		name       string
		target     response.Target
		method     string
		path, body string
		detail     string
		again      string // Detail of a second Do
	}{
		{"token accessor", tokenTarget("hmm7nvY2n4aKqYPOhc0fjjPX"), "POST", "/v1/auth/token/revoke-accessor", `{"accessor":"hmm7nvY2n4aKqYPOhc0fjjPX"}`,
			"token with accessor hmm7nvY2n4aKqYPOhc0fjjPX and its children revoked", "token with accessor hmm7nvY2n4aKqYPOhc0fjjPX already revoked or expired (invalid accessor)"},
		{"accessor identity", response.Target{Identity: schemas.Identity{ID: "vault:accessor/6Lz9ctGq4FqBYb2wVBYJFHd4", Kind: schemas.KindToken}}, "POST", "/v1/auth/token/revoke-accessor", `{"accessor":"6Lz9ctGq4FqBYb2wVBYJFHd4"}`,
			"token with accessor 6Lz9ctGq4FqBYb2wVBYJFHd4 and its children revoked", "already revoked or expired"},
		{"lease", response.Target{Credential: "database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6", CredentialType: "vault_lease"}, "PUT", "/v1/sys/leases/revoke", `{"lease_id":"database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6"}`,
			"lease database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6 revoked", "revoked"},
		{"certificate on the issuer's mount", certTarget("39:DD:2E:90:B7:23:1F:8D:D3:7D:31:C5:1B:DA:84:D0:5B:65:31:58", "vault:pki_int"), "PUT", "/v1/pki_int/revoke", `{"serial_number":"39:dd:2e:90:b7:23:1f:8d:d3:7d:31:c5:1b:da:84:d0:5b:65:31:58"}`,
			"certificate 39:dd:2e:90:b7:23:1f:8d:d3:7d:31:c5:1b:da:84:d0:5b:65:31:58 on pki_int revoked at 2026-11-22T09:31:00Z", "revoked at 2026-11-22T09:31:00Z"},
		{"certificate on the default mount, serial run together", certTarget("5b65315839dd2e90b7231f8dd37d31c51bda84d0", ""), "PUT", "/v1/pki/revoke", `{"serial_number":"5b:65:31:58:39:dd:2e:90:b7:23:1f:8d:d3:7d:31:c5:1b:da:84:d0"}`,
			"on pki revoked at 2026-11-22T09:31:00Z", "revoked at 2026-11-22T09:31:00Z"},
		{"expired certificate", certTarget("0a-0b-0c-0d", ""), "PUT", "/v1/pki/revoke", `{"serial_number":"0a:0b:0c:0d"}`,
			"certificate 0a:0b:0c:0d on pki: certificate with serial 0a:0b:0c:0d already expired; refusing to add to CRL", "already expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := newVaultFake(testToken)
			srv := httptest.NewServer(fake)
			defer srv.Close()
			p := newTestProvider(t, Config{Address: srv.URL, Namespace: "team-a"})
			if err := p.Check(response.ActionRevoke, tt.target); err != nil {
				t.Fatal(err)
			}
			res, err := p.Do(context.Background(), revoke(tt.target))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(res.Detail, tt.detail) || res.Undo != nil {
				t.Errorf("result %+v, want detail with %q and no undo state", res, tt.detail)
			}
			got := fake.requests()
			if len(got) != 1 {
				t.Fatalf("%d requests, want 1", len(got))
			}
			r := got[0]
			if r.Method != tt.method || r.Path != tt.path || r.Body != tt.body || r.Token != testToken || r.Namespace != "team-a" || r.Header.Get("X-Leak") != "" || r.Header.Get("X-Vault-Request") != "true" {
				t.Errorf("request %s %s %s token %q namespace %q headers %v\nwant %s %s %s with the configured token and namespace", r.Method, r.Path, r.Body, r.Token, r.Namespace, r.Header, tt.method, tt.path, tt.body)
			}
			// Repeating is a success: the credential is revoked either way.
			res, err = p.Do(context.Background(), revoke(tt.target))
			if err != nil || !strings.Contains(res.Detail, tt.again) {
				t.Errorf("second Do: %+v, %v; want detail with %q", res, err, tt.again)
			}
			_, err = p.Undo(context.Background(), revoke(tt.target), res)
			providertest.WantClass(t, err, providertest.Irreversible)
		})
	}
}

func TestErrors(t *testing.T) {
	jsonType := map[string]string{"Content-Type": "application/json"}
	tests := []struct {
		name   string
		token  string
		target response.Target
		faults []providertest.Fault
		want   providertest.Class
		msg    string
	}{
		{"certificate never issued", testToken, certTarget("ff:ff", ""), nil, providertest.Permanent, "vault: revoke certificate ff:ff on pki: HTTP 400: certificate with serial ff:ff not found."},
		{"unknown mount", testToken, certTarget("ff:ff", "vault:pki_gone"), nil, providertest.Permanent, `HTTP 404: no handler for route "pki_gone/revoke"`},
		{"token without the policy", "hvs.other", tokenTarget("hmm7nvY2n4aKqYPOhc0fjjPX"), nil, providertest.Permanent, "vault: revoke token accessor hmm7nvY2n4aKqYPOhc0fjjPX: HTTP 403: permission denied"},
		{"sealed", testToken, tokenTarget("hmm7nvY2n4aKqYPOhc0fjjPX"), []providertest.Fault{{Status: 503, Header: jsonType, Body: `{"errors":["Vault is sealed"]}`}}, providertest.Retryable, "HTTP 503: Vault is sealed"},
		{"rate limited", testToken, response.Target{Credential: "l1", CredentialType: "vault_lease"}, []providertest.Fault{{Status: 429, Header: jsonType, Body: `{"errors":["request path \"sys/leases/revoke\": rate limit quota exceeded"]}`}}, providertest.Retryable, "HTTP 429"},
		{"internal error", testToken, certTarget("39:dd", ""), []providertest.Fault{{Status: 500, Header: jsonType, Body: "{\"errors\":[\"1 error occurred:\\n\\t* storage unavailable\\n\\n\"]}"}}, providertest.Retryable, "HTTP 500: 1 error occurred: * storage unavailable"},
		{"standby not caught up", testToken, tokenTarget("a"), []providertest.Fault{{Status: 412, Header: jsonType, Body: `{"errors":["required index state not present"]}`}}, providertest.Retryable, "HTTP 412"},
		{"performance standby", testToken, tokenTarget("a"), []providertest.Fault{{Status: 473}}, providertest.Retryable, "HTTP 473"},
		{"bad gateway, not JSON", testToken, tokenTarget("a"), []providertest.Fault{{Status: 502, Body: "<html>bad gateway</html>"}}, providertest.Retryable, "HTTP 502"},
		{"timeout", testToken, tokenTarget("a"), []providertest.Fault{{Delay: 5 * time.Second}}, providertest.Retryable, "revoke token accessor a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			faults := &providertest.Faults{Next: newVaultFake(testToken)}
			faults.Inject(tt.faults...)
			srv := httptest.NewServer(faults)
			defer srv.Close()
			p := newTestProvider(t, Config{Address: srv.URL, Token: tokenFile(t, tt.token), Timeout: 300 * time.Millisecond})
			_, err := p.Do(context.Background(), revoke(tt.target))
			providertest.WantClass(t, err, tt.want)
			if !strings.Contains(err.Error(), tt.msg) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line with %q", err, tt.msg)
			}
			if n := faults.Requests(); n != 1 {
				t.Errorf("%d requests, want 1: the executor retries, not the client", n)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	cert := securetest.SelfSigned(t)
	srv := httptest.NewUnstartedServer(newVaultFake(testToken))
	srv.TLS = cert.Server
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	target := tokenTarget("hmm7nvY2n4aKqYPOhc0fjjPX")

	p := newTestProvider(t, Config{Address: srv.URL, TLS: secure.TLS{Enabled: true, CAFile: cert.CertFile}})
	if _, err := p.Do(context.Background(), revoke(target)); err != nil {
		t.Fatalf("with the test CA: %v", err)
	}
	p = newTestProvider(t, Config{Address: srv.URL})
	_, err := p.Do(context.Background(), revoke(target))
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the test CA: %v, want a certificate error", err)
	}
}
