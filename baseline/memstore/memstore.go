// Package memstore owns the embedded baseline store of SPEC §4 ("The embedded
// default"): with no ClickHouse configured it folds normalized events into
// the same rollups chstore keeps (hourly activity, per-day known values,
// issuances, callers), keeps the versioned baselines the builder computes
// from them, and snapshots all of it to one local file, so `nhisentry scan`
// runs the same builder on a laptop. It implements baseline.Store and
// engine.EventStore. It keeps no raw events: only the rollups and the ids of
// the events already folded in, which make a replayed batch a no-op.
package memstore

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/schemas"
)

var _ baseline.Store = (*Store)(nil)

// Store is the in-memory baseline store. It is safe for concurrent use: one
// mutex guards everything, which is enough for a single-process scan, and
// callbacks (Histories, LoadBaselines) run outside it so they may call back
// into the store.
type Store struct {
	mu  sync.Mutex
	ids map[string]*identity
	// peers maps a peer X to the identities that named it as their
	// upstream peer, each with the latest day it did, so callers of X need
	// no scan over every identity. It is derived from the DimPeer value rows
	// and rebuilt when a snapshot is opened.
	peers     map[string]map[string]int64
	baselines map[string]storedBaseline
	mark      time.Time
	// clock is the stamp of the latest change (Unix nanoseconds); see tick.
	clock int64
	now   func() time.Time
}

// storedBaseline is the newest version of one identity's baseline in its
// JSON form: the form chstore stores and `baseline show` prints, which also
// makes every LoadBaselines hand out a fresh copy the caller may modify.
type storedBaseline struct {
	version int64
	json    []byte
}

// identity holds one identity's rollups.
type identity struct {
	id     string
	kind   schemas.IdentityKind
	kindAt time.Time
	name   string
	nameAt time.Time
	// changed is the clock stamp of the latest event folded in.
	changed   int64
	hours     map[int64]*hour
	values    map[valueKey]*valueRow
	issuances []baseline.IssuanceRollup
}

// hour is one hourly rollup with the ids of the events folded into it.
//
// Memory: a seen id costs its string (30–70 bytes for the ids decoders
// make) plus about 40 bytes of map overhead, so roughly 100 bytes per stored
// event, around 1 GB for 10 million events. That is fine for a laptop scan;
// keeping the set per hour means a store that ever needs to bound it can drop
// the sets of hours older than the replay horizon without touching the
// rollups.
type hour struct {
	r    baseline.HourRollup
	seen map[string]struct{}
}

// valueKey is one value of one dimension on one UTC day (Unix days). Values
// are kept per day, as chstore's day rows are, so Histories filters by from
// the same way on both stores.
type valueKey struct {
	day   int64
	dim   baseline.Dim
	value string
}

type valueRow struct {
	first, last time.Time
	count       uint64
}

// Namespace and workload counts ride in the value rows under two internal
// dimensions past the public ones, so they are filtered by day like every
// other value. They never appear in History.Values, and the snapshot names
// every dimension rather than numbering it, so adding a public dimension
// does not shift them.
const (
	dimNamespace = baseline.NumDims + iota
	dimWorkload
	numInternalDims
)

var internalDimNames = map[baseline.Dim]string{dimNamespace: "_namespace", dimWorkload: "_workload"}

func dimName(d baseline.Dim) string {
	if n, ok := internalDimNames[d]; ok {
		return n
	}
	return d.String()
}

func parseDimName(s string) (baseline.Dim, bool) {
	for d, n := range internalDimNames {
		if n == s {
			return d, true
		}
	}
	return baseline.ParseDim(s)
}

// New returns an empty store.
func New() *Store {
	return &Store{
		ids:       map[string]*identity{},
		peers:     map[string]map[string]int64{},
		baselines: map[string]storedBaseline{},
		now:       time.Now,
	}
}

