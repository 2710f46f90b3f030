package main

// The fault suite of SPEC §10: each test disturbs a running pipeline (a
// killed process, a stopped ClickHouse, a restarted broker, poison input, a
// slow output) and then compares exact sets — stored event ids, finding ids,
// dead letters — with what an undisturbed run or the input itself gives.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/ingest/formats"
	"github.com/nhisentry/nhisentry/ingest/kafkasrc"
	"github.com/nhisentry/nhisentry/internal/peer"
	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response/outputs"
)

// TestFaultKill9MidBatch kills the real binary with SIGKILL while it
// commits a batch it has already stored (the broker holds that commit until
// the process is dead, so the moment is exact, not a race), restarts it on
// the same configuration and compares what it stored and sent with an
// undisturbed run of the same input.
func TestFaultKill9MidBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	t.Parallel() // see TestFaultBrokerRestart
	cluster := startCluster(t)
	brokers := cluster.ListenAddrs()
	createTopics(t, brokers, 2, "nhi.findings.kill", "nhi.dlq.kill")
	produce(t, brokers, makeInput(t))
	total := inputRecords(t, brokers)

	ref := pipelineConfig(t, brokers, "ref")
	runUntil(t, ref, func(s ingest.Stats) bool { return s.Records >= total })

	cfg := pipelineConfig(t, brokers, "kill")
	cfg.Kafka.BatchSize = 200 // many batches: the third commit is well before the end
	openStore(t, cfg)         // skips (or fails under CI=true) without ClickHouse, before building
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfgPath := writeConfig(t, cfg)
	bin := buildBinary(t)

	// The third commit of the group is held until the test has killed the
	// process, then refused, so the batch it covers is stored and not
	// committed: the restart must read it again, invisibly.
	const killAt = 3
	holding, killed := make(chan struct{}), make(chan struct{})
	wake := sync.OnceFunc(func() { close(killed) })
	defer wake() // also on failure, so the held request does not sleep forever
	commits := 0
	cluster.ControlKey(int16(kmsg.OffsetCommit), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if kreq.(*kmsg.OffsetCommitRequest).Group != cfg.Kafka.GroupID {
			return nil, nil, false
		}
		if commits++; commits < killAt {
			return nil, nil, false
		}
		cluster.DropControl()
		close(holding)
		cluster.SleepControl(func() { <-killed })
		return nil, errors.New("the committing process was killed"), true
	})

	first := startChild(t, bin, cfgPath)
	select {
	case <-holding:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no third commit within 2 minutes\n%s", first.logTail())
	}
	first.kill()
	wake()

	store := openStore(t, cfg)
	committed := committedRecords(t, brokers, cfg.Kafka.GroupID)
	if committed == 0 || uint64(committed) >= total {
		t.Fatalf("at the kill %d of %d records were committed; want some, not all", committed, total)
	}
	// Events stored at offsets the group has not committed: the batch the
	// killed process stored and could not commit.
	uncommitted := uncommittedStored(t, store, brokers, cfg.Kafka.GroupID)
	if uncommitted == 0 {
		t.Fatal("no event stored beyond the committed offsets: the kill came before the batch was stored")
	}

	second := startChild(t, bin, cfgPath)
	waitFor(t, "the restarted process to commit every record", 2*time.Minute, func() bool {
		return committedAll(t, brokers, cfg.Kafka.GroupID)
	})
	second.stop(t)
	t.Logf("killed with %d of %d records committed and %d events of the held batch stored", committed, total, uncommitted)

	assertSameRun(t, brokers, openStore(t, ref), cfg, store)
}

