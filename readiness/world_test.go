package readiness_test

import (
	"context"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	"github.com/slack-go/slack"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/helm"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/slackfake"
	"github.com/drbot/drbot/test/terraformfake"
	"github.com/drbot/drbot/test/vaultfake"
)

// Made-up credentials: the stand-ins accept anything they were given.
const (
	vaultToken  = "hvs.readiness-test-token"
	gitlabToken = "glpat-readiness-test"
	project     = "platform/apps"
	target      = "prod-eu"
	owner       = "U900"
)

// drbotPolicy is what drbot's Vault token may do in a ready world.
const drbotPolicy = `
path "sys/auth" { capabilities = ["read"] }
path "sys/auth/*" { capabilities = ["create", "update", "delete", "read", "sudo"] }
path "sys/capabilities-self" { capabilities = ["update"] }
path "auth/k8s-dr-prod-eu/*" { capabilities = ["create", "read", "update", "list"] }
path "auth/k8s-primary/role" { capabilities = ["list"] }
path "auth/k8s-primary/role/*" { capabilities = ["read", "list"] }
path "secret/data/observability/newrelic" { capabilities = ["read"] }
`

// kubeCalls records every request drbot's management-cluster client makes.
type kubeCalls struct {
	mu    sync.Mutex
	calls []string
}

func (k *kubeCalls) wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(r *http.Request) (*http.Response, error) {
		k.mu.Lock()
		k.calls = append(k.calls, r.Method+" "+r.URL.Path)
		k.mu.Unlock()
		return rt.RoundTrip(r)
	})
}

func (k *kubeCalls) list() []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.calls)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// world is every far end a readiness run reads, ready for a recovery.
type world struct {
	t       *testing.T
	cfg     *config.Config
	vault   *vaultfake.Server
	gitlab  *gitlabfake.Server
	glUser  int64
	slack   *slackfake.Server
	slackAP string // the scoped API URL
	kube    *kubeenv.Cluster
	kubeCfg *rest.Config
	kubeLog *kubeCalls
	tfExec  string
	tfDir   string
}

