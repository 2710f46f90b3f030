// Package glob matches identity ids, issuers and names against patterns
// of literal characters, '?' (any one character) and '*' (any run of
// characters, '/' and ':' included, unlike path.Match: identity ids and
// issuers are URLs and colon paths).
package glob

import "unicode/utf8"

// Match reports whether s matches pattern. It backtracks to the last star
// only, so it is linear for the patterns configurations use, and allocates
// nothing.
func Match(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == '?':
			// One character, not one byte.
			_, size := utf8.DecodeRuneInString(s[i:])
			p++
			i += size
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			_, size := utf8.DecodeRuneInString(s[mark:])
			p, mark = star+1, mark+size
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Any reports whether s matches one of patterns.
func Any(patterns []string, s string) bool {
	for _, p := range patterns {
		if Match(p, s) {
			return true
		}
	}
	return false
}
