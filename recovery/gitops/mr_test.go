package gitops_test

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
)

const runID = "prod-eu-20260101-0000-a1b2c3"

func TestGenerateFailsListingEveryMalformedTemplateAtOnce(t *testing.T) {
	w := newWorld(t, 150, 3)
	g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
	res := steptest.Run(t, steptest.Options{}, steps(g)...)

	rec := res.Steps[gitops.StepGenerate]
	if rec.Status != state.StepFailed || rec.Attempt != 1 {
		t.Fatalf("generate %s after %d attempt(s), want failed once (permanent)", rec.Status, rec.Attempt)
	}
	for _, f := range []string{"broken-0.yaml", "broken-1.yaml", "broken-2.yaml", "3 template(s) cannot be used"} {
		if !strings.Contains(rec.Error, f) {
			t.Errorf("error lacks %q: %s", f, rec.Error)
		}
	}
	if n := w.calls("POST", "/repository/commits"); n != 0 {
		t.Errorf("%d commits made, want none", n)
	}
}

func TestMergeRequestIsOneCommitOf150FilesAndOneMRAndARerunChangesNothing(t *testing.T) {
	w := newWorld(t, 150, 3)
	cfg := testConfig()
	cfg.GitLab.FailOnUnparseable = false
	cfg.GitLab.Overrides = map[string]map[string]any{"svc-0003": {"replicaCount": 3}}
	g := gitops.New(cfg, gitops.FromClient(w.client), gitops.Options{})

	res := startPinned(t, runID, steps(g)...).settle(false)
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s; steps %+v", res.Run.Status, res.Steps)
	}
	gen, mr := res.Steps[gitops.StepGenerate].Outputs, res.Steps[gitops.StepMR].Outputs
	mainHead, _ := w.srv.Branch(project, "main")
	if gen["source_sha"] != mainHead || gen["count"] != "150" || !strings.HasPrefix(gen["hash"], "sha256:") {
		t.Errorf("generate outputs = %v", gen)
	}
	if gen["namespaces"] != `{"catalog":30,"identity":30,"orders":30,"payments":30,"search":30}` {
		t.Errorf("namespaces = %s", gen["namespaces"])
	}
	if !strings.Contains(gen["skipped"], "svc-0000-pair.yaml: ConfigMap (document 3)") || !strings.Contains(gen["malformed"], "broken-2.yaml") {
		t.Errorf("skipped = %s malformed = %s", gen["skipped"], gen["malformed"])
	}
	if len(gen["skipped"])+len(gen["malformed"])+len(gen["namespaces"]) > 4096 {
		t.Errorf("generate journals %d bytes of lists; keep the journal small", len(gen["skipped"])+len(gen["malformed"]))
	}

	branch := "drbot/" + runID
	head, ok := w.srv.Branch(project, branch)
	if !ok {
		t.Fatalf("no branch %s; branches %v", branch, w.srv.Branches(project))
	}
	if n := w.calls("POST", "/repository/commits"); n != 1 {
		t.Fatalf("%d commits, want 1", n)
	}
	mrs := w.srv.MergeRequests(project)
	if len(mrs) != 1 {
		t.Fatalf("%d merge requests, want 1", len(mrs))
	}
	m := mrs[0]
	if len(m.ChangedPaths) != 150 || m.SourceBranch != branch || m.TargetBranch != "main" || m.Author != "drbot" || m.SHA != head {
		t.Errorf("MR: %d changed paths, %s → %s by %s at %s; want 150 from %s to main at %s", len(m.ChangedPaths), m.SourceBranch, m.TargetBranch, m.Author, m.SHA, branch, head)
	}
	for _, want := range []string{"| payments | 30 |", "**Added (150):**", "Malformed templates left out (3)", "broken-1.yaml", "Skipped documents", runID} {
		if !strings.Contains(m.Description, want) {
			t.Errorf("MR description lacks %q:\n%s", want, m.Description)
		}
	}
	if mr["mr_iid"] != fmt.Sprint(m.IID) || mr["sha"] != head || !strings.HasSuffix(mr["mr_url"], fmt.Sprintf("/-/merge_requests/%d", m.IID)) {
		t.Errorf("mr outputs = %v", mr)
	}
	if !strings.HasPrefix(mr["summary"], "150 Application(s) in 5 namespace(s) → name dr-eks · vs main: 150 new, 0 changed, 0 removed") {
		t.Errorf("summary = %q", mr["summary"])
	}
	if mr["approvals"] != "none required in GitLab (0 given)" || mr["merge_status"] != "mergeable" {
		t.Errorf("gate context: approvals %q status %q", mr["approvals"], mr["merge_status"])
	}
	if res.Steps[gitops.StepMR].Handle != mr["mr_iid"] {
		t.Errorf("handle %q, want the MR iid", res.Steps[gitops.StepMR].Handle)
	}

	// The branch holds exactly the generated set, byte for byte, and the override.
	files := w.srv.Files(project, branch)
	set := gitops.Generate(sources(w.srv.Files(project, "main")), gitops.GenerateOptions{
		DRPath: "apps/dr", Destination: gitops.Destination{Name: drCluster}, Overrides: cfg.GitLab.Overrides})
	for _, f := range set.Files {
		if files[f.Path] != string(f.Content) {
			t.Fatalf("%s on the branch differs from the generated file", f.Path)
		}
	}
	if !strings.Contains(files["apps/dr/identity/svc-0003.yaml"], "replicaCount: 3") {
		t.Errorf("override missing:\n%s", files["apps/dr/identity/svc-0003.yaml"])
	}

	// The same run again on a journal that lost the handle: no commit, no MR, same outputs.
	res2 := startPinned(t, runID, steps(g)...).settle(false)
	if res2.Run.Status != state.RunSucceeded {
		t.Fatalf("second run %s; steps %+v", res2.Run.Status, res2.Steps)
	}
	if n := w.calls("POST", "/repository/commits"); n != 1 {
		t.Errorf("%d commits after the re-run, want still 1", n)
	}
	if n := w.calls("POST", "/merge_requests"); n != 1 || len(w.srv.MergeRequests(project)) != 1 {
		t.Errorf("%d MR creations after the re-run, want still 1", n)
	}
	if n := w.calls("PUT", fmt.Sprintf("/merge_requests/%d", m.IID)); n != 0 {
		t.Errorf("description rewritten %d time(s) though unchanged", n)
	}
	mr2 := res2.Steps[gitops.StepMR].Outputs
	if mr2["mr_iid"] != mr["mr_iid"] || mr2["sha"] != head || mr2["summary"] != mr["summary"] {
		t.Errorf("re-run outputs %v, want those of the first run %v", mr2, mr)
	}
	if res2.Steps[gitops.StepMR].Handle != mr["mr_iid"] {
		t.Errorf("re-run journaled handle %q, want the found MR %s", res2.Steps[gitops.StepMR].Handle, mr["mr_iid"])
	}
}

