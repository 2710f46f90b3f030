// Package kube is the Kubernetes response provider: it quarantines a
// workload behind a deny-all NetworkPolicy and revokes legacy
// service-account token Secrets, through the API server with client-go.
//
// Isolate (response.ActionIsolate) of the service account <sa> in <ns>:
//
//  1. GET networking.k8s.io/v1 NetworkPolicy <ns>/<prefix><sa>; when absent,
//     CREATE it: podSelector {<quarantine_label>: <value>}, policyTypes
//     [Ingress, Egress], no rules, so selected pods get no traffic in or out.
//     When present, its selector's value is reused, so a second request for
//     the same workload joins the first quarantine.
//  2. LIST core/v1 Pods in <ns> with fieldSelector
//     spec.serviceAccountName=<sa> and merge-PATCH each one's
//     metadata.labels[<quarantine_label>] = <value>.
//
// Pods created afterwards (a rollout, a restart by a ReplicaSet) are not
// labelled: they are outside the quarantine until a request labels them.
//
// Undo of an isolation DELETEs the NetworkPolicy and merge-PATCHes the label
// away (null) on the pods the isolation labelled that still exist.
//
// Revoke (response.ActionRevoke) of the token Secret <ns>/<name>: GET the
// Secret, refuse it unless its type is kubernetes.io/service-account-token
// (and, when the target names a service account, its
// kubernetes.io/service-account.name annotation names that one), then DELETE
// it with the UID seen as precondition. The token controller then stops
// accepting the token. A missing Secret is already revoked. Bound tokens
// (TokenRequest, projected volumes; named JTI=… in audit logs) have no
// Secret and are not applicable.
//
// RBAC the provider's identity needs, in each allowed namespace:
//
//	pods:                       list, patch
//	networkpolicies (networking.k8s.io): get, create, delete
//	secrets:                    get, delete
//
// API errors 400, 401, 403, 404, 405, 406, 413, 415 and 422 are
// response.Permanent; throttling, server errors, conflicts and timeouts are
// plain errors for the executor to retry. Every API call is made once (see
// PrepareRESTConfig) and bounded by Config.Timeout.
package kube

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	networkingv1client "k8s.io/client-go/kubernetes/typed/networking/v1"
	"k8s.io/client-go/rest"

	"github.com/nhisentry/nhisentry/response"
)

// Credential types (response.Target.CredentialType) whose credential is a
// token Secret's name: the audit decoders' k8s_sa_token and the Secret type.
const (
	CredentialSAToken       = "k8s_sa_token"
	CredentialSATokenSecret = string(corev1.SecretTypeServiceAccountToken)
)

// Keys of Result.Undo for an isolation.
const (
	undoNamespace = "namespace"
	undoPolicy    = "policy"
	undoLabel     = "label"
	undoPods      = "pods"
)

const listPageSize = 500

type provider struct {
	cfg  Config
	core corev1client.CoreV1Interface
	net  networkingv1client.NetworkingV1Interface
}

var _ response.Provider = (*provider)(nil)

// New checks c and returns the provider. It reads the kubeconfig (or the
// in-cluster service account) but calls no API.
func New(c Config) (response.Provider, error) {
	if errs := c.Validate("kubernetes"); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	rc, err := LoadRESTConfig(c.Kubeconfig, c.Context)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: %w", err)
	}
	return newForConfig(c, rc)
}

// newForConfig is New with the REST config given, for tests.
func newForConfig(c Config, rc *rest.Config) (*provider, error) {
	c = c.withDefaults()
	rc = PrepareRESTConfig(rc, c.Timeout)
	core, err := corev1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: core client: %w", err)
	}
	net, err := networkingv1client.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes: networking client: %w", err)
	}
	return &provider{cfg: c, core: core, net: net}, nil
}

func (p *provider) Name() string { return p.cfg.Name }

func (p *provider) Check(action response.Action, t response.Target) error {
	switch action {
	case response.ActionIsolate:
		if t.ServiceAccount == "" {
			return fmt.Errorf("kubernetes: isolate needs a service account: %w", response.ErrNotApplicable)
		}
		if msgs := validation.IsDNS1123Subdomain(t.ServiceAccount); len(msgs) > 0 {
			return fmt.Errorf("kubernetes: %q is not a service account name: %w", t.ServiceAccount, response.ErrNotApplicable)
		}
		return p.checkNamespace(t.Namespace)
	case response.ActionRevoke:
		if t.CredentialType != CredentialSAToken && t.CredentialType != CredentialSATokenSecret {
			return fmt.Errorf("kubernetes: revoke needs a service-account token secret, not %q: %w", t.CredentialType, response.ErrNotApplicable)
		}
		// A bound token's id (JTI=…) is not a Secret name: nothing to delete.
		if t.Credential == "" || len(validation.IsDNS1123Subdomain(t.Credential)) > 0 {
			return fmt.Errorf("kubernetes: credential %q is not a token secret name: %w", t.Credential, response.ErrNotApplicable)
		}
		return p.checkNamespace(t.Namespace)
	}
	return fmt.Errorf("kubernetes: action %s: %w", action, response.ErrNotApplicable)
}

