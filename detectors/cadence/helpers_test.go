package cadence_test

import (
	"slices"
	"time"

	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/schemas"
)

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
			evs = append(evs, detectortest.EventOf(id, s.Add(time.Duration(i)*20*time.Minute/time.Duration(n)), "s3:PutObject"))
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
