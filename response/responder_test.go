package response_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/schemas"
)

// recorder is a Provider that records its calls; fail decides each call's
// error. It stands for the provider adapters, which are tested against the
// real servers in their own packages; here the subject is the Responder.
type recorder struct {
	mu    sync.Mutex
	name  string
	calls []string // "do <action> <identity>", "undo …"
	fail  func(n int) error
}

func (p *recorder) Name() string { return p.name }

func (p *recorder) Check(a response.Action, t response.Target) error {
	if a == response.ActionRevoke && t.Credential == "" {
		return fmt.Errorf("no credential: %w", response.ErrNotApplicable)
	}
	return nil
}

func (p *recorder) Do(_ context.Context, req response.Request) (response.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "do "+string(req.Action)+" "+req.Target.Identity.ID)
	if p.fail != nil {
		if err := p.fail(len(p.calls)); err != nil {
			return response.Result{}, err
		}
	}
	return response.Result{Detail: "done", Undo: map[string]string{"policy": "deny-" + req.ID}}, nil
}

func (p *recorder) Undo(_ context.Context, req response.Request, done response.Result) (response.Result, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if req.Action == response.ActionRevoke {
		return response.Result{}, response.ErrIrreversible
	}
	p.calls = append(p.calls, "undo "+string(req.Action)+" "+done.Undo["policy"])
	return response.Result{Detail: "undone"}, nil
}

func (p *recorder) log() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls...)
}

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

func finding(id, identity string) schemas.Finding {
	return schemas.Finding{ID: id, Detector: "credential_misuse", Severity: schemas.SeverityCritical, Score: 90,
		Title: "workload credential used outside its environment", Identity: schemas.Identity{ID: identity, Kind: schemas.KindWorkload},
		FirstSeen: schemas.At(t0), LastSeen: schemas.At(t0), Count: 1, EventIDs: []string{"ev-" + id}}
}

type fixture struct {
	r     *response.Responder
	prov  *recorder
	reg   *prometheus.Registry
	opts  response.Options
	clock *time.Time
}

func policy(mode response.Mode) response.Policy {
	p := response.DefaultPolicy()
	p.Enabled, p.Mode = true, mode
	p.Protected = []string{"spiffe://*/ns/kube-system/*"}
	p.Retry = response.Retry{MaxAttempts: 3, First: time.Second, Max: time.Second}
	p.Rules = []response.Rule{{
		ID: "contain-misused-workload", When: `finding.detector == "credential_misuse" && identity.kind == "workload"`,
		Actions: []response.RuleAction{
			{Action: response.ActionRevoke, Provider: "mesh"}, // listed first, runs last: reversible actions come first
			{Action: response.ActionIsolate, Provider: "mesh"},
		},
	}}
	return p
}

func newFixture(t *testing.T, p response.Policy, fanIn map[string]int) *fixture {
	t.Helper()
	store := chstoretest.Open(t)
	now := t0
	fx := &fixture{prov: &recorder{name: "mesh"}, reg: prometheus.NewRegistry(), clock: &now}
	fx.opts = response.Options{
		Policy: p, Providers: []response.Provider{fx.prov}, Store: store, Now: func() time.Time { return *fx.clock },
		Evidence: func(context.Context, string, []string) ([]schemas.Event, error) {
			return []schemas.Event{{Credential: schemas.Credential{ID: "svid-123", Type: "x509_svid"}}}, nil
		},
		Blast: func(_ context.Context, id string) (response.Blast, error) {
			return response.Blast{FanIn: fanIn[id]}, nil
		},
		Registerer: fx.reg,
	}
	fx.restart(t)
	return fx
}

// restart builds a new Responder on the same store, as a restarted service
// would.
func (fx *fixture) restart(t *testing.T) {
	t.Helper()
	fx.opts.Registerer = prometheus.NewRegistry()
	r, err := response.New(context.Background(), fx.opts)
	if err != nil {
		t.Fatal(err)
	}
	fx.r = r
}

func (fx *fixture) statuses(t *testing.T) map[string]string {
	t.Helper()
	recs, err := fx.r.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range recs {
		out[r.IdentityID+" "+string(r.Action)] = string(r.Status)
	}
	return out
}

