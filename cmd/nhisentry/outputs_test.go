package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response/outputs"
)

// idSet is a set of finding ids filled by a receiver goroutine.
type idSet struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (s *idSet) add(id string) { s.mu.Lock(); s.ids[id] = true; s.mu.Unlock() }

func (s *idSet) snapshot() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.ids))
	for k := range s.ids {
		out[k] = true
	}
	return out
}

// TestOutputsDeliverEveryStoredFinding runs the service with a signed
// webhook whose receiver is down for its first requests and a syslog
// receiver, and checks that each receives exactly the set of findings
// stored in ClickHouse.
func TestOutputsDeliverEveryStoredFinding(t *testing.T) {
	brokers := startBroker(t)
	produce(t, brokers, makeInput(t))
	var total uint64
	for _, topic := range demoTopics {
		readAll(t, brokers, topic, func(*kgo.Record) { total++ })
	}

	const key = "webhook-test-key"
	t.Setenv("NHI_TEST_WEBHOOK_KEY", key)
	hook := &idSet{ids: map[string]bool{}}
	var mu sync.Mutex
	refused := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		down := refused < 3
		if down {
			refused++
		}
		mu.Unlock()
		if down {
			http.Error(w, "receiver restarting", http.StatusServiceUnavailable)
			return
		}
		mac := hmac.New(sha256.New, []byte(key))
		mac.Write([]byte(r.Header.Get("X-Nhisentry-Timestamp") + "." + string(body)))
		if r.Header.Get("X-Nhisentry-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
			t.Errorf("webhook: bad signature %q", r.Header.Get("X-Nhisentry-Signature"))
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var batch struct {
			Findings []struct {
				Info struct {
					UID string `json:"uid"`
				} `json:"finding_info"`
			} `json:"findings"`
		}
		if err := json.Unmarshal(body, &batch); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		for _, f := range batch.Findings {
			hook.add(f.Info.UID)
		}
	}))
	defer srv.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	syslogIDs := &idSet{ids: map[string]bool{}}
	sdID := regexp.MustCompile(`\[nhi@32473 id="([^"]+)"`)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				sc.Buffer(make([]byte, 1<<20), 1<<20)
				for sc.Scan() {
					if m := sdID.FindStringSubmatch(sc.Text()); m != nil {
						syslogIDs.add(m[1])
					}
				}
			}()
		}
	}()

	cfg := pipelineConfig(t, brokers, "outputs")
	cfg.Outputs.Webhooks = []outputs.Webhook{{WebhookConfig: outputs.WebhookConfig{
		Name: "soar", Kind: "json", URL: srv.URL, Secret: secure.Secret{Env: "NHI_TEST_WEBHOOK_KEY"}}}}
	cfg.Outputs.Syslog = []outputs.Syslog{{SyslogConfig: outputs.SyslogConfig{Name: "siem", Address: ln.Addr().String(), Framing: "lf"}}}
	if errs := cfg.validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	bg := runInBackground(t, cfg, total)
	stored := findingIDs(t, openStore(t, cfg))
	if len(stored) == 0 {
		t.Fatal("no findings stored")
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if equalSets(hook.snapshot(), stored) && equalSets(syslogIDs.snapshot(), stored) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored %d findings; the webhook got %d, syslog %d", len(stored), len(hook.snapshot()), len(syslogIDs.snapshot()))
		}
	}
	mu.Lock()
	if refused != 3 {
		t.Errorf("the webhook receiver refused %d requests, want 3", refused)
	}
	mu.Unlock()
	t.Logf("%d findings stored, each delivered to the webhook (after 3 refused requests) and to syslog", len(stored))
	bg.stop(t)
}

// background is a service running in a goroutine.
type background struct {
	ctx    context.Context
	cancel context.CancelFunc
	done   chan error
}

// runInBackground starts a service on cfg and returns once it has
// consumed total records; stop ends it and checks it ended cleanly.
func runInBackground(t *testing.T, cfg Config, total uint64) *background {
	t.Helper()
	svc := newTestService(t, cfg)
	t.Cleanup(svc.close)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	bg := &background{ctx: ctx, cancel: cancel, done: make(chan error, 1)}
	consumed := make(chan struct{})
	go func() {
		var once sync.Once
		_, err := svc.run(ctx, func(s ingest.Stats) {
			if s.Records >= total {
				once.Do(func() { close(consumed) })
			}
		})
		bg.done <- err
	}()
	select {
	case <-consumed:
	case err := <-bg.done:
		t.Fatalf("run ended early: %v", err)
	case <-ctx.Done():
		t.Fatal("the service did not consume its input in time")
	}
	return bg
}

func (bg *background) stop(t *testing.T) {
	t.Helper()
	bg.cancel()
	if err := <-bg.done; err != nil {
		t.Fatal(err)
	}
}
