package mesh

import (
	"bytes"
	"strconv"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Configured names of the Linkerd proxy access-log decoders
// (config.linkerd.io/access-log: json or apache).
const (
	FormatLinkerdJSON = "linkerd_json"
	FormatLinkerdText = "linkerd_text"
)

// LinkerdJSONDecoder decodes Linkerd proxy HTTP access logs in their JSON
// form (client.addr, client.id, host, method, uri, status, timestamp,
// total_ns, request_bytes, response_bytes, user_agent, …). The proxy logs
// the requests its pod serves, so the caller is the client, named by its
// mTLS identity. The zero value is ready to use.
type LinkerdJSONDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewLinkerdJSON returns a LinkerdJSONDecoder with the default limits.
func NewLinkerdJSON() *LinkerdJSONDecoder {
	return &LinkerdJSONDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*LinkerdJSONDecoder) Format() string { return FormatLinkerdJSON }

// LinkerdTextDecoder decodes Linkerd proxy HTTP access logs in their
// apache-like form:
//
//	<client.addr> <client.id> - [<timestamp>] "<method> <uri> <version>" <status>
//
// The zero value is ready to use.
type LinkerdTextDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewLinkerdText returns a LinkerdTextDecoder with the default limits.
func NewLinkerdText() *LinkerdTextDecoder {
	return &LinkerdTextDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*LinkerdTextDecoder) Format() string { return FormatLinkerdText }

// linkerdLog is one request, from either form.
type linkerdLog struct {
	ClientAddr    string    `json:"client.addr"`
	ClientID      string    `json:"client.id"`
	Host          string    `json:"host"`
	Method        string    `json:"method"`
	URI           string    `json:"uri"`
	Version       string    `json:"version"`
	Status        int       `json:"status"`
	Timestamp     string    `json:"timestamp"`
	TotalNS       flexCount `json:"total_ns"`
	RequestBytes  flexCount `json:"request_bytes"`
	ResponseBytes flexCount `json:"response_bytes"`
	UserAgent     string    `json:"user_agent"`
}

// flexCount is a counter Linkerd writes as a JSON string ("19627", "" when
// unknown); a plain number is accepted too. It is validated in event, where
// the field name is known.
type flexCount struct{ raw string }

// UnmarshalJSON keeps the digits of a string or number.
func (c *flexCount) UnmarshalJSON(b []byte) error {
	if len(b) >= 2 && b[0] == '"' {
		b = b[1 : len(b)-1]
	} else if string(b) == "null" {
		b = nil
	}
	c.raw = string(b)
	return nil
}

// value parses the counter: "" and "-" are 0.
func (c flexCount) value(format, field string) (uint64, *ingest.DecodeError) {
	if c.raw == "" || c.raw == "-" {
		return 0, nil
	}
	n, err := strconv.ParseUint(c.raw, 10, 64)
	if err != nil {
		return 0, ingest.Errorf(format, ingest.ReasonBadField, "%s %q is not a non-negative integer", field, truncate(c.raw))
	}
	return n, nil
}

// Decode implements ingest.Decoder.
func (d *LinkerdJSONDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	line, de := unwrap(FormatLinkerdJSON, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	var l linkerdLog
	if de := ingest.DecodeJSON(FormatLinkerdJSON, line, limit, ingest.DefaultMaxDepth, &l); de != nil {
		return dst, de
	}
	if l.Timestamp == "" && l.ClientAddr == "" && l.Method == "" {
		return dst, ingest.Errorf(FormatLinkerdJSON, ingest.ReasonNotAnEvent, "no timestamp, client.addr or method: not a Linkerd access log")
	}
	ev, de := l.event(FormatLinkerdJSON, line, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

// Decode implements ingest.Decoder.
func (d *LinkerdTextDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	line, de := unwrap(FormatLinkerdText, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	var l linkerdLog
	if de := parseLinkerdText(line, &l); de != nil {
		return dst, de
	}
	ev, de := l.event(FormatLinkerdText, line, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func parseLinkerdText(line []byte, l *linkerdLog) *ingest.DecodeError {
	lErr := func(reason, detail string, args ...any) *ingest.DecodeError {
		return ingest.Errorf(FormatLinkerdText, reason, detail, args...)
	}
	if len(line) > 0 && line[0] == '{' {
		return lErr(ingest.ReasonNotAnEvent, "a JSON line, not an apache-form access log (the linkerd_json format)")
	}
	open := bytes.IndexByte(line, '[')
	end := bytes.IndexByte(line, ']')
	if open < 0 || end < open {
		return lErr(ingest.ReasonNotAnEvent, "not an access-log line: no [timestamp]")
	}
	var buf [4]token
	head, ok := splitFields(string(line[:open]), buf[:0], 4)
	if !ok || len(head) != 3 || head[0].quoted || head[1].quoted {
		return lErr(ingest.ReasonNotAnEvent, "not an access-log line: want \"<client.addr> <client.id> - [<timestamp>]\"")
	}
	l.ClientAddr, l.ClientID = head[0].s, head[1].s
	l.Timestamp = string(line[open+1 : end])
	tail, ok := splitFields(string(line[end+1:]), buf[:0], 3)
	if !ok || len(tail) < 2 || !tail[0].quoted || tail[1].quoted || (len(tail) == 3 && tail[2].quoted) {
		return lErr(ingest.ReasonBadField, "want \"<method> <uri> <version>\" <status> [<bytes>] after the timestamp")
	}
	req := tail[0].s
	sp, lsp := strings.IndexByte(req, ' '), strings.LastIndexByte(req, ' ')
	if sp < 0 || lsp == sp {
		return lErr(ingest.ReasonBadField, "request %q: want \"METHOD URI VERSION\"", truncate(req))
	}
	l.Method, l.URI, l.Version = req[:sp], req[sp+1:lsp], req[lsp+1:]
	status, err := strconv.Atoi(tail[1].s)
	if err != nil {
		return lErr(ingest.ReasonBadField, "status %q is not a number", truncate(tail[1].s))
	}
	l.Status = status
	if len(tail) == 3 {
		l.ResponseBytes.raw = tail[2].s
	}
	return nil
}

func (l *linkerdLog) event(format string, line []byte, rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	if l.Timestamp == "" {
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonMissingField, "timestamp is missing")
	}
	t, err := time.Parse(time.RFC3339Nano, l.Timestamp)
	if err != nil {
		if t, err = time.Parse("02/Jan/2006:15:04:05 -0700", l.Timestamp); err != nil {
			return schemas.Event{}, ingest.Errorf(format, ingest.ReasonBadField, "timestamp %q is neither RFC 3339 nor Apache's time", truncate(l.Timestamp))
		}
	}
	if l.Status < 0 || l.Status > 999 {
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonBadField, "status %d is not an HTTP status", l.Status)
	}
	if l.Method == "" || l.Method == "-" {
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonMissingField, "method is missing")
	}

	ip := hostIP(value(l.ClientAddr))
	var id schemas.Identity
	var ns, peer string
	switch clientID := value(l.ClientID); {
	case clientID != "":
		var de *ingest.DecodeError
		if id, ns, de = linkerdIdentity(format, clientID); de != nil {
			return schemas.Event{}, de
		}
		peer = id.ID // the inbound proxy verified it from the client's certificate
	case ip != "":
		id = ingest.IPIdentity(ip) // no mTLS: a probe, or traffic from outside the mesh
	default:
		return schemas.Event{}, ingest.Errorf(format, ingest.ReasonMissingField, "no client.id and no client.addr to identify the caller")
	}

	total, de := l.TotalNS.value(format, "total_ns")
	if de != nil {
		return schemas.Event{}, de
	}
	in, de := l.RequestBytes.value(format, "request_bytes")
	if de != nil {
		return schemas.Event{}, de
	}
	out, de := l.ResponseBytes.value(format, "response_bytes")
	if de != nil {
		return schemas.Event{}, de
	}

	// uri is absolute (http://webapp:7000/authors) for proxied HTTP/2 and
	// a path (/ping) otherwise.
	path, authority := l.URI, ""
	if _, rest, ok := strings.Cut(path, "://"); ok {
		authority = rest
		path = "/"
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			authority, path = rest[:i], rest[i:]
		}
	}
	action := l.Method
	if path != "" && path != "-" {
		action += " " + ingest.TemplatePath(path)
	}

	return schemas.Event{
		// Linkerd logs no request id (trace_id is shared by every hop of a
		// trace), so the id is a hash of the line.
		ID:   schemas.HashID(format, line),
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyMesh,
			Format:   format,
			Provider: "linkerd",
		},
		Identity: id,
		Actor: schemas.Actor{
			IP:        ip,
			UserAgent: value(l.UserAgent),
			Namespace: ns,
			Peer:      peer,
		},
		Action:     action,
		Service:    host(firstValue(l.Host, authority)),
		Outcome:    ingest.HTTPOutcome(l.Status),
		BytesIn:    in,
		BytesOut:   out,
		DurationMS: float64(total) / 1e6,
		Provenance: rec.Provenance(),
	}, nil
}

// linkerdIdentity maps a Linkerd proxy identity,
// <sa>.<ns>.serviceaccount.identity.linkerd.<trust domain>, to the SPIFFE ID
// Linkerd puts in the same certificate, spiffe://<trust domain>/ns/<ns>/sa/<sa>,
// so that Linkerd and Istio name a workload the same way.
func linkerdIdentity(format, clientID string) (schemas.Identity, string, *ingest.DecodeError) {
	const infix = ".serviceaccount.identity.linkerd."
	i := strings.Index(clientID, infix)
	if i < 0 {
		return schemas.Identity{}, "", ingest.Errorf(format, ingest.ReasonBadField,
			"client.id %q is not a Linkerd identity <sa>.<ns>%s<trust domain>", truncate(clientID), infix)
	}
	saNS, td := clientID[:i], clientID[i+len(infix):]
	// A namespace is a DNS label (no dots); a service-account name may have
	// dots, so the namespace is the last label.
	dot := strings.LastIndexByte(saNS, '.')
	if dot <= 0 || dot == len(saNS)-1 || td == "" {
		return schemas.Identity{}, "", ingest.Errorf(format, ingest.ReasonBadField,
			"client.id %q: want <sa>.<ns>%s<trust domain>", truncate(clientID), infix)
	}
	sa, ns := saNS[:dot], saNS[dot+1:]
	id, err := ingest.SPIFFEIdentity("spiffe://" + td + "/ns/" + ns + "/sa/" + sa)
	if err != nil {
		return schemas.Identity{}, "", ingest.Errorf(format, ingest.ReasonBadField, "client.id %q: %v", truncate(clientID), err)
	}
	id.Name = ns + "/" + sa
	return id, ns, nil
}
