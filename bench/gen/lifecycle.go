package gen

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// The lifecycle (Config.Lifecycle): identity kinds beyond the four
// application populations, and the churn of a running platform.
//
//   - Controllers: Kubernetes service accounts of a Deployment that list,
//     watch, get and patch resources all day, at a flat rate (Kubernetes
//     audit, with the pod's bound-token extras).
//   - Cron jobs: a CronJob's service account acting only on its schedule,
//     nightly or hourly, each run from a Job pod of its own (Kubernetes
//     audit). The CloudTrail population already has hourly and nightly
//     roles.
//   - AI agents: Kong API keys calling tool endpoints of an agent-tools
//     service in sessions: bursts of calls seconds apart, sessions a few
//     an hour in business hours.
//   - Churn: Argo CD deploys each controller on two or three weekdays; the
//     new pods have new names (and sometimes one replica more), and the
//     first deploys each add an action to the controller's repertoire
//     within minutes, inside the re-learning period that a deploy of its
//     workload starts. One platform deploy of a mesh workload in five
//     adds a route of a peer it already calls.
//
// All of it comes from a stream of its own and adds identities whose
// normal-traffic rate is zero (hour skips them), so the other records are
// those of the same run without it. Credential rotation and issuance on
// schedule are not here: Vault clients log in again when their token's TTL
// ends and renew it in between, SPIRE rotates every SVID at half its TTL and
// cert-manager renews certificates, all in the base run and the platform.

const (
	lifecycleStream = 0x6c6966656379636c // "lifecycl"
	// kK8sClient is a Kubernetes audit record of a lifecycle service
	// account, or, in modeDeploy, of Argo CD deploying a controller.
	kK8sClient = kCT + 1
	modeDeploy = 1
	// meshChurnShare is the share of a workload's calls that go to the
	// route a deploy added.
	meshChurnShare = 0.08
)

// k8sClient is a controller or a cron job: a service account named like
// the Deployment or CronJob whose pods use it.
type k8sClient struct {
	ns, name, ua string
	key          []byte
	uid          string
	calls        []k8sCall // repertoire; the first base from the start, one more after each of the first deploys
	base         int
	weight       []float64     // per call
	subnet       [3]byte       // its pods' addresses
	rate         float64       // controller: requests an hour
	cron         time.Duration // cron job: time between scheduled runs; 0 for a controller
	cronAt       time.Duration // cron job: scheduled run within each period
	deploys      []int64       // controller: deploy times, ascending
	replicas     []int         // controller: replicas of each generation (deploys+1)
	seed         uint64
}

func (c *k8sClient) user() string { return "system:serviceaccount:" + c.ns + ":" + c.name }

// call is shorthand for a k8sCall.
func call(verb, group, resource, sub, ns, name string) k8sCall {
	return k8sCall{verb: verb, group: group, resource: resource, sub: sub, ns: ns, name: name}
}

