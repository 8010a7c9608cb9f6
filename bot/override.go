package bot

import (
	"context"
	"fmt"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// OverrideKey is the decision that lets a run's cutover go ahead although
// a critical service is not Healthy.
func OverrideKey(runID string) string { return runID + "/override/critical-services" }

// CriticalOverride reads that decision: who overrode, and why.
func CriticalOverride(store *state.Store, runID string) (state.Decision, bool) {
	var d state.Decision
	var ok bool
	_ = store.View(func(tx *state.Tx) (err error) { d, ok, err = tx.Decision(OverrideKey(runID)); return })
	return d, ok
}

// override records the explicit, audited decision to cut over despite an
// unhealthy critical service. Cutover approvers only, and the two-person
// rule holds: the initiator cannot override their own run's safety rule.
func (b *Bot) override(ctx context.Context, sc slack.SlashCommand, cmd Command) {
	run, err := b.findRun(cmd.RunID)
	if err != nil {
		b.reply(ctx, sc.ResponseURL, ":warning: "+err.Error())
		return
	}
	if err := b.policy.CanDecide(ctx, run, recovery.Step{Gate: recovery.GateCutover}, recovery.DecideApprove, sc.UserID); err != nil {
		b.audit(state.AuditEntry{Actor: sc.UserID, Action: "cutover.override", RunID: run.ID, Target: run.Target, Result: "denied", Detail: map[string]string{"why": err.Error()}})
		b.reply(ctx, sc.ResponseURL, ":no_entry: You may not override the cutover's safety rule: "+err.Error())
		return
	}
	var standing state.Decision
	var won bool
	err = b.store.Update(func(tx *state.Tx) error {
		var err error
		standing, won, err = tx.Decide(state.Decision{Key: OverrideKey(run.ID), RunID: run.ID, StepID: "endpoints.plan", Kind: "override", By: sc.UserID, Reason: cmd.Reason})
		if err != nil || !won {
			return err
		}
		if err := tx.Audit(state.AuditEntry{Actor: sc.UserID, Action: "cutover.override", RunID: run.ID, Target: run.Target, Result: "recorded", Detail: map[string]string{"reason": cmd.Reason}}); err != nil {
			return err
		}
		return recovery.Enqueue(tx, recovery.Event{Key: OverrideKey(run.ID), Kind: recovery.EventDecision, RunID: run.ID, Target: run.Target, Mode: run.Mode,
			Phase: recovery.PhaseCutover, StepID: "endpoints.plan", Actor: sc.UserID, Time: b.clock(), Message: "override",
			Fields: map[string]string{"decision": "override the critical-service rule", "reason": cmd.Reason, "on": "run"}})
	})
	b.wakePoster()
	switch {
	case err != nil:
		b.reply(ctx, sc.ResponseURL, ":x: "+err.Error())
	case !won:
		b.reply(ctx, sc.ResponseURL, fmt.Sprintf("Already overridden by <@%s>: %s", standing.By, standing.Reason))
	default:
		b.reply(ctx, sc.ResponseURL, "Recorded: the cutover may go ahead despite unhealthy critical services. Press Retry on the refused cutover step.")
	}
}
