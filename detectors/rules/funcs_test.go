package rules

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

// TestFunctions loads one rule per use of a helper function, each true for
// everyVariableInput, and checks every one fires without evaluation errors.
func TestFunctions(t *testing.T) {
	var evalErrs []string
	s := mustLoad(t, Options{OnError: func(id string, err error) { evalErrs = append(evalErrs, err.Error()) }}, "testdata/functions.yaml")
	fired := ruleIDs(s.Detect(everyVariableInput(), nil))
	if len(evalErrs) > 0 {
		t.Errorf("evaluation errors:\n%s", strings.Join(evalErrs, "\n"))
	}
	for _, r := range s.rules {
		if !slices.Contains(fired, r.id) {
			t.Errorf("rule %s (%s) did not fire", r.id, r.pos())
		}
	}
	// Without a profile or cohort, lookups answer "unknown" and 0 rather
	// than failing.
	bare := &detectors.Input{Event: &schemas.Event{ID: "e", Time: schemas.At(t0), Identity: role, Action: "iam:ListRoles"}, Now: t0}
	evalErrs = nil
	s.Detect(bare, nil)
	if len(evalErrs) > 0 {
		t.Errorf("evaluation errors without a profile:\n%s", strings.Join(evalErrs, "\n"))
	}
}

// TestLiteralCIDRParsedOnce: a literal prefix is parsed when the rule is
// compiled (the decorator replaces the call), a computed one per call.
func TestLiteralCIDRParsedOnce(t *testing.T) {
	s := mustLoad(t, Options{}, "testdata/functions.yaml")
	in := everyVariableInput()
	for _, id := range []string{"cidr-literal", "cidr-member"} {
		r := s.byID[id]
		act := newActivation(in)
		allocs := testing.AllocsPerRun(100, func() {
			if ok, err := r.eval(act); !ok || err != nil {
				t.Fatalf("%s: %t, %v", id, ok, err)
			}
		})
		act.release()
		if allocs > 1 {
			t.Errorf("%s: %.0f allocations per evaluation, want at most 1 (the prefix is parsed at compile time)", id, allocs)
		}
	}
}

func TestFunctionLoadErrors(t *testing.T) {
	_, err := Load("testdata/bad_funcs.yaml")
	if err == nil {
		t.Fatal("loaded")
	}
	want := []string{
		`testdata/bad_funcs.yaml:5:25: rule bad-cidr: cidr_contains: "10.0.0.0/33" is not a CIDR prefix`,
		`testdata/bad_funcs.yaml:9:35: rule bad-member-cidr: in_cidr: "nope" is not a CIDR prefix`,
		`testdata/bad_funcs.yaml:13:26: rule bad-dim: unknown baseline dimension "actoin" (dimensions: action, resource, peer,`,
		`testdata/bad_funcs.yaml:17:15: rule wrong-arity: found no matching overload for 'glob' applied to '(string)'`,
		`testdata/bad_funcs.yaml:22:24: rule bad-response: unknown response action "nuke" (actions: revoke_credential, disable_identity, isolate_workload, notify)`,
		`testdata/bad_funcs.yaml:27:38: rule bad-mode: unknown response mode "yolo" (modes: dry_run, shadow, canary, enforce)`,
	}
	wantErrors(t, err, want)
}

func TestResponse(t *testing.T) {
	s := mustLoad(t, Options{}, "testdata/responses.yaml")
	tests := []struct {
		id   string
		want Response
		ok   bool
	}{
		{"short", Response{Action: "notify"}, true},
		{"full", Response{Action: "revoke_credential", Mode: "dry_run"}, true},
		{"none", Response{}, false},
		{"no-such-rule", Response{}, false},
	}
	for _, tt := range tests {
		got, ok := s.Response(tt.id)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Response(%q) = %+v, %t; want %+v, %t", tt.id, got, ok, tt.want, tt.ok)
		}
	}
}

