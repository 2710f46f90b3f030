package meshgraph_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/meshgraph"
	"github.com/nhisentry/nhisentry/schemas"
)

var (
	frontend = schemas.Identity{ID: "spiffe://prod.example/ns/shop/sa/frontend", Kind: schemas.KindWorkload}
	cart     = "spiffe://prod.example/ns/shop/sa/cart"
	payments = "spiffe://prod.example/ns/pay/sa/payments"
	ledger   = "spiffe://prod.example/ns/pay/sa/ledger"
	partner  = "spiffe://partner.example/ns/api/sa/gateway"
	evil     = "spiffe://evil.example/ns/x/sa/implant"
	now      = time.Date(2026, 11, 9, 14, 30, 0, 0, time.UTC)
)

// edges are frontend's normal calls.
var edges = [][2]string{
	{cart, "GET /v1/cart/{id}"},
	{cart, "POST /v1/cart/{id}/items"},
	{payments, "POST /v1/charges"},
}

// meshEvent is an outbound mesh log of id calling peer.
func meshEvent(id schemas.Identity, t time.Time, peer, action string, result schemas.Result) schemas.Event {
	o := schemas.Outcome{Result: result, Status: 200}
	if result == schemas.ResultDenied {
		o.Status, o.ErrorCode = 403, "rbac_access_denied_matched_policy[none]"
	}
	return schemas.Event{
		ID: fmt.Sprintf("envoy:%d:%s:%s", t.UnixNano(), peer, action), Time: schemas.At(t),
		Source:   schemas.Source{Family: schemas.FamilyMesh, Format: "envoy_json", Provider: "istio"},
		Identity: id, Action: action, Actor: schemas.Actor{IP: "10.8.3.17"},
		Target: schemas.Target{Peer: peer}, Outcome: o,
	}
}

// history is hours of id's calls over its usual edges, perHour an hour,
// ending at end; the model (denied ratio r) is applied when r >= 0.
func history(id schemas.Identity, end time.Time, hours, perHour int, r float64) *baseline.Profile {
	p := &baseline.Profile{Identity: id}
	start := end.Add(-time.Duration(hours) * time.Hour)
	n := 0
	for h := range hours {
		for i := range perHour {
			e := edges[n%len(edges)]
			ev := meshEvent(id, start.Add(time.Duration(h)*time.Hour+time.Duration(i)*time.Hour/time.Duration(perHour+1)), e[0], e[1], schemas.ResultSuccess)
			p.Observe(&ev)
			n++
		}
	}
	if r >= 0 {
		td := "" // the builder's: the trust domain of a SPIFFE id only
		if rest, ok := strings.CutPrefix(id.ID, "spiffe://"); ok {
			td, _, _ = strings.Cut(rest, "/")
		}
		p.Apply(&baseline.Baseline{
			Identity: id, DataThrough: end, Outcome: baseline.OutcomeProfile{DeniedRatio: r},
			Graph: &baseline.Graph{TrustDomain: td},
		}, baseline.DefaultClasses())
	}
	return p
}

func detect(d *meshgraph.Detector, p *baseline.Profile, ev *schemas.Event, relearning bool) []schemas.Finding {
	in := detectortest.Input(p, ev)
	in.Relearning = relearning
	return d.Detect(in, nil)
}

func only(t *testing.T, got []schemas.Finding, observedPrefix string) []schemas.Finding {
	t.Helper()
	var out []schemas.Finding
	for _, f := range got {
		if strings.HasPrefix(f.Analysis.Observed, observedPrefix) {
			out = append(out, f)
		}
	}
	return out
}

