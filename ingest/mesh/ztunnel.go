package mesh

import (
	"strconv"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// FormatZtunnel is the configured name of the Istio ambient ztunnel
// access-log decoder.
const FormatZtunnel = "ztunnel"

// ZtunnelDecoder decodes the L4 access logs of Istio ambient mode's ztunnel:
//
//	<time> info access connection complete src.addr=… src.workload="…"
//	src.namespace="…" src.identity="spiffe://…" dst.addr=… dst.service="…"
//	dst.workload=… dst.namespace=… dst.identity="spiffe://…"
//	direction="inbound" bytes_sent=… bytes_recv=… duration="1ms"
//
// (tab- or space-separated, values quoted or not). Both the client's ztunnel
// (outbound) and the server's (inbound) log each connection; in both the
// caller is src.identity, verified by mTLS. The zero value is ready to use.
type ZtunnelDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewZtunnel returns a ZtunnelDecoder with the default limits.
func NewZtunnel() *ZtunnelDecoder {
	return &ZtunnelDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*ZtunnelDecoder) Format() string { return FormatZtunnel }

// maxZtunnelFields bounds the key=value pairs of one line.
const maxZtunnelFields = 64

type ztunnelLog struct {
	srcAddr, srcWorkload, srcNamespace, srcIdentity string
	dstAddr, dstService, dstWorkload, dstIdentity   string
	direction, bytesSent, bytesRecv, duration, err  string
}

// Decode implements ingest.Decoder.
func (d *ZtunnelDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	line, de := unwrap(FormatZtunnel, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	ev, de := ztunnelEvent(line, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func zErr(reason, detail string, args ...any) *ingest.DecodeError {
	return ingest.Errorf(FormatZtunnel, reason, detail, args...)
}

func ztunnelEvent(line []byte, rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	s := string(line)
	// <time> <level> <target> <message words…> <key=value…>
	ts, s, _ := cutSpace(s)
	level, s, _ := cutSpace(s)
	target, s, _ := cutSpace(s)
	if target != "access" {
		return schemas.Event{}, zErr(ingest.ReasonNotAnEvent, "not a ztunnel access log: target %q, want \"access\"", truncate(target))
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return schemas.Event{}, zErr(ingest.ReasonBadField, "time %q is not RFC 3339", truncate(ts))
	}
	var msg strings.Builder
	for {
		word, rest, _ := cutSpace(s)
		if word == "" || strings.IndexByte(word, '=') >= 0 {
			break
		}
		if msg.Len() > 0 {
			msg.WriteByte(' ')
		}
		msg.WriteString(word)
		s = rest
	}
	if m := msg.String(); m != "connection complete" {
		// "connection opened" (debug level) would count a connection twice.
		return schemas.Event{}, zErr(ingest.ReasonNotAnEvent, "ztunnel access message %q is not a completed connection", truncate(m))
	}

	var z ztunnelLog
	for n := 0; ; n++ {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		if n == maxZtunnelFields {
			return schemas.Event{}, zErr(ingest.ReasonBadField, "more than %d key=value fields", maxZtunnelFields)
		}
		key, val, rest, de := nextKV(s)
		if de != nil {
			return schemas.Event{}, de
		}
		s = rest
		switch key {
		case "src.addr":
			z.srcAddr = val
		case "src.workload":
			z.srcWorkload = val
		case "src.namespace":
			z.srcNamespace = val
		case "src.identity":
			z.srcIdentity = val
		case "dst.addr":
			z.dstAddr = val
		case "dst.service":
			z.dstService = val
		case "dst.workload":
			z.dstWorkload = val
		case "dst.identity":
			z.dstIdentity = val
		case "direction":
			z.direction = val
		case "bytes_sent":
			z.bytesSent = val
		case "bytes_recv":
			z.bytesRecv = val
		case "duration":
			z.duration = val
		case "error":
			z.err = val
		}
	}

	ip := hostIP(z.srcAddr)
	var id schemas.Identity
	var peer string
	switch {
	case z.srcIdentity != "":
		if id, err = ingest.SPIFFEIdentity(z.srcIdentity); err != nil {
			return schemas.Event{}, zErr(ingest.ReasonBadField, "src.identity: %v", err)
		}
		if z.direction == "inbound" {
			peer = z.srcIdentity // verified from the client's certificate
		}
	case ip != "":
		// Plain-text traffic from outside the mesh: no identity.
		id = ingest.IPIdentity(ip)
	default:
		return schemas.Event{}, zErr(ingest.ReasonMissingField, "no src.identity and no src.addr to identify the caller")
	}
	var dstPeer string
	if z.dstIdentity != "" {
		if _, err := ingest.SPIFFEIdentity(z.dstIdentity); err != nil {
			return schemas.Event{}, zErr(ingest.ReasonBadField, "dst.identity: %v", err)
		}
		dstPeer = z.dstIdentity
	}
	sent, de := zUint("bytes_sent", z.bytesSent)
	if de != nil {
		return schemas.Event{}, de
	}
	recv, de := zUint("bytes_recv", z.bytesRecv)
	if de != nil {
		return schemas.Event{}, de
	}
	// Each ztunnel counts from its side: the client's (outbound) sends the
	// request, the server's (inbound) receives it. BytesIn is always what
	// the caller sent.
	in, out := recv, sent
	if z.direction == "outbound" {
		in, out = sent, recv
	}
	var ms float64
	if z.duration != "" {
		d, err := time.ParseDuration(z.duration)
		if err != nil || d < 0 {
			return schemas.Event{}, zErr(ingest.ReasonBadField, "duration %q is not a duration", truncate(z.duration))
		}
		ms = float64(d) / float64(time.Millisecond)
	}

	o := schemas.Outcome{Result: schemas.ResultSuccess}
	switch {
	case strings.Contains(z.err, "policy rejection"), strings.Contains(z.err, "RBAC"), strings.Contains(z.err, "rbac"):
		o.Result, o.ErrorCode = schemas.ResultDenied, z.err
	case z.err != "" || level == "error" || level == "warn":
		o.Result, o.ErrorCode = schemas.ResultFailure, z.err
	}

	service := firstValue(z.dstService, z.dstWorkload)
	return schemas.Event{
		// Hashing the line keeps the two logs of one connection (inbound
		// and outbound) apart.
		ID:   schemas.HashID(FormatZtunnel, line),
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyMesh,
			Format:   FormatZtunnel,
			Provider: "istio",
		},
		Identity: id,
		Actor: schemas.Actor{
			IP:        ip,
			Workload:  z.srcWorkload,
			Namespace: z.srcNamespace,
			Peer:      peer,
		},
		Action:     "tcp",
		Service:    service,
		Target:     schemas.Target{Resource: service, Peer: dstPeer},
		Outcome:    o,
		BytesIn:    in,
		BytesOut:   out,
		DurationMS: ms,
		Provenance: rec.Provenance(),
	}, nil
}

// cutSpace returns the first space- or tab-separated word of s and the rest.
func cutSpace(s string) (word, rest string, ok bool) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, "", s != ""
	}
	return s[:i], s[i+1:], true
}

// nextKV reads key=value or key="quoted value" (with \" and \\ escapes) from
// the start of s.
func nextKV(s string) (key, val, rest string, de *ingest.DecodeError) {
	eq := strings.IndexByte(s, '=')
	sp := strings.IndexAny(s, " \t")
	if eq <= 0 || (sp >= 0 && sp < eq) {
		word, _, _ := cutSpace(s)
		return "", "", "", zErr(ingest.ReasonBadField, "%q is not a key=value field", truncate(word))
	}
	key, s = s[:eq], s[eq+1:]
	if !strings.HasPrefix(s, `"`) {
		if sp := strings.IndexAny(s, " \t"); sp >= 0 {
			return key, s[:sp], s[sp:], nil
		}
		return key, s, "", nil
	}
	hasEscape := false
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			hasEscape = true
			i++ // the escaped byte
		case '"':
			if !hasEscape {
				return key, s[1:i], s[i+1:], nil
			}
			var b strings.Builder
			for j := 1; j < i; j++ {
				if s[j] == '\\' {
					j++
				}
				b.WriteByte(s[j])
			}
			return key, b.String(), s[i+1:], nil
		}
	}
	return "", "", "", zErr(ingest.ReasonBadField, "value of %s: unclosed quote", truncate(key))
}

func zUint(field, s string) (uint64, *ingest.DecodeError) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, zErr(ingest.ReasonBadField, "%s %q is not a non-negative integer", field, truncate(s))
	}
	return n, nil
}

// truncate bounds the bytes of input quoted in an error detail.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
