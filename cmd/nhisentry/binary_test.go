package main

import (
	"bufio"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
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
	dir := t.TempDir()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "nhisentry.yaml")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "nhisentry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "run", "--config", cfgPath)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := make(chan string, 1024)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case logs <- sc.Text():
			default: // the test reads what it needs; never block the child
			}
		}
		close(logs)
	}()
	var httpAddr string
	deadline := time.After(2 * time.Minute)
	for httpAddr == "" {
		select {
		case line, ok := <-logs:
			if !ok {
				t.Fatalf("nhisentry exited before it was running: %v", cmd.Wait())
			}
			if strings.Contains(line, "nhisentry running") {
				_, rest, _ := strings.Cut(line, "http=")
				httpAddr, _, _ = strings.Cut(rest, " ")
			}
		case <-deadline:
			t.Fatal("nhisentry did not start")
		}
	}
	for !committedAll(t, brokers, cfg.Kafka.GroupID) {
		select {
		case <-deadline:
			cmd.Process.Kill()
			var tail []string
			for line := range logs {
				tail = append(tail, line)
			}
			t.Fatalf("records were not consumed in time; log:\n%s", strings.Join(tail, "\n"))
		case <-time.After(200 * time.Millisecond):
		}
	}
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = bufio.NewReader(resp.Body).WriteTo(body)
	resp.Body.Close()
	if !strings.Contains(body.String(), "nhi_detect_findings_total{") || !strings.Contains(body.String(), `nhi_ingest_decode_errors_total{`) {
		t.Errorf("metrics after the run lack findings or decode errors:\n%.2000s", body.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(45 * time.Second):
		cmd.Process.Kill()
		t.Fatal("nhisentry did not stop within 45 s of SIGTERM")
	}
	var stopped bool
	for line := range logs {
		stopped = stopped || strings.Contains(line, "nhisentry stopped")
	}
	if !stopped {
		t.Error(`no "nhisentry stopped" log line after SIGTERM`)
	}
}