func (p *provider) checkNamespace(ns string) error {
	if ns == "" || len(validation.IsDNS1123Label(ns)) > 0 {
		return fmt.Errorf("kubernetes: %q is not a namespace: %w", ns, response.ErrNotApplicable)
	}
	if len(p.cfg.Namespaces) > 0 && !slices.Contains(p.cfg.Namespaces, ns) {
		return fmt.Errorf("kubernetes: namespace %s is not in the allowed namespaces: %w", ns, response.ErrNotApplicable)
	}
	return nil
}

func (p *provider) Do(ctx context.Context, req response.Request) (response.Result, error) {
	if err := p.Check(req.Action, req.Target); err != nil {
		return response.Result{}, err
	}
	if req.Action == response.ActionRevoke {
		return p.revoke(ctx, req)
	}
	return p.isolate(ctx, req)
}

func (p *provider) Undo(ctx context.Context, req response.Request, done response.Result) (response.Result, error) {
	switch req.Action {
	case response.ActionIsolate:
		return p.unisolate(ctx, done.Undo)
	case response.ActionRevoke:
		return response.Result{}, fmt.Errorf("kubernetes: a deleted token secret: %w", response.ErrIrreversible)
	}
	return response.Result{}, fmt.Errorf("kubernetes: undo %s: %w", req.Action, response.ErrNotApplicable)
}

// policyName is <prefix><sa>, or <prefix><hash of sa> when that is too
// long for an object name.
func (p *provider) policyName(sa string) string {
	if name := p.cfg.PolicyPrefix + sa; len(validation.IsDNS1123Subdomain(name)) == 0 {
		return name
	}
	return p.cfg.PolicyPrefix + ShortHash(sa)
}

// labelValue is the quarantine label's value for a request: its id's first
// 16 characters when they make a label value, else a hash of the id.
func labelValue(id string) string {
	if v := id[:min(len(id), hashedSuffixHexDigits)]; v != "" && len(validation.IsValidLabelValue(v)) == 0 {
		return v
	}
	return ShortHash(id)
}

func (p *provider) isolate(ctx context.Context, req response.Request) (response.Result, error) {
	ns, sa, key := req.Target.Namespace, req.Target.ServiceAccount, p.cfg.QuarantineLabel
	name := p.policyName(sa)
	value, err := p.ensurePolicy(ctx, req, ns, name)
	if err != nil {
		return response.Result{}, err
	}
	pods, err := p.labelPods(ctx, ns, sa, key, value)
	if err != nil {
		return response.Result{}, err
	}
	return response.Result{
		Detail: fmt.Sprintf("kubernetes: NetworkPolicy %s/%s denies all traffic of pods labelled %s=%s; labelled %d pods of service account %s",
			ns, name, key, value, len(pods), sa),
		Undo: map[string]string{
			undoNamespace: ns,
			undoPolicy:    name,
			undoLabel:     key,
			undoPods:      strings.Join(pods, ","),
		},
	}, nil
}

// ensurePolicy creates the deny-all policy unless it exists and returns the
// label value it selects.
func (p *provider) ensurePolicy(ctx context.Context, req response.Request, ns, name string) (string, error) {
	key := p.cfg.QuarantineLabel
	existing, err := p.net.NetworkPolicies(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case err == nil:
		if v := existing.Spec.PodSelector.MatchLabels[key]; v != "" {
			return v, nil
		}
		return "", response.Permanent{Err: fmt.Errorf("kubernetes: NetworkPolicy %s/%s exists and does not select pods by %s", ns, name, key)}
	case !apierrors.IsNotFound(err):
		return "", Classify(fmt.Errorf("kubernetes: get NetworkPolicy %s/%s: %w", ns, name, err))
	}
	value := labelValue(req.ID)
	pol := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   ns,
			Labels:      map[string]string{LabelManagedBy: ManagedBy},
			Annotations: Annotations(req),
		},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{key: value}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
		},
	}
	if _, err := p.net.NetworkPolicies(ns).Create(ctx, pol, metav1.CreateOptions{}); err != nil {
		// AlreadyExists (a concurrent request made it) stays retryable: the
		// next attempt reads the winner's selector.
		return "", Classify(fmt.Errorf("kubernetes: create NetworkPolicy %s/%s: %w", ns, name, err))
	}
	return value, nil
}

