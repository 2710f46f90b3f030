package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// admin is an admin client of the test broker, closed when the test ends,
// and a context for a few of its requests.
func admin(t *testing.T, brokers []string) (*kadm.Client, context.Context) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return kadm.NewClient(cl), ctx
}

// createTopics adds topics of n partitions to the test broker.
func createTopics(t *testing.T, brokers []string, n int32, topics ...string) {
	t.Helper()
	adm, ctx := admin(t, brokers)
	resp, err := adm.CreateTopics(ctx, n, 1, nil, topics...)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// drained reports whether group has committed every partition of topics
// to its end.
func drained(t *testing.T, brokers []string, group string, topics ...string) bool {
	t.Helper()
	adm, ctx := admin(t, brokers)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	all := true
	ends.Each(func(o kadm.ListedOffset) {
		if c, ok := committed.Lookup(o.Topic, o.Partition); o.Offset > 0 && (!ok || c.At < o.Offset) {
			all = false
		}
	})
	return all
}

// instance is one `nhisentry run` of a scale-out test, in this process.
type instance struct {
	svc  *service
	done *ended
	stop context.CancelFunc
	mu   sync.Mutex
	recs uint64 // input records its ingest stage consumed
}

func startInstance(t *testing.T, cfg Config) *instance {
	t.Helper()
	in := &instance{svc: newTestService(t, cfg), done: newEnded()}
	t.Cleanup(in.svc.close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	in.stop = cancel
	go func() {
		_, err := in.svc.run(ctx, func(s ingest.Stats) {
			in.mu.Lock()
			in.recs = s.Records
			in.mu.Unlock()
		})
		in.done.finish(err)
	}()
	return in
}

func (in *instance) consumed() uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.recs
}

// detected is how many events the instance's detector stage read from the
// repartition topic.
func (in *instance) detected(t *testing.T) float64 {
	t.Helper()
	mfs, err := in.svc.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "nhi_ingest_records_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "stage" && l.GetValue() == "detect" {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}

// gauge is the value of an unlabelled gauge in reg.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func (in *instance) end(t *testing.T) {
	t.Helper()
	in.stop()
	if err := in.done.wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
}

func waitFor(t *testing.T, what string, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// storedEventIDs is the set of events a reader of the events table sees, as
// "id identity" (so a credential linked to another identity differs),
// failing on any id seen twice.
func storedEventIDs(t *testing.T, s *chstore.Store) map[string]bool {
	t.Helper()
	return rowSet(t, s, "event", "SELECT concat(id, ' ', identity_id) FROM "+s.Database()+".events FINAL")
}

// findingRevisions reads the findings topic and fails on a finding sent
// twice at one revision: downstream, that would be a duplicate alert.
func findingRevisions(t *testing.T, brokers []string, topic string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	ids := map[string]bool{}
	readAll(t, brokers, topic, func(r *kgo.Record) {
		f, err := schemas.ParseOCSF(r.Value)
		if err != nil {
			t.Fatalf("findings topic: %v", err)
		}
		key := fmt.Sprintf("%s@%d", f.ID, f.Revision)
		if seen[key] {
			t.Errorf("finding %s sent twice at revision %d", f.ID, f.Revision)
		}
		seen[key], ids[f.ID] = true, true
	})
	return ids
}

// TestScaleOutSplitsIdentitiesAcrossARebalance runs the pipeline once on one
// instance and once on two instances in one group, the second joining
// mid-stream (a forced rebalance of both groups), and compares exactly: the
// same stored event ids, the same finding ids in ClickHouse and on the
// findings topic, no finding sent twice at one revision, and both instances
// detecting.
func TestScaleOutSplitsIdentitiesAcrossARebalance(t *testing.T) {
	brokers := startBroker(t)
	const repartition = 4
	createTopics(t, brokers, repartition, "nhi.events.one", "nhi.events.two", "nhi.links.one", "nhi.links.two")
	createTopics(t, brokers, 2, "nhi.findings.one", "nhi.dlq.one", "nhi.findings.two", "nhi.dlq.two")
	recs := makeInput(t)
	half := len(recs) / 2
	produce(t, brokers, recs[:half])
	var inputs []string
	for _, topic := range demoTopics {
		inputs = append(inputs, topic)
	}
	config := func(name string) Config {
		cfg := pipelineConfig(t, brokers, name)
		// pipelineConfig leaves out the detectors that read the built
		// model: a handover rebuilds the baselines mid-stream and the
		// one-instance run does not, so with them on, the two-instance run
		// raises a few more findings (outcome_burst and exfil_volume on
		// attacked identities, judged against a model the reference has
		// not built yet) for that reason alone.
		cfg.Kafka.RepartitionTopic = "nhi.events." + name
		cfg.Kafka.LinksTopic = "nhi.links." + name
		return cfg
	}
	finish := func(cfg Config, ins ...*instance) {
		waitFor(t, "both groups to drain", 2*time.Minute, func() bool {
			return drained(t, brokers, cfg.Kafka.GroupID, inputs...) &&
				drained(t, brokers, cfg.Kafka.GroupID+".detect", cfg.Kafka.RepartitionTopic)
		})
		for _, in := range ins {
			in.end(t)
		}
	}

	// Two instances: b joins once a is consuming, and the second half of
	// the input arrives once b holds partitions, so both detect.
	two := config("two")
	a := startInstance(t, two)
	waitFor(t, "the first instance to consume", time.Minute, func() bool { return a.consumed() > 0 })
	b := startInstance(t, two)
	waitFor(t, "the second instance to be assigned partitions", time.Minute, func() bool { return len(b.svc.owner.list()) > 0 })
	produce(t, brokers, recs[half:])
	finish(two, a, b)

	// The reference: the same input on one instance.
	one := config("one")
	ref := startInstance(t, one)
	finish(one, ref)

	// Every instance resolves every credential, whichever saw its issuance.
	waitFor(t, "both instances to hold every credential link", 20*time.Second, func() bool {
		n := ref.svc.linker.Len()
		return n > 0 && a.svc.linker.Len() == n && b.svc.linker.Len() == n
	})
	for name, in := range map[string]*instance{"a": a, "b": b} {
		if lag := gauge(t, in.svc.reg, "nhi_detect_consumer_lag"); lag != 0 {
			t.Errorf("instance %s: nhi_detect_consumer_lag %v once drained", name, lag)
		}
	}
	if a.detected(t) == 0 || b.detected(t) == 0 {
		t.Errorf("detected events: a %v, b %v; the group must split the identities", a.detected(t), b.detected(t))
	}
	refStore, store := openStore(t, one), openStore(t, two)
	wantEvents, gotEvents := storedEventIDs(t, refStore), storedEventIDs(t, store)
	if !equalSets(wantEvents, gotEvents) {
		t.Errorf("stored events: %d on two instances, %d on one; the sets differ:\n%s", len(gotEvents), len(wantEvents), setDiff(wantEvents, gotEvents))
	}
	wantFindings, gotFindings := findingIDs(t, refStore), findingIDs(t, store)
	if !equalSets(wantFindings, gotFindings) {
		t.Errorf("findings: %d on two instances, %d on one; the sets differ:\n%s", len(gotFindings), len(wantFindings), setDiffDetail(wantFindings, gotFindings, func(id string) string {
			var d, e, idn string
			_ = store.Conn().QueryRow(context.Background(), "SELECT detector, explanation, identity_id FROM "+store.Database()+".findings FINAL WHERE id = ?", id).Scan(&d, &e, &idn)
			return d + " " + idn + " " + e
		}))
	}
	if sent := findingRevisions(t, brokers, two.Kafka.FindingsTopic); !equalSets(sent, gotFindings) {
		t.Errorf("findings topic holds %d finding ids, ClickHouse %d", len(sent), len(gotFindings))
	}
	findingRevisions(t, brokers, one.Kafka.FindingsTopic)
	t.Logf("%d records, %d events, %d findings, %d credential links; detected by a %v, b %v",
		len(recs), len(gotEvents), len(gotFindings), ref.svc.linker.Len(), a.detected(t), b.detected(t))
}

// setDiff lists what only want and only got hold, for a failure message.
func setDiff(want, got map[string]bool) string {
	return setDiffDetail(want, got, nil)
}

func setDiffDetail(want, got map[string]bool, detail func(string) string) string {
	var s string
	for k := range want {
		if !got[k] {
			s += "  missing " + k + "\n"
		}
	}
	for k := range got {
		if !want[k] {
			s += "  extra   " + k + "\n"
			if detail != nil {
				s += "    " + detail(k) + "\n"
			}
		}
	}
	return s
}
