package bot

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Break-glass: when Slack is unreachable, `drbot run … -as NAME` acts on
// runs through the serving drbot. Every action goes through the same
// policy, engine and rollback code as the Slack commands and buttons, as
// the Slack user the name maps to (config access.break_glass), and is
// audited with the operator's name and source "cli".

// Operator is a person acting outside Slack under a configured
// break-glass identity.
type Operator struct {
	Name   string // the access.break_glass key
	UserID string // the Slack user whose permissions apply
}

// viaCLI marks a decision made through the break-glass CLI. It leads the
// decision's reason, which the engine journals, audits and hands to the
// channel, so the mark reaches everything that shows the decision.
const viaCLI = "via break-glass CLI"

// Via is how the operator's decisions say where they came from.
func (o Operator) Via() string { return fmt.Sprintf("%s (%s)", viaCLI, o.Name) }

// mark prefixes a reason with the operator's Via.
func (o Operator) mark(reason string) string {
	if reason == "" {
		return o.Via()
	}
	return o.Via() + ": " + reason
}

// splitVia separates the break-glass mark from a decision's reason.
func splitVia(reason string) (via, rest string) {
	if !strings.HasPrefix(reason, viaCLI+" (") {
		return "", reason
	}
	end := strings.Index(reason, ")") // operator names are [a-z0-9-]
	if end < 0 {
		return "", reason
	}
	return reason[:end+1], strings.TrimPrefix(reason[end+1:], ": ")
}

func viaSuffix(via string) string {
	if via == "" {
		return ""
	}
	return " " + via
}

func viaDetail(via string) map[string]string {
	if via == "" {
		return nil
	}
	return map[string]string{"via": via}
}

// ErrUnknownOperator is a -as NAME that access.break_glass does not list.
var ErrUnknownOperator = errors.New("unknown break-glass operator")

// Operator resolves a break-glass name to the Slack user it acts as.
func (b *Bot) Operator(name string) (Operator, error) {
	id, ok := b.cfg.Access.BreakGlass[name]
	if ok && name != "" {
		return Operator{Name: name, UserID: id}, nil
	}
	names := slices.Sorted(maps.Keys(b.cfg.Access.BreakGlass))
	if len(names) == 0 {
		return Operator{}, fmt.Errorf("%w %q: access.break_glass lists no operators, so the CLI cannot act", ErrUnknownOperator, name)
	}
	return Operator{}, fmt.Errorf("%w %q; access.break_glass lists: %s", ErrUnknownOperator, name, strings.Join(names, ", "))
}

// BreakGlassRequest is one `drbot run` action.
type BreakGlassRequest struct {
	As     string // the operator's access.break_glass name
	Action string // start, status, approve, reject, retry, skip, abort, rollback
	Target string // start: the target (default: the only one that fits)
	Drill  bool   // start: a drill
	RunID  string // default: the one run in progress (rollback: the latest run)
	StepID string // approve, reject, retry, skip: default the one step waiting or failed
	Reason string // required for reject, abort and a rollback request
	// Confirm, for rollback, is "approve" or "reject" of the latest
	// rollback request; empty asks for a rollback.
	Confirm string
}

// BreakGlassActions are the actions BreakGlass takes.
var BreakGlassActions = []string{"start", "status", "approve", "reject", "retry", "skip", "abort", "rollback"}

// outcome is what an action did, for the operator and the audit log.
type outcome struct {
	text, run, target, step string
	err                     error
}

// BreakGlass carries out one action for a break-glass operator and audits
// it. The text is for the operator; an error means nothing was done.
func (b *Bot) BreakGlass(ctx context.Context, req BreakGlassRequest) (string, error) {
	op, err := b.Operator(req.As)
	if err != nil {
		b.audit(state.AuditEntry{Actor: "unknown", Action: "breakglass." + req.Action, RunID: req.RunID, Result: "denied",
			Detail: map[string]string{"operator": req.As, "source": "cli", "why": err.Error()}})
		return "", err
	}
	if req.Action == "status" {
		return b.statusText(req.RunID), nil // read-only, like /dr status: not audited
	}
	o := b.breakGlass(ctx, op, req)
	detail := map[string]string{"operator": op.Name, "source": "cli"}
	if req.Reason != "" {
		detail["reason"] = req.Reason
	}
	if req.Confirm != "" {
		detail["confirm"] = req.Confirm
	}
	result := "done"
	if o.err != nil {
		result = "refused"
		detail["why"] = o.err.Error()
	}
	b.audit(state.AuditEntry{Actor: op.UserID, Action: "breakglass." + req.Action, RunID: o.run, Target: o.target, Step: o.step, Result: result, Detail: detail})
	return o.text, o.err
}

