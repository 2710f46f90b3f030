package baseline

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// mon is a Monday, 00:00 UTC.
var mon = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// row is an hour rollup of n events whose first event is at t and last ten
// minutes later.
func row(t time.Time, n uint64) HourRollup {
	return HourRollup{Hour: t.Unix() / 3600, Events: n, First: t, Last: t.Add(10 * time.Minute)}
}

// naiveMedian sorts a copy of x and returns its middle value, or the mean of
// the middle two.
func naiveMedian(x []float64) float64 {
	c := append([]float64(nil), x...)
	sort.Float64s(c)
	if len(c)%2 == 1 {
		return c[len(c)/2]
	}
	return (c[len(c)/2-1] + c[len(c)/2]) / 2
}

func naiveMAD(x []float64) float64 {
	m := naiveMedian(x)
	d := make([]float64, len(x))
	for i, v := range x {
		d[i] = math.Abs(v - m)
	}
	return 1.4826 * naiveMedian(d)
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// weekHour is the hour of week of t computed from its weekday.
func weekHour(t time.Time) int { return (int(t.Weekday())+6)%7*24 + t.Hour() }

// officeHours is a job active Mon–Fri 09:00–17:00 for weeks weeks, with
// 10+week events an hour.
func officeHours(weeks int) []HourRollup {
	var hs []HourRollup
	for w := range weeks {
		for d := range 5 {
			for hod := 9; hod < 17; hod++ {
				t := mon.AddDate(0, 0, 7*w+d).Add(time.Duration(hod) * time.Hour)
				hs = append(hs, row(t.Add(time.Minute), uint64(10+w)))
			}
		}
	}
	return hs
}

// expectedRate computes the rate profile the slow way: every hour of the
// span, its hour of week from its weekday, and per hour of week the samples
// or, with fewer than 3, those of its hour of day (or of the whole span).
func expectedRate(hs []HourRollup) Rate {
	counts := map[int64]float64{}
	for _, r := range hs {
		counts[r.Hour] += float64(r.Events)
	}
	first, last := hs[0].Hour, hs[len(hs)-1].Hour
	byWeek := map[int][]float64{}
	byDay := map[int][]float64{}
	var all []float64
	var sum float64
	for h := first; h <= last; h++ {
		t := time.Unix(h*3600, 0).UTC()
		byWeek[weekHour(t)] = append(byWeek[weekHour(t)], counts[h])
		byDay[t.Hour()] = append(byDay[t.Hour()], counts[h])
		all = append(all, counts[h])
		sum += counts[h]
	}
	r := Rate{Hours: int(last - first + 1), Mean: sum / float64(last-first+1)}
	for w := range HoursPerWeek {
		x := byWeek[w]
		if len(x) < 3 {
			r.Pooled = true
			x = byDay[w%24]
			if len(x) == 0 {
				x = all
			}
		}
		r.Centre[w], r.Spread[w] = naiveMedian(x), naiveMAD(x)
	}
	return r
}

func sameRate(t *testing.T, got, want Rate) {
	t.Helper()
	if got.Hours != want.Hours || got.Pooled != want.Pooled || !near(got.Mean, want.Mean) {
		t.Errorf("rate: hours %d pooled %v mean %v, want %d %v %v", got.Hours, got.Pooled, got.Mean, want.Hours, want.Pooled, want.Mean)
	}
	for w := range HoursPerWeek {
		if !near(got.Centre[w], want.Centre[w]) || !near(got.Spread[w], want.Spread[w]) {
			t.Errorf("hour of week %d: centre %v spread %v, want %v %v", w, got.Centre[w], got.Spread[w], want.Centre[w], want.Spread[w])
		}
	}
}

func TestRate(t *testing.T) {
	const mon10, sat10, mon03 = 10, 5*24 + 10, 3
	tests := []struct {
		name   string
		hours  []HourRollup
		hours0 int
		pooled bool
		// Spot checks computed by hand.
		centre map[int]float64
		spread map[int]float64
		mean   float64
	}{
		{
			// Weeks 0–3 give Monday 10:00 the samples 10, 11, 12, 13:
			// median 11.5, deviations 1.5 .5 .5 1.5, MAD 1. Saturday is
			// silent all four weeks. Monday 03:00 has the three samples of
			// weeks 1–3 (the span starts Monday 09:00 of week 0).
			name:   "4 weeks by hour of week",
			hours:  officeHours(4),
			hours0: 3*168 + 4*24 + 16 - 9 + 1,
			pooled: false,
			centre: map[int]float64{mon10: 11.5, sat10: 0, mon03: 0},
			spread: map[int]float64{mon10: 1.4826, sat10: 0, mon03: 0},
			mean:   (10 + 11 + 12 + 13) * 40 / float64(3*168+4*24+8),
		},
		{
			// One week: Monday 09:00 to Friday 16:00. Every hour of week
			// has at most one sample, so the profile pools by hour of day:
			// Saturday 10:00 takes the five weekday 10:00 hours.
			name:   "1 week pooled by hour of day",
			hours:  officeHours(1),
			hours0: 4*24 + 8,
			pooled: true,
			centre: map[int]float64{mon10: 10, sat10: 10, mon03: 0},
			spread: map[int]float64{mon10: 0, sat10: 0, mon03: 0},
			mean:   400 / float64(4*24+8),
		},
		{
			// Three hours: 10:00, 11:00, 12:00 with 1, 5, 3 events. An hour
			// of day the span misses takes the whole span: median 3,
			// deviations 2 2 0, MAD 2.
			name:   "less than a day",
			hours:  []HourRollup{row(mon.Add(10*time.Hour), 1), row(mon.Add(11*time.Hour), 5), row(mon.Add(12*time.Hour), 3)},
			hours0: 3,
			pooled: true,
			centre: map[int]float64{mon10: 1, sat10: 1, mon03: 3, 11: 5},
			spread: map[int]float64{mon10: 0, mon03: 2 * 1.4826},
			mean:   3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Build(&History{Hours: tt.hours}, BuildOptions{})
			r := b.Rate
			if r.Hours != tt.hours0 || r.Pooled != tt.pooled || !near(r.Mean, tt.mean) {
				t.Errorf("hours %d pooled %v mean %v, want %d %v %v", r.Hours, r.Pooled, r.Mean, tt.hours0, tt.pooled, tt.mean)
			}
			for w, c := range tt.centre {
				if !near(r.Centre[w], c) {
					t.Errorf("centre[%d] = %v, want %v", w, r.Centre[w], c)
				}
			}
			for w, s := range tt.spread {
				if !near(r.Spread[w], s) {
					t.Errorf("spread[%d] = %v, want %v", w, r.Spread[w], s)
				}
			}
			sameRate(t, r, expectedRate(tt.hours))
		})
	}
}

