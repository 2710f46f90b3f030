package formats

import (
	"bytes"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// FormatAuto is the configured format of a topic that carries several
// formats: each record is routed to the decoder that recognizes it.
const FormatAuto = "auto"

// sniff says whether a record (already unwrapped) looks like a format. The
// tests are byte searches for keys or shapes no other format has, so routing
// costs far less than decoding; the chosen decoder still validates fully.
type sniff struct {
	format string
	looks  func(b []byte) bool
}

func has(b []byte, keys ...string) bool {
	for _, k := range keys {
		if !bytes.Contains(b, []byte(k)) {
			return false
		}
	}
	return true
}

func hasAny(b []byte, keys ...string) bool {
	for _, k := range keys {
		if bytes.Contains(b, []byte(k)) {
			return true
		}
	}
	return false
}

// jsonSniffs are tried, in order, on records that start with '{'. More
// specific shapes come before looser ones.
var jsonSniffs = []sniff{
	{"cloudtrail", func(b []byte) bool {
		return has(b, `"Records"`) || has(b, `"eventSource"`, `"eventName"`)
	}},
	// Some exports lower-case every key.
	{"gcp_audit", func(b []byte) bool { return hasAny(b, `"protoPayload"`, `"protopayload"`) }},
	{"k8s_audit", func(b []byte) bool {
		return has(b, `"auditID"`) || has(b, `"audit.k8s.io/`) || has(b, `kube-audit`) ||
			(has(b, `"verb"`) && hasAny(b, `"objectRef"`, `"requestURI"`))
	}},
	{"vault_audit", func(b []byte) bool { return has(b, `"request"`, `"type"`) && hasAny(b, `"auth"`, `"remote_address"`) }},
	{"kong", func(b []byte) bool {
		return hasAny(b, `"authenticated_entity"`, `"latencies"`) && has(b, `"started_at"`)
	}},
	{"ct_certstream", func(b []byte) bool { return has(b, `"message_type"`) }},
	{"github_oidc", func(b []byte) bool { return has(b, `"iss"`, `token.actions.githubusercontent.com`) }},
	{"entra_signin", func(b []byte) bool {
		return hasAny(b, `SignInLogs"`, `"servicePrincipalCredentialKeyId"`, `"conditionalAccessStatus"`)
	}},
	{"entra_audit", func(b []byte) bool { return has(b, `"initiatedBy"`) || has(b, `"AuditLogs"`) }},
	{"azure_activity", func(b []byte) bool {
		return has(b, `"operationName"`) && hasAny(b, `"resourceId"`, `"callerIpAddress"`, `"caller"`)
	}},
	// Unquoted keys: API Gateway logs often arrive escaped inside a
	// CloudWatch Logs payload or a collector's "message" string.
	{"apigateway", func(b []byte) bool {
		return has(b, `requestId`) && hasAny(b, `httpMethod`, `routeKey`, `resourcePath`, `apiId`, `"logEvents"`)
	}},
	{"linkerd_json", func(b []byte) bool { return has(b, `"client.addr"`) || has(b, `"client.id"`) }},
	{"envoy_json", func(b []byte) bool {
		return hasAny(b, `"upstream_cluster"`, `"downstream_remote_address"`, `"response_flags"`, `"upstream_host"`)
	}},
	{"nginx_json", func(b []byte) bool { return has(b, `"remote_addr"`) && hasAny(b, `"request"`, `"request_uri"`) }},
	{"spire_server", func(b []byte) bool { return has(b, `"msg"`, `"level"`) && hasAny(b, `spiffe://`, `"subsystem_name"`) }},
	{"certmanager", func(b []byte) bool { return has(b, `"msg"`) && hasAny(b, `cert-manager`, `CertificateRequest`) }},
}

// textSniffs are tried on records that do not start with '{'.
var textSniffs = []sniff{
	{"github_oidc", func(b []byte) bool { return bytes.HasPrefix(b, []byte("eyJ")) && bytes.Count(b, []byte(".")) == 2 }},
	{"spire_server", func(b []byte) bool { return bytes.HasPrefix(b, []byte(`time="`)) }},
	{"ztunnel", func(b []byte) bool { return has(b, " access ", "src.addr=") }},
	{"certmanager", func(b []byte) bool { return isKlog(b) }},
	{"envoy_text", func(b []byte) bool {
		return bytes.HasPrefix(b, []byte("[")) || bytes.HasPrefix(b, []byte("ACCESS ["))
	}},
	// Linkerd's apache-like lines carry an RFC 3339 time in brackets where
	// NGINX has "07/Feb/2020:11:48:51 +0000".
	{"linkerd_text", func(b []byte) bool { return isRFC3339Bracket(b) }},
	{"nginx", func(b []byte) bool { return has(b, ` [`, `] "`) }},
}

// isRFC3339Bracket reports whether the first "[" of b opens an RFC 3339
// date ("[2022-08-23T…").
func isRFC3339Bracket(b []byte) bool {
	i := bytes.IndexByte(b, '[')
	if i < 0 || len(b) < i+12 {
		return false
	}
	d := b[i+1 : i+12]
	for _, j := range []int{0, 1, 2, 3, 5, 6, 8, 9} {
		if d[j] < '0' || d[j] > '9' {
			return false
		}
	}
	return d[4] == '-' && d[7] == '-' && d[10] == 'T'
}

// isKlog matches Kubernetes' klog header: "I0113 16:51:59.186482 …".
func isKlog(b []byte) bool {
	if len(b) < 22 || bytes.IndexByte([]byte("IWEF"), b[0]) < 0 {
		return false
	}
	for _, i := range []int{1, 2, 3, 4, 6, 7, 9, 10, 12, 13} {
		if b[i] < '0' || b[i] > '9' {
			return false
		}
	}
	return b[5] == ' ' && b[8] == ':' && b[11] == ':'
}

// Auto routes each record to the built-in decoder that recognizes it.
type Auto struct {
	byName map[string]ingest.Decoder
}

// NewAuto returns an auto-detecting decoder over decoders.
func NewAuto(decoders []ingest.Decoder) *Auto {
	a := &Auto{byName: map[string]ingest.Decoder{}}
	for _, d := range decoders {
		a.byName[d.Format()] = d
	}
	return a
}

// Format implements ingest.Decoder.
func (a *Auto) Format() string { return FormatAuto }

// Detect returns the decoder for raw, or nil.
func (a *Auto) Detect(raw []byte) ingest.Decoder {
	b := bytes.TrimLeft(ingest.Unwrap(raw), " \t\r\n")
	sniffs := textSniffs
	if len(b) > 0 && b[0] == '{' {
		sniffs = jsonSniffs
	}
	for _, s := range sniffs {
		if d := a.byName[s.format]; d != nil && s.looks(b) {
			return d
		}
	}
	return nil
}

// Decode implements ingest.Decoder.
func (a *Auto) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	d := a.Detect(rec.Value)
	if d == nil {
		return dst, ingest.Errorf(FormatAuto, ingest.ReasonUnknownFormat, "no built-in format recognizes a record starting %q", head(rec.Value))
	}
	return d.Decode(dst, rec)
}

// head is the start of a record, for error details: short, valid UTF-8.
func head(b []byte) string {
	const n = 40
	if len(b) > n {
		b = b[:n]
	}
	for !utf8.Valid(b) && len(b) > 0 {
		b = b[:len(b)-1]
	}
	return string(b)
}
