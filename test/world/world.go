// Package world starts every far end drbot talks to — AWS (with the EKS
// token webhook and the edge services), a real management cluster running
// the Argo CD stand-in, a real DR API server, Vault, GitLab with primary
// templates, the load balancer controller and Slack — and gives the
// example configuration aimed at them. Tests, benchmarks and `drbot
// sandbox` all recover into the same world, so none grows its own copy.
package world

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/test/argofake"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/lbcfake"
	"github.com/drbot/drbot/test/slackfake"
	"github.com/drbot/drbot/test/vaultfake"
)

// The world's fixed names. The config's ids (users, channels) are the
// ones the Slack stand-in knows.
const (
	Region       = "eu-central-1"
	Account      = "444455556666" // the example target's drbot_role_arn account
	Project      = "platform/argocd-apps"
	TemplatesDir = "apps/prod-eu-west-1"
	Gateway      = "istio-ingress/istio-gateway"
	OldLB        = "old-gateway-0123456789.eu-west-1.elb.amazonaws.com"
	OldLBZone    = "Z2IFOLAFXWLO4F"

	UserOncall = "U0ONCALL" // starts runs
	UserLead   = "U0LEAD"   // approves merge and cutover
	UserSRE    = "U0SRE"    // on point for drills, in the S0SRE group
	UserRandom = "U0RANDOM" // may do nothing
	GroupSRE   = "S0SRE"
	ChanOps    = "C0OPS"   // where people type /dr
	ChanDR     = "C0SREDR" // slack.announce_channel

	drbotKey    = "AKIDDRBOTWORLD000001"
	drbotSecret = "drbot-secret-made-up-for-the-world"
	adminKey    = "AKIDADMINWORLD000001"
	adminSecret = "admin-secret-made-up-for-the-world"
	lbcKey      = "AKIDLBCWORLD00000001"
	lbcSecret   = "lbc-secret-made-up-for-the-world"
	glToken     = "glpat-made-up-world"
	vaultEnv    = "DRBOT_WORLD_VAULT_TOKEN"
	glEnv       = "GITLAB_TOKEN"
	slackAppEnv = "DRBOT_WORLD_SLACK_APP_TOKEN"
	slackBotEnv = "DRBOT_WORLD_SLACK_BOT_TOKEN"
)

// Options shape a world.
type Options struct {
	// Target is the recovered target's name (default "prod-eu"); its DR
	// cluster is "<target>-dr" in Region.
	Target string
	// Drill makes the target drill_only, as drill targets are.
	Drill bool
	// Services is how many primary Argo CD templates GitLab holds (default 6).
	Services int
	// AWS tunes the AWS stand-in (delays, strict auth); AccountID is set.
	AWS awsfake.Options
	// Latency is how long the far ends take (already scaled); it fills
	// the AWS delays that AWS leaves zero.
	Latency Latencies
	// ArgoPoll is how often the Argo CD stand-in polls Git and reconciles
	// (default 250ms).
	ArgoPoll time.Duration
	// ConfigFile is the example configuration the world adapts (default:
	// examples/drbot.yaml of this module).
	ConfigFile string
	// KubeAudit makes both API servers keep an audit log (Mgmt.AuditEvents,
	// DR.AuditEvents): the permission test checks every call against the
	// declaration.
	KubeAudit bool
}

// World is every far end, running.
type World struct {
	Opts     Options
	AWS      *awsfake.Server
	Mgmt, DR *kubeenv.Cluster
	Vault    *vaultfake.Server
	GitLab   *gitlabfake.Server
	Slack    *slackfake.Server
	Argo     *argofake.Controller
	LBC      *lbcfake.Controller
	Charts   string // file:// repository of the add-on charts

	Cluster string // the DR cluster's name

	Zone, ProdZone string // the target's hosted zone and one the run must not touch
	Distribution   string
	API            string
	APIResource    string
	ProdBefore     []edge.RecordSet
}

