// Package detectortest builds baselines and inputs for detector tests: a
// history of events folded into a Profile, and the Input the engine would
// give a detector for the next event.
package detectortest

import (
	"fmt"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// Identity is the identity test events belong to.
var Identity = schemas.Identity{ID: "aws:role/111122223333/etl", Kind: schemas.KindRole}

// Event returns an event of Identity at t with action and source ip.
func Event(t time.Time, action, ip string) schemas.Event {
	return schemas.Event{
		ID: fmt.Sprintf("ev-%d-%s", t.UnixNano(), action), Time: schemas.At(t), Identity: Identity,
		Action: action, Actor: schemas.Actor{IP: ip}, Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
	}
}

// History folds perHour events per hour for hours hours before end into a
// new profile, cycling through actions, from ip.
func History(end time.Time, hours, perHour int, ip string, actions ...string) *baseline.Profile {
	p := &baseline.Profile{Identity: Identity}
	start := end.Add(-time.Duration(hours) * time.Hour)
	n := 0
	for h := range hours {
		for i := range perHour {
			t := start.Add(time.Duration(h)*time.Hour + time.Duration(i)*time.Hour/time.Duration(perHour+1))
			ev := Event(t, actions[n%len(actions)], ip)
			p.Observe(&ev)
			n++
		}
	}
	return p
}

// Input is what the engine would hand a detector for ev on p.
func Input(p *baseline.Profile, ev *schemas.Event) *detectors.Input {
	in := detectors.NewInput(p, ev, ev.Time.Time)
	return &in
}
