package gen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Render modes of the later scenarios; the original four use 1 and 2.
const (
	modeCloned     uint8 = 3 + iota // CloudTrail: a call from the clone's network
	modeCIOutside                   // CloudTrail: the CI role from outside its runners
	modeExfil                       // Envoy: a bulk response of tens of megabytes
	modeLongTTL                     // Vault: a child token with a TTL of longTTL
	modeRevoke                      // Vault: an operator revoking the victim's token
	modeRevokedUse                  // Vault: the revoked token used from outside
	modeShadow                      // CT: the shadow certificate's entry
)

// Offsets and lengths of the later scenarios in a week-long run; shorter
// runs scale them as window does. The CI attack is placed ciLead before the
// end instead, so that runs longer than the ci class's week of learning
// judge it with a learned CI role.
const (
	offCloned  = 4*24*time.Hour + 9*time.Hour + 10*time.Minute
	offExfil   = 5*24*time.Hour + 20*time.Hour
	offRevoked = 5*24*time.Hour + 9*time.Hour + 15*time.Minute
	offDormant = 6*24*time.Hour + 3*time.Hour + 30*time.Minute
	offLongTTL = 6*24*time.Hour + 15*time.Hour + 40*time.Minute
	ciLead     = 26*time.Hour + 40*time.Minute
	lenCloned  = 30 * time.Minute
	lenExfil   = 2 * time.Hour
	lenRevoked = 45 * time.Minute
	lenDormant = 20 * time.Minute
	lenLongTTL = 10 * time.Minute
	lenCI      = 15 * time.Minute

	longTTL = 768 * 3600 // seconds: Vault's default max TTL, 32 days
	// ciOutsideUserAgent is a laptop's AWS CLI, not the pipeline's Terraform.
	ciOutsideUserAgent = "aws-cli/2.15.30 Python/3.11.8 Darwin/23.4.0 exe/x86_64 prompt/off"
	ciUserAgent        = "APN/1.0 HashiCorp/1.0 Terraform/1.7.5 (+https://www.terraform.io) terraform-provider-aws/5.40.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.25.2 os/linux lang/go#1.22.1 md/GOOS#linux md/GOARCH#amd64"
)

// moreAttacks builds the events and labels of the selected later scenarios.
// Each draws from its own stream and adds its own identities after the base
// population (with fixed networks), so selecting one changes neither the
// normal traffic nor another scenario.
func (g *generator) moreAttacks() ([]event, []Label) {
	var all []event
	var labels []Label
	for i, sc := range []struct {
		name  string
		build func(*rand.Rand) ([]event, Label)
	}{
		{ScenarioClonedCredential, g.clonedCredential},
		{ScenarioExfiltration, g.exfiltration},
		{ScenarioDormant, g.dormant},
		{ScenarioRevokedToken, g.revokedToken},
		{ScenarioLongTTLBurst, g.longTTLBurst},
		{ScenarioCIRoleIAM, g.ciRoleIAM},
		{ScenarioShadowCert, g.shadowCertificate},
	} {
		if !g.cfg.injects(sc.name) {
			continue
		}
		evs, l := sc.build(rand.New(rand.NewPCG(uint64(g.cfg.Seed), 0x6d6f7265<<32|uint64(i)))) // "more"
		all = append(all, evs...)
		labels = append(labels, l)
	}
	return all, labels
}

// addVault adds a scripted Vault client: its rate is zero, so only its
// scenario makes its requests.
func (g *generator) addVault(r *rand.Rand, v vaultClient) int {
	g.pop.addVault(r, v, g.cfg.EventsPerIdentityHour)
	i := len(g.pop.vault) - 1
	g.pop.vault[i].rate = 0
	g.vgen = append(g.vgen, 0)
	g.vlogin = append(g.vlogin, 0)
	return i
}

// addRole adds a scripted role: hour skips it, so only its scenario makes
// its calls.
func (g *generator) addRole(r *rand.Rand, name, app string, net [3]byte) int {
	g.pop.addRole(r, name, app, roleScripted, g.cfg.EventsPerIdentityHour)
	i := len(g.pop.roles) - 1
	g.pop.roles[i].net = net
	g.pop.roles[i].assumeTarget = g.pop.roles[0].name
	return i
}

