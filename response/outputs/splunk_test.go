package outputs

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/schemas"
)

var updateHTTP = flag.Bool("update-http", false, "rewrite testdata/splunk and testdata/webhook goldens")

// httpFindings are the findings the HTTP outputs' goldens carry: a
// detector's first message and a rule's third revision.
func httpFindings() []schemas.Finding {
	at := time.Date(2026, 11, 6, 13, 20, 4, 123000000, time.UTC)
	return []schemas.Finding{{
		ID: "9d0b6e2a41f37c58e1a2b3c4d5e6f708", Detector: "new_value",
		Identity: schemas.Identity{ID: "aws:role/111122223333/media-api", Kind: schemas.KindRole, Name: "media-api"},
		Severity: schemas.SeverityHigh, Score: 95, Title: "New network for aws:role/111122223333/media-api",
		Explanation: "network 203.0.113.0/24 never seen for aws:role/111122223333/media-api; 1 known, set unchanged for 4.5 days",
		Technique:   "T1078.004", EventIDs: []string{"ev-1"}, FirstSeen: schemas.At(at), LastSeen: schemas.At(at.Add(time.Minute)), Count: 1,
		Analysis: schemas.Analysis{Pattern: schemas.PatternUnseen, Observed: "network=203.0.113.0/24", Baseline: "1 known networks, last new one 4.5 days ago"},
	}, {
		ID: "3e7a19c0b2d84f65a7c1e9d2b0f4a6c8", Detector: "rule", RuleID: "denied-burst",
		Identity: schemas.Identity{ID: "spiffe://td/ns/payments/sa/ledger", Kind: schemas.KindWorkload},
		Severity: schemas.SeverityMedium, Score: 70, Title: "denied-burst",
		Explanation: "12 denied calls in the hour (> 10) & rising",
		EventIDs:    []string{"e1", "e2"}, FirstSeen: schemas.At(at), LastSeen: schemas.At(at.Add(30 * time.Minute)), Count: 12, Revision: 2,
		Analysis: schemas.Analysis{Pattern: schemas.PatternMatch, Observed: "window.denied=12"},
	}}
}

// dumpRequest renders a request as the goldens and the docs show it: the
// request line, the headers sorted (without the transport's
// Content-Length and Accept-Encoding), a blank line and the body.
func dumpRequest(method, path string, h http.Header, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s\n", method, path)
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if k == "Content-Length" || k == "Accept-Encoding" {
			continue
		}
		for _, v := range h[k] {
			fmt.Fprintf(&b, "%s: %s\n", k, v)
		}
	}
	b.WriteByte('\n')
	b.Write(body)
	b.WriteByte('\n')
	return b.Bytes()
}

func checkHTTPGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *updateHTTP {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed (go test ./response/outputs -run %s -update-http to accept):\n%s", path, t.Name(), got)
	}
}

// newTestSplunk returns a Splunk output to h, whose token comes from the
// environment as in production.
func newTestSplunk(t *testing.T, h *hecFake, c SplunkConfig) *splunk {
	t.Helper()
	t.Setenv("NHI_TEST_HEC_TOKEN", hecFakeToken)
	c.URL = h.url()
	if c.Token.IsZero() {
		c.Token = secure.Secret{Env: "NHI_TEST_HEC_TOKEN"}
	}
	c.ackPoll = cmp.Or(c.ackPoll, 10*time.Millisecond)
	out, err := NewSplunk(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	return out.(*splunk)
}

// TestSplunkGolden delivers the findings and checks the request HEC got
// byte for byte (decompressed), and that each event reads back as the
// finding it came from.
func TestSplunkGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  SplunkConfig
	}{
		{"defaults", SplunkConfig{}},
		{"gzip-ack-metadata", SplunkConfig{
			Name: "siem", Gzip: true, Ack: true, Channel: "0f3c9a4e-8d52-4b7a-9e61-2c5d7f1a8b90",
			Index: "security", Host: "nhisentry-1", Source: "nhisentry:prod", SourceType: "ocsf:2004",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHECFake(t, tc.cfg.Ack)
			s := newTestSplunk(t, h, tc.cfg)
			findings := httpFindings()
			if err := s.Deliver(context.Background(), findings); err != nil {
				t.Fatal(err)
			}
			reqs, events := h.received()
			if len(reqs) != 1 {
				t.Fatalf("%d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if enc := r.Header.Get("Content-Encoding"); (enc == "gzip") != tc.cfg.Gzip || bytes.Equal(r.Wire, r.Body) == tc.cfg.Gzip {
				t.Errorf("Content-Encoding %q with gzip %v", enc, tc.cfg.Gzip)
			}
			checkHTTPGolden(t, "testdata/splunk/"+tc.name+".http", dumpRequest(http.MethodPost, "/services/collector/event", r.Header, r.Body))
			if tc.cfg.Ack && h.polls() == 0 {
				t.Error("acknowledgement never polled")
			}
			if len(events) != len(findings) {
				t.Fatalf("%d events, want %d", len(events), len(findings))
			}
			for i, e := range events {
				back, err := schemas.ParseOCSF(e.Event)
				if err != nil {
					t.Fatal(err)
				}
				if want := findings[i]; !reflect.DeepEqual(back, want) {
					t.Errorf("event %d reads back as\n%+v\nwant\n%+v", i, back, want)
				}
				wantFields := map[string]string{"finding_id": findings[i].ID, "revision": fmt.Sprint(findings[i].Revision)}
				if !reflect.DeepEqual(e.Fields, wantFields) || e.Channel != tc.cfg.Channel {
					t.Errorf("event %d: fields %v channel %q, want %v and %q", i, e.Fields, e.Channel, wantFields, tc.cfg.Channel)
				}
			}
		})
	}
}

