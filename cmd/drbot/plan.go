package main

import (
	"fmt"
	"io"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

func cmdPlan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	path := configFlag(fs)
	target := fs.String("target", "", "target to plan (default: the first recovery target)")
	drill := fs.Bool("drill", false, "plan a drill (adds teardown)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, book, err := loadConfig(*path)
	if err != nil {
		return err
	}
	t, err := pickTarget(cfg, *target, *drill)
	if err != nil {
		return err
	}
	mode := state.ModeRecovery
	if *drill {
		mode = state.ModeDrill
	}
	header := fmt.Sprintf("drbot plan — %s of target %q: primary %s/%s → DR cluster %s in %s (provider %s). Nothing is changed.",
		mode, t.Name, t.Primary.Region, t.Primary.Cluster, t.DR.ClusterName, t.DR.Region, t.Cluster.Provider)
	return recovery.WritePlan(stdout, header, book.ForMode(mode).Schedule(), cfg.MTTR.Budget.Std())
}

// pickTarget finds the named target, or the first one that fits the mode.
func pickTarget(cfg *config.Config, name string, drill bool) (*config.Target, error) {
	if name != "" {
		t, ok := cfg.Target(name)
		if !ok {
			return nil, &exitError{code: 2, msg: fmt.Sprintf("no target %q in the config; targets are: %s", name, targetNames(cfg))}
		}
		if t.DrillOnly && !drill {
			return nil, &exitError{code: 2, msg: fmt.Sprintf("target %q is drill_only; add -drill", name)}
		}
		return t, nil
	}
	for i := range cfg.Targets {
		if cfg.Targets[i].DrillOnly == drill {
			return &cfg.Targets[i], nil
		}
	}
	return &cfg.Targets[0], nil
}

func targetNames(cfg *config.Config) string {
	var out string
	for i, t := range cfg.Targets {
		if i > 0 {
			out += ", "
		}
		out += t.Name
	}
	return out
}
