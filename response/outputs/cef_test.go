package outputs

import (
	"cmp"
	"fmt"
	"maps"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/nhisentry/nhisentry/schemas"
)

func TestCEFSeverityLevels(t *testing.T) {
	for _, c := range []struct {
		sev         schemas.Severity
		syslog, cef int
	}{
		{schemas.SeverityCritical, 2, 10},
		{schemas.SeverityHigh, 3, 8},
		{schemas.SeverityMedium, 4, 5},
		{schemas.SeverityLow, 5, 3},
		{schemas.SeverityInfo, 6, 1},
		{"bogus", 6, 1},
	} {
		if s, c2 := severityLevels(c.sev); s != c.syslog || c2 != c.cef {
			t.Errorf("severityLevels(%q) = %d, %d; want %d, %d", c.sev, s, c2, c.syslog, c.cef)
		}
	}
}

func TestCEFAppendEscaped(t *testing.T) {
	const in = "a|b\\c=d]e\"f\ng\rh\ti\x00j\x7fk\u0085l ü→\xffm"
	for _, c := range []struct {
		context, specials string
		newlines          bool
		want              string
	}{
		{"CEF header", cefHeaderSpecials, false, "a\\|b\\\\c=d]e\"f g h i j k l ü→\uFFFDm"},
		{"CEF extension", cefExtSpecials, true, "a|b\\\\c\\=d]e\"f\\ng\\rh i j k l ü→\uFFFDm"},
		{"SD value", sdValueSpecials, false, "a|b\\\\c=d\\]e\\\"f g h i j k l ü→\uFFFDm"},
		{"LEEF value", "", false, "a|b\\c=d]e\"f g h i j k l ü→\uFFFDm"},
	} {
		if got := string(appendEscaped(nil, in, c.specials, c.newlines)); got != c.want {
			t.Errorf("%s:\ngot  %q\nwant %q", c.context, got, c.want)
		}
	}
}

// TestCEFFields parses the CEF of the critical test finding back.
func TestCEFFields(t *testing.T) {
	f := syslogTestFindings()[0]
	header, ext, err := parseCEF(string(appendCEF(nil, &f, "1.4.0")))
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := []string{"0", "nhisentry", "nhisentry", "1.4.0", `root|key\use`, `Root key used | outside \ CI`, "10"}
	if fmt.Sprint(header) != fmt.Sprint(wantHeader) {
		t.Errorf("header %q, want %q", header, wantHeader)
	}
	wantExt := map[string]string{
		"rt": "1709622489123", "start": "1709622000500", "end": "1709622489123",
		"suser": `aws:user/111122223333/ci]"bot"`, "cs4": "user", "cs4Label": "identityKind",
		"externalId": f.ID, "cs1": f.ID, "cs1Label": "findingId",
		"cn1": "1", "cn1Label": "count", "cn2": "0", "cn2Label": "revision", "cn3": "97", "cn3Label": "score",
		"cat": "rule", "cs2": "T1078.004", "cs2Label": "technique", "cs3": "ev-1,ev-2", "cs3Label": "eventIds",
		"cs5": "ListBuckets", "cs5Label": "observed", "cs6": "rule", "cs6Label": "baseline",
		"msg": "rule root|key matched: user=ci-bot\nsource ip=203.0.113.9",
	}
	if !maps.Equal(ext, wantExt) {
		t.Errorf("extension\n%q\nwant\n%q", ext, wantExt)
	}
}

// TestLEEFFields parses the LEEF of the high test finding back.
func TestLEEFFields(t *testing.T) {
	f := syslogTestFindings()[1]
	header, attrs, err := parseLEEF(string(appendLEEF(nil, &f, "1.4.0")))
	if err != nil {
		t.Fatal(err)
	}
	wantHeader := []string{"2.0", "nhisentry", "nhisentry", "1.4.0", "new_value", "x09"}
	if fmt.Sprint(header) != fmt.Sprint(wantHeader) {
		t.Errorf("header %q, want %q", header, wantHeader)
	}
	wantAttrs := map[string]string{
		"devTime": "2024-03-05T08:00:00.000Z", "devTimeFormat": "yyyy-MM-dd'T'HH:mm:ss.SSSX",
		"cat": "new_value", "sev": "8", "usrName": "aws:role/111122223333/etl", "identityKind": "role",
		"identityName": "ETL Rolle ü", "findingId": f.ID, "revision": "1", "count": "3", "score": "81",
		"technique": "T1485", "firstSeen": "2024-03-05T08:00:00.000Z", "eventIds": "ev-3",
		"observed": "s3:DeleteBucket", "baseline": "s3:GetObject, s3:PutObject",
		"title": "Neuer Wert für Rolle → prod ✓", "explanation": `first "DeleteBucket" in 30 days`,
	}
	if !maps.Equal(attrs, wantAttrs) {
		t.Errorf("attributes\n%q\nwant\n%q", attrs, wantAttrs)
	}
}

