package memstore

import (
	"context"
	"fmt"
	"math/bits"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/schemas"
)

var t0 = time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC) // a Monday

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

// mk makes an event of identity who at t; opts fill in the rest.
func mk(id, who string, t time.Time, opts ...func(*schemas.Event)) schemas.Event {
	ev := schemas.Event{
		ID:       id,
		Time:     schemas.Time{Time: t},
		Identity: schemas.Identity{ID: who, Kind: schemas.KindWorkload},
		Action:   "GET /",
		Outcome:  schemas.Outcome{Result: schemas.ResultSuccess},
	}
	for _, o := range opts {
		o(&ev)
	}
	return ev
}

func result(r schemas.Result) func(*schemas.Event) {
	return func(e *schemas.Event) { e.Outcome.Result = r }
}

func sizes(in, out uint64, ms float64) func(*schemas.Event) {
	return func(e *schemas.Event) { e.BytesIn, e.BytesOut, e.DurationMS = in, out, ms }
}

func ip(a string) func(*schemas.Event) { return func(e *schemas.Event) { e.Actor.IP = a } }

func peer(p string) func(*schemas.Event) { return func(e *schemas.Event) { e.Target.Peer = p } }

func action(a string) func(*schemas.Event) { return func(e *schemas.Event) { e.Action = a } }

func actor(ns, wl string) func(*schemas.Event) {
	return func(e *schemas.Event) { e.Actor.Namespace, e.Actor.Workload = ns, wl }
}

func issued(cred, issuer string, ttl int64) func(*schemas.Event) {
	return func(e *schemas.Event) {
		e.Source.Family = schemas.FamilyIssuance
		e.Issuance = &schemas.Issuance{Credential: cred, Issuer: issuer, TTLSeconds: ttl}
	}
}

func with(f func(*schemas.Event)) func(*schemas.Event) { return f }

// bucket is baseline.Bucket computed another way, so the test does not
// check the store against the code it calls.
func bucket(x float64) uint8 {
	if x < 1 {
		return 0
	}
	return uint8(bits.Len64(uint64(x)+1) - 1)
}