// TestRatePooledThreshold checks that hours of week switch from pooled to
// their own samples at three weeks.
func TestRatePooledThreshold(t *testing.T) {
	for _, tt := range []struct {
		hours  int
		pooled bool
	}{{503, true}, {504, false}, {505, false}, {24, true}} {
		var hs []HourRollup
		for h := range tt.hours {
			hs = append(hs, row(mon.Add(time.Duration(h)*time.Hour+5*time.Hour), uint64(1+h%7)))
		}
		b := Build(&History{Hours: hs}, BuildOptions{})
		if b.Rate.Pooled != tt.pooled {
			t.Errorf("%d hours: pooled %v, want %v", tt.hours, b.Rate.Pooled, tt.pooled)
		}
		sameRate(t, b.Rate, expectedRate(hs))
	}
}

// TestRateOutlier: one hour of 100,000 events among hours of about 100
// moves the median of its hour of week by half an event, where a mean would
// move by 25,000.
func TestRateOutlier(t *testing.T) {
	var hs []HourRollup
	for h := range 4 * 168 {
		n := uint64(100 + h/168)
		if h == 2*168+50 {
			n = 100000
		}
		hs = append(hs, row(mon.Add(time.Duration(h)*time.Hour), n))
	}
	b := Build(&History{Hours: hs}, BuildOptions{})
	// Hour of week 50: samples 100, 101, 100000, 103. Median (101+103)/2;
	// deviations 2 1 99898 1, MAD 1.5.
	if c, s := b.Rate.Centre[50], b.Rate.Spread[50]; !near(c, 102) || !near(s, 1.5*1.4826) {
		t.Errorf("outlier hour: centre %v spread %v, want 102 %v", c, s, 1.5*1.4826)
	}
	// Any other: 100 101 102 103, median 101.5, MAD 1.
	if c, s := b.Rate.Centre[51], b.Rate.Spread[51]; !near(c, 101.5) || !near(s, 1.4826) {
		t.Errorf("clean hour: centre %v spread %v, want 101.5 1.4826", c, s)
	}
	if b.Rate.Pooled || b.Rate.Hours != 672 {
		t.Errorf("pooled %v hours %d", b.Rate.Pooled, b.Rate.Hours)
	}
	sameRate(t, b.Rate, expectedRate(hs))
}

