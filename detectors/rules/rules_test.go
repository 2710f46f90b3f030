package rules

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nhisentry/nhisentry/baseline"
	"github.com/nhisentry/nhisentry/detectors"
	"github.com/nhisentry/nhisentry/schemas"
)

var t0 = time.Date(2026, 1, 5, 10, 15, 0, 0, time.UTC)

// profile builds a baseline with the given counts for the hours before t0
// (oldest first) and the given known actions and networks.
func profile(id schemas.Identity, hourly []uint32, actions, networks []string) *baseline.Profile {
	end := t0.Unix() / 3600
	b := &baseline.Baseline{Identity: id, FirstSeen: time.Unix((end-int64(len(hourly)))*3600, 0).UTC(), LastSeen: t0.Add(-time.Hour)}
	for i, c := range hourly {
		b.Recent = append(b.Recent, baseline.HourRollup{Hour: end - int64(len(hourly)) + int64(i), Events: uint64(c)})
		b.Events += uint64(c)
	}
	for _, set := range []struct {
		dim    baseline.Dim
		values []string
	}{{baseline.DimAction, actions}, {baseline.DimNetwork, networks}} {
		ks := baseline.KnownSet{Dim: set.dim.String(), Stability: baseline.Stability{Size: len(set.values)}}
		for _, v := range set.values {
			ks.Values = append(ks.Values, baseline.KnownValue{Value: v, FirstSeen: b.FirstSeen, LastSeen: b.FirstSeen, Count: 1})
		}
		b.Known = append(b.Known, ks)
	}
	p := new(baseline.Profile)
	p.Apply(b, baseline.DefaultClasses())
	return p
}

var role = schemas.Identity{ID: "aws:role/123456789012/app", Kind: schemas.KindRole}

func mustLoad(t testing.TB, opts Options, paths ...string) *Set {
	t.Helper()
	s, err := opts.Load(paths...)
	if err != nil {
		t.Fatalf("load %v: %v", paths, err)
	}
	return s
}

func ruleIDs(fs []schemas.Finding) []string {
	ids := make([]string, 0, len(fs))
	for _, f := range fs {
		ids = append(ids, f.RuleID)
	}
	return ids
}

func TestDetect(t *testing.T) {
	s := mustLoad(t, Options{}, "testdata/good.yaml")
	known := profile(role, []uint32{3, 5}, []string{"iam:ListRoles"}, nil)
	tests := []struct {
		name   string
		action string
		result schemas.Result
		window baseline.Window
		want   []string
	}{
		{"tenth denial fires", "iam:ListRoles", schemas.ResultDenied, baseline.Window{Count: 15, Denied: 12}, []string{"denied-burst"}},
		{"ninth denial is quiet", "iam:ListRoles", schemas.ResultDenied, baseline.Window{Count: 15, Denied: 9}, nil},
		{"success after a burst is quiet", "iam:ListRoles", schemas.ResultSuccess, baseline.Window{Count: 15, Denied: 12}, nil},
		{"new IAM action fires", "iam:CreateRole", schemas.ResultSuccess, baseline.Window{Count: 1}, []string{"new-iam-action"}},
		{"both fire, in file order", "iam:CreateRole", schemas.ResultDenied, baseline.Window{Count: 15, Denied: 12}, []string{"denied-burst", "new-iam-action"}},
		{"non-IAM action is quiet", "s3:GetObject", schemas.ResultSuccess, baseline.Window{Count: 1}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := &schemas.Event{ID: "ev-1", Time: schemas.At(t0), Identity: role, Action: tt.action, Outcome: schemas.Outcome{Result: tt.result}}
			got := s.Detect(&detectors.Input{Event: ev, Profile: known, Window: tt.window, Now: t0}, nil)
			if ids := ruleIDs(got); !slices.Equal(ids, tt.want) {
				t.Fatalf("fired %v, want %v", ids, tt.want)
			}
		})
	}
	if n := s.Errors(); n != 0 {
		t.Fatalf("Errors() = %d, want 0", n)
	}
}

