package chstore

import (
	"context"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// LoadIssuances calls fn with the latest stored issuance of every credential
// (as a partial event: identity, time and issuance fields), so credential
// links survive a restart.
func (s *Store) LoadIssuances(ctx context.Context, fn func(*schemas.Event)) error {
	q := `SELECT issued_credential, argMax(issued_subject, time), argMax(issuer, time), argMax(issued_ttl_seconds, time),
       argMax(identity_id, time), argMax(identity_kind, time), max(time)
FROM ` + s.db + `.events FINAL
WHERE issued_credential != ''
GROUP BY issued_credential`
	return s.query(ctx, "credential issuances", q, func(scan func(...any) error) error {
		var ev schemas.Event
		var is schemas.Issuance
		var kind string
		var at time.Time
		if err := scan(&is.Credential, &is.Subject, &is.Issuer, &is.TTLSeconds, &ev.Identity.ID, &kind, &at); err != nil {
			return err
		}
		ev.Identity.Kind = schemas.IdentityKind(kind)
		ev.Time = schemas.At(at)
		ev.Issuance = &is
		fn(&ev)
		return nil
	})
}
