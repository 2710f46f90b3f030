// Package kubetest gives tests a real Kubernetes control plane
// (controlplane): one per test binary. Call Main from TestMain and Get from
// each test that needs it. When a binary is missing or the control plane
// does not start, tests are skipped, or fail when CI=true.
package kubetest

import (
	"sync"
	"testing"

	"github.com/nhisentry/nhisentry/internal/peer/peertest"
	"github.com/nhisentry/nhisentry/response/providers/kube/controlplane"
)

// Cluster is a running control plane.
type Cluster = controlplane.Cluster

// UnprivilegedUser is the name of the user with no RBAC bindings.
const UnprivilegedUser = controlplane.UnprivilegedUser

var shared struct {
	once    sync.Once
	cluster *Cluster
	err     error
}

// Main runs the tests and stops the control plane if one was started.
func Main(m *testing.M) int {
	code := m.Run()
	if c := shared.cluster; c != nil {
		c.Stop()
	}
	return code
}

// Get returns the binary's control plane, starting it on first use. It
// skips t (fails it under CI=true) when the control plane cannot run.
func Get(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() { shared.cluster, shared.err = controlplane.Start() })
	if shared.err != nil {
		peertest.Unavailable(t, "a Kubernetes control plane (deploy/local/kube-apiserver.sh)", shared.err)
	}
	return shared.cluster
}
