// Package offhours owns the off-hours detector: an identity with a daily
// rhythm acts in an hour of the day in which it has (almost) never been
// active. A batch role that works 01:00–04:00, or a service called only in
// its callers' working hours, is not expected at 14:00 or at 03:00; a
// stolen credential used from another time zone is.
//
// Maths. The built baseline (Profile.Model) holds, per UTC hour of day, the
// share a_h of the observed days on which the identity was active in that
// hour (Model.ActiveShare), over D observed days (Model.RateHours / 24,
// rounded up). For an event in hour h, with its neighbours h ± Neighbours
// (so a job that drifts over an hour boundary, or a schedule that moved an
// hour with daylight saving, is not "off hours"):
//
//	s = max(a_{h−k}, …, a_{h+k})
//
// The event is off hours when s ≤ MaxShare, provided the identity has a
// rhythm worth trusting:
//
//   - D ≥ MinDays: a share of 0 over a week says little, over two weeks it
//     is a pattern;
//   - its busiest hour has a_max ≥ MinPeakShare: an identity active at
//     random on a few days (never above a low share anywhere) has no hours
//     to be outside of;
//   - fewer than ContinuousHours hours of the day have a_h ≥ MinPeakShare:
//     a 24×7 service is not off hours in its one quiet hour (maintenance,
//     an outage).
//
// The finding is raised at the first event of such an hour (Window.Count
// is 1) and its id is the identity and the UTC day, so a night of activity
// is one finding however many hours it spans. Identities still learning and
// those without a built baseline never fire.
//
// score = 50 + 30·(1 − s/MaxShare) + 20·min(1, (D − MinDays)/(2·MinDays)):
// never active in the hour over four weeks or more scores 100. Severity is
// medium from 80, else low, never high: the hour alone is weak evidence,
// worth most next to another detector's finding on the same identity. Defaults: MaxShare 0.02 (less than one
// day in fifty), MinDays 14, MinPeakShare 0.5, ContinuousHours 20,
// Neighbours 1.
//
// ATT&CK: T1078 (Valid Accounts): a valid credential used when its owner
// never works is the classic sign of someone else holding it.
package offhours

