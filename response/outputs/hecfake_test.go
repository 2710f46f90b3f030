package outputs

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// hecFake is a Splunk HTTP Event Collector built from Splunk's
// documentation ("Format events for HTTP Event Collector", "About HTTP
// Event Collector Indexer Acknowledgment", the HEC status codes in
// "Troubleshoot HTTP Event Collector"), since no HEC receiver can be run
// here. It serves
//
//	POST /services/collector/event  token check, gzip, strict parsing of
//	                                concatenated JSON events, ackIds per channel
//	GET  /services/collector/health
//	POST /services/collector/ack    {"acks":[…]} → {"acks":{"N":bool}}
//
// and records every request. Faults: failNext (the next requests get a
// given reply), delay (replies wait), neverAck (acks stay false).
type hecFake struct {
	srv      *httptest.Server
	token    string
	useACK   bool // the token's useACK setting
	maxBytes int  // [http_input] max_content_length

	mu       sync.Mutex
	requests []hecRequest
	events   []hecFakeEvent // accepted, in order
	faults   []hecStatus
	delay    time.Duration
	neverAck bool
	channels map[string]*hecChannel
	ackPolls int
}

// hecRequest is one request to /services/collector/event as received.
type hecRequest struct {
	Header http.Header
	Wire   []byte // the body as sent (gzip compressed or not)
	Body   []byte // decompressed
}

// hecFakeEvent is one accepted event.
type hecFakeEvent struct {
	Time       json.Number       `json:"time"`
	Host       string            `json:"host"`
	Source     string            `json:"source"`
	SourceType string            `json:"sourcetype"`
	Index      string            `json:"index"`
	Event      json.RawMessage   `json:"event"`
	Fields     map[string]string `json:"fields"`
	Channel    string            `json:"-"`
}

type hecChannel struct {
	next    int64
	pending map[int64]bool // ackId → indexed
}

// hecStatus is an HTTP status with HEC's JSON reply, or with text alone
// when code is -1 (what Splunk's HTTP server, not HEC, answers).
type hecStatus struct {
	status int
	text   string
	code   int
}

// The replies HEC documents, by HEC status code.
var (
	hecSuccess         = hecStatus{200, "Success", 0}
	hecTokenRequired   = hecStatus{401, "Token is required", 2}
	hecInvalidAuth     = hecStatus{401, "Invalid authorization", 3}
	hecInvalidToken    = hecStatus{403, "Invalid token", 4}
	hecNoData          = hecStatus{400, "No data", 5}
	hecInvalidFormat   = hecStatus{400, "Invalid data format", 6}
	hecIncorrectIndex  = hecStatus{400, "Incorrect index", 7}
	hecInternalError   = hecStatus{500, "Internal server error", 8}
	hecBusy            = hecStatus{503, "Server is busy", 9}
	hecChannelMissing  = hecStatus{400, "Data channel is missing", 10}
	hecInvalidChannel  = hecStatus{400, "Invalid data channel", 11}
	hecEventRequired   = hecStatus{400, "Event field is required", 12}
	hecEventBlank      = hecStatus{400, "Event field cannot be blank", 13}
	hecAckDisabled     = hecStatus{400, "ACK is disabled", 14}
	hecBadFields       = hecStatus{400, "Error in handling indexed fields", 15}
	hecHealthy         = hecStatus{200, "HEC is healthy", 17}
	hecThrottled       = hecStatus{429, "Server is busy", 9}
	hecContentTooLarge = hecStatus{413, "Request entity too large", -1}
)

const hecFakeToken = "5a1c2f0e-3b7d-4e8a-9c61-0d2e4f6a8b1c"

func newHECFake(t *testing.T, useACK bool) *hecFake {
	h := &hecFake{token: hecFakeToken, useACK: useACK, maxBytes: hecMaxRequest, channels: map[string]*hecChannel{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /services/collector/event", h.serveEvent)
	mux.HandleFunc("POST /services/collector", h.serveEvent) // HEC's alias
	mux.HandleFunc("GET /services/collector/health", func(w http.ResponseWriter, _ *http.Request) { hecWrite(w, hecHealthy, nil) })
	mux.HandleFunc("POST /services/collector/ack", h.serveAck)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hecFake) url() string { return h.srv.URL }

// failNext makes the next n event requests get r.
func (h *hecFake) failNext(n int, r hecStatus) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for range n {
		h.faults = append(h.faults, r)
	}
}

func (h *hecFake) setDelay(d time.Duration) { h.mu.Lock(); h.delay = d; h.mu.Unlock() }
func (h *hecFake) setNeverAck()             { h.mu.Lock(); h.neverAck = true; h.mu.Unlock() }

func (h *hecFake) received() ([]hecRequest, []hecFakeEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hecRequest(nil), h.requests...), append([]hecFakeEvent(nil), h.events...)
}

