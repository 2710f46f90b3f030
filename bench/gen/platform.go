package gen

import (
	"math/big"
	"math/rand/v2"
	"strconv"
	"time"
)

// Formats of the platform's own logs, written when Config.Platform is set
// (and, for the shadow certificate's CT entry, when that scenario is).
const (
	FormatK8sAudit    = "k8s_audit"     // audit.k8s.io/v1 Event, one per line (the log backend)
	FormatCertManager = "certmanager"   // cert-manager controller JSON log
	FormatSPIRE       = "spire_server"  // SPIRE server logrus JSON log
	FormatCT          = "ct_certstream" // certstream-server certificate_update
)

// PlatformFormats lists the formats above in a fixed order.
var PlatformFormats = []string{FormatK8sAudit, FormatCertManager, FormatSPIRE, FormatCT}

// OrgDomain is the organization's public DNS domain: every certificate the
// generator issues for public names is under it, so a detector configured
// with it (issuance_use.org_domains) checks them against the sanctioned
// issuers.
const OrgDomain = "example.org"

// Identities of the platform's controllers, as the decoders resolve them
// ("default" is the Kubernetes decoders' cluster name when none is given).
const (
	deployerUser     = "system:serviceaccount:argocd:argocd-application-controller"
	DeployerIdentity = "k8s:sa/default/argocd/argocd-application-controller"
	CertManagerID    = "k8s:sa/default/cert-manager/cert-manager"
)

const (
	platformStream = 0x706c6174666f726d // "platform"
	numNodes       = 6
	// svidTTL is the SPIRE server's default_x509_svid_ttl here; agents
	// rotate an SVID when half of it has passed.
	svidTTL = 4 * time.Hour
	// A public certificate (Let's Encrypt) lives 90 days and cert-manager
	// renews it at two thirds of that; an internal webhook certificate lives a day and is
	// renewed after 16 hours.
	publicDuration   = 90 * 24 * time.Hour
	publicRenew      = 60 * 24 * time.Hour
	internalDuration = 24 * time.Hour
	internalRenew    = 16 * time.Hour
	// ctIssuer is the intermediate that signs the ACME issuer's
	// certificates, as CT logs show it.
	ctIssuerCN, ctIssuerO = "R11", "Let's Encrypt"
)

// ctLogs are the logs a public certificate's precertificate is submitted
// to; certstream reports its entry in each.
var ctLogs = []string{"https://oak.ct.letsencrypt.org/2026h1/", "https://ct.googleapis.com/logs/us1/argon2026h1/"}

// Event kinds of the platform's logs, after the original ones.
const (
	kK8s uint8 = kVaultResp + 1 + iota
	kCertIssued
	kSVID
	kCT
)

// cert is a certificate cert-manager keeps renewed.
type cert struct {
	ns, name string   // the Certificate resource
	issuer   string   // its ClusterIssuer
	dns      []string // its DNS names
	duration time.Duration
	renew    time.Duration
	phase    int64 // ns into the first renewal period of the first issuance in the run
	seed     uint64
}

// platform is what the platform's logs need beyond the population.
type platform struct {
	certs  []cert
	agents []string // SPIRE agent SPIFFE id per node
	node   []int    // node of each workload
	// deploys holds each workload's deploy times (unix ns), for the
	// lifecycle's churn.
	deploys [][]int64
}

// buildPlatform draws the platform from its own stream, so selecting it
// changes nothing else.
func (g *generator) buildPlatform() *platform {
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), platformStream))
	pl := &platform{}
	for range numNodes {
		pl.agents = append(pl.agents, "spiffe://"+trustDomain+"/spire/agent/k8s_psat/prod/"+randUUID(r))
	}
	for range g.pop.workloads {
		pl.node = append(pl.node, r.IntN(numNodes))
	}
	for _, ns := range namespaces {
		pl.certs = append(pl.certs,
			cert{ns: ns, name: ns + "-public-tls", issuer: "letsencrypt-prod", dns: []string{ns + "." + OrgDomain, "www." + ns + "." + OrgDomain},
				duration: publicDuration, renew: publicRenew, phase: r.Int64N(int64(publicRenew)), seed: r.Uint64()},
			cert{ns: ns, name: ns + "-api-tls", issuer: "letsencrypt-prod", dns: []string{"api." + ns + "." + OrgDomain},
				duration: publicDuration, renew: publicRenew, phase: r.Int64N(int64(publicRenew)), seed: r.Uint64()},
			cert{ns: ns, name: ns + "-webhook-tls", issuer: "internal-ca", dns: []string{"webhook." + ns + ".svc", "webhook." + ns + ".svc.cluster.local"},
				duration: internalDuration, renew: internalRenew, phase: r.Int64N(int64(internalRenew)), seed: r.Uint64()})
	}
	return pl
}

