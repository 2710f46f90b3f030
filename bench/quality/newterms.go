package quality

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// NewTermsDetector names the naive method's findings.
const NewTermsDetector = "new_terms"

// NewTermsWindow is the classic history window of the "new terms" rule: an
// action is new for an identity when the identity did not perform it in the
// previous 14 days.
const NewTermsWindow = 14 * 24 * time.Hour

// NewTerms is the naive reference method: walking the events in time order,
// it raises a finding when an identity performs an action it did not perform
// in the window before. Events before alertFrom only train it: with a
// 14-day window and a 14-day run nothing would otherwise ever be old enough
// to count as known, so the run's first days stand in for the history a
// deployed rule would have. An identity first seen after alertFrom alerts on
// each of its actions, as the rule would. Each (identity, action) term is
// raised at most once, like a deduplicated alert.
func NewTerms(events []Event, window time.Duration, alertFrom time.Time) []schemas.Finding {
	type term struct{ id, action string }
	last := map[term]time.Time{}
	alerted := map[term]bool{}
	var out []schemas.Finding
	for _, e := range sortedByTime(events) {
		k := term{e.Identity, e.Action}
		prev, known := last[k]
		last[k] = e.Time
		if e.Time.Before(alertFrom) || alerted[k] || (known && e.Time.Sub(prev) <= window) {
			continue
		}
		alerted[k] = true
		baseline := "never"
		if known {
			baseline = "last " + prev.UTC().Format(time.RFC3339)
		}
		out = append(out, schemas.Finding{
			ID:          schemas.FindingID(NewTermsDetector, e.Identity, e.Action),
			Detector:    NewTermsDetector,
			Identity:    schemas.Identity{ID: e.Identity},
			Severity:    schemas.SeverityLow,
			Title:       "New action for identity",
			Explanation: fmt.Sprintf("%s performed %s, not seen for it in the previous %v", e.Identity, e.Action, window),
			FirstSeen:   schemas.At(e.Time),
			LastSeen:    schemas.At(e.Time),
			Analysis:    schemas.Analysis{Pattern: schemas.PatternUnseen, Observed: e.Action, Baseline: baseline},
			Count:       1,
		})
	}
	return out
}

// sortedByTime returns events in time order (stable, so equal times keep
// the input's order), leaving the input alone.
func sortedByTime(events []Event) []Event {
	s := slices.Clone(events)
	slices.SortStableFunc(s, func(a, b Event) int { return cmp.Compare(a.Time.UnixNano(), b.Time.UnixNano()) })
	return s
}
