package postmortem

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.md")

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func at(min, sec int) time.Time {
	return t0.Add(time.Duration(min)*time.Minute + time.Duration(sec)*time.Second)
}

func ok(context.Context, *recovery.StepContext) (recovery.Result, error) {
	return recovery.Result{}, nil
}

// journal is a recovery with a retried step, a rejected then approved
// merge gate, a skipped step, and a step output holding a secret-looking
// value that must never be rendered.
func journal(t *testing.T) Input {
	book, err := recovery.NewRunbook([]recovery.Step{
		{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: ok},
		{ID: "namespaces", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: ok},
		{ID: "addons.lbc", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: ok},
		{ID: "templates.generate", Phase: recovery.PhaseDeploy, Action: ok},
		{ID: "gitops.merge", Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge, DependsOn: []string{"templates.generate", "namespaces", "addons.lbc"}, Action: ok},
		{ID: "postmortem", Phase: recovery.PhaseClose, DependsOn: []string{"gitops.merge"}, Action: ok},
	})
	if err != nil {
		t.Fatal(err)
	}
	run := state.Run{ID: "prod-eu-20261125-1000-abc123", Target: "prod-eu", Mode: state.ModeRecovery, Initiator: "U0ONCALL",
		Reason: "eu-west-1 down", Status: state.RunSucceeded, StartedAt: at(0, 0), FinishedAt: at(41, 30), Resumes: 1}
	hist := func(a int, s, e time.Time, outcome, err string) state.AttemptRecord {
		return state.AttemptRecord{Attempt: a, StartedAt: s, FinishedAt: e, Outcome: outcome, Error: err}
	}
	steps := map[string]state.StepRecord{
		"cluster.create": {Status: state.StepSucceeded, Attempt: 2, StartedAt: at(0, 10), FinishedAt: at(15, 0),
			History: []state.AttemptRecord{hist(1, at(0, 0), at(0, 5), "failed", "ThrottlingException: rate exceeded"), hist(2, at(0, 10), at(15, 0), "succeeded", "")},
			Outputs: map[string]string{"token": "k8s-aws-v1.SECRETTOKEN"}},
		"namespaces":         {Status: state.StepSkipped, Attempt: 1, StartedAt: at(15, 0), FinishedAt: at(19, 0), History: []state.AttemptRecord{hist(1, at(15, 0), at(15, 30), "failed", "creating namespace payments: forbidden")}},
		"addons.lbc":         {Status: state.StepSucceeded, Attempt: 1, StartedAt: at(15, 0), FinishedAt: at(17, 0), History: []state.AttemptRecord{hist(1, at(15, 0), at(17, 0), "succeeded", "")}},
		"templates.generate": {Status: state.StepSucceeded, Attempt: 1, StartedAt: at(0, 0), FinishedAt: at(1, 0), History: []state.AttemptRecord{hist(1, at(0, 0), at(1, 0), "succeeded", "")}},
		"gitops.merge":       {Status: state.StepSucceeded, Attempt: 1, GateRound: 2, StartedAt: at(30, 0), FinishedAt: at(31, 0), History: []state.AttemptRecord{hist(1, at(30, 0), at(31, 0), "succeeded", "")}},
		"postmortem":         {Status: state.StepSucceeded, Attempt: 1, StartedAt: at(41, 0), FinishedAt: at(41, 30), History: []state.AttemptRecord{hist(1, at(41, 0), at(41, 30), "succeeded", "")}},
	}
	ev := func(kind recovery.EventKind, when time.Time, step string, f func(*recovery.Event)) recovery.Event {
		e := recovery.Event{Kind: kind, RunID: run.ID, Target: run.Target, Time: when, StepID: step}
		if f != nil {
			f(&e)
		}
		return e
	}
	events := []recovery.Event{
		ev(recovery.EventRunStarted, at(0, 0), "", func(e *recovery.Event) { e.Actor = "U0ONCALL" }),
		ev(recovery.EventStepStarted, at(0, 0), "cluster.create", func(e *recovery.Event) { e.Attempt = 1 }),
		ev(recovery.EventStepRetrying, at(0, 5), "cluster.create", func(e *recovery.Event) {
			e.Attempt, e.Error, e.Fields = 1, "ThrottlingException: rate exceeded", map[string]string{"backoff": "4s"}
		}),
		ev(recovery.EventStepSucceeded, at(15, 0), "cluster.create", func(e *recovery.Event) { e.Attempt = 2 }),
		ev(recovery.EventStepFailed, at(15, 30), "namespaces", func(e *recovery.Event) { e.Attempt, e.Error = 1, "creating namespace payments: forbidden" }),
		ev(recovery.EventDecision, at(19, 0), "namespaces", func(e *recovery.Event) {
			e.Actor, e.Fields = "U0LEAD", map[string]string{"decision": "skip", "on": "failure", "reason": "created by hand"}
		}),
		ev(recovery.EventStepSkipped, at(19, 0), "namespaces", func(e *recovery.Event) { e.Actor = "U0LEAD" }),
		ev(recovery.EventGateWaiting, at(19, 1), "gitops.merge", func(e *recovery.Event) { e.Gate, e.Round = recovery.GateMerge, 1 }),
		ev(recovery.EventDecision, at(24, 0), "gitops.merge", func(e *recovery.Event) {
			e.Gate, e.Round, e.Actor, e.Fields = recovery.GateMerge, 1, "U0LEAD", map[string]string{"decision": "reject", "on": "gate", "reason": "wrong values file"}
		}),
		ev(recovery.EventRunResumed, at(25, 0), "", nil),
		ev(recovery.EventGateWaiting, at(26, 0), "gitops.merge", func(e *recovery.Event) { e.Gate, e.Round = recovery.GateMerge, 2 }),
		ev(recovery.EventDecision, at(30, 0), "gitops.merge", func(e *recovery.Event) {
			e.Gate, e.Round, e.Actor, e.Fields = recovery.GateMerge, 2, "U0LEAD", map[string]string{"decision": "approve", "on": "gate"}
		}),
		ev(recovery.EventStepSucceeded, at(31, 0), "gitops.merge", func(e *recovery.Event) { e.Attempt = 1 }),
		ev(recovery.EventRunSucceeded, at(41, 30), "", func(e *recovery.Event) { e.Fields = map[string]string{"duration": "41m30s"} }),
	}
	return Input{Run: run, Steps: steps, Events: events, Book: book, Budget: time.Hour,
		PhaseBudgets: map[string]time.Duration{"provision": 20 * time.Minute}, Description: "eu-west-1/prod-eu-west-1 → prod-eu-dr in eu-central-1",
		Audit: []state.AuditEntry{{Actor: "U0RANDOM", Action: "decide.approve", Result: "denied"}}}
}

