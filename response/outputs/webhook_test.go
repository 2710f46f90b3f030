package outputs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	hookKey        = "whsec-7f3b2a9c41d8e6f0"
	hookRoutingKey = "R0123456789ABCDEF0123456789ABCDE"
	// hookNow is when the goldens' requests are signed.
	hookNow = 1793973010
)

// hookReceiver is a webhook endpoint: it records every request and answers
// the next ones with the statuses queued by failNext (0 is no fault), the
// rest as the destination of its kind answers a success.
type hookReceiver struct {
	srv  *httptest.Server
	kind string

	mu       sync.Mutex
	got      []hookRequest
	statuses []int
}

type hookRequest struct {
	Path   string
	Header http.Header
	Body   []byte
	Status int
}

func newHookReceiver(t *testing.T, kind string, tlsServer bool) *hookReceiver {
	r := &hookReceiver{kind: kind}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	if tlsServer {
		// The handshake refused by TestWebhookTLS is expected, not news.
		r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		r.srv.StartTLS()
	} else {
		r.srv.Start()
	}
	t.Cleanup(r.srv.Close)
	return r
}

func (r *hookReceiver) failNext(statuses ...int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.statuses = append(r.statuses, statuses...)
}

func (r *hookReceiver) requests() []hookRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hookRequest(nil), r.got...)
}

// accepted is the bodies of the requests answered with a 2xx.
func (r *hookReceiver) accepted() []string {
	var out []string
	for _, q := range r.requests() {
		if q.Status < 300 {
			out = append(out, string(q.Body))
		}
	}
	return out
}

func (r *hookReceiver) serve(w http.ResponseWriter, q *http.Request) {
	body, _ := io.ReadAll(q.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	status, reply := http.StatusNoContent, ""
	switch r.kind {
	case kindSlack:
		status, reply = http.StatusOK, "ok"
	case kindPagerDuty:
		var ev struct {
			DedupKey string `json:"dedup_key"`
		}
		_ = json.Unmarshal(body, &ev)
		status, reply = http.StatusAccepted, fmt.Sprintf(`{"status":"success","message":"Event processed","dedup_key":%q}`, ev.DedupKey)
	}
	if len(r.statuses) > 0 {
		if r.statuses[0] != 0 {
			status, reply = r.statuses[0], hookErrorReply(r.kind, r.statuses[0])
		}
		r.statuses = r.statuses[1:]
	}
	r.got = append(r.got, hookRequest{Path: q.URL.Path, Header: q.Header.Clone(), Body: body, Status: status})
	if status/100 == 3 {
		w.Header().Set("Location", "/elsewhere")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, reply)
}

// hookErrorReply is what the destination of kind says with an error
// status, as its documentation shows.
func hookErrorReply(kind string, status int) string {
	switch {
	case kind == kindSlack:
		return "no_service"
	case kind == kindPagerDuty && status == http.StatusBadRequest:
		return `{"status":"invalid event","message":"Event object is invalid","errors":["'payload.severity' is invalid"]}`
	case kind == kindPagerDuty && status == http.StatusTooManyRequests:
		return `{"status":"throttle event","message":"Requests for this service are arriving too quickly.  Please retry later."}`
	}
	return "upstream\nunavailable"
}

// hookPath is where each kind's receiver listens in the goldens.
var hookPath = map[string]string{
	kindJSON:      "/hooks/nhisentry",
	kindSlack:     "/services/T0ABCDEF1/B0ABCDEF2/x7Yq3kP9sL2mN8vR4tW6zB1c",
	kindPagerDuty: "/v2/enqueue",
}

// newTestWebhook returns a webhook of kind to r, its secrets read from the
// environment (the Slack URL from a file) as in production.
func newTestWebhook(t *testing.T, r *hookReceiver, c WebhookConfig) *webhook {
	t.Helper()
	c.Kind = r.kind
	u := r.srv.URL + hookPath[r.kind]
	switch r.kind {
	case kindSlack:
		file := filepath.Join(t.TempDir(), "slack-url")
		if err := os.WriteFile(file, []byte(u+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.Secret = secure.Secret{File: file}
	case kindJSON:
		t.Setenv("NHI_TEST_HOOK_KEY", hookKey)
		c.URL, c.Secret = u, secure.Secret{Env: "NHI_TEST_HOOK_KEY"}
	case kindPagerDuty:
		t.Setenv("NHI_TEST_PD_KEY", hookRoutingKey)
		c.URL, c.Secret = u, secure.Secret{Env: "NHI_TEST_PD_KEY"}
	}
	if c.now == nil {
		c.now = func() time.Time { return time.Unix(hookNow, 0) }
	}
	out, err := NewWebhook(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	return out.(*webhook)
}

// TestWebhookGolden delivers the findings to each kind and checks the
// requests byte for byte.
func TestWebhookGolden(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		cfg      WebhookConfig
		requests int
	}{
		{kindJSON, WebhookConfig{Headers: map[string]string{"x-team": "secops"}}, 1},
		{kindSlack, WebhookConfig{}, 2},
		{kindPagerDuty, WebhookConfig{}, 2},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			r := newHookReceiver(t, tc.kind, false)
			w := newTestWebhook(t, r, tc.cfg)
			if w.Name() != "webhook-"+tc.kind {
				t.Errorf("name %q", w.Name())
			}
			if err := w.Deliver(context.Background(), httpFindings()); err != nil {
				t.Fatal(err)
			}
			reqs := r.requests()
			if len(reqs) != tc.requests {
				t.Fatalf("%d requests, want %d", len(reqs), tc.requests)
			}
			var dump []byte
			for _, q := range reqs {
				dump = append(dump, dumpRequest(http.MethodPost, q.Path, q.Header, q.Body)...)
			}
			checkHTTPGolden(t, "testdata/webhook/"+tc.kind+".http", dump)
		})
	}
}

// verifyWebhook is a receiver's check of a json webhook, as
// docs/outputs/webhooks.md tells it: a timestamp within the replay window,
// then the HMAC-SHA256 of "<timestamp>.<body>" compared in constant time.
func verifyWebhook(key string, h http.Header, body []byte, now time.Time) error {
	ts := h.Get("X-Nhisentry-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("timestamp %q: %w", ts, err)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s is %s away", ts, d)
	}
	m := hmac.New(sha256.New, []byte(key))
	m.Write([]byte(ts + "." + string(body)))
	want := "sha256=" + hex.EncodeToString(m.Sum(nil))
	if !hmac.Equal([]byte(h.Get("X-Nhisentry-Signature")), []byte(want)) {
		return errors.New("signature mismatch")
	}
	return nil
}

