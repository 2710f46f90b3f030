package detectortest

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/engine"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// RaceEnabled reports whether the test binary is built with -race. The
// race detector slows a replay several times over; rather than skip, Replay
// then generates a smaller population (ReplayConfig.RaceDivisor), so the
// replays run in CI, which tests with -race.
const RaceEnabled = raceEnabled

// DefaultRaceDivisor is how many times smaller the generated population of
// a replay is under the race detector, unless ReplayConfig.RaceDivisor says.
const DefaultRaceDivisor = 4

// Batch is the most events a Pipeline hands the engine at a time.
const Batch = 2000

// ReplayConfig says what Replay generates and how it runs it.
type ReplayConfig struct {
	// Gen is the telemetry to generate. Under the race detector its
	// population (workloads, roles, API keys and Vault clients, a zero
	// count meaning the generator's default) is divided by RaceDivisor,
	// keeping what the generator's attacks need.
	Gen gen.Config
	// Detectors run over every event, in this order, as the engine runs
	// them.
	Detectors []detectors.Detector
	// Inject, when set, is given the decoded events in time order and
	// returns events to add (they are sorted in by time) with their labels.
	Inject func(evs []schemas.Event) ([]schemas.Event, []gen.Label)
	// RebuildEvery, when set, replaces the rebuild at every midnight of
	// event time: baselines are rebuilt after the first batch and then after
	// each batch that ends RebuildEvery or more of event time after the last
	// rebuild, with the clock at the batch's last event.
	RebuildEvery time.Duration
	// RaceDivisor divides the population under the race detector; zero
	// means DefaultRaceDivisor, 1 keeps the population as it is (for one
	// already small enough).
	RaceDivisor int
}

// ReplayResult is what Replay ran. Its Pipeline holds the findings and can
// run more events over the same baselines.
type ReplayResult struct {
	*Pipeline
	// Gen is the configuration generated, after the race detector's
	// scaling.
	Gen gen.Config
	// Events are the generated and injected events, in time order, as the
	// linker left them.
	Events []schemas.Event
	// Labels mark the generated and the injected attacks.
	Labels []gen.Label
}

// Replay generates cfg.Gen's telemetry, decodes it with the built-in
// decoders, adds what cfg.Inject returns, and runs it in event-time order
// through a Pipeline of cfg.Detectors, as `nhisentry scan` would: linked,
// detected by the engine on the cached baselines, stored in the embedded
// store, with the baselines rebuilt from it at every midnight of event time.
// It skips tb under -short: a replay takes seconds, a minute under -race.
func Replay(tb testing.TB, cfg ReplayConfig) *ReplayResult {
	tb.Helper()
	if testing.Short() {
		tb.Skip("replays generated telemetry: skipped with -short")
	}
	if RaceEnabled {
		cfg.Gen = shrink(cfg.Gen, cfg.RaceDivisor)
	}
	evs, labels := Generate(tb, cfg.Gen)
	if cfg.Inject != nil {
		more, ls := cfg.Inject(evs)
		evs, labels = append(evs, more...), append(labels, ls...)
		sortByTime(evs)
	}
	x := NewPipeline(tb, cfg.RebuildEvery, cfg.Detectors...)
	x.Run(evs)
	return &ReplayResult{Pipeline: x, Gen: cfg.Gen, Events: evs, Labels: labels}
}

// Attacks need at least this many workloads and roles in the generated
// population (gen.Generate refuses fewer).
const (
	attackWorkloads = 14
	attackRoles     = 2
)

// shrink divides the population of cfg by div (DefaultRaceDivisor when
// zero), keeping at least one identity of each kind and the identities
// the attacks need.
func shrink(cfg gen.Config, div int) gen.Config {
	if div == 0 {
		div = DefaultRaceDivisor
	}
	for _, c := range []struct {
		n   *int
		def int
	}{
		{&cfg.Workloads, gen.DefaultWorkloads}, {&cfg.Roles, gen.DefaultRoles},
		{&cfg.APIKeys, gen.DefaultAPIKeys}, {&cfg.VaultClients, gen.DefaultVaultClients},
	} {
		if *c.n == 0 {
			*c.n = c.def
		}
		*c.n = max(1, *c.n/div)
	}
	if cfg.Attacks {
		cfg.Workloads, cfg.Roles = max(cfg.Workloads, attackWorkloads), max(cfg.Roles, attackRoles)
	}
	return cfg
}

