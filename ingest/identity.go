package ingest

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/schemas"
)

// Limits every JSON decoder enforces unless configured otherwise (SPEC §2:
// limits on message size, nesting depth and field counts).
const (
	DefaultMaxRecordBytes = 1 << 20
	DefaultMaxDepth       = 64
	// MaxFields bounds the number of values (members and elements) in one
	// JSON record, raised for large records to one per BytesPerField bytes.
	MaxFields     = 100_000
	BytesPerField = 8
)

// AWSIdentity resolves an AWS principal ARN to its canonical identity. The
// session name of an assumed-role ARN is returned apart, because it is
// context (Actor.Session), not identity: every session of a role is the same
// machine identity.
//
//	arn:aws:sts::123:assumed-role/Name/session → aws:role/123/Name, "session"
//	arn:aws:iam::123:role/path/Name           → aws:role/123/Name
//	arn:aws:iam::123:user/path/x              → aws:user/123/x
//	arn:aws:sts::123:federated-user/x         → aws:federated-user/123/x
//	arn:aws:iam::123:root                     → aws:root/123
func AWSIdentity(arn string) (id schemas.Identity, session string, err error) {
	// arn:partition:service:region:account:resource
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[1] == "" {
		return schemas.Identity{}, "", fmt.Errorf("aws arn %q: not an ARN", arn)
	}
	service, account, resource := parts[2], parts[4], parts[5]
	if account == "" || strings.ContainsRune(account, '/') {
		return schemas.Identity{}, "", fmt.Errorf("aws arn %q: no account", arn)
	}
	kind, rest, _ := strings.Cut(resource, "/")
	switch {
	case service == "iam" && resource == "root":
		return schemas.Identity{ID: "aws:root/" + account, Kind: schemas.KindUser, Name: "root"}, "", nil
	case service == "sts" && kind == "assumed-role":
		name, sess, ok := strings.Cut(rest, "/")
		if !ok || name == "" || sess == "" {
			return schemas.Identity{}, "", fmt.Errorf("aws arn %q: want assumed-role/<role>/<session>", arn)
		}
		return schemas.Identity{ID: "aws:role/" + account + "/" + name, Kind: schemas.KindRole, Name: name}, sess, nil
	case service == "iam" && (kind == "role" || kind == "user"):
		// IAM paths (role/path/to/Name) are organisational, not part of the
		// name, which is unique per account: drop them.
		name := rest[strings.LastIndexByte(rest, '/')+1:]
		if name == "" {
			return schemas.Identity{}, "", fmt.Errorf("aws arn %q: empty %s name", arn, kind)
		}
		k := schemas.KindRole
		if kind == "user" {
			k = schemas.KindUser
		}
		return schemas.Identity{ID: "aws:" + kind + "/" + account + "/" + name, Kind: k, Name: name}, "", nil
	case service == "sts" && kind == "federated-user":
		if rest == "" || strings.ContainsRune(rest, '/') {
			return schemas.Identity{}, "", fmt.Errorf("aws arn %q: want federated-user/<name>", arn)
		}
		return schemas.Identity{ID: "aws:federated-user/" + account + "/" + rest, Kind: schemas.KindUser, Name: rest}, "", nil
	}
	return schemas.Identity{}, "", fmt.Errorf("aws arn %q: not a principal (role, user, assumed role, federated user or root)", arn)
}

// SPIFFEIdentity validates a SPIFFE ID (spiffe://<trust domain>/<path>, per
// the SPIFFE-ID specification: lower-case trust domain of [a-z0-9._-], path
// segments of [A-Za-z0-9._-], no empty, "." or ".." segment, no query,
// fragment, port or user info) and returns it as a workload identity.
func SPIFFEIdentity(uri string) (schemas.Identity, error) {
	const scheme = "spiffe://"
	if len(uri) > 2048 {
		return schemas.Identity{}, fmt.Errorf("spiffe id: longer than 2048 bytes")
	}
	if !strings.HasPrefix(uri, scheme) {
		return schemas.Identity{}, fmt.Errorf("spiffe id %q: scheme is not spiffe://", uri)
	}
	td, path, _ := strings.Cut(uri[len(scheme):], "/")
	if td == "" {
		return schemas.Identity{}, fmt.Errorf("spiffe id %q: empty trust domain", uri)
	}
	for i := 0; i < len(td); i++ {
		if c := td[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return schemas.Identity{}, fmt.Errorf("spiffe id %q: trust domain has invalid character %q", uri, c)
		}
	}
	if len(path) != len(uri)-len(scheme)-len(td) { // there was a '/'
		for seg := range strings.SplitSeq(path, "/") {
			if seg == "" || seg == "." || seg == ".." {
				return schemas.Identity{}, fmt.Errorf("spiffe id %q: empty, '.' or '..' path segment", uri)
			}
			for i := 0; i < len(seg); i++ {
				if c := seg[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
					return schemas.Identity{}, fmt.Errorf("spiffe id %q: path has invalid character %q", uri, c)
				}
			}
		}
	}
	return schemas.Identity{ID: uri, Kind: schemas.KindWorkload}, nil
}

