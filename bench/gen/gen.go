package gen

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"time"
)

// Topics/formats the generator writes. The values are the ingest decoders'
// format names.
const (
	FormatEnvoy      = "envoy_json"  // Istio/Envoy JSON access log with SPIFFE peer URI SANs
	FormatKong       = "kong"        // Kong file-log/http-log JSON
	FormatCloudTrail = "cloudtrail"  // one CloudTrail record per message
	FormatVault      = "vault_audit" // Vault audit log: a "request" and a "response" entry per request
)

// Formats lists the formats in a fixed order.
var Formats = []string{FormatEnvoy, FormatKong, FormatCloudTrail, FormatVault}

// Scenario names of the injected attacks, as they appear in Label.Scenario.
const (
	ScenarioStolenCredential = "stolen_credential_new_network"
	ScenarioPrivilegeProbing = "privilege_probing"
	ScenarioLateralMovement  = "lateral_movement_new_peers"
	ScenarioAPIKeySpike      = "api_key_volume_spike"
)

// More scenarios, injected only when Config.Scenarios names them.
const (
	ScenarioClonedCredential = "cloned_credential_two_places"
	ScenarioExfiltration     = "exfiltration"
	ScenarioDormant          = "dormant_reactivated"
	ScenarioRevokedToken     = "token_used_after_revocation"
	ScenarioLongTTLBurst     = "long_ttl_token_issuance_burst"
	ScenarioCIRoleIAM        = "ci_role_iam_outside_pipeline"
	ScenarioShadowCert       = "shadow_certificate_unsanctioned_ca"
)

// Scenarios lists the scenarios Generate injects when Config.Attacks is set
// and Config.Scenarios is nil.
var Scenarios = []string{ScenarioStolenCredential, ScenarioPrivilegeProbing, ScenarioLateralMovement, ScenarioAPIKeySpike}

// AllScenarios lists every scenario Generate can inject, in the order their
// labels are returned.
var AllScenarios = []string{
	ScenarioStolenCredential, ScenarioPrivilegeProbing, ScenarioLateralMovement, ScenarioAPIKeySpike,
	ScenarioClonedCredential, ScenarioExfiltration, ScenarioDormant, ScenarioRevokedToken,
	ScenarioLongTTLBurst, ScenarioCIRoleIAM, ScenarioShadowCert,
}

// Defaults used for the zero values of Config.
const (
	DefaultWorkloads             = 120
	DefaultRoles                 = 60
	DefaultAPIKeys               = 60
	DefaultVaultClients          = 40
	DefaultEventsPerIdentityHour = 1.5
	DefaultDuration              = 7 * 24 * time.Hour
)

// DefaultStart is the simulated start used when Config.Start is zero: a
// Monday, midnight UTC.
var DefaultStart = time.Date(2025, time.March, 3, 0, 0, 0, 0, time.UTC)

// Config describes one generated run. Zero values take the defaults above.
type Config struct {
	Seed     int64
	Start    time.Time     // simulated start (converted to UTC)
	Duration time.Duration // e.g. 7*24h
	// Population; zero takes the default (120, 60, 60, 40).
	Workloads, Roles, APIKeys, VaultClients int
	// EventsPerIdentityHour is the median identity's mean number of
	// requests per hour (a Vault request writes two records). Rates are
	// log-normal around it, so the population mean is about 1.65× this.
	EventsPerIdentityHour float64
	Attacks               bool // inject the labeled attack scenarios
	// Scenarios names the scenarios to inject (see AllScenarios). Nil
	// means Scenarios when Attacks is set and none otherwise, so existing
	// configurations keep their output byte for byte; a non-nil list is
	// injected whether or not Attacks is set. The later scenarios add a few
	// identities of their own (a CI role, a batch role, Vault clients) whose
	// traffic comes from a separate random stream, so the rest of the run
	// is the same as without them.
	Scenarios []string
	Malformed int // number of malformed records, spread over the run
	// Platform adds the platform's own logs (PlatformFormats): Argo CD
	// deploying the workloads (Kubernetes audit), SPIRE signing their
	// SVIDs, cert-manager renewing certificates and CT logging the public
	// ones. They come from a stream of their own, so the other formats'
	// records are the same with or without them.
	Platform bool
	// Lifecycle adds, with the platform, the identity kinds and churn of
	// lifecycle.go: Kubernetes controllers and cron jobs, AI agents calling
	// tools through Kong, deploys that add an action and new replicas.
	// From a stream of its own too: the other records stay the same.
	Lifecycle bool
}

// Record is one generated message.
type Record struct {
	Format    string // one of the Format constants; the caller maps it to a topic
	Key       []byte // canonical id of the identity; shared by its records, read-only
	Value     []byte // the message, owned by the receiver
	Time      time.Time
	Malformed bool // true for the injected bad records
}

