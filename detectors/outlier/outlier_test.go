package outlier

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/schemas"
)

// start is a Monday, 00:00 UTC: four weeks of history begin here.
var start = time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC)

// service generates the hours of a seasonal service: about 150 calls an
// hour on weekdays from 08:00 to 20:00, 30 at night and 20 at weekends, each
// hour's level varying by ±25% (log-normal), 1% of calls denied and 2%
// failed, and responses of about 2 KB (log-normal, ±40%).
type service struct {
	rng *rand.Rand
	// level scales the rate.
	level float64
	// burst is the hour-to-hour variation of the level on the log scale.
	burst float64
}

func newService(seed uint64) *service {
	return &service{rng: rand.New(rand.NewPCG(seed, 99)), level: 1, burst: 0.25}
}

func (g *service) rate(at time.Time) float64 {
	switch wd := at.Weekday(); {
	case wd == time.Saturday || wd == time.Sunday:
		return 20
	case at.Hour() >= 8 && at.Hour() < 20:
		return 150
	}
	return 30
}

// hour returns the events of the hour starting at at.
func (g *service) hour(at time.Time) []schemas.Event {
	n := int(g.level * g.rate(at) * math.Exp(g.rng.NormFloat64()*g.burst))
	return g.events(at, n, 0.01, 0.02, 1)
}

// events is n calls spread over the hour from at, with the given denied and
// failed shares (drawn per call) and bytes out scaled by bytes.
func (g *service) events(at time.Time, n int, denied, failed, bytes float64) []schemas.Event {
	out := make([]schemas.Event, n)
	for i := range out {
		ev := detectortest.Event(at.Add(time.Duration(i)*time.Hour/time.Duration(n+1)), "s3:GetObject", "10.20.1.7")
		switch u := g.rng.Float64(); {
		case u < denied:
			ev.Outcome.Result = schemas.ResultDenied
		case u < denied+failed:
			ev.Outcome.Result = schemas.ResultFailure
		}
		ev.BytesOut = uint64(bytes * 2000 * math.Exp(g.rng.NormFloat64()*0.4))
		out[i] = ev
	}
	return out
}

