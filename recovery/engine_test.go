package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drbot/drbot/state"
)

type harness struct {
	t     *testing.T
	store *state.Store
	eng   *Engine
	stop  context.CancelFunc
}

var fastRetry = RetryPolicy{MaxAttempts: 3, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newHarness(t *testing.T, steps []Step, opts Options) *harness {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	book, err := NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Retry.MaxAttempts == 0 {
		opts.Retry = fastRetry
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, store: store, eng: New(ctx, store, book, opts), stop: cancel}
	t.Cleanup(func() { cancel(); h.eng.Wait(); _ = store.Close() })
	return h
}

func (h *harness) start() state.Run {
	h.t.Helper()
	run, err := h.eng.Start(StartRequest{Target: "prod-eu", Initiator: "U_INIT", Reason: "test"})
	if err != nil {
		h.t.Fatal(err)
	}
	return run
}

// waitFor polls the state until cond holds.
func (h *harness) waitFor(what string, cond func(tx *state.Tx) bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var ok bool
		_ = h.store.View(func(tx *state.Tx) error { ok = cond(tx); return nil })
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("timed out waiting for %s", what)
}

func (h *harness) waitRun(runID string, want state.RunStatus) state.Run {
	h.t.Helper()
	var run state.Run
	h.waitFor(fmt.Sprintf("run %s to be %s", runID, want), func(tx *state.Tx) bool {
		run, _, _ = tx.Run(runID)
		return run.Status == want
	})
	return run
}

func (h *harness) waitStep(runID, stepID string, want state.StepStatus) state.StepRecord {
	h.t.Helper()
	var rec state.StepRecord
	h.waitFor(fmt.Sprintf("step %s to be %s", stepID, want), func(tx *state.Tx) bool {
		rec, _, _ = tx.Step(runID, stepID)
		return rec.Status == want
	})
	return rec
}

func (h *harness) events(runID string) []string {
	var kinds []string
	_ = h.store.View(func(tx *state.Tx) error {
		all, err := tx.Outbox(false, 0)
		for _, e := range all {
			if e.RunID == runID {
				kinds = append(kinds, e.Key)
			}
		}
		return err
	})
	return kinds
}

func ok(context.Context, *StepContext) (Result, error) { return Result{}, nil }

// journal records the order in which actions start and finish.
type journal struct {
	mu    sync.Mutex
	lines []string
}

func (j *journal) add(s string) { j.mu.Lock(); j.lines = append(j.lines, s); j.mu.Unlock() }
func (j *journal) index(s string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, l := range j.lines {
		if l == s {
			return i
		}
	}
	return -1
}

func TestIndependentStepsStartInParallelAndDependentsWaitForAllTheirDeps(t *testing.T) {
	var j journal
	var started sync.WaitGroup
	started.Add(2)
	both := make(chan struct{})
	go func() { started.Wait(); close(both) }()
	parallel := func(name string) Action {
		return func(ctx context.Context, _ *StepContext) (Result, error) {
			j.add("start " + name)
			started.Done()
			select { // each waits until the other has started too: only true parallelism gets through
			case <-both:
			case <-time.After(5 * time.Second):
				return Result{}, Permanent(errors.New(name + " never saw its sibling start"))
			}
			j.add("end " + name)
			return Result{Outputs: map[string]string{"who": name}}, nil
		}
	}
	h := newHarness(t, []Step{
		{ID: "c", Phase: PhaseDeploy, DependsOn: []string{"a", "b"}, Action: func(_ context.Context, sc *StepContext) (Result, error) {
			j.add("start c")
			a, _ := sc.Output("a", "who")
			b, _ := sc.Output("b", "who")
			return Result{Outputs: map[string]string{"saw": a + b}}, nil
		}},
		{ID: "a", Phase: PhaseProvision, Action: parallel("a")},
		{ID: "b", Phase: PhaseProvision, Action: parallel("b")},
	}, Options{})
	run := h.start()
	h.waitRun(run.ID, state.RunSucceeded)
	if c := j.index("start c"); c < j.index("end a") || c < j.index("end b") {
		t.Fatalf("c started before its dependencies finished: %v", j.lines)
	}
	rec := h.waitStep(run.ID, "c", state.StepSucceeded)
	if rec.Outputs["saw"] != "ab" {
		t.Errorf("c saw outputs %q, want ab", rec.Outputs["saw"])
	}
}

func TestRetryableErrorIsRetriedWithBackoffThenSucceeds(t *testing.T) {
	var calls atomic.Int32
	var times []time.Time
	var mu sync.Mutex
	h := newHarness(t, []Step{{ID: "flaky", Phase: PhaseProvision, Action: func(context.Context, *StepContext) (Result, error) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if calls.Add(1) < 3 {
			return Result{}, Retryable(errors.New("ThrottlingException: rate exceeded"))
		}
		return Result{}, nil
	}}}, Options{Retry: RetryPolicy{MaxAttempts: 5, InitialBackoff: 40 * time.Millisecond, MaxBackoff: time.Second}})
	run := h.start()
	h.waitRun(run.ID, state.RunSucceeded)
	rec := h.waitStep(run.ID, "flaky", state.StepSucceeded)
	if calls.Load() != 3 || rec.Attempt != 3 || len(rec.History) != 3 {
		t.Fatalf("calls=%d attempt=%d history=%d, want 3 each", calls.Load(), rec.Attempt, len(rec.History))
	}
	// Backoff is exponential with jitter in [d/2, d]: ≥20ms, then ≥40ms.
	if gap := times[1].Sub(times[0]); gap < 20*time.Millisecond {
		t.Errorf("first backoff %s, want ≥ 20ms", gap)
	}
	if gap := times[2].Sub(times[1]); gap < 40*time.Millisecond {
		t.Errorf("second backoff %s, want ≥ 40ms", gap)
	}
	var retrying int
	for _, k := range h.events(run.ID) {
		if strings.Contains(k, "/retrying/") {
			retrying++
		}
	}
	if retrying != 2 {
		t.Errorf("retrying events = %d, want 2", retrying)
	}
}

