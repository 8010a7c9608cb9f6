package postmortem

import (
	"context"
	"fmt"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Options feed the post-mortem step.
type Options struct {
	Book         *recovery.Runbook
	Budget       time.Duration
	PhaseBudgets map[string]time.Duration
	// Describe says what the target is, e.g. "primary … → DR …".
	Describe func(target string) string
	// Regressions, when set, names phases that got slower (the scorecard).
	Regressions func(store *state.Store, runID string) []string
}

// Action is the `postmortem` step: it writes the post-mortem of its own
// run, as the run stands when the close phase starts, and attaches it.
func Action(opts Options) recovery.Action {
	return func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
		in, err := Load(sc.Store(), opts.Book, sc.Run().ID)
		if err != nil {
			return recovery.Result{}, fmt.Errorf("reading the journal for the post-mortem: %w", err)
		}
		in.Budget, in.PhaseBudgets = opts.Budget, opts.PhaseBudgets
		if opts.Describe != nil {
			in.Description = opts.Describe(in.Run.Target)
		}
		if opts.Regressions != nil {
			in.Regressions = opts.Regressions(sc.Store(), in.Run.ID)
		}
		md := Render(in)
		name := fmt.Sprintf("postmortem-%s.md", in.Run.ID)
		if err := sc.Attach(name, "Post-mortem "+in.Run.ID, md); err != nil {
			return recovery.Result{}, err
		}
		sc.Progress("post-mortem written: %s (%d bytes), uploaded to the post-mortem log thread", name, len(md))
		return recovery.Result{Outputs: map[string]string{"file": name}}, nil
	}
}
