package baseline

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"gonum.org/v1/gonum/stat"
)

// BuildOptions are the parameters of one baseline build.
type BuildOptions struct {
	// Now is the Baseline's BuiltAt.
	Now time.Time
	// DataThrough is the rollup mark the history runs to: dormancy, the
	// stability windows, Recent and the concurrent credentials are measured
	// at it. The zero time means the end of the last active hour.
	DataThrough time.Time
	Version     int64
	// MaxValues caps each KnownSet's Values (the most used are kept);
	// Stability.Size is still the whole set's size. Zero means
	// DefaultMaxValues.
	MaxValues int
	// MaxEdges caps Graph.FanOut and MaxCallers Graph.Callers, most used and
	// alphabetically first kept. Zero means DefaultMaxEdges and
	// DefaultMaxCallers.
	MaxEdges   int
	MaxCallers int
	// FeatureMinHours is how many active hours the history needs for a
	// Baseline.Features. Zero means DefaultFeatureMinHours.
	FeatureMinHours int
}

// Defaults of BuildOptions.
const (
	DefaultMaxValues  = 256
	DefaultMaxEdges   = 256
	DefaultMaxCallers = 256
)

// madScale turns a median absolute deviation into an estimate of the
// standard deviation of normally distributed data.
const madScale = 1.4826

// Cadence thresholds: runs recur at an interval of at least cadenceMinInterval
// seconds with a jitter of at most cadenceMaxJitter of it, over at least
// cadenceMinRuns runs.
const (
	cadenceMinRuns     = 4
	cadenceMinInterval = 2 * 3600
	cadenceMaxJitter   = 0.1
)

// Build computes an identity's baseline from its history (SPEC §4). It is
// pure and allocates only the Baseline it returns plus per-call scratch
// taken from a pool, so a rebuild can run it for every identity. Class is
// left empty for the caller; CohortStats is set by SetCohortStats.
//
// Hour rows with no events are ignored; rows out of order or repeating an
// hour are sorted and merged. The Baseline shares value strings with h but
// no slices or maps.
func Build(h *History, o BuildOptions) *Baseline {
	if h == nil {
		h = &History{}
	}
	if o.MaxValues <= 0 {
		o.MaxValues = DefaultMaxValues
	}
	if o.MaxEdges <= 0 {
		o.MaxEdges = DefaultMaxEdges
	}
	if o.MaxCallers <= 0 {
		o.MaxCallers = DefaultMaxCallers
	}
	if o.FeatureMinHours <= 0 {
		o.FeatureMinHours = DefaultFeatureMinHours
	}
	s := scratchPool.Get().(*buildScratch)
	defer s.release()

	b := &Baseline{
		Identity: h.Identity,
		Cohort:   CohortKey(h),
		Version:  o.Version,
		BuiltAt:  o.Now,
	}
	hours := s.activeHours(h.Hours)
	if len(hours) > 0 {
		first, last := &hours[0], &hours[len(hours)-1]
		b.FirstSeen, b.LastSeen = hourFirst(first), hourLast(last)
		if o.DataThrough.IsZero() {
			o.DataThrough = time.Unix((last.Hour+1)*3600, 0).UTC()
		}
	}
	b.DataThrough = o.DataThrough
	for i := range hours {
		r := &hours[i]
		b.Events += r.Events
		bad := r.Denied + r.Failures
		if bad > r.Events || bad < r.Denied { // inconsistent row or overflow
			bad = r.Events
		}
		b.Outcome.Success += r.Events - bad
		b.Outcome.Denied += r.Denied
		b.Outcome.Failure += r.Failures
	}
	if b.Events > 0 {
		b.Outcome.FailureRatio = float64(b.Outcome.Failure) / float64(b.Events)
		b.Outcome.DeniedRatio = float64(b.Outcome.Denied) / float64(b.Events)
	}

	s.rate(hours, &b.Rate)
	var firstDay, lastDay int64
	if len(hours) > 0 {
		firstDay, lastDay = floorDiv(hours[0].Hour, 24), floorDiv(hours[len(hours)-1].Hour, 24)
	}
	s.activity(hours, firstDay, lastDay, &b.Activity)
	if len(hours) > 0 {
		b.Activity.Dormant = max(0, o.DataThrough.Sub(b.LastSeen).Seconds())
	}
	s.quantiles(h.Hours, b)
	s.known(h.Values, firstDay, lastDay, len(hours) > 0, o, b)
	b.Graph = s.graph(h, o)
	b.Issuance = s.issuance(h.Issuances, o.DataThrough)
	b.Cadence = s.cadence(hours)
	b.Features = s.feat.featureModel(hours, &b.Rate, o.FeatureMinHours)
	b.Recent = recent(hours, o.DataThrough)
	return b
}

