package issuance

import (
	"bytes"
	"encoding/base64"
	"strings"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// GitHubOIDCFormat is the configured name of the GitHub Actions OIDC token
// decoder.
const GitHubOIDCFormat = "github_oidc"

// GitHubOIDCDecoder decodes GitHub Actions OIDC ID tokens, each the
// issuance of a token to a workflow run. A record is either the token's
// claims as JSON or the compact JWT itself; the JWT's payload is decoded
// WITHOUT verifying the signature — this is telemetry about an issuance, not
// authentication — and neither the token, its header nor its signature ever
// reaches the event (the event id is the jti, or a hash of the claims). A
// JOSE header alone ({"alg":…,"kid":…}) is not_an_event.
//
// The identity is the workflow identity a cloud role trusts, the sub claim
// prefixed with "github:" — sub
// "repo:rgl/github-actions-validate-jwt:ref:refs/heads/main" is
// github:repo:rgl/github-actions-validate-jwt:ref:refs/heads/main, kind
// workload, named by job_workflow_ref — because sub is exactly what a
// trust policy matches (repo plus ref, environment or pull_request). The
// actor who triggered the run is the requester, github:actor/<actor>.
// The zero value is ready to use.
type GitHubOIDCDecoder struct {
	// MaxRecordBytes rejects larger records as too_large; 0 means
	// ingest.DefaultMaxRecordBytes.
	MaxRecordBytes int
}

// NewGitHubOIDC returns a GitHubOIDCDecoder with the default limits.
func NewGitHubOIDC() *GitHubOIDCDecoder {
	return &GitHubOIDCDecoder{MaxRecordBytes: ingest.DefaultMaxRecordBytes}
}

// Format implements ingest.Decoder.
func (*GitHubOIDCDecoder) Format() string { return GitHubOIDCFormat }

// ghClaims are the claims of a GitHub Actions ID token that nhisentry uses.
type ghClaims struct {
	Iss            string                `json:"iss"`
	Sub            string                `json:"sub"`
	Aud            ingest.LenientStrings `json:"aud"`
	Jti            string                `json:"jti"`
	Iat            *float64              `json:"iat"`
	Exp            *float64              `json:"exp"`
	Actor          string                `json:"actor"`
	EventName      string                `json:"event_name"`
	Repository     string                `json:"repository"`
	RepoOwner      string                `json:"repository_owner"`
	Workflow       string                `json:"workflow"`
	JobWorkflowRef string                `json:"job_workflow_ref"`
	RunID          string                `json:"run_id"`
	RunAttempt     string                `json:"run_attempt"`
	Ref            string                `json:"ref"`
	Environment    string                `json:"environment"`
	Alg            string                `json:"alg"`
}

// Decode implements ingest.Decoder.
func (d *GitHubOIDCDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	limit := ingest.RecordLimit(d.MaxRecordBytes)
	if de := ingest.CheckSize(GitHubOIDCFormat, rec.Value, limit); de != nil {
		return dst, de
	}
	claims := bytes.TrimSpace(rec.Value)
	if len(claims) == 0 || claims[0] != '{' {
		var de *ingest.DecodeError
		if claims, de = jwtPayload(claims); de != nil {
			return dst, de
		}
	}
	var c ghClaims
	if de := ingest.DecodeJSON(GitHubOIDCFormat, claims, limit, ingest.DefaultMaxDepth, &c); de != nil {
		return dst, de
	}
	ev, de := c.event(claims, rec)
	if de != nil {
		return dst, de
	}
	return append(dst, ev), nil
}

// jwtPayload returns the decoded payload of a compact JWS. Its errors never
// quote the input: it is a bearer token.
func jwtPayload(tok []byte) ([]byte, *ingest.DecodeError) {
	if len(tok) == 0 {
		return nil, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonInvalidJSON, "empty record")
	}
	if bytes.Count(tok, []byte{'.'}) != 2 {
		return nil, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonNotAnEvent, "neither a JSON claims object nor a compact JWT (header.payload.signature)")
	}
	_, rest, _ := bytes.Cut(tok, []byte{'.'})
	payload, _, _ := bytes.Cut(rest, []byte{'.'})
	payload = bytes.TrimRight(payload, "=")
	out := make([]byte, base64.RawURLEncoding.DecodedLen(len(payload)))
	n, err := base64.RawURLEncoding.Decode(out, payload)
	if err != nil {
		return nil, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonBadField, "JWT payload is not base64url")
	}
	out = out[:n]
	if t := bytes.TrimSpace(out); len(t) == 0 || t[0] != '{' {
		return nil, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonBadField, "JWT payload is not a JSON object")
	}
	return out, nil
}