// public reports whether c is issued by the ACME issuer, whose
// certificates CT logs record.
func (c *cert) public() bool { return c.issuer == "letsencrypt-prod" }

// serial is the hex serial of c's k-th issuance in the run.
func (c *cert) serial(k int64) string {
	return serialHex(mix(c.seed+uint64(k)), mix(c.seed^uint64(k)))
}

// serialHex is a 128-bit serial as 32 hex digits; the first is never 0, so
// the decoders' normalization (which drops leading zeros) keeps it as is.
func serialHex(hi, lo uint64) string {
	return string(appendHex(appendHex(nil, hi>>2|1<<62, 16), lo, 16))
}

// platformEvents schedules the platform's logs: deploys of the workloads
// (Kubernetes audit) with the new pods' SVIDs, SVID rotation (SPIRE),
// certificate renewals (cert-manager) and the public ones' CT entries.
func (g *generator) platformEvents() []event {
	r := rand.New(rand.NewPCG(uint64(g.cfg.Seed), platformStream+1))
	pl := g.plat
	var evs []event
	pl.deploys = make([][]int64, len(g.pop.workloads))
	for i := range g.pop.workloads {
		// A running SVID at the start, rotated at half its TTL.
		half := int64(svidTTL / 2)
		k := int64(0)
		for t := g.start + r.Int64N(half); t < g.end; t += half {
			evs = append(evs, g.svidEvent(r, i, t, k))
			k++
		}
		// Deploys: about one every three days, on weekdays 09–17 UTC, each
		// rolling out new pods that fetch SVIDs of their own.
		for d := g.start - g.start%int64(24*time.Hour); d < g.end; d += int64(24 * time.Hour) {
			if hourOfWeek(d)/24 >= 5 || r.IntN(3) != 0 {
				continue
			}
			t := d + 9*int64(time.Hour) + r.Int64N(8*int64(time.Hour))
			if t < g.start || t >= g.end {
				continue
			}
			ev := g.newEvent(kK8s, t, r)
			ev.id = int32(i)
			evs = append(evs, ev)
			pl.deploys[i] = append(pl.deploys[i], ev.t)
			for j := range len(g.pop.workloads[i].hosts) {
				evs = append(evs, g.svidEvent(r, i, t+int64(20+15*j)*int64(time.Second)+r.Int64N(int64(5*time.Second)), k))
				k++
			}
		}
	}
	for ci := range pl.certs {
		c := &pl.certs[ci]
		for k, t := int64(0), g.start+c.phase; t < g.end; k, t = k+1, t+int64(c.renew) {
			ev := g.newEvent(kCertIssued, t, r)
			ev.id, ev.c = int32(ci), k
			evs = append(evs, ev)
			if !c.public() {
				continue
			}
			// certstream sees each log's entry a few minutes later.
			for li := range ctLogs {
				ct := g.newEvent(kCT, t+int64(time.Minute)+r.Int64N(int64(8*time.Minute)), r)
				ct.id, ct.a, ct.c = int32(ci), int32(li), k
				if ct.t < g.end { // records stay within the run
					evs = append(evs, ct)
				}
			}
		}
	}
	return evs
}

func (g *generator) svidEvent(r *rand.Rand, i int, t, k int64) event {
	ev := g.newEvent(kSVID, t, r)
	ev.id, ev.c = int32(i), k
	return ev
}

func (rr *renderer) platformKey(ev *event) []byte {
	g := rr.g
	switch ev.kind {
	case kK8s:
		return []byte(DeployerIdentity)
	case kCertIssued:
		return []byte(CertManagerID)
	case kSVID:
		return []byte(g.plat.agents[g.plat.node[ev.id]])
	case kK8sClient:
		return rr.lifecycleKey(ev)
	}
	if ev.mode == modeShadow {
		return []byte(shadowIdentity(g.shadow))
	}
	c := &g.plat.certs[ev.id]
	return []byte("cert:" + ctIssuerCN + "/" + c.serial(ev.c))
}

func (rr *renderer) renderPlatform(w *jw, ev *event) {
	switch ev.kind {
	case kK8s:
		rr.k8sDeploy(w, ev)
	case kCertIssued:
		rr.certIssued(w, ev)
	case kSVID:
		rr.svid(w, ev)
	case kK8sClient:
		rr.k8sClient(w, ev)
	default:
		rr.ctEntry(w, ev)
	}
}

// k8sDeploy writes the apiserver's ResponseComplete Event of Argo CD
// patching a workload's Deployment (a new image).
func (rr *renderer) k8sDeploy(w *jw, ev *event) {
	wl := &rr.g.pop.workloads[ev.id]
	rr.argoPatch(w, ev, wl.ns, wl.sa)
}

