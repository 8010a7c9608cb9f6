package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Bot is the Socket Mode loop and what the commands and buttons do.
type Bot struct {
	cfg    *config.Config
	api    *slack.Client
	eng    *recovery.Engine
	store  *state.Store
	policy *Policy
	log    *slog.Logger
	clock  func() time.Time

	sm       *socketmode.Client
	jobs     chan job
	workers  int
	onAck    func(time.Duration)
	drills   DrillControl
	rollback RollbackFunc
	wake     func()
	// readiness runs the readiness checks for /dr check (SetReadiness).
	readiness ReadinessFunc

	connected atomic.Bool // Socket Mode is connected (for /readyz)
	// ctx is drbot's lifetime, for work that outlives a click (a rollback);
	// set by Run while the admin socket may already be taking actions.
	ctx atomic.Pointer[context.Context]
}

// lifetime is drbot's lifetime once Run started.
func (b *Bot) lifetime() context.Context {
	if ctx := b.ctx.Load(); ctx != nil {
		return *ctx
	}
	return context.Background()
}

// Connected reports whether the Socket Mode connection is up.
func (b *Bot) Connected() bool { return b.connected.Load() }

type job struct {
	name string
	fn   func(ctx context.Context)
}

// Options tune the bot.
type Options struct {
	Workers   int // bounded worker pool for commands and clicks (default 8)
	QueueSize int // work waiting for a worker (default 256)
	Logger    *slog.Logger
	Clock     func() time.Time
	// SocketOptions are passed to socketmode.New (tests shorten the ping interval).
	SocketOptions []socketmode.Option
	// OnAck, when set, is told how long each acknowledgement took (metrics).
	OnAck func(time.Duration)
}

// New wires a bot. The engine should use policy.Authorizer() so decisions
// from elsewhere are checked the same way.
func New(cfg *config.Config, api *slack.Client, eng *recovery.Engine, store *state.Store, policy *Policy, opts Options) *Bot {
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Bot{
		cfg: cfg, api: api, eng: eng, store: store, policy: policy, log: opts.Logger, clock: opts.Clock,
		sm: socketmode.New(api, opts.SocketOptions...), jobs: make(chan job, opts.QueueSize), workers: opts.Workers, onAck: opts.OnAck,
	}
}

// Run serves Socket Mode until ctx ends. The client reconnects by itself
// after Slack's refresh disconnects and network errors.
func (b *Bot) Run(ctx context.Context) error {
	b.ctx.Store(&ctx)
	for i := 0; i < b.workers; i++ {
		go b.worker(ctx)
	}
	errCh := make(chan error, 1)
	go func() { errCh <- b.sm.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errCh:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("socket mode stopped: %w", err)
		case evt := <-b.sm.Events:
			b.handle(evt)
		}
	}
}

func (b *Bot) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-b.jobs:
			func() {
				defer func() {
					if p := recover(); p != nil {
						b.log.Error("handler panicked", "job", j.name, "panic", p)
					}
				}()
				jctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				defer cancel()
				j.fn(jctx)
			}()
		}
	}
}

// handle acknowledges first, then hands the work to the pool: the ack
// never waits for a run, a Slack call or the disk.
func (b *Bot) handle(evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		b.log.Info("connecting to Slack")
	case socketmode.EventTypeConnected, socketmode.EventTypeHello:
		if !b.connected.Swap(true) {
			b.log.Info("connected to Slack")
		}
	case socketmode.EventTypeConnectionError, socketmode.EventTypeDisconnect:
		b.connected.Store(false)
		b.log.Warn("socket mode connection interrupted; reconnecting", "type", evt.Type)
	case socketmode.EventTypeInvalidAuth:
		b.log.Error("Slack rejected the app token (invalid_auth)")
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		b.ack(evt)
		if ok {
			b.dispatch("command", evt.Request, func(ctx context.Context) { b.onCommand(ctx, cmd) })
		}
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		b.ack(evt)
		if ok {
			b.dispatch("interaction", evt.Request, func(ctx context.Context) { b.onInteraction(ctx, cb) })
		}
	case socketmode.EventTypeEventsAPI:
		b.ack(evt)
	}
}

func (b *Bot) ack(evt socketmode.Event) {
	if evt.Request == nil {
		return
	}
	start := time.Now()
	if err := b.sm.Ack(*evt.Request); err != nil {
		b.log.Warn("acknowledging envelope", "envelope", evt.Request.EnvelopeID, "err", err)
		return
	}
	if b.onAck != nil {
		b.onAck(time.Since(start))
	}
}

