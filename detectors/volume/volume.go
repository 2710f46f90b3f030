// Package volume owns the volume-spike detector: an identity makes far more
// calls in the current hour than its history says is normal.
//
// Maths. Let c be the identity's event count in the current hour (this event
// included) and μ, σ the mean and standard deviation of its hourly counts
// over the preceding week (hours without activity count as zero, so a quiet
// identity has a low mean). To keep a near-constant history from turning
// every wobble into a spike, σ is floored at √μ (the Poisson spread) and 1:
//
//	z = (c − μ) / max(σ, √μ, 1)
//
// Machines keep daily rhythms (a nightly backup makes all its calls at
// 03:00), so c must also exceed SeasonalRatio times the largest count of the
// same hour of day on the previous six days. The detector fires when z ≥ Z,
// c ≥ Ratio·μ, c > SeasonalRatio·max(same hour) and c ≥ MinCount, and only at
// the event that first crosses all four, so each identity-hour gives at most
// one finding. It needs MinHours of history; identities still learning never
// raise volume findings. The score adds the Poisson tail probability
// P(X ≥ c | λ = μ) (gonum distuv) so the reader sees how unlikely c was:
//
//	score = min(100, 50 + 10·log10(1/p))
package volume

import (
	"fmt"
	"math"
	"time"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "volume_spike"

// Config tunes the detector.
type Config struct {
	Z        float64 `yaml:"z"`         // default 6
	Ratio    float64 `yaml:"ratio"`     // default 3
	MinCount uint32  `yaml:"min_count"` // default 30
	MinHours int     `yaml:"min_hours"` // default 24
	// SeasonalRatio is how far above the same hour's recent maximum a
	// count must be; default 2.
	SeasonalRatio float64 `yaml:"seasonal_ratio"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{Z: 6, Ratio: 3, MinCount: 30, MinHours: 24, SeasonalRatio: 2}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.Z <= 0 {
		errs = append(errs, fmt.Errorf("z must be positive, got %v", c.Z))
	}
	if c.Ratio < 1 {
		errs = append(errs, fmt.Errorf("ratio must be at least 1, got %v", c.Ratio))
	}
	if c.MinCount == 0 {
		errs = append(errs, fmt.Errorf("min_count must be positive"))
	}
	if c.SeasonalRatio < 1 {
		errs = append(errs, fmt.Errorf("seasonal_ratio must be at least 1, got %v", c.SeasonalRatio))
	}
	if c.MinHours <= 0 || c.MinHours > 168 {
		errs = append(errs, fmt.Errorf("min_hours must be within 1..168, got %d", c.MinHours))
	}
	return errs
}

// Detector is the volume-spike detector.
type Detector struct{ cfg Config }

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector { return &Detector{cfg: cfg} }

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

func (d *Detector) spike(c, mean, sd, sameHour float64) (z float64, ok bool) {
	z = (c - mean) / max(sd, math.Sqrt(mean), 1)
	return z, z >= d.cfg.Z && c >= d.cfg.Ratio*mean && c > d.cfg.SeasonalRatio*sameHour && c >= float64(d.cfg.MinCount)
}

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if in.Learning {
		return dst
	}
	if in.Window.Count < d.cfg.MinCount {
		return dst // below the floor no spike is reported; skip the week's statistics
	}
	ev := in.Event
	hourStart := time.Unix(in.Window.Hour*3600, 0).UTC()
	mean, sd, hours := in.Profile.HourlyStats(hourStart)
	if hours < d.cfg.MinHours {
		return dst
	}
	c := float64(in.Window.Count)
	sameHour := float64(in.Profile.SameHourMax(in.Window.Hour))
	z, ok := d.spike(c, mean, sd, sameHour)
	if !ok {
		return dst
	}
	if _, before := d.spike(c-1, mean, sd, sameHour); before {
		return dst // already reported this hour
	}
	p := distuv.Poisson{Lambda: max(mean, 0.01)}.Survival(c - 1)
	score := 100.0
	if p > 0 {
		score = min(100, 50+10*math.Log10(1/p))
	}
	sev := schemas.SeverityMedium
	if z >= 2*d.cfg.Z {
		sev = schemas.SeverityHigh
	}
	hour := hourStart.Format("Mon 15:00")
	return append(dst, schemas.Finding{
		ID:       schemas.FindingID(Name, ev.Identity.ID, fmt.Sprint(in.Window.Hour)),
		Detector: Name,
		Identity: ev.Identity,
		Severity: sev,
		Score:    int(score + 0.5),
		Title:    "Call volume spike for " + ev.Identity.ID,
		Explanation: fmt.Sprintf("%d calls in the hour from %s; baseline %.1f±%.1f per hour over %d hours (z=%.1f), at most %.0f in this hour on previous days",
			in.Window.Count, hour, mean, sd, hours, z, sameHour),
		Technique: "T1119", // Automated Collection: scripted bulk access
		EventIDs:  []string{ev.ID},
		FirstSeen: ev.Time,
		LastSeen:  ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternSurge,
			Observed: fmt.Sprintf("%d calls in hour %s", in.Window.Count, hour),
			Baseline: fmt.Sprintf("%.1f±%.1f calls per hour, same hour max %.0f", mean, sd, sameHour),
		},
	})
}
