package offhours_test

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/offhours"
	"github.com/nhisentry/nhisentry/schemas"
)

// t0 is a Monday midnight: histories end there, the judged traffic starts.
var t0 = time.Date(2026, 11, 9, 0, 0, 0, 0, time.UTC)

// at is one event at each of the times.
func at(times ...time.Time) []schemas.Event {
	var evs []schemas.Event
	for _, t := range times {
		evs = append(evs, detectortest.Event(t, "s3:GetObject", detectortest.IP))
	}
	return evs
}

// hours is active from the hour of day from to the hour of day to
// (exclusive, wrapping at midnight) at rate calls an hour, silent
// otherwise.
func hours(from, to int, rate float64) func(time.Time) float64 {
	return func(t time.Time) float64 {
		h := t.Hour()
		if (from <= to && h >= from && h < to) || (from > to && (h >= from || h < to)) {
			return rate
		}
		return 0
	}
}

// sporadic is an identity without a rhythm: in about one hour in a
// hundred, at any hour, a run of about 20 calls.
func sporadic(seed uint64) func(time.Time) float64 {
	r := rand.New(rand.NewPCG(seed, 5))
	return func(time.Time) float64 {
		if r.Float64() < 0.01 {
			return 20
		}
		return 0
	}
}

// job runs at 02:00 every day for a few minutes.
func job(t time.Time) float64 {
	if t.Hour() == 2 {
		return 12
	}
	return 0
}

func dayID(t time.Time) string {
	return schemas.FindingID(offhours.Name, detectortest.Identity.ID, t.UTC().Format("2006-01-02"))
}

func TestOffHours(t *testing.T) {
	night := t0.Add(24*time.Hour + 3*time.Hour + 12*time.Minute) // Tuesday 03:12
	type want struct {
		day time.Time
		sev schemas.Severity
	}
	tests := []detectortest.Case[want]{
		{
			Name: "business-hours service used at 03:00",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(1, t0.Add(-28*24*time.Hour), t0, detectortest.Daily(0, 20), nil), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(2, t0, t0.Add(72*time.Hour), detectortest.Daily(0, 20), nil), at(night, night.Add(40*time.Minute), night.Add(2*time.Hour))),
			Want:   []want{{night, schemas.SeverityMedium}, {night, schemas.SeverityMedium}},
		},
		{
			Name: "business-hours service, a normal week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(1, t0.Add(-28*24*time.Hour), t0, detectortest.Daily(0, 20), nil), t0)
			},
			Judged: detectortest.Traffic(3, t0, t0.Add(7*24*time.Hour), detectortest.Daily(0, 20), nil),
		},
		{
			Name: "nightly job run at 14:00, two weeks of history",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(4, t0.Add(-14*24*time.Hour), t0, job, nil), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(5, t0, t0.Add(48*time.Hour), job, nil), at(t0.Add(38*time.Hour+5*time.Minute))),
			Want:   []want{{t0.Add(38 * time.Hour), schemas.SeverityMedium}},
		},
		{
			Name: "nightly job, a normal week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(4, t0.Add(-21*24*time.Hour), t0, job, nil), t0)
			},
			Judged: detectortest.Traffic(6, t0, t0.Add(7*24*time.Hour), job, nil),
		},
		{
			Name: "nightly job moved an hour earlier (daylight saving) is not off hours",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(4, t0.Add(-21*24*time.Hour), t0, job, nil), t0)
			},
			Judged: at(t0.Add(24*time.Hour+time.Hour+5*time.Minute), t0.Add(48*time.Hour+time.Hour+5*time.Minute)),
		},
		{
			Name: "night shift across midnight, used at noon",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(7, t0.Add(-21*24*time.Hour), t0, hours(22, 4, 10), nil), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(8, t0, t0.Add(48*time.Hour), hours(22, 4, 10), nil), at(t0.Add(36*time.Hour+time.Minute))),
			Want:   []want{{t0.Add(36 * time.Hour), schemas.SeverityMedium}},
		},
		{
			Name: "24x7 service, a normal week",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(9, t0.Add(-28*24*time.Hour), t0, detectortest.Flat(5), nil), t0)
			},
			Judged: detectortest.Traffic(10, t0, t0.Add(7*24*time.Hour), detectortest.Flat(5), nil),
		},
		{
			Name: "24x7 service used in its nightly maintenance window",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(11, t0.Add(-28*24*time.Hour), t0, hours(6, 3, 5), nil), t0)
			},
			Judged: at(t0.Add(24*time.Hour + 4*time.Hour + 30*time.Minute)),
		},
		{
			Name: "sporadic identity without a rhythm",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(12, t0.Add(-28*24*time.Hour), t0, sporadic(12), nil), t0)
			},
			Judged: detectortest.Merge(detectortest.Traffic(13, t0, t0.Add(7*24*time.Hour), sporadic(13), nil), at(t0.Add(45*time.Hour+time.Minute))),
		},
		{
			Name: "history shorter than min_days",
			Profile: func(tb testing.TB) *baseline.Profile {
				return detectortest.Trained(tb, detectortest.Traffic(14, t0.Add(-10*24*time.Hour), t0, detectortest.Daily(0, 20), nil), t0)
			},
			Judged: at(night),
		},
		{
			Name: "no built baseline yet",
			Profile: func(testing.TB) *baseline.Profile {
				return detectortest.History(t0, 72, 2, detectortest.IP, detectortest.Actions...)
			},
			Judged: at(night),
		},
		{
			Name: "zero baseline",
			Profile: func(testing.TB) *baseline.Profile {
				p := detectortest.History(t0, 72, 2, detectortest.IP, detectortest.Actions...)
				p.Apply(&baseline.Baseline{DataThrough: t0}, baseline.DefaultClasses())
				return p
			},
			Judged: at(night),
		},
		{
			Name: "identity still learning",
			Profile: func(testing.TB) *baseline.Profile {
				return detectortest.History(night.Add(-time.Hour), 10, 10, detectortest.IP, detectortest.Actions...)
			},
			Judged: at(night),
		},
		{
			Name:    "first event ever",
			Profile: detectortest.FirstEver,
			Judged:  at(night),
		},
	}
	d := offhours.New(offhours.DefaultConfig())
	detectortest.RunCases(t, d, tests, func(t *testing.T, f *schemas.Finding, w want) {
		if f.ID != dayID(w.day) {
			t.Errorf("finding id %s, want the identity-day id %s", f.ID, dayID(w.day))
		}
		if f.Severity != w.sev || f.Detector != offhours.Name || f.Technique != "T1078" ||
			f.Analysis.Pattern != schemas.PatternOffHours || f.Score < 50 || f.Score > 100 || len(f.EventIDs) != 1 {
			t.Errorf("finding %+v", *f)
		}
	})
}

