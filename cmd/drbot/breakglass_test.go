package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
)

// cliConfig writes the example config with the test's state file and
// break-glass names, for `drbot run -config`.
func cliConfig(t *testing.T, statePath string) string {
	t.Helper()
	raw, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(raw), "path: /var/lib/drbot/drbot.db", "path: "+statePath, 1)
	text = strings.Replace(text, "    alice: U01ALICE0001\n    bob: U01BOB00002\n",
		"    oncall: "+userOncall+"\n    lead: "+userLead+"\n    random: "+userRandom+"\n", 1)
	if !strings.Contains(text, statePath) || !strings.Contains(text, "lead: "+userLead) {
		t.Fatal("the example config changed shape; adjust cliConfig")
	}
	path := filepath.Join(t.TempDir(), "drbot.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitLong waits for a condition that may sit behind the outbox's backoff
// after an outage.
func (e *e2e) waitLong(what string, cond func() bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := e.slack.WaitFor(ctx, what, cond); err != nil {
		e.t.Fatal(err)
	}
}

func (e *e2e) audit(runID string) []state.AuditEntry {
	var audit []state.AuditEntry
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(runID); return })
	return audit
}

func findAudit(audit []state.AuditEntry, action, actor, result, operator string) bool {
	for _, a := range audit {
		if a.Action == action && a.Actor == actor && a.Result == result && a.Detail["operator"] == operator && a.Detail["source"] == "cli" {
			return true
		}
	}
	return false
}

