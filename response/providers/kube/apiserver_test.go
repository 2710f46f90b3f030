package kube

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	networkingv1client "k8s.io/client-go/kubernetes/typed/networking/v1"
	"k8s.io/client-go/rest"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/kubetest"
	"github.com/nhisentry/nhisentry/response/providers/providertest"
)

// These tests run against a real kube-apiserver and etcd (kubetest).

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

// fixture is an admin's view of one test namespace.
type fixture struct {
	t    *testing.T
	ns   string
	core corev1client.CoreV1Interface
	net  networkingv1client.NetworkingV1Interface
}

func newFixture(t *testing.T, c *kubetest.Cluster) *fixture {
	t.Helper()
	f := &fixture{t: t, ns: "t-" + rand.String(8)}
	f.core = corev1client.NewForConfigOrDie(c.Admin)
	f.net = networkingv1client.NewForConfigOrDie(c.Admin)
	if _, err := f.core.Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: f.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return f
}

func (f *fixture) serviceAccount(name string) {
	f.t.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := f.core.ServiceAccounts(f.ns).Create(f.t.Context(), sa, metav1.CreateOptions{}); err != nil {
		f.t.Fatalf("create service account %s: %v", name, err)
	}
}

func (f *fixture) pod(name, sa string) {
	f.t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app": sa}},
		Spec: corev1.PodSpec{
			ServiceAccountName: sa,
			Containers:         []corev1.Container{{Name: "main", Image: "registry.invalid/app:1"}},
		},
	}
	if _, err := f.core.Pods(f.ns).Create(f.t.Context(), pod, metav1.CreateOptions{}); err != nil {
		f.t.Fatalf("create pod %s: %v", name, err)
	}
}

func (f *fixture) podLabels(name string) map[string]string {
	f.t.Helper()
	pod, err := f.core.Pods(f.ns).Get(f.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatalf("get pod %s: %v", name, err)
	}
	return pod.Labels
}

func (f *fixture) policies() []networkingv1.NetworkPolicy {
	f.t.Helper()
	list, err := f.net.NetworkPolicies(f.ns).List(f.t.Context(), metav1.ListOptions{})
	if err != nil {
		f.t.Fatalf("list policies: %v", err)
	}
	return list.Items
}

func (f *fixture) secret(name, typ, sa string) {
	f.t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{corev1.ServiceAccountNameKey: sa}},
		Type:       corev1.SecretType(typ),
	}
	if _, err := f.core.Secrets(f.ns).Create(f.t.Context(), s, metav1.CreateOptions{}); err != nil {
		f.t.Fatalf("create secret %s: %v", name, err)
	}
}

func (f *fixture) secretExists(name string) bool {
	f.t.Helper()
	_, err := f.core.Secrets(f.ns).Get(f.t.Context(), name, metav1.GetOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		f.t.Fatalf("get secret %s: %v", name, err)
	}
	return err == nil
}

