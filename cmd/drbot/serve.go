package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/drills"
	"github.com/drbot/drbot/metrics"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/state/backup"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := configFlag(fs)
	listen := fs.String("listen", ":8080", `address of the health endpoints /healthz and /readyz ("" turns them off)`)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, book, err := loadConfig(*path)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	var live atomic.Pointer[state.Store] // set once serve has opened it
	book, rollback, err := wireActions(cfg, book, log, live.Load)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, book, log, serveOptions{rollback: rollback, onStore: live.Store, listen: *listen})
}

// serveOptions let tests drive the real wiring with their own runbook and
// shorter timings.
type serveOptions struct {
	socket  []socketmode.Option
	poster  bot.PosterOptions
	onReady func(*server)
	// drillClock and drillTick drive the drill scheduler (tests move time).
	drillClock func() time.Time
	drillTick  time.Duration
	// rollback restores a run's pre-cutover values (/dr rollback).
	rollback bot.RollbackFunc
	// onStore hands the opened state to the integrations that read it.
	onStore func(*state.Store)
	// listen is the health endpoints' address; "" turns them off.
	listen string
}

// server is what serve wired, for tests.
type server struct {
	store  *state.Store
	engine *recovery.Engine
	drills *drills.Scheduler
	health string // address of the health endpoints, when on
}

// slackTokens reads both tokens, naming every one that cannot be read.
func slackTokens(cfg *config.Config) (app, botToken string, err error) {
	var missing []string
	read := func(key string, s config.Secret) string {
		v, err := s.Resolve()
		if err != nil {
			missing = append(missing, fmt.Sprintf("  %s (%s): %v", key, s.Source(), err))
		}
		return v
	}
	app = read("slack.app_token", cfg.Slack.AppToken)
	botToken = read("slack.bot_token", cfg.Slack.BotToken)
	if len(missing) > 0 {
		return "", "", &exitError{code: 1, msg: "drbot serve needs the Slack tokens, and cannot read:\n" + strings.Join(missing, "\n") +
			"\nSet the variables (or files) named above; see the README."}
	}
	return app, botToken, nil
}

// groupMembers expands Slack user groups for the access policy.
type groupMembers struct{ api *slack.Client }

func (g groupMembers) GroupMembers(ctx context.Context, id string) ([]string, error) {
	return g.api.GetUserGroupMembersContext(ctx, id)
}