// clonedCredential: a role's current session credential copied and used
// from a distant network while the role keeps using it from its own, the
// two interleaved within minutes. The copy runs the same SDK and makes the
// role's usual calls; only the network gives it away.
func (g *generator) clonedCredential(r *rand.Rand) ([]event, Label) {
	var skip []int
	if len(g.pop.roles) >= 2 {
		a, b := g.attackRoles(rand.New(rand.NewPCG(uint64(g.cfg.Seed), attacksStream)))
		skip = []int{a, b}
	}
	var rates []float64
	for _, ro := range g.pop.roles {
		rates = append(rates, ro.rate)
	}
	med := medianRate(rates)
	var cands []int
	for i, ro := range g.pop.roles {
		if ro.kind == roleService && ro.via == "" && ro.rate >= med/2 && !slices.Contains(skip, i) {
			cands = append(cands, i)
		}
	}
	ri := 0
	if len(cands) > 0 {
		ri = cands[r.IntN(len(cands))]
	}
	ro := &g.pop.roles[ri]
	s, span := g.window(offCloned, lenCloned)
	// Keep the window inside one session: a copied session credential
	// dies with its session.
	k := g.session(ro, s)
	if g.sessionStart(ro, k)+ro.period-s < int64(10*time.Minute) {
		k++
		s = max(g.start, g.sessionStart(ro, k)+int64(2*time.Minute))
	}
	e := min(s+span, g.sessionStart(ro, k)+ro.period-int64(time.Minute), g.end)
	if e <= s {
		e = s + 1
	}
	g.cloneIP = fmt.Sprintf("198.51.100.%d", 10+r.IntN(240))
	var evs []event
	n := 12 + r.IntN(6)
	for _, mode := range []uint8{0, modeCloned} {
		for _, t := range offsets(r, n, s, e-s) {
			ev := g.newEvent(kCloudTrail, t, r)
			ev.id, ev.a, ev.b, ev.c, ev.mode = int32(ri), int32(ro.acts[pickCum(r, ro.cum)]), int32(ri), k, mode
			evs = append(evs, ev)
		}
	}
	return evs, g.label(ScenarioClonedCredential, ro.id, evs, fmt.Sprintf(
		"session credential %s of role %s used at once from the role's network %s and from %s: %d calls from each, the role's usual actions and client",
		g.accessKeyID(ro, k), ro.name, ipString(ro.net, 0)+"/24", g.cloneIP, n))
}

// exfiltration: a workload pulling tens of megabytes per response through
// one of its usual routes, steadily for two hours: the same peer, route
// and client as always, only the bytes are new.
func (g *generator) exfiltration(r *rand.Rand) ([]event, Label) {
	var rates []float64
	for _, w := range g.pop.workloads {
		rates = append(rates, w.rate)
	}
	med := medianRate(rates)
	var cands []int
	for i, w := range g.pop.workloads {
		// More than three peers keeps it apart from the lateral-movement
		// workload, which has at most three.
		if len(w.edges) > 3 && w.rate >= med/2 && w.rate <= 4*med {
			cands = append(cands, i)
		}
	}
	if len(cands) == 0 {
		for i, w := range g.pop.workloads {
			if len(w.edges) > 0 {
				cands = append(cands, i)
			}
		}
	}
	wi := cands[r.IntN(len(cands))]
	w := &g.pop.workloads[wi]
	// The export route: a GET of the usual peers if there is one.
	var pairs [][2]int
	for _, e := range w.edges {
		for _, rt := range e.routes {
			if g.pop.workloads[e.peer].routes[rt].method == "GET" {
				pairs = append(pairs, [2]int{e.peer, rt})
			}
		}
	}
	if len(pairs) == 0 {
		pairs = append(pairs, [2]int{w.edges[0].peer, w.edges[0].routes[0]})
	}
	pr := pairs[r.IntN(len(pairs))]
	s, span := g.window(offExfil, lenExfil)
	n := 60 + r.IntN(30)
	var evs []event
	for j := range n {
		// Evenly spaced with jitter: a steady export, not a burst.
		t := s + int64(j)*span/int64(n) + r.Int64N(span/int64(n))
		ev := g.newEvent(kMesh, t, r)
		ev.id, ev.a, ev.b, ev.mode = int32(wi), int32(pr[0]), int32(pr[1]), modeExfil
		evs = append(evs, ev)
	}
	peer := &g.pop.workloads[pr[0]]
	rt := &peer.routes[pr[1]]
	return evs, g.label(ScenarioExfiltration, w.spiffe, evs, fmt.Sprintf(
		"workload %s/%s pulled %d responses of 8–48 MB from %s/%s (%s %s…) in %s, where its responses are a few KB",
		w.ns, w.sa, n, peer.ns, peer.sa, rt.method, rt.prefix, time.Duration(span)))
}