func TestKnownAndStability(t *testing.T) {
	// Active at noon on ten consecutive days; DataThrough is the start of
	// day 10.
	var hs []HourRollup
	for d := range 10 {
		hs = append(hs, row(mon.AddDate(0, 0, d).Add(12*time.Hour), 5))
	}
	day := func(d int, hm time.Duration) time.Time { return mon.AddDate(0, 0, d).Add(hm) }
	through := day(10, 0)
	v := func(dim Dim, value string, first time.Time, n uint64) ValueRollup {
		return ValueRollup{Dim: dim, Value: value, FirstSeen: first, LastSeen: day(9, 12*time.Hour), Count: n}
	}
	h := &History{Hours: hs, Values: []ValueRollup{
		v(DimRegion, "eu-west-1", day(0, 12*time.Hour), 50),
		v(DimAction, "a", day(0, 12*time.Hour), 10),
		v(DimAction, "b", day(0, 13*time.Hour), 5),
		v(DimAction, "c", day(3, 0), 5), // exactly 7 days before through: counts
		v(DimAction, "d", day(5, 9*time.Hour), 1),
		v(DimAction, "e", day(5, 20*time.Hour), 7), // same day as d
		v(Dim(200), "ignored", day(1, 0), 1),
	}}
	for d := range 10 {
		h.Values = append(h.Values, v(DimResource, fmt.Sprintf("r%d", d), day(d, 12*time.Hour), 1))
	}
	// One value first seen 29 days before through: outside both windows.
	h.Values = append(h.Values, v(DimUserAgent, "old", through.Add(-29*24*time.Hour), 1))

	b := Build(h, BuildOptions{DataThrough: through})
	want := []struct {
		dim    string
		values []string
		st     Stability
	}{
		// Ten days observed; the actions grew on days 3 and 5: 1 − 2/9.
		{"action", []string{"a", "e", "b", "c", "d"}, Stability{Size: 5, NewLast7d: 3, NewLast28d: 5, LastGrew: day(5, 20*time.Hour), Score: 1 - 2.0/9}},
		// A resource a day: grew on all nine days after the first.
		{"resource", []string{"r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"}, Stability{Size: 10, NewLast7d: 7, NewLast28d: 10, LastGrew: day(9, 12*time.Hour), Score: 0}},
		// First seen before the first active day: no growth counted.
		{"user_agent", []string{"old"}, Stability{Size: 1, LastGrew: through.Add(-29 * 24 * time.Hour), Score: 1}},
		{"region", []string{"eu-west-1"}, Stability{Size: 1, NewLast7d: 0, NewLast28d: 1, LastGrew: day(0, 12*time.Hour), Score: 1}},
	}
	if len(b.Known) != len(want) {
		t.Fatalf("%d known sets, want %d: %+v", len(b.Known), len(want), b.Known)
	}
	// Known sets come in Dim order.
	order := map[string]int{"action": 0, "resource": 1, "user_agent": 2, "region": 3}
	for _, w := range want {
		ks := b.Known[order[w.dim]]
		if ks.Dim != w.dim {
			t.Errorf("set %d is %q, want %q", order[w.dim], ks.Dim, w.dim)
			continue
		}
		var got []string
		for _, kv := range ks.Values {
			got = append(got, kv.Value)
		}
		if !reflect.DeepEqual(got, w.values) {
			t.Errorf("%s values %v, want %v", w.dim, got, w.values)
		}
		if st := ks.Stability; st.Size != w.st.Size || st.NewLast7d != w.st.NewLast7d || st.NewLast28d != w.st.NewLast28d ||
			!st.LastGrew.Equal(w.st.LastGrew) || !near(st.Score, w.st.Score) {
			t.Errorf("%s stability %+v, want %+v", w.dim, st, w.st)
		}
	}
	if kv := b.Known[0].Values[1]; kv.Count != 7 || !kv.FirstSeen.Equal(day(5, 20*time.Hour)) || !kv.LastSeen.Equal(day(9, 12*time.Hour)) {
		t.Errorf("action e = %+v", kv)
	}

	// Capped: the most used values, the size uncapped.
	b = Build(h, BuildOptions{DataThrough: through, MaxValues: 2})
	if ks := b.Known[0]; len(ks.Values) != 2 || ks.Values[0].Value != "a" || ks.Values[1].Value != "e" || ks.Stability.Size != 5 {
		t.Errorf("capped action set %+v", ks)
	}
	if ks := b.Known[1]; len(ks.Values) != 2 || cap(ks.Values) != 2 || ks.Stability.Size != 10 || ks.Stability.Score != 0 {
		t.Errorf("capped resource set %+v", ks)
	}
}

// TestKnownDuplicates: repeated (dimension, value) rows merge.
func TestKnownDuplicates(t *testing.T) {
	t0 := mon.Add(time.Hour)
	h := &History{
		Hours: []HourRollup{row(t0, 1)},
		Values: []ValueRollup{
			{Dim: DimPeer, Value: "x", FirstSeen: t0.Add(time.Minute), LastSeen: t0.Add(2 * time.Minute), Count: 2},
			{Dim: DimPeer, Value: "y", FirstSeen: t0, LastSeen: t0, Count: 2},
			{Dim: DimPeer, Value: "x", FirstSeen: t0, LastSeen: t0.Add(time.Minute), Count: 1},
		},
	}
	b := Build(h, BuildOptions{})
	want := []KnownValue{
		{Value: "x", FirstSeen: t0, LastSeen: t0.Add(2 * time.Minute), Count: 3},
		{Value: "y", FirstSeen: t0, LastSeen: t0, Count: 2},
	}
	if len(b.Known) != 1 || b.Known[0].Dim != "peer" || !reflect.DeepEqual(b.Known[0].Values, want) || b.Known[0].Stability.Size != 2 {
		t.Errorf("known %+v, want peer %+v", b.Known, want)
	}
}

