// Package burst owns the denied/error burst detector: in one hour an
// identity gets far more authorization denials (or, separately, failures)
// than its own outcome profile makes plausible. A credential mapping what it
// may do (privilege probing, enumeration across many actions) shows up as a
// run of denials; a steady trickle of 403s that a service has always had
// does not.
//
// Maths. In the hour holding the event let n be the identity's calls and d
// its denials (this event included). The baseline's denied ratio r
// (Model.DeniedRatio: denials over every event of the history) is floored at
// MinRatio, because a ratio of zero estimated from a few thousand calls does
// not mean a denial is impossible. If the identity's denials were the usual
// independent trials, d would be Binomial(n, r), and
//
//	p = P(X ≥ d | X ~ Binomial(n, r)) = I_r(d, n−d+1)
//
// (the regularized incomplete beta function, gonum mathext, as gonum's
// distuv.Binomial computes it)
//
// is how surprising the hour is. The detector fires when d ≥ MinCount and
// p < PValue, at the event that first crosses both (so each identity, hour
// and kind gives one finding, with an id built from them). Failures are
// tested the same way against Model.FailureRatio, as kind "error".
//
// Defaults and why: MinCount 10 (a handful of denials is a mistyped bucket
// or a retry loop, not probing); PValue 1e-6 (one test per identity-hour and
// kind: about one chance false finding per 20,000 identity-days of ordinary
// binomial noise, below the spec's 1 per 1,000, leaving room for real
// traffic's overdispersion); MinRatio 0.005.
//
// Before the identity's first baseline rebuild there is no ratio to judge
// by: the detector assumes FallbackRatio (5%, more denials than most
// services ever see) and needs at least FallbackMinCount (20) of the kind,
// so only an hour that is mostly denied, like probing, fires. Identities
// still learning never fire.
//
// Severity and score. score = min(100, 40 + 4·log10(1/p)), plus 10 when the
// hour also holds at least EnumActions first uses of actions (Window.
// NewActions): enumeration across many actions is the probing signature,
// and raises a denied burst from medium to high and an error burst from low
// to medium. Just after a deploy of the workload (Relearning) severity drops
// a step: a release missing a permission is the likelier cause.
//
// ATT&CK. A denial answers "may this credential do X?", so a burst of them
// across actions maps the credential's permissions: T1069 (Permission
// Groups Discovery), whose cloud sub-technique names exactly the IAM list
// calls probing tools start with; the mesh's RBAC 403s are the same
// question asked of peers, hence the parent technique. Error bursts (calls
// on resources that do not exist, invalid requests) are probing the
// infrastructure rather than the permissions: T1580 (Cloud Infrastructure
// Discovery).
package burst

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"gonum.org/v1/gonum/mathext"

	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "outcome_burst"

// Kinds of burst, as named in Config.Kinds and in finding ids.
const (
	KindDenied = "denied"
	KindError  = "error"
)

