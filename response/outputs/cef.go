package outputs

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/schemas"
)

// CEF (ArcSight Common Event Format, version 0) and LEEF (IBM QRadar Log
// Event Extended Format, version 2.0) forms of a finding: the MSG part of a
// syslog message. The field mappings are documented in docs/outputs.md
// (section syslog) and pinned by testdata/syslog/*.golden.
const (
	productVendor = "nhisentry"
	productName   = "nhisentry"
	// leefTimeFormat is the Java SimpleDateFormat pattern of devTime.
	leefTimeFormat = "yyyy-MM-dd'T'HH:mm:ss.SSSX"
	// timeLayout is RFC 3339 in UTC with milliseconds: the syslog
	// TIMESTAMP and LEEF devTime.
	timeLayout = "2006-01-02T15:04:05.000Z"
)

// Escapes: the characters each context prefixes with a backslash.
const (
	cefHeaderSpecials = `\|`
	cefExtSpecials    = `\=`
	sdValueSpecials   = `\"]` // RFC 5424 §6.3.3
)

// severityLevels maps a finding's severity to the syslog severity (RFC 5424
// §6.2.1) and to the CEF/LEEF severity (0–10, 10 the most severe). An
// unknown severity is treated as info.
func severityLevels(s schemas.Severity) (syslog, cef int) {
	switch s {
	case schemas.SeverityCritical:
		return 2, 10 // crit
	case schemas.SeverityHigh:
		return 3, 8 // err
	case schemas.SeverityMedium:
		return 4, 5 // warning
	case schemas.SeverityLow:
		return 5, 3 // notice
	}
	return 6, 1 // info
}

// signatureID names what raised the finding: the rule id for a rule, else
// the detector.
func signatureID(f *schemas.Finding) string {
	if f.RuleID != "" {
		return f.RuleID
	}
	return f.Detector
}

// appendCEF appends the CEF form of f; version is the product version.
func appendCEF(b []byte, f *schemas.Finding, version string) []byte {
	_, sev := severityLevels(f.Severity)
	b = append(b, "CEF:0|"+productVendor+"|"+productName+"|"...)
	for _, h := range []string{version, signatureID(f), f.Title, strconv.Itoa(sev)} {
		b = appendEscaped(b, h, cefHeaderSpecials, false)
		b = append(b, '|')
	}
	kv := kvWriter{b: b, sep: ' ', specials: cefExtSpecials, escapeNewlines: true}
	kv.add("rt", epochMillis(f.LastSeen))
	kv.add("start", epochMillis(f.FirstSeen))
	kv.add("end", epochMillis(f.LastSeen))
	kv.add("suser", f.Identity.ID)
	kv.labelled("cs4", "identityKind", string(f.Identity.Kind))
	kv.labelled("flexString1", "identityName", f.Identity.Name)
	kv.add("externalId", f.ID)
	kv.labelled("cs1", "findingId", f.ID)
	kv.labelled("cn1", "count", strconv.Itoa(max(f.Count, 1)))
	kv.labelled("cn2", "revision", strconv.Itoa(f.Revision))
	kv.labelled("cn3", "score", strconv.Itoa(f.Score))
	kv.add("cat", f.Detector)
	kv.labelled("cs2", "technique", f.Technique)
	kv.labelled("cs3", "eventIds", strings.Join(f.EventIDs, ","))
	kv.labelled("cs5", "observed", f.Analysis.Observed)
	kv.labelled("cs6", "baseline", f.Analysis.Baseline)
	kv.add("msg", f.Explanation)
	return kv.b
}

// appendLEEF appends the LEEF 2.0 form of f; version is the product version.
// The header names tab (x09) as the attribute delimiter explicitly.
func appendLEEF(b []byte, f *schemas.Finding, version string) []byte {
	_, sev := severityLevels(f.Severity)
	b = append(b, "LEEF:2.0|"+productVendor+"|"+productName+"|"...)
	for _, h := range []string{version, signatureID(f), "x09"} {
		b = appendEscaped(b, h, cefHeaderSpecials, false)
		b = append(b, '|')
	}
	// LEEF has no escape inside a value: the delimiter (tab) and every other
	// control character become a space.
	kv := kvWriter{b: b, sep: '\t'}
	if ts := rfc3339Millis(f.LastSeen); ts != "" {
		kv.add("devTime", ts)
		kv.add("devTimeFormat", leefTimeFormat)
	}
	kv.add("cat", f.Detector)
	kv.add("sev", strconv.Itoa(sev))
	kv.add("usrName", f.Identity.ID)
	kv.add("identityKind", string(f.Identity.Kind))
	kv.add("identityName", f.Identity.Name)
	kv.add("findingId", f.ID)
	kv.add("revision", strconv.Itoa(f.Revision))
	kv.add("count", strconv.Itoa(max(f.Count, 1)))
	kv.add("score", strconv.Itoa(f.Score))
	kv.add("ruleId", f.RuleID)
	kv.add("technique", f.Technique)
	kv.add("firstSeen", rfc3339Millis(f.FirstSeen))
	kv.add("eventIds", strings.Join(f.EventIDs, ","))
	kv.add("observed", f.Analysis.Observed)
	kv.add("baseline", f.Analysis.Baseline)
	kv.add("title", f.Title)
	kv.add("explanation", f.Explanation)
	return kv.b
}

// kvWriter appends key=value pairs separated by sep, escaping values; a
// pair with an empty value is left out.
type kvWriter struct {
	b              []byte
	sep            byte
	specials       string
	escapeNewlines bool
	started        bool
}

func (w *kvWriter) add(key, value string) {
	if value == "" {
		return
	}
	if w.started {
		w.b = append(w.b, w.sep)
	}
	w.started = true
	w.b = append(w.b, key...)
	w.b = append(w.b, '=')
	w.b = appendEscaped(w.b, value, w.specials, w.escapeNewlines)
}

// labelled adds a CEF custom field and its label (cs1 and cs1Label).
func (w *kvWriter) labelled(key, label, value string) {
	if value == "" {
		return
	}
	w.add(key, value)
	w.add(key+"Label", label)
}

// appendEscaped appends s as valid UTF-8 (invalid bytes become U+FFFD),
// prefixing each rune in specials with a backslash. Control characters never
// pass through, so no value can break a frame or a line: with
// escapeNewlines, LF and CR become the two-character escapes \n and \r (as
// CEF extensions allow); every other control character becomes a space.
func appendEscaped(b []byte, s string, specials string, escapeNewlines bool) []byte {
	for _, r := range s {
		switch {
		case strings.ContainsRune(specials, r):
			b = append(b, '\\', byte(r))
		case escapeNewlines && r == '\n':
			b = append(b, `\n`...)
		case escapeNewlines && r == '\r':
			b = append(b, `\r`...)
		case unicode.IsControl(r):
			b = append(b, ' ')
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// epochMillis is t in milliseconds since the epoch, or "" for the zero time.
func epochMillis(t schemas.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// rfc3339Millis is t in timeLayout (UTC, milliseconds truncated), or "" for
// the zero time.
func rfc3339Millis(t schemas.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeLayout)
}