func TestQuantiles(t *testing.T) {
	tests := []struct {
		name  string
		hists []Hist
		want  Quantiles
	}{
		{"empty", nil, Quantiles{}},
		// 50 in bucket 0 (edge 1), 40 in bucket 3 (edge 15), 10 in bucket 9
		// (edge 1023), over two hours. Ranks 50, 90, 99 are the last of
		// buckets 0 and 3 and inside bucket 9.
		{"ranks at bucket boundaries", []Hist{{0: 30, 3: 40}, {0: 20, 9: 10}}, Quantiles{Count: 100, P50: 1, P90: 15, P99: 1023, Max: 1023}},
		// n = 10: rank ceil(9.9) = 10 is the one observation in bucket 5.
		{"p99 is the top", []Hist{{0: 9, 5: 1}}, Quantiles{Count: 10, P50: 1, P90: 1, P99: 63, Max: 63}},
		// n = 3: ranks ceil(1.5) = 2, ceil(2.7) = 3, ceil(2.97) = 3.
		{"fractional ranks", []Hist{{1: 1}, {2: 1}, {4: 1}}, Quantiles{Count: 3, P50: 7, P90: 31, P99: 31, Max: 31}},
		// n = 2: rank ceil(1) = 1 for the median.
		{"two", []Hist{{6: 1, 7: 1}}, Quantiles{Count: 2, P50: 127, P90: 255, P99: 255, Max: 255}},
		// Buckets from 63 up hold values up to the largest uint64.
		{"top bucket", []Hist{{63: 1, 64: 1}}, Quantiles{Count: 2, P50: math.MaxUint64, P90: math.MaxUint64, P99: math.MaxUint64, Max: math.MaxUint64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &History{}
			for i, hist := range tt.hists {
				r := row(mon.Add(time.Duration(i)*time.Hour), 1)
				r.BytesOutHist, r.DurationHist = hist, hist
				h.Hours = append(h.Hours, r)
			}
			b := Build(h, BuildOptions{})
			if b.BytesOut != tt.want || b.Duration != tt.want {
				t.Errorf("bytes out %+v duration %+v, want %+v", b.BytesOut, b.Duration, tt.want)
			}
			if b.BytesIn != (Quantiles{}) {
				t.Errorf("bytes in %+v, want none", b.BytesIn)
			}
		})
	}
	// From observed values: 1000 bytes is in bucket 9 (511–1022, edge
	// 1023); 1023 is the first value of bucket 10 (edge 2047).
	hist := Hist{}
	for _, x := range []float64{0, 1000, 1000, 1023} {
		hist[Bucket(x)]++
	}
	r := row(mon, 4)
	r.BytesInHist = hist
	if q := Build(&History{Hours: []HourRollup{r}}, BuildOptions{}).BytesIn; q != (Quantiles{Count: 4, P50: 1023, P90: 2047, P99: 2047, Max: 2047}) {
		t.Errorf("from values: %+v", q)
	}
}

func TestActivityOutcomeAndSeen(t *testing.T) {
	// Active at day 0 10:00, 11:00, 15:00, 16:00 and day 1 16:00; the last
	// event at day 1 16:20; DataThrough day 2 02:00.
	at := func(h int) time.Time { return mon.Add(time.Duration(10+h) * time.Hour) }
	hs := []HourRollup{row(at(0).Add(5*time.Minute), 10), row(at(1), 20), row(at(5), 1), row(at(6), 4), row(at(30), 5)}
	hs[1].Denied, hs[1].Failures = 3, 2
	hs[3].Denied, hs[3].Failures = 4, 1 // inconsistent: counts as no success
	hs[4].Last = at(30).Add(20 * time.Minute)
	through := mon.Add(50 * time.Hour)
	b := Build(&History{Identity: schemas.Identity{ID: "id"}, Hours: hs}, BuildOptions{DataThrough: through, Now: through.Add(time.Minute), Version: 7})

	a := b.Activity
	// Gaps: 11:00→15:00 is 3 silent hours, day 0 16:00 → day 1 16:00 23.
	want := Activity{ActiveHours: 5, LongestGap: 23 * 3600, MedianGap: (3 + 23) * 3600 / 2, Dormant: (9*60 + 40) * 60}
	want.HourOfDay[10], want.HourOfDay[11], want.HourOfDay[15], want.HourOfDay[16] = 0.5, 0.5, 0.5, 1
	if a != want {
		t.Errorf("activity %+v, want %+v", a, want)
	}
	if !b.FirstSeen.Equal(at(0).Add(5*time.Minute)) || !b.LastSeen.Equal(at(30).Add(20*time.Minute)) || b.Events != 40 {
		t.Errorf("first %v last %v events %d", b.FirstSeen, b.LastSeen, b.Events)
	}
	wantOut := OutcomeProfile{Success: 10 + 15 + 1 + 0 + 5, Failure: 3, Denied: 7, FailureRatio: 3.0 / 40, DeniedRatio: 7.0 / 40}
	if b.Outcome != wantOut {
		t.Errorf("outcome %+v, want %+v", b.Outcome, wantOut)
	}
	if b.Identity.ID != "id" || b.Version != 7 || !b.BuiltAt.Equal(through.Add(time.Minute)) || !b.DataThrough.Equal(through) || b.Class != "" {
		t.Errorf("header %+v %d %v %v %q", b.Identity, b.Version, b.BuiltAt, b.DataThrough, b.Class)
	}

	// Adjacent hours only: no gaps. Never seen: nothing dormant.
	b = Build(&History{Hours: []HourRollup{row(at(0), 1), row(at(1), 1)}}, BuildOptions{DataThrough: at(1)})
	if b.Activity.LongestGap != 0 || b.Activity.MedianGap != 0 || b.Activity.Dormant != 0 {
		t.Errorf("adjacent hours: %+v", b.Activity)
	}
	b = Build(&History{}, BuildOptions{DataThrough: through})
	if b.Activity != (Activity{}) || b.Events != 0 || !b.FirstSeen.IsZero() || b.Recent != nil || b.Known != nil {
		t.Errorf("empty history: %+v", b)
	}
}

