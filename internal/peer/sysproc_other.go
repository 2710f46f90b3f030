//go:build unix && !linux

package peer

import "syscall"

// SysProcAttr puts a server in its own process group, so stopping it also
// stops what it started.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