// buildScratch is the working memory of one Build call, pooled across calls.
type buildScratch struct {
	hours  []HourRollup
	counts []float64
	x, dev []float64
	days   []int64
	vals   []ValueRollup
	times  []time.Time
	idx    []int
	sweep  []sweepEvent
	names  []string
	feat   featureScratch
}

var scratchPool = sync.Pool{New: func() any { return new(buildScratch) }}

// release drops the scratch's references into the history (strings, maps,
// locations) and returns it to the pool.
func (s *buildScratch) release() {
	clear(s.hours[:cap(s.hours)])
	clear(s.vals[:cap(s.vals)])
	clear(s.times[:cap(s.times)])
	clear(s.sweep[:cap(s.sweep)])
	clear(s.names[:cap(s.names)])
	s.hours, s.vals, s.times, s.sweep, s.names = s.hours[:0], s.vals[:0], s.times[:0], s.sweep[:0], s.names[:0]
	scratchPool.Put(s)
}

// activeHours returns the rows of in that have events, in ascending hour
// order with one row per hour. It returns in itself when in already is so.
func (s *buildScratch) activeHours(in []HourRollup) []HourRollup {
	clean := true
	for i := range in {
		if in[i].Events == 0 || (i > 0 && in[i].Hour <= in[i-1].Hour) {
			clean = false
			break
		}
	}
	if clean {
		return in
	}
	s.hours = s.hours[:0]
	for i := range in {
		if in[i].Events > 0 {
			s.hours = append(s.hours, in[i])
		}
	}
	slices.SortStableFunc(s.hours, func(a, b HourRollup) int { return cmp.Compare(a.Hour, b.Hour) })
	out := s.hours[:0]
	for _, r := range s.hours {
		if n := len(out); n > 0 && out[n-1].Hour == r.Hour {
			m := &out[n-1]
			first, last := hourFirst(m), hourLast(m)
			m.Events += r.Events
			m.Denied += r.Denied
			m.Failures += r.Failures
			m.BytesIn += r.BytesIn
			m.BytesOut += r.BytesOut
			m.DurationMS += r.DurationMS
			m.First = minTime(first, hourFirst(&r))
			m.Last = maxTime(last, hourLast(&r))
			continue
		}
		out = append(out, r)
	}
	// The histograms are merged from the input rows, not from these.
	for i := range out {
		out[i].BytesInHist, out[i].BytesOutHist, out[i].DurationHist = nil, nil, nil
	}
	s.hours = out
	return out
}

// hourFirst and hourLast are a row's first and last event times, falling
// back to the start of its hour when the store did not record them.
func hourFirst(r *HourRollup) time.Time {
	if r.First.IsZero() {
		return time.Unix(r.Hour*3600, 0).UTC()
	}
	return r.First
}

func hourLast(r *HourRollup) time.Time {
	if r.Last.IsZero() {
		return hourFirst(r)
	}
	return r.Last
}

