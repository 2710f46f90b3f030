package chstore_test

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

var monthStart = time.Date(2026, 9, 7, 0, 0, 0, 0, time.UTC) // a Monday

// monthOfEvents decodes a generated month of mixed telemetry.
func monthOfEvents(t *testing.T) []schemas.Event {
	t.Helper()
	var evs []schemas.Event
	ingested := time.Now().UTC().Truncate(time.Second)
	_, err := gen.Generate(gen.Config{
		Seed: 11, Start: monthStart, Duration: 30 * 24 * time.Hour,
		Workloads: 16, Roles: 6, APIKeys: 6, VaultClients: 4, EventsPerIdentityHour: 1,
	}, func(r gen.Record) error {
		dec, err := formats.ByName(r.Format)
		if err != nil {
			return err
		}
		evs, err = dec.Decode(evs, ingest.Record{Topic: r.Format, Value: r.Value, Time: r.Time})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		evs[i].IngestTime = schemas.At(ingested)
	}
	return evs
}

// expected is what the test computes directly from the events of one
// identity, independently of the stores and the builder.
type expected struct {
	events                   uint64
	first, last              time.Time
	success, failure, denied uint64
	hours                    map[int64]uint64
	known                    [baseline.NumDims]map[string]*baseline.KnownValue
	bytesOut                 []float64
	callers                  map[string]bool
}

func expectations(evs []schemas.Event) map[string]*expected {
	out := map[string]*expected{}
	for i := range evs {
		ev := &evs[i]
		e := out[ev.Identity.ID]
		if e == nil {
			e = &expected{hours: map[int64]uint64{}, callers: map[string]bool{}}
			for d := range e.known {
				e.known[d] = map[string]*baseline.KnownValue{}
			}
			out[ev.Identity.ID] = e
		}
		at := ev.Time.Truncate(time.Second) // ClickHouse DateTime
		if e.events == 0 || at.Before(e.first) {
			e.first = at
		}
		if at.After(e.last) {
			e.last = at
		}
		e.events++
		e.hours[ev.Time.Unix()/3600]++
		switch ev.Outcome.Result {
		case schemas.ResultDenied:
			e.denied++
		case schemas.ResultFailure:
			e.failure++
		default:
			e.success++
		}
		e.bytesOut = append(e.bytesOut, float64(ev.BytesOut))
		for d, v := range baseline.Values(ev) {
			if v == "" {
				continue
			}
			kv := e.known[d][v]
			if kv == nil {
				kv = &baseline.KnownValue{Value: v, FirstSeen: at, LastSeen: at}
				e.known[d][v] = kv
			}
			kv.Count++
			if at.Before(kv.FirstSeen) {
				kv.FirstSeen = at
			}
			if at.After(kv.LastSeen) {
				kv.LastSeen = at
			}
		}
	}
	for i := range evs {
		if p := evs[i].Target.Peer; p != "" && out[p] != nil {
			out[p].callers[evs[i].Identity.ID] = true
		}
	}
	return out
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// hourOfWeek is Monday-based; the Unix epoch was a Thursday.
func hourOfWeek(h int64) int { return int((h/24+3)%7*24 + h%24) }

func checkBaseline(t *testing.T, store string, b *baseline.Baseline, e *expected) {
	t.Helper()
	id := b.Identity.ID
	if b.Events != e.events || !b.FirstSeen.Equal(e.first) || !b.LastSeen.Equal(e.last) {
		t.Errorf("%s %s: events %d first %v last %v; want %d %v %v", store, id, b.Events, b.FirstSeen, b.LastSeen, e.events, e.first, e.last)
	}
	if o := b.Outcome; o.Success != e.success || o.Failure != e.failure || o.Denied != e.denied {
		t.Errorf("%s %s: outcome %+v; want %d/%d/%d", store, id, o, e.success, e.failure, e.denied)
	}
	if b.Activity.ActiveHours != len(e.hours) {
		t.Errorf("%s %s: active hours %d, want %d", store, id, b.Activity.ActiveHours, len(e.hours))
	}
	// Rate: every hour from the first active one to the last, silent ones
	// as zero; median per hour of week over the month.
	lo, hi := int64(math.MaxInt64), int64(0)
	for h := range e.hours {
		lo, hi = min(lo, h), max(hi, h)
	}
	span := hi - lo + 1
	if b.Rate.Hours != int(span) || math.Abs(b.Rate.Mean-float64(e.events)/float64(span)) > 1e-9 {
		t.Errorf("%s %s: rate over %d hours mean %v; want %d, %v", store, id, b.Rate.Hours, b.Rate.Mean, span, float64(e.events)/float64(span))
	}
	if span >= 504 {
		samples := make([][]float64, baseline.HoursPerWeek)
		for h := lo; h <= hi; h++ {
			samples[hourOfWeek(h)] = append(samples[hourOfWeek(h)], float64(e.hours[h]))
		}
		if b.Rate.Pooled {
			t.Errorf("%s %s: %d hours of history pooled", store, id, span)
		}
		for how, s := range samples {
			if got, want := b.Rate.Centre[how], median(s); math.Abs(got-want) > 1e-9 {
				t.Errorf("%s %s: centre of hour of week %d = %v, want %v (samples %v)", store, id, how, got, want, s)
				break
			}
		}
	}
	// Quantiles: the bucket edge of the observation of rank ceil(q·n).
	s := slices.Clone(e.bytesOut)
	sort.Float64s(s)
	for _, q := range []struct {
		p   float64
		got float64
	}{{0.5, b.BytesOut.P50}, {0.9, b.BytesOut.P90}, {0.99, b.BytesOut.P99}} {
		rank := int(math.Ceil(q.p*float64(len(s)))) - 1
		if want := baseline.BucketEdge(baseline.Bucket(s[rank])); q.got != want {
			t.Errorf("%s %s: bytes out p%v = %v, want %v", store, id, q.p*100, q.got, want)
		}
	}
	// Known sets: every value with its count and first and last use.
	sets := map[string]baseline.KnownSet{}
	for _, ks := range b.Known {
		sets[ks.Dim] = ks
	}
	for d, want := range e.known {
		ks := sets[baseline.Dim(d).String()]
		if ks.Stability.Size != len(want) {
			t.Errorf("%s %s: %s set size %d, want %d", store, id, baseline.Dim(d), ks.Stability.Size, len(want))
			continue
		}
		for _, kv := range ks.Values {
			w := want[kv.Value]
			if w == nil || kv.Count != w.Count || !kv.FirstSeen.Equal(w.FirstSeen) || !kv.LastSeen.Equal(w.LastSeen) {
				t.Errorf("%s %s: %s value %+v, want %+v", store, id, baseline.Dim(d), kv, w)
			}
		}
	}
	if len(e.callers) > 0 && (b.Graph == nil || b.Graph.FanIn != len(e.callers)) {
		t.Errorf("%s %s: graph %+v, want fan-in %d", store, id, b.Graph, len(e.callers))
	}
}

// TestMonthOfBaselinesOnBothStores builds baselines from a generated month on
// the real ClickHouse and on the embedded store and checks them against the
// statistics computed directly from the events; both stores must give the
// same baselines, since the same builder runs on both. Then a restarted
// cache reloads exactly what the online cache learned, and a new value is
// novel once and then known, across a rebuild and a reload too.
func TestMonthOfBaselinesOnBothStores(t *testing.T) {
	ctx := context.Background()
	ch := chstoretest.Open(t)
	mem := memstore.New()
	evs := monthOfEvents(t)
	want := expectations(evs)
	online := baseline.NewCache(baseline.CacheOptions{})
	online.Lock()
	for i := range evs {
		online.Observe(online.Get(evs[i].Identity), &evs[i])
	}
	online.Unlock()
	for i := 0; i < len(evs); i += 20000 {
		batch := evs[i:min(i+20000, len(evs))]
		if err := ch.WriteEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
		if err := mem.WriteEvents(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	through := monthStart.Add(30 * 24 * time.Hour)
	opts := baseline.RebuildOptions{Clock: func() time.Time { return through }}
	built := map[string]map[string]*baseline.Baseline{}
	for name, store := range map[string]baseline.Store{"clickhouse": ch, "memstore": mem} {
		st, err := baseline.NewRebuilder(store, nil, nil, opts, nil).Rebuild(ctx, false)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if st.Built != len(want) {
			t.Errorf("%s: built %d baselines, want %d", name, st.Built, len(want))
		}
		built[name] = map[string]*baseline.Baseline{}
		err = store.LoadBaselines(ctx, nil, func(b *baseline.Baseline) error {
			built[name][b.Identity.ID] = b
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for id, e := range want {
			b := built[name][id]
			if b == nil {
				t.Errorf("%s: no baseline for %s", name, id)
				continue
			}
			checkBaseline(t, name, b, e)
		}
	}
	for id, b := range built["clickhouse"] {
		m := built["memstore"][id]
		if m == nil {
			t.Errorf("memstore lacks %s", id)
			continue
		}
		x, y := *b, *m
		x.Version, y.Version, x.BuiltAt, y.BuiltAt = 0, 0, time.Time{}, time.Time{}
		bj, _ := json.Marshal(x)
		mj, _ := json.Marshal(y)
		if string(bj) != string(mj) {
			t.Errorf("%s: the stores' baselines differ:\nclickhouse %s\nmemstore   %s", id, bj, mj)
		}
	}

	// A restart: a new cache loads what the online one learned.
	reloaded := baseline.NewCache(baseline.CacheOptions{Loader: ch})
	if err := reloaded.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if reloaded.Len() != online.Len() {
		t.Fatalf("reloaded %d identities, online %d", reloaded.Len(), online.Len())
	}
	end := through
	online.Lock()
	reloaded.Lock()
	for id := range want {
		o, r := online.Get(schemas.Identity{ID: id}), reloaded.Get(schemas.Identity{ID: id})
		if o.Events != r.Events {
			t.Errorf("%s: events online %d, reloaded %d", id, o.Events, r.Events)
		}
		for d := range baseline.NumDims {
			if o.KnownCount(d) != r.KnownCount(d) {
				t.Errorf("%s: %s known online %d, reloaded %d", id, d, o.KnownCount(d), r.KnownCount(d))
			}
		}
		om, osd, oh := o.HourlyStats(end)
		rm, rsd, rh := r.HourlyStats(end)
		if math.Abs(om-rm) > 1e-9 || math.Abs(osd-rsd) > 1e-9 || oh != rh {
			t.Errorf("%s: hourly online %v±%v/%d, reloaded %v±%v/%d", id, om, osd, oh, rm, rsd, rh)
		}
		if ow, rw := o.Window(o.LastSeen), r.Window(o.LastSeen); ow != rw {
			t.Errorf("%s: window online %+v, reloaded %+v", id, ow, rw)
		}
	}
	online.Unlock()

	// A new value: novel once, then known, and still known after it is
	// stored, rebuilt and reloaded.
	var id string
	for k := range want {
		id = k
		break
	}
	p := reloaded.Get(schemas.Identity{ID: id})
	ev := schemas.Event{
		ID: "new-value-event", Time: schemas.At(end.Add(-time.Minute)), IngestTime: schemas.At(time.Now()),
		Identity: p.Identity, Action: "iam:CreateAccessKey", Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
		Source: schemas.Source{Family: schemas.FamilyCloudAudit, Format: "cloudtrail"},
	}
	if p.Knows(baseline.DimAction, ev.Action) {
		t.Fatal("a never-used action is known")
	}
	reloaded.Observe(p, &ev)
	if !reloaded.Get(p.Identity).Knows(baseline.DimAction, ev.Action) {
		t.Fatal("an action used a minute ago is still new")
	}
	reloaded.Unlock()
	if err := ch.WriteEvents(ctx, []schemas.Event{ev}); err != nil {
		t.Fatal(err)
	}
	st, err := baseline.NewRebuilder(ch, nil, nil, opts, nil).Rebuild(ctx, false)
	// The rollup re-reads a margin before its mark, so identities active
	// just before it count as changed too; the one with the new event must.
	if err != nil || st.Built == 0 || st.Built > len(want) {
		t.Fatalf("incremental rebuild built %d: %v", st.Built, err)
	}
	again := baseline.NewCache(baseline.CacheOptions{Loader: ch})
	if err := again.Load(ctx); err != nil {
		t.Fatal(err)
	}
	again.Lock()
	defer again.Unlock()
	if !again.Get(p.Identity).Knows(baseline.DimAction, ev.Action) {
		t.Fatal("the new action is new again after a rebuild and reload")
	}
}
