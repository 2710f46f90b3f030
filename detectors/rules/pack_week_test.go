package rules

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/engine"
	"github.com/nhisentry/nhisentry/detectors/rules/pack"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// expectedOnNormalTraffic lists the pack's rules that are documented to
// match the generator's normal traffic, with why. There are none: every
// rule of the pack must be precise enough to stay quiet on a normal week.
var expectedOnNormalTraffic = map[string]string{}

// countingDetector runs a rule set and counts its matches per rule before
// the engine merges repeats, keeping one example of each.
type countingDetector struct {
	s        *Set
	counts   map[string]int
	examples map[string]string
}

func (c *countingDetector) Name() string { return "rules" }

func (c *countingDetector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	n := len(dst)
	dst = c.s.Detect(in, dst)
	for _, f := range dst[n:] {
		c.counts[f.RuleID]++
		if _, ok := c.examples[f.RuleID]; !ok {
			ev := in.Event
			c.examples[f.RuleID] = fmt.Sprintf("%s %s %s from %s (%s) at %s", ev.Identity.ID, ev.Action, ev.Outcome.Result,
				ev.Actor.IP, ev.Target.Peer, ev.Time.Format(time.RFC3339))
		}
	}
	return dst
}

// runWeek generates a week of telemetry, decodes it with the real decoders
// and runs it through the engine (linker, cache, daily rebuilds on the
// embedded store) with the rule set s, as `nhisentry scan` would.
func runWeek(t testing.TB, cfg gen.Config, s *Set) (*countingDetector, int, []gen.Label) {
	t.Helper()
	ctx := context.Background()
	decoders := map[string]ingest.Decoder{}
	for _, f := range gen.Formats {
		d, err := formats.ByName(f)
		if err != nil {
			t.Fatal(err)
		}
		decoders[f] = d
	}
	var events []schemas.Event
	labels, err := gen.Generate(cfg, func(r gen.Record) error {
		var err error
		events, err = decoders[r.Format].Decode(events, ingest.Record{Key: r.Key, Value: r.Value, Time: r.Time})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.SortStableFunc(events, func(a, b schemas.Event) int { return a.Time.Compare(b.Time.Time) })

	store := memstore.New()
	cache := baseline.NewCache(baseline.CacheOptions{Loader: store})
	det := &countingDetector{s: s, counts: map[string]int{}, examples: map[string]string{}}
	var now time.Time
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := engine.New(engine.Options{Cache: cache, Detectors: []detectors.Detector{det}, Events: store, Logger: log,
		Now: func() time.Time { return now }})
	rb := baseline.NewRebuilder(store, cache, cache.Classes(), baseline.RebuildOptions{Clock: func() time.Time { return now }}, log)
	linker := ingest.NewLinker(0)
	var lastRebuild time.Time
	const batch = 2000
	for i := 0; i < len(events); i += batch {
		b := events[i:min(i+batch, len(events))]
		linker.Apply(b)
		now = b[len(b)-1].Time.Time
		if err := eng.Handle(ctx, b); err != nil {
			t.Fatal(err)
		}
		if now.Sub(lastRebuild) >= 24*time.Hour {
			if _, err := rb.Rebuild(ctx, false); err != nil {
				t.Fatal(err)
			}
			lastRebuild = now
		}
	}
	if s.Errors() != 0 {
		t.Errorf("%d rule evaluation errors", s.Errors())
	}
	return det, len(events), labels
}

// TestPackQuietOnNormalWeek runs the whole default pack over a generated
// normal week and requires no match, except from rules documented in
// expectedOnNormalTraffic; then it reports the matches per rule on the same
// week with the attacks injected and requires the pack to catch some.
func TestPackQuietOnNormalWeek(t *testing.T) {
	if testing.Short() {
		t.Skip("a generated week takes a while")
	}
	s, err := Options{}.LoadData("pack/default.yaml", pack.Default)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gen.Config{Seed: 7}
	if raceEnabled {
		// A quarter of the default population, still a full week.
		cfg.Workloads, cfg.Roles, cfg.APIKeys, cfg.VaultClients = 30, 15, 15, 10
	}
	normal, n, _ := runWeek(t, cfg, s)
	t.Logf("normal week: %d events, %d rules", n, s.Len())
	for _, id := range sortedKeys(normal.counts) {
		if why, ok := expectedOnNormalTraffic[id]; ok {
			t.Logf("  %s: %d matches (expected: %s)", id, normal.counts[id], why)
			continue
		}
		t.Errorf("rule %s matched %d normal events, e.g. %s", id, normal.counts[id], normal.examples[id])
	}

	s2, _ := Options{}.LoadData("pack/default.yaml", pack.Default)
	cfg.Attacks = true
	attacked, n, labels := runWeek(t, cfg, s2)
	var scenarios []string
	for _, l := range labels {
		scenarios = append(scenarios, l.Scenario+" ("+l.Identity+")")
	}
	t.Logf("attack week: %d events, scenarios %s", n, strings.Join(scenarios, ", "))
	for _, id := range sortedKeys(attacked.counts) {
		t.Logf("  %-36s %4d matches, e.g. %s", id, attacked.counts[id], attacked.examples[id])
	}
	if len(attacked.counts) == 0 {
		t.Error("no rule of the pack matched the attack week")
	}
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
