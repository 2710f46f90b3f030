package dormant_test

import (
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/schemas"
)

// eventOf is a detectortest event of identity id.
func eventOf(id schemas.Identity, t time.Time, action string) schemas.Event {
	ev := detectortest.Event(t, action, "10.20.1.7")
	ev.Identity = id
	return ev
}

// schedule returns one event at every hour in [from, to) for which active
// says yes, a few minutes into the hour.
func schedule(id schemas.Identity, from, to time.Time, active func(time.Time) bool) []schemas.Event {
	var evs []schemas.Event
	for t := from.Truncate(time.Hour); t.Before(to); t = t.Add(time.Hour) {
		if active(t) {
			evs = append(evs, eventOf(id, t.Add(7*time.Minute), "s3:GetObject"), eventOf(id, t.Add(37*time.Minute), "s3:PutObject"))
		}
	}
	return evs
}

// profileOf is what the cache would hold for id after evs (in time order)
// and a rebuild at through: the events folded online, then the baseline the
// builder computes from their hourly rollups applied, with class (or the
// default class when empty).
func profileOf(id schemas.Identity, class string, evs []schemas.Event, through time.Time) *baseline.Profile {
	classes := baseline.DefaultClasses()
	p := &baseline.Profile{Identity: id}
	p.Apply(&baseline.Baseline{Identity: id, Class: class}, classes)
	h := &baseline.History{Identity: id}
	for i := range evs {
		ev := &evs[i]
		p.Observe(ev)
		hour := ev.Time.Unix() / 3600
		if n := len(h.Hours); n == 0 || h.Hours[n-1].Hour != hour {
			h.Hours = append(h.Hours, baseline.HourRollup{Hour: hour, First: ev.Time.Time})
		}
		r := &h.Hours[len(h.Hours)-1]
		r.Events++
		r.Last = ev.Time.Time
	}
	if len(h.Hours) > 0 {
		b := baseline.Build(h, baseline.BuildOptions{Now: through, DataThrough: through})
		b.Class = class
		p.Apply(b, classes)
	}
	return p
}
