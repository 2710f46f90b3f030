package gcpiam

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// iamFake serves the IAM REST v1 methods the provider uses, as Google's
// reference documents them: GET of a service account and of a key (the
// "disabled" field is present only when true, as proto3 JSON prints it),
// POST :disable and :enable with an empty JSON object answered by {}, and
// errors as {"error":{"code","message","status"}} — 403 PERMISSION_DENIED
// for a missing resource under the "-" project wildcard, 404 NOT_FOUND
// under a named project. It also serves an OAuth2 token endpoint for the
// JWT-bearer grant of service-account keys.
type iamFake struct {
	token string         // the access token IAM accepts
	key   *rsa.PublicKey // verifies the assertions the token endpoint gets

	mu       sync.Mutex
	got      []fakeRequest
	accounts map[string]bool // email → disabled
	keys     map[string]bool // email/keys/id → disabled
	grants   int             // tokens handed out
}

type fakeRequest struct {
	Method, Path, Body, Auth, ContentType string
}

func newIAMFake(token string) *iamFake {
	return &iamFake{
		token: token,
		accounts: map[string]bool{
			"ledger@payments-prod.iam.gserviceaccount.com":    false,
			"123456789-compute@developer.gserviceaccount.com": false,
		},
		keys: map[string]bool{"ledger@payments-prod.iam.gserviceaccount.com/keys/1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d": false},
	}
}

func (f *iamFake) requests() []fakeRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeRequest(nil), f.got...)
}

// disabled reports the state of an account (email) or key (email/keys/id).
func (f *iamFake) disabled(resource string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.accounts[resource] || f.keys[resource]
}

func googleError(w http.ResponseWriter, code int, status, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
	_, _ = w.Write(b)
}

func (f *iamFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if r.URL.Path == "/token" {
		f.serveToken(w, r, body)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, fakeRequest{Method: r.Method, Path: r.URL.Path, Body: string(body), Auth: r.Header.Get("Authorization"), ContentType: r.Header.Get("Content-Type")})
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		googleError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.")
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, "/v1/projects/")
	if !ok {
		googleError(w, http.StatusNotFound, "NOT_FOUND", "not found")
		return
	}
	project, rest, _ := strings.Cut(name, "/serviceAccounts/")
	resource, verb, _ := strings.Cut(rest, ":")
	email, _, _ := strings.Cut(resource, "/")
	isKey := strings.Contains(resource, "/keys/")
	states := f.accounts
	if isKey {
		states = f.keys
	}
	disabled, exists := states[resource]
	if exists && project != "-" && !strings.HasSuffix(email, "@"+project+".iam.gserviceaccount.com") {
		exists = false
	}
	if !exists {
		if project == "-" {
			googleError(w, http.StatusForbidden, "PERMISSION_DENIED", "Permission 'iam.serviceAccounts.get' denied on resource (or it may not exist).")
		} else {
			googleError(w, http.StatusNotFound, "NOT_FOUND", "Unknown service account")
		}
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	switch {
	case r.Method == http.MethodGet && verb == "":
		out := map[string]any{"name": "projects/" + project + "/serviceAccounts/" + resource}
		if isKey {
			out["keyAlgorithm"], out["keyOrigin"], out["keyType"] = "KEY_ALG_RSA_2048", "GOOGLE_PROVIDED", "USER_MANAGED"
		} else {
			out["email"], out["uniqueId"] = email, "112233445566778899"
		}
		if disabled {
			out["disabled"] = true
		}
		b, _ := json.Marshal(out)
		_, _ = w.Write(b)
	case r.Method == http.MethodPost && (verb == "disable" || verb == "enable"):
		if strings.TrimSpace(string(body)) != "{}" {
			googleError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "Invalid JSON payload received.")
			return
		}
		states[resource] = verb == "disable"
		_, _ = w.Write([]byte("{}\n"))
	default:
		googleError(w, http.StatusNotFound, "NOT_FOUND", "no such method")
	}
}

// serveToken answers the JWT-bearer grant (RFC 7523) of a service-account
// key after checking the assertion's RS256 signature and claims.
func (f *iamFake) serveToken(w http.ResponseWriter, r *http.Request, body []byte) {
	tokenError := func(msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":"invalid_grant","error_description":%q}`, msg)
	}
	r.Body = io.NopCloser(strings.NewReader(string(body)))
	if err := r.ParseForm(); err != nil || r.PostForm.Get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		tokenError("unsupported grant")
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		tokenError("malformed assertion")
		return
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err != nil || f.key == nil || rsa.VerifyPKCS1v15(f.key, crypto.SHA256, sum[:], sig) != nil {
		tokenError("Invalid JWT Signature.")
		return
	}
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims struct{ Iss, Scope, Aud string }
	if json.Unmarshal(payload, &claims) != nil || claims.Scope != scope || !strings.HasSuffix(claims.Aud, "/token") || claims.Iss == "" {
		tokenError("bad claims " + string(payload))
		return
	}
	f.mu.Lock()
	f.grants++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"expires_in":3599,"token_type":"Bearer"}`, f.token)
}