// dispatch queues work once per envelope: a redelivered envelope (same
// envelope id, retry_attempt > 0) has been acked again but does nothing.
func (b *Bot) dispatch(name string, req *socketmode.Request, fn func(context.Context)) {
	j := job{name: name, fn: func(ctx context.Context) {
		if req != nil && req.EnvelopeID != "" {
			var first bool
			if err := b.store.Update(func(tx *state.Tx) (err error) {
				first, err = tx.FirstSeen("envelope/"+req.EnvelopeID, 24*time.Hour)
				return
			}); err != nil {
				b.log.Error("recording envelope", "err", err)
				return
			}
			if !first {
				b.log.Info("ignoring redelivered envelope", "envelope", req.EnvelopeID, "retry_attempt", req.RetryAttempt, "retry_reason", req.RetryReason)
				return
			}
		}
		fn(ctx)
	}}
	select {
	case b.jobs <- j:
	default:
		// The pool is saturated: queue from the side rather than hold up
		// the acks of the envelopes behind this one.
		go func() { b.jobs <- j }()
	}
}

// reply answers the person privately through the response_url.
func (b *Bot) reply(ctx context.Context, responseURL, text string) {
	if responseURL == "" {
		return
	}
	if err := slack.PostWebhookContext(ctx, responseURL, &slack.WebhookMessage{ResponseType: slack.ResponseTypeEphemeral, Text: text}); err != nil {
		b.log.Warn("replying through response_url", "err", err)
	}
}

// announce answers in the channel where the command was typed.
func (b *Bot) announce(ctx context.Context, responseURL, text string) {
	if err := slack.PostWebhookContext(ctx, responseURL, &slack.WebhookMessage{ResponseType: slack.ResponseTypeInChannel, Text: text}); err != nil {
		b.log.Warn("announcing through response_url", "err", err)
	}
}

func (b *Bot) audit(e state.AuditEntry) {
	if err := b.store.Update(func(tx *state.Tx) error { return tx.Audit(e) }); err != nil {
		b.log.Error("writing audit log", "err", err)
	}
}

func (b *Bot) onCommand(ctx context.Context, sc slack.SlashCommand) {
	cmd, err := ParseCommand(sc.Text)
	if err != nil {
		b.reply(ctx, sc.ResponseURL, ":warning: "+err.Error())
		return
	}
	log := b.log.With("user", sc.UserID, "command", cmd.Name)
	log.Info("slash command")
	switch cmd.Name {
	case "help":
		b.reply(ctx, sc.ResponseURL, HelpText())
	case "start":
		b.start(ctx, sc, cmd)
	case "status":
		b.reply(ctx, sc.ResponseURL, b.statusText(cmd.RunID))
	case "plan":
		b.reply(ctx, sc.ResponseURL, b.planText(cmd))
	case "abort":
		b.abort(ctx, sc, cmd)
	case "resume":
		b.resume(ctx, sc, cmd)
	case "history":
		b.reply(ctx, sc.ResponseURL, b.historyText())
	case "rollback":
		b.requestRollback(ctx, sc, cmd)
	case "override":
		b.override(ctx, sc, cmd)
	case "postmortem":
		b.postmortem(ctx, sc, cmd.RunID)
	case "check":
		b.check(ctx, sc, cmd)
	}
}

var channelUnsafe = regexp.MustCompile(`[^a-z0-9_-]+`)

// ChannelName is the incident channel's name: dr-<target>-<yyyymmdd-hhmm>
// (drill-… for drills), lowercase, only the characters Slack allows, at
// most 80 characters.
func ChannelName(prefix, target string, drill bool, at time.Time) string {
	if drill {
		prefix = "drill"
	}
	if prefix == "" {
		prefix = "dr"
	}
	stamp := at.UTC().Format("20060102-1504")
	t := strings.Trim(channelUnsafe.ReplaceAllString(strings.ToLower(target), "-"), "-")
	p := strings.Trim(channelUnsafe.ReplaceAllString(strings.ToLower(prefix), "-"), "-")
	if room := 80 - len(p) - len(stamp) - 2; len(t) > room {
		t = strings.TrimRight(t[:room], "-")
	}
	return p + "-" + t + "-" + stamp
}