func (b *Bot) breakGlass(ctx context.Context, op Operator, req BreakGlassRequest) outcome {
	switch req.Action {
	case "start":
		return b.breakGlassStart(ctx, op, req)
	case "approve":
		return b.breakGlassDecide(op, req, recovery.DecideApprove)
	case "reject":
		return b.breakGlassDecide(op, req, recovery.DecideReject)
	case "retry":
		return b.breakGlassDecide(op, req, recovery.DecideRetry)
	case "skip":
		return b.breakGlassDecide(op, req, recovery.DecideSkip)
	case "abort":
		return b.breakGlassDecide(op, req, recovery.DecideAbort)
	case "rollback":
		return b.breakGlassRollback(ctx, op, req)
	}
	return outcome{err: fmt.Errorf("unknown action %q; want one of %s", clip(req.Action), strings.Join(BreakGlassActions, ", "))}
}

// operatorKey remembers who started a run from the CLI, for the topic of
// the channel opened later.
func operatorKey(runID string) string { return "breakglass/" + runID + "/operator" }

// breakGlassStart starts a run as /dr start does, except that the
// incident channel is only named: the poster creates it with the run's
// first message, as soon as Slack answers (see OpenChannel).
func (b *Bot) breakGlassStart(ctx context.Context, op Operator, req BreakGlassRequest) outcome {
	o := outcome{target: req.Target}
	if err := b.policy.CanStart(ctx, op.UserID); err != nil {
		o.err = fmt.Errorf("you may not start a recovery: %w", err)
		return o
	}
	target, err := b.pickTarget(req.Target, req.Drill)
	if err != nil {
		o.err = err
		return o
	}
	o.target = target.Name
	if held, busy := b.activeRun(target.Name); busy {
		o.run, o.err = held.ID, errors.New(busyText(held))
		return o
	}
	mode := state.ModeRecovery
	if req.Drill {
		mode = state.ModeDrill
	}
	name := ChannelName(b.cfg.Slack.IncidentChannelPrefix, target.Name, req.Drill, b.clock())
	run, err := b.eng.Start(recovery.StartRequest{Target: target.Name, Mode: mode, Initiator: op.UserID, Reason: req.Reason,
		Slack: state.SlackRef{ChannelName: name}})
	if err != nil {
		o.err = err
		return o
	}
	o.run = run.ID
	if err := b.store.Update(func(tx *state.Tx) error { return tx.PutKV(operatorKey(run.ID), op.Name) }); err != nil {
		b.log.Warn("recording the break-glass operator of a run", "run_id", run.ID, "err", err)
	}
	o.text = fmt.Sprintf("Started the %s of %s: run `%s`, as <@%s> %s.\nIts channel #%s is created as soon as drbot reaches Slack; the messages wait in the outbox until then.",
		modeWord(mode), target.Name, run.ID, op.UserID, op.Via(), name)
	return o
}

// breakGlassDecide takes a decision through the engine, which checks the
// same policy as for a click (approvers per gate, the two-person rule…).
func (b *Bot) breakGlassDecide(op Operator, req BreakGlassRequest, kind recovery.DecisionKind) outcome {
	run, err := b.findRun(req.RunID)
	if err != nil {
		return outcome{run: req.RunID, err: err}
	}
	o := outcome{run: run.ID, target: run.Target, step: req.StepID}
	if (kind == recovery.DecideReject || kind == recovery.DecideAbort) && req.Reason == "" {
		o.err = fmt.Errorf("%s needs -reason \"…\" (it goes into the audit log and the post-mortem)", kind)
		return o
	}
	if o.step == "" && kind != recovery.DecideAbort {
		if o.step, err = b.soleStep(run.ID, kind); err != nil {
			o.err = err
			return o
		}
	}
	res, err := b.eng.Decide(recovery.DecisionRequest{RunID: run.ID, StepID: o.step, Kind: kind, By: op.UserID, Reason: op.mark(req.Reason)})
	if err == nil && res.Applied {
		what := "run"
		if o.step != "" {
			what = "`" + o.step + "`"
		}
		o.text = fmt.Sprintf("Recorded: %s of %s in run `%s`, by <@%s> %s.", kind, what, run.ID, op.UserID, op.Via())
		return o
	}
	o.err = errors.New(decisionReply(res, err, string(kind)))
	return o
}

