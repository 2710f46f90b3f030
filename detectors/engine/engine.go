// Package engine owns the per-batch processing of normalized events: it runs
// every detector over each event against the identity's baseline, folds the
// event into the baseline afterwards, merges repeated findings into one with
// a count, and then
// stores findings before events, so a crash between the two never loses a
// finding (the replay finds the events missing and detects again, with the
// same deterministic finding ids). It implements ingest.Handler.
package engine

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// EventStore stores normalized events durably.
type EventStore interface {
	WriteEvents(ctx context.Context, events []schemas.Event) error
}

// FindingSink receives findings. WriteFindings returns only when the findings
// are stored or delivered, because the batch is committed next.
type FindingSink interface {
	Name() string
	WriteFindings(ctx context.Context, findings []schemas.Finding) error
}

// Options configures an Engine.
type Options struct {
	Cache     *baseline.Cache
	Detectors []detectors.Detector
	Events    EventStore
	Sinks     []FindingSink
	Logger    *slog.Logger
	// Registerer receives the engine's metrics; nil registers nothing.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Backoff paces retries of failed writes; zero means
	// ingest.DefaultBackoff.
	Backoff ingest.Backoff
	// SuppressIDs is how many emitted finding ids are remembered to merge
	// repeats (a rule matching every event of a burst) into one finding with
	// a count; default 1,000,000.
	SuppressIDs int
	// RememberEvents is how many learned event ids are remembered to
	// recognise redelivered events; default 524,288, many batches' worth.
	RememberEvents int
}

// Engine is the detection stage. Handle is called from one goroutine.
type Engine struct {
	opts    Options
	metrics *metrics
	emitted generations[string, sent]
	// inBatch maps a finding id to its index in findings during Detect.
	inBatch  map[string]int
	findings []schemas.Finding
	// origins holds, per finding of the last Detect, the event that raised
	// it: its family (the latency metric's label) and time.
	origins []origin
	// learned holds hashes of the ids of recently learned events. A
	// consumer-group rebalance, or a replay of an input record upstream of
	// the repartition topic, redelivers events that were processed but not
	// yet committed; learning them twice would double their counts, so they
	// are stored again (harmlessly: ids are deterministic) but not detected
	// or learned again. Ids rather than offsets, because events of one input
	// partition reach a detector through several repartition partitions, out
	// of offset order.
	learned generations[uint64, struct{}]
	seed    maphash.Seed
	// watermark is the latest event time detected, Unix nanoseconds.
	watermark atomic.Int64
}

type origin struct {
	family schemas.Family
	at     time.Time
}

// New builds an engine.
func New(opts Options) *Engine {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Backoff.First <= 0 {
		opts.Backoff = ingest.DefaultBackoff
	}
	if opts.SuppressIDs <= 0 {
		opts.SuppressIDs = 1_000_000
	}
	if opts.RememberEvents <= 0 {
		opts.RememberEvents = 1 << 19
	}
	return &Engine{
		opts: opts, metrics: newMetrics(opts.Registerer), inBatch: map[string]int{},
		emitted: newGenerations[string, sent](opts.SuppressIDs),
		learned: newGenerations[uint64, struct{}](opts.RememberEvents),
		seed:    maphash.MakeSeed(),
	}
}

// Sent is a finding as last delivered, read back from storage.
type Sent struct {
	ID, Identity    string
	Count, Revision int
	FirstSeen       time.Time
}

// SentFindings reads the findings delivered since a time, newest revision
// of each.
type SentFindings interface {
	SentFindings(ctx context.Context, since time.Time, fn func(Sent)) error
}

// Recall remembers the findings stored since a time of the identities owns
// reports, so that a finding raised again continues its revisions and count
// instead of being delivered anew. A detector instance calls it when the
// consumer group hands it partitions: the previous owner delivered those
// identities' findings. It must not run during Detect or Handle.
func (e *Engine) Recall(ctx context.Context, from SentFindings, since time.Time, owns func(identity string) bool) (int, error) {
	n := 0
	err := from.SentFindings(ctx, since, func(f Sent) {
		if !owns(f.Identity) {
			return
		}
		if prev, ok := e.emitted.get(f.ID); ok && prev.revision >= f.Revision {
			return
		}
		e.emitted.put(f.ID, sent{count: f.Count, revision: f.Revision, first: schemas.At(f.FirstSeen)})
		n++
	})
	return n, err
}

// maxEvidence bounds the evidence event ids a merged finding carries.
const maxEvidence = 10

