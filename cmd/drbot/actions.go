package main

import (
	"time"

	"fmt"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/drills"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/postmortem"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
)

// wireActions puts the built integrations into the standard table; steps
// whose integration has not landed keep their "not built yet" action.
func wireActions(cfg *config.Config, book *recovery.Runbook) (*recovery.Runbook, error) {
	opts := postmortemOptions(cfg, book)
	opts.Regressions = func(s *state.Store, runID string) []string { return drillRegressions(s, book, runID) }
	return book.WithActions(map[string]recovery.Action{
		standard.Postmortem: postmortem.Action(opts),
	})
}

// drillRegressions compares a drill that is closing with the drills before it.
func drillRegressions(s *state.Store, book *recovery.Runbook, runID string) []string {
	scores, err := drills.Scores(s, book)
	if err != nil {
		return nil
	}
	var run state.Run
	var recs map[string]state.StepRecord
	_ = s.View(func(tx *state.Tx) error {
		var err error
		run, _, err = tx.Run(runID)
		if err != nil {
			return err
		}
		recs, err = tx.Steps(runID)
		return err
	})
	if run.Mode != state.ModeDrill {
		return nil
	}
	current := drills.Score{Run: run, Phases: recovery.PhaseDurations(book.ForMode(run.Mode), recs)}
	return drills.Regressions(scores, current)
}

func postmortemOptions(cfg *config.Config, book *recovery.Runbook) postmortem.Options {
	phases := map[string]time.Duration{}
	for p, d := range cfg.MTTR.Phases {
		phases[p] = d.Std()
	}
	return postmortem.Options{
		Book:         book,
		Budget:       cfg.MTTR.Budget.Std(),
		PhaseBudgets: phases,
		Describe: func(target string) string {
			t, ok := cfg.Target(target)
			if !ok {
				return ""
			}
			return fmt.Sprintf("primary %s/%s → DR cluster %s in %s (%s)", t.Primary.Region, t.Primary.Cluster, t.DR.ClusterName, t.DR.Region, t.Cluster.Provider)
		},
	}
}
