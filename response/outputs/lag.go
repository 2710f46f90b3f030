package outputs

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/nhisentry/nhisentry/schemas"
)

// Lag measures how many findings each output's consumer group has not yet
// committed on the findings topic, from the brokers' offsets, so it is
// right across instances and while an output is stuck retrying. It is also
// the engine's last finding sink: WriteFindings holds the pipeline while any
// output is more than MaxLag behind (backpressure), which bounds how far a
// down destination can fall behind before detection waits for it.
type Lag struct {
	client *kafka.Client
	topic  string
	groups map[string]string // output name → consumer group
	max    int64
	every  time.Duration
	m      *Metrics
	log    *slog.Logger

	mu     sync.Mutex
	behind map[string]int64
	known  bool // behind has been measured at least once
}

// LagOptions configures Lag.
type LagOptions struct {
	Client *kafka.Client
	Topic  string
	// Groups maps each output name to its consumer group.
	Groups map[string]string
	// MaxLag is how many findings an output may be behind before detection
	// waits; 0 never waits.
	MaxLag int64
	// Every is how often lag is measured; default 1 s.
	Every   time.Duration
	Metrics *Metrics
	Logger  *slog.Logger
}

// NewLag returns a lag monitor; Run measures.
func NewLag(o LagOptions) *Lag {
	if o.Every <= 0 {
		o.Every = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Lag{client: o.Client, topic: o.Topic, groups: o.Groups, max: o.MaxLag, every: o.Every,
		m: o.Metrics, log: o.Logger, behind: map[string]int64{}}
}

// Run measures every Every until ctx ends, updating nhi_output_lag.
func (l *Lag) Run(ctx context.Context) {
	t := time.NewTicker(l.every)
	defer t.Stop()
	for {
		if err := l.Measure(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn("measure output lag", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Measure reads the topic's and every group's offsets once.
func (l *Lag) Measure(ctx context.Context) error {
	meta, err := l.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{l.topic}})
	if err != nil {
		return fmt.Errorf("findings topic %s: metadata: %w", l.topic, err)
	}
	if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
		return fmt.Errorf("findings topic %s: metadata: %v", l.topic, meta.Topics)
	}
	var parts []int
	var reqs []kafka.OffsetRequest
	for _, p := range meta.Topics[0].Partitions {
		parts = append(parts, p.ID)
		reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
	}
	offs, err := l.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{l.topic: reqs}})
	if err != nil {
		return fmt.Errorf("findings topic %s: list offsets: %w", l.topic, err)
	}
	first, last := map[int]int64{}, map[int]int64{}
	for _, p := range offs.Topics[l.topic] {
		if p.Error != nil {
			return fmt.Errorf("findings topic %s partition %d: %w", l.topic, p.Partition, p.Error)
		}
		first[p.Partition], last[p.Partition] = p.FirstOffset, p.LastOffset
	}
	behind := make(map[string]int64, len(l.groups))
	for name, group := range l.groups {
		res, err := l.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{l.topic: parts}})
		if err != nil {
			return fmt.Errorf("output %s: offsets of group %s: %w", name, group, err)
		}
		var n int64
		for _, p := range res.Topics[l.topic] {
			if p.Error != nil {
				return fmt.Errorf("output %s: group %s partition %d: %w", name, group, p.Partition, p.Error)
			}
			from := p.CommittedOffset
			if from < 0 { // nothing committed yet: the group starts at the oldest record
				from = first[p.Partition]
			}
			n += max(0, last[p.Partition]-from)
		}
		behind[name] = n
		l.m.lag.WithLabelValues(name).Set(float64(n))
	}
	l.mu.Lock()
	l.behind, l.known = behind, true
	l.mu.Unlock()
	return nil
}

// add counts findings just written to the topic as behind for every output
// until the next measurement, so the check does not let a burst between two
// measurements far past MaxLag.
func (l *Lag) add(n int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name := range l.behind {
		l.behind[name] += n
	}
}

// over lists the outputs more than MaxLag behind, sorted.
func (l *Lag) over() []string {
	if l.max <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var names []string
	for name, n := range l.behind {
		if n > l.max {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

// Behind returns the last measured lag of an output.
func (l *Lag) Behind(output string) (int64, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, ok := l.behind[output]
	return n, ok && l.known
}

// Name implements engine.FindingSink.
func (l *Lag) Name() string { return "output backpressure" }

// WriteFindings implements engine.FindingSink: it returns at once unless an
// output is more than MaxLag behind, counting the findings of this batch
// (already on the topic); then it waits, with the batch uncommitted, until
// every output is back under MaxLag or ctx ends.
func (l *Lag) WriteFindings(ctx context.Context, findings []schemas.Finding) error {
	l.add(int64(len(findings)))
	over := l.over()
	if len(over) == 0 {
		return nil
	}
	for _, name := range over {
		l.m.backpressure.WithLabelValues(name).Set(1)
	}
	l.log.Warn("outputs are more than max_lag findings behind; detection waits for them",
		"outputs", strings.Join(over, ","), "max_lag", l.max)
	start := time.Now()
	t := time.NewTicker(l.every / 2)
	defer t.Stop()
	for len(over) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		still := l.over()
		for _, name := range over {
			if !slices.Contains(still, name) {
				l.m.backpressure.WithLabelValues(name).Set(0)
			}
		}
		over = still
	}
	l.log.Info("outputs caught up; detection resumes", "waited", time.Since(start).Round(time.Millisecond))
	return nil
}
