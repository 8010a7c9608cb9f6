package main

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
)

func TestRollbackNeedsASecondPersonThenRestoresAndReports(t *testing.T) {
	book, err := recovery.NewRunbook([]recovery.Step{
		steptest.Stub("endpoints.plan", recovery.PhaseCutover, map[string]string{"rollback": `{"rows":[1]}`, "table": "route53 api.example.com A · old-lb → new-lb"}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var restored atomic.Int32
	var gotRecord atomic.Value
	e := newE2EWith(t, book, func(_ *config.Config, o *serveOptions) {
		o.rollback = func(_ context.Context, runID, record string, progress func(string)) error {
			gotRecord.Store(record)
			progress("route53 api.example.com A restored to old-lb")
			restored.Add(1)
			return nil
		}
	})
	e.command(userOncall, "start prod-eu")
	e.waitFor("the run to finish", func() bool { return e.run().Status == state.RunSucceeded })
	run := e.run()
	e.command(userOncall, `rollback --reason "primary is healthy again"`)
	e.waitFor("the rollback request", func() bool { return e.refs(run.ID)["rollback/1"] != "" })
	ts := e.refs(run.ID)["rollback/1"]
	m, _ := e.message(run.Slack.ChannelID, ts)
	if !strings.Contains(blocksText(m), "old-lb → new-lb") || !strings.Contains(blocksText(m), bot.ActionRollbackApprove) {
		t.Errorf("rollback request = %s", blocksText(m))
	}
	value := bot.ButtonValue{RunID: run.ID, StepID: "rollback", Round: 1}.String()
	e.click(userOncall, run.Slack.ChannelID, ts, bot.ActionRollbackApprove, value)
	e.waitFor("the two-person refusal", func() bool { return anyContains(e.responses(userOncall), "two-person rule") })
	e.click(userLead, run.Slack.ChannelID, ts, bot.ActionRollbackApprove, value)
	e.click(userLead, run.Slack.ChannelID, ts, bot.ActionRollbackApprove, value) // a double click
	e.waitFor("the rollback to finish", func() bool {
		return anyContains(e.replyTexts(run.Slack.ChannelID, e.refs(run.ID)["phase/cutover"]), "rollback finished and verified")
	})
	if restored.Load() != 1 || gotRecord.Load() != `{"rows":[1]}` {
		t.Errorf("rollback ran %d times with record %v", restored.Load(), gotRecord.Load())
	}
	if got := e.replyTexts(run.Slack.ChannelID, e.refs(run.ID)["log"]); !anyContains(got, "`rollback.finished`") || !anyContains(got, "restored to old-lb") {
		t.Errorf("post-mortem log lacks the rollback: %q", got)
	}
	e.waitFor("the request to say who approved", func() bool {
		m, _ := e.message(run.Slack.ChannelID, ts)
		return strings.Contains(blocksText(m), "Approved by <@"+userLead+">") && !strings.Contains(blocksText(m), bot.ActionRollbackApprove)
	})
	// The decided request still says who asked, why and what is undone.
	if m, _ := e.message(run.Slack.ChannelID, ts); !strings.Contains(blocksText(m), "requested* by <@"+userOncall+">: primary is healthy again") ||
		!strings.Contains(blocksText(m), "old-lb → new-lb") {
		t.Errorf("decided rollback request = %s", blocksText(m))
	}
}