// lifecycleClients are the controllers and cron jobs; the calls after base
// are added by deploys.
func lifecycleClients() []k8sClient {
	return []k8sClient{
		{ns: "external-secrets", name: "external-secrets", ua: "external-secrets/v0.9.19 (linux/amd64) kubernetes/$Format", rate: 12, base: 5,
			calls: []k8sCall{
				call("list", "external-secrets.io", "externalsecrets", "", "", ""),
				call("watch", "external-secrets.io", "externalsecrets", "", "", ""),
				call("get", "", "secrets", "", "payments", "payments-db"),
				call("update", "", "secrets", "", "payments", "payments-db"),
				call("patch", "external-secrets.io", "externalsecrets", "status", "payments", "payments-db"),
				call("create", "", "events", "", "payments", ""),
				call("list", "external-secrets.io", "clustersecretstores", "", "", ""),
			},
			weight: []float64{2, 2, 6, 1, 3, 0.5, 0.5}},
		{ns: "keda", name: "keda-operator", ua: "keda/v2.14.0 (linux/amd64) kubernetes/$Format", rate: 20, base: 5,
			calls: []k8sCall{
				call("list", "keda.sh", "scaledobjects", "", "", ""),
				call("watch", "keda.sh", "scaledobjects", "", "", ""),
				call("get", "apps", "deployments", "", "orders", "worker"),
				call("update", "autoscaling", "horizontalpodautoscalers", "", "orders", "keda-hpa-worker"),
				call("update", "coordination.k8s.io", "leases", "", "keda", "operator.keda.sh"),
				call("list", "keda.sh", "scaledjobs", "", "", ""),
				call("patch", "keda.sh", "scaledobjects", "status", "orders", "worker"),
			},
			weight: []float64{1, 1, 5, 2, 8, 1, 2}},
		{ns: "ingress-nginx", name: "ingress-nginx-controller", ua: "nginx-ingress-controller/v1.10.1 (linux/amd64) ingress-nginx/4fb5aac1dd3669daa3a14d9de3e3cdb371b4c518", rate: 8, base: 4,
			calls: []k8sCall{
				call("list", "networking.k8s.io", "ingresses", "", "", ""),
				call("list", "discovery.k8s.io", "endpointslices", "", "", ""),
				call("update", "coordination.k8s.io", "leases", "", "ingress-nginx", "ingress-nginx-leader"),
				call("patch", "networking.k8s.io", "ingresses", "status", "checkout", "checkout"),
				call("list", "networking.k8s.io", "ingressclasses", "", "", ""),
			},
			weight: []float64{1, 2, 6, 1, 1}},
		{ns: "ledger", name: "nightly-db-backup", ua: "backup-runner/1.4.2 (linux/amd64) kubernetes/$Format", cron: 24 * time.Hour, cronAt: 2*time.Hour + 17*time.Minute, base: 4,
			calls: []k8sCall{
				call("get", "", "secrets", "", "ledger", "ledger-db-backup"),
				call("create", "snapshot.storage.k8s.io", "volumesnapshots", "", "ledger", ""),
				call("get", "snapshot.storage.k8s.io", "volumesnapshots", "", "ledger", "ledger-db"),
				call("delete", "snapshot.storage.k8s.io", "volumesnapshots", "", "ledger", "ledger-db"),
			},
			weight: []float64{1, 1, 4, 1}},
		{ns: "reporting", name: "hourly-report-export", ua: "report-export/0.9.0 (linux/amd64) kubernetes/$Format", cron: time.Hour, cronAt: 5 * time.Minute, base: 3,
			calls: []k8sCall{
				call("get", "", "configmaps", "", "reporting", "report-export"),
				call("create", "batch", "jobs", "", "reporting", ""),
				call("create", "", "events", "", "reporting", ""),
			},
			weight: []float64{1, 1, 1}},
	}
}

// agentTools are the tool endpoints the agents call through Kong.
var agentTools = []struct {
	path   string
	method string
	list   bool   // a search with a page query
	sub    string // after an id
}{
	{"/api/v1/tools/search-docs", "GET", true, ""},
	{"/api/v1/tools/crm/customers", "GET", false, ""},
	{"/api/v1/tools/tickets", "POST", false, ""},
	{"/api/v1/tools/tickets", "GET", false, "comments"},
	{"/api/v1/tools/email", "POST", false, ""},
	{"/api/v1/tools/calendar", "GET", true, ""},
	{"/api/v1/tools/orders", "GET", false, ""},
	{"/api/v1/tools/sql-readonly", "POST", false, ""},
}

// agent is an AI agent's key (an index into population.keys) and the
// shape of its sessions.
type agent struct {
	key      int
	sessions float64 // an hour, at the business profile's mean
	calls    float64 // median calls a session
}

type lifecycle struct {
	clients []k8sClient
	agents  []agent
}