// uncommittedStored counts the events store holds from input offsets at or
// past group's committed offsets.
func uncommittedStored(t *testing.T, s *chstore.Store, brokers []string, group string) uint64 {
	t.Helper()
	adm, ctx := admin(t, brokers)
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var topics []string
	for _, topic := range demoTopics {
		topics = append(topics, topic)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	ends.Each(func(o kadm.ListedOffset) {
		from := int64(0)
		if c, ok := committed.Lookup(o.Topic, o.Partition); ok && c.At > 0 {
			from = c.At
		}
		n += chstoretest.Count(t, s, fmt.Sprintf("SELECT count() FROM %s.events FINAL WHERE topic = '%s' AND partition = %d AND offset >= %d",
			s.Database(), o.Topic, o.Partition, from))
	})
	return n
}

// assertSameRun compares a disturbed run (cfg, store) with the undisturbed
// reference: the same stored event ids and finding ids, each once as
// readers see them, and a findings topic carrying exactly the stored
// findings with none sent twice at one revision (a replayed finding is
// sent again only as its next revision, which consumers merge).
func assertSameRun(t *testing.T, brokers []string, refStore *chstore.Store, cfg Config, store *chstore.Store) {
	t.Helper()
	wantEvents, gotEvents := storedEventIDs(t, refStore), storedEventIDs(t, store)
	if len(wantEvents) == 0 || !equalSets(wantEvents, gotEvents) {
		t.Errorf("stored events: %d, undisturbed %d; the sets differ:\n%.3000s", len(gotEvents), len(wantEvents), setDiff(wantEvents, gotEvents))
	}
	var rows, ids uint64
	if err := store.Conn().QueryRow(context.Background(), "SELECT count(), uniqExact(id) FROM "+store.Database()+".events FINAL").Scan(&rows, &ids); err != nil {
		t.Fatal(err)
	}
	if rows != ids {
		t.Errorf("readers see %d event rows for %d ids", rows, ids)
	}
	wantFindings, gotFindings := findingIDs(t, refStore), findingIDs(t, store)
	if len(wantFindings) == 0 || !equalSets(wantFindings, gotFindings) {
		t.Errorf("findings: %d, undisturbed %d; the sets differ:\n%s", len(gotFindings), len(wantFindings), setDiff(wantFindings, gotFindings))
	}
	if sent := findingRevisions(t, brokers, cfg.Kafka.FindingsTopic); !equalSets(sent, gotFindings) {
		t.Errorf("the findings topic holds %d finding ids, ClickHouse %d:\n%s", len(sent), len(gotFindings), setDiff(gotFindings, sent))
	}
	t.Logf("%d events and %d findings, equal to the undisturbed run", len(gotEvents), len(gotFindings))
}

// TestFaultPoisonRecordsKeepThePartitionMoving interleaves poison records
// of every kind with good ones on one partition: each poison record is
// dead-lettered byte for byte with its reason, and every good record
// before and after it is stored — the exact set of event ids its decoder
// gives — with the partition committed to its end.
func TestFaultPoisonRecordsKeepThePartitionMoving(t *testing.T) {
	brokers := startBroker(t)
	createTopics(t, brokers, 2, "nhi.findings.poison", "nhi.dlq.poison")
	topic := demoTopics[gen.FormatEnvoy]
	var good [][]byte
	_, err := gen.Generate(gen.Config{
		Seed: 11, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Duration: 3 * 24 * time.Hour, Workloads: 8,
	}, func(r gen.Record) error {
		if r.Format == gen.FormatEnvoy && len(good) < 240 {
			good = append(good, r.Value)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	_, _ = zw.Write(good[0])
	_ = zw.Close()
	poison := []struct {
		value  []byte
		reason string
	}{
		{append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), testMaxRecordBytes)...), ingest.ReasonTooLarge},
		{[]byte(`{"start_time":"2026-11-02T00:00:00Z","method":`), ingest.ReasonInvalidJSON},
		{[]byte("{\"authority\":\"\xff\xfe\"}"), ingest.ReasonInvalidUTF8},
		{[]byte(strings.Repeat(`{"a":`, 100) + "1" + strings.Repeat("}", 100)), ingest.ReasonTooDeep},
		{gz.Bytes()[:len(gz.Bytes())/2], ingest.ReasonCompression},
		{[]byte(`{}`), ingest.ReasonMissingField},
		{[]byte(`"a string"`), ingest.ReasonNotAnEvent},
	}
	// Good records first and last, a poison record after every 10 good ones.
	var recs []*kgo.Record
	wantDead := map[int64]int{} // offset → index in poison
	for i, v := range good {
		if i > 0 && i%10 == 0 {
			wantDead[int64(len(recs))] = len(wantDead) % len(poison)
			recs = append(recs, &kgo.Record{Topic: topic, Value: poison[wantDead[int64(len(recs))]].value})
		}
		recs = append(recs, &kgo.Record{Topic: topic, Value: v})
	}
	produce(t, brokers, recs, kgo.RecordPartitioner(kgo.ManualPartitioner()))

	dec, err := formats.ByName(gen.FormatEnvoy)
	if err != nil {
		t.Fatal(err)
	}
	wantEvents := map[string]bool{}
	for off, r := range recs {
		if _, dead := wantDead[int64(off)]; dead {
			continue
		}
		evs, err := dec.Decode(nil, ingest.Record{Topic: topic, Offset: int64(off), Value: r.Value})
		if err != nil || len(evs) == 0 {
			t.Fatalf("good record at offset %d: %d events, %v", off, len(evs), err)
		}
		for _, ev := range evs {
			wantEvents[ev.ID] = true
		}
	}

	cfg := pipelineConfig(t, brokers, "poison")
	runUntil(t, cfg, func(s ingest.Stats) bool { return s.Records >= uint64(len(recs)) })
	if !committedAll(t, brokers, cfg.Kafka.GroupID) {
		t.Error("the partition is not committed to its end")
	}
	store := openStore(t, cfg)
	gotEvents := map[string]bool{}
	for k := range storedEventIDs(t, store) {
		id, _, _ := strings.Cut(k, " ")
		gotEvents[id] = true
	}
	if !equalSets(wantEvents, gotEvents) {
		t.Errorf("stored %d events, the good records hold %d:\n%.3000s", len(gotEvents), len(wantEvents), setDiff(wantEvents, gotEvents))
	}

	gotDead := map[int64]bool{}
	readAll(t, brokers, cfg.Kafka.DeadLetterTopic, func(r *kgo.Record) {
		h := map[string]string{}
		for _, kv := range r.Headers {
			h[kv.Key] = string(kv.Value)
		}
		off, _ := strconv.ParseInt(h[kafkasrc.HeaderOffset], 10, 64)
		i, ok := wantDead[off]
		if h[kafkasrc.HeaderTopic] != topic || h[kafkasrc.HeaderPartition] != "0" || !ok {
			t.Errorf("dead letter from %s/%s/%s, a good record", h[kafkasrc.HeaderTopic], h[kafkasrc.HeaderPartition], h[kafkasrc.HeaderOffset])
			return
		}
		if gotDead[off] {
			t.Errorf("offset %d dead-lettered twice", off)
		}
		gotDead[off] = true
		if !bytes.Equal(r.Value, poison[i].value) {
			t.Errorf("dead letter at offset %d: bytes differ from the original", off)
		}
		if h[kafkasrc.HeaderReason] != poison[i].reason || h[kafkasrc.HeaderDetail] == "" {
			t.Errorf("dead letter at offset %d: reason %q (%s), want %q", off, h[kafkasrc.HeaderReason], h[kafkasrc.HeaderDetail], poison[i].reason)
		}
	})
	if len(gotDead) != len(wantDead) {
		t.Errorf("dead-lettered %d records, want %d", len(gotDead), len(wantDead))
	}
	t.Logf("%d good records (%d events) and %d poison records on one partition", len(good), len(wantEvents), len(wantDead))
}

// TestFaultBrokerRestart stops the broker (persisting to a folder)
// mid-stream, while the service waits for a commit, and starts a new one on
// the same port and folder a few seconds later. The service must reconnect
// and finish without stopping, and store and send what an undisturbed run
// of the same input does.
func TestFaultBrokerRestart(t *testing.T) {
	// Parallel with the other long fault tests: each mostly waits (a group
	// session to expire, an outage), each on its own broker and database.
	t.Parallel()
	ports, err := peer.FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	persisted := []kfake.Opt{kfake.DataDir(t.TempDir()), kfake.Ports(ports[0])}
	cluster := startCluster(t, persisted...)
	brokers := cluster.ListenAddrs()
	createTopics(t, brokers, 2, "nhi.findings.bounce", "nhi.dlq.bounce")
	recs := makeInput(t)
	half := len(recs) / 2
	produce(t, brokers, recs[:half])

	cfg := pipelineConfig(t, brokers, "bounce")
	// The second commit is never answered: the broker stops while the
	// service waits for it, the hardest moment to lose a connection.
	committing := make(chan struct{})
	commits := 0
	cluster.ControlKey(int16(kmsg.OffsetCommit), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if kreq.(*kmsg.OffsetCommitRequest).Group != cfg.Kafka.GroupID {
			return nil, nil, false
		}
		if commits++; commits < 2 {
			return nil, nil, false
		}
		cluster.DropControl()
		close(committing)
		return nil, nil, true // handled without an answer
	})
	svc := startInstance(t, cfg)
	select {
	case <-committing:
	case <-time.After(time.Minute):
		t.Fatal("no second commit within a minute")
	}
	atStop := committedRecords(t, brokers, cfg.Kafka.GroupID)
	cluster.Close()
	time.Sleep(3 * time.Second) // down long enough for every connection to fail
	startCluster(t, persisted...)
	produce(t, brokers, recs[half:])
	waitFor(t, "the service to commit every record after the restart", 2*time.Minute, func() bool {
		if err, done := svc.done.peek(); done {
			t.Fatalf("the service stopped: %v", err)
		}
		return committedAll(t, brokers, cfg.Kafka.GroupID)
	})
	svc.end(t)
	t.Logf("broker stopped with %d of %d records committed", atStop, len(recs))

	ref := pipelineConfig(t, brokers, "ref")
	runUntil(t, ref, func(s ingest.Stats) bool { return s.Records >= uint64(len(recs)) })
	assertSameRun(t, brokers, openStore(t, ref), cfg, openStore(t, cfg))
}

