package issuance

import (
	"net/netip"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Format is the configured name of the Vault audit-log decoder.
const Format = "vault_audit"

// DefaultCluster names the Kubernetes cluster of identities that log in with
// Vault's kubernetes auth method when no cluster is configured.
const DefaultCluster = "default"

// Decoder decodes entries of Vault's file (or socket/syslog) audit device,
// one JSON entry per record. The zero value is ready to use; New returns
// one with the defaults spelled out.
type Decoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
	// Cluster is the Kubernetes cluster whose service accounts log in
	// through this Vault's kubernetes auth method; "" means DefaultCluster.
	Cluster string
}

// New returns a Decoder with the default limits and cluster.
func New() *Decoder {
	return &Decoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes, Cluster: DefaultCluster}
}

// Format implements ingest.Decoder.
func (*Decoder) Format() string { return Format }

// entry holds the fields of a Vault audit entry that nhisentry uses.
type entry struct {
	Time    string    `json:"time"`
	Type    string    `json:"type"`
	Error   string    `json:"error"`
	Auth    vaultAuth `json:"auth"`
	Request struct {
		ID                  string `json:"id"`
		Operation           string `json:"operation"`
		Path                string `json:"path"`
		ClientToken         string `json:"client_token"`
		ClientTokenAccessor string `json:"client_token_accessor"`
		RemoteAddress       string `json:"remote_address"`
		Data                struct {
			CommonName ingest.LenientString `json:"common_name"`
			AltNames   ingest.LenientString `json:"alt_names"`
		} `json:"data"`
	} `json:"request"`
	Response struct {
		Auth *vaultAuth `json:"auth"`
		Data struct {
			SerialNumber ingest.LenientString `json:"serial_number"`
			Expiration   ingest.LenientInt    `json:"expiration"`
		} `json:"data"`
	} `json:"response"`
}

// vaultAuth is the token an entry is about: the caller's in entry.auth, the
// new token's in response.auth.
type vaultAuth struct {
	ClientToken string `json:"client_token"`
	Accessor    string `json:"accessor"`
	DisplayName string `json:"display_name"`
	EntityID    string `json:"entity_id"`
	Metadata    struct {
		ServiceAccountNamespace string `json:"service_account_namespace"`
		ServiceAccountName      string `json:"service_account_name"`
	} `json:"metadata"`
	TokenTTL      int64 `json:"token_ttl"`
	LeaseDuration int64 `json:"lease_duration"`
}

// Decode implements ingest.Decoder. A request entry yields no event: Vault
// writes every call twice, and the response entry carries the outcome, so
// counting requests too would double every rate.
func (d *Decoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	var e entry
	if de := ingest.DecodeJSON(Format, rec.Value, limit, ingest.DefaultMaxDepth, &e); de != nil {
		return dst, de
	}
	switch e.Type {
	case "request":
		return dst, nil
	case "response":
	default:
		return dst, ingest.Errorf(Format, ingest.ReasonNotAnEvent, "type %q is neither request nor response", e.Type)
	}
	cluster := d.Cluster
	if cluster == "" {
		cluster = DefaultCluster
	}
	ev, de := e.event(rec, cluster)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func (e *entry) event(rec ingest.Record, cluster string) (schemas.Event, *ingest.DecodeError) {
	if e.Time == "" {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "time is missing")
	}
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonBadField, "time: %v", err)
	}
	if e.Request.Operation == "" {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "request.operation is missing")
	}
	var ip string
	if _, err := netip.ParseAddr(e.Request.RemoteAddress); err == nil {
		ip = e.Request.RemoteAddress
	}
	id, de := identity(&e.Auth, cluster, e.Request.ClientTokenAccessor, e.Request.ClientToken, ip)
	if de != nil {
		return schemas.Event{}, de
	}
	if id.ID == "" {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "no auth, client token or remote_address to identify the caller")
	}

	var cred schemas.Credential
	if acc := ingest.FirstOf(e.Auth.Accessor, e.Request.ClientTokenAccessor); acc != "" {
		cred = schemas.Credential{ID: acc, Type: "vault_token"}
	}
	eventID := schemas.HashID(Format, rec.Value)
	if e.Request.ID != "" {
		eventID = "vault:" + e.Request.ID + ":response"
	}
	ev := schemas.Event{
		ID:   eventID,
		Time: schemas.At(t),
		Source: schemas.Source{
			Family:   schemas.FamilyIssuance,
			Format:   Format,
			Provider: "vault",
		},
		Identity:   id,
		Credential: cred,
		Actor:      schemas.Actor{IP: ip},
		Action:     "vault:" + e.Request.Operation + ":" + ingest.TemplatePath(e.Request.Path),
		Service:    "vault",
		Target:     schemas.Target{Resource: e.Request.Path},
		Outcome:    outcome(e.Error),
		Provenance: rec.Provenance(),
	}
	if e.Error == "" {
		if ev.Issuance, de = e.issuance(t, cluster, id.ID); de != nil {
			return schemas.Event{}, de
		}
	}
	return ev, nil
}

