package main

import (
	"fmt"
	"runtime"
	"time"

	gojson "github.com/goccy/go-json"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/detectors/builtin"
	"github.com/nhisentry/nhisentry/detectors/engine"
	"github.com/nhisentry/nhisentry/detectors/rules"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/schemas"
)

// inProcResult is the per-core figure: the same records parsed only, decoded
// and normalized, and decoded, normalized and detected.
type inProcResult struct {
	records, events     int
	parse, decode, full time.Duration
	findings            int
}

// perSec is n per second of d.
func perSec(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// generateRecords returns the first n records of a seeded mixed run (Envoy,
// Kong, CloudTrail, Vault), attacks included so the detectors have
// something to find.
func generateRecords(seed int64, n int) ([]gen.Record, error) {
	out := make([]gen.Record, 0, n)
	_, err := gen.Generate(gen.Config{Seed: seed, Start: benchStart, Duration: 60 * 24 * time.Hour, Attacks: true},
		func(r gen.Record) error {
			if len(out) == n {
				return errEnough
			}
			out = append(out, r)
			return nil
		})
	if err != nil && err != errEnough {
		return nil, fmt.Errorf("generate records: %w", err)
	}
	return out, nil
}

// runInProcess measures the three passes on one core (GOMAXPROCS 1), so the
// figures are per core whatever the machine has.
func runInProcess(records []gen.Record, rulesFile string) (inProcResult, error) {
	prev := runtime.GOMAXPROCS(1)
	defer runtime.GOMAXPROCS(prev)
	res := inProcResult{records: len(records)}

	decoders := map[string]ingest.Decoder{}
	for _, r := range records {
		if decoders[r.Format] != nil {
			continue
		}
		d, err := formats.ByName(r.Format)
		if err != nil {
			return res, err
		}
		decoders[r.Format] = d
	}

	// Pass A: parse only, with the fastest JSON decoder the module uses.
	runtime.GC()
	start := time.Now()
	for _, r := range records {
		var v any
		if err := gojson.Unmarshal(r.Value, &v); err != nil {
			return res, fmt.Errorf("parse %s record: %w", r.Format, err)
		}
	}
	res.parse = time.Since(start)

	// Pass B: decode and normalize, as the ingest stage does.
	runtime.GC()
	var events []schemas.Event
	start = time.Now()
	for _, r := range records {
		events, _ = decoders[r.Format].Decode(events[:0], ingest.Record{Value: r.Value, Key: r.Key, Time: r.Time})
		res.events += len(events)
	}
	res.decode = time.Since(start)

	// Pass C: decode, normalize and detect in batches, as the service
	// does, with the built-in detectors and the starter rule pack over a
	// baseline cache that starts empty (nothing stored to load).
	re, err := rules.NewEngine(rules.Options{}, rulesFile)
	if err != nil {
		return res, fmt.Errorf("load rules: %w", err)
	}
	eng := engine.New(engine.Options{
		Cache:     baseline.NewCache(baseline.CacheOptions{}),
		Detectors: append(builtin.New(builtin.DefaultConfig(), nil), re),
	})
	const batch = 5000
	runtime.GC()
	events = events[:0]
	start = time.Now()
	for i, r := range records {
		events, _ = decoders[r.Format].Decode(events, ingest.Record{Value: r.Value, Key: r.Key, Time: r.Time})
		if len(events) >= batch || i == len(records)-1 {
			res.findings += len(eng.Detect(events))
			events = events[:0]
		}
	}
	res.full = time.Since(start)
	return res, nil
}