func (fx *fixture) one(t *testing.T, identity string, a response.Action) response.Record {
	t.Helper()
	recs, err := fx.r.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.IdentityID == identity && r.Action == a {
			return r
		}
	}
	t.Fatalf("no %s record for %s", a, identity)
	return response.Record{}
}

const pay = "spiffe://prod.example/ns/pay/sa/api"

func TestDryRunCallsNothing(t *testing.T) {
	fx := newFixture(t, policy(response.ModeDryRun), nil)
	if err := fx.r.Deliver(context.Background(), []schemas.Finding{finding("f1", pay)}); err != nil {
		t.Fatal(err)
	}
	if got := fx.prov.log(); len(got) != 0 {
		t.Fatalf("dry-run called the provider: %v", got)
	}
	rec := fx.one(t, pay, response.ActionIsolate)
	if rec.Status != response.StatusDryRun || !strings.Contains(rec.Decision, "would isolate_workload via mesh") {
		t.Fatalf("got %s: %s", rec.Status, rec.Decision)
	}
	// Switched to enforce, the same finding plans for real under the same
	// id: a dry run did nothing to be idempotent about.
	fx.opts.Policy = policy(response.ModeEnforce)
	fx.restart(t)
	if err := fx.r.Deliver(context.Background(), []schemas.Finding{finding("f1", pay)}); err != nil {
		t.Fatal(err)
	}
	if got := fx.one(t, pay, response.ActionIsolate); got.ID != rec.ID || got.Status != response.StatusSucceeded {
		t.Fatalf("after switching to enforce: %s %s", got.ID, got.Status)
	}
}

// TestEnforceIsolatesThenRevokesOnApprovalAndUndoes is the whole life of a
// response: the reversible isolation runs at once, the revocation waits for
// approval, runs when approved, and the isolation is undone.
func TestEnforceIsolatesThenRevokesOnApprovalAndUndoes(t *testing.T) {
	fx := newFixture(t, policy(response.ModeEnforce), nil)
	ctx := context.Background()
	if err := fx.r.Deliver(ctx, []schemas.Finding{finding("f1", pay)}); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{pay + " isolate_workload": "succeeded", pay + " revoke_credential": "pending_approval"}
	if got := fx.statuses(t); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("statuses %v, want %v", got, want)
	}
	iso := fx.one(t, pay, response.ActionIsolate)
	if iso.Undo["policy"] != "deny-"+iso.ID || iso.Request.Target.Credential != "svid-123" || iso.Request.Target.Namespace != "pay" {
		t.Fatalf("audit row lacks the undo state or the target: %+v", iso)
	}
	rev := fx.one(t, pay, response.ActionRevoke)
	if !strings.Contains(rev.Decision, "needs approval: revocation is irreversible") {
		t.Fatalf("revocation decision: %s", rev.Decision)
	}
	// A replay of the finding, and a later revision of it, act no more.
	again := finding("f1", pay)
	again.Revision, again.Count = 1, 2
	if err := fx.r.Deliver(ctx, []schemas.Finding{finding("f1", pay), again}); err != nil {
		t.Fatal(err)
	}
	got, err := fx.r.Approve(ctx, rev.ID, "alice")
	if err != nil || got.Status != response.StatusSucceeded || got.Actor != "alice" {
		t.Fatalf("approve: %+v, %v", got, err)
	}
	if _, err := fx.r.Approve(ctx, rev.ID, "alice"); !errors.Is(err, response.ErrState) {
		t.Fatalf("second approval: %v", err)
	}
	undone, err := fx.r.Undo(ctx, iso.ID, "bob")
	if err != nil || undone.Status != response.StatusUndone {
		t.Fatalf("undo: %+v, %v", undone, err)
	}
	if _, err := fx.r.Undo(ctx, rev.ID, "bob"); !errors.Is(err, response.ErrIrreversible) {
		t.Fatalf("undo of a revocation: %v", err)
	}
	wantCalls := "do isolate_workload " + pay + "|do revoke_credential " + pay + "|undo isolate_workload deny-" + iso.ID
	if got := strings.Join(fx.prov.log(), "|"); got != wantCalls {
		t.Fatalf("provider calls:\n%s\nwant\n%s", got, wantCalls)
	}
}

