// Package kafkasrc owns nhisentry's Kafka input: a consumer-group Source over
// segmentio/kafka-go that fetches batches and commits them only when told,
// and the dead-letter writer that stores undecodable records, byte for byte,
// with why they failed.
package kafkasrc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/nhisentry/nhisentry/ingest"
)

// Config configures the consumer.
type Config struct {
	Cluster Cluster
	GroupID string
	Topics  []string
	// BatchSize caps a batch; Linger is how long to wait for more records
	// after the first one of a batch.
	BatchSize int
	Linger    time.Duration
	// StartFirst makes a new group start from the oldest offset (the
	// default); false starts at the newest.
	StartFirst bool
	// Lag receives the consumer lag after every fetch; nil registers
	// nhi_ingest_consumer_lag.
	Lag prometheus.Gauge
}

// Source is a consumer-group member. Fetch and Commit must be called from one
// goroutine.
type Source struct {
	r       *kafka.Reader
	cfg     Config
	lag     prometheus.Gauge
	log     *slog.Logger
	scratch []kafka.Message
}

// memberErrors lists what a consumer-group member's configuration lacks;
// kind names its topics in the message.
func memberErrors(c Cluster, group, kind string, topics []string) []error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("kafka: no brokers"))
	}
	if group == "" {
		errs = append(errs, errors.New("kafka: no group id"))
	}
	if len(topics) == 0 {
		errs = append(errs, fmt.Errorf("kafka: no %s topic", kind))
	}
	return errs
}

// batchDefaults gives an unset batch size and linger their defaults: 5,000
// records, 50 ms.
func batchDefaults(size *int, linger *time.Duration) {
	if *size <= 0 {
		*size = 5000
	}
	if *linger <= 0 {
		*linger = 50 * time.Millisecond
	}
}

// New joins the consumer group. reg may be nil.
func New(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Source, error) {
	errs := memberErrors(cfg.Cluster, cfg.GroupID, "input", cfg.Topics)
	dialer, err := cfg.Cluster.dialer()
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	batchDefaults(&cfg.BatchSize, &cfg.Linger)
	start := kafka.LastOffset
	if cfg.StartFirst {
		start = kafka.FirstOffset
	}
	s := &Source{
		r: kafka.NewReader(kafka.ReaderConfig{
			Brokers:        cfg.Cluster.Brokers,
			Dialer:         dialer,
			GroupID:        cfg.GroupID,
			GroupTopics:    cfg.Topics,
			MinBytes:       1,
			MaxBytes:       16 << 20,
			MaxWait:        100 * time.Millisecond,
			QueueCapacity:  cfg.BatchSize,
			StartOffset:    start,
			CommitInterval: 0, // synchronous commits: Commit returns once stored
			ErrorLogger:    kafka.LoggerFunc(func(msg string, args ...any) { log.Warn(fmt.Sprintf(msg, args...), "component", "kafka-reader") }),
		}),
		cfg: cfg,
		log: log,
		lag: cfg.Lag,
	}
	if s.lag == nil {
		s.lag = prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "nhi_ingest_consumer_lag",
			Help: "Records behind the newest offset on the partitions this member reads, as kafka-go last saw it.",
		})
		if reg != nil {
			reg.MustRegister(s.lag)
		}
	}
	return s, nil
}

// Fetch implements ingest.Source: it blocks for the first record, then
// gathers more for up to Linger or BatchSize records.
func (s *Source) Fetch(ctx context.Context) ([]ingest.Record, error) {
	m, err := s.r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	batch := []ingest.Record{record(m)}
	lctx, cancel := context.WithTimeout(ctx, s.cfg.Linger)
	defer cancel()
	for len(batch) < s.cfg.BatchSize {
		m, err := s.r.FetchMessage(lctx)
		if err != nil {
			break // linger over (or ctx cancelled): hand over what we have
		}
		batch = append(batch, record(m))
	}
	s.lag.Set(float64(s.r.Stats().Lag))
	return batch, nil
}

func record(m kafka.Message) ingest.Record {
	return ingest.Record{Topic: m.Topic, Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value, Time: m.Time}
}

// Commit implements ingest.Source: it commits the highest offset of every
// partition in the batch. A commit lost with its connection (a broker
// restart) or refused for a reason Kafka calls retriable is retried with
// backoff until ctx ends — on the group's next generation if the lost
// connection ended this one — so a broker restart does not stop the
// pipeline. Other errors (the group rebalanced) are returned.
func (s *Source) Commit(ctx context.Context, batch []ingest.Record) error {
	type tp struct {
		topic     string
		partition int
	}
	high := map[tp]int64{}
	for _, r := range batch {
		k := tp{r.Topic, r.Partition}
		if o, ok := high[k]; !ok || r.Offset > o {
			high[k] = r.Offset
		}
	}
	msgs := s.scratch[:0]
	for k, off := range high {
		msgs = append(msgs, kafka.Message{Topic: k.topic, Partition: k.partition, Offset: off})
	}
	s.scratch = msgs
	var final error
	err := ingest.Retry(ctx, ingest.DefaultBackoff, s.log, "commit", nil, func() error {
		err := s.r.CommitMessages(ctx, msgs...)
		if err != nil && !retriable(err) {
			final = err
			return nil
		}
		return err
	})
	return cmp.Or(final, err)
}

// retriable reports whether a commit may succeed if sent again: Kafka's
// retriable errors, and a connection lost or refused (not a closed reader).
func retriable(err error) bool {
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		return kerr.Temporary()
	}
	var nerr net.Error
	return errors.As(err, &nerr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// Close leaves the group.
func (s *Source) Close() error { return s.r.Close() }
