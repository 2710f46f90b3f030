package gateway

import (
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// NGINXFormat is the configured name of the NGINX text access-log decoder.
const NGINXFormat = "nginx"

// NGINXDecoder decodes NGINX access-log lines in the text formats NGINX and
// ingress-nginx ship by default:
//
//	combined:     $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//	main:         combined + ` "$http_x_forwarded_for"`
//	upstreaminfo: combined + ` $request_length $request_time [$proxy_upstream_name] [$proxy_alternative_upstream_name]
//	              $upstream_addr $upstream_response_length $upstream_response_time $upstream_status $req_id`
//
// (ingress-nginx's log-format-upstream; the alternative-upstream bracket is
// optional, as in releases before 0.21), the Common Log Format (combined
// without referer and user agent) and any of them behind a "$host " prefix
// (vhost_combined). Lines are unwrapped from CRI/Docker/collector wrappers
// first. Error-log lines ("2006/01/02 15:04:05 [error] …") and other lines
// that are not access logs are not_an_event.
//
// The zero value is ready to use.
type NGINXDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewNGINX returns an NGINXDecoder with the default limits.
func NewNGINX() *NGINXDecoder { return &NGINXDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes} }

// Format implements ingest.Decoder.
func (*NGINXDecoder) Format() string { return NGINXFormat }

// accessLog is one NGINX access-log record, text or JSON, as strings still
// to be validated; "" is an empty variable.
type accessLog struct {
	host         string
	remoteAddr   string
	remoteUser   string
	time         time.Time
	request      string // "$request", the request line
	method, uri  string // when logged apart from the request line
	status       string
	bodyBytes    string
	requestLen   string
	requestTime  string
	userAgent    string
	upstreamName string
	upstreamAddr string
	reqID        string
	ingress      bool // the line is ingress-nginx's upstreaminfo
}

