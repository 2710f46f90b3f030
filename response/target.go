package response

import (
	"strings"

	"github.com/nhisentry/nhisentry/schemas"
)

// TargetOf derives what an action on f's identity acts on, from the
// identity's canonical id and the evidence events (the newest event that
// presented a credential names it).
func TargetOf(f *schemas.Finding, evidence []schemas.Event) Target {
	t := Target{Identity: f.Identity}
	id := f.Identity.ID
	switch {
	case strings.HasPrefix(id, "spiffe://"):
		td, path, _ := strings.Cut(strings.TrimPrefix(id, "spiffe://"), "/")
		t.TrustDomain = td
		if segs := strings.Split(path, "/"); len(segs) >= 4 && segs[0] == "ns" && segs[2] == "sa" {
			t.Namespace, t.ServiceAccount = segs[1], segs[3]
		}
		if strings.HasPrefix(path, "spire/agent/") {
			t.Agent = id
		}
	case strings.HasPrefix(id, "k8s:sa/"): // k8s:sa/<cluster>/<namespace>/<name>
		if segs := strings.Split(strings.TrimPrefix(id, "k8s:sa/"), "/"); len(segs) == 3 {
			t.Account, t.Namespace, t.ServiceAccount = segs[0], segs[1], segs[2]
		}
	case strings.HasPrefix(id, "aws:role/"), strings.HasPrefix(id, "aws:user/"):
		_, rest, _ := strings.Cut(id, "/")
		t.Account, t.Name, _ = strings.Cut(rest, "/")
	case strings.HasPrefix(id, "gcp:sa/"):
		t.Name = strings.TrimPrefix(id, "gcp:sa/")
	case strings.HasPrefix(id, "vault:accessor/"):
		t.Credential, t.CredentialType = strings.TrimPrefix(id, "vault:accessor/"), "vault_token"
	case strings.HasPrefix(id, "cert:"): // cert:<issuer>/<serial>
		rest := strings.TrimPrefix(id, "cert:")
		if i := strings.LastIndexByte(rest, '/'); i > 0 {
			t.Issuer, t.Credential, t.CredentialType = rest[:i], rest[i+1:], "x509_certificate"
		}
	}
	for i := len(evidence) - 1; i >= 0 && t.Credential == ""; i-- {
		if c := evidence[i].Credential; c.ID != "" {
			t.Credential, t.CredentialType = c.ID, c.Type
		}
	}
	for i := len(evidence) - 1; i >= 0; i-- {
		ev := &evidence[i]
		if t.Namespace == "" && ev.Actor.Namespace != "" {
			t.Namespace = ev.Actor.Namespace
		}
		if t.Account == "" && ev.Source.Account != "" {
			t.Account = ev.Source.Account
		}
	}
	return t
}

// key is the part of a target that makes two requests the same action.
func (t Target) key() string {
	return strings.Join([]string{t.Identity.ID, t.Credential, t.Namespace, t.ServiceAccount, t.Agent}, "\x00")
}
