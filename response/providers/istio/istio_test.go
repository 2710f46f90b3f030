package istio

import (
	"context"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/kube"
	"github.com/nhisentry/nhisentry/response/providers/kubetest"
	"github.com/nhisentry/nhisentry/response/providers/providertest"
)

func TestMain(m *testing.M) { os.Exit(kubetest.Main(m)) }

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"defaults", Config{}, nil},
		{"everything set", Config{Name: "mesh", Kubeconfig: "kc", Context: "c", RootNamespace: "mesh-root", Timeout: time.Second}, nil},
		{"bad root namespace", Config{RootNamespace: "Istio_System"}, []string{`i.root_namespace: "Istio_System" is not a namespace name`}},
		{"context, negative timeout", Config{Context: "c", Timeout: -1}, []string{"i.context: needs kubeconfig", "i.timeout: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.cfg.Validate("i")
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate = %v, want %q", errs, tt.want)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want it to start with %q", i, err, tt.want[i])
				}
			}
		})
	}
	if _, err := New(Config{RootNamespace: "Bad"}); err == nil || !strings.Contains(err.Error(), "istio.root_namespace") {
		t.Errorf("New with a bad root namespace: %v", err)
	}
}

var workload = response.Target{TrustDomain: "cluster.local", Namespace: "shop", ServiceAccount: "checkout"}

func TestCheck(t *testing.T) {
	p, err := newForConfig(Config{}, &rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(*response.Target)) response.Target { t := workload; f(&t); return t }
	tests := []struct {
		name   string
		action response.Action
		target response.Target
		ok     bool
	}{
		{"isolate", response.ActionIsolate, workload, true},
		{"no trust domain", response.ActionIsolate, with(func(t *response.Target) { t.TrustDomain = "" }), false},
		{"trust domain with a path", response.ActionIsolate, with(func(t *response.Target) { t.TrustDomain = "td/ns/x" }), false},
		{"no namespace", response.ActionIsolate, with(func(t *response.Target) { t.Namespace = "" }), false},
		{"no service account", response.ActionIsolate, with(func(t *response.Target) { t.ServiceAccount = "" }), false},
		{"bad service account", response.ActionIsolate, with(func(t *response.Target) { t.ServiceAccount = "a/b" }), false},
		{"an AWS role", response.ActionIsolate, response.Target{Account: "123456789012", Name: "deploy"}, false},
		{"revoke", response.ActionRevoke, workload, false},
		{"disable", response.ActionDisable, workload, false},
		{"notify", response.ActionNotify, workload, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.Check(tt.action, tt.target)
			if tt.ok {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			providertest.WantClass(t, err, providertest.NotApplicable)
			_, err = p.Do(t.Context(), response.Request{ID: "r", Action: tt.action, Target: tt.target})
			providertest.WantClass(t, err, providertest.NotApplicable)
		})
	}
	_, err = p.Undo(t.Context(), response.Request{Action: response.ActionRevoke}, response.Result{})
	providertest.WantClass(t, err, providertest.NotApplicable)
	_, err = p.Undo(t.Context(), response.Request{Action: response.ActionIsolate}, response.Result{})
	providertest.WantClass(t, err, providertest.Permanent)
}

func TestNames(t *testing.T) {
	if got := Principal(workload); got != "cluster.local/ns/shop/sa/checkout" {
		t.Errorf("principal %q", got)
	}
	a, b := PolicyName("cluster.local/ns/shop/sa/checkout"), PolicyName("cluster.local/ns/shop/sa/cart")
	if a == b || !strings.HasPrefix(a, PolicyPrefix) || len(a) != len(PolicyPrefix)+16 {
		t.Errorf("policy names %q, %q", a, b)
	}
}

// The tests below run against a real kube-apiserver and etcd (kubetest)
// with testdata's AuthorizationPolicy CRD installed.

var crd struct {
	once sync.Once
	err  error
}

// mesh returns the control plane with the CRD installed and the root
// namespace created.
func mesh(t *testing.T) *kubetest.Cluster {
	t.Helper()
	c := kubetest.Get(t)
	crd.once.Do(func() { crd.err = installCRD(c.Admin) })
	if crd.err != nil {
		t.Fatalf("install the AuthorizationPolicy CRD: %v", crd.err)
	}
	return c
}

func installCRD(rc *rest.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := os.Open("testdata/authorizationpolicy-crd.yaml")
	if err != nil {
		return err
	}
	defer f.Close()
	obj := &unstructured.Unstructured{}
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&obj.Object); err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	crds := dc.Resource(schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"})
	if _, err := crds.Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		return err
	}
	core, err := corev1client.NewForConfig(rc)
	if err != nil {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: DefaultRootNamespace}}
	if _, err := core.Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return err
	}
	// Established is not enough: the resource is served a moment later.
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := dc.Resource(AuthorizationPolicies).Namespace(DefaultRootNamespace).List(ctx, metav1.ListOptions{})
		return err == nil, nil
	})
}

