package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, book, err := loadConfig(*path)
	if err != nil {
		return err
	}
	// Refuse to start half-configured: name every secret that cannot be read.
	var missing []string
	for _, s := range []struct {
		key    string
		secret interface {
			Resolve() (string, error)
			Source() string
		}
	}{{"slack.app_token", cfg.Slack.AppToken}, {"slack.bot_token", cfg.Slack.BotToken}} {
		if _, err := s.secret.Resolve(); err != nil {
			missing = append(missing, fmt.Sprintf("  %s (%s): %v", s.key, s.secret.Source(), err))
		}
	}
	if len(missing) > 0 {
		return &exitError{code: 1, msg: "drbot serve needs the Slack tokens, and cannot read:\n" + strings.Join(missing, "\n") +
			"\nSet the variables (or files) named above; see the README."}
	}

	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	store, err := state.Open(cfg.State.Path, state.Options{})
	if err != nil {
		return err
	}
	defer store.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopAdmin, err := serveAdmin(ctx, store)
	if err != nil {
		return err
	}
	defer stopAdmin()

	// Until the Slack bot lands (issue #4), events go to the log.
	disp := recovery.NewDispatcher(store, recovery.LogNotifier(log), log)
	go func() { _ = disp.Run(ctx) }()
	eng := recovery.New(ctx, store, book, recovery.Options{
		Concurrency: cfg.Runbook.Concurrency,
		Retry: recovery.RetryPolicy{
			MaxAttempts:    cfg.Runbook.Retry.MaxAttempts,
			InitialBackoff: cfg.Runbook.Retry.InitialBackoff.Std(),
			MaxBackoff:     cfg.Runbook.Retry.MaxBackoff.Std(),
		},
		Logger:    log,
		OnEnqueue: disp.Wake,
	})
	resumed, err := eng.Resume()
	if err != nil {
		return err
	}
	log.Info("drbot serving", "version", version, "state", cfg.State.Path, "targets", len(cfg.Targets), "resumed_runs", len(resumed))
	<-ctx.Done()
	log.Info("shutting down; unfinished runs resume on the next start")
	waitCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() { eng.Wait(); close(done) }()
	select {
	case <-done:
	case <-waitCtx.Done():
		log.Warn("steps did not stop within 30s; exiting anyway (they re-run on resume)")
	}
	return nil
}
