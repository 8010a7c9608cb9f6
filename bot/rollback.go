package bot

import (
	"context"
	"fmt"
	"strconv"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Rollback buttons.
const (
	ActionRollbackApprove = "drbot.rollback.approve"
	ActionRollbackReject  = "drbot.rollback.reject"
)

// Rollback kinds of event; they reach the post-mortem log like every event.
const (
	EventRollbackRequested recovery.EventKind = "rollback.requested"
	EventRollbackProgress  recovery.EventKind = "rollback.progress"
	EventRollbackDone      recovery.EventKind = "rollback.finished"
	EventRollbackFailed    recovery.EventKind = "rollback.failed"
	EventRollbackRejected  recovery.EventKind = "rollback.rejected"
)

// RollbackFunc restores a run's journaled pre-cutover values, reporting
// progress lines (the cutover integration).
type RollbackFunc func(ctx context.Context, runID, record string, progress func(line string)) error

// SetRollback connects /dr rollback to the cutover integration.
func (b *Bot) SetRollback(f RollbackFunc) { b.rollback = f }

// rollbackRecordStep and key are where endpoints.plan journals the old values.
const (
	rollbackRecordStep = "endpoints.plan"
	rollbackRecordKey  = "rollback"
)

func (b *Bot) enqueue(evs ...recovery.Event) error {
	return b.store.Update(func(tx *state.Tx) error { return recovery.Enqueue(tx, evs...) })
}

// requestRollback asks, in the run's channel, for a cutover approver other
// than the requester to confirm the rollback (the same rules as the
// cutover gate).
func (b *Bot) requestRollback(ctx context.Context, sc slack.SlashCommand, cmd Command) {
	text, _ := b.rollbackRequest(ctx, sc.UserID, cmd.RunID, cmd.Reason)
	b.reply(ctx, sc.ResponseURL, text)
}

// rollbackRequest records user's request to roll a run back; text answers
// them, ok says whether the request was recorded.
func (b *Bot) rollbackRequest(ctx context.Context, user, runID, reason string) (text string, ok bool) {
	if b.rollback == nil {
		return ":warning: rollback is not available in this drbot (the cutover integration is not wired)", false
	}
	run, err := b.findLatest(runID)
	if err != nil {
		return ":warning: " + err.Error(), false
	}
	var rec state.StepRecord
	_ = b.store.View(func(tx *state.Tx) (err error) { rec, _, err = tx.Step(run.ID, rollbackRecordStep); return })
	if rec.Outputs[rollbackRecordKey] == "" {
		return fmt.Sprintf(":warning: run `%s` has no rollback record: its cutover was never planned, so nothing was changed.", run.ID), false
	}
	var apply state.StepRecord
	_ = b.store.View(func(tx *state.Tx) (err error) { apply, _, err = tx.Step(run.ID, "endpoints.apply"); return })
	if apply.Status == state.StepRunning {
		return fmt.Sprintf(":hourglass: the cutover of `%s` is being applied right now; abort the run or wait for the step to end, then roll back.", run.ID), false
	}
	if err := b.policy.CanStart(ctx, user); err != nil {
		if err2 := b.policy.CanDecide(ctx, run, recovery.Step{Gate: recovery.GateCutover}, recovery.DecideReject, user); err2 != nil {
			b.audit(state.AuditEntry{Actor: user, Action: "rollback.request", RunID: run.ID, Target: run.Target, Result: "denied", Detail: map[string]string{"why": err.Error()}})
			return ":no_entry: You may not request a rollback: " + err.Error(), false
		}
	}
	var n int
	err = b.store.Update(func(tx *state.Tx) error {
		key := "rollback/" + run.ID + "/requests"
		v, _ := tx.KV(key)
		n, _ = strconv.Atoi(v)
		n++
		if err := tx.PutKV(key, strconv.Itoa(n)); err != nil {
			return err
		}
		if err := tx.PutKV(fmt.Sprintf("rollback/%s/%d/by", run.ID, n), user); err != nil {
			return err
		}
		if err := tx.Audit(state.AuditEntry{Actor: user, Action: "rollback.request", RunID: run.ID, Target: run.Target, Result: "recorded", Detail: map[string]string{"reason": reason}}); err != nil {
			return err
		}
		return recovery.Enqueue(tx, recovery.Event{Key: fmt.Sprintf("%s/rollback/%d/requested", run.ID, n), Kind: EventRollbackRequested, RunID: run.ID, Target: run.Target,
			Mode: run.Mode, Phase: recovery.PhaseCutover, Actor: user, Round: n, Time: b.clock(), Message: reason,
			Fields: map[string]string{"reason": reason, "table": rollbackTable(rec.Outputs["table"])}})
	})
	if err != nil {
		return ":x: " + err.Error(), false
	}
	return fmt.Sprintf("Rollback of `%s` requested: a cutover approver other than you must confirm it in <#%s>.", run.ID, run.Slack.ChannelID), true
}

// rollbackTable turns the plan's "current → new" table around for people.
func rollbackTable(table string) string {
	return truncate(table, 2000)
}

// RollbackBlocks asks for confirmation of a rollback (or says who decided).
func RollbackBlocks(ev recovery.Event, decided *state.Decision) []slack.Block {
	text := fmt.Sprintf(":rewind: *Rollback requested* by <@%s>: %s\nEvery Route 53 record, CloudFront origin and API Gateway integration goes back to its value before the cutover. A cutover approver other than the requester must confirm.", ev.Actor, ev.Fields["reason"])
	blocks := []slack.Block{section(text)}
	if t := ev.Fields["table"]; t != "" {
		blocks = append(blocks, section("What the cutover changed (it is undone):\n```"+t+"```"))
	}
	if decided != nil {
		return append(blocks, contextLine(decidedLine(*decided)))
	}
	value := ButtonValue{RunID: ev.RunID, StepID: "rollback", Round: ev.Round}.String()
	ok := slack.NewButtonBlockElement(ActionRollbackApprove, value, plain("Roll back", maxButtonText))
	ok.Style = slack.StyleDanger
	no := slack.NewButtonBlockElement(ActionRollbackReject, value, plain("Keep the cutover", maxButtonText))
	return append(blocks, slack.NewActionBlock("drbot.rollback", ok, no))
}

func rollbackKey(runID string, n int) string { return fmt.Sprintf("%s/rollback/%d", runID, n) }

// decideRollback records the first decision on a rollback request and, on
// approval, runs it, reporting through the outbox.
func (b *Bot) decideRollback(ctx context.Context, cb slack.InteractionCallback, v ButtonValue, approve bool) {
	if text := b.rollbackDecision(ctx, cb.User.ID, v, approve, ""); text != "" {
		b.reply(ctx, cb.ResponseURL, text)
	}
}

// rollbackDecision records user's decision on rollback request v.Round
// (via says how it was made, when not in Slack). It answers "" when the
// decision was recorded, else why not.
func (b *Bot) rollbackDecision(ctx context.Context, user string, v ButtonValue, approve bool, via string) string {
	var run state.Run
	var rec state.StepRecord
	_ = b.store.View(func(tx *state.Tx) error {
		run, _, _ = tx.Run(v.RunID)
		rec, _, _ = tx.Step(v.RunID, rollbackRecordStep)
		return nil
	})
	kind := recovery.DecideReject
	if approve {
		kind = recovery.DecideApprove
	}
	if err := b.policy.CanDecide(ctx, run, recovery.Step{Gate: recovery.GateCutover}, kind, user); err != nil {
		b.audit(state.AuditEntry{Actor: user, Action: "rollback." + string(kind), RunID: run.ID, Target: run.Target, Result: "denied", Detail: map[string]string{"why": err.Error()}})
		return ":no_entry: " + err.Error()
	}
	var requester string
	_ = b.store.View(func(tx *state.Tx) error {
		requester, _ = tx.KV(fmt.Sprintf("rollback/%s/%d/by", run.ID, v.Round)) // the requester of this round
		return nil
	})
	if approve && user == requester && b.cfg.Access.TwoPersonRule {
		b.audit(state.AuditEntry{Actor: user, Action: "rollback.approve", RunID: run.ID, Target: run.Target, Result: "denied", Detail: map[string]string{"why": "two-person rule"}})
		return ":no_entry: two-person rule: you requested this rollback, so someone else must confirm it"
	}
	var won bool
	var standing state.Decision
	err := b.store.Update(func(tx *state.Tx) error {
		var err error
		standing, won, err = tx.Decide(state.Decision{Key: rollbackKey(run.ID, v.Round), RunID: run.ID, StepID: "rollback", Kind: string(kind), By: user, Reason: via})
		if err != nil || !won {
			return err
		}
		if err := tx.Audit(state.AuditEntry{Actor: user, Action: "rollback." + string(kind), RunID: run.ID, Target: run.Target, Result: "recorded", Detail: viaDetail(via)}); err != nil {
			return err
		}
		evKind := EventRollbackProgress
		by := "<@" + user + ">" + viaSuffix(via)
		msg := "rollback approved by " + by + "; restoring the values from before the cutover"
		if !approve {
			evKind, msg = EventRollbackRejected, "rollback rejected by "+by+"; the cutover stays"
		}
		return recovery.Enqueue(tx, recovery.Event{Key: rollbackKey(run.ID, v.Round) + "/decided", Kind: evKind, RunID: run.ID, Target: run.Target, Mode: run.Mode,
			Phase: recovery.PhaseCutover, Actor: user, Round: v.Round, Time: b.clock(), Message: msg, Fields: map[string]string{"on": "rollback"}})
	})
	b.wakePoster()
	switch {
	case err != nil:
		return ":x: " + err.Error()
	case !won:
		return fmt.Sprintf("Already decided: %s by <@%s>.", decidedWords[standing.Kind], standing.By)
	case !approve:
		return ""
	}
	seq := 0
	progress := func(line string) {
		seq++
		_ = b.enqueue(recovery.Event{Key: fmt.Sprintf("%s/progress/%d", rollbackKey(run.ID, v.Round), seq), Kind: EventRollbackProgress, RunID: run.ID, Target: run.Target,
			Mode: run.Mode, Phase: recovery.PhaseCutover, Time: b.clock(), Message: line})
		b.wakePoster()
	}
	// The rollback waits for Route 53 and CloudFront for many minutes: it
	// runs on drbot's own lifetime, not the click's.
	go b.runRollback(run, v, user, rec.Outputs[rollbackRecordKey], progress)
	return ""
}

func (b *Bot) runRollback(run state.Run, v ButtonValue, by, record string, progress func(string)) {
	rbErr := b.rollback(b.lifetime(), run.ID, record, progress)
	final := recovery.Event{Key: rollbackKey(run.ID, v.Round) + "/done", Kind: EventRollbackDone, RunID: run.ID, Target: run.Target, Mode: run.Mode,
		Phase: recovery.PhaseCutover, Time: b.clock(), Message: "rollback finished and verified: traffic goes where it went before the cutover"}
	result := "restored"
	if rbErr != nil {
		final.Kind, final.Message, final.Error, result = EventRollbackFailed, "rollback did not finish; run /dr rollback again once the cause is fixed (finished rows are skipped)", rbErr.Error(), "failed"
	}
	_ = b.store.Update(func(tx *state.Tx) error {
		if err := tx.Audit(state.AuditEntry{Actor: by, Action: "rollback.run", RunID: run.ID, Target: run.Target, Result: result}); err != nil {
			return err
		}
		return recovery.Enqueue(tx, final)
	})
	b.wakePoster()
}

// wakePoster nudges the outbox dispatcher, when the bot was given one.
func (b *Bot) wakePoster() {
	if b.wake != nil {
		b.wake()
	}
}

// SetWake gives the bot the dispatcher's wake-up for events it enqueues itself.
func (b *Bot) SetWake(f func()) { b.wake = f }
