// Package builtin registers the built-in detectors of SPEC §5 in one place:
// their configuration (one YAML key per detector, named after it), its
// validation, and the order they run in. The service, scan and the
// benchmarks build their detectors here, so a new detector is added once.
package builtin

import (
	"fmt"

	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/detectors/burst"
	"github.com/nhisentry/nhisentry/detectors/cadence"
	"github.com/nhisentry/nhisentry/detectors/credmisuse"
	"github.com/nhisentry/nhisentry/detectors/dormant"
	"github.com/nhisentry/nhisentry/detectors/exfil"
	"github.com/nhisentry/nhisentry/detectors/fanout"
	"github.com/nhisentry/nhisentry/detectors/issuance"
	"github.com/nhisentry/nhisentry/detectors/issueuse"
	"github.com/nhisentry/nhisentry/detectors/meshgraph"
	"github.com/nhisentry/nhisentry/detectors/novelty"
	"github.com/nhisentry/nhisentry/detectors/offhours"
	"github.com/nhisentry/nhisentry/detectors/outlier"
	"github.com/nhisentry/nhisentry/detectors/volume"
	"github.com/nhisentry/nhisentry/ingest"
)

// Config configures every built-in detector under its name; Disabled names
// detectors not to run.
type Config struct {
	NewValue         novelty.Config    `yaml:"new_value"`
	Volume           volume.Config     `yaml:"volume_spike"`
	OutcomeBurst     burst.Config      `yaml:"outcome_burst"`
	ExfilVolume      exfil.Config      `yaml:"exfil_volume"`
	Dormant          dormant.Config    `yaml:"dormant_reactivation"`
	CredentialMisuse credmisuse.Config `yaml:"credential_misuse"`
	Issuance         issuance.Config   `yaml:"issuance"`
	PeerFanout       fanout.Config     `yaml:"peer_fanout"`
	OffHours         offhours.Config   `yaml:"off_hours"`
	CadenceBreak     cadence.Config    `yaml:"cadence_break"`
	MeshGraph        meshgraph.Config  `yaml:"mesh_graph"`
	IssuanceUse      issueuse.Config   `yaml:"issuance_use"`
	Outlier          outlier.Config    `yaml:"multivariate_outlier"`
	Disabled         []string          `yaml:"disabled"`
}

// DefaultConfig is every detector with its defaults.
func DefaultConfig() Config {
	return Config{
		NewValue: novelty.DefaultConfig(), Volume: volume.DefaultConfig(), OutcomeBurst: burst.DefaultConfig(),
		ExfilVolume: exfil.DefaultConfig(), Dormant: dormant.DefaultConfig(), CredentialMisuse: credmisuse.DefaultConfig(),
		Issuance: issuance.DefaultConfig(), PeerFanout: fanout.DefaultConfig(), OffHours: offhours.DefaultConfig(),
		CadenceBreak: cadence.DefaultConfig(), MeshGraph: meshgraph.DefaultConfig(), IssuanceUse: issueuse.DefaultConfig(),
		Outlier: outlier.DefaultConfig(),
	}
}

// entry is one registered detector: its name (the YAML key and
// Finding.Detector), whether it reads the built model (Profile.Model,
// Input.Cohort), how to validate its configuration and how to build it.
type entry struct {
	name     string
	model    bool
	validate func(*Config) []error
	build    func(*Config, ingest.LinkLookup) detectors.Detector
}

// registry lists the detectors in the order they run.
var registry = []entry{
	{novelty.Name, false, func(c *Config) []error { return c.NewValue.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return novelty.New(c.NewValue) }},
	{volume.Name, false, func(c *Config) []error { return c.Volume.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return volume.New(c.Volume) }},
	{burst.Name, true, func(c *Config) []error { return c.OutcomeBurst.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return burst.New(c.OutcomeBurst) }},
	{exfil.Name, true, func(c *Config) []error { return c.ExfilVolume.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return exfil.New(c.ExfilVolume) }},
	{dormant.Name, true, func(c *Config) []error { return c.Dormant.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return dormant.New(c.Dormant) }},
	{credmisuse.Name, false, func(c *Config) []error { return c.CredentialMisuse.Validate() },
		func(c *Config, l ingest.LinkLookup) detectors.Detector {
			return credmisuse.New(c.CredentialMisuse, credmisuse.Lookup(l))
		}},
	{issuance.Name, true, func(c *Config) []error { return c.Issuance.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return issuance.New(c.Issuance) }},
	{fanout.Name, true, func(c *Config) []error { return c.PeerFanout.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return fanout.New(c.PeerFanout) }},
	{offhours.Name, true, func(c *Config) []error { return c.OffHours.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return offhours.New(c.OffHours) }},
	{cadence.Name, true, func(c *Config) []error { return c.CadenceBreak.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return cadence.New(c.CadenceBreak) }},
	{meshgraph.Name, true, func(c *Config) []error { return c.MeshGraph.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return meshgraph.New(c.MeshGraph) }},
	{issueuse.Name, false, func(c *Config) []error { return c.IssuanceUse.Validate() },
		func(c *Config, l ingest.LinkLookup) detectors.Detector {
			return issueuse.New(c.IssuanceUse, issueuse.Lookup(l))
		}},
	{outlier.Name, true, func(c *Config) []error { return c.Outlier.Validate() },
		func(c *Config, _ ingest.LinkLookup) detectors.Detector { return outlier.New(c.Outlier) }},
}

// ModelDependent lists the detectors that read the built model: their
// findings depend on when baselines were last rebuilt, not only on the
// events, so two runs over the same events agree on them only when their
// rebuilds happened at the same points.
func ModelDependent() []string {
	var out []string
	for _, e := range registry {
		if e.model {
			out = append(out, e.name)
		}
	}
	return out
}

// Names lists the built-in detectors in the order they run.
func Names() []string {
	out := make([]string, len(registry))
	for i, e := range registry {
		out[i] = e.name
	}
	return out
}

// Validate lists every problem, each prefixed with prefix and its
// detector's key (e.g. "detect.volume_spike: z must be positive").
func (c *Config) Validate(prefix string) []error {
	var errs []error
	known := map[string]bool{}
	for _, e := range registry {
		known[e.name] = true
		for _, err := range e.validate(c) {
			errs = append(errs, fmt.Errorf("%s%s: %w", prefix, e.name, err))
		}
	}
	for _, d := range c.Disabled {
		if !known[d] {
			errs = append(errs, fmt.Errorf("%sdisabled: unknown detector %q (known: %v)", prefix, d, Names()))
		}
	}
	return errs
}

// New builds the enabled detectors, in registry order. lookup resolves a
// credential to its issuance link (nil disables the checks that need it);
// cfg must have passed Validate.
func New(cfg Config, lookup ingest.LinkLookup) []detectors.Detector {
	off := map[string]bool{}
	for _, d := range cfg.Disabled {
		off[d] = true
	}
	var out []detectors.Detector
	for _, e := range registry {
		if !off[e.name] {
			out = append(out, e.build(&cfg, lookup))
		}
	}
	return out
}