func TestRerunAfterTemplatesChangedUpdatesTheBranchWithOnlyTheDifference(t *testing.T) {
	w := newWorld(t, 30, 0)
	g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
	startPinned(t, runID, steps(g)...).settle(false)
	branch := "drbot/" + runID
	before, _ := w.srv.Branch(project, branch)

	// On main: one image tag bumped (svc-0003), one service dropped.
	changed := strings.Replace(gitopstest.Application(3, false), `tag: "2.3.1"`, `tag: "2.3.2"`, 1)
	if changed == gitopstest.Application(3, false) {
		t.Fatal("test template did not change")
	}
	w.srv.CommitFiles(project, "main", map[string]string{"apps/primary/identity/svc-0003.yaml": changed}, "bump svc-0003")
	_, _, err := w.client.Commits.CreateCommit(project, &gitlab.CreateCommitOptions{Branch: gitlab.Ptr("main"), CommitMessage: gitlab.Ptr("drop svc-0007"),
		Actions: []*gitlab.CommitActionOptions{{Action: gitlab.Ptr(gitlab.FileDelete), FilePath: gitlab.Ptr("apps/primary/search/svc-0007.yaml")}}})
	if err != nil {
		t.Fatal(err)
	}

	res := startPinned(t, runID, steps(g)...).settle(false)
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s: %+v", res.Run.Status, res.Steps)
	}
	after, _ := w.srv.Branch(project, branch)
	if after == before {
		t.Fatal("branch not updated")
	}
	files := w.srv.Files(project, branch)
	if !strings.Contains(files["apps/dr/identity/svc-0003.yaml"], `tag: "2.3.2"`) {
		t.Errorf("svc-0003 not updated:\n%s", files["apps/dr/identity/svc-0003.yaml"])
	}
	if _, ok := files["apps/dr/search/svc-0007.yaml"]; ok {
		t.Error("svc-0007 still on the branch after its template was deleted")
	}
	if len(w.srv.MergeRequests(project)) != 1 {
		t.Errorf("%d MRs, want the one reused", len(w.srv.MergeRequests(project)))
	}
	// The description compares with main (where nothing is merged yet): 29 new.
	if mr := res.Steps[gitops.StepMR].Outputs; !strings.Contains(mr["summary"], "29 Application(s)") || !strings.Contains(mr["summary"], "29 new, 0 changed, 0 removed") {
		t.Errorf("summary = %q", mr["summary"])
	}
}

