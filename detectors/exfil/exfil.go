// Package exfil owns the exfiltration-volume detector: the bytes sent out to
// an identity in one hour (the responses it pulled: objects read, pages
// scraped, rows exported) are far above what its baseline says an hour of
// its traffic carries, or a single call carries far more than any call it
// ever made.
//
// Maths. Let W be the identity's bytes out in the current hour (this event
// included) and b the event's. From the built baseline (Profile.Model) take
// the seasonal centre c and spread σ of the hourly call count at this hour
// of week, the mean m and standard deviation s of its hourly counts over
// the last week (Profile.HourlyStats: the seasonal median of an identity
// that works in bursts at any hour is 0, its weekly spread is not), and the
// per-call bytes-out quantiles P50, P90, P99 and Max. Those are upper
// edges of log2 buckets, so each bounds its quantile from above (within a
// factor of two), and
//
//	n̂ = max(c + Z·max(σ, √c), m + Z·s)            a busy hour's calls
//	μ̂ = 0.5·P50 + 0.4·P90 + 0.09·P99 + 0.01·Max    bounds the mean call's bytes
//	E  = max(n̂·μ̂, Max)                            a busy hour's bytes, at least
//	                                               one call of the largest size
//
// The hour is anomalous when W ≥ T = max(MinBytes, Ratio·E); the call alone
// when b ≥ max(MinBytes, EventRatio·Max). μ̂ is the largest mean the
// quantiles allow, so an identity whose calls are mostly empty with a few
// large ones (a role whose only sized calls are S3 reads) is not judged by
// its median. The finding is raised at the event where W first reaches T,
// or at an oversized call while the hour is still below T; its id is the
// identity and the hour, so the engine merges the rest of the hour into it.
//
// Defaults and why: Ratio 10 and EventRatio 8 (the estimates are good to a
// factor of two, and exfiltration worth a page moves an order of magnitude
// more than usual); Z 3; MinBytes 10 MiB, so identities that move kilobytes
// never alert on kilobytes. A source that logs no sizes has BytesOut 0 on
// every event: W stays below MinBytes and the detector never fires for it.
//
// Without a built baseline (or with one built over no calls) there is no
// size scale to judge by: the online profile counts calls, not bytes, so
// the detector stays quiet until the identity's first rebuild, as it does
// while the identity is learning.
//
// score = min(100, 40 + 20·log10(r)) where r is W/E (or b/Max for an
// oversized call, whichever is larger): 60 at the default ratio, 80 (high
// severity) at a hundred times the usual.
//
// ATT&CK: T1567 (Exfiltration Over Web Service): the data leaves through
// the service's own HTTPS API to whoever holds the credential, not over a
// new channel (T1048) nor in capped chunks (T1030, which this detector
// would not see).
package exfil

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "exfil_volume"

