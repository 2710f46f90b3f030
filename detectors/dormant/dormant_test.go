package dormant_test

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/dormant"
	"github.com/nhisentry/nhisentry/schemas"
)

var (
	start      = time.Date(2026, 10, 5, 0, 0, 0, 0, time.UTC) // a Monday
	service    = detectortest.Identity
	breakGlass = schemas.Identity{ID: "aws:role/111122223333/break-glass-admin", Kind: schemas.KindRole}
)

// businessHours is a service called on weekdays from 08:00 to 18:00 UTC:
// its longest usual silence is the weekend, 62 hours.
func businessHours(t time.Time) bool {
	wd := t.Weekday()
	return wd != time.Saturday && wd != time.Sunday && t.Hour() >= 8 && t.Hour() < 18
}

// everyNineDays is an identity active for 13 hours every nine days, a
// rhythm with silences (8.5 days) longer than its class's seven-day
// dormancy window.
func everyNineDays(t time.Time) bool {
	return int(t.Sub(start).Hours())%(9*24) < 13
}

func TestReactivation(t *testing.T) {
	through := start.Add(21 * 24 * time.Hour) // three weeks of history
	weekdays := detectortest.Built(t, service, "service", detectortest.Schedule(service, start, through, businessHours), through)
	nine := detectortest.Built(t, service, "service", detectortest.Schedule(service, start, through, everyNineDays), through)
	thin := detectortest.Built(t, service, "service", detectortest.Schedule(service, start, start.Add(2*time.Hour), func(time.Time) bool { return true }), start.Add(3*time.Hour))
	glass := detectortest.Built(t, breakGlass, "break_glass", []schemas.Event{detectortest.EventOf(breakGlass, start.Add(50*time.Hour), "iam:ListRoles")}, through)
	young := detectortest.History(start.Add(2*24*time.Hour), 48, 2, "10.20.1.7", "s3:GetObject") // no class, no model yet

	tests := []struct {
		name       string
		p          *baseline.Profile
		id         schemas.Identity
		after      time.Duration // silence since the profile's LastSeen
		relearning bool
		wantSev    schemas.Severity // "" means no finding
		minScore   int
		maxScore   int
		wantIn     string // in the explanation
	}{
		{name: "weekend silence is the service's rhythm", p: weekdays, id: service, after: 62 * time.Hour},
		{name: "six days: under the seven-day dormancy", p: weekdays, id: service, after: 6 * 24 * time.Hour},
		{name: "ten days: reactivation", p: weekdays, id: service, after: 10 * 24 * time.Hour,
			wantSev: schemas.SeverityMedium, minScore: 55, maxScore: 60, wantIn: "10.0 days of silence"},
		{name: "thirty days: high", p: weekdays, id: service, after: 30 * 24 * time.Hour,
			wantSev: schemas.SeverityHigh, minScore: 80, maxScore: 85, wantIn: "longest usual gap 2.6 days"},
		{name: "nine-day rhythm on schedule", p: nine, id: service, after: 9*24*time.Hour - 13*time.Hour},
		{name: "nine-day rhythm, twelve days", p: nine, id: service, after: 12 * 24 * time.Hour},
		{name: "nine-day rhythm, fifteen days", p: nine, id: service, after: 15 * 24 * time.Hour,
			wantSev: schemas.SeverityMedium, minScore: 60, maxScore: 70, wantIn: "longest usual gap 8.5 days"},
		{name: "thin history: reported lower", p: thin, id: service, after: 10 * 24 * time.Hour,
			wantSev: schemas.SeverityLow, minScore: 35, maxScore: 40, wantIn: "thin history (4 events before, 50 to learn its class)"},
		{name: "after a deploy: reported lower", p: weekdays, id: service, after: 30 * 24 * time.Hour, relearning: true,
			wantSev: schemas.SeverityMedium, minScore: 60, maxScore: 65, wantIn: "after a deploy"},
		{name: "young service without a model", p: young, id: service, after: 8 * 24 * time.Hour,
			wantSev: schemas.SeverityMedium, minScore: 50, maxScore: 55, wantIn: "no gap history"},
		{name: "break-glass after half an hour", p: glass, id: breakGlass, after: 30 * time.Minute},
		{name: "break-glass after two hours: high", p: glass, id: breakGlass, after: 2 * time.Hour,
			wantSev: schemas.SeverityHigh, minScore: 80, maxScore: 80, wantIn: "class break_glass is dormant after 60 minutes"},
		{name: "break-glass after weeks: high, whatever its gaps", p: glass, id: breakGlass, after: 20 * 24 * time.Hour,
			wantSev: schemas.SeverityHigh, minScore: 100, maxScore: 100},
		{name: "late event, older than LastSeen", p: weekdays, id: service, after: -40 * 24 * time.Hour},
	}
	d := dormant.New(dormant.DefaultConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := detectortest.EventOf(tt.id, tt.p.LastSeen.Add(tt.after), "s3:GetObject")
			in := detectortest.Input(tt.p, &ev)
			in.Relearning = tt.relearning
			got := d.Detect(in, nil)
			f, ok := detectortest.Single(t, got, tt.wantSev != "")
			if !ok {
				return
			}
			t.Logf("%s %d: %s", f.Severity, f.Score, f.Explanation)
			if f.Severity != tt.wantSev || f.Score < tt.minScore || f.Score > tt.maxScore {
				t.Errorf("severity %s score %d, want %s in %d..%d: %s", f.Severity, f.Score, tt.wantSev, tt.minScore, tt.maxScore, f.Explanation)
			}
			if !strings.Contains(f.Explanation, tt.wantIn) {
				t.Errorf("explanation %q does not say %q", f.Explanation, tt.wantIn)
			}
			wantID := schemas.FindingID(dormant.Name, tt.id.ID, strconv.FormatInt(tt.p.LastSeen.Unix(), 10))
			if f.ID != wantID || f.Detector != dormant.Name || f.Technique != "T1078" || f.Analysis.Pattern != schemas.PatternRare ||
				f.Identity != tt.id || len(f.EventIDs) != 1 || f.EventIDs[0] != ev.ID || !f.LastSeen.Equal(ev.Time.Time) {
				t.Errorf("finding fields: %+v", f)
			}
			if f.Analysis.Observed == "" || f.Analysis.Baseline == "" {
				t.Errorf("analysis is incomplete: %+v", f.Analysis)
			}
		})
	}
}

