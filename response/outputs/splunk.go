package outputs

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/schemas"
)

// SplunkConfig configures delivery to a Splunk HTTP Event Collector (HEC).
// The wire form is documented in docs/outputs/splunk.md.
type SplunkConfig struct {
	Name       string        `yaml:"name"`       // unique output name, default "splunk"
	URL        string        `yaml:"url"`        // HEC's base URL, e.g. https://splunk:8088; required
	Token      secure.Secret `yaml:"token"`      // HEC token from env or file; required
	Index      string        `yaml:"index"`      // empty: the token's default index
	Source     string        `yaml:"source"`     // default "nhisentry"
	SourceType string        `yaml:"sourcetype"` // default "ocsf:detection_finding"
	Host       string        `yaml:"host"`       // empty: HEC's default host
	Gzip       bool          `yaml:"gzip"`
	// Ack waits for indexer acknowledgement: each request goes on a channel
	// (X-Splunk-Request-Channel) and Deliver returns nil only once
	// /services/collector/ack reports every request indexed, or an error
	// after AckTimeout so that the batch is resent.
	Ack        bool          `yaml:"ack"`
	Channel    string        `yaml:"channel"`     // channel GUID; default a random UUID made at start
	AckTimeout time.Duration `yaml:"ack_timeout"` // default 60s
	TLS        secure.TLS    `yaml:"tls"`
	Timeout    time.Duration `yaml:"timeout"` // per request, default 10s

	// ackPoll is how often acknowledgements are asked for (default 1s);
	// tests shorten it.
	ackPoll time.Duration
}

const (
	hecEventPath     = "services/collector/event"
	hecAckPath       = "services/collector/ack"
	hecChannelHeader = "X-Splunk-Request-Channel"
	// hecMaxRequest bounds the uncompressed body of one request. HEC refuses
	// a body over max_content_length ([http_input] in limits.conf) with 413:
	// 1,000,000 bytes by default in older releases, 838,860,800 in current
	// ones. Cutting at the smaller also fits a proxy with a 1 MB limit.
	hecMaxRequest     = 1_000_000
	defaultAckTimeout = time.Minute
	defaultAckPoll    = time.Second
)

var guidForm = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Validate lists every problem, each prefixed with field (a YAML path).
func (c SplunkConfig) Validate(field string) []error {
	u, errs := parseBaseURL(field+".url", c.URL, c.TLS)
	if u != nil {
		if strings.Contains(u.Path, "/services/collector") {
			errs = append(errs, fmt.Errorf("%s.url: give HEC's base URL (like https://splunk:8088); nhisentry adds /%s", field, hecEventPath))
		}
		if u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("%s.url: no query or fragment, please", field))
		}
	}
	errs = append(errs, c.Token.Validate(field+".token", true)...)
	if c.Channel != "" && !guidForm.MatchString(c.Channel) {
		errs = append(errs, fmt.Errorf("%s.channel: %q is not a GUID (like 0f3c9a4e-8d52-4b7a-9e61-2c5d7f1a8b90)", field, c.Channel))
	}
	errs = append(errs, validateTimeout(field+".ack_timeout", c.AckTimeout)...)
	errs = append(errs, validateTimeout(field+".timeout", c.Timeout)...)
	return append(errs, c.TLS.Validate(field+".tls")...)
}

// splunk delivers findings to HEC.
type splunk struct {
	cfg        SplunkConfig
	http       *httpOut
	event, ack endpoint
	header     http.Header // of event requests
	ackHeader  http.Header
}

var _ Output = (*splunk)(nil)

// NewSplunk checks c and returns the output.
func NewSplunk(c SplunkConfig) (Output, error) {
	c.Name = cmp.Or(c.Name, "splunk")
	c.Source = cmp.Or(c.Source, "nhisentry")
	c.SourceType = cmp.Or(c.SourceType, "ocsf:detection_finding")
	c.AckTimeout = cmp.Or(c.AckTimeout, defaultAckTimeout)
	c.ackPoll = cmp.Or(c.ackPoll, defaultAckPoll)
	if errs := c.Validate(c.Name); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	prefix := fmt.Sprintf("splunk output %q", c.Name)
	if c.Ack && c.Channel == "" {
		c.Channel = newUUID()
	}
	token, err := c.Token.Value()
	if err != nil {
		return nil, fmt.Errorf("%s: token: %w", prefix, err)
	}
	h, err := newHTTPOut(prefix, c.TLS, c.Timeout)
	if err != nil {
		return nil, err
	}
	base, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("%s: url: %w", prefix, err)
	}
	s := &splunk{
		cfg: c, http: h,
		event:     newEndpoint(base.JoinPath(hecEventPath), false),
		ack:       newEndpoint(base.JoinPath(hecAckPath), false),
		ackHeader: http.Header{"Authorization": {"Splunk " + token}, "Content-Type": {"application/json"}},
	}
	if c.Channel != "" {
		s.ackHeader.Set(hecChannelHeader, c.Channel)
	}
	s.header = s.ackHeader.Clone()
	if c.Gzip {
		s.header.Set("Content-Encoding", "gzip")
	}
	return s, nil
}

func (s *splunk) Name() string { return s.cfg.Name }

func (s *splunk) Close() error {
	s.http.client.CloseIdleConnections()
	return nil
}

