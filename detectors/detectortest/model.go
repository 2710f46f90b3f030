package detectortest

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// IP is the source address of the events this package makes.
const IP = "10.20.1.7"

// Actions are the actions Traffic picks from: a role's usual calls.
var Actions = []string{"s3:GetObject", "s3:PutObject", "dynamodb:Query", "sqs:SendMessage", "kms:Decrypt"}

// EventOf is an Event of identity id at t with action, from IP.
func EventOf(id schemas.Identity, t time.Time, action string) schemas.Event {
	ev := Event(t, action, IP)
	ev.Identity = id
	return ev
}

// Traffic is Identity's events over [from, to): each hour a Poisson number
// with mean rate(hour) at random instants, each a random one of Actions
// from IP, shaped by shape (outcome, sizes) when it is not nil. A seed
// gives the same events every time.
func Traffic(seed uint64, from, to time.Time, rate func(time.Time) float64, shape func(*schemas.Event, *rand.Rand)) []schemas.Event {
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
			ev := Event(h.Add(time.Duration(o)), Actions[r.IntN(len(Actions))], IP)
			if shape != nil {
				shape(&ev, r)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// Flat is a rate for Traffic: rate events every hour.
func Flat(rate float64) func(time.Time) float64 { return func(time.Time) float64 { return rate } }

// Daily is a rate for Traffic: day events an hour in working hours (07:00
// to 19:00 UTC) on weekdays, night otherwise.
func Daily(night, day float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		if h := t.Hour(); h >= 7 && h < 19 && t.Weekday() != time.Saturday && t.Weekday() != time.Sunday {
			return day
		}
		return night
	}
}

// LogNormal is a shape for Traffic: a bytes-out size log-normal around
// median with shape sigma.
func LogNormal(median, sigma float64) func(*schemas.Event, *rand.Rand) {
	return func(ev *schemas.Event, r *rand.Rand) {
		ev.BytesOut = uint64(median * math.Exp(sigma*r.NormFloat64()))
	}
}

// Schedule is two events of id (a GetObject at 7 and a PutObject at 37
// minutes past) in every hour of [from, to) for which active says yes.
func Schedule(id schemas.Identity, from, to time.Time, active func(time.Time) bool) []schemas.Event {
	var evs []schemas.Event
	for t := from.Truncate(time.Hour); t.Before(to); t = t.Add(time.Hour) {
		if active(t) {
			evs = append(evs, EventOf(id, t.Add(7*time.Minute), "s3:GetObject"), EventOf(id, t.Add(37*time.Minute), "s3:PutObject"))
		}
	}
	return evs
}

// Merge is a and b in time order.
func Merge(a, b []schemas.Event) []schemas.Event {
	out := append(slices.Clone(a), b...)
	sortByTime(out)
	return out
}

// Built is the profile the engine's cache would hold for id after evs (in
// time order) and a rebuild at through: the events folded online, then the
// baseline the builder computes from the embedded store's rollups of them
// applied, of class (the class matching id when empty).
func Built(tb testing.TB, id schemas.Identity, class string, evs []schemas.Event, through time.Time) *baseline.Profile {
	tb.Helper()
	classes := baseline.DefaultClasses()
	p := &baseline.Profile{Identity: id}
	p.Apply(&baseline.Baseline{Identity: id, Class: class}, classes)
	for i := range evs {
		p.Observe(&evs[i])
	}
	ctx := context.Background()
	st := memstore.New()
	if err := st.WriteEvents(ctx, evs); err != nil {
		tb.Fatal(err)
	}
	err := st.Histories(ctx, []string{id.ID}, through.Add(-35*24*time.Hour), func(h *baseline.History) error {
		b := baseline.Build(h, baseline.BuildOptions{Now: through, DataThrough: through})
		b.Class = class
		p.Apply(b, classes)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// Trained is Built for Identity, and fails tb when the builder built no
// model from evs.
func Trained(tb testing.TB, evs []schemas.Event, through time.Time) *baseline.Profile {
	tb.Helper()
	p := Built(tb, Identity, "", evs, through)
	if p.Model() == nil {
		tb.Fatal("no model built")
	}
	return p
}

// Relearning marks an input as the identity's re-learning after a deploy,
// as an option of Run.
func Relearning(in *detectors.Input) { in.Relearning = true }

// Run feeds evs through d as the engine does, each detected on p and then
// folded into it, and returns the findings. Each option adjusts every
// input before d sees it.
func Run(d detectors.Detector, p *baseline.Profile, evs []schemas.Event, options ...func(*detectors.Input)) []schemas.Finding {
	var out []schemas.Finding
	for i := range evs {
		in := Input(p, &evs[i])
		for _, o := range options {
			o(in)
		}
		out = d.Detect(in, out)
		p.Observe(&evs[i])
	}
	return out
}

// Single fails tb unless got holds one finding when want is set and none
// otherwise; it returns the one finding, and whether there is one.
func Single(tb testing.TB, got []schemas.Finding, want bool) (schemas.Finding, bool) {
	tb.Helper()
	if !want {
		if len(got) != 0 {
			tb.Fatalf("want no finding, got %+v", got)
		}
		return schemas.Finding{}, false
	}
	if len(got) != 1 {
		tb.Fatalf("got %d findings, want 1: %+v", len(got), got)
	}
	return got[0], true
}

// Titles prints findings for failure messages, one a line.
func Titles(fs []schemas.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "\n  [%s %d] %s: %s", f.Severity, f.Score, f.Title, f.Explanation)
	}
	return b.String()
}

// BenchmarkDetect times d on in, after checking that it raises fires
// findings there.
func BenchmarkDetect(b *testing.B, d detectors.Detector, in *detectors.Input, fires int) {
	b.Helper()
	dst := make([]schemas.Finding, 0, 1)
	if n := len(d.Detect(in, dst)); n != fires {
		b.Fatalf("%d findings, want %d", n, fires)
	}
	b.ReportAllocs()
	for b.Loop() {
		dst = d.Detect(in, dst[:0])
	}
}

// Case is a case of a detector's table test: events judged on a profile,
// and what is wanted of each finding they raise, in a detector's own W.
type Case[W any] struct {
	Name    string
	Profile func(testing.TB) *baseline.Profile
	Judged  []schemas.Event
	Want    []W
}

// RunCases runs each case as a subtest: d judges the case's events on its
// profile (see Run), the findings must be as many as the case wants, and
// check sees each finding with what is wanted of it. Findings are logged.
func RunCases[W any](t *testing.T, d detectors.Detector, cases []Case[W], check func(t *testing.T, f *schemas.Finding, w W)) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			got := Run(d, c.Profile(t), c.Judged)
			if len(got) != len(c.Want) {
				t.Fatalf("got %d findings, want %d: %+v", len(got), len(c.Want), got)
			}
			for i, w := range c.Want {
				f := &got[i]
				check(t, f, w)
				t.Logf("%s [%s %d] %s", f.Title, f.Severity, f.Score, f.Explanation)
			}
		})
	}
}

