package chstore_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/baseline/baselinetest"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/schemas"
)

// BenchmarkRebuild reports the time ClickHouse takes for a full rebuild of
// NHI_BENCH_IDENTITIES identities (default 100,000) with a day of activity
// each: rolling the stored events up, reading the histories back, building
// and saving every baseline.
func BenchmarkRebuild(b *testing.B) {
	n := baselinetest.Identities(100_000)
	ctx := context.Background()
	s := chstoretest.Open(b)
	var pending []schemas.Event
	err := baselinetest.Population(n, func(evs []schemas.Event) error {
		pending = append(pending, evs...)
		if len(pending) < 50_000 {
			return nil
		}
		err := s.WriteEvents(ctx, pending)
		pending = pending[:0]
		return err
	})
	if err == nil {
		err = s.WriteEvents(ctx, pending)
	}
	if err != nil {
		b.Fatal(err)
	}
	opts := baseline.RebuildOptions{Clock: func() time.Time { return baselinetest.Start.Add(24 * time.Hour) }}
	rb := baseline.NewRebuilder(s, nil, nil, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
