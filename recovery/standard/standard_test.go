package standard

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// designSteps are the step ids of DESIGN §1, in order.
var designSteps = []string{
	"cluster.create", "cluster.access",
	"iam.roles", "addons.lbc", "argocd.register", "addons.karpenter", "addons.istio", "addons.istio-gateway", "addons.vault-injector", "vault.auth", "namespaces",
	"templates.generate", "gitops.mr", "gitops.merge", "deploy.watch",
	"endpoints.discover", "endpoints.plan", "endpoints.apply", "endpoints.verify",
	"postmortem", "teardown",
}

func TestStandardRunbookHasEveryDesignStepInOrder(t *testing.T) {
	rb, err := Runbook()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range rb.Steps() {
		got = append(got, s.ID)
	}
	if strings.Join(got, " ") != strings.Join(designSteps, " ") {
		t.Fatalf("steps = %v\nwant    %v", got, designSteps)
	}
}

func TestGatesSitBeforeTheMergeAndTheCutover(t *testing.T) {
	rb, _ := Runbook()
	gates := map[string]recovery.Gate{}
	for _, s := range rb.Steps() {
		if s.Gate != recovery.GateNone {
			gates[s.ID] = s.Gate
		}
	}
	if len(gates) != 2 || gates[GitOpsMerge] != recovery.GateMerge || gates[EndpointsApply] != recovery.GateCutover {
		t.Errorf("gates = %v", gates)
	}
}

func TestTemplatesAndMergeRequestDoNotWaitForTheCluster(t *testing.T) {
	rb, _ := Runbook()
	sched := rb.ForMode(state.ModeRecovery).Schedule()
	for _, s := range sched.Steps {
		if (s.Step.ID == TemplatesGenerate || s.Step.ID == GitOpsMR) && s.Start >= 15*time.Minute {
			t.Errorf("%s starts at +%s, after the cluster is created", s.Step.ID, s.Start)
		}
	}
}

func TestTeardownRunsInDrillsOnly(t *testing.T) {
	rb, _ := Runbook()
	if _, ok := rb.ForMode(state.ModeRecovery).Step(Teardown); ok {
		t.Error("a recovery would tear itself down")
	}
	if _, ok := rb.ForMode(state.ModeDrill).Step(Teardown); !ok {
		t.Error("a drill would not tear down")
	}
}

func TestAnAbortedRunStillWritesItsPostmortemAndAnAbortedDrillIsTornDown(t *testing.T) {
	rb, _ := Runbook()
	for mode, want := range map[state.Mode]string{state.ModeRecovery: Postmortem, state.ModeDrill: Postmortem + " " + Teardown} {
		var got []string
		for _, s := range rb.ForMode(mode).AbortSteps() {
			got = append(got, s.ID)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: steps run after an abort = %v, want %s", mode, got, want)
		}
	}
}

func TestUnbuiltStepsFailPermanentlyNamingTheIssue(t *testing.T) {
	rb, _ := Runbook()
	s, _ := rb.Step(ClusterCreate)
	_, err := s.Action(context.Background(), nil)
	if err == nil || recovery.IsRetryable(err) || !strings.Contains(err.Error(), "not built yet") || !strings.Contains(err.Error(), "issue #5") {
		t.Errorf("err = %v", err)
	}
}

func TestCriticalPathIsShorterThanTheSequentialSum(t *testing.T) {
	rb, _ := Runbook()
	sched := rb.ForMode(state.ModeRecovery).Schedule()
	if sched.Total >= sched.Sequential {
		t.Fatalf("total %s not below sequential %s", sched.Total, sched.Sequential)
	}
	if sched.CriticalPath[0] != ClusterCreate || sched.CriticalPath[len(sched.CriticalPath)-1] != Postmortem {
		t.Errorf("critical path = %v", sched.CriticalPath)
	}
	// The path is a chain: each step depends on the one before it.
	for i := 1; i < len(sched.CriticalPath); i++ {
		s, _ := rb.Step(sched.CriticalPath[i])
		found := false
		for _, d := range s.DependsOn {
			found = found || d == sched.CriticalPath[i-1]
		}
		if !found {
			t.Errorf("%s does not depend on %s", sched.CriticalPath[i], sched.CriticalPath[i-1])
		}
	}
}

// Steps at the same depth of the DAG can all be ready at once; if the
// default concurrency were below the widest depth, one of them would wait
// for a slot behind minutes-long Helm installs, on the critical path.
func TestDefaultConcurrencyRunsEveryStepThatCanBeReadyTogether(t *testing.T) {
	rb, err := Runbook()
	if err != nil {
		t.Fatal(err)
	}
	depth := map[string]int{}
	width := map[int][]string{}
	for _, s := range rb.Steps() { // dependencies come first in the table
		d := 0
		for _, dep := range s.DependsOn {
			d = max(d, depth[dep]+1)
		}
		depth[s.ID] = d
		width[d] = append(width[d], s.ID)
	}
	widest := 0
	for d, ids := range width {
		if len(ids) > len(width[widest]) {
			widest = d
		}
	}
	if n := len(width[widest]); n > recovery.DefaultConcurrency {
		t.Errorf("%d steps can be ready together (%v), above the default concurrency %d", n, width[widest], recovery.DefaultConcurrency)
	}
	for _, k := range config.Keys() {
		if k.Path == "runbook.concurrency" && k.Default != strconv.Itoa(recovery.DefaultConcurrency) {
			t.Errorf("runbook.concurrency defaults to %s in the config but the engine's default is %d", k.Default, recovery.DefaultConcurrency)
		}
	}
}