func TestRecent(t *testing.T) {
	// One row every 10 hours for 30 days.
	var hs []HourRollup
	for h := 0; h < 30*24; h += 10 {
		r := row(mon.Add(time.Duration(h)*time.Hour), uint64(h+1))
		r.BytesOutHist = Hist{3: 1}
		hs = append(hs, r)
	}
	for _, through := range []time.Time{
		mon.Add(600 * time.Hour),                 // on an hour: 600 is after it
		mon.Add(600*time.Hour + 30*time.Minute),  // in hour 600: 600 is in
		mon.Add(1000 * time.Hour),                // after the last row
		mon.Add(590*time.Hour + time.Nanosecond), // just into hour 590
	} {
		b := Build(&History{Hours: hs}, BuildOptions{DataThrough: through})
		var want []HourRollup
		for _, r := range hs {
			start := time.Unix(r.Hour*3600, 0)
			// The hour overlaps [through − 168 h, through).
			if start.Before(through) && !start.Add(168*time.Hour).Before(through) {
				r.BytesOutHist = nil
				want = append(want, r)
			}
		}
		if !reflect.DeepEqual(b.Recent, want) {
			t.Errorf("through %v: recent hours %v, want %v", through, hoursOf(b.Recent), hoursOf(want))
		}
	}
	b := Build(&History{Hours: hs}, BuildOptions{DataThrough: mon.Add(600*time.Hour + 30*time.Minute)})
	if n := len(b.Recent); n != 17 || b.Recent[n-1].Hour != mon.Add(600*time.Hour).Unix()/3600 || b.Recent[0].Hour != mon.Add(440*time.Hour).Unix()/3600 {
		t.Errorf("recent: %v", hoursOf(b.Recent))
	}
}

func hoursOf(rs []HourRollup) []int64 {
	var out []int64
	for _, r := range rs {
		out = append(out, r.Hour-mon.Unix()/3600)
	}
	return out
}

// TestUnorderedHours: rows out of order, repeated or empty are sorted,
// merged and dropped.
func TestUnorderedHours(t *testing.T) {
	t0 := mon.Add(5 * time.Hour)
	in := []HourRollup{
		row(t0.Add(2*time.Hour), 3),
		{Hour: t0.Unix()/3600 + 1}, // no events
		row(t0.Add(20*time.Minute), 2),
		row(t0, 1),
	}
	in[2].Denied = 1
	in[3].BytesOutHist = Hist{2: 1}
	in[2].BytesOutHist = Hist{4: 1}
	b := Build(&History{Hours: in}, BuildOptions{DataThrough: t0.Add(3 * time.Hour)})
	if b.Activity.ActiveHours != 2 || b.Events != 6 || !b.FirstSeen.Equal(t0) || b.Rate.Hours != 3 || b.Activity.LongestGap != 3600 {
		t.Errorf("active %d events %d first %v rate hours %d gap %v", b.Activity.ActiveHours, b.Events, b.FirstSeen, b.Rate.Hours, b.Activity.LongestGap)
	}
	if len(b.Recent) != 2 || b.Recent[0].Events != 3 || b.Recent[0].Denied != 1 || !b.Recent[0].First.Equal(t0) || !b.Recent[0].Last.Equal(t0.Add(30*time.Minute)) {
		t.Errorf("recent %+v", b.Recent)
	}
	if b.BytesOut.Count != 2 || b.BytesOut.Max != 31 {
		t.Errorf("bytes out %+v", b.BytesOut)
	}
	// The input is untouched.
	if in[3].Events != 1 || in[3].BytesOutHist == nil {
		t.Errorf("input modified: %+v", in[3])
	}
}

