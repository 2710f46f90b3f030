// Package issuance owns the issuance-anomaly detector (SPEC §5, item 7): an
// identity has credentials issued with a lifetime far beyond policy or its
// habit, in a burst, or piles up more valid credentials than it ever held.
// It looks only at issuance events (Event.Issuance set) and judges them per
// event identity, the identity whose issuance profile the baseline builder
// computes (the requester of an STS AssumeRole or a Kubernetes TokenRequest,
// the logged-in identity of a Vault login, the caller of a SPIRE signing).
//
// Long TTL (kind long_ttl, key the credential type and the subject). A token
// (credential type in TokenTypes: Vault, STS, Kubernetes, JWT-SVID, GitHub
// OIDC and GCP access tokens) issued with a TTL above MaxTTL (default 24h).
// This is policy: it applies to every identity, learning or not, with or
// without a baseline.
//
//	score = min(90, 60 + 10·log2(ttl / MaxTTL))
//
// Unusual TTL (kind unusual_ttl, same key). Any credential whose TTL is at
// least MinTTL (default 1h) and more than TTLFactor (default 4) times the
// identity's typical TTL (the median of its issuance profile); a token that
// breaks the policy is reported as long_ttl only.
//
//	score = min(95, 50 + 10·log2(ttl / typical))
//
// Burst (kind burst, key the hour). Let e = 3600 / Interval be the issuances
// an hour the identity's median interval implies. The hour's n-th issuance
// is reported when n first reaches max(MinBurst, BurstFactor·e) (defaults 10
// and 5): ten in an hour from an identity that renews every few hours, 300
// from one that logs in every minute.
//
//	score = min(95, 50 + 10·log2(n / e))
//
// Concurrent (kind concurrent, key the hour). The detector keeps, per
// identity, the credentials issued to it that are still valid: a credential
// is valid from its issuance for its TTL, and issuing the same credential id
// again (a Vault token renewal) renews it rather than adding one, as the
// builder counts MaxConcurrent. When the count c first reaches
// max(MinConcurrent, ConcurrentFactor·MaxConcurrent) (defaults 10 and 3) it
// is reported:
//
//	score = min(95, 50 + 10·log2(c / MaxConcurrent))
//
// A credential renewed at two thirds of its TTL overlaps its successor for a
// third, so a renewing identity holds two at a time; its profile says so and
// the factor and minimum leave room for replicas starting together.
//
// The relative checks (unusual TTL, burst, concurrent) need the identity's
// issuance model (Profile.Model().Issuance) built from at least MinIssued
// issuances (default 5), and stay quiet while the identity is learning; the
// burst and concurrent checks also stay quiet while it re-learns after a
// deploy, when a rollout's new pods log in together and the old pods'
// credentials are still valid. Issuances without a credential id (older
// Kubernetes TokenRequests) or, for the concurrent count, without a TTL are
// not counted, as the builder does not count them either; an issuance
// logged late, after a later hour's, is not counted in the burst.
//
// Severity follows the score: ≥ 80 high, ≥ 60 medium, else low. ATT&CK:
// T1550.001 (application access token) for the TTL kinds, T1528 (stealing
// application access tokens by minting them) for bursts and piles.
//
// State. Per identity that has issuances: the current hour's count and the
// still-valid credentials as 16-byte (hash of the id, expiry) pairs. At most
// MaxIdentities identities (default 100,000), MaxCredentials credentials in
// all (default 1,000,000, 16 MB) and MaxPerIdentity per identity (default
// 4,096, past which the oldest is dropped and the count saturates); the
// least recently issuing identity is forgotten first. State lives in memory,
// so after a restart the concurrent count starts low and only
// under-reports. The detector is used from one goroutine at a time, as the
// engine calls it.
package issuance

