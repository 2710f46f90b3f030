package chstore_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/schemas"
)

const (
	idAPI     = "spiffe://example.org/ns/pay/sa/api"
	idLedger  = "spiffe://example.org/ns/db/sa/ledger"
	idRates   = "spiffe://example.org/ns/fx/sa/rates"
	idRole    = "aws:role/123456789012/deployer"
	idBuilder = "k8s:sa/prod/ci/builder"
	idWorker  = "spiffe://example.org/ns/pay/sa/worker" // appears only in the second batch
)

// rollupBase is 20:00 on the last day of a month, so the events span two
// days' and two months' partitions.
var rollupBase = time.Date(2026, 10, 31, 20, 0, 0, 0, time.UTC)

// specialSizes are the values whose log2 buckets the SQL must get exactly
// right: the edges of small buckets and numbers just below a power of two,
// where a float log2 rounds up.
var specialSizes = []uint64{0, 1, 2, 3, 1023, 1024, 1<<50 - 2, 1<<49 - 2, 1<<20 + 7}

// craftEvents returns n pseudo-random events over 50 hours from rollupBase
// followed by a tail of events of idAPI alone in the 51st hour, each
// ingested 45 s after it happened, so only idAPI has events ingested in the
// RollupOverlap before the last ingest time.
func craftEvents(n int) []schemas.Event {
	r := rand.New(rand.NewPCG(1, 2))
	ids := []string{idAPI, idLedger, idRates, idRole, idBuilder}
	var evs []schemas.Event
	add := func(id string, at time.Time) *schemas.Event {
		i := len(evs)
		evs = append(evs, schemas.Event{
			ID:         fmt.Sprintf("ev-%04d", i),
			Time:       schemas.At(at),
			IngestTime: schemas.At(at.Add(45 * time.Second)),
			Identity:   schemas.Identity{ID: id},
			Outcome:    schemas.Outcome{Result: schemas.ResultSuccess},
			BytesIn:    uint64(r.IntN(5000)),
			BytesOut:   specialSizes[r.IntN(len(specialSizes))],
			DurationMS: float64(r.IntN(4000)) / 4,
			Provenance: schemas.Provenance{Topic: "t", Offset: int64(i)},
		})
		ev := &evs[i]
		switch i % 7 {
		case 3:
			ev.Outcome.Result = schemas.ResultDenied
		case 5:
			ev.Outcome.Result = schemas.ResultFailure
		}
		if i%11 == 0 {
			ev.DurationMS = -1 // a decoder's "unknown"; bucket 0 like Go
		}
		switch id {
		case idAPI, idLedger, idRates:
			ev.Identity.Kind = schemas.KindWorkload
			ev.Identity.Name = strings.TrimPrefix(id, "spiffe://example.org/")
			ev.Source = schemas.Source{Family: schemas.FamilyMesh, Format: "envoy", Cluster: "prod"}
			peers := map[string][]string{idAPI: {idLedger, idRates}, idLedger: {idRates}, idRates: {""}}[id]
			ev.Target.Peer = peers[r.IntN(len(peers))]
			ev.Action = []string{"GET /v1/payments/{id}", "POST /v1/payments", "GET /healthz"}[r.IntN(3)]
			ev.Actor.IP = fmt.Sprintf("10.1.%d.%d", 2+r.IntN(2), 1+r.IntN(200)) // two /24s
			if id == idLedger {
				ev.Actor.IP = fmt.Sprintf("2001:db8:1:%x::%x", r.IntN(2), 1+r.IntN(200))
			}
			ns := strings.Split(id, "/")[4]
			ev.Actor.Namespace, ev.Actor.Workload = ns, ns+"-v1"
			if r.IntN(4) == 0 {
				ev.Actor.Namespace, ev.Actor.Workload = ns+"-canary", ns+"-canary-v2"
			}
		case idRole:
			ev.Identity.Kind, ev.Identity.Name = schemas.KindRole, "deployer"
			ev.Source = schemas.Source{Family: schemas.FamilyCloudAudit, Format: "cloudtrail", Account: "123456789012",
				Region: []string{"us-east-1", "eu-west-1"}[r.IntN(2)]}
			ev.Action = []string{"s3:GetObject", "s3:PutObject", "iam:PassRole"}[r.IntN(3)]
			ev.Target.Resource = fmt.Sprintf("arn:aws:s3:::bucket/key-%d", r.IntN(4))
			ev.Actor.IP = []string{"198.51.100.7", "198.51.100.9", "203.0.113.4", "AWS Internal"}[r.IntN(4)]
			ev.Actor.UserAgent = []string{"aws-cli/2.15", "Boto3/1.34"}[r.IntN(2)]
			ev.Credential.ID = fmt.Sprintf("ASIA%04d", r.IntN(3))
		case idBuilder:
			ev.Identity.Kind = schemas.KindServiceAccount
			ev.Source = schemas.Source{Family: schemas.FamilyIssuance, Format: "k8s-audit", Cluster: "prod"}
			ev.Action = "k8s:create:serviceaccounts/token"
			ev.Actor.Namespace = "ci"
			ev.Issuance = &schemas.Issuance{
				Credential: fmt.Sprintf("tok-%d", i), Issuer: []string{"k8s:prod", "k8s:prod-2"}[r.IntN(2)],
				TTLSeconds: []int64{3600, 600, 0}[r.IntN(3)], Subject: id,
			}
			if r.IntN(5) == 0 {
				ev.Issuance.Credential = "" // an issuance record without a credential id
			}
		}
		return ev
	}
	for range n {
		id := ids[r.IntN(len(ids))]
		at := rollupBase.Add(time.Duration(r.Int64N(int64(50 * time.Hour))))
		if r.IntN(3) == 0 {
			at = at.Truncate(time.Second) // some events on whole seconds
		}
		add(id, at)
	}
	for i := range 12 {
		add(idAPI, rollupBase.Add(50*time.Hour+time.Duration(i)*5*time.Minute+123*time.Millisecond))
	}
	// An event without an identity belongs to no baseline.
	add("", rollupBase.Add(time.Hour))
	return evs
}

