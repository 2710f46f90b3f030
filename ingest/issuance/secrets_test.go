package issuance

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/ingesttest"
)

// decodeJSON decodes raw and returns the events' JSON, failing on an error.
func decodeJSON(t *testing.T, d ingest.Decoder, raw []byte) []byte {
	t.Helper()
	evs, err := d.Decode(nil, ingest.Record{Value: raw})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(evs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNoSecretInEvents asserts that no secret material reaches an event: not
// the GitHub JWT, its header or its signature; not a Vault client token
// unless it is an HMAC; not a certificate's DER or the CT chain.
func TestNoSecretInEvents(t *testing.T) {
	t.Run("github_oidc JWT", func(t *testing.T) {
		ingesttest.InFormatDir(t, GitHubOIDCFormat)
		tok := ingesttest.Line(t, ghTokenFile, 1)
		parts := bytes.Split(tok, []byte("."))
		if len(parts) != 3 {
			t.Fatalf("fixture has %d segments", len(parts))
		}
		out := decodeJSON(t, NewGitHubOIDC(), tok)
		for name, secret := range map[string][]byte{"token": tok, "header": parts[0], "signature": parts[2], "payload": parts[1]} {
			if bytes.Contains(out, secret) {
				t.Errorf("event contains the JWT %s", name)
			}
		}
		// Nor a fragment of the signature long enough to matter.
		if sig := parts[2]; bytes.Contains(out, sig[:16]) || bytes.Contains(out, sig[len(sig)-16:]) {
			t.Error("event contains part of the JWT signature")
		}
		// A decode error must not quote the token either.
		_, err := NewGitHubOIDC().Decode(nil, ingest.Record{Value: append(append([]byte{}, tok...), '.', 'x')})
		if err == nil || strings.Contains(err.Error(), string(parts[2][:16])) {
			t.Errorf("error %v quotes the token", err)
		}
	})
	t.Run("vault client tokens", func(t *testing.T) {
		ingesttest.InFormatDir(t, Format)
		d := New()
		checked := 0
		for path, lines := range ingesttest.Inputs(t) {
			for i, l := range lines {
				tokens := vaultTokens(t, l)
				evs, err := d.Decode(nil, ingest.Record{Value: l})
				if err != nil {
					continue
				}
				out, _ := json.Marshal(evs)
				for _, tok := range tokens {
					if strings.HasPrefix(tok, "hmac-sha256:") {
						continue // an HMAC is not the secret
					}
					checked++
					if bytes.Contains(out, []byte(tok)) {
						t.Errorf("%s:%d: event contains client token %q", path, i+1, tok)
					}
				}
			}
		}
		t.Logf("%d raw client tokens in the fixtures checked (the fixtures HMAC them)", checked)
		// A log_raw entry: the raw tokens must not appear anywhere.
		raw := `{"time":"2020-04-30T14:28:01Z","type":"response","auth":{"client_token":"hvs.CALLERSECRET","accessor":"acc1","display_name":"token"},"request":{"id":"r1","operation":"update","path":"auth/token/create","client_token":"hvs.CALLERSECRET","client_token_accessor":"acc1"},"response":{"auth":{"client_token":"hvs.NEWSECRET","accessor":"acc2","token_ttl":60}}}`
		out := decodeJSON(t, d, []byte(raw))
		if bytes.Contains(out, []byte("SECRET")) {
			t.Errorf("event contains a raw token: %s", out)
		}
		if !bytes.Contains(out, []byte(`"credential":"acc2"`)) {
			t.Errorf("issuance does not name the new token by accessor: %s", out)
		}
	})
	t.Run("ct_certstream DER and chain", func(t *testing.T) {
		ingesttest.InFormatDir(t, CTCertstreamFormat)
		out := decodeJSON(t, NewCTCertstream(), ingesttest.Line(t, ctExample, 1))
		for _, s := range []string{"A0141420000015385736A0B85ECA708", "ctlSignedCertificateTimestamp", "BIHxAO8AdgBep3P531bA57U2SH3Q", "DST Root CA X3"} {
			if bytes.Contains(out, []byte(s)) {
				t.Errorf("event contains %q", s)
			}
		}
	})
}

// vaultTokens returns the client_token values of a Vault audit entry.
func vaultTokens(t *testing.T, line []byte) []string {
	t.Helper()
	var e struct {
		Auth struct {
			ClientToken string `json:"client_token"`
		} `json:"auth"`
		Request struct {
			ClientToken string `json:"client_token"`
		} `json:"request"`
		Response struct {
			Auth struct {
				ClientToken string `json:"client_token"`
			} `json:"auth"`
		} `json:"response"`
	}
	if err := json.Unmarshal(line, &e); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range []string{e.Auth.ClientToken, e.Request.ClientToken, e.Response.Auth.ClientToken} {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