// TestSplunkErrors injects HEC's error replies: busy and server errors are
// retryable (and the retry delivers each finding once), the rest Permanent;
// every error names the status and HEC's code and text.
func TestSplunkErrors(t *testing.T) {
	for _, tc := range []struct {
		reply     hecStatus
		detail    string
		permanent bool
	}{
		{hecBusy, "HEC code 9: Server is busy", false},
		{hecThrottled, "HEC code 9: Server is busy", false},
		{hecInternalError, "HEC code 8: Internal server error", false},
		{hecInvalidToken, "HEC code 4: Invalid token", true},
		{hecInvalidAuth, "HEC code 3: Invalid authorization", true},
		{hecIncorrectIndex, "HEC code 7: Incorrect index", true},
		{hecContentTooLarge, "Request entity too large", true},
	} {
		t.Run(fmt.Sprint(tc.reply.status, " ", tc.reply.text), func(t *testing.T) {
			h := newHECFake(t, false)
			s := newTestSplunk(t, h, SplunkConfig{})
			h.failNext(1, tc.reply)
			err := s.Deliver(context.Background(), httpFindings())
			if err == nil {
				t.Fatal("delivered through an error reply")
			}
			want := fmt.Sprintf(`splunk output "splunk": POST %s/services/collector/event: HTTP %d: %s`, h.url(), tc.reply.status, tc.detail)
			if err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", err, want)
			}
			if got := errors.As(err, new(Permanent)); got != tc.permanent {
				t.Errorf("permanent %v, want %v", got, tc.permanent)
			}
			if err := s.Deliver(context.Background(), httpFindings()); err != nil {
				t.Fatalf("retry: %v", err)
			}
			if _, events := h.received(); len(events) != 2 {
				t.Errorf("%d events accepted, want the 2 findings once", len(events))
			}
		})
	}
}

func TestSplunkWrongToken(t *testing.T) {
	h := newHECFake(t, false)
	t.Setenv("NHI_TEST_WRONG_TOKEN", "00000000-0000-0000-0000-000000000000")
	s := newTestSplunk(t, h, SplunkConfig{Token: secure.Secret{Env: "NHI_TEST_WRONG_TOKEN"}})
	err := s.Deliver(context.Background(), httpFindings())
	if !errors.As(err, new(Permanent)) || !strings.Contains(err.Error(), "HTTP 403: HEC code 4: Invalid token") {
		t.Errorf("error %v, want a Permanent 403 invalid token", err)
	}
	if strings.Contains(err.Error(), "00000000-0000") {
		t.Error("the error shows the token")
	}
}

