package baseline

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

var (
	t0   = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC) // a Monday
	role = schemas.Identity{ID: "aws:role/123456789012/app", Kind: schemas.KindRole}
)

func event(at time.Time, action, ip string) *schemas.Event {
	return &schemas.Event{
		ID: fmt.Sprintf("%d-%s", at.UnixNano(), action), Time: schemas.At(at), Identity: role,
		Action: action, Actor: schemas.Actor{IP: ip}, Outcome: schemas.Outcome{Result: schemas.ResultSuccess},
	}
}

func TestProfileHourlyCounts(t *testing.T) {
	p := &Profile{Identity: role}
	// counts per hour for hours 0..9; hour 4 silent; then one late event
	// for hour 2.
	counts := []int{3, 1, 4, 1, 0, 5, 9, 2, 6, 5}
	for h, n := range counts {
		for i := range n {
			p.Observe(event(t0.Add(time.Duration(h)*time.Hour+time.Duration(i)*time.Minute), "a", "10.0.0.1"))
		}
	}
	p.Observe(event(t0.Add(2*time.Hour+30*time.Minute), "a", "10.0.0.1"))
	counts[2]++
	for h, n := range counts {
		if got := p.hourCount(t0.Unix()/3600 + int64(h)); got != float64(n) {
			t.Errorf("hour %d: count %v, want %d", h, got, n)
		}
	}
	mean, sd, hours := p.HourlyStats(t0.Add(10 * time.Hour))
	var sum, sumSq float64
	for _, n := range counts {
		sum += float64(n)
		sumSq += float64(n * n)
	}
	wantMean := sum / 10
	if hours != 10 || mean != wantMean || sd <= 0 {
		t.Errorf("HourlyStats = %v±%v over %d, want mean %v over 10", mean, sd, hours, wantMean)
	}
	if w := p.Window(t0.Add(9 * time.Hour)); w.Count != 5 {
		t.Errorf("window count %d, want 5", w.Count)
	}
	// A week and a day later the ring has forgotten all of it.
	p.Observe(event(t0.Add(8*24*time.Hour), "a", "10.0.0.1"))
	if got := p.hourCount(t0.Unix()/3600 + 6); got != 0 {
		t.Errorf("hour 6 after a week: %v, want 0", got)
	}
	if got := p.SameHourMax(t0.Unix()/3600 + 8*24 + 6); got != 0 {
		t.Errorf("same-hour max after a week: %v", got)
	}
}

func TestNewValueIsNovelOnceThenKnown(t *testing.T) {
	c := NewCache(CacheOptions{})
	c.Lock()
	defer c.Unlock()
	ev := event(t0, "s3:GetObject", "10.0.0.1")
	p := c.Get(role)
	if p.Knows(DimAction, "s3:GetObject") || p.Knows(DimNetwork, "10.0.0.0/24") {
		t.Fatal("a new identity knows values")
	}
	c.Observe(p, ev)
	ev2 := event(t0.Add(time.Minute), "s3:PutObject", "10.0.0.2")
	p = c.Get(role)
	if !p.Knows(DimAction, "s3:GetObject") || !p.Knows(DimNetwork, "10.0.0.0/24") || p.Knows(DimAction, "s3:PutObject") {
		t.Fatal("a value seen a minute ago is not known, or an unseen one is")
	}
	c.Observe(p, ev2)
	if p.KnownCount(DimAction) != 2 || p.KnownCount(DimNetwork) != 1 || !p.LastGrew(DimAction).Equal(t0.Add(time.Minute)) {
		t.Errorf("actions %d networks %d last grew %v", p.KnownCount(DimAction), p.KnownCount(DimNetwork), p.LastGrew(DimAction))
	}
}