func TestBreakGlassCLIDrivesARunThroughItsGatesWhileSlackIsDownAndTheChannelCatchesUp(t *testing.T) {
	e := newE2EWith(t, testBook(t), func(cfg *config.Config, _ *serveOptions) {
		cfg.Access.BreakGlass = map[string]string{"oncall": userOncall, "lead": userLead, "random": userRandom}
	})
	cfgFile := cliConfig(t, e.cfg.State.Path)
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return drbot(t, append([]string{"run", "-config", cfgFile}, args...)...)
	}

	e.slack.SetDown(true)

	// Unknown names and people the policy refuses change nothing.
	code, _, errOut := cli("-as", "mallory", "start", "prod-eu")
	if code != 1 || !strings.Contains(errOut, `unknown break-glass operator "mallory"`) || !strings.Contains(errOut, "lead, oncall, random") {
		t.Fatalf("unknown name: code=%d stderr=%q", code, errOut)
	}
	code, _, errOut = cli("-as", "random", "start", "prod-eu")
	if code != 1 || !strings.Contains(errOut, "may not start a recovery") {
		t.Fatalf("start by a non-starter: code=%d stderr=%q", code, errOut)
	}
	if e.run().ID != "" {
		t.Fatal("a refused start made a run")
	}

	code, out, errOut := cli("-as", "oncall", "start", "prod-eu", "-reason", "eu-west-1 is down")
	if code != 0 || !strings.Contains(out, "Started the DR recovery of prod-eu") {
		t.Fatalf("start: code=%d out=%q stderr=%q", code, out, errOut)
	}
	run := e.run()
	if run.Initiator != userOncall || run.Slack.ChannelID != "" || !strings.HasPrefix(run.Slack.ChannelName, "dr-prod-eu-") {
		t.Fatalf("run = %+v; want oncall's run with a channel named but not yet created", run)
	}

	e.waitFor("the merge gate", func() bool { return e.step(run.ID, "gitops.merge").Status == state.StepWaiting })
	code, out, _ = cli("-as", "lead", "status")
	if code != 0 || !strings.Contains(out, run.ID) || !strings.Contains(out, "waiting for approval: `gitops.merge`") || !strings.Contains(out, "created when drbot reaches Slack") {
		t.Fatalf("status: code=%d out=%q", code, out)
	}
	code, _, errOut = cli("-as", "random", "approve")
	if code != 1 || !strings.Contains(errOut, "may not decide the merge gate") {
		t.Fatalf("approve by a non-approver: code=%d stderr=%q", code, errOut)
	}
	if rec := e.step(run.ID, "gitops.merge"); rec.Status != state.StepWaiting {
		t.Fatalf("the gate moved after a refused approval: %s", rec.Status)
	}
	code, out, errOut = cli("-as", "lead", "approve")
	if code != 0 || !strings.Contains(out, "Recorded: approve of `gitops.merge`") {
		t.Fatalf("approve by the lead: code=%d out=%q stderr=%q", code, out, errOut)
	}

	e.waitFor("the cutover gate", func() bool { return e.step(run.ID, "endpoints.apply").Status == state.StepWaiting })
	code, _, errOut = cli("-as", "oncall", "approve", "-step", "endpoints.apply")
	if code != 1 || !strings.Contains(errOut, "two-person rule") {
		t.Fatalf("the starter approving the cutover: code=%d stderr=%q", code, errOut)
	}
	code, out, errOut = cli("-as", "lead", "approve", "-run", run.ID, "-step", "endpoints.apply")
	if code != 0 || !strings.Contains(out, "Recorded: approve of `endpoints.apply`") {
		t.Fatalf("cutover approval: code=%d out=%q stderr=%q", code, out, errOut)
	}
	e.waitFor("the run to finish", func() bool { return e.run().Status == state.RunSucceeded })

	// Slack is still down: nothing reached it, everything waits in the outbox.
	if _, ok := e.slack.Channel(run.Slack.ChannelName); ok {
		t.Fatal("the channel exists although Slack was down the whole run")
	}
	if e.outboxDrained() {
		t.Fatal("the outbox is empty although Slack was down")
	}

	// Every action is audited with the operator, the Slack user and the source.
	audit := e.audit(run.ID)
	for _, want := range []struct{ action, actor, result, operator string }{
		{"breakglass.start", userOncall, "done", "oncall"},
		{"breakglass.approve", userRandom, "refused", "random"},
		{"breakglass.approve", userLead, "done", "lead"},
		{"breakglass.approve", userOncall, "refused", "oncall"},
	} {
		if !findAudit(audit, want.action, want.actor, want.result, want.operator) {
			t.Errorf("no audit entry %+v in %+v", want, audit)
		}
	}
	all := e.audit("")
	if !findAudit(all, "breakglass.start", "unknown", "denied", "mallory") || !findAudit(all, "breakglass.start", userRandom, "refused", "random") {
		t.Errorf("the refused starts are not audited: %+v", all)
	}
	approvals := 0
	for _, a := range audit {
		if a.Action == "decide.approve" && a.Actor == userLead && a.Result == "recorded" && a.Detail["reason"] == "via break-glass CLI (lead)" {
			approvals++
		}
	}
	if approvals != 2 {
		t.Errorf("the engine recorded %d approvals marked as the lead's CLI decisions, want 2: %+v", approvals, audit)
	}

	// Slack returns: the channel is made and catches up from the outbox.
	e.slack.SetDown(false)
	e.waitLong("the incident channel", func() bool { _, ok := e.slack.Channel(run.Slack.ChannelName); return ok })
	e.waitLong("the outbox to drain", e.outboxDrained)
	ch := e.run().Slack.ChannelID
	c, _ := e.slack.Channel(run.Slack.ChannelName)
	if ch == "" || ch != c.ID {
		t.Fatalf("run's channel id = %q, the channel made = %q", ch, c.ID)
	}
	if !strings.Contains(c.Topic, run.ID) || !strings.Contains(c.Topic, "oncall via break-glass CLI") || !strings.Contains(c.Purpose, "eu-west-1 is down") {
		t.Errorf("topic %q, purpose %q", c.Topic, c.Purpose)
	}
	members := strings.Join(c.Members, ",")
	for _, u := range []string{userOncall, userLead, userSRE} {
		if !strings.Contains(members, u) {
			t.Errorf("%s is not invited: %v", u, c.Members)
		}
	}
	refs := e.refs(run.ID)
	if len(c.Pins) != 1 || c.Pins[0] != refs["board"] {
		t.Errorf("pins = %v, board = %s", c.Pins, refs["board"])
	}
	e.waitLong("the board to show the end", func() bool {
		m, _ := e.message(ch, e.refs(run.ID)["board"])
		return strings.Contains(blocksText(m), "SUCCEEDED")
	})
	for _, gate := range []string{"gate/gitops.merge/1", "gate/endpoints.apply/1"} {
		m, ok := e.message(ch, refs[gate])
		text := blocksText(m)
		if !ok || !strings.Contains(text, "Approved by <@"+userLead+"> via break-glass CLI (lead)") || strings.Contains(text, bot.ActionApprove) {
			t.Errorf("%s does not name the CLI operator (or still has buttons): %s", gate, text)
		}
	}
	e.waitFor("the post-mortem log to have the CLI decision", func() bool {
		return anyContains(e.replyTexts(ch, refs["log"]), "`decision.recorded` · endpoints.apply · by <@"+userLead+"> · approve · reason: via break-glass CLI (lead)")
	})
	checkEveryMessageOnce(t, e.slack, e.srv.store, run.ID)

	// With serve stopped, status reads the state file; actions say why not.
	e.shutdown()
	code, out, errOut = cli("-as", "lead", "status", "-run", run.ID)
	if code != 0 || !strings.Contains(out, "No drbot serve is running") || !strings.Contains(out, run.ID+"  recovery of prod-eu — succeeded") {
		t.Fatalf("offline status: code=%d out=%q stderr=%q", code, out, errOut)
	}
	code, _, errOut = cli("-as", "lead", "abort", "-reason", "test")
	if code != 1 || !strings.Contains(errOut, "no drbot serve is running") {
		t.Fatalf("offline abort: code=%d stderr=%q", code, errOut)
	}
	code, _, errOut = cli("-as", "mallory", "status")
	if code != 1 || !strings.Contains(errOut, `unknown break-glass operator "mallory"`) {
		t.Fatalf("offline status by an unknown name: code=%d stderr=%q", code, errOut)
	}
}

