package gateway

import (
	"strconv"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// NGINXJSONFormat is the configured name of the NGINX JSON access-log
// decoder.
const NGINXJSONFormat = "nginx_json"

// NGINXJSONDecoder decodes NGINX access logs written as JSON by a
// `log_format … escape=json '{…}'` whose keys are the variable names:
// remote_addr, remote_user, time_iso8601, time_local or msec, request (or
// request_method and request_uri), status, body_bytes_sent,
// request_length, request_time, http_user_agent, host, upstream_addr,
// proxy_upstream_name and req_id or request_id. Values may be strings or bare
// numbers; "" and "-" are empty variables. Lines are unwrapped from
// CRI/Docker/collector wrappers first.
//
// The zero value is ready to use.
type NGINXJSONDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewNGINXJSON returns an NGINXJSONDecoder with the default limits.
func NewNGINXJSON() *NGINXJSONDecoder {
	return &NGINXJSONDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*NGINXJSONDecoder) Format() string { return NGINXJSONFormat }

// nginxJSON holds the keys nhisentry reads. $http_x_forwarded_for is not
// among them: the client controls it, and remote_addr is the peer NGINX
// saw (ingress-nginx already resolves it when use-forwarded-headers is on).
type nginxJSON struct {
	RemoteAddr        scalar `json:"remote_addr"`
	RemoteUser        scalar `json:"remote_user"`
	TimeISO8601       scalar `json:"time_iso8601"`
	TimeLocal         scalar `json:"time_local"`
	Msec              scalar `json:"msec"`
	Request           scalar `json:"request"`
	RequestMethod     scalar `json:"request_method"`
	RequestURI        scalar `json:"request_uri"`
	Status            scalar `json:"status"`
	BodyBytesSent     scalar `json:"body_bytes_sent"`
	RequestLength     scalar `json:"request_length"`
	RequestTime       scalar `json:"request_time"`
	HTTPUserAgent     scalar `json:"http_user_agent"`
	Host              scalar `json:"host"`
	ServerName        scalar `json:"server_name"`
	UpstreamAddr      scalar `json:"upstream_addr"`
	ProxyUpstreamName scalar `json:"proxy_upstream_name"`
	ReqID             scalar `json:"req_id"`
	RequestID         scalar `json:"request_id"`
}

func (l *nginxJSON) scalars() [19]namedScalar {
	return [...]namedScalar{
		{"remote_addr", &l.RemoteAddr}, {"remote_user", &l.RemoteUser},
		{"time_iso8601", &l.TimeISO8601}, {"time_local", &l.TimeLocal}, {"msec", &l.Msec},
		{"request", &l.Request}, {"request_method", &l.RequestMethod}, {"request_uri", &l.RequestURI},
		{"status", &l.Status}, {"body_bytes_sent", &l.BodyBytesSent},
		{"request_length", &l.RequestLength}, {"request_time", &l.RequestTime},
		{"http_user_agent", &l.HTTPUserAgent}, {"host", &l.Host}, {"server_name", &l.ServerName},
		{"upstream_addr", &l.UpstreamAddr}, {"proxy_upstream_name", &l.ProxyUpstreamName},
		{"req_id", &l.ReqID}, {"request_id", &l.RequestID},
	}
}

// Decode implements ingest.Decoder.
func (d *NGINXJSONDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	const f = NGINXJSONFormat
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	line, de := ingest.UnwrapRecord(f, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	var l nginxJSON
	if de := ingest.DecodeJSON(f, line, limit, ingest.DefaultMaxDepth, &l); de != nil {
		return dst, de
	}
	fields := l.scalars() // an array: no allocation
	if de := checkScalars(f, fields[:]); de != nil {
		return dst, de
	}
	if l.RemoteAddr.v == "" && l.Request.v == "" && l.RequestMethod.v == "" {
		return dst, ingest.Errorf(f, ingest.ReasonNotAnEvent, "no remote_addr, request or request_method: not an NGINX access log")
	}
	if l.Request.v == "" && l.RequestMethod.v == "" {
		return dst, ingest.Errorf(f, ingest.ReasonMissingField, "request and request_method are missing")
	}
	t, de := l.time()
	if de != nil {
		return dst, de
	}
	a := accessLog{
		host:         ingest.FirstOf(l.Host.v, l.ServerName.v),
		remoteAddr:   l.RemoteAddr.v,
		remoteUser:   l.RemoteUser.v,
		time:         t,
		request:      l.Request.v,
		method:       l.RequestMethod.v,
		uri:          l.RequestURI.v,
		status:       l.Status.v,
		bodyBytes:    l.BodyBytesSent.v,
		requestLen:   l.RequestLength.v,
		requestTime:  l.RequestTime.v,
		userAgent:    l.HTTPUserAgent.v,
		upstreamName: l.ProxyUpstreamName.v,
		upstreamAddr: l.UpstreamAddr.v,
		reqID:        ingest.FirstOf(l.ReqID.v, l.RequestID.v),
		ingress:      l.ProxyUpstreamName.v != "",
	}
	if a.method != "" && a.uri == "" {
		// request_method without request_uri: take the target from the
		// request line, if logged.
		_, rest, _ := strings.Cut(a.request, " ")
		a.uri, _, _ = strings.Cut(rest, " ")
	}
	ev, de := a.event(f, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

// time prefers msec (sub-second) over time_iso8601 and time_local.
func (l *nginxJSON) time() (time.Time, *ingest.DecodeError) {
	const f = NGINXJSONFormat
	switch {
	case l.Msec.v != "":
		sec, frac, _ := strings.Cut(l.Msec.v, ".")
		s, err := strconv.ParseInt(sec, 10, 64)
		if err != nil || s < 0 || s >= maxEpochMillis/1000 || len(frac) > 9 {
			return time.Time{}, ingest.Errorf(f, ingest.ReasonBadField, "msec %q is not a Unix time in seconds", truncate(l.Msec.v))
		}
		var ns int64
		if frac != "" {
			n, err := strconv.ParseUint(frac, 10, 64)
			if err != nil {
				return time.Time{}, ingest.Errorf(f, ingest.ReasonBadField, "msec %q is not a Unix time in seconds", truncate(l.Msec.v))
			}
			ns = int64(n)
			for range 9 - len(frac) {
				ns *= 10
			}
		}
		return time.Unix(s, ns), nil
	case l.TimeISO8601.v != "":
		t, err := time.Parse(time.RFC3339, l.TimeISO8601.v)
		if err != nil {
			return time.Time{}, ingest.Errorf(f, ingest.ReasonBadField, "time_iso8601 %q is not an ISO 8601 time", truncate(l.TimeISO8601.v))
		}
		return t, nil
	case l.TimeLocal.v != "":
		return parseCLFTime(f, "time_local", l.TimeLocal.v)
	}
	return time.Time{}, ingest.Errorf(f, ingest.ReasonMissingField, "time_iso8601, time_local and msec are missing")
}