func TestApplyMergesWithOnlineLearning(t *testing.T) {
	b := &Baseline{
		Identity: role, FirstSeen: t0, LastSeen: t0.Add(2 * time.Hour), Events: 30, Class: "ci", Cohort: "k8s:ns/app",
		Known: []KnownSet{
			{Dim: "action", Stability: Stability{Size: 2}, Values: []KnownValue{
				{Value: "a", FirstSeen: t0, LastSeen: t0.Add(time.Hour), Count: 20}, {Value: "b", FirstSeen: t0, LastSeen: t0, Count: 10}}},
			// The builder kept 1 of 3000 resources: the set loads open.
			{Dim: "resource", Stability: Stability{Size: 3000}, Values: []KnownValue{{Value: "r1", Count: 9}}},
		},
		Recent: []HourRollup{{Hour: t0.Unix() / 3600, Events: 20}, {Hour: t0.Unix()/3600 + 2, Events: 10, Denied: 2}},
	}
	p := &Profile{Identity: role}
	// Online learning newer than the baseline: hour 3 and a new action.
	p.Observe(event(t0.Add(3*time.Hour), "c", "10.0.0.1"))
	for range 2 { // applying the same baseline twice changes nothing more
		p.Apply(b, DefaultClasses())
		if p.Events != 30 || !p.FirstSeen.Equal(t0) || !p.LastSeen.Equal(t0.Add(3*time.Hour)) {
			t.Fatalf("events %d first %v last %v", p.Events, p.FirstSeen, p.LastSeen)
		}
		for _, v := range []string{"a", "b", "c"} {
			if !p.Knows(DimAction, v) {
				t.Errorf("action %s unknown after apply", v)
			}
		}
		if p.KnownCount(DimAction) != 3 || !p.Knows(DimResource, "never-seen") {
			t.Errorf("actions %d; open resources know everything: %v", p.KnownCount(DimAction), p.Knows(DimResource, "x"))
		}
		if got := p.hourCount(t0.Unix() / 3600); got != 20 {
			t.Errorf("hour 0 = %v, want 20", got)
		}
		if got := p.hourCount(t0.Unix()/3600 + 2); got != 10 {
			t.Errorf("hour 2 = %v, want 10", got)
		}
		if w := p.Window(t0.Add(3 * time.Hour)); w.Count != 1 {
			t.Errorf("current window %d, want 1", w.Count)
		}
		if p.Class().Name != "ci" || p.Cohort() != "k8s:ns/app" || p.dirty {
			t.Errorf("class %s cohort %s dirty %v", p.Class().Name, p.Cohort(), p.dirty)
		}
	}
}

func TestOpenDimensionStopsGrowing(t *testing.T) {
	p := &Profile{Identity: role}
	for i := range MaxKnown + 10 {
		ev := event(t0.Add(time.Duration(i)*time.Second), "s3:GetObject", "10.0.0.1")
		ev.Target.Resource = fmt.Sprintf("arn:aws:s3:::bucket/object-%d", i)
		p.Observe(ev)
	}
	if !p.Knows(DimResource, "arn:aws:s3:::bucket/never") || p.KnownCount(DimAction) != 1 {
		t.Fatal("an open dimension must count every value as known")
	}
	if n := len(p.known); n > 3 {
		t.Errorf("known entries %d after the resource set opened, want its values dropped", n)
	}
}

func TestDeployStartsRelearning(t *testing.T) {
	c := NewCache(CacheOptions{})
	c.Lock()
	defer c.Unlock()
	pod := schemas.Identity{ID: "spiffe://td/ns/pay/sa/api", Kind: schemas.KindWorkload}
	ev := event(t0, "GET /v1/x", "10.0.0.1")
	ev.Identity, ev.Actor.Namespace, ev.Actor.Workload = pod, "pay", "api-7d9f8b6c5d-x2x4z"
	p := c.Get(pod)
	c.Observe(p, ev)
	if p.Relearning(t0.Add(time.Minute)) {
		t.Fatal("relearning without a deploy")
	}
	deploy := event(t0.Add(time.Hour), "k8s:patch:deployments", "10.0.0.9")
	deploy.Identity = schemas.Identity{ID: "k8s:sa/c/argocd/argocd-application-controller", Kind: schemas.KindServiceAccount}
	deploy.Target.Resource = "pay/deployments/api"
	c.Observe(c.Get(deploy.Identity), deploy)
	p = c.Get(pod)
	if !p.Relearning(t0.Add(time.Hour+time.Minute)) || p.Relearning(t0.Add(2*time.Hour+time.Second)) {
		t.Errorf("want relearning for the service class's hour after the deploy")
	}
}