// expectHistories computes in Go, from the events themselves, what
// Histories must return: the same rules as the rollup SQL (hours by Unix
// hour, values by UTC day, DateTime's whole seconds in rollups) but through
// baseline.Values, baseline.Bucket and baseline.Network.
func expectHistories(evs []schemas.Event, from time.Time) map[string]*baseline.History {
	type vk struct {
		dim baseline.Dim
		val string
	}
	type acc struct {
		h       *baseline.History
		hours   map[int64]*baseline.HourRollup
		values  map[vk]*baseline.ValueRollup
		ns, wl  map[string]uint64
		callers map[string]bool
		kindAt  time.Time
		nameAt  time.Time
	}
	accs := map[string]*acc{}
	get := func(id string) *acc {
		a := accs[id]
		if a == nil {
			a = &acc{h: &baseline.History{Identity: schemas.Identity{ID: id}}, hours: map[int64]*baseline.HourRollup{},
				values: map[vk]*baseline.ValueRollup{}, ns: map[string]uint64{}, wl: map[string]uint64{}, callers: map[string]bool{}}
			accs[id] = a
		}
		return a
	}
	seen := map[string]bool{}
	fromHour, fromDay := from.Unix()/3600, from.Unix()/86400
	if from.IsZero() {
		fromHour, fromDay = 0, 0
	}
	for i := range evs {
		ev := &evs[i]
		if ev.Identity.ID == "" || seen[ev.ID] {
			continue
		}
		seen[ev.ID] = true
		t := ev.Time.Time.UTC()
		sec := time.Unix(t.Unix(), 0).UTC()
		a := get(ev.Identity.ID)
		if k := ev.Identity.Kind; k != "" && (t.After(a.kindAt) || a.h.Identity.Kind == "") {
			a.h.Identity.Kind, a.kindAt = k, t
		}
		if n := ev.Identity.Name; n != "" && (t.After(a.nameAt) || a.h.Identity.Name == "") {
			a.h.Identity.Name, a.nameAt = n, t
		}
		if hour := t.Unix() / 3600; hour >= fromHour {
			r := a.hours[hour]
			if r == nil {
				r = &baseline.HourRollup{Hour: hour, First: sec, Last: sec,
					BytesInHist: baseline.Hist{}, BytesOutHist: baseline.Hist{}, DurationHist: baseline.Hist{}}
				a.hours[hour] = r
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
			r.First, r.Last = minTime(r.First, sec), maxTime(r.Last, sec)
			r.BytesInHist[baseline.Bucket(float64(ev.BytesIn))]++
			r.BytesOutHist[baseline.Bucket(float64(ev.BytesOut))]++
			r.DurationHist[baseline.Bucket(ev.DurationMS)]++
		}
		if t.Unix()/86400 >= fromDay {
			for d, v := range baseline.Values(ev) {
				if v == "" {
					continue
				}
				k := vk{baseline.Dim(d), v}
				if x := a.values[k]; x == nil {
					a.values[k] = &baseline.ValueRollup{Dim: k.dim, Value: v, FirstSeen: sec, LastSeen: sec, Count: 1}
				} else {
					x.FirstSeen, x.LastSeen, x.Count = minTime(x.FirstSeen, sec), maxTime(x.LastSeen, sec), x.Count+1
				}
			}
			if ev.Actor.Namespace != "" {
				a.ns[ev.Actor.Namespace]++
			}
			if ev.Actor.Workload != "" {
				a.wl[ev.Actor.Workload]++
			}
			if p := ev.Target.Peer; p != "" {
				get(p).callers[ev.Identity.ID] = true
			}
		}
		if is := ev.Issuance; is != nil && is.Credential != "" && !t.Before(from) {
			ir := baseline.IssuanceRollup{Credential: is.Credential, Issuer: is.Issuer, IssuedAt: t}
			if is.TTLSeconds > 0 {
				ir.TTL = time.Duration(is.TTLSeconds) * time.Second
			}
			a.h.Issuances = append(a.h.Issuances, ir)
		}
	}
	out := map[string]*baseline.History{}
	for id, a := range accs {
		h := a.h
		for _, r := range a.hours {
			h.Hours = append(h.Hours, *r)
		}
		slices.SortFunc(h.Hours, func(x, y baseline.HourRollup) int { return cmp.Compare(x.Hour, y.Hour) })
		for _, v := range a.values {
			h.Values = append(h.Values, *v)
		}
		slices.SortFunc(h.Values, func(x, y baseline.ValueRollup) int {
			return cmp.Or(cmp.Compare(x.Dim, y.Dim), strings.Compare(x.Value, y.Value))
		})
		slices.SortFunc(h.Issuances, func(x, y baseline.IssuanceRollup) int {
			return cmp.Or(x.IssuedAt.Compare(y.IssuedAt), strings.Compare(x.Credential, y.Credential))
		})
		for c := range a.callers {
			h.Callers = append(h.Callers, c)
		}
		slices.Sort(h.Callers)
		h.Namespace, h.Workload = top(a.ns), top(a.wl)
		if len(h.Hours) == 0 && len(h.Values) == 0 && len(h.Issuances) == 0 {
			continue // only called by others: not an identity with rollups
		}
		out[id] = h
	}
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
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

func top(m map[string]uint64) string {
	best, n := "", uint64(0)
	for v, c := range m {
		if c > n || (c == n && v < best) {
			best, n = v, c
		}
	}
	return best
}

// histories collects what Histories returns, in call order.
func histories(t *testing.T, s *chstore.Store, ids []string, from time.Time) ([]string, map[string]*baseline.History) {
	t.Helper()
	var order []string
	got := map[string]*baseline.History{}
	err := s.Histories(context.Background(), ids, from, func(h *baseline.History) error {
		order = append(order, h.Identity.ID)
		c := *h // fn must not retain h; the copy shares slices, which the store does not reuse
		got[h.Identity.ID] = &c
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return order, got
}

// compareHistories reports every field of every identity that differs.
func compareHistories(t *testing.T, got, want map[string]*baseline.History) {
	t.Helper()
	for _, id := range sortedKeys(want) {
		w, g := want[id], got[id]
		if g == nil {
			t.Errorf("%s: no history", id)
			continue
		}
		if g.Identity != w.Identity {
			t.Errorf("%s: identity %+v, want %+v", id, g.Identity, w.Identity)
		}
		if g.Namespace != w.Namespace || g.Workload != w.Workload {
			t.Errorf("%s: namespace/workload %q/%q, want %q/%q", id, g.Namespace, g.Workload, w.Namespace, w.Workload)
		}
		if len(g.Hours) != len(w.Hours) {
			t.Errorf("%s: %d hours, want %d", id, len(g.Hours), len(w.Hours))
		} else {
			for i := range w.Hours {
				if !reflect.DeepEqual(g.Hours[i], w.Hours[i]) {
					t.Errorf("%s: hour %d:\n got %+v\nwant %+v", id, i, g.Hours[i], w.Hours[i])
				}
			}
		}
		if !reflect.DeepEqual(g.Values, w.Values) {
			t.Errorf("%s: values differ:\n%s", id, diffValues(g.Values, w.Values))
		}
		if !reflect.DeepEqual(g.Issuances, w.Issuances) {
			t.Errorf("%s: issuances\n got %+v\nwant %+v", id, g.Issuances, w.Issuances)
		}
		if !reflect.DeepEqual(g.Callers, w.Callers) {
			t.Errorf("%s: callers %q, want %q", id, g.Callers, w.Callers)
		}
	}
	for id := range got {
		if want[id] == nil {
			t.Errorf("%s: unexpected history", id)
		}
	}
}

func diffValues(got, want []baseline.ValueRollup) string {
	key := func(v baseline.ValueRollup) string { return v.Dim.String() + "=" + v.Value }
	g, w := map[string]baseline.ValueRollup{}, map[string]baseline.ValueRollup{}
	for _, v := range got {
		g[key(v)] = v
	}
	for _, v := range want {
		w[key(v)] = v
	}
	var b strings.Builder
	for k, wv := range w {
		if gv, ok := g[k]; !ok {
			fmt.Fprintf(&b, "  missing %s\n", k)
		} else if !reflect.DeepEqual(gv, wv) {
			fmt.Fprintf(&b, "  %s: got %+v want %+v\n", k, gv, wv)
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			fmt.Fprintf(&b, "  extra %s\n", k)
		}
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func identitiesOf(evs []schemas.Event) []string {
	set := map[string]bool{}
	for _, ev := range evs {
		if ev.Identity.ID != "" {
			set[ev.Identity.ID] = true
		}
	}
	return sortedKeys(set)
}

func TestRollupHistoriesMatchEvents(t *testing.T) {
	testRollupHistoriesMatchEvents(t, chstoretest.Open)
}

func testRollupHistoriesMatchEvents(t *testing.T, open opener) {
	s := open(t)
	ctx := context.Background()
	evs := craftEvents(300)
	// Written in a few batches, as the processor would.
	for lo := 0; lo < len(evs); lo += 100 {
		if err := s.WriteEvents(ctx, evs[lo:min(lo+100, len(evs))]); err != nil {
			t.Fatal(err)
		}
	}
	var lastIngest time.Time
	for _, ev := range evs {
		lastIngest = maxTime(lastIngest, ev.IngestTime.Truncate(time.Second))
	}

	changed, mark, err := s.Rollup(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := identitiesOf(evs); !slices.Equal(changed, want) {
		t.Errorf("first rollup changed %q, want %q", changed, want)
	}
	if !mark.Equal(lastIngest) {
		t.Errorf("mark = %v, want the last ingest time %v", mark, lastIngest)
	}

	want := expectHistories(evs, time.Time{})
	order, got := histories(t, s, nil, time.Time{})
	if !slices.Equal(order, sortedKeys(want)) {
		t.Errorf("Histories(nil) visited %q, want %q", order, sortedKeys(want))
	}
	compareHistories(t, got, want)
	// The fixture must exercise what it claims to.
	api := want[idAPI]
	if len(api.Callers) != 0 || len(want[idRates].Callers) != 2 || want[idBuilder].Issuances == nil ||
		api.Namespace != "pay" || api.Workload != "pay-v1" {
		t.Fatalf("fixture lacks callers, issuances or a namespace: %+v", api)
	}

	t.Run("rolling up again changes nothing", func(t *testing.T) {
		if _, _, err := s.Rollup(ctx, time.Time{}); err != nil {
			t.Fatal(err)
		}
		_, again := histories(t, s, nil, time.Time{})
		compareHistories(t, again, want)
	})

	t.Run("from, explicit ids and chunks", func(t *testing.T) {
		from := rollupBase.Add(27*time.Hour + 30*time.Minute + 500*time.Millisecond)
		wantFrom := expectHistories(evs, from)
		ids := []string{idRole, "spiffe://example.org/ns/none/sa/unknown", idAPI, idRates, idRole, idBuilder, idLedger}
		for _, chunk := range []int{1000, 2, 1} {
			restore := chstore.SetChunks(chunk, 1<<20)
			order, got := histories(t, s, ids, from)
			restore()
			if want := []string{idRole, idAPI, idRates, idBuilder, idLedger}; !slices.Equal(order, want) {
				t.Errorf("chunk %d: order %q, want %q", chunk, order, want)
			}
			compareHistories(t, got, wantFrom)
		}
		restore := chstore.SetChunks(2, 1<<20)
		_, all := histories(t, s, nil, time.Time{})
		restore()
		compareHistories(t, all, want)
	})

	// A replay of every event (same ids and ingest times, as a batch
	// retried after a timeout) plus new events in a later hour: the rollups
	// stay exact and only the identities with new events changed. The
	// overlap re-reads the last RollupOverlap of ingest before the mark,
	// which craftEvents fills with idAPI's events alone.
	newEvs := []schemas.Event{}
	for i, id := range []string{idAPI, idWorker, idAPI} {
		at := rollupBase.Add(60*time.Hour + time.Duration(i)*time.Minute)
		newEvs = append(newEvs, schemas.Event{
			ID: fmt.Sprintf("new-%d", i), Time: schemas.At(at), IngestTime: schemas.At(at.Add(30 * time.Second)),
			Identity: schemas.Identity{ID: id, Kind: schemas.KindWorkload}, Action: "GET /v2/payments",
			Outcome: schemas.Outcome{Result: schemas.ResultDenied}, BytesOut: 1 << 30, DurationMS: 12.5,
			Actor: schemas.Actor{IP: "10.1.9.1", Namespace: "pay"}, Target: schemas.Target{Peer: idLedger},
		})
	}
	all := append(slices.Clone(evs), newEvs...)
	t.Run("replay and new events", func(t *testing.T) {
		if err := s.WriteEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteEvents(ctx, newEvs); err != nil {
			t.Fatal(err)
		}
		changed, next, err := s.Rollup(ctx, mark)
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{idAPI, idWorker}; !slices.Equal(changed, want) {
			t.Errorf("changed %q, want %q", changed, want)
		}
		if want := newEvs[2].IngestTime.Truncate(time.Second); !next.Equal(want) {
			t.Errorf("next mark %v, want %v", next, want)
		}
		_, got := histories(t, s, nil, time.Time{})
		compareHistories(t, got, expectHistories(all, time.Time{}))
		mark = next

		// Nothing new: the same mark comes back, and only the overlap's
		// identities are touched again.
		changed, next, err = s.Rollup(ctx, mark)
		if err != nil {
			t.Fatal(err)
		}
		if !next.Equal(mark) || !slices.Equal(changed, []string{idAPI, idWorker}) {
			t.Errorf("idle rollup: changed %q next %v, want the overlap's identities and %v", changed, next, mark)
		}
	})

	t.Run("replay with new ingest times", func(t *testing.T) {
		// A Kafka replay after a rebalance decodes the records again and
		// stamps a new ingest time: every identity is touched, nothing is
		// counted twice.
		replay := slices.Clone(evs)
		later := rollupBase.Add(70 * time.Hour)
		for i := range replay {
			replay[i].IngestTime = schemas.At(later)
		}
		if err := s.WriteEvents(ctx, replay); err != nil {
			t.Fatal(err)
		}
		changed, next, err := s.Rollup(ctx, mark)
		if err != nil {
			t.Fatal(err)
		}
		if want := identitiesOf(all); !slices.Equal(changed, want) {
			t.Errorf("changed %q, want %q", changed, want)
		}
		if !next.Equal(later) {
			t.Errorf("next mark %v, want %v", next, later)
		}
		_, got := histories(t, s, nil, time.Time{})
		wantAll := expectHistories(all, time.Time{})
		compareHistories(t, got, wantAll)
		rows := 0
		for _, h := range wantAll {
			rows += len(h.Hours)
		}
		if n := chstoretest.Count(t, s, "SELECT count() FROM "+s.Database()+".identity_hourly FINAL"); n != uint64(rows) {
			t.Errorf("identity_hourly FINAL has %d rows, want %d", n, rows)
		}
	})
}

// TestBucketSQL checks the rollup's bucket expression against
// baseline.Bucket on the server, for sizes (UInt64 columns) and durations
// (Float64 columns).
func TestBucketSQL(t *testing.T) {
	s := chstoretest.Open(t)
	tests := []struct {
		name string
		lit  string // a ClickHouse literal of the column's type
		x    float64
	}{
		{"zero", "toUInt64(0)", 0},
		{"one", "toUInt64(1)", 1},
		{"two", "toUInt64(2)", 2},
		{"three", "toUInt64(3)", 3},
		{"1023", "toUInt64(1023)", 1023},
		{"1024", "toUInt64(1024)", 1024},
		{"2^49-2", "toUInt64(562949953421310)", 1<<49 - 2},
		{"2^50-2", "toUInt64(1125899906842622)", 1<<50 - 2},
		{"2^50-1", "toUInt64(1125899906842623)", 1<<50 - 1},
		{"2^60-2", "toUInt64(1152921504606846974)", 1<<60 - 2},
		{"2^63", "toUInt64(9223372036854775808)", 1 << 63},
		{"negative duration", "toFloat64(-3.5)", -3.5},
		{"half", "toFloat64(0.5)", 0.5},
		{"2.5", "toFloat64(2.5)", 2.5},
		{"just below 1024", "toFloat64(1022.9999)", 1022.9999},
		{"large duration", "toFloat64(86400000.25)", 86400000.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got uint8
			q := "SELECT " + chstore.BucketSQL("x") + " FROM (SELECT " + tt.lit + " AS x)"
			if err := s.Conn().QueryRow(context.Background(), q).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if want := baseline.Bucket(tt.x); got != want {
				t.Errorf("bucket(%s) = %d, want %d", tt.lit, got, want)
			}
		})
	}
}

// TestRollupOddIdentityIDs runs identity ids that need quoting through the
// SQL the store builds as text.
func TestRollupOddIdentityIDs(t *testing.T) { testRollupOddIdentityIDs(t, chstoretest.Open) }

func testRollupOddIdentityIDs(t *testing.T, open opener) {
	s := open(t)
	ctx := context.Background()
	ids := []string{`it's`, `back\slash`, "new\nline\ttab", "ünïcødé", "?", "@name", "{x:String}", "'; DROP TABLE events; --", `\'`}
	at := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	var evs []schemas.Event
	for i, id := range ids {
		evs = append(evs, schemas.Event{
			ID: fmt.Sprintf("odd-%d", i), Time: schemas.At(at), IngestTime: schemas.At(at),
			Identity: schemas.Identity{ID: id}, Action: id, Target: schemas.Target{Peer: ids[(i+1)%len(ids)]},
		})
	}
	if err := s.WriteEvents(ctx, evs); err != nil {
		t.Fatal(err)
	}
	changed, _, err := s.Rollup(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if want := identitiesOf(evs); !slices.Equal(changed, want) {
		t.Errorf("changed %q, want %q", changed, want)
	}
	order, got := histories(t, s, ids, time.Time{})
	if !slices.Equal(order, ids) {
		t.Errorf("histories of %q", order)
	}
	compareHistories(t, got, expectHistories(evs, time.Time{}))
}
