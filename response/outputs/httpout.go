package outputs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/internal/secure"
)

// What the HTTP outputs (Splunk HEC, webhooks) share: a client built from
// secure.TLS and a timeout, and one way of posting a body and classifying
// the reply.

const (
	defaultHTTPTimeout = 10 * time.Second
	userAgent          = "nhisentry"
	// maxReplyBytes bounds how much of a reply is read: replies of the
	// destinations here are a few hundred bytes at most.
	maxReplyBytes = 64 << 10
	// excerptBytes is how much of an error reply an error message quotes.
	excerptBytes = 200
)

// httpOut posts to one destination.
type httpOut struct {
	prefix string // names the output in errors, e.g. `splunk output "siem"`
	client *http.Client
}

func newHTTPOut(prefix string, t secure.TLS, timeout time.Duration) (*httpOut, error) {
	if timeout <= 0 {
		timeout = defaultHTTPTimeout
	}
	client, err := t.HTTPClient(timeout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", prefix, err)
	}
	return &httpOut{prefix: prefix, client: client}, nil
}

// endpoint is a URL to post to and the form of it errors may print: the
// path of a Slack webhook URL is its secret.
type endpoint struct {
	url   string
	shown string
}

func newEndpoint(u *url.URL, pathIsSecret bool) endpoint {
	shown := *u
	shown.User, shown.RawQuery, shown.Fragment = nil, "", ""
	if !pathIsSecret {
		return endpoint{url: u.String(), shown: shown.String()}
	}
	shown.Path, shown.RawPath = "", ""
	return endpoint{url: u.String(), shown: shown.String() + "/…"}
}

// statusError is a reply outside 2xx.
type statusError struct {
	Status int
	// Detail is what the reply says: the destination's own error text when
	// the output knows its form, else an excerpt of the body.
	Detail string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Detail) }

// retryable reports whether repeating a request that got status can
// succeed: on 408 and 429 (the destination asks to come back later) and on
// 5xx. Every other status (400, 401, 403, 404, 413, a redirect…) needs an
// operator to change the configuration or the destination.
func retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// post sends body to e and returns the reply body of a 2xx. A reply outside
// 2xx becomes a *statusError, wrapped in Permanent unless retryable; detail,
// when not nil, turns the reply body into the statusError's Detail.
func (h *httpOut) post(ctx context.Context, e endpoint, header http.Header, body []byte, detail func([]byte) string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: POST %s: %w", h.prefix, e.shown, err)
	}
	req.Header = header.Clone()
	req.Header.Set("User-Agent", userAgent)
	resp, err := h.client.Do(req)
	if err != nil {
		// *url.Error repeats the full URL, which may hold a secret.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s: POST %s: %w", h.prefix, e.shown, err)
	}
	defer resp.Body.Close()
	reply, err := io.ReadAll(io.LimitReader(resp.Body, maxReplyBytes))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if err != nil {
			return nil, fmt.Errorf("%s: POST %s: reading the reply: %w", h.prefix, e.shown, err)
		}
		return reply, nil
	}
	if detail == nil {
		detail = excerpt
	}
	serr := fmt.Errorf("%s: POST %s: %w", h.prefix, e.shown, &statusError{Status: resp.StatusCode, Detail: detail(reply)})
	if retryable(resp.StatusCode) {
		return nil, serr
	}
	return nil, Permanent{Err: serr}
}

// excerpt quotes the start of a reply body on one line.
func excerpt(b []byte) string {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return "(empty reply)"
	}
	cut := len(b) > excerptBytes
	if cut {
		b = b[:excerptBytes]
		// Drop a rune cut in half.
		for i := 1; i < utf8.UTFMax && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
	if cut {
		s += "…"
	}
	return s
}

// marshalJSON encodes v without escaping <, > and & as \u003c…, so the
// documented bodies read as they are sent.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte{'\n'}), nil
}

// parseBaseURL checks an output's url setting: absolute http or https with
// a host, and https when tls is enabled. Its errors do not repeat the URL,
// which may be a secret.
func parseBaseURL(field, raw string, t secure.TLS) (*url.URL, []error) {
	if raw == "" {
		return nil, []error{fmt.Errorf("%s: required", field)}
	}
	u, err := url.Parse(raw)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, []error{fmt.Errorf("%s: %w", field, err)}
	}
	var errs []error
	if u.Scheme != "http" && u.Scheme != "https" {
		errs = append(errs, fmt.Errorf("%s: scheme %q, want http or https", field, u.Scheme))
	}
	if u.Host == "" {
		errs = append(errs, fmt.Errorf("%s: no host", field))
	}
	if t.Enabled && u.Scheme == "http" {
		errs = append(errs, fmt.Errorf("%s: tls is enabled, so the url must be https", field))
	}
	return u, errs
}

// validateTimeout rejects a negative duration (zero means the default).
func validateTimeout(field string, d time.Duration) []error {
	if d < 0 {
		return []error{fmt.Errorf("%s: %s is negative", field, d)}
	}
	return nil
}
