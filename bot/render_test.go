package bot

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test ./bot -update to create it): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from %s:\n%s", name, path, got)
	}
}

// rawJSON marshals and undoes HTML escaping (slack-go's block marshallers
// escape), so "<@U1>" reads as Slack sees it.
func rawJSON(v any) []byte {
	raw, _ := json.Marshal(v)
	return []byte(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(raw)))
}

// checkLimits fails when blocks break Slack's limits.
func checkLimits(t *testing.T, blocks []slack.Block) {
	t.Helper()
	if len(blocks) > maxBlocks {
		t.Errorf("%d blocks, limit %d", len(blocks), maxBlocks)
	}
	raw, _ := json.Marshal(blocks)
	var generic any
	_ = json.Unmarshal(raw, &generic)
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if text, ok := x["text"].(string); ok && len([]rune(text)) > maxTextLen {
				t.Errorf("text of %d chars, limit %d", len([]rune(text)), maxTextLen)
			}
			if id, ok := x["action_id"].(string); ok && len(id) > maxActionID {
				t.Errorf("action_id of %d chars, limit %d", len(id), maxActionID)
			}
			if id, ok := x["block_id"].(string); ok && len(id) > maxActionID {
				t.Errorf("block_id of %d chars, limit %d", len(id), maxActionID)
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(generic)
}

func boardView() BoardView {
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	return BoardView{
		Run: state.Run{ID: "prod-eu-20261125-1000-abc123", Target: "prod-eu", Mode: state.ModeRecovery, Initiator: "U_ONCALL",
			Reason: "eu-west-1 control plane unreachable", Status: state.RunRunning, StartedAt: t0},
		Steps: []StepView{
			{ID: "cluster.create", Phase: recovery.PhaseProvision, Status: state.StepSucceeded, Started: at(0), Finished: at(14)},
			{ID: "cluster.access", Phase: recovery.PhaseProvision, Status: state.StepSucceeded, Started: at(14), Finished: at(15)},
			{ID: "addons.lbc", Phase: recovery.PhaseBootstrap, Status: state.StepFailed, Started: at(15), Finished: at(17), Error: "installing chart: timed out\nmore detail"},
			{ID: "namespaces", Phase: recovery.PhaseBootstrap, Status: state.StepSucceeded, Started: at(15), Finished: at(16)},
			{ID: "gitops.merge", Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge, Status: state.StepWaiting, Started: at(2)},
			{ID: "deploy.watch", Phase: recovery.PhaseDeploy, Status: state.StepPending},
			{ID: "endpoints.apply", Phase: recovery.PhaseCutover, Gate: recovery.GateCutover, Status: state.StepPending},
		},
		Budget:  time.Hour,
		Now:     at(20),
		Deploy:  &Progress{Done: 75, Total: 150},
		Cutover: &Progress{Done: 3, Total: 14},
	}
}

func TestBoardGolden(t *testing.T) {
	blocks := Board(boardView())
	checkLimits(t, blocks)
	golden(t, "board_running", blocks)
}

func TestBoardOfAFinishedRunUsesItsEndTime(t *testing.T) {
	v := boardView()
	v.Run.Status, v.Run.FinishedAt = state.RunSucceeded, t0.Add(42*time.Minute)
	for i := range v.Steps {
		v.Steps[i].Status, v.Steps[i].Error = state.StepSucceeded, ""
	}
	v.Now = t0.Add(3 * time.Hour)
	blocks := Board(v)
	golden(t, "board_succeeded", blocks)
	raw := rawJSON(blocks)
	if !strings.Contains(string(raw), "elapsed *42m*") {
		t.Errorf("board of a finished run does not show 42m: %s", raw)
	}
}

func TestGateBlocksGoldenBeforeAndAfterTheDecision(t *testing.T) {
	ev := recovery.Event{Kind: recovery.EventGateWaiting, RunID: "r1", StepID: "gitops.merge", Title: "Merge the merge request", Gate: recovery.GateMerge,
		Fields: map[string]string{"gitops.mr.url": "https://gitlab.example/infra/argocd/-/merge_requests/7", "gitops.mr.summary": "150 applications in 12 namespaces"}}
	ev.Fields["deploy.watch.app_health"] = `{"payments":"Healthy"}`
	open := GateBlocks(ev, 1, nil)
	if strings.Contains(string(rawJSON(open)), "app_health") {
		t.Error("a machine record reached the approver")
	}
	checkLimits(t, open)
	golden(t, "gate_waiting", open)
	decided := GateBlocks(ev, 1, &state.Decision{Kind: "approve", By: "U_LEAD", DecidedAt: t0.Add(42 * time.Minute)})
	golden(t, "gate_approved", decided)
	raw := rawJSON(decided)
	if strings.Contains(string(raw), ActionApprove) || !strings.Contains(string(raw), "Approved by <@U_LEAD> at 10:42 UTC") {
		t.Errorf("decided gate still has buttons or lacks the decision: %s", raw)
	}
}

func TestFailureBlocksGolden(t *testing.T) {
	ev := recovery.Event{Kind: recovery.EventStepFailed, RunID: "r1", StepID: "addons.lbc", Attempt: 3, Error: "installing chart aws-load-balancer-controller: timed out waiting for the condition"}
	blocks := FailureBlocks(ev, 1, nil)
	checkLimits(t, blocks)
	golden(t, "step_failed", blocks)
}

func TestACleanUpFailureAfterAnAbortOffersNoButtons(t *testing.T) {
	ev := recovery.Event{Kind: recovery.EventStepFailed, RunID: "r1", StepID: "teardown", Attempt: 5, Error: "deleting cluster dr: AccessDenied",
		Fields: map[string]string{"after": "abort"}}
	if !recovery.FailedAfterAbort(ev) {
		t.Fatal("FailedAfterAbort does not recognise the driver's marker")
	}
	raw := string(rawJSON(FailureBlocks(ev, 1, nil)))
	for _, action := range []string{ActionRetry, ActionSkip, ActionAbort} {
		if strings.Contains(raw, action) {
			t.Errorf("a failure after the abort offers %s, which the engine refuses: %s", action, raw)
		}
	}
	if !strings.Contains(raw, "after the abort") || !strings.Contains(raw, "AccessDenied") {
		t.Errorf("blocks = %s, want the failure said as a clean-up failure after the abort", raw)
	}
}

func TestRenderingStaysWithinSlackLimitsForHugeInputs(t *testing.T) {
	v := boardView()
	huge := strings.Repeat("e", 10000)
	v.Run.Reason = huge
	for i := 0; i < 200; i++ {
		v.Steps = append(v.Steps, StepView{ID: "extra." + strings.Repeat("x", 300), Phase: recovery.PhaseBootstrap, Status: state.StepFailed, Error: huge})
	}
	checkLimits(t, Board(v))
	ev := recovery.Event{RunID: strings.Repeat("r", 200), StepID: strings.Repeat("s", 200), Error: huge, Fields: map[string]string{"diff": huge}}
	checkLimits(t, GateBlocks(ev, 1, nil))
	checkLimits(t, FailureBlocks(ev, 1, nil))
	if n := len([]rune(LogLine(ev))); n > maxTextLen {
		t.Errorf("log line of %d chars", n)
	}
}

func TestButtonValueRoundTrips(t *testing.T) {
	v := ButtonValue{RunID: "prod-eu-20261125-1000-abc123", StepID: "endpoints.apply", Round: 2}
	got, err := ParseButtonValue(v.String())
	if err != nil || got != v {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for _, bad := range []string{"", "a|b", "a|b|x", "|b|1"} {
		if _, err := ParseButtonValue(bad); err == nil {
			t.Errorf("ParseButtonValue(%q) accepted", bad)
		}
	}
}

func TestStepAndLogLinesSayWhatHappened(t *testing.T) {
	ev := recovery.Event{Kind: recovery.EventStepRetrying, StepID: "cluster.create", Attempt: 2, Error: "ThrottlingException", Time: t0,
		Fields: map[string]string{"backoff": "4s"}}
	if got := StepLine(ev); got != ":warning: `cluster.create` failed (attempt 2), retrying in 4s: ```ThrottlingException```" {
		t.Errorf("StepLine = %q", got)
	}
	if got := LogLine(ev); !strings.HasPrefix(got, "10:00:00Z · `step.retrying` · cluster.create · attempt 2 · backoff 4s") {
		t.Errorf("LogLine = %q", got)
	}
}

func TestDrillAnnouncementGolden(t *testing.T) {
	ev := recovery.Event{Kind: recovery.EventDrillAnnounce, Target: "drill-eu", Mode: state.ModeDrill,
		Fields: map[string]string{"drill": "weekly", "start_unix": "1764669600", "lead": "24h", "late": "true", "expected": "45m", "on_point": "U0ONCALL,U0LEAD"}}
	blocks := DrillBlocks(ev)
	checkLimits(t, blocks)
	golden(t, "drill_announce_late", blocks)
	raw := rawJSON(blocks)
	for _, want := range []string{ActionDrillSkip, ActionDrillPostpone, "weekly|1764669600", "This notice is late", "<@U0ONCALL>, <@U0LEAD>"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("announcement lacks %q: %s", want, raw)
		}
	}
}