func TestFinding(t *testing.T) {
	s := mustLoad(t, Options{}, "testdata/good.yaml")
	p := profile(role, []uint32{3, 5}, []string{"iam:ListRoles"}, []string{"10.0.1.0/24"})
	in := func(at time.Time, id string) *detectors.Input {
		ev := &schemas.Event{ID: id, Time: schemas.At(at), Identity: role, Action: "iam:ListRoles", Outcome: schemas.Outcome{Result: schemas.ResultDenied}}
		return &detectors.Input{Event: ev, Profile: p, Window: baseline.Window{Count: 15, Denied: 12, Failures: 1, BytesOut: 2048}, Now: at}
	}
	got := s.Detect(in(t0, "ev-1"), nil)
	if len(got) != 1 {
		t.Fatalf("got %d findings, want 1", len(got))
	}
	want := schemas.Finding{
		ID:          schemas.FindingID("rule:denied-burst", role.ID, strconv.FormatInt(t0.Unix()/3600, 10)),
		Detector:    "rule",
		RuleID:      "denied-burst",
		Identity:    role,
		Severity:    schemas.SeverityHigh,
		Score:       80,
		Title:       "Many denied calls from one identity in an hour (privilege probing)",
		Explanation: "rule denied-burst matched iam:ListRoles: 12 denied and 1 failed of 15 calls this hour; baseline 4.0±1.0 calls/h",
		Technique:   "T1580",
		EventIDs:    []string{"ev-1"},
		FirstSeen:   schemas.At(t0),
		LastSeen:    schemas.At(t0),
		Analysis: schemas.Analysis{
			Pattern:  schemas.PatternMatch,
			Observed: "iam:ListRoles: 15 calls, 12 denied, 1 failed, 2048 bytes out this hour",
			Baseline: "4.0±1.0 calls/h over 2 h; 1 known actions, 0 peers, 1 networks",
		},
	}
	if fmt.Sprintf("%+v", got[0]) != fmt.Sprintf("%+v", want) {
		t.Fatalf("finding\n got %+v\nwant %+v", got[0], want)
	}

	// The id is per rule, identity and hour: the engine suppresses a repeat
	// in the same hour and lets the next hour through.
	same := s.Detect(in(t0.Add(30*time.Minute), "ev-2"), nil)
	next := s.Detect(in(t0.Add(time.Hour), "ev-3"), nil)
	if same[0].ID != got[0].ID {
		t.Errorf("same hour: id %s, want %s", same[0].ID, got[0].ID)
	}
	if next[0].ID == got[0].ID {
		t.Errorf("next hour: id %s repeats the previous hour's", next[0].ID)
	}
}

// TestEveryVariable loads one rule per variable, each comparing it with the
// value the input below holds. A rule fires only if its variable resolves to
// a value of the declared type (a mismatch is a runtime "no such overload"
// error) that equals the expected one.
func TestEveryVariable(t *testing.T) {
	var evalErrs []string
	s := mustLoad(t, Options{OnError: func(_ string, err error) { evalErrs = append(evalErrs, err.Error()) }}, "testdata/variables.yaml")
	in := everyVariableInput()
	fired := ruleIDs(s.Detect(in, nil))
	if len(evalErrs) > 0 {
		t.Errorf("evaluation errors:\n%s", strings.Join(evalErrs, "\n"))
	}
	for _, v := range variables {
		if !slices.Contains(fired, v.name) {
			t.Errorf("variable %s (%s): its rule did not fire", v.name, v.typ)
		}
	}
	if len(fired) != len(variables) {
		t.Errorf("%d rules fired, want one per variable (%d)", len(fired), len(variables))
	}
}

