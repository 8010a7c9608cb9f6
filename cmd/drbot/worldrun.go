package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/world"
)

// worldDriver runs the real drbot — the standard runbook wired to the real
// integrations, serve, the bot and the poster — against a world of
// stand-ins, and plays the people: the on-call engineer who types
// `/dr start` and the lead who approves the gates. The sandbox, the
// benchmarks and the whole-recovery tests share it.
type worldDriver struct {
	w        *world.World
	cfg      *config.Config
	book     *recovery.Runbook
	rollback bot.RollbackFunc
	log      *slog.Logger

	live   atomic.Pointer[state.Store]
	srv    *server
	cancel context.CancelFunc
	done   chan error
}

func newWorldDriver(w *world.World, cfg *config.Config, log *slog.Logger, opts ...wireOption) (*worldDriver, error) {
	std, err := standard.Runbook()
	if err != nil {
		return nil, err
	}
	d := &worldDriver{w: w, cfg: cfg, log: log, done: make(chan error, 1)}
	d.book, d.rollback, err = wireActions(cfg, std, log, d.live.Load, opts...)
	if err != nil {
		return nil, fmt.Errorf("wiring the runbook: %w", err)
	}
	return d, nil
}

// serve starts drbot and returns once it is connected to Slack.
func (d *worldDriver) serve(ctx context.Context, opts serveOptions) error {
	sctx, cancel := context.WithCancel(ctx)
	d.cancel = cancel
	ready := make(chan *server, 1)
	opts.rollback = d.rollback
	opts.onStore = d.live.Store
	prev := opts.onReady
	opts.onReady = func(s *server) {
		if prev != nil {
			prev(s)
		}
		ready <- s
	}
	go func() { d.done <- serve(sctx, d.cfg, d.book, d.log, opts) }()
	select {
	case d.srv = <-ready:
	case err := <-d.done:
		cancel()
		return fmt.Errorf("drbot serve stopped before it was ready: %w", err)
	case <-time.After(30 * time.Second):
		cancel()
		return errors.New("drbot serve was not ready after 30s")
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	return d.w.Slack.WaitFor(wctx, "drbot's Socket Mode connection", func() bool { return d.w.Slack.Connections() > 0 })
}

// stop ends serve and waits for it.
func (d *worldDriver) stop() error {
	if d.cancel == nil {
		return nil
	}
	d.cancel()
	d.cancel = nil
	select {
	case err := <-d.done:
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case <-time.After(40 * time.Second):
		return errors.New("drbot serve did not stop within 40s")
	}
}

// slash types `/dr text` in the ops channel as user and waits for the ack.
func (d *worldDriver) slash(ctx context.Context, user, text string) error {
	id, err := d.w.Slack.SlashCommand(ctx, user, world.ChanOps, "/dr", text)
	if err != nil {
		return fmt.Errorf("/dr %s: %w", text, err)
	}
	if _, err := d.w.Slack.WaitAck(ctx, id); err != nil {
		return fmt.Errorf("/dr %s: no ack: %w", text, err)
	}
	return nil
}

// latestRun is the newest run in the state, or the zero Run.
func (d *worldDriver) latestRun() state.Run {
	var run state.Run
	if d.srv == nil {
		return run
	}
	_ = d.srv.store.View(func(tx *state.Tx) error {
		runs, err := tx.Runs()
		if err == nil && len(runs) > 0 {
			run = runs[len(runs)-1]
		}
		return err
	})
	return run
}

// openGate is a gate message waiting for a click.
type openGate struct {
	Run   state.Run
	Step  string
	Round int
	TS    string
	ref   string
}

// openGates lists the gate messages of the latest run not yet in seen.
func (d *worldDriver) openGates(seen map[string]bool) []openGate {
	var run state.Run
	var refs map[string]string
	var steps map[string]state.StepRecord
	_ = d.srv.store.View(func(tx *state.Tx) error {
		runs, err := tx.Runs()
		if err != nil || len(runs) == 0 {
			return err
		}
		run = runs[len(runs)-1]
		if refs, err = tx.MessageRefs(run.ID); err != nil {
			return err
		}
		steps, err = tx.Steps(run.ID)
		return err
	})
	var out []openGate
	for name, ts := range refs {
		step, round, ok := gateRef(name)
		if !ok || seen[run.ID+"/"+name] || steps[step].Status != state.StepWaiting {
			continue
		}
		out = append(out, openGate{Run: run, Step: step, Round: round, TS: ts, ref: run.ID + "/" + name})
	}
	return out
}

// gateRef reads the poster's message ref of a gate, "gate/<step>/<round>".
func gateRef(name string) (step string, round int, ok bool) {
	parts := strings.Split(name, "/")
	if len(parts) != 3 || parts[0] != "gate" {
		return "", 0, false
	}
	round, err := strconv.Atoi(parts[2])
	return parts[1], round, err == nil && round > 0
}

// click presses a button on a gate message as user.
func (d *worldDriver) click(ctx context.Context, user string, g openGate, action string) error {
	value := bot.ButtonValue{RunID: g.Run.ID, StepID: g.Step, Round: g.Round}.String()
	id, err := d.w.Slack.Click(ctx, user, g.Run.Slack.ChannelID, g.TS, action, value)
	if err != nil {
		return fmt.Errorf("clicking %s on %s: %w", action, g.Step, err)
	}
	_, err = d.w.Slack.WaitAck(ctx, id)
	return err
}

// approveGates approves every gate as the lead, each after delay, until
// ctx ends or the run finishes. onGate, when set, hears of each gate first.
func (d *worldDriver) approveGates(ctx context.Context, delay time.Duration, onGate func(openGate)) {
	seen := map[string]bool{}
	for ctx.Err() == nil {
		if r := d.latestRun(); r.ID != "" && r.Status.Finished() {
			return
		}
		for _, g := range d.openGates(seen) {
			seen[g.ref] = true
			if onGate != nil {
				onGate(g)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			if err := d.click(ctx, world.UserLead, g, bot.ActionApprove); err != nil {
				d.log.Warn("approving a gate", "step", g.Step, "err", err)
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitRun waits until the latest run finishes or is blocked.
func (d *worldDriver) waitRun(ctx context.Context) (state.Run, error) {
	for {
		r := d.latestRun()
		if r.ID != "" && (r.Status.Finished() || r.Status == state.RunBlocked) {
			return r, nil
		}
		select {
		case <-ctx.Done():
			return r, fmt.Errorf("the run is still %s: %w", r.Status, ctx.Err())
		case err := <-d.done:
			d.cancel = nil
			return r, fmt.Errorf("drbot serve stopped during the run: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
