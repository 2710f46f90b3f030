package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/nhisentry/nhisentry/response"
	"github.com/nhisentry/nhisentry/response/providers/providertest"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // error texts, in order
	}{
		{name: "defaults", cfg: Config{}},
		{name: "everything set", cfg: Config{
			Name: "prod", Kubeconfig: "kc.yaml", Context: "prod", QuarantineLabel: "example.com/q",
			PolicyPrefix: "q-", Namespaces: []string{"a", "b"}, Timeout: time.Second,
		}},
		{name: "context without kubeconfig", cfg: Config{Context: "prod"},
			want: []string{"k.context: needs kubeconfig (the in-cluster config has no contexts)"}},
		{name: "bad label key", cfg: Config{QuarantineLabel: "bad key"},
			want: []string{`k.quarantine_label: "bad key" is not a label key`}},
		{name: "upper-case prefix", cfg: Config{PolicyPrefix: "Q-"},
			want: []string{`k.policy_prefix: "Q-" does not start an object name`}},
		{name: "long prefix", cfg: Config{PolicyPrefix: strings.Repeat("a", 201)},
			want: []string{"k.policy_prefix: longer than 200 characters"}},
		{name: "namespaces", cfg: Config{Namespaces: []string{"ok", "Not_OK", "ok"}},
			want: []string{`k.namespaces[1]: "Not_OK" is not a namespace name`, `k.namespaces[2]: "ok" is listed twice`}},
		{name: "negative timeout", cfg: Config{Timeout: -time.Second},
			want: []string{"k.timeout: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			errs := tt.cfg.Validate("k")
			if len(errs) != len(tt.want) {
				t.Fatalf("Validate = %v, want %d errors %q", errs, len(tt.want), tt.want)
			}
			for i, err := range errs {
				if !strings.HasPrefix(err.Error(), tt.want[i]) {
					t.Errorf("error %d = %q, want it to start with %q", i, err, tt.want[i])
				}
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{Timeout: -1})
	if err == nil || !strings.Contains(err.Error(), "kubernetes.timeout") {
		t.Fatalf("New with a negative timeout: %v", err)
	}
}

func TestLoadRESTConfig(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	const doc = `apiVersion: v1
kind: Config
clusters:
- name: a
  cluster: {server: "https://a.example:6443"}
- name: b
  cluster: {server: "https://b.example:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: a
  context: {cluster: a, user: u}
- name: b
  context: {cluster: b, user: u}
current-context: a
`
	if err := os.WriteFile(kc, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		context, wantHost, wantErr string
	}{
		{context: "", wantHost: "https://a.example:6443"},
		{context: "b", wantHost: "https://b.example:6443"},
		{context: "c", wantErr: `context "c" does not exist`},
	}
	for _, tt := range tests {
		rc, err := LoadRESTConfig(kc, tt.context)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("context %q: error %v, want %q", tt.context, err, tt.wantErr)
			}
			continue
		}
		if err != nil || rc.Host != tt.wantHost {
			t.Errorf("context %q: host %v, %v; want %s", tt.context, rc, err, tt.wantHost)
		}
	}
	if _, err := New(Config{Kubeconfig: kc, Context: "b"}); err != nil {
		t.Errorf("New with a kubeconfig: %v", err)
	}
	if _, err := LoadRESTConfig(filepath.Join(t.TempDir(), "missing"), ""); err == nil {
		t.Error("a missing kubeconfig loaded")
	}
}

func TestPrepareRESTConfig(t *testing.T) {
	orig := &rest.Config{Host: "https://x"}
	rc := PrepareRESTConfig(orig, 0)
	if rc.Timeout != DefaultTimeout || rc.UserAgent != "nhisentry" || rc.WrapTransport == nil {
		t.Errorf("prepared config: timeout %s, agent %q, wrap %v", rc.Timeout, rc.UserAgent, rc.WrapTransport != nil)
	}
	if orig.Timeout != 0 || orig.WrapTransport != nil {
		t.Error("PrepareRESTConfig changed its argument")
	}
	if rc := PrepareRESTConfig(orig, time.Second); rc.Timeout != time.Second {
		t.Errorf("timeout %s, want 1s", rc.Timeout)
	}
}