// tick returns the stamp of a new change: wall-clock Unix nanoseconds, but
// always above the previous stamp. The stamps are a monotonic counter (the
// Rollup mark only compares them) that also reads as a real time, so a mark
// used as a baseline's DataThrough is when the data was stored, as on
// chstore, and stays monotonic across a snapshot even if the clock steps
// back.
func (s *Store) tick() int64 {
	n := s.now().UnixNano()
	if n <= s.clock {
		n = s.clock + 1
	}
	s.clock = n
	return n
}

// stampTime and timeStamp convert between clock stamps and marks; the zero
// mark means "everything", below every stamp.
func stampTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func timeStamp(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// rollupPrecision is the precision of the first and last times of hour and
// value rollups. Issuance times keep the event's full precision.
const rollupPrecision = time.Second

// floorDiv rounds toward minus infinity, so times before 1970 still fall in
// the hour or day that contains them.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func hourOf(t time.Time) int64 { return floorDiv(t.Unix(), 3600) }
func dayOf(t time.Time) int64  { return floorDiv(t.Unix(), 86400) }

// WriteEvents folds events into the rollups (engine.EventStore). An event
// whose id was already folded into the same identity and hour is skipped, so
// a replayed batch changes nothing and marks nothing changed. Events without
// an identity id are skipped: they belong to no baseline. An event without
// an id cannot be told from its replay and is always folded in (decoders
// always set one, SPEC §3).
func (s *Store) WriteEvents(ctx context.Context, events []schemas.Event) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var stamp int64 // one stamp per batch, taken at its first change
	for i := range events {
		ev := &events[i]
		if ev.Identity.ID == "" {
			continue
		}
		x := s.ids[ev.Identity.ID]
		if x == nil {
			x = &identity{
				id:     strings.Clone(ev.Identity.ID),
				hours:  map[int64]*hour{},
				values: map[valueKey]*valueRow{},
			}
			s.ids[x.id] = x
		}
		if !s.fold(x, ev) {
			continue
		}
		if stamp == 0 {
			stamp = s.tick()
		}
		x.changed = stamp
	}
	return nil
}

// fold adds one event to x's rollups; false when it was already there.
// Strings kept as map keys are cloned: a decoder may hand out substrings of
// the raw record, and keeping one would pin the whole record in memory.
func (s *Store) fold(x *identity, ev *schemas.Event) bool {
	t := ev.Time.Time.Round(0).UTC()
	h := hourOf(t)
	hr := x.hours[h]
	if hr == nil {
		hr = &hour{
			r: baseline.HourRollup{
				Hour:         h,
				BytesInHist:  baseline.Hist{},
				BytesOutHist: baseline.Hist{},
				DurationHist: baseline.Hist{},
			},
			seen: map[string]struct{}{},
		}
		x.hours[h] = hr
	}
	if ev.ID != "" {
		if _, dup := hr.seen[ev.ID]; dup {
			return false
		}
		hr.seen[strings.Clone(ev.ID)] = struct{}{}
	}

	// First and last use are whole seconds, as chstore's DateTime columns
	// keep them, so both stores give the builder the same times.
	sec := t.Truncate(rollupPrecision)
	r := &hr.r
	if r.Events == 0 || sec.Before(r.First) {
		r.First = sec
	}
	if r.Events == 0 || sec.After(r.Last) {
		r.Last = sec
	}
	r.Events++
	switch ev.Outcome.Result {
	case schemas.ResultDenied:
		r.Denied++
	case schemas.ResultFailure:
		r.Failures++
	}
	r.BytesIn += ev.BytesIn
	r.BytesOut += ev.BytesOut
	r.DurationMS += ev.DurationMS
	r.BytesInHist[baseline.Bucket(float64(ev.BytesIn))]++
	r.BytesOutHist[baseline.Bucket(float64(ev.BytesOut))]++
	r.DurationHist[baseline.Bucket(ev.DurationMS)]++

	day := dayOf(t)
	for d, v := range baseline.Values(ev) {
		if v == "" {
			continue
		}
		x.addValue(day, baseline.Dim(d), v, sec)
		if baseline.Dim(d) == baseline.DimPeer {
			s.addCaller(v, x.id, day)
		}
	}
	if ns := ev.Actor.Namespace; ns != "" {
		x.addValue(day, dimNamespace, ns, sec)
	}
	if wl := ev.Actor.Workload; wl != "" {
		x.addValue(day, dimWorkload, wl, sec)
	}

	if is := ev.Issuance; is != nil && is.Credential != "" {
		var ttl time.Duration
		if is.TTLSeconds > 0 {
			ttl = time.Duration(is.TTLSeconds) * time.Second
		}
		x.issuances = append(x.issuances, baseline.IssuanceRollup{
			Credential: strings.Clone(is.Credential), Issuer: strings.Clone(is.Issuer), IssuedAt: t, TTL: ttl,
		})
	}

	// The identity's kind and name are the latest non-empty ones; at equal
	// times the larger string wins so the result does not depend on the
	// order events arrive in.
	if k := ev.Identity.Kind; k != "" && newer(t, string(k), x.kindAt, string(x.kind)) {
		if k != x.kind {
			x.kind = schemas.IdentityKind(strings.Clone(string(k)))
		}
		x.kindAt = t
	}
	if n := ev.Identity.Name; n != "" && newer(t, n, x.nameAt, x.name) {
		if n != x.name {
			x.name = strings.Clone(n)
		}
		x.nameAt = t
	}
	return true
}