// buildLifecycle adds the lifecycle's identities, from its own stream.
func (g *generator) buildLifecycle(r *rand.Rand) *lifecycle {
	lc := &lifecycle{clients: lifecycleClients()}
	for i := range lc.clients {
		c := &lc.clients[i]
		c.key = []byte("k8s:sa/" + cluster + "/" + c.ns + "/" + c.name)
		c.uid = randUUID(r)
		c.subnet = [3]byte{10, 244, byte(200 + i)}
		c.seed = r.Uint64()
		if c.cron != 0 {
			continue
		}
		c.replicas = []int{2}
		for d := g.start - g.start%int64(24*time.Hour); d < g.end; d += int64(24 * time.Hour) {
			if hourOfWeek(d)/24 >= 5 || r.IntN(4) != 0 {
				continue
			}
			if t := d + 10*int64(time.Hour) + r.Int64N(6*int64(time.Hour)); t >= g.start && t < g.end {
				c.deploys = append(c.deploys, t)
				c.replicas = append(c.replicas, 2+r.IntN(2))
			}
		}
	}
	p := g.pop
	svc := len(p.services)
	created := int64(1735689600) // 2025-01-01
	p.services = append(p.services, kongService{name: "agent-tools", id: randUUID(r), host: "agent-tools.ai-platform.svc.cluster.local", port: 8080, created: created})
	routes := len(p.kroutes)
	for x, tl := range agentTools {
		p.kroutes = append(p.kroutes, kongRoute{name: "agent-tools-" + strconv.Itoa(x), id: randUUID(r), path: tl.path, service: svc, created: created + r.Int64N(1e6)})
	}
	for i, name := range []string{"support-agent", "sales-copilot", "ops-agent", "docs-assistant", "finance-agent"} {
		k := apiKey{credID: randUUID(r), consumerID: randUUID(r), username: name, consumerCreated: created + r.Int64N(2e7),
			net: [3]byte{10, 41, byte(i)}, hosts: hostOctets(r, 1+r.IntN(2)), ua: pick(r, []string{"python-httpx/0.27.0", "OpenAI/Python 1.35.3", "langchain-core/0.2.10 python-httpx/0.27.0"})}
		k.id = "apikey:kong:" + k.credID
		k.key = []byte(k.id)
		var w []float64
		for _, x := range r.Perm(len(agentTools))[:3+r.IntN(4)] {
			tl := agentTools[x]
			u := keyRoute{route: routes + x, method: tl.method, list: tl.list, sub: tl.sub, statusCode: 200,
				resp: 300 + 8000*r.Float64(), latency: 40 + 800*r.Float64()}
			if tl.method == "POST" {
				u.statusCode, u.req = 201, 400+3000*r.Float64()
			}
			k.uses = append(k.uses, u)
			w = append(w, lognormal(r, 1))
		}
		k.cum = cumulative(w)
		p.keys = append(p.keys, k) // rate 0: only its sessions call
		lc.agents = append(lc.agents, agent{key: len(p.keys) - 1, sessions: 0.2 + 0.6*r.Float64(), calls: 4 + 8*r.Float64()})
	}
	return lc
}

// lifecycleEvents schedules the lifecycle's records.
func (g *generator) lifecycleEvents() []event {
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), lifecycleStream))
	lc := g.buildLifecycle(r)
	g.life = lc
	var evs []event
	for i := range lc.clients {
		c := &lc.clients[i]
		if c.cron != 0 {
			evs = g.cronRuns(r, evs, i)
		} else {
			evs = g.controllerCalls(r, evs, i)
		}
	}
	for _, a := range lc.agents {
		evs = g.agentSessions(r, evs, a)
	}
	return g.meshChurn(r, evs)
}

// clientEvent is a request of lifecycle client i with call ci of its
// repertoire, by replica rep of generation gen (for a cron job, gen is the
// scheduled run's start in minutes).
func (g *generator) clientEvent(r *rand.Rand, i int, t int64, ci, gen, rep int) event {
	ev := g.newEvent(kK8sClient, t, r)
	ev.id, ev.a, ev.b, ev.c = int32(i), int32(ci), int32(gen), int64(rep)
	return ev
}

