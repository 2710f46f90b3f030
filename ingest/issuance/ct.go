package issuance

import (
	"strconv"
	"strings"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// CTCertstreamFormat is the configured name of the Certificate Transparency
// (certstream-server JSON) decoder.
const CTCertstreamFormat = "ct_certstream"

// CTCertstreamDecoder decodes the messages of certstream-server: a
// certificate_update is the issuance of its leaf certificate, as a CT log
// recorded it; heartbeats and any other message type are not_an_event. The
// identity is the certificate itself, cert:<issuer CN or O>/<serial> (SPEC
// §2's form when nothing better is known), with the serial as lower-case
// hex; a leaf without serial_number falls back to its SHA-1 fingerprint
// (cert:<issuer>/sha1:<hex>), and a leaf with neither is missing_field. The
// DER (as_der) and the chain are never copied into the event. The zero
// value is ready to use.
type CTCertstreamDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewCTCertstream returns a CTCertstreamDecoder with the default limits.
func NewCTCertstream() *CTCertstreamDecoder {
	return &CTCertstreamDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*CTCertstreamDecoder) Format() string { return CTCertstreamFormat }

// ctName is an X.509 name as certstream writes it.
type ctName struct {
	Aggregated ingest.LenientString `json:"aggregated"`
	CN         ingest.LenientString `json:"CN"`
	O          ingest.LenientString `json:"O"`
}

// ctCert is the part of a certstream certificate that nhisentry uses; the
// DER and extensions are not read.
type ctCert struct {
	Subject      ctName   `json:"subject"`
	Issuer       *ctName  `json:"issuer"` // newer certstream versions only
	AllDomains   []string `json:"all_domains"`
	NotBefore    *float64 `json:"not_before"`
	NotAfter     *float64 `json:"not_after"`
	SerialNumber string   `json:"serial_number"`
	Fingerprint  string   `json:"fingerprint"`
}

type ctMessage struct {
	MessageType string `json:"message_type"`
	Data        struct {
		UpdateType string  `json:"update_type"`
		LeafCert   *ctCert `json:"leaf_cert"`
		Chain      []struct {
			Subject ctName `json:"subject"`
		} `json:"chain"`
		CertIndex *int64   `json:"cert_index"`
		CertLink  string   `json:"cert_link"`
		Seen      *float64 `json:"seen"`
		Source    struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		} `json:"source"`
	} `json:"data"`
}