func (h *hecFake) polls() int { h.mu.Lock(); defer h.mu.Unlock(); return h.ackPolls }

func hecWrite(w http.ResponseWriter, s hecStatus, ackID *int64) {
	if s.code < 0 {
		http.Error(w, s.text, s.status)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(s.status)
	r := map[string]any{"text": s.text, "code": s.code}
	if ackID != nil {
		r["ackId"] = *ackID
	}
	_ = json.NewEncoder(w).Encode(r)
}

// authorize checks "Authorization: Splunk <token>" as HEC does.
func (h *hecFake) authorize(r *http.Request) (hecStatus, bool) {
	a := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(a, "Splunk ")
	switch {
	case a == "":
		return hecTokenRequired, false
	case !ok:
		return hecInvalidAuth, false
	case tok != h.token:
		return hecInvalidToken, false
	}
	return hecStatus{}, true
}

// channel reads the request's channel (header or query); with useACK one
// is required and must be a GUID.
func (h *hecFake) channel(r *http.Request) (string, hecStatus, bool) {
	c := cmp.Or(r.Header.Get(hecChannelHeader), r.URL.Query().Get("channel"))
	switch {
	case c == "" && h.useACK:
		return "", hecChannelMissing, false
	case c != "" && !guidForm.MatchString(c):
		return "", hecInvalidChannel, false
	}
	return c, hecStatus{}, true
}

func (h *hecFake) serveEvent(w http.ResponseWriter, r *http.Request) {
	wire, _ := io.ReadAll(r.Body)
	h.mu.Lock()
	delay := h.delay
	h.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	req := hecRequest{Header: r.Header.Clone(), Wire: wire, Body: wire}
	h.requests = append(h.requests, req)
	if len(h.faults) > 0 {
		f := h.faults[0]
		h.faults = h.faults[1:]
		hecWrite(w, f, nil)
		return
	}
	if s, ok := h.authorize(r); !ok {
		hecWrite(w, s, nil)
		return
	}
	ch, s, ok := h.channel(r)
	if !ok {
		hecWrite(w, s, nil)
		return
	}
	body := wire
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			hecWrite(w, hecInvalidFormat, nil)
			return
		}
		h.requests[len(h.requests)-1].Body = body
	}
	if len(body) > h.maxBytes {
		hecWrite(w, hecContentTooLarge, nil)
		return
	}
	events, s, ok := parseHECEvents(body)
	if !ok {
		hecWrite(w, s, nil)
		return
	}
	for i := range events {
		events[i].Channel = ch
	}
	h.events = append(h.events, events...)
	if !h.useACK {
		hecWrite(w, hecSuccess, nil)
		return
	}
	c := h.channels[ch]
	if c == nil {
		c = &hecChannel{pending: map[int64]bool{}}
		h.channels[ch] = c
	}
	id := c.next
	c.next++
	c.pending[id] = !h.neverAck
	hecWrite(w, hecSuccess, &id)
}

// parseHECEvents reads concatenated JSON event objects strictly: only the
// envelope's keys, a non-blank event, a numeric time, flat string fields
// (HEC also takes arrays of strings there, which nhisentry does not send).
func parseHECEvents(body []byte) ([]hecFakeEvent, hecStatus, bool) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, hecNoData, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var events []hecFakeEvent
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return events, hecStatus{}, true
		}
		if err != nil {
			return nil, hecInvalidFormat, false
		}
		var e struct {
			hecFakeEvent
			Fields json.RawMessage `json:"fields"`
		}
		one := json.NewDecoder(bytes.NewReader(raw))
		one.DisallowUnknownFields()
		if err := one.Decode(&e); err != nil {
			return nil, hecInvalidFormat, false
		}
		switch string(e.Event) {
		case "", "null":
			return nil, hecEventRequired, false
		case `""`:
			return nil, hecEventBlank, false
		}
		if e.Fields != nil {
			if err := json.Unmarshal(e.Fields, &e.hecFakeEvent.Fields); err != nil {
				return nil, hecBadFields, false
			}
		}
		events = append(events, e.hecFakeEvent)
	}
}

