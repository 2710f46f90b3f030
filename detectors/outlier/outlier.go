// Package outlier owns the multivariate outlier detector: an hour whose mix
// of activity (how many calls, how many of them denied or failed, how many
// bytes each sent) lies far outside the identity's own hours, or a replica
// whose call rate lies far from its cohort's (SPEC §5, detector 9).
//
// Maths, own baseline. An hour is the vector x of baseline.Features: log1p
// of its events, its denied and failure shares, and log1p of its bytes out
// per event, computed the same way from the live window and from the
// rollups the builder reads. The builder keeps the mean μ of the identity's
// active hours and the precision P = (Σ + λI)⁻¹ of their covariance Σ, with
// the ridge λ = baseline.FeatureRidge (0.0025) so a feature the identity
// keeps constant does not make Σ singular. The squared Mahalanobis distance
//
//	D² = (x − μ)ᵀ P (x − μ)
//
// of an hour drawn from the identity's own (normal) distribution follows χ²
// with k = 4 degrees of freedom, so the threshold T = χ²ₖ⁻¹(1 − P) is
// exceeded by chance with probability P (default 10⁻⁶: T = 33.4), less with
// the ridge, which only lowers D².
//
// The window is judged while the hour fills. Its shares and its bytes per
// event estimate the whole hour's, but its event count is only a lower bound
// of the hour's: a quarter past the hour a steady service has made a quarter
// of its calls. So the events coordinate d₀ of d = x − μ takes, among the
// values the hour can still reach (d₀ or more), the one that makes D²
// smallest: with b = Σⱼ≠₀ P₀ⱼ dⱼ the quadratic is smallest at −b/P₀₀, so
// d₀ ← max(d₀, −b/P₀₀). A partial hour is never unusual for being partial;
// an hour quieter than usual is the off-hours and cadence detectors'
// business. The window needs MinEvents events: three calls are not a
// profile.
//
// Maths, cohort. When the identity belongs to a cohort of at least
// CohortMinMembers members (replicas of one workload), its count c in the
// hour is set against its peers'. The cohort's rate R is the median over
// members of their mean hourly count and S its spread (MAD × 1.4826); both
// are means over the whole span, so they are scaled to this hour of the week
// by the identity's own seasonal shape f = max(1, centre(hour of week) /
// mean rate), never below the cohort's average: e = R·f. Hourly counts vary
// by factors, not by amounts (a busy hour is 1.5× the usual, whatever the
// usual), so c is compared with e on the log scale. Its spread there adds
// the peers' relative spread S/R, the identity's own hour-to-hour spread
// around its seasonal rate (the residual ρ of baseline.FeatureModel),
// inflated by 1 + π/(2n) because the seasonal centre is the median of only
// n = (hours of history)/168 samples, and the Poisson 1/(e+1):
//
//	σ² = (S/R)² + ρ²·(1 + π/(2n)) + 1/(e+1),   z = (ln(1+c) − ln(1+e)) / σ
//
// and the cohort test holds when z² ≥ χ²₁⁻¹(1 − P) (z ≥ 4.89 at the default
// P), c ≥ CohortRatio·e and c ≥ MinEvents. The count is a lower bound of
// the hour's here too, so the test is one-sided. A member whose own mean
// rate was already CohortRatio times the cohort's when its baseline was
// built (a leader, the owner of most partitions) has a different role, not
// a fault: only its own baseline judges it.
//
// Reporting. Every event evaluates the window that includes it; a finding is
// raised at the event where either test first holds in the hour (the same
// window without this event held neither), with an id of the identity and
// the hour, so each identity-hour gives at most one finding (should the
// statistic dip and cross again, the repeat has the same id, which the
// engine drops). It names the features that contribute most to D²: of the
// terms dᵢ·(P d)ᵢ, which sum to D², the largest, then the others of at
// least T/k (a feature's even share of the threshold), largest first, at
// most three, with observed and usual values ("denied share 0.62 vs usual
// 0.01"); the usual events and bytes per event are geometric means (μ back
// from the log scale). With p the tail probability of
// the statistic that fired (the smaller of the two when both did),
//
//	score = min(100, 60 + 40·(log10(1/p) − log10(1/P)) / log10(1/P))
//
// 60 at the threshold and 100 at p = P²; severity is high from p ≤ P², else
// medium. ATT&CK T1078 (Valid Accounts): a valid identity doing something
// unlike itself.
//
// Quiet while the identity is learning or relearning after a deploy (a new
// release legitimately changes sizes and error rates until the next
// rebuild), before its first rebuild, and when its feature model covers
// fewer than MinHours active hours (the builder computes none below
// baseline.DefaultFeatureMinHours, 48).
package outlier