// rate fills r from the active hours (see Rate). Hours of the span without a
// row count as zero.
func (s *buildScratch) rate(hours []HourRollup, r *Rate) {
	if len(hours) == 0 {
		return
	}
	h0 := hours[0].Hour
	n := int(hours[len(hours)-1].Hour-h0) + 1
	s.counts = slices.Grow(s.counts[:0], n)[:n]
	counts := s.counts
	clear(counts)
	for i := range hours {
		counts[hours[i].Hour-h0] += float64(hours[i].Events)
	}
	r.Hours = n
	r.Mean = stat.Mean(counts, nil)

	w0 := int(hourOfWeek(h0))
	var dayDone [24]bool
	var dayCentre, daySpread [24]float64
	var allDone bool
	var allCentre, allSpread float64
	for w := range HoursPerWeek {
		off := (w - w0 + HoursPerWeek) % HoursPerWeek // first index with hour of week w
		if off < n && (n-1-off)/HoursPerWeek+1 >= 3 {
			s.x = s.x[:0]
			for i := off; i < n; i += HoursPerWeek {
				s.x = append(s.x, counts[i])
			}
			r.Centre[w], r.Spread[w] = s.medianMAD(s.x)
			continue
		}
		r.Pooled = true
		hod := w % 24
		if !dayDone[hod] {
			dayDone[hod] = true
			s.x = s.x[:0]
			for i := (hod - w0%24 + 24) % 24; i < n; i += 24 {
				s.x = append(s.x, counts[i])
			}
			if len(s.x) > 0 {
				dayCentre[hod], daySpread[hod] = s.medianMAD(s.x)
			} else {
				// The span is shorter than a day and misses this hour:
				// every hour of the span is the best estimate there is.
				if !allDone {
					allDone = true
					s.x = append(s.x[:0], counts...)
					allCentre, allSpread = s.medianMAD(s.x)
				}
				dayCentre[hod], daySpread[hod] = allCentre, allSpread
			}
		}
		r.Centre[w], r.Spread[w] = dayCentre[hod], daySpread[hod]
	}
}

// medianMAD returns the median of x and its median absolute deviation scaled
// by madScale. It sorts x. The median of an even number of values is the
// mean of the middle two.
func (s *buildScratch) medianMAD(x []float64) (median, spread float64) {
	slices.Sort(x)
	m := medianSorted(x)
	s.dev = s.dev[:0]
	for _, v := range x {
		s.dev = append(s.dev, math.Abs(v-m))
	}
	slices.Sort(s.dev)
	return m, madScale * medianSorted(s.dev)
}

// medianSorted is the median of ascending x: the middle value, or the mean
// of the middle two; 0 for no values.
func medianSorted(x []float64) float64 {
	n := len(x)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return x[n/2]
	}
	return (x[n/2-1] + x[n/2]) / 2
}

// activity fills a from the active hours; Dormant is set by the caller.
func (s *buildScratch) activity(hours []HourRollup, firstDay, lastDay int64, a *Activity) {
	a.ActiveHours = len(hours)
	if len(hours) == 0 {
		return
	}
	var perHour [24]int
	s.x = s.x[:0]
	for i := range hours {
		perHour[floorMod(hours[i].Hour, 24)]++
		if i > 0 {
			if gap := hours[i].Hour - hours[i-1].Hour - 1; gap > 0 {
				s.x = append(s.x, float64(gap*3600))
			}
		}
	}
	days := float64(lastDay - firstDay + 1)
	for hod, c := range perHour {
		a.HourOfDay[hod] = float64(c) / days
	}
	if len(s.x) > 0 {
		slices.Sort(s.x)
		a.LongestGap = s.x[len(s.x)-1]
		a.MedianGap = medianSorted(s.x)
	}
}

// quantiles merges the histograms of every row into b's BytesIn, BytesOut
// and Duration.
func (s *buildScratch) quantiles(rows []HourRollup, b *Baseline) {
	var in, out, dur [64]uint64
	for i := range rows {
		addHist(&in, rows[i].BytesInHist)
		addHist(&out, rows[i].BytesOutHist)
		addHist(&dur, rows[i].DurationHist)
	}
	b.BytesIn = histQuantiles(&in)
	b.BytesOut = histQuantiles(&out)
	b.Duration = histQuantiles(&dur)
}

