package rules

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/rules/pack"
)

// expectedOnNormalTraffic lists the pack's rules that are documented to
// match the generator's normal traffic, with why. There are none: every
// rule of the pack must be precise enough to stay quiet on a normal week.
var expectedOnNormalTraffic = map[string]string{}

// replayWeek replays cfg's generated week through the engine with the rule
// set s as `nhisentry scan` would (linker, cache, rebuilds at every
// midnight on the embedded store), and fails t on rule evaluation errors.
func replayWeek(t *testing.T, cfg gen.Config, s *Set) *detectortest.ReplayResult {
	t.Helper()
	r := detectortest.Replay(t, detectortest.ReplayConfig{Gen: cfg, Detectors: []detectors.Detector{s}})
	if s.Errors() != 0 {
		t.Errorf("%d rule evaluation errors", s.Errors())
	}
	return r
}

// matches returns the rules that matched in r, sorted, with their counts
// before the engine merged repeats and an example event of each.
func matches(r *detectortest.ReplayResult) (ids []string, counts map[string]int, examples map[string]string) {
	counts, examples = map[string]int{}, map[string]string{}
	for k, n := range r.Raised {
		id := strings.TrimPrefix(k, "rule/")
		ev := r.Examples[k]
		counts[id] = n
		examples[id] = fmt.Sprintf("%s %s %s from %s (%s) at %s", ev.Identity.ID, ev.Action, ev.Outcome.Result,
			ev.Actor.IP, ev.Target.Peer, ev.Time.Format(time.RFC3339))
	}
	return slices.Sorted(maps.Keys(counts)), counts, examples
}

// TestPackQuietOnNormalWeek runs the whole default pack over a generated
// normal week and requires no match, except from rules documented in
// expectedOnNormalTraffic; then it reports the matches per rule on the same
// week with the attacks injected and requires the pack to catch some.
// Under the race detector the population is a quarter of the default, still
// a full week.
func TestPackQuietOnNormalWeek(t *testing.T) {
	s, err := Options{}.LoadData("pack/default.yaml", pack.Default)
	if err != nil {
		t.Fatal(err)
	}
	cfg := gen.Config{Seed: 7}
	normal := replayWeek(t, cfg, s)
	t.Logf("normal week: %d events, %d rules", len(normal.Events), s.Len())
	ids, counts, examples := matches(normal)
	for _, id := range ids {
		if why, ok := expectedOnNormalTraffic[id]; ok {
			t.Logf("  %s: %d matches (expected: %s)", id, counts[id], why)
			continue
		}
		t.Errorf("rule %s matched %d normal events, e.g. %s", id, counts[id], examples[id])
	}

	s2, _ := Options{}.LoadData("pack/default.yaml", pack.Default)
	cfg.Attacks = true
	attacked := replayWeek(t, cfg, s2)
	var scenarios []string
	for _, l := range attacked.Labels {
		scenarios = append(scenarios, l.Scenario+" ("+l.Identity+")")
	}
	t.Logf("attack week: %d events, scenarios %s", len(attacked.Events), strings.Join(scenarios, ", "))
	ids, counts, examples = matches(attacked)
	for _, id := range ids {
		t.Logf("  %-36s %4d matches, e.g. %s", id, counts[id], examples[id])
	}
	if len(ids) == 0 {
		t.Error("no rule of the pack matched the attack week")
	}
}