func TestGuards(t *testing.T) {
	tests := []struct {
		name     string
		identity string
		fanIn    int
		mode     response.Mode
		canary   []string
		want     string // status of the isolation
		decision string
	}{
		{"protected", "spiffe://prod.example/ns/kube-system/sa/coredns", 0, response.ModeEnforce, nil, "skipped", "protected identity"},
		{"high fan-in waits", pay, 9, response.ModeEnforce, nil, "pending_approval", "fan-in 9 over 5"},
		{"shadow plans only", pay, 0, response.ModeShadow, nil, "shadow", "would isolate_workload via mesh"},
		{"canary acts in scope", pay, 0, response.ModeCanary, []string{"spiffe://*/ns/pay/*"}, "succeeded", "isolate_workload via mesh"},
		{"canary shadows out of scope", pay, 0, response.ModeCanary, []string{"spiffe://*/ns/staging/*"}, "shadow", "outside the canary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy(tt.mode)
			p.Canary.Identities = tt.canary
			fx := newFixture(t, p, map[string]int{tt.identity: tt.fanIn})
			if err := fx.r.Deliver(context.Background(), []schemas.Finding{finding("f1", tt.identity)}); err != nil {
				t.Fatal(err)
			}
			rec := fx.one(t, tt.identity, response.ActionIsolate)
			if string(rec.Status) != tt.want || !strings.Contains(rec.Decision, tt.decision) {
				t.Fatalf("got %s (%s), want %s (%s)", rec.Status, rec.Decision, tt.want, tt.decision)
			}
			if acted := len(fx.prov.log()) > 0; acted != (tt.want == "succeeded") {
				t.Fatalf("provider calls %v", fx.prov.log())
			}
		})
	}
}

