package issuance

import (
	"bytes"
	"math"
	"math/big"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// SPIREServerFormat is the configured name of the SPIRE log decoder.
const SPIREServerFormat = "spire_server"

// SPIREServerDecoder decodes SPIRE logs, logrus text (time="…" level=…
// msg="…" key=value …) or logrus JSON. Server lines that record an SVID
// being signed ("Signed X509 SVID", "Signed JWT SVID") or an agent being
// attested ("Node attestation request completed", "Agent attestation
// request completed") are issuance events; SPIRE agent lines that record a
// workload receiving an SVID ("Fetched X.509 SVID", "Fetched JWT SVID") are
// issuance events as seen by the agent, with an action of their own
// (spire:agent:…). Every other line — start-up, plugin loading, the
// "Signing CSR for Agent SVID" request whose result is the "Signed X509
// SVID" line that follows — is not_an_event.
//
// The identity is who asked for the SVID: caller_id (newer servers log the
// calling agent or workload), else agent_id, else the SPIFFE id the SVID
// was issued to (an agent's own SVID at attestation, the server's own on
// rotation), else the caller's address. Serial numbers, which SPIRE logs in
// decimal, are normalized to lower-case hex like every serial in nhisentry.
// The zero value is ready to use.
type SPIREServerDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewSPIREServer returns a SPIREServerDecoder with the default limits.
func NewSPIREServer() *SPIREServerDecoder {
	return &SPIREServerDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*SPIREServerDecoder) Format() string { return SPIREServerFormat }

// spireMsgs maps the issuance messages (lower-cased) to the action and the
// type of the credential issued.
var spireMsgs = map[string]struct{ action, credType string }{
	"signed x509 svid":                    {"spire:sign_x509_svid", "x509_svid"},
	"signed jwt svid":                     {"spire:sign_jwt_svid", "jwt_svid"},
	"node attestation request completed":  {"spire:attest_agent", "x509_svid"},
	"agent attestation request completed": {"spire:attest_agent", "x509_svid"},
	"fetched x.509 svid":                  {"spire:agent:fetch_x509_svid", "x509_svid"},
	"fetched x509 svid":                   {"spire:agent:fetch_x509_svid", "x509_svid"},
	"fetched jwt svid":                    {"spire:agent:fetch_jwt_svid", "jwt_svid"},
}

// Decode implements ingest.Decoder.
func (d *SPIREServerDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	raw, de := ingest.UnwrapRecord(SPIREServerFormat, rec.Value, limit)
	if de != nil {
		return dst, de
	}
	var f kvs
	if trimmed := bytes.TrimSpace(raw); len(trimmed) > 0 && trimmed[0] == '{' {
		f, de = spireJSON(trimmed, limit)
	} else {
		f, de = spireText(raw)
	}
	if de != nil {
		return dst, de
	}
	ev, de := spireEvent(f, raw, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func spireText(raw []byte) (kvs, *ingest.DecodeError) {
	if !utf8.Valid(raw) {
		return nil, ingest.Errorf(SPIREServerFormat, ingest.ReasonInvalidUTF8, "line is not valid UTF-8")
	}
	s := strings.TrimRight(string(raw), "\r\n")
	if !strings.HasPrefix(s, "time=") {
		return nil, ingest.Errorf(SPIREServerFormat, ingest.ReasonNotAnEvent, "not a logrus line (want time=\"…\" level=… msg=\"…\"): %q", ingest.Truncate(s, 60))
	}
	f, ok := parseKV(s)
	if !ok {
		return nil, ingest.Errorf(SPIREServerFormat, ingest.ReasonBadField, "logrus key=value pairs do not parse (unterminated quote or more than %d fields)", maxPairs)
	}
	return f, nil
}

func spireJSON(raw []byte, limit int) (kvs, *ingest.DecodeError) {
	var m map[string]json.RawMessage
	if de := ingest.DecodeJSON(SPIREServerFormat, raw, limit, ingest.DefaultMaxDepth, &m); de != nil {
		return nil, de
	}
	if len(m) > maxPairs {
		return nil, ingest.Errorf(SPIREServerFormat, ingest.ReasonTooLarge, "%d fields, limit %d", len(m), maxPairs)
	}
	f := make(kvs, 0, len(m))
	for k, v := range m {
		if len(v) > 0 && v[0] == '"' {
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, ingest.Errorf(SPIREServerFormat, ingest.ReasonBadField, "field %s: %v", k, err)
			}
			f = append(f, kv{k, s})
		} else {
			f = append(f, kv{k, string(v)})
		}
	}
	if f.get("msg") == "" || f.get("time") == "" {
		return nil, ingest.Errorf(SPIREServerFormat, ingest.ReasonNotAnEvent, "JSON object without time and msg is not a logrus line")
	}
	return f, nil
}

func spireEvent(f kvs, raw []byte, rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	msg := f.get("msg")
	if msg == "" {
		return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonMissingField, "logrus line without msg")
	}
	kind, ok := spireMsgs[strings.ToLower(msg)]
	if !ok {
		return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonNotAnEvent, "SPIRE %s message %q is not an SVID issuance", ingest.FirstOf(f.get("subsystem_name"), "log"), ingest.Truncate(msg, 80))
	}
	ts := f.get("time")
	if ts == "" {
		return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonMissingField, "time is missing")
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonBadField, "time: %v", err)
	}

	subjectID := f.first("spiffe_id", "agent_id")
	if subjectID == "" {
		return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonMissingField, "%q without spiffe_id or agent_id", msg)
	}
	subject, err := ingest.SPIFFEIdentity(subjectID)
	if err != nil {
		return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonBadField, "spiffe_id: %v", err)
	}
	td, _, _ := strings.Cut(strings.TrimPrefix(subjectID, "spiffe://"), "/")

	var ip string
	if addr := f.first("caller_addr", "address"); addr != "" {
		host := addr
		if h, _, err := net.SplitHostPort(addr); err == nil {
			host = h
		}
		if a, err := netip.ParseAddr(host); err == nil {
			ip = a.String()
		}
	}

	id := subject
	if caller := f.first("caller_id", "agent_id"); caller != "" {
		if id, err = ingest.SPIFFEIdentity(caller); err != nil {
			return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonBadField, "caller_id: %v", err)
		}
	}

	serial := ""
	if s := f.first("serial_num", "serial_number", "serial"); s != "" {
		if serial, err = normalizeSerial(s, true); err != nil {
			return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonBadField, "serial_num: %v", err)
		}
	}
	var exp time.Time
	if e := f.first("expiration", "expires_at"); e != "" {
		if exp, err = spireTime(e); err != nil {
			return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonBadField, "expiration: %v", err)
		}
	}
	is := &schemas.Issuance{
		Credential:     serial,
		CredentialType: kind.credType,
		Subject:        subjectID,
		Issuer:         "spire:" + td,
		Requester:      id.ID,
	}
	if dns := f.get("dns_name"); dns != "" {
		is.SANs = strings.Split(dns, ",")
	}
	switch {
	case !exp.IsZero() && exp.After(t):
		is.TTLSeconds = int64(exp.Sub(t).Round(time.Second) / time.Second)
	case f.get("ttl") != "":
		ttl, err := strconv.ParseFloat(f.get("ttl"), 64)
		if err != nil || !(ttl >= 0 && ttl <= 1e12) {
			return schemas.Event{}, ingest.Errorf(SPIREServerFormat, ingest.ReasonBadField, "ttl %q is not a number of seconds", ingest.Truncate(f.get("ttl"), 40))
		}
		is.TTLSeconds = int64(math.Round(ttl))
		exp = t.Add(time.Duration(ttl * float64(time.Second)))
	}

	service := "spire-server"
	if strings.HasPrefix(kind.action, "spire:agent:") {
		service = "spire-agent"
	}
	ev := schemas.Event{
		ID:   schemas.HashID(SPIREServerFormat, raw),
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyIssuance,
			Format:   SPIREServerFormat,
			Provider: "spire",
			Account:  td,
		},
		Identity: id,
		Credential: schemas.Credential{
			ID:       serial,
			Type:     kind.credType,
			IssuedAt: schemas.At(t),
		},
		Actor:      schemas.Actor{IP: ip},
		Action:     kind.action,
		Service:    service,
		Target:     schemas.Target{Resource: subjectID},
		Outcome:    schemas.Outcome{Result: schemas.ResultSuccess},
		Issuance:   is,
		Provenance: rec.Provenance(),
	}
	if !exp.IsZero() {
		ev.Credential.ExpiresAt = schemas.At(exp)
	}
	if id.ID != subjectID && strings.Contains(subjectID, "/spire/agent/") {
		ev.Actor.Node = subjectID
	}
	return ev, nil
}

// spireTime reads an expiration: RFC 3339, or Unix seconds.
func spireTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, err
	}
	return unixSeconds(f)
}

// normalizeSerial returns a certificate serial number as lower-case hex
// without separators or leading zeros ("0" for zero). A serial written with
// colons or hex letters is read as hex; otherwise decimal says how to read a
// run of plain digits (SPIRE logs big.Int decimal, CertStream hex).
func normalizeSerial(s string, decimal bool) (string, error) {
	if len(s) > 256 {
		return "", strconv.ErrRange
	}
	hexForm := !decimal || strings.ContainsAny(s, ":abcdefABCDEF")
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, hexForm = s[2:], true
	}
	s = strings.ReplaceAll(s, ":", "")
	base := 10
	if hexForm {
		base = 16
	}
	n, ok := new(big.Int).SetString(s, base)
	if !ok || n.Sign() < 0 {
		return "", strconv.ErrSyntax
	}
	return n.Text(16), nil
}