// Start runs every stand-in until t ends. drbot in this process gets its
// AWS credentials from the environment, as in a pod.
func Start(t testing.TB, opts Options) *World {
	t.Helper()
	if opts.Target == "" {
		opts.Target = "prod-eu"
	}
	if opts.Services <= 0 {
		opts.Services = 6
	}
	if opts.ArgoPoll <= 0 {
		opts.ArgoPoll = 250 * time.Millisecond
	}
	root, err := ModuleRoot()
	if err != nil {
		t.Fatalf("world: %v", err)
	}
	if opts.ConfigFile == "" {
		opts.ConfigFile = filepath.Join(root, "examples", "drbot.yaml")
	}
	w := &World{Opts: opts, Cluster: opts.Target + "-dr", Charts: filepath.Join(root, "test", "testdata", "charts")}

	awsOpts := opts.AWS
	awsOpts.AccountID = Account
	opts.Latency.applyAWS(&awsOpts)
	w.AWS = awsfake.New(t, awsOpts)
	w.AWS.AddIdentity(drbotKey, drbotSecret, "arn:aws:sts::"+Account+":assumed-role/drbot/drbot-world")
	w.AWS.AddIdentity(adminKey, adminSecret, "arn:aws:iam::"+Account+":user/world-admin")
	w.AWS.AddIdentity(lbcKey, lbcSecret, "arn:aws:sts::"+Account+":assumed-role/lbc/lbcfake")
	for _, kv := range w.AWS.Env(Region, drbotKey, drbotSecret) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}

	// The target's own hostname and CDN, next to another zone the run must
	// leave alone.
	ed := w.AWS.Edge()
	w.Zone = ed.AddHostedZone("dr.example.com")
	ed.AddRecord(w.Zone, edge.RecordSet{Name: "api.dr.example.com", Type: "A", AliasTarget: &edge.AliasTarget{DNSName: OldLB, HostedZoneID: OldLBZone}})
	ed.AddRecord(w.Zone, edge.RecordSet{Name: "docs.dr.example.com", Type: "CNAME", TTL: 300, Values: []string{OldLB}})
	w.ProdZone = ed.AddHostedZone("example.com")
	ed.AddRecord(w.ProdZone, edge.RecordSet{Name: "www.example.com", Type: "A", AliasTarget: &edge.AliasTarget{DNSName: OldLB, HostedZoneID: OldLBZone}})
	w.ProdBefore = ed.Records(w.ProdZone)
	w.API = ed.AddRestAPI("partners")
	w.APIResource = ed.AddRestIntegration(w.API, "/orders", "GET", "https://"+OldLB+"/orders/{proxy}")
	ed.AddStage(w.API, "prod")
	w.Distribution = ed.AddDistribution([]edge.Origin{{ID: "web-origin", DomainName: OldLB}, {ID: "assets", DomainName: "assets.s3.eu-west-1.amazonaws.com"}})

	// Room for every service's pod on the DR cluster's simulated nodes.
	nodes := opts.Services/100 + 1
	mgmtOpts := []kubeenv.Option{kubeenv.WithName("management")}
	drOpts := []kubeenv.Option{kubeenv.WithName("dr"), kubeenv.WithNodes(nodes, "32", "256Gi", 110),
		kubeenv.WithTokenWebhook(w.AWS.TokenWebhookURL(Region, w.Cluster))}
	if opts.KubeAudit {
		mgmtOpts = append(mgmtOpts, kubeenv.WithAuditLog(""))
		drOpts = append(drOpts, kubeenv.WithAuditLog(""))
	}
	// Add-on and service pods take their time to become Ready (Latency).
	drOpts = append(drOpts, kubeenv.WithPodReadyDelays(opts.Latency.podReadyDelays(gitopstest.Namespaces)...))
	w.Mgmt = kubeenv.Start(t, mgmtOpts...)
	w.DR = kubeenv.Start(t, drOpts...)
	w.AWS.BackClusterWith(Region, w.Cluster, w.DR)

	w.Vault = vaultfake.New(t)
	for i := range opts.Services {
		w.Vault.PutRole("kubernetes", gitopstest.Service(i), map[string]any{
			"bound_service_account_names":      []any{gitopstest.Service(i)},
			"bound_service_account_namespaces": []any{gitopstest.Namespace(i)},
			"token_policies":                   []any{gitopstest.Service(i) + "-read"},
		})
	}
	w.Vault.PutKV("secret", "observability/newrelic", map[string]any{"license_key": "NRAK-world-made-up"})
	t.Setenv(vaultEnv, w.Vault.RootToken())

	w.GitLab = gitlabfake.New(t)
	w.GitLab.AddToken(glToken)
	t.Setenv(glEnv, glToken)
	w.GitLab.AddProject(Project, "main")
	w.GitLab.CommitFiles(Project, "main", gitopstest.Templates(gitopstest.Options{Dir: TemplatesDir, Services: opts.Services}), "primary templates")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := w.Mgmt.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("world: creating the argocd namespace: %v", err)
	}
	w.Argo, err = argofake.Start(context.Background(), argofake.Options{
		Management: w.Mgmt.AdminConfig(),
		GitLab:     argofake.GitLab{URL: w.GitLab.URL(), Token: glToken, Project: Project, Branch: "main", AppOfAppsPath: "apps/dr"},
		Poll:       opts.ArgoPoll,
		// Real Argo CD gets an EKS token for awsAuthConfig.clusterName; the
		// stand-in hands out the DR cluster once the Secret names it right.
		DestinationConfig: func(secret, server string, cfg argofake.ClusterConfig) (*rest.Config, error) {
			if cfg.AWSAuthConfig == nil || cfg.AWSAuthConfig.ClusterName != w.Cluster || server != w.DR.Endpoint() ||
				!bytes.Equal(cfg.TLSClientConfig.CAData, w.DR.CAData()) {
				return nil, fmt.Errorf("cluster secret %s does not describe the DR cluster", secret)
			}
			return w.DR.AdminConfig(), nil
		},
	})
	if err != nil {
		t.Fatalf("world: starting the Argo CD stand-in: %v", err)
	}
	t.Cleanup(w.Argo.Stop)
	w.LBC, err = lbcfake.Start(context.Background(), lbcfake.Options{
		Cluster: w.DR.AdminConfig(), ClusterName: w.Cluster, Region: Region,
		LBs:  elbv2.NewFromConfig(w.AWS.Config(Region, lbcKey, lbcSecret)),
		Poll: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("world: starting the load balancer controller stand-in: %v", err)
	}
	t.Cleanup(w.LBC.Stop)

	w.Slack = slackfake.New(t, slackfake.Options{})
	for _, u := range []string{UserOncall, UserLead, UserRandom, UserSRE} {
		w.Slack.AddUser(u, strings.ToLower(strings.TrimPrefix(u, "U0")), false)
	}
	w.Slack.AddUserGroup(GroupSRE, "sre", UserSRE)
	w.Slack.AddChannel(ChanOps, "ops")
	w.Slack.AddChannel(ChanDR, "sre-dr")
	t.Setenv(slackAppEnv, w.Slack.AppToken())
	t.Setenv(slackBotEnv, w.Slack.BotToken())
	return w
}

