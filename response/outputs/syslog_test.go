package outputs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/internal/secure/securetest"
	"github.com/nhisentry/nhisentry/schemas"
)

// The flag has its own name because other outputs' tests share the package.
var updateSyslog = flag.Bool("update-syslog", false, "rewrite testdata/syslog/*.golden")

func syslogTime(s string) schemas.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return schemas.At(t)
}

// syslogTestFindings has one finding per severity, with every character that
// needs escaping somewhere: | \ = ] " newline, CR, tab, non-ASCII.
func syslogTestFindings() []schemas.Finding {
	return []schemas.Finding{{
		ID: "5f0c1d2e3a4b5c6d7e8f901a2b3c4d5e", Detector: "rule", RuleID: `root|key\use`,
		Identity: schemas.Identity{ID: `aws:user/111122223333/ci]"bot"`, Kind: schemas.KindUser},
		Severity: schemas.SeverityCritical, Score: 97,
		Title:       `Root key used | outside \ CI`,
		Explanation: "rule root|key matched: user=ci-bot\nsource ip=203.0.113.9",
		Technique:   "T1078.004", EventIDs: []string{"ev-1", "ev-2"},
		FirstSeen: syslogTime("2024-03-05T07:00:00.5Z"), LastSeen: syslogTime("2024-03-05T07:08:09.123456Z"),
		Analysis: schemas.Analysis{Pattern: schemas.PatternMatch, Observed: "ListBuckets", Baseline: "rule"},
		Count:    1,
	}, {
		ID: "00112233445566778899aabbccddeeff", Detector: "new_value",
		Identity: schemas.Identity{ID: "aws:role/111122223333/etl", Kind: schemas.KindRole, Name: "ETL Rolle ü"},
		Severity: schemas.SeverityHigh, Score: 81,
		Title:       "Neuer Wert für Rolle → prod ✓",
		Explanation: "first \"DeleteBucket\"\tin 30 days",
		Technique:   "T1485", EventIDs: []string{"ev-3"},
		FirstSeen: syslogTime("2024-03-05T08:00:00Z"), LastSeen: syslogTime("2024-03-05T08:00:00Z"),
		Analysis: schemas.Analysis{Pattern: schemas.PatternUnseen, Observed: "s3:DeleteBucket", Baseline: "s3:GetObject, s3:PutObject"},
		Count:    3, Revision: 1,
	}, {
		ID: "ffeeddccbbaa99887766554433221100", Detector: "burst",
		Identity: schemas.Identity{ID: "spiffe://prod.example/ns/pay/sa/api", Kind: schemas.KindWorkload},
		Severity: schemas.SeverityMedium, Score: 55,
		Title:       "Call rate 12x baseline",
		Explanation: "calls=480/h against p99=40/h",
		EventIDs:    []string{"ev-4", "ev-5", "ev-6"},
		FirstSeen:   syslogTime("2024-03-05T09:00:00Z"), LastSeen: syslogTime("2024-03-05T09:59:59.999Z"),
		Analysis: schemas.Analysis{Pattern: schemas.PatternSurge, Observed: "rate=480/h", Baseline: "p99=40/h"},
		Count:    7, Revision: 2,
	}, {
		ID: "0123456789abcdef0123456789abcdef", Detector: "off_hours",
		Identity: schemas.Identity{ID: "k8s:sa/prod/backup", Kind: schemas.KindServiceAccount, Name: "backup"},
		Severity: schemas.SeverityLow, Score: 30,
		Title:       "Activity at 03:12 UTC",
		Explanation: "line one\r\nline two",
		FirstSeen:   syslogTime("2024-03-06T03:12:00Z"), LastSeen: syslogTime("2024-03-06T03:12:00Z"),
		Analysis: schemas.Analysis{Pattern: schemas.PatternOffHours, Observed: "03:12", Baseline: "08:00-18:00"},
		Count:    1,
	}, {
		ID: "fedcba9876543210fedcba9876543210", Detector: "dormant",
		Identity: schemas.Identity{ID: "apikey:gw:k-42", Kind: schemas.KindAPIKey},
		Severity: schemas.SeverityInfo, Score: 10,
		Title:       "Dormant key active again",
		Explanation: "unused for 120 days",
		FirstSeen:   syslogTime("2024-03-07T00:00:00Z"), LastSeen: syslogTime("2024-03-07T00:00:00Z"),
	}}
}