func TestIssuance(t *testing.T) {
	t0 := mon.Add(9 * time.Hour)
	m := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }
	iss := func(cred string, at, ttl int) IssuanceRollup {
		return IssuanceRollup{Credential: cred, Issuer: "vault", IssuedAt: m(at), TTL: time.Duration(ttl) * time.Minute}
	}
	// Validity in minutes: a [0,60) b [30,90) c [60,110) then renewed
	// [110,170), e [70,80), d only at 90 (TTL unknown).
	// At 60 a has ended as c starts: b c. At 70: b c e = 3. At 90 b ends
	// as d is valid: c d. At 110: c alone.
	all := []IssuanceRollup{iss("a", 0, 60), iss("b", 30, 60), iss("c", 60, 60), iss("e", 70, 10), iss("d", 90, 0), iss("c", 110, 60)}
	tests := []struct {
		name    string
		iss     []IssuanceRollup
		through time.Time
		want    *IssuanceProfile
	}{
		{"none", nil, m(0), nil},
		// TTLs 60 60 60 10 60: median 60 min. Gaps 30 30 10 20 20: median 20.
		{"sweep", all, m(115), &IssuanceProfile{Issued: 6, TTL: 3600, Interval: 1200, MaxConcurrent: 3, Concurrent: 1}},
		{"at a boundary", all, m(60), &IssuanceProfile{Issued: 6, TTL: 3600, Interval: 1200, MaxConcurrent: 3, Concurrent: 2}},
		{"at an unknown ttl", all, m(90), &IssuanceProfile{Issued: 6, TTL: 3600, Interval: 1200, MaxConcurrent: 3, Concurrent: 2}},
		// The same issuance twice counts once.
		{"duplicate", []IssuanceRollup{iss("x", 0, 60), iss("x", 0, 60), iss("y", 10, 0), iss("y", 10, 0)}, m(10),
			&IssuanceProfile{Issued: 4, TTL: 3600, Interval: 0, MaxConcurrent: 2, Concurrent: 2}},
		// Without credential ids every issuance is its own credential.
		{"anonymous", []IssuanceRollup{iss("", 0, 60), iss("", 0, 60), iss("", 30, 0)}, m(200),
			&IssuanceProfile{Issued: 3, TTL: 3600, Interval: 900, MaxConcurrent: 3, Concurrent: 0}},
		// Back to back: one ends as the next begins.
		{"back to back", []IssuanceRollup{iss("x", 0, 60), iss("y", 60, 60), iss("z", 120, 0), iss("w", 120, 30)}, m(120),
			&IssuanceProfile{Issued: 4, TTL: 3600, Interval: 3600, MaxConcurrent: 2, Concurrent: 2}},
		{"unknown ttls", []IssuanceRollup{iss("p", 0, 0), iss("q", 0, 0), iss("r", 1, 0)}, m(1),
			&IssuanceProfile{Issued: 3, TTL: 0, Interval: 30, MaxConcurrent: 2, Concurrent: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Build(&History{Issuances: tt.iss}, BuildOptions{DataThrough: tt.through})
			if !reflect.DeepEqual(b.Issuance, tt.want) {
				t.Errorf("issuance %+v, want %+v", b.Issuance, tt.want)
			}
		})
	}

	// Brute force over distinct credentials with known TTLs: count the
	// intervals holding each second.
	var many []IssuanceRollup
	for i := range 40 {
		many = append(many, iss(fmt.Sprint("k", i), (i*37)%200, 5+(i*13)%50))
	}
	best := 0
	for s := m(0); s.Before(m(300)); s = s.Add(time.Second) {
		n := 0
		for _, r := range many {
			if !s.Before(r.IssuedAt) && s.Before(r.IssuedAt.Add(r.TTL)) {
				n++
			}
		}
		best = max(best, n)
	}
	if p := Build(&History{Issuances: many}, BuildOptions{DataThrough: m(0)}); p.Issuance.MaxConcurrent != best {
		t.Errorf("max concurrent %d, brute force %d", p.Issuance.MaxConcurrent, best)
	}
}

