package mesh

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// FormatEnvoyText is the configured name of the decoder of Envoy's and
// Istio's default text access-log formats.
const FormatEnvoyText = "envoy_text"

// EnvoyTextDecoder decodes access logs in Envoy's default text format
//
//	[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%"
//	%RESPONSE_CODE% %RESPONSE_FLAGS% %BYTES_RECEIVED% %BYTES_SENT% %DURATION%
//	%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%"
//	"%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"
//
// (optionally prefixed "ACCESS " as Ambassador writes it) and in Istio's
// default text format, which adds %RESPONSE_CODE_DETAILS%,
// %CONNECTION_TERMINATION_DETAILS% and "%UPSTREAM_TRANSPORT_FAILURE_REASON%"
// after the flags and %UPSTREAM_CLUSTER% %UPSTREAM_LOCAL_ADDRESS%
// %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS%
// %REQUESTED_SERVER_NAME% %ROUTE_NAME% at the end. Neither format logs a
// peer principal, so the identity is the downstream address (Istio) or the
// first X-Forwarded-For hop. The zero value is ready to use.
type EnvoyTextDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewEnvoyText returns an EnvoyTextDecoder with the default limits.
func NewEnvoyText() *EnvoyTextDecoder {
	return &EnvoyTextDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*EnvoyTextDecoder) Format() string { return FormatEnvoyText }

// Field counts after the start time: the request, then the rest.
const (
	envoyTextFields = 12
	istioTextFields = 21
)

// Which fields are quoted in each format; the shape tells the formats apart.
var (
	envoyTextQuoted = [envoyTextFields]bool{0: true, 7: true, 8: true, 9: true, 10: true, 11: true}
	istioTextQuoted = [istioTextFields]bool{0: true, 5: true, 10: true, 11: true, 12: true, 13: true, 14: true}
)

// Decode implements ingest.Decoder.
func (d *EnvoyTextDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	line, de := unwrap(FormatEnvoyText, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	var l accessLog
	if de := parseEnvoyText(line, &l); de != nil {
		return dst, de
	}
	ev, de := l.event(FormatEnvoyText, line, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func textErr(reason, detail string, args ...any) *ingest.DecodeError {
	return ingest.Errorf(FormatEnvoyText, reason, detail, args...)
}

// parseEnvoyText fills l from one text access-log line.
func parseEnvoyText(line []byte, l *accessLog) *ingest.DecodeError {
	if len(line) == 0 {
		return textErr(ingest.ReasonNotAnEvent, "empty line")
	}
	if rest, ok := bytes.CutPrefix(line, []byte("ACCESS ")); ok {
		line = rest
		l.provider = "ambassador"
	}
	switch {
	case line[0] == '{':
		return textErr(ingest.ReasonNotAnEvent, "a JSON line, not a text access log (the envoy_json format)")
	case line[0] != '[':
		return textErr(ingest.ReasonNotAnEvent, "not an access-log line: it does not start with [START_TIME]")
	}
	end := bytes.IndexByte(line, ']')
	if end < 0 {
		return textErr(ingest.ReasonNotAnEvent, "not an access-log line: [START_TIME] is not closed")
	}
	l.StartTime = string(line[1:end])
	if l.StartTime == "" || l.StartTime[0] < '0' || l.StartTime[0] > '9' {
		// "[2024-…][info][main] …": Envoy's own application log.
		return textErr(ingest.ReasonNotAnEvent, "not an access-log line: %q is not a start time", l.StartTime)
	}

	var buf [istioTextFields]token
	f, ok := splitFields(string(line[end+1:]), buf[:0], istioTextFields)
	if !ok {
		return textErr(ingest.ReasonBadField, "the fields after the start time do not match Envoy's or Istio's default text format (unclosed quote or too many fields)")
	}
	var quoted []bool
	switch len(f) {
	case envoyTextFields:
		quoted = envoyTextQuoted[:]
	case istioTextFields:
		quoted = istioTextQuoted[:]
		if l.provider == "" {
			l.provider = "istio"
		}
	default:
		if len(f) > 0 && !f[0].quoted {
			return textErr(ingest.ReasonNotAnEvent, "not an access-log line: no quoted request after the start time")
		}
		return textErr(ingest.ReasonBadField, "%d fields after the start time; Envoy's default text format has %d, Istio's %d", len(f), envoyTextFields, istioTextFields)
	}
	for i, q := range quoted {
		if f[i].quoted != q {
			return textErr(ingest.ReasonBadField, "field %d after the start time is %s; the format has it %s", i+1, quotedWord(f[i].quoted), quotedWord(q))
		}
	}

	// "%REQ(:METHOD)% %PATH% %PROTOCOL%"; the path is whatever lies between.
	req := f[0].s
	sp, lsp := strings.IndexByte(req, ' '), strings.LastIndexByte(req, ' ')
	if sp < 0 || lsp == sp {
		return textErr(ingest.ReasonBadField, "request %q: want \"METHOD PATH PROTOCOL\"", req)
	}
	l.Method, l.Path, l.Protocol = req[:sp], req[sp+1:lsp], req[lsp+1:]

	code, err := strconv.Atoi(f[1].s)
	if err != nil {
		return textErr(ingest.ReasonBadField, "response code %q is not a number", f[1].s)
	}
	l.ResponseCode = code
	l.ResponseFlags = f[2].s
	rest := f[3:]
	if len(f) == istioTextFields {
		l.ResponseCodeDetails, l.ConnectionTermination, l.TransportFailure = f[3].s, f[4].s, f[5].s
		rest = f[6:]
	}
	var de *ingest.DecodeError
	if l.BytesReceived, de = textUint("bytes received", rest[0].s); de != nil {
		return de
	}
	if l.BytesSent, de = textUint("bytes sent", rest[1].s); de != nil {
		return de
	}
	dur, de := textUint("duration", rest[2].s)
	if de != nil {
		return de
	}
	l.Duration = float64(dur)
	if _, de = textUint("upstream service time", rest[3].s); de != nil {
		return de
	}
	l.XForwardedFor, l.UserAgent, l.RequestID, l.Authority = rest[4].s, rest[5].s, rest[6].s, rest[7].s
	if len(f) == istioTextFields {
		l.UpstreamCluster = rest[9].s
		l.DownstreamRemoteAddress = rest[12].s
		l.RequestedServerName = rest[13].s
		l.RouteName = rest[14].s
	}
	return nil
}

func quotedWord(q bool) string {
	if q {
		return "quoted"
	}
	return "bare"
}

// textUint parses a non-negative counter, "-" (not logged) being 0.
func textUint(field, s string) (uint64, *ingest.DecodeError) {
	if s == "-" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, textErr(ingest.ReasonBadField, "%s %q is not a non-negative integer", field, s)
	}
	return n, nil
}
