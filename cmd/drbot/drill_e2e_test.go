package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/argocd"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/iam"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/argofake"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/lbcfake"
	"github.com/drbot/drbot/test/slackfake"
	"github.com/drbot/drbot/test/vaultfake"
)

// A whole drill, the way it happens in production: the scheduler announces
// it and starts it at its time, the fully wired standard runbook runs every
// phase through the real integrations against the stand-ins (AWS with the
// EKS token webhook, a real DR API server, Argo CD in a real management
// cluster syncing from GitLab, Vault, the load balancer controller), the
// post-mortem is uploaded into the run's log thread, and the teardown
// leaves nothing behind that the drill made.

const (
	dxRegion    = "eu-central-1"
	dxTarget    = "drill-eu"
	dxCluster   = "drill-eu-dr"  // targets[drill-eu].dr.cluster_name in the example
	dxAccount   = "444455556666" // the drill target's drbot_role_arn account
	dxDrbotKey  = "AKIDDRBOTDRILLE2E001"
	dxDrbotSec  = "drbot-secret-made-up-for-drill-e2e"
	dxAdminKey  = "AKIDADMINDRILLE2E001"
	dxAdminSec  = "admin-secret-made-up-for-drill-e2e"
	dxLBCKey    = "AKIDLBCDRILLE2E00001"
	dxLBCSec    = "lbc-secret-made-up-for-drill-e2e"
	dxGLToken   = "glpat-made-up-drill-e2e"
	dxProject   = "platform/argocd-apps" // gitlab.project in the example
	dxMount     = "k8s-dr-drill-eu"
	dxServices  = 6
	dxVaultEnv  = "DRBOT_DRILL_E2E_VAULT_TOKEN"
	dxOldLB     = "old-gateway-0123456789.eu-west-1.elb.amazonaws.com"
	dxOldLBZone = "Z2IFOLAFXWLO4F"
	dxGateway   = "istio-ingress/istio-gateway"
)