func TestWebhookSignature(t *testing.T) {
	r := newHookReceiver(t, kindJSON, false)
	clock := time.Unix(hookNow, 0)
	w := newTestWebhook(t, r, WebhookConfig{now: func() time.Time { return clock }})
	findings := httpFindings()
	if err := w.Deliver(context.Background(), findings); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(90 * time.Second) // the retry of the same batch
	if err := w.Deliver(context.Background(), findings); err != nil {
		t.Fatal(err)
	}
	reqs := r.requests()
	first, retry := reqs[0], reqs[1]
	if err := verifyWebhook(hookKey, first.Header, first.Body, time.Unix(hookNow+30, 0)); err != nil {
		t.Errorf("a receiver rejects the request: %v", err)
	}
	if err := verifyWebhook(hookKey, first.Header, append(first.Body, ' '), time.Unix(hookNow, 0)); err == nil {
		t.Error("a changed body verifies")
	}
	if err := verifyWebhook(hookKey, first.Header, first.Body, time.Unix(hookNow+600, 0)); err == nil {
		t.Error("a request replayed 10 minutes later verifies")
	}
	if err := verifyWebhook(hookKey, retry.Header, retry.Body, clock); err != nil {
		t.Errorf("the retry does not verify: %v", err)
	}
	// The delivery id is the documented hash, the same on the retry.
	sum := sha256.Sum256([]byte(findings[0].ID + ":0\n" + findings[1].ID + ":2\n"))
	want := hex.EncodeToString(sum[:16])
	for _, q := range reqs {
		if got := q.Header.Get("X-Nhisentry-Delivery"); got != want {
			t.Errorf("delivery id %s, want %s", got, want)
		}
	}
	if first.Header.Get("X-Nhisentry-Signature") == retry.Header.Get("X-Nhisentry-Signature") {
		t.Error("the retry, signed 90s later, carries the first signature")
	}
	// The body reads back as the findings.
	var b struct{ Findings []json.RawMessage }
	if err := json.Unmarshal(first.Body, &b); err != nil || len(b.Findings) != 2 {
		t.Fatalf("body: %v", err)
	}
	for i, raw := range b.Findings {
		if back, err := schemas.ParseOCSF(raw); err != nil || back.ID != findings[i].ID || back.Revision != findings[i].Revision {
			t.Errorf("finding %d reads back as %+v (%v)", i, back, err)
		}
	}
}