// dormant: a batch role that ran on the first nights of the run and fell
// silent, then calls again days later. Its name puts it in the "job" class,
// whose dormancy is three days.
func (g *generator) dormant(r *rand.Rand) ([]event, Label) {
	app := pick(r, namespaces)
	ri := g.addRole(r, app+"-batch-reconcile", app, [3]byte{10, 9, 0})
	ro := &g.pop.roles[ri]
	ro.runMinute = r.IntN(60)
	ro.runLen = time.Duration(5+r.IntN(6)) * time.Minute
	var evs []event
	last := g.start
	active := g.start + int64(g.cfg.Duration)*2/7
	for run := g.start + int64(time.Hour) + int64(ro.runMinute)*int64(time.Minute); run < active; run += int64(24 * time.Hour) {
		for range 12 + r.IntN(8) {
			ev := g.roleEvent(r, ri, run+r.Int64N(int64(ro.runLen)))
			evs = append(evs, ev)
			last = max(last, ev.t)
		}
	}
	s, span := g.window(offDormant, lenDormant)
	var wake []event
	for _, t := range offsets(r, 25+r.IntN(10), s, span) {
		wake = append(wake, g.roleEvent(r, ri, t))
	}
	return append(evs, wake...), g.label(ScenarioDormant, ro.id, wake, fmt.Sprintf(
		"batch role %s, silent since %s (%s), made %d calls again",
		ro.name, time.Unix(0, last).UTC().Format(time.RFC3339), time.Duration(wake[0].t-last).Round(time.Minute), len(wake)))
}

// revokedToken: an operator revokes a batch job's Vault token by accessor
// after a leak; the job's next run logs in afresh, but whoever copied the
// token keeps using it from outside: two reads succeed (the node answering
// has not applied the revocation yet), then the retries are denied.
func (g *generator) revokedToken(r *rand.Rand) ([]event, Label) {
	vi := g.addVault(r, vaultClient{ns: "reporting", sa: "export-job", net: [3]byte{10, 12, 0}, hosts: hostOctets(r, 2)})
	g.pop.vault[vi].ttl = 12 * 3600
	oi := g.addVault(r, vaultClient{operator: true, net: [3]byte{10, 0, 5}, hosts: hostOctets(r, 1)})
	op := &g.pop.vault[oi]
	op.role, op.display = "oncall-sre", "oidc-oncall-sre"
	op.key = []byte("vault:entity/" + op.entityID)
	g.revokedIP = fmt.Sprintf("203.0.113.%d", 10+r.IntN(240))

	s, span := g.window(offRevoked, lenRevoked)
	minute := int64(time.Minute)
	var evs []event
	run := func(at int64) {
		for _, t := range offsets(r, 3+r.IntN(4), at, 3*minute) {
			evs = g.vaultEvents(r, evs, vi, t)
		}
	}
	// Daily runs at 02:xx until the revocation, then a rerun if the
	// current token would not outlive it.
	daily := g.start - g.start%int64(24*time.Hour) + 2*int64(time.Hour) + int64(r.IntN(60))*minute
	at := daily
	for ; at < s; at += int64(24 * time.Hour) {
		if at >= g.start {
			run(at)
		}
	}
	ttl := g.pop.vault[vi].ttl * int64(time.Second)
	if g.vgen[vi] == 0 || s-g.vlogin[vi] > ttl*3/4 {
		run(max(g.start, s-20*minute))
	}
	gen, login := g.vgen[vi], g.vlogin[vi]
	var label []event
	rev := g.newEvent(kVaultReq, s, r)
	rev.id, rev.a, rev.b, rev.c, rev.mode = int32(oi), vRevokeAccessor, gen, int64(vi), modeRevoke
	label = g.vaultPair(r, label, rev)
	for j, t := range offsets(r, 6+r.IntN(4), s+4*minute, max(span-4*minute, 1)) {
		use := g.newEvent(kVaultReq, t, r)
		use.id, use.a, use.b, use.c, use.mode = int32(vi), vRead, gen, login, modeRevokedUse
		if j >= 2 {
			use.out = outDenied
		}
		label = g.vaultPair(r, label, use)
	}
	// The job's token is gone: its next run logs in again.
	g.vlogin[vi] = s - ttl - 1
	for ; at < g.end; at += int64(24 * time.Hour) {
		run(at)
	}
	return append(evs, label...), g.label(ScenarioRevokedToken, string(g.pop.vault[vi].key), label, fmt.Sprintf(
		"Vault token (login %s) of %s revoked by accessor by %s, then used from %s: 2 reads succeeded, %d denied",
		time.Unix(0, login).UTC().Format(time.RFC3339), string(g.pop.vault[vi].key), op.display, g.revokedIP, len(label)/2-3))
}

