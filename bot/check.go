package bot

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery"
)

// ReadinessFunc runs the readiness checks (cmd/drbot wires the checks).
type ReadinessFunc = readiness.RunFunc

// SetReadiness connects /dr check to the checks.
func (b *Bot) SetReadiness(fn ReadinessFunc) { b.readiness = fn }

// check runs the read-only readiness checks now and shows the report to
// the user alone; the report is saved like a scheduled one.
func (b *Bot) check(ctx context.Context, sc slack.SlashCommand, cmd Command) {
	if b.readiness == nil {
		b.reply(ctx, sc.ResponseURL, ":warning: readiness checks are not enabled in this drbot")
		return
	}
	if err := b.policy.CanStart(ctx, sc.UserID); err != nil && !b.isReadinessOwner(sc.UserID) {
		b.reply(ctx, sc.ResponseURL, ":no_entry: You may not run the readiness checks: "+err.Error())
		return
	}
	targets := readiness.Targets(b.cfg)
	if cmd.Target != "" {
		t, ok := b.cfg.Target(cmd.Target)
		if !ok {
			b.reply(ctx, sc.ResponseURL, fmt.Sprintf(":warning: there is no target %q; targets: %s", cmd.Target, b.targetNames()))
			return
		}
		targets = []*config.Target{t}
	}
	b.reply(ctx, sc.ResponseURL, ":hourglass_flowing_sand: Running the readiness checks (read-only); the report follows.")
	// Leave the answer time within the worker's own deadline: a check that
	// hangs is cut off and reported, and the report still arrives.
	rctx, cancel := context.WithTimeout(ctx, readinessBudget)
	rep := b.readiness(rctx, targets, "slack:"+sc.UserID)
	cancel()
	saved, err := readiness.Save(b.store, rep)
	if err != nil {
		b.log.Error("saving the readiness report", "err", err)
	} else {
		rep = saved
	}
	blocks := ReadinessBlocks(rep, nil)
	msg := &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: rep.Headline(), Blocks: &slack.Blocks{BlockSet: blocks}}
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if err := slack.PostWebhookContext(pctx, sc.ResponseURL, msg); err != nil {
		b.log.Warn("replying with the readiness report", "err", err)
	}
}

// readinessBudget bounds /dr check's run, under the worker's 2 minutes.
const readinessBudget = 100 * time.Second

func (b *Bot) isReadinessOwner(user string) bool {
	for _, o := range b.cfg.Readiness.Owners {
		if o == user {
			return true
		}
	}
	return false
}

// readinessNote is the line /dr plan and /dr start add about the last
// readiness report ("" when there is none).
func (b *Bot) readinessNote() (string, bool) {
	rep, ok, err := readiness.Latest(b.store)
	if err != nil || !ok {
		return "", false
	}
	emoji := ":white_check_mark:"
	if rep.Failed() {
		emoji = ":warning:"
	}
	return emoji + " " + readiness.Summary(rep, b.clock()), rep.Failed()
}

// readinessStartNote is what /dr start tells the starter about the last
// readiness report ("" when there is none); when it found ❌ it is a
// warning, but it never blocks a recovery.
func (b *Bot) readinessStartNote() string {
	note, failed := b.readinessNote()
	if failed {
		note += " Starting anyway; `/dr check` shows the details."
	}
	return note
}

// readinessHistory is /dr history's readiness line: the last reports' scores.
func (b *Bot) readinessHistory() string {
	reps, err := readiness.List(b.store, 7)
	if err != nil || len(reps) == 0 {
		return ""
	}
	var parts []string
	for _, r := range reps {
		p, t := r.Score()
		parts = append(parts, fmt.Sprintf("%s %s %d/%d", r.At.UTC().Format("Jan 2 15:04"), statusOf(r).Emoji(), p, t))
	}
	last := reps[len(reps)-1]
	line := "*Readiness* (oldest first): " + strings.Join(parts, " · ")
	if len(last.Regressions) > 0 {
		line += fmt.Sprintf("\nLast check regressed: %s", resultLabels(last.Regressions))
	}
	return line
}

