package vault

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// vaultFake answers the three revocation endpoints as Vault's API
// documentation and its source describe them: 204 No Content for
// auth/token/revoke-accessor and sys/leases/revoke, the response envelope
// with data.revocation_time for <mount>/revoke, and {"errors":[…]} with
// 400, 403 or 404 for a bad request, a denied token or an unknown route.
type vaultFake struct {
	token  string          // the only token with the policy
	mounts map[string]bool // PKI mounts

	mu        sync.Mutex
	got       []vaultRequest
	accessors map[string]bool      // live tokens, by accessor
	leases    map[string]bool      // live leases
	certs     map[string]string    // serial (colon form) → valid, expired, revoked
	revokedAt map[string]time.Time // when a certificate was revoked
	now       time.Time
}

type vaultRequest struct {
	Method, Path, Body, Token, Namespace string
	Header                               http.Header
}

func newVaultFake(token string) *vaultFake {
	return &vaultFake{
		token:     token,
		mounts:    map[string]bool{"pki": true, "pki_int": true},
		accessors: map[string]bool{"hmm7nvY2n4aKqYPOhc0fjjPX": true, "6Lz9ctGq4FqBYb2wVBYJFHd4": true},
		leases:    map[string]bool{"database/creds/readonly/2f6a614c-4aa2-7b19-24b9-ad944a8d4de6": true},
		certs: map[string]string{
			"39:dd:2e:90:b7:23:1f:8d:d3:7d:31:c5:1b:da:84:d0:5b:65:31:58": "valid",
			"5b:65:31:58:39:dd:2e:90:b7:23:1f:8d:d3:7d:31:c5:1b:da:84:d0": "valid",
			"0a:0b:0c:0d": "expired",
		},
		revokedAt: map[string]time.Time{},
		now:       time.Date(2026, 11, 22, 9, 31, 0, 0, time.UTC),
	}
}

func (f *vaultFake) requests() []vaultRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]vaultRequest(nil), f.got...)
}

func (f *vaultFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, vaultRequest{Method: r.Method, Path: r.URL.Path, Body: string(body), Token: r.Header.Get("X-Vault-Token"), Namespace: r.Header.Get("X-Vault-Namespace"), Header: r.Header.Clone()})
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("X-Vault-Token") != f.token {
		vaultErrors(w, http.StatusForbidden, "permission denied")
		return
	}
	var in map[string]string
	if err := json.Unmarshal(body, &in); err != nil {
		vaultErrors(w, http.StatusBadRequest, "failed to parse JSON input: "+err.Error())
		return
	}
	path := strings.TrimPrefix(r.URL.Path, "/v1/")
	switch {
	case path == "auth/token/revoke-accessor" && (r.Method == http.MethodPost || r.Method == http.MethodPut):
		if !f.accessors[in["accessor"]] {
			vaultErrors(w, http.StatusBadRequest, "invalid accessor")
			return
		}
		delete(f.accessors, in["accessor"])
		w.WriteHeader(http.StatusNoContent)
	case path == "sys/leases/revoke" && r.Method == http.MethodPut:
		// Vault revokes an unknown lease without complaint.
		delete(f.leases, in["lease_id"])
		w.WriteHeader(http.StatusNoContent)
	case strings.HasSuffix(path, "/revoke") && f.mounts[strings.TrimSuffix(path, "/revoke")] && (r.Method == http.MethodPut || r.Method == http.MethodPost):
		serial := strings.ToLower(strings.ReplaceAll(in["serial_number"], "-", ":"))
		switch f.certs[serial] {
		case "":
			vaultErrors(w, http.StatusBadRequest, fmt.Sprintf("certificate with serial %s not found.", in["serial_number"]))
		case "expired":
			writeJSON(w, map[string]any{"request_id": "r", "data": nil, "warnings": []string{fmt.Sprintf("certificate with serial %s already expired; refusing to add to CRL", serial)}})
		default:
			if f.certs[serial] == "valid" {
				f.certs[serial] = "revoked"
				f.revokedAt[serial] = f.now
				f.now = f.now.Add(time.Minute)
			}
			t := f.revokedAt[serial]
			writeJSON(w, map[string]any{"request_id": "r", "lease_id": "", "renewable": false, "lease_duration": 0, "wrap_info": nil, "warnings": nil, "auth": nil,
				"data": map[string]any{"revocation_time": t.Unix(), "revocation_time_rfc3339": t.Format(time.RFC3339Nano), "state": "revoked"}})
		}
	default:
		vaultErrors(w, http.StatusNotFound, fmt.Sprintf("no handler for route %q. route entry not found.", path))
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	_, _ = w.Write(b)
}

func vaultErrors(w http.ResponseWriter, status int, msgs ...string) {
	w.WriteHeader(status)
	writeJSON(w, map[string]any{"errors": msgs})
}
