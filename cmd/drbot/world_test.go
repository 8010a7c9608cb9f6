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
	d, err := newWorldDriver(w, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := d.serve(ctx, serveOptions{drillClock: clk.Now, drillTick: 50 * time.Millisecond,
		poster: bot.PosterOptions{PostsPerSecond: 200, Burst: 50, BoardInterval: 100 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.stop(); err != nil {
			t.Error(err)
		}
	})
	if err := d.slash(ctx, world.UserOncall, "start "+w.Opts.Target); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var gates []string
	go d.approveGates(ctx, 0, func(g openGate) { mu.Lock(); gates = append(gates, g.Step); mu.Unlock() })
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
		t.Fatalf("the recovery ended %s", run.Status)
	}
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
