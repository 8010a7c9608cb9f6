// Package steptest runs integration steps through the real engine in
// tests: a temporary bbolt state, a small runbook of the steps under test
// plus stubs for the steps they read outputs from.
package steptest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Result is the journal of a finished (or blocked) run.
type Result struct {
	Run    state.Run
	Steps  map[string]state.StepRecord
	Events []recovery.Event
	Store  *state.Store
}

// Options tune Run.
type Options struct {
	Target      string     // default "prod-eu"
	Mode        state.Mode // default recovery
	Drill       string     // the drills[] entry a drill run came from
	AutoApprove bool       // approve every gate as it asks
	Timeout     time.Duration
	Logger      *slog.Logger
	// Store reuses a state file (to run again after a simulated crash).
	Store *state.Store
}

// Stub is a step that only returns outputs, standing in for an upstream
// step (for example cluster.access's endpoint) in a test runbook.
func Stub(id string, phase recovery.Phase, outputs map[string]string) recovery.Step {
	return recovery.Step{ID: id, Title: "stub " + id, Phase: phase, Action: func(context.Context, *recovery.StepContext) (recovery.Result, error) {
		return recovery.Result{Outputs: outputs}, nil
	}}
}

// Run runs steps as a runbook until the run ends or blocks.
func Run(t testing.TB, opts Options, steps ...recovery.Step) Result {
	t.Helper()
	if opts.Target == "" {
		opts.Target = "prod-eu"
	}
	if opts.Mode == "" {
		opts.Mode = state.ModeRecovery
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	store := opts.Store
	if store == nil {
		var err error
		store, err = state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = store.Close() })
	}
	book, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng := recovery.New(ctx, store, book, recovery.Options{
		Retry:  recovery.RetryPolicy{MaxAttempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
		Logger: opts.Logger,
	})
	run, err := eng.Start(recovery.StartRequest{Target: opts.Target, Mode: opts.Mode, Initiator: "U_TEST", Drill: opts.Drill})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(opts.Timeout)
	var res Result
	for {
		res = Load(t, store, run.ID)
		if res.Run.Status.Finished() || res.Run.Status == state.RunBlocked {
			break
		}
		if opts.AutoApprove {
			for id, rec := range res.Steps {
				if rec.Status == state.StepWaiting {
					_, _ = eng.Decide(recovery.DecisionRequest{RunID: run.ID, StepID: id, Kind: recovery.DecideApprove, By: "U_APPROVER", Round: rec.GateRound})
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after %s; steps: %+v", run.ID, res.Run.Status, opts.Timeout, res.Steps)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	eng.Wait()
	return Load(t, store, run.ID)
}

// Load reads a run's journal and events.
func Load(t testing.TB, store *state.Store, runID string) Result {
	t.Helper()
	res := Result{Store: store}
	err := store.View(func(tx *state.Tx) error {
		var err error
		if res.Run, _, err = tx.Run(runID); err != nil {
			return err
		}
		if res.Steps, err = tx.Steps(runID); err != nil {
			return err
		}
		entries, err := tx.Outbox(false, 0)
		for _, e := range entries {
			var ev recovery.Event
			if json.Unmarshal(e.Payload, &ev) == nil && ev.RunID == runID {
				res.Events = append(res.Events, ev)
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// Progress lists the progress lines a step posted.
func (r Result) Progress(stepID string) []string {
	var out []string
	for _, ev := range r.Events {
		if ev.Kind == recovery.EventStepProgress && ev.StepID == stepID {
			out = append(out, ev.Message)
		}
	}
	return out
}