func TestRetryableErrorThatExhaustsItsBudgetParksTheStep(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, []Step{{ID: "down", Phase: PhaseProvision, Action: func(context.Context, *StepContext) (Result, error) {
		calls.Add(1)
		return Result{}, Retryable(errors.New("503 service unavailable"))
	}}}, Options{})
	run := h.start()
	h.waitRun(run.ID, state.RunBlocked)
	if calls.Load() != int32(fastRetry.MaxAttempts) {
		t.Errorf("calls = %d, want the budget of %d", calls.Load(), fastRetry.MaxAttempts)
	}
}

// failingOnce builds the runbook a → c, b (independent) where a fails
// permanently the first time.
func failingOnce(calls *atomic.Int32, cRan *atomic.Bool) []Step {
	return []Step{
		{ID: "a", Phase: PhaseProvision, Action: func(context.Context, *StepContext) (Result, error) {
			if calls.Add(1) == 1 {
				return Result{}, errors.New("AccessDenied: not authorised") // unclassified → permanent
			}
			return Result{}, nil
		}},
		{ID: "b", Phase: PhaseProvision, Action: func(context.Context, *StepContext) (Result, error) {
			time.Sleep(30 * time.Millisecond)
			return Result{}, nil
		}},
		{ID: "c", Phase: PhaseBootstrap, DependsOn: []string{"a"}, Action: func(context.Context, *StepContext) (Result, error) {
			cRan.Store(true)
			return Result{}, nil
		}},
	}
}

func TestPermanentFailureParksStepWhileIndependentBranchFinishesThenBlocks(t *testing.T) {
	var calls atomic.Int32
	var cRan atomic.Bool
	h := newHarness(t, failingOnce(&calls, &cRan), Options{})
	run := h.start()
	h.waitRun(run.ID, state.RunBlocked)
	a := h.waitStep(run.ID, "a", state.StepFailed)
	h.waitStep(run.ID, "b", state.StepSucceeded)
	if calls.Load() != 1 || a.Retryable || !strings.Contains(a.Error, "AccessDenied") {
		t.Errorf("a: calls=%d rec=%+v; a permanent error must not be retried", calls.Load(), a)
	}
	if cRan.Load() {
		t.Error("c ran although its dependency failed")
	}
}

func TestRetryDecisionRunsFailedStepAgainAndRunCompletes(t *testing.T) {
	var calls atomic.Int32
	var cRan atomic.Bool
	h := newHarness(t, failingOnce(&calls, &cRan), Options{})
	run := h.start()
	h.waitRun(run.ID, state.RunBlocked)
	res, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "a", Kind: DecideRetry, By: "U_OPS"})
	if err != nil || !res.Applied {
		t.Fatalf("retry: %+v %v", res, err)
	}
	h.waitRun(run.ID, state.RunSucceeded)
	if calls.Load() != 2 || !cRan.Load() {
		t.Errorf("calls=%d cRan=%v, want a run twice and c run", calls.Load(), cRan.Load())
	}
}

