package memstore_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/schemas"
)

// BenchmarkRebuild reports the time of a full rebuild of NHI_BENCH_IDENTITIES
// identities (default 100,000) on the embedded store, each with a day of
// hourly activity over 6 actions, 2 source networks and a peer: the
// builder's cost per identity, without a database in the way.
func BenchmarkRebuild(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("NHI_BENCH_IDENTITIES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	store := memstore.New()
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	batch := make([]schemas.Event, 0, 24*2)
	for i := range n {
		id := schemas.Identity{ID: fmt.Sprintf("spiffe://prod.example/ns/ns-%d/sa/app-%d", i%500, i), Kind: schemas.KindWorkload}
		batch = batch[:0]
		for h := range 24 {
			for k := range 2 {
				batch = append(batch, schemas.Event{
					ID: fmt.Sprintf("%d-%d-%d", i, h, k), Time: schemas.At(start.Add(time.Duration(h)*time.Hour + time.Duration(k)*time.Minute)),
					Identity: id, Action: fmt.Sprintf("GET /v1/route-%d", (h+k)%6),
					Actor:    schemas.Actor{IP: fmt.Sprintf("10.%d.%d.7", k, i%250)},
					Target:   schemas.Target{Peer: fmt.Sprintf("spiffe://prod.example/ns/ns-%d/sa/app-%d", i%500, (i+1)%n)},
					Outcome:  schemas.Outcome{Result: schemas.ResultSuccess}, BytesOut: uint64(100 + h),
				})
			}
		}
		if err := store.WriteEvents(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	opts := baseline.RebuildOptions{Clock: func() time.Time { return start.Add(24 * time.Hour) }}
	rb := baseline.NewRebuilder(store, nil, nil, opts, nil)
	b.ResetTimer()
	for range b.N {
		st, err := rb.Rebuild(ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		if st.Built != n {
			b.Fatalf("built %d of %d", st.Built, n)
		}
	}
	b.ReportMetric(float64(n), "identities")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/rebuild")
}
