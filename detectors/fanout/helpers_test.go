package fanout_test

import (
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/schemas"
)

// profileOf is what the cache would hold for id after evs (in time order)
// and a rebuild at through: the events folded online, then the baseline the
// builder computes from their hourly and value rollups applied, with class.
// Without events it is a profile of class with nothing learned.
func profileOf(id schemas.Identity, class string, evs []schemas.Event, through time.Time) *baseline.Profile {
	classes := baseline.DefaultClasses()
	p := &baseline.Profile{Identity: id}
	p.Apply(&baseline.Baseline{Identity: id, Class: class}, classes)
	h := &baseline.History{Identity: id}
	values := map[[2]string]*baseline.ValueRollup{}
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
		switch ev.Outcome.Result {
		case schemas.ResultDenied:
			r.Denied++
		case schemas.ResultFailure:
			r.Failures++
		}
		for d, v := range baseline.Values(ev) {
			if v == "" {
				continue
			}
			k := [2]string{baseline.Dim(d).String(), v}
			vr := values[k]
			if vr == nil {
				vr = &baseline.ValueRollup{Dim: baseline.Dim(d), Value: v, FirstSeen: ev.Time.Time}
				values[k] = vr
			}
			vr.LastSeen = ev.Time.Time
			vr.Count++
		}
	}
	for _, vr := range values {
		h.Values = append(h.Values, *vr)
	}
	if len(h.Hours) > 0 {
		b := baseline.Build(h, baseline.BuildOptions{Now: through, DataThrough: through})
		b.Class = class
		p.Apply(b, classes)
	}
	return p
}