func TestCadence(t *testing.T) {
	// A nightly job started at 02:00 plus a few minutes; runs that last into
	// 03:00 are one run.
	jitter := []int{3, 7, 2, 5, 4, 6, 3, 8, 1, 5, 4, 6, 2, 7}
	var nightly []HourRollup
	for d, j := range jitter {
		start := mon.AddDate(0, 0, d).Add(2*time.Hour + time.Duration(j)*time.Minute)
		nightly = append(nightly, row(start, 20))
		if d%3 == 0 {
			nightly = append(nightly, row(start.Truncate(time.Hour).Add(time.Hour), 5))
		}
	}
	lastRun := mon.AddDate(0, 0, 13).Add(2*time.Hour + 7*time.Minute)
	// Gaps are a day plus the differences of the jitters, in minutes:
	// 4 −5 3 −1 2 −3 5 −7 4 −1 2 −4 5. Median 2; deviations from it
	// 2 7 1 3 0 5 3 9 2 3 0 6 3, median 3.
	wantNightly := &Cadence{Runs: 14, Interval: 86400 + 120, Jitter: 180 * 1.4826, LastRun: lastRun,
		NextExpected: lastRun.Add(86520 * time.Second)}

	var continuous, alternate, irregular, three []HourRollup
	for h := range 7 * 24 {
		continuous = append(continuous, row(mon.Add(time.Duration(h)*time.Hour), 100))
	}
	for h := 0; h < 48; h += 2 { // every other hour: a 2-hour schedule
		alternate = append(alternate, row(mon.Add(time.Duration(h)*time.Hour), 1))
	}
	for _, h := range []int{0, 3, 11, 12, 20, 40, 41, 42, 49, 70} {
		irregular = append(irregular, row(mon.Add(time.Duration(h)*time.Hour), 1))
	}
	for _, d := range []int{0, 1, 2} {
		three = append(three, row(mon.AddDate(0, 0, d), 1))
	}
	last := mon.Add(46 * time.Hour)
	tests := []struct {
		name  string
		hours []HourRollup
		want  *Cadence
	}{
		{"nightly with jitter", nightly, wantNightly},
		{"continuous service", continuous, nil},
		{"every other hour", alternate, &Cadence{Runs: 24, Interval: 7200, Jitter: 0, LastRun: last, NextExpected: last.Add(2 * time.Hour)}},
		{"irregular", irregular, nil},
		{"three runs", three, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Build(&History{Hours: tt.hours}, BuildOptions{}).Cadence
			if (c == nil) != (tt.want == nil) {
				t.Fatalf("cadence %+v, want %+v", c, tt.want)
			}
			if c == nil {
				return
			}
			if c.Runs != tt.want.Runs || !near(c.Interval, tt.want.Interval) || !near(c.Jitter, tt.want.Jitter) ||
				!c.LastRun.Equal(tt.want.LastRun) || !c.NextExpected.Equal(tt.want.NextExpected) {
				t.Errorf("cadence %+v, want %+v", c, tt.want)
			}
		})
	}
	// Runs alternately 2 and 4 hours apart: interval 3 h, MAD 1 h, far
	// more than a tenth of the interval.
	wobbly := []HourRollup{}
	for _, h := range []int{0, 2, 6, 8, 12, 14, 18} {
		wobbly = append(wobbly, row(mon.Add(time.Duration(h)*time.Hour), 1))
	}
	if c := Build(&History{Hours: wobbly}, BuildOptions{}).Cadence; c != nil {
		t.Errorf("wobbly: %+v", c)
	}
}

func TestGraph(t *testing.T) {
	t0 := mon.Add(time.Hour)
	edge := func(v string, n uint64) ValueRollup {
		return ValueRollup{Dim: DimEdge, Value: v, FirstSeen: t0, LastSeen: t0.Add(time.Minute), Count: n}
	}
	h := &History{
		Identity: schemas.Identity{ID: "spiffe://prod.example/ns/pay/sa/api", Kind: schemas.KindWorkload},
		Hours:    []HourRollup{row(t0, 1)},
		Values: []ValueRollup{
			edge("spiffe://prod.example/ns/db/sa/pg SELECT", 50),
			edge("spiffe://prod.example/ns/auth/sa/auth POST /v1/token", 100),
			edge("spiffe://prod.example/ns/cache/sa/redis", 50),
			{Dim: DimPeer, Value: "spiffe://prod.example/ns/db/sa/pg", Count: 50},
		},
		Callers: []string{"spiffe://prod.example/ns/web/sa/c", "spiffe://prod.example/ns/web/sa/a", "spiffe://prod.example/ns/web/sa/b", "spiffe://prod.example/ns/web/sa/a"},
	}
	e := func(peer, route string, n uint64) Edge {
		return Edge{Peer: peer, Route: route, Count: n, FirstSeen: t0, LastSeen: t0.Add(time.Minute)}
	}
	tests := []struct {
		name string
		h    *History
		o    BuildOptions
		want *Graph
	}{
		{"all", h, BuildOptions{}, &Graph{
			TrustDomain: "prod.example",
			FanOut: []Edge{
				e("spiffe://prod.example/ns/auth/sa/auth", "POST /v1/token", 100),
				e("spiffe://prod.example/ns/cache/sa/redis", "", 50),
				e("spiffe://prod.example/ns/db/sa/pg", "SELECT", 50),
			},
			FanIn:   3,
			Callers: []string{"spiffe://prod.example/ns/web/sa/a", "spiffe://prod.example/ns/web/sa/b", "spiffe://prod.example/ns/web/sa/c"},
		}},
		{"capped", h, BuildOptions{MaxEdges: 1, MaxCallers: 2}, &Graph{
			TrustDomain: "prod.example",
			FanOut:      []Edge{e("spiffe://prod.example/ns/auth/sa/auth", "POST /v1/token", 100)},
			FanIn:       3,
			Callers:     []string{"spiffe://prod.example/ns/web/sa/a", "spiffe://prod.example/ns/web/sa/b"},
		}},
		{"callers only", &History{Identity: schemas.Identity{ID: "aws:role/1/x"}, Callers: []string{"z"}},
			BuildOptions{}, &Graph{FanOut: []Edge{}, FanIn: 1, Callers: []string{"z"}}},
		{"none", &History{Identity: h.Identity, Values: h.Values[3:]}, BuildOptions{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := Build(tt.h, tt.o).Graph
			if !reflect.DeepEqual(g, tt.want) {
				t.Errorf("graph %+v, want %+v", g, tt.want)
			}
		})
	}
	// The edge dimension is also a known set.
	if b := Build(h, BuildOptions{}); len(b.Known) != 2 || b.Known[1].Dim != "edge" || b.Known[1].Stability.Size != 3 {
		t.Errorf("known %+v", b.Known)
	}
}