// syslogTestConfig is the configuration the goldens are made with.
func syslogTestConfig(format, framing string) SyslogConfig {
	return SyslogConfig{
		Address: "127.0.0.1:6514", Format: format, Framing: framing,
		Hostname: "sentry-1.example", ProductVersion: "1.4.0",
	}
}

func newTestSyslog(t *testing.T, c SyslogConfig) *syslog {
	t.Helper()
	o, err := NewSyslog(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o.(*syslog)
}

var syslogGoldens = []struct{ format, framing string }{
	{"cef", "octet"}, {"cef", "lf"}, {"leef", "octet"}, {"leef", "lf"},
}

func syslogGoldenPath(format, framing string) string {
	return filepath.Join("testdata", "syslog", format+"-"+framing+".golden")
}

// readSyslogGolden returns the golden batch of a format and framing.
func readSyslogGolden(t *testing.T, format, framing string) []byte {
	t.Helper()
	b, err := os.ReadFile(syslogGoldenPath(format, framing))
	if err != nil {
		t.Fatalf("%v (run go test -run TestSyslogGolden -update-syslog)", err)
	}
	return b
}

func TestSyslogGolden(t *testing.T) {
	for _, g := range syslogGoldens {
		t.Run(g.format+"-"+g.framing, func(t *testing.T) {
			got := newTestSyslog(t, syslogTestConfig(g.format, g.framing)).encode(syslogTestFindings())
			if *updateSyslog {
				if err := os.WriteFile(syslogGoldenPath(g.format, g.framing), got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := readSyslogGolden(t, g.format, g.framing)
			if !bytes.Equal(got, want) {
				t.Errorf("batch differs from %s\ngot:\n%s\nwant:\n%s", syslogGoldenPath(g.format, g.framing), got, want)
			}
			msgs, err := splitSyslogFrames(got, g.framing)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != len(syslogTestFindings()) {
				t.Fatalf("%d frames, want %d", len(msgs), len(syslogTestFindings()))
			}
		})
	}
}

// TestSyslogMessage parses every golden message back and checks each
// header field and structured-data parameter against the finding.
func TestSyslogMessage(t *testing.T) {
	wantPRI := map[schemas.Severity]int{ // facility 10 (authpriv) × 8 + severity
		schemas.SeverityCritical: 82, schemas.SeverityHigh: 83, schemas.SeverityMedium: 84,
		schemas.SeverityLow: 85, schemas.SeverityInfo: 86,
	}
	findings := syslogTestFindings()
	msgs, err := splitSyslogFrames(readSyslogGolden(t, "cef", "octet"), "octet")
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range findings {
		t.Run(string(f.Severity), func(t *testing.T) {
			m, err := parseSyslog(msgs[i])
			if err != nil {
				t.Fatal(err)
			}
			want := syslogMessage{
				pri: wantPRI[f.Severity], timestamp: f.LastSeen.UTC().Format("2006-01-02T15:04:05.000Z"),
				hostname: "sentry-1.example", appName: "nhisentry", procID: "-", msgID: "nhi-finding",
				sdID: "nhi@32473", params: map[string]string{
					"id": f.ID, "rev": strconv.Itoa(f.Revision), "count": strconv.Itoa(max(f.Count, 1)),
					"detector": f.Detector, "identity": f.Identity.ID, "severity": string(f.Severity),
					"score": strconv.Itoa(f.Score),
				},
			}
			if f.RuleID != "" {
				want.params["rule"] = f.RuleID
			}
			if m.msg, want.msg = m.msg[:6], "CEF:0|"; fmt.Sprint(m) != fmt.Sprint(want) {
				t.Errorf("parsed\n%+v\nwant\n%+v", m, want)
			}
		})
	}
}

func TestSyslogHeaderField(t *testing.T) {
	for _, c := range []struct {
		in    string
		limit int
		want  string
	}{
		{"sentry-1.example", 255, "sentry-1.example"},
		{"", 255, "-"},
		{"my host\tü", 255, "my_host__"},
		{"abcdef", 4, "abcd"},
		{"\x7f!~", 48, "_!~"},
	} {
		if got := syslogHeaderField(c.in, c.limit); got != c.want {
			t.Errorf("syslogHeaderField(%q, %d) = %q, want %q", c.in, c.limit, got, c.want)
		}
	}
}

func TestSyslogDefaults(t *testing.T) {
	s := newTestSyslog(t, SyslogConfig{Address: "127.0.0.1:514"})
	host, _ := os.Hostname()
	want := SyslogConfig{
		Name: "syslog", Address: "127.0.0.1:514", Format: "cef", Framing: "octet", Facility: 10,
		AppName: "nhisentry", Hostname: syslogHeaderField(host, 255), Timeout: 10 * time.Second, ProductVersion: "dev",
	}
	if s.cfg != want {
		t.Errorf("config\n%+v\nwant\n%+v", s.cfg, want)
	}
	if s.Name() != "syslog" {
		t.Errorf("Name() = %q", s.Name())
	}
}

func TestSyslogValidate(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.pem")
	const field = "outputs.syslog[0]"
	for _, c := range []struct {
		name string
		cfg  SyslogConfig
		want []string
	}{
		{"valid", SyslogConfig{Address: "siem.example:6514", Format: "leef", Framing: "lf", Facility: 23}, nil},
		{"no address", SyslogConfig{}, []string{field + ".address: required"}},
		{"every error at once", SyslogConfig{
			Address: "siem.example", Format: "json", Framing: "crlf", Facility: 24, Timeout: -time.Second,
			Hostname: "has space", AppName: strings.Repeat("a", 49),
			TLS: secure.TLS{Enabled: true, CAFile: missing, CertFile: missing},
		}, []string{
			field + ".address: address siem.example: missing port in address",
			field + `.format: "json": want cef or leef`,
			field + `.framing: "crlf": want octet or lf`,
			field + ".facility: 24: want 0 (default) to 23",
			field + ".timeout: -1s: want a positive duration",
			field + `.hostname: "has space": want at most 255`,
			field + `.app_name: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa": want at most 48`,
			field + ".tls: cert_file and key_file go together",
			field + ".tls.ca_file: ",
			field + ".tls.cert_file: ",
		}},
		{"port out of range", SyslogConfig{Address: "siem.example:70000", Facility: -1}, []string{
			field + `.address: "siem.example:70000": want host:port`,
			field + ".facility: -1: want 0 (default) to 23",
		}},
		{"no host", SyslogConfig{Address: ":6514"}, []string{field + `.address: ":6514": want host:port`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			errs := c.cfg.Validate(field)
			if len(errs) != len(c.want) {
				t.Fatalf("%d errors %q, want %d %q", len(errs), errs, len(c.want), c.want)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), c.want[i]) {
					t.Errorf("error %d = %q, want prefix %q", i, err, c.want[i])
				}
			}
		})
	}
	if _, err := NewSyslog(SyslogConfig{Address: "x", Format: "json"}); err == nil ||
		!strings.Contains(err.Error(), "syslog.address") || !strings.Contains(err.Error(), "syslog.format") {
		t.Errorf("NewSyslog of an invalid config: %v, want both errors", err)
	}
}

// TestSyslogDeliver sends the golden batch to a local listener, over TCP and
// TLS, and checks that the bytes received are the golden's.
func TestSyslogDeliver(t *testing.T) {
	cert := securetest.SelfSigned(t)
	certFile := cert.CertFile
	for _, c := range []struct {
		name, format, framing string
		tls                   bool
	}{
		{"tcp cef octet", "cef", "octet", false},
		{"tcp leef lf", "leef", "lf", false},
		{"tls cef lf", "cef", "lf", true},
		{"tls leef octet", "leef", "octet", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := syslogTestConfig(c.format, c.framing)
			var srv *syslogTestServer
			if c.tls {
				srv = startSyslogServer(t, cert.Server)
				cfg.TLS = secure.TLS{Enabled: true, CAFile: certFile}
			} else {
				srv = startSyslogServer(t, nil)
			}
			cfg.Address = srv.addr()
			out := newTestSyslog(t, cfg)
			if err := out.Deliver(context.Background(), syslogTestFindings()); err != nil {
				t.Fatal(err)
			}
			want := readSyslogGolden(t, c.format, c.framing)
			if got := syslogReadFull(t, srv.accept(t), len(want)); !bytes.Equal(got, want) {
				t.Errorf("received\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestSyslogReconnect: the receiver closes (or resets) the kept connection,
// and the next Deliver writes to a new one; when the receiver is down
// Deliver fails naming the address, and succeeds once it is back.
func TestSyslogReconnect(t *testing.T) {
	findings := syslogTestFindings()
	for _, reset := range []bool{false, true} {
		t.Run(fmt.Sprintf("reset=%v", reset), func(t *testing.T) {
			srv := startSyslogServer(t, nil)
			cfg := syslogTestConfig("cef", "octet")
			cfg.Address = srv.addr()
			out := newTestSyslog(t, cfg)
			ctx := context.Background()
			deliver := func(batch []schemas.Finding) {
				t.Helper()
				if err := out.Deliver(ctx, batch); err != nil {
					t.Fatal(err)
				}
				want := out.encode(batch)
				conn := srv.accept(t)
				if got := syslogReadFull(t, conn, len(want)); !bytes.Equal(got, want) {
					t.Fatalf("received\n%s\nwant\n%s", got, want)
				}
				if reset {
					_ = conn.(*net.TCPConn).SetLinger(0)
				}
				_ = conn.Close()
			}
			deliver(findings[:2])
			deliver(findings[2:])

			srv.ln.Close()
			err := out.Deliver(ctx, findings[:1])
			if err == nil || !strings.Contains(err.Error(), "syslog "+cfg.Address+": dial") {
				t.Fatalf("Deliver with the receiver down: %v, want a dial error naming %s", err, cfg.Address)
			}
			srv.relisten(t)
			deliver(findings[:1])
		})
	}
}

func TestSyslogClosedAndCancelled(t *testing.T) {
	srv := startSyslogServer(t, nil)
	cfg := syslogTestConfig("cef", "octet")
	cfg.Address = srv.addr()
	out := newTestSyslog(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := out.Deliver(ctx, syslogTestFindings()); !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver with a cancelled context: %v", err)
	}
	if err := out.Deliver(context.Background(), nil); err != nil {
		t.Errorf("Deliver of nothing: %v", err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Deliver(context.Background(), syslogTestFindings()); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Deliver after Close: %v", err)
	}
}

// syslogTestServer accepts connections on 127.0.0.1 and hands them to the
// test.
type syslogTestServer struct {
	ln    net.Listener
	tls   *tls.Config
	conns chan net.Conn
}

func startSyslogServer(t *testing.T, tc *tls.Config) *syslogTestServer {
	t.Helper()
	s := &syslogTestServer{tls: tc, conns: make(chan net.Conn, 4)}
	s.listen(t, "127.0.0.1:0")
	t.Cleanup(func() {
		s.ln.Close()
		for {
			select {
			case c := <-s.conns:
				c.Close()
			default:
				return
			}
		}
	})
	return s
}

func (s *syslogTestServer) listen(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// The client's dial waits for the handshake, the test's read
			// only follows Deliver.
			if tc, ok := c.(*tls.Conn); ok {
				_ = tc.Handshake()
			}
			s.conns <- c
		}
	}()
}

// relisten listens again on the closed listener's address.
func (s *syslogTestServer) relisten(t *testing.T) { s.listen(t, s.addr()) }

func (s *syslogTestServer) addr() string { return s.ln.Addr().String() }

func (s *syslogTestServer) accept(t *testing.T) net.Conn {
	t.Helper()
	select {
	case c := <-s.conns:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection within 5s")
		return nil
	}
}

// syslogReadFull reads n bytes from c, or fails after 5s.
func syslogReadFull(t *testing.T, c net.Conn, n int) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b := make([]byte, n)
	if got, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d of %d bytes: %v; got %q", got, n, err, b[:got])
	}
	return b
}

// splitSyslogFrames splits a byte stream into its messages.
func splitSyslogFrames(b []byte, framing string) ([]string, error) {
	var msgs []string
	r := bufio.NewReader(bytes.NewReader(b))
	for {
		if framing == "lf" {
			line, err := r.ReadString('\n')
			if err == io.EOF && line == "" {
				return msgs, nil
			}
			if err != nil {
				return nil, fmt.Errorf("frame %d: %q has no line feed", len(msgs), line)
			}
			msgs = append(msgs, strings.TrimSuffix(line, "\n"))
			continue
		}
		length, err := r.ReadString(' ')
		if err == io.EOF && length == "" {
			return msgs, nil
		}
		n, convErr := strconv.Atoi(strings.TrimSuffix(length, " "))
		if err != nil || convErr != nil || n <= 0 {
			return nil, fmt.Errorf("frame %d: bad length %q", len(msgs), length)
		}
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			return nil, fmt.Errorf("frame %d: %w", len(msgs), err)
		}
		msgs = append(msgs, string(msg))
	}
}

// syslogMessage is a parsed RFC 5424 message with one SD element.
type syslogMessage struct {
	pri                                         int
	timestamp, hostname, appName, procID, msgID string
	sdID                                        string
	params                                      map[string]string
	msg                                         string
}

// parseSyslog parses an RFC 5424 message with exactly one SD element.
func parseSyslog(m string) (syslogMessage, error) {
	var s syslogMessage
	pri, rest, ok := strings.Cut(strings.TrimPrefix(m, "<"), ">1 ")
	n, err := strconv.Atoi(pri)
	if !ok || err != nil || !strings.HasPrefix(m, "<") {
		return s, fmt.Errorf("no <PRI>1 in %q", m)
	}
	s.pri = n
	f := strings.SplitN(rest, " ", 6)
	if len(f) != 6 {
		return s, fmt.Errorf("header of %q has %d fields", m, len(f))
	}
	s.timestamp, s.hostname, s.appName, s.procID, s.msgID, rest = f[0], f[1], f[2], f[3], f[4], f[5]
	sd, ok := strings.CutPrefix(rest, "[")
	if !ok {
		return s, fmt.Errorf("no SD element in %q", rest)
	}
	s.sdID, sd, _ = strings.Cut(sd, " ")
	s.params = map[string]string{}
	for {
		if msg, ok := strings.CutPrefix(sd, "] "); ok {
			s.msg = msg
			return s, nil
		}
		name, after, ok := strings.Cut(sd, `="`)
		if !ok {
			return s, fmt.Errorf("bad SD param at %q", sd)
		}
		var v strings.Builder
		i := 0
		for ; i < len(after) && after[i] != '"'; i++ {
			if after[i] == '\\' && i+1 < len(after) && strings.IndexByte(`"\]`, after[i+1]) >= 0 {
				i++
			} else if after[i] == ']' {
				return s, fmt.Errorf("unescaped ] in SD value %q", after)
			}
			v.WriteByte(after[i])
		}
		if i == len(after) {
			return s, fmt.Errorf("unterminated SD value %q", after)
		}
		s.params[strings.TrimPrefix(name, " ")] = v.String()
		sd = after[i+1:]
	}
}