// longTTLBurst: a deploy bot that logs in every four hours suddenly mints
// dozens of orphan child tokens with a 768-hour TTL in ten minutes.
func (g *generator) longTTLBurst(r *rand.Rand) ([]event, Label) {
	bi := g.addVault(r, vaultClient{ns: "platform", sa: "deploy-bot", net: [3]byte{10, 13, 0}, hosts: hostOctets(r, 2)})
	b := &g.pop.vault[bi]
	b.ttl = 4 * 3600
	// vaultHour draws the bot's requests at this rate; hour must not, so
	// the rate is zeroed again once the bot's traffic is made.
	b.rate = max(baseRate(r, g.cfg.EventsPerIdentityHour), g.cfg.EventsPerIdentityHour)
	defer func() { b.rate = 0 }()
	s, span := g.window(offLongTTL, lenLongTTL)
	var evs []event
	hours := func(from, to int64) {
		for hs := from; hs < to; hs += int64(time.Hour) {
			evs = g.vaultHour(r, evs, bi, hs, min(hs+int64(time.Hour), to), nil)
		}
	}
	hours(g.start, s)
	// A request with a valid token first (it logs in if the last token
	// expired), then the burst under that token.
	evs = g.vaultEvents(r, evs, bi, s)
	var burst []event
	for _, t := range offsets(r, 24+r.IntN(16), s+int64(10*time.Second), span-int64(10*time.Second)) {
		req := g.newEvent(kVaultReq, t, r)
		req.id, req.a, req.b, req.c, req.mode = int32(bi), vChild, g.vgen[bi], g.vlogin[bi], modeLongTTL
		burst = g.vaultPair(r, burst, req)
	}
	hours(s+span, g.end)
	return append(evs, burst...), g.label(ScenarioLongTTLBurst, string(b.key), burst, fmt.Sprintf(
		"%s created %d orphan child tokens with a %dh TTL in %s; its own logins last 4h",
		string(b.key), len(burst)/2, longTTL/3600, time.Duration(span)))
}

