// Package cadence owns the cadence-break detector: a job-like identity (a
// cron job, a CI schedule, a batch role: one whose built baseline has a
// Cadence) runs off its schedule, or resumes after missing runs (SPEC §5.11).
// A machine that always runs at 02:00 and suddenly acts at 14:00 is someone
// else using its credential; one that stops running may have been disabled
// or had its schedule tampered with.
//
// Runs. As in the builder, a run is a streak of consecutive active clock
// hours and starts at its first event, so an event starts a run when the
// identity's previous event lies before the previous clock hour. Only run
// starts are judged, which makes the detector one comparison per event
// otherwise. Let I and J be the cadence's Interval and Jitter (seconds) and
// L its LastRun: runs are expected at s_k = L + k·I. For a run starting at t
// the nearest expected run is s_n, n = round((t − L)/I), and
//
//	dev = t − s_n
//	tol = min(0.45·I, max(JitterK·J, MinTolerance, IntervalTolerance·I))
//
// (defaults 4·J, 30 minutes and 5 % of the interval: a daily job may start
// 72 minutes early or late; the cap keeps some time of day off schedule).
//
// Off-schedule run: |dev| > tol. A run starting in an hour where the
// identity's seasonal profile (Model.Centre) shows activity that usually
// begins there (active in that hour of week, not in the hour before) is part
// of its weekly rhythm, such as a second, weekly cron entry, and is not
// reported. Score 60 + 15·log2(|dev|/tol), plus 15 when the identity is
// almost never active at that hour of day (Model.Active < 5 %).
//
// Missed runs: the expected runs s_k with LastSeen + tol < s_k and k < n,
// i.e. those that should have started after the identity's last activity
// and before the current run, skipping those whose hour of week the
// identity's seasonal profile shows silent (a weekday job's weekend). When
// the profile pools hours of day (less than three weeks of history, so the
// weekly rhythm is unknown), missed runs are reported only after a silence
// longer than four days, more than a long weekend. Score 45 + 10·log2(N) for
// N missed runs, at least MinMissed (default 1). Both at once score the
// larger plus 10. Severity: ≥ 80 high, ≥ 60 medium, else low.
//
// A stream processor has no timer: a missed run is reported when the
// identity's next event arrives, with how many runs it missed. Reporting a
// missed run when it is missed needs a periodic sweep over the cached
// profiles against the data clock, which the per-event Detector seam does
// not give.
//
// The detector stays quiet while the identity is learning, before it has a
// model with a cadence of at least MinRuns runs (default 5) and a jitter of
// at most MaxJitter of the interval (default 5 %; the builder accepts 10 %,
// which sparse services' random activity meets by chance, as a replay of
// generated traffic showed), and right after a deploy of its workload
// (which may change its schedule). The schedule is extrapolated from the model's last
// run, which the rebuilds keep fresh. Findings: OFF_HOURS and T1078 (Valid
// Accounts: the job's credential used outside its schedule) for an
// off-schedule run, RARE and T1053 (Scheduled Task/Job: the schedule was
// altered or disabled) for missed runs only; the id is the identity and the
// clock hour of the run's start, so a run is reported once.
package cadence

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/internal/finding"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "cadence_break"

