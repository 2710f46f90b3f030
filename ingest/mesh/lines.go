package mesh

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/ingest"
)

// unwrap is the front half every decoder of this package shares: it enforces
// the size limit, rejects invalid UTF-8 and over-deep JSON wrappers before
// ingest.Unwrap parses them (the JSON parser would replace invalid UTF-8
// silently), and returns the log line inside any CRI, Docker or collector
// wrapper without its line ending.
func unwrap(format string, raw []byte, limit int) ([]byte, *ingest.DecodeError) {
	if de := ingest.CheckSize(format, raw, limit); de != nil {
		return nil, de
	}
	if len(raw) > 0 && raw[0] == '{' {
		if de := ingest.CheckJSON(raw, ingest.DefaultMaxDepth); de != nil {
			de.Format = format
			return nil, de
		}
	} else if !utf8.Valid(raw) {
		return nil, ingest.Errorf(format, ingest.ReasonInvalidUTF8, "the line is not valid UTF-8")
	}
	line := ingest.Unwrap(raw)
	if !utf8.Valid(line) { // a \u escape in a JSON wrapper cannot make it invalid, but be sure
		return nil, ingest.Errorf(format, ingest.ReasonInvalidUTF8, "the unwrapped line is not valid UTF-8")
	}
	return bytes.TrimRight(line, " \t\r\n"), nil
}

// token is one field of a text access log: a bare word, or the content of a
// double-quoted field.
type token struct {
	s      string
	quoted bool
}

// splitFields splits s into space-separated fields, a field that starts with
// a double quote running to the next quote that is followed by a space or
// the end of the line (the proxies do not escape quotes, so a User-Agent may
// hold one). It stops after max fields and reports false when there are more
// or a quote is not closed.
func splitFields(s string, dst []token, max int) ([]token, bool) {
	i := 0
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			return dst, true
		}
		if len(dst) == max {
			return dst, false
		}
		if s[i] == '"' {
			j := i + 1
			for {
				k := strings.IndexByte(s[j:], '"')
				if k < 0 {
					return dst, false
				}
				e := j + k
				if e+1 == len(s) || s[e+1] == ' ' || s[e+1] == '\t' {
					dst = append(dst, token{s: s[i+1 : e], quoted: true})
					i = e + 1
					break
				}
				j = e + 1
			}
			continue
		}
		e := strings.IndexAny(s[i:], " \t")
		if e < 0 {
			e = len(s) - i
		}
		dst = append(dst, token{s: s[i : i+e]})
		i += e
	}
}
