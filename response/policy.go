package response

import (
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"cel.dev/cel-go/cel"

	"github.com/nhisentry/nhisentry/internal/glob"
	"github.com/nhisentry/nhisentry/schemas"
)

// Mode is how far an action goes.
type Mode string

// Modes, from the safest. DryRun is the default everywhere.
const (
	// ModeDryRun logs and audits what would be done; nothing is planned
	// further.
	ModeDryRun Mode = "dry-run"
	// ModeShadow plans fully (blast radius, approvals, budgets) and audits
	// the decision, but calls nothing.
	ModeShadow Mode = "shadow"
	// ModeCanary acts on identities in the canary (named scopes or a
	// sample) and shadows the rest.
	ModeCanary Mode = "canary"
	// ModeEnforce acts.
	ModeEnforce Mode = "enforce"
)

func (m Mode) valid() bool {
	return m == ModeDryRun || m == ModeShadow || m == ModeCanary || m == ModeEnforce
}

// Policy maps findings to actions and sets the guards around them.
type Policy struct {
	// Enabled turns responses on; off, findings are only reported.
	Enabled bool `yaml:"enabled"`
	// Mode applies to rules that set none.
	Mode Mode `yaml:"mode"`
	// Topic receives every audit record (JSON keyed by identity), next to
	// ClickHouse's response_audit.
	Topic string `yaml:"topic"`
	// MinSeverity and MinScore: weaker findings never lead to an action.
	MinSeverity string `yaml:"min_severity"`
	MinScore    int    `yaml:"min_score"`
	// Protected identities (globs) are never acted on; their actions are
	// audited as skipped.
	Protected []string `yaml:"protected"`
	Approval  Approval `yaml:"approval"`
	Canary    Canary   `yaml:"canary"`
	Budgets   Budgets  `yaml:"budgets"`
	Retry     Retry    `yaml:"retry"`
	Rules     []Rule   `yaml:"rules"`
}

// Approval says which actions wait for a person (`nhisentry respond
// approve`).
type Approval struct {
	// FanInOver: an identity called by more than this many others (its
	// blast radius) needs approval; 0 never by fan-in.
	FanInOver int `yaml:"fan_in_over"`
	// Irreversible actions (revocations, bans) wait for approval: the
	// reversible ones come first, revocation follows when confirmed.
	Irreversible bool `yaml:"irreversible"`
	// Always makes every action wait.
	Always bool `yaml:"always"`
}

// Canary is the part of the estate canary mode acts on.
type Canary struct {
	// Identities (globs) always in the canary.
	Identities []string `yaml:"identities"`
	// Percent of the other identities, chosen by a hash of the id so an
	// identity is in or out for good.
	Percent int `yaml:"percent"`
}

// Budgets bound automation per window.
type Budgets struct {
	Window time.Duration `yaml:"window"`
	// PerProvider caps the actions one provider takes per window;
	// Providers overrides it by provider name.
	PerProvider int            `yaml:"per_provider"`
	Providers   map[string]int `yaml:"providers"`
	// BlastRadius caps the sum of the blast radii (the identity plus its
	// callers) acted on per window. Reaching it opens the circuit breaker:
	// every automated action then waits for approval until Cooldown has
	// passed or `nhisentry respond reset`.
	BlastRadius int           `yaml:"blast_radius"`
	Cooldown    time.Duration `yaml:"cooldown"`
}

// Retry paces the attempts of an action whose provider failed.
type Retry struct {
	MaxAttempts int           `yaml:"max_attempts"`
	First       time.Duration `yaml:"first"`
	Max         time.Duration `yaml:"max"`
}

// Rule maps the findings its condition matches to actions.
type Rule struct {
	ID          string `yaml:"id"`
	Description string `yaml:"description"`
	// When is a CEL expression over finding (id, detector, rule_id,
	// severity, severity_rank, score, title, technique, count,
	// explanation) and identity (id, kind, name).
	When    string       `yaml:"when"`
	Actions []RuleAction `yaml:"actions"`
	// Mode overrides the policy's mode for this rule.
	Mode Mode `yaml:"mode"`
}

// RuleAction is one action with the provider that takes it.
type RuleAction struct {
	Action   Action `yaml:"action"`
	Provider string `yaml:"provider"`
}

// DefaultPolicy is off, in dry-run, with conservative guards.
func DefaultPolicy() Policy {
	return Policy{
		Mode: ModeDryRun, Topic: "nhi.responses", MinSeverity: string(schemas.SeverityHigh), MinScore: 70,
		Approval: Approval{FanInOver: 5, Irreversible: true},
		Budgets:  Budgets{Window: time.Hour, PerProvider: 20, BlastRadius: 50, Cooldown: time.Hour},
		Retry:    Retry{MaxAttempts: 8, First: time.Second, Max: 5 * time.Minute},
	}
}

// reversibility orders actions: reversible ones run first.
var reversibility = map[Action]int{ActionNotify: 0, ActionIsolate: 1, ActionDisable: 2, ActionRevoke: 3}

// compiled is a policy ready to evaluate.
type compiled struct {
	Policy
	minSeverity schemas.Severity
	rules       []compiledRule
}

type compiledRule struct {
	Rule
	prg cel.Program
}