// Label marks one injected attack. Start and End are the times of its first
// and last record (both inclusive).
type Label struct {
	Scenario string    `json:"scenario"`
	Identity string    `json:"identity"` // canonical identity id (SPEC §2)
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Detail   string    `json:"detail"`
}

// WriteLabels writes labels as NDJSON, one object per line.
func WriteLabels(w io.Writer, labels []Label) error {
	enc := json.NewEncoder(w)
	for _, l := range labels {
		if err := enc.Encode(l); err != nil {
			return err
		}
	}
	return nil
}

func (c Config) withDefaults() (Config, error) {
	if c.Duration < 0 || c.Workloads < 0 || c.Roles < 0 || c.APIKeys < 0 || c.VaultClients < 0 ||
		c.EventsPerIdentityHour < 0 || c.Malformed < 0 || math.IsNaN(c.EventsPerIdentityHour) || math.IsInf(c.EventsPerIdentityHour, 0) {
		return c, errors.New("gen: negative or invalid Config value")
	}
	if c.Start.IsZero() {
		c.Start = DefaultStart
	}
	c.Start = c.Start.UTC()
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Workloads == 0 {
		c.Workloads = DefaultWorkloads
	}
	if c.Roles == 0 {
		c.Roles = DefaultRoles
	}
	if c.APIKeys == 0 {
		c.APIKeys = DefaultAPIKeys
	}
	if c.VaultClients == 0 {
		c.VaultClients = DefaultVaultClients
	}
	if c.EventsPerIdentityHour == 0 {
		c.EventsPerIdentityHour = DefaultEventsPerIdentityHour
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(AllScenarios, s) {
			return c, fmt.Errorf("gen: unknown scenario %q: valid scenarios are %v", s, AllScenarios)
		}
	}
	if c.Lifecycle && !c.Platform {
		return c, errors.New("gen: Lifecycle needs Platform, whose deploys its churn follows")
	}
	if c.injects(ScenarioExfiltration) && c.Workloads < 2 {
		return c, fmt.Errorf("gen: exfiltration needs at least 2 workloads, have %d", c.Workloads)
	}
	if c.injects(Scenarios...) && (c.Workloads < 14 || c.Roles < 2) {
		return c, fmt.Errorf("gen: attacks need at least 14 workloads and 2 roles, have %d and %d", c.Workloads, c.Roles)
	}
	return c, nil
}

// injects reports whether any of the scenarios is to be injected.
func (c Config) injects(scenarios ...string) bool {
	sel := c.Scenarios
	if sel == nil && c.Attacks {
		sel = Scenarios
	}
	for _, s := range scenarios {
		if slices.Contains(sel, s) {
			return true
		}
	}
	return false
}

// Event kinds.
const (
	kMesh uint8 = iota
	kKong
	kCloudTrail
	kVaultReq
	kVaultResp
)

var kindFormat = [...]string{kMesh: FormatEnvoy, kKong: FormatKong, kCloudTrail: FormatCloudTrail, kVaultReq: FormatVault, kVaultResp: FormatVault,
	kK8s: FormatK8sAudit, kCertIssued: FormatCertManager, kSVID: FormatSPIRE, kCT: FormatCT, kK8sClient: FormatK8sAudit}

// Outcome flags.
const (
	outOK uint8 = iota
	outNotFound
	outUnavailable
	outDenied // AWS AccessDenied, Vault permission denied, mesh RBAC 403
	outRateLimited
)

// event is one record to render: everything but the random details, which
// come from seed when it is rendered.
type event struct {
	t    int64 // unix ns, at the format's precision
	seq  uint64
	seed uint64
	kind uint8
	out  uint8
	mal  uint8 // malformation kind + 1; 0 for a good record
	mode uint8 // scenario-specific rendering mode, 0 for normal traffic
	id   int32 // identity index within its kind
	a, b int32 // kind-specific parameters
	c    int64
}

func cmpEvent(x, y event) int {
	switch {
	case x.t < y.t:
		return -1
	case x.t > y.t:
		return 1
	case x.seq < y.seq:
		return -1
	case x.seq > y.seq:
		return 1
	}
	return 0
}

type generator struct {
	cfg   Config
	pop   *population
	start int64 // unix ns
	end   int64
	seq   uint64
	// attack parameters rendered into records
	stolenIP, stolenUA string
	cloneIP, ciIP      string // sources of the cloned credential and the CI role's outside calls
	revokedIP          string // source of the revoked Vault token's uses
	// per-Vault-client state
	vgen   []int32
	vlogin []int64
	plat   *platform  // nil unless Config.Platform
	life   *lifecycle // nil unless Config.Lifecycle
	shadow shadowCert // the shadow certificate scenario's certificate
}

