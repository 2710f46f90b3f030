package issuance

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	ghClaimsFile = "rgl-github-actions-validate-jwt-claims.json"
	ghTokenFile  = "rgl-github-actions-validate-jwt-token.jwt"
)

func TestGoldenGitHubOIDC(t *testing.T) {
	ingesttest.InFormatDir(t, GitHubOIDCFormat)
	ingesttest.Golden(t, NewGitHubOIDC())
}

// TestDecodeGitHubOIDC checks that the claims and the JWT carrying them
// give the same event.
func TestDecodeGitHubOIDC(t *testing.T) {
	ingesttest.InFormatDir(t, GitHubOIDCFormat)
	for _, file := range []string{ghClaimsFile, ghTokenFile} {
		t.Run(file, func(t *testing.T) {
			evs, err := NewGitHubOIDC().Decode(nil, ingest.Record{Value: ingesttest.Line(t, file, 1), Topic: "t", Offset: 3})
			if err != nil || len(evs) != 1 {
				t.Fatalf("%d events, err %v", len(evs), err)
			}
			ev := evs[0]
			iat := time.Unix(1743246227, 0).UTC()
			want := schemas.Event{
				ID:     "github_oidc:58772c9f-4d75-4fc8-8956-7dd522569a00",
				Time:   schemas.At(iat),
				Source: schemas.Source{Family: schemas.FamilyIssuance, Format: GitHubOIDCFormat, Provider: "github", Account: "rgl"},
				Identity: schemas.Identity{
					ID:   "github:repo:rgl/github-actions-validate-jwt:ref:refs/heads/main",
					Kind: schemas.KindWorkload,
					Name: "rgl/github-actions-validate-jwt/.github/workflows/build.yml@refs/heads/main",
				},
				Credential: schemas.Credential{ID: "58772c9f-4d75-4fc8-8956-7dd522569a00", Type: "github_oidc", IssuedAt: schemas.At(iat), ExpiresAt: schemas.At(time.Unix(1743267827, 0))},
				Actor:      schemas.Actor{Workload: "Build", Session: "14144996512/1"},
				Action:     "github:oidc:push",
				Service:    "github_actions",
				Target:     schemas.Target{Resource: "https://example.com"},
				Outcome:    schemas.Outcome{Result: schemas.ResultSuccess},
				Issuance: &schemas.Issuance{
					Credential: "58772c9f-4d75-4fc8-8956-7dd522569a00", CredentialType: "github_oidc",
					Subject: "repo:rgl/github-actions-validate-jwt:ref:refs/heads/main", Issuer: "https://token.actions.githubusercontent.com",
					TTLSeconds: 21600, Requester: "github:actor/rgl",
				},
				Provenance: schemas.Provenance{Topic: "t", Offset: 3},
			}
			if !reflect.DeepEqual(ev, want) {
				t.Errorf("got  %+v\nwant %+v", ev, want)
			}
		})
	}
}

func TestGitHubOIDCVariants(t *testing.T) {
	// An environment-scoped token with an audience list and no jti.
	claims := `{"iss":"https://token.actions.githubusercontent.com/acme","sub":"repo:acme/deploy:environment:prod","aud":["sts.amazonaws.com","x"],"iat":1700000000,"exp":1700000300,"repository":"acme/deploy","actor":"bot","event_name":"workflow_dispatch","run_id":"9"}`
	evs, err := NewGitHubOIDC().Decode(nil, ingest.Record{Value: []byte(claims)})
	if err != nil {
		t.Fatal(err)
	}
	ev := evs[0]
	if ev.Identity.ID != "github:repo:acme/deploy:environment:prod" || ev.Target.Resource != "sts.amazonaws.com,x" ||
		ev.ID != schemas.HashID(GitHubOIDCFormat, []byte(claims)) || ev.Actor.Session != "9" || ev.Action != "github:oidc:workflow_dispatch" ||
		ev.Issuance.TTLSeconds != 300 {
		t.Errorf("got %+v", ev)
	}
	// The same claims as a padded, unsigned JWT.
	jwt := "eyJhbGciOiJub25lIn0." + base64.URLEncoding.EncodeToString([]byte(claims)) + "."
	evs, err = NewGitHubOIDC().Decode(nil, ingest.Record{Value: []byte(jwt)})
	if err != nil || evs[0].Identity.ID != ev.Identity.ID {
		t.Fatalf("jwt: %v, %+v", err, evs)
	}
}

