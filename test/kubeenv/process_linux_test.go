package kubeenv

import (
	"bytes"
	"fmt"
	"os"
	"testing"
	"time"
)

// TestStopKillsTheWholeProcessGroup proves teardown leaves no child of a component behind.
func TestStopKillsTheWholeProcessGroup(t *testing.T) {
	p, err := startProcess("parent", "/bin/sh", t.TempDir(), []string{"-c", "sleep 60 & echo child $!; wait"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, "child ")
	var childPID int
	if _, err := fmt.Sscanf(p.logTail(1), "child %d", &childPID); err != nil {
		t.Fatalf("reading child pid from %q: %v", p.logTail(1), err)
	}
	if !processAlive(childPID) {
		t.Fatalf("child %d not running before stop", childPID)
	}
	p.stop()
	if done, _ := p.exited(); !done {
		t.Fatal("process still running after stop")
	}
	deadline := time.Now().Add(5 * time.Second)
	for processAlive(childPID) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d of the stopped process is still alive", childPID)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive reports whether pid runs; a zombie, killed but not yet reaped by init, counts as gone.
func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}
