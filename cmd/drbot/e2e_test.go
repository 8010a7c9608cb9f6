package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/postmortem"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/slackfake"
)

// The bot's end-to-end tests drive the real serve wiring (Socket Mode,
// engine, outbox poster, bbolt) against the Slack stand-in, with a small
// runbook of test steps: this is about the bot, not the integrations.

const (
	userOncall = "U0ONCALL"
	userLead   = "U0LEAD"
	userRandom = "U0RANDOM"
	userSRE    = "U0SRE"
	chanOps    = "C0OPS"
	// chanAnnounce is the example config's announce channel, #sre-dr.
	chanAnnounce = "C0SREDR"
)

// testBook is one step per phase with both gates.
func testBook(t testing.TB) *recovery.Runbook {
	pause := func(context.Context, *recovery.StepContext) (recovery.Result, error) {
		time.Sleep(20 * time.Millisecond)
		return recovery.Result{}, nil
	}
	book, err := recovery.NewRunbook([]recovery.Step{
		{ID: "cluster.create", Title: "Create the cluster", Phase: recovery.PhaseProvision, Action: func(_ context.Context, sc *recovery.StepContext) (recovery.Result, error) {
			sc.Progress("control plane CREATING, 0m12s")
			return recovery.Result{Outputs: map[string]string{"endpoint": "https://example.eks"}}, nil
		}},
		{ID: "namespaces", Title: "Namespaces", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: pause},
		{ID: "gitops.mr", Title: "Open the MR", Phase: recovery.PhaseDeploy, Action: func(context.Context, *recovery.StepContext) (recovery.Result, error) {
			return recovery.Result{Outputs: map[string]string{"url": "https://gitlab.example/mr/7", "summary": "150 applications"}}, nil
		}},
		{ID: "gitops.merge", Title: "Merge the MR", Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge, DependsOn: []string{"gitops.mr", "namespaces"}, Action: pause},
		{ID: "endpoints.apply", Title: "Apply the cutover", Phase: recovery.PhaseCutover, Gate: recovery.GateCutover, DependsOn: []string{"gitops.merge"}, Action: pause},
		{ID: "postmortem", Title: "Write the post-mortem", Phase: recovery.PhaseClose, DependsOn: []string{"endpoints.apply"}, Action: pause},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The real post-mortem step, so the file upload is exercised too.
	book, err = book.WithActions(map[string]recovery.Action{"postmortem": postmortem.Action(postmortem.Options{Book: book, Budget: time.Hour})})
	if err != nil {
		t.Fatal(err)
	}
	return book
}

type e2e struct {
	t     testing.TB
	slack *slackfake.Server
	cfg   *config.Config
	srv   *server
	stop  context.CancelFunc
	done  chan error
}

func newE2E(t testing.TB, book *recovery.Runbook) *e2e {
	t.Helper()
	return newE2EWith(t, book, nil)
}

// newE2EWith lets a test adjust the config and the serve options first.
func newE2EWith(t testing.TB, book *recovery.Runbook, adjust func(*config.Config, *serveOptions)) *e2e {
	t.Helper()
	fake := slackfake.New(t, slackfake.Options{})
	for _, u := range []string{userOncall, userLead, userRandom, userSRE} {
		fake.AddUser(u, strings.ToLower(u), false)
	}
	fake.AddUserGroup("S0SRE", "sre", userSRE)
	fake.AddChannel(chanOps, "ops")
	fake.AddChannel(chanAnnounce, "sre-dr")

	cfg, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SLACK_APP_TOKEN", fake.AppToken())
	t.Setenv("TEST_SLACK_BOT_TOKEN", fake.BotToken())
	cfg.Slack.APIURL = fake.APIURL()
	cfg.Slack.AppToken = config.EnvSecret("TEST_SLACK_APP_TOKEN")
	cfg.Slack.BotToken = config.EnvSecret("TEST_SLACK_BOT_TOKEN")
	cfg.Slack.Invite = []string{userLead, "S0SRE"}
	cfg.State.Path = filepath.Join(t.TempDir(), "drbot.db")
	cfg.State.Backup = nil // tests that copy the state to S3 set their own
	cfg.Access = config.Access{
		Starters:      []string{userOncall},
		Approvers:     map[string][]string{"merge": {userLead}, "cutover": {userLead, userOncall}},
		TwoPersonRule: true,
	}
	cfg.Drills = nil // drill tests set their own
	e := &e2e{t: t, slack: fake, cfg: cfg, done: make(chan error, 1)}
	var opts serveOptions
	if adjust != nil {
		adjust(cfg, &opts)
	}
	e.start(book, opts)
	return e
}

func (e *e2e) start(book *recovery.Runbook, opts serveOptions) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *server, 1)
	e.stop = cancel
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() {
		opts.poster = bot.PosterOptions{PostsPerSecond: 200, Burst: 50, BoardInterval: 50 * time.Millisecond}
		opts.onReady = func(s *server) { ready <- s }
		e.done <- serve(ctx, e.cfg, book, log, opts)
	}()
	select {
	case e.srv = <-ready:
	case err := <-e.done:
		e.t.Fatalf("serve stopped: %v", err)
	case <-time.After(10 * time.Second):
		e.t.Fatal("serve did not get ready")
	}
	e.t.Cleanup(e.shutdown)
	e.waitFor("a Socket Mode connection", func() bool { return e.slack.Connections() > 0 })
}

