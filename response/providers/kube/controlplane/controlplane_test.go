package controlplane

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nhisentry/nhisentry/internal/peer/peertest"
)

func TestMissingBinaries(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	tests := []struct{ env, want string }{
		{"NHI_KUBE_APISERVER", "kube-apiserver (NHI_KUBE_APISERVER)"},
		{"NHI_ETCD", "etcd (NHI_ETCD)"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(tt.env, missing)
			if tt.env == "NHI_ETCD" {
				// An apiserver path that exists, so start gets to etcd.
				t.Setenv("NHI_KUBE_APISERVER", os.Args[0])
			}
			_, _, err := Binaries()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("start with %s missing: %v", tt.env, err)
			}
		})
	}
}

// TestStartStop starts a control plane of its own: the admin may act, the
// unprivileged user is forbidden, and stop leaves no process and no files.
func TestStartStop(t *testing.T) {
	if _, _, err := Binaries(); err != nil {
		peertest.Unavailable(t, "a Kubernetes control plane (deploy/local/kube-apiserver.sh)", err)
	}
	c, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			c.Stop()
		}
	}()
	for _, tt := range []struct {
		name      string
		forbidden bool
		client    corev1client.CoreV1Interface
	}{
		{"admin", false, corev1client.NewForConfigOrDie(c.Admin)},
		{UnprivilegedUser, true, corev1client.NewForConfigOrDie(c.Unprivileged)},
	} {
		_, err := tt.client.Namespaces().List(t.Context(), metav1.ListOptions{})
		if tt.forbidden != apierrors.IsForbidden(err) || (!tt.forbidden && err != nil) {
			t.Errorf("%s lists namespaces: %v", tt.name, err)
		}
	}
	// The kubeconfig it writes works as a real cluster's would.
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := c.Kubeconfig(path); err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := corev1client.NewForConfigOrDie(rc).Namespaces().List(t.Context(), metav1.ListOptions{}); err != nil {
		t.Errorf("through the kubeconfig: %v", err)
	}
	var pids []int
	for _, p := range c.procs {
		pids = append(pids, p.Process.Pid)
	}
	dir := c.dir
	c.Stop()
	stopped = true
	for _, pid := range pids {
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still there after stop (%v)", pid, err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after stop (%v)", dir, err)
	}
}
