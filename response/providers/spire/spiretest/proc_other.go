//go:build unix && !linux

package spiretest

import "syscall"

// sysProcAttr puts a child in its own process group, so stopping it also
// stops what it started.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
