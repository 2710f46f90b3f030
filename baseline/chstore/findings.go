package chstore

import (
	"context"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

var findingColumnNames = []string{
	"id", "first_seen", "last_seen", "detector", "rule_id", "identity_id", "identity_kind",
	"severity", "score", "title", "explanation", "technique", "event_ids", "pattern", "observed",
	"baseline", "created_at", "count", "revision",
}

// WriteFindings stores findings in one INSERT; a finding id already stored is
// replaced, not duplicated.
func (s *Store) WriteFindings(ctx context.Context, findings []schemas.Finding) error {
	if len(findings) == 0 {
		return nil
	}
	n := len(findings)
	var (
		id, detector, rule, identity, kind, severity = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		title, explanation, technique, pattern       = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		observed, base                               = make([]string, n), make([]string, n)
		first, last, created                         = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		score                                        = make([]uint8, n)
		count, revision                              = make([]uint32, n), make([]uint32, n)
		eventIDs                                     = make([][]string, n)
	)
	now := time.Now().UTC()
	for i := range findings {
		f := &findings[i]
		id[i], detector[i], rule[i] = f.ID, f.Detector, f.RuleID
		identity[i], kind[i], severity[i] = f.Identity.ID, string(f.Identity.Kind), string(f.Severity)
		title[i], explanation[i], technique[i] = f.Title, f.Explanation, f.Technique
		pattern[i], observed[i], base[i] = string(f.Analysis.Pattern), f.Analysis.Observed, f.Analysis.Baseline
		first[i], last[i], created[i] = orEpoch(f.FirstSeen), orEpoch(f.LastSeen), now
		score[i] = uint8(min(max(f.Score, 0), 100))
		count[i], revision[i] = uint32(max(f.Count, 1)), uint32(max(f.Revision, 0))
		eventIDs[i] = f.EventIDs
		if eventIDs[i] == nil {
			eventIDs[i] = []string{}
		}
	}
	return s.insertColumns(ctx, "findings", findingColumnNames, []any{
		id, first, last, detector, rule, identity, kind, severity, score, title, explanation,
		technique, eventIDs, pattern, observed, base, created, count, revision,
	})
}