// labelPods labels every pod of sa in ns and returns their names.
func (p *provider) labelPods(ctx context.Context, ns, sa, key, value string) ([]string, error) {
	patch, err := labelPatch(key, &value)
	if err != nil {
		return nil, err
	}
	opts := metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.serviceAccountName", sa).String(),
		Limit:         listPageSize,
	}
	var names []string
	for {
		list, err := p.core.Pods(ns).List(ctx, opts)
		if err != nil {
			return nil, Classify(fmt.Errorf("kubernetes: list pods of %s/%s: %w", ns, sa, err))
		}
		for _, pod := range list.Items {
			if pod.Labels[key] != value {
				_, err := p.core.Pods(ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
				if apierrors.IsNotFound(err) {
					continue // gone meanwhile: nothing left to isolate
				}
				if err != nil {
					return nil, Classify(fmt.Errorf("kubernetes: label pod %s/%s: %w", ns, pod.Name, err))
				}
			}
			names = append(names, pod.Name)
		}
		if list.Continue == "" {
			return names, nil
		}
		opts.Continue = list.Continue
	}
}

// labelPatch is a JSON merge patch setting metadata.labels[key] to *value,
// or removing it when value is nil.
func labelPatch(key string, value *string) ([]byte, error) {
	b, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]*string{key: value}}})
	if err != nil {
		return nil, fmt.Errorf("kubernetes: label patch: %w", err)
	}
	return b, nil
}

func (p *provider) unisolate(ctx context.Context, undo map[string]string) (response.Result, error) {
	ns, name, key := undo[undoNamespace], undo[undoPolicy], undo[undoLabel]
	if ns == "" || name == "" || key == "" {
		return response.Result{}, response.Permanent{Err: errors.New("kubernetes: the isolation recorded no namespace, policy or label to undo")}
	}
	// The policy goes first: that lifts the quarantine of every pod at once.
	err := p.net.NetworkPolicies(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return response.Result{}, Classify(fmt.Errorf("kubernetes: delete NetworkPolicy %s/%s: %w", ns, name, err))
	}
	patch, err := labelPatch(key, nil)
	if err != nil {
		return response.Result{}, err
	}
	var pods []string
	if undo[undoPods] != "" {
		pods = strings.Split(undo[undoPods], ",")
	}
	unlabelled := 0
	for _, pod := range pods {
		_, err := p.core.Pods(ns).Patch(ctx, pod, types.MergePatchType, patch, metav1.PatchOptions{})
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return response.Result{}, Classify(fmt.Errorf("kubernetes: unlabel pod %s/%s: %w", ns, pod, err))
		}
		unlabelled++
	}
	return response.Result{
		Detail: fmt.Sprintf("kubernetes: deleted NetworkPolicy %s/%s; removed %s from %d of %d pods (the others are gone)",
			ns, name, key, unlabelled, len(pods)),
	}, nil
}

func (p *provider) revoke(ctx context.Context, req response.Request) (response.Result, error) {
	ns, name := req.Target.Namespace, req.Target.Credential
	secrets := p.core.Secrets(ns)
	s, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return response.Result{Detail: fmt.Sprintf("kubernetes: token secret %s/%s is already gone", ns, name)}, nil
	}
	if err != nil {
		return response.Result{}, Classify(fmt.Errorf("kubernetes: get secret %s/%s: %w", ns, name, err))
	}
	if s.Type != corev1.SecretTypeServiceAccountToken {
		return response.Result{}, response.Permanent{Err: fmt.Errorf("kubernetes: secret %s/%s has type %s, not %s: refusing to delete it",
			ns, name, s.Type, corev1.SecretTypeServiceAccountToken)}
	}
	owner := s.Annotations[corev1.ServiceAccountNameKey]
	if sa := req.Target.ServiceAccount; sa != "" && owner != sa {
		return response.Result{}, response.Permanent{Err: fmt.Errorf("kubernetes: secret %s/%s holds a token of service account %q, not %q: refusing to delete it",
			ns, name, owner, sa)}
	}
	// The UID precondition makes sure the Secret deleted is the one checked.
	err = secrets.Delete(ctx, name, metav1.DeleteOptions{Preconditions: metav1.NewUIDPreconditions(string(s.UID))})
	if err != nil && !apierrors.IsNotFound(err) {
		return response.Result{}, Classify(fmt.Errorf("kubernetes: delete secret %s/%s: %w", ns, name, err))
	}
	return response.Result{Detail: fmt.Sprintf("kubernetes: deleted token secret %s/%s of service account %s", ns, name, owner)}, nil
}