func statusOf(r readiness.Report) readiness.Status {
	switch {
	case r.Failed():
		return readiness.Fail
	case r.Count(readiness.Warn) > 0:
		return readiness.Warn
	}
	return readiness.Pass
}

func resultLabels(rs []readiness.Result) string {
	labels := make([]string, len(rs))
	for i, r := range rs {
		labels[i] = "`" + r.Label() + "`"
	}
	return strings.Join(labels, ", ")
}

// mention turns a user id, user-group id or @handle into a Slack mention.
func mention(ref string) string {
	switch {
	case strings.HasPrefix(ref, "S"):
		return "<!subteam^" + ref + ">"
	case strings.HasPrefix(ref, "@"):
		return ref
	}
	return "<@" + ref + ">"
}

// maxReadinessSections leaves room in Slack's 50 blocks for the header,
// the regressions, the passes and the overflow line.
const maxReadinessSections = 44

// ReadinessBlocks renders a report as one message: the score, the
// regressions with the owners mentioned, every failing and warning check
// with its evidence and fix, then the passes on one line.
func ReadinessBlocks(rep readiness.Report, owners []string) []slack.Block {
	blocks := []slack.Block{section("*" + rep.Headline() + "*")}
	if len(rep.Regressions) > 0 {
		text := ":rotating_light: *Regression* since the last check: " + resultLabels(rep.Regressions)
		if len(owners) > 0 {
			who := make([]string, len(owners))
			for i, o := range owners {
				who[i] = mention(o)
			}
			text += "\n" + strings.Join(who, " ") + ": this passed last time."
		}
		blocks = append(blocks, section(text))
	}
	var passes []string
	shown := 0
	for _, r := range rep.Results {
		if r.Status == readiness.Pass {
			passes = append(passes, r.Label())
			continue
		}
		if shown == maxReadinessSections {
			continue
		}
		shown++
		var sb strings.Builder
		fmt.Fprintf(&sb, "%s *%s* — %s", r.Status.Emoji(), r.Label(), r.Title)
		for _, e := range r.Evidence {
			sb.WriteString("\n• " + e)
		}
		if r.Fix != "" {
			sb.WriteString("\n*Fix:* " + r.Fix)
		}
		blocks = append(blocks, section(sb.String()))
	}
	if hidden := rep.Count(readiness.Fail) + rep.Count(readiness.Warn) - shown; hidden > 0 {
		blocks = append(blocks, contextLine(fmt.Sprintf("and %d more; `drbot check` prints every result", hidden)))
	}
	if len(passes) > 0 {
		blocks = append(blocks, contextLine(readiness.Pass.Emoji()+" "+strings.Join(passes, " · ")))
	}
	return blocks
}

// PostReadiness posts a scheduled readiness report (a readiness.EventReport
// from the outbox) in its channel. The poster's Notify hands these over.
func (p *Poster) PostReadiness(ctx context.Context, ev recovery.Event) (string, error) {
	rep, owners, err := readiness.DecodeEvent(ev)
	if err != nil {
		return "", err
	}
	ch, err := p.readinessChannel(ctx, ev.Fields["channel"])
	if err != nil {
		return "", p.mark(err)
	}
	ts, err := p.post(ctx, ch, "", ev.Key, slack.MsgOptionText(rep.Headline(), false), slack.MsgOptionBlocks(ReadinessBlocks(rep, owners)...))
	if err != nil {
		return "", p.mark(err)
	}
	p.suspect = false
	return ts, nil
}

// readinessChannel resolves the report's channel (an id or #name).
func (p *Poster) readinessChannel(ctx context.Context, ref string) (string, error) {
	if ref == "" || ref == p.announce {
		return p.announceChannel(ctx)
	}
	return p.channelID(ctx, ref, "readiness.channel")
}