// BenchmarkInputs times d cycling over ins, and fails b unless every call
// raises a finding when wantFindings is set, and none raises one otherwise.
func BenchmarkInputs(b *testing.B, d detectors.Detector, ins []detectors.Input, wantFindings bool) {
	b.Helper()
	dst := make([]schemas.Finding, 0, 4)
	b.ReportAllocs()
	b.ResetTimer()
	found := 0
	for i := range b.N {
		dst = d.Detect(&ins[i%len(ins)], dst[:0])
		found += len(dst)
	}
	b.StopTimer()
	if wantFindings != (found > 0) || (wantFindings && found != b.N) {
		b.Fatalf("%d findings over %d events", found, b.N)
	}
}

// WindowCase is a case of BenchmarkWindows: an event, the window of its
// hour the detector sees with it (Hour is set from the event), and the
// number of findings it raises there.
type WindowCase struct {
	Name   string
	Event  *schemas.Event
	Window baseline.Window
	Fires  int
}

// BenchmarkWindows times d on each case's event against p, a
// sub-benchmark per case (see BenchmarkDetect).
func BenchmarkWindows(b *testing.B, d detectors.Detector, p *baseline.Profile, cases []WindowCase) {
	b.Helper()
	for _, c := range cases {
		b.Run(c.Name, func(b *testing.B) {
			in := Input(p, c.Event)
			in.Window = c.Window
			in.Window.Hour = c.Event.Time.Unix() / 3600
			BenchmarkDetect(b, d, in, c.Fires)
		})
	}
}

// FirstEver is the profile of Identity before its first event, as a
// Case's Profile.
func FirstEver(testing.TB) *baseline.Profile { return &baseline.Profile{Identity: Identity} }
