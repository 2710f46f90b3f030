// Package meshgraph owns the mesh-graph detector (SPEC §5.12). It reads
// mesh-family events (Envoy, Istio, ztunnel, Linkerd access logs), in which
// the event's identity is the calling workload, Target.Peer the called one
// (upstream) and Actor.Peer the downstream peer when logged, and reports
// three things:
//
// New edge (T1021, Remote Services). An edge is (caller → peer, route), the
// baseline's DimEdge value "peer action". A call on an edge the identity has
// never used is reported when the identity is past its learning period, is
// not re-learning after a deploy of its workload, knows at least MinEdges
// edges (an identity whose logs never named a peer has no graph to deviate
// from), and its edge set has not grown for StableFor (default 72h). This is
// finer than the new_value finding on DimPeer: a new route to a known peer is
// a new edge too, except when that peer already served the route to another
// caller: a route of the peer's API that others use, reached over a
// relationship the identity already has, is how a service's use of its
// dependencies grows (a release calling one more endpoint), not a move
// across the graph, so it is learned without a finding. The set is judged as it was before the hour's first
// reported edge, so the first edge of an attack does not make the next ones
// look like a growing set; at most MaxEdgeFindingsPerHour (default 5) edges
// are reported per identity and hour, the rest are learned silently (a route
// enumeration is the denial burst's business). With s the time the set has
// gone without growing:
//
//	score = 50 + 25·min(1, s / (2·StableFor)) + 25·[peer never called before]
//
// Foreign trust domain (T1199, Trusted Relationship). The identity's own
// trust domain is its model's (Model.TrustDomain) or, before its first
// rebuild, the one in its SPIFFE id. Each SPIFFE party of the call
// (Target.Peer, and Actor.Peer when it is not the identity itself) whose
// trust domain differs from it makes a cross-domain call; it is quiet only
// when both domains are listed in TrustedDomains (the organization's own
// domains and its federation partners; empty: every cross-domain call is
// reported). A foreign caller on an inbound log is covered too: it is the
// event's identity there, calling into a listed domain from an unlisted one.
// This check needs no baseline, so it also runs for identities still
// learning (a foreign workload is always new). One finding per (identity,
// other domain): score 90 when the call succeeded, 70 when it was refused.
//
// Mesh authorization-denial burst (T1046, Network Service Discovery). On a
// mesh event denied by the mesh (RBAC or ext_authz, or a 401/403, which the
// decoders classify as denied), with the hour's counters n calls and d
// denials (the Window, this event included) and the identity's historical
// denied ratio r (Model.DeniedRatio), the expected denials are e = r·n. The
// detector fires when
//
//	d ≥ MinDenied (default 20)  and  d ≥ DeniedFactor·e (default 5)
//
// once per identity and hour, scored by the Poisson tail p = P(X ≥ d | λ =
// max(e, 0.1)) as score = min(100, 50 + 10·log10(1/p)); high when most of
// the hour's calls were denied, else medium. It needs the identity's model
// (quiet before the first rebuild and while learning). The Window counts the
// identity's denials of every family; a SPIFFE identity's events are
// almost all mesh logs (Kubernetes audit names the service account, not the
// SPIFFE id), so the count is the mesh's.
//
// State. Besides the Profile, the detector remembers, in one set bounded by
// MaxState keys (default 100,000; about 40 bytes each) with the oldest
// evicted first, which (identity, domain) pairs and (identity, hour) denial
// bursts it has reported and how many edges it has reported per (identity,
// hour). An evicted key can only repeat a finding, with the same
// deterministic id, which the engine's suppression drops. A second set of
// at most MaxState keys remembers, per (peer, route) served successfully,
// its first caller and whether another one followed; an evicted route only
// makes its next new caller's edge reported as if the route were unshared.
// That set lives in memory and sees the callers this instance processes
// (one partition's, when scaled out): after a restart, or for callers on
// other instances, a shared route counts as unshared until seen again,
// which can only add findings, never hide one. Detect must be
// called from one goroutine, as the engine does.
package meshgraph