type loaderFunc func(ids []string, fn func(*Baseline) error) error

func (l loaderFunc) LoadBaselines(_ context.Context, ids []string, fn func(*Baseline) error) error {
	return l(ids, fn)
}

func TestCacheStaysWithinBudgetAndReloads(t *testing.T) {
	stored := map[string]*Baseline{}
	var asked [][]string
	loader := loaderFunc(func(ids []string, fn func(*Baseline) error) error {
		asked = append(asked, ids)
		for _, id := range ids {
			if b := stored[id]; b != nil {
				if err := fn(b); err != nil {
					return err
				}
			}
		}
		return nil
	})
	probe := &Profile{Identity: schemas.Identity{ID: "id-000", Kind: schemas.KindRole}}
	budget := int64(10 * (probe.Size() + 200))
	c := NewCache(CacheOptions{Budget: budget, Loader: loader})
	id := func(i int) schemas.Identity {
		return schemas.Identity{ID: fmt.Sprintf("id-%03d", i), Kind: schemas.KindRole}
	}
	for i := range 100 {
		c.Lock()
		p := c.Get(id(i))
		ev := event(t0.Add(time.Duration(i)*time.Second), "a", "10.0.0.1")
		ev.Identity = id(i)
		c.Observe(p, ev)
		c.Unlock()
		stored[id(i).ID] = &Baseline{Identity: id(i), Events: 1, Known: []KnownSet{{Dim: "action", Stability: Stability{Size: 1}, Values: []KnownValue{{Value: "a", Count: 1}}}}}
	}
	st := c.Stats()
	if st.Bytes > budget || st.Identities >= 100 || st.Evicted == 0 || st.Evicted != st.EvictedDirty {
		t.Fatalf("stats %+v, budget %d", st, budget)
	}
	// The most recent identity is cached; the first was evicted and comes
	// back from the loader with what it knew.
	if err := c.Prepare(context.Background(), []string{"id-099", "id-000", "id-new"}); err != nil {
		t.Fatal(err)
	}
	if got := asked[len(asked)-1]; len(got) != 2 || got[0] != "id-000" || got[1] != "id-new" {
		t.Fatalf("loader asked for %v, want the two missing identities", got)
	}
	c.Lock()
	defer c.Unlock()
	if p := c.Get(id(0)); !p.Knows(DimAction, "a") || p.Events != 1 {
		t.Errorf("reloaded profile lost its baseline: events %d", p.Events)
	}
}

