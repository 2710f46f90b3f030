package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/baselinetest"
	"github.com/nhisentry/nhisentry/baseline/memstore"
	"github.com/nhisentry/nhisentry/schemas"
)

// BenchmarkRebuild reports the time of a full rebuild of NHI_BENCH_IDENTITIES
// identities (default 100,000) on the embedded store: the builder's cost
// per identity without a database in the way.
func BenchmarkRebuild(b *testing.B) {
	n := baselinetest.Identities(100_000)
	ctx := context.Background()
	store := memstore.New()
	err := baselinetest.Population(n, func(evs []schemas.Event) error { return store.WriteEvents(ctx, evs) })
	if err != nil {
		b.Fatal(err)
	}
	opts := baseline.RebuildOptions{Clock: func() time.Time { return baselinetest.Start.Add(24 * time.Hour) }}
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