func newProvider(t *testing.T, c Config, rc *rest.Config) *provider {
	t.Helper()
	p, err := newForConfig(c, rc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func isolation(id, ns, sa string) response.Request {
	return response.Request{
		ID: id, Action: response.ActionIsolate, Provider: "kubernetes", FindingID: "finding-" + id,
		Reason: "token used from a new ASN", At: time.Now(),
		Target: response.Target{TrustDomain: "example.org", Namespace: ns, ServiceAccount: sa},
	}
}

func revocation(ns, secret, sa string) response.Request {
	return response.Request{
		ID: "rev-" + secret, Action: response.ActionRevoke, Provider: "kubernetes", FindingID: "f9", Reason: "leaked token",
		Target: response.Target{Namespace: ns, ServiceAccount: sa, Credential: secret, CredentialType: CredentialSAToken},
	}
}

func TestIsolateAndUndo(t *testing.T) {
	c := kubetest.Get(t)
	f := newFixture(t, c)
	f.serviceAccount("web")
	f.serviceAccount("db")
	f.pod("web-1", "web")
	f.pod("web-2", "web")
	f.pod("db-1", "db")
	p := newProvider(t, Config{}, c.Admin)
	const key, value = DefaultQuarantineLabel, "0123456789abcdef"
	req := isolation(value+"0123456789abcdef", f.ns, "web")

	done, err := p.Do(t.Context(), req)
	if err != nil {
		t.Fatalf("isolate: %v", err)
	}
	wantUndo := map[string]string{"namespace": f.ns, "policy": "nhisentry-quarantine-web", "label": key, "pods": "web-1,web-2"}
	if !reflect.DeepEqual(done.Undo, wantUndo) {
		t.Errorf("undo state %v, want %v", done.Undo, wantUndo)
	}
	for _, pod := range []string{"web-1", "web-2"} {
		if got := f.podLabels(pod); got[key] != value || got["app"] != "web" {
			t.Errorf("pod %s labels %v, want %s=%s kept beside app=web", pod, got, key, value)
		}
	}
	if got := f.podLabels("db-1"); len(got) != 1 {
		t.Errorf("pod db-1 of another service account got labels %v", got)
	}
	pols := f.policies()
	if len(pols) != 1 {
		t.Fatalf("%d policies, want 1", len(pols))
	}
	pol := pols[0]
	wantSpec := networkingv1.NetworkPolicySpec{
		PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{key: value}},
		PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
	}
	if pol.Name != "nhisentry-quarantine-web" || !reflect.DeepEqual(pol.Spec, wantSpec) {
		t.Errorf("policy %s spec %+v, want %+v", pol.Name, pol.Spec, wantSpec)
	}
	if pol.Labels[LabelManagedBy] != ManagedBy || pol.Annotations[AnnotationRequestID] != req.ID ||
		pol.Annotations[AnnotationFindingID] != req.FindingID || pol.Annotations[AnnotationReason] != req.Reason {
		t.Errorf("policy labels %v annotations %v", pol.Labels, pol.Annotations)
	}

	// Repeating the request, or another request for the same workload,
	// keeps the one policy and its selector.
	for _, again := range []response.Request{req, isolation("another-request", f.ns, "web")} {
		if _, err := p.Do(t.Context(), again); err != nil {
			t.Fatalf("isolate again (%s): %v", again.ID, err)
		}
		if pols := f.policies(); len(pols) != 1 || !reflect.DeepEqual(pols[0].Spec, wantSpec) {
			t.Fatalf("after a second isolate: %d policies %+v", len(pols), pols)
		}
		if got := f.podLabels("web-2")[key]; got != value {
			t.Errorf("web-2 relabelled %q", got)
		}
	}

	// A pod gone before the undo is skipped.
	if err := f.core.Pods(f.ns).Delete(t.Context(), "web-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := p.Undo(t.Context(), req, done); err != nil {
			t.Fatalf("undo %d: %v", i+1, err)
		}
		if got := f.podLabels("web-1"); got[key] != "" || got["app"] != "web" {
			t.Errorf("undo %d: web-1 labels %v", i+1, got)
		}
		if pols := f.policies(); len(pols) != 0 {
			t.Errorf("undo %d: policies left: %v", i+1, pols)
		}
	}
}

func TestIsolateNothingToLabel(t *testing.T) {
	c := kubetest.Get(t)
	f := newFixture(t, c)
	p := newProvider(t, Config{}, c.Admin)
	done, err := p.Do(t.Context(), isolation("r-empty", f.ns, "idle"))
	if err != nil {
		t.Fatal(err)
	}
	if done.Undo["pods"] != "" || len(f.policies()) != 1 {
		t.Errorf("undo %v, policies %d", done.Undo, len(f.policies()))
	}
}

