package ingest

import (
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/schemas"
)

// FirstOf returns the first of vs that is not empty, or "".
func FirstOf(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// Truncate bounds a value quoted in a DecodeError detail: it returns s when
// it has at most n bytes, and else cuts it to at most n bytes at a rune
// boundary (so that a valid detail stays valid UTF-8) and appends "…".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// HTTPOutcome classifies the HTTP status of a request that a gateway or a
// proxy logged: 401 and 403 are authorization denials, 5xx and 0 (no
// response: the connection failed) are failures, anything else succeeded.
// Status is always set.
func HTTPOutcome(status int) schemas.Outcome {
	o := schemas.Outcome{Result: schemas.ResultSuccess, Status: status}
	switch {
	case status == 401 || status == 403:
		o.Result = schemas.ResultDenied
	case status >= 500 || status == 0:
		o.Result = schemas.ResultFailure
	}
	return o
}
