// Package baselinetest generates synthetic identity populations for the
// baseline benchmarks, so the embedded store and ClickHouse are timed on the
// same data.
package baselinetest

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// Start is the first hour of a Population.
var Start = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

// Identities is NHI_BENCH_IDENTITIES, or def when it is unset or invalid.
func Identities(def int) int {
	if v, err := strconv.Atoi(os.Getenv("NHI_BENCH_IDENTITIES")); err == nil && v > 0 {
		return v
	}
	return def
}

// Population calls emit with the events of n mesh workloads, one identity at
// a time: a day of two calls an hour over 6 routes from 2 source networks to
// one peer. emit must not retain the slice.
func Population(n int, emit func([]schemas.Event) error) error {
	batch := make([]schemas.Event, 0, 48)
	for i := range n {
		id := schemas.Identity{ID: fmt.Sprintf("spiffe://prod.example/ns/ns-%d/sa/app-%d", i%500, i), Kind: schemas.KindWorkload}
		peer := fmt.Sprintf("spiffe://prod.example/ns/ns-%d/sa/app-%d", (i+1)%n%500, (i+1)%n)
		batch = batch[:0]
		for h := range 24 {
			for k := range 2 {
				batch = append(batch, schemas.Event{
					ID: fmt.Sprintf("%d-%d-%d", i, h, k), Time: schemas.At(Start.Add(time.Duration(h)*time.Hour + time.Duration(k)*time.Minute)),
					IngestTime: schemas.At(time.Now()), Identity: id, Action: fmt.Sprintf("GET /v1/route-%d", (h+k)%6),
					Source:  schemas.Source{Family: schemas.FamilyMesh, Format: "envoy_json"},
					Actor:   schemas.Actor{IP: fmt.Sprintf("10.%d.%d.7", k, i%250)},
					Target:  schemas.Target{Peer: peer},
					Outcome: schemas.Outcome{Result: schemas.ResultSuccess}, BytesOut: uint64(100 + h),
				})
			}
		}
		if err := emit(batch); err != nil {
			return err
		}
	}
	return nil
}
