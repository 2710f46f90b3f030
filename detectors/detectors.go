package detectors

import (
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/schemas"
)

// Input is what a detector sees for one event. Profile is the identity's
// baseline before this event; Window already counts this event.
type Input struct {
	Event   *schemas.Event
	Profile *baseline.Profile
	Window  baseline.Window
	// Learning is true while the identity is in its learning period: it has
	// too little history for deviations to mean anything.
	Learning bool
	// Now is the processing time (the engine's clock), for rules that compare
	// event time with it.
	Now time.Time
}

// Detector looks at one event at a time.
type Detector interface {
	// Name is the stable detector id used in findings and metrics.
	Name() string
	// Detect appends findings about in to dst and returns it. It is called
	// from one goroutine at a time and must not retain in.
	Detect(in *Input, dst []schemas.Finding) []schemas.Finding
}

// Learning says how much history an identity needs before detectors trust
// its baseline: both a minimum age and a minimum number of events, because a
// chatty service learns in hours while a nightly job needs days.
type Learning struct {
	MinAge    time.Duration `yaml:"min_age"`
	MinEvents uint64        `yaml:"min_events"`
}

// DefaultLearning suits long-running services: one day and 50 events.
var DefaultLearning = Learning{MinAge: 24 * time.Hour, MinEvents: 50}

// InLearning reports whether p is still learning at event time t.
func (l Learning) InLearning(p *baseline.Profile, t time.Time) bool {
	return p.Events < l.MinEvents || t.Sub(p.FirstSeen) < l.MinAge
}

// NewInput is the Input for ev on p: the window counts ev, the profile does
// not yet.
func NewInput(p *baseline.Profile, ev *schemas.Event, l Learning, now time.Time) Input {
	w := p.Window(ev.Time.Time)
	w.Count++
	switch ev.Outcome.Result {
	case schemas.ResultDenied:
		w.Denied++
	case schemas.ResultFailure:
		w.Failures++
	}
	w.BytesOut += ev.BytesOut
	return Input{Event: ev, Profile: p, Window: w, Learning: l.InLearning(p, ev.Time.Time), Now: now}
}
