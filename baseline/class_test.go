package baseline

import (
	"strings"
	"testing"

	"github.com/nhisentry/nhisentry/schemas"
)

func TestClassesMatch(t *testing.T) {
	cs := DefaultClasses()
	for _, tc := range []struct {
		id   schemas.Identity
		want string
	}{
		{schemas.Identity{ID: "aws:role/123/ci-deployer", Kind: schemas.KindRole}, "ci"},
		{schemas.Identity{ID: "aws:user/123/break-glass-admin", Kind: schemas.KindUser}, "break_glass"},
		{schemas.Identity{ID: "spiffe://td/ns/reports/sa/nightly-export", Kind: schemas.KindWorkload}, "job"},
		{schemas.Identity{ID: "spiffe://td/ns/pay/sa/api", Kind: schemas.KindWorkload}, ClassService},
	} {
		if got := cs.Match(tc.id).Name; got != tc.want {
			t.Errorf("Match(%s) = %s, want %s", tc.id.ID, got, tc.want)
		}
	}
	kinds := Classes{{Name: "keys", Kinds: []string{"api_key"}, Learning: Learning{MinEvents: 5}}, *defaultClass}
	if got := kinds.Match(schemas.Identity{ID: "apikey:kong:1", Kind: schemas.KindAPIKey}).Name; got != "keys" {
		t.Errorf("kind matcher: got %s", got)
	}
}

func TestClassesValidateListsEveryError(t *testing.T) {
	cs := Classes{
		{Name: ""},
		{Name: "a", Identities: []string{""}},
		{Name: "a", Dormancy: -1},
	}
	errs := cs.Validate()
	var text []string
	for _, e := range errs {
		text = append(text, e.Error())
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{"classes[0]: name is required", "empty identity glob", `class "a" is defined twice`, "must not be negative", `"service" is required`} {
		if !strings.Contains(all, want) {
			t.Errorf("missing %q in:\n%s", want, all)
		}
	}
	if errs := DefaultClasses().Validate(); len(errs) != 0 {
		t.Errorf("defaults invalid: %v", errs)
	}
}

func TestDeployOf(t *testing.T) {
	for _, tc := range []struct {
		action, target string
		result         schemas.Result
		want           string
	}{
		{"k8s:patch:deployments", "pay/deployments/api", schemas.ResultSuccess, "k8s:pay/api"},
		{"k8s:update:statefulsets", "db/statefulsets/pg", schemas.ResultSuccess, "k8s:db/pg"},
		{"k8s:create:daemonsets", "kube-system/daemonsets/agent", schemas.ResultSuccess, "k8s:kube-system/agent"},
		{"k8s:patch:deployments/status", "pay/deployments/api", schemas.ResultSuccess, ""}, // status only
		{"k8s:get:deployments", "pay/deployments/api", schemas.ResultSuccess, ""},
		{"k8s:patch:deployments", "pay/deployments/api", schemas.ResultDenied, ""},
		{"k8s:patch:deployments", "deployments/api", schemas.ResultSuccess, ""},
		{"s3:PutObject", "pay/deployments/api", schemas.ResultSuccess, ""},
	} {
		ev := &schemas.Event{Action: tc.action, Target: schemas.Target{Resource: tc.target}, Outcome: schemas.Outcome{Result: tc.result}}
		got, ok := DeployOf(ev)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("DeployOf(%s %s %s) = %q, %v; want %q", tc.action, tc.target, tc.result, got, ok, tc.want)
		}
	}
}

func TestNamedFallsBackToTheDefaultClass(t *testing.T) {
	if c := Classes(nil).Named("ci"); c.Name != ClassService {
		t.Errorf("empty list: %s", c.Name)
	}
	if c := DefaultClasses().Named("nope"); c.Name != ClassService {
		t.Errorf("unknown name: %s", c.Name)
	}
}
