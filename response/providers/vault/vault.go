// Package vault is the HashiCorp Vault (and OpenBao) response provider: it
// revokes, for good, the credentials Vault issued — a token by its
// accessor, a lease, a PKI certificate by its serial (revoke_credential).
//
// API calls (through github.com/hashicorp/vault/api, token in
// X-Vault-Token, namespace in X-Vault-Namespace when set, no retries of its
// own: the executor retries):
//
//	token (credential type vault_token, or identity vault:accessor/<a>):
//	  POST /v1/auth/token/revoke-accessor   {"accessor": a}      204
//	lease (credential type vault_lease):
//	  PUT  /v1/sys/leases/revoke            {"lease_id": id}     204
//	certificate (credential type x509_certificate, issuer vault:<mount> or
//	none, then pki_mount):
//	  PUT  /v1/<mount>/revoke               {"serial_number": s} 200 {"data":{"revocation_time":…}}
//
// The Vault policy the token needs:
//
//	path "auth/token/revoke-accessor" { capabilities = ["update"] }
//	path "sys/leases/revoke"          { capabilities = ["update"] }
//	path "<pki mount>/revoke"         { capabilities = ["update"] }
//
// Revocations cannot be undone: Undo answers response.ErrIrreversible.
//
// Replies: a token already gone (Vault's 400 "invalid accessor" or "token
// not found": revoked, expired, or never there) counts as revoked, as does
// an unknown lease (Vault answers 204) and a certificate already revoked or
// expired. A certificate the mount never issued (400 "certificate with
// serial … not found") and any other 4xx (403 permission denied…) are
// Permanent; 412, 429, 472, 473, 5xx (sealed, standby), network errors and
// timeouts are retryable.
package vault

import (
	"cmp"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response"
)

// Config configures one Vault cluster.
type Config struct {
	Name      string        `yaml:"name"`      // provider name, default "vault"
	Address   string        `yaml:"address"`   // e.g. https://vault.example.com:8200
	Token     secure.Secret `yaml:"token"`     // required
	Namespace string        `yaml:"namespace"` // Vault Enterprise / OpenBao namespace
	PKIMount  string        `yaml:"pki_mount"` // for certificates whose issuer does not name a mount; default "pki"
	TLS       secure.TLS    `yaml:"tls"`
	Timeout   time.Duration `yaml:"timeout"` // per call, default 10s
}

const (
	defaultName     = "vault"
	defaultPKIMount = "pki"
	defaultTimeout  = 10 * time.Second

	// Credential types as the decoders name them (ingest/issuance).
	typeToken = "vault_token"
	typeLease = "vault_lease"
	typeCert  = "x509_certificate"
)

