package main

import (
	"fmt"
	"strings"
)

// The verdict's thresholds. The first half of the run is warm-up (the
// baseline cache fills, buffers and the heap reach their working size), so
// only the second half is judged.
const (
	// growthLimit: RSS or goroutines grow when their least-squares growth
	// over the second half exceeds this fraction of their mean there. Heap
	// in use is shown but not judged: sampled at random points of the GC
	// cycle it swings by up to GOGC (100%) from one row to the next.
	growthLimit = 0.05
	// lagLimit: the service falls behind when the lag's least-squares slope
	// exceeds this fraction of the produce rate (it consumes less than 99%
	// of what arrives).
	lagLimit = 0.01
	// minJudged is the fewest rows a slope is worth fitting to.
	minJudged = 3
)

// verdict judges the second half of rows and says why, thresholds included.
func verdict(rows []row, rate float64) string {
	judged := rows[len(rows)/2:]
	if len(judged) < minJudged {
		return fmt.Sprintf("verdict: too short to judge: %d rows in the second half, %d needed (lengthen --duration or shorten --interval)", len(judged), minJudged)
	}
	xs := make([]float64, len(judged))
	for i, r := range judged {
		xs[i] = r.elapsed.Seconds()
	}
	span := xs[len(xs)-1] - xs[0]
	var grows, parts []string
	for _, s := range []struct {
		name, unit string
		scale      float64
		judged     bool
		value      func(row) float64
	}{
		{"RSS", " MiB", 1 << 20, true, func(r row) float64 { return r.rss }},
		{"goroutines", "", 1, true, func(r row) float64 { return r.goroutines }},
		{"heap in use (not judged)", " MiB", 1 << 20, false, func(r row) float64 { return r.heap }},
	} {
		ys := make([]float64, len(judged))
		for i, r := range judged {
			ys[i] = s.value(r)
		}
		growth, m := slope(xs, ys)*span, mean(ys)
		rel := 0.0
		if m > 0 {
			rel = growth / m
		}
		if s.judged && rel > growthLimit {
			grows = append(grows, s.name)
		}
		parts = append(parts, fmt.Sprintf("%s %+.1f%s (%+.1f%%)", s.name, growth/s.scale, s.unit, 100*rel))
	}
	lags := make([]float64, len(judged))
	for i, r := range judged {
		lags[i] = float64(r.lag)
	}
	lagSlope := slope(xs, lags)
	if lagSlope > lagLimit*rate {
		grows = append(grows, "lag")
	}
	parts = append(parts, fmt.Sprintf("lag %+.0f records/s (%.1f%% of the rate)", lagSlope, 100*lagSlope/rate))

	head := "verdict: steady, no leak seen"
	if len(grows) > 0 {
		head = "verdict: GROWING (" + strings.Join(grows, ", ") + "): a leak, a service that cannot keep up, or a run too short for the working set to settle"
	}
	return fmt.Sprintf("%s\n  least-squares growth over the second half (%d rows, %.0f s): %s\n"+
		"  threshold: RSS or goroutines grow when that exceeds %.0f%% of their mean over the second half; the lag when its slope exceeds %.0f%% of --rate",
		head, len(judged), span, strings.Join(parts, ", "), 100*growthLimit, 100*lagLimit)
}

// slope is the least-squares slope of ys over xs; 0 when xs do not vary.
func slope(xs, ys []float64) float64 {
	mx, my := mean(xs), mean(ys)
	var num, den float64
	for i := range xs {
		num += (xs[i] - mx) * (ys[i] - my)
		den += (xs[i] - mx) * (xs[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}
