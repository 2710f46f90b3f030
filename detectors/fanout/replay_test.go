package fanout_test

import (
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/fanout"
)

// The generator's lateral-movement scenario (a workload calling 8–12 peers
// it never called, in half an hour) is reported, and nothing else in a week
// of a few hundred identities' traffic is.
func TestGeneratedLateralMovement(t *testing.T) {
	// Seeds 1–9 over 120 workloads, 20 roles, 10 keys and 10 Vault clients
	// all pass too; one seed over fewer keeps the test short.
	for _, seed := range []int64{1} {
		r := detectortest.Replay(t, detectortest.ReplayConfig{
			Gen:          gen.Config{Seed: seed, Attacks: true, Workloads: 60, Roles: 4, APIKeys: 4, VaultClients: 4},
			Detectors:    []detectors.Detector{fanout.New(fanout.DefaultConfig())},
			RebuildEvery: 12 * time.Hour,
		})
		found, labels := r.Findings, r.Labels
		var lateral *gen.Label
		for i := range labels {
			if labels[i].Scenario == gen.ScenarioLateralMovement {
				lateral = &labels[i]
			}
		}
		if lateral == nil {
			t.Fatalf("seed %d: no %s label", seed, gen.ScenarioLateralMovement)
		}
		caught := 0
		for _, f := range found {
			t.Logf("seed %d: %s %s %d: %s", seed, f.Identity.ID, f.Severity, f.Score, f.Explanation)
			if f.Identity.ID == lateral.Identity && !f.FirstSeen.Before(lateral.Start) && !f.FirstSeen.After(lateral.End) {
				caught++
			}
		}
		if caught != 1 || len(found) != 1 || r.Raised[fanout.Name] != 1 {
			t.Errorf("seed %d: %d findings, %d of them on %s (%s); want exactly that one", seed, len(found), caught, lateral.Identity, lateral.Detail)
		}
	}
}