// Config tunes the detector.
type Config struct {
	// Ratio is how far above a busy hour's expected bytes the hour's bytes
	// must be; default 10.
	Ratio float64 `yaml:"ratio"`
	// EventRatio is how far above the largest call seen one call must be;
	// default 8.
	EventRatio float64 `yaml:"event_ratio"`
	// Z sets a busy hour's call count: centre + Z·spread; default 3.
	Z float64 `yaml:"z"`
	// MinBytes is the fewest bytes (in the hour, or in one call) that can
	// fire; default 10 MiB.
	MinBytes uint64 `yaml:"min_bytes"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{Ratio: 10, EventRatio: 8, Z: 3, MinBytes: 10 << 20}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if !(c.Ratio >= 1) {
		errs = append(errs, fmt.Errorf("ratio must be at least 1, got %v", c.Ratio))
	}
	if !(c.EventRatio >= 1) {
		errs = append(errs, fmt.Errorf("event_ratio must be at least 1, got %v", c.EventRatio))
	}
	if !(c.Z >= 0) {
		errs = append(errs, fmt.Errorf("z must not be negative, got %v", c.Z))
	}
	if c.MinBytes == 0 {
		errs = append(errs, fmt.Errorf("min_bytes must be positive"))
	}
	return errs
}

// Detector is the exfiltration-volume detector.
type Detector struct{ cfg Config }

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector { return &Detector{cfg: cfg} }

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// seasonal is a busy hour's calls by the seasonal rate at the hour
// starting at hour; weekly by the last week's hourly counts.
func (d *Detector) seasonal(m *baseline.Model, hour time.Time) float64 {
	how := baseline.HourOfWeek(hour)
	c := m.Centre(how)
	return c + d.cfg.Z*max(m.Spread(how), math.Sqrt(c))
}

func (d *Detector) weekly(p *baseline.Profile, hour time.Time) float64 {
	mean, sd, _ := p.HourlyStats(hour)
	return mean + d.cfg.Z*sd
}

// meanBound bounds the mean call's bytes from the quantiles.
func meanBound(q *baseline.QuantileModel) float64 {
	return 0.5*float64(q.P50) + 0.4*float64(q.P90) + 0.09*float64(q.P99) + 0.01*float64(q.Max)
}

// threshold is T for a busy hour of calls calls.
func (d *Detector) threshold(calls, mean, largest float64) (e, t float64) {
	e = max(calls*mean, largest)
	return e, max(float64(d.cfg.MinBytes), d.cfg.Ratio*e)
}

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	w := in.Window.BytesOut
	minBytes := d.cfg.MinBytes
	if w < minBytes || in.Learning {
		return dst // also every event of a source that logs no sizes
	}
	m := in.Profile.Model()
	if m == nil || m.BytesOut.Count == 0 {
		return dst // no size scale: no rebuild yet, or one over no calls
	}
	s := in.Event.BytesOut
	hourStart := time.Unix(in.Window.Hour*3600, 0).UTC()
	largest, mean := float64(m.BytesOut.Max), meanBound(&m.BytesOut)
	calls := d.seasonal(m, hourStart)
	e, t := d.threshold(calls, mean, largest)
	if float64(w) >= t || s >= minBytes {
		// Only now is the week's spread worth its 168-hour scan: it can
		// only raise the threshold.
		calls = max(calls, d.weekly(in.Profile, hourStart))
		e, t = d.threshold(calls, mean, largest)
	}
	prev := float64(w - min(s, w))
	if prev >= t {
		return dst // this hour was reported at an earlier event
	}
	hour := float64(w) >= t
	call := s >= minBytes && float64(s) >= d.cfg.EventRatio*largest
	if !hour && !call {
		return dst
	}
	return append(dst, d.finding(in, hourStart, calls, mean, e, largest, hour, call))
}

func (d *Detector) finding(in *detectors.Input, hourStart time.Time, calls, mean, e, largest float64, hour, call bool) schemas.Finding {
	ev := in.Event
	w, s := float64(in.Window.BytesOut), float64(ev.BytesOut)
	r := ratio(w, e)
	if call {
		r = max(r, ratio(s, largest))
	}
	score := min(100, max(0, 40+20*math.Log10(r)))
	sev := schemas.SeverityMedium
	if score >= 80 {
		sev = schemas.SeverityHigh
	}
	how := hourStart.Format("Mon 15:00")
	observed := fmt.Sprintf("%s out in %s in the hour from %s", bytes(w), plural(in.Window.Count, "call"),
		hourStart.Format("2006-01-02 15:00 UTC"))
	if call {
		observed += fmt.Sprintf(", %s in one call (%s)", bytes(s), ev.Action)
	}
	expected := fmt.Sprintf("a busy %s hour carries at most %s (%.0f calls × at most %s on average); largest call seen %s",
		how, bytes(e), calls, bytes(mean), bytes(largest))
	explanation := observed
	if hour {
		explanation += fmt.Sprintf(": %s what a busy %s hour carries", times(ratio(w, e)), how)
	}
	if call {
		explanation += fmt.Sprintf("; that call is %s the largest seen", times(ratio(s, largest)))
	}
	return schemas.Finding{
		ID:          schemas.FindingID(Name, ev.Identity.ID, strconv.FormatInt(in.Window.Hour, 10)),
		Detector:    Name,
		Identity:    ev.Identity,
		Severity:    sev,
		Score:       int(score + 0.5),
		Title:       "Unusual data volume sent to " + ev.Identity.ID,
		Explanation: explanation + "; baseline: " + expected,
		Technique:   "T1567",
		EventIDs:    []string{ev.ID},
		FirstSeen:   ev.Time,
		LastSeen:    ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternSurge,
			Observed: observed,
			Baseline: expected,
		},
	}
}

// times says how many times a reference an observation is.
func times(r float64) string {
	if math.IsInf(r, 1) {
		return "far above"
	}
	return strconv.FormatFloat(r, 'f', 0, 64) + "×"
}

func plural(n uint32, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.FormatUint(uint64(n), 10) + " " + noun + "s"
}

// ratio is x/y, +Inf for y = 0.
func ratio(x, y float64) float64 {
	if y <= 0 {
		return math.Inf(1)
	}
	return x / y
}

// bytes formats a size with binary units.
func bytes(b float64) string {
	const units = "KMGTPE"
	if b < 1024 {
		return strconv.FormatFloat(b, 'f', 0, 64) + " B"
	}
	i := -1
	for b >= 1024 && i < len(units)-1 {
		b /= 1024
		i++
	}
	return strconv.FormatFloat(b, 'f', 1, 64) + " " + units[i:i+1] + "iB"
}
