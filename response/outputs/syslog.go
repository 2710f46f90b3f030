package outputs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/schemas"
)

// Syslog message constants (RFC 5424). nhisentry has no IANA private
// enterprise number, so the SD-ID uses 32473, the number RFC 5612 reserves
// for documentation and examples.
const (
	syslogMsgID          = "nhi-finding"
	syslogSDID           = "nhi@32473"
	syslogMaxHostname    = 255
	syslogMaxAppName     = 48
	syslogNil            = "-"
	defaultSyslogName    = "syslog"
	defaultFacility      = 10 // authpriv: security and authorization messages
	defaultAppName       = "nhisentry"
	defaultSyslogTimeout = 10 * time.Second
	defaultVersion       = "dev"
	syslogFormatCEF      = "cef"
	syslogFormatLEEF     = "leef"
	syslogFramingOctet   = "octet"
	syslogFramingLF      = "lf"
	// peerCheckWait bounds the read that tells whether the receiver closed a
	// kept connection before a batch is written to it.
	peerCheckWait = time.Millisecond
)

// SyslogConfig configures one syslog output.
type SyslogConfig struct {
	Name    string     `yaml:"name"`    // unique output name, default "syslog"
	Address string     `yaml:"address"` // host:port, required
	TLS     secure.TLS `yaml:"tls"`     // TLS when tls.enabled
	Format  string     `yaml:"format"`  // cef (default) or leef
	// Framing is octet (default: octet counting, RFC 6587 §3.4.1 and RFC
	// 5425) or lf (each message ends with a line feed).
	Framing string `yaml:"framing"`
	// Facility is 1–23; 0 means the default, 10 (authpriv), because facility
	// 0 (kern) belongs to the kernel.
	Facility int           `yaml:"facility"`
	AppName  string        `yaml:"app_name"` // default "nhisentry"
	Hostname string        `yaml:"hostname"` // default os.Hostname()
	Timeout  time.Duration `yaml:"timeout"`  // dial and write timeout, default 10s
	// ProductVersion is the CEF/LEEF product version: the binary's version,
	// set by the caller, not the configuration file; default "dev".
	ProductVersion string `yaml:"-"`
}

// Validate lists every problem, each prefixed with field (a YAML path like
// "outputs.syslog[0]").
func (c SyslogConfig) Validate(field string) []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", field, name, fmt.Sprintf(format, args...)))
	}
	if c.Address == "" {
		bad("address", "required (host:port)")
	} else if host, port, err := net.SplitHostPort(c.Address); err != nil {
		bad("address", "%v", err)
	} else if n, err := strconv.Atoi(port); host == "" || err != nil || n < 1 || n > 65535 {
		bad("address", "%q: want host:port with a port from 1 to 65535", c.Address)
	}
	switch c.Format {
	case "", syslogFormatCEF, syslogFormatLEEF:
	default:
		bad("format", "%q: want cef or leef", c.Format)
	}
	switch c.Framing {
	case "", syslogFramingOctet, syslogFramingLF:
	default:
		bad("framing", "%q: want octet or lf", c.Framing)
	}
	if c.Facility < 0 || c.Facility > 23 {
		bad("facility", "%d: want 0 (default) to 23", c.Facility)
	}
	if c.Timeout < 0 {
		bad("timeout", "%s: want a positive duration", c.Timeout)
	}
	if c.Hostname != "" && syslogHeaderField(c.Hostname, syslogMaxHostname) != c.Hostname {
		bad("hostname", "%q: want at most %d printable US-ASCII characters without spaces", c.Hostname, syslogMaxHostname)
	}
	if c.AppName != "" && syslogHeaderField(c.AppName, syslogMaxAppName) != c.AppName {
		bad("app_name", "%q: want at most %d printable US-ASCII characters without spaces", c.AppName, syslogMaxAppName)
	}
	return append(errs, c.TLS.Validate(field+".tls")...)
}

// withDefaults fills every unset field.
func (c SyslogConfig) withDefaults() SyslogConfig {
	set := func(v *string, def string) {
		if *v == "" {
			*v = def
		}
	}
	set(&c.Name, defaultSyslogName)
	set(&c.Format, syslogFormatCEF)
	set(&c.Framing, syslogFramingOctet)
	set(&c.AppName, defaultAppName)
	set(&c.ProductVersion, defaultVersion)
	if c.Hostname == "" {
		h, _ := os.Hostname() // on error "" becomes the NILVALUE
		c.Hostname = syslogHeaderField(h, syslogMaxHostname)
	}
	if c.Facility == 0 {
		c.Facility = defaultFacility
	}
	if c.Timeout == 0 {
		c.Timeout = defaultSyslogTimeout
	}
	return c
}

// syslog is an Output writing RFC 5424 messages over one kept TCP or TLS
// connection.
type syslog struct {
	cfg     SyslogConfig
	tls     *tls.Config // nil for plain TCP
	payload func(b []byte, f *schemas.Finding, version string) []byte

	mu     sync.Mutex
	conn   net.Conn // nil until the first Deliver and after an error
	closed bool
}

