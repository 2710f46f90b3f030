package volume_test

import (
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/detectors/volume"
	"github.com/nhisentry/nhisentry/schemas"
)

// burst feeds n events in the hour starting at start into p and returns the
// findings the detector raised along the way.
func burst(d *volume.Detector, p *baseline.Profile, start time.Time, n int) []schemas.Finding {
	evs := make([]schemas.Event, n)
	for i := range evs {
		evs[i] = detectortest.Event(start.Add(time.Duration(i)*time.Hour/time.Duration(n+1)), "s3:GetObject", detectortest.IP)
	}
	return detectortest.Run(d, p, evs)
}

func TestVolumeSpike(t *testing.T) {
	hour := time.Date(2026, 11, 9, 14, 0, 0, 0, time.UTC)
	tests := []struct {
		name         string
		historyHours int
		perHour      int
		burst        int
		want         int
	}{
		{name: "normal hour", historyHours: 72, perHour: 12, burst: 14, want: 0},
		{name: "busy but plausible hour", historyHours: 72, perHour: 12, burst: 30, want: 0},
		{name: "25x spike fires once", historyHours: 72, perHour: 12, burst: 300, want: 1},
		{name: "quiet identity, small absolute burst stays under min_count", historyHours: 72, perHour: 1, burst: 20, want: 0},
		{name: "quiet identity, real burst", historyHours: 72, perHour: 1, burst: 60, want: 1},
		{name: "still learning", historyHours: 10, perHour: 12, burst: 300, want: 0},
	}
	d := volume.New(volume.DefaultConfig())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := detectortest.History(hour, tt.historyHours, tt.perHour, "10.20.1.7", "s3:GetObject")
			got := burst(d, p, hour, tt.burst)
			if len(got) != tt.want {
				t.Fatalf("got %d findings, want %d: %+v", len(got), tt.want, got)
			}
			for _, f := range got {
				if f.Analysis.Pattern != schemas.PatternSurge || f.Score < 50 || f.Score > 100 {
					t.Errorf("finding: pattern %s score %d", f.Analysis.Pattern, f.Score)
				}
				if f.ID != schemas.FindingID(volume.Name, detectortest.Identity.ID, "498398") {
					t.Errorf("finding id %s is not the identity-hour id", f.ID)
				}
			}
		})
	}
}

func TestNightlyJobIsNotASpike(t *testing.T) {
	d := volume.New(volume.DefaultConfig())
	night := time.Date(2026, 11, 9, 3, 0, 0, 0, time.UTC)
	p := detectortest.History(night.Add(-6*24*time.Hour), 1, 1, "10.20.1.7", "s3:PutObject")
	var got []schemas.Finding
	for day := 6; day >= 1; day-- { // five nights of 80 calls at 03:00, nothing else
		got = append(got, burst(d, p, night.Add(-time.Duration(day)*24*time.Hour), 80)...)
	}
	if tonight := burst(d, p, night, 85); len(tonight) != 0 {
		t.Fatalf("the usual nightly run raised %+v", tonight)
	}
	if triple := burst(d, p, night.Add(24*time.Hour), 250); len(triple) != 1 {
		t.Fatalf("a run three times the usual raised %d findings, want 1", len(triple))
	}
	_ = got // the first nights may fire while the rhythm is unknown; that is what learning is for
}

func TestConfigValidate(t *testing.T) {
	if errs := (volume.Config{}).Validate(); len(errs) != 5 {
		t.Fatalf("zero config: %d errors, want 5: %v", len(errs), errs)
	}
	if errs := volume.DefaultConfig().Validate(); len(errs) != 0 {
		t.Fatalf("default config: %v", errs)
	}
}
