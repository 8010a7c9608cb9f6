package main

import (
	"time"

	"fmt"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/postmortem"
	"github.com/drbot/drbot/recovery/standard"
)

// wireActions puts the built integrations into the standard table; steps
// whose integration has not landed keep their "not built yet" action.
func wireActions(cfg *config.Config, book *recovery.Runbook) (*recovery.Runbook, error) {
	return book.WithActions(map[string]recovery.Action{
		standard.Postmortem: postmortem.Action(postmortemOptions(cfg, book)),
	})
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