// NewSyslog returns a syslog output. It connects lazily on the first
// Deliver and again after an error.
func NewSyslog(c SyslogConfig) (Output, error) {
	c = c.withDefaults()
	if errs := c.Validate(c.Name); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	tc, err := c.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.Name, err)
	}
	s := &syslog{cfg: c, tls: tc, payload: appendCEF}
	if c.Format == syslogFormatLEEF {
		s.payload = appendLEEF
	}
	return s, nil
}

func (s *syslog) Name() string { return s.cfg.Name }

// Deliver writes the batch in one write. TCP syslog has no acknowledgement:
// nil means the bytes reached the kernel's send buffer on a connection the
// receiver had not closed, which is as far as the protocol can tell.
func (s *syslog) Deliver(ctx context.Context, findings []schemas.Finding) error {
	if len(findings) == 0 {
		return nil
	}
	batch := s.encode(findings)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("syslog %s: output closed", s.cfg.Address)
	}
	if err := s.connect(ctx); err != nil {
		return err
	}
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn := s.conn
	if err := conn.SetWriteDeadline(deadline); err != nil {
		s.drop()
		return fmt.Errorf("syslog %s: set deadline: %w", s.cfg.Address, err)
	}
	// A cancelled context interrupts a write blocked on a full window.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := conn.Write(batch)
	stop()
	if err != nil {
		s.drop()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return fmt.Errorf("syslog %s: write %d findings: %w", s.cfg.Address, len(findings), err)
	}
	return nil
}

// connect keeps a live connection in s.conn, dialling a new one when there is
// none or when the receiver closed the kept one (a write to a closed TCP
// connection often succeeds locally and loses the data).
func (s *syslog) connect(ctx context.Context) error {
	if s.conn != nil && !peerClosed(s.conn) {
		return nil
	}
	s.drop()
	d := &net.Dialer{Timeout: s.cfg.Timeout}
	var conn net.Conn
	var err error
	if s.tls != nil {
		conn, err = (&tls.Dialer{NetDialer: d, Config: s.tls}).DialContext(ctx, "tcp", s.cfg.Address)
	} else {
		conn, err = d.DialContext(ctx, "tcp", s.cfg.Address)
	}
	if err != nil {
		return fmt.Errorf("syslog %s: dial: %w", s.cfg.Address, err)
	}
	s.conn = conn
	return nil
}

// peerClosed reports whether the receiver closed or reset c. Receivers never
// send, so a short read either times out (open) or fails (closed); stray
// bytes are discarded.
func peerClosed(c net.Conn) bool {
	if err := c.SetReadDeadline(time.Now().Add(peerCheckWait)); err != nil {
		return true
	}
	var b [64]byte
	_, err := c.Read(b[:])
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return c.SetReadDeadline(time.Time{}) != nil
	}
	return err != nil
}

// drop closes the connection, if any.
func (s *syslog) drop() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// Close closes the connection; Deliver fails afterwards.
func (s *syslog) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	if err != nil {
		return fmt.Errorf("syslog %s: close: %w", s.cfg.Address, err)
	}
	return nil
}

// encode frames every finding's message, in order.
func (s *syslog) encode(findings []schemas.Finding) []byte {
	var out, msg []byte
	for i := range findings {
		msg = s.appendMessage(msg[:0], &findings[i])
		if s.cfg.Framing == syslogFramingLF {
			out = append(append(out, msg...), '\n')
			continue
		}
		out = strconv.AppendInt(out, int64(len(msg)), 10)
		out = append(append(out, ' '), msg...)
	}
	return out
}

// appendMessage appends the RFC 5424 message of f:
// <PRI>1 TIMESTAMP HOSTNAME APP-NAME - nhi-finding [nhi@32473 …] PAYLOAD
func (s *syslog) appendMessage(b []byte, f *schemas.Finding) []byte {
	sev, _ := severityLevels(f.Severity)
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(s.cfg.Facility*8+sev), 10)
	b = append(b, ">1 "...)
	ts := rfc3339Millis(f.LastSeen)
	if ts == "" {
		ts = syslogNil
	}
	for _, field := range []string{ts, s.cfg.Hostname, s.cfg.AppName, syslogNil, syslogMsgID} {
		b = append(append(b, field...), ' ')
	}
	b = append(b, "["+syslogSDID...)
	params := []struct{ name, value string }{
		{"id", f.ID}, {"rev", strconv.Itoa(f.Revision)}, {"count", strconv.Itoa(max(f.Count, 1))},
		{"detector", f.Detector}, {"rule", f.RuleID}, {"identity", f.Identity.ID},
		{"severity", string(f.Severity)}, {"score", strconv.Itoa(f.Score)},
	}
	for _, p := range params {
		if p.value == "" {
			continue
		}
		b = append(append(append(b, ' '), p.name...), `="`...)
		b = append(appendEscaped(b, p.value, sdValueSpecials, false), '"')
	}
	b = append(b, "] "...)
	return s.payload(b, f, s.cfg.ProductVersion)
}

// syslogHeaderField makes s a valid HOSTNAME or APP-NAME: printable US-ASCII
// without spaces (anything else becomes '_'), at most limit bytes, and the
// NILVALUE when empty.
func syslogHeaderField(s string, limit int) string {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r < '!' || r > '~' {
			r = '_'
		}
		b = append(b, byte(r))
	}
	if len(b) > limit {
		b = b[:limit]
	}
	if len(b) == 0 {
		return syslogNil
	}
	return string(b)
}