func newer(t time.Time, v string, curAt time.Time, cur string) bool {
	if cur == "" {
		return true
	}
	if c := t.Compare(curAt); c != 0 {
		return c > 0
	}
	return v > cur
}

func (x *identity) addValue(day int64, d baseline.Dim, v string, t time.Time) {
	k := valueKey{day: day, dim: d, value: v}
	row := x.values[k]
	if row == nil {
		k.value = strings.Clone(v)
		x.values[k] = &valueRow{first: t, last: t, count: 1}
		return
	}
	if t.Before(row.first) {
		row.first = t
	}
	if t.After(row.last) {
		row.last = t
	}
	row.count++
}

func (s *Store) addCaller(peer, caller string, day int64) {
	cs := s.peers[peer]
	if cs == nil {
		cs = map[string]int64{}
		s.peers[strings.Clone(peer)] = cs
	}
	if last, ok := cs[caller]; !ok || day > last {
		cs[caller] = day
	}
}

// Rollup returns the identities with events folded in since mark (all of
// them for the zero mark) and the mark to pass next time. The rollups are
// kept current by WriteEvents, so there is nothing to compute. Marks are
// clock stamps (see tick): opaque, monotonic, and real times.
func (s *Store) Rollup(ctx context.Context, mark time.Time) ([]string, time.Time, error) {
	if err := ctx.Err(); err != nil {
		return nil, mark, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	since := timeStamp(mark)
	var changed []string
	for id, x := range s.ids {
		if x.changed > since {
			changed = append(changed, id)
		}
	}
	slices.Sort(changed)
	next := mark
	if s.clock > since {
		next = stampTime(s.clock)
	}
	return changed, next, nil
}

// Histories calls fn with the history of each identity in ids, in the order
// given (every identity, in id order, when ids is nil). Unknown identities
// and identities with no activity at or after from are skipped.
//
// From filters each part at the granularity it is stored at, as chstore's
// rollup tables do: an hour row counts when its hour is at or after the hour
// of from, a value day row (known values, namespace and workload counts,
// callers) when its UTC day is at or after the day of from, and an issuance
// when it is at or after from itself. So a value used earlier on from's day
// still counts, and its FirstSeen may be before from.
func (s *Store) Histories(ctx context.Context, ids []string, from time.Time, fn func(*baseline.History) error) error {
	if ids == nil {
		s.mu.Lock()
		ids = slices.Sorted(maps.Keys(s.ids))
		s.mu.Unlock()
	} else {
		seen := make(map[string]bool, len(ids))
		uniq := make([]string, 0, len(ids))
		for _, id := range ids {
			if !seen[id] {
				seen[id] = true
				uniq = append(uniq, id)
			}
		}
		ids = uniq
	}
	from = from.UTC()
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.mu.Lock()
		h := s.history(id, from)
		s.mu.Unlock()
		if h == nil {
			continue
		}
		if err := fn(h); err != nil {
			return err
		}
	}
	return nil
}