// argoPatch writes Argo CD's patch of the Deployment ns/name.
func (rr *renderer) argoPatch(w *jw, ev *event, ns, name string) {
	r := rr.r
	recv := time.Duration(2+r.IntN(20)) * time.Millisecond
	a := auditEntry{
		auditID:   uuidString(r.Uint64(), r.Uint64()),
		verb:      "patch",
		uri:       "/apis/apps/v1/namespaces/" + ns + "/deployments/" + name + "?fieldManager=argocd-controller",
		user:      deployerUser,
		userUID:   "5b0c6d1e-8f2a-4c3b-9d4e-7a6f5b4c3d2e",
		groupNS:   "argocd",
		sourceIP:  "10.0.3." + strconv.Itoa(20+r.IntN(3)),
		userAgent: "argocd-controller/v2.11.3+unknown (linux/amd64) kubernetes/$Format",
		call:      k8sCall{verb: "patch", group: "apps", resource: "deployments", ns: ns, name: name},
		code:      200,
		recv:      recv,
		reason:    `RBAC: allowed by ClusterRoleBinding "argocd-application-controller" of ClusterRole "argocd-application-controller" to ServiceAccount "argocd-application-controller/argocd"`,
	}
	a.write(w, ev.t)
}

// auditEntry is what one audit.k8s.io/v1 Event at level Metadata says
// beyond its time.
type auditEntry struct {
	auditID, verb, uri      string
	user, userUID, groupNS  string
	pod, node, credentialID string // user.extra of a pod's bound token; "" for none
	sourceIP, userAgent     string
	call                    k8sCall
	code                    int64
	recv                    time.Duration // how long before stageTimestamp the request came
	reason                  string
}

// k8sCall is the object of a Kubernetes API request.
type k8sCall struct {
	verb, group, resource, sub string
	ns, name                   string // "" for cluster-wide lists and watches
}

// write writes the ResponseComplete stage of the request, completed at t
// (unix ns).
func (a *auditEntry) write(w *jw, t int64) {
	end := time.Unix(0, t).UTC()
	w.open("")
	w.str("kind", "Event")
	w.str("apiVersion", "audit.k8s.io/v1")
	w.str("level", "Metadata")
	w.str("auditID", a.auditID)
	w.str("stage", "ResponseComplete")
	w.str("requestURI", a.uri)
	w.str("verb", a.verb)
	w.open("user")
	w.str("username", a.user)
	w.str("uid", a.userUID)
	w.arr("groups")
	w.elem("system:serviceaccounts")
	w.elem("system:serviceaccounts:" + a.groupNS)
	w.elem("system:authenticated")
	w.endArr()
	if a.pod != "" {
		w.open("extra")
		w.arr("authentication.kubernetes.io/credential-id")
		w.elem("JTI=" + a.credentialID)
		w.endArr()
		w.arr("authentication.kubernetes.io/node-name")
		w.elem(a.node)
		w.endArr()
		w.arr("authentication.kubernetes.io/pod-name")
		w.elem(a.pod)
		w.endArr()
		w.close()
	}
	w.close()
	w.arr("sourceIPs")
	w.elem(a.sourceIP)
	w.endArr()
	w.str("userAgent", a.userAgent)
	w.open("objectRef")
	w.str("resource", a.call.resource)
	if a.call.ns != "" {
		w.str("namespace", a.call.ns)
	}
	if a.call.name != "" {
		w.str("name", a.call.name)
	}
	w.str("apiGroup", a.call.group)
	w.str("apiVersion", "v1")
	if a.call.sub != "" {
		w.str("subresource", a.call.sub)
	}
	w.close()
	w.open("responseStatus")
	w.raw("metadata", "{}")
	w.int("code", a.code)
	w.close()
	w.str("requestReceivedTimestamp", end.Add(-a.recv).Format("2006-01-02T15:04:05.000000Z"))
	w.str("stageTimestamp", end.Format("2006-01-02T15:04:05.000000Z"))
	w.open("annotations")
	w.str("authorization.k8s.io/decision", "allow")
	w.str("authorization.k8s.io/reason", a.reason)
	w.close()
	w.close()
}