// Decode implements ingest.Decoder.
func (d *NGINXDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	line, de := ingest.UnwrapRecord(NGINXFormat, rec.Value, ingest.RecordLimit(d.MaxRecordBytes))
	if de != nil {
		return dst, de
	}
	if !utf8.Valid(line) {
		// NGINX escapes every byte outside printable ASCII as \xHH, so
		// raw invalid UTF-8 is corruption, not a request.
		return dst, ingest.Errorf(NGINXFormat, ingest.ReasonInvalidUTF8, "line is not valid UTF-8")
	}
	a, de := parseAccessLine(strings.TrimRight(string(line), " \t\r\n"))
	if de != nil {
		return dst, de
	}
	ev, de := a.event(NGINXFormat, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

// parseAccessLine splits a text access-log line into its fields.
func parseAccessLine(s string) (*accessLog, *ingest.DecodeError) {
	const f = NGINXFormat
	switch {
	case s == "":
		return nil, ingest.Errorf(f, ingest.ReasonNotAnEvent, "empty line")
	case s[0] == '{':
		return nil, ingest.Errorf(f, ingest.ReasonNotAnEvent, "a JSON line, not a text access log (use format %s for escape=json logs)", NGINXJSONFormat)
	case isErrorLogLine(s):
		return nil, ingest.Errorf(f, ingest.ReasonNotAnEvent, "NGINX error-log line, not an access log: %q", truncate(s))
	}
	notAccess := func(why string) *ingest.DecodeError {
		return ingest.Errorf(f, ingest.ReasonNotAnEvent, "not an NGINX access-log line (%s): %q", why, truncate(s))
	}

	// [$host] $remote_addr - $remote_user [
	open := strings.Index(s, " [")
	if open < 0 {
		return nil, notAccess("no [time]")
	}
	head := s[:open]
	dash := strings.Index(head, " - ")
	if dash < 0 {
		if !strings.HasSuffix(head, " -") {
			return nil, notAccess(`no " - " after the client address`)
		}
		dash = len(head) - 2 // empty $remote_user logged as ""
	}
	a := &accessLog{}
	addr := head[:dash]
	if i := strings.IndexByte(addr, ' '); i >= 0 {
		a.host, addr = addr[:i], addr[i+1:]
		if strings.IndexByte(addr, ' ') >= 0 {
			return nil, notAccess("more than a host before the client address")
		}
	}
	a.remoteAddr = addr
	if dash+3 <= len(head) {
		a.remoteUser = head[dash+3:]
	}
	if a.remoteUser == "-" {
		a.remoteUser = ""
	}

	rest := s[open+2:]
	closeAt := strings.IndexByte(rest, ']')
	if closeAt < 0 {
		return nil, ingest.Errorf(f, ingest.ReasonBadField, "time_local: no closing ']' (truncated line?)")
	}
	t, de := parseCLFTime(f, "time_local", rest[:closeAt])
	if de != nil {
		return nil, de
	}
	a.time = t
	rest = rest[closeAt+1:]

	var ok bool
	if a.request, rest, ok = quoted(rest); !ok {
		return nil, ingest.Errorf(f, ingest.ReasonBadField, "request: want a quoted request line after the time (truncated line?)")
	}
	if a.status, rest, ok = token(rest); !ok {
		return nil, ingest.Errorf(f, ingest.ReasonMissingField, "status is missing (truncated line?)")
	}
	if a.bodyBytes, rest, ok = token(rest); !ok {
		return nil, ingest.Errorf(f, ingest.ReasonMissingField, "body_bytes_sent is missing (truncated line?)")
	}
	if strings.TrimLeft(rest, " ") == "" {
		return a, nil // Common Log Format
	}
	if _, rest, ok = quoted(rest); !ok {
		return nil, ingest.Errorf(f, ingest.ReasonBadField, "http_referer: want a quoted field after body_bytes_sent (truncated line?)")
	}
	if a.userAgent, rest, ok = quoted(rest); !ok {
		return nil, ingest.Errorf(f, ingest.ReasonBadField, "http_user_agent: want a quoted field after the referer (truncated line?)")
	}
	rest = strings.TrimLeft(rest, " ")
	if strings.HasPrefix(rest, `"`) { // "main": $http_x_forwarded_for
		if _, rest, ok = quoted(rest); !ok {
			return nil, ingest.Errorf(f, ingest.ReasonBadField, "http_x_forwarded_for: unterminated quoted field (truncated line?)")
		}
		rest = strings.TrimLeft(rest, " ")
	}
	if rest == "" {
		return a, nil
	}
	if de := a.parseUpstreamInfo(rest); de != nil {
		return nil, de
	}
	return a, nil
}

// parseUpstreamInfo reads the fields ingress-nginx's upstreaminfo format
// adds after the user agent.
func (a *accessLog) parseUpstreamInfo(rest string) *ingest.DecodeError {
	const f = NGINXFormat
	bad := func(field string) *ingest.DecodeError {
		return ingest.Errorf(f, ingest.ReasonBadField, "fields after the user agent are not ingress-nginx upstreaminfo: %s is missing or malformed in %q", field, truncate(rest))
	}
	var ok bool
	if a.requestLen, rest, ok = token(rest); !ok {
		return bad("request_length")
	}
	if a.requestTime, rest, ok = token(rest); !ok {
		return bad("request_time")
	}
	var name string
	if name, rest, ok = token(rest); !ok || len(name) < 2 || name[0] != '[' || name[len(name)-1] != ']' {
		return bad("[proxy_upstream_name]")
	}
	a.upstreamName = name[1 : len(name)-1]
	if r := strings.TrimLeft(rest, " "); strings.HasPrefix(r, "[") {
		if _, rest, ok = token(rest); !ok { // [proxy_alternative_upstream_name]
			return bad("[proxy_alternative_upstream_name]")
		}
	}
	// $upstream_addr, $upstream_response_length, $upstream_response_time and
	// $upstream_status list one value per upstream tried, joined by ", "
	// (and " : " across internal redirects): regroup them.
	var groups []string
	for tok := range strings.FieldsSeq(rest) {
		if n := len(groups); n > 0 && (strings.HasSuffix(groups[n-1], ",") || strings.HasSuffix(groups[n-1], " :") || tok == ":") {
			groups[n-1] += " " + tok
			continue
		}
		groups = append(groups, tok)
	}
	if len(groups) != 5 {
		return bad("upstream_addr, upstream_response_length, upstream_response_time, upstream_status or req_id")
	}
	a.upstreamAddr, a.reqID = groups[0], groups[4]
	if a.reqID == "-" {
		a.reqID = ""
	}
	a.ingress = true
	return nil
}

// isErrorLogLine matches NGINX's error-log prefix "2006/01/02 15:04:05 [".
func isErrorLogLine(s string) bool {
	const layout = "2006/01/02 15:04:05 ["
	if len(s) < len(layout) {
		return false
	}
	for i := 0; i < len(layout); i++ {
		c, l := s[i], layout[i]
		if l >= '0' && l <= '9' {
			if c < '0' || c > '9' {
				return false
			}
		} else if c != l {
			return false
		}
	}
	return true
}

// token returns the next space-separated field of s.
func token(s string) (tok, rest string, ok bool) {
	s = strings.TrimLeft(s, " ")
	if s == "" {
		return "", "", false
	}
	if i := strings.IndexByte(s, ' '); i >= 0 {
		return s[:i], s[i:], true
	}
	return s, "", true
}

// quoted returns the next double-quoted field of s, as logged (NGINX writes
// a quote inside a value as \x22; a backslash escape is skipped for the
// formats that write \" instead).
func quoted(s string) (val, rest string, ok bool) {
	s = strings.TrimLeft(s, " ")
	if s == "" || s[0] != '"' {
		return "", "", false
	}
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			v := s[1:i]
			if v == "-" {
				v = ""
			}
			return v, s[i+1:], true
		}
	}
	return "", "", false
}

