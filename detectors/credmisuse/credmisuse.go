// Package credmisuse owns the credential-misuse detector (SPEC §5, item 6):
// five checks on how a credential is used, each reported as its own kind of
// finding. Every finding id is FindingID(Name, identity, kind, key…), so a
// repeat of the same misuse is one finding.
//
// Outside its environment (kind outside_environment, key "network" and the
// /24 or /64, or "cluster" and the cluster). A workload credential belongs
// where its workload runs. A credential is a workload's when the identity
// matches WorkloadIdentities (default spiffe://* and k8s:sa/*), the
// credential type is in WorkloadCredentialTypes (SVIDs, Kubernetes
// service-account tokens), it is the STS session of an instance profile
// (session name i-…), or, given a link lookup, it was issued to an identity
// matching WorkloadIdentities. It is reported when used from an address
// outside InternalCIDRs and NATCIDRs whose network the identity's baseline
// has never seen (score 85), or from another cluster than the one it was
// issued in or belongs to (k8s:sa/<cluster>/…, issuer k8s:<cluster>) that
// the baseline does not know either (score 80). Cloud accounts are not
// compared: cross-account access is routine and the baseline has no account
// set. A workload on public addresses (EC2 in a public subnet, hostNetwork
// pods on public nodes) needs those ranges in InternalCIDRs or NATCIDRs.
//
// Two sources at once (kind concurrent_sources, key the credential and the
// two networks). The detector remembers, per credential id, the last source
// network, when it was used from it and whether that network was "ours":
// inside InternalCIDRs or NATCIDRs, or known to the identity's baseline
// before that use (the baseline learns every network online, so this is
// decided when the network is first seen). A use from another network
// within ConcurrentWindow (default 5 min) is reported when at least one of
// the two networks is not ours (score 80, 85 when neither is): the
// legitimate workload keeps its own network while a thief uses the
// credential from elsewhere. Two networks that are both ours (a VPC endpoint
// and the NAT gateway, two egress addresses) are one environment.
//
// Expired (kind expired, key the credential). A successful use later than
// Credential.ExpiresAt + ClockSkew (default 2 min): the verifier accepted a
// credential it should not have, or the event's expiry is that of a renewed
// credential the pipeline did not see renewed. Score 70, 85 beyond an hour.
// A denied use of an expired credential is the verifier doing its job and
// routine for clients that refresh late; it is not reported. The issuance
// event of the credential itself (a CT entry of an old certificate) is not a
// use.
//
// Revoked (kinds revoked and revoked_attempt, key the credential). The
// detector remembers credentials revoked earlier in the stream: Vault
// auth/token/revoke-self (the caller's accessor) and
// auth/token/revoke-accessor/<accessor>; an AWS iam:DeleteAccessKey whose
// target names the access key id (AKIA…/ASIA…); a Kubernetes delete of a
// secret that tokens from a TokenRequest were bound to (the issuance's SAN
// secret:<name>). A successful use after the revocation (plus ClockSkew) is
// revoked, score 90: revocation was not enforced. A denied or failed one is
// revoked_attempt, score 35: someone still holds a withdrawn credential (an
// attacker retrying after a response, or a workload not yet restarted).
// What the decoders cannot name is not matched: Vault revocations whose
// accessor or token is only in the (HMAC'd) request body, lease and PKI
// revocations, CloudTrail's DeleteAccessKey and UpdateAccessKey (the
// decoder does not carry requestParameters.accessKeyId or status yet), and
// legacy token secrets (their tokens carry no credential id).
//
// Shadow issuer (kind shadow_issuer, key the issuer). An issuance event whose
// issuer matches none of SanctionedIssuers: a credential no sanctioned
// issuer issued. Score 80. The list is empty by default, which turns the
// check off: there is no safe default list of an organization's CAs and
// token issuers.
//
// Static credential age (kind static_age, key the credential). A credential
// of a long-lived type (StaticCredentialTypes: AWS AKIA access keys, GCP
// service-account keys, API-gateway and Kong keys, Entra client
// credentials, Azure storage account keys) whose IssuedAt is known and older
// than MaxStaticAge (default 90 days), unless its known expiry comes within
// that age (then it is not long-lived, and the expiry check owns it):
//
//	score = min(75, 50 + 10·log2(age / MaxStaticAge))
//
// The decoders know no creation time of static keys, so this check fires
// once something links the key to its creation (ingest.Linker fills
// IssuedAt from an issuance event of the credential).
//
// Severity follows the score: ≥ 80 high, ≥ 60 medium, else low. The checks
// that judge against the baseline (outside environment, two sources) wait
// for the identity's learning period to end; the policy checks (expiry,
// revocation, issuer, age) apply from the first event.
//
// State. Besides the Profile the detector keeps three bounded maps, each
// forgetting its least recently used entry first: the last source per
// credential (MaxCredentials, default 100,000, about 100 bytes each), the
// revoked credentials (MaxRevoked, default 100,000; an entry is dropped
// once the credential has expired or RevokedRetention, default 30 days, has
// passed) and the credentials bound to each Kubernetes secret
// (MaxBoundObjects, default 10,000, at most 16 tokens each). State lives in
// memory: a restart forgets it. The detector is used from one goroutine at a
// time, as the engine calls it.
package credmisuse

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/internal/bounded"
	"github.com/nhisentry/nhisentry/detectors/internal/finding"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "credential_misuse"