// controllerCalls: requests all day at a flat rate; each deploy (an Argo CD
// patch of its Deployment) starts a generation of pods, and the k-th adds
// the call base+k, first made minutes after it.
func (g *generator) controllerCalls(r *rand.Rand, evs []event, i int) []event {
	c := &g.life.clients[i]
	gen := 0
	for hs := g.start; hs < g.end; hs += int64(time.Hour) {
		n := poisson(r, c.rate)
		times := make([]int64, 0, n)
		for range n {
			times = append(times, hs+r.Int64N(int64(time.Hour)))
		}
		slices.Sort(times)
		for _, t := range times {
			if t >= g.end {
				break
			}
			for gen < len(c.deploys) && c.deploys[gen] <= t {
				gen++
			}
			known := min(c.base+gen, len(c.calls))
			ci := pickCum(r, cumulative(c.weight[:known]))
			evs = append(evs, g.clientEvent(r, i, t, ci, gen, r.IntN(c.replicas[gen])))
		}
	}
	for k, t := range c.deploys {
		ev := g.newEvent(kK8sClient, t, r)
		ev.id, ev.mode = int32(i), modeDeploy
		evs = append(evs, ev)
		if ci := c.base + k; ci < len(c.calls) {
			first := t + int64(2*time.Minute) + r.Int64N(int64(8*time.Minute))
			evs = append(evs, g.clientEvent(r, i, min(first, g.end-1), ci, k+1, r.IntN(c.replicas[k+1])))
		}
	}
	return evs
}

// cronRuns: a Job pod at each scheduled time makes the job's calls in order
// within a few minutes, the last one (the job's main work) a few times.
func (g *generator) cronRuns(r *rand.Rand, evs []event, i int) []event {
	c := &g.life.clients[i]
	period := int64(c.cron)
	for at := g.start - g.start%period + int64(c.cronAt); at < g.end; at += period {
		if at < g.start {
			continue
		}
		t := at + int64(5*time.Second) + r.Int64N(int64(20*time.Second)) // the pod starting
		minute := int(at / int64(time.Minute))
		for ci := range c.base {
			for range 1 + poisson(r, c.weight[ci]-1) {
				t += int64(time.Second) + r.Int64N(int64(40*time.Second))
				if t < g.end {
					evs = append(evs, g.clientEvent(r, i, t, ci, minute, 0))
				}
			}
		}
	}
	return evs
}

// agentSessions: sessions arrive at random in the business profile; each is
// a burst of tool calls, a model's think time apart.
func (g *generator) agentSessions(r *rand.Rand, evs []event, a agent) []event {
	k := &g.pop.keys[a.key]
	for hs := g.start; hs < g.end; hs += int64(time.Hour) {
		for range poisson(r, a.sessions*g.season(profBusiness, hs+int64(30*time.Minute), 0)) {
			t := hs + r.Int64N(int64(time.Hour))
			for range max(2, int(a.calls*lognormal(r, 0.7))) {
				if t >= g.end {
					break
				}
				ev := g.newEvent(kKong, t, r)
				ev.id, ev.a = int32(a.key), int32(pickCum(r, k.cum))
				if r.Float64() < 0.01 {
					ev.out = outRateLimited
				}
				evs = append(evs, ev)
				t += int64(500*time.Millisecond) + int64(float64(3*time.Second)*lognormal(r, 1))
			}
		}
	}
	return evs
}

// meshChurn: after one platform deploy of a workload in five, it also calls
// a route of one of its peers that it did not call before, from minutes
// after the deploy to the end of the run.
func (g *generator) meshChurn(r *rand.Rand, evs []event) []event {
	p := g.pop
	for i, deploys := range g.plat.deploys {
		w := &p.workloads[i]
		for _, t := range deploys {
			if len(w.edges) == 0 || r.IntN(5) != 0 {
				continue
			}
			e := &w.edges[r.IntN(len(w.edges))]
			var fresh []int
			for ri := range p.workloads[e.peer].routes {
				if !slices.Contains(e.routes, ri) {
					fresh = append(fresh, ri)
				}
			}
			if len(fresh) == 0 {
				continue
			}
			route := pick(r, fresh)
			from := t + int64(2*time.Minute) + r.Int64N(int64(10*time.Minute))
			hours := float64(g.end-from) / float64(time.Hour)
			n := 1 + poisson(r, w.rate*meshChurnShare*hours)
			for j := range n {
				at := from // the first call right after the deploy
				if j > 0 {
					at += r.Int64N(g.end - from)
				}
				if at >= g.end {
					break
				}
				ev := g.newEvent(kMesh, at, r)
				ev.id, ev.a, ev.b = int32(i), int32(e.peer), int32(route)
				evs = append(evs, ev)
			}
		}
	}
	return evs
}

