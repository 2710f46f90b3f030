package kafkasrc

import (
	"context"
	"fmt"
	"log/slog"

	json "github.com/goccy/go-json"
	"github.com/segmentio/kafka-go"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// FormatEvent names the repartition topic's records: one normalized event,
// as JSON, keyed by its identity.
const FormatEvent = "nhisentry-event"

// Repartitioner is the ingest stage's handler when detection is scaled
// out: it writes each normalized event to the repartition topic keyed by
// its identity, so that every event of one identity reaches the one
// detector instance that holds the identity's state. Handle returns once
// the brokers have stored the events, because the input batch is committed
// next.
type Repartitioner struct {
	w       *kafka.Writer
	backoff ingest.Backoff
	log     *slog.Logger
	msgs    []kafka.Message
}

// NewRepartitioner writes to topic.
func NewRepartitioner(c Cluster, topic string, b ingest.Backoff, log *slog.Logger) (*Repartitioner, error) {
	w, err := c.Writer(topic)
	if err != nil {
		return nil, err
	}
	if b.First <= 0 {
		b = ingest.DefaultBackoff
	}
	return &Repartitioner{w: w, backoff: b, log: log}, nil
}

// Handle implements ingest.Handler. Writes are retried with backoff until
// they succeed or ctx ends; a partial write sends the whole batch again,
// which the detector stage recognises by the events' ids.
func (r *Repartitioner) Handle(ctx context.Context, events []schemas.Event) error {
	if len(events) == 0 {
		return nil
	}
	msgs := r.msgs[:0]
	for i := range events {
		ev := &events[i]
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event %s for the repartition topic: %w", ev.ID, err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.Identity.ID), Value: b})
	}
	r.msgs = msgs
	return ingest.Retry(ctx, r.backoff, r.log, "events to "+r.w.Topic, nil, func() error {
		return r.w.WriteMessages(ctx, msgs...)
	})
}

// Close flushes and closes the writer.
func (r *Repartitioner) Close() error { return r.w.Close() }

// Partitioner tells which partition of the repartition topic an identity's
// events go to: the partition the Repartitioner's writer picks, computed by
// the same balancer. It is safe for concurrent use.
type Partitioner struct{ all []int }

// NewPartitioner is the Partitioner of a topic with n partitions.
func NewPartitioner(n int) Partitioner {
	all := make([]int, n)
	for i := range all {
		all[i] = i
	}
	return Partitioner{all: all}
}

// Of is identity's partition.
func (p Partitioner) Of(identity string) int {
	return (&kafka.Hash{}).Balance(kafka.Message{Key: []byte(identity)}, p.all...)
}

// EventDecoder decodes the repartition topic's records. The events keep the
// ingest time and provenance (the input record) the ingest stage gave them.
type EventDecoder struct{}

// Format implements ingest.Decoder.
func (EventDecoder) Format() string { return FormatEvent }

// Normalized implements ingest.Normalized.
func (EventDecoder) Normalized() {}

// Decode implements ingest.Decoder.
func (EventDecoder) Decode(dst []schemas.Event, rec ingest.Record) ([]schemas.Event, error) {
	dst = append(dst, schemas.Event{})
	ev := &dst[len(dst)-1]
	if err := json.Unmarshal(rec.Value, ev); err != nil {
		return dst[:len(dst)-1], ingest.Errorf(FormatEvent, ingest.ReasonInvalidJSON, "%v", err)
	}
	if ev.ID == "" || ev.Identity.ID == "" {
		return dst[:len(dst)-1], ingest.Errorf(FormatEvent, ingest.ReasonMissingField, "event at offset %d without id or identity", rec.Offset)
	}
	return dst, nil
}