func TestSkipDecisionLetsDependentsProceed(t *testing.T) {
	var calls atomic.Int32
	var cRan atomic.Bool
	h := newHarness(t, failingOnce(&calls, &cRan), Options{})
	run := h.start()
	h.waitRun(run.ID, state.RunBlocked)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "a", Kind: DecideSkip, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, state.RunSucceeded)
	h.waitStep(run.ID, "a", state.StepSkipped)
	if calls.Load() != 1 || !cRan.Load() {
		t.Errorf("calls=%d cRan=%v, want a not re-run and c run", calls.Load(), cRan.Load())
	}
}

func TestAbortDecisionOnBlockedRunEndsItAbortedAndFreesTheTarget(t *testing.T) {
	var calls atomic.Int32
	var cRan atomic.Bool
	h := newHarness(t, failingOnce(&calls, &cRan), Options{})
	run := h.start()
	h.waitRun(run.ID, state.RunBlocked)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, Kind: DecideAbort, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	got := h.waitRun(run.ID, state.RunAborted)
	if !strings.Contains(got.Error, "U_OPS") || cRan.Load() {
		t.Errorf("aborted run = %+v, cRan=%v", got, cRan.Load())
	}
	if _, err := h.eng.Start(StartRequest{Target: "prod-eu", Initiator: "U2"}); err != nil {
		t.Errorf("target still locked after abort: %v", err)
	}
}

func TestGateBlocksUntilApprovedAndASecondDecisionIsANoOp(t *testing.T) {
	var merged atomic.Bool
	h := newHarness(t, []Step{
		{ID: "gitops.mr", Phase: PhaseDeploy, Action: func(context.Context, *StepContext) (Result, error) {
			return Result{Outputs: map[string]string{"mr_url": "https://gitlab.example/mr/7"}}, nil
		}},
		{ID: "gitops.merge", Phase: PhaseDeploy, DependsOn: []string{"gitops.mr"}, Gate: GateMerge, Action: func(context.Context, *StepContext) (Result, error) {
			merged.Store(true)
			return Result{}, nil
		}},
	}, Options{})
	run := h.start()
	h.waitStep(run.ID, "gitops.merge", state.StepWaiting)
	time.Sleep(50 * time.Millisecond)
	if merged.Load() {
		t.Fatal("gated action ran before approval")
	}
	var gateEvent []string
	for _, k := range h.events(run.ID) {
		if strings.Contains(k, "/gate/") {
			gateEvent = append(gateEvent, k)
		}
	}
	if len(gateEvent) != 1 {
		t.Fatalf("gate events = %v, want exactly one", gateEvent)
	}

	first, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "gitops.merge", Kind: DecideApprove, By: "U_A"})
	if err != nil || !first.Applied {
		t.Fatalf("first approval: %+v %v", first, err)
	}
	second, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "gitops.merge", Kind: DecideReject, By: "U_B"})
	// The step may already be running (then the decision is refused) or still
	// waiting (then it is a no-op): either way the first decision stands.
	if err == nil && (second.Applied || second.Decision.By != "U_A") {
		t.Fatalf("second decision = %+v, want a no-op naming U_A", second)
	}
	h.waitRun(run.ID, state.RunSucceeded)
	if !merged.Load() {
		t.Error("approved action did not run")
	}
	var audit []state.AuditEntry
	_ = h.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(run.ID); return })
	var decisions []string
	for _, a := range audit {
		if strings.HasPrefix(a.Action, "decide.") {
			decisions = append(decisions, a.Actor+":"+a.Result)
		}
	}
	if len(decisions) == 0 || decisions[0] != "U_A:recorded" {
		t.Errorf("audit decisions = %v, want U_A recorded first", decisions)
	}
}

func TestSecondDecisionWhileGateStillWaitsIsANoOpNamingTheFirst(t *testing.T) {
	// The decision is recorded while no driver runs, so both land on a waiting gate.
	h := newHarness(t, []Step{{ID: "endpoints.apply", Phase: PhaseCutover, Gate: GateCutover, Action: ok}}, Options{})
	run := h.start()
	h.waitStep(run.ID, "endpoints.apply", state.StepWaiting)
	h.stop()
	h.eng.Wait()
	first, err1 := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideApprove, By: "U_A"})
	second, err2 := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideApprove, By: "U_B"})
	if err1 != nil || err2 != nil || !first.Applied || second.Applied || second.Decision.By != "U_A" {
		t.Fatalf("first=%+v/%v second=%+v/%v", first, err1, second, err2)
	}
}