// addHist adds h to the merged histogram m. Buckets from 63 up share
// BucketEdge's largest edge, so they merge into bucket 63.
func addHist(m *[64]uint64, h Hist) {
	for k, c := range h {
		m[min(k, 63)] += c
	}
}

// histQuantiles computes Quantiles from a merged histogram: gonum's
// empirical quantile of the bucket edges weighted by their counts is the
// edge of the bucket holding rank ceil(q·n).
func histQuantiles(m *[64]uint64) Quantiles {
	var edges, weights [64]float64
	var q Quantiles
	k := 0
	for b, c := range m {
		if c == 0 {
			continue
		}
		q.Count += c
		edges[k], weights[k] = BucketEdge(uint8(b)), float64(c)
		k++
	}
	if k == 0 {
		return q
	}
	x, w := edges[:k], weights[:k]
	q.P50 = stat.Quantile(0.5, stat.Empirical, x, w)
	q.P90 = stat.Quantile(0.9, stat.Empirical, x, w)
	q.P99 = stat.Quantile(0.99, stat.Empirical, x, w)
	q.Max = x[k-1]
	return q
}

// known fills b.Known from the value rollups: one KnownSet per dimension
// with values, in Dim order; values of unknown dimensions are ignored and
// repeated (dimension, value) rows are merged.
func (s *buildScratch) known(in []ValueRollup, firstDay, lastDay int64, seen bool, o BuildOptions, b *Baseline) {
	s.vals = s.vals[:0]
	for i := range in {
		if in[i].Dim < NumDims {
			s.vals = append(s.vals, in[i])
		}
	}
	if len(s.vals) == 0 {
		return
	}
	slices.SortFunc(s.vals, func(x, y ValueRollup) int {
		if c := cmp.Compare(x.Dim, y.Dim); c != 0 {
			return c
		}
		return strings.Compare(x.Value, y.Value)
	})
	vals := s.vals[:1]
	for _, v := range s.vals[1:] {
		m := &vals[len(vals)-1]
		if v.Dim == m.Dim && v.Value == m.Value {
			m.FirstSeen = minTime(m.FirstSeen, v.FirstSeen)
			m.LastSeen = maxTime(m.LastSeen, v.LastSeen)
			m.Count += v.Count
			continue
		}
		vals = append(vals, v)
	}
	slices.SortFunc(vals, func(x, y ValueRollup) int {
		if c := cmp.Compare(x.Dim, y.Dim); c != 0 {
			return c
		}
		if c := cmp.Compare(y.Count, x.Count); c != 0 {
			return c
		}
		return strings.Compare(x.Value, y.Value)
	})
	s.vals = vals

	sets, kept := 0, 0
	for i, j := 0, 0; i < len(vals); i = j {
		for j = i; j < len(vals) && vals[j].Dim == vals[i].Dim; j++ {
		}
		sets++
		kept += min(j-i, o.MaxValues)
	}
	b.Known = make([]KnownSet, 0, sets)
	all := make([]KnownValue, kept)
	since7, since28 := o.DataThrough.Add(-7*24*time.Hour), o.DataThrough.Add(-28*24*time.Hour)
	for i, j := 0, 0; i < len(vals); i = j {
		for j = i; j < len(vals) && vals[j].Dim == vals[i].Dim; j++ {
		}
		group := vals[i:j]
		n := min(len(group), o.MaxValues)
		out := all[:n:n]
		all = all[n:]
		for k := range out {
			v := &group[k]
			out[k] = KnownValue{Value: v.Value, FirstSeen: v.FirstSeen, LastSeen: v.LastSeen, Count: v.Count}
		}
		st := Stability{Size: len(group), Score: 1}
		s.days = s.days[:0]
		for k := range group {
			f := group[k].FirstSeen
			if !f.Before(since7) {
				st.NewLast7d++
			}
			if !f.Before(since28) {
				st.NewLast28d++
			}
			if f.After(st.LastGrew) {
				st.LastGrew = f
			}
			if d := floorDiv(f.Unix(), 86400); seen && d > firstDay {
				s.days = append(s.days, d)
			}
		}
		if span := lastDay - firstDay; seen && span > 0 {
			slices.Sort(s.days)
			grew := len(slices.Compact(s.days))
			st.Score = max(0, 1-float64(grew)/float64(span))
		}
		b.Known = append(b.Known, KnownSet{Dim: group[0].Dim.String(), Values: out, Stability: st})
	}
}

