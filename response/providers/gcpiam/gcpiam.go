// Package gcpiam is the Google Cloud IAM response provider: it disables a
// service-account key (disable_identity with the key id in the evidence) or
// the whole service account (disable_identity without a key,
// isolate_workload), and enables it again on undo.
//
// It calls the IAM REST API v1 with net/http and an OAuth2 bearer token
// (scope https://www.googleapis.com/auth/cloud-platform): the four calls
// below do not justify google.golang.org/api, whose iam/v1 client brings in
// gRPC, OpenTelemetry and some 400 packages; golang.org/x/oauth2/google
// (two small modules) finds and refreshes the credentials.
//
//	disable_identity on gcp:sa/<email> with a key id (credential type gcp_sa_key):
//	  Do    GET  /v1/projects/<p>/serviceAccounts/<email>/keys/<key>          (disabled before?)
//	        POST /v1/projects/<p>/serviceAccounts/<email>/keys/<key>:disable  {}
//	  Undo  POST …/keys/<key>:enable {}, unless it was disabled before
//	disable_identity without a key id, isolate_workload on gcp:sa/<email>:
//	  Do    GET  /v1/projects/<p>/serviceAccounts/<email>
//	        POST /v1/projects/<p>/serviceAccounts/<email>:disable {}
//	  Undo  POST …/serviceAccounts/<email>:enable {}, unless it was disabled before
//
// <p> is the project id of a user-managed account
// (<name>@<p>.iam.gserviceaccount.com), else the "-" wildcard.
//
// Permissions: iam.serviceAccountKeys.get, .disable, .enable and
// iam.serviceAccounts.get, .disable, .enable — in the predefined roles
// roles/iam.serviceAccountKeyAdmin and roles/iam.serviceAccountAdmin, or a
// custom role with just these six.
//
// Replies: 408, 429, 409 ABORTED, 5xx, network errors and timeouts are
// retryable; any other 4xx (403 PERMISSION_DENIED, which Google also answers
// for a key or account that does not exist, 404, 400 FAILED_PRECONDITION)
// is Permanent.
package gcpiam

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response"
)

// Config configures access to Google Cloud IAM.
type Config struct {
	Name string `yaml:"name"` // provider name, default "gcp_iam"
	// CredentialsFile is a credentials JSON file: a service-account key
	// (type service_account), a workload identity federation configuration
	// (external_account) or an impersonation one
	// (impersonated_service_account).
	CredentialsFile string `yaml:"credentials_file"`
	// Token is an OAuth2 access token, read at every call, for a token kept
	// fresh by something else (a sidecar writing a file).
	Token secure.Secret `yaml:"token"`
	// Without either, Application Default Credentials are looked up at the
	// first action: GOOGLE_APPLICATION_CREDENTIALS, gcloud's file, then the
	// metadata server of GCE, GKE or Cloud Run.

	Endpoint string        `yaml:"endpoint"` // default https://iam.googleapis.com
	Timeout  time.Duration `yaml:"timeout"`  // per call, default 10s
}

const (
	defaultName     = "gcp_iam"
	defaultEndpoint = "https://iam.googleapis.com"
	defaultTimeout  = 10 * time.Second
	scope           = "https://www.googleapis.com/auth/cloud-platform"
	// maxReply bounds how much of a reply is read: IAM's replies here are
	// well under a kilobyte.
	maxReply = 64 << 10
)

// credentialTypes are the credentials files accepted: a service's own, not
// a person's (authorized_user).
var credentialTypes = []google.CredentialsType{google.ServiceAccount, google.ExternalAccount, google.ImpersonatedServiceAccount}

var (
	emailRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*@[a-z0-9][a-z0-9.-]*\.gserviceaccount\.com$`)
	keyRe   = regexp.MustCompile(`^[A-Za-z0-9]{1,128}$`)
)

// Validate lists every problem, each prefixed with field (a YAML path).
func (c Config) Validate(field string) []error {
	var errs []error
	switch {
	case c.CredentialsFile != "" && !c.Token.IsZero():
		errs = append(errs, fmt.Errorf("%s: set credentials_file or token, not both", field))
	case c.CredentialsFile != "":
		if _, _, err := readCredentials(c.CredentialsFile); err != nil {
			errs = append(errs, fmt.Errorf("%s.credentials_file: %w", field, err))
		}
	default:
		errs = append(errs, c.Token.Validate(field+".token", false)...)
	}
	if c.Endpoint != "" {
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			errs = append(errs, fmt.Errorf("%s.endpoint: want an absolute http or https URL", field))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: %s is negative", field, c.Timeout))
	}
	return errs
}

// readCredentials reads a credentials file and its type.
func readCredentials(path string) ([]byte, google.CredentialsType, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	var f struct {
		Type google.CredentialsType `json:"type"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, "", fmt.Errorf("not a credentials JSON file: %w", err)
	}
	for _, t := range credentialTypes {
		if f.Type == t {
			return b, t, nil
		}
	}
	return nil, "", fmt.Errorf("credentials of type %q, want one of %v", f.Type, credentialTypes)
}

