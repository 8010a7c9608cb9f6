package bot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/slackfake"
)

// A Slack refusal of one message (an archived channel) is skipped by the
// outbox; a refusal of drbot's credentials holds the queue until fixed.
func TestOutboxSkipsMessagesSlackRefusesButWaitsOutCredentialProblems(t *testing.T) {
	for _, c := range []struct {
		code string
		skip bool
	}{{"is_archived", true}, {"channel_not_found", true}, {"missing_scope", true}, {"token_revoked", false}, {"invalid_auth", false}} {
		t.Run(c.code, func(t *testing.T) {
			store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			_ = store.Update(func(tx *state.Tx) error {
				return recovery.Enqueue(tx, recovery.Event{Key: "one", Kind: recovery.EventStepStarted, RunID: "r"})
			})
			d := recovery.NewDispatcher(store, recovery.NotifierFunc(func(context.Context, recovery.Event) (string, error) {
				return "", slackFailure(fmt.Errorf("posting to C1: %w", slack.SlackErrorResponse{Err: c.code}))
			}), slog.New(slog.NewTextHandler(io.Discard, nil)))
			_, _ = d.DrainOnce(context.Background())
			var pending []state.OutboxEntry
			_ = store.View(func(tx *state.Tx) (err error) { pending, err = tx.Outbox(true, 0); return })
			if skipped := len(pending) == 0; skipped != c.skip {
				t.Errorf("%s: skipped=%v, want %v", c.code, skipped, c.skip)
			}
		})
	}
}

// outboxWorld is a run whose incident channel is in a Slack stand-in, with
// a runbook of ten bootstrap steps (s0…s9) and the merge gate.
type outboxWorld struct {
	slack *slackfake.Server
	store *state.Store
	book  *recovery.Runbook
	run   state.Run
}

func newOutboxWorld(t *testing.T) *outboxWorld {
	t.Helper()
	w := &outboxWorld{slack: slackfake.New(t, slackfake.Options{})}
	w.slack.AddChannel("C0INCIDENT", "inc-prod-eu")
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	w.store = store
	noop := func(context.Context, *recovery.StepContext) (recovery.Result, error) { return recovery.Result{}, nil }
	steps := []recovery.Step{{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: noop}}
	for i := range 10 {
		steps = append(steps, recovery.Step{ID: fmt.Sprintf("s%d", i), Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: noop})
	}
	steps = append(steps, recovery.Step{ID: "gitops.merge", Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge, DependsOn: []string{"s0"}, Action: noop})
	if w.book, err = recovery.NewRunbook(steps); err != nil {
		t.Fatal(err)
	}
	w.run = state.Run{ID: "r1", Target: "prod-eu", Mode: state.ModeRecovery, Status: state.RunRunning, Slack: state.SlackRef{ChannelID: "C0INCIDENT"}}
	if err := store.Update(func(tx *state.Tx) error { return tx.PutRun(w.run) }); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *outboxWorld) enqueue(t *testing.T, evs ...recovery.Event) {
	t.Helper()
	for i := range evs {
		evs[i].RunID, evs[i].Target, evs[i].Mode = w.run.ID, w.run.Target, w.run.Mode
	}
	if err := w.store.Update(func(tx *state.Tx) error { return recovery.Enqueue(tx, evs...) }); err != nil {
		t.Fatal(err)
	}
}

// stepLines makes n progress lines spread over s0…s9.
func (w *outboxWorld) stepLines(n int) []recovery.Event {
	var evs []recovery.Event
	for i := range n {
		step := fmt.Sprintf("s%d", i%10)
		evs = append(evs, recovery.Event{Key: fmt.Sprintf("r1/%s/progress/1/%03d", step, i/10), Kind: recovery.EventStepProgress,
			StepID: step, Phase: recovery.PhaseBootstrap, Message: fmt.Sprintf("line %d", i/10)})
	}
	return evs
}

var mergeGate = recovery.Event{Key: "r1/gitops.merge/gate/1", Kind: recovery.EventGateWaiting, StepID: "gitops.merge",
	Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge, Round: 1, Title: "Merge the DR merge request"}

