// Package webhook is the generic response provider: it posts each action,
// signed, to an HTTP endpoint that carries it out (a SOAR playbook, a
// ticketing bridge, an in-house script) and reports back.
//
// Each Do and Undo is one request:
//
//	POST <url>
//	Content-Type: application/json
//	User-Agent: nhisentry
//	X-Nhisentry-Request: <request id>
//	X-Nhisentry-Timestamp: <unix seconds>
//	X-Nhisentry-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">
//	<configured headers>
//
//	{"request":<response.Request>,"operation":"do"}
//	{"request":<response.Request>,"operation":"undo","result":<the Do's result>}
//
// signed as the findings webhook output signs (internal/sign). The request
// id is the idempotency key: a receiver that sees one again must not act
// twice. Replies:
//
//	2xx                         done; a JSON body {"detail":"…","undo":{…}}
//	                            becomes the result's detail and undo state
//	501 to an undo              the action cannot be undone (ErrIrreversible)
//	408, 429, other 5xx, no reply within the timeout
//	                            retryable
//	any other status (3xx are not followed, so the signature never goes
//	elsewhere; 501 to a do)     Permanent
package webhook

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/sign"
	"github.com/nhisentry/nhisentry/response"
)

// Config configures one webhook receiver.
type Config struct {
	Name   string        `yaml:"name"`   // provider name, default "webhook"
	URL    string        `yaml:"url"`    // required
	Secret secure.Secret `yaml:"secret"` // HMAC-SHA256 signing key, required
	// Actions are the actions the receiver handles: isolate_workload,
	// disable_identity, revoke_credential, notify; default all.
	Actions []string          `yaml:"actions"`
	Headers map[string]string `yaml:"headers"` // added to every request
	TLS     secure.TLS        `yaml:"tls"`
	Timeout time.Duration     `yaml:"timeout"` // per request, default 10s

	// now stamps signatures; tests fix it.
	now func() time.Time
}

const (
	defaultName    = "webhook"
	defaultTimeout = 10 * time.Second

	headerRequest = "X-Nhisentry-Request"

	// maxReply bounds how much of a reply is read.
	maxReply = 64 << 10
	// maxDetail bounds the detail kept from a reply, in bytes.
	maxDetail = 500
)

var allActions = []response.Action{response.ActionIsolate, response.ActionDisable, response.ActionRevoke, response.ActionNotify}

// reservedHeaders are set by the provider, so headers cannot set them (nor
// any X-Nhisentry-* header).
var reservedHeaders = []string{"Content-Encoding", "Content-Length", "Content-Type", "Host", "Transfer-Encoding", "User-Agent"}

// Validate lists every problem, each prefixed with field (a YAML path).
func (c Config) Validate(field string) []error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, fmt.Errorf("%s.url: required", field))
	} else if u, err := url.Parse(c.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL may hold a token: not quoted.
		errs = append(errs, fmt.Errorf("%s.url: want an absolute http or https URL", field))
	} else if c.TLS.Enabled && u.Scheme != "https" {
		errs = append(errs, fmt.Errorf("%s.url: tls is enabled, so the url must be https", field))
	}
	errs = append(errs, c.Secret.Validate(field+".secret", true)...)
	seen := map[string]bool{}
	for i, a := range c.Actions {
		switch {
		case !slices.Contains(allActions, response.Action(a)):
			errs = append(errs, fmt.Errorf("%s.actions[%d]: %q, want one of %v", field, i, a, allActions))
		case seen[a]:
			errs = append(errs, fmt.Errorf("%s.actions[%d]: %s is listed twice", field, i, a))
		}
		seen[a] = true
	}
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		canon := http.CanonicalHeaderKey(name)
		if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }) {
			errs = append(errs, fmt.Errorf("%s.headers: %q is not a header name", field, name))
		} else if slices.Contains(reservedHeaders, canon) || strings.HasPrefix(canon, "X-Nhisentry-") {
			errs = append(errs, fmt.Errorf("%s.headers: %s is set by nhisentry", field, canon))
		}
		if strings.ContainsAny(c.Headers[name], "\r\n\x00") {
			errs = append(errs, fmt.Errorf("%s.headers.%s: a value cannot hold CR, LF or NUL", field, name))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: %s is negative", field, c.Timeout))
	}
	return append(errs, c.TLS.Validate(field+".tls")...)
}

