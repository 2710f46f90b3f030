package ingest

import (
	"strconv"

	json "github.com/goccy/go-json"
)

// Lenient JSON values: fields that are best-effort context (request
// parameters, response data, structured log fields) whose shape differs per
// API, engine or exporter. Each keeps the value when it has the expected
// shape and silently ignores any other, so that one producer's odd shape
// does not dead-letter an otherwise sound event. None of them ever returns an
// error from UnmarshalJSON except for a malformed JSON string.

// LenientString keeps a JSON string and ignores any other value.
type LenientString string

// UnmarshalJSON implements json.Unmarshaler.
func (s *LenientString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, (*string)(s))
	}
	return nil
}

// LenientStrings keeps a JSON array of strings (dropping elements that are
// not strings), or a single string as a one-element list, and ignores any
// other value.
type LenientStrings []string

// UnmarshalJSON implements json.Unmarshaler.
func (s *LenientStrings) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) > 0 && b[0] == '"':
		var v string
		if json.Unmarshal(b, &v) == nil {
			*s = LenientStrings{v}
		}
	case len(b) > 0 && b[0] == '[':
		var raw []json.RawMessage
		if json.Unmarshal(b, &raw) != nil {
			return nil
		}
		for _, r := range raw {
			var v string
			if json.Unmarshal(r, &v) == nil {
				*s = append(*s, v)
			}
		}
	}
	return nil
}

// LenientInt keeps a JSON integer that fits int64 and ignores any other
// value, a string holding digits included (see LenientIntOrString).
type LenientInt int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *LenientInt) UnmarshalJSON(b []byte) error {
	if v, err := strconv.ParseInt(string(b), 10, 64); err == nil {
		*n = LenientInt(v)
	}
	return nil
}

// LenientIntOrString keeps a JSON integer, or a JSON string holding one
// ("900", as some exporters stringify numbers), and ignores anything else.
type LenientIntOrString int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *LenientIntOrString) UnmarshalJSON(b []byte) error {
	if len(b) > 1 && b[0] == '"' {
		b = b[1 : len(b)-1]
	}
	return (*LenientInt)(n).UnmarshalJSON(b)
}
