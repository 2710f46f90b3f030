package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// Error is one problem in a rule file. Load returns every Error it finds,
// joined, so a user fixes a file in one pass rather than one error per run.
type Error struct {
	File   string
	Line   int // 1-based; 0 when the problem has no position (unreadable file)
	Column int // 1-based, in characters; 0 when unknown
	RuleID string
	Msg    string
}

// Error formats the error as file:line:col: rule id: message, the form
// editors and CI annotations recognize.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ":%d", e.Column)
		}
	}
	b.WriteString(": ")
	if e.RuleID != "" {
		fmt.Fprintf(&b, "rule %s: ", e.RuleID)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// decoder walks one file's YAML nodes by hand rather than unmarshalling into
// structs: a node keeps its line and column, so every error can point at the
// offending key, and unknown or repeated keys can be refused.
type decoder struct {
	file  string
	lines []string
	errs  []error
}

func newDecoder(file string, data []byte) *decoder {
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return &decoder{file: file, lines: lines}
}

func (d *decoder) errorf(n *yaml.Node, ruleID, format string, args ...any) {
	e := &Error{File: d.file, RuleID: ruleID, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

// yamlLine extracts the line yaml.v3 puts in its syntax and type errors
// ("yaml: line 7: mapping values are not allowed in this context").
var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// document parses data as exactly one YAML document and returns its root.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			// An empty file is refused rather than read as "no rules": an
			// editor that truncates before writing must not unload rules.
			d.errs = append(d.errs, &Error{File: d.file, Msg: "file is empty; write `rules: []` for a file without rules"})
			return nil
		}
		e := &Error{File: d.file, Msg: err.Error()}
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			e.Line, _ = strconv.Atoi(m[1])
			e.Msg = m[2]
		}
		d.errs = append(d.errs, e)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		d.errs = append(d.errs, &Error{File: d.file, Line: extra.Line, Column: extra.Column,
			Msg: "more than one YAML document; put all rules under one `rules:` key"})
		return nil
	}
	return doc.Content[0]
}

// mapping returns the values of mapping node n by key. It reports a node of
// another kind, keys outside allowed, and repeated keys (which yaml.v3 Node
// decoding would otherwise let through silently).
func (d *decoder) mapping(n *yaml.Node, ruleID, what string, allowed ...string) map[string]*yaml.Node {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, ruleID, "%s must be a mapping, got %s", what, kindName(n))
		return nil
	}
	m := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch {
		case !contains(allowed, k.Value):
			d.errorf(k, ruleID, "unknown key %q in %s (allowed: %s)", k.Value, what, strings.Join(allowed, ", "))
		case m[k.Value] != nil:
			d.errorf(k, ruleID, "duplicate key %q in %s", k.Value, what)
		default:
			m[k.Value] = v
		}
	}
	return m
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// scalar returns the text of a non-null scalar.
func (d *decoder) scalar(n *yaml.Node, ruleID, key string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, ruleID, "%s must be a string, got %s", key, kindName(n))
		return "", false
	}
	if n.Tag == "!!null" || strings.TrimSpace(n.Value) == "" {
		d.errorf(n, ruleID, "%s must not be empty", key)
		return "", false
	}
	return n.Value, true
}

// required returns the value of key in m, reporting it at parent when absent.
func (d *decoder) required(m map[string]*yaml.Node, parent *yaml.Node, ruleID, key string) *yaml.Node {
	v := m[key]
	if v == nil {
		d.errorf(parent, ruleID, "missing required key %q", key)
	}
	return v
}

// decode decodes a node into v, positioning yaml.v3's type errors.
func (d *decoder) decode(n *yaml.Node, ruleID, key string, v any) bool {
	if err := n.Decode(v); err != nil {
		var te *yaml.TypeError
		msg := err.Error()
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = te.Errors[0]
		}
		// The position goes in front, as for every Error; drop yaml's copy.
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			msg = m[2]
		}
		d.errorf(n, ruleID, "%s: %s", key, msg)
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "a scalar"
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// piece is a run of a scalar's value that sits on one line of the file.
type piece struct{ line, col, runes int }