// serve runs drbot until ctx ends: Socket Mode, the engine, the outbox
// poster and the admin socket, resuming unfinished runs first.
func serve(parent context.Context, cfg *config.Config, book *recovery.Runbook, log *slog.Logger, opts serveOptions) error {
	appToken, botToken, err := slackTokens(cfg)
	if err != nil {
		return err
	}
	store, err := state.Open(cfg.State.Path, state.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	if opts.onStore != nil {
		opts.onStore(store)
	}
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	m := metrics.New()
	m.OutboxDepth(metrics.StoreOutboxDepth(store))
	api := slack.New(botToken, slack.OptionAPIURL(cfg.Slack.APIURL), slack.OptionAppLevelToken(appToken),
		slack.OptionHTTPClient(&http.Client{Timeout: time.Minute, Transport: m.SlackTransport(nil)}))
	policy := bot.NewPolicy(cfg.Access, groupMembers{api})
	posterOpts := opts.poster
	posterOpts.Budget, posterOpts.Logger, posterOpts.AnnounceChannel = cfg.MTTR.Budget.Std(), log, cfg.Slack.AnnounceChannel
	poster := bot.NewPoster(api, store, book, posterOpts)
	disp := recovery.NewDispatcher(store, m.Notifier(poster), log)
	disp.Urgent = bot.Urgent // rollback requests and failures overtake step lines too
	// Every committed change wakes the dispatcher and, when configured,
	// schedules a copy of the state in S3.
	uploader, err := stateBackup(ctx, cfg, store, log)
	if err != nil {
		return err
	}
	changed := func() {
		disp.Wake()
		if uploader != nil {
			uploader.Changed()
		}
	}
	eng := recovery.New(ctx, store, book, recovery.Options{
		Concurrency: cfg.Runbook.Concurrency,
		Retry: recovery.RetryPolicy{
			MaxAttempts:    cfg.Runbook.Retry.MaxAttempts,
			InitialBackoff: cfg.Runbook.Retry.InitialBackoff.Std(),
			MaxBackoff:     cfg.Runbook.Retry.MaxBackoff.Std(),
		},
		Logger:      log,
		Authorize:   policy.Authorizer(),
		OnEnqueue:   changed,
		PreApproved: drillPreApproval(cfg),
	})
	b := bot.New(cfg, api, eng, store, policy, bot.Options{Logger: log, SocketOptions: opts.socket, OnAck: m.ObserveAck})
	sched, err := drills.New(cfg.Drills, store, b, drills.Options{
		Clock:     opts.drillClock,
		Logger:    log,
		OnEnqueue: changed,
		Expected:  func(string) time.Duration { return book.ForMode(state.ModeDrill).Schedule().Total },
	})
	if err != nil {
		return err
	}
	b.SetDrills(sched)
	b.SetWake(changed)
	stopReadiness, err := startReadiness(ctx, cfg, store, b, changed, log, opts.drillClock, opts.drillTick)
	if err != nil {
		return err
	}
	defer stopReadiness()
	if opts.rollback != nil {
		b.SetRollback(opts.rollback)
	}

	poster.SetChannelOpener(b.OpenChannel)  // runs started by `drbot run` while Slack was unreachable
	go policy.KeepWarm(ctx, 10*time.Minute) // group members known when Slack is not, for `drbot run`

	stopAdmin, err := serveAdminWith(ctx, store, b)
	if err != nil {
		return err
	}
	defer stopAdmin()
	var healthAddr string
	if opts.listen != "" {
		if healthAddr, err = serveHealth(ctx, opts.listen, store, b.Connected, m.Handler(), log); err != nil {
			return err
		}
	}
	go func() { _ = disp.Run(ctx) }()
	backupDone := make(chan struct{})
	go func() {
		defer close(backupDone)
		if uploader != nil {
			_ = uploader.Run(ctx)
		}
	}()
	defer func() { cancel(); <-backupDone }() // the last copy is made before the state closes
	go func() { _ = poster.RunBoards(ctx, posterOpts.BoardInterval) }()
	if opts.drillTick == 0 {
		opts.drillTick = 30 * time.Second
	}
	go sched.Run(ctx, opts.drillTick)
	go purgeDedupe(ctx, store, log)
	resumed, err := eng.Resume()
	if err != nil {
		return err
	}
	log.Info("drbot serving", "version", version, "state", cfg.State.Path, "targets", len(cfg.Targets), "resumed_runs", len(resumed), "slack_api", cfg.Slack.APIURL)
	if opts.onReady != nil {
		opts.onReady(&server{store: store, engine: eng, drills: sched, health: healthAddr})
	}
	err = b.Run(ctx)
	cancel()
	log.Info("shutting down; unfinished runs resume on the next start")
	done := make(chan struct{})
	go func() { eng.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		log.Warn("steps did not stop within 30s; exiting anyway (they re-run on resume)")
	}
	if parent.Err() != nil {
		return nil // asked to stop
	}
	return err
}

// drillPreApproval: a drill run passes a gate without a person when a drill
// of its target lists the gate in pre_approve. Recoveries never do.
func drillPreApproval(cfg *config.Config) func(state.Run, recovery.Step) bool {
	return func(run state.Run, step recovery.Step) bool {
		if run.Mode != state.ModeDrill {
			return false
		}
		for _, d := range cfg.Drills {
			if d.Target == run.Target && slices.Contains(d.PreApprove, string(step.Gate)) {
				return true
			}
		}
		return false
	}
}

// purgeDedupe drops expired dedupe keys (redelivered envelopes) hourly,
// so the state file does not grow with every click for ever.
func purgeDedupe(ctx context.Context, store *state.Store, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			var n int
			if err := store.Update(func(tx *state.Tx) (err error) { n, err = tx.PurgeExpired(); return }); err != nil {
				log.Warn("purging expired dedupe keys", "err", err)
			} else if n > 0 {
				log.Info("purged expired dedupe keys", "count", n)
			}
		}
	}
}

// stateBackup makes the S3 uploader when state.backup is configured.
func stateBackup(ctx context.Context, cfg *config.Config, store *state.Store, log *slog.Logger) (*backup.Uploader, error) {
	b := cfg.State.Backup
	if b == nil {
		return nil, nil
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(b.Region))
	if err != nil {
		return nil, fmt.Errorf("state.backup: loading AWS configuration for %s: %w", b.Region, err)
	}
	client := s3.NewFromConfig(ac, func(o *s3.Options) { o.UsePathStyle = b.PathStyle })
	return backup.New(store, client, backup.Options{Bucket: b.Bucket, Prefix: b.Prefix, Keep: b.Keep, Logger: log}), nil
}
