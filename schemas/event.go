package schemas

import (
	"crypto/sha256"
	"encoding/hex"
)

// Family is the telemetry family a record came from.
type Family string

// The four telemetry families of SPEC §2.
const (
	FamilyMesh       Family = "mesh"
	FamilyGateway    Family = "gateway"
	FamilyCloudAudit Family = "cloud_audit"
	FamilyIssuance   Family = "issuance"
)

// IdentityKind says what kind of machine identity a canonical id names.
type IdentityKind string

// Identity kinds; the canonical id forms are in SPEC §2.
const (
	KindWorkload       IdentityKind = "workload"        // spiffe://td/ns/x/sa/y
	KindRole           IdentityKind = "role"            // aws:role/<account>/<name>
	KindUser           IdentityKind = "user"            // aws:user/<account>/<name>
	KindServiceAccount IdentityKind = "service_account" // gcp:sa/…, k8s:sa/…
	KindServicePrinc   IdentityKind = "service_principal"
	KindAPIKey         IdentityKind = "api_key"     // apikey:<gateway>:<key id>
	KindCertificate    IdentityKind = "certificate" // cert:<issuer>/<serial>
	KindToken          IdentityKind = "token"       // vault:accessor/…
	KindUnknown        IdentityKind = "unknown"
)

// Result is the normalized outcome of an action.
type Result string

// Outcomes; "denied" is kept apart from "failure" because authorization
// denials are the signal of privilege probing.
const (
	ResultSuccess Result = "success"
	ResultFailure Result = "failure"
	ResultDenied  Result = "denied"
)

// Event is the normalized record every stage shares. Decoders fill it; the
// JSON form (snake_case, nested objects, TimeLayout times) is stable and is
// what `nhisentry decode` prints.
type Event struct {
	ID         string     `json:"id"`
	Time       Time       `json:"time"`
	IngestTime Time       `json:"ingest_time"`
	Source     Source     `json:"source"`
	Identity   Identity   `json:"identity"`
	Credential Credential `json:"credential"`
	Actor      Actor      `json:"actor"`
	Action     string     `json:"action"`
	Service    string     `json:"service"`
	Target     Target     `json:"target"`
	Outcome    Outcome    `json:"outcome"`
	BytesIn    uint64     `json:"bytes_in"`
	BytesOut   uint64     `json:"bytes_out"`
	DurationMS float64    `json:"duration_ms"`
	Issuance   *Issuance  `json:"issuance,omitempty"`
	Provenance Provenance `json:"provenance"`
}

// Source says where the record came from.
type Source struct {
	Family   Family `json:"family"`
	Format   string `json:"format"`
	Provider string `json:"provider,omitempty"`
	Account  string `json:"account,omitempty"`
	Cluster  string `json:"cluster,omitempty"`
	Region   string `json:"region,omitempty"`
}

// Identity is the canonical machine identity that acted.
type Identity struct {
	ID   string       `json:"id"`
	Kind IdentityKind `json:"kind"`
	Name string       `json:"name,omitempty"`
}

// Credential is the credential presented, never its secret value.
type Credential struct {
	ID        string `json:"id,omitempty"`
	Type      string `json:"type,omitempty"`
	IssuedAt  Time   `json:"issued_at"`
	ExpiresAt Time   `json:"expires_at"`
}

// Actor is where the action came from.
type Actor struct {
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	Workload  string `json:"workload,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Node      string `json:"node,omitempty"`
	Peer      string `json:"peer,omitempty"` // downstream peer identity, when logged
	Session   string `json:"session,omitempty"`
}

// Target is what the action was done to.
type Target struct {
	Resource string `json:"resource,omitempty"`
	Peer     string `json:"peer,omitempty"` // upstream peer identity (mesh)
}

// Outcome is the result of the action.
type Outcome struct {
	Result    Result `json:"result"`
	Status    int    `json:"status,omitempty"`
	ErrorCode string `json:"error_code,omitempty"`
}

// Issuance describes a credential minted by an issuance event.
type Issuance struct {
	Credential     string   `json:"credential,omitempty"`
	CredentialType string   `json:"credential_type,omitempty"`
	Subject        string   `json:"subject,omitempty"`
	SANs           []string `json:"sans,omitempty"`
	Issuer         string   `json:"issuer,omitempty"`
	TTLSeconds     int64    `json:"ttl_seconds,omitempty"`
	Requester      string   `json:"requester,omitempty"`
}

// Provenance is the Kafka position the record was read from.
type Provenance struct {
	Topic     string `json:"topic,omitempty"`
	Partition int    `json:"partition"`
	Offset    int64  `json:"offset"`
}

// HashID returns a deterministic id for a record that carries none of its
// own: the hex SHA-256 of its raw bytes, prefixed by the format, truncated to
// 128 bits. A replayed record gets the same id, so storage can drop the copy.
func HashID(format string, raw []byte) string {
	h := sha256.New()
	h.Write([]byte(format))
	h.Write([]byte{0})
	h.Write(raw)
	var sum [sha256.Size]byte
	return format + ":" + hex.EncodeToString(h.Sum(sum[:0])[:16])
}