// certIssued writes cert-manager's "certificate issued" line for a
// CertificateRequest, with the serial and names its issuer signed.
func (rr *renderer) certIssued(w *jw, ev *event) {
	c := &rr.g.plat.certs[ev.id]
	req := c.name + "-" + strconv.FormatInt(ev.c+1, 10)
	w.open("")
	w.raw("ts", strconv.FormatFloat(float64(ev.t)/1e9, 'f', 6, 64))
	caller, logger := "ca/ca.go:124", "cert-manager.controller.certificaterequests-issuer-ca.sign"
	if c.public() {
		caller, logger = "acme/acme.go:236", "cert-manager.controller.certificaterequests-issuer-acme.sign"
	}
	w.str("caller", caller)
	w.str("msg", "certificate issued")
	w.int("v", 2)
	w.str("logger", logger)
	w.str("resource_name", req)
	w.str("resource_namespace", c.ns)
	w.str("resource_kind", "CertificateRequest")
	w.str("resource_version", "v1")
	w.str("related_resource_name", c.issuer)
	w.str("related_resource_namespace", "")
	w.str("related_resource_kind", "ClusterIssuer")
	w.str("serial_number", c.serial(ev.c))
	w.str("common_name", c.dns[0])
	w.arr("dns_names")
	for _, n := range c.dns {
		w.elem(n)
	}
	w.endArr()
	w.close()
}

// svid writes the SPIRE server's "Signed X509 SVID" line for a workload's
// SVID, requested by the agent of its node.
func (rr *renderer) svid(w *jw, ev *event) {
	r := rr.r
	g := rr.g
	wl := &g.pop.workloads[ev.id]
	t := time.Unix(0, ev.t).UTC()
	node := g.plat.node[ev.id]
	serial := new(big.Int).SetUint64(mix(uint64(ev.id)<<32 ^ uint64(ev.c) ^ g.plat.certs[0].seed))
	serial.Lsh(serial, 60).Or(serial, new(big.Int).SetUint64(mix(ev.seed)>>4))
	w.open("")
	w.str("caller_addr", "10.0.9."+strconv.Itoa(10+node)+":"+strconv.Itoa(32768+r.IntN(28000)))
	w.str("caller_id", g.plat.agents[node])
	w.str("expiration", t.Add(svidTTL).Truncate(time.Second).Format(time.RFC3339))
	w.str("level", "debug")
	w.str("method", "BatchNewX509SVID")
	w.str("msg", "Signed X509 SVID")
	w.str("request_id", uuidString(r.Uint64(), r.Uint64()))
	w.str("serial_num", serial.String())
	w.str("service", "svid.v1.SVID")
	w.str("spiffe_id", wl.spiffe)
	w.str("subsystem_name", "api")
	w.str("time", t.Format("2006-01-02T15:04:05.000000Z07:00"))
	w.close()
}

// ctEntry writes certstream-server's certificate_update for a public
// certificate's entry in a CT log.
func (rr *renderer) ctEntry(w *jw, ev *event) {
	g := rr.g
	var (
		serial, issuerCN, issuerO, logURL string
		dns                               []string
		notBefore                         int64
		life                              time.Duration
	)
	if ev.mode == modeShadow {
		s := &g.shadow
		serial, issuerCN, issuerO, logURL, dns, life = s.serial, shadowIssuerCN, shadowIssuerO, shadowLog, s.dns, 90*24*time.Hour
		notBefore = ev.t/int64(time.Second) - 300
	} else {
		c := &g.plat.certs[ev.id]
		serial, issuerCN, issuerO, logURL, dns, life = c.serial(ev.c), ctIssuerCN, ctIssuerO, ctLogs[ev.a], c.dns, c.duration
		// The CA backdates notBefore an hour, as Let's Encrypt does.
		notBefore = (g.start+c.phase+ev.c*int64(c.renew))/int64(time.Second) - 3600
	}
	w.open("")
	w.str("message_type", "certificate_update")
	w.open("data")
	w.str("update_type", "X509LogEntry")
	w.open("leaf_cert")
	w.open("subject")
	w.str("aggregated", "/CN="+dns[0])
	w.str("CN", dns[0])
	w.close()
	w.open("issuer")
	w.str("aggregated", "/C=US/O="+issuerO+"/CN="+issuerCN)
	w.str("C", "US")
	w.str("O", issuerO)
	w.str("CN", issuerCN)
	w.close()
	w.arr("all_domains")
	for _, n := range dns {
		w.elem(n)
	}
	w.endArr()
	w.raw("not_before", strconv.FormatInt(notBefore, 10))
	w.raw("not_after", strconv.FormatInt(notBefore+int64(life/time.Second)-1, 10))
	w.str("serial_number", upperHex(serial))
	w.close()
	// A log's index grows with time; 128 slots a second, by certificate,
	// keep the entries of one second apart.
	index := strconv.FormatInt(100_000_000+(ev.t-g.start)/int64(time.Second)*128+int64(ev.id%128), 10)
	w.raw("cert_index", index)
	w.str("cert_link", logURL+"ct/v1/get-entries?start="+index+"&end="+index)
	w.raw("seen", strconv.FormatFloat(float64(ev.t)/1e9, 'f', 6, 64))
	w.open("source")
	w.str("name", logURL)
	w.str("url", logURL)
	w.close()
	w.close()
	w.close()
}

// upperHex writes a serial as certstream does: upper-case hex.
func upperHex(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
