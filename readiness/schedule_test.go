package readiness_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/slack-go/slack"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// deliver hands the pending outbox entries to the poster, as the
// dispatcher does, and marks them delivered.
func deliver(t *testing.T, ctx context.Context, store *state.Store, p *bot.Poster) int {
	t.Helper()
	var pending []state.OutboxEntry
	if err := store.View(func(tx *state.Tx) (err error) { pending, err = tx.Outbox(true, 0); return }); err != nil {
		t.Fatal(err)
	}
	for _, e := range pending {
		var ev recovery.Event
		if err := json.Unmarshal(e.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Kind != readiness.EventReport {
			t.Fatalf("outbox entry of kind %s, want %s", ev.Kind, readiness.EventReport)
		}
		ref, err := p.PostReadiness(ctx, ev)
		if err != nil {
			t.Fatalf("posting %s: %v", e.Key, err)
		}
		if err := store.Update(func(tx *state.Tx) error { return tx.MarkDelivered(e.Seq, ref) }); err != nil {
			t.Fatal(err)
		}
	}
	return len(pending)
}

func TestScheduledRunsCallOutARegressionWithTheOwners(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := newWorld(t) // no management cluster: the schedule is what is under test
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()

	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	set := func(t time.Time) { mu.Lock(); now = t; mu.Unlock() }
	woken := 0
	sched, err := readiness.NewScheduler(w.cfg, store, func(ctx context.Context, targets []*config.Target, trigger string) readiness.Report {
		return readiness.Options{Clock: clock}.Run(ctx, w.checks(), targets, trigger)
	}, readiness.ScheduleOptions{Clock: clock, OnEnqueue: func() { woken++ }})
	if err != nil {
		t.Fatal(err)
	}
	api := slack.New(w.slack.BotToken(), slack.OptionAPIURL(w.slack.APIURL()))
	poster := bot.NewPoster(api, store, nil, bot.PosterOptions{AnnounceChannel: w.cfg.Slack.AnnounceChannel, Clock: clock})
	posts := func() int { return w.slack.CallCount("chat.postMessage") }

	// drbot starts at 06:00: the first tick only remembers the time.
	if err := sched.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if reps, _ := readiness.List(store, 0); len(reps) != 0 {
		t.Fatalf("the first tick ran the checks: %d reports", len(reps))
	}

	// 07:00 passes: one run, saved and posted.
	set(time.Date(2026, 11, 25, 7, 0, 30, 0, time.UTC))
	if err := sched.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	set(time.Date(2026, 11, 25, 7, 1, 0, 0, time.UTC))
	if err := sched.Tick(ctx); err != nil { // same occurrence: nothing more
		t.Fatal(err)
	}
	if n := deliver(t, ctx, store, poster); n != 1 || woken != 1 {
		t.Fatalf("after the first 07:00: %d message(s) enqueued, %d wake-up(s); want 1 and 1", n, woken)
	}
	first, _, _ := readiness.Latest(store)
	if first.Failed() || first.Trigger != "schedule" {
		t.Fatalf("first scheduled report:\n%s", describe(first))
	}

	// A Vault role is renamed during the day.
	root, _ := vault.NewClient(&vault.Config{Address: w.vault.URL()})
	root.SetToken(w.vault.RootToken())
	if _, err := root.Logical().Delete("auth/k8s-primary/role/orders"); err != nil {
		t.Fatal(err)
	}
	w.vault.PutRole("k8s-primary", "orders-v2", map[string]any{"bound_service_account_names": []any{"orders"}, "bound_service_account_namespaces": []any{"orders"}})
	before := posts()

	set(time.Date(2026, 11, 26, 7, 0, 20, 0, time.UTC))
	if err := sched.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	if n := deliver(t, ctx, store, poster); n != 1 {
		t.Fatalf("after the second 07:00: %d message(s), want 1", n)
	}
	second, _, _ := readiness.Latest(store)
	if len(second.Regressions) != 1 || second.Regressions[0].Label() != "vault [prod-eu]" {
		t.Fatalf("second report regressions = %+v\n%s", second.Regressions, describe(second))
	}
	if got := posts() - before; got != 1 {
		t.Errorf("%d chat.postMessage for the second report, want exactly the report", got)
	}
	msgs := w.slack.Messages("C1")
	if len(msgs) != 2 {
		t.Fatalf("announce channel has %d messages, want the 2 reports", len(msgs))
	}
	blocks := string(msgs[1].Blocks)
	for _, want := range []string{"Regression", "vault [prod-eu]", "<@" + owner + ">", "orders-v2", "1 ❌"} {
		if !strings.Contains(strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(blocks), want) {
			t.Errorf("second report message lacks %q:\n%s", want, blocks)
		}
	}
	if strings.Contains(string(msgs[0].Blocks), "Regression") {
		t.Error("the first report calls out a regression")
	}
}

func TestScheduleOffMakesNoScheduler(t *testing.T) {
	cfg := &config.Config{Readiness: config.Readiness{Schedule: "off"}}
	s, err := readiness.NewScheduler(cfg, nil, nil, readiness.ScheduleOptions{})
	if s != nil || err != nil {
		t.Errorf("schedule off gave %v, %v; want no scheduler", s, err)
	}
	cfg.Readiness.Schedule = "61 7 * * *"
	if _, err := readiness.NewScheduler(cfg, nil, nil, readiness.ScheduleOptions{}); err == nil || !strings.Contains(err.Error(), "readiness.schedule") {
		t.Errorf("a bad schedule gave %v", err)
	}
}

func TestScheduleFollowsTheTimezone(t *testing.T) {
	cfg := &config.Config{Readiness: config.Readiness{Schedule: "0 7 * * *", Timezone: "Europe/Paris"}}
	s, err := readiness.NewScheduler(cfg, nil, nil, readiness.ScheduleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	next := s.Next(time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 11, 25, 6, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("next = %v, want %v (07:00 in Paris)", next.UTC(), want)
	}
}