var (
	mountRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$`)
	// serialRe is a serial in hex, in bytes separated by colons or hyphens
	// as Vault prints them, or run together.
	serialRe = regexp.MustCompile(`^([0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2})*|([0-9A-Fa-f]{2})+)$`)
)

// Validate lists every problem, each prefixed with field (a YAML path).
func (c Config) Validate(field string) []error {
	var errs []error
	if c.Address == "" {
		errs = append(errs, fmt.Errorf("%s.address: required", field))
	} else if u, err := url.Parse(c.Address); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("%s.address: want an absolute http or https URL", field))
	} else if c.TLS.Enabled && u.Scheme != "https" {
		errs = append(errs, fmt.Errorf("%s.address: tls is enabled, so the address must be https", field))
	}
	errs = append(errs, c.Token.Validate(field+".token", true)...)
	if c.PKIMount != "" && !mountRe.MatchString(c.PKIMount) {
		errs = append(errs, fmt.Errorf("%s.pki_mount: %q is not a mount path", field, c.PKIMount))
	}
	if c.Namespace != "" && !mountRe.MatchString(strings.TrimSuffix(c.Namespace, "/")) {
		errs = append(errs, fmt.Errorf("%s.namespace: %q is not a namespace path", field, c.Namespace))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: %s is negative", field, c.Timeout))
	}
	return append(errs, c.TLS.Validate(field+".tls")...)
}

type provider struct {
	name     string
	pkiMount string
	client   *vaultapi.Client
}

// New checks c and returns the provider; it reads the token but calls
// nothing.
func New(c Config) (response.Provider, error) {
	c.Name = cmp.Or(c.Name, defaultName)
	if errs := c.Validate(c.Name); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	token, err := c.Token.Value()
	if err != nil {
		return nil, fmt.Errorf("%s: token: %w", c.Name, err)
	}
	timeout := cmp.Or(c.Timeout, defaultTimeout)
	// vault/api follows a standby's redirect to the active node itself, as
	// its own default client does; the HTTP client must not.
	hc, err := c.TLS.HTTPClient(timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	client, err := vaultapi.NewClient(&vaultapi.Config{
		Address:    c.Address,
		HttpClient: hc,
		Timeout:    timeout,
		MaxRetries: 0, // the executor owns retries
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	// NewClient also reads VAULT_TOKEN, VAULT_NAMESPACE and VAULT_HEADERS:
	// the configuration alone decides.
	client.SetHeaders(http.Header{vaultapi.RequestHeaderName: {"true"}})
	client.SetToken(token)
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	return &provider{name: c.Name, pkiMount: cmp.Or(c.PKIMount, defaultPKIMount), client: client}, nil
}

func (p *provider) Name() string { return p.name }

// plan is the one revocation an action comes to.
type plan struct {
	accessor, lease string
	mount, serial   string // certificate
}

func (p *provider) Check(action response.Action, target response.Target) error {
	_, err := p.plan(action, target)
	return err
}

func (p *provider) plan(action response.Action, t response.Target) (plan, error) {
	notApplicable := func(why string) (plan, error) {
		return plan{}, fmt.Errorf("%s: %s on %s: %s: %w", p.name, action, t.Identity.ID, why, response.ErrNotApplicable)
	}
	if action != response.ActionRevoke {
		return notApplicable("Vault credentials can only be revoked")
	}
	switch t.CredentialType {
	case typeToken:
		if t.Credential != "" {
			return plan{accessor: t.Credential}, nil
		}
	case typeLease:
		if t.Credential != "" {
			return plan{lease: t.Credential}, nil
		}
	case typeCert:
		mount := p.pkiMount
		if t.Issuer != "" {
			m, ok := strings.CutPrefix(t.Issuer, "vault:")
			if !ok || !mountRe.MatchString(m) {
				return notApplicable("certificate issuer " + t.Issuer + " is not a Vault PKI mount")
			}
			mount = m
		}
		serial, ok := vaultSerial(t.Credential)
		if !ok {
			return notApplicable("certificate serial " + t.Credential + " is not hex")
		}
		return plan{mount: mount, serial: serial}, nil
	case "":
		if acc, ok := strings.CutPrefix(t.Identity.ID, "vault:accessor/"); ok && acc != "" {
			return plan{accessor: acc}, nil
		}
	}
	return notApplicable("no Vault token accessor, lease or certificate in the evidence")
}

// vaultSerial writes a hex serial the way Vault prints and stores them:
// lowercase bytes separated by colons.
func vaultSerial(s string) (string, bool) {
	if !serialRe.MatchString(s) {
		return "", false
	}
	s = strings.ToLower(strings.ReplaceAll(s, "-", ":"))
	if strings.Contains(s, ":") {
		return s, true
	}
	b, _ := hex.DecodeString(s)
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = hex.EncodeToString([]byte{x})
	}
	return strings.Join(parts, ":"), true
}

func (p *provider) Do(ctx context.Context, req response.Request) (response.Result, error) {
	pl, err := p.plan(req.Action, req.Target)
	if err != nil {
		return response.Result{}, err
	}
	switch {
	case pl.accessor != "":
		return p.revokeAccessor(ctx, pl.accessor)
	case pl.lease != "":
		if err := p.client.Sys().RevokeWithContext(ctx, pl.lease); err != nil {
			return response.Result{}, p.classify(err, "revoke lease %s", pl.lease)
		}
		return response.Result{Detail: "lease " + pl.lease + " revoked"}, nil
	}
	return p.revokeCert(ctx, pl.mount, pl.serial)
}

func (p *provider) revokeAccessor(ctx context.Context, accessor string) (response.Result, error) {
	err := p.client.Auth().Token().RevokeAccessorWithContext(ctx, accessor)
	if re, ok := errors.AsType[*vaultapi.ResponseError](err); ok && re.StatusCode == http.StatusBadRequest && tokenGone(re.Errors) {
		// Vault forgets a token's accessor when the token is revoked or
		// expires: the goal is reached, and a retry after a lost reply
		// must not fail.
		return response.Result{Detail: "token with accessor " + accessor + " already revoked or expired (" + oneLine(re.Errors) + ")"}, nil
	}
	if err != nil {
		return response.Result{}, p.classify(err, "revoke token accessor %s", accessor)
	}
	return response.Result{Detail: "token with accessor " + accessor + " and its children revoked"}, nil
}

// tokenGone reports whether Vault's errors say there is no token for the
// accessor ("invalid accessor", or "token not found" when the accessor
// outlived its token).
func tokenGone(errs []string) bool {
	s := strings.Join(errs, " ")
	return strings.Contains(s, "invalid accessor") || strings.Contains(s, "token not found")
}

func (p *provider) revokeCert(ctx context.Context, mount, serial string) (response.Result, error) {
	s, err := p.client.Logical().WriteWithContext(ctx, mount+"/revoke", map[string]any{"serial_number": serial})
	if err != nil {
		return response.Result{}, p.classify(err, "revoke certificate %s on %s", serial, mount)
	}
	what := "certificate " + serial + " on " + mount
	if s == nil || s.Data == nil {
		// Vault answers an expired certificate with a warning and no data:
		// it is not added to the CRL, and nothing accepts it any more.
		if s != nil && len(s.Warnings) > 0 {
			return response.Result{Detail: what + ": " + oneLine(s.Warnings)}, nil
		}
		return response.Result{Detail: what + " revoked"}, nil
	}
	if state, _ := s.Data["state"].(string); state == "pending" {
		return response.Result{Detail: what + ": revocation pending on the cluster that issued it"}, nil
	}
	if t, ok := s.Data["revocation_time_rfc3339"].(string); ok && t != "" {
		return response.Result{Detail: what + " revoked at " + t}, nil
	}
	return response.Result{Detail: what + " revoked"}, nil
}

func (p *provider) Undo(context.Context, response.Request, response.Result) (response.Result, error) {
	return response.Result{}, fmt.Errorf("%s: a revoked Vault credential %w", p.name, response.ErrIrreversible)
}

// statusError is Vault's error reply on one line, wrapping vault/api's
// multi-line *ResponseError.
type statusError struct{ re *vaultapi.ResponseError }

func (e statusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.re.StatusCode, oneLine(e.re.Errors))
}

func (e statusError) Unwrap() error { return e.re }

// classify wraps err with what was being done, marking it Permanent when
// repeating cannot help: a 4xx other than 408, 412 (a standby not caught
// up), 429, and 472/473 (disaster-recovery and performance standbys).
func (p *provider) classify(err error, format string, args ...any) error {
	op := fmt.Sprintf(format, args...)
	re, ok := errors.AsType[*vaultapi.ResponseError](err)
	if !ok {
		return fmt.Errorf("%s: %s: %w", p.name, op, err)
	}
	err = fmt.Errorf("%s: %s: %w", p.name, op, statusError{re})
	switch s := re.StatusCode; {
	case s == 408, s == 412, s == 429, s == 472, s == 473, s >= 500:
		return err
	case s >= 400:
		return response.Permanent{Err: err}
	}
	return err
}

// oneLine joins Vault's messages ("1 error occurred:\n\t* permission
// denied\n\n") into one line.
func oneLine(msgs []string) string {
	s := strings.Join(strings.Fields(strings.Join(msgs, "; ")), " ")
	if s == "" {
		return "(no message)"
	}
	return s
}
