package offhours_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/offhours"
	"github.com/nhisentry/nhisentry/schemas"
)

// middayRun is a stolen nightly job credential: on the run's 18th day, the
// first nightly-job identity makes three of its usual calls twelve hours
// after its run.
func middayRun(start time.Time) func([]schemas.Event) ([]schemas.Event, []gen.Label) {
	return func(evs []schemas.Event) ([]schemas.Event, []gen.Label) {
		day := start.Add(17 * 24 * time.Hour)
		var out []schemas.Event
		for _, ev := range evs {
			if !strings.Contains(ev.Identity.ID, "nightly") || ev.Time.Before(day) ||
				(len(out) > 0 && ev.Identity.ID != out[0].Identity.ID) || len(out) == 3 {
				continue
			}
			ev.ID += "-midday"
			ev.Time = schemas.At(ev.Time.Add(12 * time.Hour))
			out = append(out, ev)
		}
		if len(out) == 0 {
			return nil, nil
		}
		return out, []gen.Label{{Scenario: "midday_nightly_job", Identity: out[0].Identity.ID, Start: out[0].Time.Time, End: out[len(out)-1].Time.Time}}
	}
}

// TestGeneratedRun replays three generated weeks, so the last has two
// weeks of history behind it: nightly and hourly jobs, business-hours API
// clients and round-the-clock services must give at most one false finding
// per 1,000 identity-days (SPEC §11), and a nightly job's credential used at
// midday must be found. The generator's own attacks fall in the first week,
// before any identity has the history off-hours needs.
func TestGeneratedRun(t *testing.T) {
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	r := detectortest.Replay(t, detectortest.ReplayConfig{
		Gen:       gen.Config{Seed: 3, Start: start, Duration: 21 * 24 * time.Hour, Attacks: true},
		Detectors: []detectors.Detector{offhours.New(offhours.DefaultConfig())},
		Inject:    middayRun(start),
		// A quarter of the population has no nightly job; a third has one.
		RaceDivisor: 3,
	})
	if !r.Judge(t)["midday_nightly_job"] {
		t.Errorf("the nightly job's credential used at midday was not found")
	}
}
