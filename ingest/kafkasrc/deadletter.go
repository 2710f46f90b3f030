package kafkasrc

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/nhisentry/nhisentry/ingest"
)

// Dead-letter headers. The value is the original record byte for byte and
// the key its original key, so a fixed decoder can replay it unchanged.
const (
	HeaderReason    = "nhi-dlq-reason"
	HeaderDetail    = "nhi-dlq-detail"
	HeaderFormat    = "nhi-dlq-format"
	HeaderTopic     = "nhi-dlq-source-topic"
	HeaderPartition = "nhi-dlq-source-partition"
	HeaderOffset    = "nhi-dlq-source-offset"
	HeaderTime      = "nhi-dlq-time"
)

// DeadLetters writes dead letters to one topic.
type DeadLetters struct {
	// w batches letters in requests every broker accepts; big sends one
	// letter too large for that alone (an input topic may allow records
	// over 1 MiB; then the dead-letter topic must allow them too).
	w, big *kafka.Writer
	now    func() time.Time
}

// NewDeadLetters returns a writer to topic.
func NewDeadLetters(c Cluster, topic string) (*DeadLetters, error) {
	w, err := c.Writer(topic)
	if err != nil {
		return nil, err
	}
	big, err := c.Writer(topic)
	if err != nil {
		w.Close()
		return nil, err
	}
	big.BatchSize, big.BatchBytes = 1, 1<<30
	return &DeadLetters{w: w, big: big, now: time.Now}, nil
}

// WriteDeadLetters implements ingest.DeadLetterWriter.
func (d *DeadLetters) WriteDeadLetters(ctx context.Context, letters []ingest.DeadLetter) error {
	msgs := make([]kafka.Message, len(letters))
	now := d.now().UTC().Format(time.RFC3339Nano)
	for i, l := range letters {
		msgs[i] = kafka.Message{
			Key:   l.Record.Key,
			Value: l.Record.Value,
			Headers: []kafka.Header{
				{Key: HeaderReason, Value: []byte(l.Err.Reason)},
				{Key: HeaderDetail, Value: []byte(l.Err.Detail)},
				{Key: HeaderFormat, Value: []byte(l.Err.Format)},
				{Key: HeaderTopic, Value: []byte(l.Record.Topic)},
				{Key: HeaderPartition, Value: []byte(strconv.Itoa(l.Record.Partition))},
				{Key: HeaderOffset, Value: []byte(strconv.FormatInt(l.Record.Offset, 10))},
				{Key: HeaderTime, Value: []byte(now)},
			},
		}
	}
	small := msgs[:0]
	for _, m := range msgs {
		if size(m) < MaxRequestBytes/2 {
			small = append(small, m)
			continue
		}
		if err := d.big.WriteMessages(ctx, m); err != nil {
			return fmt.Errorf("dead-letter topic %s: a letter of %d bytes: %w", d.w.Topic, len(m.Value), err)
		}
	}
	if len(small) == 0 {
		return nil
	}
	if err := d.w.WriteMessages(ctx, small...); err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", d.w.Topic, err)
	}
	return nil
}

// size approximates a message's bytes in a request.
func size(m kafka.Message) int {
	n := len(m.Key) + len(m.Value)
	for _, h := range m.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return n
}

// Close flushes and closes the writers.
func (d *DeadLetters) Close() error { return errors.Join(d.w.Close(), d.big.Close()) }