func (b *Bot) pickTarget(name string, drill bool) (*config.Target, error) {
	if name != "" {
		t, ok := b.cfg.Target(name)
		if !ok {
			return nil, fmt.Errorf("there is no target %q; targets: %s", name, b.targetNames())
		}
		if t.DrillOnly && !drill {
			return nil, fmt.Errorf("target %q is for drills only; add --drill", name)
		}
		return t, nil
	}
	// Without a name: the only recovery target, or for a drill the only
	// drill-only target.
	var fits []*config.Target
	for i := range b.cfg.Targets {
		if b.cfg.Targets[i].DrillOnly == drill {
			fits = append(fits, &b.cfg.Targets[i])
		}
	}
	if len(fits) == 1 {
		return fits[0], nil
	}
	return nil, fmt.Errorf("say which target: %s", b.targetNames())
}

func (b *Bot) targetNames() string {
	names := make([]string, len(b.cfg.Targets))
	for i, t := range b.cfg.Targets {
		names[i] = "`" + t.Name + "`"
	}
	return strings.Join(names, ", ")
}

func (b *Bot) start(ctx context.Context, sc slack.SlashCommand, cmd Command) {
	if err := b.policy.CanStart(ctx, sc.UserID); err != nil {
		b.audit(state.AuditEntry{Actor: sc.UserID, Action: "run.start", Target: cmd.Target, Result: "denied", Detail: map[string]string{"why": err.Error()}})
		b.reply(ctx, sc.ResponseURL, ":no_entry: You may not start a recovery: "+err.Error())
		return
	}
	target, err := b.pickTarget(cmd.Target, cmd.Drill)
	if err != nil {
		b.reply(ctx, sc.ResponseURL, ":warning: "+err.Error()+"\nUsage: /dr start [target] [--drill] [--reason \"…\"]")
		return
	}
	if held, busy := b.activeRun(target.Name); busy {
		b.reply(ctx, sc.ResponseURL, busyText(held))
		return
	}
	if note := b.readinessStartNote(); note != "" {
		b.reply(ctx, sc.ResponseURL, note) // a ❌ warns: the recovery starts all the same
	}
	run, err := b.launch(ctx, target, cmd.Drill, sc.UserID, sc.UserName, cmd.Reason, sc.ChannelID, nil, "")
	var busyErr *recovery.BusyError
	switch {
	case errors.As(err, &busyErr):
		if held, ok := b.activeRun(target.Name); ok {
			b.reply(ctx, sc.ResponseURL, busyText(held))
		}
		return
	case err != nil:
		b.reply(ctx, sc.ResponseURL, ":x: "+err.Error())
		return
	}
	b.announce(ctx, sc.ResponseURL, fmt.Sprintf(":rotating_light: <@%s> started a %s of *%s*: follow it in <#%s>.", sc.UserID, strings.ToLower(modeWord(run.Mode)), target.Name, run.Slack.ChannelID))
}

// launch opens the incident channel and starts the run: channel, run,
// topic, purpose, invites.
func (b *Bot) launch(ctx context.Context, target *config.Target, drill bool, initiator, initiatorName, reason, origin string, extraInvites []string, drillName string) (state.Run, error) {
	mode := state.ModeRecovery
	if drill {
		mode = state.ModeDrill
	}
	name := ChannelName(b.cfg.Slack.IncidentChannelPrefix, target.Name, drill, b.clock())
	ch, err := b.ensureChannel(ctx, name)
	if err != nil {
		return state.Run{}, fmt.Errorf("could not create the incident channel #%s: %w", name, err)
	}
	run, err := b.eng.Start(recovery.StartRequest{Target: target.Name, Mode: mode, Initiator: initiator, Reason: reason,
		Slack: state.SlackRef{ChannelID: ch.ID, ChannelName: ch.Name, OriginID: origin}, Drill: drillName})
	if err != nil {
		return state.Run{}, err
	}
	if initiatorName == "" {
		initiatorName = initiator
	}
	b.setUpChannel(ctx, ch.ID, run, target, initiatorName, extraInvites)
	return run, nil
}

// setUpChannel gives a run's new channel its topic and purpose and invites
// the responders (best effort: a failure is logged, the run goes on).
func (b *Bot) setUpChannel(ctx context.Context, channelID string, run state.Run, target *config.Target, initiatorName string, extraInvites []string) {
	topic := fmt.Sprintf("%s of %s · run %s · started by @%s", modeWord(run.Mode), target.Name, run.ID, initiatorName)
	if err := retrySlack(ctx, func() error {
		_, err := b.api.SetTopicOfConversationContext(ctx, channelID, truncate(topic, 250))
		return err
	}); err != nil {
		b.log.Warn("setting channel topic", "err", err)
	}
	purpose := fmt.Sprintf("Recover %s (%s/%s) into %s in %s. Reason: %s", target.Name, target.Primary.Region, target.Primary.Cluster, target.DR.ClusterName, target.DR.Region, orDash(run.Reason))
	if err := retrySlack(ctx, func() error {
		_, err := b.api.SetPurposeOfConversationContext(ctx, channelID, truncate(purpose, 250))
		return err
	}); err != nil {
		b.log.Warn("setting channel purpose", "err", err)
	}
	invites := append([]string{run.Initiator}, b.cfg.Slack.Invite...)
	b.invite(ctx, channelID, append(invites, extraInvites...))
}

