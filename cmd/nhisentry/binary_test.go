package main

import (
	"strings"
	"testing"
	"time"
)

// TestRunBinaryDrainsOnSIGTERM runs the real binary as a user would, with a
// configuration file, against the in-process broker and the test ClickHouse;
// it waits until the records are consumed, sends SIGTERM and expects a clean
// exit with every offset committed.
func TestRunBinaryDrainsOnSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	brokers := startBroker(t)
	produce(t, brokers, makeInput(t))
	cfg := pipelineConfig(t, brokers, "binary")
	openStore(t, cfg) // skips (or fails under CI=true) without ClickHouse, before building anything
	cfg.HTTP.Listen = "127.0.0.1:0"
	svc := startChild(t, buildBinary(t), writeConfig(t, cfg))
	waitFor(t, "the records to be consumed", 2*time.Minute, func() bool { return committedAll(t, brokers, cfg.Kafka.GroupID) })
	m := svc.metrics(t)
	if m["nhi_detect_findings_total"] == 0 || m["nhi_ingest_decode_errors_total"] == 0 {
		t.Errorf("metrics after the run lack findings or decode errors: findings %v, decode errors %v",
			m["nhi_detect_findings_total"], m["nhi_ingest_decode_errors_total"])
	}
	svc.stop(t)
	if !strings.Contains(svc.logTail(), "nhisentry stopped") {
		t.Error(`no "nhisentry stopped" log line after SIGTERM`)
	}
}