func TestLint(t *testing.T) {
	s, problems := Options{}.Lint("testdata/lint.yaml")
	if s == nil {
		t.Fatalf("lint.yaml did not load: %v", problems)
	}
	var got []string
	for _, p := range problems {
		got = append(got, p.Error())
	}
	want := []string{
		`testdata/lint.yaml:5:11: rule typo-result: event.outcome.result is never "denid" (it is one of success, failure, denied), so this comparison is always false`,
		`testdata/lint.yaml:5:11: rule typo-result: the expression folds to false: the rule can never match`,
		`testdata/lint.yaml:11:11: rule typo-kind-ne: event.identity.kind is never "serviceaccount" (it is one of workload, role, user, service_account, service_principal, api_key, certificate, token, unknown), so this comparison is always true`,
		`testdata/lint.yaml:17:11: rule typo-in: event.source.family is never any of "cloudaudit", "gw" (it is one of mesh, gateway, cloud_audit, issuance), so this test is always false`,
		`testdata/lint.yaml:17:11: rule typo-in: the expression folds to false: the rule can never match`,
		`testdata/lint.yaml:23:11: rule constant-false: the expression folds to false: the rule can never match`,
		`testdata/lint.yaml:29:11: rule always-true: the expression folds to true: the rule matches every event`,
		`testdata/lint.yaml:35:67: rule conflict: event.action must equal both "iam:CreateUser" and "iam:CreateRole": the rule can never match`,
		`testdata/lint.yaml:38:5: rule never-tested-true: no inline test case expects a match (want: true), so nothing shows the rule can fire`,
		`testdata/lint.yaml:44:5: rule untested: no inline test cases; add one that matches (want: true) and one that does not`,
	}
	// Problems come in file order (line, then column; ties as found).
	if !slices.Equal(got, want) {
		t.Errorf("lint problems:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(want, "\n     "))
	}

	// A file that does not load reports its load errors and no set.
	if s, problems := (Options{}).Lint("testdata/bad_expr.yaml"); s != nil || len(problems) != 7 {
		t.Errorf("Lint(bad_expr.yaml) = %v, %d problems; want nil and the 7 load errors", s, len(problems))
	}
}

// TestHistory: a case's history is folded into the profile the way the
// engine would, so stateful rules are testable: the known sets, the
// learning state, the window and the relearning after a deploy follow it.
func TestHistory(t *testing.T) {
	s := mustLoad(t, Options{}, "testdata/history.yaml")
	results := RunTests(s)
	if len(results) == 0 {
		t.Fatal("no cases")
	}
	for _, r := range results {
		if !r.OK() {
			t.Error(r)
		}
	}
}

func TestHistoryInput(t *testing.T) {
	s := mustLoad(t, Options{}, "testdata/history.yaml")
	r := s.byID["new-action-after-a-week"]
	if r == nil || len(r.tests) == 0 {
		t.Fatal("rule missing")
	}
	in := r.tests[0].input()
	if in.Learning {
		t.Error("a week of 3 events an hour should end the learning period")
	}
	if got := in.Profile.Events; got != 7*24*3 {
		t.Errorf("profile holds %d events, want %d", got, 7*24*3)
	}
	if !in.Profile.Knows(baseline.DimAction, "s3:GetObject") || !in.Profile.Knows(baseline.DimNetwork, "10.0.1.0/24") {
		t.Error("generated actions and networks are not known")
	}
	if in.Window.Count != 1 || in.Window.NewActions != 1 {
		t.Errorf("window %+v, want this event only, a first use", in.Window)
	}
}

func TestHistoryLoadErrors(t *testing.T) {
	_, err := Load("testdata/bad_history.yaml")
	if err == nil {
		t.Fatal("loaded")
	}
	want := []string{
		`testdata/bad_history.yaml:9:39: rule bad-history: unknown key "perhour" in history.generate`,
		`testdata/bad_history.yaml:13:29: rule bad-history: history.generate: days must be 1–60 and per_hour 1–60`,
		`testdata/bad_history.yaml:17:40: rule bad-history: history.generate.networks: "10.0.0.0/99" is not a CIDR prefix`,
		`testdata/bad_history.yaml:21:19: rule bad-history: history[0]: json: unknown field "actoin"`,
		`testdata/bad_history.yaml:25:16: rule bad-history: class "robot" is not one of the default classes`,
		`testdata/bad_history.yaml:29:18: rule bad-history: history must be a list of events or {generate: {...}}, got a scalar`,
		`testdata/bad_history.yaml:33:28: rule bad-history: unknown key "p99" in baseline.model`,
	}
	wantErrors(t, err, want)
}

func TestHostIn(t *testing.T) {
	tests := []struct {
		prefix string
		k      int
		want   string
	}{
		{"10.0.1.0/24", 0, "10.0.1.1"},
		{"10.0.1.0/24", 253, "10.0.1.254"},
		{"10.0.1.0/24", 254, "10.0.1.1"},
		{"10.0.1.9/32", 5, "10.0.1.9"},
		{"10.0.1.8/30", 4, "10.0.1.10"},
		{"2001:db8::/64", 1, "2001:db8::2"},
	}
	for _, tt := range tests {
		p, err := parseCIDR(tt.prefix)
		if err != nil {
			t.Fatal(err)
		}
		if got := hostIn(p, tt.k).String(); got != tt.want {
			t.Errorf("hostIn(%s, %d) = %s, want %s", tt.prefix, tt.k, got, tt.want)
		}
	}
}

// wantErrors fails t unless err joins errors that start with want, in order.
func wantErrors(t *testing.T, err error, want []string) {
	t.Helper()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("%T", err)
	}
	got := joined.Unwrap()
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("missing error %d: %s", i, want[i])
		case i >= len(want):
			t.Errorf("unexpected error %d: %s", i, got[i])
		case !strings.HasPrefix(got[i].Error(), want[i]):
			t.Errorf("error %d:\n got %s\nwant %s…", i, got[i], want[i])
		}
	}
}