// Config tunes the detector.
type Config struct {
	// Kinds lists the bursts looked for: "denied", "error". Default both.
	Kinds []string `yaml:"kinds"`
	// MinCount is the fewest denials (or failures) in the hour that can
	// fire with a baseline; default 10.
	MinCount uint32 `yaml:"min_count"`
	// PValue is the binomial tail probability below which the hour is a
	// burst; default 1e-6.
	PValue float64 `yaml:"p_value"`
	// MinRatio floors the baseline's ratio; default 0.005.
	MinRatio float64 `yaml:"min_ratio"`
	// FallbackMinCount and FallbackRatio judge identities without a built
	// baseline yet; defaults 20 and 0.05.
	FallbackMinCount uint32  `yaml:"fallback_min_count"`
	FallbackRatio    float64 `yaml:"fallback_ratio"`
	// EnumActions is how many first uses of actions in the hour make a
	// burst an enumeration (higher severity); default 5.
	EnumActions uint16 `yaml:"enum_actions"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{
		Kinds: []string{KindDenied, KindError}, MinCount: 10, PValue: 1e-6, MinRatio: 0.005,
		FallbackMinCount: 20, FallbackRatio: 0.05, EnumActions: 5,
	}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if len(c.Kinds) == 0 {
		errs = append(errs, fmt.Errorf("kinds: at least one of %q, %q is required", KindDenied, KindError))
	}
	for _, k := range c.Kinds {
		if k != KindDenied && k != KindError {
			errs = append(errs, fmt.Errorf("kinds: unknown kind %q (valid: %s, %s)", k, KindDenied, KindError))
		}
	}
	if c.MinCount == 0 {
		errs = append(errs, fmt.Errorf("min_count must be positive"))
	}
	if !(c.PValue > 0 && c.PValue < 1) {
		errs = append(errs, fmt.Errorf("p_value must be within (0, 1), got %v", c.PValue))
	}
	if !(c.MinRatio > 0 && c.MinRatio < 1) {
		errs = append(errs, fmt.Errorf("min_ratio must be within (0, 1), got %v", c.MinRatio))
	}
	if c.FallbackMinCount == 0 {
		errs = append(errs, fmt.Errorf("fallback_min_count must be positive"))
	}
	if !(c.FallbackRatio > 0 && c.FallbackRatio < 1) {
		errs = append(errs, fmt.Errorf("fallback_ratio must be within (0, 1), got %v", c.FallbackRatio))
	}
	if c.EnumActions == 0 {
		errs = append(errs, fmt.Errorf("enum_actions must be positive"))
	}
	return errs
}

// Detector is the denied/error burst detector.
type Detector struct {
	cfg              Config
	denied, failures bool
}

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector {
	d := &Detector{cfg: cfg}
	for _, k := range cfg.Kinds {
		d.denied = d.denied || k == KindDenied
		d.failures = d.failures || k == KindError
	}
	return d
}

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// tail is P(X ≥ k) for X ~ Binomial(n, r): the regularized incomplete beta
// function I_r(k, n−k+1), which distuv.Binomial's CDF evaluates from the
// other side (1 − CDF); taken directly, tails far below 1e-16 keep their
// digits for the score and the explanation.
func tail(k, n uint32, r float64) float64 {
	if k == 0 {
		return 1
	}
	if k > n {
		return 0
	}
	return mathext.RegIncBeta(float64(k), float64(n-k+1), r)
}

// burst tests k of n in the hour against ratio r.
func burst(k, n uint32, r float64, minCount uint32, pValue float64) (float64, bool) {
	if k < minCount {
		return 1, false
	}
	p := tail(k, n, r)
	return p, p < pValue
}

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if in.Learning {
		return dst
	}
	var kind, noun string
	var k uint32
	m := in.Profile.Model()
	var base float64
	switch in.Event.Outcome.Result {
	case schemas.ResultDenied:
		if !d.denied {
			return dst
		}
		kind, noun, k = KindDenied, "denied", in.Window.Denied
		if m != nil {
			base = float64(m.DeniedRatio)
		}
	case schemas.ResultFailure:
		if !d.failures {
			return dst
		}
		kind, noun, k = KindError, "failed", in.Window.Failures
		if m != nil {
			base = float64(m.FailureRatio)
		}
	default:
		return dst // only an event of the kind can cross the threshold
	}
	n := max(in.Window.Count, k)
	minCount, r := d.cfg.FallbackMinCount, d.cfg.FallbackRatio
	if m != nil {
		minCount, r = d.cfg.MinCount, max(base, d.cfg.MinRatio)
	}
	p, ok := burst(k, n, r, minCount, d.cfg.PValue)
	if !ok {
		return dst
	}
	if _, before := burst(k-1, n-1, r, minCount, d.cfg.PValue); before {
		return dst // this hour's burst was reported at an earlier event
	}
	return append(dst, d.finding(in, kind, noun, k, n, base, r, p, m != nil))
}

func (d *Detector) finding(in *detectors.Input, kind, noun string, k, n uint32, base, r, p float64, modelled bool) schemas.Finding {
	ev := in.Event
	enum := in.Window.NewActions >= d.cfg.EnumActions
	score := 100.0
	if p > 0 {
		score = min(100, 40+4*math.Log10(1/p))
	}
	sev := 0 // index into severities
	if kind == KindDenied {
		sev++
	}
	if enum {
		score = min(100, score+10)
		sev++
	}
	if in.Relearning && sev > 0 {
		sev--
	}
	technique, title := "T1069", "Burst of denied calls for "
	if kind == KindError {
		technique, title = "T1580", "Burst of failed calls for "
	}
	hourStart := time.Unix(in.Window.Hour*3600, 0).UTC()
	hour := hourStart.Format("2006-01-02 15:00 UTC")
	observed := fmt.Sprintf("%d of %d calls %s in the hour from %s", k, n, noun, hour)
	if in.Window.NewActions > 0 {
		observed += fmt.Sprintf(", %d first uses of an action", in.Window.NewActions)
	}
	var baselineText string
	if modelled {
		baselineText = fmt.Sprintf("%s ratio %s", noun, percent(base))
		if r > base {
			baselineText += fmt.Sprintf(" (floored at %s)", percent(r))
		}
	} else {
		baselineText = fmt.Sprintf("no built baseline yet: assumed %s ratio %s", noun, percent(r))
	}
	baselineText += fmt.Sprintf(", %.1f %s expected of %d", r*float64(n), noun, n)
	explanation := fmt.Sprintf("%s; %s (p=%.1e)", observed, baselineText, p)
	if in.Relearning {
		explanation += "; the workload was just deployed"
	}
	return schemas.Finding{
		ID:          schemas.FindingID(Name, ev.Identity.ID, kind, strconv.FormatInt(in.Window.Hour, 10)),
		Detector:    Name,
		Identity:    ev.Identity,
		Severity:    severities[sev],
		Score:       int(score + 0.5),
		Title:       title + ev.Identity.ID,
		Explanation: explanation,
		Technique:   technique,
		EventIDs:    []string{ev.ID},
		FirstSeen:   ev.Time,
		LastSeen:    ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternSurge,
			Observed: observed,
			Baseline: baselineText,
		},
	}
}

var severities = [...]schemas.Severity{schemas.SeverityLow, schemas.SeverityMedium, schemas.SeverityHigh}

// percent formats a ratio with enough digits for small ones.
func percent(r float64) string {
	if r < 0.01 {
		return strconv.FormatFloat(100*r, 'f', 2, 64) + "%"
	}
	return strconv.FormatFloat(100*r, 'f', 1, 64) + "%"
}