// FuzzCEF: whatever the text of a finding, its syslog message in either
// payload is one line of valid UTF-8 without control characters (but LEEF's
// tabs), and every field parses back to its text with control characters
// turned to spaces (CEF extensions keep \n and \r as escapes).
func FuzzCEF(f *testing.F) {
	for _, tf := range syslogTestFindings() {
		f.Add(tf.Title, tf.Explanation, tf.Identity.ID, tf.RuleID)
	}
	f.Add("", "\\", "]", "|")
	f.Add("\xff\xfe", "a=b \\= c", `"\]`, "\n")
	f.Fuzz(func(t *testing.T, title, explanation, identity, rule string) {
		fd := syslogTestFindings()[0]
		fd.Title, fd.Explanation, fd.Identity.ID, fd.RuleID = title, explanation, identity, rule
		for _, format := range []string{"cef", "leef"} {
			out, err := NewSyslog(syslogTestConfig(format, "lf"))
			if err != nil {
				t.Fatal(err)
			}
			frame := string(out.(*syslog).encode([]schemas.Finding{fd}))
			msg, ok := strings.CutSuffix(frame, "\n")
			if !ok || !utf8.ValidString(msg) || strings.ContainsFunc(msg, func(r rune) bool { return unicode.IsControl(r) && r != '\t' }) {
				t.Fatalf("%s frame is not one clean line: %q", format, frame)
			}
			m, err := parseSyslog(msg)
			if err != nil {
				t.Fatalf("%s: %v", format, err)
			}
			if got := m.params["identity"]; got != clean(identity, false) {
				t.Errorf("SD identity %q, want %q", got, clean(identity, false))
			}
			sig := cmp.Or(rule, fd.Detector)
			if format == "leef" {
				header, attrs, err := parseLEEF(m.msg)
				if err != nil {
					t.Fatal(err)
				}
				checkField(t, "LEEF event id", header[4], sig, false)
				checkField(t, "LEEF title", attrs["title"], title, false)
				checkField(t, "LEEF explanation", attrs["explanation"], explanation, false)
				checkField(t, "LEEF usrName", attrs["usrName"], identity, false)
				continue
			}
			header, ext, err := parseCEF(m.msg)
			if err != nil {
				t.Fatal(err)
			}
			checkField(t, "CEF signature", header[4], sig, false)
			checkField(t, "CEF name", header[5], title, false)
			checkField(t, "CEF msg", ext["msg"], explanation, true)
			checkField(t, "CEF suser", ext["suser"], identity, true)
		}
	})
}

func checkField(t *testing.T, name, got, in string, newlines bool) {
	t.Helper()
	if want := clean(in, newlines); got != want {
		t.Errorf("%s = %q, want %q (from %q)", name, got, want, in)
	}
}

// clean is what a text becomes on the wire once parsed back: one U+FFFD per
// invalid byte, control characters as spaces, and, where newlines are kept,
// LF and CR as they were.
func clean(s string, newlines bool) string {
	r := []rune(s)
	for i, c := range r {
		if unicode.IsControl(c) && !(newlines && (c == '\n' || c == '\r')) {
			r[i] = ' '
		}
	}
	return string(r)
}

// parseCEF splits a CEF message into its seven header fields and its
// extension, both unescaped.
func parseCEF(s string) ([]string, map[string]string, error) {
	rest, ok := strings.CutPrefix(s, "CEF:")
	if !ok {
		return nil, nil, fmt.Errorf("no CEF: prefix in %q", s)
	}
	var header []string
	var field strings.Builder
	i := 0
	for ; i < len(rest) && len(header) < 7; i++ {
		switch c := rest[i]; {
		case c == '\\' && i+1 < len(rest) && (rest[i+1] == '\\' || rest[i+1] == '|'):
			i++
			field.WriteByte(rest[i])
		case c == '\\':
			return nil, nil, fmt.Errorf("lone backslash in CEF header %q", s)
		case c == '|':
			header = append(header, field.String())
			field.Reset()
		default:
			field.WriteByte(c)
		}
	}
	if len(header) < 7 {
		return nil, nil, fmt.Errorf("CEF header of %q has %d fields", s, len(header))
	}
	ext, err := parseCEFExtension(rest[i:])
	return header, ext, err
}

