package kafkasrc

import (
	"context"
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
	w   *kafka.Writer
	now func() time.Time
}

// NewDeadLetters returns a writer to topic.
func NewDeadLetters(c Cluster, topic string) (*DeadLetters, error) {
	w, err := c.Writer(topic)
	if err != nil {
		return nil, err
	}
	return &DeadLetters{w: w, now: time.Now}, nil
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
	if err := d.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("dead-letter topic %s: %w", d.w.Topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (d *DeadLetters) Close() error { return d.w.Close() }