// typicalProfile is an identity with a week of hourly activity, the known
// sets of a typical workload (12 actions, 6 resources, 3 peers, 2 networks,
// 2 user agents, one region, cluster and credential, 36 edges) and a built
// model.
func typicalProfile(i int) *Profile {
	id := schemas.Identity{ID: fmt.Sprintf("spiffe://prod.example/ns/payments/sa/api-%06d", i), Kind: schemas.KindWorkload}
	p := &Profile{Identity: id}
	for h := range HistoryHours {
		for k := range 3 {
			n := h*3 + k
			ev := event(t0.Add(time.Duration(h)*time.Hour+time.Duration(k)*time.Minute), fmt.Sprintf("GET /v1/route-%d", n%12), fmt.Sprintf("10.%d.0.%d", n%2, n%200))
			ev.Identity = id
			ev.Target.Resource = fmt.Sprintf("/v1/route-%d", n%6)
			ev.Target.Peer = fmt.Sprintf("spiffe://prod.example/ns/payments/sa/peer-%d", n%3)
			ev.Actor.UserAgent = fmt.Sprintf("grpc-go/1.6%d", n%2)
			ev.Source.Region, ev.Source.Cluster, ev.Actor.Namespace = "eu-west-1", "prod-1", "payments"
			ev.Credential.ID = "x509:serial-1"
			p.Observe(ev)
		}
	}
	// and what a rebuild adds: the seasonal model and the graph.
	b := &Baseline{DataThrough: t0.Add(HistoryHours * time.Hour), Rate: Rate{Mean: 3, Hours: HistoryHours},
		Graph: &Graph{TrustDomain: "prod.example", FanIn: 2}}
	for h := range HoursPerWeek {
		b.Rate.Centre[h], b.Rate.Spread[h] = 3, 1
	}
	for k := range 3 {
		b.Graph.FanOut = append(b.Graph.FanOut, Edge{Peer: fmt.Sprintf("spiffe://prod.example/ns/payments/sa/peer-%d", k)})
	}
	p.Apply(b, DefaultClasses())
	return p
}

// BenchmarkProfileBytes reports the memory a typical identity's cached
// baseline takes: the estimate the cache budgets with and the heap actually
// used per identity for 2,000 of them (SPEC §11: at most 2 KiB).
func BenchmarkProfileBytes(b *testing.B) {
	const n = 2_000
	for range b.N {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c := NewCache(CacheOptions{})
		c.Lock()
		for i := range n {
			p := typicalProfile(i)
			c.profiles[p.Identity.ID] = p
			c.pushFront(p)
			c.charge(p)
		}
		c.Unlock()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(c.Stats().Bytes)/n, "est-B/identity")
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "heap-B/identity")
		runtime.KeepAlive(c)
	}
}

// BenchmarkObserve is the per-event cost of online learning.
func BenchmarkObserve(b *testing.B) {
	p := typicalProfile(0)
	ev := event(t0.Add(HistoryHours*time.Hour), "GET /v1/route-3", "10.0.0.7")
	ev.Target.Peer = "spiffe://prod.example/ns/payments/sa/peer-1"
	b.ReportAllocs()
	for i := range b.N {
		ev.Time = schemas.At(t0.Add(HistoryHours*time.Hour + time.Duration(i)*time.Millisecond))
		p.Observe(ev)
	}
}

func TestEventKeysMatchValues(t *testing.T) {
	ev := event(t0, "GET /v1/x", "2001:db8::7")
	ev.Target = schemas.Target{Resource: "/v1/x", Peer: "spiffe://td/ns/a/sa/b"}
	ev.Actor.UserAgent, ev.Actor.Namespace = "curl/8", "pay"
	ev.Source.Region, ev.Source.Cluster = "eu-west-1", "prod"
	ev.Credential.ID = "cred-1"
	ev.Issuance = &schemas.Issuance{Issuer: "vault"}
	keys := eventKeys(ev)
	for d, v := range Values(ev) {
		if v == "" {
			t.Errorf("%s: test event has no value", Dim(d))
			continue
		}
		if keys[d] != knownKey(Dim(d), v) {
			t.Errorf("%s: key of %q differs from the streamed key", Dim(d), v)
		}
	}
	if k := eventKeys(event(t0, "a", "not-an-ip")); k[DimNetwork] != 0 || k[DimCluster] != 0 || k[DimEdge] != 0 {
		t.Errorf("missing values must have no key: %v", k)
	}
}