// ciRoleIAM: a CI deploy role that runs from its runners on weekday
// business hours (Terraform, with the occasional IAM policy change) makes
// IAM changes at night, at a weekend, from a laptop's AWS CLI on an outside
// network: a user, an access key, an administrator policy.
func (g *generator) ciRoleIAM(r *rand.Rand) ([]event, Label) {
	ri := g.addRole(r, "ci-deployer", "platform", [3]byte{10, 8, 0})
	ro := &g.pop.roles[ri]
	ro.sessStyle, ro.instance, ro.period, ro.ua, ro.via = 2, "", int64(time.Hour), ciUserAgent, ""
	ro.phase = -r.Int64N(ro.period)
	weights := map[string]float64{
		"s3:GetObject": 1, "s3:PutObject": 0.8, "dynamodb:GetItem": 0.3, "dynamodb:PutItem": 0.3,
		"sts:GetCallerIdentity": 0.5, "ecr:GetAuthorizationToken": 0.4, "ecr:PutImage": 0.6,
		"eks:DescribeCluster": 0.4, "cloudformation:DescribeStacks": 0.2, "kms:Decrypt": 0.3,
		"iam:ListAttachedRolePolicies": 0.2, "iam:PutRolePolicy": 0.08, "iam:AttachRolePolicy": 0.05,
	}
	names := make([]string, 0, len(weights))
	for n := range weights {
		names = append(names, n)
	}
	slices.Sort(names)
	var w []float64
	ro.acts = ro.acts[:0]
	for _, n := range names {
		ro.acts = append(ro.acts, act(n))
		w = append(w, weights[n])
	}
	ro.cum = cumulative(w)

	var evs []event
	day := int64(24 * time.Hour)
	for d := g.start - g.start%day; d < g.end; d += day {
		if hourOfWeek(d)/24 >= 5 {
			continue // no pipelines at the weekend
		}
		for range 2 + r.IntN(5) {
			run := d + 8*int64(time.Hour) + r.Int64N(10*int64(time.Hour))
			runLen := int64(3+r.IntN(7)) * int64(time.Minute)
			for range 12 + r.IntN(20) {
				if t := run + r.Int64N(runLen); t >= g.start && t < g.end {
					evs = append(evs, g.roleEvent(r, ri, t))
				}
			}
		}
	}
	g.ciIP = fmt.Sprintf("192.0.2.%d", 10+r.IntN(240))
	off := max(g.cfg.Duration-ciLead, g.cfg.Duration*4/7)
	s := g.start + int64(off)
	span := min(int64(lenCI), g.end-s)
	seq := []string{"sts:GetCallerIdentity", "iam:ListAttachedRolePolicies", "iam:CreateUser", "iam:CreateAccessKey",
		"iam:AttachRolePolicy", "iam:PutRolePolicy", "iam:ListAccessKeys", "iam:CreateAccessKey"}
	var attack []event
	for j, t := range offsets(r, len(seq), s, span) {
		ev := g.newEvent(kCloudTrail, t, r)
		ev.id, ev.a, ev.b, ev.c, ev.mode = int32(ri), int32(act(seq[j])), int32(ri), g.session(ro, t), modeCIOutside
		attack = append(attack, ev)
	}
	return append(evs, attack...), g.label(ScenarioCIRoleIAM, ro.id, attack, fmt.Sprintf(
		"CI role %s, which runs from %s on weekdays 08–18 UTC with Terraform, called iam:CreateUser, iam:CreateAccessKey, iam:AttachRolePolicy (AdministratorAccess) and iam:PutRolePolicy from %s with %q",
		ro.name, ipString(ro.net, 0)+"/24", g.ciIP, ciOutsideUserAgent))
}

// The shadow certificate's CA and the CT log that recorded it.
const (
	offShadow      = 5*24*time.Hour + 11*time.Hour + 25*time.Minute
	shadowIssuerCN = "ZeroSSL RSA Domain Secure Site CA"
	shadowIssuerO  = "ZeroSSL"
	shadowLog      = "https://ct.googleapis.com/logs/eu1/xenon2026h1/"
)

// shadowCert is the certificate of the shadow certificate scenario.
type shadowCert struct {
	serial string
	dns    []string
}

func shadowIdentity(s shadowCert) string { return "cert:" + shadowIssuerCN + "/" + s.serial }

// shadowCertificate: a certificate for the organization's sign-in name,
// issued by a public CA the organization does not use (after a DNS
// takeover, say) and never requested through cert-manager: Certificate
// Transparency is the only record of it. Its one CT entry is the label.
func (g *generator) shadowCertificate(r *rand.Rand) ([]event, Label) {
	g.shadow = shadowCert{serial: serialHex(r.Uint64(), r.Uint64()), dns: []string{"login." + OrgDomain, "sso." + OrgDomain}}
	s, _ := g.window(offShadow, time.Minute)
	ev := g.newEvent(kCT, s, r)
	ev.mode = modeShadow
	evs := []event{ev}
	return evs, g.label(ScenarioShadowCert, shadowIdentity(g.shadow), evs, fmt.Sprintf(
		"certificate for %s (serial %s) issued by %s and logged in %s; no cert-manager or SPIRE record of it",
		strings.Join(g.shadow.dns, ", "), g.shadow.serial, shadowIssuerCN, shadowLog))
}