func TestGateRejectionParksStepAndRetryAsksTheGateAgain(t *testing.T) {
	var applied atomic.Int32
	h := newHarness(t, []Step{{ID: "endpoints.apply", Phase: PhaseCutover, Gate: GateCutover, Action: func(context.Context, *StepContext) (Result, error) {
		applied.Add(1)
		return Result{}, nil
	}}}, Options{})
	run := h.start()
	h.waitStep(run.ID, "endpoints.apply", state.StepWaiting)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideReject, By: "U_A", Reason: "wrong zone"}); err != nil {
		t.Fatal(err)
	}
	rec := h.waitStep(run.ID, "endpoints.apply", state.StepFailed)
	if !strings.Contains(rec.Error, "rejected at the cutover gate by U_A: wrong zone") {
		t.Errorf("error = %q", rec.Error)
	}
	h.waitRun(run.ID, state.RunBlocked)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideRetry, By: "U_A"}); err != nil {
		t.Fatal(err)
	}
	rec = h.waitStep(run.ID, "endpoints.apply", state.StepWaiting)
	if rec.GateRound != 2 || applied.Load() != 0 {
		t.Fatalf("after retry: round=%d applied=%d, want round 2 and nothing applied", rec.GateRound, applied.Load())
	}
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideApprove, By: "U_B"}); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, state.RunSucceeded)
	if applied.Load() != 1 {
		t.Errorf("applied %d times, want 1", applied.Load())
	}
}

func TestAbortCancelsARunningStepThroughItsContext(t *testing.T) {
	entered := make(chan struct{})
	var sawCancel atomic.Bool
	h := newHarness(t, []Step{{ID: "cluster.create", Phase: PhaseProvision, Action: func(ctx context.Context, _ *StepContext) (Result, error) {
		close(entered)
		select {
		case <-ctx.Done():
			sawCancel.Store(true)
			return Result{}, ctx.Err()
		case <-time.After(10 * time.Second):
			return Result{}, nil
		}
	}}}, Options{})
	run := h.start()
	<-entered
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, Kind: DecideAbort, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, state.RunAborted)
	rec := h.waitStep(run.ID, "cluster.create", state.StepCancelled)
	if !sawCancel.Load() || rec.History[len(rec.History)-1].Outcome != "cancelled" {
		t.Errorf("sawCancel=%v history=%+v", sawCancel.Load(), rec.History)
	}
}

func TestSecondStartOnABusyTargetNamesTheRunInProgress(t *testing.T) {
	h := newHarness(t, []Step{{ID: "gate", Phase: PhaseCutover, Gate: GateCutover, Action: ok}}, Options{})
	run := h.start()
	_, err := h.eng.Start(StartRequest{Target: "prod-eu", Initiator: "U2"})
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Lock.RunID != run.ID {
		t.Fatalf("want BusyError naming %s, got %v", run.ID, err)
	}
}

func TestDeniedDecisionIsAuditedAndHasNoEffect(t *testing.T) {
	h := newHarness(t, []Step{{ID: "endpoints.apply", Phase: PhaseCutover, Gate: GateCutover, Action: ok}}, Options{
		Authorize: func(run state.Run, _ Step, kind DecisionKind, user string) error {
			if kind == DecideApprove && user == run.Initiator {
				return errors.New("two-person rule: the initiator may not approve the cutover")
			}
			return nil
		},
	})
	run := h.start()
	h.waitStep(run.ID, "endpoints.apply", state.StepWaiting)
	_, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideApprove, By: "U_INIT"})
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("want ErrDenied, got %v", err)
	}
	var audit []state.AuditEntry
	_ = h.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(run.ID); return })
	last := audit[len(audit)-1]
	if last.Result != "denied" || last.Actor != "U_INIT" {
		t.Errorf("last audit = %+v, want a denial by U_INIT", last)
	}
	h.waitStep(run.ID, "endpoints.apply", state.StepWaiting)
}