func newWorld(t *testing.T) *world {
	t.Helper()
	w := &world{t: t, kubeLog: &kubeCalls{}}

	w.vault = vaultfake.New(t)
	w.vault.EnableKubernetesAuth("k8s-primary")
	for _, role := range []string{"payments", "orders"} {
		w.vault.PutRole("k8s-primary", role, map[string]any{"bound_service_account_names": []any{role}, "bound_service_account_namespaces": []any{role}, "token_policies": []any{role}})
	}
	w.vault.PutKV("secret", "observability/newrelic", map[string]any{"license_key": "made-up-licence-key-1234"})
	w.vault.PutPolicy("drbot", drbotPolicy)
	w.vault.AddToken(vaultToken, "drbot")

	w.gitlab = gitlabfake.New(t)
	w.glUser = w.gitlab.AddUser(gitlabToken, "drbot")
	w.gitlab.AddProject(project, "main")
	w.gitlab.CommitFiles(project, "main", gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: 6}), "seed the primary's templates")
	w.gitlab.SetTokenScopes(gitlabToken, "api", "read_repository")
	w.gitlab.SetAccessLevel(project, w.glUser, gitlabfake.AccessDeveloper)

	w.slack = slackfake.New(t, slackfake.Options{})
	w.slack.AddUser("U1", "alice", false)
	w.slack.AddUser("U2", "bob", false)
	w.slack.AddUser(owner, "platform-lead", false)
	w.slack.AddUserGroup("S1", "dr-approvers", "U1", "U2")
	w.slack.AddChannel("C1", "dr-announce")
	w.slackAP = w.slack.ScopedAPIURL(t, slackfake.DefaultScopes...)

	w.tfExec = terraformfake.Build(t)
	w.tfDir = t.TempDir()
	terraformfake.WriteModule(t, w.tfDir, terraformfake.Module{Variables: []string{"cluster_name"}})

	charts, err := filepath.Abs("../test/testdata/charts")
	if err != nil {
		t.Fatal(err)
	}
	repo := "file://" + charts
	w.cfg = &config.Config{
		Slack:  config.Slack{AnnounceChannel: "#dr-announce"},
		Access: config.Access{Starters: []string{"U1"}, Approvers: map[string][]string{"merge": {"S1"}, "cutover": {"@dr-approvers", "U2"}}},
		Targets: []config.Target{{Name: target, Primary: config.Primary{Region: "eu-west-1", Cluster: "primary-eks"},
			DR:      config.DR{Region: "eu-central-1", ClusterName: "dr-eks"},
			Cluster: config.Cluster{Provider: config.ProviderTerraform, Terraform: &config.TerraformCluster{Dir: w.tfDir}}}},
		Addons: map[string]config.Addon{
			config.AddonLoadBalancerController: {Chart: "aws-load-balancer-controller", Repo: repo, Version: "1.13.4", Namespace: "kube-system"},
			config.AddonIstioBase:              {Chart: "base", Repo: repo, Version: "1.27.1", Namespace: "istio-system"},
			config.AddonIstiod:                 {Chart: "istiod", Repo: repo, Version: "1.27.1", Namespace: "istio-system"},
			config.AddonIstioGateway:           {Chart: "gateway", Repo: repo, Version: "1.27.1", Namespace: "istio-ingress"},
			config.AddonVaultInjector:          {Chart: "vault", Repo: repo, Version: "0.30.1", Namespace: "vault"},
		},
		ArgoCD: config.ArgoCD{Namespace: "argocd", DestinationBy: "name"},
		GitLab: config.GitLab{URL: w.gitlab.URL(), Project: project, DefaultBranch: "main", TemplatesPath: "apps/primary", DRPath: "apps/dr", FailOnUnparseable: true},
		Vault: config.Vault{Address: w.vault.URL(), SourceMount: "k8s-primary", TargetMount: "k8s-dr-{target}",
			NewRelicKeyPath: "secret/observability/newrelic", NewRelicKeyField: "license_key"},
		Readiness: config.Readiness{Schedule: "0 7 * * *", Timezone: "UTC", Owners: []string{owner}},
	}
	return w
}

// startKube brings up the management cluster with drbot's service
// account allowed exactly what drbot needs in argocd.
func (w *world) startKube(ctx context.Context) {
	t := w.t
	w.kube = kubeenv.Start(t, kubeenv.WithName("mgmt"), kubeenv.WithCRDs(""))
	cs := w.kube.Clientset()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w.setRole(ctx, appVerbs)
	if _, err := cs.RbacV1().RoleBindings("argocd").Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "drbot"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "drbot", Namespace: "drbot"}},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "drbot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sa, err := w.kube.ServiceAccountConfig(ctx, "drbot", "drbot")
	if err != nil {
		t.Fatal(err)
	}
	sa.WrapTransport = w.kubeLog.wrap
	w.kubeCfg = sa
}

// appVerbs are what drbot's Role allows on Applications in a ready world.
var appVerbs = []string{"get", "list", "watch", "create", "update", "patch", "delete"}

// setRole gives drbot's Role these verbs on Applications (and all it needs on Secrets).
func (w *world) setRole(ctx context.Context, appVerbs []string) {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "drbot", Namespace: "argocd"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
		{APIGroups: []string{"argoproj.io"}, Resources: []string{"applications"}, Verbs: appVerbs},
	}}
	roles := w.kube.Clientset().RbacV1().Roles("argocd")
	if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		if _, err := roles.Create(ctx, role, metav1.CreateOptions{}); err != nil {
			w.t.Fatal(err)
		}
	}
}