// identity resolves the token an entry is about to the most stable identity
// it shows: a Kubernetes service account (kubernetes auth), then the Vault
// entity, then the token itself by accessor, then the HMAC of the token when
// not even the accessor is logged, and last the client address. It returns
// an empty identity when there is none.
func identity(a *vaultAuth, cluster, requestAccessor, requestToken, ip string) (schemas.Identity, *ingest.DecodeError) {
	md := &a.Metadata
	if md.ServiceAccountNamespace != "" || md.ServiceAccountName != "" {
		id, err := ingest.K8sServiceAccount(cluster, md.ServiceAccountNamespace, md.ServiceAccountName)
		if err != nil {
			return schemas.Identity{}, ingest.Errorf(Format, ingest.ReasonBadField, "auth.metadata: %v", err)
		}
		return id, nil
	}
	if a.EntityID != "" {
		return schemas.Identity{ID: "vault:entity/" + a.EntityID, Kind: schemas.KindUnknown, Name: a.DisplayName}, nil
	}
	if acc := ingest.FirstOf(a.Accessor, requestAccessor); acc != "" {
		return schemas.Identity{ID: "vault:accessor/" + acc, Kind: schemas.KindToken, Name: a.DisplayName}, nil
	}
	// Only an HMAC: with log_raw the field is the token itself, a secret
	// that must never become an identity string.
	if tok := ingest.FirstOf(a.ClientToken, requestToken); strings.HasPrefix(tok, "hmac-sha256:") {
		return schemas.Identity{ID: "vault:token/" + tok, Kind: schemas.KindToken, Name: a.DisplayName}, nil
	}
	if ip != "" {
		return ingest.IPIdentity(ip), nil
	}
	return schemas.Identity{}, nil
}

// outcome classifies Vault's error. Vault answers 403 both for a policy
// denial and for a request without a token, so both are denials.
func outcome(errText string) schemas.Outcome {
	if errText == "" {
		return schemas.Outcome{Result: schemas.ResultSuccess}
	}
	// Vault wraps errors as "1 error occurred:\n\t* permission denied\n\n".
	code := errText
	if _, inner, ok := strings.Cut(errText, "* "); ok {
		code = inner
	}
	code = strings.TrimSpace(code)
	if strings.Contains(code, "permission denied") || strings.Contains(code, "missing client token") {
		return schemas.Outcome{Result: schemas.ResultDenied, ErrorCode: code}
	}
	return schemas.Outcome{Result: schemas.ResultFailure, ErrorCode: code}
}

// issuance returns what a successful entry minted: a token (login, token
// create) or a PKI certificate; nil for any other call.
func (e *entry) issuance(t time.Time, cluster, requester string) (*schemas.Issuance, *ingest.DecodeError) {
	path := e.Request.Path
	if na := e.Response.Auth; na != nil && na.Accessor != "" || strings.HasPrefix(path, "auth/token/create") {
		is := &schemas.Issuance{CredentialType: "vault_token", Issuer: "vault", Requester: requester}
		if na := e.Response.Auth; na != nil {
			is.Credential = na.Accessor
			subject, de := identity(na, cluster, "", "", "")
			if de != nil {
				return nil, de
			}
			is.Subject = subject.ID
			is.TTLSeconds = na.TokenTTL
			if is.TTLSeconds == 0 {
				is.TTLSeconds = na.LeaseDuration
			}
		}
		return is, nil
	}
	mount, rest, _ := strings.Cut(path, "/")
	if strings.HasPrefix(mount, "pki") && strings.HasPrefix(rest, "issue/") && e.Response.Data.SerialNumber != "" {
		is := &schemas.Issuance{
			Credential:     string(e.Response.Data.SerialNumber),
			CredentialType: "x509_certificate",
			Subject:        string(e.Request.Data.CommonName),
			Issuer:         "vault:" + mount,
			Requester:      requester,
		}
		for san := range strings.SplitSeq(string(e.Request.Data.AltNames), ",") {
			if san = strings.TrimSpace(san); san != "" {
				is.SANs = append(is.SANs, san)
			}
		}
		if exp := int64(e.Response.Data.Expiration); exp > t.Unix() {
			is.TTLSeconds = exp - t.Unix()
		}
		return is, nil
	}
	return nil, nil
}