func TestNewEdge(t *testing.T) {
	week := history(frontend, now, 7*24, 3, 0.001)
	young := history(frontend, now, 6, 3, -1)
	growing := history(frontend, now, 7*24, 3, 0.001)
	grew := meshEvent(frontend, now.Add(-2*time.Hour), payments, "GET /v1/charges/{id}", schemas.ResultSuccess)
	growing.Observe(&grew)
	// An identity whose mesh logs never named the upstream peer.
	blind := &baseline.Profile{Identity: frontend}
	for i := range 7 * 24 {
		ev := meshEvent(frontend, now.Add(-time.Duration(i)*time.Hour), "", "GET /", schemas.ResultSuccess)
		blind.Observe(&ev)
	}
	tests := []struct {
		name       string
		profile    *baseline.Profile
		peer       string
		action     string
		family     schemas.Family
		relearning bool
		// served: another caller's earlier call of the same peer and
		// route, with this result.
		served   schemas.Result
		wantSev  schemas.Severity
		minScore int
	}{
		{name: "known edge", profile: week, peer: cart, action: "GET /v1/cart/{id}"},
		{name: "new route to a known peer", profile: week, peer: payments, action: "POST /v1/refunds",
			wantSev: schemas.SeverityMedium, minScore: 75},
		{name: "new route to a known peer, served to others", profile: week, peer: payments, action: "POST /v1/refunds",
			served: schemas.ResultSuccess},
		{name: "new route to a known peer, refused to others", profile: week, peer: payments, action: "POST /v1/refunds",
			served: schemas.ResultDenied, wantSev: schemas.SeverityMedium, minScore: 75},
		{name: "lateral movement to a new peer", profile: week, peer: ledger, action: "GET /v1/accounts/{id}",
			wantSev: schemas.SeverityHigh, minScore: 100},
		{name: "lateral movement to a new peer, on a route it serves to others", profile: week, peer: ledger, action: "GET /v1/accounts/{id}",
			served: schemas.ResultSuccess, wantSev: schemas.SeverityHigh, minScore: 100},
		{name: "still learning", profile: young, peer: ledger, action: "GET /v1/accounts/{id}"},
		{name: "re-learning after a deploy", profile: week, peer: ledger, action: "GET /v1/accounts/{id}", relearning: true},
		{name: "edge set still growing", profile: growing, peer: payments, action: "POST /v1/refunds"},
		{name: "no known edges", profile: blind, peer: ledger, action: "GET /v1/accounts/{id}"},
		{name: "not a mesh event", profile: week, peer: ledger, action: "GET /v1/accounts/{id}", family: schemas.FamilyGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := meshgraph.New(meshgraph.DefaultConfig())
			if tt.served != "" {
				other := schemas.Identity{ID: "spiffe://prod.example/ns/shop/sa/checkout", Kind: schemas.KindWorkload}
				prior := meshEvent(other, now.Add(-time.Hour), tt.peer, tt.action, tt.served)
				if f := detect(d, &baseline.Profile{Identity: other}, &prior, false); len(f) != 0 {
					t.Fatalf("the other caller's call raised %+v", f)
				}
			}
			ev := meshEvent(frontend, now, tt.peer, tt.action, schemas.ResultSuccess)
			if tt.family != "" {
				ev.Source.Family = tt.family
			}
			got := detect(d, tt.profile, &ev, tt.relearning)
			f, ok := detectortest.Single(t, got, tt.wantSev != "")
			if !ok {
				return
			}
			if f.Severity != tt.wantSev || f.Score < tt.minScore || f.Technique != meshgraph.TechniqueEdge ||
				f.Analysis.Pattern != schemas.PatternUnseen || f.Analysis.Observed != "edge="+tt.peer+" "+tt.action {
				t.Errorf("finding: %+v", f)
			}
			if f.ID != schemas.FindingID(meshgraph.Name, frontend.ID, "edge", tt.peer, tt.action) {
				t.Errorf("finding id %s is not the (identity, edge) id", f.ID)
			}
			if !strings.Contains(f.Explanation, "3 known edges") || !strings.Contains(f.Explanation, "7.0 days") {
				t.Errorf("explanation lacks observed and expected numbers: %s", f.Explanation)
			}
		})
	}
}

