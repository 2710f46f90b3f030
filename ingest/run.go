package ingest

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nhisentry/nhisentry/schemas"
)

// Source delivers records in batches and commits them once processed.
type Source interface {
	// Fetch returns the next batch, blocking until at least one record is
	// available or ctx ends (then it returns ctx's error).
	Fetch(ctx context.Context) ([]Record, error)
	// Commit marks every record of a fetched batch as processed.
	Commit(ctx context.Context, batch []Record) error
}

// RunOptions configures Run.
type RunOptions struct {
	Source     Source
	Decoders   map[string]Decoder // by topic
	DeadLetter DeadLetterWriter
	// Linker, if set, links credentials to identities across the stream.
	Linker     *Linker
	Handler    Handler
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil registers nothing
	// MaxRecordBytes dead-letters larger records before any parsing.
	MaxRecordBytes int
	// DrainTimeout bounds how long the batch in flight may take to finish
	// after ctx is cancelled (SIGTERM): it is stored and committed, not
	// abandoned.
	DrainTimeout time.Duration
	// Now is the clock for ingest_time; nil means time.Now.
	Now func() time.Time
	// Backoff paces retries of dead-letter writes and commits; zero means
	// DefaultBackoff.
	Backoff Backoff
	// OnBatch, if set, is called after each committed batch with the totals
	// so far.
	OnBatch func(Stats)
}

// Stats counts what Run did.
type Stats struct {
	Records, Events, DeadLetters, Batches uint64
}

// Run reads batches from the source until ctx is cancelled: decode every
// record (failures go to the dead-letter writer), hand the events to the
// handler, then commit. Offsets are committed only after the dead letters
// and the handler have succeeded, so a crash replays the batch instead of
// losing it. A handler error stops Run without committing.
func Run(ctx context.Context, o RunOptions) (Stats, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Backoff.First <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 30 * time.Second
	}
	m := newRunMetrics(o.Registerer)
	var (
		st      Stats
		events  []schemas.Event
		letters []DeadLetter
	)
	for {
		batch, err := o.Source.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return st, nil
			}
			return st, fmt.Errorf("fetch: %w", err)
		}
		// The batch in flight finishes even when ctx is cancelled meanwhile.
		work, cancel := batchContext(ctx, o.DrainTimeout)
		start := time.Now()
		events, letters = o.decode(batch, events[:0], letters[:0], m)
		if o.Linker != nil {
			o.Linker.Apply(events)
		}
		err = o.finish(work, batch, events, letters)
		cancel()
		if err != nil {
			return st, err
		}
		m.batchSeconds.Observe(time.Since(start).Seconds())
		m.batchRecords.Observe(float64(len(batch)))
		st.Batches++
		st.Records += uint64(len(batch))
		st.Events += uint64(len(events))
		st.DeadLetters += uint64(len(letters))
		if o.OnBatch != nil {
			o.OnBatch(st)
		}
	}
}

// batchContext is the context a batch is finished under. It ends drain
// after ctx is cancelled, so a stop lets the batch in flight finish but not
// wait forever; until then it has no deadline, because an outage of
// ClickHouse or an output, however long, must make the batch wait and
// retry, not give up and stop the pipeline.
func batchContext(ctx context.Context, drain time.Duration) (context.Context, context.CancelFunc) {
	work, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(drain, cancel) })
	return work, func() { stop(); cancel() }
}

func (o *RunOptions) decode(batch []Record, events []schemas.Event, letters []DeadLetter, m *runMetrics) ([]schemas.Event, []DeadLetter) {
	now := schemas.At(o.Now())
	for _, rec := range batch {
		m.records.WithLabelValues(rec.Topic).Inc()
		dec := o.Decoders[rec.Topic]
		var derr *DecodeError
		switch {
		case dec == nil:
			derr = Errorf("", ReasonUnknownFormat, "no decoder configured for topic %q", rec.Topic)
		case o.MaxRecordBytes > 0 && len(rec.Value) > o.MaxRecordBytes:
			derr = Errorf(dec.Format(), ReasonTooLarge, "record of %d bytes exceeds the limit of %d", len(rec.Value), o.MaxRecordBytes)
		default:
			value, gerr := Gunzip(rec.Value, DefaultMaxInflatedBytes)
			if gerr != nil {
				gerr.Format = dec.Format()
				derr = gerr
				break
			}
			inflated := rec
			inflated.Value = value
			n := len(events)
			var err error
			events, err = dec.Decode(events, inflated)
			if err != nil {
				events = events[:n]
				derr = AsDecodeError(dec.Format(), err)
				break
			}
			if _, ok := dec.(Normalized); ok {
				break
			}
			for i := n; i < len(events); i++ {
				ev := &events[i]
				ev.IngestTime = now
				ev.Provenance = schemas.Provenance{Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset}
				m.events.WithLabelValues(string(ev.Source.Family), string(ev.Outcome.Result)).Inc()
			}
		}
		if derr != nil {
			m.decodeErrors.WithLabelValues(derr.Format, derr.Reason).Inc()
			letters = append(letters, DeadLetter{Record: rec, Err: derr})
		}
	}
	return events, letters
}

func (o *RunOptions) finish(ctx context.Context, batch []Record, events []schemas.Event, letters []DeadLetter) error {
	if len(letters) > 0 {
		err := Retry(ctx, o.Backoff, o.Logger, "dead letters", nil, func() error { return o.DeadLetter.WriteDeadLetters(ctx, letters) })
		if err != nil {
			return err
		}
	}
	if err := o.Handler.Handle(ctx, events); err != nil {
		return fmt.Errorf("handle batch of %d events: %w", len(events), err)
	}
	if err := o.Source.Commit(ctx, batch); err != nil {
		// Not retried here (the Source retries what it knows to be
		// transient, such as a lost connection): after a failed commit the
		// group may have moved the partitions elsewhere. The batch is
		// stored, so stopping only means it is read again, and its
		// deterministic ids make the replay invisible.
		return fmt.Errorf("commit %d records: %w", len(batch), err)
	}
	return nil
}

type runMetrics struct {
	records      *prometheus.CounterVec
	events       *prometheus.CounterVec
	decodeErrors *prometheus.CounterVec
	batchSeconds prometheus.Histogram
	batchRecords prometheus.Histogram
}

func newRunMetrics(reg prometheus.Registerer) *runMetrics {
	m := &runMetrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_ingest_records_total", Help: "Records read, by topic.",
		}, []string{"topic"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_ingest_events_total", Help: "Normalized events, by family and outcome.",
		}, []string{"family", "outcome"}),
		decodeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nhi_ingest_decode_errors_total", Help: "Records dead-lettered, by format and reason.",
		}, []string{"format", "reason"}),
		batchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nhi_ingest_batch_duration_seconds",
			Help:    "Time from a fetched batch to its commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		batchRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "nhi_ingest_batch_records",
			Help:    "Records per batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.events, m.decodeErrors, m.batchSeconds, m.batchRecords)
	}
	return m
}
