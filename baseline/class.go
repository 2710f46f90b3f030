package baseline

import (
	"github.com/nhisentry/nhisentry/internal/glob"

	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nhisentry/nhisentry/schemas"
)

// Learning says how much history an identity needs before detectors trust
// its baseline: both a minimum age and a minimum number of events, because a
// chatty service learns in hours while a nightly job needs days.
type Learning struct {
	MinAge    time.Duration `yaml:"min_age"`
	MinEvents uint64        `yaml:"min_events"`
}

// Class is a kind of machine identity with its own windows: machines are not
// people, and a CI role, a long-running service and a break-glass key learn
// and go dormant on different time scales.
type Class struct {
	Name string `yaml:"name"`
	// Kinds and Identities select the class's identities: an identity kind
	// from the list (any when empty) and an identity id matching one of the
	// globs (any when empty), where * matches any run of characters, '/'
	// included, and ? any one character. A class with neither matches
	// nothing; only the default class "service" needs none.
	Kinds      []string `yaml:"kinds"`
	Identities []string `yaml:"identities"`
	Learning   Learning `yaml:"learning"`
	// Dormancy is the silence after which activity is a reactivation.
	Dormancy time.Duration `yaml:"dormancy"`
	// Relearn is how long a deploy of the identity's workload makes new
	// values expected.
	Relearn time.Duration `yaml:"relearn"`
}

// ClassService is the default class.
const ClassService = "service"

var defaultClass = &Class{
	Name: ClassService, Learning: Learning{MinAge: 24 * time.Hour, MinEvents: 50},
	Dormancy: 7 * 24 * time.Hour, Relearn: time.Hour,
}

// DefaultClasses are the classes used when the configuration names none.
func DefaultClasses() Classes {
	return Classes{
		{Name: "break_glass", Identities: []string{"*break-glass*", "*breakglass*", "*emergency*"},
			// Any use of an emergency credential is worth a look: no
			// learning, and any silence is dormancy.
			Learning: Learning{}, Dormancy: time.Hour, Relearn: 0},
		{Name: "ci", Identities: []string{"*:role/*/ci-*", "*:role/*/github-*", "*:role/*/gitlab-*", "repo:*"},
			Learning: Learning{MinAge: 7 * 24 * time.Hour, MinEvents: 20}, Dormancy: 30 * 24 * time.Hour, Relearn: time.Hour},
		// Classes follow configuration, not detected behaviour, so the same
		// events are judged the same whenever the baselines were rebuilt.
		{Name: "job", Identities: []string{"*cron*", "*job*", "*batch*", "*nightly*"},
			Learning: Learning{MinAge: 3 * 24 * time.Hour, MinEvents: 10},
			Dormancy: 3 * 24 * time.Hour, Relearn: time.Hour},
		*defaultClass,
	}
}

// Classes is the configured list; the first class whose matchers accept an
// identity is its class.
type Classes []Class

// Validate lists every problem at once.
func (cs Classes) Validate() []error {
	var errs []error
	seen := map[string]bool{}
	for i, c := range cs {
		where := fmt.Sprintf("classes[%d]", i)
		switch {
		case c.Name == "":
			errs = append(errs, fmt.Errorf("%s: name is required", where))
		case seen[c.Name]:
			errs = append(errs, fmt.Errorf("%s: class %q is defined twice", where, c.Name))
		}
		seen[c.Name] = true
		for _, g := range c.Identities {
			if g == "" {
				errs = append(errs, fmt.Errorf("%s (%s): empty identity glob", where, c.Name))
			}
		}
		if c.Learning.MinAge < 0 || c.Dormancy < 0 || c.Relearn < 0 {
			errs = append(errs, fmt.Errorf("%s (%s): durations must not be negative", where, c.Name))
		}
	}
	if len(cs) > 0 && !seen[ClassService] {
		errs = append(errs, errors.New("classes: a class named \"service\" is required (the default)"))
	}
	return errs
}

// Named returns the class called name, or the default class (the built-in
// one when the list has none).
func (cs Classes) Named(name string) *Class {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	if name != ClassService {
		return cs.Named(ClassService)
	}
	return defaultClass
}

// Match returns the class whose matchers accept id, or the default.
func (cs Classes) Match(id schemas.Identity) *Class {
	for i := range cs {
		c := &cs[i]
		if len(c.Kinds) == 0 && len(c.Identities) == 0 {
			continue
		}
		if (len(c.Kinds) == 0 || contains(c.Kinds, string(id.Kind))) && (len(c.Identities) == 0 || glob.Any(c.Identities, id.ID)) {
			return c
		}
	}
	return cs.Named(ClassService)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// deployResources are the Kubernetes workload kinds whose change rolls out
// new pods.
var deployResources = []string{"deployments", "statefulsets", "daemonsets"}

// DeployOf reports whether ev is a successful change of a Kubernetes
// workload (from Kubernetes audit) and returns the cohort it redeploys.
func DeployOf(ev *schemas.Event) (cohort string, ok bool) {
	rest, found := strings.CutPrefix(ev.Action, "k8s:")
	if !found || ev.Outcome.Result != schemas.ResultSuccess {
		return "", false
	}
	verb, resource, _ := strings.Cut(rest, ":")
	if (verb != "create" && verb != "update" && verb != "patch") || !contains(deployResources, resource) {
		return "", false
	}
	// The target is <namespace>/<resource>/<name>.
	parts := strings.Split(ev.Target.Resource, "/")
	if len(parts) != 3 || parts[1] != resource {
		return "", false
	}
	return "k8s:" + parts[0] + "/" + parts[2], true
}
