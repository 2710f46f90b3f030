package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestSlope(t *testing.T) {
	if got := slope([]float64{0, 1, 2, 3}, []float64{5, 7, 9, 11}); math.Abs(got-2) > 1e-12 {
		t.Errorf("slope of y = 2x+5: got %v", got)
	}
	if got := slope([]float64{4, 4}, []float64{1, 2}); got != 0 {
		t.Errorf("slope over one x: got %v, want 0", got)
	}
}

func TestThinnerKeepsTheRate(t *testing.T) {
	th := newThinner(1000)
	start := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	kept := 0
	// 10,000 records a second for two seconds, offered in order.
	for i := range 20000 {
		if th.keep(start.Add(time.Duration(i) * 100 * time.Microsecond)) {
			kept++
		}
	}
	// Two seconds at the rate, plus the initial burst of a tenth of one.
	if want := 2000 + 100; kept < want-2 || kept > want+2 {
		t.Errorf("kept %d of 20000, want about %d", kept, want)
	}
}

func TestVerdict(t *testing.T) {
	rows := func(rss func(i int) float64) []row {
		var out []row
		for i := range 10 {
			out = append(out, row{elapsed: time.Duration(i+1) * 30 * time.Second, rss: rss(i), goroutines: 40, heap: 20 << 20})
		}
		return out
	}
	steady := verdict(rows(func(i int) float64 { return float64(200<<20 + (i%2)<<20) }), 1000)
	if !strings.HasPrefix(steady, "verdict: steady") {
		t.Errorf("flat RSS: %s", steady)
	}
	growing := verdict(rows(func(i int) float64 { return float64(200<<20 + i*(10<<20)) }), 1000)
	if !strings.HasPrefix(growing, "verdict: GROWING (RSS)") {
		t.Errorf("RSS growing 10 MiB a row: %s", growing)
	}
	if short := verdict(rows(func(int) float64 { return 1 })[:4], 1000); !strings.Contains(short, "too short") {
		t.Errorf("four rows: %s", short)
	}
}
