package argofake_test

import (
	"context"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/test/argofake"
)

func TestCancellingTheContextEndsTheLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	// Nothing listens on port 1: every pass fails fast, and the loop must still end on cancel.
	ctrl, err := argofake.Start(ctx, argofake.Options{
		Management: &rest.Config{Host: "https://127.0.0.1:1"},
		GitLab:     argofake.GitLab{URL: "http://127.0.0.1:1", Token: "glpat-made-up", Project: "p/q", Branch: "main"},
		Poll:       20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ctrl.Err() == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if ctrl.Err() == nil {
		t.Error("Err() = nil after passes against unreachable servers, want the error")
	}
	cancel()
	stopped := make(chan struct{})
	go func() { ctrl.Stop(); ctrl.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("loop still running 10s after its context was cancelled")
	}
}

func TestStartRejectsIncompleteOptions(t *testing.T) {
	if _, err := argofake.Start(context.Background(), argofake.Options{}); err == nil {
		t.Error("Start without Management: err = nil")
	}
	_, err := argofake.Start(context.Background(), argofake.Options{
		Management: &rest.Config{Host: "https://127.0.0.1:1"},
		GitLab:     argofake.GitLab{URL: "http://127.0.0.1:1"},
	})
	if err == nil {
		t.Error("Start with a GitLab URL but no project or branch: err = nil")
	}
}
