package schemas

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Severity is a finding's severity, ordered from Info to Critical.
type Severity string

// Severities, in the names OCSF uses for severity_id 1–5.
const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Rank orders severities (Info = 1 … Critical = 5, unknown = 0), matching
// OCSF severity_id.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 1
	case SeverityLow:
		return 2
	case SeverityMedium:
		return 3
	case SeverityHigh:
		return 4
	case SeverityCritical:
		return 5
	}
	return 0
}

// ParseSeverity returns the severity named s, or false.
func ParseSeverity(s string) (Severity, bool) {
	v := Severity(strings.ToLower(s))
	return v, v.Rank() > 0
}

// Pattern is the observed pattern of an anomaly, as OCSF anomaly_analyses
// names it.
type Pattern string

// Patterns used by the detectors.
const (
	PatternUnseen   Pattern = "UNSEEN"
	PatternSurge    Pattern = "SURGE"
	PatternRare     Pattern = "RARE"
	PatternOffHours Pattern = "OFF_HOURS"
	PatternMatch    Pattern = "RULE_MATCH"
)

// Finding is what a detector or rule concludes about one identity.
type Finding struct {
	// ID is deterministic: the same detector, identity and key always give the
	// same id, so a replayed batch never produces a second finding downstream.
	ID          string   `json:"id"`
	Detector    string   `json:"detector"`
	RuleID      string   `json:"rule_id,omitempty"`
	Identity    Identity `json:"identity"`
	Severity    Severity `json:"severity"`
	Score       int      `json:"score"`
	Title       string   `json:"title"`
	Explanation string   `json:"explanation"`
	Technique   string   `json:"technique,omitempty"` // MITRE ATT&CK id, e.g. T1078.004
	EventIDs    []string `json:"event_ids"`
	FirstSeen   Time     `json:"first_seen"`
	LastSeen    Time     `json:"last_seen"`
	Analysis    Analysis `json:"analysis"`
	// Count is how many times the finding was raised: repeats (the same id:
	// the same detector, identity and key, whose key includes the hour for
	// rate detectors) merge into one finding instead of a flood.
	Count int `json:"count"`
	// Revision is how many times this finding was sent before: 0 for the
	// first message, then 1, 2, … as repeats in later batches raise Count.
	// Consumers keep the highest revision of an id.
	Revision int `json:"revision"`
}

// Analysis is the baseline set against the observation (OCSF
// anomaly_analyses), so a reader sees "normal versus now" without a query.
type Analysis struct {
	Pattern  Pattern `json:"pattern"`
	Observed string  `json:"observed"`
	Baseline string  `json:"baseline"`
}

// FindingID derives a finding's deterministic id from the detector (or rule)
// and the parts that make the finding unique, for example the identity and
// the new value, or the identity and the hour.
func FindingID(detector string, parts ...string) string {
	h := sha256.New()
	h.Write([]byte(detector))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}
