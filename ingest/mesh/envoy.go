package mesh

import (
	"bytes"
	"net/netip"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Format is the configured name of the Envoy/Istio JSON access-log decoder.
const Format = "envoy_json"

// Decoder decodes Envoy and Istio JSON access logs, one log line per record.
// The zero value is ready to use; New returns one with the defaults spelled
// out.
type Decoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// New returns a Decoder with the default limits.
func New() *Decoder { return &Decoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes} }

// Format implements ingest.Decoder.
func (*Decoder) Format() string { return Format }

// accessLog holds the fields of an Envoy JSON access log that nhisentry uses.
// Key names are those of Istio's default JSON encoding; the second spelling
// of a few fields is Envoy Gateway's (header-named keys).
type accessLog struct {
	Authority               string  `json:"authority"`
	AuthorityHeader         string  `json:":authority"`
	BytesReceived           uint64  `json:"bytes_received"`
	BytesSent               uint64  `json:"bytes_sent"`
	ConnectionTermination   string  `json:"connection_termination_details"`
	DownstreamRemoteAddress string  `json:"downstream_remote_address"`
	Duration                float64 `json:"duration"`
	Method                  string  `json:"method"`
	Path                    string  `json:"path"`
	OriginPath              string  `json:"x-envoy-origin-path"`
	Protocol                string  `json:"protocol"`
	RequestID               string  `json:"request_id"`
	RequestIDHeader         string  `json:"x-request-id"`
	ResponseCode            int     `json:"response_code"`
	ResponseCodeDetails     string  `json:"response_code_details"`
	ResponseFlags           string  `json:"response_flags"`
	RequestedServerName     string  `json:"requested_server_name"`
	RouteName               string  `json:"route_name"`
	StartTime               string  `json:"start_time"`
	TransportFailure        string  `json:"upstream_transport_failure_reason"`
	UpstreamCluster         string  `json:"upstream_cluster"`
	UserAgent               string  `json:"user_agent"`
	UserAgentHeader         string  `json:"user-agent"`
	XForwardedFor           string  `json:"x_forwarded_for"`
	XForwardedForHeader     string  `json:"x-forwarded-for"`

	// Peer principals: Envoy's URI SAN command operators under the key
	// names operators usually give them, and Istio's telemetry attributes.
	DownstreamPeerURISAN  string `json:"downstream_peer_uri_san"`
	DownstreamLocalURISAN string `json:"downstream_local_uri_san"`
	UpstreamPeerURISAN    string `json:"upstream_peer_uri_san"`
	UpstreamLocalURISAN   string `json:"upstream_local_uri_san"`
	SourcePrincipal       string `json:"source_principal"`
	DestinationPrincipal  string `json:"destination_principal"`

	// provider is set by the text decoder, which knows the format variant
	// (Istio's, Ambassador's); else it is guessed from the cluster name.
	provider string
}

