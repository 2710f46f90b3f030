package quality

import (
	"reflect"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/schemas"
)

var t0 = time.Date(2026, time.November, 2, 0, 0, 0, 0, time.UTC)

// at is t0 plus d.
func at(d time.Duration) time.Time { return t0.Add(d) }

func finding(id, identity string, first, last time.Duration) schemas.Finding {
	return schemas.Finding{ID: id, Identity: schemas.Identity{ID: identity}, FirstSeen: schemas.At(at(first)), LastSeen: schemas.At(at(last))}
}

func TestScore(t *testing.T) {
	day := 24 * time.Hour
	// Label windows: "a" on day 5 10:00–10:20, "b" on day 6 12:00–12:30.
	labA := gen.Label{Scenario: "s1", Identity: "a", Start: at(5*day + 10*time.Hour), End: at(5*day + 10*time.Hour + 20*time.Minute)}
	labB := gen.Label{Scenario: "s2", Identity: "b", Start: at(6*day + 12*time.Hour), End: at(6*day + 12*time.Hour + 30*time.Minute)}
	aStart := 5*day + 10*time.Hour
	opts := Options{From: at(4 * day), Grace: time.Hour}
	tests := []struct {
		name     string
		findings []schemas.Finding
		labels   []gen.Label
		want     Report
	}{
		{
			name:   "no findings",
			labels: []gen.Label{labA},
			want:   Report{Scenarios: []ScenarioResult{{Scenario: "s1", Labels: 1}}, IdentityDays: 100},
		},
		{
			name:     "a finding inside the window detects the label",
			findings: []schemas.Finding{finding("f1", "a", aStart+2*time.Minute, aStart+5*time.Minute)},
			labels:   []gen.Label{labA},
			want:     Report{Scenarios: []ScenarioResult{{Scenario: "s1", Labels: 1, Detected: 1, TimeToDetect: 2 * time.Minute}}, Findings: 1, TruePositives: 1, IdentityDays: 100},
		},
		{
			name: "another identity, or after the grace period, is a false finding",
			findings: []schemas.Finding{
				finding("f1", "x", aStart+2*time.Minute, aStart+2*time.Minute),
				finding("f2", "a", aStart+20*time.Minute+61*time.Minute, aStart+90*time.Minute),
			},
			labels: []gen.Label{labA},
			want:   Report{Scenarios: []ScenarioResult{{Scenario: "s1", Labels: 1}}, Findings: 2, IdentityDays: 100},
		},
		{
			name:     "within the grace period after the end",
			findings: []schemas.Finding{finding("f1", "a", aStart+50*time.Minute, aStart+50*time.Minute)},
			labels:   []gen.Label{labA},
			want:     Report{Scenarios: []ScenarioResult{{Scenario: "s1", Labels: 1, Detected: 1, TimeToDetect: 50 * time.Minute}}, Findings: 1, TruePositives: 1, IdentityDays: 100},
		},
		{
			name: "revisions of one finding count once; one begun before the attack detects at its last_seen",
			findings: []schemas.Finding{
				finding("f1", "a", aStart-30*time.Minute, aStart-20*time.Minute),
				finding("f1", "a", aStart-30*time.Minute, aStart+7*time.Minute),
			},
			labels: []gen.Label{labA},
			want:   Report{Scenarios: []ScenarioResult{{Scenario: "s1", Labels: 1, Detected: 1, TimeToDetect: 7 * time.Minute}}, Findings: 1, TruePositives: 1, IdentityDays: 100},
		},
		{
			name: "findings of the training period are not scored",
			findings: []schemas.Finding{
				finding("f1", "x", day, day),
				finding("f2", "x", 3*day, 4*day-time.Second),
				finding("f3", "x", 3*day, 4*day),
			},
			labels: []gen.Label{labA},
			want:   Report{Scenarios: []ScenarioResult{{Scenario: "s1", Labels: 1}}, Findings: 1, IdentityDays: 100},
		},
		{
			name: "the earliest matching finding sets the time to detect; scenarios in label order",
			findings: []schemas.Finding{
				finding("f1", "b", 6*day+12*time.Hour+9*time.Minute, 6*day+12*time.Hour+9*time.Minute),
				finding("f2", "b", 6*day+12*time.Hour+3*time.Minute, 6*day+12*time.Hour+4*time.Minute),
				finding("f3", "a", aStart, aStart),
				finding("f4", "b", 9*day, 9*day),
			},
			labels: []gen.Label{labB, labA},
			want: Report{Scenarios: []ScenarioResult{
				{Scenario: "s2", Labels: 1, Detected: 1, TimeToDetect: 3 * time.Minute},
				{Scenario: "s1", Labels: 1, Detected: 1},
			}, Findings: 4, TruePositives: 3, IdentityDays: 100},
		},
		{
			name: "labels of one scenario: recall over them, the lower median time to detect",
			findings: []schemas.Finding{
				finding("f1", "a", aStart+4*time.Minute, aStart+4*time.Minute),
				finding("f2", "c", 7*day+2*time.Minute, 7*day+2*time.Minute),
			},
			labels: []gen.Label{
				labA,
				{Scenario: "s1", Identity: "c", Start: at(7 * day), End: at(7*day + time.Minute)},
				{Scenario: "s1", Identity: "d", Start: at(8 * day), End: at(8*day + time.Minute)},
			},
			want: Report{Scenarios: []ScenarioResult{{Scenario: "s1", Labels: 3, Detected: 2, TimeToDetect: 2 * time.Minute}}, Findings: 2, TruePositives: 2, IdentityDays: 100},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Score(tt.findings, tt.labels, opts, 100)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Score\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestReportFigures(t *testing.T) {
	tests := []struct {
		name               string
		r                  Report
		falses             int
		precision, per1000 float64
		detected, labels   int
	}{
		{name: "empty", r: Report{}},
		{
			name:   "three false of eight over 1,500 identity-days",
			r:      Report{Findings: 8, TruePositives: 5, IdentityDays: 1500, Scenarios: []ScenarioResult{{Labels: 2, Detected: 1}, {Labels: 1, Detected: 1}}},
			falses: 3, precision: 0.625, per1000: 2, detected: 2, labels: 3,
		},
		{name: "no identity-days", r: Report{Findings: 2}, falses: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, n := tt.r.Recall()
			if f, p, r := tt.r.FalseFindings(), tt.r.Precision(), tt.r.FalsePer1000IdentityDays(); f != tt.falses || p != tt.precision || r != tt.per1000 || d != tt.detected || n != tt.labels {
				t.Errorf("false %d, precision %v, per 1,000 %v, recall %d/%d; want %d, %v, %v, %d/%d",
					f, p, r, d, n, tt.falses, tt.precision, tt.per1000, tt.detected, tt.labels)
			}
		})
	}
}

func TestIdentityDays(t *testing.T) {
	day := 24 * time.Hour
	events := []Event{
		{Time: at(time.Hour), Identity: "a"}, // training period
		{Time: at(day + time.Hour), Identity: "a"},
		{Time: at(day + 23*time.Hour), Identity: "a"},
		{Time: at(2 * day), Identity: "a"},
		{Time: at(day + 5*time.Hour), Identity: "b"},
		{Time: at(3*day - time.Nanosecond), Identity: "b"},
	}
	tests := []struct {
		from time.Time
		want int
	}{
		{from: t0, want: 5},
		{from: at(day), want: 4},
		{from: at(2 * day), want: 2},
		{from: at(3 * day), want: 0},
	}
	for _, tt := range tests {
		if got := IdentityDays(events, tt.from); got != tt.want {
			t.Errorf("IdentityDays from %v = %d, want %d", tt.from, got, tt.want)
		}
	}
}