// checks builds the checks against the world's current state and config,
// with the real clients.
func (w *world) checks() []readiness.Check {
	t := w.t
	vc, err := vault.NewClient(&vault.Config{Address: w.vault.URL()})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(vaultToken)
	gl, err := gitlab.NewClient(gitlabToken, gitlab.WithBaseURL(w.gitlab.URL()+"/api/v4"))
	if err != nil {
		t.Fatal(err)
	}
	steps, err := helm.New(helm.Options{Config: w.cfg, Kube: kube.Static(nil), Installer: &helm.Installer{CacheDir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &readiness.ScopeRecorder{}
	api := slack.New(w.slack.BotToken(), slack.OptionAPIURL(w.slackAP), slack.OptionHTTPClient(&http.Client{Transport: rec}))
	out := []readiness.Check{
		&readiness.VaultCheck{Config: w.cfg, Client: vc, Roles: []string{"payments", "orders"},
			Needs: func(t *config.Target) []readiness.VaultNeed {
				return readiness.VaultNeedsFrom(standard.Permissions(), w.cfg, t)
			}},
		&readiness.GitLabCheck{Config: w.cfg, Client: gl},
		&readiness.TemplatesCheck{Config: w.cfg, GitOps: gitops.New(w.cfg, gitops.FromClient(gl), gitops.Options{})},
		&readiness.TerraformCheck{ExecPath: w.tfExec},
		&readiness.ChartsCheck{Steps: steps},
		&readiness.SlackCheck{Config: w.cfg, API: api, Scopes: rec},
	}
	if w.kubeCfg != nil {
		cs, err := kubernetes.NewForConfig(w.kubeCfg)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &readiness.KubePermissions{Client: cs, Needs: readiness.KubeNeedsFrom(standard.Permissions(), w.cfg)})
	}
	return out
}

func (w *world) run(ctx context.Context, targets []*config.Target, trigger string) readiness.Report {
	return readiness.Options{Timeout: time.Minute}.Run(ctx, w.checks(), targets, trigger)
}

func (w *world) runAll(ctx context.Context) readiness.Report {
	return w.run(ctx, readiness.Targets(w.cfg), "test")
}

func describe(rep readiness.Report) string {
	var b strings.Builder
	_ = readiness.WriteText(&b, rep)
	return b.String()
}

// onlyFailing asserts that exactly check fails and its evidence names every one of names.
func onlyFailing(t *testing.T, rep readiness.Report, check string, names ...string) {
	t.Helper()
	var failing []string
	for _, r := range rep.Results {
		if r.Status != readiness.Pass {
			failing = append(failing, r.Check+"="+string(r.Status))
		}
	}
	if len(failing) != 1 || failing[0] != check+"=fail" {
		t.Fatalf("not passing: %v, want only %s failing:\n%s", failing, check, describe(rep))
	}
	r := rep.Results[0]
	evidence := strings.Join(r.Evidence, "\n")
	for _, n := range names {
		if !strings.Contains(evidence, n) {
			t.Errorf("%s evidence does not name %q:\n%s", check, n, evidence)
		}
	}
	if r.Fix == "" {
		t.Errorf("%s fails without a fix", check)
	}
}

// noWrites asserts that the stand-ins saw only reads (and the read-only
// POSTs: capabilities-self, SelfSubjectAccessReview) since the marks.
func (w *world) noWrites(t *testing.T, vaultFrom, gitlabFrom, slackFrom, kubeFrom int) {
	t.Helper()
	for _, c := range w.vault.Calls()[vaultFrom:] {
		// capabilities-self is written (the api client PUTs) but only reads.
		if c.Method != http.MethodGet && c.Path != "sys/capabilities-self" && c.Op != "list" {
			t.Errorf("vault write call: %s %s", c.Method, c.Path)
		}
	}
	for _, c := range w.gitlab.Calls()[gitlabFrom:] {
		if c.Method != http.MethodGet && c.Method != http.MethodHead {
			t.Errorf("gitlab write call: %s %s", c.Method, c.Path)
		}
	}
	reads := []string{"auth.test", "conversations.info", "conversations.list", "users.info", "usergroups.list"}
	for _, c := range w.slack.Calls()[slackFrom:] {
		if !slices.Contains(reads, c.Method) {
			t.Errorf("slack call that is not a read: %s", c.Method)
		}
	}
	for _, c := range w.kubeLog.list()[kubeFrom:] {
		if !strings.HasPrefix(c, "GET ") && c != "POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews" {
			t.Errorf("kube call that is not a read or an SSAR: %s", c)
		}
	}
}

func (w *world) marks() (int, int, int, int) {
	return len(w.vault.Calls()), len(w.gitlab.Calls()), len(w.slack.Calls()), len(w.kubeLog.list())
}

func TestReadinessAgainstTheStandIns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w := newWorld(t)
	w.startKube(ctx)

	t.Run("a ready world passes every check without writing anywhere", func(t *testing.T) {
		v, g, s, k := w.marks()
		rep := w.runAll(ctx)
		if rep.Failed() || rep.Count(readiness.Warn) > 0 {
			t.Fatalf("ready world is not all green:\n%s", describe(rep))
		}
		var ids []string
		for _, r := range rep.Results {
			ids = append(ids, r.Label())
		}
		want := []string{"gitlab", "permissions.kube", "slack", "sources.charts [prod-eu]", "sources.templates [prod-eu]", "sources.terraform [prod-eu]", "vault [prod-eu]"}
		if strings.Join(ids, ",") != strings.Join(want, ",") {
			t.Errorf("results = %v, want %v", ids, want)
		}
		if strings.Contains(describe(rep), "made-up-licence-key") {
			t.Error("the report shows the New Relic key")
		}
		w.noWrites(t, v, g, s, k)
	})

	t.Run("a renamed Vault role fails the vault check naming the role", func(t *testing.T) {
		w.vault.PutRole("k8s-primary", "orders-v2", map[string]any{"bound_service_account_names": []any{"orders"}, "bound_service_account_namespaces": []any{"orders"}})
		root, _ := vault.NewClient(&vault.Config{Address: w.vault.URL()})
		root.SetToken(w.vault.RootToken())
		if _, err := root.Logical().Delete("auth/k8s-primary/role/orders"); err != nil {
			t.Fatal(err)
		}
		defer w.vault.PutRole("k8s-primary", "orders", map[string]any{"bound_service_account_names": []any{"orders"}, "bound_service_account_namespaces": []any{"orders"}})
		onlyFailing(t, w.runAll(ctx), readiness.CheckVault, "orders", "auth/k8s-primary", "orders-v2")
	})

	t.Run("an unreadable New Relic key fails the vault check naming the path", func(t *testing.T) {
		w.vault.PutPolicy("drbot", strings.ReplaceAll(drbotPolicy, `path "secret/data/observability/newrelic" { capabilities = ["read"] }`, ""))
		defer w.vault.PutPolicy("drbot", drbotPolicy)
		onlyFailing(t, w.runAll(ctx), readiness.CheckVault, "secret/data/observability/newrelic")
	})

	t.Run("a missing capability fails the vault check naming path and capability", func(t *testing.T) {
		w.vault.PutPolicy("drbot", strings.Replace(drbotPolicy, `"read", "sudo"`, `"read"`, 1))
		defer w.vault.PutPolicy("drbot", drbotPolicy)
		onlyFailing(t, w.runAll(ctx), readiness.CheckVault, "sys/auth/k8s-dr-prod-eu needs sudo")
	})

	t.Run("a token without the api scope fails the gitlab check", func(t *testing.T) {
		w.gitlab.SetTokenScopes(gitlabToken, "read_api", "write_repository")
		defer w.gitlab.SetTokenScopes(gitlabToken, "api", "read_repository")
		onlyFailing(t, w.runAll(ctx), readiness.CheckGitLab, "read_api, write_repository", "needs api")
	})

	t.Run("Reporter access fails the gitlab check naming the project", func(t *testing.T) {
		w.gitlab.SetAccessLevel(project, w.glUser, gitlabfake.AccessReporter)
		defer w.gitlab.SetAccessLevel(project, w.glUser, gitlabfake.AccessDeveloper)
		onlyFailing(t, w.runAll(ctx), readiness.CheckGitLab, "Reporter", project)
	})

	t.Run("a malformed template fails the templates check naming the file", func(t *testing.T) {
		good := w.gitlab.Files(project, "main")
		w.gitlab.CommitFiles(project, "main", map[string]string{"apps/primary/orders/broken.yaml": "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: broken\n spec: [unclosed\n"}, "break a template")
		defer func() {
			files := map[string]string{}
			for p, c := range good {
				files[p] = c
			}
			w.gitlab.CommitFiles(project, "main", map[string]string{"apps/primary/orders/broken.yaml": "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: svc-fixed\nspec:\n  project: default\n  destination: {name: primary-eks, namespace: orders}\n  source: {repoURL: https://example.com/x.git, path: x}\n"}, "fix it")
		}()
		onlyFailing(t, w.runAll(ctx), readiness.CheckTemplates, "apps/primary/orders/broken.yaml")
	})

	t.Run("a chart version the repository lacks fails the charts check naming the chart", func(t *testing.T) {
		a := w.cfg.Addons[config.AddonIstiod]
		a.Version = "9.9.9"
		w.cfg.Addons[config.AddonIstiod] = a
		defer func() { a.Version = "1.27.1"; w.cfg.Addons[config.AddonIstiod] = a }()
		onlyFailing(t, w.runAll(ctx), readiness.CheckCharts, "istiod", "9.9.9")
	})

	t.Run("a module that does not validate fails the terraform check", func(t *testing.T) {
		terraformfake.WriteModule(t, w.tfDir, terraformfake.Module{Variables: []string{"cluster_name"}, ValidateErrors: []string{`Reference to undeclared resource "aws_vpc.main"`}})
		defer terraformfake.WriteModule(t, w.tfDir, terraformfake.Module{Variables: []string{"cluster_name"}})
		onlyFailing(t, w.runAll(ctx), readiness.CheckTerraform, w.tfDir, "aws_vpc.main")
	})

	t.Run("an unknown Slack user group fails the slack check naming it and where", func(t *testing.T) {
		w.cfg.Access.Approvers["cutover"] = []string{"S404"}
		defer func() { w.cfg.Access.Approvers["cutover"] = []string{"@dr-approvers", "U2"} }()
		onlyFailing(t, w.runAll(ctx), readiness.CheckSlack, "S404", "access.approvers.cutover")
	})

	t.Run("a bot token without channels:manage fails the slack check", func(t *testing.T) {
		ready := w.slackAP
		w.slackAP = w.slack.ScopedAPIURL(t, slices.DeleteFunc(slices.Clone(slackfake.DefaultScopes), func(s string) bool { return s == "channels:manage" })...)
		defer func() { w.slackAP = ready }()
		onlyFailing(t, w.runAll(ctx), readiness.CheckSlack, "channels:manage")
	})

	t.Run("a denied verb fails the kube permissions check naming verb and resource", func(t *testing.T) {
		w.setRole(ctx, slices.DeleteFunc(slices.Clone(appVerbs), func(v string) bool { return v == "patch" }))
		defer w.setRole(ctx, appVerbs)
		onlyFailing(t, w.runAll(ctx), readiness.CheckKubePermissions, "patch applications.argoproj.io in namespace argocd")
	})

	t.Run("the broken things together write nothing either", func(t *testing.T) {
		v, g, s, k := w.marks()
		w.vault.PutPolicy("drbot", `path "sys/capabilities-self" { capabilities = ["update"] }`)
		defer w.vault.PutPolicy("drbot", drbotPolicy)
		w.gitlab.SetTokenScopes(gitlabToken, "read_api")
		defer w.gitlab.SetTokenScopes(gitlabToken, "api", "read_repository")
		rep := w.runAll(ctx)
		if !rep.Failed() {
			t.Fatalf("broken world passes:\n%s", describe(rep))
		}
		w.noWrites(t, v, g, s, k)
	})
}