func TestEngineRestartResumesRunWithoutRerunningFinishedSteps(t *testing.T) {
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var firstRuns, secondRuns atomic.Int32
	release := make(chan struct{})
	steps := []Step{
		{ID: "first", Phase: PhaseProvision, Action: func(context.Context, *StepContext) (Result, error) { firstRuns.Add(1); return Result{}, nil }},
		{ID: "second", Phase: PhaseBootstrap, DependsOn: []string{"first"}, Action: func(ctx context.Context, sc *StepContext) (Result, error) {
			if secondRuns.Add(1) == 1 {
				if err := sc.SaveHandle("op-123"); err != nil {
					return Result{}, err
				}
				<-ctx.Done() // the engine stops under this attempt
				return Result{}, ctx.Err()
			}
			<-release
			return Result{Outputs: map[string]string{"handle_seen": sc.Handle()}}, nil
		}},
	}
	book, _ := NewRunbook(steps)
	ctx1, stop1 := context.WithCancel(context.Background())
	e1 := New(ctx1, store, book, Options{Retry: fastRetry, Logger: quietLogger()})
	run, err := e1.Start(StartRequest{Target: "prod-eu", Initiator: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	for secondRuns.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	stop1()
	e1.Wait()

	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	e2 := New(ctx2, store, book, Options{Retry: fastRetry, Logger: quietLogger()})
	resumed, err := e2.Resume()
	if err != nil || len(resumed) != 1 || resumed[0].ID != run.ID {
		t.Fatalf("resume: %+v %v", resumed, err)
	}
	close(release)
	if err := e2.WaitRun(context.Background(), run.ID); err != nil {
		t.Fatal(err)
	}
	var rec state.StepRecord
	var got state.Run
	_ = store.View(func(tx *state.Tx) error {
		rec, _, _ = tx.Step(run.ID, "second")
		got, _, _ = tx.Run(run.ID)
		return nil
	})
	if got.Status != state.RunSucceeded || got.Resumes != 1 {
		t.Fatalf("run = %+v", got)
	}
	if firstRuns.Load() != 1 || secondRuns.Load() != 2 {
		t.Errorf("first ran %d times (want 1), second %d (want 2)", firstRuns.Load(), secondRuns.Load())
	}
	if rec.Outputs["handle_seen"] != "op-123" || rec.History[0].Outcome != "interrupted" {
		t.Errorf("second = %+v; the resumed attempt must see the saved handle", rec)
	}
}

func TestRunbookRejectsCyclesUnknownDependenciesAndDuplicates(t *testing.T) {
	for name, steps := range map[string][]Step{
		"cycle":     {{ID: "a", Phase: PhaseProvision, DependsOn: []string{"b"}, Action: ok}, {ID: "b", Phase: PhaseProvision, DependsOn: []string{"a"}, Action: ok}},
		"unknown":   {{ID: "a", Phase: PhaseProvision, DependsOn: []string{"zz"}, Action: ok}},
		"duplicate": {{ID: "a", Phase: PhaseProvision, Action: ok}, {ID: "a", Phase: PhaseProvision, Action: ok}},
		"no action": {{ID: "a", Phase: PhaseProvision}},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := NewRunbook(steps); err == nil {
				t.Fatal("want an error")
			}
		})
	}
}

func TestForModeDropsDrillOnlyStepsFromRecoveries(t *testing.T) {
	book, err := NewRunbook([]Step{
		{ID: "postmortem", Phase: PhaseClose, Action: ok},
		{ID: "teardown", Phase: PhaseClose, DependsOn: []string{"postmortem"}, Modes: Modes{state.ModeDrill}, Action: ok},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := book.ForMode(state.ModeRecovery).Step("teardown"); ok {
		t.Error("teardown kept in a recovery")
	}
	if _, ok := book.ForMode(state.ModeDrill).Step("teardown"); !ok {
		t.Error("teardown dropped from a drill")
	}
}

func TestIsRetryableClassifiesThrottlingServerErrorsAndTimeouts(t *testing.T) {
	cases := []struct {
		err  error
		want bool
	}{
		{Retryable(errors.New("x")), true},
		{Permanent(context.DeadlineExceeded), false},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), true},
		{codeErr("ThrottlingException"), true},
		{codeErr("AccessDeniedException"), false},
		{statusErr(503), true},
		{statusErr(404), false},
		{errors.New("plain"), false},
	}
	for _, c := range cases {
		if got := IsRetryable(c.err); got != c.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

type codeErr string

func (c codeErr) Error() string     { return string(c) }
func (c codeErr) ErrorCode() string { return string(c) }

type statusErr int

func (s statusErr) Error() string       { return fmt.Sprintf("status %d", int(s)) }
func (s statusErr) HTTPStatusCode() int { return int(s) }

func TestAbortDuringBackoffCancelsTheStepWithoutAnotherAttempt(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, []Step{{ID: "flaky", Phase: PhaseProvision, Action: func(context.Context, *StepContext) (Result, error) {
		calls.Add(1)
		return Result{}, Retryable(errors.New("throttled"))
	}}}, Options{Retry: RetryPolicy{MaxAttempts: 5, InitialBackoff: 20 * time.Second, MaxBackoff: time.Minute}})
	run := h.start()
	h.waitFor("the first retry to be scheduled", func(tx *state.Tx) bool {
		rec, _, _ := tx.Step(run.ID, "flaky")
		return len(rec.History) == 1
	})
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, Kind: DecideAbort, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, state.RunAborted)
	rec := h.waitStep(run.ID, "flaky", state.StepCancelled)
	if calls.Load() != 1 || len(rec.History) != 1 {
		t.Errorf("calls=%d history=%+v, want one attempt and no new one after the abort", calls.Load(), rec.History)
	}
}