func TestApplyKeepsTheModelAndCohorts(t *testing.T) {
	b := &Baseline{
		Identity: role, Cohort: "k8s:pay/api", DataThrough: t0, Events: 10,
		Rate:     Rate{Mean: 2.5, Hours: 600},
		Activity: Activity{ActiveHours: 40, MedianGap: 3600},
		Outcome:  OutcomeProfile{DeniedRatio: 0.25},
		BytesOut: Quantiles{Count: 10, P99: 1023, Max: 4095},
		Cadence:  &Cadence{Runs: 5, Interval: 86400},
		Graph:    &Graph{TrustDomain: "td", FanIn: 3, FanOut: []Edge{{Peer: "a", Route: "x"}, {Peer: "a", Route: "y"}, {Peer: "b", Route: "x"}}},
	}
	b.Rate.Centre[HourOfWeek(t0)+9] = 12
	for d := range 7 {
		b.Rate.Spread[d*24+9] = 3
	}
	b.Activity.HourOfDay[9] = 0.5
	c := NewCache(CacheOptions{})
	c.Apply([]*Baseline{b, {
		Identity: schemas.Identity{ID: CohortPrefix + "k8s:pay/api", Kind: "cohort"}, Cohort: "k8s:pay/api",
		CohortStats: &CohortBaseline{Cohort: "k8s:pay/api", Members: []string{role.ID, "other"}, Size: 2, Rate: 2, Actions: map[string]int{"s3:GetObject": 2}},
	}})
	if n := c.Len(); n != 1 {
		t.Fatalf("a cohort row became a profile: %d profiles", n)
	}
	c.Lock()
	defer c.Unlock()
	p := c.Get(role)
	m := p.Model()
	at9 := t0.Add(9 * time.Hour)
	if m == nil || math.Abs(m.Centre(HourOfWeek(at9))-12) > 12*0.023 || m.Spread(HourOfWeek(at9)) != 3 || m.Active(at9) < 0.49 || m.Active(at9) > 0.51 {
		t.Fatalf("model %+v", m)
	}
	if m.RateMean != 2.5 || m.DeniedRatio != 0.25 || m.BytesOut.P99 != 1023 || m.Cadence.Interval != 86400 ||
		m.FanIn != 3 || m.FanOut != 3 || m.Peers != 2 || m.TrustDomain != "td" {
		t.Errorf("model %+v", m)
	}
	co := c.Cohort(p)
	if co == nil || co.Members != 2 || co.ActionUsers("s3:GetObject") != 2 || co.ActionUsers("iam:PassRole") != 0 {
		t.Errorf("cohort %+v", co)
	}
	// An older baseline does not replace a newer model.
	old := *b
	old.DataThrough, old.Rate.Mean = t0.Add(-time.Hour), 99
	p.Apply(&old, DefaultClasses())
	if p.Model().RateMean != 2.5 {
		t.Errorf("an older rebuild replaced the model")
	}
}

func TestWindowCountsFirstUses(t *testing.T) {
	p := &Profile{Identity: role}
	for i, peer := range []string{"a", "b", "a", "c"} {
		ev := event(t0.Add(time.Duration(i)*time.Minute), "GET /x", "10.0.0.1")
		ev.Target.Peer = peer
		p.Observe(ev)
	}
	if w := p.Window(t0); w.NewPeers != 3 || w.NewActions != 1 || w.Count != 4 {
		t.Errorf("window %+v, want 3 new peers, 1 new action", w)
	}
	if w := p.Window(t0.Add(time.Hour)); w.NewPeers != 0 {
		t.Errorf("next hour %+v", w)
	}
}

func TestValueMatchesValues(t *testing.T) {
	ev := event(t0, "GET /v1/x", "10.1.2.3")
	ev.Target = schemas.Target{Resource: "/v1/x", Peer: "spiffe://td/ns/a/sa/b"}
	ev.Actor.UserAgent, ev.Actor.Namespace, ev.Source.Region, ev.Credential.ID = "ua", "ns", "r", "c"
	ev.Issuance = &schemas.Issuance{Issuer: "i"}
	all := Values(ev)
	for d := range NumDims {
		if got := Value(ev, d); got != all[d] {
			t.Errorf("%s: Value %q, Values %q", d, got, all[d])
		}
	}
}
