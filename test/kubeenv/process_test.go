package kubeenv

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestWaitForTimeoutShowsTheComponentsLog proves a readiness timeout carries the tail of the component's log.
func TestWaitForTimeoutShowsTheComponentsLog(t *testing.T) {
	c := &Cluster{name: "t", dir: t.TempDir()}
	defer c.stop()
	p, err := startProcess("slowpoke", "/bin/sh", c.dir, []string{"-c", "echo waiting for a lease that never comes; exec sleep 60"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.procs = append(c.procs, p)
	waitForLog(t, p, "never comes")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err = c.waitFor(ctx, "slowpoke ready", []*process{p}, func(context.Context) error { return errors.New("not yet") })
	if err == nil {
		t.Fatal("waitFor returned nil for a check that never passes")
	}
	for _, want := range []string{"timed out waiting for slowpoke ready", "not yet", "slowpoke running", "waiting for a lease that never comes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestWaitForReportsAPortClashAsRetryable proves a component dying on a taken port leads Start to retry.
func TestWaitForReportsAPortClashAsRetryable(t *testing.T) {
	c := &Cluster{name: "t", dir: t.TempDir()}
	defer c.stop()
	p, err := startProcess("etcd", "/bin/sh", c.dir, []string{"-c", "echo 'listen tcp 127.0.0.1:2379: bind: address already in use'; exit 1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.procs = append(c.procs, p)
	<-p.done

	err = c.waitFor(context.Background(), "etcd", []*process{p}, func(context.Context) error { return errors.New("not yet") })
	if !errors.Is(err, errAddrInUse) {
		t.Errorf("waitFor error = %v, want errAddrInUse", err)
	}
	if err == nil || !strings.Contains(err.Error(), "etcd exited") {
		t.Errorf("error %v does not say etcd exited", err)
	}
}

func waitForLog(t *testing.T, p *process, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !logContains(p, s) {
		if time.Now().After(deadline) {
			t.Fatalf("%s never logged %q", p.name, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
