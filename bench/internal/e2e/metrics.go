package e2e

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Sample is one series of a Prometheus text exposition.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// ParseMetrics reads the Prometheus text format that nhisentry's /metrics
// serves. It is deliberately small: the harness needs counters, gauges and
// histogram buckets, and does not want a dependency the module does not
// already require directly.
func ParseMetrics(r io.Reader) ([]Sample, error) {
	var out []Sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

func parseSample(line string) (Sample, error) {
	s := Sample{Labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return s, fmt.Errorf("metric line %q: no value", line)
	}
	s.Name = line[:i]
	rest := line[i:]
	if strings.HasPrefix(rest, "{") {
		end := strings.LastIndexByte(rest, '}')
		if end < 0 {
			return s, fmt.Errorf("metric line %q: unterminated labels", line)
		}
		if err := parseLabels(rest[1:end], s.Labels); err != nil {
			return s, fmt.Errorf("metric line %q: %w", line, err)
		}
		rest = rest[end+1:]
	}
	// A sample may carry a timestamp after the value.
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("metric line %q: no value", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("metric line %q: %w", line, err)
	}
	s.Value = v
	return s, nil
}

// parseLabels reads name="value" pairs; values are Go-style quoted strings.
func parseLabels(text string, into map[string]string) error {
	for text = strings.TrimSpace(text); text != ""; text = strings.TrimLeft(text, ", ") {
		eq := strings.IndexByte(text, '=')
		if eq < 0 {
			return fmt.Errorf("label without value in %q", text)
		}
		name := strings.TrimSpace(text[:eq])
		quoted, err := strconv.QuotedPrefix(text[eq+1:])
		if err != nil {
			return fmt.Errorf("label %s: %w", name, err)
		}
		value, err := strconv.Unquote(quoted)
		if err != nil {
			return fmt.Errorf("label %s: %w", name, err)
		}
		into[name] = value
		text = text[eq+1+len(quoted):]
	}
	return nil
}

// sum adds every series of the named metric (e.g. a counter by topic).
func Sum(samples []Sample, name string) float64 {
	var total float64
	for _, s := range samples {
		if s.Name == name {
			total += s.Value
		}
	}
	return total
}

// InputRecords is how many input records the services read: the records
// counter without the repartition topic, which a scaled-out service's
// detector stage reads (its records are events already counted).
func InputRecords(samples []Sample) float64 {
	var total float64
	for _, s := range samples {
		if s.Name == MetricRecords && s.Labels["topic"] != RepartitionTopic {
			total += s.Value
		}
	}
	return total
}

// Done reports whether the services have read n input records and, when
// they scale out, detected every event those records held: their detector
// stages read the repartition topic behind their ingest stages.
func Done(samples []Sample, n float64, scaledOut bool) bool {
	if InputRecords(samples) < n {
		return false
	}
	if !scaledOut {
		return true
	}
	var detected float64
	for _, s := range samples {
		if s.Name == MetricRecords && s.Labels["topic"] == RepartitionTopic {
			detected += s.Value
		}
	}
	return detected >= Sum(samples, MetricEvents)
}

// buckets returns a histogram's cumulative counts by upper bound, summed
// over all its other labels (e.g. every telemetry family).
func Buckets(samples []Sample, histogram string) map[float64]float64 {
	out := map[float64]float64{}
	for _, s := range samples {
		if s.Name != histogram+"_bucket" {
			continue
		}
		le, err := strconv.ParseFloat(s.Labels["le"], 64)
		if err != nil {
			continue // a malformed bound cannot be placed; the rest still can
		}
		out[le] += s.Value
	}
	return out
}

// delta is after minus before, bucket by bucket: the observations made
// between two scrapes.
func Delta(after, before map[float64]float64) map[float64]float64 {
	out := make(map[float64]float64, len(after))
	for le, n := range after {
		out[le] = n - before[le]
	}
	return out
}

// quantile estimates the q-quantile of cumulative histogram buckets the way
// Prometheus' histogram_quantile does: linear interpolation inside the
// bucket the rank falls in, the upper finite bound when it falls in +Inf.
// It returns NaN when there are no observations.
func Quantile(q float64, cumulative map[float64]float64) float64 {
	bounds := make([]float64, 0, len(cumulative))
	for le := range cumulative {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	if len(bounds) == 0 {
		return math.NaN()
	}
	total := cumulative[bounds[len(bounds)-1]]
	if total <= 0 {
		return math.NaN()
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		n := cumulative[le]
		if n >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			if n == below {
				return le
			}
			return lower + (le-lower)*(rank-below)/(n-below)
		}
		lower, below = le, n
	}
	return lower
}

// FormatSeconds formats a latency, or "n/a" when there was nothing to
// measure.
func FormatSeconds(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	return (time.Duration(s * float64(time.Second))).Round(time.Millisecond).String()
}
