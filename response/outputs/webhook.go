package outputs

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/sign"
	"github.com/nhisentry/nhisentry/schemas"
)

// WebhookConfig configures delivery to a webhook. Kind picks the payload:
//
//	json       the batch as {"findings":[OCSF Detection Findings]}, signed
//	           with HMAC-SHA256
//	slack      one Slack-compatible {"text": …} message per finding
//	pagerduty  one PagerDuty Events API v2 trigger per finding
//
// The wire forms are documented in docs/outputs/webhooks.md.
type WebhookConfig struct {
	Name string `yaml:"name"` // unique output name, default "webhook-<kind>"
	Kind string `yaml:"kind"` // json (default), slack, pagerduty
	// URL is where to post; pagerduty defaults to
	// https://events.pagerduty.com/v2/enqueue.
	URL string `yaml:"url"`
	// Secret is, for json, the HMAC-SHA256 signing key (required); for
	// pagerduty, the integration's routing key (required); for slack,
	// optionally the webhook URL itself in place of url, since the URL is
	// the secret of a Slack webhook.
	Secret  secure.Secret     `yaml:"secret"`
	Headers map[string]string `yaml:"headers"` // added to every request
	TLS     secure.TLS        `yaml:"tls"`
	Timeout time.Duration     `yaml:"timeout"` // per request, default 10s

	// now stamps signatures; tests fix it.
	now func() time.Time
}

const (
	kindJSON      = "json"
	kindSlack     = "slack"
	kindPagerDuty = "pagerduty"

	defaultPagerDutyURL = "https://events.pagerduty.com/v2/enqueue"
	// pagerDutySummaryMax is the Events API v2 limit on payload.summary, in
	// characters.
	pagerDutySummaryMax = 1024

	headerDelivery = "X-Nhisentry-Delivery"
)

var webhookKinds = []string{kindJSON, kindSlack, kindPagerDuty}

// reservedHeaders are set by the output itself, so headers cannot set them
// (nor any X-Nhisentry-* header).
var reservedHeaders = []string{"Content-Encoding", "Content-Length", "Content-Type", "Host", "Transfer-Encoding"}

// Validate lists every problem, each prefixed with field (a YAML path).
func (c WebhookConfig) Validate(field string) []error {
	var errs []error
	kind := cmp.Or(c.Kind, kindJSON)
	switch kind {
	case kindJSON, kindPagerDuty:
		errs = append(errs, c.Secret.Validate(field+".secret", true)...)
	case kindSlack:
		errs = append(errs, c.Secret.Validate(field+".secret", false)...)
		if c.URL != "" && !c.Secret.IsZero() {
			errs = append(errs, fmt.Errorf("%s: set url or secret (holding the url), not both", field))
		}
	default:
		errs = append(errs, fmt.Errorf("%s.kind: %q, want one of %s", field, c.Kind, strings.Join(webhookKinds, ", ")))
	}
	if raw, ok := c.rawURL(); ok {
		urlField := field + ".url"
		if c.URL == "" && c.Kind == kindSlack && !c.Secret.IsZero() {
			urlField = field + ".secret"
		}
		_, uerrs := parseBaseURL(urlField, raw, c.TLS)
		errs = append(errs, uerrs...)
	}
	for _, name := range slices.Sorted(maps.Keys(c.Headers)) {
		errs = append(errs, validateHeader(field+".headers", name, c.Headers[name])...)
	}
	errs = append(errs, validateTimeout(field+".timeout", c.Timeout)...)
	return append(errs, c.TLS.Validate(field+".tls")...)
}

// rawURL is where the webhook posts; false when it cannot be read, which
// Validate reports under secret.
func (c WebhookConfig) rawURL() (string, bool) {
	switch {
	case c.URL != "":
		return c.URL, true
	case c.Kind == kindPagerDuty:
		return defaultPagerDutyURL, true
	case c.Kind == kindSlack && !c.Secret.IsZero():
		v, err := c.Secret.Value()
		return v, err == nil
	}
	return "", true // parseBaseURL reports it missing
}