func TestMergeGate(t *testing.T) {
	t.Run("ApproveMergesWithTheReviewedSHAAndTheGateShowsTheMR", func(t *testing.T) {
		w := newWorld(t, 20, 0)
		w.srv.SetApprovalsRequired(project, 1)
		g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
		// A person approves in GitLab before the gate (approvals are GitLab's, the gate is drbot's).
		approve := recovery.Step{ID: "test.approve-in-gitlab", Phase: recovery.PhaseDeploy, DependsOn: []string{gitops.StepMR},
			Action: func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
				iid := mustIID(t, sc)
				_, _, err := w.person.MergeRequestApprovals.ApproveMergeRequest(project, iid, nil)
				return recovery.Result{}, err
			}}
		res := startPinned(t, runID, append(steps(g), approve, mergeStep(g, approve.ID))...).settle(true)
		if res.Run.Status != state.RunSucceeded {
			t.Fatalf("run %s: %+v", res.Run.Status, res.Steps)
		}
		m := w.srv.MergeRequests(project)[0]
		if m.State != "merged" || m.SHA != res.Steps[gitops.StepMR].Outputs["sha"] {
			t.Fatalf("MR %s at %s, want merged at the reviewed %s", m.State, m.SHA, res.Steps[gitops.StepMR].Outputs["sha"])
		}
		main := w.srv.Files(project, "main")
		if _, ok := main["apps/dr/payments/svc-0000.yaml"]; !ok {
			t.Error("main lacks the DR files after the merge")
		}
		out := res.Steps[gitops.StepMerge].Outputs
		if out["merged_by"] != "drbot" || out["merge_commit_sha"] != m.MergeCommitSHA {
			t.Errorf("merge outputs = %v", out)
		}
		// The gate event carried the MR's link, summary and GitLab approval state.
		var gate *recovery.Event
		for i, ev := range res.Events {
			if ev.Kind == recovery.EventGateWaiting && ev.StepID == gitops.StepMerge {
				gate = &res.Events[i]
			}
		}
		if gate == nil {
			t.Fatal("no gate event")
		}
		f := gate.Fields
		if !strings.Contains(f["gitops.mr.mr_url"], "/-/merge_requests/1") || !strings.HasPrefix(f["gitops.mr.summary"], "20 Application(s)") ||
			f["gitops.mr.approvals"] != "1 required in GitLab, 1 left" || f["gitops.mr.namespaces"] != "catalog 4 · identity 4 · orders 4 · payments 4 · search 4" {
			t.Errorf("gate fields = %v", f)
		}
	})

	t.Run("BranchMovedAfterReviewReopensTheGateThenApprovalMergesTheNewHead", func(t *testing.T) {
		w := newWorld(t, 10, 0)
		g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
		var moved string
		push := recovery.Step{ID: "test.push-to-branch", Phase: recovery.PhaseDeploy, DependsOn: []string{gitops.StepMR},
			Action: func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
				moved = w.srv.CommitFiles(project, "drbot/"+runID, map[string]string{"apps/dr/payments/extra.yaml": "kind: Note\n"}, "someone else's change")
				return recovery.Result{}, nil
			}}
		h := startPinned(t, runID, append(steps(g), push, mergeStep(g, push.ID))...)
		// The gate asks again (round 2) with the reason, while the MR stays open.
		var reopened string
		h.OnPoll = func(res steptest.Result) {
			rec := res.Steps[gitops.StepMerge]
			if reopened == "" && rec.Status == state.StepWaiting && rec.GateRound == 2 {
				reopened = rec.Error
				if m := w.srv.MergeRequests(project)[0]; m.State != "opened" {
					t.Errorf("MR %s while the gate asks again, want still open", m.State)
				}
			}
		}
		res := h.settle(true)
		reviewed := res.Steps[gitops.StepMR].Outputs["sha"]
		want := fmt.Sprintf("the branch changed since the MR was reviewed (expected %s, head is %s): review the new diff", reviewed[:12], moved[:12])
		if !strings.Contains(reopened, want) {
			t.Fatalf("the gate was not asked again with %q (saw %q)", want, reopened)
		}
		if res.Run.Status != state.RunSucceeded {
			t.Fatalf("after the second approval: run %s, merge %+v", res.Run.Status, res.Steps[gitops.StepMerge])
		}
		if m := w.srv.MergeRequests(project)[0]; m.State != "merged" || m.SHA != moved {
			t.Errorf("MR %s at %s, want merged at %s", m.State, m.SHA, moved)
		}
	})

	t.Run("MergeByAPersonInGitLabWhileTheGateWaitsPassesTheGate", func(t *testing.T) {
		w := newWorld(t, 10, 0)
		g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
		merge := mergeStep(g)
		merge.GateCheck = g.MergedElsewhere
		h := startPinned(t, runID, append(steps(g), merge)...)
		var mergedByPerson bool
		h.OnPoll = func(res steptest.Result) {
			if !mergedByPerson && res.Steps[gitops.StepMerge].Status == state.StepWaiting {
				mergedByPerson = true
				iid, _ := strconv.ParseInt(res.Steps[gitops.StepMR].Outputs["mr_iid"], 10, 64)
				if _, _, err := w.person.MergeRequests.AcceptMergeRequest(project, iid, nil); err != nil {
					t.Errorf("the person's merge: %v", err)
				}
			}
		}
		res := h.settle(false) // nobody approves in Slack
		if res.Run.Status != state.RunSucceeded {
			t.Fatalf("run %s: %+v", res.Run.Status, res.Steps[gitops.StepMerge])
		}
		if out := res.Steps[gitops.StepMerge].Outputs; out["merged_by"] != "alice" {
			t.Errorf("merge outputs = %v, want merged_by alice", out)
		}
		if n := w.calls("PUT", "/merge_requests/1/merge"); n != 1 {
			t.Errorf("%d merge calls, want only the person's", n)
		}
	})

	t.Run("MergeDoneByAPersonInGitLabPasses", func(t *testing.T) {
		w := newWorld(t, 10, 0)
		g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
		person := recovery.Step{ID: "test.merge-in-gitlab", Phase: recovery.PhaseDeploy, DependsOn: []string{gitops.StepMR},
			Action: func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
				_, _, err := w.person.MergeRequests.AcceptMergeRequest(project, mustIID(t, sc), nil)
				return recovery.Result{}, err
			}}
		res := startPinned(t, runID, append(steps(g), person, mergeStep(g, person.ID))...).settle(true)
		if res.Run.Status != state.RunSucceeded {
			t.Fatalf("run %s: %+v", res.Run.Status, res.Steps[gitops.StepMerge])
		}
		if out := res.Steps[gitops.StepMerge].Outputs; out["merged_by"] != "alice" {
			t.Errorf("merge outputs = %v, want merged_by alice", out)
		}
		if n := w.calls("PUT", "/merge_requests/1/merge"); n != 1 {
			t.Errorf("%d merge calls, want only the person's", n)
		}
		if p := res.Progress(gitops.StepMerge); len(p) != 1 || !strings.Contains(p[0], "merged in GitLab by alice") {
			t.Errorf("progress = %v", p)
		}
	})

	t.Run("MissingApprovalsFailNamingGitLabsState", func(t *testing.T) {
		w := newWorld(t, 10, 0)
		w.srv.SetApprovalsRequired(project, 2)
		g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
		res := startPinned(t, runID, append(steps(g), mergeStep(g))...).settle(true)
		rec := res.Steps[gitops.StepMerge]
		want := "merge request !1 cannot be merged: GitLab status not_approved — it needs approvals in GitLab (2 required in GitLab, 2 left)"
		if rec.Status != state.StepFailed || !strings.Contains(rec.Error, want) {
			t.Fatalf("merge %s: %s\nwant %q", rec.Status, rec.Error, want)
		}
		if n := w.calls("PUT", "/merge_requests/1/merge"); n != 0 {
			t.Errorf("%d merge attempts on an unapproved MR", n)
		}
	})
}

