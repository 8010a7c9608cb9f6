package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/world"
)

// A whole recovery (not a drill) in the shared world: /dr start by the
// on-call engineer, both gates approved by the lead, every step of the
// recovery runbook succeeded.
func TestWholeRecoveryInTheWorldPassesBothGatesAndSucceeds(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and a whole recovery")
	}
	w := world.Start(t, world.Options{Services: 12})
	cfg, err := w.Config(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// The daily readiness check is due at 07:00; the clock stands before it
	// until the recovery is over.
	cfg.Readiness.Schedule, cfg.Readiness.Timezone = "0 7 * * *", "UTC"
	clk := &movableClock{now: time.Date(2026, 12, 3, 6, 59, 0, 0, time.UTC)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var gates []string
	d, run := recoverInWorld(ctx, t, w, cfg, worldRun{
		serve:  serveOptions{drillClock: clk.Now, drillTick: 50 * time.Millisecond},
		onGate: func(g openGate) { mu.Lock(); gates = append(gates, g.Step); mu.Unlock() },
	})
	t.Logf("recovered %d services in %s", w.Opts.Services, run.FinishedAt.Sub(run.StartedAt).Round(time.Millisecond))
	if run.Mode != state.ModeRecovery || run.Target != w.Opts.Target {
		t.Errorf("run = %s of %s, want a recovery of %s", run.Mode, run.Target, w.Opts.Target)
	}
	for _, s := range d.book.ForMode(state.ModeRecovery).Steps() {
		var rec state.StepRecord
		_ = d.srv.store.View(func(tx *state.Tx) (err error) { rec, _, err = tx.Step(run.ID, s.ID); return })
		if rec.Status != state.StepSucceeded {
			t.Errorf("step %s is %s, want succeeded", s.ID, rec.Status)
		}
	}
	mu.Lock()
	if len(gates) != 2 {
		t.Errorf("gates approved = %v, want the merge and the cutover gate", gates)
	}
	mu.Unlock()

	// Readiness through serve: the schedule posts one report in the
	// announce channel, recorded in the state; /dr check answers privately.
	clk.Set(time.Date(2026, 12, 3, 7, 0, 30, 0, time.UTC))
	var report string
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Minute)
	defer wcancel()
	if err := w.Slack.WaitFor(wctx, "the scheduled readiness report", func() bool {
		for _, m := range w.Slack.Messages(world.ChanDR) {
			if strings.HasPrefix(m.Text, "Readiness ") && strings.Contains(m.Text, "passed") && strings.Contains(m.Text, "(schedule") {
				report = m.Text
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
	t.Logf("scheduled report: %s", report)
	if rep, ok, err := readiness.Latest(d.srv.store); err != nil || !ok || rep.Headline() != report {
		t.Errorf("latest recorded report = %q (found %v, %v), want the posted %q", rep.Headline(), ok, err, report)
	}
	if err := d.slash(ctx, world.UserOncall, "check"); err != nil {
		t.Fatal(err)
	}
	if err := w.Slack.WaitFor(wctx, "the /dr check answer", func() bool {
		for _, p := range w.Slack.ResponseURLPosts() {
			if p.User == world.UserOncall && strings.HasPrefix(p.Text, "Readiness ") && strings.Contains(p.Text, "slack:"+world.UserOncall) {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatal(err)
	}
}

// worldRun shapes recoverInWorld.
type worldRun struct {
	serve   serveOptions       // poster: fast posting when left zero
	prepare func(*worldDriver) // before serve, e.g. to wrap d.rollback
	command string             // what the on-call engineer types after /dr; default "start <target>"
	onGate  func(openGate)     // sees each gate before the lead approves it
}

// recoverInWorld runs the real drbot on w with cfg until t ends, has the
// on-call engineer type /dr start, approves every gate as the lead and
// waits for the run to end. A run that did not succeed fails t, after
// logging the steps that did not.
func recoverInWorld(ctx context.Context, t *testing.T, w *world.World, cfg *config.Config, opts worldRun) (*worldDriver, state.Run) {
	t.Helper()
	d, err := newWorldDriver(w, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if opts.prepare != nil {
		opts.prepare(d)
	}
	if opts.serve.poster.PostsPerSecond == 0 {
		opts.serve.poster = bot.PosterOptions{PostsPerSecond: 200, Burst: 50, BoardInterval: 100 * time.Millisecond}
	}
	if err := d.serve(ctx, opts.serve); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Error(err)
		}
	})
	if opts.command == "" {
		opts.command = "start " + w.Opts.Target
	}
	if err := d.slash(ctx, world.UserOncall, opts.command); err != nil {
		t.Fatal(err)
	}
	go d.approveGates(ctx, 0, opts.onGate)
	run, err := d.waitRun(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if run.Status != state.RunSucceeded {
		var recs map[string]state.StepRecord
		_ = d.srv.store.View(func(tx *state.Tx) (err error) { recs, err = tx.Steps(run.ID); return })
		for id, r := range recs {
			if r.Status != state.StepSucceeded {
				t.Logf("step %s: %s %s", id, r.Status, r.Error)
			}
		}
		t.Fatalf("the %s ended %s", run.Mode, run.Status)
	}
	return d, run
}

// Gate refs carry the round as posted: a gate asked a third time is round
// 3, not "not the first".
func TestGateRefReadsStepAndRound(t *testing.T) {
	for name, want := range map[string]struct {
		step  string
		round int
		ok    bool
	}{
		"gate/gitops.merge/1":     {"gitops.merge", 1, true},
		"gate/endpoints.apply/3":  {"endpoints.apply", 3, true},
		"phase/deploy":            {"", 0, false},
		"gate/gitops.merge/x":     {"gitops.merge", 0, false},
		"gate/gitops.merge/1/too": {"", 0, false},
	} {
		step, round, ok := gateRef(name)
		if ok != want.ok || (ok && (step != want.step || round != want.round)) {
			t.Errorf("gateRef(%q) = %q, %d, %v; want %q, %d, %v", name, step, round, ok, want.step, want.round, want.ok)
		}
	}
}