// TestFaultSlowOutput runs the service with a webhook that holds every
// request until the test lets it answer: detection must wait for it
// (outputs.max_lag engages backpressure), so once the wait begins nothing
// more is consumed, detected or sent — the input waits in Kafka and the
// output's lag stops growing. Once the webhook answers, everything is
// consumed and the webhook has received exactly the stored findings.
func TestFaultSlowOutput(t *testing.T) {
	brokers := startBroker(t)
	createTopics(t, brokers, 2, "nhi.findings.slow", "nhi.dlq.slow")
	produce(t, brokers, makeInput(t))
	total := inputRecords(t, brokers)

	const key = "slow-webhook-key"
	t.Setenv("NHI_TEST_SLOW_WEBHOOK_KEY", key)
	answer := make(chan struct{})
	hook := &idSet{ids: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch struct {
			Findings []struct {
				Info struct {
					UID string `json:"uid"`
				} `json:"finding_info"`
			} `json:"findings"`
		}
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		<-answer
		for _, f := range batch.Findings {
			hook.add(f.Info.UID)
		}
	}))
	defer srv.Close()
	release := sync.OnceFunc(func() { close(answer) })
	defer release() // before srv.Close, which waits for held requests

	cfg := pipelineConfig(t, brokers, "slow")
	const maxLag = 5
	cfg.Outputs.MaxLag = maxLag
	cfg.Outputs.BatchSize = 10
	cfg.Outputs.Webhooks = []outputs.Webhook{{WebhookConfig: outputs.WebhookConfig{
		Name: "slow", Kind: "json", URL: srv.URL, Timeout: time.Minute, Secret: secure.Secret{Env: "NHI_TEST_SLOW_WEBHOOK_KEY"}}}}
	if errs := cfg.validate(); len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	svc := startInstance(t, cfg)
	waitFor(t, "backpressure to engage", time.Minute, func() bool {
		return gauge(t, svc.svc.reg, "nhi_output_backpressure") == 1
	})
	// Detection waits with its batch uncommitted: from now on nothing is
	// consumed and no finding is added to the topic while the webhook holds.
	// Nothing has been delivered, so once measured (every second) the lag
	// is every finding sent.
	held, sent := svc.consumed(), findingsSent(t, brokers, cfg.Kafka.FindingsTopic)
	waitFor(t, "the output lag to count every finding sent", 10*time.Second, func() bool {
		return gauge(t, svc.svc.reg, "nhi_output_lag") == float64(sent)
	})
	lag := gauge(t, svc.svc.reg, "nhi_output_lag")
	time.Sleep(3 * time.Second)
	if now := svc.consumed(); now != held || held >= total {
		t.Errorf("records consumed while detection waited: %d, then %d (of %d)", held, now, total)
	}
	if now := findingsSent(t, brokers, cfg.Kafka.FindingsTopic); now != sent {
		t.Errorf("findings sent while detection waited: %d, then %d", sent, now)
	}
	if now := gauge(t, svc.svc.reg, "nhi_output_lag"); now != lag {
		t.Errorf("output lag moved while detection waited: %v, then %v", lag, now)
	}

	release()
	store := openStore(t, cfg)
	waitFor(t, "everything to be consumed and delivered", 2*time.Minute, func() bool {
		return committedAll(t, brokers, cfg.Kafka.GroupID) && equalSets(hook.snapshot(), findingIDs(t, store))
	})
	svc.end(t)
	t.Logf("%d of %d records consumed and %d findings sent (output lag %v, max_lag %d) while the webhook held; %d findings delivered once it answered",
		held, total, sent, lag, maxLag, len(hook.snapshot()))
}

// findingsSent is how many records the findings topic holds.
func findingsSent(t *testing.T, brokers []string, topic string) int {
	t.Helper()
	n := 0
	readAll(t, brokers, topic, func(*kgo.Record) { n++ })
	return n
}
