package dormant_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/dormant"
	"github.com/nhisentry/nhisentry/schemas"
)

// Ten days of generated traffic, rebuilt every three hours, raise nothing; then
// one role acts again ten days after its last event and a break-glass role,
// used once on the second day, is used again: both are reported, only they.
func TestGeneratedReactivation(t *testing.T) {
	var end time.Time
	x := detectortest.Replay(t, detectortest.ReplayConfig{
		Gen:       gen.Config{Seed: 5, Duration: 10 * 24 * time.Hour, Workloads: 14, Roles: 12, APIKeys: 6, VaultClients: 6},
		Detectors: []detectors.Detector{dormant.New(dormant.DefaultConfig())},
		// The break-glass role, used once on the second day.
		Inject: func(evs []schemas.Event) ([]schemas.Event, []gen.Label) {
			end = evs[len(evs)-1].Time.Time
			return []schemas.Event{detectortest.EventOf(breakGlass, evs[0].Time.Add(30*time.Hour), "iam:AttachRolePolicy")}, nil
		},
		RebuildEvery: 3 * time.Hour,
	})
	evs := x.Events
	for _, f := range x.Findings {
		t.Errorf("normal traffic: %s %s %d: %s", f.Identity.ID, f.Severity, f.Score, f.Explanation)
	}
	var role schemas.Identity
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Identity.Kind == schemas.KindRole && evs[i].Identity != breakGlass {
			role = evs[i].Identity
			break
		}
	}
	back := detectortest.EventOf(role, x.Profile(role).LastSeen.Add(10*24*time.Hour), "s3:GetObject")
	again := detectortest.EventOf(breakGlass, end.Add(time.Hour), "iam:AttachRolePolicy")
	got := x.Run([]schemas.Event{again, back})
	if len(got) != 2 {
		t.Fatalf("%d findings, want 2: %+v", len(got), got)
	}
	for _, f := range got {
		t.Logf("%s %s %d: %s", f.Identity.ID, f.Severity, f.Score, f.Explanation)
		switch f.Identity {
		case breakGlass:
			if f.Severity != schemas.SeverityHigh {
				t.Errorf("break-glass: %+v", f)
			}
		case role:
			if f.Severity != schemas.SeverityMedium || !strings.Contains(f.Explanation, "10.0 days of silence") {
				t.Errorf("role: %+v", f)
			}
		default:
			t.Errorf("finding on %s", f.Identity.ID)
		}
	}
}