// event validates the fields and builds the event.
func (a *accessLog) event(format string, rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	if a.remoteAddr == "" {
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonMissingField, "remote_addr is missing")
	}
	ip, de := parseIP(format, "remote_addr", a.remoteAddr)
	if de != nil {
		return schemas.Event{}, de
	}
	if de := checkYear(format, "time", a.time); de != nil {
		return schemas.Event{}, de
	}
	status, de := parseStatus(format, "status", a.status)
	if de != nil {
		return schemas.Event{}, de
	}
	bytesOut, de := parseBytes(format, "body_bytes_sent", a.bodyBytes)
	if de != nil {
		return schemas.Event{}, de
	}
	bytesIn, de := parseBytes(format, "request_length", a.requestLen)
	if de != nil {
		return schemas.Event{}, de
	}
	duration, de := parseSeconds(format, "request_time", a.requestTime)
	if de != nil {
		return schemas.Event{}, de
	}

	var id schemas.Identity
	var cred schemas.Credential
	if a.remoteUser != "" {
		// $remote_user is the user name of an Authorization: Basic
		// header, whether or not NGINX checked the password: a claim.
		id = schemas.Identity{ID: "nginx:user/" + a.remoteUser, Kind: schemas.KindUnknown, Name: a.remoteUser}
		cred = schemas.Credential{Type: "http_basic"}
	} else {
		id = ingest.IPIdentity(ip)
	}

	action, resource, valid := a.action()
	o := ingest.HTTPOutcome(status)
	if !valid {
		o.ErrorCode = "invalid_request_line"
	}

	eventID := schemas.HashID(format, rec.Value)
	if a.reqID != "" {
		eventID = format + ":" + a.reqID
	}
	provider := "nginx"
	if a.ingress {
		provider = "ingress-nginx"
	}
	return schemas.Event{
		ID:   eventID,
		Time: schemas.At(a.time),
		Source: schemas.Source{
			Family:   schemas.FamilyGateway,
			Format:   format,
			Provider: provider,
		},
		Identity:   id,
		Credential: cred,
		Actor:      schemas.Actor{IP: ip, UserAgent: a.userAgent},
		Action:     action,
		Service:    ingest.FirstOf(a.upstreamName, a.host),
		Target:     schemas.Target{Resource: resource, Peer: upstreamPeer(a.upstreamAddr)},
		Outcome:    o,
		BytesIn:    bytesIn,
		BytesOut:   bytesOut,
		DurationMS: duration,
		Provenance: rec.Provenance(),
	}, nil
}

// action is "METHOD /templated/path" and the resource the concrete path
// without its query. A request line NGINX could not parse (a bad method, a
// TLS handshake sent to a plain-HTTP port, nothing at all) is "INVALID",
// followed by the path when there is one, and valid is false.
func (a *accessLog) action() (action, resource string, valid bool) {
	method, uri := a.method, a.uri
	if method == "" && uri == "" {
		var rest string
		method, rest, _ = strings.Cut(a.request, " ")
		uri, _, _ = strings.Cut(rest, " ")
	}
	// Absolute-form targets (proxy requests): keep the path.
	for _, scheme := range [...]string{"http://", "https://"} {
		if h, ok := strings.CutPrefix(uri, scheme); ok {
			if i := strings.IndexByte(h, '/'); i >= 0 {
				uri = h[i:]
			} else {
				uri = "/"
			}
		}
	}
	resource = stripQuery(uri)
	if !validMethod(method) {
		if strings.HasPrefix(resource, "/") {
			return "INVALID " + ingest.TemplatePath(resource), resource, false
		}
		return "INVALID", "", false
	}
	switch {
	case strings.HasPrefix(resource, "/"):
		return method + " " + ingest.TemplatePath(resource), resource, true
	case resource == "*": // OPTIONS *
		return method + " *", "", true
	case resource == "":
		return method, "", true
	}
	// CONNECT host:port and other authority-form targets.
	return method, resource, true
}

// validMethod reports whether m is a method NGINX accepts: upper-case
// letters, '-' and '_'.
func validMethod(m string) bool {
	if m == "" || len(m) > 32 {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !(c >= 'A' && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// upstreamPeer names the upstream that produced the final response (the last
// of $upstream_addr's list) by its address, for a later stage to resolve to
// a workload: "ip:<address>", or "" when none was reached.
func upstreamPeer(addrs string) string {
	if addrs == "" {
		return ""
	}
	last := addrs
	for _, sep := range [...]string{", ", " : "} {
		if i := strings.LastIndex(last, sep); i >= 0 {
			last = last[i+len(sep):]
		}
	}
	if ap, err := netip.ParseAddrPort(last); err == nil {
		return ingest.IPIdentity(ap.Addr().String()).ID
	}
	if ip, err := netip.ParseAddr(last); err == nil {
		return ingest.IPIdentity(ip.String()).ID
	}
	return "" // a unix socket, "-" or an upstream group name
}
