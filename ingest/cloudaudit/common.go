package cloudaudit

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Helpers shared by the decoders of this package.

// obj decodes a JSON object into V and ignores any other value: audit logs
// re-exported by SIEMs and rule tests put placeholders ("…", null, a
// stringified object) where the schema has an object, and such context
// must not dead-letter an otherwise sound event.
type obj[T any] struct{ V T }

// UnmarshalJSON implements json.Unmarshaler.
func (o *obj[T]) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '{' {
		return json.Unmarshal(b, &o.V)
	}
	return nil
}

// list decodes a JSON array of objects and ignores any other value.
type list[T any] []T

// UnmarshalJSON implements json.Unmarshaler.
func (l *list[T]) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '[' {
		return json.Unmarshal(b, (*[]T)(l))
	}
	return nil
}

// text keeps a JSON string, or the literal of a number or boolean, as text
// and ignores objects, arrays and null: Azure writes resultType as "0",
// 0 or "Success" depending on the export path.
type text string

// UnmarshalJSON implements json.Unmarshaler.
func (s *text) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0:
	case b[0] == '"':
		return json.Unmarshal(b, (*string)(s))
	case b[0] == '-' || b[0] >= '0' && b[0] <= '9' || b[0] == 't' || b[0] == 'f':
		*s = text(b)
	}
	return nil
}

// valueText is a string or an Azure localizable value {"value": "…",
// "localizedValue": "…"}, of which the value is kept.
type valueText string

// UnmarshalJSON implements json.Unmarshaler.
func (s *valueText) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0:
	case b[0] == '"':
		return json.Unmarshal(b, (*string)(s))
	case b[0] == '{':
		var v struct {
			Value text `json:"value"`
		}
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = valueText(v.Value)
	}
	return nil
}

// eventTime parses the first non-empty of the candidate times; name is the
// field the first candidate came from, for the error detail.
func eventTime(format string, names []string, values ...string) (time.Time, *ingest.DecodeError) {
	for i, v := range values {
		if v == "" {
			continue
		}
		t, err := parseTime(v)
		if err != nil {
			return time.Time{}, ingest.Errorf(format, ingest.ReasonBadField, "%s: %v", names[i], err)
		}
		if t.Year() < 1 || t.Year() > 9999 {
			return time.Time{}, ingest.Errorf(format, ingest.ReasonBadField, "%s: year %d out of range", names[i], t.Year())
		}
		return t, nil
	}
	return time.Time{}, ingest.Errorf(format, ingest.ReasonMissingField, "no event time (%s)", strings.Join(names, ", "))
}

// hostIP returns the address of "ip", "ip:port" or "[ip]:port", or "" when
// s is not an IP address (a service name, "gce-internal-ip", a placeholder).
func hostIP(s string) string {
	if s == "" {
		return ""
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.String()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().String()
	}
	return ""
}

// isGUID reports whether s is a GUID (Azure application, object and tenant
// ids).
func isGUID(s string) bool {
	return len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-' &&
		isHexStr(s[:8]) && isHexStr(s[9:13]) && isHexStr(s[14:18]) && isHexStr(s[19:23]) && isHexStr(s[24:])
}

func isHexStr(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

// azureSP is the canonical identity of an Azure service principal, keyed
// by its application (client) id, lower-cased because Azure GUIDs are
// case-insensitive.
func azureSP(appID, name string) schemas.Identity {
	return schemas.Identity{ID: "azure:sp/" + strings.ToLower(appID), Kind: schemas.KindServicePrinc, Name: name}
}

// azureUser is the identity of an Entra ID user by user principal name,
// lower-cased because UPNs are case-insensitive.
func azureUser(upn, name string) schemas.Identity {
	return schemas.Identity{ID: "azure:user/" + strings.ToLower(upn), Kind: schemas.KindUser, Name: name}
}

// atoiOK parses a decimal integer.
func atoiOK(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil
}
