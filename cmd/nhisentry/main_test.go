package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/baseline/chstore/chstoretest"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

func TestMigratePrintSQLNeedsNoServer(t *testing.T) {
	t.Setenv("NHI_CLICKHOUSE_ADDR", "127.0.0.1:1") // nothing listens there
	tests := []struct {
		args          []string
		want, notWant []string
	}{
		{
			args:    []string{"migrate", "--print-sql"},
			want:    []string{"CREATE DATABASE IF NOT EXISTS nhisentry;", "CREATE TABLE IF NOT EXISTS nhisentry.events\n", "CREATE TABLE IF NOT EXISTS nhisentry.findings\n"},
			notWant: []string{"ON CLUSTER", "_local"},
		},
		{
			args: []string{"migrate", "--print-sql", "--cluster", "prod"},
			want: []string{
				"CREATE DATABASE IF NOT EXISTS nhisentry ON CLUSTER prod;",
				"CREATE TABLE IF NOT EXISTS nhisentry.events_local ON CLUSTER prod\n",
				"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/nhisentry/events/0001', '{replica}', ingest_time)",
				"ENGINE = Distributed(prod, nhisentry, events_local, cityHash64(identity_id));",
			},
		},
	}
	for _, tt := range tests {
		var out, errOut bytes.Buffer
		if err := run(tt.args, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s", tt.args, err, errOut.String())
		}
		for _, want := range tt.want {
			if !strings.Contains(out.String(), want) {
				t.Errorf("%v lacks %q", tt.args, want)
			}
		}
		for _, no := range tt.notWant {
			if strings.Contains(out.String(), no) {
				t.Errorf("%v has %q", tt.args, no)
			}
		}
	}
	if err := run([]string{"migrate", "--print-sql", "--cluster", "a;b"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "cluster name") {
		t.Errorf("a bad cluster name: err = %v", err)
	}
}

// TestMigrateOnCluster runs `migrate --cluster` on a private two-shard
// cluster: the first run creates the schema on both servers, the second
// applies nothing.
func TestMigrateOnCluster(t *testing.T) {
	c := chstoretest.StartCluster(t)
	cfg := c.Config(t)
	t.Setenv("NHI_CLICKHOUSE_ADDR", cfg.Addr)
	t.Setenv("NHI_CLICKHOUSE_DATABASE", cfg.Database)
	for _, want := range []string{"7 migration(s) applied", "0 migration(s) applied"} {
		var out, errOut bytes.Buffer
		if err := run([]string{"migrate", "--cluster", chstoretest.ClusterName}, &out, &errOut); err != nil {
			t.Fatalf("%v\n%s", err, errOut.String())
		}
		if want = "database " + cfg.Database + " on cluster " + chstoretest.ClusterName + ": " + want; !strings.Contains(out.String(), want) {
			t.Fatalf("migrate said %q, want %q", out.String(), want)
		}
	}
	// On each server: the seven tables, local and Distributed, and
	// schema_migrations; the cluster's servers are gone after the test.
	for _, shard := range c.Shards {
		cfg.Addr = shard.Addr
		s, err := chstore.Open(context.Background(), cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		q := "SELECT count() FROM system.tables WHERE database = '" + cfg.Database + "' AND (engine LIKE 'Replicated%' OR engine = 'Distributed')"
		if n := chstoretest.Count(t, s, q); n != 15 {
			t.Errorf("server %s has %d Replicated and Distributed tables, want 15", shard.Addr, n)
		}
		s.Close()
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"frobnicate"}, {"run"}} {
		if err := run(args, io.Discard, io.Discard); err == nil {
			t.Errorf("%v: want an error", args)
		}
	}
}

// TestMetricsAndHealth scrapes a running service's endpoints.
func TestMetricsAndHealth(t *testing.T) {
	brokers := startBroker(t)
	cfg := pipelineConfig(t, brokers, "http")
	svc := newTestService(t, cfg)
	defer svc.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := svc.serveHTTP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := svc.run(ctx, func(ingest.Stats) {})
		done <- err
	}()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d", code)
	}
	want := []string{
		"nhi_ingest_consumer_lag", "nhi_ingest_batch_duration_seconds", "nhi_detect_batch_duration_seconds",
		"nhi_engine_replayed_events_total", "go_goroutines", "process_resident_memory_bytes",
		"nhi_baseline_cache_identities", "nhi_baseline_cache_bytes", `nhi_baseline_rebuilds_total{result="ok"} 1`,
		"nhi_baseline_rebuild_duration_seconds_count 1",
	}
	// The consumer registers its metrics when run starts, which races this
	// scrape; poll until it has.
	var missing []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		code, body := get("/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		missing = missing[:0]
		for _, name := range want {
			if !strings.Contains(body, name) {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for _, name := range missing {
		t.Errorf("/metrics lacks %s", name)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not stop after cancel")
	}
}

func TestDecodeCommand(t *testing.T) {
	raw, err := os.ReadFile("testdata/mixed.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write(raw)
	zw.Close()
	dl := filepath.Join(t.TempDir(), "dead.ndjson")
	for _, tc := range []struct {
		name  string
		args  []string
		stdin []byte
	}{
		{"file", []string{"decode", "--dead-letters", dl, "testdata/mixed.ndjson"}, nil},
		{"gzip on stdin", []string{"decode", "--dead-letters", dl, "-"}, zipped.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := decodeCmd(tc.args[1:], bytes.NewReader(tc.stdin), &out, &errOut); err != nil {
				t.Fatal(err)
			}
			var ids []string
			for line := range bytes.Lines(out.Bytes()) {
				var ev schemas.Event
				if err := json.Unmarshal(line, &ev); err != nil {
					t.Fatalf("stdout is not NDJSON events: %v", err)
				}
				ids = append(ids, ev.Source.Format+":"+ev.Identity.ID)
			}
			// two CloudTrail records, one Kong record, one Vault response
			// (its request entry is not an event), one bad line.
			if len(ids) != 4 {
				t.Fatalf("events %v, want 4", ids)
			}
			for _, want := range []string{"cloudtrail", "kong", "vault_audit", "unknown_format=1"} {
				if !strings.Contains(errOut.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, errOut.String())
				}
			}
			b, err := os.ReadFile(dl)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(b), `"raw":"this is not a log record"`) || !strings.Contains(string(b), `"record":6`) {
				t.Errorf("dead letters file: %s", b)
			}
		})
	}
}