import (
	"fmt"
	"hash/maphash"
	"math"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/internal/bounded"
	"github.com/nhisentry/nhisentry/detectors/internal/finding"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "issuance"

// Finding kinds, the part of every finding id's key after the identity.
const (
	KindLongTTL    = "long_ttl"
	KindUnusualTTL = "unusual_ttl"
	KindBurst      = "burst"
	KindConcurrent = "concurrent"
)

// Config tunes the detector.
type Config struct {
	// MaxTTL is the longest TTL policy allows a token. Default 24h.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// TokenTypes are the credential types MaxTTL applies to; certificates
	// are not tokens (a 90-day certificate is normal).
	TokenTypes []string `yaml:"token_types"`
	// TTLFactor is how many times the typical TTL is unusual. Default 4.
	TTLFactor float64 `yaml:"ttl_factor"`
	// MinTTL is the shortest TTL the relative check reports. Default 1h.
	MinTTL time.Duration `yaml:"min_ttl"`
	// BurstFactor is how many times the hourly rate the median interval
	// implies is a burst. Default 5.
	BurstFactor float64 `yaml:"burst_factor"`
	// MinBurst is the fewest issuances in an hour that make a burst.
	// Default 10.
	MinBurst int `yaml:"min_burst"`
	// ConcurrentFactor is how many times MaxConcurrent is too many valid
	// credentials. Default 3.
	ConcurrentFactor float64 `yaml:"concurrent_factor"`
	// MinConcurrent is the fewest valid credentials that are too many.
	// Default 10.
	MinConcurrent int `yaml:"min_concurrent"`
	// MinIssued is how many issuances the identity's model must rest on
	// for the relative checks. Default 5.
	MinIssued int `yaml:"min_issued"`
	// MaxIdentities, MaxCredentials and MaxPerIdentity bound the state.
	// Defaults 100,000, 1,000,000 and 4,096.
	MaxIdentities  int `yaml:"max_identities"`
	MaxCredentials int `yaml:"max_credentials"`
	MaxPerIdentity int `yaml:"max_per_identity"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{
		MaxTTL:     24 * time.Hour,
		TokenTypes: []string{"vault_token", "aws_sts", "k8s_sa_token", "jwt_svid", "github_oidc", "gcp_access_token"},
		TTLFactor:  4, MinTTL: time.Hour,
		BurstFactor: 5, MinBurst: 10,
		ConcurrentFactor: 3, MinConcurrent: 10,
		MinIssued:     5,
		MaxIdentities: 100_000, MaxCredentials: 1_000_000, MaxPerIdentity: 4096,
	}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.MaxTTL <= 0 {
		errs = append(errs, fmt.Errorf("max_ttl must be positive, got %v", c.MaxTTL))
	}
	for i, t := range c.TokenTypes {
		if strings.TrimSpace(t) == "" {
			errs = append(errs, fmt.Errorf("token_types[%d] is empty", i))
		}
	}
	for _, f := range []struct {
		field string
		v     float64
	}{{"ttl_factor", c.TTLFactor}, {"burst_factor", c.BurstFactor}, {"concurrent_factor", c.ConcurrentFactor}} {
		if !(f.v > 1) {
			errs = append(errs, fmt.Errorf("%s must be above 1, got %v", f.field, f.v))
		}
	}
	if c.MinTTL < 0 {
		errs = append(errs, fmt.Errorf("min_ttl must not be negative, got %v", c.MinTTL))
	}
	for _, f := range []struct {
		field string
		v     int
	}{
		{"min_burst", c.MinBurst}, {"min_concurrent", c.MinConcurrent}, {"min_issued", c.MinIssued},
		{"max_identities", c.MaxIdentities}, {"max_credentials", c.MaxCredentials}, {"max_per_identity", c.MaxPerIdentity},
	} {
		if f.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", f.field, f.v))
		}
	}
	return errs
}

// Detector is the issuance-anomaly detector.
type Detector struct {
	cfg    Config
	tokens map[string]bool
	ids    *bounded.LRU[string, tracked]
	total  int // credentials held over all identities
}

// tracked is what the detector holds for one identity.
type tracked struct {
	hour  int64  // Unix hours
	n     uint32 // issuances with a credential id in hour
	valid []validCred
}

// validCred is a credential issued to the identity and not yet expired.
type validCred struct {
	h     uint64 // hash of the credential id
	until int64  // Unix nanoseconds
}

// seed hashes credential ids; the hashes never leave the process.
var seed = maphash.MakeSeed()

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector {
	d := &Detector{cfg: cfg, tokens: make(map[string]bool, len(cfg.TokenTypes))}
	// The least recently issuing identity goes first, with its credentials.
	d.ids = bounded.NewLRU(cfg.MaxIdentities, func(_ string, st *tracked) { d.total -= len(st.valid) })
	for _, t := range cfg.TokenTypes {
		d.tokens[t] = true
	}
	return d
}

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	ev := in.Event
	is := ev.Issuance
	if is == nil {
		return dst
	}
	var model *baseline.IssuanceProfile
	if m := in.Profile.Model(); m != nil && m.Issuance != nil && m.Issuance.Issued >= d.cfg.MinIssued && !in.Learning {
		model = m.Issuance
	}
	ttl := time.Duration(is.TTLSeconds) * time.Second
	if is.TTLSeconds > int64(math.MaxInt64/time.Second) {
		ttl = math.MaxInt64
	}
	dst = d.lifetime(ev, ttl, model, dst)
	if is.Credential == "" {
		return dst
	}
	st := d.state(ev.Identity.ID)
	hour := ev.Time.Unix() / 3600
	switch {
	case hour > st.hour:
		st.hour, st.n = hour, 1
	case hour == st.hour:
		st.n++
	}
	before, after := d.track(st, is.Credential, ev.Time.UnixNano(), ttl)
	d.bound()
	if model == nil || in.Relearning {
		return dst
	}
	if hour == st.hour {
		dst = d.burst(ev, st.n, model, dst)
	}
	return d.concurrent(ev, before, after, model, dst)
}

// state returns the identity's state, creating it (and making room) when
// new. The pointer is valid until the next state call.
func (d *Detector) state(id string) *tracked {
	if st, ok := d.ids.Get(id); ok {
		return st
	}
	return d.ids.Add(strings.Clone(id))
}

// bound forgets the least recently issuing identities while the credentials
// held exceed MaxCredentials; the identity just touched is the newest and
// goes last.
func (d *Detector) bound() {
	for d.total > d.cfg.MaxCredentials && d.ids.Len() > 1 {
		d.ids.EvictOldest()
	}
}

// track drops the identity's expired credentials and records the issuance of
// cred at t valid for ttl. It returns how many credentials were valid just
// before and just after.
func (d *Detector) track(st *tracked, cred string, t int64, ttl time.Duration) (before, after int) {
	h := maphash.String(seed, cred)
	held := len(st.valid)
	kept := st.valid[:0]
	renewed := false
	for _, v := range st.valid {
		if v.until <= t {
			continue
		}
		if v.h == h {
			renewed = true
			if ttl > 0 {
				v.until = expiry(t, ttl)
			}
		}
		kept = append(kept, v)
	}
	before = len(kept)
	if !renewed && ttl > 0 {
		if len(kept) >= d.cfg.MaxPerIdentity {
			kept = append(kept[:0], kept[1:]...) // the oldest goes; the count saturates
			before--
		}
		kept = append(kept, validCred{h: h, until: expiry(t, ttl)})
	}
	st.valid = kept
	d.total += len(kept) - held
	return before, len(kept)
}

// lifetime reports a TTL beyond policy or far beyond the identity's habit.
func (d *Detector) lifetime(ev *schemas.Event, ttl time.Duration, model *baseline.IssuanceProfile, dst []schemas.Finding) []schemas.Finding {
	if ttl <= 0 {
		return dst
	}
	is := ev.Issuance
	typical := time.Duration(0)
	if model != nil {
		typical = time.Duration(model.TTL * float64(time.Second))
	}
	switch {
	case d.tokens[is.CredentialType] && ttl > d.cfg.MaxTTL:
		score := min(90, 60+10*math.Log2(float64(ttl)/float64(d.cfg.MaxTTL)))
		habit := "no issuance baseline"
		if typical > 0 {
			habit = "typical " + human(typical)
		}
		return append(dst, finding.New(Name, ev, KindLongTTL, []string{is.CredentialType, is.Subject}, score,
			"Long-TTL token creation",
			fmt.Sprintf("%s issued with a TTL of %s; policy maximum %s, %s", credName(ev), human(ttl), human(d.cfg.MaxTTL), habit),
			"T1550.001", schemas.PatternRare, "ttl "+human(ttl),
			"policy max "+human(d.cfg.MaxTTL)+", "+habit))
	case typical > 0 && ttl >= d.cfg.MinTTL && float64(ttl) > d.cfg.TTLFactor*float64(typical):
		ratio := float64(ttl) / float64(typical)
		score := min(95, 50+10*math.Log2(ratio))
		return append(dst, finding.New(Name, ev, KindUnusualTTL, []string{is.CredentialType, is.Subject}, score,
			"Unusual credential TTL",
			fmt.Sprintf("%s issued with a TTL of %s, %.0f× the typical %s over %d issuances (threshold %g×)",
				credName(ev), human(ttl), ratio, human(typical), model.Issued, d.cfg.TTLFactor),
			"T1550.001", schemas.PatternRare, "ttl "+human(ttl),
			fmt.Sprintf("typical ttl %s over %d issuances", human(typical), model.Issued)))
	}
	return dst
}

// burst reports the hour's n-th issuance when n first reaches the burst
// threshold.
func (d *Detector) burst(ev *schemas.Event, n uint32, model *baseline.IssuanceProfile, dst []schemas.Finding) []schemas.Finding {
	if model.Interval <= 0 {
		return dst // every issuance at one instant: no rate to compare with
	}
	perHour := 3600 / model.Interval
	thr := max(float64(d.cfg.MinBurst), d.cfg.BurstFactor*perHour)
	if c := float64(n); c < thr || c-1 >= thr {
		return dst
	}
	hourStart := time.Unix(ev.Time.Unix()/3600*3600, 0).UTC()
	hour := hourStart.Format("Mon 15:04")
	score := min(95, 50+10*math.Log2(float64(n)/perHour))
	every := human(time.Duration(model.Interval * float64(time.Second)))
	return append(dst, finding.New(Name, ev, KindBurst, []string{fmt.Sprint(hourStart.Unix() / 3600)}, score,
		"Credential issuance burst",
		fmt.Sprintf("%d credentials issued to %s in the hour from %s; baseline one every %s (%.2g an hour) over %d issuances, threshold %.0f",
			n, ev.Identity.ID, hour, every, perHour, model.Issued, math.Ceil(thr)),
		"T1528", schemas.PatternSurge, fmt.Sprintf("%d issuances in hour %s", n, hour),
		fmt.Sprintf("one issuance every %s (%.2g an hour)", every, perHour)))
}

// concurrent reports the issuance that first takes the identity's valid
// credentials to the threshold.
func (d *Detector) concurrent(ev *schemas.Event, before, after int, model *baseline.IssuanceProfile, dst []schemas.Finding) []schemas.Finding {
	thr := max(float64(d.cfg.MinConcurrent), d.cfg.ConcurrentFactor*float64(model.MaxConcurrent))
	if float64(after) < thr || float64(before) >= thr {
		return dst
	}
	usual := max(model.MaxConcurrent, 1)
	score := min(95, 50+10*math.Log2(float64(after)/float64(usual)))
	hour := ev.Time.Unix() / 3600
	return append(dst, finding.New(Name, ev, KindConcurrent, []string{fmt.Sprint(hour)}, score,
		"Too many valid credentials",
		fmt.Sprintf("%d credentials issued to %s valid at once; baseline at most %d at once over %d issuances, threshold %.0f",
			after, ev.Identity.ID, model.MaxConcurrent, model.Issued, math.Ceil(thr)),
		"T1528", schemas.PatternSurge, fmt.Sprintf("%d valid credentials", after),
		fmt.Sprintf("at most %d valid at once", model.MaxConcurrent)))
}

// credName names what an issuance minted and for whom.
func credName(ev *schemas.Event) string {
	is := ev.Issuance
	s := is.CredentialType
	if s == "" {
		s = "credential"
	}
	if is.Subject != "" {
		s += " for " + is.Subject
	}
	if is.Requester != "" && is.Requester != is.Subject {
		s += " requested by " + is.Requester
	}
	return s
}

// human prints a duration in the unit a reader wants.
func human(d time.Duration) string {
	switch h := d.Hours(); {
	case d >= 72*time.Hour:
		return fmt.Sprintf("%.0fh (%.0f days)", h, h/24)
	case d >= time.Hour && h == math.Trunc(h):
		return fmt.Sprintf("%.0fh", h)
	case d >= time.Hour:
		return fmt.Sprintf("%.1fh", h)
	case d >= time.Minute:
		return fmt.Sprintf("%.0fm", d.Minutes())
	}
	return d.Round(time.Second).String()
}

// expiry is t + ttl, saturating instead of overflowing.
func expiry(t int64, ttl time.Duration) int64 {
	if int64(ttl) > math.MaxInt64-t {
		return math.MaxInt64
	}
	return t + int64(ttl)
}
