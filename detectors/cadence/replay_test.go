package cadence_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/cadence"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// generated decodes the generated telemetry of cfg, in event-time order.
func generated(t *testing.T, cfg gen.Config) []schemas.Event {
	t.Helper()
	var evs []schemas.Event
	_, err := gen.Generate(cfg, func(r gen.Record) error {
		dec, err := formats.ByName(r.Format)
		if err != nil {
			return err
		}
		evs, err = dec.Decode(evs, ingest.Record{Topic: r.Format, Value: r.Value, Time: r.Time})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(evs, func(a, b schemas.Event) int { return a.Time.Compare(b.Time.Time) })
	return evs
}

// pipeline runs a detector as the service does: the embedded store keeps
// the events, baselines are rebuilt every rebuild of data time, and the
// cache learns online between rebuilds.
type pipeline struct {
	t       *testing.T
	det     detectors.Detector
	store   *memstore.Store
	cache   *baseline.Cache
	rb      *baseline.Rebuilder
	rebuild time.Duration
	clock   time.Time
	next    time.Time
}

func newPipeline(t *testing.T, det detectors.Detector, rebuild time.Duration) *pipeline {
	x := &pipeline{t: t, det: det, store: memstore.New(), rebuild: rebuild}
	x.cache = baseline.NewCache(baseline.CacheOptions{Loader: x.store})
	x.rb = baseline.NewRebuilder(x.store, x.cache, nil, baseline.RebuildOptions{Clock: func() time.Time { return x.clock }},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	return x
}

// run detects over evs in batches and returns the findings.
func (x *pipeline) run(evs []schemas.Event) []schemas.Finding {
	x.t.Helper()
	ctx := context.Background()
	var found []schemas.Finding
	const batch = 2000
	for i := 0; i < len(evs); i += batch {
		b := evs[i:min(i+batch, len(evs))]
		x.cache.Lock()
		for j := range b {
			ev := &b[j]
			p := x.cache.Get(ev.Identity)
			in := detectors.NewInput(p, ev, ev.Time.Time)
			in.Cohort = x.cache.Cohort(p)
			found = x.det.Detect(&in, found)
			x.cache.Observe(p, ev)
		}
		x.cache.Unlock()
		if err := x.store.WriteEvents(ctx, b); err != nil {
			x.t.Fatal(err)
		}
		x.clock = b[len(b)-1].Time.Time
		if !x.clock.Before(x.next) {
			if _, err := x.rb.Rebuild(ctx, false); err != nil {
				x.t.Fatal(err)
			}
			x.next = x.clock.Add(x.rebuild)
		}
	}
	return found
}

// profile is id's cached profile.
func (x *pipeline) profile(id schemas.Identity) *baseline.Profile {
	x.cache.Lock()
	defer x.cache.Unlock()
	return x.cache.Get(id)
}

// Three and a half weeks of generated traffic, rebuilt every three hours:
// the nightly jobs among the roles get a cadence and keep it, and nothing is
// reported; then one job's credential is used twelve hours off its
// schedule, and another job skips two runs: both are reported, only they.
func TestGeneratedJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("replays generated weeks")
	}
	evs := generated(t, gen.Config{Seed: 3, Duration: 24 * 24 * time.Hour, Workloads: 14, Roles: 30, APIKeys: 2, VaultClients: 2})
	x := newPipeline(t, cadence.New(cadence.DefaultConfig()), 3*time.Hour)
	found := x.run(evs)
	for _, f := range found {
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
		if m := x.profile(id).Model(); m != nil && m.Cadence != nil && m.Cadence.Runs >= 5 && m.Cadence.Jitter <= 0.05*m.Cadence.Interval {
			jobs = append(jobs, id)
		}
	}
	slices.SortFunc(jobs, func(a, b schemas.Identity) int { return strings.Compare(a.ID, b.ID) })
	if len(jobs) < 2 {
		t.Fatalf("%d identities with a cadence in the generated traffic, want at least 2", len(jobs))
	}
	for _, id := range jobs {
		m := x.profile(id).Model()
		t.Logf("job %s: %+v pooled %v", id.ID, *m.Cadence, m.Pooled)
	}

	var attack []schemas.Event
	off := x.profile(jobs[0]).Model().Cadence
	ev := eventOf(jobs[0], off.LastRun.Add(secs(off.Interval/2)), "s3:GetObject")
	attack = append(attack, ev)
	skip := x.profile(jobs[1]).Model().Cadence
	ev = eventOf(jobs[1], skip.LastRun.Add(secs(3*skip.Interval)+2*time.Minute), "s3:GetObject")
	attack = append(attack, ev)
	slices.SortFunc(attack, func(a, b schemas.Event) int { return a.Time.Compare(b.Time.Time) })
	got := x.run(attack)
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
