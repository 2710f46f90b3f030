package exfil_test

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/exfil"
	"github.com/nhisentry/nhisentry/schemas"
)

const mib = 1 << 20

// t0 is a Monday midnight: histories end there, the judged traffic starts.
var t0 = time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)

// scrape is the generator's API-key spike (bench/gen attacks.go): n calls
// in the hour from start for pages of 250 KB to 2 MB.
func scrape(start time.Time, n int) []schemas.Event {
	r := rand.New(rand.NewPCG(9, 9))
	var evs []schemas.Event
	for i := range n {
		ev := detectortest.Event(start.Add(time.Duration(i)*time.Hour/time.Duration(n+1)), "GET /v1/orders", detectortest.IP)
		ev.BytesOut = uint64(250_000 + r.Int64N(1_750_000))
		evs = append(evs, ev)
	}
	return evs
}

// download is one call of size bytes at t.
func download(t time.Time, size uint64) []schemas.Event {
	ev := detectortest.Event(t, "s3:GetObject", detectortest.IP)
	ev.BytesOut = size
	return []schemas.Event{ev}
}

// nightly is a backup job: at 03:00 every day about 200 calls of about
// 5 MB, nothing else.
func nightly(t time.Time) float64 {
	if t.Hour() == 3 {
		return 200
	}
	return 0
}

// bursty is a sync agent: twice a day on average, at any hour, a run of
// about 30 calls of about 1 MB.
func bursty(seed uint64, from, to time.Time) []schemas.Event {
	r := rand.New(rand.NewPCG(seed, 3))
	return detectortest.Traffic(seed, from, to, func(time.Time) float64 {
		if r.Float64() < 2.0/24 {
			return 30
		}
		return 0
	}, detectortest.LogNormal(1e6, 0.3))
}

// sometimes sizes an event like shape with probability p, else leaves it
// at zero bytes (calls whose source logs no size).
func sometimes(p float64, shape func(*schemas.Event, *rand.Rand)) func(*schemas.Event, *rand.Rand) {
	return func(ev *schemas.Event, r *rand.Rand) {
		if r.Float64() < p {
			shape(ev, r)
		}
	}
}

func hourID(t time.Time) string {
	return schemas.FindingID(exfil.Name, detectortest.Identity.ID, strconv.FormatInt(t.Unix()/3600, 10))
}