func (g *generator) newEvent(kind uint8, t int64, r *rand.Rand) event {
	switch kind {
	case kMesh, kKong:
		t -= t % int64(time.Millisecond)
	case kCloudTrail:
		t -= t % int64(time.Second)
	}
	g.seq++
	return event{t: t, seq: g.seq, seed: r.Uint64(), kind: kind}
}

// Generate emits records in non-decreasing event-time order and returns the
// labels of the injected attacks (none unless cfg.Attacks or cfg.Scenarios). Records fall in
// [Start, Start+Duration), except that a Vault response may trail its request
// past the end by a few milliseconds. Generate stops at the first error emit
// returns and returns it with the labels.
func Generate(cfg Config, emit func(Record) error) ([]Label, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &generator{cfg: cfg, pop: buildPopulation(cfg), start: cfg.Start.UnixNano()}
	g.end = g.start + int64(cfg.Duration)
	g.vgen = make([]int32, len(g.pop.vault))
	g.vlogin = make([]int64, len(g.pop.vault))

	var extra []event
	var labels []Label
	if cfg.injects(Scenarios...) {
		extra, labels = g.attacks()
	}
	extra = append(extra, g.malformed()...)
	// The later scenarios add identities, so they come after everything
	// that picks from the base population.
	more, moreLabels := g.moreAttacks()
	extra = append(extra, more...)
	labels = append(labels, moreLabels...)
	if cfg.Platform {
		g.plat = g.buildPlatform()
		extra = append(extra, g.platformEvents()...)
	}
	if cfg.Lifecycle {
		extra = append(extra, g.lifecycleEvents()...)
	}
	slices.SortFunc(extra, cmpEvent)

	traffic := rand.New(rand.NewPCG(uint64(cfg.Seed), 0x747261666669630a)) // "traffic"
	rr := newRenderer(g)
	var evs, carry []event
	times := make([]int64, 0, 64)
	for hs := g.start; hs < g.end; hs += int64(time.Hour) {
		he := min(hs+int64(time.Hour), g.end)
		evs = append(evs[:0], carry...)
		carry = carry[:0]
		evs = g.hour(traffic, evs, hs, he, times)
		for len(extra) > 0 && extra[0].t < he {
			evs = append(evs, extra[0])
			extra = extra[1:]
		}
		slices.SortFunc(evs, cmpEvent)
		for i := range evs {
			if evs[i].t >= he && he < g.end {
				carry = append(carry, evs[i:]...)
				break
			}
			if err := rr.emit(&evs[i], emit); err != nil {
				return labels, err
			}
		}
	}
	// Anything left (responses past the end, attacks clamped to it).
	evs = append(carry, extra...)
	slices.SortFunc(evs, cmpEvent)
	for i := range evs {
		if err := rr.emit(&evs[i], emit); err != nil {
			return labels, err
		}
	}
	return labels, nil
}

// poisson draws a Poisson variate with mean lambda.
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 30 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l := math.Exp(-lambda)
	k, p := 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (g *generator) season(prof int, t int64, shift int) float64 {
	return g.pop.profiles[prof][(hourOfWeek(t)+shift+168)%168]
}

// hour appends the normal traffic of [hs, he) to evs.
func (g *generator) hour(r *rand.Rand, evs []event, hs, he int64, times []int64) []event {
	p := g.pop
	span := he - hs
	frac := float64(span) / float64(time.Hour)
	mid := hs + span/2
	for i := range p.workloads {
		w := &p.workloads[i]
		if len(w.edges) == 0 {
			continue // a lone workload has no peer to call
		}
		n := poisson(r, w.rate*frac*g.season(profFlat, mid, w.shift))
		for range n {
			evs = append(evs, g.meshEvent(r, i, hs+r.Int64N(span)))
		}
	}
	for i := range p.roles {
		ro := &p.roles[i]
		switch ro.kind {
		case roleService:
			n := poisson(r, ro.rate*frac*g.season(profFlat, mid, ro.shift))
			for range n {
				evs = append(evs, g.roleEvent(r, i, hs+r.Int64N(span)))
			}
		case roleHourly, roleNightly:
			// A run starts at a fixed minute of the wall-clock hour; the
			// bucket [hs, he) may straddle two wall-clock hours.
			for wall := hs - hs%int64(time.Hour); wall < he; wall += int64(time.Hour) {
				if ro.kind == roleNightly && int((wall/int64(time.Hour))%24) != ro.runHour {
					continue
				}
				runAt := wall + int64(ro.runMinute)*int64(time.Minute) + r.Int64N(int64(40*time.Second))
				if runAt < hs || runAt >= he {
					continue
				}
				lambda := ro.rate
				if ro.kind == roleNightly {
					lambda *= 24
				}
				n := max(poisson(r, lambda), 3)
				for range n {
					evs = append(evs, g.roleEvent(r, i, runAt+r.Int64N(int64(ro.runLen))))
				}
			}
		}
	}
	for i := range p.keys {
		k := &p.keys[i]
		n := poisson(r, k.rate*frac*g.season(profBusiness, mid, k.shift))
		for range n {
			evs = append(evs, g.kongEvent(r, i, hs+r.Int64N(span)))
		}
	}
	for i := range p.vault {
		evs = g.vaultHour(r, evs, i, hs, he, times)
	}
	return evs
}