func TestMissingTopicsStopTheStart(t *testing.T) {
	brokers := startBroker(t)
	cfg := pipelineConfig(t, brokers, "http")
	cfg.Kafka.FindingsTopic = "nhi.findings.typo"
	cfg.Kafka.Inputs[0].Topic = "nhi.mesh.typo"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := newService(ctx, cfg, quietLog())
	if err == nil {
		t.Fatal("want an error for missing topics")
	}
	for _, want := range []string{`topic "nhi.findings.typo" does not exist`, `topic "nhi.mesh.typo" does not exist`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

// TestReadyOnlyAfterStart: while start connects and loads, /healthz answers
// and /readyz says not ready; after start, ready.
func TestReadyOnlyAfterStart(t *testing.T) {
	brokers := startBroker(t)
	cfg := pipelineConfig(t, brokers, "http")
	svc := newIdleService(cfg, quietLog())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := svc.serveHTTP(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if h, r := status("/healthz"), status("/readyz"); h != http.StatusOK || r != http.StatusServiceUnavailable {
		t.Fatalf("before start: /healthz %d, /readyz %d", h, r)
	}
	if err := svc.start(ctx); err != nil {
		chstoretest.Unavailable(t, err)
	}
	defer svc.close()
	if r := status("/readyz"); r != http.StatusOK {
		t.Fatalf("after start: /readyz %d", r)
	}
}