func TestNewEdgeIsReportedOnceAndCapped(t *testing.T) {
	d := meshgraph.New(meshgraph.DefaultConfig())
	p := history(frontend, now, 7*24, 3, 0.001)
	var got []schemas.Finding
	// An implant walks the ledger's API: the first edges keep being judged
	// against the week-stable set, up to the hourly cap.
	for i := range 12 {
		ev := meshEvent(frontend, now.Add(time.Duration(i)*time.Minute), ledger, fmt.Sprintf("GET /v1/admin/%d", i), schemas.ResultSuccess)
		got = append(got, detect(d, p, &ev, false)...)
		p.Observe(&ev)
	}
	if len(got) != 5 {
		t.Fatalf("an edge walk raised %d findings, want the hourly cap of 5", len(got))
	}
	again := meshEvent(frontend, now.Add(20*time.Minute), ledger, "GET /v1/admin/0", schemas.ResultSuccess)
	if f := detect(d, p, &again, false); len(f) != 0 {
		t.Fatalf("a learned edge was reported again: %+v", f)
	}
	// The next hour the set has just grown: quiet until stable again.
	later := meshEvent(frontend, now.Add(90*time.Minute), ledger, "DELETE /v1/admin/{id}", schemas.ResultSuccess)
	if f := detect(d, p, &later, false); len(f) != 0 {
		t.Fatalf("a set that grew an hour ago is not stable: %+v", f)
	}
}

func TestForeignTrustDomain(t *testing.T) {
	federated := meshgraph.DefaultConfig()
	federated.TrustedDomains = []string{"prod.example", "Partner.example"}
	evilID := schemas.Identity{ID: evil, Kind: schemas.KindWorkload}
	ipID := schemas.Identity{ID: "ip:10.9.9.9", Kind: schemas.KindUnknown}
	tests := []struct {
		name    string
		cfg     meshgraph.Config
		id      schemas.Identity
		peer    string
		actor   string
		result  schemas.Result
		learn   bool
		wantTD  string
		wantSev schemas.Severity
	}{
		{name: "same domain", cfg: meshgraph.DefaultConfig(), id: frontend, peer: payments},
		{name: "federated partner", cfg: federated, id: frontend, peer: partner},
		{name: "partner without federation", cfg: meshgraph.DefaultConfig(), id: frontend, peer: partner,
			wantTD: "partner.example", wantSev: schemas.SeverityHigh},
		{name: "unlisted domain", cfg: federated, id: frontend, peer: evil, wantTD: "evil.example", wantSev: schemas.SeverityHigh},
		{name: "refused call to an unlisted domain", cfg: federated, id: frontend, peer: evil, result: schemas.ResultDenied,
			wantTD: "evil.example", wantSev: schemas.SeverityMedium},
		{name: "inbound: a foreign caller into a trusted domain, still learning", cfg: federated, id: evilID, peer: frontend.ID, actor: evil, learn: true,
			wantTD: "prod.example", wantSev: schemas.SeverityHigh},
		{name: "inbound: the downstream peer is foreign", cfg: federated, id: frontend, actor: evil,
			wantTD: "evil.example", wantSev: schemas.SeverityHigh},
		{name: "not a SPIFFE caller", cfg: meshgraph.DefaultConfig(), id: ipID, peer: evil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := meshgraph.New(tt.cfg)
			hours := 7 * 24
			if tt.learn {
				hours = 1
			}
			p := history(tt.id, now, hours, 3, 0)
			if tt.result == "" {
				tt.result = schemas.ResultSuccess
			}
			ev := meshEvent(tt.id, now, tt.peer, "GET /v1/things", tt.result)
			ev.Actor.Peer = tt.actor
			got := only(t, detect(d, p, &ev, false), "trust_domain=")
			f, ok := detectortest.Single(t, got, tt.wantTD != "")
			if !ok {
				return
			}
			if f.Severity != tt.wantSev || f.Technique != meshgraph.TechniqueTrustDomain || f.Analysis.Observed != "trust_domain="+tt.wantTD ||
				f.ID != schemas.FindingID(meshgraph.Name, tt.id.ID, "trust_domain", tt.wantTD) || f.Identity != tt.id {
				t.Errorf("finding: %+v", f)
			}
			// First use per (identity, domain) only.
			ev2 := meshEvent(tt.id, now.Add(time.Minute), tt.peer, "GET /v1/other", tt.result)
			ev2.Actor.Peer = tt.actor
			if again := only(t, detect(d, p, &ev2, false), "trust_domain="); len(again) != 0 {
				t.Fatalf("second call to the same domain reported again: %+v", again)
			}
		})
	}
}