// Deliver posts the findings as HEC events, in order, in as few requests
// as fit hecMaxRequest. A retry resends every request, also those accepted
// before the failure: searches drop the repeats by fields.finding_id.
func (s *splunk) Deliver(ctx context.Context, findings []schemas.Finding) error {
	bodies, err := s.requests(findings)
	if err != nil {
		return err
	}
	var acks []int64
	for _, body := range bodies {
		if s.cfg.Gzip {
			body = gzipped(body)
		}
		reply, err := s.http.post(ctx, s.event, s.header, body, hecDetail)
		if err != nil {
			return err
		}
		if s.cfg.Ack {
			var r hecReply
			if err := json.Unmarshal(reply, &r); err != nil || r.AckID == nil {
				return Permanent{Err: fmt.Errorf("%s: ack is on but HEC's reply %s has no ackId: enable indexer acknowledgement on the token, or set ack: false", s.http.prefix, excerpt(reply))}
			}
			acks = append(acks, *r.AckID)
		}
	}
	if len(acks) == 0 {
		return nil
	}
	return s.awaitAcks(ctx, acks)
}

// hecEvent is HEC's event envelope: metadata, the event, indexed fields.
type hecEvent struct {
	Time       json.Number              `json:"time,omitempty"`
	Host       string                   `json:"host,omitempty"`
	Source     string                   `json:"source"`
	SourceType string                   `json:"sourcetype"`
	Index      string                   `json:"index,omitempty"`
	Event      schemas.DetectionFinding `json:"event"`
	Fields     hecFields                `json:"fields"`
}

// hecFields are indexed at ingest, so a search can dedupe and keep the
// latest revision without parsing events. HEC takes strings here.
type hecFields struct {
	FindingID string `json:"finding_id"`
	Revision  string `json:"revision"`
}

// requests encodes the findings as events, one JSON object each, separated
// by newlines, cut in order into bodies of at most hecMaxRequest bytes (an
// event larger than that goes alone).
func (s *splunk) requests(findings []schemas.Finding) ([][]byte, error) {
	var bodies [][]byte
	var cur []byte
	for i := range findings {
		f := &findings[i]
		ev, err := marshalJSON(hecEvent{
			Time: hecTime(f.LastSeen), Host: s.cfg.Host, Source: s.cfg.Source, SourceType: s.cfg.SourceType, Index: s.cfg.Index,
			Event: f.OCSF(), Fields: hecFields{FindingID: f.ID, Revision: strconv.Itoa(f.Revision)},
		})
		if err != nil {
			return nil, fmt.Errorf("%s: finding %s: %w", s.http.prefix, f.ID, err)
		}
		if len(cur) > 0 && len(cur)+1+len(ev) > hecMaxRequest {
			bodies, cur = append(bodies, cur), nil
		}
		if len(cur) > 0 {
			cur = append(cur, '\n')
		}
		cur = append(cur, ev...)
	}
	if len(cur) > 0 {
		bodies = append(bodies, cur)
	}
	return bodies, nil
}

// hecTime is t in epoch seconds with milliseconds, HEC's time form; empty
// (HEC stamps the arrival) when t is unset.
func hecTime(t schemas.Time) json.Number {
	ms := t.UnixMilli()
	if t.IsZero() || ms < 0 {
		return ""
	}
	return json.Number(fmt.Sprintf("%d.%03d", ms/1000, ms%1000))
}

// hecReply is HEC's answer to every request.
type hecReply struct {
	Text  string `json:"text"`
	Code  int    `json:"code"`
	AckID *int64 `json:"ackId"`
}

// hecDetail names HEC's status code and text in an error.
func hecDetail(body []byte) string {
	var r hecReply
	if json.Unmarshal(body, &r) != nil || r.Text == "" {
		return excerpt(body)
	}
	return fmt.Sprintf("HEC code %d: %s", r.Code, r.Text)
}

// awaitAcks polls /services/collector/ack until HEC reports every ackId
// indexed. HEC forgets an ackId once it has answered true, so only the
// pending ones are asked for again.
func (s *splunk) awaitAcks(ctx context.Context, pending []int64) error {
	n := len(pending)
	deadline := time.Now().Add(s.cfg.AckTimeout)
	t := time.NewTimer(s.cfg.ackPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for indexer acknowledgement: %w", s.http.prefix, ctx.Err())
		case <-t.C:
		}
		acked, err := s.queryAcks(ctx, pending)
		if err != nil {
			return err
		}
		pending = slices.DeleteFunc(pending, func(id int64) bool { return acked[strconv.FormatInt(id, 10)] })
		if len(pending) == 0 {
			return nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return fmt.Errorf("%s: %d of %d requests not acknowledged by the indexers within %s (channel %s, ackIds %v); the batch will be resent: %w",
				s.http.prefix, len(pending), n, s.cfg.AckTimeout, s.cfg.Channel, pending, context.DeadlineExceeded)
		}
		t.Reset(min(s.cfg.ackPoll, left))
	}
}

func (s *splunk) queryAcks(ctx context.Context, ids []int64) (map[string]bool, error) {
	body, err := marshalJSON(struct {
		Acks []int64 `json:"acks"`
	}{ids})
	if err != nil {
		return nil, err
	}
	reply, err := s.http.post(ctx, s.ack, s.ackHeader, body, hecDetail)
	if err != nil {
		return nil, err
	}
	var r struct {
		Acks map[string]bool `json:"acks"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return nil, fmt.Errorf("%s: POST %s: reply %s: %w", s.http.prefix, s.ack.shown, excerpt(reply), err)
	}
	return r.Acks, nil
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	// Writes to a bytes.Buffer do not fail.
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

// newUUID returns a random (version 4) UUID, HEC's form of a channel.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
