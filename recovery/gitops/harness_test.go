package gitops_test

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/gitlabfake"
)

const (
	project   = "platform/argocd-apps"
	botToken  = "glpat-made-up-drbot"
	userToken = "glpat-made-up-person"
	drCluster = "dr-eks"
	target    = "prod-eu"
)

func testConfig() *config.Config {
	return &config.Config{
		Targets: []config.Target{{Name: target, DR: config.DR{Region: "eu-west-1", ClusterName: drCluster},
			Primary: config.Primary{Region: "eu-central-1", Cluster: gitopstest.PrimaryCluster}}},
		ArgoCD: config.ArgoCD{Namespace: "argocd", DestinationBy: "name"},
		GitLab: config.GitLab{Project: project, DefaultBranch: "main", TemplatesPath: "apps/primary", DRPath: "apps/dr",
			BranchPrefix: "drbot/", FailOnUnparseable: true},
	}
}

// world is a GitLab stand-in seeded with the primary's templates.
type world struct {
	srv    *gitlabfake.Server
	client *gitlab.Client
	person *gitlab.Client // a human with their own token
}

func newWorld(t *testing.T, services, malformed int) *world {
	t.Helper()
	srv := gitlabfake.New(t)
	srv.AddProject(project, "main")
	srv.AddUser(botToken, "drbot")
	srv.AddUser(userToken, "alice")
	srv.CommitFiles(project, "main", gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: services, Malformed: malformed}), "primary templates")
	return &world{srv: srv, client: glClient(t, srv, botToken), person: glClient(t, srv, userToken)}
}

func glClient(t *testing.T, srv *gitlabfake.Server, token string) *gitlab.Client {
	t.Helper()
	c, err := gitlab.NewClient(token, gitlab.WithBaseURL(srv.URL()+"/api/v4"), gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// calls counts requests by method and path below /api/v4.
func (w *world) calls(method, suffix string) int {
	n := 0
	for _, c := range w.srv.Calls() {
		if c.Method == method && len(c.Path) >= len(suffix) && c.Path[len(c.Path)-len(suffix):] == suffix {
			n++
		}
	}
	return n
}

// harness drives runs through the real engine with a pinned run id, so
// two runs on fresh journals stand for one run re-executed after its
// journal lost the handle (the crash window between acting and journaling).
type harness struct {
	t     *testing.T
	eng   *recovery.Engine
	store *state.Store
	run   state.Run
}

func startPinned(t *testing.T, runID string, steps ...recovery.Step) *harness {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	book, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	eng := recovery.New(ctx, store, book, recovery.Options{
		Retry:    recovery.RetryPolicy{MaxAttempts: 2, InitialBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond},
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		NewRunID: func(string, time.Time) string { return runID },
	})
	t.Cleanup(func() { cancel(); eng.Wait() })
	run, err := eng.Start(recovery.StartRequest{Target: target, Mode: state.ModeRecovery, Initiator: "U_TEST"})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, eng: eng, store: store, run: run}
}

// settle waits until the run ends or blocks, approving every gate it meets
// when approve is set, and returns the journal.
func (h *harness) settle(approve bool) steptest.Result {
	h.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		res := steptest.Load(h.t, h.store, h.run.ID)
		if res.Run.Status.Finished() || res.Run.Status == state.RunBlocked {
			return res
		}
		for id, rec := range res.Steps {
			if approve && rec.Status == state.StepWaiting {
				_, _ = h.eng.Decide(recovery.DecisionRequest{RunID: h.run.ID, StepID: id, Kind: recovery.DecideApprove, By: "U_APPROVER", Round: rec.GateRound})
			}
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("run %s still %s; steps %+v", h.run.ID, res.Run.Status, res.Steps)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *harness) decide(step string, kind recovery.DecisionKind) {
	h.t.Helper()
	before := steptest.Load(h.t, h.store, h.run.ID).Steps[step].Failures
	if _, err := h.eng.Decide(recovery.DecisionRequest{RunID: h.run.ID, StepID: step, Kind: kind, By: "U_OPERATOR"}); err != nil {
		h.t.Fatalf("deciding %s on %s: %v", kind, step, err)
	}
	// The engine applies decisions asynchronously: wait until it has.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec := steptest.Load(h.t, h.store, h.run.ID).Steps[step]
		if rec.Status != state.StepFailed || rec.Failures != before {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("decision %s on %s not applied", kind, step)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// steps returns the generate and MR steps (generation needs only the name).
func steps(g *gitops.GitOps) []recovery.Step {
	return []recovery.Step{
		{ID: gitops.StepGenerate, Phase: recovery.PhaseDeploy, Action: g.Generate},
		{ID: gitops.StepMR, Phase: recovery.PhaseDeploy, DependsOn: []string{gitops.StepGenerate}, Action: g.MergeRequest},
	}
}

func mergeStep(g *gitops.GitOps, deps ...string) recovery.Step {
	return recovery.Step{ID: gitops.StepMerge, Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge,
		DependsOn: append([]string{gitops.StepMR}, deps...), Action: g.Merge}
}