// A service keeps its weekday rhythm for five weeks, with rebuilds every
// week, then goes quiet for two weeks: only the first event after the
// silence is a finding, and each reactivation has its own id.
func TestSeasonalStream(t *testing.T) {
	d := dormant.New(dormant.DefaultConfig())
	through := start.Add(7 * 24 * time.Hour)
	p := detectortest.Built(t, service, "service", detectortest.Schedule(service, start, through, businessHours), through)
	var got []schemas.Finding
	feed := func(evs []schemas.Event) { got = append(got, detectortest.Run(d, p, evs)...) }
	for week := 1; week < 5; week++ {
		from := start.Add(time.Duration(week) * 7 * 24 * time.Hour)
		feed(detectortest.Schedule(service, from, from.Add(7*24*time.Hour), businessHours))
	}
	if len(got) != 0 {
		t.Fatalf("four weeks of normal weekday traffic raised %+v", got)
	}
	last := p.LastSeen
	back := start.Add(7 * 7 * 24 * time.Hour) // two silent weeks later
	feed(detectortest.Schedule(service, back, back.Add(7*24*time.Hour), businessHours))
	if len(got) != 1 {
		t.Fatalf("the reactivation raised %d findings, want 1: %+v", len(got), got)
	}
	if want := schemas.FindingID(dormant.Name, service.ID, strconv.FormatInt(last.Unix(), 10)); got[0].ID != want {
		t.Errorf("finding id %s, want the id of the LastSeen it woke from", got[0].ID)
	}
	if !strings.Contains(got[0].Explanation, "16.6 days of silence") {
		t.Errorf("explanation: %s", got[0].Explanation)
	}
}