import (
	"fmt"
	"hash/maphash"
	"math"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"gonum.org/v1/gonum/stat/distuv"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/internal/bounded"
	"github.com/nhisentry/nhisentry/detectors/internal/finding"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "mesh_graph"

// ATT&CK techniques of the three findings.
const (
	TechniqueEdge        = "T1021" // Remote Services: lateral movement over a new edge
	TechniqueTrustDomain = "T1199" // Trusted Relationship: a peer from outside the federation
	TechniqueDenialBurst = "T1046" // Network Service Discovery: probing what the mesh allows
)

// Config tunes the detector.
type Config struct {
	// StableFor is how long the edge set must have gone without growing
	// for a new edge to be reported. Default 72h.
	StableFor time.Duration `yaml:"stable_for"`
	// MinEdges is how many edges an identity must know before a new one is
	// news. Default 1.
	MinEdges int `yaml:"min_edges"`
	// MaxEdgeFindingsPerHour caps the new-edge findings per identity and
	// hour. Default 5.
	MaxEdgeFindingsPerHour int `yaml:"max_edge_findings_per_hour"`
	// TrustedDomains are the SPIFFE trust domains of the organization and
	// its federation partners; a call between two different domains is
	// quiet only when both are listed. Empty: every cross-domain call is
	// reported.
	TrustedDomains []string `yaml:"trusted_domains"`
	// MinDenied is the fewest mesh denials in an hour that make a burst.
	// Default 20.
	MinDenied uint32 `yaml:"min_denied"`
	// DeniedFactor is how many times the denials expected from the
	// identity's denied ratio a burst must reach. Default 5.
	DeniedFactor float64 `yaml:"denied_factor"`
	// MaxState bounds the detector's memory of reported pairs and hours.
	// Default 100,000.
	MaxState int `yaml:"max_state"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{
		StableFor: 72 * time.Hour, MinEdges: 1, MaxEdgeFindingsPerHour: 5,
		MinDenied: 20, DeniedFactor: 5, MaxState: 100_000,
	}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.StableFor <= 0 {
		errs = append(errs, fmt.Errorf("stable_for must be positive, got %v", c.StableFor))
	}
	if c.MinEdges < 1 {
		errs = append(errs, fmt.Errorf("min_edges must be at least 1, got %d", c.MinEdges))
	}
	if c.MaxEdgeFindingsPerHour < 1 {
		errs = append(errs, fmt.Errorf("max_edge_findings_per_hour must be at least 1, got %d", c.MaxEdgeFindingsPerHour))
	}
	for i, td := range c.TrustedDomains {
		if !validDomain(strings.ToLower(td)) {
			errs = append(errs, fmt.Errorf("trusted_domains[%d]: %q is not a SPIFFE trust domain (letters, digits, '.', '-', '_'; no scheme or path)", i, td))
		}
	}
	if c.MinDenied == 0 {
		errs = append(errs, fmt.Errorf("min_denied must be positive"))
	}
	if !(c.DeniedFactor >= 1) {
		errs = append(errs, fmt.Errorf("denied_factor must be at least 1, got %v", c.DeniedFactor))
	}
	if c.MaxState < 1 {
		errs = append(errs, fmt.Errorf("max_state must be positive, got %d", c.MaxState))
	}
	return errs
}

func validDomain(td string) bool {
	for i := 0; i < len(td); i++ {
		if c := td[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return td != ""
}

// Detector is the mesh-graph detector. It is not safe for concurrent use.
type Detector struct {
	cfg     Config
	trusted []string // lower-cased
	state   *bounded.FIFO[uint64, memo]
	served  *bounded.FIFO[uint64, callers] // by key(keyServed, peer, route)
	// edge is scratch for the DimEdge value of the event.
	edge []byte
}

// memo is what the detector remembers per key: for an (identity, hour) of
// new edges, how many it reported and since when the set had been stable.
type memo struct {
	n     int32
	since int64 // Unix seconds
}

// callers is who a peer served a route to: the first caller (a hash of its
// id) and whether any other followed.
type callers struct {
	first  uint64
	shared bool
}

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector {
	d := &Detector{cfg: cfg, state: bounded.NewFIFO[uint64, memo](cfg.MaxState), served: bounded.NewFIFO[uint64, callers](cfg.MaxState)}
	for _, td := range cfg.TrustedDomains {
		d.trusted = append(d.trusted, strings.ToLower(td))
	}
	return d
}

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	ev := in.Event
	if ev.Source.Family != schemas.FamilyMesh {
		return dst
	}
	dst = d.trustDomains(in, dst)
	if ev.Target.Peer != "" {
		dst = d.newEdge(in, dst)
		d.serve(ev)
	}
	if ev.Outcome.Result == schemas.ResultDenied {
		dst = d.denialBurst(in, dst)
	}
	return dst
}

// Keys of the state set, by kind.
const (
	keyDomain byte = iota + 1
	keyEdgeHour
	keyDenyHour
	keyServed
)

var seed = maphash.MakeSeed()

func key(kind byte, identity, part string, n int64) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteByte(kind)
	h.WriteString(identity)
	h.WriteByte(0)
	h.WriteString(part)
	var b [8]byte
	for i := range b {
		b[i] = byte(n >> (8 * i))
	}
	h.Write(b[:])
	return h.Sum64()
}

// trustDomain is the trust domain of a SPIFFE id, or false.
func trustDomain(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://")
	if !ok {
		return "", false
	}
	td, _, _ := strings.Cut(rest, "/")
	return td, td != ""
}

func (d *Detector) isTrusted(td string) bool {
	for _, t := range d.trusted {
		if t == td {
			return true
		}
	}
	return false
}

func (d *Detector) trustDomains(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	ev := in.Event
	own := ""
	if m := in.Profile.Model(); m != nil {
		own = m.TrustDomain
	}
	if own == "" {
		own, _ = trustDomain(ev.Identity.ID)
	}
	if own == "" {
		return dst // not a SPIFFE identity: no trust domain to leave
	}
	for i, party := range [2]string{ev.Target.Peer, ev.Actor.Peer} {
		if party == "" || party == ev.Identity.ID {
			continue
		}
		td, ok := trustDomain(party)
		if !ok || td == own || (d.isTrusted(td) && d.isTrusted(own)) {
			continue
		}
		k := key(keyDomain, ev.Identity.ID, td, 0)
		if _, seen := d.state.Get(k); seen {
			continue
		}
		d.state.Put(k, memo{})
		dst = append(dst, d.domainFinding(ev, own, td, party, i == 0))
	}
	return dst
}

func (d *Detector) domainFinding(ev *schemas.Event, own, td, party string, upstream bool) schemas.Finding {
	score := 90
	if ev.Outcome.Result != schemas.ResultSuccess {
		score = 70
	}
	verb := "called"
	if !upstream {
		verb = "was called by"
	}
	trusted := "none listed"
	if len(d.trusted) > 0 {
		trusted = strings.Join(d.trusted, ", ")
	}
	return schemas.Finding{
		ID:       schemas.FindingID(Name, ev.Identity.ID, "trust_domain", td),
		Detector: Name,
		Identity: ev.Identity,
		Severity: finding.Severity(float64(score)),
		Score:    score,
		Title:    fmt.Sprintf("Mesh call across trust domains %s and %s", own, td),
		Explanation: fmt.Sprintf("%s (trust domain %s) %s %s in trust domain %s (%s, %s); expected calls within %s or between trusted domains (%s)",
			ev.Identity.ID, own, verb, party, td, ev.Action, outcomeText(ev.Outcome), own, trusted),
		Technique: TechniqueTrustDomain,
		EventIDs:  []string{ev.ID},
		FirstSeen: ev.Time,
		LastSeen:  ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternUnseen,
			Observed: "trust_domain=" + td,
			Baseline: fmt.Sprintf("own trust domain %s; trusted: %s", own, trusted),
		},
	}
}

func outcomeText(o schemas.Outcome) string {
	s := string(o.Result)
	if o.Status != 0 {
		s += " " + strconv.Itoa(o.Status)
	}
	if o.ErrorCode != "" {
		s += " " + o.ErrorCode
	}
	return s
}

// edgeValue is the DimEdge value of ev in d's scratch buffer, valid until
// the next call.
func (d *Detector) edgeValue(ev *schemas.Event) string {
	d.edge = append(append(append(d.edge[:0], ev.Target.Peer...), ' '), ev.Action...)
	return unsafe.String(unsafe.SliceData(d.edge), len(d.edge))
}

// serve records that ev's peer served ev's route to ev's identity; a call
// that did not succeed proves nothing about the peer's API.
func (d *Detector) serve(ev *schemas.Event) {
	if ev.Outcome.Result != schemas.ResultSuccess {
		return
	}
	k, caller := key(keyServed, ev.Target.Peer, ev.Action, 0), key(keyServed, ev.Identity.ID, "", 0)
	c, ok := d.served.Get(k)
	switch {
	case !ok:
		d.served.Put(k, callers{first: caller})
	case !c.shared && c.first != caller:
		d.served.Put(k, callers{first: c.first, shared: true})
	}
}

// servedToOthers reports whether ev's peer has served ev's route to a
// caller other than ev's identity.
func (d *Detector) servedToOthers(ev *schemas.Event) bool {
	c, ok := d.served.Get(key(keyServed, ev.Target.Peer, ev.Action, 0))
	return ok && (c.shared || c.first != key(keyServed, ev.Identity.ID, "", 0))
}

func (d *Detector) newEdge(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if in.Learning || in.Relearning {
		return dst
	}
	p, ev := in.Profile, in.Event
	edges := p.KnownCount(baseline.DimEdge)
	if edges < d.cfg.MinEdges || p.Knows(baseline.DimEdge, d.edgeValue(ev)) {
		return dst
	}
	newPeer := !p.Knows(baseline.DimPeer, ev.Target.Peer)
	if !newPeer && d.servedToOthers(ev) {
		return dst // a known peer's route that others use: learned, see the package doc
	}
	k := key(keyEdgeHour, ev.Identity.ID, "", in.Window.Hour)
	m, burst := d.state.Get(k)
	if burst {
		if int(m.n) >= d.cfg.MaxEdgeFindingsPerHour {
			return dst
		}
	} else {
		m.since = p.LastGrew(baseline.DimEdge).Unix()
	}
	since := time.Unix(m.since, 0).UTC()
	stable := ev.Time.Sub(since)
	if !burst && stable < d.cfg.StableFor {
		return dst // the set still grows: a young or changing service
	}
	m.n++
	d.state.Put(k, m)

	score := 50 + 25*min(1, stable.Hours()/(2*d.cfg.StableFor.Hours()))
	peerText := "a known peer"
	if newPeer {
		score += 25
		peerText = "a peer it never called"
	}
	return append(dst, schemas.Finding{
		ID:       schemas.FindingID(Name, ev.Identity.ID, "edge", ev.Target.Peer, ev.Action),
		Detector: Name,
		Identity: ev.Identity,
		Severity: finding.Severity(score),
		Score:    int(score + 0.5),
		Title:    "New mesh edge from " + ev.Identity.ID,
		Explanation: fmt.Sprintf("%s called %s on %s, %s (%s); its %d known edges (%d peers) had not changed for %s, expected no new edge",
			ev.Identity.ID, ev.Action, ev.Target.Peer, peerText, outcomeText(ev.Outcome), edges, p.KnownCount(baseline.DimPeer), days(stable)),
		Technique: TechniqueEdge,
		EventIDs:  []string{ev.ID},
		FirstSeen: ev.Time,
		LastSeen:  ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternUnseen,
			Observed: "edge=" + ev.Target.Peer + " " + ev.Action,
			Baseline: fmt.Sprintf("%d known edges, last new one %s ago", edges, days(stable)),
		},
	})
}

func (d *Detector) denialBurst(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if in.Learning {
		return dst
	}
	m := in.Profile.Model()
	if m == nil {
		return dst
	}
	n, denied := in.Window.Count, in.Window.Denied
	if denied < d.cfg.MinDenied {
		return dst
	}
	ratio := float64(m.DeniedRatio)
	expected := ratio * float64(n)
	if float64(denied) < d.cfg.DeniedFactor*expected {
		return dst
	}
	ev := in.Event
	k := key(keyDenyHour, ev.Identity.ID, "", in.Window.Hour)
	if _, seen := d.state.Get(k); seen {
		return dst
	}
	d.state.Put(k, memo{})

	p := distuv.Poisson{Lambda: max(expected, 0.1)}.Survival(float64(denied) - 1)
	score := 100.0
	if p > 0 {
		score = min(100, 50+10*math.Log10(1/p))
	}
	sev := schemas.SeverityMedium
	if 2*denied > n {
		sev = schemas.SeverityHigh
	}
	hour := time.Unix(in.Window.Hour*3600, 0).UTC().Format("Mon 15:00")
	return append(dst, schemas.Finding{
		ID:       schemas.FindingID(Name, ev.Identity.ID, "denials", strconv.FormatInt(in.Window.Hour, 10)),
		Detector: Name,
		Identity: ev.Identity,
		Severity: sev,
		Score:    int(score + 0.5),
		Title:    "Mesh authorization-denial burst for " + ev.Identity.ID,
		Explanation: fmt.Sprintf("%d of %d mesh calls denied in the hour from %s (latest: %s on %s, %s); baseline denied ratio %.2f%%, %.2f denials expected",
			denied, n, hour, ev.Action, ev.Target.Peer, outcomeText(ev.Outcome), 100*ratio, expected),
		Technique: TechniqueDenialBurst,
		EventIDs:  []string{ev.ID},
		FirstSeen: ev.Time,
		LastSeen:  ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternSurge,
			Observed: fmt.Sprintf("%d denied of %d calls in hour %s", denied, n, hour),
			Baseline: fmt.Sprintf("denied ratio %.2f%% (%.2f expected)", 100*ratio, expected),
		},
	})
}

func days(d time.Duration) string { return fmt.Sprintf("%.1f days", d.Hours()/24) }
