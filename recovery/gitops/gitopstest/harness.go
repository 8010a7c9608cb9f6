package gitopstest

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
)

// Harness drives a run through the real engine with a pinned run id, so
// two runs on fresh journals stand for one run re-executed after its
// journal lost a handle (the crash window between acting and journaling),
// and lets a test press Retry.
type Harness struct {
	t     testing.TB
	eng   *recovery.Engine
	store *state.Store
	Run   state.Run
	// OnPoll, when set, sees the journal at every poll of Settle.
	OnPoll func(steptest.Result)
}

// Start begins a run of steps for target with the given run id.
func Start(t testing.TB, target, runID string, steps ...recovery.Step) *Harness {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	book, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	eng := recovery.New(ctx, store, book, recovery.Options{
		Retry:    recovery.RetryPolicy{MaxAttempts: 2, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewRunID: func(string, time.Time) string { return runID },
		// Gates that can see an approval given elsewhere look often in tests.
		GateCheckEvery: 50 * time.Millisecond,
	})
	t.Cleanup(func() { cancel(); eng.Wait() })
	run, err := eng.Start(recovery.StartRequest{Target: target, Mode: state.ModeRecovery, Initiator: "U_TEST"})
	if err != nil {
		t.Fatal(err)
	}
	return &Harness{t: t, eng: eng, store: store, Run: run}
}

// Settle waits (up to limit) until the run ends or blocks, approving every
// gate it meets when approve is set, and returns the journal.
func (h *Harness) Settle(approve bool, limit time.Duration) steptest.Result {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for {
		res := steptest.Load(h.t, h.store, h.Run.ID)
		if h.OnPoll != nil {
			h.OnPoll(res)
		}
		if res.Run.Status.Finished() || res.Run.Status == state.RunBlocked {
			return res
		}
		for id, rec := range res.Steps {
			if approve && rec.Status == state.StepWaiting {
				_, _ = h.eng.Decide(recovery.DecisionRequest{RunID: h.Run.ID, StepID: id, Kind: recovery.DecideApprove, By: "U_APPROVER", Round: rec.GateRound})
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("run %s still %s after %s; steps %+v", h.Run.ID, res.Run.Status, limit, res.Steps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Decide records an operator's decision on a failed step and waits until
// the engine has applied it.
func (h *Harness) Decide(step string, kind recovery.DecisionKind) {
	h.t.Helper()
	before := steptest.Load(h.t, h.store, h.Run.ID).Steps[step].Failures
	if _, err := h.eng.Decide(recovery.DecisionRequest{RunID: h.Run.ID, StepID: step, Kind: kind, By: "U_OPERATOR"}); err != nil {
		h.t.Fatalf("deciding %s on %s: %v", kind, step, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec := steptest.Load(h.t, h.store, h.Run.ID).Steps[step]
		if rec.Status != state.StepFailed || rec.Failures != before {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("decision %s on %s not applied", kind, step)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