// Decode implements ingest.Decoder.
func (d *CTCertstreamDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	var m ctMessage
	if de := ingest.DecodeJSON(CTCertstreamFormat, rec.Value, limit, ingest.DefaultMaxDepth, &m); de != nil {
		return dst, de
	}
	ev, de := m.event(rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func ctErr(reason, detail string, args ...any) *ingest.DecodeError {
	return ingest.Errorf(CTCertstreamFormat, reason, detail, args...)
}

func (m *ctMessage) event(rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	switch m.MessageType {
	case "certificate_update":
	case "":
		return schemas.Event{}, ctErr(ingest.ReasonNotAnEvent, "no message_type: not a certstream message")
	default:
		return schemas.Event{}, ctErr(ingest.ReasonNotAnEvent, "message_type %q is not a certificate_update", ingest.Truncate(m.MessageType, 40))
	}
	d := &m.Data
	leaf := d.LeafCert
	if leaf == nil {
		return schemas.Event{}, ctErr(ingest.ReasonMissingField, "data.leaf_cert is missing")
	}
	if d.Seen == nil {
		return schemas.Event{}, ctErr(ingest.ReasonMissingField, "data.seen is missing")
	}
	seen, err := unixSeconds(*d.Seen)
	if err != nil {
		return schemas.Event{}, ctErr(ingest.ReasonBadField, "data.seen %v is not a time", *d.Seen)
	}
	logURL := ingest.FirstOf(d.Source.URL, d.Source.Name)
	if logURL == "" {
		return schemas.Event{}, ctErr(ingest.ReasonMissingField, "data.source names no CT log")
	}
	if d.CertIndex == nil {
		return schemas.Event{}, ctErr(ingest.ReasonMissingField, "data.cert_index is missing")
	}

	// Issuer: the leaf's own issuer field when certstream sends it, else
	// the subject of the first chain certificate, which signed the leaf.
	var iss ctName
	switch {
	case leaf.Issuer != nil:
		iss = *leaf.Issuer
	case len(d.Chain) > 0:
		iss = d.Chain[0].Subject
	}
	issuerShort := string(ingest.FirstOf(string(iss.CN), string(iss.O)))
	if issuerShort == "" {
		return schemas.Event{}, ctErr(ingest.ReasonMissingField, "no issuer: leaf_cert.issuer and chain are both missing or unnamed")
	}

	var credID, idPart string
	switch {
	case leaf.SerialNumber != "":
		s, err := normalizeSerial(leaf.SerialNumber, false)
		if err != nil {
			return schemas.Event{}, ctErr(ingest.ReasonBadField, "leaf_cert.serial_number %q is not hex", ingest.Truncate(leaf.SerialNumber, 80))
		}
		credID, idPart = s, s
	case leaf.Fingerprint != "":
		fp := strings.ToLower(strings.ReplaceAll(leaf.Fingerprint, ":", ""))
		if !isHexString(fp) || len(fp) > 128 {
			return schemas.Event{}, ctErr(ingest.ReasonBadField, "leaf_cert.fingerprint is not hex")
		}
		credID, idPart = "sha1:"+fp, "sha1:"+fp
	default:
		return schemas.Event{}, ctErr(ingest.ReasonMissingField, "leaf_cert has neither serial_number nor fingerprint: no credential id to track")
	}

	is := &schemas.Issuance{
		Credential:     credID,
		CredentialType: "x509_certificate",
		Subject:        ingest.FirstOf(string(leaf.Subject.CN), string(leaf.Subject.Aggregated)),
		SANs:           leaf.AllDomains,
		Issuer:         ingest.FirstOf(string(iss.Aggregated), issuerShort),
	}
	cred := schemas.Credential{ID: credID, Type: "x509_certificate"}
	if leaf.NotBefore != nil {
		nb, err := unixSeconds(*leaf.NotBefore)
		if err != nil {
			return schemas.Event{}, ctErr(ingest.ReasonBadField, "leaf_cert.not_before %v is not a time", *leaf.NotBefore)
		}
		cred.IssuedAt = schemas.At(nb)
	}
	if leaf.NotAfter != nil {
		na, err := unixSeconds(*leaf.NotAfter)
		if err != nil {
			return schemas.Event{}, ctErr(ingest.ReasonBadField, "leaf_cert.not_after %v is not a time", *leaf.NotAfter)
		}
		cred.ExpiresAt = schemas.At(na)
	}
	if !cred.IssuedAt.IsZero() && cred.ExpiresAt.After(cred.IssuedAt.Time) {
		is.TTLSeconds = int64(cred.ExpiresAt.Sub(cred.IssuedAt.Time).Seconds())
	}
	resource := d.CertLink
	if resource == "" {
		resource = logURL
	}
	return schemas.Event{
		ID:   "ct:" + logURL + ":" + strconv.FormatInt(*d.CertIndex, 10),
		Time: schemas.At(seen),
		Source: schemas.Source{
			Family:   schemas.FamilyIssuance,
			Format:   CTCertstreamFormat,
			Provider: logURL,
		},
		Identity: schemas.Identity{
			ID:   "cert:" + issuerShort + "/" + idPart,
			Kind: schemas.KindCertificate,
			Name: is.Subject,
		},
		Credential: cred,
		Action:     "ct:logged",
		Service:    ingest.FirstOf(d.Source.Name, logURL),
		Target:     schemas.Target{Resource: resource},
		Outcome:    schemas.Outcome{Result: schemas.ResultSuccess},
		Issuance:   is,
		Provenance: rec.Provenance(),
	}, nil
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return s != ""
}