func TestIsolateMissingNamespace(t *testing.T) {
	c := kubetest.Get(t)
	p := newProvider(t, Config{}, c.Admin)
	_, err := p.Do(t.Context(), isolation("r-missing", "no-such-namespace", "web"))
	providertest.WantClass(t, err, providertest.Permanent)
	if !apierrors.IsNotFound(err) {
		t.Errorf("want the API's NotFound inside: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	c := kubetest.Get(t)
	f := newFixture(t, c)
	f.serviceAccount("ci")
	f.secret("ci-token", string(corev1.SecretTypeServiceAccountToken), "ci")
	f.secret("ci-token-2", string(corev1.SecretTypeServiceAccountToken), "ci")
	f.secret("settings", string(corev1.SecretTypeOpaque), "ci")
	p := newProvider(t, Config{}, c.Admin)

	req := revocation(f.ns, "ci-token", "ci")
	for i := range 2 { // the second finds it gone
		if _, err := p.Do(t.Context(), req); err != nil {
			t.Fatalf("revoke %d: %v", i+1, err)
		}
		if f.secretExists("ci-token") {
			t.Fatalf("revoke %d: the token secret is still there", i+1)
		}
	}
	_, err := p.Undo(t.Context(), req, response.Result{})
	providertest.WantClass(t, err, providertest.Irreversible)

	tests := []struct {
		name string
		req  response.Request
	}{
		{"an opaque secret", revocation(f.ns, "settings", "ci")},
		{"a token of another service account", revocation(f.ns, "ci-token-2", "deploy")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.Do(t.Context(), tt.req)
			providertest.WantClass(t, err, providertest.Permanent)
			if !f.secretExists(tt.req.Target.Credential) {
				t.Errorf("secret %s deleted", tt.req.Target.Credential)
			}
		})
	}
	// Without a service account in the target, any token secret goes.
	if _, err := p.Do(t.Context(), revocation(f.ns, "ci-token-2", "")); err != nil || f.secretExists("ci-token-2") {
		t.Errorf("revoke without a service account: %v", err)
	}
}

func TestForbidden(t *testing.T) {
	c := kubetest.Get(t)
	f := newFixture(t, c)
	f.serviceAccount("web")
	f.pod("web-1", "web")
	f.secret("web-token", string(corev1.SecretTypeServiceAccountToken), "web")
	p := newProvider(t, Config{}, c.Unprivileged)
	for _, req := range []response.Request{isolation("r-forbidden", f.ns, "web"), revocation(f.ns, "web-token", "web")} {
		_, err := p.Do(t.Context(), req)
		providertest.WantClass(t, err, providertest.Permanent)
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), kubetest.UnprivilegedUser) {
			t.Errorf("%s: want the API's Forbidden for %s: %v", req.Action, kubetest.UnprivilegedUser, err)
		}
	}
	_, err := p.Undo(t.Context(), isolation("r-forbidden", f.ns, "web"),
		response.Result{Undo: map[string]string{"namespace": f.ns, "policy": "nhisentry-quarantine-web", "label": DefaultQuarantineLabel, "pods": "web-1"}})
	providertest.WantClass(t, err, providertest.Permanent)
	if !f.secretExists("web-token") || f.podLabels("web-1")[DefaultQuarantineLabel] != "" {
		t.Error("the unprivileged provider changed something")
	}
}

// TestFaults puts a fault-injecting proxy between the provider and the
// real apiserver: each fault is an error of the expected class made by one
// request (client-go's own retries stay off), the timeout holds, and the
// same request then succeeds.
func TestFaults(t *testing.T) {
	c := kubetest.Get(t)
	f := newFixture(t, c)
	f.serviceAccount("web")
	f.pod("web-1", "web")
	faults, rc := kubetest.FaultProxy(t, c)
	const timeout = time.Second
	p := newProvider(t, Config{Timeout: timeout}, rc)
	for _, tt := range kubetest.FaultCases(timeout) {
		for _, req := range []response.Request{isolation("r-faults", f.ns, "web"), revocation(f.ns, "absent-token", "web")} {
			t.Run(tt.Name+"/"+string(req.Action), func(t *testing.T) {
				faults.Inject(tt.Fault)
				before := faults.Requests()
				start := time.Now()
				_, err := p.Do(t.Context(), req)
				elapsed := time.Since(start)
				providertest.WantClass(t, err, tt.Want)
				if n := faults.Requests() - before; n != 1 {
					t.Errorf("%d requests for one faulted call, want 1 (no hidden retries)", n)
				}
				if elapsed > timeout+2*time.Second {
					t.Errorf("took %s with a %s timeout", elapsed, timeout)
				}
				if _, err := p.Do(t.Context(), req); err != nil {
					t.Errorf("the request after the fault: %v", err)
				}
			})
		}
	}
	if got := f.podLabels("web-1")[DefaultQuarantineLabel]; got == "" {
		t.Error("the isolation never went through the proxy")
	}
}
