//go:build unix

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/internal/peer/chpeer"
)

// chOutage is how long the ClickHouse outage lasts: longer than the
// pipeline's drain timeout (30 s), so a batch that gives up when that
// timeout passes shows as a failure.
const chOutage = 35 * time.Second

// TestFaultClickHouseOutage stops a private ClickHouse under load for
// chOutage and starts it again. The binary must stay up retrying with
// backoff, hold the batch in flight without fetching more (the input
// produced meanwhile waits in Kafka as lag), and once ClickHouse is back
// drain the lag and store exactly the input's events.
func TestFaultClickHouseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a private ClickHouse")
	}
	t.Parallel() // see TestFaultBrokerRestart
	ch := chpeer.Start(t, chpeer.Options{})
	brokers := startBroker(t)
	createTopics(t, brokers, 2, "nhi.findings.chdown", "nhi.dlq.chdown")
	recs := makeInput(t)
	before := len(recs) / 3
	produce(t, brokers, recs[:before])

	cfg := pipelineConfig(t, brokers, "chdown")
	cfg.ClickHouse.Addr = ch.Addr
	cfg.HTTP.Listen = "127.0.0.1:0"
	svc := startChild(t, buildBinary(t), writeConfig(t, cfg))
	waitFor(t, "the first commits", time.Minute, func() bool { return committedRecords(t, brokers, cfg.Kafka.GroupID) > 0 })

	ch.Stop()
	atStop := svc.metrics(t)
	produce(t, brokers, recs[before:]) // the load goes on during the outage
	var maxRSS float64
	for end := time.Now().Add(chOutage); time.Now().Before(end); time.Sleep(time.Second) {
		if err, gone := svc.done.peek(); gone {
			t.Fatalf("nhisentry exited during the outage: %v\n%s", err, svc.logTail())
		}
		maxRSS = max(maxRSS, svc.metrics(t)["process_resident_memory_bytes"])
	}
	during := svc.metrics(t)
	lag := int64(len(recs)) - committedRecords(t, brokers, cfg.Kafka.GroupID)
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}

	// Nothing fetched beyond the batch in flight: the records the outage
	// brought in wait in Kafka, not in memory.
	if fetched := during["nhi_ingest_records_total"] - atStop["nhi_ingest_records_total"]; fetched > float64(cfg.Kafka.BatchSize) {
		t.Errorf("%v records read during the outage; at most one batch (%d) may be in flight", fetched, cfg.Kafka.BatchSize)
	}
	if lag < int64(len(recs)-before) {
		t.Errorf("lag %d at the end of the outage, fewer than the %d records produced during it", lag, len(recs)-before)
	}
	// Retried, with backoff: a few attempts spread over the outage (100 ms
	// doubling to 10 s, with jitter), not a hot loop and not none.
	if retries := during["nhi_engine_write_errors_total"] - atStop["nhi_engine_write_errors_total"]; retries < 3 || retries > 60 {
		t.Errorf("%v failed writes retried during a %s outage; want backoff (3 to 60)", retries, chOutage)
	}

	waitFor(t, "the lag to drain after the restart", 2*time.Minute, func() bool { return committedAll(t, brokers, cfg.Kafka.GroupID) })
	svc.stop(t)
	if !strings.Contains(svc.logTail(), "write failed; retrying") {
		t.Error("no retry logged")
	}

	want := expectFromBroker(t, brokers)
	store := openStore(t, cfg)
	got := map[string]bool{}
	for k := range storedEventIDs(t, store) {
		id, _, _ := strings.Cut(k, " ")
		got[id] = true
	}
	if !equalSets(want.ids, got) {
		t.Errorf("stored %d events, the input holds %d:\n%.3000s", len(got), len(want.ids), setDiff(want.ids, got))
	}
	// Findings are stored before they are sent, so the writes that failed
	// during the outage sent nothing twice and lost nothing.
	stored := findingIDs(t, store)
	if sent := findingRevisions(t, brokers, cfg.Kafka.FindingsTopic); len(stored) == 0 || !equalSets(sent, stored) {
		t.Errorf("the findings topic holds %d finding ids, ClickHouse %d:\n%s", len(sent), len(stored), setDiff(stored, sent))
	}
	t.Logf("%d records, %d during the outage; lag %d at its end; RSS %.0f MiB at the stop, at most %.0f MiB during the outage",
		len(recs), len(recs)-before, lag, atStop["process_resident_memory_bytes"]/(1<<20), maxRSS/(1<<20))
}
