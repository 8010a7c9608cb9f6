package bot

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Drill buttons.
const (
	ActionDrillSkip     = "drbot.drill.skip"
	ActionDrillPostpone = "drbot.drill.postpone"
	ActionDrillRunNow   = "drbot.drill.runnow"
)

// DrillControl is what the drill buttons do (the drills scheduler).
type DrillControl interface {
	Skip(name string, startUnix int64, by string) error
	Postpone(name string, startUnix int64, by string, d time.Duration) error
	RunNow(ctx context.Context, name string, startUnix int64, by string) (state.Run, error)
}

// SetDrills connects the drill buttons to the scheduler.
func (b *Bot) SetDrills(d DrillControl) { b.drills = d }

func drillValue(ev recovery.Event) string { return ev.Fields["drill"] + "|" + ev.Fields["start_unix"] }

func parseDrillValue(v string) (string, int64, error) {
	name, unix, ok := strings.Cut(v, "|")
	n, err := strconv.ParseInt(unix, 10, 64)
	if !ok || err != nil || name == "" {
		return "", 0, fmt.Errorf("malformed drill button value %q", clip(v))
	}
	return name, n, nil
}

func drillWhen(ev recovery.Event) string {
	unix, _ := strconv.ParseInt(ev.Fields["start_unix"], 10, 64)
	fallback := time.Unix(unix, 0).UTC().Format("2006-01-02 15:04 UTC")
	return fmt.Sprintf("<!date^%d^{date_short_pretty} at {time}|%s>", unix, fallback)
}

func onPoint(ev recovery.Event) string {
	var who []string
	for _, u := range strings.Split(ev.Fields["on_point"], ",") {
		if u != "" {
			who = append(who, "<@"+u+">")
		}
	}
	if len(who) == 0 {
		return "nobody named"
	}
	return strings.Join(who, ", ")
}

// DrillBlocks renders a drill schedule event for the announce channel.
func DrillBlocks(ev recovery.Event) []slack.Block {
	name, target := ev.Fields["drill"], ev.Target
	switch ev.Kind {
	case recovery.EventDrillAnnounce:
		text := fmt.Sprintf(":calendar: *Drill %s* of `%s` starts %s (in %s). drbot will run the whole recovery runbook against the drill target in a `#drill-…` channel, then tear it down.\nExpected duration: %s · on point: %s",
			name, target, drillWhen(ev), ev.Fields["lead"], orDash(ev.Fields["expected"]), onPoint(ev))
		if ev.Fields["late"] == "true" {
			text += "\n:hourglass: This notice is late: drbot was down when it was due."
		}
		value := drillValue(ev)
		skip := slack.NewButtonBlockElement(ActionDrillSkip, value, plain("Skip this drill", maxButtonText))
		skip.Style = slack.StyleDanger
		postpone := slack.NewButtonBlockElement(ActionDrillPostpone, value, plain("Postpone 24h", maxButtonText))
		return []slack.Block{section(text), slack.NewActionBlock("drbot.drill", skip, postpone)}
	case recovery.EventDrillMissed:
		run := slack.NewButtonBlockElement(ActionDrillRunNow, drillValue(ev), plain("Run now", maxButtonText))
		run.Style = slack.StylePrimary
		return []slack.Block{section(fmt.Sprintf(":warning: *Drill %s* of `%s` was due %s while drbot was down. It was not started.", name, target, drillWhen(ev))),
			slack.NewActionBlock("drbot.drill", run)}
	case recovery.EventDrillSkipped:
		return []slack.Block{section(fmt.Sprintf(":fast_forward: *Drill %s* of %s was skipped by <@%s>.", name, drillWhen(ev), ev.Actor))}
	case recovery.EventDrillPostponed:
		return []slack.Block{section(fmt.Sprintf(":arrow_right_hook: *Drill %s* of %s was postponed to %s by <@%s>.", name, drillWhen(ev), ev.Fields["to"], ev.Actor))}
	}
	return nil
}

// canControlDrill: starters, admins and the drill's on-point people.
func (b *Bot) canControlDrill(ctx context.Context, user string, d config.Drill) error {
	if slices.Contains(d.OnPoint, user) {
		return nil
	}
	return b.policy.CanStart(ctx, user)
}

func (b *Bot) onDrillAction(ctx context.Context, cb slack.InteractionCallback, act *slack.BlockAction) {
	name, start, err := parseDrillValue(act.Value)
	if err != nil {
		b.reply(ctx, cb.ResponseURL, ":warning: "+err.Error())
		return
	}
	if b.drills == nil {
		b.reply(ctx, cb.ResponseURL, ":warning: drills are not enabled in this drbot")
		return
	}
	var drill config.Drill
	for _, d := range b.cfg.Drills {
		if d.Name == name {
			drill = d
		}
	}
	if drill.Name == "" {
		b.reply(ctx, cb.ResponseURL, fmt.Sprintf(":warning: there is no drill %q in the config any more", name))
		return
	}
	if err := b.canControlDrill(ctx, cb.User.ID, drill); err != nil {
		b.audit(state.AuditEntry{Actor: cb.User.ID, Action: act.ActionID, Target: drill.Target, Result: "denied", Detail: map[string]string{"drill": name, "why": err.Error()}})
		b.reply(ctx, cb.ResponseURL, ":no_entry: You may not change this drill: "+err.Error())
		return
	}
	switch act.ActionID {
	case ActionDrillSkip:
		err = b.drills.Skip(name, start, cb.User.ID)
	case ActionDrillPostpone:
		err = b.drills.Postpone(name, start, cb.User.ID, 24*time.Hour)
	case ActionDrillRunNow:
		var run state.Run
		run, err = b.drills.RunNow(ctx, name, start, cb.User.ID)
		if err == nil {
			b.reply(ctx, cb.ResponseURL, fmt.Sprintf("Started drill run `%s` in <#%s>.", run.ID, run.Slack.ChannelID))
		}
	}
	if err != nil {
		b.reply(ctx, cb.ResponseURL, ":warning: "+err.Error())
	}
}

// isDrillAction reports whether an action id is one of the drill buttons.
func isDrillAction(id string) bool {
	return id == ActionDrillSkip || id == ActionDrillPostpone || id == ActionDrillRunNow
}

var errNoAnnounceChannel = errors.New("slack.announce_channel is not set")
