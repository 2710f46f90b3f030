package gateway

import (
	"net/netip"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Format is the configured name of the Kong log-plugin JSON decoder.
const Format = "kong"

// maxEpochMillis is 10000-01-01T00:00:00Z: later times do not fit RFC 3339.
const maxEpochMillis = 253402300800000

// Decoder decodes the JSON object Kong's log plugins (file-log, http-log,
// tcp-log, …) write per request. The zero value is ready to use; New
// returns one with the defaults spelled out.
type Decoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// New returns a Decoder with the default limits.
func New() *Decoder { return &Decoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes} }

// Format implements ingest.Decoder.
func (*Decoder) Format() string { return Format }

// kongLog holds the fields of a Kong log-plugin entry that nhisentry uses.
type kongLog struct {
	Service struct {
		ID   string `json:"id"`
		Name string `json:"name"`
		Host string `json:"host"`
	} `json:"service"`
	Request struct {
		ID      string      `json:"id"` // Kong ≥ 3.5
		Method  string      `json:"method"`
		URI     string      `json:"uri"`
		Size    uint64      `json:"size"`
		Headers kongHeaders `json:"headers"`
	} `json:"request"`
	Response struct {
		Status int    `json:"status"`
		Size   uint64 `json:"size"`
	} `json:"response"`
	Latencies struct {
		Request float64 `json:"request"`
	} `json:"latencies"`
	ClientIP            string `json:"client_ip"`
	StartedAt           int64  `json:"started_at"` // Unix milliseconds
	AuthenticatedEntity struct {
		ID string `json:"id"`
	} `json:"authenticated_entity"`
	Consumer struct {
		ID       string `json:"id"`
		Username string `json:"username"`
	} `json:"consumer"`
}

// kongHeaders are the request headers nhisentry reads. Kong logs a header
// sent more than once as an array, so each is a headerValue.
type kongHeaders struct {
	KongRequestID headerValue `json:"x-kong-request-id"`
	RequestID     headerValue `json:"x-request-id"`
	UserAgent     headerValue `json:"user-agent"`
}

// headerValue is a header logged as a string or, when repeated, an array of
// strings, of which the first is kept. Any other value is ignored: headers
// are context, and an odd one must not dead-letter the request.
type headerValue string

// UnmarshalJSON implements json.Unmarshaler.
func (h *headerValue) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		return json.Unmarshal(b, (*string)(h))
	case len(b) > 0 && b[0] == '[':
		var vs []any
		if err := json.Unmarshal(b, &vs); err != nil {
			return err
		}
		if len(vs) > 0 {
			if s, ok := vs[0].(string); ok {
				*h = headerValue(s)
			}
		}
	}
	return nil
}

// Decode implements ingest.Decoder.
func (d *Decoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	var l kongLog
	if de := ingest.DecodeJSON(Format, rec.Value, limit, ingest.DefaultMaxDepth, &l); de != nil {
		return dst, de
	}
	ev, de := l.event(rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

func (l *kongLog) event(rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	if l.StartedAt == 0 {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "started_at is missing")
	}
	if l.StartedAt < 0 || l.StartedAt >= maxEpochMillis {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonBadField, "started_at %d is not a Unix time in milliseconds", l.StartedAt)
	}
	if l.Response.Status < 0 || l.Response.Status > 999 {
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonBadField, "response.status %d is not an HTTP status", l.Response.Status)
	}
	if l.Request.Method == "" {
		// Stream (L4) routes log a session instead of a request; they are
		// not supported yet and go to the dead-letter topic visibly.
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "request.method is missing")
	}
	if l.ClientIP != "" {
		if _, err := netip.ParseAddr(l.ClientIP); err != nil {
			return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonBadField, "client_ip: %v", err)
		}
	}

	var id schemas.Identity
	var cred schemas.Credential
	switch {
	case l.AuthenticatedEntity.ID != "":
		// The credential (key-auth key, JWT secret, OAuth2 client, …) is
		// what the caller presented; the consumer owns it and may own
		// several, each of them a separately revocable identity.
		id = ingest.APIKeyIdentity(Format, l.AuthenticatedEntity.ID)
		cred = schemas.Credential{ID: l.AuthenticatedEntity.ID, Type: "kong_credential"}
	case l.Consumer.ID != "":
		id = ingest.APIKeyIdentity(Format, "consumer/"+l.Consumer.ID)
	case l.Consumer.Username != "":
		id = ingest.APIKeyIdentity(Format, "consumer/"+l.Consumer.Username)
	case l.ClientIP != "":
		id = ingest.IPIdentity(l.ClientIP)
	default:
		return schemas.Event{}, ingest.Errorf(Format, ingest.ReasonMissingField, "no authenticated_entity, consumer or client_ip to identify the caller")
	}
	id.Name = l.Consumer.Username

	eventID := ingest.FirstOf(l.Request.ID, string(l.Request.Headers.KongRequestID), string(l.Request.Headers.RequestID))
	if eventID != "" {
		eventID = "kong:" + eventID
	} else {
		eventID = schemas.HashID(Format, rec.Value)
	}

	duration := l.Latencies.Request
	if duration < 0 { // Kong logs -1 for a latency it did not measure
		duration = 0
	}
	return schemas.Event{
		ID:   eventID,
		Time: schemas.At(time.UnixMilli(l.StartedAt)),
		Source: schemas.Source{
			Family:   schemas.FamilyGateway,
			Format:   Format,
			Provider: "kong",
		},
		Identity:   id,
		Credential: cred,
		Actor: schemas.Actor{
			IP:        l.ClientIP,
			UserAgent: string(l.Request.Headers.UserAgent),
		},
		Action:     l.action(),
		Service:    ingest.FirstOf(l.Service.Name, l.Service.Host, l.Service.ID),
		Outcome:    ingest.HTTPOutcome(l.Response.Status),
		BytesIn:    l.Request.Size,
		BytesOut:   l.Response.Size,
		DurationMS: duration,
		Provenance: rec.Provenance(),
	}, nil
}

// action is "METHOD /templated/path".
func (l *kongLog) action() string {
	if l.Request.URI == "" {
		return l.Request.Method
	}
	return l.Request.Method + " " + ingest.TemplatePath(l.Request.URI)
}