// burst feeds n calls of id in the hour from start, the last denied ones
// and returns the denial-burst findings.
func burst(d *meshgraph.Detector, p *baseline.Profile, id schemas.Identity, start time.Time, n, denied int, family schemas.Family) []schemas.Finding {
	var out []schemas.Finding
	for i := range n {
		e := edges[i%len(edges)]
		res := schemas.ResultSuccess
		if i >= n-denied {
			res = schemas.ResultDenied
		}
		ev := meshEvent(id, start.Add(time.Duration(i)*time.Hour/time.Duration(n+1)), e[0], e[1], res)
		ev.Source.Family = family
		for _, f := range d.Detect(detectortest.Input(p, &ev), nil) {
			if f.Analysis.Pattern == schemas.PatternSurge {
				out = append(out, f)
			}
		}
		p.Observe(&ev)
	}
	return out
}

func TestDenialBurst(t *testing.T) {
	hour := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		ratio   float64 // model's denied ratio; <0: no model yet
		hours   int
		calls   int
		denied  int
		family  schemas.Family
		wantSev schemas.Severity
	}{
		{name: "RBAC probing", ratio: 0.001, hours: 7 * 24, calls: 40, denied: 30, wantSev: schemas.SeverityHigh},
		{name: "denials among busy traffic", ratio: 0.001, hours: 7 * 24, calls: 200, denied: 25, wantSev: schemas.SeverityMedium},
		{name: "a few denials", ratio: 0.001, hours: 7 * 24, calls: 40, denied: 10},
		{name: "an identity that is often refused", ratio: 0.4, hours: 7 * 24, calls: 80, denied: 40},
		{name: "no model yet", ratio: -1, hours: 7 * 24, calls: 40, denied: 30},
		{name: "still learning", ratio: 0.001, hours: 6, calls: 40, denied: 30},
		{name: "denials outside the mesh", ratio: 0.001, hours: 7 * 24, calls: 40, denied: 30, family: schemas.FamilyCloudAudit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := meshgraph.New(meshgraph.DefaultConfig())
			p := history(frontend, hour, tt.hours, 3, tt.ratio)
			if tt.family == "" {
				tt.family = schemas.FamilyMesh
			}
			got := burst(d, p, frontend, hour, tt.calls, tt.denied, tt.family)
			f, ok := detectortest.Single(t, got, tt.wantSev != "")
			if !ok {
				return
			}
			if f.Severity != tt.wantSev || f.Score < 50 || f.Score > 100 || f.Technique != meshgraph.TechniqueDenialBurst ||
				f.ID != schemas.FindingID(meshgraph.Name, frontend.ID, "denials", fmt.Sprint(hour.Unix()/3600)) {
				t.Errorf("finding: %+v", f)
			}
			if !strings.Contains(f.Explanation, "20 of") || !strings.Contains(f.Explanation, "denials expected") {
				t.Errorf("explanation: %s", f.Explanation)
			}
		})
	}
	t.Run("one per hour", func(t *testing.T) {
		d := meshgraph.New(meshgraph.DefaultConfig())
		p := history(frontend, hour, 7*24, 3, 0.001)
		if got := burst(d, p, frontend, hour, 60, 60, schemas.FamilyMesh); len(got) != 1 {
			t.Fatalf("first hour: %d findings", len(got))
		}
		if got := burst(d, p, frontend, hour.Add(time.Hour), 60, 60, schemas.FamilyMesh); len(got) != 1 {
			t.Fatalf("second hour: %d findings", len(got))
		}
	})
}