// AdminAWS is an AWS configuration for looking at the stand-in from
// outside drbot (checks in tests), under another identity than drbot's.
func (w *World) AdminAWS() (region, key, secret string) { return Region, adminKey, adminSecret }

// Addresses are what a configuration needs to reach the world; they
// travel as JSON to a drbot child process (crash tests), which inherits
// the credentials through the environment.
type Addresses struct {
	ConfigFile     string `json:"config_file"`
	Target         string `json:"target"`
	Drill          bool   `json:"drill"`
	Cluster        string `json:"cluster"`
	SlackAPIURL    string `json:"slack_api_url"`
	VaultURL       string `json:"vault_url"`
	GitLabURL      string `json:"gitlab_url"`
	MgmtKubeconfig string `json:"mgmt_kubeconfig"`
	Charts         string `json:"charts"`
	Zone           string `json:"zone"`
	Distribution   string `json:"distribution"`
	API            string `json:"api"`
	APIResource    string `json:"api_resource"`
}

// Addresses of this world.
func (w *World) Addresses() Addresses {
	return Addresses{
		ConfigFile: w.Opts.ConfigFile, Target: w.Opts.Target, Drill: w.Opts.Drill, Cluster: w.Cluster,
		SlackAPIURL: w.Slack.APIURL(), VaultURL: w.Vault.URL(), GitLabURL: w.GitLab.URL(), MgmtKubeconfig: w.Mgmt.Kubeconfig(),
		Charts: w.Charts, Zone: w.Zone, Distribution: w.Distribution, API: w.API, APIResource: w.APIResource,
	}
}

