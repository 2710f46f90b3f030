package outputs_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/response/kafkasink"
	"github.com/nhisentry/nhisentry/response/outputs"
	"github.com/nhisentry/nhisentry/schemas"
)

// flaky is an Output whose destination can be taken down; it records what
// it accepted.
type flaky struct {
	mu       sync.Mutex
	down     bool
	attempts int
	got      []string // finding ids, in delivery order
}

func (f *flaky) Name() string { return "flaky" }
func (f *flaky) Close() error { return nil }

func (f *flaky) Deliver(_ context.Context, fs []schemas.Finding) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	if f.down {
		return errors.New("destination down")
	}
	for _, x := range fs {
		f.got = append(f.got, x.ID)
	}
	return nil
}

func (f *flaky) set(down bool) { f.mu.Lock(); f.down = down; f.mu.Unlock() }

func (f *flaky) delivered() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.got)
}

func (f *flaky) tries() int { f.mu.Lock(); defer f.mu.Unlock(); return f.attempts }

const topic = "nhi.findings"

type env struct {
	cluster kafkasrc.Cluster
	sink    *kafkasink.Sink
}

func newEnv(t *testing.T) env {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, topic))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cl := kafkasrc.Cluster{Brokers: c.ListenAddrs()}
	sink, err := kafkasink.New(cl, topic)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return env{cluster: cl, sink: sink}
}

func (e env) source(t *testing.T, group string) *kafkasrc.Source {
	t.Helper()
	src, err := kafkasrc.New(kafkasrc.Config{Cluster: e.cluster, GroupID: group, Topics: []string{topic}, StartFirst: true,
		BatchSize: 50, Linger: 20 * time.Millisecond, Lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})}, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func findings(n int, from int) []schemas.Finding {
	out := make([]schemas.Finding, n)
	sev := []schemas.Severity{schemas.SeverityLow, schemas.SeverityMedium, schemas.SeverityHigh, schemas.SeverityCritical}
	for i := range out {
		k := from + i
		at := schemas.At(time.Date(2026, 11, 2, 10, 0, k, 0, time.UTC))
		out[i] = schemas.Finding{ID: fmt.Sprintf("f%03d", k), Detector: "new_value", Severity: sev[k%len(sev)], Score: 50,
			Title: "t", Explanation: "e", Identity: schemas.Identity{ID: fmt.Sprintf("id-%d", k%3), Kind: "workload"},
			EventIDs: []string{"ev"}, FirstSeen: at, LastSeen: at, Count: 1}
	}
	return out
}

func ids(fs []schemas.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.ID)
	}
	return out
}

// waitFor polls cond for up to 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// sameSet reports whether got holds exactly the ids of want (per-partition
// order is Kafka's; the set is the guarantee).
func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(slices.Compact(g), w)
}

