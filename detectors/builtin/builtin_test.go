package builtin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors/builtin"
	"github.com/nhisentry/nhisentry/detectors/detectortest"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestDefaultsAreValidAndEveryDetectorRuns(t *testing.T) {
	cfg := builtin.DefaultConfig()
	if errs := cfg.Validate("detect."); len(errs) != 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
	dets := builtin.New(cfg, nil)
	if len(dets) != len(builtin.Names()) {
		t.Fatalf("%d detectors for %d names", len(dets), len(builtin.Names()))
	}
	for i, d := range dets {
		if d.Name() != builtin.Names()[i] {
			t.Errorf("detector %d is %s, registered as %s", i, d.Name(), builtin.Names()[i])
		}
	}
	cfg.Disabled = []string{"mesh_graph", "volume_spike"}
	if got := len(builtin.New(cfg, nil)); got != len(dets)-2 {
		t.Errorf("%d detectors with two disabled, want %d", got, len(dets)-2)
	}
	cfg.Disabled = []string{"nope"}
	errs := cfg.Validate("detect.")
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `detect.disabled: unknown detector "nope"`) {
		t.Errorf("errors %v", errs)
	}
}

// BenchmarkDetectors reports each built-in detector's cost on a quiet event
// of an identity with a week of history and a built model: what every event
// pays.
func BenchmarkDetectors(b *testing.B) {
	now := time.Date(2026, 11, 9, 14, 20, 0, 0, time.UTC)
	p := detectortest.History(now, 7*24, 3, "10.20.1.7", "s3:GetObject", "s3:PutObject", "sqs:SendMessage")
	bl := &baseline.Baseline{DataThrough: now.Add(-time.Hour), Rate: baseline.Rate{Mean: 3, Hours: 168},
		Activity: baseline.Activity{ActiveHours: 168}, BytesOut: baseline.Quantiles{Count: 504, P50: 1023, P99: 4095, Max: 8191}}
	for h := range baseline.HoursPerWeek {
		bl.Rate.Centre[h], bl.Rate.Spread[h] = 3, 1
	}
	for h := range bl.Activity.HourOfDay {
		bl.Activity.HourOfDay[h] = 1
	}
	p.Apply(bl, baseline.DefaultClasses())
	ev := detectortest.Event(now, "s3:GetObject", "10.20.1.7")
	ev.BytesOut = 900
	ev.Credential = schemas.Credential{ID: "ASIAEXAMPLE", Type: "aws_sts"}
	for _, d := range builtin.New(builtin.DefaultConfig(), nil) {
		b.Run(d.Name(), func(b *testing.B) {
			in := detectortest.Input(p, &ev)
			var out []schemas.Finding
			b.ReportAllocs()
			for b.Loop() {
				out = d.Detect(in, out[:0])
			}
			if len(out) != 0 {
				b.Fatalf("%s fired on a quiet event: %+v", d.Name(), out)
			}
		})
	}
}
