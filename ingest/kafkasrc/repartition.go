package kafkasrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	json "github.com/goccy/go-json"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

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
	linksW  *kafka.Writer
	backoff ingest.Backoff
	log     *slog.Logger
	// msgs and linkMsgs are reused from batch to batch.
	msgs, linkMsgs []kafka.Message
}

// NewRepartitioner writes events to topic and, when linksTopic is set,
// every issuance event to linksTopic too, keyed by its credential: the
// issuance and the use of a credential can arrive at different instances,
// and each instance's Linker follows that topic (FollowLinks).
func NewRepartitioner(c Cluster, topic, linksTopic string, b ingest.Backoff, log *slog.Logger) (*Repartitioner, error) {
	w, err := c.Writer(topic)
	if err != nil {
		return nil, err
	}
	r := &Repartitioner{w: w, backoff: b, log: log}
	if r.backoff.First <= 0 {
		r.backoff = ingest.DefaultBackoff
	}
	if linksTopic != "" {
		if r.linksW, err = c.Writer(linksTopic); err != nil {
			w.Close()
			return nil, err
		}
	}
	return r, nil
}

// Handle implements ingest.Handler. The batch's links are written before
// its events, so a credential's link is shared no later than its events
// are detected. Writes are retried with backoff until they succeed or ctx
// ends; a partial write sends the whole batch again, which the detector
// stage recognises by the events' ids and the Linker by the issue times.
func (r *Repartitioner) Handle(ctx context.Context, events []schemas.Event) error {
	if len(events) == 0 {
		return nil
	}
	msgs, links := r.msgs[:0], r.linkMsgs[:0]
	for i := range events {
		ev := &events[i]
		b, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encode event %s for the repartition topic: %w", ev.ID, err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.Identity.ID), Value: b})
		if r.linksW != nil && ev.Issuance != nil && ev.Issuance.Credential != "" {
			links = append(links, kafka.Message{Key: []byte(ev.Issuance.Credential), Value: b})
		}
	}
	r.msgs, r.linkMsgs = msgs, links
	if len(links) > 0 {
		err := ingest.Retry(ctx, r.backoff, r.log, "links to "+r.linksW.Topic, nil, func() error {
			return r.linksW.WriteMessages(ctx, links...)
		})
		if err != nil {
			return err
		}
	}
	return ingest.Retry(ctx, r.backoff, r.log, "events to "+r.w.Topic, nil, func() error {
		return r.w.WriteMessages(ctx, msgs...)
	})
}

// FollowLinks reads the links topic from its start until ctx ends and gives
// each issuance event to add (Linker.Add of its LinkOf), so that every
// instance resolves every credential whichever instance saw its issuance.
// Records that are not events are logged and skipped.
func FollowLinks(ctx context.Context, c Cluster, topic string, log *slog.Logger, add func(*schemas.Event)) error {
	cl, err := c.franz(kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	defer cl.Close()
	var dec EventDecoder
	var evs []schemas.Event
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("kafka fetch", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			evs, err = dec.Decode(evs[:0], ingest.Record{Topic: r.Topic, Partition: int(r.Partition), Offset: r.Offset, Value: r.Value})
			if err != nil {
				log.Warn("links topic: not an event", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			add(&evs[0])
		})
	}
}

// Close flushes and closes the writers.
func (r *Repartitioner) Close() error {
	err := r.w.Close()
	if r.linksW != nil {
		err = errors.Join(err, r.linksW.Close())
	}
	return err
}

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