// K8sServiceAccount returns the canonical identity of a Kubernetes service
// account: k8s:sa/<cluster>/<namespace>/<name>. The cluster is part of the id
// because the same namespace/name in two clusters are two identities.
func K8sServiceAccount(cluster, namespace, name string) (schemas.Identity, error) {
	for _, p := range [...]string{cluster, namespace, name} {
		if p == "" || strings.ContainsAny(p, "/:") {
			return schemas.Identity{}, fmt.Errorf("k8s service account %q/%q/%q: empty part or '/' or ':' in a part", cluster, namespace, name)
		}
	}
	return schemas.Identity{
		ID:   "k8s:sa/" + cluster + "/" + namespace + "/" + name,
		Kind: schemas.KindServiceAccount,
		Name: namespace + "/" + name,
	}, nil
}

// K8sUsername resolves a Kubernetes service-account user name
// (system:serviceaccount:<namespace>:<name>) in cluster.
func K8sUsername(cluster, username string) (schemas.Identity, error) {
	const prefix = "system:serviceaccount:"
	rest, ok := strings.CutPrefix(username, prefix)
	if !ok {
		return schemas.Identity{}, fmt.Errorf("k8s user %q: not a service account", username)
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok {
		return schemas.Identity{}, fmt.Errorf("k8s user %q: want %s<namespace>:<name>", username, prefix)
	}
	return K8sServiceAccount(cluster, ns, name)
}

// APIKeyIdentity returns the identity of an API key or gateway client:
// apikey:<gateway>:<key id>. keyID must be the key's id, never its secret.
func APIKeyIdentity(gateway, keyID string) schemas.Identity {
	return schemas.Identity{ID: "apikey:" + gateway + ":" + keyID, Kind: schemas.KindAPIKey}
}

// IPIdentity is the last resort when a record names no principal: the source
// address, kind unknown, so the event still counts against something that a
// later stage (the Kubernetes workload lookup) can resolve.
func IPIdentity(ip string) schemas.Identity {
	return schemas.Identity{ID: "ip:" + ip, Kind: schemas.KindUnknown}
}

// TemplatePath turns a request path into a low-cardinality route: it drops
// the query string and fragment and replaces each segment that looks like an
// identifier (a number, a UUID, a long hex or base64-like token, a prefixed
// id such as "i-0abc12345def" or "hmac-sha256:…") with {id}, so that
// "/v1/payments/8812?x=1" and "/v1/payments/9001" are the same action for
// the baselines.
func TemplatePath(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	// Fast path: most paths have no id segment; return them without
	// allocating.
	needs := false
	for seg := range strings.SplitSeq(p, "/") {
		if isIDSegment(seg) {
			needs = true
			break
		}
	}
	if !needs {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	first := true
	for seg := range strings.SplitSeq(p, "/") {
		if !first {
			b.WriteByte('/')
		}
		first = false
		if isIDSegment(seg) {
			b.WriteString("{id}")
		} else {
			b.WriteString(seg)
		}
	}
	return b.String()
}

// isDottedName reports whether s is a dotted name whose every part is a word
// or a version (v1, v2beta1), as package-qualified gRPC services are.
func isDottedName(s string) bool {
	if !strings.Contains(s, ".") {
		return false
	}
	for part := range strings.SplitSeq(s, ".") {
		if part == "" {
			return false
		}
		word := true
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
				word = false
				break
			}
		}
		if !word && !isVersion(part) {
			return false
		}
	}
	return true
}

// isVersion matches API version words such as v1, v2beta1, v1alpha3.
func isVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' || s[1] < '0' || s[1] > '9' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z') {
			return false
		}
	}
	return true
}

// isIDSegment reports whether a path segment is an identifier rather than a
// route word. It errs on the side of keeping words: a false {id} merges two
// routes, a missed one only costs cardinality.
func isIDSegment(s string) bool {
	if s == "" {
		return false
	}
	// "hmac-sha256:<hex>", "urn:uuid:<uuid>" and similar: judge the last part.
	if i := strings.LastIndexByte(s, ':'); i >= 0 && i < len(s)-1 {
		return isIDSegment(s[i+1:])
	}
	if isDottedName(s) {
		return false // gRPC service names: payments.v1.PaymentService
	}
	var digits, hex, letters, other int
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
			hex++
		case c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F':
			hex++
			letters++
		case c >= 'g' && c <= 'z' || c >= 'G' && c <= 'Z':
			letters++
		case c == '-' || c == '_' || c == '=' || c == '+' || c == '.' || c == '~':
			other++
		default:
			return false
		}
	}
	switch {
	case digits == len(s): // 8812
		return true
	case isUUID(s):
		return true
	case hex == len(s) && len(s) >= 16 && digits > 0: // sha, object ids
		return true
	case len(s) >= 20 && digits > 0 && letters > 0 && other*4 < len(s):
		// base64/base64url tokens and long opaque ids; the bound on
		// separators keeps long hyphenated words ("sign-intermediate-v2").
		return true
	}
	// prefixed hex ids: i-0abc12345def, sg-12345678, vol-0123…
	if j := strings.LastIndexByte(s, '-'); j > 0 {
		tail := s[j+1:]
		if len(tail) >= 8 && isHex(tail) && strings.ContainsAny(tail, "0123456789") && isLower(s[:j]) {
			return true
		}
	}
	return false
}

