package main

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/world"
)

// A drill aborted after its cutover, when the verification fails: the
// post-mortem is still written and uploaded, and the teardown still runs,
// puts the drill's endpoints back and leaves nothing behind, though the
// steps they depend on never finished. The run ends aborted.
func TestDrillAbortedAfterItsCutoverIsStillTornDownAndGetsItsPostmortem(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and a whole drill through every stand-in (about 70 s)")
	}
	w, e, _, clk := dxStart(t, 4, 2*time.Second, map[string]recovery.Action{
		standard.EndpointsVerify: func(context.Context, *recovery.StepContext) (recovery.Result, error) {
			return recovery.Result{}, recovery.Permanent(errors.New("https://api.dr.example.com/healthz answered 503 through the new endpoint"))
		},
	})

	clk.Set(time.Date(2026, 12, 2, 9, 0, 30, 0, time.UTC))
	e.waitFor("the drill announcement", func() bool {
		for _, m := range e.slack.Messages(world.ChanDR) {
			if strings.Contains(blocksText(m), bot.ActionDrillPostpone) {
				return true
			}
		}
		return false
	})
	before := w.endpoints(t)
	clk.Set(time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC))
	e.waitFor("the drill run", func() bool { return e.run().Slack.ChannelID != "" })
	run := e.run()

	deadline := time.Now().Add(20 * time.Minute)
	for r := e.run(); r.Status != state.RunBlocked; r = e.run() {
		if r.Status.Finished() || time.Now().After(deadline) {
			w.failedSteps(t, e, r.ID)
			t.Fatalf("the drill is %s, want it blocked at endpoints.verify", r.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if apply := e.step(run.ID, standard.EndpointsApply); apply.Status != state.StepSucceeded {
		w.failedSteps(t, e, run.ID)
		t.Fatalf("endpoints.apply is %s: the drill did not get as far as its cutover", apply.Status)
	}
	var ts string
	e.waitFor("the failure message", func() bool { ts = e.refs(run.ID)["failure/"+standard.EndpointsVerify+"/1"]; return ts != "" })
	e.click(world.UserLead, run.Slack.ChannelID, ts, bot.ActionAbort, bot.ButtonValue{RunID: run.ID, StepID: standard.EndpointsVerify, Round: 1}.String())

	e.waitLong("the aborted drill to end", func() bool { return e.run().Status.Finished() })
	got := e.run()
	if got.Status != state.RunAborted || got.Error != "aborted by "+world.UserLead {
		w.failedSteps(t, e, run.ID)
		t.Fatalf("drill = %s %q, want aborted by %s with nothing failed after the abort", got.Status, got.Error, world.UserLead)
	}
	for _, id := range []string{standard.Postmortem, standard.Teardown} {
		if rec := e.step(run.ID, id); rec.Status != state.StepSucceeded || rec.Attempt != 1 {
			t.Errorf("%s = %s after %d attempt(s), want it run once after the abort", id, rec.Status, rec.Attempt)
		}
	}
	e.waitFor("the post-mortem file in the log thread", func() bool {
		for _, f := range e.slack.Files() {
			if f.Filename == "postmortem-"+run.ID+".md" && f.ThreadTS == e.refs(run.ID)["log"] && f.ThreadTS != "" &&
				bytes.Contains(f.Content, []byte("- Outcome: **aborted** by <@"+world.UserLead+">")) &&
				bytes.Contains(f.Content, []byte("- Aborted at: `endpoints.verify` failed")) {
				return true
			}
		}
		return false
	})
	w.checkCutoverRestored(t, before, e.step(run.ID, standard.Teardown))
	w.checkNothingLeft(t)
}

// A drill aborted while EKS is still creating its cluster, the step that
// takes longest: the teardown deletes the cluster EKS is still creating,
// closes the merge request made meanwhile, and the run ends aborted with
// its post-mortem.
func TestDrillAbortedWhileItsClusterIsCreatingDeletesTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and a drill through every stand-in (about 20 s)")
	}
	w, e, _, clk := dxStart(t, 2, 10*time.Minute, nil)
	clk.Set(time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC))
	e.waitFor("the drill run", func() bool { return e.run().Slack.ChannelID != "" })
	run := e.run()
	eksAPI := awseks.NewFromConfig(w.AWS.Config(w.AdminAWS()))
	status := func() string {
		out, err := eksAPI.DescribeCluster(p12Ctx(t), &awseks.DescribeClusterInput{Name: aws.String(w.Cluster)})
		if err != nil {
			return err.Error()
		}
		return string(out.Cluster.Status)
	}
	e.waitFor("the cluster being created and the merge request", func() bool {
		return status() == "CREATING" && len(w.GitLab.MergeRequests(world.Project)) == 1
	})

	e.command(world.UserLead, `abort --reason "drill cancelled"`)
	e.waitLong("the aborted drill to end", func() bool { return e.run().Status.Finished() })
	if got := e.run(); got.Status != state.RunAborted || got.Error != "aborted by "+world.UserLead {
		w.failedSteps(t, e, run.ID)
		t.Fatalf("drill = %s %q, want aborted by %s with nothing failed after the abort", got.Status, got.Error, world.UserLead)
	}
	td := e.step(run.ID, standard.Teardown)
	if td.Status != state.StepSucceeded {
		t.Fatalf("teardown = %s: %s", td.Status, td.Error)
	}
	if st := status(); !strings.Contains(st, "ResourceNotFoundException") {
		t.Errorf("cluster %s after the teardown: %s, want it gone", w.Cluster, st)
	}
	if w.AWS.CallsTo(awsfake.ServiceEKS, "CreateNodegroup") != 0 {
		t.Error("cluster.create went on to create the node group after the abort")
	}
	mrs := w.GitLab.MergeRequests(world.Project)
	if len(mrs) != 1 || mrs[0].State == "opened" {
		t.Errorf("merge requests = %+v, want the drill's one closed", mrs)
	}
	if br := w.GitLab.Branches(world.Project); !slices.Equal(br, []string{"main"}) {
		t.Errorf("branches = %v, want only main", br)
	}
	e.waitFor("the post-mortem file", func() bool {
		for _, f := range e.slack.Files() {
			if f.Filename == "postmortem-"+run.ID+".md" && bytes.Contains(f.Content, []byte("- Aborted at: `cluster.create`")) {
				return true
			}
		}
		return false
	})
}
