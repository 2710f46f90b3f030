package baseline

import (
	"reflect"
	"testing"

	"github.com/nhisentry/nhisentry/schemas"
)

func TestCohortKey(t *testing.T) {
	sa := schemas.Identity{ID: "k8s:sa/shop/payments", Kind: schemas.KindServiceAccount, Name: "shop/payments"}
	tests := []struct {
		name                string
		id                  schemas.Identity
		namespace, workload string
		want                string
	}{
		{"deployment pod", sa, "shop", "payments-7d9f8b6c5d-x2x4z", "k8s:shop/payments"},
		{"deployment name", sa, "shop", "payments", "k8s:shop/payments"},
		{"dashes in the name", sa, "shop", "my-app-v2-7d9f8b6c5d-x2x4z", "k8s:shop/my-app-v2"},
		{"pre-1.11 numeric hash", sa, "shop", "web-3792357341-8xk2m", "k8s:shop/web"},
		{"cronjob pod", sa, "ops", "backup-28934567-q7x2k", "k8s:ops/backup"},
		{"statefulset ordinal 0", sa, "db", "postgres-0", "k8s:db/postgres"},
		{"statefulset ordinal 12", sa, "db", "postgres-12", "k8s:db/postgres"},
		// Not a controller's suffix: kept.
		{"replicaset name alone", sa, "shop", "payments-7d9f8b6c5d", "k8s:shop/payments-7d9f8b6c5d"},
		{"words with vowels", sa, "shop", "api-gateway-proxy", "k8s:shop/api-gateway-proxy"},
		{"hash too short", sa, "shop", "web-4b5c-x2x4z", "k8s:shop/web-4b5c-x2x4z"},
		{"suffix of 6", sa, "shop", "web-7d9f8b6c5d-x2x4zz", "k8s:shop/web-7d9f8b6c5d-x2x4zz"},
		{"leading zero", sa, "db", "shard-01", "k8s:db/shard-01"},
		{"long number", sa, "db", "build-202401011", "k8s:db/build-202401011"},
		{"leading dash", sa, "db", "-0", "k8s:db/-0"},
		{"no dash", sa, "db", "x2x4z", "k8s:db/x2x4z"},
		// Per-instance credentials share their name.
		{"token", schemas.Identity{ID: "vault:accessor/abc", Kind: schemas.KindToken, Name: "approle-payments"}, "", "", "token:approle-payments"},
		{"certificate", schemas.Identity{ID: "cert:ca/01", Kind: schemas.KindCertificate, Name: "payments.example.com"}, "", "worker", "certificate:payments.example.com"},
		{"token without name", schemas.Identity{ID: "vault:accessor/abc", Kind: schemas.KindToken}, "", "", ""},
		{"role", schemas.Identity{ID: "aws:role/1/x", Kind: schemas.KindRole, Name: "x"}, "", "", ""},
		{"namespace only", sa, "shop", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &History{Identity: tt.id, Namespace: tt.namespace, Workload: tt.workload}
			if got := CohortKey(h); got != tt.want {
				t.Errorf("CohortKey = %q, want %q", got, tt.want)
			}
			if got := Build(h, BuildOptions{}).Cohort; got != tt.want {
				t.Errorf("Build: cohort %q, want %q", got, tt.want)
			}
		})
	}
	if CohortKey(nil) != "" {
		t.Error("nil history has a cohort")
	}
}

func TestCohorts(t *testing.T) {
	member := func(id, cohort string, version int64, mean float64, actions ...string) *Baseline {
		b := &Baseline{Identity: schemas.Identity{ID: id}, Cohort: cohort, Version: version, Rate: Rate{Mean: mean}}
		var vs []KnownValue
		for _, a := range actions {
			vs = append(vs, KnownValue{Value: a, Count: 1})
		}
		b.Known = []KnownSet{
			{Dim: "resource", Values: []KnownValue{{Value: "get"}}}, // not an action
			{Dim: "action", Values: vs},
		}
		return b
	}
	m3 := member("c", "k8s:shop/api", 1, 30, "get", "delete")
	m1 := member("a", "k8s:shop/api", 1, 10, "get", "put")
	m2 := member("b", "k8s:shop/api", 2, 12, "get")
	stale := member("b", "k8s:shop/api", 1, 1000, "admin") // an older version of b
	alone := member("d", "k8s:shop/worker", 1, 5, "get")
	none := member("e", "", 1, 7, "get")
	alone.CohortStats = &CohortBaseline{Cohort: "stale"}
	bs := []*Baseline{m3, stale, m1, alone, nil, m2, none}

	// Means 10 12 30: median 12, deviations 2 0 18, MAD 2.
	want := &CohortBaseline{
		Cohort: "k8s:shop/api", Members: []string{"a", "b"}, Size: 3, Rate: 12, Spread: 2 * 1.4826,
		Actions: map[string]int{"get": 3, "put": 1, "delete": 1},
	}
	got := Cohorts(bs, 2)
	if len(got) != 1 || !reflect.DeepEqual(got["k8s:shop/api"], want) {
		t.Errorf("Cohorts = %+v, want only %+v", got, want)
	}
	if c := Cohorts(bs, 0)["k8s:shop/api"]; c == nil || !reflect.DeepEqual(c.Members, []string{"a", "b", "c"}) {
		t.Errorf("uncapped members: %+v", c)
	}

	SetCohortStats(bs, got)
	for _, b := range []*Baseline{m1, m2, m3} {
		if b.CohortStats != got["k8s:shop/api"] {
			t.Errorf("%s: cohort stats %p, want the cohort's", b.Identity.ID, b.CohortStats)
		}
	}
	if alone.CohortStats != nil || none.CohortStats != nil {
		t.Errorf("a cohort of one or none has stats: %+v %+v", alone.CohortStats, none.CohortStats)
	}

	// Four members: the median of an even count is the mean of the middle
	// two. Means 1 2 4 10: median 3, deviations 2 1 1 7, MAD 1.5.
	four := []*Baseline{member("w", "x", 1, 10), member("x", "x", 1, 1), member("y", "x", 1, 4), member("z", "x", 1, 2)}
	c := Cohorts(four, 10)["x"]
	if c == nil || c.Rate != 3 || !near(c.Spread, 1.5*1.4826) || c.Size != 4 || len(c.Actions) != 0 {
		t.Errorf("four members: %+v", c)
	}
	if len(Cohorts(nil, 1)) != 0 {
		t.Error("cohorts of nothing")
	}
}