// parseCEFExtension reads key=value pairs: every unescaped '=' ends a key,
// which starts after the last space before it.
func parseCEFExtension(s string) (map[string]string, error) {
	type key struct{ name, start, value int }
	var keys []key
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '=':
			start := strings.LastIndexByte(s[:i], ' ') + 1
			keys = append(keys, key{start: start, value: i + 1, name: i})
		}
	}
	ext := map[string]string{}
	for j, k := range keys {
		name := s[k.start:k.name]
		end := len(s)
		if j+1 < len(keys) {
			end = keys[j+1].start - 1
		}
		if name == "" || (j == 0 && k.start != 0) || end < k.value {
			return nil, fmt.Errorf("bad CEF extension key %q in %q", name, s)
		}
		v, err := unescapeCEF(s[k.value:end])
		if err != nil {
			return nil, err
		}
		if _, dup := ext[name]; dup {
			return nil, fmt.Errorf("CEF key %s twice in %q", name, s)
		}
		ext[name] = v
	}
	return ext, nil
}

func unescapeCEF(v string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' {
			b.WriteByte(v[i])
			continue
		}
		if i++; i == len(v) {
			return "", fmt.Errorf("trailing backslash in CEF value %q", v)
		}
		switch v[i] {
		case '\\', '=':
			b.WriteByte(v[i])
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		default:
			return "", fmt.Errorf("unknown escape \\%c in CEF value %q", v[i], v)
		}
	}
	return b.String(), nil
}

// parseLEEF splits a LEEF 2.0 message into its six header fields (unescaped)
// and its tab-separated attributes.
func parseLEEF(s string) ([]string, map[string]string, error) {
	rest, ok := strings.CutPrefix(s, "LEEF:")
	if !ok {
		return nil, nil, fmt.Errorf("no LEEF: prefix in %q", s)
	}
	var header []string
	var field strings.Builder
	i := 0
	for ; i < len(rest) && len(header) < 6; i++ {
		switch c := rest[i]; {
		case c == '\\' && i+1 < len(rest):
			i++
			field.WriteByte(rest[i])
		case c == '|':
			header = append(header, field.String())
			field.Reset()
		default:
			field.WriteByte(c)
		}
	}
	if len(header) < 6 || header[5] != "x09" {
		return nil, nil, fmt.Errorf("LEEF header of %q: %q", s, header)
	}
	attrs := map[string]string{}
	for _, kv := range strings.Split(rest[i:], "\t") {
		k, v, ok := strings.Cut(kv, "=")
		if _, dup := attrs[k]; !ok || dup {
			return nil, nil, fmt.Errorf("bad LEEF attribute %q in %q", kv, s)
		}
		attrs[k] = v
	}
	return header, attrs, nil
}

// TestCEFParserRejects keeps the test parser honest: it must refuse what the
// encoder must never produce.
func TestCEFParserRejects(t *testing.T) {
	for _, s := range []string{
		`CEF:0|v|p|1|sig|name|5|msg=a=b`,     // unescaped = in a value makes a bad key
		`CEF:0|v|p|1|sig|na\me|5|msg=x`,      // unknown header escape
		`CEF:0|v|p|1|sig|name|5|msg=x\`,      // trailing backslash
		`CEF:0|v|p|1|sig|name|5|msg=x msg=y`, // duplicate key
		`CEF:0|v|p|1|sig|name`,               // short header
	} {
		if _, _, err := parseCEF(s); err == nil {
			t.Errorf("parseCEF(%q) accepted it", s)
		}
	}
	if _, ext, err := parseCEF(`CEF:0|v|p|1|s|n|5|a=x y b=\=\\\n`); err != nil || ext["a"] != "x y" || ext["b"] != "=\\\n" || len(ext) != 2 {
		t.Errorf("parseCEF: %q, %v", ext, err)
	}
}
