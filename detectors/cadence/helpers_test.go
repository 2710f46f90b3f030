package cadence_test

import (
	"slices"
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

// jitter is a deterministic start-up delay of run k, within ±5 minutes
// and irregular.
func jitter(k int) time.Duration {
	return time.Duration((k*7919+k*k*104729)%601-300) * time.Second
}

// runs returns the events of a job that runs at each time in starts: n
// events over twenty minutes.
func runs(id schemas.Identity, starts []time.Time, n int) []schemas.Event {
	var evs []schemas.Event
	for _, s := range starts {
		for i := range n {
			evs = append(evs, eventOf(id, s.Add(time.Duration(i)*20*time.Minute/time.Duration(n)), "s3:PutObject"))
		}
	}
	return evs
}

// daily returns the start times of a job run every day from day first to
// day last (exclusive) after origin at hour:minute plus the day's jitter, on
// the days keep accepts.
func daily(origin time.Time, first, last, hour, minute int, keep func(time.Time) bool) []time.Time {
	var ts []time.Time
	for k := first; k < last; k++ {
		t := origin.Add(time.Duration(k)*24*time.Hour + time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute + jitter(k))
		if keep == nil || keep(t) {
			ts = append(ts, t)
		}
	}
	return ts
}

func sorted(ts []time.Time) []time.Time {
	slices.SortFunc(ts, time.Time.Compare)
	return ts
}

// sixHourly returns the starts of a job run every six hours at ten past,
// runs first to last (exclusive) after origin.
func sixHourly(first, last int) []time.Time {
	var ts []time.Time
	for k := first; k < last; k++ {
		ts = append(ts, origin.Add(time.Duration(k)*6*time.Hour+10*time.Minute+jitter(k)))
	}
	return ts
}