// graph builds the call graph from the DimEdge values (sorted by known) and
// the callers; nil when there are neither.
func (s *buildScratch) graph(h *History, o BuildOptions) *Graph {
	var edges []ValueRollup
	for i, j := 0, 0; i < len(s.vals); i = j {
		for j = i; j < len(s.vals) && s.vals[j].Dim == s.vals[i].Dim; j++ {
		}
		if s.vals[i].Dim == DimEdge {
			edges = s.vals[i:j]
		}
	}
	if len(edges) == 0 && len(h.Callers) == 0 {
		return nil
	}
	g := &Graph{TrustDomain: trustDomain(h.Identity.ID)}
	edges = edges[:min(len(edges), o.MaxEdges)]
	g.FanOut = make([]Edge, len(edges))
	for i := range edges {
		e := &edges[i]
		peer, route, _ := strings.Cut(e.Value, " ")
		g.FanOut[i] = Edge{Peer: peer, Route: route, Count: e.Count, FirstSeen: e.FirstSeen, LastSeen: e.LastSeen}
	}
	if len(h.Callers) > 0 {
		s.names = append(s.names[:0], h.Callers...)
		slices.Sort(s.names)
		callers := slices.Compact(s.names)
		g.FanIn = len(callers)
		g.Callers = slices.Clone(callers[:min(len(callers), o.MaxCallers)])
	}
	return g
}

// trustDomain is the trust domain of a SPIFFE ID, "" for other ids.
func trustDomain(id string) string {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return ""
	}
	td, _, _ := strings.Cut(rest, "/")
	return td
}

// sweepEvent is a change in the number of valid credentials: at t, a
// credential becomes valid (sweepStart) or stops being valid (sweepEnd for a
// known TTL, sweepPointEnd right after the instant of an unknown one).
type sweepEvent struct {
	t    time.Time
	kind int8
}

const (
	sweepEnd int8 = iota
	sweepStart
	sweepPointEnd
)