func (c *ghClaims) event(claims []byte, rec ingest.Record) (schemas.Event, *ingest.DecodeError) {
	if c.Sub == "" && c.Iss == "" && c.Alg != "" {
		return schemas.Event{}, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonNotAnEvent, "JOSE header (alg %q), not token claims", ingest.Truncate(c.Alg, 20))
	}
	if c.Repository == "" && c.JobWorkflowRef == "" && !strings.HasPrefix(c.Iss, "https://token.actions.githubusercontent.com") {
		return schemas.Event{}, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonNotAnEvent, "claims are not a GitHub Actions token (no repository or job_workflow_ref, iss %q)", ingest.Truncate(c.Iss, 80))
	}
	if c.Sub == "" {
		return schemas.Event{}, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonMissingField, "sub is missing")
	}
	if c.Iat == nil {
		return schemas.Event{}, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonMissingField, "iat is missing")
	}
	iat, err := unixSeconds(*c.Iat)
	if err != nil {
		return schemas.Event{}, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonBadField, "iat %v is not a time", *c.Iat)
	}
	cred := schemas.Credential{ID: c.Jti, Type: "github_oidc", IssuedAt: schemas.At(iat)}
	is := &schemas.Issuance{
		Credential:     c.Jti,
		CredentialType: "github_oidc",
		Subject:        c.Sub,
		Issuer:         c.Iss,
	}
	if c.Exp != nil {
		exp, err := unixSeconds(*c.Exp)
		if err != nil {
			return schemas.Event{}, ingest.Errorf(GitHubOIDCFormat, ingest.ReasonBadField, "exp %v is not a time", *c.Exp)
		}
		cred.ExpiresAt = schemas.At(exp)
		if exp.After(iat) {
			is.TTLSeconds = int64(exp.Sub(iat).Seconds())
		}
	}
	if c.Actor != "" {
		is.Requester = "github:actor/" + c.Actor
	}
	id := schemas.HashID(GitHubOIDCFormat, claims)
	if c.Jti != "" {
		id = GitHubOIDCFormat + ":" + c.Jti
	}
	session := c.RunID
	if session != "" && c.RunAttempt != "" {
		session += "/" + c.RunAttempt
	}
	return schemas.Event{
		ID:   id,
		Time: schemas.At(iat),
		Source: schemas.Source{
			Family:   schemas.FamilyIssuance,
			Format:   GitHubOIDCFormat,
			Provider: "github",
			Account:  c.RepoOwner,
		},
		Identity: schemas.Identity{
			ID:   "github:" + c.Sub,
			Kind: schemas.KindWorkload,
			Name: c.JobWorkflowRef,
		},
		Credential: cred,
		Actor:      schemas.Actor{Workload: c.Workflow, Session: session},
		Action:     "github:oidc:" + ingest.FirstOf(c.EventName, "unknown"),
		Service:    "github_actions",
		Target:     schemas.Target{Resource: strings.Join(c.Aud, ",")},
		Outcome:    schemas.Outcome{Result: schemas.ResultSuccess},
		Issuance:   is,
		Provenance: rec.Provenance(),
	}, nil
}
