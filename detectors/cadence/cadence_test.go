package cadence_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors/cadence"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/schemas"
)

var (
	origin = time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC) // a Monday
	job    = schemas.Identity{ID: "aws:role/111122223333/nightly-backup", Kind: schemas.KindRole}
)

func weekday(t time.Time) bool { return t.Weekday() != time.Saturday && t.Weekday() != time.Sunday }

// jobProfile is a job identity after the runs at starts (eight events each)
// and a rebuild a few hours after the last.
func jobProfile(t testing.TB, starts []time.Time) *baseline.Profile {
	t.Helper()
	through := starts[len(starts)-1].Add(6 * time.Hour)
	p := detectortest.Built(t, job, "job", runs(job, starts, 8), through)
	if m := p.Model(); m == nil || m.Cadence == nil {
		t.Fatalf("the history has no cadence: %+v", m)
	}
	return p
}

// at is the time of day hh:mm on the day d days after the profile's last
// scheduled run's day.
func at(p *baseline.Profile, d, hh, mm int) time.Time {
	day := p.Model().Cadence.LastRun.Truncate(24 * time.Hour)
	return day.Add(time.Duration(d)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
}

func TestCadenceBreak(t *testing.T) {
	nightly := jobProfile(t, daily(origin, 0, 28, 2, 0, nil))           // four weeks: weekly rhythm known
	young := jobProfile(t, daily(origin, 0, 10, 2, 0, nil))             // ten days: pooled
	weekdays := jobProfile(t, daily(origin, 0, 33, 6, 0, weekday))      // Mon–Fri 06:00, ends on a Friday
	weekdaysYoung := jobProfile(t, daily(origin, 0, 12, 6, 0, weekday)) // ends on a Friday, pooled
	sundayNoon := func(t time.Time) bool { return t.Weekday() == time.Sunday }
	// Nightly plus Sundays at 12:00, up to a Tuesday's nightly run.
	sundays := jobProfile(t, sorted(append(daily(origin, 0, 30, 2, 0, nil), daily(origin, 0, 30, 12, 0, sundayNoon)...)))
	// The same, up to a Sunday's nightly run.
	toSunday := jobProfile(t, sorted(append(daily(origin, 0, 35, 2, 0, nil), daily(origin, 0, 34, 12, 0, sundayNoon)...)))
	if nightly.Model().Pooled || !young.Model().Pooled || weekdays.Model().Pooled {
		t.Fatalf("pooled: nightly %v young %v weekdays %v", nightly.Model().Pooled, young.Model().Pooled, weekdays.Model().Pooled)
	}

	tests := []struct {
		name         string
		p            *baseline.Profile
		when         func(p *baseline.Profile) time.Time
		learning     bool
		relearning   bool
		cfg          func(*cadence.Config)
		wantPattern  schemas.Pattern // "" means no finding
		wantSev      schemas.Severity
		minScore     int
		wantIn       string
		wantTechique string
	}{
		{name: "next night on time", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 1, 2, 3) }},
		{name: "next night 40 minutes late", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 1, 2, 40) }},
		{name: "next night 10 minutes early", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 1, 1, 50) }},
		{name: "an event inside the run", p: nightly, when: func(p *baseline.Profile) time.Time { return p.LastSeen.Add(3 * time.Minute) }},
		{name: "a run two hours late", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 1, 4, 5) },
			wantPattern: schemas.PatternOffHours, wantSev: schemas.SeverityHigh, minScore: 80, wantIn: "after the expected run at 02:", wantTechique: "T1078"},
		{name: "same day at 14:00", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 0, 14, 0) },
			wantPattern: schemas.PatternOffHours, wantSev: schemas.SeverityHigh, minScore: 100, wantIn: "after the expected run at 02:", wantTechique: "T1078"},
		{name: "one night missed", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 2, 2, 1) },
			wantPattern: schemas.PatternRare, wantSev: schemas.SeverityLow, minScore: 45, wantIn: "after 1 expected run missed", wantTechique: "T1053"},
		{name: "three nights missed", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 4, 2, 1) },
			wantPattern: schemas.PatternRare, wantSev: schemas.SeverityMedium, minScore: 60, wantIn: "3 expected runs missed", wantTechique: "T1053"},
		{name: "missed runs not reported with min_missed 0", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 4, 2, 1) },
			cfg: func(c *cadence.Config) { c.MinMissed = 0 }},
		// The nearest expected run is the second night's, 12 hours late;
		// the first night's was missed.
		{name: "two nights without a run, then a run at 14:00", p: nightly, when: func(p *baseline.Profile) time.Time { return at(p, 2, 14, 0) },
			wantPattern: schemas.PatternOffHours, wantSev: schemas.SeverityHigh, minScore: 100, wantIn: "; 1 expected run missed", wantTechique: "T1078"},
		{name: "still learning", p: nightly, learning: true, when: func(p *baseline.Profile) time.Time { return at(p, 0, 14, 0) }},
		{name: "after a deploy", p: nightly, relearning: true, when: func(p *baseline.Profile) time.Time { return at(p, 0, 14, 0) }},
		{name: "young job: off schedule", p: young, when: func(p *baseline.Profile) time.Time { return at(p, 0, 14, 0) },
			wantPattern: schemas.PatternOffHours, wantSev: schemas.SeverityHigh, minScore: 100, wantTechique: "T1078"},
		{name: "young job: two nights missed in a short silence", p: young, when: func(p *baseline.Profile) time.Time { return at(p, 3, 2, 1) }},
		{name: "young job: five nights missed", p: young, when: func(p *baseline.Profile) time.Time { return at(p, 6, 2, 1) },
			wantPattern: schemas.PatternRare, wantSev: schemas.SeverityMedium, minScore: 65, wantIn: "5 expected runs missed", wantTechique: "T1053"},
		{name: "weekday job: Monday after the weekend", p: weekdays, when: func(p *baseline.Profile) time.Time { return at(p, 3, 6, 2) }},
		{name: "weekday job: Tuesday, Monday missed", p: weekdays, when: func(p *baseline.Profile) time.Time { return at(p, 4, 6, 2) },
			wantPattern: schemas.PatternRare, wantSev: schemas.SeverityLow, minScore: 45, wantIn: "1 expected run missed", wantTechique: "T1053"},
		{name: "weekday job: a Saturday run", p: weekdays, when: func(p *baseline.Profile) time.Time { return at(p, 1, 6, 2) }},
		{name: "young weekday job: Monday after the weekend", p: weekdaysYoung, when: func(p *baseline.Profile) time.Time { return at(p, 3, 6, 2) }},
		{name: "nightly job with a weekly Sunday noon run: the Sunday run", p: toSunday,
			when: func(p *baseline.Profile) time.Time { return at(p, 0, 12, 2) }},
		{name: "nightly job with a weekly Sunday noon run: a Tuesday noon run", p: sundays,
			when:        func(p *baseline.Profile) time.Time { return at(p, 0, 12, 2) },
			wantPattern: schemas.PatternOffHours, wantSev: schemas.SeverityHigh, minScore: 80, wantTechique: "T1078"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := cadence.DefaultConfig()
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			d := cadence.New(cfg)
			ev := detectortest.EventOf(job, tt.when(tt.p), "s3:PutObject")
			in := detectortest.Input(tt.p, &ev)
			in.Learning, in.Relearning = tt.learning, tt.relearning
			got := d.Detect(in, nil)
			if tt.wantPattern == "" {
				if len(got) != 0 {
					t.Fatalf("want no finding, got %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("got %d findings, want 1", len(got))
			}
			f := got[0]
			t.Logf("%s %d: %s", f.Severity, f.Score, f.Explanation)
			if f.Analysis.Pattern != tt.wantPattern || f.Severity != tt.wantSev || f.Score < tt.minScore || f.Technique != tt.wantTechique {
				t.Errorf("pattern %s severity %s score %d technique %s, want %s %s ≥%d %s: %s",
					f.Analysis.Pattern, f.Severity, f.Score, f.Technique, tt.wantPattern, tt.wantSev, tt.minScore, tt.wantTechique, f.Explanation)
			}
			if !strings.Contains(f.Explanation, tt.wantIn) {
				t.Errorf("explanation %q does not say %q", f.Explanation, tt.wantIn)
			}
			wantID := schemas.FindingID(cadence.Name, job.ID, strconv.FormatInt(ev.Time.Unix()/3600, 10))
			if f.ID != wantID || f.Detector != cadence.Name || f.Identity != job || len(f.EventIDs) != 1 || f.EventIDs[0] != ev.ID ||
				f.Analysis.Observed == "" || !strings.Contains(f.Analysis.Baseline, "runs every 24.0 hours") {
				t.Errorf("finding fields: %+v", f)
			}
		})
	}
}

