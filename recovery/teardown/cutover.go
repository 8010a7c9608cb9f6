package teardown

import (
	"context"
	"errors"
	"fmt"

	"github.com/drbot/drbot/recovery/cutover"
	"github.com/drbot/drbot/state"
)

// CutoverRollback puts a run's cutover back from its rollback record;
// *cutover.Cutover is one.
type CutoverRollback interface {
	Rollback(ctx context.Context, runID, record string, progress func(line string)) (cutover.RollbackReport, error)
}

// removeCutover points the drill's Route 53 records, CloudFront origins and
// API Gateway integrations back at what they were before endpoints.apply,
// before any later part deletes the load balancers they now point at.
func (x *attempt) removeCutover(ctx context.Context) (string, error) {
	started, err := x.applyStarted()
	if err != nil {
		return "", err
	}
	if !started {
		return "nothing to restore: the drill did not cut over", nil
	}
	runID := x.sc.Run().ID
	raw, ok := x.sc.Output(cutover.StepPlan, cutover.OutRollback)
	if !ok || raw == "" {
		// endpoints.apply reads the record before its first change: without
		// one it failed before changing anything.
		return fmt.Sprintf("nothing to restore: %s journaled no rollback record, so %s changed nothing", cutover.StepPlan, cutover.StepApply), nil
	}
	what := "the cutover of " + x.target.Name
	fix := fmt.Sprintf("run /dr rollback %s --reason \"…\" or restore the rows in the rollback record (%s's output %q) by hand, then press Retry",
		runID, cutover.StepPlan, cutover.OutRollback)
	rec, err := cutover.ParseRecord(raw)
	if err != nil {
		x.leave(PartCutover, what, err, fix)
		return "", nil
	}
	if len(rec.Rows) == 0 {
		return "nothing to restore: the cutover had no rows", nil
	}
	what = fmt.Sprintf("%s (%d row(s) of Route 53 records, CloudFront origins and API Gateway integrations)", what, len(rec.Rows))
	if x.t.opts.Cutover == nil {
		x.leave(PartCutover, what, errors.New("teardown was built without the cutover rollback (a wiring bug)"), fix)
		return "", nil
	}
	rep, err := x.t.opts.Cutover.Rollback(ctx, runID, raw, func(line string) { x.sc.Progress("%s", line) })
	if err != nil {
		x.leave(PartCutover, what, err, fix)
		return "", nil
	}
	return fmt.Sprintf("%d row(s) restored, %d already had their old value", rep.Restored, rep.Unchanged), nil
}

// applyStarted says whether endpoints.apply ever ran in this run: an apply
// that failed half-way (and was skipped) may have moved some rows.
func (x *attempt) applyStarted() (bool, error) {
	var rec state.StepRecord
	var ok bool
	err := x.sc.Store().View(func(tx *state.Tx) (err error) {
		rec, ok, err = tx.Step(x.sc.Run().ID, cutover.StepApply)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("reading %s's journal: %w", cutover.StepApply, err)
	}
	return ok && rec.Attempt > 0, nil
}
