package main

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/nhisentry/nhisentry/internal/secure"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/webhook"
)

// TestRespondThroughTheService runs the service with responses in enforce
// through a webhook provider that is down at first: the pipeline consumes
// everything meanwhile, the actions wait queued in the audit trail, and
// once the provider is back every action succeeds exactly once.
func TestRespondThroughTheService(t *testing.T) {
	brokers := startBroker(t)
	produce(t, brokers, makeInput(t))
	var total uint64
	for _, topic := range demoTopics {
		readAll(t, brokers, topic, func(*kgo.Record) { total++ })
	}

	var mu sync.Mutex
	down := true
	got := map[string]int{} // request id → accepted calls
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		got[r.Header.Get("X-Nhisentry-Request")]++
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	t.Setenv("NHI_TEST_SOAR_KEY", "k")

	cfg := pipelineConfig(t, brokers, "respond")
	p := response.DefaultPolicy()
	p.Enabled, p.Mode, p.Topic = true, response.ModeEnforce, "nhi.responses"
	p.MinSeverity, p.MinScore = "medium", 0
	p.Retry = response.Retry{MaxAttempts: 50, First: 200 * time.Millisecond, Max: time.Second}
	p.Budgets.BlastRadius, p.Budgets.PerProvider = 10000, 10000
	p.Rules = []response.Rule{{ID: "tell-the-soar", When: "true",
		Actions: []response.RuleAction{{Action: response.ActionNotify, Provider: "soar"}}}}
	cfg.Respond = RespondConfig{Policy: p}
	cfg.Respond.Providers.Webhooks = []webhook.Config{{Name: "soar", URL: srv.URL, Secret: secure.Secret{Env: "NHI_TEST_SOAR_KEY"}}}
	if errs := cfg.validate(); len(errs) > 0 {
		t.Fatal(errs)
	}
	// Returns once everything is consumed: the outage does not hold the
	// pipeline back.
	bg := runInBackground(t, cfg, total)
	ctx := bg.ctx
	store := openStore(t, cfg)
	list := func() []response.Record {
		recs, err := store.LoadAudit(ctx, response.AuditQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var out []response.Record
		for _, r := range recs {
			if r.ID != response.BreakerID {
				out = append(out, r)
			}
		}
		return out
	}
	var queued int
	for deadline := time.Now().Add(time.Minute); queued == 0; time.Sleep(100 * time.Millisecond) {
		for _, r := range list() {
			if r.Status == response.StatusQueued {
				queued++
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no action queued while the provider is down: %+v", list())
		}
	}
	mu.Lock()
	down = false
	mu.Unlock()
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		recs := list()
		succeeded := 0
		for _, r := range recs {
			if r.Status == response.StatusSucceeded {
				succeeded++
			}
		}
		if len(recs) > 0 && succeeded == len(recs) {
			mu.Lock()
			for _, r := range recs {
				if got[r.ID] != 1 {
					t.Errorf("action %s reached the provider %d times once it was up", r.ID, got[r.ID])
				}
			}
			if len(got) != len(recs) {
				t.Errorf("the provider accepted %d actions, the trail has %d", len(got), len(recs))
			}
			mu.Unlock()
			t.Logf("%d actions, %d queued during the outage, all succeeded once the provider was back", len(recs), queued)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d actions succeeded", succeeded, len(recs))
		}
	}
	bg.stop(t)
}
