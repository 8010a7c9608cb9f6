package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drbot/drbot/state"
)

// abortBook is a run that blocks at "a": "b" after it must never start
// once the run is aborted; the post-mortem and the drill's teardown run
// after an abort, whatever became of their dependencies.
func abortBook(j *journal, postmortem, teardown Action) []Step {
	record := func(id string, then Action) Action {
		return func(ctx context.Context, sc *StepContext) (Result, error) {
			j.add(id)
			return then(ctx, sc)
		}
	}
	return []Step{
		{ID: "a", Phase: PhaseProvision, Action: record("a", func(context.Context, *StepContext) (Result, error) {
			return Result{}, Permanent(errors.New("AccessDenied: not allowed"))
		})},
		{ID: "b", Phase: PhaseDeploy, DependsOn: []string{"a"}, Action: record("b", ok)},
		{ID: "postmortem", Phase: PhaseClose, DependsOn: []string{"b"}, OnAbort: true, Action: record("postmortem", postmortem)},
		{ID: "teardown", Phase: PhaseClose, DependsOn: []string{"postmortem"}, OnAbort: true, Modes: Modes{state.ModeDrill}, Action: record("teardown", teardown)},
	}
}

func TestAbortAtABlockedStepRunsThePostmortemAndOnlyADrillsTeardownThenEndsAborted(t *testing.T) {
	for _, mode := range []state.Mode{state.ModeRecovery, state.ModeDrill} {
		t.Run(string(mode), func(t *testing.T) {
			var j journal
			h := newHarness(t, abortBook(&j, ok, ok), Options{})
			run, err := h.eng.Start(StartRequest{Target: "prod-eu", Mode: mode, Initiator: "U_INIT"})
			if err != nil {
				t.Fatal(err)
			}
			h.waitRun(run.ID, state.RunBlocked)
			if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "a", Kind: DecideAbort, By: "U_OPS"}); err != nil {
				t.Fatal(err)
			}
			got := h.waitRun(run.ID, state.RunAborted)
			if got.Error != "aborted by U_OPS" {
				t.Errorf("run error = %q, want it to name who aborted and no failure", got.Error)
			}
			h.waitStep(run.ID, "postmortem", state.StepSucceeded)
			want := []string{"a", "postmortem"}
			if mode == state.ModeDrill {
				want = append(want, "teardown")
				h.waitStep(run.ID, "teardown", state.StepSucceeded)
			}
			if strings.Join(j.lines, " ") != strings.Join(want, " ") {
				t.Errorf("actions ran %v, want %v: b must not start after the abort, the clean-up runs in order", j.lines, want)
			}
			if rec := h.waitStep(run.ID, "a", state.StepFailed); rec.Attempt != 1 {
				t.Errorf("a = %+v, want it left failed as the abort found it", rec)
			}
			var b state.StepRecord
			_ = h.store.View(func(tx *state.Tx) (err error) { b, _, err = tx.Step(run.ID, "b"); return })
			if b.Attempt != 0 || b.Status.Done() {
				t.Errorf("b = %+v, want it never run", b)
			}
			keys := strings.Join(h.events(run.ID), " ")
			if !strings.Contains(keys, run.ID+"/postmortem/succeeded/1") || strings.Index(keys, "/postmortem/succeeded/1") > strings.Index(keys, run.ID+"/finished") {
				t.Errorf("events %s: want the post-mortem's success before the run's end", keys)
			}
		})
	}
}

func TestDecisionsDuringTheCleanUpAfterAnAbortStartNothingAndASecondAbortIsANoOp(t *testing.T) {
	var j journal
	inTeardown, release := make(chan struct{}), make(chan struct{})
	teardown := func(context.Context, *StepContext) (Result, error) {
		close(inTeardown)
		<-release
		return Result{}, nil
	}
	h := newHarness(t, abortBook(&j, ok, teardown), Options{})
	run := startBlockedDrillAndAbort(t, h)
	select {
	case <-inTeardown:
	case <-time.After(10 * time.Second):
		t.Fatal("the teardown never started after the abort")
	}
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "a", Kind: DecideRetry, By: "U_OPS"}); err == nil || !strings.Contains(err.Error(), "aborted by U_OPS") {
		t.Errorf("retry during the clean-up: err = %v, want a refusal naming the abort", err)
	}
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "a", Kind: DecideSkip, By: "U_OPS"}); err == nil {
		t.Error("skip during the clean-up was accepted")
	}
	res, err := h.eng.Decide(DecisionRequest{RunID: run.ID, Kind: DecideAbort, By: "U_OTHER"})
	if err != nil || res.Applied || res.Decision.By != "U_OPS" {
		t.Errorf("second abort: %+v %v, want a no-op naming U_OPS", res, err)
	}
	close(release)
	got := h.waitRun(run.ID, state.RunAborted)
	if j.index("b") != -1 || j.index("a") != 0 || len(j.lines) != 3 {
		t.Errorf("actions ran %v, want a, postmortem, teardown once each", j.lines)
	}
	if got.Error != "aborted by U_OPS" {
		t.Errorf("run error = %q", got.Error)
	}
}