// Config is the example configuration aimed at the world, with the state
// file in dir.
func (w *World) Config(dir string) (*config.Config, error) { return w.Addresses().Config(dir) }

// Config is the example configuration aimed at the world: one target, its
// cutover rows on the Istio gateway, Vault, GitLab, Argo CD and the charts
// of the stand-ins, and the state file in dir.
func (a Addresses) Config(dir string) (*config.Config, error) {
	cfg, err := config.Load(a.ConfigFile)
	if err != nil {
		return nil, err
	}
	cfg.Slack.APIURL = a.SlackAPIURL
	cfg.Slack.AppToken = config.EnvSecret(slackAppEnv)
	cfg.Slack.BotToken = config.EnvSecret(slackBotEnv)
	cfg.Slack.AnnounceChannel = ChanDR
	cfg.Slack.Invite = []string{UserLead, GroupSRE}
	cfg.State.Path = filepath.Join(dir, "drbot.db")
	cfg.State.Backup = nil
	cfg.Access = config.Access{
		Starters:      []string{UserOncall},
		Approvers:     map[string][]string{config.GateMerge: {UserLead}, config.GateCutover: {UserLead, UserOncall}},
		TwoPersonRule: true,
		Admins:        []string{UserLead},
		BreakGlass:    map[string]string{"oncall": UserOncall, "lead": UserLead, "random": UserRandom},
	}

	// The example's EKS-provider target, renamed to the world's.
	var target *config.Target
	for i := range cfg.Targets {
		if cfg.Targets[i].Cluster.EKS != nil {
			target = &cfg.Targets[i]
			break
		}
	}
	if target == nil {
		return nil, fmt.Errorf("%s has no target with provider eks to aim at the world", a.ConfigFile)
	}
	t := *target
	t.Name = a.Target
	t.DrillOnly = a.Drill
	t.DR.Region = Region
	t.DR.ClusterName = a.Cluster
	gateway := config.Backend{Service: Gateway}
	t.Cutover = &config.Cutover{
		Route53:    []config.Route53Record{{ZoneID: a.Zone, Name: "api.dr.example.com", Type: "A", Backend: gateway}},
		CloudFront: []config.CloudFrontOrigin{{DistributionID: a.Distribution, OriginID: "web-origin", Backend: gateway}},
		APIGateway: []config.APIGatewayIntegration{{APIID: a.API, Kind: "rest", ResourceID: a.APIResource, HTTPMethod: "GET", Stage: "prod", Backend: gateway}},
	}
	cfg.Targets = []config.Target{t}
	cfg.Drills = nil
	cfg.Readiness.Targets = nil

	cfg.Vault.Address = a.VaultURL
	cfg.Vault.Auth = nil
	cfg.Vault.Token = config.EnvSecret(vaultEnv)
	cfg.ArgoCD.ManagementKubeconfig = a.MgmtKubeconfig
	cfg.ArgoCD.Waves = nil // the example's waves name services the world's templates do not have
	cfg.GitLab.URL = a.GitLabURL
	cfg.GitLab.Project = Project
	cfg.GitLab.Overrides = nil
	for _, name := range []string{config.AddonLoadBalancerController, config.AddonIstioBase, config.AddonIstiod, config.AddonIstioGateway, config.AddonVaultInjector} {
		addon, ok := cfg.Addons[name]
		if !ok {
			return nil, fmt.Errorf("%s lacks addons.%s", a.ConfigFile, name)
		}
		addon.Repo = "file://" + a.Charts
		cfg.Addons[name] = addon
	}
	return cfg, nil
}

// ModuleRoot is the directory of drbot's go.mod above the working
// directory (tests run in their package's directory, the sandbox anywhere
// in the checkout).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(data, []byte("module github.com/drbot/drbot\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no drbot go.mod above the working directory: run from the drbot checkout")
		}
		dir = parent
	}
}