// everyVariableInput gives every variable a value other than its zero:
// an event with every field, a profile with history, a model and a class,
// a cohort, and a window with first uses.
func everyVariableInput() *detectors.Input {
	id := role
	id.Name = "app"
	ev := &schemas.Event{
		ID:         "ev-1",
		Time:       schemas.At(t0),
		Source:     schemas.Source{Family: schemas.FamilyCloudAudit, Format: "cloudtrail", Provider: "aws", Account: "123456789012", Region: "eu-west-1", Cluster: "prod-1"},
		Identity:   id,
		Credential: schemas.Credential{ID: "ASIAEXAMPLE", Type: "aws_session", IssuedAt: schemas.At(t0.Truncate(time.Hour).Add(-time.Hour))},
		Actor:      schemas.Actor{IP: "10.0.1.7", UserAgent: "aws-sdk-go/1.55", Workload: "app-7d9f", Namespace: "payments", Peer: "spiffe://td/ns/web/sa/front", Node: "node-1", Session: "sess-1"},
		Action:     "iam:ListRoles",
		Service:    "iam.amazonaws.com",
		Target:     schemas.Target{Resource: "arn:aws:iam::123456789012:role/x", Peer: "spiffe://td/ns/db/sa/pg"},
		Outcome:    schemas.Outcome{Result: schemas.ResultDenied, Status: 403, ErrorCode: "AccessDenied"},
		BytesIn:    512,
		BytesOut:   2048,
		DurationMS: 12.5,
		Issuance: &schemas.Issuance{Credential: "ASIANEW", CredentialType: "aws_sts", Subject: "aws:role/123456789012/other",
			SANs: []string{"a.example.org", "b.example.org"}, Issuer: "sts", TTLSeconds: 3600, Requester: role.ID},
	}
	p := profile(id, []uint32{3, 5}, []string{"iam:ListRoles", "s3:GetObject"}, []string{"10.0.1.0/24"})
	built := &baseline.Baseline{
		Class: "ci", Cohort: "k8s:payments/app", DataThrough: t0.Truncate(time.Hour),
		Known: []baseline.KnownSet{{Dim: "peer", Stability: baseline.Stability{Size: 1},
			Values: []baseline.KnownValue{{Value: "spiffe://td/ns/db/sa/pg"}}}},
		Outcome:  baseline.OutcomeProfile{DeniedRatio: 0.25, FailureRatio: 0.125},
		BytesOut: baseline.Quantiles{Count: 10, P50: 1023, P90: 4095, P99: 65535, Max: 1048575},
		Issuance: &baseline.IssuanceProfile{TTL: 3600},
		Graph:    &baseline.Graph{FanIn: 3, FanOut: []baseline.Edge{{Peer: "spiffe://td/ns/db/sa/pg", Route: "GET /a"}, {Peer: "spiffe://td/ns/db/sa/pg", Route: "GET /b"}}},
	}
	for h := range baseline.HoursPerWeek {
		built.Rate.Centre[h], built.Rate.Spread[h] = 8, 2
	}
	for h := range built.Activity.HourOfDay {
		built.Activity.HourOfDay[h] = 0.5
	}
	p.Apply(built, baseline.DefaultClasses())
	c := baseline.NewCache(baseline.CacheOptions{})
	c.Apply([]*baseline.Baseline{{Identity: schemas.Identity{ID: baseline.CohortPrefix + "k8s:payments/app"},
		CohortStats: &baseline.CohortBaseline{Cohort: "k8s:payments/app", Size: 4, Rate: 2.5, Actions: map[string]int{"iam:ListRoles": 3}}}})
	c.Lock()
	cohort := c.Cohort(p)
	c.Unlock()
	return &detectors.Input{
		Event: ev, Profile: p, Learning: true, Relearning: true, Cohort: cohort, Now: t0.Add(time.Minute),
		Window: baseline.Window{Count: 15, Denied: 12, Failures: 1, BytesOut: 4096, NewActions: 2, NewPeers: 1},
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files []string
		want  []string // every error, in order
	}{
		{"expressions", []string{"testdata/bad_expr.yaml"}, []string{
			"testdata/bad_expr.yaml:5:24: rule type-error: found no matching overload for '_>_' applied to '(string, int)'",
			"testdata/bad_expr.yaml:9:16: rule unknown-var: undeclared reference to 'event.nope'",
			"testdata/bad_expr.yaml:13:11: rule not-bool: expr has type int, want bool",
			"testdata/bad_expr.yaml:19:9: rule literal-block: undeclared reference to 'window'",
			"testdata/bad_expr.yaml:25:7: rule folded-block: undeclared reference to 'nope'",
			"testdata/bad_expr.yaml:29:35: rule quoted: undeclared reference to 'nope'",
			"testdata/bad_expr.yaml:33:33: rule syntax-error: Syntax error: mismatched input '<EOF>'",
		}},
		{"keys and values", []string{"testdata/bad_keys.yaml"}, []string{
			`testdata/bad_keys.yaml:5:5: rule unknown-key: unknown key "serverity" in rule`,
			`testdata/bad_keys.yaml:7:5: rule missing-expr: missing required key "expr"`,
			`testdata/bad_keys.yaml:10:9: rule Bad ID: id "Bad ID" must be lowercase`,
			`testdata/bad_keys.yaml:16:15: rule bad-severity: severity "urgent" must be one of`,
			`testdata/bad_keys.yaml:17:16: rule bad-severity: technique "TA0001" is not a MITRE ATT&CK id`,
			`testdata/bad_keys.yaml:25:16: rule bad-test: event: json: unknown field "actoin"`,
			`testdata/bad_keys.yaml:30:9: rule bad-test: unknown key "widow" in test`,
			"testdata/bad_keys.yaml:29:15: rule bad-test: want: cannot unmarshal !!str `maybe` into bool",
		}},
		{"duplicate id across files", []string{"testdata/dup_a.yaml", "testdata/dup_b.yaml"}, []string{
			"testdata/dup_b.yaml:6:9: rule same-id: duplicate rule id, first defined at testdata/dup_a.yaml:2:5",
		}},
		{"errors of all files together", []string{"testdata/empty.yaml", "testdata/syntax.yaml", "testdata/missing.yaml"}, []string{
			"testdata/empty.yaml: file is empty",
			"testdata/syntax.yaml:2: did not find expected ',' or ']'",
			"testdata/missing.yaml: stat testdata/missing.yaml: no such file or directory",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Load(tt.files...)
			if err == nil {
				t.Fatalf("loaded %d rules, want errors", s.Len())
			}
			var joined interface{ Unwrap() []error }
			if !errors.As(err, &joined) {
				t.Fatalf("error %T is not a joined error: %v", err, err)
			}
			got := joined.Unwrap()
			for i, e := range got {
				var re *Error
				if !errors.As(e, &re) {
					t.Errorf("error %d is %T, want *Error: %v", i, e, e)
				}
				if i < len(tt.want) && !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("error %d:\n got %s\nwant %s…", i, e, tt.want[i])
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(got), len(tt.want), err)
			}
		})
	}
}