func newProvider(t *testing.T, rc *rest.Config) *provider {
	t.Helper()
	p, err := newForConfig(Config{}, rc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func isolation(id string, target response.Target) response.Request {
	return response.Request{
		ID: id, Action: response.ActionIsolate, Provider: "istio", FindingID: "f-" + id,
		Reason: "calls a service it never called", At: time.Now(), Target: target,
	}
}

func policies(t *testing.T, dc dynamic.Interface) []unstructured.Unstructured {
	t.Helper()
	list, err := dc.Resource(AuthorizationPolicies).Namespace(DefaultRootNamespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

func TestIsolateAndUndo(t *testing.T) {
	c := mesh(t)
	dc := dynamic.NewForConfigOrDie(c.Admin)
	p := newProvider(t, c.Admin)
	target := response.Target{TrustDomain: "example.org", Namespace: "payments", ServiceAccount: "ledger"}
	req := isolation("req-1", target)
	principal := "example.org/ns/payments/sa/ledger"
	name := PolicyName(principal)

	done, err := p.Do(t.Context(), req)
	if err != nil {
		t.Fatalf("isolate: %v", err)
	}
	if want := map[string]string{"namespace": DefaultRootNamespace, "policy": name}; !reflect.DeepEqual(done.Undo, want) {
		t.Errorf("undo state %v, want %v", done.Undo, want)
	}
	got, err := dc.Resource(AuthorizationPolicies).Namespace(DefaultRootNamespace).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get the policy: %v", err)
	}
	wantSpec := map[string]any{
		"action": "DENY",
		"rules":  []any{map[string]any{"from": []any{map[string]any{"source": map[string]any{"principals": []any{principal}}}}}},
	}
	if !reflect.DeepEqual(got.Object["spec"], wantSpec) {
		t.Errorf("spec %#v, want %#v", got.Object["spec"], wantSpec)
	}
	wantAnn := map[string]string{
		kube.AnnotationRequestID: "req-1", kube.AnnotationFindingID: "f-req-1",
		kube.AnnotationReason: req.Reason, AnnotationPrincipal: principal,
	}
	if !reflect.DeepEqual(got.GetAnnotations(), wantAnn) || got.GetLabels()[kube.LabelManagedBy] != kube.ManagedBy {
		t.Errorf("labels %v annotations %v", got.GetLabels(), got.GetAnnotations())
	}

	// The same request again, and another request for the same principal,
	// keep the one policy; another principal gets its own.
	for _, again := range []response.Request{req, isolation("req-2", target)} {
		if _, err := p.Do(t.Context(), again); err != nil {
			t.Fatalf("isolate again (%s): %v", again.ID, err)
		}
	}
	if n := len(policies(t, dc)); n != 1 {
		t.Fatalf("%d policies after repeats, want 1", n)
	}
	other := target
	other.ServiceAccount = "reports"
	otherDone, err := p.Do(t.Context(), isolation("req-3", other))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(policies(t, dc)); n != 2 {
		t.Fatalf("%d policies for two principals, want 2", n)
	}

	for i := range 2 {
		if _, err := p.Undo(t.Context(), req, done); err != nil {
			t.Fatalf("undo %d: %v", i+1, err)
		}
		_, err := dc.Resource(AuthorizationPolicies).Namespace(DefaultRootNamespace).Get(t.Context(), name, metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			t.Fatalf("undo %d: the policy is still there (%v)", i+1, err)
		}
	}
	if items := policies(t, dc); len(items) != 1 || items[0].GetName() != otherDone.Undo["policy"] {
		t.Errorf("undo removed the other principal's policy: %v", items)
	}
	if _, err := p.Undo(t.Context(), isolation("req-3", other), otherDone); err != nil {
		t.Fatal(err)
	}
}

func TestForbidden(t *testing.T) {
	c := mesh(t)
	p := newProvider(t, c.Unprivileged)
	req := isolation("req-forbidden", workload)
	_, err := p.Do(t.Context(), req)
	providertest.WantClass(t, err, providertest.Permanent)
	if !apierrors.IsForbidden(err) {
		t.Errorf("want the API's Forbidden: %v", err)
	}
	_, err = p.Undo(t.Context(), req, response.Result{Undo: map[string]string{"namespace": DefaultRootNamespace, "policy": PolicyName(Principal(workload))}})
	providertest.WantClass(t, err, providertest.Permanent)
}

func TestMissingRootNamespace(t *testing.T) {
	c := mesh(t)
	p, err := newForConfig(Config{RootNamespace: "no-mesh-here"}, c.Admin)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Do(t.Context(), isolation("req-nons", workload))
	providertest.WantClass(t, err, providertest.Permanent)
}

// TestFaults: through a fault-injecting proxy to the real apiserver, each
// fault is an error of the expected class from one request, the timeout
// holds, and the request then succeeds.
func TestFaults(t *testing.T) {
	c := mesh(t)
	faults, rc := kubetest.FaultProxy(t, c)
	const timeout = time.Second
	p, err := newForConfig(Config{Timeout: timeout}, rc)
	if err != nil {
		t.Fatal(err)
	}
	req := isolation("req-faults", response.Target{TrustDomain: "example.org", Namespace: "faulty", ServiceAccount: "svc"})
	var done response.Result
	for _, tt := range kubetest.FaultCases(timeout) {
		t.Run(tt.Name, func(t *testing.T) {
			faults.Inject(tt.Fault)
			before, start := faults.Requests(), time.Now()
			_, err := p.Do(t.Context(), req)
			providertest.WantClass(t, err, tt.Want)
			if n := faults.Requests() - before; n != 1 {
				t.Errorf("%d requests for one faulted call, want 1 (no hidden retries)", n)
			}
			if elapsed := time.Since(start); elapsed > timeout+2*time.Second {
				t.Errorf("took %s with a %s timeout", elapsed, timeout)
			}
			if done, err = p.Do(t.Context(), req); err != nil {
				t.Errorf("the request after the fault: %v", err)
			}
		})
	}
	faults.Inject(kubetest.FaultCases(timeout)[0].Fault)
	_, err = p.Undo(t.Context(), req, done)
	providertest.WantClass(t, err, providertest.Retryable)
	if _, err := p.Undo(t.Context(), req, done); err != nil {
		t.Fatal(err)
	}
}
