package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"gopkg.in/yaml.v3"

	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/internal/peer/peertest"
)

// alertRules is the rule file the deploy files ship, seen from this package.
var alertRules = filepath.Join("..", "..", "deploy", "prometheus", "alerts.yaml")

// TestPrometheusScrapesTheService runs Debian's Prometheus against a running
// service: it scrapes /metrics, the series arrive under the job label, and
// the shipped alerting rules load and evaluate on them. promtool lints the
// exposition itself.
func TestPrometheusScrapesTheService(t *testing.T) {
	prometheus, promtool := peertest.Binary(t, "prometheus", "deploy/local/peers.sh install"), peertest.Binary(t, "promtool", "deploy/local/peers.sh install")
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
	var records atomic.Int64
	done := make(chan error, 1)
	go func() {
		_, err := svc.run(ctx, func(st ingest.Stats) { records.Store(int64(st.Records)) })
		done <- err
	}()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run after cancel: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop after cancel")
		}
	}()

	// A little traffic, malformed records included, so the labelled
	// counters have series too.
	var recs []*kgo.Record
	_, err = gen.Generate(gen.Config{
		Seed: 5, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC), Duration: time.Hour,
		Workloads: 2, Roles: 2, APIKeys: 2, VaultClients: 2, Malformed: 3,
	}, func(r gen.Record) error {
		recs = append(recs, &kgo.Record{Topic: demoTopics[r.Format], Key: r.Key, Value: r.Value, Timestamp: r.Time})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	produce(t, brokers, recs)
	eventually(t, "the service consumes the records", func() (bool, string) {
		n := records.Load()
		return n >= int64(len(recs)), fmt.Sprintf("%d of %d records", n, len(recs))
	})

	api := startPrometheus(t, prometheus, addr)
	eventually(t, "Prometheus scrapes the service", func() (bool, string) {
		var targets struct {
			ActiveTargets []struct {
				Labels    map[string]string `json:"labels"`
				Health    string            `json:"health"`
				LastError string            `json:"lastError"`
			} `json:"activeTargets"`
		}
		if err := promAPI(api, "targets", nil, &targets); err != nil {
			return false, err.Error()
		}
		for _, tg := range targets.ActiveTargets {
			if tg.Labels["job"] == "nhisentry" && tg.Health == "up" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("targets %+v", targets.ActiveTargets)
	})
	for _, metric := range []string{"nhi_baseline_rebuilds_total", "nhi_ingest_consumer_lag", "nhi_ingest_records_total", "nhi_ingest_decode_errors_total"} {
		eventually(t, metric+" is stored", func() (bool, string) {
			var res struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
				} `json:"result"`
			}
			if err := promAPI(api, "query", url.Values{"query": {metric}}, &res); err != nil {
				return false, err.Error()
			}
			for _, r := range res.Result {
				if r.Metric["job"] == "nhisentry" && r.Metric["instance"] == addr {
					return true, ""
				}
			}
			return false, fmt.Sprintf("result %+v", res.Result)
		})
	}

	// Every group of the rule file loads, and every rule has evaluated
	// without error.
	var file struct {
		Groups []struct {
			Name string `yaml:"name"`
		} `yaml:"groups"`
	}
	b, err := os.ReadFile(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, g := range file.Groups {
		want = append(want, g.Name)
	}
	slices.Sort(want) // the API lists groups by name
	eventually(t, "the alerting rules evaluate", func() (bool, string) {
		var rules struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name      string `json:"name"`
					Health    string `json:"health"`
					State     string `json:"state"`
					LastError string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		}
		if err := promAPI(api, "rules", nil, &rules); err != nil {
			return false, err.Error()
		}
		var got, problems []string
		for _, g := range rules.Groups {
			got = append(got, g.Name)
			for _, r := range g.Rules {
				if r.Health != "ok" || r.State == "firing" {
					problems = append(problems, fmt.Sprintf("%s: health %s, state %s %s", r.Name, r.Health, r.State, r.LastError))
				}
			}
		}
		slices.Sort(got)
		return slices.Equal(got, want) && len(problems) == 0, fmt.Sprintf("groups %v (want %v), %v", got, want, problems)
	})

	// promtool lints names, types and help texts of what is exposed.
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	lint := exec.Command(promtool, "check", "metrics")
	lint.Stdin = bytes.NewReader(body)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// startPrometheus runs a private Prometheus scraping target every second
// with the shipped alerting rules, and returns the base URL of its API. It
// is stopped when the test ends.
func startPrometheus(t *testing.T, binary, target string) string {
	t.Helper()
	dir := t.TempDir()
	rules, err := filepath.Abs(alertRules)
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [%q]
scrape_configs:
  - job_name: nhisentry
    static_configs: [{targets: [%q]}]
`, rules, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// The free port can be taken between closing it and Prometheus binding
	// it: try a few.
	var lastErr error
	for range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listen := l.Addr().String()
		l.Close()
		log := &syncBuffer{}
		cmd := exec.Command(binary, "--config.file="+filepath.Join(dir, "prometheus.yml"),
			"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+listen)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start prometheus: %v", err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			close(exited)
		}()
		stop := func() {
			cmd.Process.Kill()
			<-exited
		}
		if lastErr = waitReady(listen, exited); lastErr == nil {
			t.Cleanup(func() {
				stop()
				if t.Failed() {
					t.Logf("prometheus log:\n%s", log)
				}
			})
			return "http://" + listen + "/api/v1/"
		}
		stop()
		lastErr = fmt.Errorf("%w\n%s", lastErr, log)
	}
	t.Fatalf("prometheus did not start: %v", lastErr)
	return ""
}

// waitReady waits until the Prometheus at listen reports ready, or has
// exited.
func waitReady(listen string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("prometheus on %s exited", listen)
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://" + listen + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("prometheus on %s not ready after 30s", listen)
}

// promAPI calls one endpoint of Prometheus' HTTP API and decodes its data.
func promAPI(base, endpoint string, params url.Values, data any) error {
	resp, err := http.Get(base + endpoint + "?" + params.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		Status string          `json:"status"`
		Error  string          `json:"error"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return fmt.Errorf("%s: %w", endpoint, err)
	}
	if r.Status != "success" {
		return fmt.Errorf("%s: %s: %s", endpoint, r.Status, r.Error)
	}
	return json.Unmarshal(r.Data, data)
}

// eventually polls cond until it holds, failing the test with its last
// explanation after a minute.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after a minute: %s", what, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// syncBuffer collects a child process's output written from its goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.TrimSpace(b.buf.String())
}