func isUUID(s string) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	return isHex(s[:8]) && isHex(s[9:13]) && isHex(s[14:18]) && isHex(s[19:23]) && isHex(s[24:])
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func isLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 'a' || c > 'z' {
			return false
		}
	}
	return s != ""
}

// plain marks the bytes a string can hold that need no attention from
// CheckJSON: everything but the quote, the backslash and non-ASCII bytes.
var plain = func() (t [256]bool) {
	for c := range utf8.RuneSelf {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// CheckJSON makes one pass over raw before it reaches the JSON parser and
// rejects what the parser would accept but nhisentry must not: invalid UTF-8
// (goccy/go-json, like encoding/json, silently replaces it with U+FFFD, so
// two different records would normalize to the same identity) and nesting
// deeper than maxDepth (a cheap way to exhaust a recursive decoder), and more
// than MaxFields values (a record of a million tiny members costs the parser
// and every later stage far more than its bytes suggest). It does
// not validate the JSON grammar; the parser does that next. The returned
// error has an empty Format, which the caller fills in.
func CheckJSON(raw []byte, maxDepth int) *DecodeError {
	depth, fields := 0, 0
	// Large records (a whole CloudTrail log file) may hold proportionally
	// more values; what is refused is many values in few bytes.
	maxFields := max(MaxFields, len(raw)/BytesPerField)
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '"':
			// Skip the string, honouring escapes so that \" does not end it.
			i++
			for i < len(raw) {
				for i < len(raw) && plain[raw[i]] {
					i++
				}
				if i == len(raw) {
					break
				}
				c = raw[i]
				if c == '"' {
					break
				}
				if c == '\\' {
					i += 2
					continue
				}
				// Neither plain, nor a quote, nor a backslash: non-ASCII.
				r, n := utf8.DecodeRune(raw[i:])
				if r == utf8.RuneError && n <= 1 {
					return &DecodeError{Reason: ReasonInvalidUTF8, Detail: fmt.Sprintf("invalid UTF-8 at byte %d", i)}
				}
				i += n
			}
			i++ // closing quote (or past the end when unterminated)
		case c == '{' || c == '[':
			depth++
			if depth > maxDepth {
				return &DecodeError{Reason: ReasonTooDeep, Detail: fmt.Sprintf("nesting deeper than %d at byte %d", maxDepth, i)}
			}
			i++
		case c == '}' || c == ']':
			depth--
			i++
		case c == ',':
			if fields++; fields >= maxFields {
				return &DecodeError{Reason: ReasonTooManyFields, Detail: fmt.Sprintf("more than %d values at byte %d", maxFields, i)}
			}
			i++
		case c >= utf8.RuneSelf:
			// Not valid JSON outside a string either, but report the more
			// precise reason.
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n <= 1 {
				return &DecodeError{Reason: ReasonInvalidUTF8, Detail: fmt.Sprintf("invalid UTF-8 at byte %d", i)}
			}
			i += n
		default:
			i++
		}
	}
	return nil
}

// DecodeJSON is the front half every JSON decoder shares: it enforces the
// size limit, runs CheckJSON and unmarshals raw into v with goccy/go-json,
// turning each failure into a *DecodeError of format with a bounded Reason:
// syntax errors (and empty input) are invalid_json, a value of the wrong type
// or a number that overflows its field is bad_field, and a document that is
// valid JSON but not an object is not_an_event.
func DecodeJSON(format string, raw []byte, maxBytes, maxDepth int, v any) *DecodeError {
	if de := CheckSize(format, raw, maxBytes); de != nil {
		return de
	}
	if de := CheckJSON(raw, maxDepth); de != nil {
		de.Format = format
		return de
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return JSONError(format, err)
	}
	// null decodes into a struct without error; it must not become an
	// all-empty event.
	if firstByte(raw) != '{' {
		return Errorf(format, ReasonNotAnEvent, "top-level JSON value is not an object")
	}
	return nil
}

// firstByte returns the first byte of raw that is not JSON whitespace, or 0.
func firstByte(raw []byte) byte {
	for _, c := range raw {
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c
		}
	}
	return 0
}

// JSONError classifies an error of goccy/go-json.
func JSONError(format string, err error) *DecodeError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return Errorf(format, ReasonNotAnEvent, "top-level JSON value is %s, not an object", te.Value)
		}
		return Errorf(format, ReasonBadField, "field %s: %s does not fit %s", te.Field, te.Value, te.Type)
	}
	return Errorf(format, ReasonInvalidJSON, "%s", err.Error())
}
