// Package peer holds what starting a real server on this machine needs, for
// the tests and the demo that run one (etcd, kube-apiserver, SPIRE, moto):
// free loopback ports and a process group that dies with its parent and
// stops as a whole.
package peer

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// FreePorts asks the kernel for n free loopback ports. Another process could
// take one before the server binds it; that is rare and shows as a clear
// start failure.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// StopGroup stops the process group led by pid: SIGTERM, then SIGKILL if it
// is still there after grace.
func StopGroup(pid int, grace time.Duration) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	for deadline := time.Now().Add(grace); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(-pid, 0) != nil {
			return
		}
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}

// CacheDir is where the peers built from the module proxy are kept, one
// folder per name and version (deploy/local/*.sh build into it):
// <user cache>/nhisentry/peers/<peer>. It is "" when the machine has no
// user cache directory.
func CacheDir(peer string) string {
	cache, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(cache, "nhisentry", "peers", peer)
}