func TestDecisionFromAnOlderGateRoundIsRefusedAsStale(t *testing.T) {
	h := newHarness(t, []Step{{ID: "endpoints.apply", Phase: PhaseCutover, Gate: GateCutover, Action: ok}}, Options{})
	run := h.start()
	h.waitStep(run.ID, "endpoints.apply", state.StepWaiting)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideReject, By: "U_A", Round: 1}); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, state.RunBlocked)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideRetry, By: "U_A", Round: 1}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("round 2", func(tx *state.Tx) bool {
		rec, _, _ := tx.Step(run.ID, "endpoints.apply")
		return rec.Status == state.StepWaiting && rec.GateRound == 2
	})
	_, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "endpoints.apply", Kind: DecideApprove, By: "U_B", Round: 1})
	if !errors.Is(err, ErrStale) {
		t.Fatalf("approve with a round-1 button: %v, want ErrStale", err)
	}
	h.waitStep(run.ID, "endpoints.apply", state.StepWaiting)
}

func TestPreApprovedGatePassesWithoutAPersonAndIsAudited(t *testing.T) {
	var merged atomic.Bool
	h := newHarness(t, []Step{{ID: "gitops.merge", Phase: PhaseDeploy, Gate: GateMerge, Action: func(context.Context, *StepContext) (Result, error) {
		merged.Store(true)
		return Result{}, nil
	}}}, Options{PreApproved: func(run state.Run, s Step) bool { return run.Mode == state.ModeDrill && s.Gate == GateMerge }})
	run, err := h.eng.Start(StartRequest{Target: "drill-eu", Mode: state.ModeDrill, Initiator: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, state.RunSucceeded)
	var audit []state.AuditEntry
	_ = h.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(run.ID); return })
	if !merged.Load() || !strings.Contains(fmt.Sprint(audit), "pre-approved for drills") {
		t.Errorf("merged=%v audit=%+v", merged.Load(), audit)
	}
	// A recovery of the same runbook still waits for a person.
	rec, err := h.eng.Start(StartRequest{Target: "prod-eu", Initiator: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	h.waitStep(rec.ID, "gitops.merge", state.StepWaiting)
}

func TestGatedStepWhoseApprovalNoLongerHoldsAsksTheGateAgain(t *testing.T) {
	var calls atomic.Int32
	h := newHarness(t, []Step{{ID: "gitops.merge", Phase: PhaseDeploy, Gate: GateMerge, Action: func(context.Context, *StepContext) (Result, error) {
		if calls.Add(1) == 1 {
			return Result{}, ReopenGate(errors.New("the branch changed since the MR was reviewed"))
		}
		return Result{}, nil
	}}}, Options{})
	run := h.start()
	h.waitStep(run.ID, "gitops.merge", state.StepWaiting)
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "gitops.merge", Kind: DecideApprove, By: "U_A", Round: 1}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("round 2", func(tx *state.Tx) bool {
		rec, _, _ := tx.Step(run.ID, "gitops.merge")
		return rec.Status == state.StepWaiting && rec.GateRound == 2
	})
	var gate2 Event
	for _, k := range h.events(run.ID) {
		if strings.HasSuffix(k, "/gate/2") {
			_ = h.store.View(func(tx *state.Tx) error {
				all, _ := tx.Outbox(false, 0)
				for _, e := range all {
					if e.Key == k {
						_ = json.Unmarshal(e.Payload, &gate2)
					}
				}
				return nil
			})
		}
	}
	if !strings.Contains(gate2.Fields["asked again because"], "branch changed") {
		t.Errorf("second gate event = %+v, want the reason it asks again", gate2)
	}
	if _, err := h.eng.Decide(DecisionRequest{RunID: run.ID, StepID: "gitops.merge", Kind: DecideApprove, By: "U_B", Round: 2}); err != nil {
		t.Fatal(err)
	}
	h.waitRun(run.ID, state.RunSucceeded)
	if calls.Load() != 2 {
		t.Errorf("action ran %d times, want 2", calls.Load())
	}
}

