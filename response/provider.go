package response

import (
	"context"
	"errors"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// Action is what a response does to an identity.
type Action string

// Actions, from the most reversible to the least.
const (
	// ActionIsolate cuts a workload off the network or the mesh (quarantine
	// label with a deny NetworkPolicy, an Istio DENY AuthorizationPolicy, an
	// IAM deny policy on sessions) and can be undone.
	ActionIsolate Action = "isolate_workload"
	// ActionDisable disables an identity (an IAM access key set Inactive, a
	// GCP service account or key disabled, a SPIRE agent banned).
	ActionDisable Action = "disable_identity"
	// ActionRevoke revokes a credential for good (a Vault token accessor, a
	// lease, a PKI certificate, a SPIRE registration entry, a Kubernetes
	// service-account token secret).
	ActionRevoke Action = "revoke_credential"
	// ActionNotify tells a person or a system; it changes nothing.
	ActionNotify Action = "notify"
)

// Target is what an action acts on: the finding's identity and what the
// evidence events tell about it. Providers read the fields they need and
// answer ErrNotApplicable when those are missing.
type Target struct {
	Identity schemas.Identity `json:"identity"`
	// Credential is the credential seen in the evidence (an AWS access key
	// id, a Vault token accessor or lease id, a certificate serial, a GCP
	// key id, a Kubernetes token secret name), with its type as the
	// decoders name it.
	Credential     string `json:"credential,omitempty"`
	CredentialType string `json:"credential_type,omitempty"`
	// Issuer is the issuer of the credential when known (a Vault PKI mount,
	// a CA name).
	Issuer string `json:"issuer,omitempty"`
	// TrustDomain, Namespace and ServiceAccount locate a workload
	// (spiffe://<td>/ns/<ns>/sa/<sa>, or a Kubernetes service account).
	TrustDomain    string `json:"trust_domain,omitempty"`
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount string `json:"service_account,omitempty"`
	// Account and Name locate a cloud identity (aws:role/<account>/<name>,
	// aws:user/…, gcp:sa/<email>).
	Account string `json:"account,omitempty"`
	Name    string `json:"name,omitempty"`
	// Agent is the SPIFFE id of the SPIRE agent (node) the workload ran on,
	// when the evidence names it.
	Agent string `json:"agent,omitempty"`
}

// Request is one action on one target with one provider.
type Request struct {
	// ID is the idempotency key: derived from the finding, the action, the
	// provider and the target, so a replayed finding maps to the same
	// request and never acts twice.
	ID        string    `json:"id"`
	Action    Action    `json:"action"`
	Provider  string    `json:"provider"`
	Target    Target    `json:"target"`
	FindingID string    `json:"finding_id"`
	Reason    string    `json:"reason"` // one line, shown in annotations and notifications
	At        time.Time `json:"at"`     // when the request was planned; revocations cut credentials issued before it
}

// Result is what a provider did: a line for the audit trail and the state it
// needs to undo the action (stored with the audit row).
type Result struct {
	Detail string            `json:"detail"`
	Undo   map[string]string `json:"undo,omitempty"`
}

// Provider is an adapter to one identity provider's real API.
type Provider interface {
	// Name is the provider's configured name (vault, spire, aws_iam,
	// gcp_iam, kubernetes, istio, webhook, or a user's name for a second
	// instance).
	Name() string
	// Check says whether the provider can take action on target, without
	// calling anything; ErrNotApplicable (wrapped) when it cannot.
	Check(action Action, target Target) error
	// Do performs the request. It must be safe to repeat with the same
	// request (an isolation already in place, a key already inactive, an
	// entry already deleted are successes).
	Do(ctx context.Context, req Request) (Result, error)
	// Undo reverses what Do did, from its Result; ErrIrreversible when the
	// provider cannot.
	Undo(ctx context.Context, req Request, done Result) (Result, error)
}

var (
	// ErrNotApplicable: the provider cannot take this action on this
	// target (a Kubernetes isolation for an AWS role).
	ErrNotApplicable = errors.New("not applicable")
	// ErrIrreversible: the action cannot be undone (a revoked token).
	ErrIrreversible = errors.New("cannot be undone")
)

// Permanent marks a provider error that repeating the request cannot fix
// (403 permission denied, 404 unknown key). It is audited as failed and not
// retried.
type Permanent struct{ Err error }

func (p Permanent) Error() string { return p.Err.Error() }
func (p Permanent) Unwrap() error { return p.Err }

// IsPermanent reports whether err is marked Permanent.
func IsPermanent(err error) bool {
	var p Permanent
	return errors.As(err, &p)
}
