package cadence_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/cadence"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Three and a half weeks of generated traffic, rebuilt every three hours:
// the nightly jobs among the roles get a cadence and keep it, and nothing is
// reported; then one job's credential is used twelve hours off its
// schedule, and another job skips two runs: both are reported, only they.
func TestGeneratedJobs(t *testing.T) {
	x := detectortest.Replay(t, detectortest.ReplayConfig{
		Gen:       gen.Config{Seed: 3, Duration: 24 * 24 * time.Hour, Workloads: 14, Roles: 30, APIKeys: 2, VaultClients: 2},
		Detectors: []detectors.Detector{cadence.New(cadence.DefaultConfig())},
		// The attacks are timed from each job's last run in its model:
		// rebuilds every three hours keep it current, where rebuilds at
		// midnight leave it a day behind the events.
		RebuildEvery: 3 * time.Hour,
		// Already small: fewer roles would leave fewer than two nightly
		// jobs.
		RaceDivisor: 1,
	})
	evs := x.Events
	for _, f := range x.Findings {
		t.Errorf("normal traffic: %s %s %d: %s", f.Identity.ID, f.Severity, f.Score, f.Explanation)
	}
	var jobs []schemas.Identity
	seen := map[string]bool{}
	for i := range evs {
		id := evs[i].Identity
		if seen[id.ID] {
			continue
		}
		seen[id.ID] = true
		if m := x.Profile(id).Model(); m != nil && m.Cadence != nil && m.Cadence.Runs >= 5 && m.Cadence.Jitter <= 0.05*m.Cadence.Interval {
			jobs = append(jobs, id)
		}
	}
	slices.SortFunc(jobs, func(a, b schemas.Identity) int { return strings.Compare(a.ID, b.ID) })
	if len(jobs) < 2 {
		t.Fatalf("%d identities with a cadence in the generated traffic, want at least 2", len(jobs))
	}
	for _, id := range jobs {
		m := x.Profile(id).Model()
		t.Logf("job %s: %+v pooled %v", id.ID, *m.Cadence, m.Pooled)
	}

	var attack []schemas.Event
	off := x.Profile(jobs[0]).Model().Cadence
	ev := detectortest.EventOf(jobs[0], off.LastRun.Add(secs(off.Interval/2)), "s3:GetObject")
	attack = append(attack, ev)
	skip := x.Profile(jobs[1]).Model().Cadence
	ev = detectortest.EventOf(jobs[1], skip.LastRun.Add(secs(3*skip.Interval)+2*time.Minute), "s3:GetObject")
	attack = append(attack, ev)
	slices.SortFunc(attack, func(a, b schemas.Event) int { return a.Time.Compare(b.Time.Time) })
	got := x.Run(attack)
	if len(got) != 2 {
		t.Fatalf("%d findings, want an off-schedule run and two missed runs: %+v", len(got), got)
	}
	for _, f := range got {
		t.Logf("%s %s %d: %s", f.Identity.ID, f.Severity, f.Score, f.Explanation)
		switch f.Identity {
		case jobs[0]:
			if f.Analysis.Pattern != schemas.PatternOffHours || f.Severity != schemas.SeverityHigh {
				t.Errorf("off-schedule run: %+v", f)
			}
		case jobs[1]:
			if f.Analysis.Pattern != schemas.PatternRare || !strings.Contains(f.Explanation, "2 expected runs missed") {
				t.Errorf("missed runs: %+v", f)
			}
		default:
			t.Errorf("finding on %s", f.Identity.ID)
		}
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