func TestCheck(t *testing.T) {
	p, err := newForConfig(Config{Namespaces: []string{"apps", "ci"}}, &rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	workload := response.Target{Namespace: "apps", ServiceAccount: "web"}
	secret := response.Target{Namespace: "ci", Credential: "ci-token-x7k2p", CredentialType: CredentialSAToken}
	with := func(t response.Target, f func(*response.Target)) response.Target { f(&t); return t }
	tests := []struct {
		name   string
		action response.Action
		target response.Target
		ok     bool
	}{
		{"isolate", response.ActionIsolate, workload, true},
		{"isolate without service account", response.ActionIsolate, with(workload, func(t *response.Target) { t.ServiceAccount = "" }), false},
		{"isolate bad service account", response.ActionIsolate, with(workload, func(t *response.Target) { t.ServiceAccount = "Web App" }), false},
		{"isolate without namespace", response.ActionIsolate, with(workload, func(t *response.Target) { t.Namespace = "" }), false},
		{"isolate outside allowed namespaces", response.ActionIsolate, with(workload, func(t *response.Target) { t.Namespace = "kube-system" }), false},
		{"revoke", response.ActionRevoke, secret, true},
		{"revoke by secret type", response.ActionRevoke, with(secret, func(t *response.Target) { t.CredentialType = "kubernetes.io/service-account-token" }), true},
		{"revoke a bound token id", response.ActionRevoke, with(secret, func(t *response.Target) { t.Credential = "JTI=2b6f0cc9-04d5-4e3b-9a1c-6d0f4a3e8b21" }), false},
		{"revoke another credential type", response.ActionRevoke, with(secret, func(t *response.Target) { t.CredentialType = "aws_sts" }), false},
		{"revoke without credential", response.ActionRevoke, with(secret, func(t *response.Target) { t.Credential = "" }), false},
		{"revoke without namespace", response.ActionRevoke, with(secret, func(t *response.Target) { t.Namespace = "" }), false},
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
			// Do refuses the same requests without calling the (unreachable) server.
			_, err = p.Do(t.Context(), response.Request{ID: "r", Action: tt.action, Target: tt.target})
			providertest.WantClass(t, err, providertest.NotApplicable)
		})
	}
}

func TestUndoWithoutCall(t *testing.T) {
	p, err := newForConfig(Config{}, &rest.Config{Host: "https://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		action response.Action
		undo   map[string]string
		want   providertest.Class
	}{
		{response.ActionRevoke, nil, providertest.Irreversible},
		{response.ActionNotify, nil, providertest.NotApplicable},
		{response.ActionIsolate, nil, providertest.Permanent},
		{response.ActionIsolate, map[string]string{"namespace": "a", "policy": "p"}, providertest.Permanent},
	}
	for _, tt := range tests {
		_, err := p.Undo(t.Context(), response.Request{Action: tt.action}, response.Result{Undo: tt.undo})
		providertest.WantClass(t, err, tt.want)
	}
}

func TestClassify(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	tests := []struct {
		err  error
		want providertest.Class
	}{
		{apierrors.NewForbidden(gr, "p", errors.New("no")), providertest.Permanent},
		{apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "p", nil), providertest.Permanent},
		{apierrors.NewBadRequest("bad"), providertest.Permanent},
		{apierrors.NewUnauthorized("who"), providertest.Permanent},
		{apierrors.NewNotFound(gr, "p"), providertest.Permanent},
		{apierrors.NewTooManyRequests("slow down", 1), providertest.Retryable},
		{apierrors.NewInternalError(errors.New("boom")), providertest.Retryable},
		{apierrors.NewServiceUnavailable("later"), providertest.Retryable},
		{apierrors.NewTimeoutError("slow", 1), providertest.Retryable},
		{apierrors.NewConflict(gr, "p", errors.New("changed")), providertest.Retryable},
		{apierrors.NewAlreadyExists(gr, "p"), providertest.Retryable},
		{errors.New("connection refused"), providertest.Retryable},
	}
	for _, tt := range tests {
		// Wrapped, as the provider wraps it with context.
		err := Classify(fmt.Errorf("kubernetes: op: %w", tt.err))
		if got := providertest.Classify(err); got != tt.want {
			t.Errorf("Classify(%v) is %s, want %s", tt.err, got, tt.want)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

func TestNames(t *testing.T) {
	p := &provider{cfg: Config{}.withDefaults()}
	long := strings.Repeat("a", 250)
	tests := []struct{ got, want string }{
		{p.policyName("web"), "nhisentry-quarantine-web"},
		{p.policyName(long), "nhisentry-quarantine-" + ShortHash(long)},
		{labelValue("0123456789abcdef0123456789abcdef"), "0123456789abcdef"},
		{labelValue("r1"), "r1"},
		{labelValue("finding:42/isolate"), ShortHash("finding:42/isolate")},
		{labelValue(""), ShortHash("")},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
		if len(validation.IsDNS1123Subdomain(tt.got)) > 0 && len(validation.IsValidLabelValue(tt.got)) > 0 {
			t.Errorf("%q is neither an object name nor a label value", tt.got)
		}
	}
}

func TestAnnotations(t *testing.T) {
	req := response.Request{ID: "r1", FindingID: "f1", Reason: strings.Repeat("€", 400)}
	a := Annotations(req)
	if a[AnnotationRequestID] != "r1" || a[AnnotationFindingID] != "f1" {
		t.Errorf("annotations %v", a)
	}
	if r := a[AnnotationReason]; len(r) > 1024 || !strings.HasPrefix(req.Reason, r) || strings.ContainsRune(r, '\uFFFD') {
		t.Errorf("reason cut to %d bytes, not a clean prefix", len(r))
	}
}