// vaultHour appends Vault client i's requests in [hs, he), at most an hour.
func (g *generator) vaultHour(r *rand.Rand, evs []event, i int, hs, he int64, times []int64) []event {
	v := &g.pop.vault[i]
	span := he - hs
	n := poisson(r, v.rate*float64(span)/float64(time.Hour)*g.season(profFlat, hs+span/2, v.shift))
	times = times[:0]
	for range n {
		times = append(times, hs+r.Int64N(span))
	}
	slices.Sort(times)
	for _, t := range times {
		evs = g.vaultEvents(r, evs, i, t)
	}
	return evs
}

func (g *generator) meshEvent(r *rand.Rand, i int, t int64) event {
	w := &g.pop.workloads[i]
	ev := g.newEvent(kMesh, t, r)
	ev.id = int32(i)
	e := &w.edges[pickCum(r, w.edgeCum)]
	ev.a = int32(e.peer)
	ev.b = int32(e.routes[pickCum(r, e.cum)])
	switch u := r.Float64(); {
	case u < 0.003 && g.pop.workloads[e.peer].routes[ev.b].id != 0:
		ev.out = outNotFound
	case u > 0.998:
		ev.out = outUnavailable
	}
	return ev
}

func (g *generator) roleEvent(r *rand.Rand, i int, t int64) event {
	ro := &g.pop.roles[i]
	ev := g.newEvent(kCloudTrail, t, r)
	ev.id = int32(i)
	ev.a = int32(ro.acts[pickCum(r, ro.cum)])
	ev.c = g.session(ro, ev.t)
	if r.Float64() < 0.0015 {
		ev.out = outDenied
	}
	return ev
}

// session is the index of the role's STS session at time t.
func (g *generator) session(ro *role, t int64) int64 {
	return (t - g.start - ro.phase) / ro.period
}

func (g *generator) sessionStart(ro *role, k int64) int64 {
	return g.start + ro.phase + k*ro.period
}

func (g *generator) kongEvent(r *rand.Rand, i int, t int64) event {
	k := &g.pop.keys[i]
	ev := g.newEvent(kKong, t, r)
	ev.id = int32(i)
	ev.a = int32(pickCum(r, k.cum))
	switch u := r.Float64(); {
	case u < 0.004 && !k.uses[ev.a].list:
		ev.out = outNotFound
	case u > 0.9985:
		ev.out = outUnavailable
	case u > 0.997:
		ev.out = outRateLimited
	}
	return ev
}

// Vault operations.
const (
	vRead int32 = iota
	vList
	vLogin
	vRenew
	vChild
	vRevokeAccessor // an operator revoking another client's token
)

func (g *generator) vaultEvents(r *rand.Rand, evs []event, i int, t int64) []event {
	v := &g.pop.vault[i]
	op := vRead
	switch u := r.Float64(); {
	case g.vgen[i] == 0 || t-g.vlogin[i] > v.ttl*int64(time.Second):
		op = vLogin
	case u < 0.02:
		op = vChild
	case u < 0.08:
		op = vRenew
	case u < 0.13:
		op = vList
	}
	if op == vLogin {
		g.vgen[i]++
		g.vlogin[i] = t
	}
	req := g.newEvent(kVaultReq, t, r)
	req.id = int32(i)
	req.a = op
	req.b = g.vgen[i]
	req.c = g.vlogin[i]
	if op == vRead && r.Float64() < 0.002 {
		req.out = outDenied
	}
	return g.vaultPair(r, evs, req)
}

// vaultPair appends req and the response entry Vault writes for it a few
// milliseconds later.
func (g *generator) vaultPair(r *rand.Rand, evs []event, req event) []event {
	resp := req
	resp.kind = kVaultResp
	resp.t = req.t + int64(300*time.Microsecond) + r.Int64N(int64(25*time.Millisecond))
	g.seq++
	resp.seq = g.seq
	return append(evs, req, resp)
}
