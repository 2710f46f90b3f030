// Package finding builds the findings of detectors that key each finding by
// the identity, a kind and a key, score it from 0 to 100 and take its
// severity from the score.
package finding

import (
	"math"

	"github.com/nhisentry/nhisentry/schemas"
)

// Severity is the severity of a score: ≥ 80 high, ≥ 60 medium, else low.
func Severity(score float64) schemas.Severity {
	switch {
	case score >= 80:
		return schemas.SeverityHigh
	case score >= 60:
		return schemas.SeverityMedium
	}
	return schemas.SeverityLow
}

// New is detector's finding of kind about ev: its id is
// schemas.FindingID(detector, identity, kind, key…), so a repeat is the same
// finding; the score is rounded and the title names the identity.
func New(detector string, ev *schemas.Event, kind string, key []string, score float64, title, explanation, technique string,
	pattern schemas.Pattern, observed, base string) schemas.Finding {
	parts := append([]string{ev.Identity.ID, kind}, key...)
	return schemas.Finding{
		ID:          schemas.FindingID(detector, parts...),
		Detector:    detector,
		Identity:    ev.Identity,
		Severity:    Severity(score),
		Score:       int(math.Round(score)),
		Title:       title + " for " + ev.Identity.ID,
		Explanation: explanation,
		Technique:   technique,
		EventIDs:    []string{ev.ID},
		FirstSeen:   ev.Time,
		LastSeen:    ev.Time,
		Analysis:    schemas.Analysis{Pattern: pattern, Observed: observed, Baseline: base},
	}
}
