package controlplane

import "syscall"

// sysProcAttr puts a server in its own process group and has the kernel
// kill it if the test binary dies without stopping it (a test timeout's
// panic, a SIGKILL).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
