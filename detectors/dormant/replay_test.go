package dormant_test

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
	"github.com/nhisentry/nhisentry/detectors/dormant"
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

// Ten days of generated traffic, rebuilt every three hours, raise nothing; then
// one role acts again ten days after its last event and a break-glass role,
// used once on the second day, is used again: both are reported, only they.
func TestGeneratedReactivation(t *testing.T) {
	if testing.Short() {
		t.Skip("replays generated weeks")
	}
	evs := generated(t, gen.Config{Seed: 5, Duration: 10 * 24 * time.Hour, Workloads: 14, Roles: 12, APIKeys: 6, VaultClients: 6})
	end := evs[len(evs)-1].Time.Time
	glass := eventOf(breakGlass, evs[0].Time.Add(30*time.Hour), "iam:AttachRolePolicy")
	i, _ := slices.BinarySearchFunc(evs, glass.Time.Time, func(e schemas.Event, t time.Time) int { return e.Time.Compare(t) })
	evs = slices.Insert(evs, i, glass)
	x := newPipeline(t, dormant.New(dormant.DefaultConfig()), 3*time.Hour)
	for _, f := range x.run(evs) {
		t.Errorf("normal traffic: %s %s %d: %s", f.Identity.ID, f.Severity, f.Score, f.Explanation)
	}
	var role schemas.Identity
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Identity.Kind == schemas.KindRole && evs[i].Identity != breakGlass {
			role = evs[i].Identity
			break
		}
	}
	back := eventOf(role, x.profile(role).LastSeen.Add(10*24*time.Hour), "s3:GetObject")
	again := eventOf(breakGlass, end.Add(time.Hour), "iam:AttachRolePolicy")
	got := x.run([]schemas.Event{again, back})
	if len(got) != 2 {
		t.Fatalf("%d findings, want 2: %+v", len(got), got)
	}
	for _, f := range got {
		t.Logf("%s %s %d: %s", f.Identity.ID, f.Severity, f.Score, f.Explanation)
		switch f.Identity {
		case breakGlass:
			if f.Severity != schemas.SeverityHigh {
				t.Errorf("break-glass: %+v", f)
			}
		case role:
			if f.Severity != schemas.SeverityMedium || !strings.Contains(f.Explanation, "10.0 days of silence") {
				t.Errorf("role: %+v", f)
			}
		default:
			t.Errorf("finding on %s", f.Identity.ID)
		}
	}
}
