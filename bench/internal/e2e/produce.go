package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/bench/gen"
)

// EventsPerIdentityHour is the gen.Config.EventsPerIdentityHour that makes
// the default population produce about rate records per second. Measured
// on the generator: each unit makes about 2 records per identity-hour
// (rates are log-normal, mean 1.65× the median, and a Vault request writes
// two records); the hour-of-week profile moves the actual rate around that.
func EventsPerIdentityHour(rate float64) float64 {
	return rate * 3600 / (gen.DefaultWorkloads + gen.DefaultRoles + gen.DefaultAPIKeys + gen.DefaultVaultClients) / 2
}

// Producer hands generated records to the broker asynchronously and keeps
// the first delivery error.
type Producer struct {
	cl       *kgo.Client
	mu       sync.Mutex // guards firstErr, set from the client's callbacks
	firstErr error
}

// NewProducer produces through cl.
func NewProducer(cl *kgo.Client) *Producer { return &Producer{cl: cl} }

// Send produces r to its format's topic; with paced, not before r.Time, so
// a record's event time is when it entered the broker. It returns the
// first delivery error seen so far.
func (p *Producer) Send(ctx context.Context, r gen.Record, paced bool) error {
	if err := p.err(); err != nil {
		return err
	}
	if wait := time.Until(r.Time); paced && wait > time.Millisecond {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	p.cl.Produce(ctx, &kgo.Record{Topic: Topics[r.Format], Key: r.Key, Value: r.Value, Timestamp: r.Time},
		func(_ *kgo.Record, err error) {
			p.mu.Lock()
			if p.firstErr == nil {
				p.firstErr = err
			}
			p.mu.Unlock()
		})
	return nil
}

// Flush waits until everything sent is stored or failed.
func (p *Producer) Flush(ctx context.Context) error {
	if err := p.cl.Flush(ctx); err != nil {
		return fmt.Errorf("produce records: %w", err)
	}
	return p.err()
}

func (p *Producer) err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.firstErr != nil {
		return fmt.Errorf("produce records: %w", p.firstErr)
	}
	return nil
}

// errEnough stops the generator once enough records were taken.
var errEnough = errors.New("enough records")

// Produce generates records from cfg, at most limit of them, produces them
// as fast as the broker takes them or, with paced, each at its event time,
// and waits until they are stored.
func Produce(ctx context.Context, cl *kgo.Client, cfg gen.Config, limit int, paced bool) (int, error) {
	p := NewProducer(cl)
	var n int
	_, err := gen.Generate(cfg, func(r gen.Record) error {
		if n == limit {
			return errEnough
		}
		n++
		return p.Send(ctx, r, paced)
	})
	if err != nil && !errors.Is(err, errEnough) {
		return n, fmt.Errorf("generate records: %w", err)
	}
	return n, p.Flush(ctx)
}
