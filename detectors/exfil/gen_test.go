package exfil_test

import (
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/exfil"
)

// TestGeneratedRun replays ten generated days with the labelled attacks:
// the API key pulling 25 times its usual volume of large pages must be
// found, with at most one false finding per 1,000 identity-days (SPEC §11).
func TestGeneratedRun(t *testing.T) {
	r := detectortest.Replay(t, detectortest.ReplayConfig{
		Gen:       gen.Config{Seed: 3, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Duration: 10 * 24 * time.Hour, Attacks: true},
		Detectors: []detectors.Detector{exfil.New(exfil.DefaultConfig())},
	})
	if !r.Judge(t)[gen.ScenarioAPIKeySpike] {
		t.Errorf("the API key's bulk download was not found")
	}
}
