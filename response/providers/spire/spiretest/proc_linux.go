package spiretest

import "syscall"

// sysProcAttr puts a child in its own process group, so stopping it also
// stops what it started, and has the kernel kill it if the test binary
// dies without cleaning up.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
