// Package quality scores detection methods against the labeled attacks of
// bench/gen: recall and time to detect per scenario, precision, and false
// findings per 1,000 identity-days; and it holds the naive reference method
// ("new terms") the scores are set against. Everything here is a pure
// function of its inputs, so the figures in bench/RESULTS.md follow from the
// seed alone.
package quality

import (
	"slices"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/schemas"
)

// DefaultGrace is how long after a label's last attack record a finding
// still counts for it: detectors that aggregate (an hourly volume, a burst
// of denials) conclude after the events they count.
const DefaultGrace = time.Hour

// Options says which findings are scored.
type Options struct {
	// From starts the evaluation period: findings whose last_seen is before
	// it fall in the training period and are not scored. Both methods get
	// the same period, so neither is charged for learning.
	From time.Time
	// Grace extends every label's window past its end.
	Grace time.Duration
}

// ScenarioResult is the outcome for the labels of one scenario.
type ScenarioResult struct {
	Scenario string
	Labels   int
	Detected int
	// TimeToDetect is, over the detected labels, the median of the first
	// matching finding's time minus the label's start (zero when none was
	// detected).
	TimeToDetect time.Duration
}

// Report is one method's score.
type Report struct {
	Scenarios     []ScenarioResult // in the order the scenarios first appear in the labels
	Findings      int              // distinct findings (ids) in the evaluation period
	TruePositives int              // findings matching at least one label
	IdentityDays  int
}

// FalseFindings is the number of findings matching no label.
func (r Report) FalseFindings() int { return r.Findings - r.TruePositives }

// Precision is the share of findings that match a label (0 with no findings).
func (r Report) Precision() float64 {
	if r.Findings == 0 {
		return 0
	}
	return float64(r.TruePositives) / float64(r.Findings)
}

// FalsePer1000IdentityDays normalizes false findings by the population
// observed, so runs of different size and length compare.
func (r Report) FalsePer1000IdentityDays() float64 {
	if r.IdentityDays == 0 {
		return 0
	}
	return 1000 * float64(r.FalseFindings()) / float64(r.IdentityDays)
}

// Recall is detected labels over all labels, across scenarios.
func (r Report) Recall() (detected, labels int) {
	for _, s := range r.Scenarios {
		detected += s.Detected
		labels += s.Labels
	}
	return detected, labels
}

// Score matches findings to labels. A finding is a true positive when its
// identity is the label's and the span [first_seen, last_seen] of one of its
// revisions overlaps the label's window [start, end+grace]. Revisions of one
// finding (the same id, printed again as its count grows) are one finding.
func Score(findings []schemas.Finding, labels []gen.Label, opts Options, identityDays int) Report {
	rep := Report{IdentityDays: identityDays}
	// Earliest detection per label, -1 while undetected.
	detect := make([]time.Duration, len(labels))
	for i := range detect {
		detect[i] = -1
	}
	seen := map[string]bool{} // id → matched a label
	for _, f := range findings {
		if f.LastSeen.Before(opts.From) {
			continue
		}
		tp := seen[f.ID]
		for i, l := range labels {
			if f.Identity.ID != l.Identity || f.FirstSeen.After(l.End.Add(opts.Grace)) || f.LastSeen.Before(l.Start) {
				continue
			}
			tp = true
			// A revision that began before the attack was sent again
			// because of an event at its last_seen: that is when it
			// told of the attack.
			at := f.FirstSeen.Time
			if at.Before(l.Start) {
				at = f.LastSeen.Time
			}
			if d := at.Sub(l.Start); detect[i] < 0 || d < detect[i] {
				detect[i] = d
			}
		}
		seen[f.ID] = tp
	}
	rep.Findings = len(seen)
	for _, tp := range seen {
		if tp {
			rep.TruePositives++
		}
	}

	byScenario := map[string][]time.Duration{}
	for i, l := range labels {
		k := slices.IndexFunc(rep.Scenarios, func(s ScenarioResult) bool { return s.Scenario == l.Scenario })
		if k < 0 {
			rep.Scenarios = append(rep.Scenarios, ScenarioResult{Scenario: l.Scenario})
			k = len(rep.Scenarios) - 1
		}
		rep.Scenarios[k].Labels++
		if detect[i] >= 0 {
			rep.Scenarios[k].Detected++
			byScenario[l.Scenario] = append(byScenario[l.Scenario], detect[i])
		}
	}
	for k := range rep.Scenarios {
		if ds := byScenario[rep.Scenarios[k].Scenario]; len(ds) > 0 {
			slices.Sort(ds)
			rep.Scenarios[k].TimeToDetect = ds[(len(ds)-1)/2]
		}
	}
	return rep
}

// Event is what the scoring and the naive method need of a normalized event.
type Event struct {
	Time     time.Time
	Identity string
	Action   string
}

// IdentityDays counts the distinct (identity, UTC day) pairs of the events
// at or after from: how much population was watched in the evaluation
// period.
func IdentityDays(events []Event, from time.Time) int {
	type key struct {
		id  string
		day int64
	}
	seen := map[key]struct{}{}
	for _, e := range events {
		if e.Time.Before(from) {
			continue
		}
		seen[key{e.Identity, e.Time.Unix() / 86400}] = struct{}{}
	}
	return len(seen)
}
