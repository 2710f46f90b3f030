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
	// Cohort is the baseline of the identity's cohort, nil when it has none
	// (yet); Profile.Model() is nil before the identity's first rebuild.
	Cohort *baseline.CohortModel
	// Relearning is true shortly after a deploy of the identity's workload,
	// when new values are expected.
	Relearning bool
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

// NewInput is the Input for ev on p: the window counts ev, the profile does
// not yet. The learning period is the one of the identity's class.
func NewInput(p *baseline.Profile, ev *schemas.Event, now time.Time) Input {
	w := p.Window(ev.Time.Time)
	w.Count++
	switch ev.Outcome.Result {
	case schemas.ResultDenied:
		w.Denied++
	case schemas.ResultFailure:
		w.Failures++
	}
	w.BytesOut += ev.BytesOut
	if ev.Action != "" && !p.Knows(baseline.DimAction, ev.Action) {
		w.NewActions++
	}
	if ev.Target.Peer != "" && !p.Knows(baseline.DimPeer, ev.Target.Peer) {
		w.NewPeers++
	}
	return Input{Event: ev, Profile: p, Window: w, Learning: p.Learning(ev.Time.Time),
		Relearning: p.Relearning(ev.Time.Time), Now: now}
}
