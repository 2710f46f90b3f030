package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Backoff says how a failed write is retried: the first wait, doubled after
// every failure up to Max.
type Backoff struct {
	First, Max time.Duration
}

// DefaultBackoff starts at 100 ms and caps at 10 s.
var DefaultBackoff = Backoff{First: 100 * time.Millisecond, Max: 10 * time.Second}

// Retry calls fn until it succeeds or ctx ends, waiting between attempts.
// Writes to ClickHouse and Kafka are retried this way because giving up would
// either lose data or stop the pipeline; waiting is the backpressure. onErr,
// if not nil, sees every failure (for metrics).
func Retry(ctx context.Context, b Backoff, log *slog.Logger, what string, onErr func(error), fn func() error) error {
	wait := b.First
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if onErr != nil {
			onErr(err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("write %s: %w", what, errors.Join(err, ctx.Err()))
		}
		// Equal jitter: many instances retrying one server do not return
		// in lockstep.
		sleep := wait/2 + rand.N(wait/2+1)
		log.Error("write failed; retrying", "what", what, "attempt", attempt, "backoff", sleep, "err", err)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("write %s: %w", what, errors.Join(err, ctx.Err()))
		case <-t.C:
		}
		wait = min(2*wait, b.Max)
	}
}