func TestKillDuringTheCleanUpAfterAnAbortThenResumeFinishesItOnceAndEndsAborted(t *testing.T) {
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var j journal
	var postmortems, teardowns atomic.Int32
	inTeardown := make(chan struct{})
	postmortem := func(context.Context, *StepContext) (Result, error) { postmortems.Add(1); return Result{}, nil }
	teardown := func(ctx context.Context, sc *StepContext) (Result, error) {
		if teardowns.Add(1) == 1 {
			if err := sc.SaveOutputs(map[string]string{"removed.cutover": "done"}); err != nil {
				return Result{}, err
			}
			close(inTeardown)
			<-ctx.Done() // drbot is killed under this attempt
			return Result{}, ctx.Err()
		}
		if v, _ := sc.Output("teardown", "removed.cutover"); v != "done" {
			return Result{}, Permanent(errors.New("the resumed teardown did not see what the first attempt journaled"))
		}
		return Result{}, nil
	}
	book, err := NewRunbook(abortBook(&j, postmortem, teardown))
	if err != nil {
		t.Fatal(err)
	}
	ctx1, kill := context.WithCancel(context.Background())
	e1 := New(ctx1, store, book, Options{Retry: fastRetry, Logger: quietLogger()})
	run, err := e1.Start(StartRequest{Target: "prod-eu", Mode: state.ModeDrill, Initiator: "U_INIT"})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, store, run.ID, state.RunBlocked)
	if _, err := e1.Decide(DecisionRequest{RunID: run.ID, StepID: "a", Kind: DecideAbort, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inTeardown:
	case <-time.After(10 * time.Second):
		t.Fatal("the teardown never started after the abort")
	}
	kill()
	e1.Wait()
	var mid state.Run
	var midTeardown state.StepRecord
	_ = store.View(func(tx *state.Tx) error {
		mid, _, _ = tx.Run(run.ID)
		midTeardown, _, _ = tx.Step(run.ID, "teardown")
		return nil
	})
	if mid.Status.Finished() || midTeardown.Status != state.StepRunning {
		t.Fatalf("after the kill: run %s, teardown %s; want the run unfinished and the teardown journaled running", mid.Status, midTeardown.Status)
	}

	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	e2 := New(ctx2, store, book, Options{Retry: fastRetry, Logger: quietLogger()})
	if resumed, err := e2.Resume(); err != nil || len(resumed) != 1 {
		t.Fatalf("resume: %+v %v", resumed, err)
	}
	wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e2.WaitRun(wctx, run.ID); err != nil {
		t.Fatal(err)
	}
	e2.Wait()
	var got state.Run
	var td state.StepRecord
	_ = store.View(func(tx *state.Tx) error {
		got, _, _ = tx.Run(run.ID)
		td, _, _ = tx.Step(run.ID, "teardown")
		return nil
	})
	if got.Status != state.RunAborted || got.Error != "aborted by U_OPS" {
		t.Fatalf("run = %s %q, want aborted by U_OPS", got.Status, got.Error)
	}
	if postmortems.Load() != 1 || teardowns.Load() != 2 || td.Status != state.StepSucceeded || td.History[0].Outcome != "interrupted" {
		t.Errorf("postmortem ran %d times (want 1), teardown %d (want 2: interrupted, then done); teardown = %+v", postmortems.Load(), teardowns.Load(), td)
	}
	if j.index("b") != -1 {
		t.Errorf("actions ran %v: the resume started a normal step of the aborted run", j.lines)
	}
}

func waitStatus(t *testing.T, store *state.Store, runID string, want state.RunStatus) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var run state.Run
		_ = store.View(func(tx *state.Tx) (err error) { run, _, err = tx.Run(runID); return })
		if run.Status == want {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for run %s to be %s", runID, want)
}