// TestWebhookErrors checks the status mapping: 408, 429 and 5xx are
// retryable, the rest Permanent; errors quote the reply and never show a
// Slack URL's path.
func TestWebhookErrors(t *testing.T) {
	for _, tc := range []struct {
		kind      string
		status    int
		permanent bool
		detail    string
	}{
		{kindJSON, 500, false, "upstream unavailable"},
		{kindJSON, 408, false, "upstream unavailable"},
		{kindJSON, 410, true, "upstream unavailable"},
		{kindJSON, 302, true, "upstream unavailable"},
		{kindSlack, 404, true, "no_service"},
		{kindSlack, 503, false, "no_service"},
		{kindPagerDuty, 400, true, `{"status":"invalid event","message":"Event object is invalid","errors":["'payload.severity' is invalid"]}`},
		{kindPagerDuty, 429, false, `{"status":"throttle event","message":"Requests for this service are arriving too quickly. Please retry later."}`},
	} {
		t.Run(fmt.Sprint(tc.kind, " ", tc.status), func(t *testing.T) {
			r := newHookReceiver(t, tc.kind, false)
			w := newTestWebhook(t, r, WebhookConfig{})
			r.failNext(tc.status)
			err := w.Deliver(context.Background(), httpFindings())
			if err == nil {
				t.Fatal("delivered through an error reply")
			}
			shown := r.srv.URL + hookPath[tc.kind]
			if tc.kind == kindSlack {
				shown = r.srv.URL + "/…"
			}
			want := fmt.Sprintf("webhook output %q: POST %s: HTTP %d: %s", "webhook-"+tc.kind, shown, tc.status, tc.detail)
			if err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", err, want)
			}
			if got := errors.As(err, new(Permanent)); got != tc.permanent {
				t.Errorf("permanent %v, want %v", got, tc.permanent)
			}
		})
	}
}

// TestWebhookRetrySkipsPosted: the retry after a failure midway through a
// batch does not post again the findings already accepted.
func TestWebhookRetrySkipsPosted(t *testing.T) {
	for _, kind := range []string{kindSlack, kindPagerDuty} {
		t.Run(kind, func(t *testing.T) {
			r := newHookReceiver(t, kind, false)
			w := newTestWebhook(t, r, WebhookConfig{})
			findings := append(httpFindings(), httpFindings()[0])
			findings[2].ID = "00000000000000000000000000000003"
			r.failNext(0, http.StatusBadGateway)
			if err := w.Deliver(context.Background(), findings); err == nil {
				t.Fatal("delivered through a 502")
			}
			if err := w.Deliver(context.Background(), findings); err != nil {
				t.Fatalf("retry: %v", err)
			}
			reqs := r.requests()
			if len(reqs) != 4 || string(reqs[1].Body) != string(reqs[2].Body) {
				t.Fatalf("%d requests, want the first finding, the second twice (502, then accepted), the third", len(reqs))
			}
			accepted := r.accepted()
			if len(accepted) != 3 || accepted[0] == accepted[1] || accepted[1] == accepted[2] || accepted[0] == accepted[2] {
				t.Errorf("accepted %q, want each finding once", accepted)
			}
		})
	}
}