func TestPostmortemGolden(t *testing.T) {
	got := Render(journal(t))
	path := filepath.Join("testdata", "recovery.golden.md")
	if *update {
		_ = os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test ./recovery/postmortem -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("post-mortem differs from %s:\n%s", path, got)
	}
}

func TestPostmortemSaysWhatMatters(t *testing.T) {
	got := Render(journal(t))
	for _, want := range []string{
		"Time to recover: **41m30s** against a budget of 1h0m: within budget (69%)",
		"| merge | `gitops.merge` | reject | <@U0LEAD> | 10:24:00 | 4m59s | wrong values file |",
		"| merge | `gitops.merge` | approve | <@U0LEAD> | 10:30:00 | 4m | — |",
		"`cluster.create` attempt 1 failed, retried after 4s: ThrottlingException",
		"<@U0LEAD> decided **skip** on `namespaces` — created by hand",
		"| `cluster.create` ★ |",
		"1 refused action(s) are in the audit log.",
		"## Action items",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("post-mortem lacks %q", want)
		}
	}
	if strings.Contains(got, "SECRETTOKEN") {
		t.Error("a step output leaked into the post-mortem")
	}
}

func TestPostmortemStepAttachesTheDocumentOfItsOwnRun(t *testing.T) {
	book, err := recovery.NewRunbook([]recovery.Step{
		{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: ok},
		{ID: "postmortem", Phase: recovery.PhaseClose, DependsOn: []string{"cluster.create"}, Action: ok},
	})
	if err != nil {
		t.Fatal(err)
	}
	res := steptest.Run(t, steptest.Options{},
		recovery.Step{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: ok},
		recovery.Step{ID: "postmortem", Phase: recovery.PhaseClose, DependsOn: []string{"cluster.create"}, Action: Action(Options{Book: book, Budget: time.Hour})},
	)
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s: %+v", res.Run.Status, res.Steps)
	}
	var doc *recovery.Event
	for i, ev := range res.Events {
		if ev.Kind == recovery.EventAttachment {
			doc = &res.Events[i]
		}
	}
	if doc == nil || doc.Fields["filename"] != "postmortem-"+res.Run.ID+".md" || !strings.Contains(doc.Message, "| `cluster.create` ★ | provision |") {
		t.Fatalf("attachment = %+v", doc)
	}
}