func (e *e2e) shutdown() {
	if e.stop == nil {
		return
	}
	e.stop()
	e.stop = nil
	select {
	case err := <-e.done:
		if err != nil {
			e.t.Errorf("serve returned %v", err)
		}
	case <-time.After(40 * time.Second):
		e.t.Error("serve did not stop")
	}
}

func (e *e2e) waitFor(what string, cond func() bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.slack.WaitFor(ctx, what, cond); err != nil {
		for _, c := range e.slack.Calls() {
			if c.Status != 200 || c.Error != "" {
				e.t.Logf("slack call %+v", c)
			}
		}
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (e *e2e) command(user, text string) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := e.slack.SlashCommand(ctx, user, chanOps, "/dr", text)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.slack.WaitAck(ctx, id); err != nil {
		e.t.Fatalf("no ack for %q: %v", text, err)
	}
	return id
}

func (e *e2e) click(user, channel, ts, action, value string, opts ...slackfake.EnvelopeOpt) string {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := e.slack.Click(ctx, user, channel, ts, action, value, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.slack.WaitAck(ctx, id); err != nil {
		e.t.Fatalf("no ack for click %s: %v", action, err)
	}
	return id
}

func (e *e2e) run() state.Run {
	var runs []state.Run
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { runs, err = tx.Runs(); return })
	if len(runs) == 0 {
		return state.Run{}
	}
	return runs[len(runs)-1]
}

func (e *e2e) step(runID, id string) state.StepRecord {
	var rec state.StepRecord
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { rec, _, err = tx.Step(runID, id); return })
	return rec
}

func (e *e2e) refs(runID string) map[string]string {
	var refs map[string]string
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { refs, err = tx.MessageRefs(runID); return })
	return refs
}

func (e *e2e) replyTexts(ch, ts string) []string {
	var out []string
	for _, m := range e.slack.Replies(ch, ts) {
		out = append(out, m.Text)
	}
	return out
}

func (e *e2e) responses(user string) []string {
	var out []string
	for _, p := range e.slack.ResponseURLPosts() {
		if p.User == user {
			out = append(out, p.Text)
		}
	}
	return out
}