func TestWebhookTLS(t *testing.T) {
	r := newHookReceiver(t, kindJSON, true)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newTestWebhook(t, r, WebhookConfig{TLS: secure.TLS{Enabled: true, CAFile: ca}})
	if err := w.Deliver(context.Background(), httpFindings()); err != nil {
		t.Fatalf("with the test CA: %v", err)
	}
	untrusting := newTestWebhook(t, r, WebhookConfig{TLS: secure.TLS{Enabled: true}})
	err := untrusting.Deliver(context.Background(), httpFindings())
	if err == nil || errors.As(err, new(Permanent)) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("with the system roots: %v, want a retryable certificate error", err)
	}
	if n := len(r.accepted()); n != 1 {
		t.Errorf("%d requests accepted, want 1", n)
	}
}

func TestPagerDutyEvent(t *testing.T) {
	r := newHookReceiver(t, kindPagerDuty, false)
	w := newTestWebhook(t, r, WebhookConfig{})
	f := httpFindings()[0]
	f.Explanation = strings.Repeat("é", 2000)
	ev := w.pagerDutyEvent(&f)
	if n := utf8.RuneCountInString(ev.Payload.Summary); n != pagerDutySummaryMax || !strings.HasSuffix(ev.Payload.Summary, "…") {
		t.Errorf("summary of %d characters, want %d ending in …", n, pagerDutySummaryMax)
	}
	for s, want := range map[schemas.Severity]string{
		schemas.SeverityCritical: "critical", schemas.SeverityHigh: "error", schemas.SeverityMedium: "warning",
		schemas.SeverityLow: "info", schemas.SeverityInfo: "info", "": "info",
	} {
		if got := pagerDutySeverity(s); got != want {
			t.Errorf("severity %q → %q, want %q", s, got, want)
		}
	}
	pd, err := NewWebhook(WebhookConfig{Kind: kindPagerDuty, Secret: secure.Secret{Env: "NHI_TEST_PD_KEY"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := pd.(*webhook).to.url; got != defaultPagerDutyURL {
		t.Errorf("default url %s", got)
	}
}

func TestWebhookValidate(t *testing.T) {
	t.Setenv("NHI_TEST_HOOK_KEY", hookKey)
	key := secure.Secret{Env: "NHI_TEST_HOOK_KEY"}
	for _, tc := range []struct {
		name string
		cfg  WebhookConfig
		want []string
	}{
		{"good json", WebhookConfig{URL: "https://soar.example.com/hook", Secret: key}, nil},
		{"good pagerduty", WebhookConfig{Kind: "pagerduty", Secret: key}, nil},
		{"good slack", WebhookConfig{Kind: "slack", URL: "https://hooks.slack.com/services/T/B/x"}, nil},
		{"empty", WebhookConfig{}, []string{
			"out.secret: no secret configured (set env or file)",
			"out.url: required",
		}},
		{"unknown kind", WebhookConfig{Kind: "teams", URL: "https://x"}, []string{
			`out.kind: "teams", want one of json, slack, pagerduty`,
		}},
		{"pagerduty without routing key", WebhookConfig{Kind: "pagerduty"}, []string{
			"out.secret: no secret configured (set env or file)",
		}},
		{"slack with url and secret", WebhookConfig{Kind: "slack", URL: "https://hooks.slack.com/services/T/B/x", Secret: key}, []string{
			"out: set url or secret (holding the url), not both",
		}},
		{"slack url in secret", WebhookConfig{Kind: "slack", Secret: key}, []string{
			`out.secret: scheme "", want http or https`,
			"out.secret: no host",
		}},
		{"bad url", WebhookConfig{URL: "https://hooks.example.com/%zz/secret-path", Secret: key}, []string{
			`out.url: invalid URL escape "%zz"`,
		}},
		{"all wrong", WebhookConfig{
			URL: "http://soar.example.com/hook", Secret: key, Timeout: -time.Second, TLS: secure.TLS{Enabled: true},
			Headers: map[string]string{"Bad Name": "x", "content-type": "text/plain", "X-Nhisentry-Signature": "x", "X-Ok": "a\r\nb"},
		}, []string{
			"out.url: tls is enabled, so the url must be https",
			`out.headers: "Bad Name" is not a header name`,
			"out.headers: X-Nhisentry-Signature is set by nhisentry",
			"out.headers.X-Ok: a value cannot hold CR, LF or NUL",
			"out.headers: Content-Type is set by nhisentry",
			"out.timeout: -1s is negative",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compareErrors(t, tc.cfg.Validate("out"), tc.want)
		})
	}
}
