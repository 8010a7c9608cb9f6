package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/drills"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
)

func cmdPlan(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plan", stderr)
	path := configFlag(fs)
	target := fs.String("target", "", "target to plan (default: the first recovery target)")
	drill := fs.Bool("drill", false, "plan a drill (adds teardown)")
	live := fs.Bool("live", false, "also read AWS, GitLab and the charts (read-only) to say what each step would create or change now")
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
	if measured, n := measuredEstimates(cfg.State.Path); len(measured) > 0 {
		if b, err := book.WithEstimates(measured); err == nil {
			book = b
			header += fmt.Sprintf("\nEstimates: the median of the last %d drill(s) where measured, config defaults elsewhere.", n)
		}
	}
	if err := recovery.WritePlan(stdout, header, book.ForMode(mode).Schedule(), cfg.MTTR.Budget.Std()); err != nil {
		return err
	}
	fmt.Fprintln(stdout, lastReadiness(cfg.State.Path))
	if !*live {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return writeLivePlan(ctx, stdout, cfg, t)
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

// measuredEstimates reads drill history from the state file when it can
// (not while a serving drbot holds it, and not when there is none).
func measuredEstimates(path string) (map[string]time.Duration, int) {
	if _, err := os.Stat(path); err != nil {
		return nil, 0
	}
	s, err := state.Open(path, state.Options{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		return nil, 0
	}
	defer s.Close()
	book, err := standard.Runbook()
	if err != nil {
		return nil, 0
	}
	scores, err := drills.Scores(s, book)
	if err != nil {
		return nil, 0
	}
	n := 0
	for _, sc := range scores {
		if sc.Run.Mode == state.ModeDrill {
			n++
		}
	}
	return drills.MeasuredEstimates(scores), min(n, 5)
}

// lastReadiness is the plan's line about the last readiness report: its
// score, what failed and its age, read from the state when it can be.
func lastReadiness(path string) string {
	if _, err := os.Stat(path); err != nil {
		return "Readiness: never checked (run drbot check)."
	}
	s, err := state.Open(path, state.Options{ReadOnly: true, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		return "Readiness: unknown (the state file is held by a running drbot; /dr plan shows it)."
	}
	defer s.Close()
	rep, ok, err := readiness.Latest(s)
	switch {
	case err != nil:
		return "Readiness: unknown (" + err.Error() + ")."
	case !ok:
		return "Readiness: never checked (run drbot check)."
	}
	return readiness.Summary(rep, time.Now())
}
