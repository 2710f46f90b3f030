package offhours_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/schemas"
)

// t0 is a Monday midnight: histories end there, the judged traffic starts.
var t0 = time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)

var actions = []string{"s3:GetObject", "s3:PutObject", "dynamodb:Query", "sqs:SendMessage", "kms:Decrypt"}

// traffic is an identity's events over [from, to): each hour a Poisson
// number with mean rate(hour) at random instants, cycling through actions,
// each shaped by shape (outcome, sizes).
func traffic(seed uint64, from, to time.Time, rate func(time.Time) float64, shape func(*schemas.Event, *rand.Rand)) []schemas.Event {
	r := rand.New(rand.NewPCG(seed, 7))
	var evs []schemas.Event
	for h := from; h.Before(to); h = h.Add(time.Hour) {
		n := 0
		if l := rate(h); l > 0 {
			n = int(distuv.Poisson{Lambda: l, Src: r}.Rand())
		}
		offs := make([]int64, n)
		for i := range offs {
			offs[i] = r.Int64N(int64(time.Hour))
		}
		slices.Sort(offs)
		for _, o := range offs {
			ev := detectortest.Event(h.Add(time.Duration(o)), actions[r.IntN(len(actions))], "10.20.1.7")
			if shape != nil {
				shape(&ev, r)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

func flat(rate float64) func(time.Time) float64 { return func(time.Time) float64 { return rate } }

// daily is busier in working hours on weekdays.
func daily(night, day float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		if h := t.Hour(); h >= 7 && h < 19 && t.Weekday() != time.Saturday && t.Weekday() != time.Sunday {
			return day
		}
		return night
	}
}

// lognormal gives every event a bytes-out size log-normal around median
// with shape sigma.
func lognormal(median, sigma float64) func(*schemas.Event, *rand.Rand) {
	return func(ev *schemas.Event, r *rand.Rand) {
		ev.BytesOut = uint64(median * math.Exp(sigma*r.NormFloat64()))
	}
}

// trained is the profile the engine's cache holds after evs: folded online
// and with the baseline the builder computes from the same events applied,
// as of through.
func trained(tb testing.TB, evs []schemas.Event, through time.Time) *baseline.Profile {
	tb.Helper()
	ctx := context.Background()
	st := memstore.New()
	if err := st.WriteEvents(ctx, evs); err != nil {
		tb.Fatal(err)
	}
	p := &baseline.Profile{Identity: detectortest.Identity}
	for i := range evs {
		p.Observe(&evs[i])
	}
	err := st.Histories(ctx, nil, through.Add(-35*24*time.Hour), func(h *baseline.History) error {
		p.Apply(baseline.Build(h, baseline.BuildOptions{Now: through, DataThrough: through}), baseline.DefaultClasses())
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if p.Model() == nil {
		tb.Fatal("no model built")
	}
	return p
}

// merge orders a and b by time.
func merge(a, b []schemas.Event) []schemas.Event {
	out := append(slices.Clone(a), b...)
	slices.SortStableFunc(out, func(x, y schemas.Event) int { return x.Time.Compare(y.Time.Time) })
	return out
}

// run feeds evs through d as the engine would (detect, then observe).
func run(d detectors.Detector, p *baseline.Profile, evs []schemas.Event) []schemas.Finding {
	var out []schemas.Finding
	for i := range evs {
		out = d.Detect(detectortest.Input(p, &evs[i]), out)
		p.Observe(&evs[i])
	}
	return out
}