// built is the profile the cache would hold after a rebuild over hours of
// g's history ending at end: the events go through the embedded store's
// rollups and baseline.Build, as in production.
func built(t testing.TB, g *service, end time.Time, hours int) *baseline.Profile {
	t.Helper()
	s := memstore.New()
	ctx := context.Background()
	for h := hours; h > 0; h-- {
		if err := s.WriteEvents(ctx, g.hour(end.Add(-time.Duration(h)*time.Hour))); err != nil {
			t.Fatal(err)
		}
	}
	p := &baseline.Profile{}
	err := s.Histories(ctx, nil, time.Time{}, func(h *baseline.History) error {
		p.Apply(baseline.Build(h, baseline.BuildOptions{Now: end, DataThrough: end}), baseline.DefaultClasses())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// feed runs d over events as the engine does (detect, then learn) and
// returns the findings.
func feed(d *Detector, p *baseline.Profile, cohort *baseline.CohortModel, events []schemas.Event) []schemas.Finding {
	var out []schemas.Finding
	for i := range events {
		in := detectortest.Input(p, &events[i])
		in.Cohort = cohort
		out = d.Detect(in, out)
		p.Observe(&events[i])
	}
	return out
}

// The hour the builder rolls up and the window the detector sees give the
// same features: one definition, fed by the embedded store's rollup on one
// side and by the cache's online counters on the other.
func TestBuilderAndDetectorSeeTheSameHour(t *testing.T) {
	g := newService(1)
	at := start.Add(10 * time.Hour)
	events := g.events(at, 240, 0.1, 0.05, 3)
	s := memstore.New()
	if err := s.WriteEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	var rows []baseline.HourRollup
	if err := s.Histories(context.Background(), nil, time.Time{}, func(h *baseline.History) error {
		rows = h.Hours
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	p := &baseline.Profile{}
	var in *detectors.Input
	for i := range events {
		in = detectortest.Input(p, &events[i])
		p.Observe(&events[i])
	}
	if len(rows) != 1 {
		t.Fatalf("%d rollup rows, want 1", len(rows))
	}
	if got, want := in.Window.Features(), rows[0].Features(); got != want {
		t.Fatalf("detector's window %v, builder's rollup %v", got, want)
	}
}

func TestFiresOnceOnAnUnusualHour(t *testing.T) {
	end := start.Add(28 * 24 * time.Hour) // Monday 2 November, 00:00
	g := newService(2)
	p := built(t, g, end, 28*24)
	if m := p.Model(); m == nil || m.Features() == nil {
		t.Fatal("no feature model after four weeks")
	}
	d := New(DefaultConfig())
	// Quiet Monday morning hours first, then at 10:00 the usual number of
	// calls, 60% of them denied and each sending ten times the bytes.
	var got []schemas.Finding
	for h := range 10 {
		got = append(got, feed(d, p, nil, g.hour(end.Add(time.Duration(h)*time.Hour)))...)
	}
	if len(got) != 0 {
		t.Fatalf("normal hours raised %+v", got)
	}
	at := end.Add(10 * time.Hour)
	got = feed(d, p, nil, g.events(at, 150, 0.6, 0.02, 10))
	if len(got) != 1 {
		t.Fatalf("got %d findings, want 1: %+v", len(got), got)
	}
	f := got[0]
	t.Logf("%s (score %d, %s)\n  observed: %s\n  baseline: %s", f.Explanation, f.Score, f.Severity, f.Analysis.Observed, f.Analysis.Baseline)
	if f.ID != schemas.FindingID(Name, detectortest.Identity.ID, fmt.Sprint(at.Unix()/3600)) {
		t.Errorf("id %s is not the identity-hour id", f.ID)
	}
	if f.Detector != Name || f.Technique != "T1078" || f.Analysis.Pattern != schemas.PatternRare || f.Score < 60 || f.Score > 100 {
		t.Errorf("finding %+v", f)
	}
	for _, want := range []string{"denied share 0.", "vs usual 0.01", "bytes out per event 2", "Mahalanobis D²"} {
		if !strings.Contains(f.Explanation, want) {
			t.Errorf("explanation lacks %q: %s", want, f.Explanation)
		}
	}
	if strings.Contains(f.Explanation, "failure share") {
		t.Errorf("the usual failure share is named: %s", f.Explanation)
	}
}

// Six weeks of normal hours drawn from the identity's own distribution,
// every event evaluated against its own baseline and against a cohort of
// peers at its own rate, raise nothing at the default thresholds, for
// steady and for bursty services; the largest statistics seen are logged
// against the thresholds.
func TestQuietOverNormalHours(t *testing.T) {
	const hours = 1000
	end := start.Add(28 * 24 * time.Hour)
	d := New(DefaultConfig())
	own, cohort := d.Thresholds()
	for i, burst := range []float64{0.1, 0.25, 0.5, 0.8} {
		t.Run(fmt.Sprintf("burst %.2f", burst), func(t *testing.T) {
			g := newService(uint64(3 + i))
			g.burst = burst
			p := built(t, g, end, 28*24)
			m := p.Model()
			co := &baseline.CohortModel{Key: "k8s:data/etl", Members: 5, Rate: float64(m.RateMean), Spread: 0.05 * float64(m.RateMean)}
			var found []schemas.Finding
			var maxD2, maxZ, maxRatio float64
			evals := 0
			for h := range hours {
				for _, ev := range g.hour(end.Add(time.Duration(h) * time.Hour)) {
					in := detectortest.Input(p, &ev)
					in.Cohort = co
					if !in.Learning && in.Window.Count >= d.cfg.MinEvents {
						evals++
						_, d2, _ := d.ownTest(m.Features(), &in.Window)
						maxD2 = max(maxD2, d2)
						if e, sd, ok := d.expect(m, co, time.Unix(in.Window.Hour*3600, 0)); ok {
							z, _ := d.cohortTest(float64(in.Window.Count), e, sd)
							maxZ = max(maxZ, z)
							maxRatio = max(maxRatio, float64(in.Window.Count)/e)
						}
					}
					found = d.Detect(in, found)
					p.Observe(&ev)
				}
			}
			t.Logf("%d normal hours, %d evaluations: largest D² %.1f (threshold %.1f); against the cohort largest z %.1f (threshold %.2f), largest ratio %.2f (threshold %v)",
				hours, evals, maxD2, own, maxZ, math.Sqrt(cohort), maxRatio, d.cfg.CohortRatio)
			if len(found) != 0 {
				t.Fatalf("%d false positives over %d normal hours; first: %s", len(found), hours, found[0].Explanation)
			}
		})
	}
}

// The first events of a busy hour are a partial hour, not a quiet one.
func TestPartialHourIsNotAnOutlier(t *testing.T) {
	end := start.Add(28 * 24 * time.Hour)
	g := newService(4)
	g.level = 10 // 1,500 calls an hour by day
	p := built(t, g, end, 10*24)
	d := New(DefaultConfig())
	at := end.Add(10 * time.Hour)
	if got := feed(d, p, nil, g.events(at, 25, 0.01, 0.02, 1)); len(got) != 0 {
		t.Fatalf("25 calls into a busy hour raised %+v", got)
	}
	// Calls that are all denied are unusual however many more follow.
	if got := feed(d, p, nil, g.events(at, 60, 1, 0, 1)); len(got) != 1 {
		for _, f := range got {
			t.Log(f.Explanation)
		}
		t.Fatalf("a fully denied half hour raised %d findings, want 1", len(got))
	}
}

func TestCohortOutlier(t *testing.T) {
	end := start.Add(28 * 24 * time.Hour)
	steady := func() *baseline.Profile {
		g := newService(5)
		g.burst = 0.1 // a replica behind a load balancer
		return built(t, g, end, 28*24)
	}
	p := steady()
	mean := float64(p.Model().RateMean)
	at := end.Add(10 * time.Hour) // Monday 10:00
	peers := &baseline.CohortModel{Key: "k8s:data/etl", Members: 5, Rate: mean, Spread: 0.05 * mean}
	d := New(DefaultConfig())
	e, sd, ok := d.expect(p.Model(), peers, at)
	if !ok {
		t.Fatal("cohort test does not apply")
	}
	n := int(max(3*e, math.Expm1(math.Log1p(e)+5*sd))) + 1
	t.Logf("own mean %.1f/h; cohort expects %.1f (log spread %.2f) at Mon 10:00; the replica makes %d calls", mean, e, sd, n)

	tests := []struct {
		name   string
		cohort *baseline.CohortModel
		want   int
	}{
		{"no cohort: its own baseline, with its daily rhythm, tolerates the hour", nil, 0},
		{"two members are no cohort to stand out from", &baseline.CohortModel{Key: "k8s:data/etl", Members: 2, Rate: mean, Spread: 0.05 * mean}, 0},
		{"far from its peers", peers, 1},
		{"a leader, busier than its peers all along", &baseline.CohortModel{Key: "k8s:data/etl", Members: 5, Rate: mean / 4, Spread: 1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := steady() // the same profile again
			got := feed(d, q, tt.cohort, newService(55).events(at, n, 0.01, 0.02, 1))
			if len(got) != tt.want {
				t.Fatalf("got %d findings, want %d: %+v", len(got), tt.want, got)
			}
			for _, f := range got {
				t.Logf("%s\n  baseline: %s", f.Explanation, f.Analysis.Baseline)
				if f.Analysis.Pattern != schemas.PatternSurge || !strings.Contains(f.Explanation, "what its cohort k8s:data/etl (5 members) expects of a member") {
					t.Errorf("finding %+v", f)
				}
			}
		})
	}
}

func TestQuietWithoutAModel(t *testing.T) {
	d := New(DefaultConfig())
	g := newService(6)
	at := start.Add(10 * time.Hour)
	crafted := func() []schemas.Event { return g.events(at, 150, 0.6, 0.02, 10) }

	// Online learning only: no rebuild yet, so no model.
	p := detectortest.History(at, 72, 150, "10.20.1.7", "s3:GetObject")
	if got := feed(d, p, nil, crafted()); len(got) != 0 {
		t.Errorf("no model: %+v", got)
	}
	// A rebuild over a day: a model, but too few hours for features.
	p = built(t, g, at, 30)
	if p.Model() == nil || p.Model().Features() != nil {
		t.Fatalf("30 hours: model %v", p.Model())
	}
	if got := feed(d, p, nil, crafted()); len(got) != 0 {
		t.Errorf("no feature model: %+v", got)
	}
	// Learning and relearning.
	p = built(t, g, at, 28*24)
	for _, set := range []func(*detectors.Input){
		func(in *detectors.Input) { in.Learning = true },
		func(in *detectors.Input) { in.Relearning = true },
	} {
		var got []schemas.Finding
		for _, ev := range crafted() {
			in := detectortest.Input(p, &ev)
			set(in)
			got = d.Detect(in, got)
		}
		if len(got) != 0 {
			t.Errorf("learning or relearning: %+v", got)
		}
	}
	// A feature model over fewer hours than configured.
	cfg := DefaultConfig()
	cfg.MinHours = 10_000
	if got := feed(New(cfg), p, nil, crafted()); len(got) != 0 {
		t.Errorf("min_hours: %+v", got)
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := (Config{}).Validate(); len(errs) != 5 {
		t.Fatalf("zero config: %d errors, want 5: %v", len(errs), errs)
	}
	if errs := DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	own, cohort := New(DefaultConfig()).Thresholds()
	if math.Abs(own-33.38) > 0.01 || math.Abs(cohort-23.93) > 0.01 {
		t.Errorf("thresholds %v %v, want χ²₄ and χ²₁ at 1−10⁻⁶: 33.38 and 23.93", own, cohort)
	}
}

func TestQuietEventsDoNotAllocate(t *testing.T) {
	end := start.Add(28 * 24 * time.Hour)
	g := newService(7)
	p := built(t, g, end, 28*24)
	co := &baseline.CohortModel{Key: "k8s:data/etl", Members: 5, Rate: float64(p.Model().RateMean), Spread: 1}
	events := g.hour(end.Add(10 * time.Hour))
	for i := range events {
		p.Observe(&events[i])
	}
	in := detectortest.Input(p, &events[len(events)-1])
	in.Cohort = co
	d := New(DefaultConfig())
	dst := make([]schemas.Finding, 0, 1)
	if n := testing.AllocsPerRun(1000, func() { dst = d.Detect(in, dst[:0]) }); n != 0 || len(dst) != 0 {
		t.Fatalf("%v allocations per quiet event, %d findings", n, len(dst))
	}
}

func BenchmarkDetect(b *testing.B) {
	end := start.Add(28 * 24 * time.Hour)
	g := newService(8)
	p := built(b, g, end, 28*24)
	co := &baseline.CohortModel{Key: "k8s:data/etl", Members: 5, Rate: float64(p.Model().RateMean), Spread: 1}
	for _, bc := range []struct {
		name   string
		events []schemas.Event
		want   int
	}{
		{"quiet", g.hour(end.Add(10 * time.Hour)), 0},
		{"firing", g.events(end.Add(11*time.Hour), 150, 0.6, 0.02, 10), 1},
	} {
		b.Run(bc.name, func(b *testing.B) {
			// Quiet: the hour's last event, with a full window to judge.
			// Firing: the event whose window first crosses the threshold.
			d := New(DefaultConfig())
			var in *detectors.Input
			var dst []schemas.Finding
			for i := range bc.events {
				in = detectortest.Input(p, &bc.events[i])
				in.Cohort = co
				if bc.want > 0 && len(d.Detect(in, dst[:0])) > 0 {
					break
				}
				p.Observe(&bc.events[i])
			}
			b.ReportAllocs()
			for b.Loop() {
				dst = d.Detect(in, dst[:0])
			}
			if len(dst) != bc.want {
				b.Fatalf("%d findings, want %d", len(dst), bc.want)
			}
		})
	}
}
