// Package kafkasink owns the Kafka findings topic: each finding is published
// as one OCSF Detection Finding (schemas.DetectionFinding) keyed by its
// identity, so one identity's findings stay in order on one partition.
// Consumers key findings by finding_info.uid, which is deterministic, so a
// replayed batch is invisible to them, and keep its highest revision.
package kafkasink

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/schemas"
)

// Sink publishes findings to one topic.
type Sink struct{ w *kafka.Writer }

// New returns a sink writing to topic. Its writes wait for all in-sync
// replicas, so findings are durable before the input is committed.
func New(c kafkasrc.Cluster, topic string) (*Sink, error) {
	w, err := c.Writer(topic)
	if err != nil {
		return nil, err
	}
	return &Sink{w: w}, nil
}

// Name implements engine.FindingSink.
func (s *Sink) Name() string { return "kafka" }

// WriteFindings publishes findings and returns once the broker acknowledged
// them.
func (s *Sink) WriteFindings(ctx context.Context, findings []schemas.Finding) error {
	if len(findings) == 0 {
		return nil
	}
	msgs := make([]kafka.Message, len(findings))
	for i := range findings {
		b, err := json.Marshal(findings[i].OCSF())
		if err != nil {
			return fmt.Errorf("encode finding %s: %w", findings[i].ID, err)
		}
		msgs[i] = kafka.Message{
			Key:     []byte(findings[i].Identity.ID),
			Value:   b,
			Headers: []kafka.Header{{Key: "nhi-finding-id", Value: []byte(findings[i].ID)}},
		}
	}
	if err := s.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("findings topic %s: %w", s.w.Topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (s *Sink) Close() error { return s.w.Close() }
