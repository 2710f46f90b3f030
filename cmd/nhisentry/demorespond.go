package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nhisentry/nhisentry/baseline/chstore"
	"github.com/nhisentry/nhisentry/bench/gen"
	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers"
	"github.com/nhisentry/nhisentry/response/providers/kube"
	"github.com/nhisentry/nhisentry/response/providers/kube/controlplane"
	"github.com/nhisentry/nhisentry/schemas"
)

// demoRespond shows the guarded responses on the demo's findings against a
// real Kubernetes API server started on this machine: the policy planned in
// dry-run, then in enforce with approval, a person's approval, the
// provider's call and its audit row, and the isolation undone.
func demoRespond(ctx context.Context, w io.Writer, cfg Config, store *chstore.Store, findings []schemas.Finding, labels []gen.Label, log *slog.Logger) error {
	var workload string
	for _, l := range labels {
		if l.Scenario == gen.ScenarioLateralMovement {
			workload = l.Identity
		}
	}
	fmt.Fprintf(w, "\n== responses ==\n")
	if workload == "" {
		fmt.Fprintln(w, "no lateral-movement attack in this run; nothing to respond to")
		return nil
	}
	cp, err := controlplane.Start()
	if err != nil {
		fmt.Fprintf(w, "skipped: a Kubernetes API server could not start here: %v\n(make demo builds kube-apiserver once with deploy/local/kube-apiserver.sh)\n", err)
		return nil
	}
	defer cp.Stop()
	dir, err := os.MkdirTemp("", "nhisentry-demo-kube")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := cp.Kubeconfig(kubeconfig); err != nil {
		return err
	}
	target := response.TargetOf(&schemas.Finding{Identity: schemas.Identity{ID: workload}}, nil)
	client, err := kubernetes.NewForConfig(cp.Admin)
	if err != nil {
		return err
	}
	if err := deployDemoWorkload(ctx, client, target); err != nil {
		return err
	}
	fmt.Fprintf(w, "kube-apiserver %s with etcd on %s; the attacked workload %s runs there as service account %s/%s with 2 pods\n",
		controlplane.APIServerVersion, cp.Admin.Host, workload, target.Namespace, target.ServiceAccount)

	// The policy: a workload whose peer fan-out explodes (lateral movement)
	// is isolated in Kubernetes. First in dry-run, as every policy starts.
	policy := response.DefaultPolicy()
	policy.Enabled, policy.Mode = true, response.ModeDryRun
	policy.Protected = []string{"spiffe://*/ns/kube-system/*"}
	policy.Rules = []response.Rule{{
		ID: "contain-lateral-movement", When: `identity.kind == "workload" && finding.detector == "peer_fanout"`,
		Actions: []response.RuleAction{{Action: response.ActionIsolate, Provider: "kubernetes"}},
	}}
	cfg.Respond = RespondConfig{Policy: policy, Providers: demoProviders(kubeconfig)}
	if err := configErrors("", cfg.Respond.validate()); err != nil {
		return err
	}
	r, closeSinks, err := newResponder(ctx, cfg, store, nil, log)
	if err != nil {
		return err
	}
	defer closeSinks()
	if err := r.Deliver(ctx, findings); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n1. policy in dry-run: what it would do (nhisentry respond list):\n")
	if err := listDemoActions(ctx, w, r); err != nil {
		return err
	}

	// Then enforced, with every action waiting for a person.
	policy.Mode, policy.Approval.Always = response.ModeEnforce, true
	cfg.Respond.Policy = policy
	if r, closeSinks, err = newResponder(ctx, cfg, store, nil, log); err != nil {
		return err
	}
	defer closeSinks()
	if err := r.Deliver(ctx, findings); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n2. enforced, approval required: planned and waiting (nhisentry respond list --status pending_approval):\n")
	if err := listDemoActions(ctx, w, r, response.StatusPending); err != nil {
		return err
	}
	pending, err := r.List(ctx, response.StatusPending)
	if err != nil || len(pending) == 0 {
		return fmt.Errorf("demo: no pending action to approve (%v)", err)
	}
	id := pending[0].ID
	rec, err := r.Approve(ctx, id, "demo-analyst")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n3. approved (nhisentry respond approve --as demo-analyst %s):\n   %s: %s\n", id, rec.Status, rec.Detail)
	if err := showDemoCluster(ctx, w, client, target); err != nil {
		return err
	}
	fmt.Fprintf(w, "   the audit row (ClickHouse %s.response_audit, also on the audit topic):\n", cfg.ClickHouse.Database)
	if err := printAuditRow(ctx, w, store, id); err != nil {
		return err
	}
	rec, err = r.Undo(ctx, id, "demo-analyst")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n4. isolation undone (nhisentry respond undo %s):\n   %s: %s\n", id, rec.Status, rec.Detail)
	if err := showDemoCluster(ctx, w, client, target); err != nil {
		return err
	}
	var versions int
	err = readTopic(ctx, cfg.Kafka.Brokers, cfg.Respond.Topic, func(*kgo.Record) error { versions++; return nil })
	fmt.Fprintf(w, "   the audit topic %s holds %d versions of the demo's action records\n", cfg.Respond.Topic, versions)
	return err
}

