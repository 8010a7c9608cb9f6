package gitops_test

import (
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/steptest"
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

func startPinned(t *testing.T, runID string, steps ...recovery.Step) *pinned {
	t.Helper()
	return &pinned{gitopstest.Start(t, target, runID, steps...)}
}

type pinned struct{ *gitopstest.Harness }

func (p *pinned) settle(approve bool) steptest.Result { return p.Settle(approve, 2*time.Minute) }

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
