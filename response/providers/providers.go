// Package providers registers the response provider adapters: the one
// place where a provider kind gets its configuration key.
package providers

import (
	"fmt"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/awsiam"
	"github.com/nhisentry/nhisentry/response/providers/gcpiam"
	"github.com/nhisentry/nhisentry/response/providers/istio"
	"github.com/nhisentry/nhisentry/response/providers/kube"
	"github.com/nhisentry/nhisentry/response/providers/spire"
	"github.com/nhisentry/nhisentry/response/providers/vault"
	"github.com/nhisentry/nhisentry/response/providers/webhook"
)

// Config lists the configured providers, each a list so that two
// instances of a kind (two clusters, two AWS accounts) can have their own
// names.
type Config struct {
	Kubernetes []kube.Config    `yaml:"kubernetes"`
	Istio      []istio.Config   `yaml:"istio"`
	SPIRE      []spire.Config   `yaml:"spire"`
	AWSIAM     []awsiam.Config  `yaml:"aws_iam"`
	GCPIAM     []gcpiam.Config  `yaml:"gcp_iam"`
	Vault      []vault.Config   `yaml:"vault"`
	Webhooks   []webhook.Config `yaml:"webhooks"`
}

type entry struct {
	field string
	check func(string) []error
	open  func() (response.Provider, error)
}

func add[C interface{ Validate(string) []error }](es []entry, key string, cs []C, open func(C) (response.Provider, error)) []entry {
	for i, c := range cs {
		es = append(es, entry{fmt.Sprintf("%s[%d]", key, i), c.Validate, func() (response.Provider, error) { return open(c) }})
	}
	return es
}

func (c Config) entries(field string) []entry {
	var es []entry
	es = add(es, field+".kubernetes", c.Kubernetes, kube.New)
	es = add(es, field+".istio", c.Istio, istio.New)
	es = add(es, field+".spire", c.SPIRE, spire.New)
	es = add(es, field+".aws_iam", c.AWSIAM, awsiam.New)
	es = add(es, field+".gcp_iam", c.GCPIAM, gcpiam.New)
	es = add(es, field+".vault", c.Vault, vault.New)
	es = add(es, field+".webhooks", c.Webhooks, webhook.New)
	return es
}

// Validate lists every problem, each named by its YAML path under field,
// and returns the names of the providers that are valid. Names must be
// unique: rules and budgets refer to providers by name.
func (c Config) Validate(field string) (names []string, errs []error) {
	where := map[string]string{}
	for _, e := range c.entries(field) {
		bad := e.check(e.field)
		errs = append(errs, bad...)
		if len(bad) > 0 {
			continue
		}
		p, err := e.open()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", e.field, err))
			continue
		}
		if prev, ok := where[p.Name()]; ok {
			errs = append(errs, fmt.Errorf("%s.name: %q is also the name of %s; names must be unique", e.field, p.Name(), prev))
			continue
		}
		where[p.Name()] = e.field
		names = append(names, p.Name())
	}
	return names, errs
}

// Open builds every configured provider; none connects before its first
// action.
func (c Config) Open() ([]response.Provider, error) {
	var out []response.Provider
	for _, e := range c.entries("providers") {
		p, err := e.open()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.field, err)
		}
		out = append(out, p)
	}
	return out, nil
}