func (w *outboxWorld) poster(rate float64) *Poster {
	api := slack.New(w.slack.BotToken(), slack.OptionAPIURL(w.slack.APIURL()))
	return NewPoster(api, w.store, w.book, PosterOptions{PostsPerSecond: rate, Burst: 4, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// posted is every message of the channel, thread replies included, in
// the order Slack received them (a broadcast reply counted once).
func (w *outboxWorld) posted() []slackfake.Message {
	seen := map[string]bool{}
	var out []slackfake.Message
	add := func(m slackfake.Message) {
		if !seen[m.TS] {
			seen[m.TS] = true
			out = append(out, m)
		}
	}
	for _, m := range w.slack.Messages("C0INCIDENT") {
		add(m)
		for _, r := range m.Replies {
			add(r)
		}
	}
	slices.SortFunc(out, func(a, b slackfake.Message) int {
		return strings.Compare(fmt.Sprintf("%20s", a.TS), fmt.Sprintf("%20s", b.TS))
	})
	return out
}

func outboxKey(m slackfake.Message) string {
	if m.Metadata == nil {
		return ""
	}
	k, _ := m.Metadata.EventPayload["key"].(string)
	return k
}

func TestGateMessageIsAmongTheFirstPostsWith200StepLinesQueuedBeforeIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := newOutboxWorld(t)
	w.enqueue(t, recovery.Event{Key: "r1/started", Kind: recovery.EventRunStarted})
	w.enqueue(t, w.stepLines(200)...)
	w.enqueue(t, mergeGate)

	// 100 posts a second stands for Slack's one: positions are counted, not time.
	d := recovery.NewDispatcher(w.store, w.poster(100), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if n, err := d.DrainOnce(ctx); err != nil || n != 202 {
		t.Fatalf("DrainOnce = %d, %v; want all 202 entries delivered", n, err)
	}

	posts := w.posted()
	pos := slices.IndexFunc(posts, func(m slackfake.Message) bool { return outboxKey(m) == mergeGate.Key+"#phase" })
	// Five roots (board, log, three phases), run.started's two lines, the
	// gate's log line, then the gate: the ninth of 409 posts.
	if pos < 0 || pos > 8 {
		t.Fatalf("the gate message is post %d of %d, want among the first 9", pos, len(posts))
	}
	refs, _ := w.refs(t)
	if gate := posts[pos]; gate.ThreadTS != refs["phase/deploy"] || !gate.ReplyBroadcast {
		t.Errorf("the gate message went to thread %q (broadcast %v), want the deploy phase thread %q, broadcast", gate.ThreadTS, gate.ReplyBroadcast, refs["phase/deploy"])
	}
	if refs["gate/gitops.merge/1"] != posts[pos].TS {
		t.Errorf("the gate's ref = %q, want the gate message %q (its buttons are updated by it)", refs["gate/gitops.merge/1"], posts[pos].TS)
	}
	assertThreadsInStepOrder(t, w, posts)
}

func (w *outboxWorld) refs(t *testing.T) (map[string]string, error) {
	t.Helper()
	var refs map[string]string
	err := w.store.View(func(tx *state.Tx) (err error) { refs, err = tx.MessageRefs(w.run.ID); return })
	return refs, err
}

// assertThreadsInStepOrder checks that every message was posted once,
// each reply in its thread, and that each step's lines follow each other
// in the order they happened in the phase thread and in the log thread.
func assertThreadsInStepOrder(t *testing.T, w *outboxWorld, posts []slackfake.Message) {
	t.Helper()
	refs, err := w.refs(t)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	last := map[string]string{} // thread|step → last line key
	for _, m := range posts {
		key := outboxKey(m)
		count[key]++
		base, suffix, _ := strings.Cut(key, "#")
		parts := strings.Split(base, "/")
		if len(parts) != 5 || parts[2] != "progress" {
			continue
		}
		wantThread := map[string]string{"log": refs["log"], "phase": refs["phase/bootstrap"]}[suffix]
		if m.ThreadTS != wantThread {
			t.Errorf("%s went to thread %q, want %q", key, m.ThreadTS, wantThread)
		}
		at := suffix + "|" + parts[1]
		if prev := last[at]; prev > base {
			t.Errorf("%s posted after %s in the %s thread", base, prev, suffix)
		}
		last[at] = base
	}
	for k, n := range count {
		if n != 1 {
			t.Errorf("%q posted %d times", k, n)
		}
	}
}

// A kill after a step line was posted but before it was marked delivered,
// then a gate enqueued before drbot is back: the gate goes first, and the
// step line is still found instead of posted twice.
func TestStepLinePostedBeforeAKillIsNotPostedAgainWhenAGateOvertakesIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	w := newOutboxWorld(t)
	w.enqueue(t, recovery.Event{Key: "r1/started", Kind: recovery.EventRunStarted})
	lines := w.stepLines(20)
	w.enqueue(t, lines...)

	killed := lines[0].Key
	first := w.poster(1000)
	crashing := recovery.NotifierFunc(func(ctx context.Context, ev recovery.Event) (string, error) {
		ref, err := first.Notify(ctx, ev)
		if ev.Key == killed {
			runtime.Goexit() // posted; neither marked delivered nor failed
		}
		return ref, err
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = recovery.NewDispatcher(w.store, crashing, slog.New(slog.NewTextHandler(io.Discard, nil))).DrainOnce(ctx)
	}()
	<-done

	w.enqueue(t, mergeGate)
	d := recovery.NewDispatcher(w.store, w.poster(1000), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := d.DrainOnce(ctx); err != nil {
		t.Fatal(err)
	}
	posts := w.posted()
	if n := len(posts); n != 5+2*(1+20+1) {
		t.Errorf("%d posts, want 49: five roots and two per entry", n)
	}
	// Before the kill: five roots, run.started's and the step line's two
	// posts each; after it, the gate's log line and the gate.
	if gate := slices.IndexFunc(posts, func(m slackfake.Message) bool { return outboxKey(m) == mergeGate.Key+"#phase" }); gate != 10 {
		t.Errorf("the gate message is post %d, want 10: the first after the restart but its log line", gate)
	}
	assertThreadsInStepOrder(t, w, posts)
}

func TestRollbackRequestAndFailureAreUrgentLikeTheEngines(t *testing.T) {
	for kind, want := range map[recovery.EventKind]bool{
		EventRollbackRequested: true, EventRollbackFailed: true, recovery.EventGateWaiting: true, recovery.EventStepFailed: true,
		EventRollbackProgress: false, EventRollbackDone: false, recovery.EventStepProgress: false, recovery.EventDecision: false,
	} {
		if got := Urgent(recovery.Event{Kind: kind}); got != want {
			t.Errorf("Urgent(%s) = %v, want %v", kind, got, want)
		}
	}
}