// Decode implements ingest.Decoder.
func (d *Decoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	line, de := unwrap(Format, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	if looksLikeEnvoyText(line) {
		return dst, ingest.Errorf(Format, ingest.ReasonNotAnEvent, "a text-format access log line, not JSON (the envoy_text format)")
	}
	var l accessLog
	if de := ingest.DecodeJSON(Format, line, limit, ingest.DefaultMaxDepth, &l); de != nil {
		return dst, de
	}
	ev, de := l.event(Format, line, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

// event normalizes l, decoded from line by the decoder of format (envoy_json
// or envoy_text, which share everything after parsing).
func (l *accessLog) event(format string, line []byte, rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	start := value(l.StartTime)
	if start == "" {
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonMissingField, "start_time is missing")
	}
	t, err := time.Parse(time.RFC3339Nano, start)
	if err != nil {
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonBadField, "start_time: %v", err)
	}
	if l.ResponseCode < 0 || l.ResponseCode > 999 {
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonBadField, "response_code %d is not an HTTP status", l.ResponseCode)
	}

	// On an inbound (server-side) listener the downstream peer is the caller
	// and the local workload is the one called; on an outbound listener the
	// local workload is the caller and the upstream peer is called.
	inbound := strings.HasPrefix(l.UpstreamCluster, "inbound|")
	peer, de := principal(format, "downstream_peer_uri_san", l.DownstreamPeerURISAN)
	if de != nil {
		return schemas.Event{}, de
	}
	var callerSAN, targetSAN string
	if inbound {
		if callerSAN, de = firstPrincipal(format, peer, "source_principal", l.SourcePrincipal); de != nil {
			return schemas.Event{}, de
		}
		if targetSAN, de = firstPrincipal(format, "", "downstream_local_uri_san", l.DownstreamLocalURISAN, "destination_principal", l.DestinationPrincipal); de != nil {
			return schemas.Event{}, de
		}
	} else {
		if callerSAN, de = firstPrincipal(format, "", "upstream_local_uri_san", l.UpstreamLocalURISAN, "downstream_local_uri_san", l.DownstreamLocalURISAN, "source_principal", l.SourcePrincipal); de != nil {
			return schemas.Event{}, de
		}
		if targetSAN, de = firstPrincipal(format, "", "upstream_peer_uri_san", l.UpstreamPeerURISAN, "destination_principal", l.DestinationPrincipal); de != nil {
			return schemas.Event{}, de
		}
	}

	ip := hostIP(value(l.DownstreamRemoteAddress))
	if ip == "" {
		// An edge proxy behind a load balancer, or Envoy's default text
		// format, which does not log the downstream address: the first hop
		// of X-Forwarded-For is the client.
		ip = firstHop(firstValue(l.XForwardedFor, l.XForwardedForHeader))
	}
	var id schemas.Identity
	var ns string
	switch {
	case callerSAN != "":
		id = schemas.Identity{ID: callerSAN, Kind: schemas.KindWorkload}
		ns = istioNamespace(callerSAN)
	case ip != "":
		// The Kubernetes workload behind the address is resolved by a later
		// stage; until then the address is the identity.
		id = ingest.IPIdentity(ip)
	default:
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonMissingField, "no peer principal, no downstream remote address and no x-forwarded-for to identify the caller")
	}

	direction := "outbound"
	if inbound {
		direction = "inbound"
	}
	eventID := firstValue(l.RequestID, l.RequestIDHeader)
	if eventID != "" {
		// One request is logged by the client's sidecar (outbound) and the
		// server's (inbound), and a client may reuse a request id: the
		// direction and start time keep the two logs and the reuse apart.
		eventID = "envoy:" + eventID + ":" + direction + ":" + start
	} else {
		eventID = schemas.HashID(format, line)
	}

	return schemas.Event{
		ID:   eventID,
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyMesh,
			Format:   format,
			Provider: l.providerName(),
		},
		Identity: id,
		Actor: schemas.Actor{
			IP:        ip,
			UserAgent: firstValue(l.UserAgent, l.UserAgentHeader),
			Namespace: ns,
			Peer:      peer,
		},
		Action:  l.action(),
		Service: host(firstValue(l.Authority, l.AuthorityHeader)),
		Target: schemas.Target{
			Resource: l.resource(),
			Peer:     targetSAN,
		},
		Outcome:    l.outcome(),
		BytesIn:    l.BytesReceived,
		BytesOut:   l.BytesSent,
		DurationMS: l.Duration,
		Provenance: rec.Provenance(),
	}, nil
}

// action is "METHOD /templated/path", or "tcp" for a TCP proxy log, or
// "http" for an HTTP request Envoy could not parse (a codec error has a
// protocol but no method).
func (l *accessLog) action() string {
	method := value(l.Method)
	if method == "" {
		if strings.HasPrefix(value(l.Protocol), "HTTP") {
			return "http"
		}
		return "tcp"
	}
	path := firstValue(l.Path, l.OriginPath)
	if path == "" {
		return method
	}
	return method + " " + ingest.TemplatePath(path)
}

// outcome classifies the response. Authorization denials, by the mesh
// (RBAC, ext_authz) or by the application (401/403), are "denied" because
// detectors count them as probing; 5xx and connection-level failures are
// "failure".
func (l *accessLog) outcome() schemas.Outcome {
	flags := value(l.ResponseFlags)
	details := value(l.ResponseCodeDetails)
	termination := value(l.ConnectionTermination)
	o := schemas.Outcome{Result: schemas.ResultSuccess, Status: l.ResponseCode}
	switch {
	case l.ResponseCode == 401 || l.ResponseCode == 403,
		strings.Contains(flags, "UAEX"),
		strings.Contains(details, "rbac_access_denied"), strings.Contains(termination, "rbac_access_denied"),
		strings.Contains(details, "ext_authz_denied"):
		o.Result = schemas.ResultDenied
	case l.ResponseCode >= 500, l.ResponseCode == 0 && flags != "":
		o.Result = schemas.ResultFailure
	}
	if o.Result != schemas.ResultSuccess || l.ResponseCode >= 400 {
		if details == "via_upstream" {
			details = "" // the upstream answered: nothing Envoy-specific to report
		}
		o.ErrorCode = firstValue(termination, details, l.TransportFailure, flags)
	}
	return o
}