// StartDrill starts a scheduled (or Run now) drill: the drill-… channel,
// the on-point people invited, the first of them as initiator.
func (b *Bot) StartDrill(ctx context.Context, d config.Drill, by, reason string) (state.Run, error) {
	target, ok := b.cfg.Target(d.Target)
	if !ok {
		return state.Run{}, fmt.Errorf("drill %q names unknown target %q", d.Name, d.Target)
	}
	initiator := by
	if strings.HasPrefix(by, "drbot") && len(d.OnPoint) > 0 {
		initiator = d.OnPoint[0]
	}
	return b.launch(ctx, target, true, initiator, "", fmt.Sprintf("%s (drill %s)", reason, d.Name), "", d.OnPoint, d.Name)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func busyText(run state.Run) string {
	where := ""
	if run.Slack.ChannelID != "" {
		where = fmt.Sprintf(" in <#%s>", run.Slack.ChannelID)
	}
	return fmt.Sprintf(":hourglass: *%s* already has a run in progress: `%s`%s (%s, started by <@%s>).", run.Target, run.ID, where, run.Status, run.Initiator)
}

// activeRun returns the run holding target's lock.
func (b *Bot) activeRun(target string) (state.Run, bool) {
	var run state.Run
	var ok bool
	_ = b.store.View(func(tx *state.Tx) error {
		l, held, err := tx.Lock(target)
		if err != nil || !held {
			return err
		}
		run, ok, err = tx.Run(l.RunID)
		return err
	})
	return run, ok
}

// ensureChannel creates the channel, or finds it when the name is taken
// (a retried start in the same minute).
func (b *Bot) ensureChannel(ctx context.Context, name string) (*slack.Channel, error) {
	var ch *slack.Channel
	err := retrySlack(ctx, func() (err error) {
		ch, err = b.api.CreateConversationContext(ctx, slack.CreateConversationParams{ChannelName: name})
		return err
	})
	if err == nil {
		return ch, nil
	}
	if !strings.Contains(err.Error(), "name_taken") {
		return nil, err
	}
	cursor := ""
	for {
		var chans []slack.Channel
		var next string
		err := retrySlack(ctx, func() (err error) {
			chans, next, err = b.api.GetConversationsContext(ctx, &slack.GetConversationsParameters{Cursor: cursor, Limit: 200, Types: []string{"public_channel", "private_channel"}})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("looking up existing channel #%s: %w", name, err)
		}
		for i := range chans {
			if chans[i].Name == name {
				return &chans[i], nil
			}
		}
		if next == "" {
			return nil, fmt.Errorf("#%s is taken but not visible to drbot; archive or rename it", name)
		}
		cursor = next
	}
}

// invite adds people one by one, so one bad id does not keep the rest out.
func (b *Bot) invite(ctx context.Context, channelID string, ids []string) {
	seen := map[string]bool{}
	var users []string
	for _, id := range ids {
		if handle, ok := strings.CutPrefix(id, "@"); ok {
			// A user group by its handle (@platform-leads): its members.
			var members []string
			err := retrySlack(ctx, func() error {
				groups, err := b.api.GetUserGroupsContext(ctx, slack.GetUserGroupsOptionIncludeUsers(true))
				for _, g := range groups {
					if g.Handle == handle {
						members = g.Users
					}
				}
				return err
			})
			if err != nil || members == nil {
				b.log.Warn("inviting a user group by handle", "handle", id, "err", err, "found", members != nil)
			}
			users = append(users, members...)
			continue
		}
		if strings.HasPrefix(id, "S") && b.policy.groups != nil {
			members, err := b.policy.groupMembers(ctx, id)
			if err != nil {
				b.log.Warn("expanding user group for invites", "group", id, "err", err)
			}
			users = append(users, members...)
			continue
		}
		users = append(users, id)
	}
	for _, u := range users {
		if seen[u] || u == "" {
			continue
		}
		seen[u] = true
		err := retrySlack(ctx, func() error { _, err := b.api.InviteUsersToConversationContext(ctx, channelID, u); return err })
		if err != nil && !strings.Contains(err.Error(), "already_in_channel") {
			b.log.Warn("inviting responder", "user", u, "err", err)
		}
	}
}
