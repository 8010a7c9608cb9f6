package lbcfake_test

import (
	"context"
	"testing"
	"time"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/test/lbcfake"
)

func TestCancellingTheContextEndsTheLoop(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ctrl, err := lbcfake.Start(ctx, lbcfake.Options{
		Cluster:     &rest.Config{Host: "https://127.0.0.1:1"}, // nothing listens: passes fail fast
		ClusterName: "dr-eks",
		LBs:         elbv2.New(elbv2.Options{Region: "eu-west-1"}),
		Poll:        20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ctrl.Err() == nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if ctrl.Err() == nil {
		t.Error("Err() = nil after passes against an unreachable cluster, want the error")
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
	for name, o := range map[string]lbcfake.Options{
		"no cluster":      {ClusterName: "x", LBs: elbv2.New(elbv2.Options{})},
		"no cluster name": {Cluster: &rest.Config{}, LBs: elbv2.New(elbv2.Options{})},
		"no LBs":          {Cluster: &rest.Config{}, ClusterName: "x"},
	} {
		if _, err := lbcfake.Start(context.Background(), o); err == nil {
			t.Errorf("%s: err = nil", name)
		}
	}
}