// demoProviders configures the Kubernetes provider with the control plane's
// kubeconfig, as a user would for a real cluster.
func demoProviders(kubeconfig string) (p providers.Config) {
	p.Kubernetes = []kube.Config{{Kubeconfig: kubeconfig}}
	return p
}

// deployDemoWorkload creates the attacked workload's namespace, service
// account and two pods, and a bystander pod of another service account.
func deployDemoWorkload(ctx context.Context, c kubernetes.Interface, t response.Target) error {
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: t.Namespace}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("demo workload: %w", err)
	}
	pods := []struct{ name, sa string }{
		{t.ServiceAccount + "-7f9c8-a1", t.ServiceAccount}, {t.ServiceAccount + "-7f9c8-b2", t.ServiceAccount}, {"bystander-5d6e7-c3", "bystander"},
	}
	for _, sa := range []string{t.ServiceAccount, "bystander"} {
		if _, err := c.CoreV1().ServiceAccounts(t.Namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("demo workload: %w", err)
		}
	}
	for _, p := range pods {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: p.name, Labels: map[string]string{"app": p.sa}},
			Spec: corev1.PodSpec{ServiceAccountName: p.sa, Containers: []corev1.Container{{Name: "app", Image: "registry.example/" + p.sa + ":1"}}}}
		if _, err := c.CoreV1().Pods(t.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("demo workload: %w", err)
		}
	}
	return nil
}

// showDemoCluster prints the pods' quarantine labels and the NetworkPolicies
// of the workload's namespace, read back from the API server.
func showDemoCluster(ctx context.Context, w io.Writer, c kubernetes.Interface, t response.Target) error {
	pods, err := c.CoreV1().Pods(t.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "   in the API server, namespace %s:\n", t.Namespace)
	for _, p := range pods.Items {
		var ls []string
		for k, v := range p.Labels {
			ls = append(ls, k+"="+v)
		}
		sort.Strings(ls)
		fmt.Fprintf(w, "     pod %-24s labels %s\n", p.Name, strings.Join(ls, ","))
	}
	nps, err := c.NetworkingV1().NetworkPolicies(t.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	if len(nps.Items) == 0 {
		fmt.Fprintln(w, "     no NetworkPolicy")
	}
	for _, np := range nps.Items {
		fmt.Fprintf(w, "     NetworkPolicy %s selects %v, policy types %v, %d ingress and %d egress rules (deny all)\n",
			np.Name, np.Spec.PodSelector.MatchLabels, np.Spec.PolicyTypes, len(np.Spec.Ingress), len(np.Spec.Egress))
	}
	return nil
}

func listDemoActions(ctx context.Context, w io.Writer, r *response.Responder, statuses ...response.Status) error {
	recs, err := r.List(ctx, statuses...)
	if err != nil {
		return err
	}
	if len(recs) == 0 {
		fmt.Fprintln(w, "   (none)")
		return nil
	}
	return printRecords(w, recs, false)
}

func printAuditRow(ctx context.Context, w io.Writer, store *chstore.Store, id string) error {
	recs, err := store.LoadAudit(ctx, response.AuditQuery{IDs: []string{id}})
	if err != nil || len(recs) == 0 {
		return fmt.Errorf("demo: audit row %s: %v", id, err)
	}
	r := recs[0]
	for _, kv := range [][2]string{
		{"id", r.ID}, {"finding", r.FindingID}, {"identity", r.IdentityID}, {"action", string(r.Action) + " via " + r.Provider},
		{"mode", string(r.Mode)}, {"status", string(r.Status)}, {"decision", r.Decision}, {"detail", r.Detail},
		{"actor", r.Actor}, {"blast radius", fmt.Sprint(r.BlastRadius)}, {"attempts", fmt.Sprint(r.Attempts)},
		{"undo state", fmt.Sprint(r.Undo)},
	} {
		fmt.Fprintf(w, "     %-13s %s\n", kv[0], kv[1])
	}
	return nil
}