func (h *hecFake) serveAck(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ackPolls++
	if s, ok := h.authorize(r); !ok {
		hecWrite(w, s, nil)
		return
	}
	if !h.useACK {
		hecWrite(w, hecAckDisabled, nil)
		return
	}
	ch, s, ok := h.channel(r)
	if !ok {
		hecWrite(w, s, nil)
		return
	}
	var q struct {
		Acks []int64 `json:"acks"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil || q.Acks == nil {
		hecWrite(w, hecInvalidFormat, nil)
		return
	}
	out := map[string]bool{}
	c := h.channels[ch]
	for _, id := range q.Acks {
		done := c != nil && c.pending[id]
		out[strconv.FormatInt(id, 10)] = done
		if done {
			delete(c.pending, id) // HEC forgets an ackId once it reported it
		}
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"acks": out})
}

// TestHECFake checks the fake answers as HEC documents, so the Splunk tests
// exercise the output against HEC's behaviour rather than the fake's.
func TestHECFake(t *testing.T) {
	h := newHECFake(t, true)
	const ch = "0f3c9a4e-8d52-4b7a-9e61-2c5d7f1a8b90"
	auth := "Splunk " + hecFakeToken
	for _, tc := range []struct {
		name, path, auth, channel, body string
		want                            string
	}{
		{"no token", "/services/collector/event", "", ch, `{"event":"x"}`, `{"code":2,"text":"Token is required"}`},
		{"no Splunk scheme", "/services/collector/event", "Bearer " + hecFakeToken, ch, `{"event":"x"}`, `{"code":3,"text":"Invalid authorization"}`},
		{"wrong token", "/services/collector/event", "Splunk nope", ch, `{"event":"x"}`, `{"code":4,"text":"Invalid token"}`},
		{"no channel", "/services/collector/event", auth, "", `{"event":"x"}`, `{"code":10,"text":"Data channel is missing"}`},
		{"channel not a GUID", "/services/collector/event", auth, "abc", `{"event":"x"}`, `{"code":11,"text":"Invalid data channel"}`},
		{"no data", "/services/collector/event", auth, ch, ` `, `{"code":5,"text":"No data"}`},
		{"broken JSON", "/services/collector/event", auth, ch, `{"event":"x"`, `{"code":6,"text":"Invalid data format"}`},
		{"unknown key", "/services/collector/event", auth, ch, `{"event":"x","level":1}`, `{"code":6,"text":"Invalid data format"}`},
		{"no event", "/services/collector/event", auth, ch, `{"time":1}`, `{"code":12,"text":"Event field is required"}`},
		{"blank event", "/services/collector/event", auth, ch, `{"event":""}`, `{"code":13,"text":"Event field cannot be blank"}`},
		{"nested fields", "/services/collector/event", auth, ch, `{"event":"x","fields":{"a":{"b":1}}}`, `{"code":15,"text":"Error in handling indexed fields"}`},
		{"two events", "/services/collector/event", auth, ch, `{"event":"x"}{"event":{"y":1}}`, `{"ackId":0,"code":0,"text":"Success"}`},
		{"ack pending then forgotten", "/services/collector/ack", auth, ch, `{"acks":[0,7]}`, `{"acks":{"0":true,"7":false}}`},
		{"ack asked again", "/services/collector/ack", auth, ch, `{"acks":[0]}`, `{"acks":{"0":false}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, h.url()+tc.path, strings.NewReader(tc.body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.channel != "" {
				req.Header.Set(hecChannelHeader, tc.channel)
			}
			if got := hecFakeDo(t, req); got != tc.want {
				t.Errorf("reply %s, want %s", got, tc.want)
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, h.url()+"/services/collector/health", nil)
	if got := hecFakeDo(t, req); got != `{"code":17,"text":"HEC is healthy"}` {
		t.Errorf("health: %s", got)
	}
	if _, events := h.received(); len(events) != 2 || string(events[1].Event) != `{"y":1}` {
		t.Errorf("accepted events %+v, want the two of the valid request", events)
	}
}

func hecFakeDo(t *testing.T, req *http.Request) string {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}
