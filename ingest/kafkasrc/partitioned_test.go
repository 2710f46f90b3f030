package kafkasrc_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/schemas"
)

// member is one detector-stage instance in the test: it records which
// partitions it holds and every event it processed, and checks each event
// against its ownership at the time.
type member struct {
	name string
	src  *kafkasrc.Partitioned
	lag  prometheus.Gauge
	// maxLag is the largest lag seen after a fetch.
	maxLag float64
	mu     sync.Mutex
	owns   map[int]bool
	seen   []string
	errs   []string
	// log is shared by all members: the order of handovers and batches.
	log *[]string
	lmu *sync.Mutex
}

func (m *member) note(s string) {
	m.lmu.Lock()
	*m.log = append(*m.log, m.name+" "+s)
	m.lmu.Unlock()
}

func TestPartitionedHandsOverBetweenBatches(t *testing.T) {
	const parts = 6
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(parts, "nhi.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cluster := kafkasrc.Cluster{Brokers: c.ListenAddrs()}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	rp, err := kafkasrc.NewRepartitioner(cluster, "nhi.events", "", ingest.Backoff{}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Close()
	n, err := kafkasrc.Partitions(ctx, cluster, "nhi.events")
	if err != nil || n != parts {
		t.Fatalf("partitions: %d, %v", n, err)
	}

	partitioner := kafkasrc.NewPartitioner(parts)
	var handovers []string
	var hmu sync.Mutex
	start := func(name string) *member {
		m := &member{name: name, owns: map[int]bool{}, log: &handovers, lmu: &hmu, lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lag"})}
		m.src, err = kafkasrc.NewPartitioned(kafkasrc.PartitionedConfig{
			Cluster: cluster, GroupID: "detect", Topic: "nhi.events", StartFirst: true, BatchSize: 50, Linger: 10 * time.Millisecond, Lag: m.lag,
			OnAssigned: func(_ context.Context, ps []int) {
				m.mu.Lock()
				for _, p := range ps {
					m.owns[p] = true
				}
				m.mu.Unlock()
				m.note(fmt.Sprint("assigned ", ps))
			},
			OnRevoked: func(_ context.Context, ps []int) {
				m.mu.Lock()
				for _, p := range ps {
					delete(m.owns, p)
				}
				m.mu.Unlock()
				m.note(fmt.Sprint("revoked ", ps))
			},
		}, log)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	run := func(m *member, stop <-chan struct{}, done *sync.WaitGroup) {
		defer done.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			fctx, fcancel := context.WithTimeout(ctx, 200*time.Millisecond)
			batch, err := m.src.Fetch(fctx)
			fcancel()
			if err != nil {
				continue
			}
			var evs []schemas.Event
			for _, r := range batch {
				evs, err = kafkasrc.EventDecoder{}.Decode(evs, r)
				if err != nil {
					t.Error(err)
				}
			}
			m.mu.Lock()
			m.maxLag = max(m.maxLag, testutil.ToFloat64(m.lag))
			for i, ev := range evs {
				if p := partitioner.Of(ev.Identity.ID); p != batch[i].Partition || !m.owns[p] {
					m.errs = append(m.errs, fmt.Sprintf("%s: event of %s on partition %d (Partitioner.Of %d), owned %v", m.name, ev.Identity.ID, batch[i].Partition, p, m.owns))
				}
				m.seen = append(m.seen, ev.ID)
			}
			m.mu.Unlock()
			if err := m.src.Commit(ctx, batch); err != nil {
				t.Error(err)
			}
		}
	}
	produce := func(from, to int) []string {
		var evs []schemas.Event
		var ids []string
		for i := from; i < to; i++ {
			ev := schemas.Event{ID: fmt.Sprintf("ev-%05d", i), Identity: schemas.Identity{ID: fmt.Sprintf("spiffe://t/ns/a/sa/w%02d", i%40)}}
			evs = append(evs, ev)
			ids = append(ids, ev.ID)
		}
		if err := rp.Handle(ctx, evs); err != nil {
			t.Fatal(err)
		}
		return ids
	}

	want := produce(0, 2000)
	a := start("a")
	stopA, stopB := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go run(a, stopA, &wg)
	waitSeen := func(n int, ms ...*member) {
		for ctx.Err() == nil {
			total := 0
			for _, m := range ms {
				m.mu.Lock()
				total += len(m.seen)
				m.mu.Unlock()
			}
			if total >= n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("timed out waiting for %d events", n)
	}
	waitSeen(500, a)
	b := start("b") // a forced rebalance while a is consuming
	wg.Add(1)
	go run(b, stopB, &wg)
	for ctx.Err() == nil {
		b.mu.Lock()
		owned := len(b.owns)
		b.mu.Unlock()
		if owned > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	want = append(want, produce(2000, 4000)...)
	waitSeen(len(want), a, b)
	close(stopA)
	close(stopB)
	wg.Wait()
	a.src.Close()
	b.src.Close()

	var got []string
	for _, m := range []*member{a, b} {
		if l := testutil.ToFloat64(m.lag); l != 0 || m.maxLag == 0 {
			t.Errorf("member %s: lag %v after everything was processed, at most %v before", m.name, l, m.maxLag)
		}
		for _, e := range m.errs {
			t.Error(e)
		}
		got = append(got, m.seen...)
		if len(m.seen) == 0 {
			t.Errorf("member %s processed nothing: the group did not split the partitions", m.name)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("processed %d events (%d distinct of %d): each must be processed exactly once", len(got), len(slices.Compact(slices.Clone(got))), len(want))
	}
	// b may read a partition only after a gave it up.
	if ia, ib := slices.IndexFunc(handovers, func(s string) bool { return s == "a revoked [3 4 5]" }),
		slices.IndexFunc(handovers, func(s string) bool { return s == "b assigned [3 4 5]" }); ia < 0 || ib < ia {
		t.Errorf("handovers %v: want a to revoke [3 4 5] before b is assigned them", handovers)
	}
	t.Logf("handovers: %v; a processed %d, b %d", handovers, len(a.seen), len(b.seen))
}