// exprError is an error at a position in the CEL source held by scalar n
// (CEL's 1-based line and 0-based column), placed in the file when the
// scalar's layout allows, else at the scalar with CEL's own position.
func (d *decoder) exprError(n *yaml.Node, ruleID string, line, col int, msg string) *Error {
	if fl, fc, ok := d.exprPos(n, line, col); ok {
		return &Error{File: d.file, Line: fl, Column: fc, RuleID: ruleID, Msg: msg}
	}
	return &Error{File: d.file, Line: n.Line, Column: n.Column, RuleID: ruleID,
		Msg: fmt.Sprintf("expr %d:%d: %s", line, col+1, msg)}
}

// exprPos maps a position in the CEL source held by scalar n (1-based line,
// 0-based column in code points, as CEL reports it) to a file line and
// 1-based column (yaml.v3 also counts columns in characters).
// It reports false when the scalar's style hides the correspondence (escapes
// in a quoted string, a folded block with blank or more-indented lines); the
// caller then falls back to the scalar's own position.
func (d *decoder) exprPos(n *yaml.Node, line, col int) (int, int, bool) {
	ps := d.pieces(n)
	if ps == nil || line < 1 {
		return 0, 0, false
	}
	off := 0
	for i, l := range strings.SplitAfter(n.Value, "\n") {
		if i == line-1 {
			off += col
			break
		}
		off += utf8.RuneCountInString(l)
	}
	for _, p := range ps {
		// <= so that a position just past the text (an unexpected end of
		// input) still lands on the last piece.
		if off <= p.runes {
			return p.line, p.col + off, true
		}
		off -= p.runes + 1 // the newline or space the piece was joined by
	}
	return 0, 0, false
}

// pieces rebuilds how the value of scalar n was laid out in the file: one
// piece per source line, joined by "\n" (literal block) or " " (folded block,
// multi-line plain scalar). It returns nil unless joining the pieces gives
// back exactly the value, so a mapping is never a guess.
func (d *decoder) pieces(n *yaml.Node) []piece {
	want := strings.TrimRight(n.Value, "\n") // block scalars keep one final newline
	wantRunes := utf8.RuneCountInString(want)
	style := n.Style &^ yaml.TaggedStyle
	src := []rune(d.line(n.Line))

	// Single-line scalars, plain or quoted: the value must appear verbatim
	// right after the start (and the opening quote).
	if style == 0 || style == yaml.SingleQuotedStyle || style == yaml.DoubleQuotedStyle {
		start := n.Column - 1
		if style != 0 {
			start++
		}
		if start >= 0 && start+wantRunes <= len(src) && string(src[start:start+wantRunes]) == want {
			return []piece{{n.Line, start + 1, wantRunes}}
		}
		if style != 0 || n.Column-1 > len(src) {
			return nil
		}
	}

	var (
		ps   []piece
		b    strings.Builder
		sep  = " "
		from = n.Line + 1
	)
	add := func(line, col int, text string) {
		if len(ps) > 0 {
			b.WriteString(sep)
		}
		b.WriteString(text)
		ps = append(ps, piece{line, col, utf8.RuneCountInString(text)})
	}
	switch style {
	case 0: // multi-line plain scalar: continuation lines are trimmed and folded
		add(n.Line, n.Column, strings.TrimRight(string(src[n.Column-1:]), " "))
		for l := from; b.Len() < len(want) && l <= len(d.lines); l++ {
			raw := d.line(l)
			text := strings.TrimLeft(raw, " ")
			add(l, len(raw)-len(text)+1, strings.TrimRight(text, " "))
		}
	case yaml.LiteralStyle, yaml.FoldedStyle:
		if style == yaml.LiteralStyle {
			sep = "\n"
		}
		indent := len(d.line(from)) - len(strings.TrimLeft(d.line(from), " "))
		for l := from; (len(ps) == 0 || b.Len() < len(want)) && l <= len(d.lines); l++ {
			raw := []rune(d.line(l))
			if len(raw) < indent {
				add(l, indent+1, "")
				continue
			}
			add(l, indent+1, string(raw[indent:]))
		}
	default:
		return nil
	}
	if b.String() != want {
		return nil
	}
	return ps
}

func (d *decoder) line(n int) string {
	if n < 1 || n > len(d.lines) {
		return ""
	}
	return d.lines[n-1]
}
