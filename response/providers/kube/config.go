package kube

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults of Config.
const (
	DefaultName            = "kubernetes"
	DefaultQuarantineLabel = "nhisentry.io/quarantine"
	DefaultPolicyPrefix    = "nhisentry-quarantine-"
	// maxPolicyPrefix leaves room for a service-account name or a hash in a
	// 253-character object name.
	maxPolicyPrefix = 200
)

// Config configures the Kubernetes provider.
type Config struct {
	// Name is the provider's name in response rules (default kubernetes).
	Name string `yaml:"name"`
	// Kubeconfig is the path of a kubeconfig file; empty means the pod's
	// own service account (in-cluster config).
	Kubeconfig string `yaml:"kubeconfig"`
	// Context is the kubeconfig context to use (default: its current one).
	Context string `yaml:"context"`
	// QuarantineLabel is the pod label key the deny NetworkPolicy selects.
	QuarantineLabel string `yaml:"quarantine_label"`
	// PolicyPrefix starts the name of each NetworkPolicy, followed by the
	// service account's name.
	PolicyPrefix string `yaml:"policy_prefix"`
	// Namespaces limits actions to these namespaces; empty allows all.
	Namespaces []string `yaml:"namespaces"`
	// Timeout bounds each API call (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.QuarantineLabel == "" {
		c.QuarantineLabel = DefaultQuarantineLabel
	}
	if c.PolicyPrefix == "" {
		c.PolicyPrefix = DefaultPolicyPrefix
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}

// Validate returns every problem of c, each prefixed with field, the
// configuration path of c.
func (c Config) Validate(field string) []error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", field, name, fmt.Sprintf(format, args...)))
	}
	c = c.withDefaults()
	errs = append(errs, ValidateAccess(field, c.Kubeconfig, c.Context, c.Timeout)...)
	if msgs := validation.IsQualifiedName(c.QuarantineLabel); len(msgs) > 0 {
		bad("quarantine_label", "%q is not a label key: %s", c.QuarantineLabel, strings.Join(msgs, "; "))
	}
	if len(c.PolicyPrefix) > maxPolicyPrefix {
		bad("policy_prefix", "longer than %d characters", maxPolicyPrefix)
	} else if msgs := validation.IsDNS1123Subdomain(c.PolicyPrefix + "x"); len(msgs) > 0 {
		bad("policy_prefix", "%q does not start an object name: %s", c.PolicyPrefix, strings.Join(msgs, "; "))
	}
	for i, ns := range c.Namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			bad(fmt.Sprintf("namespaces[%d]", i), "%q is not a namespace name: %s", ns, strings.Join(msgs, "; "))
		} else if slices.Index(c.Namespaces, ns) < i {
			bad(fmt.Sprintf("namespaces[%d]", i), "%q is listed twice", ns)
		}
	}
	return errs
}

// ValidateAccess checks the settings every provider that talks to the API
// server has: kubeconfig, context and timeout under field.
func ValidateAccess(field, kubeconfig, kubeContext string, timeout time.Duration) []error {
	var errs []error
	if kubeContext != "" && kubeconfig == "" {
		errs = append(errs, fmt.Errorf("%s.context: needs kubeconfig (the in-cluster config has no contexts)", field))
	}
	if timeout < 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: must not be negative", field))
	}
	return errs
}