// Jobs keep their schedules for three more weeks after their model was
// built (no rebuild, so the schedule is extrapolated from a stale last
// run): no event of theirs is a finding.
func TestSeasonalStream(t *testing.T) {
	d := cadence.New(cadence.DefaultConfig())
	for _, c := range []struct {
		name    string
		history []time.Time
		after   []time.Time
	}{
		{"nightly", daily(origin, 0, 28, 2, 0, nil), daily(origin, 28, 49, 2, 0, nil)},
		{"weekdays", daily(origin, 0, 28, 6, 0, weekday), daily(origin, 28, 49, 6, 0, weekday)},
		{"young weekdays", daily(origin, 0, 12, 6, 0, weekday), daily(origin, 12, 33, 6, 0, weekday)},
		{"every six hours", sixHourly(0, 28*4), sixHourly(28*4, 49*4)},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := jobProfile(t, c.history)
			var got []schemas.Finding
			evs := runs(job, c.after, 8)
			for i := range evs {
				got = d.Detect(detectortest.Input(p, &evs[i]), got)
				p.Observe(&evs[i])
			}
			if len(got) != 0 {
				t.Fatalf("%d findings, first %s", len(got), got[0].Explanation)
			}
		})
	}
}

func TestEdgeCases(t *testing.T) {
	d := cadence.New(cadence.DefaultConfig())
	t.Run("first event ever", func(t *testing.T) {
		p := &baseline.Profile{Identity: job}
		ev := detectortest.EventOf(job, origin, "s3:PutObject")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("no model yet", func(t *testing.T) {
		p := detectortest.History(origin.Add(7*24*time.Hour), 7*24, 2, "10.20.1.7", "s3:GetObject")
		ev := detectortest.Event(p.LastSeen.Add(5*time.Hour), "s3:GetObject", "10.20.1.7")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("a service: model without cadence", func(t *testing.T) {
		through := origin.Add(14 * 24 * time.Hour)
		p := detectortest.Built(t, job, "service", detectortest.Schedule(job, origin, through, func(time.Time) bool { return true }), through)
		if p.Model() == nil || p.Model().Cadence != nil {
			t.Fatalf("model %+v", p.Model())
		}
		ev := detectortest.EventOf(job, through.Add(5*time.Hour+17*time.Minute), "s3:PutObject")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("an event older than the last run", func(t *testing.T) {
		p := jobProfile(t, daily(origin, 0, 28, 2, 0, nil))
		ev := detectortest.EventOf(job, p.Model().Cadence.LastRun.Add(-10*time.Hour), "s3:PutObject")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("a run is reported once", func(t *testing.T) {
		p := jobProfile(t, daily(origin, 0, 28, 2, 0, nil))
		evs := runs(job, []time.Time{at(p, 0, 14, 0)}, 8)
		var got []schemas.Finding
		for i := range evs {
			got = d.Detect(detectortest.Input(p, &evs[i]), got)
			p.Observe(&evs[i])
		}
		if len(got) != 1 {
			t.Fatalf("an off-schedule run of 8 events raised %d findings", len(got))
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if errs := (cadence.Config{IntervalTolerance: 0.5, MinMissed: -1, MaxJitter: 0.2}).Validate(); len(errs) != 6 {
		t.Fatalf("bad config: %d errors, want 6: %v", len(errs), errs)
	}
	if errs := cadence.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
}

// BenchmarkDetect times a run that starts on schedule (the quiet path that
// does the most work) and an off-schedule run, which builds a finding.
func BenchmarkDetect(b *testing.B) {
	p := jobProfile(b, daily(origin, 0, 28, 2, 0, nil))
	for _, c := range []struct {
		name  string
		at    time.Time
		fires int
	}{{"quiet", at(p, 1, 2, 3), 0}, {"fire", at(p, 0, 14, 0), 1}} {
		b.Run(c.name, func(b *testing.B) {
			d := cadence.New(cadence.DefaultConfig())
			ev := detectortest.EventOf(job, c.at, "s3:PutObject")
			in := detectortest.Input(p, &ev)
			dst := make([]schemas.Finding, 0, 4)
			if got := d.Detect(in, dst); len(got) != c.fires {
				b.Fatalf("%d findings, want %d", len(got), c.fires)
			}
			b.ReportAllocs()
			for b.Loop() {
				dst = d.Detect(in, dst[:0])
			}
		})
	}
}
