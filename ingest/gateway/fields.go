package gateway

import (
	"bytes"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/ingest"
)

// scalar is a JSON log value that user-defined log formats write either as a
// string ("status":"$status") or bare ("status":$status): it keeps the text
// of a string, number or boolean. Access-log formats print "-" (and NGINX's
// escape=json prints "") for an empty variable; both read as unset. An object
// or array is remembered as bad, so that the decoder can report the field by
// name instead of silently dropping it.
type scalar struct {
	v   string
	bad bool
}

// UnmarshalJSON implements json.Unmarshaler.
func (s *scalar) UnmarshalJSON(b []byte) error {
	switch {
	case len(b) == 0:
	case b[0] == '"':
		if bytes.IndexByte(b, '\\') < 0 {
			s.v = string(b[1 : len(b)-1])
		} else if err := json.Unmarshal(b, &s.v); err != nil {
			return err
		}
	case b[0] == '{' || b[0] == '[':
		s.bad = true
	case string(b) == "null":
	default: // number, true, false
		s.v = string(b)
	}
	if s.v == "-" {
		s.v = ""
	}
	return nil
}

// namedScalar pairs a field with its name for error details.
type namedScalar struct {
	name string
	s    *scalar
}

// checkScalars reports the first field that held an object or array.
func checkScalars(format string, fields []namedScalar) *ingest.DecodeError {
	for _, f := range fields {
		if f.s.bad {
			return ingest.Errorf(format, ingest.ReasonBadField, "%s is an object or array, want a string or number", f.name)
		}
	}
	return nil
}

// parseStatus parses an HTTP status; "" is 0 (not logged).
func parseStatus(format, field, s string) (int, *ingest.DecodeError) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 999 {
		return 0, ingest.Errorf(format, ingest.ReasonBadField, "%s %q is not an HTTP status", field, truncate(s))
	}
	return n, nil
}

// parseBytes parses a byte count; "" is 0.
func parseBytes(format, field, s string) (uint64, *ingest.DecodeError) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, ingest.Errorf(format, ingest.ReasonBadField, "%s %q is not a byte count", field, truncate(s))
	}
	return n, nil
}

// maxDurationSeconds bounds a logged duration (a day is already absurd for
// an HTTP request; this only keeps garbage and infinities out).
const maxDurationSeconds = 365 * 24 * 3600

// parseSeconds parses a duration in seconds ("0.001", NGINX's $request_time)
// and returns milliseconds; "" is 0.
func parseSeconds(format, field, s string) (float64, *ingest.DecodeError) {
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > maxDurationSeconds || math.IsNaN(f) {
		return 0, ingest.Errorf(format, ingest.ReasonBadField, "%s %q is not a duration in seconds", field, truncate(s))
	}
	return math.Round(f*1e6) / 1e3, nil // whole microseconds, in ms
}

// parseMillis parses a duration in milliseconds; "" is 0.
func parseMillis(format, field, s string) (float64, *ingest.DecodeError) {
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f > maxDurationSeconds*1e3 || math.IsNaN(f) {
		return 0, ingest.Errorf(format, ingest.ReasonBadField, "%s %q is not a duration in milliseconds", field, truncate(s))
	}
	return f, nil
}

// clfLayout is the Common Log Format time: NGINX's $time_local and API
// Gateway's $context.requestTime.
const clfLayout = "02/Jan/2006:15:04:05 -0700"

// parseCLFTime parses a Common Log Format time.
func parseCLFTime(format, field, s string) (time.Time, *ingest.DecodeError) {
	t, err := time.Parse(clfLayout, s)
	if err != nil {
		return time.Time{}, ingest.Errorf(format, ingest.ReasonBadField, "%s %q is not a time like %s", field, truncate(s), clfLayout)
	}
	return t, nil
}

// checkYear rejects times that RFC 3339 cannot print.
func checkYear(format, field string, t time.Time) *ingest.DecodeError {
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return ingest.Errorf(format, ingest.ReasonBadField, "%s is in year %d", field, y)
	}
	return nil
}

// parseIP validates a logged client address.
func parseIP(format, field, s string) (string, *ingest.DecodeError) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", ingest.Errorf(format, ingest.ReasonBadField, "%s %q is not an IP address", field, truncate(s))
	}
	return a.String(), nil
}

// stripQuery drops the query string and fragment of a request target: they
// may carry secrets (?api_key=…, ?token=…) and never go into an event.
func stripQuery(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// truncate bounds a value quoted in an error detail.
func truncate(s string) string { return ingest.Truncate(s, 64) }
