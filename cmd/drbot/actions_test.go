package main

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"testing"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
)

func TestEveryStepOfTheRunbookIsWiredToItsIntegration(t *testing.T) {
	cfg, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	book, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	wired, rollback, err := wireActions(cfg, book, slog.New(slog.NewTextHandler(io.Discard, nil)), func() *state.Store { return nil })
	if err != nil || rollback == nil {
		t.Fatalf("wiring: %v (rollback wired: %v)", err, rollback != nil)
	}
	// Every "not built yet" action of the standard table is the same
	// closure code; a wired step's action is different code.
	stub := reflect.ValueOf(book.Steps()[0].Action).Pointer()
	for _, s := range wired.Steps() {
		if reflect.ValueOf(s.Action).Pointer() == stub {
			t.Errorf("%s still has its not-built-yet action", s.ID)
		}
	}
	if w := waves(cfg); len(w) != 2 || w[0].Name != "tier-0" || w[0].Selector["tier"] != "0" || w[1].Apps[0] != "payments-api" {
		t.Errorf("argocd.waves reach the gitops tiers as %+v", w)
	}
	if merge, _ := wired.Step(standard.GitOpsMerge); merge.GateCheck == nil {
		t.Error("the merge gate cannot notice a merge done in GitLab")
	}
}

func TestDrillWithTeardownFalseKeepsWhatItMade(t *testing.T) {
	cfg := &config.Config{Drills: []config.Drill{{Name: "game-day", Teardown: false}, {Name: "monthly", Teardown: true}}}
	var toreDown []string
	td := func(_ context.Context, sc *recovery.StepContext) (recovery.Result, error) {
		toreDown = append(toreDown, sc.Run().Drill)
		return recovery.Result{}, nil
	}
	for _, drill := range []string{"game-day", "monthly"} {
		res := steptest.Run(t, steptest.Options{Mode: state.ModeDrill, Drill: drill},
			recovery.Step{ID: "teardown", Phase: recovery.PhaseClose, Action: keepWhenConfigured(cfg, td)})
		if res.Run.Status != state.RunSucceeded {
			t.Fatalf("%s: %s", drill, res.Run.Status)
		}
	}
	if len(toreDown) != 1 || toreDown[0] != "monthly" {
		t.Errorf("torn down: %v, want only the drill whose config says teardown: true", toreDown)
	}
}