var policyEnv = func() *cel.Env {
	env, err := cel.NewEnv(
		cel.Variable("finding", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("identity", cel.MapType(cel.StringType, cel.DynType)),
	)
	if err != nil {
		panic(err)
	}
	return env
}()

// compile checks the policy against the provider names configured and
// lists every problem, each named by its YAML path under field.
func (p Policy) compile(field string, providers []string) (*compiled, []error) {
	var errs []error
	bad := func(f, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s%s: %s", field, f, fmt.Sprintf(format, args...)))
	}
	c := &compiled{Policy: p}
	if !p.Mode.valid() {
		bad(".mode", "want dry-run, shadow, canary or enforce, got %q", p.Mode)
	}
	if sev, ok := schemas.ParseSeverity(p.MinSeverity); ok {
		c.minSeverity = sev
	} else if p.MinSeverity != "" {
		bad(".min_severity", "unknown severity %q", p.MinSeverity)
	}
	if p.MinScore < 0 || p.MinScore > 100 {
		bad(".min_score", "want 0 to 100, got %d", p.MinScore)
	}
	if p.Enabled && p.Topic == "" {
		bad(".topic", "required")
	}
	if p.Canary.Percent < 0 || p.Canary.Percent > 100 {
		bad(".canary.percent", "want 0 to 100, got %d", p.Canary.Percent)
	}
	b := p.Budgets
	if b.Window <= 0 {
		bad(".budgets.window", "must be positive")
	}
	if b.PerProvider <= 0 {
		bad(".budgets.per_provider", "must be positive")
	}
	if b.BlastRadius <= 0 {
		bad(".budgets.blast_radius", "must be positive")
	}
	if b.Cooldown <= 0 {
		bad(".budgets.cooldown", "must be positive")
	}
	for name, n := range b.Providers {
		if !slices.Contains(providers, name) {
			bad(".budgets.providers."+name, "no provider of that name is configured")
		} else if n <= 0 {
			bad(".budgets.providers."+name, "must be positive")
		}
	}
	if p.Retry.MaxAttempts <= 0 || p.Retry.First <= 0 || p.Retry.Max < p.Retry.First {
		bad(".retry", "max_attempts and first must be positive and max at least first")
	}
	seen := map[string]bool{}
	for i, r := range p.Rules {
		rf := fmt.Sprintf(".rules[%d]", i)
		if r.ID == "" {
			bad(rf+".id", "required")
		} else if seen[r.ID] {
			bad(rf+".id", "%q is used twice", r.ID)
		}
		seen[r.ID] = true
		if r.Mode != "" && !r.Mode.valid() {
			bad(rf+".mode", "want dry-run, shadow, canary or enforce, got %q", r.Mode)
		}
		if len(r.Actions) == 0 {
			bad(rf+".actions", "at least one action is required")
		}
		for j, a := range r.Actions {
			af := fmt.Sprintf("%s.actions[%d]", rf, j)
			if _, ok := reversibility[a.Action]; !ok {
				bad(af+".action", "want isolate_workload, disable_identity, revoke_credential or notify, got %q", a.Action)
			}
			if !slices.Contains(providers, a.Provider) {
				bad(af+".provider", "no provider named %q is configured (have %v)", a.Provider, providers)
			}
		}
		ast, iss := policyEnv.Compile(r.When)
		if iss.Err() != nil {
			bad(rf+".when", "%v", iss.Err())
			continue
		}
		if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
			bad(rf+".when", "must be a bool expression, is %v", ast.OutputType())
			continue
		}
		prg, err := policyEnv.Program(ast, cel.CostLimit(100000))
		if err != nil {
			bad(rf+".when", "%v", err)
			continue
		}
		r.Actions = slices.Clone(r.Actions)
		slices.SortStableFunc(r.Actions, func(a, b RuleAction) int { return reversibility[a.Action] - reversibility[b.Action] })
		c.rules = append(c.rules, compiledRule{Rule: r, prg: prg})
	}
	return c, errs
}

// match returns the first rule whose condition holds for f, or nil. A
// condition that fails to evaluate does not match; the error is returned
// for the log.
func (c *compiled) match(f *schemas.Finding) (*compiledRule, error) {
	vars := map[string]any{
		"finding": map[string]any{
			"id": f.ID, "detector": f.Detector, "rule_id": f.RuleID, "severity": string(f.Severity),
			"severity_rank": f.Severity.Rank(), "score": f.Score, "title": f.Title, "technique": f.Technique,
			"count": f.Count, "explanation": f.Explanation,
		},
		"identity": map[string]any{"id": f.Identity.ID, "kind": string(f.Identity.Kind), "name": f.Identity.Name},
	}
	var firstErr error
	for i := range c.rules {
		out, _, err := c.rules[i].prg.Eval(vars)
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("response rule %s: %w", c.rules[i].ID, err)
			}
			continue
		}
		if b, ok := out.Value().(bool); ok && b {
			return &c.rules[i], firstErr
		}
	}
	return nil, firstErr
}

// eligible reports whether f is strong enough to act on.
func (c *compiled) eligible(f *schemas.Finding) bool {
	return f.Severity.Rank() >= c.minSeverity.Rank() && f.Score >= c.MinScore
}

// protected reports whether the identity must never be acted on.
func (c *compiled) protected(id string) bool { return glob.Any(c.Protected, id) }

// inCanary reports whether canary mode acts on the identity.
func (c *compiled) inCanary(id string) bool {
	if glob.Any(c.Canary.Identities, id) {
		return true
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32()%100) < c.Canary.Percent
}

// modeOf is the rule's mode, or the policy's.
func (c *compiled) modeOf(r *compiledRule) Mode {
	if r.Mode != "" {
		return r.Mode
	}
	return c.Mode
}