// history builds id's history from from on, or nil. It copies everything it
// returns, because fn runs after the lock is released.
func (s *Store) history(id string, from time.Time) *baseline.History {
	x := s.ids[id]
	if x == nil {
		return nil
	}
	fromHour, fromDay := hourOf(from), dayOf(from)
	h := &baseline.History{Identity: schemas.Identity{ID: x.id, Kind: x.kind, Name: x.name}}

	for hn, hr := range x.hours {
		if hn < fromHour {
			continue
		}
		r := hr.r
		r.BytesInHist = maps.Clone(r.BytesInHist)
		r.BytesOutHist = maps.Clone(r.BytesOutHist)
		r.DurationHist = maps.Clone(r.DurationHist)
		h.Hours = append(h.Hours, r)
	}
	slices.SortFunc(h.Hours, func(a, b baseline.HourRollup) int { return cmp.Compare(a.Hour, b.Hour) })

	type dv struct {
		dim   baseline.Dim
		value string
	}
	agg := map[dv]*baseline.ValueRollup{}
	var namespaces, workloads baseline.Counts
	for k, row := range x.values {
		if k.day < fromDay {
			continue
		}
		switch k.dim {
		case dimNamespace:
			namespaces.Add(k.value, row.count)
			continue
		case dimWorkload:
			workloads.Add(k.value, row.count)
			continue
		}
		v := agg[dv{k.dim, k.value}]
		if v == nil {
			agg[dv{k.dim, k.value}] = &baseline.ValueRollup{
				Dim: k.dim, Value: k.value, FirstSeen: row.first, LastSeen: row.last, Count: row.count,
			}
			continue
		}
		if row.first.Before(v.FirstSeen) {
			v.FirstSeen = row.first
		}
		if row.last.After(v.LastSeen) {
			v.LastSeen = row.last
		}
		v.Count += row.count
	}
	h.Values = make([]baseline.ValueRollup, 0, len(agg))
	for _, v := range agg {
		h.Values = append(h.Values, *v)
	}
	slices.SortFunc(h.Values, func(a, b baseline.ValueRollup) int {
		return cmp.Or(cmp.Compare(a.Dim, b.Dim), strings.Compare(a.Value, b.Value))
	})
	h.Namespace, h.Workload = namespaces.MostFrequent(), workloads.MostFrequent()

	for _, is := range x.issuances {
		if !is.IssuedAt.Before(from) {
			h.Issuances = append(h.Issuances, is)
		}
	}
	slices.SortFunc(h.Issuances, func(a, b baseline.IssuanceRollup) int {
		return cmp.Or(a.IssuedAt.Compare(b.IssuedAt), strings.Compare(a.Credential, b.Credential),
			strings.Compare(a.Issuer, b.Issuer), cmp.Compare(a.TTL, b.TTL))
	})

	for caller, last := range s.peers[id] {
		if last >= fromDay {
			h.Callers = append(h.Callers, caller)
		}
	}
	slices.Sort(h.Callers)

	if len(h.Hours) == 0 && len(h.Values) == 0 && len(h.Issuances) == 0 {
		return nil
	}
	if len(h.Values) == 0 {
		h.Values = nil
	}
	return h
}

// Mark returns the rollup mark kept by SetMark (zero when none).
func (s *Store) Mark(ctx context.Context) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mark, nil
}

// SetMark keeps the rollup mark; a snapshot carries it across restarts.
func (s *Store) SetMark(ctx context.Context, mark time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mark = mark
	return nil
}
