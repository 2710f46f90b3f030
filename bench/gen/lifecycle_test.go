package gen

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
)

// The lifecycle's identities behave as their kinds do, and its churn is
// what baseline's re-learning after a deploy expects: every pod of a
// controller or cron job belongs to the cohort its Deployment's deploys
// name, a controller's action first used after its first day follows a
// deploy of it within the re-learning period, deploys bring new pods, cron
// jobs act only minutes after their scheduled time, agents call tools in
// bursts, and mesh workloads gain routes right after their deploys.
func TestLifecycle(t *testing.T) {
	t.Parallel()
	cfg := with(small, func(c *Config) { c.Platform, c.Lifecycle, c.Duration = true, true, 14*24*time.Hour })
	run := generate(t, cfg)
	evs := decodeRun(t, run)
	relearn := baseline.DefaultClasses().Named(baseline.ClassService).Relearn

	clients := map[string]k8sClient{}
	for _, c := range lifecycleClients() {
		clients["k8s:sa/"+cluster+"/"+c.ns+"/"+c.name] = c
	}
	agents := map[string]bool{}
	for _, r := range run.recs {
		if r.Format == FormatKong && strings.Contains(string(r.Value), `"/api/v1/tools/`) {
			agents[string(r.Key)] = true
		}
	}
	if len(agents) != 5 {
		t.Fatalf("%d agents call tools, want 5", len(agents))
	}

	start := cfg.Start
	if start.IsZero() {
		start = DefaultStart
	}
	deployed := map[string]time.Time{} // cohort → latest deploy
	meshDeploy := map[string]time.Time{}
	known := map[string]bool{} // identity + " " + action or edge
	pods := map[string]map[string]bool{}
	agentCalls := map[string][]time.Time{}
	var added, meshAdded int
	for _, ev := range evs {
		if cohort, ok := baseline.DeployOf(&ev); ok {
			deployed[cohort] = ev.Time.Time
			if w, found := strings.CutPrefix(cohort, "k8s:"); found {
				ns, sa, _ := strings.Cut(w, "/")
				meshDeploy["spiffe://"+trustDomain+"/ns/"+ns+"/sa/"+sa] = ev.Time.Time
			}
			continue
		}
		id := ev.Identity.ID
		switch c, isClient := clients[id]; {
		case isClient:
			cohort := baseline.CohortOf(ev.Identity, ev.Actor.Namespace, ev.Actor.Workload)
			if cohort != "k8s:"+c.ns+"/"+c.name {
				t.Fatalf("%s: pod %s is in cohort %q", id, ev.Actor.Workload, cohort)
			}
			if pods[id] == nil {
				pods[id] = map[string]bool{}
			}
			pods[id][ev.Actor.Workload] = true
			if c.cron != 0 {
				// <cronjob>-<scheduled minute>-<suffix>
				parts := strings.Split(ev.Actor.Workload, "-")
				minute, err := strconv.ParseInt(parts[len(parts)-2], 10, 64)
				if err != nil {
					t.Fatalf("cron pod %s: %v", ev.Actor.Workload, err)
				}
				sched := time.Unix(minute*60, 0)
				if d := ev.Time.Sub(sched); d < 0 || d > 10*time.Minute || sched.Sub(sched.Truncate(c.cron)) != c.cronAt%c.cron {
					t.Errorf("%s acted at %v, %v after its run scheduled at %v", id, ev.Time, d, sched)
				}
				continue
			}
			k := id + " " + ev.Action
			if !known[k] && ev.Time.Sub(start) > 24*time.Hour {
				if at, ok := deployed[cohort]; !ok || ev.Time.Sub(at) > relearn {
					t.Errorf("%s first used %s at %v, not within %v of a deploy (last %v)", id, ev.Action, ev.Time, relearn, at)
				}
				added++
			}
			known[k] = true
		case agents[id]:
			agentCalls[id] = append(agentCalls[id], ev.Time.Time)
		case ev.Source.Format == FormatEnvoy:
			k := id + " " + ev.Target.Peer + " " + ev.Action
			if !known[k] && ev.Time.Sub(start) > 4*24*time.Hour {
				if at, ok := meshDeploy[id]; ok && ev.Time.Sub(at) < 15*time.Minute {
					meshAdded++
				}
			}
			known[k] = true
		}
	}
	t.Logf("%d controller actions and %d mesh routes added after deploys", added, meshAdded)
	if added < 2 || meshAdded < 2 {
		t.Errorf("%d controller actions and %d mesh routes added after deploys in two weeks, want at least 2 each", added, meshAdded)
	}
	for id, c := range clients {
		switch {
		case c.cron == 0 && len(pods[id]) <= 2:
			t.Errorf("controller %s ran in %d pods: no new replicas", id, len(pods[id]))
		case c.cron != 0:
			if want := int(14 * 24 * time.Hour / c.cron); len(pods[id]) != want {
				t.Errorf("cron job %s ran %d times in two weeks, want %d", id, len(pods[id]), want)
			}
		}
	}
	// Sessions: most calls follow the previous one within a minute, and
	// most of the time there is no session.
	for id, ts := range agentCalls {
		slices.SortFunc(ts, time.Time.Compare)
		near, far := 0, 0
		for i := 1; i < len(ts); i++ {
			switch d := ts[i].Sub(ts[i-1]); {
			case d < time.Minute:
				near++
			case d > 30*time.Minute:
				far++
			}
		}
		if near < len(ts)*2/3 || far < 10 {
			t.Errorf("agent %s: %d calls, %d within a minute of the last, %d after a pause of half an hour", id, len(ts), near, far)
		}
	}
}