func TestExfil(t *testing.T) {
	attack := t0.Add(34 * time.Hour) // Tuesday 10:00, a working hour
	type want struct {
		at  time.Time
		sev schemas.Severity
	}
	tests := []detectortest.Case[want]{
		{
			Name: "API key scraping big pages",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(1, t0.Add(-28*24*time.Hour), t0, detectortest.Daily(0.3, 3), detectortest.LogNormal(20e3, 0.5)), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(2, t0, t0.Add(72*time.Hour), detectortest.Daily(0.3, 3), detectortest.LogNormal(20e3, 0.5)), scrape(attack, 75)),
			Want:   []want{{attack, schemas.SeverityMedium}},
		},
		{
			Name: "one download far larger than any before",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(3, t0.Add(-14*24*time.Hour), t0, detectortest.Flat(2), detectortest.LogNormal(20e3, 1.2)), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(4, t0, t0.Add(48*time.Hour), detectortest.Flat(2), detectortest.LogNormal(20e3, 1.2)), download(attack.Add(17*time.Minute), 600*mib)),
			Want:   []want{{attack, schemas.SeverityHigh}},
		},
		{
			Name: "a busy service moving gigabytes more than usual",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(5, t0.Add(-21*24*time.Hour), t0, detectortest.Daily(20, 300), detectortest.LogNormal(50e3, 1)), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(6, t0, t0.Add(48*time.Hour), detectortest.Daily(20, 300), detectortest.LogNormal(50e3, 1)),
				detectortest.Traffic(7, attack, attack.Add(time.Hour), detectortest.Flat(400), detectortest.LogNormal(5e6, 0.3))),
			Want: []want{{attack, schemas.SeverityMedium}},
		},
		{
			Name: "seasonal service, a normal week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(5, t0.Add(-21*24*time.Hour), t0, detectortest.Daily(20, 300), detectortest.LogNormal(50e3, 1)), t0)
			},
			Judged: detectortest.Traffic(8, t0, t0.Add(7*24*time.Hour), detectortest.Daily(20, 300), detectortest.LogNormal(50e3, 1)),
		},
		{
			Name: "nightly backup of a gigabyte, a normal week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(9, t0.Add(-14*24*time.Hour), t0, nightly, detectortest.LogNormal(5e6, 0.3)), t0)
			},
			Judged: detectortest.Traffic(10, t0, t0.Add(7*24*time.Hour), nightly, detectortest.LogNormal(5e6, 0.3)),
		},
		{
			Name: "bursty sync agent, a normal week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, bursty(11, t0.Add(-14*24*time.Hour), t0), t0)
			},
			Judged: bursty(12, t0, t0.Add(7*24*time.Hour)),
		},
		{
			Name: "mostly unsized calls with a few large reads, a normal week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(13, t0.Add(-14*24*time.Hour), t0, detectortest.Flat(60), sometimes(0.01, detectortest.LogNormal(2e6, 0.5))), t0)
			},
			Judged: detectortest.Traffic(14, t0, t0.Add(7*24*time.Hour), detectortest.Flat(60), sometimes(0.01, detectortest.LogNormal(2e6, 0.5))),
		},
		{
			Name: "source that logs no sizes never fires, even at 50 times its volume",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(15, t0.Add(-14*24*time.Hour), t0, detectortest.Flat(100), nil), t0)
			},
			Judged: detectortest.Traffic(16, t0, t0.Add(2*time.Hour), detectortest.Flat(5000), nil),
		},
		{
			Name: "small identity under min_bytes",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(17, t0.Add(-14*24*time.Hour), t0, detectortest.Flat(1), detectortest.LogNormal(2e3, 0.3)), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(18, t0, t0.Add(24*time.Hour), detectortest.Flat(1), detectortest.LogNormal(2e3, 0.3)), download(attack, 8*mib)),
		},
		{
			Name: "no built baseline yet",
			Profile: func(testing.TB) *baseline.Profile {
				return detectortest.History(attack, 72, 2, detectortest.IP, detectortest.Actions...)
			},
			Judged: scrape(attack, 75),
		},
		{
			Name: "baseline built over no calls",
			Profile: func(testing.TB) *baseline.Profile {
				p := detectortest.History(attack, 72, 2, detectortest.IP, detectortest.Actions...)
				p.Apply(&baseline.Baseline{DataThrough: attack}, baseline.DefaultClasses())
				return p
			},
			Judged: scrape(attack, 75),
		},
		{
			Name: "identity still learning",
			Profile: func(testing.TB) *baseline.Profile {
				return detectortest.History(attack, 10, 2, detectortest.IP, detectortest.Actions...)
			},
			Judged: scrape(attack, 75),
		},
		{
			Name:    "first event ever",
			Profile: detectortest.FirstEver,
			Judged:  download(attack, 600*mib),
		},
	}
	d := exfil.New(exfil.DefaultConfig())
	detectortest.RunCases(t, d, tests, func(t *testing.T, f *schemas.Finding, w want) {
		if f.ID != hourID(w.at) {
			t.Errorf("finding id %s, want the identity-hour id %s", f.ID, hourID(w.at))
		}
		if f.Severity != w.sev || f.Detector != exfil.Name || f.Technique != "T1567" ||
			f.Analysis.Pattern != schemas.PatternSurge || f.Score < 60 || f.Score > 100 || len(f.EventIDs) != 1 {
			t.Errorf("finding %+v", *f)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if errs := (exfil.Config{}).Validate(); len(errs) != 3 {
		t.Fatalf("zero config: %d errors, want 3: %v", len(errs), errs)
	}
	bad := exfil.DefaultConfig()
	bad.Z = -1
	if errs := bad.Validate(); len(errs) != 1 {
		t.Fatalf("negative z: %v", errs)
	}
	if errs := exfil.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
}

// BenchmarkDetect times one event against a trained service: "quiet" is
// the common hour under min_bytes, "quiet_busy" an hour over it that is
// judged against the baseline and found normal, "firing" the call that
// crosses the threshold and builds a finding.
func BenchmarkDetect(b *testing.B) {
	p := detectortest.Trained(b, detectortest.Traffic(1, t0.Add(-21*24*time.Hour), t0, detectortest.Daily(20, 300), detectortest.LogNormal(50e3, 1)), t0)
	d := exfil.New(exfil.DefaultConfig())
	at := t0.Add(34 * time.Hour)
	ev := detectortest.Event(at, "s3:GetObject", detectortest.IP)
	ev.BytesOut = 80e3
	big := ev
	big.BytesOut = 900 * mib
	detectortest.BenchmarkWindows(b, d, p, []detectortest.WindowCase{
		{Name: "quiet", Event: &ev, Window: baseline.Window{Count: 120, BytesOut: 9 * mib}, Fires: 0},
		{Name: "quiet_busy", Event: &ev, Window: baseline.Window{Count: 300, BytesOut: 30 * mib}, Fires: 0},
		{Name: "firing", Event: &big, Window: baseline.Window{Count: 301, BytesOut: 930 * mib}, Fires: 1},
	})
}
