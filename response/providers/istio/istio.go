// Package istio is the Istio response provider: it cuts a workload off the
// mesh with a DENY AuthorizationPolicy on its SPIFFE principal.
//
// Isolate (response.ActionIsolate) of <td>/ns/<ns>/sa/<sa> CREATEs, in the
// mesh's root namespace (default istio-system), the
// security.istio.io/v1 AuthorizationPolicy nhisentry-deny-<hash>:
//
//	spec:
//	  action: DENY
//	  rules:
//	  - from:
//	    - source:
//	        principals: ["<td>/ns/<ns>/sa/<sa>"]
//
// A policy in the root namespace without a selector applies to every
// workload of the mesh, and DENY policies are evaluated before ALLOW ones,
// so every sidecar (or ztunnel) refuses mTLS requests from the principal,
// wherever the callee runs. The workload's own outbound calls to services
// outside the mesh, and plaintext calls to workloads that accept them, are
// not covered. <hash> is the first 16 hex digits of the principal's
// SHA-256, so each principal has one policy whichever request made it. An
// existing policy of that name is success.
//
// Undo DELETEs the policy; a missing one is success.
//
// RBAC the provider's identity needs in the root namespace:
//
//	authorizationpolicies (security.istio.io): create, delete
//
// Errors are classed as in package kube (kube.Classify): 400, 401, 403,
// 404 (also: Istio's CRDs are not installed), 405, 406, 413, 415 and 422
// are response.Permanent.
package istio

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/kube"
)

// Defaults of Config.
const (
	DefaultName          = "istio"
	DefaultRootNamespace = "istio-system"
	// PolicyPrefix starts the name of every policy the provider makes.
	PolicyPrefix = "nhisentry-deny-"
	// AnnotationPrincipal on a policy names the principal it denies.
	AnnotationPrincipal = "nhisentry.io/principal"
)

// AuthorizationPolicies is the resource the provider writes.
var AuthorizationPolicies = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"}

// Keys of Result.Undo.
const (
	undoNamespace = "namespace"
	undoPolicy    = "policy"
)

// Config configures the Istio provider.
type Config struct {
	// Name is the provider's name in response rules (default istio).
	Name string `yaml:"name"`
	// Kubeconfig is the path of a kubeconfig file; empty means the pod's
	// own service account (in-cluster config).
	Kubeconfig string `yaml:"kubeconfig"`
	// Context is the kubeconfig context to use (default: its current one).
	Context string `yaml:"context"`
	// RootNamespace is the mesh's root namespace (meshConfig.rootNamespace,
	// default istio-system), where a policy applies to the whole mesh.
	RootNamespace string `yaml:"root_namespace"`
	// Timeout bounds each API call (default 10s).
	Timeout time.Duration `yaml:"timeout"`
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.RootNamespace == "" {
		c.RootNamespace = DefaultRootNamespace
	}
	return c
}

// Validate returns every problem of c, each prefixed with field, the
// configuration path of c.
func (c Config) Validate(field string) []error {
	c = c.withDefaults()
	errs := kube.ValidateAccess(field, c.Kubeconfig, c.Context, c.Timeout)
	if msgs := validation.IsDNS1123Label(c.RootNamespace); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("%s.root_namespace: %q is not a namespace name: %s", field, c.RootNamespace, strings.Join(msgs, "; ")))
	}
	return errs
}

type provider struct {
	cfg      Config
	policies dynamic.NamespaceableResourceInterface
}

var _ response.Provider = (*provider)(nil)