// TestOneFindingPerDay: a night of activity is one finding id, the next
// night another.
func TestOneFindingPerDay(t *testing.T) {
	p := detectortest.Trained(t, detectortest.Traffic(1, t0.Add(-28*24*time.Hour), t0, detectortest.Daily(0, 20), nil), t0)
	var times []time.Time
	for day := range 2 {
		for h := range 4 {
			times = append(times, t0.Add(time.Duration(24*(day+1)+1+h)*time.Hour+20*time.Minute))
			times = append(times, t0.Add(time.Duration(24*(day+1)+1+h)*time.Hour+25*time.Minute))
		}
	}
	got := detectortest.Run(offhours.New(offhours.DefaultConfig()), p, at(times...))
	var ids []string
	for _, f := range got {
		ids = append(ids, f.ID)
	}
	if len(got) != 8 {
		t.Errorf("%d findings, want one at the first event of each of the 8 hours", len(got))
	}
	if ids = slices.Compact(ids); !slices.Equal(ids, []string{dayID(times[0]), dayID(times[8])}) {
		t.Errorf("finding ids %v, want one per day", ids)
	}
}

func TestConfigValidate(t *testing.T) {
	if errs := (offhours.Config{}).Validate(); len(errs) != 4 {
		t.Fatalf("zero config: %d errors, want 4: %v", len(errs), errs)
	}
	bad := offhours.DefaultConfig()
	bad.MinPeakShare = 0.01
	bad.Neighbours = -1
	if errs := bad.Validate(); len(errs) != 2 {
		t.Fatalf("bad config: %v", errs)
	}
	if errs := offhours.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
}

// BenchmarkDetect times one event against a trained business-hours
// service: "quiet" is a later event of a working hour, "quiet_first" the
// first event of a working hour (the hour's share is looked up), "firing"
// the first event of a night hour.
func BenchmarkDetect(b *testing.B) {
	p := detectortest.Trained(b, detectortest.Traffic(1, t0.Add(-28*24*time.Hour), t0, detectortest.Daily(0, 20), nil), t0)
	d := offhours.New(offhours.DefaultConfig())
	day := detectortest.Event(t0.Add(34*time.Hour), "s3:GetObject", detectortest.IP)
	night := detectortest.Event(t0.Add(27*time.Hour), "s3:GetObject", detectortest.IP)
	detectortest.BenchmarkWindows(b, d, p, []detectortest.WindowCase{
		{Name: "quiet", Event: &day, Window: baseline.Window{Count: 7}, Fires: 0},
		{Name: "quiet_first", Event: &day, Window: baseline.Window{Count: 1}, Fires: 0},
		{Name: "firing", Event: &night, Window: baseline.Window{Count: 1}, Fires: 1},
	})
}
