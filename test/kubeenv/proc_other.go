//go:build unix && !linux

package kubeenv

import "syscall"

// sysProcAttr puts each component in its own process group so stop can signal all of it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