// issuance builds the issuance profile; nil when nothing was issued.
func (s *buildScratch) issuance(iss []IssuanceRollup, through time.Time) *IssuanceProfile {
	if len(iss) == 0 {
		return nil
	}
	p := &IssuanceProfile{Issued: len(iss)}
	s.x = s.x[:0]
	for i := range iss {
		if iss[i].TTL > 0 {
			s.x = append(s.x, iss[i].TTL.Seconds())
		}
	}
	slices.Sort(s.x)
	p.TTL = medianSorted(s.x)

	s.times = s.times[:0]
	for i := range iss {
		s.times = append(s.times, iss[i].IssuedAt)
	}
	slices.SortFunc(s.times, time.Time.Compare)
	s.x = s.x[:0]
	for i := 1; i < len(s.times); i++ {
		s.x = append(s.x, s.times[i].Sub(s.times[i-1]).Seconds())
	}
	slices.Sort(s.x)
	p.Interval = medianSorted(s.x)

	// Validity intervals [IssuedAt, IssuedAt+TTL). A credential issued again
	// (renewed) is one credential: its earlier interval ends where the next
	// begins, and an interval that ends up empty is dropped.
	s.idx = s.idx[:0]
	for i := range iss {
		s.idx = append(s.idx, i)
	}
	slices.SortFunc(s.idx, func(a, b int) int {
		if c := strings.Compare(iss[a].Credential, iss[b].Credential); c != 0 {
			return c
		}
		return iss[a].IssuedAt.Compare(iss[b].IssuedAt)
	})
	s.sweep = s.sweep[:0]
	for k, i := range s.idx {
		r := &iss[i]
		var next *IssuanceRollup
		if k+1 < len(s.idx) && r.Credential != "" && iss[s.idx[k+1]].Credential == r.Credential {
			next = &iss[s.idx[k+1]]
		}
		if r.TTL <= 0 {
			if next != nil && next.IssuedAt.Equal(r.IssuedAt) {
				continue // the same issuance again
			}
			s.sweep = append(s.sweep, sweepEvent{r.IssuedAt, sweepStart}, sweepEvent{r.IssuedAt, sweepPointEnd})
			if r.IssuedAt.Equal(through) {
				p.Concurrent++
			}
			continue
		}
		end := r.IssuedAt.Add(r.TTL)
		if next != nil && next.IssuedAt.Before(end) {
			end = next.IssuedAt
		}
		if !end.After(r.IssuedAt) {
			continue
		}
		s.sweep = append(s.sweep, sweepEvent{r.IssuedAt, sweepStart}, sweepEvent{end, sweepEnd})
		if !through.Before(r.IssuedAt) && through.Before(end) {
			p.Concurrent++
		}
	}
	slices.SortFunc(s.sweep, func(a, b sweepEvent) int {
		if c := a.t.Compare(b.t); c != 0 {
			return c
		}
		return cmp.Compare(a.kind, b.kind)
	})
	cur := 0
	for _, e := range s.sweep {
		if e.kind == sweepStart {
			cur++
			p.MaxConcurrent = max(p.MaxConcurrent, cur)
		} else {
			cur--
		}
	}
	return p
}

// cadence finds the schedule of a job-like identity (see Cadence); nil when
// the runs do not recur regularly.
func (s *buildScratch) cadence(hours []HourRollup) *Cadence {
	s.x = s.x[:0]
	runs := 0
	var last time.Time
	for i := range hours {
		if i > 0 && hours[i].Hour == hours[i-1].Hour+1 {
			continue
		}
		start := hourFirst(&hours[i])
		if runs > 0 {
			s.x = append(s.x, start.Sub(last).Seconds())
		}
		runs++
		last = start
	}
	if runs < cadenceMinRuns {
		return nil
	}
	interval, jitter := s.medianMAD(s.x)
	if interval < cadenceMinInterval || jitter > cadenceMaxJitter*interval {
		return nil
	}
	return &Cadence{
		Runs:         runs,
		Interval:     interval,
		Jitter:       jitter,
		LastRun:      last,
		NextExpected: last.Add(time.Duration(interval * float64(time.Second))),
	}
}

// recent copies, without histograms, the rows of the 168 hours that end with
// the hour holding the last instant before through.
func recent(hours []HourRollup, through time.Time) []HourRollup {
	if len(hours) == 0 {
		return nil
	}
	end := floorDiv(through.Add(-1).Unix(), 3600)
	lo, _ := slices.BinarySearchFunc(hours, end-HoursPerWeek+1, func(r HourRollup, h int64) int { return cmp.Compare(r.Hour, h) })
	hi, found := slices.BinarySearchFunc(hours, end, func(r HourRollup, h int64) int { return cmp.Compare(r.Hour, h) })
	if found {
		hi++
	}
	if lo >= hi {
		return nil
	}
	out := make([]HourRollup, hi-lo)
	copy(out, hours[lo:hi])
	for i := range out {
		out[i].BytesInHist, out[i].BytesOutHist, out[i].DurationHist = nil, nil, nil
	}
	return out
}

// hourOfWeek is the hour of week (0 is Monday 00:00 UTC) of an absolute
// hour; the Unix epoch fell on a Thursday.
func hourOfWeek(h int64) int64 { return floorMod(h+3*24, HoursPerWeek) }

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func floorMod(a, b int64) int64 { return a - floorDiv(a, b)*b }

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
