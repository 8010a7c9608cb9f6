package cutover_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
)

// harness drives one engine over a state file, like steptest.Run, but
// keeps it alive across decisions (Retry) and can resume a run an earlier
// process left unfinished.
type harness struct {
	t      testing.TB
	store  *state.Store
	eng    *recovery.Engine
	cancel context.CancelFunc
}

func newHarness(t testing.TB, store *state.Store, book []recovery.Step) *harness {
	t.Helper()
	rb, err := recovery.NewRunbook(book)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	eng := recovery.New(ctx, store, rb, recovery.Options{
		Retry:  recovery.RetryPolicy{MaxAttempts: 2, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	h := &harness{t: t, store: store, eng: eng, cancel: cancel}
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.cancel()
	h.eng.Wait()
}

func (h *harness) start() string {
	h.t.Helper()
	run, err := h.eng.Start(recovery.StartRequest{Target: targetName, Initiator: "U_TEST"})
	if err != nil {
		h.t.Fatal(err)
	}
	return run.ID
}

// settle approves every gate that asks and returns once the run finished
// or is blocked on a failed step.
func (h *harness) settle(runID string) steptest.Result {
	h.t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		res := steptest.Load(h.t, h.store, runID)
		if res.Run.Status.Finished() || res.Run.Status == state.RunBlocked {
			return res
		}
		for id, rec := range res.Steps {
			if rec.Status == state.StepWaiting {
				_, _ = h.eng.Decide(recovery.DecisionRequest{RunID: runID, StepID: id, Kind: recovery.DecideApprove, By: "U_APPROVER", Round: rec.GateRound})
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("run %s still %s after a minute", runID, res.Run.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) retry(runID, stepID string, failures int) {
	h.t.Helper()
	if _, err := h.eng.Decide(recovery.DecisionRequest{RunID: runID, StepID: stepID, Kind: recovery.DecideRetry, By: "U_OPERATOR", Round: failures}); err != nil {
		h.t.Fatal(err)
	}
	// Wait until the driver took the decision, so settle does not see the old blocked state.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		res := steptest.Load(h.t, h.store, runID)
		if res.Steps[stepID].Status != state.StepFailed || res.Run.Status != state.RunBlocked {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	h.t.Fatalf("retry of %s was not taken up", stepID)
}