// isTokenChar reports whether r may appear in a header name (RFC 9110
// §5.6.2).
func isTokenChar(r rune) bool {
	return r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

type provider struct {
	name    string
	url     string
	shown   string // the URL as errors print it: no user, query or fragment
	key     string
	actions []response.Action
	header  http.Header
	client  *http.Client
	now     func() time.Time
}

// New checks c and returns the provider; it reads the secret but calls
// nothing.
func New(c Config) (response.Provider, error) {
	c.Name = cmp.Or(c.Name, defaultName)
	if errs := c.Validate(c.Name); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	key, err := c.Secret.Value()
	if err != nil {
		return nil, fmt.Errorf("%s: secret: %w", c.Name, err)
	}
	client, err := c.TLS.HTTPClient(cmp.Or(c.Timeout, defaultTimeout))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	u, _ := url.Parse(c.URL) // checked by Validate
	shown := *u
	shown.User, shown.RawQuery, shown.ForceQuery, shown.Fragment = nil, "", false, ""
	p := &provider{
		name: c.Name, url: c.URL, shown: shown.String(), key: key, now: c.now,
		header: http.Header{"Content-Type": {"application/json"}, "User-Agent": {"nhisentry"}},
		client: client,
	}
	if p.now == nil {
		p.now = time.Now
	}
	for _, a := range c.Actions {
		p.actions = append(p.actions, response.Action(a))
	}
	if len(p.actions) == 0 {
		p.actions = allActions
	}
	for name, v := range c.Headers {
		p.header.Set(name, v)
	}
	return p, nil
}

func (p *provider) Name() string { return p.name }

func (p *provider) Check(action response.Action, target response.Target) error {
	if !slices.Contains(p.actions, action) {
		return fmt.Errorf("%s: %s on %s: not among the receiver's actions: %w", p.name, action, target.Identity.ID, response.ErrNotApplicable)
	}
	return nil
}

// envelope is the body of a request.
type envelope struct {
	Request   response.Request `json:"request"`
	Operation string           `json:"operation"`
	Result    *response.Result `json:"result,omitempty"` // undo: what Do returned
}

// reply is what a receiver may answer.
type reply struct {
	Detail string            `json:"detail"`
	Undo   map[string]string `json:"undo"`
}

func (p *provider) Do(ctx context.Context, req response.Request) (response.Result, error) {
	if err := p.Check(req.Action, req.Target); err != nil {
		return response.Result{}, err
	}
	r, status, err := p.post(ctx, envelope{Request: req, Operation: "do"})
	if err != nil {
		return response.Result{}, err
	}
	return response.Result{Detail: cmp.Or(r.Detail, fmt.Sprintf("receiver accepted %s (HTTP %d)", req.Action, status)), Undo: r.Undo}, nil
}

func (p *provider) Undo(ctx context.Context, req response.Request, done response.Result) (response.Result, error) {
	r, status, err := p.post(ctx, envelope{Request: req, Operation: "undo", Result: &done})
	if err != nil {
		return response.Result{}, err
	}
	return response.Result{Detail: cmp.Or(r.Detail, fmt.Sprintf("receiver undid %s (HTTP %d)", req.Action, status))}, nil
}

// post sends one signed envelope and reads a 2xx reply.
func (p *provider) post(ctx context.Context, e envelope) (reply, int, error) {
	op := fmt.Sprintf("%s: %s %s: POST %s", p.name, e.Operation, e.Request.Action, p.shown)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the body reads as it is sent
	if err := enc.Encode(e); err != nil {
		return reply{}, 0, fmt.Errorf("%s: %w", op, err)
	}
	body := bytes.TrimSuffix(buf.Bytes(), []byte{'\n'})
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return reply{}, 0, fmt.Errorf("%s: the url does not make a request", op)
	}
	hr.Header = p.header.Clone()
	hr.Header.Set(headerRequest, e.Request.ID)
	sign.Set(hr.Header, p.key, p.now(), body)
	resp, err := p.client.Do(hr)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err // it repeats the full URL, which may hold a token
		}
		return reply{}, 0, fmt.Errorf("%s: %w", op, err)
	}
	defer resp.Body.Close()
	raw, readErr := io.ReadAll(io.LimitReader(resp.Body, maxReply))
	var r reply
	_ = json.Unmarshal(raw, &r) // a reply that is not this JSON has no detail
	r.Detail = clip(r.Detail)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if readErr != nil {
			return reply{}, 0, fmt.Errorf("%s: reading the reply: %w", op, readErr)
		}
		return r, resp.StatusCode, nil
	}
	detail := cmp.Or(r.Detail, clip(strings.Join(strings.Fields(strings.ToValidUTF8(string(raw), "?")), " ")), "(empty reply)")
	err = fmt.Errorf("%s: HTTP %d: %s", op, resp.StatusCode, detail)
	switch s := resp.StatusCode; {
	case s == http.StatusNotImplemented && e.Operation == "undo":
		return reply{}, 0, fmt.Errorf("%w: %w", err, response.ErrIrreversible)
	case s == http.StatusNotImplemented:
		return reply{}, 0, response.Permanent{Err: err}
	case s == http.StatusRequestTimeout, s == http.StatusTooManyRequests, s >= 500:
		return reply{}, 0, err
	}
	return reply{}, 0, response.Permanent{Err: err}
}

// clip cuts s to maxDetail bytes on a rune boundary.
func clip(s string) string {
	if len(s) <= maxDetail {
		return s
	}
	s = s[:maxDetail]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "…"
}