func validateHeader(field, name, value string) []error {
	var errs []error
	canon := http.CanonicalHeaderKey(name)
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenChar(r) }) {
		errs = append(errs, fmt.Errorf("%s: %q is not a header name", field, name))
	} else if slices.Contains(reservedHeaders, canon) || strings.HasPrefix(canon, "X-Nhisentry-") {
		errs = append(errs, fmt.Errorf("%s: %s is set by nhisentry", field, canon))
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		errs = append(errs, fmt.Errorf("%s.%s: a value cannot hold CR, LF or NUL", field, name))
	}
	return errs
}

// isTokenChar reports whether r may appear in a header name (RFC 9110
// §5.6.2).
func isTokenChar(r rune) bool {
	return r < 0x80 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("!#$%&'*+-.^_`|~", r))
}

// webhook delivers findings to one webhook.
type webhook struct {
	cfg    WebhookConfig
	http   *httpOut
	to     endpoint
	secret string      // signing key (json) or routing key (pagerduty)
	header http.Header // Content-Type and the configured headers

	// sent holds the findings (id and revision) that a failed Deliver had
	// already posted one by one, so its retry does not post them twice to
	// a human's channel; it is cleared when a Deliver succeeds.
	mu   sync.Mutex
	sent map[string]bool
}

var _ Output = (*webhook)(nil)

// NewWebhook checks c and returns the output.
func NewWebhook(c WebhookConfig) (Output, error) {
	c.Kind = cmp.Or(c.Kind, kindJSON)
	c.Name = cmp.Or(c.Name, "webhook-"+c.Kind)
	if c.now == nil {
		c.now = time.Now
	}
	if errs := c.Validate(c.Name); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	prefix := fmt.Sprintf("webhook output %q", c.Name)
	w := &webhook{cfg: c, sent: map[string]bool{}, header: http.Header{"Content-Type": {"application/json"}}}
	for name, v := range c.Headers {
		w.header.Set(name, v)
	}
	raw, _ := c.rawURL()
	if c.Kind != kindSlack {
		v, err := c.Secret.Value()
		if err != nil {
			return nil, fmt.Errorf("%s: secret: %w", prefix, err)
		}
		w.secret = v
	}
	u, err := url.Parse(raw)
	if err != nil { // checked by Validate; the URL may be a secret, so not quoted
		return nil, fmt.Errorf("%s: the url does not parse", prefix)
	}
	w.to = newEndpoint(u, c.Kind == kindSlack)
	if w.http, err = newHTTPOut(prefix, c.TLS, c.Timeout); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *webhook) Name() string { return w.cfg.Name }

func (w *webhook) Close() error {
	w.http.client.CloseIdleConnections()
	return nil
}

