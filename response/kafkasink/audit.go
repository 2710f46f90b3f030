package kafkasink

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/response"
)

// Audit publishes the response audit trail: every version of every action
// record as JSON keyed by identity, so a SOC sees each decision and result
// as it happens. Consumers keep the highest version of an id.
type Audit struct{ w *kafka.Writer }

// NewAudit returns a writer to topic.
func NewAudit(c kafkasrc.Cluster, topic string) (*Audit, error) {
	w, err := c.Writer(topic)
	if err != nil {
		return nil, err
	}
	return &Audit{w: w}, nil
}

// WriteAudit implements response.AuditSink.
func (a *Audit) WriteAudit(ctx context.Context, recs []response.Record) error {
	msgs := make([]kafka.Message, len(recs))
	for i := range recs {
		b, err := json.Marshal(&recs[i])
		if err != nil {
			return fmt.Errorf("encode audit record %s: %w", recs[i].ID, err)
		}
		msgs[i] = kafka.Message{Key: []byte(recs[i].IdentityID), Value: b,
			Headers: []kafka.Header{{Key: "nhi-action-id", Value: []byte(recs[i].ID)}}}
	}
	if err := a.w.WriteMessages(ctx, msgs...); err != nil {
		return fmt.Errorf("audit topic %s: %w", a.w.Topic, err)
	}
	return nil
}

// Close flushes and closes the writer.
func (a *Audit) Close() error { return a.w.Close() }
