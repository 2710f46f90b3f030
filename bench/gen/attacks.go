package gen

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Attack offsets from Start for a run of at least a week; shorter runs
// scale them by Duration/7d, so attacks always fall after ~57% of the run.
const (
	week            = 7 * 24 * time.Hour
	offStolen       = 4*24*time.Hour + 13*time.Hour + 20*time.Minute
	offProbing      = 5*24*time.Hour + 2*time.Hour + 40*time.Minute
	offLateral      = 5*24*time.Hour + 15*time.Hour + 5*time.Minute
	offSpike        = 6*24*time.Hour + 10*time.Hour
	lenStolen       = 25 * time.Minute
	lenProbing      = 20 * time.Minute
	lenLateral      = 30 * time.Minute
	lenSpike        = time.Hour
	stolenUserAgent = "aws-cli/1.22.34 Python/3.9.11 Linux/5.15.0-kali3-amd64 botocore/1.24.46"
)

const attacksStream = 0x61747461636b730a // "attacks"

// window places an attack: its start and the span its events spread over.
func (g *generator) window(off, length time.Duration) (int64, int64) {
	d := g.cfg.Duration
	if d < week {
		off = time.Duration(float64(off) * float64(d) / float64(week))
	}
	length = min(length, d)
	s := g.start + int64(off)
	if s+int64(length) > g.end {
		s = g.end - int64(length)
	}
	return s, int64(length)
}

// offsets returns n sorted times in [s, s+span).
func offsets(r *rand.Rand, n int, s, span int64) []int64 {
	ts := make([]int64, n)
	for i := range ts {
		ts[i] = s + r.Int64N(span)
	}
	ts[0] = s
	slices.Sort(ts)
	return ts
}

func medianRate(rates []float64) float64 {
	s := slices.Clone(rates)
	slices.Sort(s)
	return s[len(s)/2]
}

// attackRoles picks the roles for the two AWS scenarios: long-running
// services with their own network, at least median activity and no
// secretsmanager in their repertoire where possible.
func (g *generator) attackRoles(r *rand.Rand) (stolen, probing int) {
	var rates []float64
	for _, ro := range g.pop.roles {
		rates = append(rates, ro.rate)
	}
	med := medianRate(rates)
	var good, ok []int
	for i, ro := range g.pop.roles {
		if ro.kind != roleService || ro.via != "" {
			continue
		}
		ok = append(ok, i)
		if ro.rate >= med && ro.rate <= 4*med && !slices.Contains(ro.acts, act("secretsmanager:GetSecretValue")) {
			good = append(good, i)
		}
	}
	for len(good) < 2 && len(ok) > 0 {
		good = append(good, ok[len(good)%len(ok)])
	}
	for len(good) < 2 {
		good = append(good, len(good)%len(g.pop.roles))
	}
	r.Shuffle(len(good), func(i, j int) { good[i], good[j] = good[j], good[i] })
	if good[0] == good[1] {
		good[1] = (good[0] + 1) % len(g.pop.roles)
	}
	return good[0], good[1]
}

func (g *generator) label(scenario, identity string, evs []event, detail string) Label {
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for _, e := range evs {
		lo, hi = min(lo, e.t), max(hi, e.t)
	}
	return Label{Scenario: scenario, Identity: identity, Start: time.Unix(0, lo).UTC(), End: time.Unix(0, hi).UTC(), Detail: detail}
}

