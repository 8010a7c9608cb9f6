package bot

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/drills"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/postmortem"
	"github.com/drbot/drbot/state"
)

func (b *Bot) runs() []state.Run {
	var runs []state.Run
	_ = b.store.View(func(tx *state.Tx) (err error) { runs, err = tx.Runs(); return })
	return runs
}

// findRun resolves a run id, or the single unfinished run when id is empty.
func (b *Bot) findRun(id string) (state.Run, error) {
	var active []state.Run
	for _, r := range b.runs() {
		if id != "" && r.ID == id {
			return r, nil
		}
		if !r.Status.Finished() {
			active = append(active, r)
		}
	}
	if id != "" {
		return state.Run{}, fmt.Errorf("there is no run `%s`; `/dr history` lists them", id)
	}
	switch len(active) {
	case 0:
		return state.Run{}, errors.New("no run is in progress; name one (`/dr history` lists them)")
	case 1:
		return active[0], nil
	default:
		ids := make([]string, len(active))
		for i, r := range active {
			ids[i] = "`" + r.ID + "`"
		}
		return state.Run{}, fmt.Errorf("several runs are in progress, say which: %s", strings.Join(ids, ", "))
	}
}

func (b *Bot) statusText(id string) string {
	var runs []state.Run
	if id != "" {
		r, err := b.findRun(id)
		if err != nil {
			return ":warning: " + err.Error()
		}
		runs = []state.Run{r}
	} else {
		for _, r := range b.runs() {
			if !r.Status.Finished() {
				runs = append(runs, r)
			}
		}
	}
	if len(runs) == 0 {
		return "No run is in progress. `/dr history` lists past runs."
	}
	var out []string
	for _, r := range runs {
		var recs map[string]state.StepRecord
		_ = b.store.View(func(tx *state.Tx) (err error) { recs, err = tx.Steps(r.ID); return })
		counts := map[state.StepStatus]int{}
		var waiting, failed []string
		for id, rec := range recs {
			counts[rec.Status]++
			switch rec.Status {
			case state.StepWaiting:
				waiting = append(waiting, "`"+id+"`")
			case state.StepFailed:
				failed = append(failed, "`"+id+"`")
			}
		}
		sort.Strings(waiting)
		sort.Strings(failed)
		total := len(b.eng.Runbook().ForMode(r.Mode).Steps())
		line := fmt.Sprintf("%s *%s* `%s` — %s, %d/%d steps done, %d running, elapsed %s",
			runEmoji[r.Status], r.Target, r.ID, r.Status, counts[state.StepSucceeded]+counts[state.StepSkipped], total, counts[state.StepRunning], recovery.ShortDuration(b.clock().Sub(r.StartedAt)))
		if len(waiting) > 0 {
			line += "\n  waiting for approval: " + strings.Join(waiting, ", ")
		}
		if len(failed) > 0 {
			line += "\n  failed, needs Retry/Skip/Abort: " + strings.Join(failed, ", ")
		}
		if r.Slack.ChannelID != "" {
			line += fmt.Sprintf("\n  channel: <#%s>", r.Slack.ChannelID)
		} else if r.Slack.ChannelName != "" {
			line += fmt.Sprintf("\n  channel: #%s, created when drbot reaches Slack", r.Slack.ChannelName)
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

func (b *Bot) planText(cmd Command) string {
	t, err := b.pickTarget(cmd.Target, cmd.Drill)
	if err != nil {
		return ":warning: " + err.Error()
	}
	mode := state.ModeRecovery
	if cmd.Drill {
		mode = state.ModeDrill
	}
	var sb strings.Builder
	header := fmt.Sprintf("Plan for a %s of %s: %s/%s → %s in %s (%s). Nothing is changed.",
		strings.ToLower(modeWord(mode)), t.Name, t.Primary.Region, t.Primary.Cluster, t.DR.ClusterName, t.DR.Region, t.Cluster.Provider)
	if err := recovery.WritePlan(&sb, header, b.eng.Runbook().ForMode(mode).Schedule(), b.cfg.MTTR.Budget.Std()); err != nil {
		return ":x: " + err.Error()
	}
	out := "```" + truncate(sb.String(), maxTextLen-10) + "```"
	if note, _ := b.readinessNote(); note != "" {
		out += "\n" + note
	}
	return out
}

func (b *Bot) historyText() string {
	scores, err := drills.Scores(b.store, b.eng.Runbook())
	if err != nil {
		return ":x: " + err.Error()
	}
	var active []string
	for _, r := range b.runs() {
		if !r.Status.Finished() {
			active = append(active, fmt.Sprintf("%s `%s` %s %s · %s · by <@%s>", runEmoji[r.Status], r.ID, strings.ToLower(modeWord(r.Mode)), r.Target, r.Status, r.Initiator))
		}
	}
	ready := b.readinessHistory()
	if len(scores) == 0 && len(active) == 0 {
		if ready != "" {
			return "No runs yet.\n" + ready
		}
		return "No runs yet."
	}
	if len(scores) > 10 {
		scores = scores[len(scores)-10:]
	}
	var sb strings.Builder
	if err := drills.WriteHistory(&sb, scores, b.cfg.MTTR.Budget.Std()); err != nil {
		return ":x: " + err.Error()
	}
	out := "*Last runs* — time to recover against the " + recovery.ShortDuration(b.cfg.MTTR.Budget.Std()) + " budget:\n```" + truncate(sb.String(), maxTextLen-400) + "```"
	if len(active) > 0 {
		out += "\nIn progress:\n" + strings.Join(active, "\n")
	}
	if ready != "" {
		out += "\n" + ready
	}
	return out
}

// postmortem writes the run's post-mortem from the journal, uploads it to
// the run's post-mortem log thread, and answers with its summary.
func (b *Bot) postmortem(ctx context.Context, sc slack.SlashCommand, id string) {
	if err := b.policy.CanStart(ctx, sc.UserID); err != nil {
		b.reply(ctx, sc.ResponseURL, ":no_entry: You may not post post-mortems: "+err.Error())
		return
	}
	run, err := b.findLatest(id)
	if err != nil {
		b.reply(ctx, sc.ResponseURL, ":warning: "+err.Error())
		return
	}
	in, err := postmortem.Load(b.store, b.eng.Runbook(), run.ID)
	if err != nil {
		b.reply(ctx, sc.ResponseURL, ":x: "+err.Error())
		return
	}
	in.Budget = b.cfg.MTTR.Budget.Std()
	md := postmortem.Render(in)
	summary, _, _ := strings.Cut(md, "\n## Phases")
	var refs map[string]string
	_ = b.store.View(func(tx *state.Tx) (err error) { refs, err = tx.MessageRefs(run.ID); return })
	where := ""
	if run.Slack.ChannelID != "" && refs["log"] != "" {
		name := fmt.Sprintf("postmortem-%s.md", run.ID)
		err := retrySlack(ctx, func() error {
			_, err := b.api.UploadFileContext(ctx, slack.UploadFileParameters{Filename: name, Title: "Post-mortem " + run.ID, Content: md,
				FileSize: len(md), Channel: run.Slack.ChannelID, ThreadTimestamp: refs["log"], SnippetType: "markdown"})
			return err
		})
		if err != nil {
			b.log.Warn("uploading the post-mortem", "run_id", run.ID, "err", err)
		} else {
			where = fmt.Sprintf("\nThe full post-mortem is in the post-mortem log thread of <#%s>.", run.Slack.ChannelID)
		}
	}
	b.reply(ctx, sc.ResponseURL, truncate(summary, maxTextLen-200)+where)
}

func (b *Bot) findLatest(id string) (state.Run, error) {
	if id != "" {
		return b.findRun(id)
	}
	runs := b.runs()
	if len(runs) == 0 {
		return state.Run{}, errors.New("no runs yet")
	}
	return runs[len(runs)-1], nil
}

func (b *Bot) abort(ctx context.Context, sc slack.SlashCommand, cmd Command) {
	run, err := b.findRun(cmd.RunID)
	if err != nil {
		b.reply(ctx, sc.ResponseURL, ":warning: "+err.Error())
		return
	}
	res, err := b.eng.Decide(recovery.DecisionRequest{RunID: run.ID, Kind: recovery.DecideAbort, By: sc.UserID, Reason: cmd.Reason})
	b.reply(ctx, sc.ResponseURL, decisionReply(res, err, "abort"))
}

func (b *Bot) resume(ctx context.Context, sc slack.SlashCommand, cmd Command) {
	if err := b.policy.CanStart(ctx, sc.UserID); err != nil {
		b.reply(ctx, sc.ResponseURL, ":no_entry: You may not resume runs: "+err.Error())
		return
	}
	resumed, err := b.eng.Resume()
	if err != nil {
		b.reply(ctx, sc.ResponseURL, ":x: "+err.Error())
		return
	}
	b.audit(state.AuditEntry{Actor: sc.UserID, Action: "run.resume", RunID: cmd.RunID, Result: fmt.Sprintf("%d run(s) resumed", len(resumed))})
	if len(resumed) == 0 {
		b.reply(ctx, sc.ResponseURL, "Every unfinished run is already being driven; nothing to resume.")
		return
	}
	ids := make([]string, len(resumed))
	for i, r := range resumed {
		ids[i] = "`" + r.ID + "`"
	}
	b.reply(ctx, sc.ResponseURL, "Resumed "+strings.Join(ids, ", "))
}

// decisionReply tells the person what became of their decision.
func decisionReply(res recovery.DecisionResult, err error, kind string) string {
	switch {
	case errors.Is(err, recovery.ErrDenied):
		return ":no_entry: " + strings.TrimPrefix(err.Error(), recovery.ErrDenied.Error()+": ")
	case errors.Is(err, recovery.ErrStale):
		return ":hourglass: This button is out of date: " + err.Error()
	case err != nil:
		return ":warning: " + err.Error()
	case !res.Applied:
		return fmt.Sprintf("Already decided: %s by <@%s> at %s.", decidedWords[res.Decision.Kind], res.Decision.By, res.Decision.DecidedAt.UTC().Format("15:04 UTC"))
	default:
		return fmt.Sprintf("Recorded: %s.", kind)
	}
}

func (b *Bot) onInteraction(ctx context.Context, cb slack.InteractionCallback) {
	in, err := DecodeInteraction(cb)
	var unknown *UnknownActionError
	switch {
	case errors.Is(err, ErrNotForDrbot):
		return
	case errors.As(err, &unknown):
		b.log.Warn("unknown action", "action_id", unknown.ActionID)
		return
	case err != nil && cb.Type == slack.InteractionTypeViewSubmission:
		b.log.Warn("reject modal with a bad value", "err", err)
		return
	case err != nil:
		b.reply(ctx, cb.ResponseURL, ":warning: "+err.Error())
		return
	}
	switch in.Kind {
	case InteractionDrill:
		b.onDrillAction(ctx, cb, cb.ActionCallback.BlockActions[0])
	case InteractionRollback:
		b.decideRollback(ctx, cb, in.Value, in.Decision == recovery.DecideApprove)
	case InteractionRejectForm:
		if _, err := b.api.OpenViewContext(ctx, cb.TriggerID, RejectModal(in.Value)); err != nil {
			b.log.Warn("opening the reject modal", "err", err)
			b.reply(ctx, cb.ResponseURL, ":warning: Could not open the reason form: "+err.Error())
		}
	case InteractionDecide:
		b.decide(ctx, cb, in.Value, in.Decision, in.Reason)
	}
}

// decide records a click's decision through the engine, which checks the
// policy and the round; the person hears back privately only when nothing
// visible happens (refusal, stale button, someone was first).
func (b *Bot) decide(ctx context.Context, cb slack.InteractionCallback, v ButtonValue, kind recovery.DecisionKind, reason string) {
	req := recovery.DecisionRequest{RunID: v.RunID, StepID: v.StepID, Kind: kind, By: cb.User.ID, Reason: reason, Round: v.Round}
	if kind == recovery.DecideAbort {
		req.StepID, req.Round = "", 0
	}
	res, err := b.eng.Decide(req)
	if err != nil && !errors.Is(err, recovery.ErrDenied) && !errors.Is(err, recovery.ErrStale) && kind != recovery.DecideAbort {
		// The step moved on (a double click after the first decision was
		// applied): say who decided this round.
		if d, ok := b.decisionFor(v, kind); ok {
			res, err = recovery.DecisionResult{Decision: d}, nil
		}
	}
	if err == nil && res.Applied {
		b.log.Info("decision recorded", "run_id", v.RunID, "step", v.StepID, "decision", kind, "by", cb.User.ID)
		return
	}
	b.postPrivately(ctx, cb, decisionReply(res, err, string(kind)))
}

func (b *Bot) decisionFor(v ButtonValue, kind recovery.DecisionKind) (state.Decision, bool) {
	key := recovery.FailureKey(v.RunID, v.StepID, v.Round)
	if kind == recovery.DecideApprove || kind == recovery.DecideReject {
		key = recovery.GateKey(v.RunID, v.StepID, v.Round)
	}
	var d state.Decision
	var ok bool
	_ = b.store.View(func(tx *state.Tx) (err error) { d, ok, err = tx.Decision(key); return })
	return d, ok
}

// postPrivately answers a click: through its response_url, or as an
// ephemeral message for modal submissions, which have none.
func (b *Bot) postPrivately(ctx context.Context, cb slack.InteractionCallback, text string) {
	if cb.ResponseURL != "" {
		b.reply(ctx, cb.ResponseURL, text)
		return
	}
	var run state.Run
	_ = b.store.View(func(tx *state.Tx) (err error) {
		v, _ := ParseButtonValue(cb.View.PrivateMetadata)
		run, _, err = tx.Run(v.RunID)
		return err
	})
	if run.Slack.ChannelID == "" {
		return
	}
	if _, err := b.api.PostEphemeralContext(ctx, run.Slack.ChannelID, cb.User.ID, slack.MsgOptionText(text, false)); err != nil {
		b.log.Warn("posting ephemeral reply", "err", err)
	}
}