func anyContains(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// message finds a message (top level or reply) by ts.
func (e *e2e) message(ch, ts string) (slackfake.Message, bool) {
	for _, m := range e.slack.Messages(ch) {
		if m.TS == ts {
			return m, true
		}
		for _, r := range m.Replies {
			if r.TS == ts {
				return r, true
			}
		}
	}
	return slackfake.Message{}, false
}

func TestStartFromSlackRunsThroughGatesToTheEnd(t *testing.T) {
	e := newE2E(t, testBook(t))
	e.command(userOncall, `start prod-eu --reason "eu-west-1 is down"`)
	e.waitFor("the run to start", func() bool { return e.run().ID != "" })
	run := e.run()
	ch := run.Slack.ChannelID

	// The incident channel: name, topic, purpose, invites, pinned board.
	c, ok := e.slack.Channel(ch)
	if !ok || !strings.HasPrefix(c.Name, "dr-prod-eu-") {
		t.Fatalf("channel = %+v", c)
	}
	e.waitFor("the topic and purpose", func() bool {
		c, _ = e.slack.Channel(ch)
		return strings.Contains(c.Topic, run.ID) && c.Purpose != ""
	})
	if !strings.Contains(c.Purpose, "eu-west-1 is down") {
		t.Errorf("purpose = %q", c.Purpose)
	}
	e.waitFor("invites", func() bool {
		c, _ = e.slack.Channel(ch)
		return strings.Contains(strings.Join(c.Members, ","), userLead) && strings.Contains(strings.Join(c.Members, ","), userSRE)
	})
	e.waitFor("the link in the origin channel", func() bool { return anyContains(e.responses(userOncall), "<#"+ch+">") })
	e.waitFor("the pinned board", func() bool {
		c, _ = e.slack.Channel(ch)
		return len(c.Pins) == 1 && c.Pins[0] == e.refs(run.ID)["board"]
	})

	// Phases with threaded step replies.
	e.waitFor("the merge gate", func() bool { return e.refs(run.ID)["gate/gitops.merge/1"] != "" })
	refs := e.refs(run.ID)
	// The gate goes ahead of queued step lines, so they may follow it.
	e.waitFor("the provision thread's lines", func() bool {
		got := e.replyTexts(ch, refs["phase/provision"])
		return anyContains(got, "`cluster.create` succeeded") && anyContains(got, "control plane CREATING")
	})
	e.waitFor("the post-mortem log thread's lines", func() bool {
		got := e.replyTexts(ch, refs["log"])
		return anyContains(got, "`run.started`") && anyContains(got, "`gate.waiting` · gitops.merge")
	})
	gate, _ := e.message(ch, refs["gate/gitops.merge/1"])
	if !strings.Contains(blocksText(gate), bot.ActionApprove) || !strings.Contains(blocksText(gate), "https://gitlab.example/mr/7") {
		t.Errorf("merge gate blocks lack the buttons or the MR: %s", gate.Blocks)
	}
	value := bot.ButtonValue{RunID: run.ID, StepID: "gitops.merge", Round: 1}.String()

	// Someone who may not approve is refused, audited, and nothing changes.
	e.click(userRandom, ch, gate.TS, bot.ActionApprove, value)
	e.waitFor("the refusal", func() bool { return anyContains(e.responses(userRandom), "may not decide the merge gate") })
	if rec := e.step(run.ID, "gitops.merge"); rec.Status != state.StepWaiting {
		t.Fatalf("gate moved after an unauthorised click: %s", rec.Status)
	}
	var audit []state.AuditEntry
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(run.ID); return })
	if !auditHas(audit, userRandom, "denied") {
		t.Errorf("the refusal is not audited: %+v", audit)
	}

	// The approver continues the run.
	e.click(userLead, ch, gate.TS, bot.ActionApprove, value)
	e.waitFor("the cutover gate", func() bool { return e.refs(run.ID)["gate/endpoints.apply/1"] != "" })
	e.waitFor("the merge gate message to say who approved", func() bool {
		m, _ := e.message(ch, gate.TS)
		return strings.Contains(blocksText(m), "Approved by <@"+userLead+">") && !strings.Contains(blocksText(m), bot.ActionApprove)
	})

	// Two-person rule: the initiator may not approve the cutover.
	cut := e.refs(run.ID)["gate/endpoints.apply/1"]
	cutValue := bot.ButtonValue{RunID: run.ID, StepID: "endpoints.apply", Round: 1}.String()
	e.click(userOncall, ch, cut, bot.ActionApprove, cutValue)
	e.waitFor("the two-person refusal", func() bool { return anyContains(e.responses(userOncall), "two-person rule") })

	// A double click and a redelivered envelope: one approval, one update.
	first := e.click(userLead, ch, cut, bot.ActionApprove, cutValue)
	e.click(userLead, ch, cut, bot.ActionApprove, cutValue)
	e.click(userLead, ch, cut, bot.ActionApprove, cutValue, slackfake.Redelivery(first, 1, "timeout"))

	e.waitFor("the run to finish", func() bool { return e.run().Status == state.RunSucceeded })
	e.waitFor("the board to show it", func() bool {
		m, _ := e.message(ch, e.refs(run.ID)["board"])
		return strings.Contains(blocksText(m), "SUCCEEDED")
	})
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(run.ID); return })
	approvals := 0
	for _, a := range audit {
		if a.Action == "decide.approve" && a.Step == "endpoints.apply" && a.Result == "recorded" {
			approvals++
		}
	}
	m, _ := e.message(ch, cut)
	if approvals != 1 || m.Edits != 1 {
		t.Errorf("cutover approvals recorded = %d, edits of its message = %d; want 1 and 1", approvals, m.Edits)
	}
	e.waitFor("the finish line", func() bool {
		return anyContains(textsOf(e.slack.Messages(ch)), "finished in")
	})
	e.waitFor("the post-mortem file in the log thread", func() bool {
		for _, f := range e.slack.Files() {
			if f.Filename == "postmortem-"+run.ID+".md" && f.ThreadTS == e.refs(run.ID)["log"] && strings.Contains(string(f.Content), "# Post-mortem: DR recovery of prod-eu") {
				return true
			}
		}
		return false
	})
}