func TestDecodeErrorsGitHubOIDC(t *testing.T) {
	ingesttest.InFormatDir(t, GitHubOIDCFormat)
	valid := string(ingesttest.Line(t, ghClaimsFile, 1))
	tok := string(ingesttest.Line(t, ghTokenFile, 1))
	enc := func(s string) string {
		return "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(s)) + ".c2ln"
	}
	ingesttest.Errors(t, NewGitHubOIDC(), errorCases([][3]string{
		{"empty", "", ingest.ReasonInvalidJSON},
		{"truncated claims", valid[:len(valid)/2], ingest.ReasonInvalidJSON},
		{"header only", string(ingesttest.Line(t, "rgl-github-actions-validate-jwt-header.json", 1)), ingest.ReasonNotAnEvent},
		{"two segments", tok[:strings.LastIndexByte(tok, '.')], ingest.ReasonNotAnEvent},
		{"JWE (five segments)", "a.b.c.d.e", ingest.ReasonNotAnEvent},
		{"payload not base64url", "eyJh.!!!.sig", ingest.ReasonBadField},
		{"payload not JSON", enc("hello"), ingest.ReasonBadField},
		{"payload whitespace", enc("   "), ingest.ReasonBadField},
		{"payload truncated JSON", enc(valid[:40]), ingest.ReasonInvalidJSON},
		{"invalid UTF-8", strings.Replace(valid, `"actor":"rgl"`, "\"actor\":\"r\xffgl\"", 1), ingest.ReasonInvalidUTF8},
		{"too deep", `{"sub":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`, ingest.ReasonTooDeep},
		{"not GitHub", `{"iss":"https://accounts.google.com","sub":"1234","iat":1700000000}`, ingest.ReasonNotAnEvent},
		{"no sub", strings.Replace(valid, `"sub":"repo:rgl/github-actions-validate-jwt:ref:refs/heads/main",`, ``, 1), ingest.ReasonMissingField},
		{"no iat", strings.Replace(valid, `"iat":1743246227,`, ``, 1), ingest.ReasonMissingField},
		{"iat is a string", strings.Replace(valid, `"iat":1743246227`, `"iat":"1743246227"`, 1), ingest.ReasonBadField},
		{"iat huge", strings.Replace(valid, `"iat":1743246227`, `"iat":1e300`, 1), ingest.ReasonBadField},
		{"iat overflows", strings.Replace(valid, `"iat":1743246227`, `"iat":1e400`, 1), ingest.ReasonBadField},
		{"exp negative", strings.Replace(valid, `"exp":1743267827`, `"exp":-1`, 1), ingest.ReasonBadField},
		{"sub is a number", strings.Replace(valid, `"sub":"repo:rgl/github-actions-validate-jwt:ref:refs/heads/main"`, `"sub":5`, 1), ingest.ReasonBadField},
		{"array", `["a"]`, ingest.ReasonNotAnEvent},
	}))
}

func TestMaxRecordBytesGitHubOIDC(t *testing.T) {
	ingesttest.InFormatDir(t, GitHubOIDCFormat)
	raw := ingesttest.Line(t, ghTokenFile, 1)
	d := &GitHubOIDCDecoder{}
	ingesttest.MaxRecordBytes(t, d, func(n int) { d.MaxRecordBytes = n }, raw)
}

func TestDecodeAppendsGitHubOIDC(t *testing.T) {
	ingesttest.InFormatDir(t, GitHubOIDCFormat)
	ingesttest.Appends(t, NewGitHubOIDC(), ingesttest.Line(t, ghTokenFile, 1))
}

func FuzzDecodeGitHubOIDC(f *testing.F) {
	ingesttest.InFormatDir(f, GitHubOIDCFormat)
	ingesttest.Fuzz(f, NewGitHubOIDC(), []byte("eyJ9.eyJzdWIiOiJ4In0.x"))
}

func BenchmarkDecodeGitHubOIDC(b *testing.B) {
	ingesttest.InFormatDir(b, GitHubOIDCFormat)
	ingesttest.Bench(b, NewGitHubOIDC())
}
