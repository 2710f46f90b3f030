package response

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Status is where an action stands in the audit trail.
type Status string

// Statuses. Terminal: dry_run, shadow, skipped, rejected, succeeded,
// failed, undone. pending_approval waits for a person; queued waits for its
// next attempt; running is being called.
const (
	StatusDryRun    Status = "dry_run"
	StatusShadow    Status = "shadow"
	StatusSkipped   Status = "skipped"
	StatusPending   Status = "pending_approval"
	StatusRejected  Status = "rejected"
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusUndone    Status = "undone"
)

// Record is one action's row in the audit trail (ClickHouse response_audit,
// and the audit topic). Every change of status writes the whole record
// again with a newer Version.
type Record struct {
	ID          string    `json:"id"` // the request id: the idempotency key
	Time        time.Time `json:"time"`
	UpdatedAt   time.Time `json:"updated_at"`
	Version     uint64    `json:"version"`
	FindingID   string    `json:"finding_id"`
	IdentityID  string    `json:"identity_id"`
	Action      Action    `json:"action"`
	Provider    string    `json:"provider"`
	Mode        Mode      `json:"mode"`
	Status      Status    `json:"status"`
	Decision    string    `json:"decision"` // why this status, in a line
	Detail      string    `json:"detail"`   // what the provider did or answered
	Actor       string    `json:"actor"`    // "nhisentry" or the person who approved, rejected or undid
	BlastRadius int       `json:"blast_radius"`
	Attempts    int       `json:"attempts"`
	NextAttempt time.Time `json:"next_attempt"`
	Request     Request   `json:"request"`
	// Undo is the provider's state for undoing a succeeded action.
	Undo map[string]string `json:"undo,omitempty"`
}

// AuditQuery selects records; empty fields select everything.
type AuditQuery struct {
	IDs      []string
	Statuses []Status
	// DueBy selects queued records whose next attempt is at or before it.
	DueBy time.Time
	// Since selects records planned at or after it.
	Since time.Time
	Limit int
}

// AuditStore keeps the audit trail durably; it is also the queue of the
// actions waiting for approval or for another attempt, so none is lost
// across restarts.
type AuditStore interface {
	WriteAudit(ctx context.Context, records []Record) error
	// LoadAudit returns the newest version of each selected record,
	// oldest first.
	LoadAudit(ctx context.Context, q AuditQuery) ([]Record, error)
}

// AuditSink receives a copy of every audit record (the Kafka audit topic).
type AuditSink interface {
	WriteAudit(ctx context.Context, records []Record) error
}

// requestID is the idempotency key of an action: the same finding, action,
// provider and target always give the same id, so a replayed finding (or a
// later revision of it) never acts twice.
func requestID(findingID string, a Action, provider string, t Target) string {
	h := sha256.New()
	for _, s := range []string{findingID, string(a), provider, t.key()} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}
