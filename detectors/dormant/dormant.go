// Package dormant owns the dormant-reactivation detector: a machine identity
// acts again after a silence longer than its class allows. Machine
// credentials that wake after weeks are a classic sign of a stolen or
// forgotten credential put back to use (SPEC §5.5).
//
// Maths. Let s be the silence the event ends, its time minus the identity's
// LastSeen, D the Dormancy of the identity's class (a zero Dormancy disables
// the detector for the class) and G the longest silence between active hours
// in the identity's built baseline (Model.LongestGap; 0 without a model). The
// event is a reactivation when
//
//	s > D  and  s > GapFactor·G
//
// The second condition spares identities whose own rhythm has longer silences
// than their class assumes (a monthly job in the default class): they are
// judged against what they usually do. With r = s/D the score is
//
//	score = 50 + 30·log(r)/log(HighRatio)      (capped at 100)
//
// so a silence just past the dormancy window scores 50 (medium) and one of
// HighRatio (default 4) windows scores 80 (high). Severity follows the score:
// ≥ 80 high, ≥ 50 medium, else low.
//
// Break-glass classes (BreakGlassClasses, default "break_glass", whose
// Dormancy is an hour) exist to be unused: any use after the dormancy window
// scores at least 80 and is high, whatever the identity's usual gaps.
//
// Learning. The learning period protects statistics, not silences: LastSeen
// is exact after one event, and a silence longer than the dormancy window
// already implies an identity that old, so the detector does not wait for
// the learning period (an identity past learning by events but not yet by age
// is judged like any other). An identity with thin history (fewer events
// than its class's Learning.MinEvents: a credential used a few times, then
// abandoned, then used again weeks later) is reported 20 points, usually one
// severity step, lower, because its rhythm is not known yet; so is one right
// after a deploy of its workload (Relearning), which explains a workload
// scaled back up after weeks. A brand-new identity (no event before) is
// never a reactivation, and neither is an event older than LastSeen (late or
// replayed).
//
// One finding per reactivation: its id is the identity and the LastSeen (Unix
// seconds, which survive a reload from stored baselines) it woke from, and
// the event updates LastSeen, so the identity's next events are not
// reactivations.
package dormant

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "dormant_reactivation"

// Config tunes the detector.
type Config struct {
	// GapFactor is how many times the identity's longest usual silence
	// (Model.LongestGap) the silence must exceed as well as its class's
	// dormancy window. Default 1.5.
	GapFactor float64 `yaml:"gap_factor"`
	// HighRatio is the silence, in dormancy windows, that scores 80 (high).
	// Default 4.
	HighRatio float64 `yaml:"high_ratio"`
	// BreakGlassClasses name the identity classes any reactivation of which
	// is high, regardless of their usual gaps. Default ["break_glass"].
	BreakGlassClasses []string `yaml:"break_glass_classes"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{GapFactor: 1.5, HighRatio: 4, BreakGlassClasses: []string{"break_glass"}}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.GapFactor < 1 || math.IsNaN(c.GapFactor) || math.IsInf(c.GapFactor, 0) {
		errs = append(errs, fmt.Errorf("gap_factor must be at least 1, got %v", c.GapFactor))
	}
	if c.HighRatio <= 1 || math.IsNaN(c.HighRatio) || math.IsInf(c.HighRatio, 0) {
		errs = append(errs, fmt.Errorf("high_ratio must be greater than 1, got %v", c.HighRatio))
	}
	for i, n := range c.BreakGlassClasses {
		if n == "" {
			errs = append(errs, fmt.Errorf("break_glass_classes[%d]: empty class name", i))
		}
	}
	return errs
}

// Detector is the dormant-reactivation detector.
type Detector struct {
	cfg Config
	// fallback is the class of a profile that has none (one not made by a
	// Cache): the default service class.
	fallback *baseline.Class
}

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector {
	return &Detector{cfg: cfg, fallback: baseline.DefaultClasses().Named(baseline.ClassService)}
}

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	p, ev := in.Profile, in.Event
	if p.Events == 0 || p.LastSeen.IsZero() {
		return dst // first event ever: nothing to wake from
	}
	class := p.Class()
	if class == nil {
		class = d.fallback
	}
	silence := ev.Time.Sub(p.LastSeen)
	if class.Dormancy <= 0 || silence <= class.Dormancy {
		return dst
	}
	breakGlass := slices.Contains(d.cfg.BreakGlassClasses, class.Name)
	var longest time.Duration
	if m := p.Model(); m != nil {
		longest = time.Duration(float64(m.LongestGap) * float64(time.Second))
	}
	if !breakGlass && float64(silence) <= d.cfg.GapFactor*float64(longest) {
		return dst // the identity's own rhythm has silences this long
	}
	return d.report(in, class, silence, longest, breakGlass, dst)
}

func (d *Detector) report(in *detectors.Input, class *baseline.Class, silence, longest time.Duration, breakGlass bool, dst []schemas.Finding) []schemas.Finding {
	p, ev := in.Profile, in.Event
	r := float64(silence) / float64(class.Dormancy)
	score := min(100, 50+30*math.Log(r)/math.Log(d.cfg.HighRatio))
	var caveat string
	switch {
	case breakGlass:
		score = max(score, 80)
	case p.Events < class.Learning.MinEvents:
		score -= 20
		caveat = fmt.Sprintf("; thin history (%d events before, %d to learn its class)", p.Events, class.Learning.MinEvents)
	case in.Relearning:
		score -= 20
		caveat = "; shortly after a deploy of its workload"
	}
	usual := "no gap history"
	if m := p.Model(); longest > 0 {
		usual = "longest usual gap " + span(longest)
	} else if m != nil && m.ActiveHours > 1 {
		usual = "never silent for a whole hour before"
	}
	last := p.LastSeen.UTC()
	return append(dst, schemas.Finding{
		ID:       schemas.FindingID(Name, ev.Identity.ID, strconv.FormatInt(last.Unix(), 10)),
		Detector: Name,
		Identity: ev.Identity,
		Severity: severity(score),
		Score:    int(score + 0.5),
		Title:    "Dormant identity active again: " + ev.Identity.ID,
		Explanation: fmt.Sprintf("%s acted after %s of silence (last seen %s); class %s is dormant after %s, %s%s",
			ev.Identity.ID, span(silence), last.Format("2006-01-02 15:04 MST"), class.Name, span(class.Dormancy), usual, caveat),
		Technique: "T1078", // Valid Accounts: a dormant credential put back to use
		EventIDs:  []string{ev.ID},
		FirstSeen: ev.Time,
		LastSeen:  ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternRare,
			Observed: fmt.Sprintf("first event after %s of silence (%.1f× the dormancy window)", span(silence), r),
			Baseline: fmt.Sprintf("dormant after %s (class %s), %s", span(class.Dormancy), class.Name, usual),
		},
	})
}

func severity(score float64) schemas.Severity {
	switch {
	case score >= 80:
		return schemas.SeverityHigh
	case score >= 50:
		return schemas.SeverityMedium
	}
	return schemas.SeverityLow
}

// span prints a duration in the unit a reader thinks in: minutes below two
// hours, hours below two days, else days.
func span(d time.Duration) string {
	switch {
	case d < 2*time.Hour:
		return fmt.Sprintf("%.0f minutes", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1f hours", d.Hours())
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}
