package chstore

import (
	"context"
	"time"

	"github.com/nhisentry/nhisentry/detectors/engine"
)

// SentFindings implements engine.SentFindings: the newest revision of each
// finding stored since a time (of storage, not of the events).
func (s *Store) SentFindings(ctx context.Context, since time.Time, fn func(engine.Sent)) error {
	return s.query(ctx, "sent findings", sentFindingsSQL(s.db, since), func(scan func(...any) error) error {
		var f engine.Sent
		var count, revision uint32
		if err := scan(&f.ID, &f.Identity, &count, &revision, &f.FirstSeen); err != nil {
			return err
		}
		f.Count, f.Revision = int(count), int(revision)
		fn(f)
		return nil
	})
}

func sentFindingsSQL(db string, since time.Time) string {
	return `SELECT id, any(identity_id), argMax(count, revision), max(revision), min(first_seen)
FROM ` + db + `.findings
WHERE created_at >= ` + dateTime(since) + `
GROUP BY id`
}