// podName is the name of replica rep of a controller's generation gen
// (a ReplicaSet's pod: <deployment>-<pod-template-hash>-<5 chars>), or of
// a cron job's run scheduled at minute gen (a Job's pod:
// <cronjob>-<scheduled minute>-<5 chars>).
func (c *k8sClient) podName(gen, rep int) string {
	const hashChars, suffixChars = "bcdf456789", "bcdfghjklmnpqrstvwxz2456789"
	x := mix(c.seed ^ uint64(gen)<<8 ^ uint64(rep))
	b := []byte(c.name + "-")
	if c.cron != 0 {
		b = strconv.AppendInt(b, int64(gen), 10)
	} else {
		h := mix(c.seed + uint64(gen))
		for range 10 {
			b = append(b, hashChars[h%uint64(len(hashChars))])
			h /= uint64(len(hashChars))
		}
	}
	b = append(b, '-')
	for range 5 {
		b = append(b, suffixChars[x%uint64(len(suffixChars))])
		x /= uint64(len(suffixChars))
	}
	return string(b)
}

func (rr *renderer) lifecycleKey(ev *event) []byte {
	if ev.mode == modeDeploy {
		return []byte(DeployerIdentity)
	}
	return rr.g.life.clients[ev.id].key
}

// k8sClient writes a lifecycle client's request, or Argo CD deploying a
// controller.
func (rr *renderer) k8sClient(w *jw, ev *event) {
	c := &rr.g.life.clients[ev.id]
	if ev.mode == modeDeploy {
		rr.argoPatch(w, ev, c.ns, c.name)
		return
	}
	r := rr.r
	cl := c.calls[ev.a]
	gen, rep := int(ev.b), int(ev.c)
	uri := "/api/v1/"
	if cl.group != "" {
		uri = "/apis/" + cl.group + "/v1/"
	}
	if cl.ns != "" {
		uri += "namespaces/" + cl.ns + "/"
	}
	uri += cl.resource
	if cl.name != "" {
		uri += "/" + cl.name
	}
	if cl.sub != "" {
		uri += "/" + cl.sub
	}
	switch cl.verb {
	case "list":
		uri += "?limit=500&resourceVersion=0"
	case "watch":
		uri += "?allowWatchBookmarks=true&watch=true&timeoutSeconds=" + strconv.Itoa(300+r.IntN(300))
	}
	a := auditEntry{
		auditID: randUUID(r),
		verb:    cl.verb,
		uri:     uri,
		user:    c.user(),
		userUID: c.uid,
		groupNS: c.ns,
		pod:     c.podName(gen, rep),
		node:    "ip-10-0-" + strconv.Itoa(32+int(mix(c.seed+uint64(gen*4+rep))%numNodes)) + "-17.ec2.internal",
		// The kubelet refreshes a pod's bound token about hourly.
		credentialID: uuidString(mix(c.seed^uint64(gen)), mix(uint64(ev.t/int64(time.Hour))^uint64(rep))),
		sourceIP:     ipString(c.subnet, byte(10+int(mix(c.seed+uint64(gen)<<4+uint64(rep))%200))),
		userAgent:    c.ua,
		call:         cl,
		code:         200,
		recv:         time.Duration(1+r.IntN(40)) * time.Millisecond,
		reason:       `RBAC: allowed by ClusterRoleBinding "` + c.name + `" of ClusterRole "` + c.name + `" to ServiceAccount "` + c.name + "/" + c.ns + `"`,
	}
	if cl.verb == "create" {
		a.code = 201
	}
	a.write(w, ev.t)
}