// TestBuildIndependent: a baseline shares nothing with the scratch of later
// builds, and builds run concurrently.
func TestBuildIndependent(t *testing.T) {
	h1, h2 := typicalHistory(1), typicalHistory(2)
	b1 := Build(h1, BuildOptions{DataThrough: mon.AddDate(0, 0, 30)})
	want := Build(h1, BuildOptions{DataThrough: mon.AddDate(0, 0, 30)})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				h := h2
				if i%2 == 0 {
					h = h1
				}
				Build(h, BuildOptions{DataThrough: mon.AddDate(0, 0, 30), MaxValues: 3})
			}
		}()
	}
	wg.Wait()
	if !reflect.DeepEqual(b1, want) {
		t.Error("a baseline changed after later builds")
	}
}

// typicalHistory is a month of hourly rollups with about 30 values across
// the dimensions, daily token issuance and a few callers.
func typicalHistory(seed int) *History {
	h := &History{
		Identity:  schemas.Identity{ID: "spiffe://prod.example/ns/pay/sa/api", Kind: schemas.KindWorkload},
		Namespace: "pay", Workload: "api-7d9f8b6c5d-x2x4z",
		Callers: []string{"spiffe://prod.example/ns/web/sa/a", "spiffe://prod.example/ns/web/sa/b", "spiffe://prod.example/ns/batch/sa/c"},
	}
	for i := range 30 * 24 {
		t := mon.Add(time.Duration(i)*time.Hour + time.Duration(i%50)*time.Second)
		n := uint64(50 + (i*seed)%40)
		r := row(t, n)
		r.Denied, r.Failures = uint64(i%3), uint64(i%5)
		r.BytesInHist = Hist{8: n / 2, 10: n - n/2}
		r.BytesOutHist = Hist{9: n - 3, 14: 2, 20: 1}
		r.DurationHist = Hist{3: n - 10, 5: 8, 9: 2}
		h.Hours = append(h.Hours, r)
	}
	dims := []struct {
		d Dim
		n int
	}{{DimAction, 10}, {DimResource, 5}, {DimPeer, 3}, {DimNetwork, 2}, {DimUserAgent, 2}, {DimRegion, 1}, {DimCluster, 1}, {DimIssuer, 1}, {DimCredential, 2}, {DimEdge, 3}}
	for _, d := range dims {
		for i := range d.n {
			v := fmt.Sprintf("%s-value-%d", d.d, i)
			if d.d == DimEdge {
				v = fmt.Sprintf("spiffe://prod.example/ns/x/sa/s%d GET /v1/%d", i, i)
			}
			h.Values = append(h.Values, ValueRollup{Dim: d.d, Value: v, FirstSeen: mon.AddDate(0, 0, i*seed%30),
				LastSeen: mon.AddDate(0, 0, 29), Count: uint64(1000 / (i + 1))})
		}
	}
	for d := range 30 {
		h.Issuances = append(h.Issuances, IssuanceRollup{Credential: fmt.Sprint("tok", d), Issuer: "vault",
			IssuedAt: mon.AddDate(0, 0, d).Add(time.Duration(d%7) * time.Minute), TTL: 25 * time.Hour})
	}
	return h
}

func BenchmarkBuild(b *testing.B) {
	h := typicalHistory(1)
	o := BuildOptions{Now: mon.AddDate(0, 0, 30), DataThrough: mon.AddDate(0, 0, 30), MaxValues: 1024}
	b.ReportAllocs()
	for b.Loop() {
		Build(h, o)
	}
}
