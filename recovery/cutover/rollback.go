package cutover

import (
	"context"
	"fmt"
)

// RollbackReport says what a rollback did.
type RollbackReport struct {
	Restored  int // rows moved back to their old value
	Unchanged int // rows that already had it
	// Route53Changes are the change ids by hosted zone.
	Route53Changes map[string]string
	Distributions  []string
	Deployments    []Deployment
}

// Rollback restores every old value of a run's rollback record (the
// "rollback" output of endpoints.plan, as journaled) with the same
// mechanics as apply — one Route 53 batch per zone, CloudFront with
// If-Match, API Gateway integrations and a new deployment per stage — then
// verifies them like endpoints.verify (INSYNC, Deployed, stages, values
// read back). progress receives one line per row and per wait; nil drops
// them. Running it twice is safe: rows already back are skipped.
func (c *Cutover) Rollback(ctx context.Context, runID, record string, progress func(line string)) (RollbackReport, error) {
	rec, err := ParseRecord(record)
	if err != nil {
		return RollbackReport{}, err
	}
	if rec.RunID != runID {
		return RollbackReport{}, fmt.Errorf("the rollback record belongs to run %s, not %s; pass the record of the run being rolled back", rec.RunID, runID)
	}
	say := func(format string, args ...any) {
		if progress != nil {
			progress(fmt.Sprintf(format, args...))
		}
	}
	cl, err := c.clients(ctx, rec.ELBRegion, rec.APIRegion)
	if err != nil {
		return RollbackReport{}, err
	}
	say("rolling back the cutover of %s (run %s): %d row(s)", rec.Target, runID, len(rec.Rows))
	a := &applier{c: c, cl: cl, rec: rec, back: true, marker: "drbot rollback " + runID, say: say}
	err = a.run(ctx)
	rep := RollbackReport{Route53Changes: a.st.Changes, Distributions: a.st.Distributions, Deployments: a.st.Deployments}
	rep.Restored, rep.Unchanged = a.st.counts()
	if err != nil {
		return rep, fmt.Errorf("rolling back run %s: %w", runID, err)
	}
	if err := c.verifyRecord(ctx, cl, rec, a.st, true, say); err != nil {
		return rep, fmt.Errorf("verifying the rollback of run %s: %w", runID, err)
	}
	say("rollback of run %s verified: %d row(s) restored, %d already had their old value", runID, rep.Restored, rep.Unchanged)
	return rep, nil
}