import (
	"fmt"
	"math"
	"strings"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "multivariate_outlier"

// Config tunes the detector.
type Config struct {
	// P is the probability that an hour of the identity's own distribution
	// crosses the threshold; default 1e-6.
	P float64 `yaml:"p"`
	// MinEvents is how many events the hour needs; default 20.
	MinEvents uint32 `yaml:"min_events"`
	// MinHours is how many active hours the feature model must cover;
	// default 48. The builder computes none with fewer than its own
	// FeatureMinHours, so a lower value has no effect.
	MinHours int `yaml:"min_hours"`
	// CohortMinMembers is the smallest cohort its members are compared
	// with; default 3.
	CohortMinMembers int `yaml:"cohort_min_members"`
	// CohortRatio is how many times the cohort's expected count a count must
	// also reach; default 3.
	CohortRatio float64 `yaml:"cohort_ratio"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{P: 1e-6, MinEvents: 20, MinHours: baseline.DefaultFeatureMinHours, CohortMinMembers: 3, CohortRatio: 3}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if !(c.P > 0 && c.P < 0.5) {
		errs = append(errs, fmt.Errorf("p must be within (0, 0.5), got %v", c.P))
	}
	if c.MinEvents == 0 {
		errs = append(errs, fmt.Errorf("min_events must be positive"))
	}
	if c.MinHours < 2 {
		errs = append(errs, fmt.Errorf("min_hours must be at least 2, got %d", c.MinHours))
	}
	if c.CohortMinMembers < 2 {
		errs = append(errs, fmt.Errorf("cohort_min_members must be at least 2, got %d", c.CohortMinMembers))
	}
	if c.CohortRatio < 1 {
		errs = append(errs, fmt.Errorf("cohort_ratio must be at least 1, got %v", c.CohortRatio))
	}
	return errs
}

// Detector is the multivariate outlier detector.
type Detector struct {
	cfg Config
	// own and cohort are the thresholds of D² (χ² with NumFeatures degrees
	// of freedom) and of z² (χ² with one).
	own, cohort float64
	// logP is log10(1/P).
	logP float64
}

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector {
	return &Detector{
		cfg:    cfg,
		own:    distuv.ChiSquared{K: baseline.NumFeatures}.Quantile(1 - cfg.P),
		cohort: distuv.ChiSquared{K: 1}.Quantile(1 - cfg.P),
		logP:   -math.Log10(cfg.P),
	}
}

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// Thresholds are the squared distance and the squared cohort z an hour must
// reach.
func (d *Detector) Thresholds() (own, cohort float64) { return d.own, d.cohort }

// ownTest is the own-baseline test of w: the deviation judged (events
// coordinate lowered as the package doc says) and D².
func (d *Detector) ownTest(s *baseline.FeatureStats, w *baseline.Window) (dev baseline.Features, d2 float64, ok bool) {
	dev = s.Deviation(w.Features())
	var b float64
	for j := 1; j < baseline.NumFeatures; j++ {
		b += s.Precision(0, j) * dev[j]
	}
	if p00 := s.Precision(0, 0); p00 > 0 {
		dev[baseline.FeatureEvents] = max(dev[baseline.FeatureEvents], -b/p00)
	}
	d2 = s.Quad(dev)
	return dev, d2, d2 >= d.own
}

// expect is the cohort's expected count e for a member in the hour starting
// at hourStart and the spread of its logarithm (see the package doc); ok is
// false when the cohort test does not apply to the identity.
func (d *Detector) expect(m *baseline.Model, c *baseline.CohortModel, hourStart time.Time) (e, sdLog float64, ok bool) {
	if c == nil || c.Members < d.cfg.CohortMinMembers || c.Rate <= 0 {
		return 0, 0, false
	}
	if float64(m.RateMean) >= d.cfg.CohortRatio*c.Rate {
		return 0, 0, false // its role, not a fault
	}
	f := 1.0
	if m.RateMean > 0 {
		f = max(1, m.Centre(baseline.HourOfWeek(hourStart))/float64(m.RateMean))
	}
	e = c.Rate * f
	peers := c.Spread / c.Rate
	own := float64(m.Features().Residual)
	n := max(1, float64(m.RateHours)/baseline.HoursPerWeek)
	return e, math.Sqrt(peers*peers + own*own*(1+math.Pi/(2*n)) + 1/(e+1)), true
}

func (d *Detector) cohortTest(count, e, sdLog float64) (z float64, ok bool) {
	z = (math.Log1p(count) - math.Log1p(e)) / sdLog
	return z, z > 0 && z*z >= d.cohort && count >= d.cfg.CohortRatio*e
}

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if in.Learning || in.Relearning || in.Window.Count < d.cfg.MinEvents {
		return dst
	}
	m := in.Profile.Model()
	if m == nil {
		return dst
	}
	s := m.Features()
	if s == nil || m.ActiveHours < d.cfg.MinHours {
		return dst
	}
	w := &in.Window
	hourStart := time.Unix(w.Hour*3600, 0).UTC()
	dev, d2, ownHit := d.ownTest(s, w)
	var e, sdLog, z float64
	var cohortOK, cohortHit bool
	// e ≥ R, so below CohortRatio·R the cohort test cannot hold.
	if c := in.Cohort; c != nil && float64(w.Count) >= d.cfg.CohortRatio*c.Rate {
		e, sdLog, cohortOK = d.expect(m, c, hourStart)
		if cohortOK {
			z, cohortHit = d.cohortTest(float64(w.Count), e, sdLog)
		}
	}
	if !ownHit && !cohortHit {
		return dst
	}
	// Already reported this hour when the window without this event held.
	if prev := withoutEvent(*w, in.Event); prev.Count >= d.cfg.MinEvents {
		if _, _, hit := d.ownTest(s, &prev); hit {
			return dst
		}
		if cohortOK {
			if _, hit := d.cohortTest(float64(prev.Count), e, sdLog); hit {
				return dst
			}
		}
	}
	return append(dst, d.finding(in, s, dev, d2, ownHit, e, sdLog, z, cohortHit, hourStart))
}

// withoutEvent is w before ev was counted.
func withoutEvent(w baseline.Window, ev *schemas.Event) baseline.Window {
	w.Count--
	switch ev.Outcome.Result {
	case schemas.ResultDenied:
		w.Denied = max(w.Denied, 1) - 1
	case schemas.ResultFailure:
		w.Failures = max(w.Failures, 1) - 1
	}
	w.BytesOut -= min(w.BytesOut, ev.BytesOut)
	return w
}

// maxNamed is how many contributing features an explanation names.
const maxNamed = 3

func (d *Detector) finding(in *detectors.Input, s *baseline.FeatureStats, dev baseline.Features, d2 float64, ownHit bool,
	e, sdLog, z float64, cohortHit bool, hourStart time.Time) schemas.Finding {
	ev, w := in.Event, &in.Window
	hour := hourStart.Format("Mon 15:00")
	x := w.Features()
	p := 1.0
	var why []string
	pattern, title := schemas.PatternRare, "Unusual hour of activity for "+ev.Identity.ID
	if ownHit {
		p = distuv.ChiSquared{K: baseline.NumFeatures}.Survival(d2)
		contrib := s.Contributions(dev)
		var named [maxNamed]int
		n := 0
		for n < maxNamed {
			best := -1
			for i, c := range contrib {
				if c > 0 && (n == 0 || c >= d.own/baseline.NumFeatures) && (best < 0 || c > contrib[best]) && !isNamed(named[:n], i) {
					best = i
				}
			}
			if best < 0 {
				break
			}
			named[n] = best
			n++
		}
		var parts []string
		for _, i := range named[:n] {
			parts = append(parts, fmt.Sprintf("%s %s vs usual %s", baseline.FeatureName(i),
				formatFeature(i, x[i]), formatFeature(i, float64(s.Mean[i]))))
		}
		why = append(why, fmt.Sprintf("%s in the hour from %s (%d events so far); Mahalanobis D² %.1f against %d active hours (threshold %.1f, p=%.0e)",
			strings.Join(parts, ", "), hour, w.Count, d2, in.Profile.Model().ActiveHours, d.own, d.cfg.P))
	}
	if cohortHit {
		pc := distuv.ChiSquared{K: 1}.Survival(z * z)
		p = min(p, pc)
		if !ownHit {
			pattern, title = schemas.PatternSurge, "Replica far from its cohort: "+ev.Identity.ID
		}
		why = append(why, fmt.Sprintf("%d events in the hour from %s, %.1f× what its cohort %s (%d members) expects of a member (%.0f, usually %.0f–%.0f; z=%.1f on the log scale)",
			w.Count, hour, float64(w.Count)/e, in.Cohort.Key, in.Cohort.Members, e, e/math.Exp(sdLog), e*math.Exp(sdLog), z))
	}
	score, sev := 100.0, schemas.SeverityHigh
	if p > 0 {
		score = min(100, 60+40*(math.Log10(1/p)-d.logP)/d.logP)
	}
	if p > d.cfg.P*d.cfg.P {
		sev = schemas.SeverityMedium
	}
	observed := fmt.Sprintf("%d events, denied share %s, failure share %s, %s bytes out per event in hour %s",
		w.Count, formatFeature(baseline.FeatureDenied, x[baseline.FeatureDenied]),
		formatFeature(baseline.FeatureFailures, x[baseline.FeatureFailures]),
		formatFeature(baseline.FeatureBytesOut, x[baseline.FeatureBytesOut]), hour)
	usual := fmt.Sprintf("usual hour over %d active hours (geometric means): %s events, denied share %s, failure share %s, %s bytes out per event",
		in.Profile.Model().ActiveHours, formatFeature(baseline.FeatureEvents, float64(s.Mean[baseline.FeatureEvents])),
		formatFeature(baseline.FeatureDenied, float64(s.Mean[baseline.FeatureDenied])),
		formatFeature(baseline.FeatureFailures, float64(s.Mean[baseline.FeatureFailures])),
		formatFeature(baseline.FeatureBytesOut, float64(s.Mean[baseline.FeatureBytesOut])))
	if in.Cohort != nil && e == 0 {
		e, sdLog, _ = d.expect(in.Profile.Model(), in.Cohort, hourStart)
	}
	if e > 0 {
		usual += fmt.Sprintf("; cohort %s: %.0f events per member this hour, usually %.0f–%.0f", in.Cohort.Key, e, e/math.Exp(sdLog), e*math.Exp(sdLog))
	}
	return schemas.Finding{
		ID:          schemas.FindingID(Name, ev.Identity.ID, fmt.Sprint(w.Hour)),
		Detector:    Name,
		Identity:    ev.Identity,
		Severity:    sev,
		Score:       int(score + 0.5),
		Title:       title,
		Explanation: strings.Join(why, "; "),
		Technique:   "T1078", // Valid Accounts
		EventIDs:    []string{ev.ID},
		FirstSeen:   ev.Time,
		LastSeen:    ev.Time,
		Analysis:    schemas.Analysis{Pattern: pattern, Observed: observed, Baseline: usual},
	}
}

func isNamed(named []int, i int) bool {
	for _, n := range named {
		if n == i {
			return true
		}
	}
	return false
}

// formatFeature prints feature i's value x in its natural unit.
func formatFeature(i int, x float64) string {
	v := baseline.FeatureValue(i, x)
	switch i {
	case baseline.FeatureDenied, baseline.FeatureFailures:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