// expect computes, straight from the events, the histories the store must
// return for from: hour rows at or after from's hour, values of events on or
// after from's UTC day, issuances at or after from.
func expect(events []schemas.Event, from time.Time) map[string]*baseline.History {
	type dv struct {
		dim   baseline.Dim
		value string
	}
	type acc struct {
		h          baseline.History
		kindAt     time.Time
		nameAt     time.Time
		hours      map[int64]*baseline.HourRollup
		values     map[dv]*baseline.ValueRollup
		ns, wl     map[string]int
		seen       map[string]bool
		anyCounted bool
	}
	all := map[string]*acc{}
	callers := map[string]map[string]bool{}
	fromHour := from.Unix() / 3600
	fromDay := from.Unix() / 86400
	if from.IsZero() {
		fromHour, fromDay = -1<<62, -1<<62
	}
	for _, ev := range events {
		who := ev.Identity.ID
		if who == "" {
			continue
		}
		a := all[who]
		if a == nil {
			a = &acc{
				hours: map[int64]*baseline.HourRollup{}, values: map[dv]*baseline.ValueRollup{},
				ns: map[string]int{}, wl: map[string]int{}, seen: map[string]bool{},
			}
			a.h.Identity.ID = who
			all[who] = a
		}
		t := ev.Time.Time.UTC()
		if key := fmt.Sprint(t.Unix()/3600, ev.ID); ev.ID != "" {
			if a.seen[key] {
				continue
			}
			a.seen[key] = true
		}
		sec := t.Truncate(time.Second)
		if k := string(ev.Identity.Kind); k != "" && (a.h.Identity.Kind == "" || t.After(a.kindAt) || (t.Equal(a.kindAt) && k > string(a.h.Identity.Kind))) {
			a.h.Identity.Kind, a.kindAt = ev.Identity.Kind, t
		}
		if n := ev.Identity.Name; n != "" && (a.h.Identity.Name == "" || t.After(a.nameAt) || (t.Equal(a.nameAt) && n > a.h.Identity.Name)) {
			a.h.Identity.Name, a.nameAt = n, t
		}
		if hr := t.Unix() / 3600; hr >= fromHour {
			a.anyCounted = true
			r := a.hours[hr]
			if r == nil {
				r = &baseline.HourRollup{Hour: hr, First: sec, Last: sec,
					BytesInHist: baseline.Hist{}, BytesOutHist: baseline.Hist{}, DurationHist: baseline.Hist{}}
				a.hours[hr] = r
			}
			r.Events++
			if ev.Outcome.Result == schemas.ResultDenied {
				r.Denied++
			}
			if ev.Outcome.Result == schemas.ResultFailure {
				r.Failures++
			}
			r.BytesIn += ev.BytesIn
			r.BytesOut += ev.BytesOut
			r.DurationMS += ev.DurationMS
			if sec.Before(r.First) {
				r.First = sec
			}
			if sec.After(r.Last) {
				r.Last = sec
			}
			r.BytesInHist[bucket(float64(ev.BytesIn))]++
			r.BytesOutHist[bucket(float64(ev.BytesOut))]++
			r.DurationHist[bucket(ev.DurationMS)]++
		}
		if t.Unix()/86400 >= fromDay {
			for d, v := range baseline.Values(&ev) {
				if v == "" {
					continue
				}
				a.anyCounted = true
				k := dv{baseline.Dim(d), v}
				r := a.values[k]
				if r == nil {
					r = &baseline.ValueRollup{Dim: k.dim, Value: v, FirstSeen: sec, LastSeen: sec}
					a.values[k] = r
				}
				r.Count++
				if sec.Before(r.FirstSeen) {
					r.FirstSeen = sec
				}
				if sec.After(r.LastSeen) {
					r.LastSeen = sec
				}
				if k.dim == baseline.DimPeer {
					if callers[v] == nil {
						callers[v] = map[string]bool{}
					}
					callers[v][who] = true
				}
			}
			if ev.Actor.Namespace != "" {
				a.ns[ev.Actor.Namespace]++
			}
			if ev.Actor.Workload != "" {
				a.wl[ev.Actor.Workload]++
			}
		}
		if is := ev.Issuance; is != nil && is.Credential != "" && !t.Before(from) {
			a.anyCounted = true
			ttl := time.Duration(max(is.TTLSeconds, 0)) * time.Second
			a.h.Issuances = append(a.h.Issuances, baseline.IssuanceRollup{Credential: is.Credential, Issuer: is.Issuer, IssuedAt: t, TTL: ttl})
		}
	}
	top := func(m map[string]int) string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			if m[keys[i]] != m[keys[j]] {
				return m[keys[i]] > m[keys[j]]
			}
			return keys[i] < keys[j]
		})
		if len(keys) == 0 {
			return ""
		}
		return keys[0]
	}
	out := map[string]*baseline.History{}
	for who, a := range all {
		if !a.anyCounted {
			continue
		}
		h := a.h
		for _, r := range a.hours {
			h.Hours = append(h.Hours, *r)
		}
		sort.Slice(h.Hours, func(i, j int) bool { return h.Hours[i].Hour < h.Hours[j].Hour })
		for _, v := range a.values {
			h.Values = append(h.Values, *v)
		}
		sort.Slice(h.Values, func(i, j int) bool {
			if h.Values[i].Dim != h.Values[j].Dim {
				return h.Values[i].Dim < h.Values[j].Dim
			}
			return h.Values[i].Value < h.Values[j].Value
		})
		sort.SliceStable(h.Issuances, func(i, j int) bool { return h.Issuances[i].IssuedAt.Before(h.Issuances[j].IssuedAt) })
		h.Namespace, h.Workload = top(a.ns), top(a.wl)
		for c := range callers[who] {
			h.Callers = append(h.Callers, c)
		}
		sort.Strings(h.Callers)
		out[who] = &h
	}
	return out
}

