// Package issueuse owns the issuance ↔ use detector (SPEC §5.13): it holds
// what issuance logs say a credential was minted for against how the
// credential is then used, and what Certificate Transparency says was issued
// for the organization's names against what its sanctioned issuers logged.
//
// First use. ingest's Linker records, for each issued credential (an STS
// session's access key id, a Vault token accessor, a certificate serial),
// the identity it was issued to and when; the detector is built with the
// linker's Lookup. At the first use of a linked credential (an event
// carrying Credential.ID that is not the credential's own issuance) the
// detector judges it once:
//
//   - hand-off (T1649 for certificates, else T1550, Use Alternate
//     Authentication Material): the event names a strong identity (not an
//     address, bare token or certificate, which the linker would have
//     replaced by the link's identity) that is not the one the credential
//     was issued to, itself strong and not a broker (BrokerIdentities:
//     requesters that mint for others, such as the cert-manager controller,
//     whose links name the requester, not the holder). Score 85, high.
//   - fresh credential from a new place (same techniques): the use comes
//     within FirstUseWindow (default 1h) of issuance from a source network
//     (/24, /64) or a cluster/namespace (the workload's place; the
//     baseline keeps no finer workload set) the identity has never used,
//     the identity knowing at least one value of that dimension, being past
//     its learning period and not re-learning after a deploy (new pods on
//     new nodes get fresh credentials). Score 75, medium, one finding per
//     new value. A theft of a freshly minted token (CI OIDC, an STS
//     session) typically shows here first.
//
// Each credential is judged at its first linked use only: later uses by
// other identities are the credential-misuse detector's concern ("one
// credential from two sources"). First uses are remembered in a set of at
// most MaxCredentials credentials (default 500,000, about 25 bytes each),
// the oldest forgotten first; a forgotten credential is judged again at its
// next use, which can only repeat a finding with the same deterministic id
// (the engine drops it) or, for the network, find it known by then.
//
// Shadow certificate (T1587.003, Develop Capabilities: Digital
// Certificates). Issuance events from SanctionedFormats (cert-manager,
// SPIRE, Vault PKI by default) that issue an X.509 certificate naming a DNS
// name under OrgDomains are recorded: by serial when the source logs a
// usable one (hex, colons allowed; Vault's audit log HMACs it unless
// serial_number is an audit non-HMAC key), else by their set of names
// (SANs and a DNS-like subject, lower-cased, sorted), with the issuer. A
// Certificate Transparency entry (format ct_certstream) naming a DNS name
// under OrgDomains (suffix match; empty OrgDomains disables this check) is
// sanctioned when a record of the previous Grace (default 48h, more than a
// CT log's 24h merge delay) has its serial, or, for sources that log no
// serial, its exact name set, and, when IssuerCAs maps that record's issuer
// to the CA names CT shows for it, an issuer containing one of them. A
// record by serial does not sanction a second certificate for the same
// names. Anything else is reported at once, one finding per certificate
// (a precertificate and its certificate, or the entry in several CT logs,
// share the serial and the id): "certificate for X issued by Y that no
// sanctioned issuer logged". Score 80, high; 95 when ApprovedCAs is set and
// the issuer is none of them (a CA the organization does not use); 65,
// medium, when it is one of them.
//
// Reporting at once rather than after a delay is a choice: streams are in
// event-time order, and a sanctioned issuer logs its certificate when it
// receives it from the CA, before certstream sees the CT log's entry of it
// (the log must first integrate it), so the record normally precedes the
// CT entry. A CT entry held back to wait for a late record would live only
// in memory and be lost on a restart, since its offset is committed. The
// rare CT entry ahead of its record is a false finding the analyst closes
// against the issuer's log.
//
// State. Sanctioned records and reported CT certificates share a set of at
// most MaxCertificates keys (default 200,000, about 40 bytes each), the
// oldest first recorded forgotten first; a record older than Grace is
// never used. Only issuance naming the organization's domains is recorded,
// so SPIRE's stream of SVIDs for internal names does not fill it. Detect
// must be called from one goroutine, as the engine does; Lookup may be
// called concurrently with the linker's writers (ingest.Linker is safe for
// that).
package issueuse

