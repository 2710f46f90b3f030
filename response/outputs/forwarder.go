package outputs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Forwarder feeds one Output from the findings topic: it fetches a batch,
// keeps the findings at or above the output's minimum severity, delivers
// them (retrying with backoff for as long as it takes) and only then commits
// the batch. A crash between delivery and commit repeats the batch, so
// delivery is at least once.
type Forwarder struct {
	out     Output
	src     ingest.Source
	min     schemas.Severity
	backoff ingest.Backoff
	log     *slog.Logger
	m       *outputMetrics
}

// ForwarderOptions configures a Forwarder.
type ForwarderOptions struct {
	// Source is the output's own consumer-group member on the findings
	// topic.
	Source ingest.Source
	// MinSeverity drops lower findings for this output; "" keeps all.
	MinSeverity schemas.Severity
	// Backoff paces retries; zero means ingest.DefaultBackoff.
	Backoff ingest.Backoff
	Logger  *slog.Logger
	Metrics *Metrics
}

// NewForwarder returns a forwarder of findings to out.
func NewForwarder(out Output, o ForwarderOptions) *Forwarder {
	if o.Backoff == (ingest.Backoff{}) {
		o.Backoff = ingest.DefaultBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Forwarder{out: out, src: o.Source, min: o.MinSeverity, backoff: o.Backoff,
		log: o.Logger.With("output", out.Name()), m: o.Metrics.of(out.Name())}
}

// Run forwards until ctx ends. It returns nil after ctx ends, or the error
// that stopped it (a failed commit, which the next start repeats).
func (f *Forwarder) Run(ctx context.Context) error {
	for {
		batch, err := f.src.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("output %s: fetch findings: %w", f.out.Name(), err)
		}
		findings := f.decode(batch)
		if len(findings) > 0 {
			start := time.Now()
			err := ingest.Retry(ctx, f.backoff, f.log, "findings to output "+f.out.Name(), f.m.failed, func() error {
				return f.out.Deliver(ctx, findings)
			})
			if err != nil {
				if ctx.Err() != nil {
					return nil // not committed: the next start delivers the batch again
				}
				return err
			}
			f.m.batchSeconds.Observe(time.Since(start).Seconds())
			f.m.delivered.Add(float64(len(findings)))
		}
		if err := f.src.Commit(ctx, batch); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("output %s: commit: %w", f.out.Name(), err)
		}
	}
}

// decode parses the batch's findings and keeps those the output wants. A
// record that is no finding cannot be delivered by any retry; it is logged
// and counted, and the batch moves on.
func (f *Forwarder) decode(batch []ingest.Record) []schemas.Finding {
	findings := make([]schemas.Finding, 0, len(batch))
	for _, r := range batch {
		fd, err := schemas.ParseOCSF(r.Value)
		if err != nil {
			f.m.errors.WithLabelValues("undecodable").Inc()
			f.log.Error("findings topic holds a record that is no finding; skipped",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			continue
		}
		if f.min != "" && fd.Severity.Rank() < f.min.Rank() {
			f.m.filtered.Inc()
			continue
		}
		findings = append(findings, fd)
	}
	return findings
}

// reason labels a delivery error for nhi_output_errors_total.
func reason(err error) string {
	var p Permanent
	switch {
	case errors.As(err, &p):
		return "permanent"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return "delivery"
}