func TestCostLimit(t *testing.T) {
	var failed []string
	var errs []error
	s := mustLoad(t, Options{CostLimit: 100, OnError: func(id string, err error) {
		failed = append(failed, id)
		errs = append(errs, err)
	}}, "testdata/costly.yaml")
	ev := &schemas.Event{ID: "ev-1", Time: schemas.At(t0), Identity: role, Action: "iam:ListRoles"}
	in := &detectors.Input{Event: ev, Profile: new(baseline.Profile), Now: t0}
	for range 2 {
		if got := ruleIDs(s.Detect(in, nil)); !slices.Equal(got, []string{"cheap"}) {
			t.Fatalf("fired %v, want [cheap]: the failing rule must not stop the others", got)
		}
	}
	if n := s.Errors(); n != 2 {
		t.Errorf("Errors() = %d, want 2", n)
	}
	if !slices.Equal(failed, []string{"costly", "costly"}) {
		t.Errorf("OnError rules %v, want [costly costly]", failed)
	}
	if len(errs) > 0 && !strings.Contains(errs[0].Error(), "cost limit exceeded") {
		t.Errorf("error %q does not say the cost limit was exceeded", errs[0])
	}
	// The default limit lets the same rule run.
	if got := ruleIDs(mustLoad(t, Options{}, "testdata/costly.yaml").Detect(in, nil)); len(got) != 2 {
		t.Errorf("with the default limit fired %v, want both rules", got)
	}
}

func TestEngineReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "rules.yaml")
	install := func(src string) {
		t.Helper()
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	install("testdata/good.yaml")
	e, err := NewEngine(Options{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	ev := &schemas.Event{ID: "ev-1", Time: schemas.At(t0), Identity: role, Action: "iam:ListRoles", Outcome: schemas.Outcome{Result: schemas.ResultDenied}}
	in := &detectors.Input{Event: ev, Profile: new(baseline.Profile), Window: baseline.Window{Count: 12, Denied: 12}, Now: t0}
	old := e.Set()

	// Detect keeps running on whichever set is current while reloads swap
	// sets underneath (meaningful under -race).
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				e.Detect(in, nil)
			}
		}
	})

	install("testdata/bad_expr.yaml")
	err = e.Reload()
	if err == nil || !strings.Contains(err.Error(), "rule type-error") {
		t.Fatalf("reload of a broken file: err = %v, want the file's errors", err)
	}
	if e.Set() != old {
		t.Fatal("a failed reload replaced the working rules")
	}
	if got := ruleIDs(e.Detect(in, nil)); !slices.Contains(got, "denied-burst") {
		t.Fatalf("after a failed reload fired %v, want denied-burst", got)
	}

	install("testdata/dup_a.yaml")
	if err := e.Reload(); err != nil {
		t.Fatalf("reload of a good file: %v", err)
	}
	close(stop)
	wg.Wait()
	if got := ruleIDs(e.Detect(in, nil)); !slices.Equal(got, []string{"same-id"}) {
		t.Fatalf("after reload fired %v, want [same-id]", got)
	}

	if _, err := NewEngine(Options{}, "testdata/bad_expr.yaml"); err == nil {
		t.Fatal("NewEngine with a broken file succeeded")
	}
}

// TestPack keeps the shipped rule pack loadable and its inline cases green,
// and makes every rule prove both that it fires and that it stays quiet.
func TestPack(t *testing.T) {
	s := mustLoad(t, Options{}, "pack/default.yaml")
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, r := range RunTests(s) {
		if !r.OK() {
			t.Error(r)
		}
		if r.Want {
			fires[r.RuleID] = true
		} else {
			quiet[r.RuleID] = true
		}
	}
	for _, r := range s.rules {
		if !fires[r.id] || !quiet[r.id] {
			t.Errorf("rule %s needs a firing and a quiet test case (has firing %t, quiet %t)", r.id, fires[r.id], quiet[r.id])
		}
	}
	for _, id := range []string{"denied-burst", "iam-write-by-workload", "secret-read-new-network", "root-account-use", "large-egress"} {
		if !slices.ContainsFunc(s.rules, func(r *rule) bool { return r.id == id }) {
			t.Errorf("pack lacks rule %s", id)
		}
	}
}

func TestRunTestsReportsFailures(t *testing.T) {
	got := RunTests(mustLoad(t, Options{}, "testdata/failing.yaml"))
	want := []string{
		"testdata/failing.yaml:7: wrong-case / passes: PASS",
		"testdata/failing.yaml:10: wrong-case / expects a match that cannot happen: FAIL: got false, want true",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("result %d = %q, want %q", i, got[i], want[i])
		}
	}
	if !got[0].OK() || got[1].OK() {
		t.Errorf("OK() = %t, %t; want true, false", got[0].OK(), got[1].OK())
	}
}

// TestCostTrackingOnlyWhereNeeded: rules whose worst case (every string as
// long as the largest record) stays under the limit run without runtime cost
// tracking; the rest keep it.
func TestCostTrackingOnlyWhereNeeded(t *testing.T) {
	tracked := func(s *Set) map[string]bool {
		m := map[string]bool{}
		for _, r := range s.rules {
			m[r.id] = r.tracked
		}
		return m
	}
	costly := tracked(mustLoad(t, Options{}, "testdata/costly.yaml"))
	if !costly["costly"] || costly["cheap"] {
		t.Errorf("costly.yaml tracking %v, want only the quadratic rule tracked", costly)
	}
	pack := tracked(mustLoad(t, Options{}, "pack/default.yaml"))
	if pack["denied-burst"] || pack["root-account-use"] {
		t.Errorf("default pack tracking %v: comparisons and prefixes need no runtime tracking", pack)
	}
	if !pack["secret-read-new-network"] {
		t.Errorf("default pack tracking %v: a regular expression over an unbounded string must stay tracked", pack)
	}
}