import (
	"fmt"
	"math"
	"strings"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "off_hours"

// Config tunes the detector.
type Config struct {
	// MaxShare is the largest share of days with activity in the hour (and
	// its neighbours) that still counts as never; default 0.02.
	MaxShare float64 `yaml:"max_share"`
	// MinDays is how many days the baseline must cover; default 14.
	MinDays int `yaml:"min_days"`
	// MinPeakShare is the share of days an hour must be active on to be one
	// of the identity's usual hours; its busiest hour must reach it.
	// Default 0.5.
	MinPeakShare float64 `yaml:"min_peak_share"`
	// ContinuousHours is how many usual hours of the day make an identity a
	// round-the-clock service, never off hours; default 20.
	ContinuousHours int `yaml:"continuous_hours"`
	// Neighbours is how many hours each side of the event's hour must be
	// inactive too; default 1.
	Neighbours int `yaml:"neighbours"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{MaxShare: 0.02, MinDays: 14, MinPeakShare: 0.5, ContinuousHours: 20, Neighbours: 1}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if !(c.MaxShare > 0 && c.MaxShare < 1) {
		errs = append(errs, fmt.Errorf("max_share must be within (0, 1), got %v", c.MaxShare))
	}
	if c.MinDays < 1 {
		errs = append(errs, fmt.Errorf("min_days must be positive, got %d", c.MinDays))
	}
	if !(c.MinPeakShare > c.MaxShare && c.MinPeakShare <= 1) {
		errs = append(errs, fmt.Errorf("min_peak_share must be above max_share and at most 1, got %v", c.MinPeakShare))
	}
	if c.ContinuousHours < 1 || c.ContinuousHours > 24 {
		errs = append(errs, fmt.Errorf("continuous_hours must be within 1..24, got %d", c.ContinuousHours))
	}
	if c.Neighbours < 0 || c.Neighbours > 11 {
		errs = append(errs, fmt.Errorf("neighbours must be within 0..11, got %d", c.Neighbours))
	}
	return errs
}

// Detector is the off-hours detector.
type Detector struct{ cfg Config }

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector { return &Detector{cfg: cfg} }

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if in.Learning || in.Window.Count != 1 {
		return dst // one look per identity-hour, at its first event
	}
	m := in.Profile.Model()
	if m == nil {
		return dst
	}
	days := (m.RateHours + 23) / 24
	if days < d.cfg.MinDays {
		return dst
	}
	h := in.Event.Time.UTC().Hour()
	share := 0.0
	for k := -d.cfg.Neighbours; k <= d.cfg.Neighbours; k++ {
		share = max(share, shareAt(m, h+k))
	}
	if share > d.cfg.MaxShare {
		return dst
	}
	peak, usual := 0.0, 0
	for x := range 24 {
		a := shareAt(m, x)
		peak = max(peak, a)
		if a >= d.cfg.MinPeakShare {
			usual++
		}
	}
	if peak < d.cfg.MinPeakShare || usual >= d.cfg.ContinuousHours {
		return dst
	}
	return append(dst, d.finding(in, m, h, share, days))
}

// shareAt is the share of days active in hour of day h (any integer,
// taken modulo 24).
func shareAt(m *baseline.Model, h int) float64 {
	return float64(m.ActiveShare[(h%24+24)%24]) / 255
}

func (d *Detector) finding(in *detectors.Input, m *baseline.Model, h int, share float64, days int) schemas.Finding {
	ev := in.Event
	score := 50 + 30*(1-share/d.cfg.MaxShare) + 20*min(1, float64(days-d.cfg.MinDays)/float64(2*d.cfg.MinDays))
	sev := schemas.SeverityLow
	if score >= 80 {
		sev = schemas.SeverityMedium
	}
	k := d.cfg.Neighbours
	span := fmt.Sprintf("%02d:00–%02d:59 UTC", (h-k+24)%24, (h+k)%24)
	activeDays := int(math.Round(share * float64(days)))
	usual := usualHours(m, d.cfg.MinPeakShare)
	t := ev.Time.UTC()
	observed := fmt.Sprintf("active at %s on %s (%s)", t.Format("15:04 UTC"), t.Format("Mon 2006-01-02"), ev.Action)
	base := fmt.Sprintf("active %s on %d of %d observed days; usually active %s", span, activeDays, days, usual)
	return schemas.Finding{
		ID:          schemas.FindingID(Name, ev.Identity.ID, t.Format("2006-01-02")),
		Detector:    Name,
		Identity:    ev.Identity,
		Severity:    sev,
		Score:       int(score + 0.5),
		Title:       "Activity outside the usual hours of " + ev.Identity.ID,
		Explanation: observed + "; " + base,
		Technique:   "T1078",
		EventIDs:    []string{ev.ID},
		FirstSeen:   ev.Time,
		LastSeen:    ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternOffHours,
			Observed: observed,
			Baseline: base,
		},
	}
}

// usualHours lists the hours of day active on at least least of the days
// as UTC ranges, e.g. "08:00–17:59 UTC" or "22:00–01:59 UTC" across
// midnight.
func usualHours(m *baseline.Model, least float64) string {
	start := 0 // an hour that begins a range or follows a quiet hour
	for start < 24 && shareAt(m, start-1) >= least {
		start++
	}
	var b strings.Builder
	for i := 0; i < 24; {
		x := start + i
		if shareAt(m, x) < least {
			i++
			continue
		}
		n := 1
		for i+n < 24 && shareAt(m, x+n) >= least {
			n++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%02d:00–%02d:59", x%24, (x+n-1)%24)
		i += n
	}
	b.WriteString(" UTC")
	return b.String()
}
