package baseline

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// RebuildOptions configures a Rebuilder.
type RebuildOptions struct {
	// Every is the schedule of Run; default 15 minutes.
	Every time.Duration `yaml:"every"`
	// History is how far back the builder reads; default 35 days, a month
	// of weekly seasonality with a margin.
	History time.Duration `yaml:"history"`
	// Chunk is how many identities are built and saved at a time, which
	// bounds the rebuild's memory; default 1000.
	Chunk int `yaml:"chunk"`
	// MaxValues bounds each known set kept in a stored baseline; a larger
	// set is stored as its most used values and loads as open. Default
	// MaxKnown.
	MaxValues int `yaml:"max_values"`
	// Observe, when set, sees the outcome of every rebuild (for metrics).
	Observe func(RebuildStats, error) `yaml:"-"`
	// Clock is the time the baselines describe (their DataThrough): dormancy
	// and the recent windows are measured to it. Nil means the wall clock;
	// a scan of old logs passes the time of its latest event.
	Clock func() time.Time `yaml:"-"`
}

func (o RebuildOptions) withDefaults() RebuildOptions {
	if o.Every <= 0 {
		o.Every = 15 * time.Minute
	}
	if o.History <= 0 {
		o.History = 35 * 24 * time.Hour
	}
	if o.Chunk <= 0 {
		o.Chunk = 1000
	}
	if o.MaxValues <= 0 {
		o.MaxValues = MaxKnown
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

// Validate lists every problem at once.
func (o RebuildOptions) Validate() []error {
	var errs []error
	if o.Every < 0 || o.History < 0 {
		errs = append(errs, fmt.Errorf("rebuild: durations must not be negative"))
	}
	if o.Chunk < 0 || o.MaxValues < 0 {
		errs = append(errs, fmt.Errorf("rebuild: sizes must not be negative"))
	}
	return errs
}

// CohortPrefix starts the identity id of a cohort's stored baseline row.
const CohortPrefix = "cohort:"

// Rebuilder computes baselines from a Store's rollups, saves them, and
// hands them to the Cache: incrementally (only identities with events since
// the last rollup, and their cohorts) on a schedule and on demand.
type Rebuilder struct {
	store   Store
	cache   *Cache // may be nil (the CLI's rebuild)
	classes Classes
	opts    RebuildOptions
	log     *slog.Logger
	now     func() time.Time
	// mu makes rebuilds run one at a time.
	mu sync.Mutex
}

// NewRebuilder builds a Rebuilder; cache may be nil.
func NewRebuilder(store Store, cache *Cache, classes Classes, opts RebuildOptions, log *slog.Logger) *Rebuilder {
	if classes == nil {
		classes = DefaultClasses()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Rebuilder{store: store, cache: cache, classes: classes, opts: opts.withDefaults(), log: log, now: time.Now}
}

// RebuildStats says what one rebuild did.
type RebuildStats struct {
	Changed int // identities whose rollups changed
	Built   int // baselines built and saved
	Cohorts int // cohort baselines built and saved
	Mark    time.Time
	Took    time.Duration
}

// Rebuild brings the rollups up to date and rebuilds the baselines of the
// identities with new events (every identity when full is set).
func (r *Rebuilder) Rebuild(ctx context.Context, full bool) (RebuildStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.rebuild(ctx, full)
	if r.opts.Observe != nil {
		r.opts.Observe(st, err)
	}
	return st, err
}

func (r *Rebuilder) rebuild(ctx context.Context, full bool) (RebuildStats, error) {
	start := r.now()
	var st RebuildStats
	mark, err := r.store.Mark(ctx)
	if err != nil {
		return st, fmt.Errorf("rebuild: read rollup mark: %w", err)
	}
	if full {
		mark = time.Time{}
	}
	changed, next, err := r.store.Rollup(ctx, mark)
	if err != nil {
		return st, fmt.Errorf("rebuild: rollup: %w", err)
	}
	st.Changed, st.Mark = len(changed), next
	var ids []string // nil: every identity
	if !full {
		if len(changed) == 0 {
			st.Took = r.now().Sub(start)
			return st, r.setMark(ctx, next)
		}
		ids = changed
	}
	through := r.opts.Clock()
	built, cohorts, err := r.build(ctx, ids, through, start)
	if err != nil {
		return st, err
	}
	st.Built = built
	if st.Cohorts, err = r.buildCohorts(ctx, cohorts, through, start); err != nil {
		return st, err
	}
	if err := r.setMark(ctx, next); err != nil {
		return st, err
	}
	st.Took = r.now().Sub(start)
	r.log.Info("baselines rebuilt", "changed", st.Changed, "built", st.Built, "cohorts", st.Cohorts,
		"mark", st.Mark, "took", st.Took.Round(time.Millisecond))
	return st, nil
}

func (r *Rebuilder) setMark(ctx context.Context, mark time.Time) error {
	if err := r.store.SetMark(ctx, mark); err != nil {
		return fmt.Errorf("rebuild: save rollup mark: %w", err)
	}
	return nil
}

// member is what a cohort baseline needs of one member's baseline.
type member struct {
	id      schemas.Identity
	mean    float64
	actions []string
}

// build builds and saves the baselines of ids in chunks and returns how many
// it built and, per cohort it touched, the members it built.
func (r *Rebuilder) build(ctx context.Context, ids []string, through, now time.Time) (int, map[string][]member, error) {
	o := BuildOptions{Now: now, DataThrough: through, Version: now.UnixNano(), MaxValues: r.opts.MaxValues}
	cohorts := map[string][]member{}
	var chunk []*Baseline
	built := 0
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		if err := r.store.SaveBaselines(ctx, chunk); err != nil {
			return fmt.Errorf("rebuild: save %d baselines: %w", len(chunk), err)
		}
		if r.cache != nil {
			r.cache.Apply(chunk)
		}
		built += len(chunk)
		chunk = chunk[:0:0]
		return nil
	}
	from := through.Add(-r.opts.History)
	err := r.store.Histories(ctx, ids, from, func(h *History) error {
		b := Build(h, o)
		b.Class = r.classes.Match(b.Identity).Name
		if b.Cohort != "" {
			cohorts[b.Cohort] = append(cohorts[b.Cohort], memberOf(b))
		}
		chunk = append(chunk, b)
		if len(chunk) >= r.opts.Chunk {
			return flush()
		}
		return nil
	})
	if err != nil {
		return built, nil, fmt.Errorf("rebuild: read histories: %w", err)
	}
	return built, cohorts, flush()
}

func memberOf(b *Baseline) member {
	m := member{id: b.Identity, mean: b.Rate.Mean}
	for _, ks := range b.Known {
		if ks.Dim == DimAction.String() {
			for _, v := range ks.Values {
				m.actions = append(m.actions, v.Value)
			}
		}
	}
	return m
}

// buildCohorts rebuilds the cohort baselines of the cohorts touched: the
// members built now plus the members the stored cohort row lists, whose
// stored baselines stand for them.
func (r *Rebuilder) buildCohorts(ctx context.Context, touched map[string][]member, through, now time.Time) (int, error) {
	if len(touched) == 0 {
		return 0, nil
	}
	keys := make([]string, 0, len(touched))
	for k := range touched {
		keys = append(keys, CohortPrefix+k)
	}
	sort.Strings(keys)
	// Members listed by the stored cohort rows that this rebuild did not
	// build.
	others := map[string]bool{}
	err := r.store.LoadBaselines(ctx, keys, func(b *Baseline) error {
		if b.CohortStats == nil {
			return nil
		}
		built := map[string]bool{}
		for _, m := range touched[b.Cohort] {
			built[m.id.ID] = true
		}
		for _, id := range b.CohortStats.Members {
			if !built[id] {
				others[id] = true
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("rebuild: load cohort baselines: %w", err)
	}
	if len(others) > 0 {
		ids := make([]string, 0, len(others))
		for id := range others {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		err := r.store.LoadBaselines(ctx, ids, func(b *Baseline) error {
			if _, ok := touched[b.Cohort]; ok {
				touched[b.Cohort] = append(touched[b.Cohort], memberOf(b))
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("rebuild: load cohort members: %w", err)
		}
	}
	var bs []*Baseline
	for _, k := range keys {
		cohort := k[len(CohortPrefix):]
		ms := touched[cohort]
		if len(ms) < 2 {
			continue // an identity alone is not a cohort
		}
		stand := make([]*Baseline, len(ms))
		for i, m := range ms {
			stand[i] = &Baseline{Identity: m.id, Cohort: cohort, Rate: Rate{Mean: m.mean},
				Known: []KnownSet{{Dim: DimAction.String(), Values: knownValues(m.actions)}}}
		}
		// Every member is listed: the next incremental rebuild finds the
		// members it does not rebuild through this list.
		stats := Cohorts(stand, math.MaxInt)[cohort]
		if stats == nil {
			continue
		}
		bs = append(bs, &Baseline{
			Identity: schemas.Identity{ID: k, Kind: "cohort", Name: cohort}, Class: "cohort", Cohort: cohort,
			Version: now.UnixNano(), BuiltAt: now, DataThrough: through, CohortStats: stats,
		})
	}
	if len(bs) == 0 {
		return 0, nil
	}
	if err := r.store.SaveBaselines(ctx, bs); err != nil {
		return 0, fmt.Errorf("rebuild: save %d cohort baselines: %w", len(bs), err)
	}
	if r.cache != nil {
		r.cache.Apply(bs)
	}
	return len(bs), nil
}

func knownValues(vs []string) []KnownValue {
	out := make([]KnownValue, len(vs))
	for i, v := range vs {
		out[i] = KnownValue{Value: v}
	}
	return out
}

// Run rebuilds on the schedule until ctx ends. A failed rebuild is logged
// and retried at the next tick: the cache keeps learning online meanwhile.
func (r *Rebuilder) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Rebuild(ctx, false); err != nil && ctx.Err() == nil {
				r.log.Error("baseline rebuild failed; the cache keeps learning online", "err", err)
			}
		}
	}
}
