package drills

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

func noop(context.Context, *recovery.StepContext) (recovery.Result, error) {
	return recovery.Result{}, nil
}

// putDrill records a finished drill whose provision phase took p and
// deploy phase took d.
func putDrill(t *testing.T, store *state.Store, n int, p, d time.Duration) {
	start := time.Date(2026, 10, 1+n, 10, 0, 0, 0, time.UTC)
	id := fmt.Sprintf("drill-%d", n)
	err := store.Update(func(tx *state.Tx) error {
		if err := tx.PutRun(state.Run{ID: id, Target: "drill-eu", Mode: state.ModeDrill, Status: state.RunSucceeded, StartedAt: start, FinishedAt: start.Add(p + d), CreatedAt: start}); err != nil {
			return err
		}
		if err := tx.PutStep(state.StepRecord{RunID: id, StepID: "cluster.create", Status: state.StepSucceeded, StartedAt: start, FinishedAt: start.Add(p)}); err != nil {
			return err
		}
		return tx.PutStep(state.StepRecord{RunID: id, StepID: "deploy.watch", Status: state.StepSucceeded, StartedAt: start.Add(p), FinishedAt: start.Add(p + d)})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestScorecardCallsOutAPhaseSlowerThanItsMedian(t *testing.T) {
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	book, _ := recovery.NewRunbook([]recovery.Step{
		{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: noop},
		{ID: "deploy.watch", Phase: recovery.PhaseDeploy, DependsOn: []string{"cluster.create"}, Action: noop},
	})
	for i, d := range []time.Duration{10, 12, 11, 13, 12} { // deploy medians to 12m
		putDrill(t, store, i, 15*time.Minute, d*time.Minute)
	}
	putDrill(t, store, 5, 15*time.Minute, 18*time.Minute) // 50 % slower deploy
	scores, err := Scores(store, book)
	if err != nil || len(scores) != 6 {
		t.Fatalf("scores: %d %v", len(scores), err)
	}
	got := Regressions(scores, scores[5])
	if len(got) != 1 || got[0] != "phase deploy took 18m, 50% slower than its median of 12m over the last 5 drill(s)" {
		t.Fatalf("regressions = %q", got)
	}
	if r := Regressions(scores, scores[4]); len(r) != 0 {
		t.Errorf("an ordinary drill was called out: %q", r)
	}
	est := MeasuredEstimates(scores)
	if est["deploy.watch"] != 12*time.Minute || est["cluster.create"] != 15*time.Minute {
		t.Errorf("measured estimates = %v (want the median of the last five: 12m and 15m)", est)
	}
	var b strings.Builder
	if err := WriteHistory(&b, scores, time.Hour); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	if !strings.Contains(lines[1], "33m") || !strings.Contains(lines[1], "deploy +50%") || !strings.Contains(lines[1], "55%") {
		t.Errorf("newest history line = %q", lines[1])
	}
}