func TestGateCheckPassesAGateApprovedElsewhere(t *testing.T) {
	var mergedInGitLab atomic.Bool
	var ran atomic.Bool
	h := newHarness(t, []Step{{ID: "gitops.merge", Phase: PhaseDeploy, Gate: GateMerge,
		GateCheck: func(context.Context, *StepContext) (string, bool, error) { return "alice", mergedInGitLab.Load(), nil },
		Action:    func(context.Context, *StepContext) (Result, error) { ran.Store(true); return Result{}, nil }}},
		Options{GateCheckEvery: 20 * time.Millisecond})
	run := h.start()
	h.waitStep(run.ID, "gitops.merge", state.StepWaiting)
	time.Sleep(60 * time.Millisecond)
	if ran.Load() {
		t.Fatal("the gate passed before anyone approved")
	}
	mergedInGitLab.Store(true)
	h.waitRun(run.ID, state.RunSucceeded)
	var audit []state.AuditEntry
	_ = h.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(run.ID); return })
	if !ran.Load() || !auditHas(audit, "alice", "recorded") {
		t.Errorf("ran=%v audit=%+v", ran.Load(), audit)
	}
}

// A GateCheck asks GitLab and may hang for its minute: meanwhile the run
// goes on, and the steps that do not depend on the gate start and finish.
func TestASlowGateCheckDoesNotHoldUpTheRestOfTheRun(t *testing.T) {
	release := make(chan struct{})
	var checks atomic.Int32
	ok := func(context.Context, *StepContext) (Result, error) { return Result{}, nil }
	h := newHarness(t, []Step{
		{ID: "gitops.merge", Phase: PhaseDeploy, Gate: GateMerge, Action: ok,
			GateCheck: func(ctx context.Context, _ *StepContext) (string, bool, error) {
				checks.Add(1)
				select {
				case <-release:
					return "alice", true, nil
				case <-ctx.Done():
					return "", false, ctx.Err()
				}
			}},
		{ID: "addons.lbc", Phase: PhaseBootstrap, Action: func(context.Context, *StepContext) (Result, error) {
			time.Sleep(100 * time.Millisecond) // finishes while the check hangs
			return Result{}, nil
		}},
		{ID: "addons.istio-gateway", Phase: PhaseBootstrap, DependsOn: []string{"addons.lbc"}, Action: ok},
	}, Options{GateCheckEvery: 20 * time.Millisecond})
	run := h.start()
	h.waitStep(run.ID, "addons.istio-gateway", state.StepSucceeded)
	if checks.Load() != 1 {
		t.Errorf("%d gate checks started while the first hung, want 1 (one round at a time)", checks.Load())
	}
	close(release)
	h.waitRun(run.ID, state.RunSucceeded)
}

// A GateCheck that panics leaves the gate to a person, and the next round
// asks again.
func TestAPanickingGateCheckLeavesTheGateWaitingAndIsAskedAgain(t *testing.T) {
	var checks atomic.Int32
	h := newHarness(t, []Step{{ID: "gitops.merge", Phase: PhaseDeploy, Gate: GateMerge,
		GateCheck: func(context.Context, *StepContext) (string, bool, error) {
			if checks.Add(1) == 1 {
				panic("a nil MR")
			}
			return "alice", true, nil
		},
		Action: func(context.Context, *StepContext) (Result, error) { return Result{}, nil }}},
		Options{GateCheckEvery: 20 * time.Millisecond})
	run := h.start()
	h.waitRun(run.ID, state.RunSucceeded)
	if checks.Load() < 2 {
		t.Errorf("%d gate checks, want the gate asked again after the panic", checks.Load())
	}
}