func TestEdgeCases(t *testing.T) {
	d := dormant.New(dormant.DefaultConfig())
	t.Run("first event ever", func(t *testing.T) {
		p := &baseline.Profile{Identity: breakGlass}
		p.Apply(&baseline.Baseline{Identity: breakGlass, Class: "break_glass"}, baseline.DefaultClasses())
		ev := detectortest.EventOf(breakGlass, start, "iam:ListRoles")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("a brand-new identity raised %+v", got)
		}
	})
	t.Run("zero dormancy disables the class", func(t *testing.T) {
		classes := baseline.Classes{{Name: "always_on", Identities: []string{"*"}}, *baseline.DefaultClasses().Named(baseline.ClassService)}
		p := &baseline.Profile{Identity: service}
		p.Apply(&baseline.Baseline{Identity: service, Class: "always_on"}, classes)
		first := detectortest.EventOf(service, start, "s3:GetObject")
		p.Observe(&first)
		ev := detectortest.EventOf(service, start.Add(365*24*time.Hour), "s3:GetObject")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 0 {
			t.Fatalf("a class without dormancy raised %+v", got)
		}
	})
	t.Run("learning by age but not by events: judged like any other", func(t *testing.T) {
		classes := baseline.Classes{
			{Name: "slow", Identities: []string{"*"}, Learning: baseline.Learning{MinAge: 30 * 24 * time.Hour, MinEvents: 10}, Dormancy: 3 * 24 * time.Hour},
			*baseline.DefaultClasses().Named(baseline.ClassService),
		}
		p := &baseline.Profile{Identity: service}
		p.Apply(&baseline.Baseline{Identity: service, Class: "slow"}, classes)
		for _, ev := range detectortest.Schedule(service, start, start.Add(24*time.Hour), func(time.Time) bool { return true }) {
			p.Observe(&ev)
		}
		ev := detectortest.EventOf(service, p.LastSeen.Add(6*24*time.Hour), "s3:GetObject")
		in := detectortest.Input(p, &ev)
		if !in.Learning {
			t.Fatal("the identity should still be learning by age")
		}
		got := d.Detect(in, nil)
		if len(got) != 1 || got[0].Severity != schemas.SeverityMedium || got[0].Score != 65 || strings.Contains(got[0].Explanation, "thin history") {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("zero baseline: a model with no gaps", func(t *testing.T) {
		through := start.Add(2 * 24 * time.Hour)
		p := detectortest.Built(t, service, "service", detectortest.Schedule(service, start, through, func(time.Time) bool { return true }), through)
		if m := p.Model(); m == nil || m.LongestGap != 0 {
			t.Fatalf("model: %+v", m)
		}
		ev := detectortest.EventOf(service, p.LastSeen.Add(8*24*time.Hour), "s3:GetObject")
		got := d.Detect(detectortest.Input(p, &ev), nil)
		if len(got) != 1 || !strings.Contains(got[0].Explanation, "never silent for a whole hour") {
			t.Fatalf("got %+v", got)
		}
	})
	t.Run("one finding per reactivation", func(t *testing.T) {
		p := detectortest.History(start.Add(2*24*time.Hour), 48, 2, "10.20.1.7", "s3:GetObject")
		ev := detectortest.EventOf(service, p.LastSeen.Add(8*24*time.Hour), "s3:GetObject")
		if got := d.Detect(detectortest.Input(p, &ev), nil); len(got) != 1 {
			t.Fatalf("reactivation: %d findings", len(got))
		}
		p.Observe(&ev)
		next := detectortest.EventOf(service, ev.Time.Add(time.Minute), "s3:GetObject")
		if got := d.Detect(detectortest.Input(p, &next), nil); len(got) != 0 {
			t.Fatalf("the next event raised %+v", got)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if errs := (dormant.Config{BreakGlassClasses: []string{""}}).Validate(); len(errs) != 3 {
		t.Fatalf("zero config: %d errors, want 3: %v", len(errs), errs)
	}
	if errs := dormant.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
}

// BenchmarkDetect times the common case, an event minutes after the last
// one, and a reactivation, which builds a finding.
func BenchmarkDetect(b *testing.B) {
	through := start.Add(21 * 24 * time.Hour)
	p := detectortest.Built(b, service, "service", detectortest.Schedule(service, start, through, businessHours), through)
	for _, c := range []struct {
		name  string
		after time.Duration
		fires int
	}{{"quiet", 20 * time.Minute, 0}, {"fire", 30 * 24 * time.Hour, 1}} {
		b.Run(c.name, func(b *testing.B) {
			d := dormant.New(dormant.DefaultConfig())
			ev := detectortest.EventOf(service, p.LastSeen.Add(c.after), "s3:GetObject")
			in := detectortest.Input(p, &ev)
			detectortest.BenchmarkDetect(b, d, in, c.fires)
		})
	}
}