// New checks c and returns the provider. It reads the kubeconfig (or the
// in-cluster service account) but calls no API.
func New(c Config) (response.Provider, error) {
	if errs := c.Validate("istio"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	rc, err := kube.LoadRESTConfig(c.Kubeconfig, c.Context)
	if err != nil {
		return nil, fmt.Errorf("istio: %w", err)
	}
	return newForConfig(c, rc)
}

// newForConfig is New with the REST config given, for tests.
func newForConfig(c Config, rc *rest.Config) (*provider, error) {
	c = c.withDefaults()
	dc, err := dynamic.NewForConfig(kube.PrepareRESTConfig(rc, c.Timeout))
	if err != nil {
		return nil, fmt.Errorf("istio: client: %w", err)
	}
	return &provider{cfg: c, policies: dc.Resource(AuthorizationPolicies)}, nil
}

func (p *provider) Name() string { return p.cfg.Name }

func (p *provider) Check(action response.Action, t response.Target) error {
	if action != response.ActionIsolate {
		return fmt.Errorf("istio: action %s: %w", action, response.ErrNotApplicable)
	}
	switch {
	case t.TrustDomain == "", strings.ContainsAny(t.TrustDomain, "/ "):
		return fmt.Errorf("istio: %q is not a trust domain: %w", t.TrustDomain, response.ErrNotApplicable)
	case len(validation.IsDNS1123Label(t.Namespace)) > 0:
		return fmt.Errorf("istio: %q is not a namespace: %w", t.Namespace, response.ErrNotApplicable)
	case len(validation.IsDNS1123Subdomain(t.ServiceAccount)) > 0:
		return fmt.Errorf("istio: %q is not a service account: %w", t.ServiceAccount, response.ErrNotApplicable)
	}
	return nil
}

// Principal is the Istio principal of a workload, as source.principals
// names it.
func Principal(t response.Target) string {
	return t.TrustDomain + "/ns/" + t.Namespace + "/sa/" + t.ServiceAccount
}

// PolicyName is the name of the policy that denies principal.
func PolicyName(principal string) string { return PolicyPrefix + kube.ShortHash(principal) }

// Spec is the spec of the policy that denies principal.
func Spec(principal string) map[string]any {
	return map[string]any{
		"action": "DENY",
		"rules": []any{map[string]any{
			"from": []any{map[string]any{
				"source": map[string]any{"principals": []any{principal}},
			}},
		}},
	}
}

func (p *provider) Do(ctx context.Context, req response.Request) (response.Result, error) {
	if err := p.Check(req.Action, req.Target); err != nil {
		return response.Result{}, err
	}
	principal := Principal(req.Target)
	ns, name := p.cfg.RootNamespace, PolicyName(principal)
	pol := &unstructured.Unstructured{Object: map[string]any{"spec": Spec(principal)}}
	pol.SetAPIVersion(AuthorizationPolicies.GroupVersion().String())
	pol.SetKind("AuthorizationPolicy")
	pol.SetName(name)
	pol.SetNamespace(ns)
	pol.SetLabels(map[string]string{kube.LabelManagedBy: kube.ManagedBy})
	annotations := kube.Annotations(req)
	annotations[AnnotationPrincipal] = principal
	pol.SetAnnotations(annotations)

	detail := fmt.Sprintf("istio: AuthorizationPolicy %s/%s denies requests from %s", ns, name, principal)
	_, err := p.policies.Namespace(ns).Create(ctx, pol, metav1.CreateOptions{})
	switch {
	case apierrors.IsAlreadyExists(err):
		detail += " (already in place)"
	case err != nil:
		return response.Result{}, kube.Classify(fmt.Errorf("istio: create AuthorizationPolicy %s/%s: %w", ns, name, err))
	}
	return response.Result{Detail: detail, Undo: map[string]string{undoNamespace: ns, undoPolicy: name}}, nil
}

func (p *provider) Undo(ctx context.Context, req response.Request, done response.Result) (response.Result, error) {
	if req.Action != response.ActionIsolate {
		return response.Result{}, fmt.Errorf("istio: undo %s: %w", req.Action, response.ErrNotApplicable)
	}
	ns, name := done.Undo[undoNamespace], done.Undo[undoPolicy]
	if ns == "" || name == "" {
		return response.Result{}, response.Permanent{Err: errors.New("istio: the isolation recorded no policy to undo")}
	}
	err := p.policies.Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return response.Result{}, kube.Classify(fmt.Errorf("istio: delete AuthorizationPolicy %s/%s: %w", ns, name, err))
	}
	return response.Result{Detail: fmt.Sprintf("istio: deleted AuthorizationPolicy %s/%s", ns, name)}, nil
}