// histories returns every history the store has for from, by identity.
func histories(t *testing.T, s *Store, ids []string, from time.Time) map[string]*baseline.History {
	t.Helper()
	out := map[string]*baseline.History{}
	err := s.Histories(context.Background(), ids, from, func(h *baseline.History) error {
		if out[h.Identity.ID] != nil {
			t.Errorf("history of %s delivered twice", h.Identity.ID)
		}
		c := *h
		out[h.Identity.ID] = &c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffHistories(t *testing.T, got, want map[string]*baseline.History) {
	t.Helper()
	for id, w := range want {
		g := got[id]
		if g == nil {
			t.Errorf("%s: no history, want %+v", id, *w)
			continue
		}
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: history\n got %+v\nwant %+v", id, *g, *w)
		}
	}
	for id := range got {
		if want[id] == nil {
			t.Errorf("%s: unexpected history %+v", id, *got[id])
		}
	}
}

func write(t testing.TB, s *Store, events ...schemas.Event) {
	t.Helper()
	if err := s.WriteEvents(context.Background(), events); err != nil {
		t.Fatal(err)
	}
}

// corpus is a mix of everything the rollups fold: outcomes, sizes on bucket
// edges, sub-second and out-of-order times, IPv4, IPv6, mapped and broken
// addresses, peers, issuances, namespaces, several hours, days and
// identities.
func corpus() []schemas.Event {
	a, b, c := "spiffe://td/ns/pay/sa/api", "aws:role/1/etl", "apikey:gw:k1"
	return []schemas.Event{
		mk("e1", a, at(10*time.Minute+500*time.Millisecond), sizes(0, 1, 0.5), ip("10.1.2.3"), peer(b), actor("pay", "api")),
		mk("e2", a, at(5*time.Minute+900*time.Millisecond), sizes(1023, 1024, 1), result(schemas.ResultDenied), ip("10.1.2.200"), peer(b), actor("pay", "api")),
		mk("e3", a, at(59*time.Minute), sizes(1<<20, 3, 250.75), result(schemas.ResultFailure), ip("2001:db8:1:2::7"), peer(c), actor("pay", "api-canary")),
		mk("e4", a, at(61*time.Minute), sizes(7, 8, -3), ip("::ffff:10.1.2.9"), action("POST /pay"), actor("", "")),
		mk("e5", a, at(26*time.Hour), ip("not an ip"), action("POST /pay"), with(func(e *schemas.Event) {
			e.Source.Region, e.Source.Cluster, e.Target.Resource, e.Actor.UserAgent, e.Credential.ID = "eu-west-1", "prod", "arn:x", "curl/8", "cred-1"
			e.Identity.Name = "api"
		})),
		mk("e6", b, at(2*time.Hour), issued("cert-1", "ca-1", 3600), sizes(10, 20, 30)),
		mk("e7", b, at(2*time.Hour+time.Second), issued("", "ca-1", 3600)),
		mk("e8", b, at(30*time.Hour), issued("cert-2", "ca-2", -5), peer(a), result(schemas.ResultDenied)),
		mk("e9", c, at(-2*time.Hour), sizes(1, 1, 1), actor("edge", "")),
		mk("e10", "", at(0)), // no identity: skipped
		mk("e1", a, at(10*time.Minute+500*time.Millisecond)), // replay within the batch
		mk("", c, at(-2*time.Hour+time.Minute)),              // no id: always folded in
	}
}

func TestHistoriesMatchEvents(t *testing.T) {
	cases := []struct {
		name   string
		events []schemas.Event
	}{
		{"corpus", corpus()},
		{"one event", []schemas.Event{mk("x", "id", at(0), sizes(5, 6, 7))}},
		{"no values", []schemas.Event{mk("x", "id", at(0), action(""))}},
		{"only skipped", []schemas.Event{mk("x", "", at(0))}},
		{"hour boundary", []schemas.Event{
			mk("x1", "id", at(time.Hour-time.Nanosecond)), mk("x2", "id", at(time.Hour)), mk("x3", "id", at(24*time.Hour-time.Nanosecond)),
		}},
	}
	froms := []struct {
		name string
		from time.Time
	}{
		{"zero", time.Time{}},
		{"before everything", at(-100 * time.Hour)},
		{"mid first hour", at(30 * time.Minute)},
		{"next hour", at(time.Hour)},
		{"next day", at(24 * time.Hour)},
		{"non-UTC zone", at(26 * time.Hour).In(time.FixedZone("x", -7*3600))},
		{"after everything", at(1000 * time.Hour)},
	}
	for _, c := range cases {
		for _, f := range froms {
			t.Run(c.name+"/"+f.name, func(t *testing.T) {
				s := New()
				write(t, s, c.events...)
				diffHistories(t, histories(t, s, nil, f.from), expect(c.events, f.from))
			})
		}
	}
}

// TestRollupValues pins the values the reference computes too, so a bug
// shared by both would still show.
func TestRollupValues(t *testing.T) {
	s := New()
	write(t, s, corpus()...)
	h := histories(t, s, []string{"spiffe://td/ns/pay/sa/api"}, time.Time{})["spiffe://td/ns/pay/sa/api"]
	if h == nil {
		t.Fatal("no history")
	}
	var nets []string
	for _, v := range h.Values {
		if v.Dim == baseline.DimNetwork {
			nets = append(nets, fmt.Sprintf("%s=%d", v.Value, v.Count))
		}
	}
	if want := []string{"10.1.2.0/24=3", "2001:db8:1:2::/64=1"}; !slices.Equal(nets, want) {
		t.Errorf("networks %v, want %v", nets, want)
	}
	first := h.Hours[0]
	want := baseline.HourRollup{
		Hour: t0.Unix() / 3600, Events: 3, Denied: 1, Failures: 1,
		BytesIn: 1023 + 1<<20, BytesOut: 1024 + 1 + 3, DurationMS: 252.25,
		First: at(5 * time.Minute), Last: at(59 * time.Minute),
		BytesInHist:  baseline.Hist{0: 1, 10: 1, 20: 1},
		BytesOutHist: baseline.Hist{1: 1, 2: 1, 10: 1},
		DurationHist: baseline.Hist{0: 1, 1: 1, 7: 1},
	}
	if !reflect.DeepEqual(first, want) {
		t.Errorf("first hour\n got %+v\nwant %+v", first, want)
	}
	if h.Identity != (schemas.Identity{ID: "spiffe://td/ns/pay/sa/api", Kind: schemas.KindWorkload, Name: "api"}) {
		t.Errorf("identity %+v", h.Identity)
	}
	if h.Namespace != "pay" || h.Workload != "api" {
		t.Errorf("namespace %q workload %q, want pay api", h.Namespace, h.Workload)
	}
	b := histories(t, s, []string{"aws:role/1/etl"}, time.Time{})["aws:role/1/etl"]
	wantIss := []baseline.IssuanceRollup{
		{Credential: "cert-1", Issuer: "ca-1", IssuedAt: at(2 * time.Hour), TTL: time.Hour},
		{Credential: "cert-2", Issuer: "ca-2", IssuedAt: at(30 * time.Hour)},
	}
	if !reflect.DeepEqual(b.Issuances, wantIss) {
		t.Errorf("issuances %+v, want %+v", b.Issuances, wantIss)
	}
	if want := []string{"spiffe://td/ns/pay/sa/api"}; !slices.Equal(b.Callers, want) {
		t.Errorf("callers of etl %v, want %v", b.Callers, want)
	}
}

// TestFromGranularity pins the documented from semantics: hours filter by
// hour, values by UTC day, issuances exactly.
func TestFromGranularity(t *testing.T) {
	s := New()
	write(t, s,
		mk("1", "id", at(time.Hour), action("early"), issued("c1", "ca", 60)),
		mk("2", "id", at(5*time.Hour+10*time.Minute), action("late")),
		mk("3", "id", at(5*time.Hour+40*time.Minute), action("late"), issued("c2", "ca", 60)),
		mk("4", "id", at(-10*time.Hour), action("yesterday")),
	)
	cases := []struct {
		from      time.Time
		hours     int
		actions   []string
		issuances []string
	}{
		{time.Time{}, 3, []string{"early", "late", "yesterday"}, []string{"c1", "c2"}},
		{at(5*time.Hour + 30*time.Minute), 1, []string{"early", "late"}, []string{"c2"}},
		{at(5*time.Hour + 41*time.Minute), 1, []string{"early", "late"}, nil},
		{at(6 * time.Hour), 0, []string{"early", "late"}, nil}, // values of the day still count
		{at(15 * time.Hour), 0, nil, nil},                      // next day: nothing, no history
	}
	for _, c := range cases {
		t.Run(c.from.Format(time.RFC3339), func(t *testing.T) {
			h := histories(t, s, nil, c.from)["id"]
			if c.actions == nil && c.hours == 0 {
				if h != nil {
					t.Fatalf("history %+v, want none", *h)
				}
				return
			}
			if h == nil {
				t.Fatal("no history")
			}
			var acts, creds []string
			for _, v := range h.Values {
				if v.Dim == baseline.DimAction {
					acts = append(acts, v.Value)
				}
			}
			for _, is := range h.Issuances {
				creds = append(creds, is.Credential)
			}
			if len(h.Hours) != c.hours || !slices.Equal(acts, c.actions) || !slices.Equal(creds, c.issuances) {
				t.Errorf("hours %d actions %v issuances %v, want %d %v %v", len(h.Hours), acts, creds, c.hours, c.actions, c.issuances)
			}
		})
	}
}

func TestReplayAndRollup(t *testing.T) {
	ctx := context.Background()
	s := New()
	s.now = func() time.Time { return t0 } // a stuck clock: stamps must still advance
	changed, next, err := s.Rollup(ctx, time.Time{})
	if err != nil || changed != nil || !next.IsZero() {
		t.Fatalf("empty store: %v %v %v", changed, next, err)
	}
	batch := corpus()
	write(t, s, batch...)
	before := histories(t, s, nil, time.Time{})

	steps := []struct {
		name   string
		write  []schemas.Event
		since  string // "zero" or "last"
		want   []string
		sameAs bool // the histories must be unchanged
	}{
		{"first rollup", nil, "zero", []string{"apikey:gw:k1", "aws:role/1/etl", "spiffe://td/ns/pay/sa/api"}, true},
		{"replayed batch", batch[:11], "last", nil, true},
		{"nothing new", nil, "last", nil, true},
		{"one new event among replays", append(slices.Clone(batch[:3]), mk("new", "aws:role/1/etl", at(3*time.Hour))), "last", []string{"aws:role/1/etl"}, false},
		{"everything since zero", nil, "zero", []string{"apikey:gw:k1", "aws:role/1/etl", "spiffe://td/ns/pay/sa/api"}, false},
	}
	var last time.Time
	for _, st := range steps {
		write(t, s, st.write...)
		mark := last
		if st.since == "zero" {
			mark = time.Time{}
		}
		changed, next, err := s.Rollup(ctx, mark)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(changed, st.want) {
			t.Errorf("%s: changed %v, want %v", st.name, changed, st.want)
		}
		if next.Before(last) || (len(changed) > 0 && !next.After(mark)) {
			t.Errorf("%s: next mark %v after %v", st.name, next, last)
		}
		last = next
		if st.sameAs {
			diffHistories(t, histories(t, s, nil, time.Time{}), before)
		}
	}
	// Rolling up the same events twice gives the same rollups.
	diffHistories(t, histories(t, s, nil, time.Time{}), expect(append(batch, mk("new", "aws:role/1/etl", at(3*time.Hour))), time.Time{}))
}

func TestMarkAndClock(t *testing.T) {
	ctx := context.Background()
	s := New()
	clock := t0
	s.now = func() time.Time { return clock }
	write(t, s, mk("1", "a", at(0)))
	_, m1, _ := s.Rollup(ctx, time.Time{})
	if !m1.Equal(t0) {
		t.Errorf("mark %v, want the wall clock %v", m1, t0)
	}
	clock = t0.Add(-time.Hour) // the clock steps back
	write(t, s, mk("2", "b", at(0)))
	changed, m2, _ := s.Rollup(ctx, m1)
	if !slices.Equal(changed, []string{"b"}) || !m2.After(m1) {
		t.Errorf("after the clock stepped back: changed %v mark %v, want [b] after %v", changed, m2, m1)
	}
	if m, _ := s.Mark(ctx); !m.IsZero() {
		t.Errorf("initial Mark %v", m)
	}
	if err := s.SetMark(ctx, m2); err != nil {
		t.Fatal(err)
	}
	if m, _ := s.Mark(ctx); !m.Equal(m2) {
		t.Errorf("Mark %v, want %v", m, m2)
	}
}

func TestCallers(t *testing.T) {
	s := New()
	write(t, s,
		mk("1", "x", at(0)),
		mk("2", "a", at(0), peer("x")),
		mk("3", "b", at(-48*time.Hour), peer("x")),
		mk("4", "c", at(0), peer("y")),
		mk("5", "x", at(0), peer("x")), // calls itself
	)
	cases := []struct {
		from time.Time
		want []string
	}{
		{time.Time{}, []string{"a", "b", "x"}},
		{at(-24 * time.Hour), []string{"a", "x"}},
	}
	for _, c := range cases {
		h := histories(t, s, []string{"x", "x", "missing"}, c.from)["x"]
		if h == nil || !slices.Equal(h.Callers, c.want) {
			t.Errorf("from %v: callers %v, want %v", c.from, h, c.want)
		}
	}
}

func TestNamespaceWorkload(t *testing.T) {
	cases := []struct {
		name   string
		actors [][2]string
		ns, wl string
	}{
		{"none", [][2]string{{"", ""}}, "", ""},
		{"most frequent", [][2]string{{"a", "w1"}, {"b", "w2"}, {"b", "w2"}, {"a", "w3"}, {"b", ""}}, "b", "w2"},
		{"tie takes the smallest", [][2]string{{"z", "w9"}, {"m", "w1"}}, "m", "w1"},
		{"empty never wins", [][2]string{{"", ""}, {"", ""}, {"q", "w"}}, "q", "w"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := New()
			for i, a := range c.actors {
				write(t, s, mk(fmt.Sprint(i), "id", at(time.Duration(i)*time.Minute), actor(a[0], a[1])))
			}
			h := histories(t, s, nil, time.Time{})["id"]
			if h.Namespace != c.ns || h.Workload != c.wl {
				t.Errorf("namespace %q workload %q, want %q %q", h.Namespace, h.Workload, c.ns, c.wl)
			}
		})
	}
}

func TestIdentityKindName(t *testing.T) {
	name := func(k schemas.IdentityKind, n string) func(*schemas.Event) {
		return func(e *schemas.Event) { e.Identity.Kind, e.Identity.Name = k, n }
	}
	s := New()
	write(t, s,
		mk("1", "id", at(2*time.Hour), name("role", "")),
		mk("2", "id", at(time.Hour), name("user", "old")),
		mk("3", "id", at(3*time.Hour), name("", "")),
		mk("4", "id", at(-time.Hour), name("token", "older")),
	)
	h := histories(t, s, nil, time.Time{})["id"]
	if want := (schemas.Identity{ID: "id", Kind: "role", Name: "old"}); h.Identity != want {
		t.Errorf("identity %+v, want %+v", h.Identity, want)
	}
	// At equal times the choice must not depend on arrival order.
	tie := []schemas.Event{mk("1", "id", at(0), name("role", "b")), mk("2", "id", at(0), name("api_key", "a"))}
	for _, order := range [][]schemas.Event{tie, {tie[1], tie[0]}} {
		s := New()
		write(t, s, order...)
		if h, want := histories(t, s, nil, time.Time{})["id"], (schemas.Identity{ID: "id", Kind: "role", Name: "b"}); h.Identity != want {
			t.Errorf("tie: identity %+v, want %+v", h.Identity, want)
		}
	}
}

func TestHistoryIsACopy(t *testing.T) {
	s := New()
	write(t, s, corpus()...)
	want := histories(t, s, nil, time.Time{})
	err := s.Histories(context.Background(), nil, time.Time{}, func(h *baseline.History) error {
		for i := range h.Hours {
			h.Hours[i].BytesInHist[99] = 1
			h.Hours[i].Events = 0
		}
		for i := range h.Values {
			h.Values[i].Count = 0
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	diffHistories(t, histories(t, s, nil, time.Time{}), want)
}

func TestCallbackErrorAndContext(t *testing.T) {
	s := New()
	write(t, s, corpus()...)
	stop := fmt.Errorf("stop")
	n := 0
	err := s.Histories(context.Background(), nil, time.Time{}, func(*baseline.History) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("callback error: got %v after %d calls", err, n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WriteEvents(ctx, corpus()); err == nil {
		t.Error("WriteEvents with a cancelled context succeeded")
	}
	if err := s.Histories(ctx, nil, time.Time{}, func(*baseline.History) error { return nil }); err == nil {
		t.Error("Histories with a cancelled context succeeded")
	}
}

func TestBaselinesNewestVersionWins(t *testing.T) {
	ctx := context.Background()
	bl := func(id string, v int64) *baseline.Baseline {
		return &baseline.Baseline{
			Identity: schemas.Identity{ID: id}, Version: v, Class: fmt.Sprint("v", v),
			BuiltAt: at(time.Duration(v) * time.Hour), Known: []baseline.KnownSet{{Dim: "action", Values: []baseline.KnownValue{{Value: "a", Count: uint64(v)}}}},
		}
	}
	s := New()
	steps := []struct {
		save []*baseline.Baseline
		want map[string]int64
	}{
		{[]*baseline.Baseline{bl("a", 2), bl("b", 1)}, map[string]int64{"a": 2, "b": 1}},
		{[]*baseline.Baseline{bl("a", 1)}, map[string]int64{"a": 2, "b": 1}}, // older: dropped
		{[]*baseline.Baseline{bl("a", 3), bl("c", 7)}, map[string]int64{"a": 3, "b": 1, "c": 7}},
		{nil, map[string]int64{"a": 3, "b": 1, "c": 7}},
	}
	for i, st := range steps {
		if err := s.SaveBaselines(ctx, st.save); err != nil {
			t.Fatal(err)
		}
		got := map[string]int64{}
		var order []string
		err := s.LoadBaselines(ctx, nil, func(b *baseline.Baseline) error {
			got[b.Identity.ID] = b.Version
			order = append(order, b.Identity.ID)
			if b.Class != fmt.Sprint("v", b.Version) || b.Known[0].Values[0].Count != uint64(b.Version) {
				t.Errorf("step %d: %s baseline body does not match its version: %+v", i, b.Identity.ID, b)
			}
			b.Known[0].Values[0].Count = 999 // must not reach the store
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, st.want) || !slices.IsSorted(order) {
			t.Errorf("step %d: versions %v (order %v), want %v", i, got, order, st.want)
		}
	}
	var got []string
	s.LoadBaselines(ctx, []string{"c", "missing", "a"}, func(b *baseline.Baseline) error {
		got = append(got, fmt.Sprintf("%s%d%d", b.Identity.ID, b.Version, b.Known[0].Values[0].Count))
		return nil
	})
	if want := []string{"c77", "a33"}; !slices.Equal(got, want) {
		t.Errorf("selected %v, want %v", got, want)
	}
	if err := s.SaveBaselines(ctx, []*baseline.Baseline{bl("d", 1), {}}); err == nil {
		t.Error("a baseline without an identity was saved")
	}
	if err := s.LoadBaselines(ctx, []string{"d"}, func(*baseline.Baseline) error { t.Error("half a failed batch was saved"); return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	s := New()
	path := t.TempDir() + "/snap.gz"
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				who := fmt.Sprint("id", i%7)
				if err := s.WriteEvents(ctx, []schemas.Event{mk(fmt.Sprint(w, "-", i), who, at(time.Duration(i)*time.Minute), peer(fmt.Sprint("id", (i+1)%7)))}); err != nil {
					t.Error(err)
				}
				if i%50 == 0 {
					s.Histories(ctx, nil, time.Time{}, func(h *baseline.History) error {
						// fn may call back into the store.
						return s.SaveBaselines(ctx, []*baseline.Baseline{{Identity: h.Identity, Version: int64(i)}})
					})
					s.Rollup(ctx, time.Time{})
					if err := s.Snapshot(path); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	var n uint64
	s.Histories(ctx, nil, time.Time{}, func(h *baseline.History) error {
		for _, r := range h.Hours {
			n += r.Events
		}
		return nil
	})
	if n != 800 {
		t.Errorf("%d events rolled up, want 800", n)
	}
}

func BenchmarkWriteEvents(b *testing.B) {
	const batch, pool = 500, 200_000
	ids := make([]string, 50)
	for i := range ids {
		ids[i] = fmt.Sprintf("spiffe://td/ns/ns%d/sa/svc%d", i%5, i)
	}
	events := make([]schemas.Event, pool)
	for i := range events {
		events[i] = mk(fmt.Sprintf("gen:%016x", i), ids[i%len(ids)], at(time.Duration(i)*time.Second),
			sizes(uint64(i%5000), uint64(i%70000), float64(i%900)), ip(fmt.Sprintf("10.%d.%d.%d", i%3, i%7, i%250)),
			peer(ids[(i+1)%len(ids)]), action(strings.Repeat("x", 1+i%4)), actor(fmt.Sprint("ns", i%5), "svc"))
	}
	ctx := context.Background()
	s := New()
	next, n := 0, 0
	var m0, m1 runtime.MemStats
	b.ReportAllocs()
	runtime.ReadMemStats(&m0)
	for b.Loop() {
		n++
		if next+batch > pool {
			b.StopTimer()
			s, next = New(), 0
			b.StartTimer()
		}
		if err := s.WriteEvents(ctx, events[next:next+batch]); err != nil {
			b.Fatal(err)
		}
		next += batch
	}
	runtime.ReadMemStats(&m1)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n*batch), "ns/event")
	b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/float64(n*batch), "allocs/event")
}
