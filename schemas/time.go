package schemas

import (
	"fmt"
	"time"
)

// TimeLayout is the JSON form of every timestamp: RFC 3339 in UTC with a fixed
// microsecond fraction, so readers never have to guess whether a value without
// a fraction is truncated.
const TimeLayout = "2006-01-02T15:04:05.000000Z07:00"

// Time is a time.Time whose JSON form is TimeLayout. The zero Time encodes as
// null so optional times (credential expiry, say) stay explicit.
type Time struct{ time.Time }

// At wraps t, normalized to UTC and to the microseconds TimeLayout keeps,
// so an event is the same after it crossed the repartition topic as a JSON
// document.
func At(t time.Time) Time { return Time{t.UTC().Truncate(time.Microsecond)} }

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	if t.IsZero() {
		return []byte("null"), nil
	}
	b := make([]byte, 0, len(TimeLayout)+2)
	b = append(b, '"')
	b = t.UTC().AppendFormat(b, TimeLayout)
	return append(b, '"'), nil
}

// UnmarshalJSON implements json.Unmarshaler; it accepts any RFC 3339 time.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = Time{}
		return nil
	}
	if len(b) < 2 || b[0] != '"' || b[len(b)-1] != '"' {
		return fmt.Errorf("time %s: want an RFC 3339 string", b)
	}
	v, err := time.Parse(time.RFC3339Nano, string(b[1:len(b)-1]))
	if err != nil {
		return fmt.Errorf("time: %w", err)
	}
	*t = At(v)
	return nil
}