type provider struct {
	name     string
	endpoint string
	http     *http.Client
	token    secure.Secret // a static token, when configured

	mu     sync.Mutex
	source oauth2.TokenSource // from the file, or found at the first call
	// tokenCtx carries the HTTP client token requests use.
	tokenCtx context.Context
}

// New checks c and returns the provider; it reads the credentials file but
// calls nothing.
func New(c Config) (response.Provider, error) {
	c.Name = cmp.Or(c.Name, defaultName)
	if errs := c.Validate(c.Name); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	timeout := cmp.Or(c.Timeout, defaultTimeout)
	client := &http.Client{
		Timeout: timeout,
		// A redirect would carry the bearer token elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	p := &provider{
		name:     c.Name,
		endpoint: strings.TrimSuffix(cmp.Or(c.Endpoint, defaultEndpoint), "/"),
		http:     client,
		token:    c.Token,
		tokenCtx: context.WithValue(context.Background(), oauth2.HTTPClient, &http.Client{Timeout: timeout}),
	}
	if c.CredentialsFile != "" {
		b, typ, err := readCredentials(c.CredentialsFile)
		if err != nil {
			return nil, fmt.Errorf("%s: credentials_file: %w", c.Name, err)
		}
		creds, err := google.CredentialsFromJSONWithType(p.tokenCtx, b, typ, scope)
		if err != nil {
			return nil, fmt.Errorf("%s: credentials_file: %w", c.Name, err)
		}
		p.source = creds.TokenSource
	}
	return p, nil
}

func (p *provider) Name() string { return p.name }

// bearer returns the access token for the next call.
func (p *provider) bearer() (string, error) {
	if !p.token.IsZero() {
		return p.token.Value()
	}
	p.mu.Lock()
	if p.source == nil {
		creds, err := google.FindDefaultCredentials(p.tokenCtx, scope)
		if err != nil {
			p.mu.Unlock()
			return "", response.Permanent{Err: fmt.Errorf("application default credentials: %w", err)}
		}
		p.source = oauth2.ReuseTokenSource(nil, creds.TokenSource)
	}
	src := p.source
	p.mu.Unlock()
	tok, err := src.Token()
	if err != nil {
		// A refused grant (a deleted key, a wrong audience) needs an
		// operator; a token endpoint that is down does not.
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.Response != nil && !retryable(re.Response.StatusCode, "") {
			return "", response.Permanent{Err: fmt.Errorf("access token: %w", err)}
		}
		return "", fmt.Errorf("access token: %w", err)
	}
	return tok.AccessToken, nil
}

// plan is what an action on a target comes to.
type plan struct {
	email, key string // key empty: the service account itself
}

func (p *provider) Check(action response.Action, target response.Target) error {
	_, err := p.plan(action, target)
	return err
}

func (p *provider) plan(action response.Action, t response.Target) (plan, error) {
	notApplicable := func(why string) (plan, error) {
		return plan{}, fmt.Errorf("%s: %s on %s: %s: %w", p.name, action, t.Identity.ID, why, response.ErrNotApplicable)
	}
	email, ok := strings.CutPrefix(t.Identity.ID, "gcp:sa/")
	if !ok || !emailRe.MatchString(email) {
		return notApplicable("not a GCP service account (gcp:sa/<email>)")
	}
	switch action {
	case response.ActionDisable:
		if t.CredentialType == "gcp_sa_key" {
			if !keyRe.MatchString(t.Credential) {
				return notApplicable("key id " + t.Credential + " is not a service-account key id")
			}
			return plan{email: email, key: t.Credential}, nil
		}
		return plan{email: email}, nil
	case response.ActionIsolate:
		return plan{email: email}, nil
	}
	return notApplicable("unsupported action")
}