func TestSplunkTimeout(t *testing.T) {
	h := newHECFake(t, false)
	h.setDelay(5 * time.Second)
	s := newTestSplunk(t, h, SplunkConfig{Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := s.Deliver(context.Background(), httpFindings())
	took := time.Since(start)
	if err == nil || errors.As(err, new(Permanent)) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want a retryable timeout", err)
	}
	if took > 2*time.Second {
		t.Errorf("took %s with a 200ms timeout", took)
	}
}

func TestSplunkAck(t *testing.T) {
	t.Run("acknowledged", func(t *testing.T) {
		h := newHECFake(t, true)
		s := newTestSplunk(t, h, SplunkConfig{Ack: true})
		if err := s.Deliver(context.Background(), httpFindings()); err != nil {
			t.Fatal(err)
		}
		reqs, _ := h.received()
		ch := reqs[0].Header.Get(hecChannelHeader)
		if !guidForm.MatchString(ch) || ch[14] != '4' || ch != s.cfg.Channel {
			t.Errorf("channel %q, want the output's random UUID %q", ch, s.cfg.Channel)
		}
		if h.polls() == 0 {
			t.Error("acknowledgement never polled")
		}
	})
	t.Run("never acknowledged", func(t *testing.T) {
		h := newHECFake(t, true)
		h.setNeverAck()
		s := newTestSplunk(t, h, SplunkConfig{Ack: true, AckTimeout: 300 * time.Millisecond, ackPoll: 20 * time.Millisecond})
		start := time.Now()
		err := s.Deliver(context.Background(), httpFindings())
		took := time.Since(start)
		if err == nil || errors.As(err, new(Permanent)) || !strings.Contains(err.Error(), "1 of 1 requests not acknowledged by the indexers within 300ms") {
			t.Errorf("error %v, want a retryable ack timeout", err)
		}
		if took < 300*time.Millisecond || took > 3*time.Second || h.polls() < 2 {
			t.Errorf("gave up after %s and %d polls, want after 300ms of polling", took, h.polls())
		}
	})
	t.Run("token without useACK", func(t *testing.T) {
		h := newHECFake(t, false)
		s := newTestSplunk(t, h, SplunkConfig{Ack: true})
		err := s.Deliver(context.Background(), httpFindings())
		if !errors.As(err, new(Permanent)) || !strings.Contains(err.Error(), "has no ackId") {
			t.Errorf("error %v, want Permanent: no ackId", err)
		}
	})
}

// TestSplunkSplitsLargeBatches sends a batch of about 2 MB to a HEC
// holding max_content_length at 1,000,000 bytes: it arrives whole, in
// order, in requests under the limit.
func TestSplunkSplitsLargeBatches(t *testing.T) {
	h := newHECFake(t, false)
	s := newTestSplunk(t, h, SplunkConfig{Gzip: true})
	base := httpFindings()[0]
	base.Explanation = strings.Repeat("x", 4000)
	findings := make([]schemas.Finding, 400)
	for i := range findings {
		findings[i] = base
		findings[i].ID = fmt.Sprintf("%032d", i)
	}
	if err := s.Deliver(context.Background(), findings); err != nil {
		t.Fatal(err)
	}
	reqs, events := h.received()
	if len(reqs) < 2 {
		t.Errorf("%d requests, want the batch cut", len(reqs))
	}
	for i, r := range reqs {
		if len(r.Body) > hecMaxRequest {
			t.Errorf("request %d holds %d bytes", i, len(r.Body))
		}
	}
	if len(events) != len(findings) {
		t.Fatalf("%d events, want %d", len(events), len(findings))
	}
	for i, e := range events {
		if e.Fields["finding_id"] != findings[i].ID {
			t.Fatalf("event %d is finding %s, want %s", i, e.Fields["finding_id"], findings[i].ID)
		}
	}
}

func TestSplunkValidate(t *testing.T) {
	t.Setenv("NHI_TEST_HEC_TOKEN", hecFakeToken)
	token := secure.Secret{Env: "NHI_TEST_HEC_TOKEN"}
	for _, tc := range []struct {
		name string
		cfg  SplunkConfig
		want []string
	}{
		{"good", SplunkConfig{URL: "https://splunk:8088", Token: token}, nil},
		{"empty", SplunkConfig{}, []string{
			"out.url: required",
			"out.token: no secret configured (set env or file)",
		}},
		{"all wrong", SplunkConfig{
			URL: "ftp://splunk:8088/services/collector/event?x=1", Token: secure.Secret{Env: "NHI_TEST_UNSET"}, Channel: "abc",
			AckTimeout: -time.Second, Timeout: -time.Second, TLS: secure.TLS{Enabled: true, CertFile: "c.pem"},
		}, []string{
			`out.url: scheme "ftp", want http or https`,
			"out.url: give HEC's base URL (like https://splunk:8088); nhisentry adds /services/collector/event",
			"out.url: no query or fragment, please",
			"out.token: secret: environment variable NHI_TEST_UNSET is not set",
			`out.channel: "abc" is not a GUID (like 0f3c9a4e-8d52-4b7a-9e61-2c5d7f1a8b90)`,
			"out.ack_timeout: -1s is negative",
			"out.timeout: -1s is negative",
			"out.tls: cert_file and key_file go together",
			"out.tls.cert_file: stat c.pem: no such file or directory",
		}},
		{"tls over http", SplunkConfig{URL: "http://splunk:8088", Token: token, TLS: secure.TLS{Enabled: true}}, []string{
			"out.url: tls is enabled, so the url must be https",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			compareErrors(t, tc.cfg.Validate("out"), tc.want)
		})
	}
}

// compareErrors checks a Validate result lists exactly want, in order.
func compareErrors(t *testing.T, errs []error, want []string) {
	t.Helper()
	got := make([]string, len(errs))
	for i, e := range errs {
		got[i] = e.Error()
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