func TestConfigValidate(t *testing.T) {
	if errs := (meshgraph.Config{TrustedDomains: []string{"", "spiffe://x"}}).Validate(); len(errs) != 8 {
		t.Fatalf("zero config: %d errors, want 8: %v", len(errs), errs)
	}
	if errs := meshgraph.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
	if meshgraph.New(meshgraph.DefaultConfig()).Name() != "mesh_graph" {
		t.Fatal("name")
	}
}

func BenchmarkDetect(b *testing.B) {
	p := history(frontend, now, 7*24, 3, 0.001)
	b.Run("quiet", func(b *testing.B) {
		ev := meshEvent(frontend, now, cart, "GET /v1/cart/{id}", schemas.ResultSuccess)
		detectortest.BenchmarkInputs(b, meshgraph.New(meshgraph.DefaultConfig()), []detectors.Input{*detectortest.Input(p, &ev)}, false)
	})
	b.Run("quiet_denied", func(b *testing.B) {
		ev := meshEvent(frontend, now, cart, "GET /v1/cart/{id}", schemas.ResultDenied)
		detectortest.BenchmarkInputs(b, meshgraph.New(meshgraph.DefaultConfig()), []detectors.Input{*detectortest.Input(p, &ev)}, false)
	})
	// Firing: inputs of distinct hours, so the per-hour state never says
	// "already reported".
	inputs := func(mk func(i int) (schemas.Event, baseline.Window)) []detectors.Input {
		ins := make([]detectors.Input, 4096)
		for i := range ins {
			ev, w := mk(i)
			ins[i] = *detectortest.Input(p, &ev)
			ins[i].Window = w
		}
		return ins
	}
	small := meshgraph.DefaultConfig()
	small.MaxState = 1024
	b.Run("firing_edge", func(b *testing.B) {
		ins := inputs(func(i int) (schemas.Event, baseline.Window) {
			at := now.Add(time.Duration(i) * time.Hour)
			ev := meshEvent(frontend, at, ledger, "GET /v1/accounts/{id}", schemas.ResultSuccess)
			return ev, baseline.Window{Hour: at.Unix() / 3600, Count: 1}
		})
		detectortest.BenchmarkInputs(b, meshgraph.New(small), ins, true)
	})
	b.Run("firing_trust_domain", func(b *testing.B) {
		ins := inputs(func(i int) (schemas.Event, baseline.Window) {
			ev := meshEvent(frontend, now, fmt.Sprintf("spiffe://td-%d.example/ns/x/sa/y", i), "GET /v1/cart/{id}", schemas.ResultSuccess)
			return ev, baseline.Window{Hour: now.Unix() / 3600, Count: 1}
		})
		cfg := small
		cfg.MinEdges = 1 << 20 // the peer is a new edge too; time the trust-domain finding alone
		detectortest.BenchmarkInputs(b, meshgraph.New(cfg), ins, true)
	})
	b.Run("firing_denials", func(b *testing.B) {
		ins := inputs(func(i int) (schemas.Event, baseline.Window) {
			at := now.Add(time.Duration(i) * time.Hour)
			ev := meshEvent(frontend, at, cart, "GET /v1/cart/{id}", schemas.ResultDenied)
			return ev, baseline.Window{Hour: at.Unix() / 3600, Count: 40, Denied: 30}
		})
		detectortest.BenchmarkInputs(b, meshgraph.New(small), ins, true)
	})
}