// TestForwarderOutageLosesNothing: the destination is down while findings
// arrive; the forwarder retries, delivers all once it is back, and commits
// only then — a new forwarder in the same group gets nothing twice.
func TestForwarderOutageLosesNothing(t *testing.T) {
	e := newEnv(t)
	out := &flaky{down: true}
	reg := prometheus.NewRegistry()
	m := outputs.NewMetrics(reg)
	ctx, cancel := context.WithCancel(context.Background())
	src := e.source(t, "out.flaky")
	fw := outputs.NewForwarder(out, outputs.ForwarderOptions{Source: src,
		Backoff: ingest.Backoff{First: 5 * time.Millisecond, Max: 20 * time.Millisecond}, Metrics: m})
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx) }()
	want := findings(40, 0)
	if err := e.sink.WriteFindings(ctx, want); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "retries", func() bool { return out.tries() >= 3 })
	if len(out.delivered()) != 0 {
		t.Fatal("delivered while down")
	}
	out.set(false)
	waitFor(t, "delivery", func() bool { return len(out.delivered()) == len(want) })
	if !sameSet(out.delivered(), ids(want)) {
		t.Fatalf("delivered %v", out.delivered())
	}
	if got := testutil.ToFloat64(m.Delivered("flaky")); got != 40 {
		t.Errorf("nhi_output_findings_total = %v", got)
	}
	if got := testutil.ToFloat64(m.Errors("flaky", "delivery")); got < 3 {
		t.Errorf("nhi_output_errors_total{reason=delivery} = %v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	src.Close() // leaves the group
	// A restart in the same group starts after the committed batch.
	out2 := &flaky{}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	fw2 := outputs.NewForwarder(out2, outputs.ForwarderOptions{Source: e.source(t, "out.flaky")})
	go fw2.Run(ctx2)
	more := findings(5, 40)
	if err := e.sink.WriteFindings(ctx2, more); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new findings", func() bool { return len(out2.delivered()) >= len(more) })
	time.Sleep(200 * time.Millisecond)
	if !sameSet(out2.delivered(), ids(more)) {
		t.Fatalf("after restart delivered %v, want only %v", out2.delivered(), ids(more))
	}
}

// TestForwarderStopBeforeCommitRedelivers: a forwarder stopped while its
// destination is down commits nothing, so the next one delivers the batch.
func TestForwarderStopBeforeCommitRedelivers(t *testing.T) {
	e := newEnv(t)
	want := findings(10, 0)
	if err := e.sink.WriteFindings(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	down := &flaky{down: true}
	ctx, cancel := context.WithCancel(context.Background())
	src := e.source(t, "g")
	fw := outputs.NewForwarder(down, outputs.ForwarderOptions{Source: src, Backoff: ingest.Backoff{First: time.Millisecond, Max: time.Millisecond}})
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx) }()
	waitFor(t, "attempts", func() bool { return down.tries() >= 2 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	src.Close()
	up := &flaky{}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go outputs.NewForwarder(up, outputs.ForwarderOptions{Source: e.source(t, "g")}).Run(ctx2)
	waitFor(t, "redelivery", func() bool { return len(up.delivered()) == len(want) })
	if !sameSet(up.delivered(), ids(want)) {
		t.Fatalf("got %v", up.delivered())
	}
}

// TestForwarderFiltersAndSkipsGarbage: min_severity drops lower findings;
// a record that is no finding is counted and skipped, not retried forever.
func TestForwarderFiltersAndSkipsGarbage(t *testing.T) {
	e := newEnv(t)
	w, err := e.cluster.Writer(topic)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.WriteMessages(context.Background(), kafka.Message{Key: []byte("id-0"), Value: []byte("not json")}); err != nil {
		t.Fatal(err)
	}
	all := findings(8, 0)
	if err := e.sink.WriteFindings(context.Background(), all); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range all {
		if f.Severity.Rank() >= schemas.SeverityHigh.Rank() {
			want = append(want, f.ID)
		}
	}
	out := &flaky{}
	m := outputs.NewMetrics(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go outputs.NewForwarder(out, outputs.ForwarderOptions{Source: e.source(t, "g"), MinSeverity: schemas.SeverityHigh, Metrics: m}).Run(ctx)
	waitFor(t, "filtered delivery", func() bool {
		return testutil.ToFloat64(m.Errors("flaky", "undecodable")) == 1 && len(out.delivered()) == len(want)
	})
	time.Sleep(200 * time.Millisecond)
	if !sameSet(out.delivered(), want) {
		t.Fatalf("delivered %v, want %v", out.delivered(), want)
	}
}

// TestLagHoldsDetectionPastMaxLag: with the destination down, the output's
// lag grows past max_lag and the engine's sink waits (backpressure); once
// the destination is back and the forwarder catches up, it returns.
func TestLagHoldsDetectionPastMaxLag(t *testing.T) {
	e := newEnv(t)
	out := &flaky{down: true}
	m := outputs.NewMetrics(nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go outputs.NewForwarder(out, outputs.ForwarderOptions{Source: e.source(t, "out.flaky"), Metrics: m,
		Backoff: ingest.Backoff{First: 5 * time.Millisecond, Max: 20 * time.Millisecond}}).Run(ctx)
	client, err := e.cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	lag := outputs.NewLag(outputs.LagOptions{Client: client, Topic: topic, Groups: map[string]string{"flaky": "out.flaky"},
		MaxLag: 10, Every: 50 * time.Millisecond, Metrics: m})
	go lag.Run(ctx)
	if err := e.sink.WriteFindings(ctx, findings(25, 0)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "lag 25", func() bool { n, ok := lag.Behind("flaky"); return ok && n == 25 })
	if got := testutil.ToFloat64(m.Lag("flaky")); got != 25 {
		t.Errorf("nhi_output_lag = %v", got)
	}
	held := make(chan error, 1)
	go func() { held <- lag.WriteFindings(ctx, nil) }()
	select {
	case err := <-held:
		t.Fatalf("detection was not held back: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if got := testutil.ToFloat64(m.Backpressure("flaky")); got != 1 {
		t.Errorf("nhi_output_backpressure = %v while held", got)
	}
	out.set(false)
	select {
	case err := <-held:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("detection still held after the output caught up")
	}
	if got := testutil.ToFloat64(m.Backpressure("flaky")); got != 0 {
		t.Errorf("nhi_output_backpressure = %v after catching up", got)
	}
	if n, _ := lag.Behind("flaky"); n > 10 {
		t.Errorf("lag %d after release", n)
	}
}

// TestLagCountsFindingsBetweenMeasurements: the findings of each batch count
// as behind at once, so a burst between two measurements is held as soon as
// it passes max_lag, not a measurement later.
func TestLagCountsFindingsBetweenMeasurements(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client, err := e.cluster.Client()
	if err != nil {
		t.Fatal(err)
	}
	lag := outputs.NewLag(outputs.LagOptions{Client: client, Topic: topic, Groups: map[string]string{"down": "out.down"},
		MaxLag: 10, Every: time.Hour})
	if err := lag.Measure(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lag.WriteFindings(ctx, findings(8, 0)); err != nil {
		t.Fatalf("8 findings behind of 10 allowed: %v", err)
	}
	held := make(chan error, 1)
	go func() { held <- lag.WriteFindings(ctx, findings(5, 8)) }()
	select {
	case err := <-held:
		t.Fatalf("13 findings behind, max_lag 10, yet detection went on: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	cancel()
	if err := <-held; err == nil {
		t.Fatal("a held batch returned no error when its context ended")
	}
}
