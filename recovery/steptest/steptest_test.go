package steptest

import (
	"context"
	"testing"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

func TestRunPassesStubOutputsToTheStepUnderTest(t *testing.T) {
	res := Run(t, Options{AutoApprove: true},
		Stub("cluster.access", recovery.PhaseProvision, map[string]string{"endpoint": "https://x"}),
		recovery.Step{ID: "use", Phase: recovery.PhaseBootstrap, Gate: recovery.GateMerge, DependsOn: []string{"cluster.access"},
			Action: func(_ context.Context, sc *recovery.StepContext) (recovery.Result, error) {
				ep, _ := sc.Output("cluster.access", "endpoint")
				sc.Progress("saw %s", ep)
				return recovery.Result{Outputs: map[string]string{"seen": ep}}, nil
			}},
	)
	if res.Run.Status != state.RunSucceeded || res.Steps["use"].Outputs["seen"] != "https://x" {
		t.Fatalf("run %s, outputs %v", res.Run.Status, res.Steps["use"].Outputs)
	}
	if p := res.Progress("use"); len(p) != 1 || p[0] != "saw https://x" {
		t.Errorf("progress = %v", p)
	}
}