// abortedDrill is a drill aborted at its merge gate 12 minutes in: the
// cluster exists, one step failed, the deployment and the cutover never ran,
// and the post-mortem renders during the clean-up, before the run is
// recorded aborted.
func abortedDrill(t *testing.T) Input {
	book, err := recovery.NewRunbook([]recovery.Step{
		{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: ok},
		{ID: "namespaces", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: ok},
		{ID: "addons.lbc", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: ok},
		{ID: "gitops.merge", Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge, DependsOn: []string{"cluster.create"}, Action: ok},
		{ID: "deploy.watch", Phase: recovery.PhaseDeploy, DependsOn: []string{"gitops.merge", "namespaces"}, Action: ok},
		{ID: "endpoints.apply", Phase: recovery.PhaseCutover, DependsOn: []string{"deploy.watch", "addons.lbc"}, Action: ok},
		{ID: "postmortem", Phase: recovery.PhaseClose, DependsOn: []string{"endpoints.apply"}, OnAbort: true, Action: ok},
		{ID: "teardown", Phase: recovery.PhaseClose, DependsOn: []string{"postmortem"}, OnAbort: true, Action: ok},
	})
	if err != nil {
		t.Fatal(err)
	}
	run := state.Run{ID: "prod-eu-20261125-1000-def456", Target: "prod-eu", Mode: state.ModeDrill, Initiator: "U0ONCALL",
		Status: state.RunBlocked, StartedAt: at(0, 0)}
	steps := map[string]state.StepRecord{
		"cluster.create": {Status: state.StepSucceeded, Attempt: 1, StartedAt: at(0, 0), FinishedAt: at(10, 0)},
		"namespaces":     {Status: state.StepFailed, Attempt: 1, Failures: 1, StartedAt: at(10, 0), FinishedAt: at(10, 30), Error: "creating namespace payments: forbidden"},
		"addons.lbc":     {Status: state.StepCancelled, Attempt: 1, StartedAt: at(10, 0), FinishedAt: at(12, 0), Error: "cancelled by abort"},
		"gitops.merge":   {Status: state.StepWaiting, GateRound: 1},
		"postmortem":     {Status: state.StepRunning, Attempt: 1, StartedAt: at(12, 1)},
	}
	abort := state.Decision{Key: recovery.AbortKey(run.ID), RunID: run.ID, StepID: "namespaces", Kind: "abort", By: "U0LEAD", Reason: "drill window over", DecidedAt: at(12, 0)}
	events := []recovery.Event{
		{Kind: recovery.EventRunStarted, RunID: run.ID, Time: at(0, 0), Actor: "U0ONCALL"},
		{Kind: recovery.EventStepFailed, RunID: run.ID, StepID: "namespaces", Time: at(10, 30), Attempt: 1, Error: "creating namespace payments: forbidden"},
		{Kind: recovery.EventDecision, RunID: run.ID, StepID: "namespaces", Time: at(12, 0), Actor: "U0LEAD",
			Fields: map[string]string{"decision": "abort", "on": "run", "reason": "drill window over"}},
		{Kind: recovery.EventStepCancelled, RunID: run.ID, StepID: "addons.lbc", Time: at(12, 0)},
	}
	return Input{Run: run, Steps: steps, Events: events, Book: book, Budget: time.Hour, Abort: &abort}
}

