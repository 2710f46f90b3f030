package kafkasrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/ingest"
)

// PartitionedConfig configures a Partitioned source.
type PartitionedConfig struct {
	Cluster Cluster
	GroupID string
	Topic   string
	// BatchSize caps a batch; Linger is how long to wait for more records
	// after the first one of a batch.
	BatchSize int
	Linger    time.Duration
	// StartFirst makes a new group start from the oldest offset.
	StartFirst bool
	// OnAssigned is called with the partitions this member gains, before
	// any of their records is fetched.
	OnAssigned func(ctx context.Context, partitions []int)
	// OnRevoked is called with the partitions this member loses (lost ones
	// too, when the group expelled it), after the last batch fetched from
	// them was committed and before any other member may read them.
	OnRevoked func(ctx context.Context, partitions []int)
	// Lag, if set, receives the records behind the newest offset over the
	// partitions this member holds, after every fetch.
	Lag prometheus.Gauge
}

// Partitioned is a consumer-group member of one topic that tells its owner
// which partitions it holds. It is the detector stage's input: state per
// identity follows the repartition topic's partitions, so a partition's
// state must be handed over (flushed by the old owner, loaded by the new)
// exactly between two batches. Fetched records block any rebalance until
// they are committed; franz-go offers that gate (BlockRebalanceOnPoll), which
// kafka-go's group reader does not expose. Fetch and Commit must be called
// from one goroutine.
type Partitioned struct {
	cl      *kgo.Client
	cfg     PartitionedConfig
	log     *slog.Logger
	pending []*kgo.Record
	// lag is, per partition held, the records behind its high watermark
	// after the last fetch; written by Fetch and the revoke callback.
	lagMu sync.Mutex
	lag   map[int32]int64
}

// NewPartitioned joins the consumer group.
func NewPartitioned(cfg PartitionedConfig, log *slog.Logger) (*Partitioned, error) {
	var topics []string
	if cfg.Topic != "" {
		topics = []string{cfg.Topic}
	}
	if err := errors.Join(memberErrors(cfg.Cluster, cfg.GroupID, "repartition", topics)...); err != nil {
		return nil, err
	}
	batchDefaults(&cfg.BatchSize, &cfg.Linger)
	p := &Partitioned{cfg: cfg, log: log, lag: map[int32]int64{}}
	reset := kgo.NewOffset().AtEnd()
	if cfg.StartFirst {
		reset = kgo.NewOffset().AtStart()
	}
	cl, err := cfg.Cluster.franz(
		kgo.ConsumerGroup(cfg.GroupID),
		kgo.ConsumeTopics(cfg.Topic),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(100*time.Millisecond),
		// What a member holds fetched but not processed stays bounded
		// whatever the input rate, as with the input consumer's reader.
		kgo.FetchMaxBytes(16<<20),
		kgo.OnPartitionsAssigned(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			if parts := p.partitions(m); len(parts) > 0 && cfg.OnAssigned != nil {
				cfg.OnAssigned(ctx, parts)
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			p.revoked(ctx, m, "revoked")
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, m map[string][]int32) {
			p.revoked(ctx, m, "lost")
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	p.cl = cl
	return p, nil
}

func (p *Partitioned) revoked(ctx context.Context, m map[string][]int32, how string) {
	parts := p.partitions(m)
	if len(parts) == 0 {
		return
	}
	p.lagMu.Lock()
	for _, id := range parts {
		delete(p.lag, int32(id))
	}
	p.lagMu.Unlock()
	p.log.Info("repartition partitions "+how, "topic", p.cfg.Topic, "partitions", parts)
	if p.cfg.OnRevoked != nil {
		p.cfg.OnRevoked(ctx, parts)
	}
}

func (p *Partitioned) partitions(m map[string][]int32) []int {
	var parts []int
	for _, id := range m[p.cfg.Topic] {
		parts = append(parts, int(id))
	}
	sort.Ints(parts)
	return parts
}

// Fetch implements ingest.Source: it blocks for the first records, then
// gathers more for up to Linger or BatchSize records. No rebalance happens
// until the batch is committed.
func (p *Partitioned) Fetch(ctx context.Context) ([]ingest.Record, error) {
	p.pending = p.pending[:0]
	if err := p.poll(ctx); err != nil {
		p.cl.AllowRebalance()
		return nil, err
	}
	lctx, cancel := context.WithTimeout(ctx, p.cfg.Linger)
	defer cancel()
	for len(p.pending) < p.cfg.BatchSize && lctx.Err() == nil {
		if err := p.poll(lctx); err != nil {
			break // linger over: hand over what we have
		}
	}
	batch := make([]ingest.Record, len(p.pending))
	for i, r := range p.pending {
		batch[i] = ingest.Record{Topic: r.Topic, Partition: int(r.Partition), Offset: r.Offset, Key: r.Key, Value: r.Value, Time: r.Timestamp}
	}
	return batch, nil
}

// poll appends records to pending until at least one arrives or ctx ends.
// Fetch errors other than the end of ctx or of the client are transient
// (a broker restarting, a leader moving): franz-go retries them, so they
// are logged and polling goes on.
func (p *Partitioned) poll(ctx context.Context) error {
	for {
		fs := p.cl.PollRecords(ctx, p.cfg.BatchSize-len(p.pending))
		if fs.IsClientClosed() {
			return kgo.ErrClientClosed
		}
		var fatal error
		fs.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				fatal = err
				return
			}
			p.log.Warn("kafka fetch", "topic", topic, "partition", partition, "err", err)
		})
		n := len(p.pending)
		p.lagMu.Lock()
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			if k := len(fp.Records); k > 0 {
				p.lag[fp.Partition] = fp.HighWatermark - fp.Records[k-1].Offset - 1
			}
			p.pending = append(p.pending, fp.Records...)
		})
		if p.cfg.Lag != nil {
			total := int64(0)
			for _, l := range p.lag {
				total += l
			}
			p.cfg.Lag.Set(float64(total))
		}
		p.lagMu.Unlock()
		if len(p.pending) > n {
			return nil
		}
		if fatal != nil {
			return fatal
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Commit implements ingest.Source: it commits the fetched batch, then lets
// a waiting rebalance go on.
func (p *Partitioned) Commit(ctx context.Context, _ []ingest.Record) error {
	defer p.cl.AllowRebalance()
	if err := p.cl.CommitRecords(ctx, p.pending...); err != nil {
		return fmt.Errorf("kafka commit %s: %w", p.cfg.Topic, err)
	}
	return nil
}

// Close leaves the group; its partitions are revoked first.
func (p *Partitioned) Close() error {
	p.cl.AllowRebalance()
	p.cl.Close()
	return nil
}