// TestBreakerStopsAFlood: 40 findings on 40 identities with a blast radius
// of 3 each against a budget of 10 per hour: three act, the breaker opens,
// everything after waits for approval, a reset lets automation act again.
func TestBreakerStopsAFlood(t *testing.T) {
	p := policy(response.ModeEnforce)
	p.Rules[0].Actions = p.Rules[0].Actions[1:] // isolation only
	p.Budgets.BlastRadius, p.Budgets.PerProvider = 10, 1000
	fanIn := map[string]int{"spiffe://prod.example/ns/x/sa/y": 2, "spiffe://prod.example/ns/z/sa/y": 2}
	var flood []schemas.Finding
	for i := range 40 {
		id := fmt.Sprintf("spiffe://prod.example/ns/n%d/sa/api", i)
		fanIn[id] = 2
		flood = append(flood, finding(fmt.Sprintf("f%d", i), id))
	}
	fx := newFixture(t, p, fanIn)
	ctx := context.Background()
	if err := fx.r.Deliver(ctx, flood); err != nil {
		t.Fatal(err)
	}
	if n := len(fx.prov.log()); n != 3 {
		t.Fatalf("%d actions taken, want 3 (blast radius 3 each, budget 10)", n)
	}
	byStatus := map[string]int{}
	for _, s := range fx.statuses(t) {
		byStatus[s]++
	}
	if byStatus["succeeded"] != 3 || byStatus["pending_approval"] != 37 {
		t.Fatalf("statuses %v", byStatus)
	}
	if open, why := fx.r.Breaker(); !open || !strings.Contains(why, "would pass the budget of 10") {
		t.Fatalf("breaker open=%v %q", open, why)
	}
	if got := testutil.ToFloat64(metric(t, fx.opts.Registerer, "nhi_response_circuit_open")); got != 1 {
		t.Fatalf("nhi_response_circuit_open = %v", got)
	}
	// A restarted service still counts the window's actions: the budget is
	// not refilled by a restart.
	fx.restart(t)
	if err := fx.r.Deliver(ctx, []schemas.Finding{finding("g1", "spiffe://prod.example/ns/x/sa/y")}); err != nil {
		t.Fatal(err)
	}
	if n := len(fx.prov.log()); n != 3 {
		t.Fatalf("after a restart %d actions, want still 3", n)
	}
	// A person resets the breaker (from another process, through the trail)
	// and the window has passed: automation acts again.
	if err := fx.r.Reset(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	*fx.clock = fx.clock.Add(2 * time.Hour)
	if err := fx.r.Deliver(ctx, []schemas.Finding{finding("g2", "spiffe://prod.example/ns/z/sa/y")}); err != nil {
		t.Fatal(err)
	}
	if n := len(fx.prov.log()); n != 4 {
		t.Fatalf("after the reset %d actions, want 4", n)
	}
}

func metric(t *testing.T, reg prometheus.Registerer, name string) prometheus.Collector {
	t.Helper()
	g, ok := reg.(prometheus.Gatherer)
	if !ok {
		t.Fatal("registry cannot gather")
	}
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			v := mf.GetMetric()[0].GetGauge().GetValue()
			return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name}, func() float64 { return v })
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// TestProviderOutage: the provider is down; the action is queued, not lost
// and not blocking; a restarted responder retries it from the trail once
// the provider is back. A permanent error fails at once.
func TestProviderOutage(t *testing.T) {
	p := policy(response.ModeEnforce)
	p.Rules[0].Actions = p.Rules[0].Actions[1:]
	fx := newFixture(t, p, nil)
	var down sync.Mutex
	outage := true
	fx.prov.fail = func(int) error {
		down.Lock()
		defer down.Unlock()
		if outage {
			return errors.New("503 service unavailable")
		}
		return nil
	}
	ctx := context.Background()
	start := time.Now()
	if err := fx.r.Deliver(ctx, []schemas.Finding{finding("f1", pay)}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 10*time.Second {
		t.Fatal("an outage blocked Deliver")
	}
	rec := fx.one(t, pay, response.ActionIsolate)
	if rec.Status != response.StatusQueued || rec.Attempts != 1 || !rec.NextAttempt.Equal(t0.Add(time.Second)) {
		t.Fatalf("after the outage: %+v", rec)
	}
	down.Lock()
	outage = false
	down.Unlock()
	fx.restart(t)
	*fx.clock = fx.clock.Add(2 * time.Second)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { fx.r.RunRetries(rctx, 20*time.Millisecond); close(done) }()
	for deadline := time.Now().Add(20 * time.Second); fx.one(t, pay, response.ActionIsolate).Status != response.StatusSucceeded; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not retried: %+v", fx.one(t, pay, response.ActionIsolate))
		}
	}
	cancel()
	<-done
	if got := fx.one(t, pay, response.ActionIsolate); got.Attempts != 2 {
		t.Fatalf("attempts %d", got.Attempts)
	}

	fx2 := newFixture(t, p, nil)
	fx2.prov.fail = func(int) error { return response.Permanent{Err: errors.New("403 permission denied")} }
	if err := fx2.r.Deliver(ctx, []schemas.Finding{finding("f1", pay)}); err != nil {
		t.Fatal(err)
	}
	if rec := fx2.one(t, pay, response.ActionIsolate); rec.Status != response.StatusFailed || !strings.Contains(rec.Detail, "403") {
		t.Fatalf("permanent error: %+v", rec)
	}
}

func TestPolicyValidate(t *testing.T) {
	p := response.DefaultPolicy()
	p.Mode = "yolo"
	p.MinScore = 200
	p.Budgets.Providers = map[string]int{"nope": 3}
	p.Rules = []response.Rule{
		{ID: "a", When: "finding.score >", Actions: []response.RuleAction{{Action: "explode", Provider: "mesh"}}},
		{ID: "a", When: "finding.score", Actions: nil},
		{ID: "", When: "true", Actions: []response.RuleAction{{Action: response.ActionNotify, Provider: "pager"}}},
	}
	var got []string
	for _, err := range p.Validate("respond", []string{"mesh"}) {
		got = append(got, err.Error())
	}
	all := strings.Join(got, "\n")
	for _, want := range []string{
		`respond.mode: want dry-run, shadow, canary or enforce, got "yolo"`,
		"respond.min_score: want 0 to 100",
		"respond.budgets.providers.nope: no provider of that name",
		`respond.rules[0].actions[0].action: want isolate_workload`,
		"respond.rules[0].when: ERROR",
		`respond.rules[1].id: "a" is used twice`,
		"respond.rules[1].actions: at least one action",
		"respond.rules[2].id: required",
		`respond.rules[2].actions[0].provider: no provider named "pager"`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("errors lack %q:\n%s", want, all)
		}
	}
}