func mustIID(t *testing.T, sc *recovery.StepContext) int64 {
	v, _ := sc.Output(gitops.StepMR, "mr_iid")
	var iid int64
	if _, err := fmt.Sscan(v, &iid); err != nil {
		t.Errorf("mr_iid %q: %v", v, err)
	}
	return iid
}

func TestPlanShowsTheMergeRequestWithoutOpeningIt(t *testing.T) {
	w := newWorld(t, 150, 0)
	g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
	rep, err := g.Plan(context.Background(), target)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Files != 150 || rep.Namespaces["payments"] != 30 || len(rep.Added) != 150 {
		t.Errorf("plan: %d files, namespaces %v, %d added", rep.Files, rep.Namespaces, len(rep.Added))
	}
	var buf bytes.Buffer
	if err := gitops.WritePlan(&buf, rep, "drbot/"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Merge request (drbot/<run id> → main): 150 file(s) under apps/dr, destination name dr-eks",
		"per namespace: catalog 30 · identity 30 · orders 30 · payments 30 · search 30", "vs main: 150 new, 0 changed, 0 removed"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, buf.String())
		}
	}
	for _, c := range w.srv.Calls() {
		if c.Method != "GET" {
			t.Errorf("plan made a %s %s", c.Method, c.Path)
		}
	}
	if len(w.srv.Branches(project)) != 1 {
		t.Errorf("branches = %v", w.srv.Branches(project))
	}
}