// Config tunes the detector.
type Config struct {
	// JitterK is how many jitters (Cadence.Jitter) a run may start from
	// the schedule. Default 4.
	JitterK float64 `yaml:"jitter_k"`
	// MinTolerance is the smallest tolerance, whatever the jitter (a cron
	// job with no jitter still waits for its queue). Default 30m.
	MinTolerance time.Duration `yaml:"min_tolerance"`
	// IntervalTolerance is the smallest tolerance as a share of the
	// interval, below 0.5. Default 0.05.
	IntervalTolerance float64 `yaml:"interval_tolerance"`
	// MinMissed is the fewest missed runs reported; 0 reports none (only
	// off-schedule runs). Default 1.
	MinMissed int `yaml:"min_missed"`
	// MinRuns is the fewest runs a cadence must rest on. Default 5: the
	// builder calls four runs a cadence, which a sparse service's random
	// activity matches by chance; five is still what 35 days of history
	// hold of a weekly job.
	MinRuns int `yaml:"min_runs"`
	// MaxJitter is the largest jitter, as a share of the interval, of a
	// cadence judged. Default 0.05: a scheduler starts a job within
	// minutes, while a service with a loose rhythm the builder accepts (up
	// to 0.1) runs far off it every other day.
	MaxJitter float64 `yaml:"max_jitter"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{JitterK: 4, MinTolerance: 30 * time.Minute, IntervalTolerance: 0.05, MinMissed: 1, MinRuns: 5, MaxJitter: 0.05}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if !(c.JitterK >= 1) || math.IsInf(c.JitterK, 0) {
		errs = append(errs, fmt.Errorf("jitter_k must be at least 1, got %v", c.JitterK))
	}
	if c.MinTolerance <= 0 {
		errs = append(errs, fmt.Errorf("min_tolerance must be positive, got %v", c.MinTolerance))
	}
	if !(c.IntervalTolerance >= 0 && c.IntervalTolerance < 0.5) {
		errs = append(errs, fmt.Errorf("interval_tolerance must be within [0, 0.5), got %v", c.IntervalTolerance))
	}
	if c.MinMissed < 0 {
		errs = append(errs, fmt.Errorf("min_missed must not be negative, got %d", c.MinMissed))
	}
	if c.MinRuns < 4 {
		errs = append(errs, fmt.Errorf("min_runs must be at least 4 (the builder's own minimum), got %d", c.MinRuns))
	}
	if !(c.MaxJitter > 0 && c.MaxJitter <= 0.1) {
		errs = append(errs, fmt.Errorf("max_jitter must be within (0, 0.1] (the builder's own maximum), got %v", c.MaxJitter))
	}
	return errs
}

// Detector is the cadence-break detector.
type Detector struct{ cfg Config }

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector { return &Detector{cfg: cfg} }

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

const (
	// usualCount is the seasonal centre above which the identity counts as
	// usually active in an hour: the median hourly count is an integer or
	// the mean of two, so anything above it means "active most weeks".
	usualCount = 0.25
	// rareShare is the share of days active in an hour of day below which
	// the hour is off hours for the identity.
	rareShare = 0.05
	// pooledSilence is how long a silence must be before missed runs are
	// reported while the weekly rhythm is unknown: more than a long
	// weekend of a weekday job.
	pooledSilence = 4 * 24 * time.Hour
	// maxCount bounds the expected runs counted in one silence.
	maxCount = 10000
)

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if in.Learning || in.Relearning {
		return dst
	}
	p, ev := in.Profile, in.Event
	m := p.Model()
	if m == nil || m.Cadence == nil || p.Events == 0 || !d.judged(m.Cadence) {
		return dst
	}
	t := ev.Time.Time
	if t.Unix()/3600-p.LastSeen.Unix()/3600 < 2 {
		return dst // inside a run: the previous clock hour was active
	}
	c := m.Cadence
	iv := c.Interval
	off := t.Sub(c.LastRun).Seconds()
	if off <= 0 {
		return dst // older than the model's last run: a late or replayed event
	}
	tol := d.tolerance(c)
	n := math.Round(off / iv)
	dev := off - n*iv
	offSchedule := math.Abs(dev) > tol && !usualStart(m, t)

	missed := 0
	if d.cfg.MinMissed > 0 {
		silence := t.Sub(p.LastSeen)
		if !m.Pooled || silence > pooledSilence {
			missed = expectedRuns(m, c, p.LastSeen, tol, n)
		}
	}
	missedReport := d.cfg.MinMissed > 0 && missed >= d.cfg.MinMissed
	if !offSchedule && !missedReport {
		return dst
	}
	return d.report(in, c, t, dev, tol, n, missed, offSchedule, missedReport, dst)
}

// judged reports whether c is regular enough, on enough runs, to judge.
func (d *Detector) judged(c *baseline.Cadence) bool {
	return c.Interval > 0 && c.Runs >= d.cfg.MinRuns && c.Jitter <= d.cfg.MaxJitter*c.Interval
}

func (d *Detector) tolerance(c *baseline.Cadence) float64 {
	tol := max(d.cfg.JitterK*c.Jitter, d.cfg.MinTolerance.Seconds(), d.cfg.IntervalTolerance*c.Interval)
	return min(tol, 0.45*c.Interval)
}

// usualStart reports whether the identity's activity usually begins in t's
// hour of week: active there, not in the hour before.
func usualStart(m *baseline.Model, t time.Time) bool {
	how := baseline.HourOfWeek(t)
	prev := (how + baseline.HoursPerWeek - 1) % baseline.HoursPerWeek
	return m.Centre(how) > usualCount && m.Centre(prev) <= usualCount
}

// usualAround reports whether the identity is usually active in an hour
// within tol seconds of s, by its seasonal profile.
func usualAround(m *baseline.Model, s time.Time, tol float64) bool {
	w := time.Duration(tol * float64(time.Second))
	from, to := s.Add(-w).Unix()/3600, s.Add(w).Unix()/3600
	for h := from; h <= to && h-from < baseline.HoursPerWeek; h++ {
		if m.Centre(baseline.HourOfWeek(time.Unix(h*3600, 0))) > usualCount {
			return true
		}
	}
	return false
}

// expectedRuns counts the runs expected after lastSeen + tol and before run
// n, skipping those at times of week the identity's profile shows silent
// when the profile knows its weekly rhythm.
func expectedRuns(m *baseline.Model, c *baseline.Cadence, lastSeen time.Time, tol, n float64) int {
	lo := max(1, math.Floor((lastSeen.Sub(c.LastRun).Seconds()+tol)/c.Interval)+1)
	count := 0
	for k := lo; k < n && count < maxCount; k++ {
		s := c.LastRun.Add(time.Duration(k * c.Interval * float64(time.Second)))
		if m.Pooled || usualAround(m, s, tol) {
			count++
		}
	}
	return count
}

func (d *Detector) report(in *detectors.Input, c *baseline.Cadence, t time.Time, dev, tol, n float64, missed int,
	offSchedule, missedReport bool, dst []schemas.Finding) []schemas.Finding {
	p, ev, m := in.Profile, in.Event, in.Profile.Model()
	expected := c.LastRun.Add(time.Duration(n * c.Interval * float64(time.Second))).UTC()
	sched := fmt.Sprintf("runs every %s ± %s, last at %s (%d runs)",
		span(secs(c.Interval)), span(secs(c.Jitter)), c.LastRun.UTC().Format(stamp), c.Runs)
	var score float64
	var f schemas.Finding
	missedText := ""
	if missedReport {
		missedText = fmt.Sprintf("%d expected %s missed since its last activity at %s", missed, runs(missed),
			p.LastSeen.UTC().Format(stamp))
	}
	if offSchedule {
		score = 60 + 15*math.Log2(math.Abs(dev)/tol)
		rare := m.Active(t) < rareShare
		if rare {
			score += 15
		}
		when := "after"
		if dev < 0 {
			when = "before"
		}
		f.Title = "Off-schedule run of " + ev.Identity.ID
		f.Explanation = fmt.Sprintf("%s started a run at %s, %s %s the expected run at %s (tolerance %s; %s)",
			ev.Identity.ID, t.UTC().Format(stamp), span(secs(math.Abs(dev))), when, expected.Format("15:04 MST"), span(secs(tol)), sched)
		f.Technique = "T1078" // Valid Accounts: the job's credential used outside its schedule
		f.Analysis.Pattern = schemas.PatternOffHours
		f.Analysis.Observed = fmt.Sprintf("run at %s, %s %s schedule", t.UTC().Format(stamp), span(secs(math.Abs(dev))), when)
		if rare {
			f.Analysis.Observed += fmt.Sprintf(", an hour of day it is active on %.0f%% of days", 100*m.Active(t))
		}
		if missedReport {
			score = max(score, missScore(missed)) + 10
			f.Explanation += "; " + missedText
			f.Analysis.Observed += fmt.Sprintf(", after %d missed %s", missed, runs(missed))
		}
	} else {
		score = missScore(missed)
		f.Title = "Missed runs of " + ev.Identity.ID
		f.Explanation = fmt.Sprintf("%s started a run at %s after %s (%s)", ev.Identity.ID, t.UTC().Format(stamp), missedText, sched)
		f.Technique = "T1053" // Scheduled Task/Job: the schedule altered or disabled
		f.Analysis.Pattern = schemas.PatternRare
		f.Analysis.Observed = fmt.Sprintf("%d missed %s before the run at %s", missed, runs(missed), t.UTC().Format(stamp))
	}
	score = min(100, score)
	f.ID = schemas.FindingID(Name, ev.Identity.ID, strconv.FormatInt(t.Unix()/3600, 10))
	f.Detector = Name
	f.Identity = ev.Identity
	f.Severity = finding.Severity(score)
	f.Score = int(score + 0.5)
	f.EventIDs = []string{ev.ID}
	f.FirstSeen, f.LastSeen = ev.Time, ev.Time
	f.Analysis.Baseline = sched
	return append(dst, f)
}

const stamp = "2006-01-02 15:04 MST"

func missScore(n int) float64 { return 45 + 10*math.Log2(float64(max(n, 1))) }

func runs(n int) string {
	if n == 1 {
		return "run"
	}
	return "runs"
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// span prints a duration in the unit a reader thinks in.
func span(d time.Duration) string {
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%.0f seconds", d.Seconds())
	case d < 2*time.Hour:
		return fmt.Sprintf("%.0f minutes", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f hours", d.Hours())
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}
