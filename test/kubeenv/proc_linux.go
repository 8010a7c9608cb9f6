package kubeenv

import "syscall"

// sysProcAttr puts each component in its own process group (so stop can signal all of it) and has the kernel kill it
// if the test binary dies without running its cleanups (a panic or a -timeout).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
