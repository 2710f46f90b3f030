// Package novelty owns the new-value detector: an identity past its learning
// period uses a value it has never used before in one of the baseline's
// dimensions (by default an action, an upstream peer or a source network).
//
// Maths. For a new value v in dimension d:
//
//	stability   = min(1, days since d's known set last grew / StableDays)
//	sensitivity = 1 when v matches a sensitive prefix (IAM writes, secret
//	              reads, key creation, token creation), else 0; a new source
//	              network is always sensitive for a machine identity, whose
//	              network rarely changes
//	score       = 40 + 35·stability + 25·sensitivity      (0–100)
//
// A deploy of the identity's workload counts as its sets having just grown
// (stability 0) for the class's re-learning period: the new release's
// actions and peers are learned, not reported, while a sensitive first use
// still is.
//
// A mesh call's action (its route) on a logged upstream peer is not judged
// here: the mesh-graph detector judges the (peer, route) edge, which is the
// finer value, and knows whether the peer serves that route to others; a
// second "new action" finding for the same call would only repeat it, or
// report what that detector learned on purpose. The peer itself still is a
// dimension here.
//
// Severity follows the score: ≥ 80 high, ≥ 60 medium, else low. Values
// scoring below MinScore (default 60: a plain value in a set that grew within
// the last days) are learned without a finding: for machines whose
// repertoire still grows, "new" alone is not news. A machine
// whose set has grown every day (a young service, a CI role) scores low; one
// whose set has not changed for a week and suddenly reads a secret scores
// high. Each (identity, dimension, value) gives one finding id, so a value is
// reported once and is known from then on.
package novelty

import (
	"fmt"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/internal/finding"
	"github.com/nhisentry/nhisentry/schemas"
)

// Name is the detector id.
const Name = "new_value"

// Config tunes the detector.
type Config struct {
	// StableDays is how long a set must go without growing to count as
	// fully stable. Default 7.
	StableDays float64 `yaml:"stable_days"`
	// SensitivePrefixes mark actions whose first use matters most.
	SensitivePrefixes []string `yaml:"sensitive_prefixes"`
	// Dims lists the dimensions checked; default action, peer and network.
	Dims []string `yaml:"dims"`
	// MinScore is the lowest score reported; default 60.
	MinScore float64 `yaml:"min_score"`
}

// DefaultConfig is the configuration used when none is given.
func DefaultConfig() Config {
	return Config{
		StableDays: 7,
		SensitivePrefixes: []string{
			"iam:Create", "iam:Put", "iam:Attach", "iam:Update", "iam:PassRole", "iam:Delete",
			"sts:AssumeRole", "secretsmanager:GetSecretValue", "ssm:GetParameter", "kms:CreateKey",
			"kms:Decrypt", "k8s:get:secrets", "k8s:list:secrets", "k8s:create:serviceaccounts/token",
			"vault:update:auth/token/create", "vault:create:auth/token/create",
		},
		Dims:     []string{"action", "peer", "network"},
		MinScore: 60,
	}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() []error {
	var errs []error
	if c.StableDays <= 0 {
		errs = append(errs, fmt.Errorf("stable_days must be positive, got %v", c.StableDays))
	}
	if c.MinScore < 0 || c.MinScore > 100 {
		errs = append(errs, fmt.Errorf("min_score must be within 0..100, got %v", c.MinScore))
	}
	for _, d := range c.Dims {
		if _, ok := baseline.ParseDim(d); !ok {
			errs = append(errs, fmt.Errorf("dims: unknown dimension %q (valid: %s)", d, dimNames()))
		}
	}
	return errs
}

func dimNames() string {
	names := make([]string, 0, baseline.NumDims)
	for d := range baseline.NumDims {
		names = append(names, d.String())
	}
	return strings.Join(names, ", ")
}

// Detector is the new-value detector.
type Detector struct {
	cfg  Config
	dims []baseline.Dim
}

// New builds the detector; cfg must have passed Validate.
func New(cfg Config) *Detector {
	d := &Detector{cfg: cfg}
	for _, s := range cfg.Dims {
		if dim, ok := baseline.ParseDim(s); ok {
			d.dims = append(d.dims, dim)
		}
	}
	return d
}

// Name implements detectors.Detector.
func (d *Detector) Name() string { return Name }

var techniques = [baseline.NumDims]string{
	baseline.DimAction:  "T1078",     // Valid Accounts: a credential doing what its owner never does
	baseline.DimPeer:    "T1021",     // Remote Services: lateral movement to new peers
	baseline.DimNetwork: "T1078.004", // Valid Accounts: Cloud Accounts, used from elsewhere
}

// Detect implements detectors.Detector.
func (d *Detector) Detect(in *detectors.Input, dst []schemas.Finding) []schemas.Finding {
	if in.Learning {
		return dst
	}
	p, ev := in.Profile, in.Event
	for _, dim := range d.dims {
		if dim == baseline.DimAction && ev.Source.Family == schemas.FamilyMesh && ev.Target.Peer != "" {
			continue // the mesh-graph detector's edge, see the package doc
		}
		v := baseline.Value(ev, dim)
		if v == "" || p.Knows(dim, v) {
			continue
		}
		stableFor := ev.Time.Sub(p.LastGrew(dim))
		stability := min(1, max(0, stableFor.Hours()/24/d.cfg.StableDays))
		if in.Relearning {
			stability = 0
		}
		sensitive := dim == baseline.DimNetwork || d.sensitive(v)
		score := 40 + 35*stability
		if sensitive {
			score += 25
		}
		if score < d.cfg.MinScore {
			continue
		}
		dst = append(dst, schemas.Finding{
			ID:       schemas.FindingID(Name, ev.Identity.ID, dim.String(), v),
			Detector: Name,
			Identity: ev.Identity,
			Severity: finding.Severity(score),
			Score:    int(score + 0.5),
			Title:    fmt.Sprintf("New %s for %s", dim, ev.Identity.ID),
			Explanation: fmt.Sprintf("%s %s never seen for %s; %d known, set unchanged for %s",
				dim, v, ev.Identity.ID, p.KnownCount(dim), days(stableFor)),
			Technique: techniques[dim],
			EventIDs:  []string{ev.ID},
			FirstSeen: ev.Time,
			LastSeen:  ev.Time,
			Analysis: schemas.Analysis{
				Pattern:  schemas.PatternUnseen,
				Observed: dim.String() + "=" + v,
				Baseline: fmt.Sprintf("%d known %ss, last new one %s ago", p.KnownCount(dim), dim, days(stableFor)),
			},
		})
	}
	return dst
}

func (d *Detector) sensitive(v string) bool {
	for _, pfx := range d.cfg.SensitivePrefixes {
		if strings.HasPrefix(v, pfx) {
			return true
		}
	}
	return false
}

func days(d time.Duration) string { return fmt.Sprintf("%.1f days", d.Hours()/24) }