func TestDestinationByServerNeedsTheEndpointOfClusterAccess(t *testing.T) {
	w := newWorld(t, 5, 0)
	cfg := testConfig()
	cfg.ArgoCD.DestinationBy = "server"
	g := gitops.New(cfg, gitops.FromClient(w.client), gitops.Options{})

	res := steptest.Run(t, steptest.Options{}, recovery.Step{ID: gitops.StepGenerate, Phase: recovery.PhaseDeploy, Action: g.Generate})
	if rec := res.Steps[gitops.StepGenerate]; rec.Status != state.StepFailed || !strings.Contains(rec.Error, "templates.generate must depend on cluster.access") {
		t.Errorf("without cluster.access: %s %q", rec.Status, rec.Error)
	}

	access := steptest.Stub("cluster.access", recovery.PhaseProvision, map[string]string{"endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com"})
	res = steptest.Run(t, steptest.Options{}, access,
		recovery.Step{ID: gitops.StepGenerate, Phase: recovery.PhaseDeploy, DependsOn: []string{"cluster.access"}, Action: g.Generate},
		recovery.Step{ID: gitops.StepMR, Phase: recovery.PhaseDeploy, DependsOn: []string{gitops.StepGenerate}, Action: g.MergeRequest})
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s: %+v", res.Run.Status, res.Steps)
	}
	branch := w.srv.MergeRequests(project)[0].SourceBranch
	f, _ := w.srv.File(project, branch, "apps/dr/payments/svc-0000.yaml")
	if !strings.Contains(f, "server: https://ABC.gr7.eu-west-1.eks.amazonaws.com") || strings.Contains(f, "name: "+gitopstest.PrimaryCluster) {
		t.Errorf("destination not by server:\n%s", f)
	}
}

func TestNothingToMergeWhenMainAlreadyHoldsTheSet(t *testing.T) {
	w := newWorld(t, 10, 0)
	g := gitops.New(testConfig(), gitops.FromClient(w.client), gitops.Options{})
	set := gitops.Generate(sources(w.srv.Files(project, "main")), gitops.GenerateOptions{DRPath: "apps/dr", Destination: gitops.Destination{Name: drCluster}})
	files := map[string]string{}
	for _, f := range set.Files {
		files[f.Path] = string(f.Content)
	}
	w.srv.CommitFiles(project, "main", files, "DR set merged earlier")

	res := startPinned(t, runID, append(steps(g), mergeStep(g))...).settle(true)
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s: %+v", res.Run.Status, res.Steps)
	}
	if out := res.Steps[gitops.StepMR].Outputs; out["mr_iid"] != "" || !strings.Contains(out["summary"], "nothing to merge") {
		t.Errorf("mr outputs = %v", out)
	}
	if len(w.srv.MergeRequests(project)) != 0 || len(w.srv.Branches(project)) != 1 || w.calls("POST", "/repository/commits") != 0 {
		t.Errorf("MRs %d, branches %v, commits %d: want none made", len(w.srv.MergeRequests(project)), w.srv.Branches(project), w.calls("POST", "/repository/commits"))
	}
}