// Finding kinds, the first part of every finding id's key after the
// identity.
const (
	KindOutsideEnvironment = "outside_environment"
	KindConcurrentSources  = "concurrent_sources"
	KindExpired            = "expired"
	KindRevoked            = "revoked"
	KindRevokedAttempt     = "revoked_attempt"
	KindShadowIssuer       = "shadow_issuer"
	KindStaticAge          = "static_age"
)

// Config tunes the detector.
type Config struct {
	// InternalCIDRs are the networks workloads run in: an address inside
	// them is never "outside the environment". Default RFC 1918, CGNAT
	// 100.64.0.0/10, IPv6 ULA fc00::/7, loopback and link-local.
	InternalCIDRs []string `yaml:"internal_cidrs"`
	// NATCIDRs are egress ranges (NAT gateways, proxies, corporate egress)
	// behind which one workload appears from several networks. Default none.
	NATCIDRs []string `yaml:"nat_cidrs"`
	// WorkloadIdentities are globs (* any run, ? one character) of
	// identities whose credentials belong to a workload's environment.
	// Default spiffe://* and k8s:sa/*.
	WorkloadIdentities []string `yaml:"workload_identities"`
	// WorkloadCredentialTypes are credential types issued to workloads.
	// Default x509_svid, jwt_svid, k8s_sa_token.
	WorkloadCredentialTypes []string `yaml:"workload_credential_types"`
	// ConcurrentWindow is how close two uses from different networks must
	// be to count as at once. Default 5m.
	ConcurrentWindow time.Duration `yaml:"concurrent_window"`
	// ClockSkew is the tolerance past an expiry or a revocation. Default 2m.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// SanctionedIssuers are globs of the issuers allowed to issue
	// credentials. Default empty: the shadow-issuer check is off.
	SanctionedIssuers []string `yaml:"sanctioned_issuers"`
	// StaticCredentialTypes are long-lived credential types.
	StaticCredentialTypes []string `yaml:"static_credential_types"`
	// MaxStaticAge is the policy age of a static credential. Default 90 days.
	MaxStaticAge time.Duration `yaml:"max_static_age"`
	// RevokedRetention is how long a revocation is remembered when the
	// credential's expiry is unknown. Default 30 days.
	RevokedRetention time.Duration `yaml:"revoked_retention"`
	// MaxCredentials bounds the last-source map. Default 100,000.
	MaxCredentials int `yaml:"max_credentials"`
	// MaxRevoked bounds the revoked set. Default 100,000.
	MaxRevoked int `yaml:"max_revoked"`
	// MaxBoundObjects bounds the secrets whose bound tokens are remembered.
	// Default 10,000.
	MaxBoundObjects int `yaml:"max_bound_objects"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{
		InternalCIDRs: []string{
			"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7",
			"127.0.0.0/8", "::1/128", "169.254.0.0/16", "fe80::/10",
		},
		WorkloadIdentities:      []string{"spiffe://*", "k8s:sa/*"},
		WorkloadCredentialTypes: []string{"x509_svid", "jwt_svid", "k8s_sa_token"},
		ConcurrentWindow:        5 * time.Minute,
		ClockSkew:               2 * time.Minute,
		StaticCredentialTypes: []string{
			"aws_access_key", "gcp_sa_key", "apigateway_api_key", "kong_credential",
			"azure_client_credential", "azure_storage_accountkey",
		},
		MaxStaticAge:     90 * 24 * time.Hour,
		RevokedRetention: 30 * 24 * time.Hour,
		MaxCredentials:   100_000,
		MaxRevoked:       100_000,
		MaxBoundObjects:  10_000,
	}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	_, e := parseRanges("internal_cidrs", c.InternalCIDRs)
	errs = append(errs, e...)
	_, e = parseRanges("nat_cidrs", c.NATCIDRs)
	errs = append(errs, e...)
	for _, l := range []struct {
		field string
		v     []string
	}{
		{"workload_identities", c.WorkloadIdentities}, {"workload_credential_types", c.WorkloadCredentialTypes},
		{"sanctioned_issuers", c.SanctionedIssuers}, {"static_credential_types", c.StaticCredentialTypes},
	} {
		for i, s := range l.v {
			if strings.TrimSpace(s) == "" {
				errs = append(errs, fmt.Errorf("%s[%d] is empty", l.field, i))
			}
		}
	}
	if c.ConcurrentWindow <= 0 {
		errs = append(errs, fmt.Errorf("concurrent_window must be positive, got %v", c.ConcurrentWindow))
	}
	if c.ClockSkew < 0 {
		errs = append(errs, fmt.Errorf("clock_skew must not be negative, got %v", c.ClockSkew))
	}
	if c.MaxStaticAge <= 0 {
		errs = append(errs, fmt.Errorf("max_static_age must be positive, got %v", c.MaxStaticAge))
	}
	if c.RevokedRetention <= 0 {
		errs = append(errs, fmt.Errorf("revoked_retention must be positive, got %v", c.RevokedRetention))
	}
	for _, b := range []struct {
		field string
		v     int
	}{{"max_credentials", c.MaxCredentials}, {"max_revoked", c.MaxRevoked}, {"max_bound_objects", c.MaxBoundObjects}} {
		if b.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", b.field, b.v))
		}
	}
	return errs
}

// Lookup returns what the issuance of a credential established: the
// identity it was issued to, its issuer and expiry (ingest.Linker.Lookup).
type Lookup func(credential string) (ingest.Link, bool)

// Detector is the credential-misuse detector.
type Detector struct {
	cfg                       Config
	lookup                    Lookup
	internal, nat             ranges
	workloadIDs, sanctioned   globs
	workloadTypes, staticType map[string]bool

	sources *bounded.LRU[string, source]
	revoked *bounded.LRU[string, revocation]
	bound   *bounded.LRU[string, []boundCred]
}

// source is the last use of a credential.
type source struct {
	net  netip.Prefix
	at   int64 // Unix nanoseconds
	ours bool  // internal, NAT or known to the identity when first seen
}

// revocation is a revoked credential.
type revocation struct {
	at, until int64 // Unix nanoseconds: revoked at, remembered until
	by, how   string
}

// boundCred is a token bound to a Kubernetes object.
type boundCred struct {
	cred  string
	until int64
}

// maxBoundPerObject caps the tokens remembered per bound object.
const maxBoundPerObject = 16

// New builds the detector; cfg must have passed Validate. lookup, which may
// be nil, lets the detector see what a credential's issuance said (a token
// issued to a workload, in a cluster) when the event using it does not.
func New(cfg Config, lookup Lookup) *Detector {
	d := &Detector{
		cfg: cfg, lookup: lookup,
		workloadIDs: globs(cfg.WorkloadIdentities), sanctioned: globs(cfg.SanctionedIssuers),
		workloadTypes: set(cfg.WorkloadCredentialTypes), staticType: set(cfg.StaticCredentialTypes),
		sources: bounded.NewLRU[string, source](cfg.MaxCredentials, nil),
		revoked: bounded.NewLRU[string, revocation](cfg.MaxRevoked, nil),
		bound:   bounded.NewLRU[string, []boundCred](cfg.MaxBoundObjects, nil),
	}
	d.internal, _ = parseRanges("internal_cidrs", cfg.InternalCIDRs)
	d.nat, _ = parseRanges("nat_cidrs", cfg.NATCIDRs)
	return d
}

func set(l []string) map[string]bool {
	m := make(map[string]bool, len(l))
	for _, s := range l {
		m[s] = true
	}
	return m
}

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	ev := in.Event
	addr, hasIP := parseIP(ev.Actor.IP)
	if ev.Credential.ID != "" {
		dst = d.expired(ev, dst)
		dst = d.revokedUse(ev, dst)
		dst = d.staticAge(ev, dst)
		if hasIP {
			dst = d.sourcesAtOnce(in, addr, dst)
		}
	}
	if !in.Learning {
		dst = d.environment(in, addr, hasIP, dst)
	}
	if ev.Issuance != nil {
		dst = d.shadow(ev, dst)
		d.bind(ev)
	}
	if ev.Outcome.Result == schemas.ResultSuccess {
		d.revocation(ev)
	}
	return dst
}

// workload says why a credential belongs to a workload's environment (""
// when it does not) and the cluster it belongs to ("" when unknown); issued
// is set when that cluster is the one its issuance named.
func (d *Detector) workload(ev *schemas.Event) (why, home string, issued bool) {
	home = k8sCluster(ev.Identity.ID)
	switch {
	case d.workloadIDs.match(ev.Identity.ID):
		why = "workload identity"
	case d.workloadTypes[ev.Credential.Type]:
		why = "workload credential type"
	case ev.Credential.Type == "aws_sts" && isInstanceID(ev.Actor.Session):
		why = "instance profile session"
	}
	if d.lookup == nil || ev.Credential.ID == "" {
		return why, home, false
	}
	if l, ok := d.lookup(ev.Credential.ID); ok {
		if why == "" && d.workloadIDs.match(l.Identity.ID) {
			why = "issued to a workload identity"
		}
		if c := ingest.FirstOf(k8sCluster(l.Identity.ID), k8sCluster(l.Issuer)); c != "" {
			home, issued = c, true
		}
	}
	return why, home, issued
}

// environment reports a workload credential used outside its environment.
func (d *Detector) environment(in *detectors.Input, addr netip.Addr, hasIP bool, dst []schemas.Finding) []schemas.Finding {
	ev := in.Event
	external := hasIP && !d.internal.contains(addr) && !d.nat.contains(addr)
	if !external && ev.Source.Cluster == "" {
		return dst // the common case: an internal address, no cluster to compare
	}
	why, home, issued := d.workload(ev)
	if why == "" {
		return dst
	}
	p := in.Profile
	// A credential issued in one cluster is foreign in any other, whatever
	// the identity of the same name does there; an identity's own cluster
	// only counts when its baseline has never seen the other one.
	if c := ev.Source.Cluster; c != "" && home != "" && c != home &&
		(issued || !p.Knows(baseline.DimCluster, baseline.ClusterValue(c, ev.Actor.Namespace))) {
		src := "it belongs to"
		if issued {
			src = "it was issued in"
		}
		dst = append(dst, finding.New(Name, ev, KindOutsideEnvironment, []string{"cluster", c}, 80,
			"Workload credential used outside its environment",
			fmt.Sprintf("%s (%s) used in cluster %s; %s cluster %s, and the identity has acted in %d cluster/namespace pairs",
				credName(ev), why, c, src, home, p.KnownCount(baseline.DimCluster)),
			"T1078.004", schemas.PatternUnseen, "cluster="+c,
			fmt.Sprintf("home cluster %s, %d known cluster/namespace pairs", home, p.KnownCount(baseline.DimCluster))))
	}
	if external {
		net := network(addr)
		if !knowsNetwork(p, net) {
			dst = append(dst, finding.New(Name, ev, KindOutsideEnvironment, []string{"network", net.String()}, 85,
				"Workload credential used outside its environment",
				fmt.Sprintf("%s (%s) used from %s, outside the %d internal and %d NAT ranges; %d networks known to the identity, not this one",
					credName(ev), why, ev.Actor.IP, len(d.internal), len(d.nat), p.KnownCount(baseline.DimNetwork)),
				"T1078.004", schemas.PatternUnseen, "network="+net.String(),
				fmt.Sprintf("%d known networks, all other uses internal or known", p.KnownCount(baseline.DimNetwork))))
		}
	}
	return dst
}

// knowsNetwork is p.Knows for a network without building its string on the
// heap.
func knowsNetwork(p *baseline.Profile, net netip.Prefix) bool {
	var buf [64]byte
	return p.Knows(baseline.DimNetwork, string(net.AppendTo(buf[:0])))
}

// ours reports whether a network is the identity's own environment.
func (d *Detector) ours(p *baseline.Profile, addr netip.Addr, net netip.Prefix) bool {
	return d.internal.contains(addr) || d.nat.contains(addr) || knowsNetwork(p, net)
}

// sourcesAtOnce reports one credential used from two networks at once.
func (d *Detector) sourcesAtOnce(in *detectors.Input, addr netip.Addr, dst []schemas.Finding) []schemas.Finding {
	ev := in.Event
	cred := ev.Credential.ID
	net := network(addr)
	t := ev.Time.UnixNano()
	s, ok := d.sources.Get(cred)
	if !ok {
		s = d.sources.Add(strings.Clone(cred))
		*s = source{net: net, at: t, ours: d.ours(in.Profile, addr, net)}
		return dst
	}
	if s.net == net {
		s.at = max(s.at, t)
		return dst
	}
	ours := d.ours(in.Profile, addr, net)
	gap := time.Duration(t - s.at)
	if gap < 0 {
		gap = -gap
	}
	if !in.Learning && gap <= d.cfg.ConcurrentWindow && !(ours && s.ours) {
		prev := *s
		a, b := prev.net.String(), net.String()
		foreign, score := b, 80.0
		switch {
		case !ours && !prev.ours:
			foreign, score = a+" and "+b, 85
		case ours:
			foreign = a
		}
		lo, hi := min(a, b), max(a, b)
		dst = append(dst, finding.New(Name, ev, KindConcurrentSources, []string{cred, lo, hi}, score,
			"One credential used from two sources at once",
			fmt.Sprintf("%s used from %s and %s %s apart; one source expected within %s, and %s is neither internal, NAT nor known to the identity",
				credName(ev), a, b, gap.Round(time.Second), d.cfg.ConcurrentWindow, foreign),
			"T1550.001", schemas.PatternRare, "networks="+a+","+b+" gap="+gap.Round(time.Second).String(),
			"one source network per credential within "+d.cfg.ConcurrentWindow.String()))
	}
	if t >= s.at {
		*s = source{net: net, at: t, ours: ours}
	}
	return dst
}

// expired reports a successful use after expiry.
func (d *Detector) expired(ev *schemas.Event, dst []schemas.Finding) []schemas.Finding {
	exp := ev.Credential.ExpiresAt
	if exp.IsZero() || ev.Outcome.Result != schemas.ResultSuccess {
		return dst
	}
	if is := ev.Issuance; is != nil && is.Credential == ev.Credential.ID {
		return dst // the credential's own issuance (or a CT entry), not a use
	}
	over := ev.Time.Sub(exp.Time)
	if over <= d.cfg.ClockSkew {
		return dst
	}
	score := 70.0
	if over > time.Hour {
		score = 85
	}
	return append(dst, finding.New(Name, ev, KindExpired, []string{ev.Credential.ID}, score,
		"Credential used after expiry",
		fmt.Sprintf("%s used successfully %s after it expired at %s; allowed clock skew %s",
			credName(ev), human(over), exp.Format(time.RFC3339), d.cfg.ClockSkew),
		"T1550.001", schemas.PatternRare, "used "+human(over)+" after expiry",
		"no use after "+exp.Format(time.RFC3339)+" + "+d.cfg.ClockSkew.String()))
}

// revokedUse reports a use after revocation.
func (d *Detector) revokedUse(ev *schemas.Event, dst []schemas.Finding) []schemas.Finding {
	if d.revoked.Len() == 0 {
		return dst
	}
	r, ok := d.revoked.Peek(ev.Credential.ID)
	if !ok {
		return dst
	}
	t := ev.Time.UnixNano()
	if t > r.until {
		d.revoked.Remove(ev.Credential.ID)
		return dst
	}
	after := time.Duration(t - r.at)
	if after <= d.cfg.ClockSkew {
		return dst // in flight at the revocation, or logged out of order
	}
	revokedAt := time.Unix(0, r.at).UTC().Format(time.RFC3339)
	if ev.Outcome.Result == schemas.ResultSuccess {
		return append(dst, finding.New(Name, ev, KindRevoked, []string{ev.Credential.ID}, 90,
			"Credential used after revocation",
			fmt.Sprintf("%s used successfully %s after it was revoked at %s (%s, event %s); expected no use after revocation",
				credName(ev), human(after), revokedAt, r.how, r.by),
			"T1550.001", schemas.PatternRare, "used "+human(after)+" after revocation",
			"revoked at "+revokedAt))
	}
	return append(dst, finding.New(Name, ev, KindRevokedAttempt, []string{ev.Credential.ID}, 35,
		"Revoked credential presented again",
		fmt.Sprintf("%s presented %s after it was revoked at %s (%s, event %s), result %s; expected no use after revocation",
			credName(ev), human(after), revokedAt, r.how, r.by, ev.Outcome.Result),
		"T1550.001", schemas.PatternRare, "presented "+human(after)+" after revocation",
		"revoked at "+revokedAt))
}

// staticAge reports a long-lived credential older than policy.
func (d *Detector) staticAge(ev *schemas.Event, dst []schemas.Finding) []schemas.Finding {
	iss := ev.Credential.IssuedAt
	if iss.IsZero() || !d.staticType[ev.Credential.Type] {
		return dst
	}
	age := ev.Time.Sub(iss.Time)
	if age <= d.cfg.MaxStaticAge {
		return dst
	}
	if exp := ev.Credential.ExpiresAt; !exp.IsZero() && exp.Sub(iss.Time) <= d.cfg.MaxStaticAge {
		return dst // it expires within the policy age: the expiry check owns it
	}
	score := min(75, 50+10*math.Log2(float64(age)/float64(d.cfg.MaxStaticAge)))
	return append(dst, finding.New(Name, ev, KindStaticAge, []string{ev.Credential.ID}, score,
		"Static credential older than policy",
		fmt.Sprintf("%s issued %s is %s old; policy allows %s",
			credName(ev), iss.Format("2006-01-02"), human(age), human(d.cfg.MaxStaticAge)),
		"T1078.004", schemas.PatternRare, "age "+human(age),
		"at most "+human(d.cfg.MaxStaticAge)))
}

// shadow reports an issuance by an issuer that is not sanctioned.
func (d *Detector) shadow(ev *schemas.Event, dst []schemas.Finding) []schemas.Finding {
	is := ev.Issuance
	if len(d.sanctioned) == 0 || is.Issuer == "" || d.sanctioned.match(is.Issuer) {
		return dst
	}
	what := ingest.FirstOf(is.CredentialType, "credential")
	if is.Credential != "" {
		what += " " + is.Credential
	}
	return append(dst, finding.New(Name, ev, KindShadowIssuer, []string{is.Issuer}, 80,
		"Credential from an unsanctioned issuer",
		fmt.Sprintf("%s issued to %s by %s, which matches none of the %d sanctioned issuers (%s)",
			what, ingest.FirstOf(is.Subject, ev.Identity.ID), is.Issuer, len(d.sanctioned), d.sanctioned.summary()),
		"T1606", schemas.PatternUnseen, "issuer="+is.Issuer,
		"sanctioned issuers: "+d.sanctioned.summary()))
}

// bind remembers the tokens a TokenRequest bound to a secret: deleting the
// secret revokes them.
func (d *Detector) bind(ev *schemas.Event) {
	is := ev.Issuance
	if is.Credential == "" || is.CredentialType != "k8s_sa_token" {
		return
	}
	for _, san := range is.SANs {
		name, ok := strings.CutPrefix(san, "secret:")
		if !ok || name == "" {
			continue
		}
		rest, ok := strings.CutPrefix(is.Subject, "k8s:sa/")
		if !ok {
			return
		}
		parts := strings.SplitN(rest, "/", 3)
		if len(parts) != 3 {
			return
		}
		key := parts[0] + "/" + parts[1] + "/secrets/" + name
		t := ev.Time.UnixNano()
		until := t + int64(d.cfg.RevokedRetention)
		if is.TTLSeconds > 0 {
			until = t + is.TTLSeconds*int64(time.Second) + int64(d.cfg.ClockSkew)
		}
		l, ok := d.bound.Get(key)
		if !ok {
			l = d.bound.Add(key)
		}
		kept := (*l)[:0]
		for _, c := range *l {
			if c.until >= t && c.cred != is.Credential {
				kept = append(kept, c)
			}
		}
		if len(kept) >= maxBoundPerObject {
			kept = append(kept[:0], kept[1:]...)
		}
		*l = append(kept, boundCred{cred: strings.Clone(is.Credential), until: until})
	}
}

// revocation records the credentials a successful event revokes.
func (d *Detector) revocation(ev *schemas.Event) {
	switch {
	case ev.Source.Provider == "vault" || strings.HasPrefix(ev.Action, "vault:"):
		switch path := ev.Target.Resource; {
		case path == "auth/token/revoke-self":
			d.revoke(ev, ev.Credential.ID, "vault revoke-self", 0)
		case strings.HasPrefix(path, "auth/token/revoke-accessor/"):
			d.revoke(ev, strings.TrimPrefix(path, "auth/token/revoke-accessor/"), "vault revoke-accessor", 0)
		}
	case ev.Action == "iam:DeleteAccessKey":
		if k := accessKeyIn(ev.Target.Resource); k != "" {
			d.revoke(ev, k, "iam:DeleteAccessKey", 0)
		}
	case ev.Action == "k8s:delete:secrets":
		if d.bound.Len() == 0 {
			return
		}
		key := ev.Source.Cluster + "/" + ev.Target.Resource
		l, ok := d.bound.Peek(key)
		if !ok {
			return
		}
		for _, c := range *l {
			d.revoke(ev, c.cred, "bound secret "+ev.Target.Resource+" deleted", c.until)
		}
		d.bound.Remove(key)
	}
}

// revoke remembers cred as revoked by ev until until (Unix nanoseconds; 0:
// its known expiry, else RevokedRetention from now).
func (d *Detector) revoke(ev *schemas.Event, cred, how string, until int64) {
	if cred == "" {
		return
	}
	at := ev.Time.UnixNano()
	if until == 0 {
		until = at + int64(d.cfg.RevokedRetention)
		if d.lookup != nil {
			if l, ok := d.lookup(cred); ok && !l.ExpiresAt.IsZero() {
				until = l.ExpiresAt.UnixNano() + int64(d.cfg.ClockSkew)
			}
		}
	}
	if r, ok := d.revoked.Peek(cred); ok {
		r.at, r.until = min(r.at, at), max(r.until, until)
		return
	}
	*d.revoked.Add(strings.Clone(cred)) = revocation{at: at, until: until, by: strings.Clone(ev.ID), how: how}
}

// credName names the credential an event used.
func credName(ev *schemas.Event) string {
	if ev.Credential.Type == "" {
		return "credential " + ev.Credential.ID
	}
	if ev.Credential.ID == "" {
		return ev.Credential.Type + " of " + ev.Identity.ID
	}
	return ev.Credential.Type + " " + ev.Credential.ID
}

// human prints a duration in the unit a reader wants: seconds, minutes,
// hours or days.
func human(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.0f days", d.Hours()/24)
	case d >= time.Hour:
		return fmt.Sprintf("%.1fh", d.Hours())
	case d >= time.Minute:
		return fmt.Sprintf("%.0fm", d.Minutes())
	}
	return d.Round(time.Second).String()
}
