package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

func TestRejectAsksForAReasonAndParksTheGate(t *testing.T) {
	e := newE2E(t, testBook(t))
	e.command(userOncall, "start prod-eu")
	e.waitFor("the merge gate", func() bool { r := e.run(); return r.ID != "" && e.refs(r.ID)["gate/gitops.merge/1"] != "" })
	run := e.run()
	ts := e.refs(run.ID)["gate/gitops.merge/1"]
	value := bot.ButtonValue{RunID: run.ID, StepID: "gitops.merge", Round: 1}.String()
	e.click(userLead, run.Slack.ChannelID, ts, bot.ActionReject, value)
	e.waitFor("the reason modal", func() bool { return len(e.slack.Views()) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	id, err := e.slack.SubmitView(ctx, userLead, bot.CallbackReject, value, map[string]map[string]string{"reason": {"reason_input": "the MR touches prod values"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.slack.WaitAck(ctx, id); err != nil {
		t.Fatal(err)
	}
	e.waitFor("the rejection", func() bool { return e.step(run.ID, "gitops.merge").Status == state.StepFailed })
	if rec := e.step(run.ID, "gitops.merge"); !strings.Contains(rec.Error, "rejected at the merge gate by "+userLead+": the MR touches prod values") {
		t.Errorf("error = %q", rec.Error)
	}
	e.waitFor("the gate message to say who rejected and why", func() bool {
		m, _ := e.message(run.Slack.ChannelID, ts)
		return strings.Contains(blocksText(m), "Rejected by <@"+userLead+">") && strings.Contains(blocksText(m), "prod values")
	})
}

func TestFailedStepOffersRetryAndRetryRunsItAgain(t *testing.T) {
	var calls atomic.Int32
	book := testBook(t)
	book, err := book.WithActions(map[string]recovery.Action{"namespaces": func(context.Context, *recovery.StepContext) (recovery.Result, error) {
		if calls.Add(1) == 1 {
			return recovery.Result{}, errors.New("creating namespace payments: forbidden")
		}
		return recovery.Result{}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	e := newE2E(t, book)
	e.command(userOncall, "start prod-eu")
	e.waitFor("the failure message", func() bool { r := e.run(); return r.ID != "" && e.refs(r.ID)["failure/namespaces/1"] != "" })
	run := e.run()
	ts := e.refs(run.ID)["failure/namespaces/1"]
	m, _ := e.message(run.Slack.ChannelID, ts)
	for _, action := range []string{bot.ActionRetry, bot.ActionSkip, bot.ActionAbort} {
		if !strings.Contains(blocksText(m), action) {
			t.Errorf("failure message lacks %s", action)
		}
	}
	if !strings.Contains(blocksText(m), "forbidden") {
		t.Errorf("failure message lacks the error: %s", blocksText(m))
	}
	e.waitFor("the run to be blocked", func() bool { return e.run().Status == state.RunBlocked })
	value := bot.ButtonValue{RunID: run.ID, StepID: "namespaces", Round: 1}.String()
	e.click(userRandom, run.Slack.ChannelID, ts, bot.ActionRetry, value)
	e.waitFor("the refusal", func() bool { return anyContains(e.responses(userRandom), "may not retry") })
	e.click(userOncall, run.Slack.ChannelID, ts, bot.ActionRetry, value)
	e.waitFor("the merge gate after the retry", func() bool { return e.step(run.ID, "gitops.merge").Status == state.StepWaiting })
	if calls.Load() != 2 {
		t.Errorf("namespaces ran %d times, want 2", calls.Load())
	}
	e.waitFor("the failure message to say who retried", func() bool {
		m, _ := e.message(run.Slack.ChannelID, ts)
		return strings.Contains(blocksText(m), "Retried by <@"+userOncall+">") && !strings.Contains(blocksText(m), bot.ActionRetry)
	})
}

func TestAbortStatusPlanHistoryAndPostmortemCommands(t *testing.T) {
	e := newE2E(t, testBook(t))
	e.command(userOncall, "start prod-eu")
	e.waitFor("the merge gate", func() bool { return e.run().ID != "" && e.step(e.run().ID, "gitops.merge").Status == state.StepWaiting })
	run := e.run()
	e.command(userOncall, "status")
	e.command(userOncall, "plan prod-eu")
	e.waitFor("status and plan", func() bool {
		return anyContains(e.responses(userOncall), "waiting for approval: `gitops.merge`") && anyContains(e.responses(userOncall), "Critical path (*)")
	})
	e.command(userRandom, `abort --reason "nope"`)
	e.waitFor("the refused abort", func() bool { return anyContains(e.responses(userRandom), "may not abort") })
	e.command(userOncall, `abort --reason "primary is back"`)
	e.waitFor("the abort", func() bool { return e.run().Status == state.RunAborted })
	e.command(userOncall, "history")
	e.command(userOncall, "postmortem")
	e.waitFor("history and post-mortem", func() bool {
		return anyContains(e.responses(userOncall), "*Last runs*") && anyContains(e.responses(userOncall), "# Post-mortem: DR recovery of prod-eu\n\nRun `"+run.ID+"`")
	})
	// The post-mortem of an aborted run says who aborted it, why and where.
	if !anyContains(e.responses(userOncall), "- Outcome: **aborted** by <@"+userOncall+"> at ") || !anyContains(e.responses(userOncall), " — primary is back\n") ||
		!anyContains(e.responses(userOncall), "- Aborted at: `gitops.merge` waiting at the merge gate") {
		t.Errorf("the post-mortem does not say who aborted the run, why and where: %q", e.responses(userOncall))
	}
	var audit []state.AuditEntry
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(run.ID); return })
	if !auditHas(audit, userOncall, "recorded") || !auditHas(audit, userRandom, "denied") {
		t.Errorf("audit = %+v", audit)
	}
}

func TestBotSurvivesASocketModeReconnect(t *testing.T) {
	e := newE2E(t, testBook(t))
	before := e.slack.Connections()
	e.slack.Disconnect("refresh_requested")
	e.waitFor("a new connection", func() bool { return e.slack.Connections() > before })
	e.command(userOncall, "help")
	e.waitFor("help after the reconnect", func() bool { return anyContains(e.responses(userOncall), "/dr start [target]") })
}

func TestOverrideOfTheCriticalServiceRuleNeedsASecondApproverAndIsAudited(t *testing.T) {
	e := newE2E(t, testBook(t))
	e.command(userOncall, "start prod-eu")
	e.waitFor("the run", func() bool { return e.run().ID != "" })
	run := e.run()
	e.command(userOncall, `override --reason "payments is down in both regions"`)
	e.waitFor("the refusal", func() bool { return anyContains(e.responses(userOncall), "two-person rule") })
	if _, ok := bot.CriticalOverride(e.srv.store, run.ID); ok {
		t.Fatal("the initiator's override was recorded")
	}
	e.command(userLead, `override --reason "payments is down in both regions"`)
	e.waitFor("the override", func() bool { return anyContains(e.responses(userLead), "Recorded: the cutover may go ahead") })
	d, ok := bot.CriticalOverride(e.srv.store, run.ID)
	if !ok || d.By != userLead || d.Reason != "payments is down in both regions" {
		t.Fatalf("override = %+v %v", d, ok)
	}
	var audit []state.AuditEntry
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(run.ID); return })
	if !auditHas(audit, userLead, "recorded") || !auditHas(audit, userOncall, "denied") {
		t.Errorf("audit = %+v", audit)
	}
}

func TestHealthAndReadinessFollowTheSlackConnection(t *testing.T) {
	e := newE2EWith(t, testBook(t), func(_ *config.Config, o *serveOptions) { o.listen = "127.0.0.1:0" })
	get := func(path string) int {
		resp, err := http.Get("http://" + e.srv.health + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if get("/healthz") != 200 {
		t.Error("/healthz is not 200")
	}
	e.waitFor("ready", func() bool { return get("/readyz") == 200 })
	e.stop()
	e.stop = nil
	<-e.done
	if _, err := http.Get("http://" + e.srv.health + "/healthz"); err == nil {
		t.Error("the health endpoint outlived serve")
	}
}

func TestInvitesResolveAUserGroupByItsHandle(t *testing.T) {
	e := newE2EWith(t, testBook(t), func(cfg *config.Config, _ *serveOptions) { cfg.Slack.Invite = []string{"@sre"} })
	e.command(userOncall, "start prod-eu")
	e.waitFor("the run", func() bool { return e.run().Slack.ChannelID != "" })
	e.waitFor("the SRE group's member invited", func() bool {
		c, _ := e.slack.Channel(e.run().Slack.ChannelID)
		return strings.Contains(strings.Join(c.Members, ","), userSRE)
	})
}

func TestMetricsAfterARunShowRunsStepsAcksApprovalsAndTheOutbox(t *testing.T) {
	e := newE2EWith(t, testBook(t), func(_ *config.Config, o *serveOptions) { o.listen = "127.0.0.1:0" })
	e.command(userOncall, "start prod-eu")
	e.waitFor("the run", func() bool { return e.run().ID != "" })
	run := e.run()
	for _, gate := range []string{"gitops.merge", "endpoints.apply"} {
		e.waitFor(gate+" waiting", func() bool { return e.refs(run.ID)["gate/"+gate+"/1"] != "" })
		e.click(userLead, run.Slack.ChannelID, e.refs(run.ID)["gate/"+gate+"/1"], bot.ActionApprove, bot.ButtonValue{RunID: run.ID, StepID: gate, Round: 1}.String())
	}
	e.waitFor("the run to finish", func() bool { return e.run().Status == state.RunSucceeded })
	var body string
	e.waitFor("the finished run in the metrics", func() bool {
		resp, err := http.Get("http://" + e.srv.health + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		body = string(raw)
		return strings.Contains(body, `drbot_runs_total{mode="recovery",result="succeeded"} 1`)
	})
	for _, want := range []string{
		`drbot_step_duration_seconds_count{step="cluster.create"} 1`,
		`drbot_approval_wait_seconds_count{gate="merge"} 1`,
		`drbot_approval_wait_seconds_count{gate="cutover"} 1`,
		"drbot_ack_seconds_count",
		"drbot_outbox_pending",
		"drbot_outbox_delivery_latency_seconds_count",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
