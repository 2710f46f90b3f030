package response

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nhisentry/nhisentry/schemas"
)

// BreakerID is the audit record that carries the circuit breaker's state,
// so `nhisentry respond reset` reaches a running service.
const BreakerID = "circuit-breaker"

// Blast is what acting on an identity could break: the identities that call
// it, from its baseline's mesh call graph.
type Blast struct {
	FanIn   int
	Callers []string // a sample
}

// Radius is the identity itself plus its callers.
func (b Blast) Radius() int { return 1 + b.FanIn }

// Options configures a Responder.
type Options struct {
	Policy    Policy
	Providers []Provider
	Store     AuditStore
	// Sinks receive a copy of every audit record (the audit topic).
	Sinks []AuditSink
	// Evidence returns the finding's evidence events of identity (for the
	// credential and location to act on); nil finds none.
	Evidence func(ctx context.Context, identity string, eventIDs []string) ([]schemas.Event, error)
	// Blast returns an identity's blast radius; nil counts the identity
	// alone.
	Blast func(ctx context.Context, identity string) (Blast, error)
	// CallTimeout bounds one provider call; default 30 s.
	CallTimeout time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Responder turns findings into guarded actions. As an outputs.Output it
// is fed from the findings topic like any output, so responding never
// slows detection, and its audit trail in the store is the durable queue
// of actions waiting for approval or another attempt.
type Responder struct {
	o         Options
	policy    *compiled
	providers map[string]Provider
	guard     *guard
	m         *metrics
	log       *slog.Logger
	breakerV  uint64 // version of the newest breaker record seen
}

// Validate lists every problem of a policy given the names of the
// configured providers, each named by its YAML path under field.
func (p Policy) Validate(field string, providers []string) []error {
	_, errs := p.compile(field, providers)
	return errs
}

// New compiles the policy and seeds the budgets from the audit trail.
func New(ctx context.Context, o Options) (*Responder, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 30 * time.Second
	}
	r := &Responder{o: o, providers: map[string]Provider{}, log: o.Logger.With("component", "respond")}
	var names []string
	for _, p := range o.Providers {
		r.providers[p.Name()] = p
		names = append(names, p.Name())
	}
	pol, errs := o.Policy.compile("respond", names)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	r.policy = pol
	r.guard = newGuard(pol.Budgets)
	r.m = newMetrics(o.Registerer)
	if err := r.seed(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// seed counts the actions of the current window against the budgets and
// restores the breaker's state.
func (r *Responder) seed(ctx context.Context) error {
	now := r.o.Now()
	recs, err := r.o.Store.LoadAudit(ctx, AuditQuery{Since: now.Add(-r.policy.Budgets.Window),
		Statuses: []Status{StatusRunning, StatusQueued, StatusSucceeded, StatusFailed, StatusUndone}})
	if err != nil {
		return fmt.Errorf("respond: load the audit trail: %w", err)
	}
	for _, rec := range recs {
		if rec.Actor == actorSystem {
			r.guard.record(rec.Time, rec.Provider, rec.BlastRadius)
		}
	}
	return r.syncBreaker(ctx)
}

const actorSystem = "nhisentry"

// Name implements outputs.Output.
func (r *Responder) Name() string { return "respond" }

// Close implements outputs.Output.
func (r *Responder) Close() error { return nil }

// Deliver implements outputs.Output: it plans the actions of each finding,
// audits them, and calls the providers for those that may act now. It
// returns nil once every decision is stored; an error (the store is down)
// makes the Forwarder repeat the batch, which the idempotency keys make
// harmless.
func (r *Responder) Deliver(ctx context.Context, findings []schemas.Finding) error {
	if !r.policy.Enabled {
		return nil
	}
	var planned []Record
	for i := range findings {
		recs, err := r.plan(ctx, &findings[i])
		if err != nil {
			return err
		}
		planned = append(planned, recs...)
	}
	if len(planned) == 0 {
		return nil
	}
	// Replays: a request already audited is not planned again.
	ids := make([]string, len(planned))
	for i, rec := range planned {
		ids[i] = rec.ID
	}
	known, err := r.o.Store.LoadAudit(ctx, AuditQuery{IDs: ids})
	if err != nil {
		return fmt.Errorf("respond: idempotency lookup: %w", err)
	}
	seen := map[string]bool{}
	for _, k := range known {
		// A dry run or a shadow plan did nothing: once the mode allows
		// acting, the same finding plans for real (same id, new version).
		seen[k.ID] = k.Status != StatusDryRun && k.Status != StatusShadow
	}
	fresh := planned[:0]
	for _, rec := range planned {
		if !seen[rec.ID] {
			seen[rec.ID] = true // also within the batch
			fresh = append(fresh, rec)
		}
	}
	ptrs := make([]*Record, len(fresh))
	for i := range fresh {
		r.decide(&fresh[i])
		ptrs[i] = &fresh[i]
	}
	if err := r.write(ctx, ptrs...); err != nil {
		return err
	}
	for _, rec := range fresh {
		if rec.Status == StatusRunning {
			r.execute(ctx, rec)
		}
	}
	return nil
}

// plan returns one record per action the first matching rule names, with
// status and decision still to be made.
func (r *Responder) plan(ctx context.Context, f *schemas.Finding) ([]Record, error) {
	if !r.policy.eligible(f) {
		r.m.ignored.Inc()
		return nil, nil
	}
	rule, err := r.policy.match(f)
	if err != nil {
		r.log.Warn("response rule failed to evaluate", "finding", f.ID, "err", err)
	}
	if rule == nil {
		r.m.ignored.Inc()
		return nil, nil
	}
	var evidence []schemas.Event
	if r.o.Evidence != nil && len(f.EventIDs) > 0 {
		if evidence, err = r.o.Evidence(ctx, f.Identity.ID, f.EventIDs); err != nil {
			return nil, fmt.Errorf("respond: evidence of finding %s: %w", f.ID, err)
		}
	}
	blast := Blast{}
	if r.o.Blast != nil {
		if blast, err = r.o.Blast(ctx, f.Identity.ID); err != nil {
			return nil, fmt.Errorf("respond: blast radius of %s: %w", f.Identity.ID, err)
		}
	}
	target := TargetOf(f, evidence)
	now := r.o.Now().UTC()
	mode := r.policy.modeOf(rule)
	recs := make([]Record, 0, len(rule.Actions))
	for _, a := range rule.Actions {
		req := Request{ID: requestID(f.ID, a.Action, a.Provider, target), Action: a.Action, Provider: a.Provider,
			Target: target, FindingID: f.ID, At: now,
			Reason: fmt.Sprintf("%s: %s (finding %s, rule %s)", f.Severity, f.Title, f.ID, rule.ID)}
		decision := ""
		if blast.FanIn > 0 {
			decision = fmt.Sprintf("blast radius %d (%d callers)", blast.Radius(), blast.FanIn)
		}
		recs = append(recs, Record{ID: req.ID, Time: now, FindingID: f.ID, IdentityID: f.Identity.ID,
			Action: a.Action, Provider: a.Provider, Mode: mode, Actor: actorSystem,
			BlastRadius: blast.Radius(), Request: req, Decision: decision})
	}
	return recs, nil
}

// decide sets a planned record's status: what the mode, the protections,
// the approval rules, the budgets and the breaker allow.
func (r *Responder) decide(rec *Record) {
	set := func(s Status, why string) {
		rec.Status = s
		if rec.Decision != "" {
			why += "; " + rec.Decision
		}
		rec.Decision = why
	}
	p := r.providers[rec.Provider]
	what := fmt.Sprintf("%s via %s", rec.Action, rec.Provider)
	if err := p.Check(rec.Action, rec.Request.Target); err != nil {
		set(StatusSkipped, fmt.Sprintf("%s: %v", what, err))
		return
	}
	if r.policy.protected(rec.IdentityID) {
		set(StatusSkipped, "protected identity")
		return
	}
	if rec.Mode == ModeDryRun {
		set(StatusDryRun, "would "+what)
		return
	}
	shadow := rec.Mode == ModeShadow
	if rec.Mode == ModeCanary && !r.policy.inCanary(rec.IdentityID) {
		shadow = true
		rec.Decision = strings.TrimPrefix(rec.Decision+"; outside the canary", "; ")
	}
	var wait []string
	ap := r.policy.Approval
	if ap.Always {
		wait = append(wait, "every action needs approval")
	}
	if ap.Irreversible && rec.Action == ActionRevoke {
		wait = append(wait, "revocation is irreversible")
	}
	if ap.FanInOver > 0 && rec.BlastRadius-1 > ap.FanInOver {
		wait = append(wait, fmt.Sprintf("fan-in %d over %d", rec.BlastRadius-1, ap.FanInOver))
	}
	if shadow {
		if len(wait) > 0 {
			set(StatusShadow, "would wait for approval ("+strings.Join(wait, ", ")+") to "+what)
		} else {
			set(StatusShadow, "would "+what)
		}
		return
	}
	if len(wait) > 0 {
		set(StatusPending, "needs approval: "+strings.Join(wait, ", "))
		return
	}
	why, opened := r.guard.allow(r.o.Now(), rec.Provider, rec.BlastRadius)
	if opened {
		r.breakerChanged(context.WithoutCancel(context.Background()), "open: "+why)
	}
	if why != "" {
		set(StatusPending, why)
		return
	}
	set(StatusRunning, what)
}

// execute calls the provider for a running record and audits the outcome:
// succeeded, failed (a permanent error or the last attempt), or queued for
// another attempt with backoff.
func (r *Responder) execute(ctx context.Context, rec Record) Record {
	p := r.providers[rec.Provider]
	rec.Attempts++
	call, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
	res, err := p.Do(call, rec.Request)
	cancel()
	switch {
	case err == nil:
		rec.Status, rec.Detail, rec.Undo = StatusSucceeded, res.Detail, res.Undo
	case IsPermanent(err) || errors.Is(err, ErrNotApplicable):
		rec.Status, rec.Detail = StatusFailed, err.Error()
		r.m.providerErrors.WithLabelValues(rec.Provider, "permanent").Inc()
	case rec.Attempts >= r.policy.Retry.MaxAttempts:
		rec.Status, rec.Detail = StatusFailed, fmt.Sprintf("gave up after %d attempts: %v", rec.Attempts, err)
		r.m.providerErrors.WithLabelValues(rec.Provider, "retryable").Inc()
	default:
		wait := r.policy.Retry.First << min(rec.Attempts-1, 20)
		rec.Status, rec.Detail = StatusQueued, err.Error()
		rec.NextAttempt = r.o.Now().Add(min(wait, r.policy.Retry.Max)).UTC()
		r.m.providerErrors.WithLabelValues(rec.Provider, "retryable").Inc()
	}
	if err != nil {
		r.log.Warn("response action failed", "id", rec.ID, "provider", rec.Provider, "action", rec.Action,
			"attempt", rec.Attempts, "status", rec.Status, "err", err)
	} else {
		r.log.Info("response action succeeded", "id", rec.ID, "provider", rec.Provider, "action", rec.Action,
			"identity", rec.IdentityID, "detail", res.Detail)
	}
	// The outcome must reach the trail even when ctx has just ended.
	if werr := r.write(context.WithoutCancel(ctx), &rec); werr != nil {
		r.log.Error("audit the outcome of a response action", "id", rec.ID, "err", werr)
	}
	return rec
}

// write stores records with a new version and copies them to the sinks.
func (r *Responder) write(ctx context.Context, ptrs ...*Record) error {
	now := r.o.Now().UTC()
	recs := make([]Record, len(ptrs))
	for i, p := range ptrs {
		p.UpdatedAt = now
		p.Version = uint64(time.Now().UnixNano())
		recs[i] = *p
		if p.ID != BreakerID {
			r.m.actions.WithLabelValues(p.Provider, string(p.Action), string(p.Status)).Inc()
		}
	}
	if err := r.o.Store.WriteAudit(ctx, recs); err != nil {
		return fmt.Errorf("respond: write the audit trail: %w", err)
	}
	for _, s := range r.o.Sinks {
		if err := s.WriteAudit(ctx, recs); err != nil {
			// The store has it; the topic copy is best effort but loud.
			r.log.Error("copy audit records to the audit topic", "err", err)
			r.m.sinkErrors.Inc()
		}
	}
	return nil
}

// RunRetries makes the attempts of queued actions as they fall due, and
// follows the breaker's record, until ctx ends. Actions left running by a
// crash are queued again first (providers' calls are idempotent).
func (r *Responder) RunRetries(ctx context.Context, every time.Duration) {
	if recs, err := r.o.Store.LoadAudit(ctx, AuditQuery{Statuses: []Status{StatusRunning}}); err == nil {
		for _, rec := range recs {
			if r.o.Now().Sub(rec.UpdatedAt) > 2*r.o.CallTimeout {
				rec.Status, rec.NextAttempt, rec.Decision = StatusQueued, r.o.Now().UTC(), rec.Decision+"; interrupted, retried"
				if err := r.write(ctx, &rec); err != nil {
					r.log.Warn("requeue an interrupted action", "id", rec.ID, "err", err)
				}
			}
		}
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := r.retryDue(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("response retries", "err", err)
		}
		if err := r.syncBreaker(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("read the circuit breaker's state", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Responder) retryDue(ctx context.Context) error {
	due, err := r.o.Store.LoadAudit(ctx, AuditQuery{Statuses: []Status{StatusQueued}, DueBy: r.o.Now()})
	if err != nil {
		return err
	}
	for _, rec := range due {
		if ctx.Err() != nil {
			return nil
		}
		rec.Status = StatusRunning
		if err := r.write(ctx, &rec); err != nil {
			return err
		}
		r.execute(ctx, rec)
	}
	return nil
}

// syncBreaker applies a reset written by `nhisentry respond reset`, and
// exports the breaker's state.
func (r *Responder) syncBreaker(ctx context.Context) error {
	recs, err := r.o.Store.LoadAudit(ctx, AuditQuery{IDs: []string{BreakerID}})
	if err != nil {
		return err
	}
	if len(recs) == 1 && recs[0].Version > r.breakerV {
		rec := recs[0]
		r.breakerV = rec.Version
		if why, ok := strings.CutPrefix(rec.Decision, "open: "); ok {
			r.guard.openSince(rec.UpdatedAt, why) // opened by another process, or before a restart
		} else {
			r.guard.reset()
		}
	}
	open, _ := r.guard.open(r.o.Now())
	r.m.breakerOpen.Set(map[bool]float64{true: 1, false: 0}[open])
	return nil
}

// breakerChanged records the breaker's state for operators and for other
// processes.
func (r *Responder) breakerChanged(ctx context.Context, decision string) {
	r.log.Error("response circuit breaker: "+decision, "budgets", r.policy.Budgets)
	r.m.breakerOpen.Set(1)
	rec := Record{ID: BreakerID, Time: breakerTime, Decision: decision, Actor: actorSystem}
	if err := r.write(ctx, &rec); err != nil {
		r.log.Error("audit the circuit breaker", "err", err)
	}
	r.breakerV = rec.Version
}

// breakerTime is the breaker record's fixed Time: rewrites of one id must
// stay in one partition to replace each other.
var breakerTime = time.Unix(0, 0).UTC()

// ErrState is returned when an action is not in a state that allows the
// operation (approving a succeeded action, undoing a pending one).
var ErrState = errors.New("not allowed in this state")

// one loads a record by id.
func (r *Responder) one(ctx context.Context, id string) (Record, error) {
	recs, err := r.o.Store.LoadAudit(ctx, AuditQuery{IDs: []string{id}})
	if err != nil {
		return Record{}, err
	}
	if len(recs) == 0 || id == BreakerID {
		return Record{}, fmt.Errorf("no action %q in the audit trail", id)
	}
	return recs[0], nil
}

// Approve lets a pending action run now, on a person's authority: it
// bypasses the budgets and the breaker (which stop automation, not people)
// but is counted against them.
func (r *Responder) Approve(ctx context.Context, id, actor string) (Record, error) {
	rec, err := r.one(ctx, id)
	if err != nil {
		return rec, err
	}
	if rec.Status != StatusPending {
		return rec, fmt.Errorf("approve %s: it is %s: %w", id, rec.Status, ErrState)
	}
	if _, ok := r.providers[rec.Provider]; !ok {
		return rec, fmt.Errorf("approve %s: provider %s is not configured here", id, rec.Provider)
	}
	rec.Status, rec.Actor, rec.Decision = StatusRunning, actor, "approved by "+actor+"; "+rec.Decision
	if err := r.write(ctx, &rec); err != nil {
		return rec, err
	}
	r.guard.record(r.o.Now(), rec.Provider, rec.BlastRadius)
	return r.execute(ctx, rec), nil
}

// Reject closes a pending action without acting.
func (r *Responder) Reject(ctx context.Context, id, actor, why string) (Record, error) {
	rec, err := r.one(ctx, id)
	if err != nil {
		return rec, err
	}
	if rec.Status != StatusPending && rec.Status != StatusQueued {
		return rec, fmt.Errorf("reject %s: it is %s: %w", id, rec.Status, ErrState)
	}
	rec.Status, rec.Actor, rec.Decision = StatusRejected, actor, strings.TrimSuffix("rejected by "+actor+": "+why, ": ")
	return rec, r.write(ctx, &rec)
}

// Undo reverses a succeeded action where the provider allows it.
func (r *Responder) Undo(ctx context.Context, id, actor string) (Record, error) {
	rec, err := r.one(ctx, id)
	if err != nil {
		return rec, err
	}
	if rec.Status != StatusSucceeded {
		return rec, fmt.Errorf("undo %s: it is %s: %w", id, rec.Status, ErrState)
	}
	p, ok := r.providers[rec.Provider]
	if !ok {
		return rec, fmt.Errorf("undo %s: provider %s is not configured here", id, rec.Provider)
	}
	call, cancel := context.WithTimeout(ctx, r.o.CallTimeout)
	defer cancel()
	res, err := p.Undo(call, rec.Request, Result{Detail: rec.Detail, Undo: rec.Undo})
	if err != nil {
		return rec, fmt.Errorf("undo %s via %s: %w", id, rec.Provider, err)
	}
	rec.Status, rec.Actor, rec.Detail = StatusUndone, actor, res.Detail
	rec.Decision = "undone by " + actor + "; " + rec.Decision
	return rec, r.write(ctx, &rec)
}

// Reset closes the circuit breaker (here and, through the audit trail, in
// running services).
func (r *Responder) Reset(ctx context.Context, actor string) error {
	r.guard.reset()
	rec := Record{ID: BreakerID, Time: breakerTime, Decision: "reset by " + actor, Actor: actor}
	return r.write(ctx, &rec)
}

// List returns the actions with the given statuses (all when none),
// oldest first, without the breaker's record.
func (r *Responder) List(ctx context.Context, statuses ...Status) ([]Record, error) {
	recs, err := r.o.Store.LoadAudit(ctx, AuditQuery{Statuses: statuses})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(recs, func(rec Record) bool { return rec.ID == BreakerID }), nil
}

// Breaker reports whether the circuit breaker is open here, and why.
func (r *Responder) Breaker() (bool, string) { return r.guard.open(r.o.Now()) }
