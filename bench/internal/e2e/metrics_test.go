package e2e

import (
	"math"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP nhi_ingest_records_total Records read, by topic.
# TYPE nhi_ingest_records_total counter
nhi_ingest_records_total{topic="nhi.cloud.cloudtrail"} 1200
nhi_ingest_records_total{topic="nhi.mesh.envoy"} 3.5e+03
process_resident_memory_bytes 1.2345e+08
nhi_detect_latency_seconds_bucket{family="mesh",le="0.05"} 2
nhi_detect_latency_seconds_bucket{family="mesh",le="+Inf"} 5
nhi_detect_latency_seconds_bucket{family="cloud",le="0.05"} 1
nhi_detect_latency_seconds_bucket{family="cloud",le="+Inf"} 1
odd{a="x, \"y\"",b="z"} 7 1700000000000
`
	samples, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		got  float64
		want float64
	}{
		{"records summed over topics", Sum(samples, "nhi_ingest_records_total"), 4700},
		{"gauge without labels", Sum(samples, "process_resident_memory_bytes"), 1.2345e8},
		{"value before a timestamp", Sum(samples, "odd"), 7},
		{"absent metric", Sum(samples, "nhi_missing"), 0},
		{"bucket 0.05 over families", Buckets(samples, "nhi_detect_latency_seconds")[0.05], 3},
		{"bucket +Inf over families", Buckets(samples, "nhi_detect_latency_seconds")[math.Inf(1)], 6},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if got := samples[len(samples)-1].Labels["a"]; got != `x, "y"` {
		t.Errorf("quoted label: got %q", got)
	}
}

func TestParseMetricsErrors(t *testing.T) {
	for _, line := range []string{"novalue", `m{a="x" 1`, `m{a=x} 1`, "m notanumber"} {
		if _, err := ParseMetrics(strings.NewReader(line + "\n")); err == nil {
			t.Errorf("%q: no error", line)
		}
	}
}

func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name    string
		q       float64
		buckets map[float64]float64
		want    float64
	}{
		{"interpolates in the first bucket from zero", 0.5, map[float64]float64{1: 10, 2: 10, inf: 10}, 0.5},
		{"interpolates inside a later bucket", 0.5, map[float64]float64{1: 0, 2: 4, 4: 8, inf: 8}, 2},
		{"p99 in the last finite bucket", 0.99, map[float64]float64{0.1: 50, 0.2: 90, 0.4: 100, inf: 100}, 0.2 + 0.2*(99-90)/10},
		{"rank in +Inf returns the highest finite bound", 0.99, map[float64]float64{1: 5, inf: 10}, 1},
		{"no observations", 0.5, map[float64]float64{1: 0, inf: 0}, math.NaN()},
		{"no buckets", 0.5, map[float64]float64{}, math.NaN()},
	}
	for _, tt := range tests {
		got := Quantile(tt.q, tt.buckets)
		if math.IsNaN(tt.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-tt.want) > 1e-9) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDelta(t *testing.T) {
	got := Delta(map[float64]float64{1: 5, 2: 9}, map[float64]float64{1: 2})
	if got[1] != 3 || got[2] != 9 {
		t.Errorf("got %v, want map[1:3 2:9]", got)
	}
}

func TestDoneWaitsForTheDetectorStage(t *testing.T) {
	records := func(topic string, v float64) Sample {
		return Sample{Name: MetricRecords, Labels: map[string]string{"topic": topic}, Value: v}
	}
	events := Sample{Name: MetricEvents, Labels: map[string]string{}, Value: 900}
	for _, tt := range []struct {
		name      string
		samples   []Sample
		scaledOut bool
		input     float64
		done      bool
	}{
		{"one stage, all read", []Sample{records("a", 600), records("b", 400), events}, false, 1000, true},
		{"one stage, some read", []Sample{records("a", 600), events}, false, 600, false},
		{"scaled out, detector behind", []Sample{records("a", 1000), records(RepartitionTopic, 899), events}, true, 1000, false},
		{"scaled out, detector idle", []Sample{records("a", 1000), events}, true, 1000, false},
		{"scaled out, all detected", []Sample{records("a", 1000), records(RepartitionTopic, 600), records(RepartitionTopic, 300), events}, true, 1000, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := InputRecords(tt.samples); got != tt.input {
				t.Errorf("InputRecords = %v, want %v", got, tt.input)
			}
			if got := Done(tt.samples, 1000, tt.scaledOut); got != tt.done {
				t.Errorf("Done = %v, want %v", got, tt.done)
			}
		})
	}
}