// path is the resource name of the account or key, in the project the
// email names, or the "-" wildcard for the accounts whose email does not
// (Google answers 403 rather than 404 for missing resources under it).
func (pl plan) path() string {
	project := "-"
	_, domain, _ := strings.Cut(pl.email, "@")
	if p, ok := strings.CutSuffix(domain, ".iam.gserviceaccount.com"); ok && !strings.Contains(p, ".") && !strings.HasPrefix(p, "gcp-sa-") {
		project = p
	}
	s := "projects/" + project + "/serviceAccounts/" + pl.email
	if pl.key != "" {
		s += "/keys/" + pl.key
	}
	return s
}

func (pl plan) String() string {
	if pl.key != "" {
		return "key " + pl.key + " of " + pl.email
	}
	return "service account " + pl.email
}

func (p *provider) Do(ctx context.Context, req response.Request) (response.Result, error) {
	pl, err := p.plan(req.Action, req.Target)
	if err != nil {
		return response.Result{}, err
	}
	var state struct {
		Disabled bool `json:"disabled"`
	}
	if err := p.call(ctx, http.MethodGet, pl.path(), &state); err != nil {
		return response.Result{}, err
	}
	undo := map[string]string{"service_account": pl.email, "previous": "enabled"}
	if pl.key != "" {
		undo["key_id"] = pl.key
	}
	if state.Disabled {
		undo["previous"] = "disabled"
		return response.Result{Detail: pl.String() + " was already disabled", Undo: undo}, nil
	}
	if err := p.call(ctx, http.MethodPost, pl.path()+":disable", nil); err != nil {
		return response.Result{}, err
	}
	return response.Result{Detail: pl.String() + " disabled", Undo: undo}, nil
}

func (p *provider) Undo(ctx context.Context, req response.Request, done response.Result) (response.Result, error) {
	pl := plan{email: done.Undo["service_account"], key: done.Undo["key_id"]}
	if !emailRe.MatchString(pl.email) || (pl.key != "" && !keyRe.MatchString(pl.key)) {
		return response.Result{}, response.Permanent{Err: fmt.Errorf("%s: undo %s on %s: the result holds no undo state", p.name, req.Action, req.Target.Identity.ID)}
	}
	if done.Undo["previous"] == "disabled" {
		// Someone else had disabled it; undoing nhisentry must not enable it.
		return response.Result{Detail: pl.String() + " left disabled: it was disabled before"}, nil
	}
	if err := p.call(ctx, http.MethodPost, pl.path()+":enable", nil); err != nil {
		return response.Result{}, err
	}
	return response.Result{Detail: pl.String() + " enabled"}, nil
}

// call sends one request to IAM: GET, or POST with the empty JSON object
// the :disable and :enable methods take, decoding a 2xx reply into out.
func (p *provider) call(ctx context.Context, method, path string, out any) error {
	op := method + " " + path
	// A Permanent error from bearer stays Permanent through the wrapping.
	fail := func(err error) error { return fmt.Errorf("%s: %s: %w", p.name, op, err) }
	tok, err := p.bearer()
	if err != nil {
		return fail(err)
	}
	var body io.Reader
	if method == http.MethodPost {
		body = bytes.NewReader([]byte("{}"))
	}
	req, err := http.NewRequestWithContext(ctx, method, p.endpoint+"/v1/"+path, body)
	if err != nil {
		return fail(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("User-Agent", "nhisentry")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := p.http.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // the URL is already in op
		}
		return fail(err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err == nil && out != nil {
			err = json.Unmarshal(reply, out)
		}
		if err != nil {
			return fail(fmt.Errorf("reading the reply: %w", err))
		}
		return nil
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
			Status  string `json:"status"`
		} `json:"error"`
	}
	detail := strings.Join(strings.Fields(string(reply)), " ")
	if json.Unmarshal(reply, &e) == nil && e.Error.Message != "" {
		detail = strings.TrimSpace(e.Error.Status + " " + e.Error.Message)
	}
	if len(detail) > 300 {
		detail = strings.ToValidUTF8(detail[:300], "") + "…"
	}
	err = fmt.Errorf("%s: %s: HTTP %d: %s", p.name, op, resp.StatusCode, cmp.Or(detail, "(empty reply)"))
	if retryable(resp.StatusCode, e.Error.Status) {
		return err
	}
	return response.Permanent{Err: err}
}

// retryable reports whether a later attempt can succeed after status: a
// timeout, throttling, a concurrent change (409 ABORTED) or a server error.
func retryable(status int, googleStatus string) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500 ||
		(status == http.StatusConflict && googleStatus == "ABORTED")
}