// attacks builds the events and labels of the four original scenarios, or
// of those of them the configuration selects. All four are always drawn, so
// each one's records do not depend on which others are selected.
func (g *generator) attacks() ([]event, []Label) {
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), attacksStream))
	var all []event
	var labels []Label
	add := func(evs []event, l Label) {
		if g.cfg.injects(l.Scenario) {
			all = append(all, evs...)
			labels = append(labels, l)
		}
	}
	stolen, probing := g.attackRoles(r)

	// 1. A role's session credential used from an outside network.
	{
		ro := &g.pop.roles[stolen]
		s, span := g.window(offStolen, lenStolen)
		// The stolen credential is the session the role was using shortly
		// before: the current one, or the previous one if the current one
		// is only minutes old. Two ordinary calls with it from the role's
		// own network make sure it was seen in use before the theft.
		k := g.session(ro, s)
		if s-g.sessionStart(ro, k) < int64(10*time.Minute) {
			k--
		}
		lo := max(g.sessionStart(ro, k), s-int64(50*time.Minute), g.start)
		hi := min(g.sessionStart(ro, k)+ro.period, s-int64(time.Minute))
		var before []event
		if hi > lo {
			for range 2 {
				ev := g.newEvent(kCloudTrail, lo+r.Int64N(hi-lo), r)
				ev.id, ev.a, ev.b, ev.c = int32(stolen), int32(ro.acts[pickCum(r, ro.cum)]), int32(stolen), k
				before = append(before, ev)
			}
		}
		g.stolenIP = fmt.Sprintf("203.0.113.%d", 10+r.IntN(240))
		g.stolenUA = stolenUserAgent
		seq := []string{"sts:GetCallerIdentity", "s3:ListBuckets", "iam:ListUsers", "secretsmanager:GetSecretValue", "secretsmanager:GetSecretValue"}
		own := ro.acts
		for len(seq) < 15 {
			a := &actions[own[r.IntN(len(own))]]
			seq = append(seq, a.source+":"+a.name)
		}
		ts := offsets(r, len(seq), s, span)
		var evs []event
		for i, name := range seq {
			ev := g.newEvent(kCloudTrail, ts[i], r)
			ev.id, ev.a, ev.b, ev.c, ev.mode = int32(stolen), int32(act(name)), int32(stolen), k, 1
			if name == "iam:ListUsers" {
				ev.out = outDenied
			}
			if name == "secretsmanager:GetSecretValue" {
				ev.b = int32(r.IntN(len(g.pop.roles)))
			}
			evs = append(evs, ev)
		}
		add(append(before, evs...), g.label(ScenarioStolenCredential, ro.id, evs, fmt.Sprintf(
			"session credential %s of role %s used from %s (user agent %q): %d calls incl. s3:ListBuckets, iam:ListUsers, secretsmanager:GetSecretValue the role never uses",
			g.accessKeyID(ro, k), ro.name, g.stolenIP, g.stolenUA, len(evs))))
	}

	// 2. A role enumerating permissions: a burst of mostly denied calls.
	{
		ro := &g.pop.roles[probing]
		s, span := g.window(offProbing, lenProbing)
		probe := []string{
			"sts:GetCallerIdentity", "iam:ListUsers", "iam:ListRoles", "iam:GetAccountAuthorizationDetails",
			"iam:ListAttachedRolePolicies", "iam:ListAccessKeys", "iam:CreateUser", "iam:CreateAccessKey",
			"iam:AttachRolePolicy", "iam:PutRolePolicy", "ec2:DescribeInstances", "ec2:DescribeSecurityGroups",
			"ec2:DescribeSnapshots", "ec2:CreateKeyPair", "ec2:RunInstances", "s3:ListBuckets", "s3:GetBucketPolicy",
			"s3:PutBucketPolicy", "s3:GetBucketAcl", "secretsmanager:ListSecrets", "secretsmanager:GetSecretValue",
			"kms:ListKeys", "kms:CreateGrant", "lambda:ListFunctions20150331", "ssm:GetParameters",
			"organizations:DescribeOrganization", "cloudtrail:DescribeTrails",
		}
		seq := slices.Clone(probe[1:])
		r.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
		seq = append([]string{probe[0]}, seq...)
		for len(seq) < 40 {
			seq = append(seq, probe[1+r.IntN(len(probe)-1)])
		}
		ts := offsets(r, len(seq), s, span)
		var evs []event
		denied := 0
		for i, name := range seq {
			ev := g.newEvent(kCloudTrail, ts[i], r)
			ev.id, ev.a, ev.b, ev.c, ev.mode = int32(probing), int32(act(name)), int32(probing), g.session(ro, ts[i]), 2
			if name != "sts:GetCallerIdentity" && name != "s3:GetBucketAcl" && name != "ec2:DescribeSecurityGroups" {
				ev.out = outDenied
				denied++
			}
			evs = append(evs, ev)
		}
		add(evs, g.label(ScenarioPrivilegeProbing, ro.id, evs, fmt.Sprintf(
			"role %s made %d calls across %d distinct IAM/EC2/S3/secrets actions in %s from its usual network, %d denied",
			ro.name, len(evs), len(probe), time.Duration(span), denied)))
	}

	// 3. A workload reaching many peers it never called.
	{
		var rates []float64
		for _, w := range g.pop.workloads {
			rates = append(rates, w.rate)
		}
		med := medianRate(rates)
		var cands []int
		for i, w := range g.pop.workloads {
			if w.rate >= med && w.rate <= 4*med && len(w.edges) <= 3 {
				cands = append(cands, i)
			}
		}
		if len(cands) == 0 {
			cands = []int{0}
		}
		wi := cands[r.IntN(len(cands))]
		w := &g.pop.workloads[wi]
		known := map[int]bool{wi: true}
		for _, e := range w.edges {
			known[e.peer] = true
		}
		var fresh []int
		for _, j := range r.Perm(len(g.pop.workloads)) {
			if !known[j] {
				fresh = append(fresh, j)
			}
		}
		fresh = fresh[:min(len(fresh), 8+r.IntN(5))]
		s, span := g.window(offLateral, lenLateral)
		var evs []event
		deniedPeers, deniedCalls := 0, 0
		for x, j := range fresh {
			peer := &g.pop.workloads[j]
			deny := x < 2 || r.Float64() < 0.3
			if deny {
				deniedPeers++
			}
			for range 2 + r.IntN(3) {
				ev := g.newEvent(kMesh, s+r.Int64N(span), r)
				ev.id, ev.a, ev.b, ev.mode = int32(wi), int32(j), int32(r.IntN(len(peer.routes))), 1
				switch {
				case deny:
					ev.out = outDenied
					deniedCalls++
				case peer.routes[ev.b].id != 0 && r.IntN(4) == 0:
					ev.out = outNotFound
				}
				evs = append(evs, ev)
			}
		}
		var names []string
		for _, j := range fresh {
			names = append(names, g.pop.workloads[j].ns+"/"+g.pop.workloads[j].sa)
		}
		add(evs, g.label(ScenarioLateralMovement, w.spiffe, evs, fmt.Sprintf(
			"workload %s/%s called %d peers it never called before (%s): %d requests, %d RBAC-denied at %d peers",
			w.ns, w.sa, len(fresh), strings.Join(names, ", "), len(evs), deniedCalls, deniedPeers)))
	}

	// 4. An API key pulling ~25× its usual hourly volume of large pages.
	{
		var rates []float64
		for _, k := range g.pop.keys {
			rates = append(rates, k.rate)
		}
		if len(rates) > 0 {
			med := medianRate(rates)
			var cands []int
			for i, k := range g.pop.keys {
				if k.rate >= med && k.rate <= 3*med {
					cands = append(cands, i)
				}
			}
			if len(cands) == 0 {
				cands = []int{0}
			}
			ki := cands[r.IntN(len(cands))]
			k := &g.pop.keys[ki]
			s, span := g.window(offSpike, lenSpike)
			usual := k.rate * max(1, g.season(profBusiness, s+span/2, k.shift))
			n := max(50, int(math.Ceil(25*usual)))
			use := 0
			for i, u := range k.uses {
				if u.list {
					use = i
					break
				}
				if u.method == "GET" {
					use = i
				}
			}
			ts := offsets(r, n, s, span)
			var evs []event
			for i, t := range ts {
				ev := g.newEvent(kKong, t, r)
				ev.id, ev.a, ev.b, ev.mode = int32(ki), int32(use), int32(i+1), 1
				evs = append(evs, ev)
			}
			add(evs, g.label(ScenarioAPIKeySpike, k.id, evs, fmt.Sprintf(
				"API key of consumer %s made %d requests in one hour (usual %.1f/h) for %s pages of 250 KB–2 MB",
				k.username, n, usual, g.pop.kroutes[k.uses[use].route].path)))
		}
	}
	return all, labels
}