func TestACleanUpStepThatFailsAfterAnAbortIsReportedAndTheRunStillEndsAborted(t *testing.T) {
	var j journal
	var teardowns atomic.Int32
	postmortem := func(context.Context, *StepContext) (Result, error) {
		return Result{}, Permanent(errors.New("reading the journal: disk gone"))
	}
	teardown := func(context.Context, *StepContext) (Result, error) {
		teardowns.Add(1)
		return Result{}, Retryable(errors.New("ThrottlingException: rate exceeded"))
	}
	h := newHarness(t, abortBook(&j, postmortem, teardown), Options{})
	run := startBlockedDrillAndAbort(t, h)
	got := h.waitRun(run.ID, state.RunAborted)
	for _, want := range []string{"aborted by U_OPS", "postmortem (reading the journal: disk gone)", "teardown (ThrottlingException"} {
		if !strings.Contains(got.Error, want) {
			t.Errorf("run error %q lacks %q", got.Error, want)
		}
	}
	// The teardown still ran after the failed post-mortem, with the retry
	// policy's attempts (fastRetry: 3) and no more.
	if td := h.waitStep(run.ID, "teardown", state.StepFailed); teardowns.Load() != 3 || td.Attempt != 3 {
		t.Errorf("teardown ran %d times, attempt %d; want the 3 attempts of the retry policy", teardowns.Load(), td.Attempt)
	}
	var failed []Event
	_ = h.store.View(func(tx *state.Tx) error {
		all, err := tx.Outbox(false, 0)
		for _, e := range all {
			if e.RunID == run.ID && e.Kind == string(EventStepFailed) {
				var ev Event
				if jerr := json.Unmarshal(e.Payload, &ev); jerr != nil {
					return jerr
				}
				failed = append(failed, ev)
			}
		}
		return err
	})
	var afterAbort []string
	for _, ev := range failed {
		if ev.Fields["after"] == "abort" {
			afterAbort = append(afterAbort, ev.StepID)
			if !strings.Contains(ev.Error, "finish it by hand") {
				t.Errorf("failure event of %s says %q, want it to tell people to finish by hand", ev.StepID, ev.Error)
			}
		}
	}
	if strings.Join(afterAbort, ",") != "postmortem,teardown" {
		t.Errorf("failure events after the abort name %v, want postmortem,teardown", afterAbort)
	}
}

func TestAnOnAbortStepThatFailedBeforeTheAbortRunsOnceMoreAfterIt(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, []Step{
		{ID: "postmortem", Phase: PhaseClose, OnAbort: true, Action: func(context.Context, *StepContext) (Result, error) {
			if calls.Add(1) == 1 {
				return Result{}, Permanent(errors.New("slack upload refused"))
			}
			return Result{}, nil
		}},
	}, Options{})
	run := h.start()
	h.waitRun(run.ID, state.RunBlocked)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, Kind: DecideAbort, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	got := h.waitRun(run.ID, state.RunAborted)
	if calls.Load() != 2 || got.Error != "aborted by U_OPS" {
		t.Errorf("postmortem called %d times (want 2), run error %q", calls.Load(), got.Error)
	}
}

func TestAbortDoesNotCancelAnOnAbortStepAlreadyRunning(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	var sawCancel atomic.Bool
	h := newHarness(t, []Step{
		{ID: "teardown", Phase: PhaseClose, OnAbort: true, Action: func(ctx context.Context, _ *StepContext) (Result, error) {
			calls.Add(1)
			close(entered)
			select {
			case <-release:
			case <-ctx.Done():
				sawCancel.Store(true)
				return Result{}, ctx.Err()
			}
			return Result{}, nil
		}},
	}, Options{})
	run := h.start()
	<-entered
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, Kind: DecideAbort, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // time for a wrong cancellation to land
	close(release)
	h.waitRun(run.ID, state.RunAborted)
	if rec := h.waitStep(run.ID, "teardown", state.StepSucceeded); sawCancel.Load() || calls.Load() != 1 || rec.Attempt != 1 {
		t.Errorf("sawCancel=%v calls=%d rec=%+v, want one uncancelled attempt", sawCancel.Load(), calls.Load(), rec)
	}
}

func TestRunbookRejectsAGatedOnAbortStep(t *testing.T) {
	_, err := NewRunbook([]Step{{ID: "teardown", Phase: PhaseClose, OnAbort: true, Gate: GateCutover, Action: ok}})
	if err == nil || !strings.Contains(err.Error(), `step "teardown" runs after an abort and cannot have the cutover gate`) {
		t.Errorf("err = %v, want the gated OnAbort step refused", err)
	}
}

func TestAbortStepsKeepTheDAGOrderWhateverTheDeclarationOrder(t *testing.T) {
	book, err := NewRunbook([]Step{
		{ID: "teardown", Phase: PhaseClose, OnAbort: true, DependsOn: []string{"x"}, Action: ok},
		{ID: "x", Phase: PhaseClose, DependsOn: []string{"postmortem"}, Action: ok},
		{ID: "postmortem", Phase: PhaseClose, OnAbort: true, Action: ok},
		{ID: "notes", Phase: PhaseClose, OnAbort: true, Action: ok},
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range book.AbortSteps() {
		ids = append(ids, s.ID)
	}
	if got := strings.Join(ids, " "); got != "postmortem teardown notes" {
		t.Errorf("AbortSteps = %s, want postmortem teardown notes", got)
	}
}

// startBlockedDrillAndAbort starts a drill of abortBook, waits for it to
// block at its failing step and has U_OPS abort it.
func startBlockedDrillAndAbort(t *testing.T, h *harness) state.Run {
	t.Helper()
	run, err := h.eng.Start(StartRequest{Target: "prod-eu", Mode: state.ModeDrill, Initiator: "U_INIT"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, state.RunBlocked)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, Kind: DecideAbort, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	return run
}