// looksLikeEnvoyText reports whether line starts like Envoy's text access
// log: "[2024-…] " or Ambassador's "ACCESS [".
func looksLikeEnvoyText(line []byte) bool {
	line = bytes.TrimPrefix(line, []byte("ACCESS "))
	return len(line) > 2 && line[0] == '[' && line[1] >= '0' && line[1] <= '9'
}

// providerName names the proxy that wrote the log when the log tells: Istio
// names its clusters inbound|… and outbound|…, Envoy Gateway its routes
// httproute/….
func (l *accessLog) providerName() string {
	switch {
	case l.provider != "":
		return l.provider
	case strings.HasPrefix(l.UpstreamCluster, "inbound|"), strings.HasPrefix(l.UpstreamCluster, "outbound|"):
		return "istio"
	case strings.HasPrefix(l.RouteName, "httproute/"), strings.HasPrefix(l.UpstreamCluster, "httproute/"):
		return "envoy-gateway"
	}
	return ""
}

// resource is the upstream service the request went to: the service FQDN of
// an Istio cluster (outbound|9080||reviews.default.svc.cluster.local) or, on
// an inbound listener whose cluster names no service, of the SNI the client
// asked for (outbound_.9080_._.reviews.default.svc.cluster.local); else the
// upstream cluster name itself (an Envoy Gateway route's backend).
func (l *accessLog) resource() string {
	cluster := value(l.UpstreamCluster)
	if strings.HasPrefix(cluster, "inbound|") || strings.HasPrefix(cluster, "outbound|") {
		if i := strings.LastIndexByte(cluster, '|'); cluster[i+1:] != "" {
			return cluster[i+1:]
		}
		sni := value(l.RequestedServerName)
		if rest, ok := strings.CutPrefix(sni, "outbound_."); ok {
			if i := strings.LastIndex(rest, "_."); i >= 0 {
				return rest[i+2:]
			}
		}
		return ""
	}
	return cluster
}

// principal validates one logged principal. Envoy joins several URI SANs
// with ','; the first SPIFFE ID among them is the workload identity.
func principal(format, field, v string) (string, *ingest.DecodeError) {
	v = value(v)
	if v == "" {
		return "", nil
	}
	var firstErr error
	for san := range strings.SplitSeq(v, ",") {
		san = strings.TrimSpace(san)
		if _, err := ingest.SPIFFEIdentity(san); err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		return san, nil
	}
	return "", ingest.Errorf(format, ingest.ReasonBadField, "%s: %v", field, firstErr)
}

// firstPrincipal returns have when it is set, else the first valid principal
// among the (field name, value) pairs.
func firstPrincipal(format, have string, pairs ...string) (string, *ingest.DecodeError) {
	if have != "" {
		return have, nil
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		p, de := principal(format, pairs[i], pairs[i+1])
		if de != nil || p != "" {
			return p, de
		}
	}
	return "", nil
}

// istioNamespace returns <ns> of an Istio-shaped SPIFFE ID
// (spiffe://<td>/ns/<ns>/sa/<sa>), else "".
func istioNamespace(spiffeID string) string {
	_, path, _ := strings.Cut(strings.TrimPrefix(spiffeID, "spiffe://"), "/")
	rest, ok := strings.CutPrefix(path, "ns/")
	if !ok {
		return ""
	}
	ns, rest, ok := strings.Cut(rest, "/")
	if !ok || !strings.HasPrefix(rest, "sa/") {
		return ""
	}
	return ns
}

// value maps Envoy's "-" (no value) to "".
func value(s string) string {
	if s == "-" {
		return ""
	}
	return s
}

func firstValue(vs ...string) string {
	for _, v := range vs {
		if v = value(v); v != "" {
			return v
		}
	}
	return ""
}

// hostIP returns the IP of an "ip:port", "[v6]:port" or bare IP address
// without brackets, or "" when addr holds no IP (a pipe, an internal
// listener name).
func hostIP(addr string) string {
	h := host(addr)
	if _, err := netip.ParseAddr(h); err != nil {
		return ""
	}
	return h
}

// firstHop returns the IP of the first (client) hop of an X-Forwarded-For
// value, or "" when it is not an address.
func firstHop(xff string) string {
	first, _, _ := strings.Cut(xff, ",")
	return hostIP(strings.TrimSpace(first))
}

// host strips the port and IPv6 brackets from an authority or address.
func host(addr string) string {
	if strings.HasPrefix(addr, "[") {
		if end := strings.IndexByte(addr, ']'); end > 0 {
			return addr[1:end]
		}
		return addr
	}
	if i := strings.IndexByte(addr, ':'); i >= 0 && strings.IndexByte(addr[i+1:], ':') < 0 {
		return addr[:i]
	}
	return addr // bare IPv6 or no port
}