// Generate returns cfg's generated telemetry decoded with the built-in
// decoders, in event-time order, and the labels of its attacks.
func Generate(tb testing.TB, cfg gen.Config) ([]schemas.Event, []gen.Label) {
	tb.Helper()
	decoders := map[string]ingest.Decoder{}
	var evs []schemas.Event
	labels, err := gen.Generate(cfg, func(r gen.Record) error {
		dec := decoders[r.Format]
		if dec == nil {
			var err error
			if dec, err = formats.ByName(r.Format); err != nil {
				return err
			}
			decoders[r.Format] = dec
		}
		var err error
		evs, err = dec.Decode(evs, ingest.Record{Key: r.Key, Value: r.Value, Time: r.Time})
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	sortByTime(evs)
	return evs, labels
}

func sortByTime(evs []schemas.Event) {
	slices.SortStableFunc(evs, func(a, b schemas.Event) int { return a.Time.Compare(b.Time.Time) })
}

// Attack returns the label a finding belongs to (same identity, within an
// hour of the attack), or nil for a false finding.
func (r *ReplayResult) Attack(f *schemas.Finding) *gen.Label {
	for i := range r.Labels {
		l := &r.Labels[i]
		if l.Identity == f.Identity.ID && !f.FirstSeen.Before(l.Start.Add(-time.Hour)) && !f.FirstSeen.After(l.End.Add(time.Hour)) {
			return l
		}
	}
	return nil
}

// Judge logs every finding as an attack's (see Attack) or a false one,
// fails tb when the false ones are more than one per 1,000 identity-days
// (SPEC §11), and returns the scenarios of the attacks found.
func (r *ReplayResult) Judge(tb testing.TB) map[string]bool {
	tb.Helper()
	found := map[string]bool{}
	false_ := 0
	for i := range r.Findings {
		f := &r.Findings[i]
		if l := r.Attack(f); l != nil {
			found[l.Scenario] = true
			tb.Logf("%s: %s [%s %d] %s", l.Scenario, f.Title, f.Severity, f.Score, f.Explanation)
			continue
		}
		false_++
		tb.Logf("false: %s %s [%s %d] %s", f.Identity.ID, f.Title, f.Severity, f.Score, f.Explanation)
	}
	days := r.IdentityDays()
	tb.Logf("%d events, %d findings, %d false over %d identity-days", len(r.Events), len(r.Findings), false_, days)
	if max := days / 1000; false_ > max {
		tb.Errorf("%d false findings over %d identity-days, want at most %d", false_, days, max)
	}
	return found
}

// Pipeline runs detectors over events as `nhisentry scan` does: in
// batches of up to Batch events, each linked by the linker and handed to
// the engine, which detects every event on its identity's cached profile
// (with its cohort, the clock at the batch's last event), folds it in and
// stores the batch in the embedded store; the baselines are rebuilt from
// the store at every midnight of event time, with the clock at that
// midnight, or on the schedule of NewPipeline's rebuildEvery.
type Pipeline struct {
	// Findings holds the first revision of every finding the engine sent,
	// in order: one per id, repeats merged into it.
	Findings []schemas.Finding
	// Raised counts the findings the detectors raised, before the engine
	// merged repeats, by key: the detector's name, or "rule/<id>" for a
	// rule's (as scan's summary).
	Raised map[string]int
	// Examples holds the event that first raised each key of Raised.
	Examples map[string]schemas.Event

	Store  *memstore.Store
	Cache  *baseline.Cache
	Linker *ingest.Linker

	tb    testing.TB
	eng   *engine.Engine
	rb    *baseline.Rebuilder
	every time.Duration
	now   time.Time // the engine's clock
	clock time.Time // the rebuilder's
	day   int64     // Unix day of the last batch, -1 before the first
	next  time.Time // with every, when the next rebuild is due
	sent  []schemas.Finding
	days  map[identityDay]struct{}
}

type identityDay struct {
	id  string
	day int64
}

// NewPipeline is a Pipeline of dets over an empty store. With
// rebuildEvery zero the baselines are rebuilt at every midnight of event
// time; else see ReplayConfig.RebuildEvery.
func NewPipeline(tb testing.TB, rebuildEvery time.Duration, dets ...detectors.Detector) *Pipeline {
	x := &Pipeline{
		Raised: map[string]int{}, Examples: map[string]schemas.Event{},
		Store: memstore.New(), Linker: ingest.NewLinker(0),
		tb: tb, every: rebuildEvery, day: -1, days: map[identityDay]struct{}{},
	}
	x.Cache = baseline.NewCache(baseline.CacheOptions{Loader: x.Store})
	quiet := slog.New(slog.DiscardHandler)
	x.rb = baseline.NewRebuilder(x.Store, x.Cache, x.Cache.Classes(),
		baseline.RebuildOptions{Clock: func() time.Time { return x.clock }}, quiet)
	// The first detector only counts identity-days past learning; the
	// others count what they raise.
	all := []detectors.Detector{dayCounter{x}}
	for _, d := range dets {
		all = append(all, counted{d, x})
	}
	x.eng = engine.New(engine.Options{Cache: x.Cache, Detectors: all, Events: x.Store,
		Sinks: []engine.FindingSink{sink{x}}, Logger: quiet, Now: func() time.Time { return x.now }})
	return x
}

// Run runs evs, in time order and later than any event run before,
// through the pipeline and returns the findings the engine sent for them:
// a finding repeating one of an earlier batch comes as its next revision.
func (x *Pipeline) Run(evs []schemas.Event) []schemas.Finding {
	x.tb.Helper()
	ctx := context.Background()
	x.sent = nil
	for i := 0; i < len(evs); {
		n := min(Batch, len(evs)-i)
		if x.every == 0 {
			// A batch ends at the next midnight, and the baselines are
			// rebuilt before the first batch of a day.
			day := unixDay(evs[i].Time.Time)
			if x.day >= 0 && day != x.day {
				x.rebuild(time.Unix(day*86400, 0).UTC())
			}
			x.day = day
			for j := i + 1; j < i+n; j++ {
				if unixDay(evs[j].Time.Time) != day {
					n = j - i
					break
				}
			}
		}
		b := evs[i : i+n]
		x.Linker.Apply(b)
		x.now = b[n-1].Time.Time
		if err := x.eng.Handle(ctx, b); err != nil {
			x.tb.Fatal(err)
		}
		if x.every > 0 && !x.now.Before(x.next) {
			x.rebuild(x.now)
			x.next = x.now.Add(x.every)
		}
		i += n
	}
	return x.sent
}

func unixDay(t time.Time) int64 { return t.Unix() / 86400 }

func (x *Pipeline) rebuild(clock time.Time) {
	x.tb.Helper()
	x.clock = clock
	if _, err := x.rb.Rebuild(context.Background(), false); err != nil {
		x.tb.Fatal(err)
	}
}

// Profile is id's cached profile (a new, empty one for an identity never
// seen).
func (x *Pipeline) Profile(id schemas.Identity) *baseline.Profile {
	x.Cache.Lock()
	defer x.Cache.Unlock()
	return x.Cache.Get(id)
}

// IdentityDays is the number of distinct (identity, day) pairs of the
// events run whose identity was past learning: the denominator of the
// false-positive rate (SPEC §11).
func (x *Pipeline) IdentityDays() int { return len(x.days) }

// RaisedKey is the key of f in Pipeline.Raised.
func RaisedKey(f *schemas.Finding) string {
	if f.RuleID != "" {
		return f.Detector + "/" + f.RuleID
	}
	return f.Detector
}

// dayCounter is the pipeline's first detector: it raises nothing and counts
// identity-days past learning.
type dayCounter struct{ x *Pipeline }

func (dayCounter) Name() string { return "detectortest.days" }

func (c dayCounter) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if !in.Learning {
		c.x.days[identityDay{in.Event.Identity.ID, unixDay(in.Event.Time.Time)}] = struct{}{}
	}
	return dst
}

// counted runs d and counts what it raises in the pipeline's Raised.
type counted struct {
	d detectors.Detector
	x *Pipeline
}

func (c counted) Name() string { return c.d.Name() }

func (c counted) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	n := len(dst)
	dst = c.d.Detect(in, dst)
	for i := n; i < len(dst); i++ {
		k := RaisedKey(&dst[i])
		if c.x.Raised[k]++; c.x.Raised[k] == 1 {
			c.x.Examples[k] = *in.Event
		}
	}
	return dst
}

// sink keeps what the engine sends.
type sink struct{ x *Pipeline }

func (sink) Name() string { return "detectortest" }

func (s sink) WriteFindings(_ context.Context, fs []schemas.Finding) error {
	for _, f := range fs {
		f.EventIDs = slices.Clone(f.EventIDs)
		s.x.sent = append(s.x.sent, f)
		if f.Revision == 0 {
			s.x.Findings = append(s.x.Findings, f)
		}
	}
	return nil
}