// soleStep is the one step a decision can be about: the step waiting at
// a gate (approve, reject) or the failed step (retry, skip).
func (b *Bot) soleStep(runID string, kind recovery.DecisionKind) (string, error) {
	want, what := state.StepFailed, "has failed"
	if kind == recovery.DecideApprove || kind == recovery.DecideReject {
		want, what = state.StepWaiting, "is waiting at a gate"
	}
	var recs map[string]state.StepRecord
	if err := b.store.View(func(tx *state.Tx) (err error) { recs, err = tx.Steps(runID); return }); err != nil {
		return "", err
	}
	var ids []string
	for id, rec := range recs {
		if rec.Status == want {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("no step of run `%s` %s", runID, what)
	case 1:
		return ids[0], nil
	default:
		return "", fmt.Errorf("several steps of run `%s` %s; name one with -step: %s", runID, what, strings.Join(ids, ", "))
	}
}

// breakGlassRollback asks for a rollback, or confirms or refuses the
// latest request, with the rules of /dr rollback and its buttons.
func (b *Bot) breakGlassRollback(ctx context.Context, op Operator, req BreakGlassRequest) outcome {
	run, err := b.findLatest(req.RunID)
	if err != nil {
		return outcome{run: req.RunID, err: err}
	}
	o := outcome{run: run.ID, target: run.Target, step: "rollback"}
	switch req.Confirm {
	case "":
		if req.Reason == "" {
			o.err = errors.New("rollback needs -reason \"…\" (it goes into the audit log and the post-mortem)")
			return o
		}
		text, ok := b.rollbackRequest(ctx, op.UserID, run.ID, op.mark(req.Reason))
		if !ok {
			o.err = errors.New(text)
			return o
		}
		o.text = text
		b.wakePoster()
		return o
	case "approve", "reject":
		var n int
		_ = b.store.View(func(tx *state.Tx) error {
			v, _ := tx.KV("rollback/" + run.ID + "/requests")
			n, _ = strconv.Atoi(v)
			return nil
		})
		if n == 0 {
			o.err = fmt.Errorf("nobody has asked to roll back run `%s`", run.ID)
			return o
		}
		if text := b.rollbackDecision(ctx, op.UserID, ButtonValue{RunID: run.ID, StepID: "rollback", Round: n}, req.Confirm == "approve", op.Via()); text != "" {
			o.err = errors.New(text)
			return o
		}
		o.text = fmt.Sprintf("Recorded: rollback request %d of run `%s` %sd by <@%s> %s.", n, run.ID, req.Confirm, op.UserID, op.Via())
		return o
	}
	o.err = fmt.Errorf("-confirm wants approve or reject, not %q", clip(req.Confirm))
	return o
}

// channelRef is the message ref holding the channel the poster opened for
// a run started while Slack was unreachable.
const channelRef = "channel"

// SetChannelOpener lets the poster create the channel of a run that was
// started without one (Bot.OpenChannel).
func (p *Poster) SetChannelOpener(f func(ctx context.Context, run state.Run) (string, error)) {
	p.openChannel = f
}

// channelOf is the channel a run talks in: the one it started with, or
// the one opened for it later, opened now if need be.
func (p *Poster) channelOf(ctx context.Context, run state.Run, refs map[string]string) (string, error) {
	if run.Slack.ChannelID != "" {
		return run.Slack.ChannelID, nil
	}
	if ch := refs[channelRef]; ch != "" {
		// The engine rewrites the run from its own copy when the status
		// changes: put the channel back for the readers of the run.
		return ch, p.store.Update(func(tx *state.Tx) error { return recordChannel(tx, run.ID, ch) })
	}
	if run.Slack.ChannelName == "" || p.openChannel == nil {
		return "", nil
	}
	return p.openChannel(ctx, run)
}

func recordChannel(tx *state.Tx, runID, channelID string) error {
	if err := tx.PutMessageRef(runID, channelRef, channelID); err != nil {
		return err
	}
	run, ok, err := tx.Run(runID)
	if err != nil || !ok || run.Slack.ChannelID != "" {
		return err
	}
	run.Slack.ChannelID = channelID
	return tx.PutRun(run)
}

// OpenChannel creates the incident channel of a run started while Slack
// was unreachable, as /dr start would have: topic, purpose, invites. It
// is safe to repeat (a taken name is the channel made by an earlier try).
func (b *Bot) OpenChannel(ctx context.Context, run state.Run) (string, error) {
	ch, err := b.ensureChannel(ctx, run.Slack.ChannelName)
	if err != nil {
		err = fmt.Errorf("creating the incident channel #%s of run %s: %w", run.Slack.ChannelName, run.ID, err)
		if ctx.Err() != nil {
			return "", err
		}
		return "", slackFailure(err)
	}
	if target, ok := b.cfg.Target(run.Target); ok {
		var name string
		_ = b.store.View(func(tx *state.Tx) error { name, _ = tx.KV(operatorKey(run.ID)); return nil })
		if name == "" { // the channel opened before the name was recorded
			name = run.Initiator
		}
		b.setUpChannel(ctx, ch.ID, run, target, name+" "+viaCLI, nil)
	}
	if err := b.store.Update(func(tx *state.Tx) error { return recordChannel(tx, run.ID, ch.ID) }); err != nil {
		return "", err
	}
	b.log.Info("opened the incident channel of a run started without Slack", "run_id", run.ID, "channel", ch.ID)
	return ch.ID, nil
}

// KeepWarm expands the user groups named in config.access now and then
// every interval until ctx ends, so that when Slack becomes unreachable the
// policy still knows their members (see groupMembers) and break-glass
// operators who are approvers through a group can act.
func (p *Policy) KeepWarm(ctx context.Context, every time.Duration) {
	if p.groups == nil {
		return
	}
	ids := map[string]bool{}
	lists := [][]string{p.access.Starters, p.access.Admins}
	for _, l := range p.access.Approvers {
		lists = append(lists, l)
	}
	for _, l := range lists {
		for _, id := range l {
			if strings.HasPrefix(id, "S") {
				ids[id] = true
			}
		}
	}
	if len(ids) == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for id := range ids {
			if members, err := p.groups.GroupMembers(ctx, id); err == nil {
				p.mu.Lock()
				p.cache[id] = cachedGroup{members: members, at: time.Now()}
				p.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