func auditHas(audit []state.AuditEntry, actor, result string) bool {
	for _, a := range audit {
		if a.Actor == actor && a.Result == result {
			return true
		}
	}
	return false
}

func TestConcurrentResumesDriveARunOnce(t *testing.T) {
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var calls atomic.Int32
	book, _ := NewRunbook([]Step{{ID: "slow", Phase: PhaseProvision, Action: func(ctx context.Context, _ *StepContext) (Result, error) {
		calls.Add(1)
		select {
		case <-ctx.Done():
			return Result{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
			return Result{}, nil
		}
	}}})
	ctx1, stop1 := context.WithCancel(context.Background())
	e1 := New(ctx1, store, book, Options{Retry: fastRetry, Logger: quietLogger()})
	run, err := e1.Start(StartRequest{Target: "prod-eu", Initiator: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	stop1()
	e1.Wait()
	calls.Store(0)

	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	e2 := New(ctx2, store, book, Options{Retry: fastRetry, Logger: quietLogger()})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = e2.Resume() }()
	}
	wg.Wait()
	if err := e2.WaitRun(context.Background(), run.ID); err != nil {
		t.Fatal(err)
	}
	e2.Wait()
	if calls.Load() != 1 {
		t.Errorf("the interrupted step ran %d times after four concurrent resumes, want once", calls.Load())
	}
}

func TestConnectionErrorsAreRetryable(t *testing.T) {
	for _, err := range []error{
		&net.OpError{Op: "dial", Err: errors.New("connection refused")},
		&url.Error{Op: "Get", URL: "https://gitlab.example", Err: errors.New("connection reset by peer")},
		fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF),
	} {
		if !IsRetryable(err) {
			t.Errorf("IsRetryable(%v) = false", err)
		}
	}
}

func TestDispatcherSkipsAnEntryRefusedForGoodAndDeliversTheRest(t *testing.T) {
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_ = store.Update(func(tx *state.Tx) error {
		return Enqueue(tx, Event{Key: "a", Kind: EventStepStarted, RunID: "r"}, Event{Key: "bad", Kind: EventAttachment, RunID: "r"}, Event{Key: "c", Kind: EventStepSucceeded, RunID: "r"})
	})
	var got []string
	d := NewDispatcher(store, NotifierFunc(func(_ context.Context, ev Event) (string, error) {
		if ev.Key == "bad" {
			return "", Permanent(errors.New("missing_scope"))
		}
		got = append(got, ev.Key)
		return "ok", nil
	}), quietLogger())
	if _, err := d.DrainOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != "a,c" {
		t.Errorf("delivered %v, want a and c", got)
	}
	var audit []state.AuditEntry
	_ = store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog("r"); return })
	if len(audit) != 1 || audit[0].Action != "outbox.undeliverable" {
		t.Errorf("audit = %+v", audit)
	}
}

// At shutdown a run may still be starting (a drill tick, a late /dr start)
// while serve waits for the engine's runs to stop: the run is journaled but
// not driven, and resumes on the next start. (The race detector caught the
// WaitGroup's Add from zero racing serve's Wait.)
func TestARunStartedWhileTheEngineStopsIsLeftForTheNextStart(t *testing.T) {
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	running := make(chan struct{}, 1)
	book, _ := NewRunbook([]Step{{ID: "one", Phase: PhaseProvision, Action: func(ctx context.Context, _ *StepContext) (Result, error) {
		running <- struct{}{}
		<-ctx.Done()
		return Result{}, ctx.Err()
	}}})
	ctx, stop := context.WithCancel(context.Background())
	e := New(ctx, store, book, Options{Retry: fastRetry, Logger: quietLogger()})
	if _, err := e.Start(StartRequest{Target: "first", Initiator: "U1"}); err != nil {
		t.Fatal(err)
	}
	<-running
	go e.Wait()                       // serve's shutdown
	time.Sleep(20 * time.Millisecond) // Wait is waiting for the first run
	stop()
	time.Sleep(20 * time.Millisecond) // it stopped; nothing orders what follows after Wait
	late, err := e.Start(StartRequest{Target: "second", Initiator: "U1"})
	if err != nil {
		t.Fatal(err)
	}
	e.Wait()
	var got state.Run
	_ = store.View(func(tx *state.Tx) (err error) { got, _, err = tx.Run(late.ID); return })
	if got.Status.Finished() {
		t.Errorf("the late run is %s, want it left unfinished for the next start to resume", got.Status)
	}
}
