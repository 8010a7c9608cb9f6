package main

import (
	"bytes"
	"io"
	"log/slog"
	"maps"
	"path"
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
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/argocd"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/iam"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/argofake"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
	"github.com/drbot/drbot/test/world"
)

// A whole drill, the way it happens in production: the scheduler announces
// it and starts it at its time, the fully wired standard runbook runs every
// phase through the real integrations against the stand-ins (AWS with the
// EKS token webhook, a real DR API server, Argo CD in a real management
// cluster syncing from GitLab, Vault, the load balancer controller), the
// post-mortem is uploaded into the run's log thread, and the teardown
// puts the drill's endpoints back and leaves nothing behind that the drill made.

const (
	dxTarget = "drill-eu"        // the example's drill twin, which world aims at itself
	dxMount  = "k8s-dr-drill-eu" // vault.target_mount for drill-eu in the example
)

func TestScheduledDrillRunsEveryPhaseThroughTheStandInsAndLeavesNothingBehind(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and a whole drill through every stand-in (about 70 s)")
	}
	began := time.Now()
	// EKS takes a few seconds to build the control plane, so the run
	// waits for it as it does in production.
	w, e, book, clk := dxStart(t, 6, 5*time.Second, nil)

	// The announcement, an hour before the start.
	clk.Set(time.Date(2026, 12, 2, 9, 0, 30, 0, time.UTC))
	e.waitFor("the drill announcement", func() bool {
		for _, m := range e.slack.Messages(world.ChanDR) {
			if strings.Contains(blocksText(m), bot.ActionDrillPostpone) && strings.Contains(blocksText(m), "<@"+world.UserSRE+">") {
				return true
			}
		}
		return false
	})
	if e.run().ID != "" {
		t.Fatal("the drill started at its announcement")
	}

	before := w.endpoints(t)

	// The start: the scheduler opens the drill's channel and runs it.
	clk.Set(time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC))
	e.waitFor("the drill run", func() bool { return e.run().Slack.ChannelID != "" })
	run := e.run()
	if c, _ := e.slack.Channel(run.Slack.ChannelID); run.Mode != state.ModeDrill || run.Target != dxTarget || !strings.HasPrefix(c.Name, "drill-"+dxTarget+"-") {
		t.Fatalf("drill run = %+v in #%s", run, c.Name)
	}

	// While it runs, remember every load balancer the DR cluster got and
	// where the drill's record pointed, so the cutover can be checked
	// against them after the teardown removed them and put the record back.
	lbs := w.watchLoadBalancers(t)
	aliases := w.watchRecord(t)
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

	w.checkCutover(t, e.step(run.ID, standard.EndpointsApply), lbs(), aliases())
	w.checkCutoverRestored(t, before, e.step(run.ID, standard.Teardown))
	w.checkNothingLeft(t)
}

// dxWorld is the drill's surroundings: the shared world, with the
// drill's checks on it.
type dxWorld struct{ *world.World }