// Detect runs the detectors over events and updates the baselines. It returns
// the batch's findings: repeats of one finding (the same id) within the batch
// merge into one with a count, and a finding already sent in an earlier
// batch comes back as its next revision with the count raised. The slice is
// reused by the next call.
func (e *Engine) Detect(events []schemas.Event) []schemas.Finding {
	now := e.opts.Now()
	out := e.findings[:0]
	origins := e.origins[:0]
	clear(e.inBatch)
	c := e.opts.Cache
	c.Lock()
	for i := range events {
		ev := &events[i]
		if ev.ID != "" {
			h := maphash.String(e.seed, ev.ID)
			if _, ok := e.learned.get(h); ok {
				e.metrics.replayed.Inc()
				continue
			}
			e.learned.put(h, struct{}{})
		}
		if t := ev.Time.UnixNano(); t > e.watermark.Load() {
			e.watermark.Store(t)
		}
		p := c.Get(ev.Identity)
		in := detectors.NewInput(p, ev, now)
		in.Cohort = c.Cohort(p)
		for _, d := range e.opts.Detectors {
			before := len(out)
			out = d.Detect(&in, out)
			// Merge repeats in place so the slice holds each id once.
			kept := before
			for _, f := range out[before:] {
				if i, ok := e.inBatch[f.ID]; ok {
					merge(&out[i], &f)
					continue
				}
				f.Count, f.Revision = 1, 0
				if prev, ok := e.emitted.get(f.ID); ok {
					f.Count, f.Revision, f.FirstSeen = prev.count+1, prev.revision+1, prev.first
				}
				e.inBatch[f.ID] = kept
				out[kept] = f
				kept++
				origins = append(origins, origin{ev.Source.Family, ev.Time.Time})
			}
			out = out[:kept]
		}
		c.Observe(p, ev)
	}
	c.Unlock()
	e.findings, e.origins = out, origins
	for i := range out {
		f := &out[i]
		e.emitted.put(f.ID, sent{count: f.Count, revision: f.Revision, first: f.FirstSeen})
		if f.Revision == 0 {
			e.metrics.findings.WithLabelValues(f.Detector, string(f.Severity)).Inc()
		}
	}
	return out
}

// merge folds a repeat into the finding it repeats.
func merge(f, repeat *schemas.Finding) {
	f.Count++
	if repeat.FirstSeen.Before(f.FirstSeen.Time) {
		f.FirstSeen = repeat.FirstSeen
	}
	if repeat.LastSeen.After(f.LastSeen.Time) {
		f.LastSeen = repeat.LastSeen
	}
	for _, id := range repeat.EventIDs {
		if len(f.EventIDs) >= maxEvidence {
			break
		}
		f.EventIDs = append(f.EventIDs, id)
	}
}

// DataClock is the time the data has reached: the latest event time
// detected, but never ahead of the wall clock (a skewed source must not
// make every identity look dormant), and the wall clock before any event.
// Baselines measure dormancy and recent windows to it, so a replay of old
// logs is described as of its own time.
func (e *Engine) DataClock() time.Time {
	now := time.Now()
	w := e.watermark.Load()
	if w == 0 || w > now.UnixNano() {
		return now
	}
	return time.Unix(0, w).UTC()
}

// Handle implements ingest.Handler: detect, then store findings, then events.
// Writes are retried with backoff until they succeed or ctx ends; detection
// runs once, because the baselines have already learned from the batch.
func (e *Engine) Handle(ctx context.Context, events []schemas.Event) error {
	start := time.Now()
	if err := e.retry(ctx, "baselines", func() error { return e.opts.Cache.Prepare(ctx, identities(events)) }); err != nil {
		return err
	}
	findings := e.Detect(events)
	e.metrics.detectSeconds.Observe(time.Since(start).Seconds())
	for _, s := range e.opts.Sinks {
		err := e.retry(ctx, "findings to "+s.Name(), func() error { return s.WriteFindings(ctx, findings) })
		if err != nil {
			return err
		}
	}
	now := e.opts.Now()
	for i := range findings {
		f := &findings[i]
		// Event time to delivered finding: "seconds, not minutes", measured.
		o := e.origins[i]
		e.metrics.latency.WithLabelValues(string(o.family)).Observe(now.Sub(o.at).Seconds())
		e.opts.Logger.Warn("finding", "id", f.ID, "detector", f.Detector, "rule", f.RuleID,
			"identity", f.Identity.ID, "severity", f.Severity, "score", f.Score, "explanation", f.Explanation)
	}
	start = time.Now()
	if err := e.retry(ctx, "events", func() error { return e.opts.Events.WriteEvents(ctx, events) }); err != nil {
		return err
	}
	e.metrics.storeSeconds.Observe(time.Since(start).Seconds())
	return nil
}

// identities lists the distinct identities of events.
func identities(events []schemas.Event) []string {
	seen := make(map[string]struct{}, len(events))
	ids := make([]string, 0, len(events))
	for i := range events {
		id := events[i].Identity.ID
		if _, ok := seen[id]; !ok {
			seen[id] = struct{}{}
			ids = append(ids, id)
		}
	}
	return ids
}

func (e *Engine) retry(ctx context.Context, what string, fn func() error) error {
	return ingest.Retry(ctx, e.opts.Backoff, e.opts.Logger, what,
		func(error) { e.metrics.writeErrors.WithLabelValues(what).Inc() }, fn)
}

// sent is what the engine remembers of a finding it sent.
type sent struct {
	count, revision int
	first           schemas.Time
}

// generations remembers recent entries in two generations: when the
// current one fills up it becomes the previous one, so memory stays bounded
// and the most recent entries are always remembered.
type generations[K comparable, V any] struct {
	cur, prev map[K]V
	limit     int
}

func newGenerations[K comparable, V any](limit int) generations[K, V] {
	return generations[K, V]{cur: make(map[K]V), prev: map[K]V{}, limit: max(limit/2, 1)}
}

// get returns what is remembered under k.
func (g *generations[K, V]) get(k K) (V, bool) {
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	v, ok := g.prev[k]
	return v, ok
}

// put remembers v under k.
func (g *generations[K, V]) put(k K, v V) {
	if _, ok := g.cur[k]; !ok && len(g.cur) >= g.limit {
		g.prev, g.cur = g.cur, make(map[K]V, g.limit)
	}
	g.cur[k] = v
}
