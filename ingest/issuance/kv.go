package issuance

import (
	"strconv"
	"strings"
)

// kv is one key=value pair of a logrus text or klog structured log line.
type kv struct{ key, value string }

// kvs is the key=value tail of a log line, in order.
type kvs []kv

// get returns the value of the first pair named key, or "".
func (p kvs) get(key string) string {
	for _, f := range p {
		if f.key == key {
			return f.value
		}
	}
	return ""
}

// first returns the value of the first of keys that is present and not empty.
func (p kvs) first(keys ...string) string {
	for _, k := range keys {
		if v := p.get(k); v != "" {
			return v
		}
	}
	return ""
}

// maxPairs bounds the pairs parseKV keeps: SPEC §2 limits field counts, and
// no real line of these formats has more than a few dozen.
const maxPairs = 128

// parseKV reads the key=value pairs of s as logrus's text formatter and
// klog's structured text write them: keys are bare or Go-quoted ("key"=…
// in old klogr lines), values are bare words, Go-quoted strings, or a
// bracketed list kept as written ([…]). Text that is not key=value (the
// free-form message of a klog line) is skipped word by word. ok is false
// when a quoted string is not terminated or there are more than maxPairs.
func parseKV(s string) (out kvs, ok bool) {
	i := 0
	for i < len(s) {
		for i < len(s) && s[i] == ' ' {
			i++
		}
		if i == len(s) {
			break
		}
		// Key: a quoted string or a run of bytes up to '=' or ' '.
		var key string
		if s[i] == '"' {
			q, n, good := quoted(s[i:])
			if !good {
				return out, false
			}
			key, i = q, i+n
		} else {
			j := i
			for j < len(s) && s[j] != '=' && s[j] != ' ' {
				j++
			}
			key, i = s[i:j], j
		}
		if i == len(s) || s[i] != '=' {
			continue // a word, not a pair
		}
		i++ // '='
		var val string
		switch {
		case i < len(s) && s[i] == '"':
			q, n, good := quoted(s[i:])
			if !good {
				return out, false
			}
			val, i = q, i+n
		case i < len(s) && s[i] == '[':
			n, good := bracketed(s[i:])
			if !good {
				return out, false
			}
			val, i = s[i:i+n], i+n
		default:
			j := i
			for j < len(s) && s[j] != ' ' {
				j++
			}
			val, i = s[i:j], j
		}
		if len(out) == maxPairs {
			return out, false
		}
		out = append(out, kv{key, val})
	}
	return out, true
}

// quoted reads the Go-quoted string at the start of s (s[0] == '"') and
// returns its value and length. An escape that strconv cannot undo keeps the
// raw text between the quotes.
func quoted(s string) (string, int, bool) {
	esc := false
	for j := 1; j < len(s); j++ {
		switch {
		case esc:
			esc = false
		case s[j] == '\\':
			esc = true
		case s[j] == '"':
			raw := s[:j+1]
			if !strings.Contains(raw, `\`) {
				return raw[1:j], j + 1, true
			}
			if v, err := strconv.Unquote(raw); err == nil {
				return v, j + 1, true
			}
			return raw[1:j], j + 1, true
		}
	}
	return "", 0, false
}

// bracketed returns the length of the bracketed list at the start of s,
// skipping quoted strings inside it.
func bracketed(s string) (int, bool) {
	depth := 0
	for j := 0; j < len(s); j++ {
		switch s[j] {
		case '"':
			_, n, ok := quoted(s[j:])
			if !ok {
				return 0, false
			}
			j += n - 1
		case '[':
			depth++
		case ']':
			depth--
			if depth == 0 {
				return j + 1, true
			}
		}
	}
	return 0, false
}

// listValues splits a bracketed list value (["a","b"] or [a b]) into its
// elements; any other value is a list of itself.
func listValues(v string) []string {
	if len(v) < 2 || v[0] != '[' || v[len(v)-1] != ']' {
		if v == "" {
			return nil
		}
		return []string{v}
	}
	inner := strings.TrimSpace(v[1 : len(v)-1])
	var out []string
	for inner != "" {
		var item string
		if inner[0] == '"' {
			q, n, ok := quoted(inner)
			if !ok {
				break
			}
			item, inner = q, inner[n:]
		} else {
			j := strings.IndexAny(inner, ", ")
			if j < 0 {
				j = len(inner)
			}
			item, inner = inner[:j], inner[j:]
		}
		if item != "" {
			out = append(out, item)
		}
		inner = strings.TrimLeft(inner, ", ")
	}
	return out
}