func TestBreakGlassCLIRetriesSkipsRejectsAbortsAndRollsBackUnderTheSlackRules(t *testing.T) {
	var nsCalls, restored atomic.Int32
	fail := func(err error) recovery.Action {
		return func(context.Context, *recovery.StepContext) (recovery.Result, error) { return recovery.Result{}, err }
	}
	book, err := recovery.NewRunbook([]recovery.Step{
		{ID: "namespaces", Title: "Namespaces", Phase: recovery.PhaseBootstrap, Action: func(context.Context, *recovery.StepContext) (recovery.Result, error) {
			if nsCalls.Add(1) == 1 {
				return recovery.Result{}, errors.New("creating namespace payments: forbidden")
			}
			return recovery.Result{}, nil
		}},
		{ID: "extras", Title: "Optional add-ons", Phase: recovery.PhaseBootstrap, Action: fail(errors.New("installing add-on: chart not found"))},
		{ID: "gitops.merge", Title: "Merge the MR", Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge, DependsOn: []string{"namespaces", "extras"}, Action: fail(nil)},
		steptest.Stub("endpoints.plan", recovery.PhaseCutover, map[string]string{"rollback": `{"rows":[1]}`, "table": "route53 api.example.com A · old-lb → new-lb"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	e := newE2EWith(t, book, func(cfg *config.Config, o *serveOptions) {
		cfg.Access.BreakGlass = map[string]string{"oncall": userOncall, "lead": userLead, "random": userRandom}
		o.rollback = func(_ context.Context, _, _ string, progress func(string)) error {
			progress("route53 api.example.com A restored to old-lb")
			restored.Add(1)
			return nil
		}
	})
	cfgFile := cliConfig(t, e.cfg.State.Path)
	cli := func(wantCode int, want string, args ...string) {
		t.Helper()
		code, out, errOut := drbot(t, append([]string{"run", "-config", cfgFile}, args...)...)
		if code != wantCode || !strings.Contains(out+errOut, want) {
			t.Fatalf("drbot run %s: code=%d out=%q stderr=%q; want code %d and %q", strings.Join(args, " "), code, out, errOut, wantCode, want)
		}
	}

	// Slack is up: the channel of a CLI start opens with the first message.
	cli(0, "Started the DR recovery", "-as", "oncall", "start")
	run := e.run()
	e.waitFor("the channel", func() bool { return e.run().Slack.ChannelID != "" })
	ch := e.run().Slack.ChannelID

	e.waitFor("both failures", func() bool {
		return e.step(run.ID, "namespaces").Status == state.StepFailed && e.step(run.ID, "extras").Status == state.StepFailed
	})
	cli(1, "several steps of run `"+run.ID+"` has failed; name one with -step: extras, namespaces", "-as", "oncall", "retry")
	cli(0, "Recorded: retry of `namespaces`", "-as", "oncall", "retry", "-step", "namespaces")
	e.waitFor("the retried step", func() bool { return e.step(run.ID, "namespaces").Status == state.StepSucceeded })
	cli(1, "may not skip runs", "-as", "random", "skip")
	cli(0, "Recorded: skip of `extras`", "-as", "lead", "skip")

	e.waitFor("the merge gate", func() bool { return e.step(run.ID, "gitops.merge").Status == state.StepWaiting })
	cli(1, "reject needs -reason", "-as", "lead", "reject")
	cli(0, "Recorded: reject of `gitops.merge`", "-as", "lead", "reject", "-reason", "the MR touches prod values")
	e.waitFor("the rejection", func() bool { return e.step(run.ID, "gitops.merge").Status == state.StepFailed })
	cli(0, "Recorded: retry of `gitops.merge`", "-as", "oncall", "retry")
	e.waitFor("the gate asked again", func() bool {
		rec := e.step(run.ID, "gitops.merge")
		return rec.Status == state.StepWaiting && rec.GateRound == 2
	})
	cli(0, "Recorded: approve of `gitops.merge`", "-as", "lead", "approve")
	e.waitFor("the run to finish", func() bool { return e.run().Status == state.RunSucceeded })
	e.waitFor("the rejected gate to name the CLI operator and the reason", func() bool {
		m, _ := e.message(ch, e.refs(run.ID)["gate/gitops.merge/1"])
		return strings.Contains(blocksText(m), "Rejected by <@"+userLead+"> via break-glass CLI (lead) at") && strings.Contains(blocksText(m), "— the MR touches prod values")
	})
	e.waitFor("the skipped step to name the CLI operator", func() bool {
		m, _ := e.message(ch, e.refs(run.ID)["failure/extras/1"])
		return strings.Contains(blocksText(m), "Skipped by <@"+userLead+"> via break-glass CLI (lead)")
	})

	// Rollback: asked by one person, confirmed by another, as with the buttons.
	cli(1, "rollback needs -reason", "-as", "oncall", "rollback")
	cli(0, "Rollback of `"+run.ID+"` requested", "-as", "oncall", "rollback", "-reason", "primary is healthy again")
	cli(1, "two-person rule", "-as", "oncall", "rollback", "-confirm", "approve")
	cli(0, "Recorded: rollback request 1 of run `"+run.ID+"` approved", "-as", "lead", "rollback", "-confirm", "approve")
	e.waitFor("the rollback to finish", func() bool {
		return anyContains(e.replyTexts(ch, e.refs(run.ID)["phase/cutover"]), "rollback finished and verified")
	})
	if restored.Load() != 1 {
		t.Errorf("the rollback ran %d times", restored.Load())
	}
	if got := e.replyTexts(ch, e.refs(run.ID)["phase/cutover"]); !anyContains(got, "rollback approved by <@"+userLead+"> via break-glass CLI (lead)") {
		t.Errorf("the cutover thread does not name the CLI operator: %q", got)
	}
	e.waitFor("the request to say who approved", func() bool {
		m, _ := e.message(ch, e.refs(run.ID)["rollback/1"])
		return strings.Contains(blocksText(m), "Approved by <@"+userLead+"> via break-glass CLI (lead)")
	})

	// Abort needs a reason and ends the run.
	cli(0, "Started", "-as", "oncall", "start", "prod-eu")
	second := e.run()
	if second.ID == run.ID {
		t.Fatal("no second run")
	}
	cli(1, "abort needs -reason", "-as", "lead", "abort")
	cli(0, "Recorded: abort of run", "-as", "lead", "abort", "-reason", "drill of the break-glass path")
	e.waitFor("the abort", func() bool { return e.run().Status == state.RunAborted })
	if !findAudit(e.audit(second.ID), "breakglass.abort", userLead, "done", "lead") {
		t.Errorf("the abort is not audited: %+v", e.audit(second.ID))
	}
}