// Deliver posts the batch in one signed request (json), or each finding in
// its own request, in order (slack, pagerduty).
func (w *webhook) Deliver(ctx context.Context, findings []schemas.Finding) error {
	if len(findings) == 0 {
		return nil
	}
	if w.cfg.Kind == kindJSON {
		return w.postBatch(ctx, findings)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := range findings {
		f := &findings[i]
		key := f.ID + "#" + strconv.Itoa(f.Revision)
		if w.sent[key] {
			continue
		}
		var body []byte
		var err error
		if w.cfg.Kind == kindSlack {
			body, err = marshalJSON(slackMessage(f))
		} else {
			body, err = marshalJSON(w.pagerDutyEvent(f))
		}
		if err != nil {
			return fmt.Errorf("%s: finding %s: %w", w.http.prefix, f.ID, err)
		}
		if _, err := w.http.post(ctx, w.to, w.header, body, nil); err != nil {
			return err
		}
		w.sent[key] = true
	}
	clear(w.sent)
	return nil
}

// jsonBatch is the body of a json webhook.
type jsonBatch struct {
	Findings []schemas.DetectionFinding `json:"findings"`
}

func (w *webhook) postBatch(ctx context.Context, findings []schemas.Finding) error {
	b := jsonBatch{Findings: make([]schemas.DetectionFinding, len(findings))}
	for i := range findings {
		b.Findings[i] = findings[i].OCSF()
	}
	body, err := marshalJSON(b)
	if err != nil {
		return fmt.Errorf("%s: %w", w.http.prefix, err)
	}
	h := w.header.Clone()
	sign.Set(h, w.secret, w.cfg.now(), body)
	h.Set(headerDelivery, deliveryID(findings))
	_, err = w.http.post(ctx, w.to, h, body, nil)
	return err
}

// deliveryID names a batch by its content, the same on every retry: the
// first 16 bytes, in hex, of the SHA-256 of "<finding id>:<revision>\n"
// for each finding in order.
func deliveryID(findings []schemas.Finding) string {
	h := sha256.New()
	for i := range findings {
		fmt.Fprintf(h, "%s:%d\n", findings[i].ID, findings[i].Revision)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// oneLine is a finding in one line, for chat and pager summaries:
// [SEVERITY] title — identity — explanation (score N[, count N], finding ID),
// without "— identity" when the title already names it.
func oneLine(f *schemas.Finding) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", strings.ToUpper(string(f.Severity)), f.Title)
	if !strings.Contains(f.Title, f.Identity.ID) {
		b.WriteString(" — " + f.Identity.ID)
	}
	fmt.Fprintf(&b, " — %s (score %d", f.Explanation, f.Score)
	if f.Count > 1 {
		fmt.Fprintf(&b, ", count %d", f.Count)
	}
	fmt.Fprintf(&b, ", finding %s)", f.ID)
	return b.String()
}

// slackEscaper escapes the three characters Slack's message formatting
// reserves for links and mentions.
var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackMessage(f *schemas.Finding) any {
	return struct {
		Text string `json:"text"`
	}{slackEscaper.Replace(oneLine(f))}
}

// pagerDutyEvent is an Events API v2 event.
type pagerDutyEvent struct {
	RoutingKey  string           `json:"routing_key"`
	EventAction string           `json:"event_action"`
	DedupKey    string           `json:"dedup_key"`
	Client      string           `json:"client"`
	Payload     pagerDutyPayload `json:"payload"`
}

type pagerDutyPayload struct {
	Summary       string           `json:"summary"`
	Source        string           `json:"source"`
	Severity      string           `json:"severity"`
	Timestamp     string           `json:"timestamp,omitempty"`
	Component     string           `json:"component"`
	Group         string           `json:"group"`
	Class         string           `json:"class"`
	CustomDetails pagerDutyDetails `json:"custom_details"`
}

type pagerDutyDetails struct {
	FindingID   string   `json:"finding_id"`
	Revision    int      `json:"revision"`
	Count       int      `json:"count"`
	Score       int      `json:"score"`
	Severity    string   `json:"severity"` // nhisentry's, of five levels
	Identity    string   `json:"identity"`
	Explanation string   `json:"explanation"`
	Observed    string   `json:"observed,omitempty"`
	Baseline    string   `json:"baseline,omitempty"`
	Technique   string   `json:"technique,omitempty"`
	EventIDs    []string `json:"event_ids"`
	FirstSeen   string   `json:"first_seen,omitempty"`
}

// pagerDutyEvent triggers an alert keyed by the finding id, so a later
// revision of the finding lands on the same open alert.
func (w *webhook) pagerDutyEvent(f *schemas.Finding) pagerDutyEvent {
	class := cmp.Or(f.Technique, signatureID(f))
	events := f.EventIDs
	if events == nil {
		events = []string{}
	}
	return pagerDutyEvent{
		RoutingKey: w.secret, EventAction: "trigger", DedupKey: f.ID, Client: "nhisentry",
		Payload: pagerDutyPayload{
			Summary: truncateRunes(oneLine(f), pagerDutySummaryMax), Source: f.Identity.ID,
			Severity: pagerDutySeverity(f.Severity), Timestamp: rfc3339Millis(f.LastSeen),
			Component: signatureID(f), Group: string(f.Identity.Kind), Class: class,
			CustomDetails: pagerDutyDetails{
				FindingID: f.ID, Revision: f.Revision, Count: max(f.Count, 1), Score: f.Score, Severity: string(f.Severity),
				Identity: f.Identity.ID, Explanation: f.Explanation, Observed: f.Analysis.Observed, Baseline: f.Analysis.Baseline,
				Technique: f.Technique, EventIDs: events, FirstSeen: rfc3339Millis(f.FirstSeen),
			},
		},
	}
}

// pagerDutySeverity maps five severities onto PagerDuty's four; an unknown
// one is info, as in the syslog output.
func pagerDutySeverity(s schemas.Severity) string {
	switch s {
	case schemas.SeverityCritical:
		return "critical"
	case schemas.SeverityHigh:
		return "error"
	case schemas.SeverityMedium:
		return "warning"
	}
	return "info"
}

// truncateRunes cuts s to at most n characters, ending in "…" when cut.
func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