func TestPostmortemOfAnAbortedDrillSaysWhoAbortedWhereAndWhatNeverRan(t *testing.T) {
	got := Render(abortedDrill(t))
	for _, want := range []string{
		"- Outcome: **aborted** by <@U0LEAD> at 2026-11-25 10:12:00 UTC — drill window over",
		"- Aborted at: `namespaces` failed (creating namespace payments: forbidden); `addons.lbc` running, cancelled; `gitops.merge` waiting at the merge gate",
		"- Steps never run because of the abort: 2 (not counting the clean-up",
		"- Ran for **12m** before the abort; nothing was recovered",
		"| `gitops.merge` | deploy | — | — | 0 | waiting at its gate when aborted |",
		"| `deploy.watch` | deploy | — | — | 0 | not run (aborted) |",
		"| `addons.lbc` ★ | bootstrap | 10:10:00 | 2m | 1 | cancelled by the abort |",
		"| `teardown` | close | — | — | 0 | not run (aborted) |",
		"<@U0LEAD> decided **abort** on `namespaces` — drill window over",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("post-mortem lacks %q:\n%s", want, got)
		}
	}
	for _, wrong := range []string{"Time to recover", "**blocked**", "not started"} {
		if strings.Contains(got, wrong) {
			t.Errorf("post-mortem of an aborted run says %q:\n%s", wrong, got)
		}
	}
}

func TestPostmortemOfAnAbortedRunNamesAFailedCleanUpOnceTheRunEnded(t *testing.T) {
	in := abortedDrill(t)
	in.Run.Status, in.Run.FinishedAt = state.RunAborted, at(25, 0)
	in.Run.Error = "aborted by U0LEAD; after the abort, teardown (deleting the cluster: AccessDenied) failed: finish by hand"
	got := Render(in)
	if !strings.Contains(got, "- Recorded: aborted by U0LEAD; after the abort, teardown (deleting the cluster: AccessDenied) failed") {
		t.Errorf("post-mortem does not carry the clean-up failure:\n%s", got)
	}
	in.Run.Error = "aborted by U0LEAD"
	if got := Render(in); strings.Contains(got, "- Recorded:") {
		t.Errorf("post-mortem repeats the plain abort line:\n%s", got)
	}
}

// The post-mortem step run by the engine after a real abort reads the
// abort from the journal and says so, though the run is not yet recorded
// aborted when it writes.
func TestPostmortemStepWrittenAfterAnAbortSaysTheRunWasAborted(t *testing.T) {
	fail := func(context.Context, *recovery.StepContext) (recovery.Result, error) {
		return recovery.Result{}, recovery.Permanent(errors.New("AccessDenied: eks:CreateCluster"))
	}
	steps := []recovery.Step{
		{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: fail},
		{ID: "deploy.watch", Phase: recovery.PhaseDeploy, DependsOn: []string{"cluster.create"}, Action: ok},
		{ID: "postmortem", Phase: recovery.PhaseClose, DependsOn: []string{"deploy.watch"}, OnAbort: true, Action: ok},
	}
	book, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	steps[2].Action = Action(Options{Book: book, Budget: time.Hour})
	book, err = recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	eng := recovery.New(ctx, store, book, recovery.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { cancel(); eng.Wait(); _ = store.Close() })
	run, err := eng.Start(recovery.StartRequest{Target: "prod-eu", Initiator: "U0ONCALL"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(want state.RunStatus) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
			var got state.Run
			_ = store.View(func(tx *state.Tx) (err error) { got, _, err = tx.Run(run.ID); return })
			if got.Status == want {
				return
			}
		}
		t.Fatalf("run never %s", want)
	}
	waitFor(state.RunBlocked)
	if _, err := eng.Decide(recovery.DecisionRequest{RunID: run.ID, StepID: "cluster.create", Kind: recovery.DecideAbort, By: "U0LEAD", Reason: "wrong account"}); err != nil {
		t.Fatal(err)
	}
	waitFor(state.RunAborted)
	res := steptest.Load(t, store, run.ID)
	var doc string
	for _, ev := range res.Events {
		if ev.Kind == recovery.EventAttachment {
			doc = ev.Message
		}
	}
	for _, want := range []string{
		"- Outcome: **aborted** by <@U0LEAD> at ",
		" — wrong account",
		"- Aborted at: `cluster.create` failed (AccessDenied: eks:CreateCluster)",
		"| `deploy.watch` | deploy | — | — | 0 | not run (aborted) |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("post-mortem lacks %q:\n%s", want, doc)
		}
	}
}