// dxStart starts a world of services for drill-eu (EKS taking eksDelay
// to build the control plane) and drbot serving it with the fully wired
// standard runbook, actions in override replacing the real ones. The
// config schedules one drill, "december", at 10:00 on 2 December,
// announced an hour before, that passes both gates by itself; the drill
// scheduler reads the returned clock, set to 08:00 that day.
func dxStart(t *testing.T, services int, eksDelay time.Duration, override map[string]recovery.Action) (*dxWorld, *e2e, *recovery.Runbook, *movableClock) {
	t.Helper()
	w := &dxWorld{world.Start(t, world.Options{Target: dxTarget, Drill: true, Services: services, AWS: awsfake.Options{EKSCreateDelay: eksDelay}})}
	clk := &movableClock{now: time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)}
	var live atomic.Pointer[state.Store]
	cfg, err := w.Config(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Drills = []config.Drill{{Name: "december", Schedule: "0 10 2 12 *", Timezone: "UTC", Target: dxTarget,
		Announce: []config.Duration{config.Duration(time.Hour)}, OnPoint: []string{world.UserSRE}, Teardown: true,
		PreApprove: []string{"merge", "cutover"}}}
	std, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	book, rollback, err := wireActions(cfg, std, slog.New(slog.NewTextHandler(io.Discard, nil)), live.Load)
	if err != nil {
		t.Fatal(err)
	}
	if len(override) > 0 {
		if book, err = book.WithActions(override); err != nil {
			t.Fatal(err)
		}
	}
	e := &e2e{t: t, slack: w.Slack, cfg: cfg, done: make(chan error, 1)}
	e.start(book, serveOptions{drillClock: clk.Now, drillTick: 20 * time.Millisecond, rollback: rollback, onStore: live.Store})
	return w, e, book, clk
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
			for _, lb := range w.AWS.LoadBalancers(world.Region) {
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

// watchRecord polls where api.dr.example.com points until the test ends
// and returns every alias target it saw.
func (w *dxWorld) watchRecord(t *testing.T) func() []string {
	t.Helper()
	var mu sync.Mutex
	var seen []string
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			if rec, ok := w.AWS.Edge().Record(w.Zone, "api.dr.example.com", "A", ""); ok && rec.AliasTarget != nil {
				dns := strings.TrimSuffix(rec.AliasTarget.DNSName, ".")
				mu.Lock()
				if !slices.Contains(seen, dns) {
					seen = append(seen, dns)
				}
				mu.Unlock()
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
}

// dxEndpoints is every value the drill's cutover moves, and the zones it
// must not touch, as the stand-in holds them.
type dxEndpoints struct {
	Record     edge.RecordSet
	Docs       edge.RecordSet
	Origins    map[string]string
	REST       string
	Served     string // what the REST stage prod serves
	ProdRecord []edge.RecordSet
}

func (w *dxWorld) endpoints(t *testing.T) dxEndpoints {
	t.Helper()
	ed := w.AWS.Edge()
	var p dxEndpoints
	p.Record, _ = ed.Record(w.Zone, "api.dr.example.com", "A", "")
	p.Docs, _ = ed.Record(w.Zone, "docs.dr.example.com", "CNAME", "")
	d, ok := ed.Distribution(w.Distribution)
	if !ok {
		t.Fatalf("distribution %s is gone", w.Distribution)
	}
	p.Origins = map[string]string{}
	for _, o := range d.Origins {
		p.Origins[o.ID] = o.DomainName
	}
	integ, _ := ed.RestIntegration(w.API, w.APIResource, "GET")
	p.REST = integ.URI
	served, _ := ed.StageIntegrations(w.API, "prod")
	p.Served = served["GET /orders"].URI
	p.ProdRecord = ed.Records(w.ProdZone)
	return p
}

// checkCutover: during the drill its record pointed at the Istio gateway's
// load balancer the DR cluster got, and endpoints.apply moved every
// configured row (record, CDN origin, API integration).
func (w *dxWorld) checkCutover(t *testing.T, apply state.StepRecord, lbs map[string]awsfake.LoadBalancer, aliases []string) {
	t.Helper()
	if got := apply.Outputs["applied"]; got != "3" {
		t.Errorf("endpoints.apply changed %q row(s), want the record, the origin and the integration (3); outputs %v", got, apply.Outputs)
	}
	gateway := false
	for _, dns := range aliases {
		lb, ok := lbs[dns]
		gateway = gateway || (ok && lb.Tags["elbv2.k8s.aws/cluster"] == w.Cluster && lb.Tags["service.k8s.aws/stack"] == world.Gateway)
	}
	if !gateway {
		t.Errorf("api.dr.example.com pointed at %v during the drill, never at the gateway load balancer of %s (seen %d load balancers)", aliases, w.Cluster, len(lbs))
	}
}

// checkCutoverRestored: the teardown put every row back before deleting the
// load balancers they pointed at; production's zone and the drill zone's
// other record never changed.
func (w *dxWorld) checkCutoverRestored(t *testing.T, before dxEndpoints, td state.StepRecord) {
	t.Helper()
	after := w.endpoints(t)
	if !reflect.DeepEqual(after, before) {
		t.Errorf("the drill's endpoints after the drill:\n %+v\nwant them as before it:\n %+v", after, before)
	}
	if rec := after.Record; rec.AliasTarget == nil || strings.TrimSuffix(rec.AliasTarget.DNSName, ".") != world.OldLB {
		t.Errorf("api.dr.example.com = %+v after the drill, want it back at %s", rec, world.OldLB)
	}
	if after.Origins["web-origin"] != world.OldLB || after.REST != "https://"+world.OldLB+"/orders/{proxy}" || after.Served != after.REST {
		t.Errorf("origin %q, integration %q, stage serving %q after the drill: want all back at %s", after.Origins["web-origin"], after.REST, after.Served, world.OldLB)
	}
	if got, want := td.Outputs["removed.cutover"], "3 row(s) restored, 0 already had their old value"; got != want {
		t.Errorf("teardown's cutover part = %q, want %q", got, want)
	}
}

// checkNothingLeft lists every kind of thing the drill created and checks
// that none of it is left in the stand-ins.
func (w *dxWorld) checkNothingLeft(t *testing.T) {
	t.Helper()
	ctx := p12Ctx(t)
	names := iam.NamesFor(w.Cluster)
	admin := w.AWS.Config(w.AdminAWS())
	eksAPI := awseks.NewFromConfig(admin)
	iamAPI := awsiam.NewFromConfig(admin)
	created := func(service, op string) int {
		n := 0
		for _, c := range w.AWS.Calls() {
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
		if _, err := eksAPI.DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: aws.String(w.Cluster)}); err == nil || !strings.Contains(err.Error(), "ResourceNotFound") {
			t.Errorf("DescribeCluster %s after the teardown: %v, want ResourceNotFoundException", w.Cluster, err)
		}
	})
	t.Run("EKS node groups, add-ons, Pod Identity associations and access entries", func(t *testing.T) {
		for _, op := range []string{"CreateNodegroup", "CreateAddon", "CreatePodIdentityAssociation", "CreateAccessEntry"} {
			if created(awsfake.ServiceEKS, op) == 0 {
				t.Errorf("the drill never called %s", op)
			}
		}
		// They belong to the cluster: each listing of the deleted cluster says it is gone.
		if _, err := eksAPI.ListNodegroups(ctx, &awseks.ListNodegroupsInput{ClusterName: aws.String(w.Cluster)}); err == nil {
			t.Error("node groups are still listed for the deleted cluster")
		}
		if _, err := eksAPI.ListAddons(ctx, &awseks.ListAddonsInput{ClusterName: aws.String(w.Cluster)}); err == nil {
			t.Error("add-ons are still listed for the deleted cluster")
		}
		if _, err := eksAPI.ListPodIdentityAssociations(ctx, &awseks.ListPodIdentityAssociationsInput{ClusterName: aws.String(w.Cluster)}); err == nil {
			t.Error("Pod Identity associations are still listed for the deleted cluster")
		}
		if _, err := eksAPI.ListAccessEntries(ctx, &awseks.ListAccessEntriesInput{ClusterName: aws.String(w.Cluster)}); err == nil {
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
		if n := w.AWS.CallsTo("iam", "ListInstanceProfilesForRole"); n < 3 {
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
		if left := w.AWS.LoadBalancers(world.Region); len(left) != 0 {
			var dns []string
			for _, lb := range left {
				dns = append(dns, lb.DNSName)
			}
			t.Errorf("load balancers left: %v", dns)
		}
	})
	t.Run("Vault DR auth mount", func(t *testing.T) {
		enabled := false
		for _, c := range w.Vault.Calls() {
			enabled = enabled || (c.Path == "sys/auth/"+dxMount && (c.Method == "POST" || c.Method == "PUT") && c.Status < 300)
		}
		if !enabled {
			t.Errorf("auth/%s was never enabled", dxMount)
		}
		for _, m := range w.Vault.Mounts() {
			if m.Auth && m.Path == dxMount+"/" {
				t.Errorf("auth/%s is still mounted", dxMount)
			}
		}
		if roles := w.Vault.Roles(dxMount); len(roles) != 0 {
			t.Errorf("auth/%s still has roles %v", dxMount, roles)
		}
	})
	t.Run("Argo CD cluster Secret and Applications", func(t *testing.T) {
		secrets, err := w.Mgmt.Clientset().CoreV1().Secrets("argocd").List(ctx, metav1.ListOptions{LabelSelector: argocd.SecretTypeLabel + "=cluster"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets.Items {
			t.Errorf("Argo CD cluster Secret %s is left", s.Name)
		}
		apps, err := w.Mgmt.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range apps.Items {
			t.Errorf("Argo CD Application %s is left", a.GetName())
		}
	})
	t.Run("DR cluster load balancer Services, Karpenter NodePools and the services Argo CD deployed", func(t *testing.T) {
		svcs, err := w.DR.Clientset().CoreV1().Services("").List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range svcs.Items {
			if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
				t.Errorf("LoadBalancer Service %s/%s is left in the DR cluster", s.Namespace, s.Name)
			}
		}
		for _, gvr := range []schema.GroupVersionResource{argocd.NodePoolGVR, argocd.EC2NodeClassGVR} {
			list, err := w.DR.Dynamic().Resource(gvr).List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range list.Items {
				t.Errorf("%s %s is left in the DR cluster", gvr.Resource, o.GetName())
			}
		}
		deps, err := w.DR.Clientset().AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: argofake.InstanceLabel})
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
		mrs := w.GitLab.MergeRequests(world.Project)
		if len(mrs) != 1 {
			t.Fatalf("merge requests = %+v, want the drill's one", mrs)
		}
		if mrs[0].State == "opened" {
			t.Errorf("the drill's merge request !%d is still open", mrs[0].IID)
		}
		if br := w.GitLab.Branches(world.Project); !slices.Equal(br, []string{"main"}) {
			t.Errorf("branches = %v, want only main", br)
		}
		cfg, err := config.Load(example)
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for p := range w.GitLab.Files(world.Project, "main") {
			if strings.HasPrefix(p, strings.TrimSuffix(cfg.GitLab.DRPath, "/")+"/") || p == cfg.GitLab.AppOfAppsPath {
				left = append(left, p)
			}
		}
		sort.Strings(left)
		if len(left) != 0 {
			t.Errorf("main still holds the drill's files: %v", left)
		}
		if _, ok := w.GitLab.File(world.Project, "main", path.Join(world.TemplatesDir, gitopstest.Namespace(0), gitopstest.Service(0)+"-pair.yaml")); !ok {
			t.Error("the revert removed the primary's templates too")
		}
	})
}
