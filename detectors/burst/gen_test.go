package burst_test

import (
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/burst"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
)

// TestGeneratedRun replays ten generated days with the labelled attacks:
// the privilege probing must be found, with at most one false finding per
// 1,000 identity-days (SPEC §11).
func TestGeneratedRun(t *testing.T) {
	r := detectortest.Replay(t, detectortest.ReplayConfig{
		Gen:       gen.Config{Seed: 3, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Duration: 10 * 24 * time.Hour, Attacks: true},
		Detectors: []detectors.Detector{burst.New(burst.DefaultConfig())},
	})
	if !r.Judge(t)[gen.ScenarioPrivilegeProbing] {
		t.Errorf("the privilege probing was not found")
	}
}