func TestScheduledDrillRunsEveryPhaseThroughTheStandInsAndLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and a whole drill through every stand-in (about 70 s)")
	}
	began := time.Now()
	w := dxStart(t)

	clk := &movableClock{now: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	var live atomic.Pointer[state.Store]
	cfg := w.config(t)
	std, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	book, rollback, err := wireActions(cfg, std, slog.New(slog.NewTextHandler(io.Discard, nil)), live.Load)
	if err != nil {
		t.Fatal(err)
	}
	e := &e2e{t: t, slack: w.slack, cfg: cfg, done: make(chan error, 1)}
	e.start(book, serveOptions{drillClock: clk.Now, drillTick: 20 * time.Millisecond, rollback: rollback, onStore: live.Store})

	// The announcement, an hour before the start.
	clk.Set(time.Date(2026, 12, 2, 9, 0, 30, 0, time.UTC))
	e.waitFor("the drill announcement", func() bool {
		for _, m := range e.slack.Messages(chanAnnounce) {
			if strings.Contains(blocksText(m), bot.ActionDrillPostpone) && strings.Contains(blocksText(m), "<@"+userSRE+">") {
				return true
			}
		}
		return false
	})
	if e.run().ID != "" {
		t.Fatal("the drill started at its announcement")
	}

	// The start: the scheduler opens the drill's channel and runs it.
	clk.Set(time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC))
	e.waitFor("the drill run", func() bool { return e.run().Slack.ChannelID != "" })
	run := e.run()
	if c, _ := e.slack.Channel(run.Slack.ChannelID); run.Mode != state.ModeDrill || run.Target != dxTarget || !strings.HasPrefix(c.Name, "drill-"+dxTarget+"-") {
		t.Fatalf("drill run = %+v in #%s", run, c.Name)
	}

	// While it runs, remember every load balancer the DR cluster got, so the
	// cutover can be checked against them after the teardown removed them.
	lbs := w.watchLoadBalancers(t)
	deadline := time.Now().Add(20 * time.Minute)
	for {
		r := e.run()
		if r.Status.Finished() || r.Status == state.RunBlocked {
			run = r
			break
		}
		if time.Now().After(deadline) {
			w.failedSteps(t, e, r.ID)
			t.Fatalf("the drill is still %s after 20 minutes", r.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if run.Status != state.RunSucceeded {
		w.failedSteps(t, e, run.ID)
		t.Fatalf("the drill ended %s", run.Status)
	}
	t.Logf("the drill ran in %s (%s since the stand-ins started)", run.FinishedAt.Sub(run.StartedAt).Round(time.Second), time.Since(began).Round(time.Second))

	// Every step of the drill's runbook ran, teardown included; no one
	// clicked a gate (the drill pre-approves merge and cutover).
	for _, s := range book.ForMode(state.ModeDrill).Steps() {
		if rec := e.step(run.ID, s.ID); rec.Status != state.StepSucceeded {
			t.Errorf("step %s is %s (%s), want succeeded", s.ID, rec.Status, rec.Error)
		}
	}
	if e.step(run.ID, standard.Teardown).Status == "" {
		t.Fatal("the drill's runbook has no teardown step")
	}

	// The post-mortem file was uploaded into the post-mortem log thread.
	e.waitFor("the post-mortem file in the log thread", func() bool {
		for _, f := range e.slack.Files() {
			if f.Filename == "postmortem-"+run.ID+".md" && f.Channel == run.Slack.ChannelID && f.ThreadTS == e.refs(run.ID)["log"] &&
				f.ThreadTS != "" && bytes.Contains(f.Content, []byte(dxTarget)) {
				return true
			}
		}
		return false
	})

	w.checkCutover(t, lbs())
	w.checkNothingLeft(t)
}

// dxWorld is the drill's surroundings.
type dxWorld struct {
	aws      *awsfake.Server
	mgmt, dr *kubeenv.Cluster
	vault    *vaultfake.Server
	gl       *gitlabfake.Server
	slack    *slackfake.Server
	charts   string

	zone, prodZone string // the drill's hosted zone and production's
	dist           string // the drill's CloudFront distribution
	api            string // the drill's REST API
	apiResource    string
	prodBefore     []edge.RecordSet
}

func dxStart(t *testing.T) *dxWorld {
	t.Helper()
	w := &dxWorld{}
	w.aws = awsfake.New(t, awsfake.Options{AccountID: dxAccount, EKSCreateDelay: 5 * time.Second})
	w.aws.AddIdentity(dxDrbotKey, dxDrbotSec, "arn:aws:sts::"+dxAccount+":assumed-role/drbot/drbot-drill-e2e")
	w.aws.AddIdentity(dxAdminKey, dxAdminSec, "arn:aws:iam::"+dxAccount+":user/test-admin")
	w.aws.AddIdentity(dxLBCKey, dxLBCSec, "arn:aws:sts::"+dxAccount+":assumed-role/lbc/lbcfake")
	// drbot runs in this process: its AWS configuration comes from the
	// environment, as in a pod.
	for _, kv := range w.aws.Env(dxRegion, dxDrbotKey, dxDrbotSec) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	// See iamProfilesShim: awsfake has no instance profiles to list.

	// The edge: the drill's own hostname and CDN, next to production's
	// records, which the drill must not touch.
	ed := w.aws.Edge()
	w.zone = ed.AddHostedZone("drill.example.com")
	ed.AddRecord(w.zone, edge.RecordSet{Name: "api.drill.example.com", Type: "A", AliasTarget: &edge.AliasTarget{DNSName: dxOldLB, HostedZoneID: dxOldLBZone}})
	ed.AddRecord(w.zone, edge.RecordSet{Name: "docs.drill.example.com", Type: "CNAME", TTL: 300, Values: []string{dxOldLB}})
	w.prodZone = ed.AddHostedZone("example.com")
	ed.AddRecord(w.prodZone, edge.RecordSet{Name: "api.example.com", Type: "A", AliasTarget: &edge.AliasTarget{DNSName: dxOldLB, HostedZoneID: dxOldLBZone}})
	w.prodBefore = ed.Records(w.prodZone)
	w.api = ed.AddRestAPI("drill-partners")
	w.apiResource = ed.AddRestIntegration(w.api, "/orders", "GET", "https://"+dxOldLB+"/orders/{proxy}")
	ed.AddStage(w.api, "prod")
	w.dist = ed.AddDistribution([]edge.Origin{{ID: "web-origin", DomainName: dxOldLB}, {ID: "assets", DomainName: "assets.s3.eu-west-1.amazonaws.com"}})

	w.mgmt = kubeenv.Start(t, kubeenv.WithName("management"))
	w.dr = kubeenv.Start(t, kubeenv.WithName("dr"), kubeenv.WithTokenWebhook(w.aws.TokenWebhookURL(dxRegion, dxCluster)))
	w.aws.BackClusterWith(dxRegion, dxCluster, w.dr)

	w.vault = vaultfake.New(t)
	for i := range 8 {
		w.vault.PutRole("kubernetes", fmt.Sprintf("svc-%03d", i), map[string]any{
			"bound_service_account_names":      []any{fmt.Sprintf("app-%d", i)},
			"bound_service_account_namespaces": []any{gitopstest.Namespace(i)},
			"token_policies":                   []any{fmt.Sprintf("svc-%d-read", i)},
		})
	}
	w.vault.PutKV("secret", "observability/newrelic", map[string]any{"license_key": "NRAK-drill-e2e-made-up"})
	t.Setenv(dxVaultEnv, w.vault.RootToken())

	w.gl = gitlabfake.New(t)
	w.gl.AddToken(dxGLToken)
	t.Setenv("GITLAB_TOKEN", dxGLToken)
	w.gl.AddProject(dxProject, "main")
	w.gl.CommitFiles(dxProject, "main", gitopstest.Templates(gitopstest.Options{Dir: "apps/prod-eu-west-1", Services: dxServices}), "primary templates")

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := w.mgmt.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	argo, err := argofake.Start(context.Background(), argofake.Options{
		Management: w.mgmt.AdminConfig(),
		GitLab:     argofake.GitLab{URL: w.gl.URL(), Token: dxGLToken, Project: dxProject, Branch: "main", AppOfAppsPath: "apps/dr"},
		Poll:       250 * time.Millisecond,
		// Real Argo CD gets an EKS token for awsAuthConfig.clusterName; the
		// stand-in hands out the DR cluster once the Secret names it right.
		DestinationConfig: func(secret, server string, cfg argofake.ClusterConfig) (*rest.Config, error) {
			if cfg.AWSAuthConfig == nil || cfg.AWSAuthConfig.ClusterName != dxCluster || server != w.dr.Endpoint() ||
				!bytes.Equal(cfg.TLSClientConfig.CAData, w.dr.CAData()) {
				return nil, fmt.Errorf("cluster secret %s does not describe the DR cluster", secret)
			}
			return w.dr.AdminConfig(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(argo.Stop)
	lbc, err := lbcfake.Start(context.Background(), lbcfake.Options{
		Cluster: w.dr.AdminConfig(), ClusterName: dxCluster, Region: dxRegion,
		LBs:  elbv2.NewFromConfig(w.aws.Config(dxRegion, dxLBCKey, dxLBCSec)),
		Poll: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lbc.Stop)

	if w.charts, err = filepath.Abs(filepath.Join("..", "..", "test", "testdata", "charts")); err != nil {
		t.Fatal(err)
	}

	w.slack = slackfake.New(t, slackfake.Options{})
	for _, u := range []string{userOncall, userLead, userRandom, userSRE} {
		w.slack.AddUser(u, strings.ToLower(u), false)
	}
	w.slack.AddUserGroup("S0SRE", "sre", userSRE)
	w.slack.AddChannel(chanOps, "ops")
	w.slack.AddChannel(chanAnnounce, "sre-dr")
	return w
}

// config is the example config aimed at the stand-ins, with one drill of
// drill-eu that passes both gates by itself.
func (w *dxWorld) config(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TEST_SLACK_APP_TOKEN", w.slack.AppToken())
	t.Setenv("TEST_SLACK_BOT_TOKEN", w.slack.BotToken())
	cfg.Slack.APIURL = w.slack.APIURL()
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

	target, ok := cfg.Target(dxTarget)
	if !ok || target.Cluster.EKS == nil || target.DR.ClusterName != dxCluster || target.DR.Region != dxRegion {
		t.Fatalf("the example config's %s is not an EKS target building %s in %s", dxTarget, dxCluster, dxRegion)
	}
	// The example's drill rows name an Ingress the test charts do not make;
	// the Istio gateway's Service carries the drill's hostname and CDN origin.
	gateway := config.Backend{Service: dxGateway}
	target.Cutover = &config.Cutover{
		Route53:    []config.Route53Record{{ZoneID: w.zone, Name: "api.drill.example.com", Type: "A", Backend: gateway}},
		CloudFront: []config.CloudFrontOrigin{{DistributionID: w.dist, OriginID: "web-origin", Backend: gateway}},
		APIGateway: []config.APIGatewayIntegration{{APIID: w.api, Kind: "rest", ResourceID: w.apiResource, HTTPMethod: "GET", Stage: "prod", Backend: gateway}},
	}

	cfg.Vault.Address = w.vault.URL()
	cfg.Vault.Auth = nil
	cfg.Vault.Token = config.EnvSecret(dxVaultEnv)
	cfg.ArgoCD.ManagementKubeconfig = w.mgmt.Kubeconfig()
	cfg.ArgoCD.Waves = nil // the example's waves name services the test templates do not have
	cfg.GitLab.URL = w.gl.URL()
	cfg.GitLab.Overrides = nil
	for _, name := range []string{config.AddonLoadBalancerController, config.AddonIstioBase, config.AddonIstiod, config.AddonIstioGateway, config.AddonVaultInjector} {
		a, ok := cfg.Addons[name]
		if !ok {
			t.Fatalf("the example config lacks addons.%s", name)
		}
		a.Repo = "file://" + w.charts
		cfg.Addons[name] = a
	}
	cfg.Drills = []config.Drill{{Name: "december", Schedule: "0 10 2 12 *", Timezone: "UTC", Target: dxTarget,
		Announce: []config.Duration{config.Duration(time.Hour)}, OnPoint: []string{userSRE}, Teardown: true,
		PreApprove: []string{"merge", "cutover"}}}
	return cfg
}

// watchLoadBalancers polls the stand-in's load balancers until the test
// ends and returns what it saw, by DNS name.
func (w *dxWorld) watchLoadBalancers(t *testing.T) func() map[string]awsfake.LoadBalancer {
	t.Helper()
	var mu sync.Mutex
	seen := map[string]awsfake.LoadBalancer{}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			for _, lb := range w.aws.LoadBalancers(dxRegion) {
				mu.Lock()
				seen[lb.DNSName] = lb
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() map[string]awsfake.LoadBalancer {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(seen)
	}
}

// failedSteps logs why a drill did not succeed.
func (w *dxWorld) failedSteps(t *testing.T, e *e2e, runID string) {
	t.Helper()
	var recs map[string]state.StepRecord
	_ = e.srv.store.View(func(tx *state.Tx) (err error) { recs, err = tx.Steps(runID); return })
	ids := make([]string, 0, len(recs))
	for id := range recs {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		t.Logf("step %s: %s %s", id, recs[id].Status, recs[id].Error)
	}
}

// checkCutover: the drill's record, CDN origin and API integration point at the Istio
// gateway's load balancer the DR cluster got; production's records and
// the drill zone's other record are as they were.
func (w *dxWorld) checkCutover(t *testing.T, lbs map[string]awsfake.LoadBalancer) {
	t.Helper()
	ed := w.aws.Edge()
	rec, ok := ed.Record(w.zone, "api.drill.example.com", "A", "")
	if !ok || rec.AliasTarget == nil {
		t.Fatalf("api.drill.example.com A = %+v (found %v), want an alias", rec, ok)
	}
	lb, ok := lbs[strings.TrimSuffix(rec.AliasTarget.DNSName, ".")]
	if !ok || lb.Tags["elbv2.k8s.aws/cluster"] != dxCluster || lb.Tags["service.k8s.aws/stack"] != dxGateway {
		t.Errorf("api.drill.example.com points at %s, not the gateway load balancer of %s (seen %d load balancers)", rec.AliasTarget.DNSName, dxCluster, len(lbs))
	}
	if r, _ := ed.Record(w.zone, "docs.drill.example.com", "CNAME", ""); !slices.Equal(r.Values, []string{dxOldLB}) {
		t.Errorf("docs.drill.example.com changed: %+v", r)
	}
	d, ok := ed.Distribution(w.dist)
	if !ok {
		t.Fatalf("distribution %s is gone", w.dist)
	}
	origins := map[string]string{}
	for _, o := range d.Origins {
		origins[o.ID] = o.DomainName
	}
	if origins["web-origin"] != lb.DNSName || lb.DNSName == "" || origins["assets"] != "assets.s3.eu-west-1.amazonaws.com" {
		t.Errorf("distribution origins = %v, want web-origin at the gateway load balancer %q and assets unchanged", origins, lb.DNSName)
	}
	integ, ok := ed.RestIntegration(w.api, w.apiResource, "GET")
	if want := "https://" + lb.DNSName + "/orders/{proxy}"; !ok || integ.URI != want {
		t.Errorf("REST API %s GET /orders integration = %q, want %q", w.api, integ.URI, want)
	}
	if served, ok := ed.StageIntegrations(w.api, "prod"); !ok || served["GET /orders"].URI != integ.URI {
		t.Errorf("REST API %s stage prod serves %+v: the cutover was not deployed to the stage", w.api, served)
	}
	after := ed.Records(w.prodZone)
	if !reflect.DeepEqual(after, w.prodBefore) {
		t.Errorf("production's zone changed in a drill:\n before %+v\n after  %+v", w.prodBefore, after)
	}
}

// checkNothingLeft lists every kind of thing the drill created and checks
// that none of it is left in the stand-ins.
func (w *dxWorld) checkNothingLeft(t *testing.T) {
	t.Helper()
	ctx := p12Ctx(t)
	names := iam.NamesFor(dxCluster)
	eksAPI := awseks.NewFromConfig(w.aws.Config(dxRegion, dxAdminKey, dxAdminSec))
	iamAPI := awsiam.NewFromConfig(w.aws.Config(dxRegion, dxAdminKey, dxAdminSec))
	created := func(service, op string) int {
		n := 0
		for _, c := range w.aws.Calls() {
			if c.Service == service && c.Operation == op && c.Status == 200 && c.ErrorCode == "" {
				n++
			}
		}
		return n
	}

	// Each kind is listed with proof that the drill did make it, so an
	// empty listing means "removed", not "never there".
	t.Run("EKS cluster", func(t *testing.T) {
		if created(awsfake.ServiceEKS, "CreateCluster") != 1 {
			t.Fatalf("CreateCluster succeeded %d times, want 1", created(awsfake.ServiceEKS, "CreateCluster"))
		}
		out, err := eksAPI.ListClusters(ctx, &awseks.ListClustersInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Clusters) != 0 {
			t.Errorf("EKS clusters left: %v", out.Clusters)
		}
		if _, err := eksAPI.DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: aws.String(dxCluster)}); err == nil || !strings.Contains(err.Error(), "ResourceNotFound") {
			t.Errorf("DescribeCluster %s after the teardown: %v, want ResourceNotFoundException", dxCluster, err)
		}
	})
	t.Run("EKS node groups, add-ons, Pod Identity associations and access entries", func(t *testing.T) {
		for _, op := range []string{"CreateNodegroup", "CreateAddon", "CreatePodIdentityAssociation", "CreateAccessEntry"} {
			if created(awsfake.ServiceEKS, op) == 0 {
				t.Errorf("the drill never called %s", op)
			}
		}
		// They belong to the cluster: each listing of the deleted cluster says it is gone.
		if _, err := eksAPI.ListNodegroups(ctx, &awseks.ListNodegroupsInput{ClusterName: aws.String(dxCluster)}); err == nil {
			t.Error("node groups are still listed for the deleted cluster")
		}
		if _, err := eksAPI.ListAddons(ctx, &awseks.ListAddonsInput{ClusterName: aws.String(dxCluster)}); err == nil {
			t.Error("add-ons are still listed for the deleted cluster")
		}
		if _, err := eksAPI.ListPodIdentityAssociations(ctx, &awseks.ListPodIdentityAssociationsInput{ClusterName: aws.String(dxCluster)}); err == nil {
			t.Error("Pod Identity associations are still listed for the deleted cluster")
		}
		if _, err := eksAPI.ListAccessEntries(ctx, &awseks.ListAccessEntriesInput{ClusterName: aws.String(dxCluster)}); err == nil {
			t.Error("access entries are still listed for the deleted cluster")
		}
	})
	t.Run("IAM roles and the per-cluster policy", func(t *testing.T) {
		if n := created(awsfake.ServiceIAM, "CreateRole"); n != 3 {
			t.Errorf("CreateRole succeeded %d times, want the 3 roles", n)
		}
		var roles []string
		for p := awsiam.NewListRolesPaginator(iamAPI, &awsiam.ListRolesInput{}); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Roles {
				roles = append(roles, aws.ToString(r.RoleName))
			}
		}
		if n := w.aws.CallsTo("iam", "ListInstanceProfilesForRole"); n < 3 {
			t.Errorf("the teardown looked for instance profiles %d time(s), want once for each of the 3 roles", n)
		}
		if len(roles) != 0 {
			t.Errorf("IAM roles left: %v (the drill made %s, %s, %s)", roles, names.LBCRole, names.KarpenterRole, names.KarpenterNodeRole)
		}
		var policies []string
		for p := awsiam.NewListPoliciesPaginator(iamAPI, &awsiam.ListPoliciesInput{Scope: iamtypes.PolicyScopeTypeLocal}); p.HasMorePages(); {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, pol := range page.Policies {
				policies = append(policies, aws.ToString(pol.PolicyName))
			}
		}
		// The Load Balancer Controller's policy is shared by the account's clusters and may stay.
		if slices.Contains(policies, names.KarpenterPolicy) || len(slices.DeleteFunc(slices.Clone(policies), func(p string) bool { return p == names.LBCPolicy })) != 0 {
			t.Errorf("IAM policies left: %v; only the shared %s may stay", policies, names.LBCPolicy)
		}
	})
	t.Run("load balancers", func(t *testing.T) {
		if n := created(awsfake.ServiceELBv2, "CreateLoadBalancer"); n == 0 {
			t.Error("no load balancer was ever created")
		}
		if left := w.aws.LoadBalancers(dxRegion); len(left) != 0 {
			var dns []string
			for _, lb := range left {
				dns = append(dns, lb.DNSName)
			}
			t.Errorf("load balancers left: %v", dns)
		}
	})
	t.Run("Vault DR auth mount", func(t *testing.T) {
		enabled := false
		for _, c := range w.vault.Calls() {
			enabled = enabled || (c.Path == "sys/auth/"+dxMount && (c.Method == "POST" || c.Method == "PUT") && c.Status < 300)
		}
		if !enabled {
			t.Errorf("auth/%s was never enabled", dxMount)
		}
		for _, m := range w.vault.Mounts() {
			if m.Auth && m.Path == dxMount+"/" {
				t.Errorf("auth/%s is still mounted", dxMount)
			}
		}
		if roles := w.vault.Roles(dxMount); len(roles) != 0 {
			t.Errorf("auth/%s still has roles %v", dxMount, roles)
		}
	})
	t.Run("Argo CD cluster Secret and Applications", func(t *testing.T) {
		secrets, err := w.mgmt.Clientset().CoreV1().Secrets("argocd").List(ctx, metav1.ListOptions{LabelSelector: argocd.SecretTypeLabel + "=cluster"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets.Items {
			t.Errorf("Argo CD cluster Secret %s is left", s.Name)
		}
		apps, err := w.mgmt.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range apps.Items {
			t.Errorf("Argo CD Application %s is left", a.GetName())
		}
	})
	t.Run("DR cluster load balancer Services, Karpenter NodePools and the services Argo CD deployed", func(t *testing.T) {
		svcs, err := w.dr.Clientset().CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range svcs.Items {
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				t.Errorf("LoadBalancer Service %s/%s is left in the DR cluster", s.Namespace, s.Name)
			}
		}
		for _, gvr := range []schema.GroupVersionResource{argocd.NodePoolGVR, argocd.EC2NodeClassGVR} {
			list, err := w.dr.Dynamic().Resource(gvr).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range list.Items {
				t.Errorf("%s %s is left in the DR cluster", gvr.Resource, o.GetName())
			}
		}
		deps, err := w.dr.Clientset().AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: argofake.InstanceLabel})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range deps.Items {
			// The services' Applications carry Argo CD's resources finalizer,
			// so deleting them deletes what they deployed. Helm's add-ons and
			// Karpenter (its Application has no such finalizer) go with the
			// deleted EKS cluster, which this API server stands for.
			if app := d.Labels[argofake.InstanceLabel]; !strings.HasPrefix(app, "svc-") {
				continue
			}
			t.Errorf("Deployment %s/%s that Argo CD synced is left in the DR cluster", d.Namespace, d.Name)
		}
	})
	t.Run("GitLab branch, merge request and DR files", func(t *testing.T) {
		mrs := w.gl.MergeRequests(dxProject)
		if len(mrs) != 1 {
			t.Fatalf("merge requests = %+v, want the drill's one", mrs)
		}
		if mrs[0].State == "opened" {
			t.Errorf("the drill's merge request !%d is still open", mrs[0].IID)
		}
		if br := w.gl.Branches(dxProject); !slices.Equal(br, []string{"main"}) {
			t.Errorf("branches = %v, want only main", br)
		}
		cfg, err := config.Load(example)
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for p := range w.gl.Files(dxProject, "main") {
			if strings.HasPrefix(p, strings.TrimSuffix(cfg.GitLab.DRPath, "/")+"/") || p == cfg.GitLab.AppOfAppsPath {
				left = append(left, p)
			}
		}
		sort.Strings(left)
		if len(left) != 0 {
			t.Errorf("main still holds the drill's files: %v", left)
		}
		if _, ok := w.gl.File(dxProject, "main", path.Join("apps/prod-eu-west-1", gitopstest.Namespace(0), gitopstest.Service(0)+"-pair.yaml")); !ok {
			t.Error("the revert removed the primary's templates too")
		}
	})
}