import (
	"fmt"
	"hash/maphash"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/internal/bounded"
	"github.com/nhisentry/nhisentry/ingest"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "issuance_use"

// ATT&CK techniques of the findings.
const (
	TechniqueCertificate = "T1649"     // Steal or Forge Authentication Certificates
	TechniqueCredential  = "T1550"     // Use Alternate Authentication Material
	TechniqueShadow      = "T1587.003" // Develop Capabilities: Digital Certificates
)

// Formats of the decoders (ingest/issuance) whose events the detector
// reads.
const (
	FormatCT          = "ct_certstream"
	FormatCertManager = "certmanager"
	FormatSPIRE       = "spire_server"
	FormatVault       = "vault_audit"
)

// Config tunes the detector.
type Config struct {
	// FirstUseWindow is how soon after issuance a first use from a new
	// network is reported. Default 1h.
	FirstUseWindow time.Duration `yaml:"first_use_window"`
	// MaxCredentials bounds the set of credentials whose first use was
	// judged. Default 500,000.
	MaxCredentials int `yaml:"max_credentials"`
	// BrokerIdentities are globs (path.Match: * does not cross '/') of
	// identities that request credentials for others; a credential linked
	// to one says nothing about who should use it. Default: the
	// cert-manager controller of any cluster.
	BrokerIdentities []string `yaml:"broker_identities"`
	// OrgDomains are the organization's DNS domains; a certificate naming
	// one of them or a subdomain is checked against the sanctioned
	// issuers. Empty disables the shadow-certificate check.
	OrgDomains []string `yaml:"org_domains"`
	// SanctionedFormats are the issuance decoders whose certificates are
	// sanctioned. Default certmanager, spire_server, vault_audit.
	SanctionedFormats []string `yaml:"sanctioned_formats"`
	// IssuerCAs maps a sanctioned issuer as its log names it (e.g.
	// "cert-manager:clusterissuer/letsencrypt-prod") to the CA names
	// Certificate Transparency shows for it (e.g. "Let's Encrypt"), matched
	// as case-insensitive substrings of the CT issuer. A record matched by
	// names only counts for a CT entry of one of its CAs.
	IssuerCAs map[string][]string `yaml:"issuer_cas"`
	// ApprovedCAs are the public CAs the organization uses (substrings of
	// the CT issuer); an unlogged certificate from another CA is the more
	// severe finding. Empty: no distinction.
	ApprovedCAs []string `yaml:"approved_cas"`
	// Grace is how long a sanctioned issuance record covers the CT entries
	// of its certificate. Default 48h.
	Grace time.Duration `yaml:"grace"`
	// MaxCertificates bounds the set of sanctioned records and reported
	// CT certificates. Default 200,000.
	MaxCertificates int `yaml:"max_certificates"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{
		FirstUseWindow:    time.Hour,
		MaxCredentials:    500_000,
		BrokerIdentities:  []string{"k8s:sa/*/cert-manager/cert-manager"},
		SanctionedFormats: []string{FormatCertManager, FormatSPIRE, FormatVault},
		Grace:             48 * time.Hour,
		MaxCertificates:   200_000,
	}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.FirstUseWindow <= 0 {
		errs = append(errs, fmt.Errorf("first_use_window must be positive, got %v", c.FirstUseWindow))
	}
	if c.MaxCredentials < 1 {
		errs = append(errs, fmt.Errorf("max_credentials must be positive, got %d", c.MaxCredentials))
	}
	for i, g := range c.BrokerIdentities {
		if _, err := path.Match(g, ""); g == "" || err != nil {
			errs = append(errs, fmt.Errorf("broker_identities[%d]: %q is not a glob", i, g))
		}
	}
	for i, dom := range c.OrgDomains {
		if !validDomain(strings.TrimSuffix(strings.ToLower(dom), ".")) {
			errs = append(errs, fmt.Errorf("org_domains[%d]: %q is not a DNS domain (a name such as example.com, no wildcard, scheme or path)", i, dom))
		}
	}
	for i, f := range c.SanctionedFormats {
		switch f {
		case "":
			errs = append(errs, fmt.Errorf("sanctioned_formats[%d] is empty", i))
		case FormatCT:
			errs = append(errs, fmt.Errorf("sanctioned_formats[%d]: %s is what is checked, not a sanctioned issuer", i, FormatCT))
		}
	}
	for issuer, cas := range c.IssuerCAs {
		if issuer == "" || len(cas) == 0 || slices.Contains(cas, "") {
			errs = append(errs, fmt.Errorf("issuer_cas: %q needs a non-empty issuer and CA names", issuer))
		}
	}
	if slices.Contains(c.ApprovedCAs, "") {
		errs = append(errs, fmt.Errorf("approved_cas: empty CA name"))
	}
	if c.Grace <= 0 {
		errs = append(errs, fmt.Errorf("grace must be positive, got %v", c.Grace))
	}
	if c.MaxCertificates < 1 {
		errs = append(errs, fmt.Errorf("max_certificates must be positive, got %d", c.MaxCertificates))
	}
	return errs
}

func validDomain(dom string) bool {
	if dom == "" || dom[0] == '.' || !strings.Contains(dom, ".") {
		return false
	}
	for i := 0; i < len(dom); i++ {
		if c := dom[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Lookup returns the link of a credential: ingest.Linker's Lookup.
type Lookup func(credential string) (ingest.Link, bool)

// Detector is the issuance ↔ use detector. It is not safe for concurrent
// use.
type Detector struct {
	cfg        Config
	lookup     Lookup
	orgs       []string // ".example.com"
	sanctioned map[string]bool
	issuerCA   map[string]int32 // issuer → index in cas
	cas        [][]string
	grace      int64 // seconds

	used  *bounded.FIFO[uint64, struct{}]   // first uses judged, oldest first out
	certs *bounded.FIFO[uint64, certRecord] // records and reported certificates, oldest first out

	names  []string // scratch: a certificate's names
	serial []byte   // scratch: a normalized serial
}

// certRecord is a sanctioned issuance (or a reported CT certificate): when,
// and the index of its issuer's CA names (-1: none configured).
type certRecord struct {
	at int64
	ca int32
}

// New builds the detector; cfg must have passed Validate. lookup is the
// linker's Lookup; nil disables the first-use checks.
func New(cfg Config, lookup Lookup) *Detector {
	d := &Detector{
		cfg: cfg, lookup: lookup, sanctioned: map[string]bool{}, issuerCA: map[string]int32{},
		grace: int64(cfg.Grace / time.Second),
		used:  bounded.NewFIFO[uint64, struct{}](cfg.MaxCredentials),
		certs: bounded.NewFIFO[uint64, certRecord](cfg.MaxCertificates),
	}
	for _, dom := range cfg.OrgDomains {
		d.orgs = append(d.orgs, "."+strings.TrimSuffix(strings.ToLower(dom), "."))
	}
	for _, f := range cfg.SanctionedFormats {
		d.sanctioned[f] = true
	}
	issuers := make([]string, 0, len(cfg.IssuerCAs))
	for issuer := range cfg.IssuerCAs {
		issuers = append(issuers, issuer)
	}
	slices.Sort(issuers)
	for i, issuer := range issuers {
		d.issuerCA[issuer] = int32(i)
		d.cas = append(d.cas, cfg.IssuerCAs[issuer])
	}
	return d
}

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	ev := in.Event
	if is := ev.Issuance; is != nil {
		switch {
		case ev.Source.Format == FormatCT:
			return d.shadow(ev, dst) // a CT entry is a log of issuance, never a use
		case d.sanctioned[ev.Source.Format]:
			d.record(ev)
		}
		if is.Credential == ev.Credential.ID {
			return dst // the credential's own issuance
		}
	}
	if ev.Credential.ID != "" && d.lookup != nil {
		dst = d.firstUse(in, dst)
	}
	return dst
}

// Keys of the two sets, by kind.
const (
	keyUse byte = iota + 1
	keyReported
	keySerial
	keyNames
)

var seed = maphash.MakeSeed()

func keyOf(kind byte, s string) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteByte(kind)
	h.WriteString(s)
	return h.Sum64()
}

// weak mirrors ingest's rule: an identity the linker would replace by the
// credential's.
func weak(id schemas.Identity) bool {
	switch id.Kind {
	case schemas.KindUnknown, schemas.KindToken, schemas.KindCertificate, "":
		return true
	}
	return false
}

func (d *Detector) broker(id string) bool {
	for _, g := range d.cfg.BrokerIdentities {
		if ok, _ := path.Match(g, id); ok {
			return true
		}
	}
	return false
}

func (d *Detector) firstUse(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	ev := in.Event
	k := keyOf(keyUse, ev.Credential.ID)
	if _, judged := d.used.Get(k); judged {
		return dst
	}
	link, ok := d.lookup(ev.Credential.ID)
	if !ok {
		return dst
	}
	d.used.Put(k, struct{}{})
	technique := TechniqueCredential
	if strings.HasPrefix(ev.Credential.Type, "x509") {
		technique = TechniqueCertificate
	}
	credType := ev.Credential.Type
	if credType == "" {
		credType = "credential"
	}
	age := ev.Time.Sub(link.IssuedAt)
	issued := "issued"
	if link.Issuer != "" {
		issued += " by " + link.Issuer
	}
	later := ""
	if !link.IssuedAt.IsZero() {
		issued += " at " + link.IssuedAt.UTC().Format(time.RFC3339)
		later = " " + duration(age) + " later"
	}
	if !weak(ev.Identity) && !weak(link.Identity) && ev.Identity.ID != link.Identity.ID && !d.broker(link.Identity.ID) {
		dst = append(dst, schemas.Finding{
			ID:       schemas.FindingID(Name, ev.Identity.ID, "handoff", ev.Credential.ID),
			Detector: Name,
			Identity: ev.Identity,
			Severity: schemas.SeverityHigh,
			Score:    85,
			Title:    fmt.Sprintf("%s issued to %s first used by %s", credType, link.Identity.ID, ev.Identity.ID),
			Explanation: fmt.Sprintf("%s %s, %s to %s, was first used%s by %s (%s from %s); expected its first use by %s",
				credType, ev.Credential.ID, issued, link.Identity.ID, later, ev.Identity.ID, ev.Action, sourceText(ev), link.Identity.ID),
			Technique: technique,
			EventIDs:  []string{ev.ID},
			FirstSeen: ev.Time,
			LastSeen:  ev.Time,
			Analysis: schemas.Analysis{
				Pattern:  schemas.PatternUnseen,
				Observed: "used_by=" + ev.Identity.ID,
				Baseline: "issued_to=" + link.Identity.ID,
			},
		})
	}
	if in.Learning || in.Relearning || link.IssuedAt.IsZero() || age < 0 || age > d.cfg.FirstUseWindow {
		return dst
	}
	for _, dim := range [...]baseline.Dim{baseline.DimNetwork, baseline.DimCluster} {
		known := in.Profile.KnownCount(dim)
		if known == 0 {
			continue // nothing to compare with: an identity whose events never carried one
		}
		var v, where string
		switch dim {
		case baseline.DimNetwork:
			v = baseline.Network(ev.Actor.IP)
			where = fmt.Sprintf("network %s (%s)", v, ev.Actor.IP)
		case baseline.DimCluster:
			v = baseline.ClusterValue(ev.Source.Cluster, ev.Actor.Namespace)
			where = "cluster/namespace " + v
		}
		if v == "" || in.Profile.Knows(dim, v) {
			continue
		}
		dst = append(dst, schemas.Finding{
			ID:       schemas.FindingID(Name, ev.Identity.ID, "fresh_"+dim.String(), ev.Credential.ID, v),
			Detector: Name,
			Identity: ev.Identity,
			Severity: schemas.SeverityMedium,
			Score:    75,
			Title:    fmt.Sprintf("Fresh %s of %s first used from a new %s", credType, ev.Identity.ID, dim),
			Explanation: fmt.Sprintf("%s %s, %s to %s, was first used%s from %s, which %s never used; %d known %ss",
				credType, ev.Credential.ID, issued, link.Identity.ID, later, where, ev.Identity.ID, known, dim),
			Technique: technique,
			EventIDs:  []string{ev.ID},
			FirstSeen: ev.Time,
			LastSeen:  ev.Time,
			Analysis: schemas.Analysis{
				Pattern:  schemas.PatternUnseen,
				Observed: dim.String() + "=" + v,
				Baseline: fmt.Sprintf("%d known %ss", known, dim),
			},
		})
	}
	return dst
}

func sourceText(ev *schemas.Event) string {
	switch {
	case ev.Actor.IP != "":
		return ev.Actor.IP
	case ev.Actor.Workload != "":
		return ev.Actor.Workload
	}
	return "an unknown source"
}

func duration(d time.Duration) string {
	if d < 0 {
		return "before its issuance, " + (-d).Round(time.Second).String()
	}
	return d.Round(time.Second).String()
}

// certNames gathers the DNS names of a certificate (its SANs and a DNS-like
// subject), lower-cased, sorted and unique, into d.names, and returns the
// first name under OrgDomains and how many are.
func (d *Detector) certNames(is *schemas.Issuance) (org string, nOrg int) {
	d.names = d.names[:0]
	add := func(n string) {
		if n == "" || strings.HasPrefix(n, "hmac-") || !strings.Contains(n, ".") || strings.ContainsAny(n, " /:@") {
			return // an HMAC'd value, a SPIFFE id, a distinguished name
		}
		d.names = append(d.names, strings.TrimSuffix(strings.ToLower(n), "."))
	}
	for _, n := range is.SANs {
		add(n)
	}
	add(is.Subject)
	slices.Sort(d.names)
	d.names = slices.Compact(d.names)
	for _, n := range d.names {
		if d.underOrg(n) {
			if nOrg == 0 {
				org = n
			}
			nOrg++
		}
	}
	return org, nOrg
}

// namesOrg is a quick certNames(is) > 0 for the common case of an issuance
// naming none of the organization's domains in lower case.
func (d *Detector) namesOrg(is *schemas.Issuance) bool {
	for _, n := range is.SANs {
		if d.underOrg(strings.TrimSuffix(n, ".")) {
			return true
		}
	}
	return d.underOrg(strings.TrimSuffix(is.Subject, ".")) || hasUpper(is.Subject) || slices.ContainsFunc(is.SANs, hasUpper)
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

func (d *Detector) underOrg(name string) bool {
	name = strings.TrimPrefix(name, "*.")
	for _, o := range d.orgs {
		if strings.HasSuffix(name, o) || name == o[1:] {
			return true
		}
	}
	return false
}

func (d *Detector) namesKey() uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteByte(keyNames)
	for _, n := range d.names {
		h.WriteString(n)
		h.WriteByte(0)
	}
	return h.Sum64()
}

// serialKey is the key of a certificate serial given as hex (colons, an 0x
// prefix and case allowed), false when s is no such serial (an HMAC, a
// fingerprint, empty).
func (d *Detector) serialKey(s string) (uint64, bool) {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	d.serial = d.serial[:0]
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ':':
			continue
		case c >= 'A' && c <= 'F':
			c += 'a' - 'A'
		case !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f'):
			return 0, false
		}
		if c == '0' && len(d.serial) == 0 {
			continue // leading zeros: CT's decoder drops them
		}
		d.serial = append(d.serial, c)
	}
	if len(s) == 0 || len(d.serial) > 128 {
		return 0, false
	}
	var h maphash.Hash
	h.SetSeed(seed)
	h.WriteByte(keySerial)
	h.Write(d.serial)
	return h.Sum64(), true
}

// record remembers a sanctioned certificate issuance naming the
// organization's domains.
func (d *Detector) record(ev *schemas.Event) {
	is := ev.Issuance
	if len(d.orgs) == 0 || !strings.HasPrefix(is.CredentialType, "x509") || ev.Outcome.Result != schemas.ResultSuccess {
		return
	}
	if _, n := d.certNames(is); n == 0 {
		return
	}
	at := ev.Time.Unix()
	if k, ok := d.serialKey(is.Credential); ok {
		d.certs.Put(k, certRecord{at: at, ca: -1})
		return
	}
	ca, ok := d.issuerCA[is.Issuer]
	if !ok {
		ca = -1
	}
	d.certs.Put(d.namesKey(), certRecord{at: at, ca: ca})
}

// sanctionedCA reports whether the CT issuer is one of the record's CAs.
func (d *Detector) sanctionedCA(r certRecord, issuer string) bool {
	if r.ca < 0 {
		return true
	}
	return containsAnyFold(issuer, d.cas[r.ca])
}

func containsAnyFold(s string, subs []string) bool {
	for _, sub := range subs {
		for i := 0; i+len(sub) <= len(s); i++ {
			if strings.EqualFold(s[i:i+len(sub)], sub) {
				return true
			}
		}
	}
	return false
}

func (d *Detector) shadow(ev *schemas.Event, dst []schemas.Finding) []schemas.Finding {
	is := ev.Issuance
	if len(d.orgs) == 0 || is.Credential == "" || !d.namesOrg(is) {
		return dst // the bulk of a CT stream: other organizations' names
	}
	org, nOrg := d.certNames(is)
	if nOrg == 0 {
		return dst
	}
	reported := keyOf(keyReported, is.Credential)
	if _, done := d.certs.Get(reported); done {
		return dst
	}
	since := ev.Time.Unix() - d.grace
	if k, ok := d.serialKey(is.Credential); ok {
		if r, ok := d.certs.Get(k); ok && r.at >= since {
			return dst
		}
	}
	if r, ok := d.certs.Get(d.namesKey()); ok && r.at >= since && d.sanctionedCA(r, is.Issuer) {
		return dst
	}
	d.certs.Put(reported, certRecord{at: ev.Time.Unix(), ca: -1})

	score, caText := 80, ""
	if len(d.cfg.ApprovedCAs) > 0 {
		if containsAnyFold(is.Issuer, d.cfg.ApprovedCAs) {
			score, caText = 65, ", a CA the organization uses"
		} else {
			score, caText = 95, ", not a CA the organization uses ("+strings.Join(d.cfg.ApprovedCAs, ", ")+")"
		}
	}
	sev := schemas.SeverityHigh
	if score < 80 {
		sev = schemas.SeverityMedium
	}
	others := ""
	if nOrg > 1 {
		others = fmt.Sprintf(" and %d more of the organization's names", nOrg-1)
	}
	grace := fmt.Sprintf("%gh", d.cfg.Grace.Hours())
	return append(dst, schemas.Finding{
		ID:       schemas.FindingID(Name, ev.Identity.ID, "shadow_certificate", is.Credential),
		Detector: Name,
		Identity: ev.Identity,
		Severity: sev,
		Score:    score,
		Title:    fmt.Sprintf("Certificate for %s that no sanctioned issuer logged", org),
		Explanation: fmt.Sprintf("certificate for %s%s (serial %s) issued by %s%s, in CT log %s; 0 sanctioned issuances (%s) of its serial or names in the previous %s, expected at least 1",
			org, others, is.Credential, is.Issuer, caText, ev.Source.Provider, strings.Join(d.cfg.SanctionedFormats, ", "), grace),
		Technique: TechniqueShadow,
		EventIDs:  []string{ev.ID},
		FirstSeen: ev.Time,
		LastSeen:  ev.Time,
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternUnseen,
			Observed: fmt.Sprintf("certificate=%s names=%s issuer=%s", is.Credential, strings.Join(d.names, ","), is.Issuer),
			Baseline: "no sanctioned issuance in the previous " + grace,
		},
	})
}
