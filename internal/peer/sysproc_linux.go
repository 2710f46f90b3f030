package peer

import "syscall"

// SysProcAttr puts a server in its own process group, so stopping it also
// stops what it started, and has the kernel kill it if its parent dies
// without stopping it (a test timeout's panic, a SIGKILL).
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