// blocksText is a message's blocks as Slack shows them (slack-go escapes
// "<" and ">" in JSON).
func blocksText(m slackfake.Message) string {
	return strings.NewReplacer(`\u003c`, "<", `\u003e`, ">", `\u0026`, "&").Replace(string(m.Blocks))
}

func auditHas(audit []state.AuditEntry, actor, result string) bool {
	for _, a := range audit {
		if a.Actor == actor && a.Result == result {
			return true
		}
	}
	return false
}

func textsOf(msgs []slackfake.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Text
	}
	return out
}

func TestUsageMistakesAndHelpAnswerPrivately(t *testing.T) {
	e := newE2E(t, testBook(t))
	e.command(userOncall, "strat prod-eu")
	e.command(userOncall, "help")
	e.command(userRandom, "start prod-eu")
	e.waitFor("three answers", func() bool {
		return anyContains(e.responses(userOncall), `unknown command "strat"`) &&
			anyContains(e.responses(userOncall), "/dr start [target]") &&
			anyContains(e.responses(userRandom), "You may not start")
	})
	if e.run().ID != "" {
		t.Error("a refused start created a run")
	}
}

func TestSecondStartLinksTheRunInProgress(t *testing.T) {
	e := newE2E(t, testBook(t))
	e.command(userOncall, "start prod-eu")
	e.waitFor("the run", func() bool { return e.run().ID != "" })
	e.command(userOncall, "start prod-eu")
	run := e.run()
	e.waitFor("the busy answer", func() bool {
		return anyContains(e.responses(userOncall), "already has a run in progress: `"+run.ID+"` in <#"+run.Slack.ChannelID+">")
	})
}

// approveGates clicks Approve, as the lead, on every gate message that
// appears, until the run ends.
func (e *e2e) approveGates(ctx context.Context, store func() *state.Store) {
	clicked := map[string]bool{}
	for ctx.Err() == nil {
		st := store()
		var run state.Run
		var refs map[string]string
		_ = st.View(func(tx *state.Tx) error {
			runs, err := tx.Runs()
			if err != nil || len(runs) == 0 {
				return err
			}
			run = runs[len(runs)-1]
			refs, err = tx.MessageRefs(run.ID)
			return err
		})
		if run.Status.Finished() && run.ID != "" {
			return
		}
		for name, ts := range refs {
			step, round, ok := gateRef(name)
			if !ok || clicked[name] {
				continue
			}
			clicked[name] = true
			value := bot.ButtonValue{RunID: run.ID, StepID: step, Round: round}.String()
			id, err := e.slack.Click(ctx, userLead, run.Slack.ChannelID, ts, bot.ActionApprove, value)
			if err == nil {
				_, _ = e.slack.WaitAck(ctx, id)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkEveryMessageOnce proves that the channel holds exactly one message
// per message drbot meant to send, and in order per thread: every outbox
// entry has its line in the post-mortem log thread, every step event its
// line in its phase thread, and no key appears twice anywhere.
func checkEveryMessageOnce(t *testing.T, fake *slackfake.Server, store *state.Store, runID string) {
	t.Helper()
	var run state.Run
	var outbox []state.OutboxEntry
	var refs map[string]string
	_ = store.View(func(tx *state.Tx) error {
		var err error
		run, _, _ = tx.Run(runID)
		if outbox, err = tx.Outbox(false, 0); err != nil {
			return err
		}
		refs, err = tx.MessageRefs(runID)
		return err
	})
	ch := run.Slack.ChannelID
	keyOf := func(m slackfake.Message) string {
		if m.Metadata == nil || m.Metadata.EventType != "drbot_outbox" {
			return ""
		}
		k, _ := m.Metadata.EventPayload["key"].(string)
		return k
	}
	seen := map[string]int{}
	threads := map[string][]string{} // thread ts → keys in order
	for _, m := range fake.Messages(ch) {
		if m.ThreadTS != "" && m.ThreadTS != m.TS {
			continue // a reply broadcast to the channel: counted in its thread
		}
		if k := keyOf(m); k != "" {
			seen[k]++
		}
		for _, r := range fake.Replies(ch, m.TS) {
			if r.TS == m.TS {
				continue
			}
			if k := keyOf(r); k != "" {
				seen[k]++
				threads[m.TS] = append(threads[m.TS], k)
			}
		}
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("message %s is in the channel %d times", k, n)
		}
	}
	var wantLog []string
	wantPhase := map[string][]string{}
	stepOf := map[string]string{} // message key → its step ("" for the run's own)
	urgent := map[string]bool{}
	for _, e := range outbox {
		if e.RunID != runID {
			continue
		}
		if !e.Delivered() {
			t.Errorf("outbox entry %s never delivered", e.Key)
		}
		wantLog = append(wantLog, e.Key+"#log")
		var ev recovery.Event
		if err := json.Unmarshal(e.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{e.Key + "#log", e.Key + "#phase"} {
			stepOf[k], urgent[k] = ev.StepID, bot.Urgent(ev)
		}
		if (strings.HasPrefix(string(ev.Kind), "step.") && ev.Kind != recovery.EventAttachment) || ev.Kind == recovery.EventGateWaiting {
			wantPhase[string(ev.Phase)] = append(wantPhase[string(ev.Phase)], e.Key+"#phase")
		}
	}
	checkThreadOrder(t, "post-mortem log", threads[refs["log"]], wantLog, stepOf, urgent)
	for phase, want := range wantPhase {
		var got []string
		for _, k := range threads[refs["phase/"+phase]] {
			if strings.HasSuffix(k, "#phase") {
				got = append(got, k)
			}
		}
		checkThreadOrder(t, phase, got, want, stepOf, urgent)
	}
}

// checkThreadOrder checks that a thread holds the wanted messages (listed
// in outbox order) in the order the outbox promises: a gate or a failure
// may overtake other steps' lines, but each step's lines, the run's own
// lines and the urgent messages keep their order.
func checkThreadOrder(t *testing.T, thread string, got, want []string, stepOf map[string]string, urgent map[string]bool) {
	t.Helper()
	if !slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))) {
		t.Errorf("%s thread:\n got %d lines %v\nwant %d lines %v", thread, len(got), got, len(want), want)
		return
	}
	pos := map[string]int{}
	for i, k := range got {
		pos[k] = i
	}
	for i, a := range want {
		for _, b := range want[i+1:] {
			if (stepOf[a] == stepOf[b] || urgent[a] && urgent[b]) && pos[a] > pos[b] {
				t.Errorf("%s thread: %s was posted after %s, which happened later", thread, a, b)
			}
		}
	}
}

func (e *e2e) outboxDrained() bool {
	var pending []state.OutboxEntry
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { pending, err = tx.Outbox(true, 0); return })
	return len(pending) == 0
}

func TestEveryMessageArrivesOnceInOrderDespite429sAnd5xx(t *testing.T) {
	e := newE2E(t, testBook(t))
	e.command(userOncall, "start prod-eu")
	e.waitFor("the run", func() bool { return e.run().Slack.ChannelID != "" })
	e.slack.InjectFailures(slackfake.FailurePlan{Rate: 0.2, Kinds: []slackfake.FailureKind{slackfake.RateLimited, slackfake.ServerError}, Seed: 7})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	go e.approveGates(ctx, func() *state.Store { return e.srv.store })
	deadline := time.Now().Add(90 * time.Second)
	for !(e.run().Status == state.RunSucceeded && e.outboxDrained()) {
		if time.Now().After(deadline) {
			t.Fatalf("run %s did not finish and deliver everything", e.run().Status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	injected := 0
	for _, c := range e.slack.Calls() {
		if c.Injected {
			injected++
		}
	}
	if injected < 5 {
		t.Fatalf("only %d injected failures; the test proves little", injected)
	}
	e.slack.InjectFailures(slackfake.FailurePlan{})
	checkEveryMessageOnce(t, e.slack, e.srv.store, e.run().ID)
}
