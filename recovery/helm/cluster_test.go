package helm

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"helm.sh/helm/v3/pkg/action"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/lbcfake"
)

const (
	testRegion  = "eu-west-1"
	testCluster = "dr-eks"
	testVPC     = "vpc-0d1e2f3a4b5c6d7e8"
	testVault   = "https://vault.example.com:8200"
	// A rollout of the pause image on KWOK takes seconds; the margin is for
	// two cores shared with compilers.
	rolloutTimeout = 90 * time.Second
)

func chartsDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "testdata", "charts"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "istiod", "Chart.yaml")); err != nil {
		t.Fatalf("test charts: %v", err)
	}
	return dir
}

// testConfig installs every add-on from the test charts (file:// repo).
func testConfig(t *testing.T) *config.Config {
	repo := "file://" + chartsDir(t)
	return &config.Config{
		Targets: []config.Target{{Name: "prod-eu", DR: config.DR{Region: testRegion, ClusterName: testCluster}}},
		Vault:   config.Vault{Address: testVault, TargetMount: "k8s-dr-{target}"},
		Addons: map[string]config.Addon{
			config.AddonLoadBalancerController: {Chart: "aws-load-balancer-controller", Repo: repo, Version: "1.13.4", Namespace: "kube-system",
				Values: map[string]any{"replicaCount": 2, "serviceAccount": map[string]any{"annotations": map[string]any{"team": "platform"}}}},
			config.AddonIstioBase:    {Chart: "base", Repo: repo, Version: "1.27.1", Namespace: "istio-system"},
			config.AddonIstiod:       {Chart: "istiod", Repo: repo, Version: "1.27.1", Namespace: "istio-system", Values: map[string]any{"pilot": map[string]any{"autoscaleMin": 2}}},
			config.AddonIstioGateway: {Chart: "gateway", Repo: repo, Version: "1.27.1", Namespace: "istio-ingress", Values: map[string]any{"service": map[string]any{"type": "LoadBalancer", "annotations": map[string]any{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}}}},
			config.AddonVaultInjector: {Chart: "vault", Repo: repo, Version: "0.30.1", Namespace: "vault",
				Values: map[string]any{"injector": map[string]any{"replicas": 1}}},
		},
	}
}

const ingressYAML = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: public
spec:
  selector:
    istio: gateway
  servers:
    - port: {number: 80, name: http, protocol: HTTP}
      hosts: ["*"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: shop
spec:
  hosts: ["shop.example.com"]
  gateways: [public]
  http:
    - route:
        - destination: {host: shop.shop.svc.cluster.local}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: public-gateway
  annotations:
    alb.ingress.kubernetes.io/scheme: internet-facing
spec:
  ingressClassName: alb
  defaultBackend:
    service:
      name: istio-gateway
      port: {number: 80}
`

var upstream = []recovery.Step{
	steptest.Stub("cluster.create", recovery.PhaseProvision, map[string]string{"cluster_name": testCluster, "region": testRegion, "vpc_id": testVPC}),
	steptest.Stub("iam.roles", recovery.PhaseBootstrap, map[string]string{"lbc_service_account": "kube-system/aws-load-balancer-controller"}),
}

func stepsFor(t *testing.T, cfg *config.Config, src kube.ConfigSource, in *Installer, mutate func(*Options)) *Steps {
	t.Helper()
	opts := Options{Config: cfg, Kube: src, Installer: in, Timeout: rolloutTimeout, ProgressEvery: 10 * time.Second}
	if mutate != nil {
		mutate(&opts)
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func runStep(t *testing.T, id string, action recovery.Action) steptest.Result {
	t.Helper()
	steps := append(slices.Clone(upstream), recovery.Step{ID: id, Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create", "iam.roles"}, Action: action})
	res := steptest.Run(t, steptest.Options{AutoApprove: true, Timeout: 4 * time.Minute}, steps...)
	if rec := res.Steps[id]; rec.Status != state.StepSucceeded {
		t.Fatalf("%s is %s after %d attempts: %s", id, rec.Status, rec.Attempt, rec.Error)
	}
	return res
}

// revisions lists the revisions Helm stored for a release (its Secrets).
func revisions(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) []int {
	t.Helper()
	list, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + name})
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, s := range list.Items {
		n, _ := strconv.Atoi(s.Labels["version"])
		out = append(out, n)
	}
	sort.Ints(out)
	return out
}

// assertAvailable checks, without waiting, that a Deployment has rolled
// out: the step must have waited for it.
func assertAvailable(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, replicas int32) *appsv1.Deployment {
	t.Helper()
	d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("deployment %s/%s: %v", ns, name, err)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas || d.Status.AvailableReplicas != replicas || d.Status.UpdatedReplicas != replicas {
		t.Fatalf("deployment %s/%s: spec %v, updated %d, available %d; want %d rolled out when the step returned",
			ns, name, d.Spec.Replicas, d.Status.UpdatedReplicas, d.Status.AvailableReplicas, replicas)
	}
	return d
}

// appliedAt is when drbot last changed the object by server-side apply.
func appliedAt(mf []metav1.ManagedFieldsEntry) string {
	for _, e := range mf {
		if e.Manager == "drbot" && e.Operation == metav1.ManagedFieldsOperationApply && e.Time != nil {
			return e.Time.UTC().Format(time.RFC3339)
		}
	}
	return "never"
}

func containsLine(lines []string, want string) bool {
	for _, l := range lines {
		if strings.Contains(l, want) {
			return true
		}
	}
	return false
}

// TestAddonsOnARealCluster shares one kubeenv cluster (KWOK nodes, real
// controllers) between every install test of the package.
func TestAddonsOnARealCluster(t *testing.T) {
	kc := kubeenv.Start(t, kubeenv.WithName("dr"))
	cs := kc.Clientset()
	src := kube.Static(kc.AdminConfig())
	in := &Installer{CacheDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}

	// The gateway's LoadBalancer Service is only ready (for Helm's wait)
	// once a load balancer controller gives it an address.
	aw := awsfake.New(t, awsfake.Options{})
	lbc, err := lbcfake.Start(context.Background(), lbcfake.Options{
		Cluster: kc.AdminConfig(), ClusterName: testCluster, Region: testRegion,
		LBs:  elbv2.NewFromConfig(aw.Config(testRegion, "AKIDHELMTEST00000001", "made-up-secret")),
		Poll: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lbc.Stop)

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	t.Run("LBCInstallsWithDrbotsValuesAndRollsOut", func(t *testing.T) {
		s := stepsFor(t, testConfig(t), src, in, nil)
		res := runStep(t, StepLBC, s.LBC)
		out := res.Steps[StepLBC].Outputs
		if out["revision"] != "1" || out["release"] != "aws-load-balancer-controller" || out["version"] != "1.13.4" || out["service_account"] != "kube-system/aws-load-balancer-controller" {
			t.Fatalf("outputs = %v", out)
		}
		if p := res.Progress(StepLBC); !containsLine(p, "aws-load-balancer-controller 1.13.4 installed, revision 1") {
			t.Fatalf("progress = %q, want the install line", p)
		}
		d := assertAvailable(ctx, t, cs, "kube-system", "aws-load-balancer-controller", 2)
		args := strings.Join(d.Spec.Template.Spec.Containers[0].Args, " ")
		for _, want := range []string{"--cluster-name=" + testCluster, "--aws-region=" + testRegion, "--aws-vpc-id=" + testVPC} {
			if !strings.Contains(args, want) {
				t.Errorf("controller args %q lack %s", args, want)
			}
		}
		sa, err := cs.CoreV1().ServiceAccounts("kube-system").Get(ctx, "aws-load-balancer-controller", metav1.GetOptions{})
		if err != nil || sa.Annotations["team"] != "platform" {
			t.Fatalf("service account = %v, %v; want it created with the config's annotations", sa, err)
		}
	})

	t.Run("SecondRunMakesNoNewRevision", func(t *testing.T) {
		s := stepsFor(t, testConfig(t), src, in, nil)
		res := runStep(t, StepLBC, s.LBC)
		if got := res.Steps[StepLBC].Outputs["revision"]; got != "1" {
			t.Fatalf("revision = %s, want 1", got)
		}
		if p := res.Progress(StepLBC); !containsLine(p, "unchanged, revision 1") || containsLine(p, "installing") || containsLine(p, "upgrading") {
			t.Fatalf("progress = %q, want only the unchanged line", p)
		}
		if revs := revisions(ctx, t, cs, "kube-system", "aws-load-balancer-controller"); !slices.Equal(revs, []int{1}) {
			t.Fatalf("stored revisions = %v, want [1]", revs)
		}
	})

	t.Run("ValuesChangeMakesExactlyOneUpgrade", func(t *testing.T) {
		cfg := testConfig(t)
		a := cfg.Addons[config.AddonLoadBalancerController]
		a.Values = map[string]any{"replicaCount": 3, "serviceAccount": map[string]any{"annotations": map[string]any{"team": "platform"}}}
		cfg.Addons[config.AddonLoadBalancerController] = a
		s := stepsFor(t, cfg, src, in, nil)
		res := runStep(t, StepLBC, s.LBC)
		if p := res.Progress(StepLBC); !containsLine(p, "upgrading aws-load-balancer-controller 1.13.4 in kube-system (values changed: replicaCount)") || !containsLine(p, "upgraded, revision 2") {
			t.Fatalf("progress = %q", p)
		}
		assertAvailable(ctx, t, cs, "kube-system", "aws-load-balancer-controller", 3)
		runStep(t, StepLBC, s.LBC)
		if revs := revisions(ctx, t, cs, "kube-system", "aws-load-balancer-controller"); !slices.Equal(revs, []int{1, 2}) {
			t.Fatalf("stored revisions = %v, want [1 2]: one upgrade, then nothing", revs)
		}
	})

	t.Run("ReleaseLeftPendingByACrashIsCompletedWithoutANewRevision", func(t *testing.T) {
		// A drbot killed mid-upgrade leaves the last revision pending-upgrade
		// (Helm itself would refuse every later upgrade of it); the same
		// chart and values are finished in place: no new revision.
		s := stepsFor(t, testConfig(t), src, in, nil)
		runStep(t, StepLBC, s.LBC) // the release now has exactly these values
		ac := actionConfig(t, kc, "kube-system")
		last, err := ac.Releases.Last("aws-load-balancer-controller")
		if err != nil {
			t.Fatal(err)
		}
		pending := last.Version
		last.Info.Status = "pending-upgrade"
		if err := ac.Releases.Update(last); err != nil {
			t.Fatal(err)
		}
		res := runStep(t, StepLBC, s.LBC)
		if got := res.Steps[StepLBC].Outputs["revision"]; got != strconv.Itoa(pending) {
			t.Fatalf("revision = %s, want the pending one, %d", got, pending)
		}
		now, err := actionConfig(t, kc, "kube-system").Releases.Last("aws-load-balancer-controller")
		if err != nil || now.Version != pending || now.Info.Status != "deployed" {
			t.Fatalf("last release = %v %v, want revision %d deployed", now.Version, now.Info.Status, pending)
		}
		assertAvailable(ctx, t, cs, "kube-system", "aws-load-balancer-controller", 2)
	})

	t.Run("ReleaseLeftPendingWithOtherValuesIsUpgraded", func(t *testing.T) {
		ac := actionConfig(t, kc, "kube-system")
		last, err := ac.Releases.Last("aws-load-balancer-controller")
		if err != nil {
			t.Fatal(err)
		}
		last.Info.Status = "pending-upgrade"
		last.Config = map[string]any{"replicaCount": 7}
		if err := ac.Releases.Update(last); err != nil {
			t.Fatal(err)
		}
		s := stepsFor(t, testConfig(t), src, in, nil)
		res := runStep(t, StepLBC, s.LBC)
		if got := res.Steps[StepLBC].Outputs["revision"]; got != strconv.Itoa(last.Version+1) {
			t.Fatalf("revision = %s, want an upgrade to %d", got, last.Version+1)
		}
	})

	t.Run("IstioInstallsBaseThenIstiodThenTheGatewayStepAppliesTheIngress", func(t *testing.T) {
		manifests, err := ParseManifests(ingressYAML)
		if err != nil {
			t.Fatal(err)
		}
		s := stepsFor(t, testConfig(t), src, in, func(o *Options) { o.IngressManifests = manifests })
		installed := func(res steptest.Result, step string) []string {
			var order []string
			for _, l := range res.Progress(step) {
				if strings.Contains(l, "installed, revision 1") {
					order = append(order, strings.Fields(l)[0])
				}
			}
			return order
		}
		res := runStep(t, StepIstio, s.Istio)
		if order := installed(res, StepIstio); !slices.Equal(order, []string{"istio-base", "istiod"}) {
			t.Fatalf("addons.istio installed %v (progress %q), want base, then istiod", order, res.Progress(StepIstio))
		}
		assertAvailable(ctx, t, cs, "istio-system", "istiod", 2)
		if out := res.Steps[StepIstio].Outputs; out["istiod_revision"] != "1" || out["gateway_service"] != "" || out["ingress_objects"] != "" {
			t.Fatalf("addons.istio outputs = %v, want istiod's revision and nothing of the gateway", out)
		}
		if _, err := cs.AppsV1().Deployments("istio-ingress").Get(ctx, "istio-gateway", metav1.GetOptions{}); err == nil {
			t.Fatal("addons.istio installed the gateway; it belongs to addons.istio-gateway, after the load balancer controller")
		}

		res = runStep(t, StepIstioGateway, s.IstioGateway)
		if order := installed(res, StepIstioGateway); !slices.Equal(order, []string{"istio-gateway"}) {
			t.Fatalf("addons.istio-gateway installed %v (progress %q), want the gateway", order, res.Progress(StepIstioGateway))
		}
		assertAvailable(ctx, t, cs, "istio-ingress", "istio-gateway", 1)
		ns, err := cs.CoreV1().Namespaces().Get(ctx, "istio-ingress", metav1.GetOptions{})
		if err != nil || ns.Labels["istio-injection"] != "enabled" {
			t.Fatalf("namespace istio-ingress = %v, %v; want istio-injection=enabled", ns.Labels, err)
		}
		svc, err := cs.CoreV1().Services("istio-ingress").Get(ctx, "istio-gateway", metav1.GetOptions{})
		if err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
			t.Fatalf("gateway service %v, %v; want a load balancer address before the step returned", svc.Status, err)
		}
		out := res.Steps[StepIstioGateway].Outputs
		if out["gateway_service"] != "istio-ingress/istio-gateway" || out["istio-gateway_revision"] != "1" {
			t.Fatalf("outputs = %v", out)
		}
		var applied []string
		if err := json.Unmarshal([]byte(out["ingress_objects"]), &applied); err != nil || len(applied) != 3 {
			t.Fatalf("ingress_objects = %s, want 3 objects", out["ingress_objects"])
		}
		gw := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}
		obj, err := kc.Dynamic().Resource(gw).Namespace("istio-ingress").Get(ctx, "public", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("gateway istio-ingress/public: %v", err)
		}
		if mf := obj.GetManagedFields(); len(mf) != 1 || mf[0].Manager != "drbot" || mf[0].Operation != metav1.ManagedFieldsOperationApply {
			t.Fatalf("managed fields = %+v, want one server-side apply by drbot", mf)
		}
		// The load balancer controller writes the Ingress's status and
		// finalizer; the Gateway is drbot's alone.
		ing, err := cs.NetworkingV1().Ingresses("istio-ingress").Get(ctx, "public-gateway", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		gatewayRV, ingressApplied := obj.GetResourceVersion(), appliedAt(ing.ManagedFields)

		// Again: no new revisions, and re-applying the same manifests changes nothing.
		res = runStep(t, StepIstio, s.Istio)
		again := runStep(t, StepIstioGateway, s.IstioGateway)
		for _, rel := range []struct{ ns, name string }{{"istio-system", "istio-base"}, {"istio-system", "istiod"}, {"istio-ingress", "istio-gateway"}} {
			if revs := revisions(ctx, t, cs, rel.ns, rel.name); !slices.Equal(revs, []int{1}) {
				t.Errorf("%s revisions = %v, want [1]", rel.name, revs)
			}
		}
		for _, p := range [][]string{res.Progress(StepIstio), again.Progress(StepIstioGateway)} {
			if containsLine(p, "installing") || containsLine(p, "upgrading") {
				t.Errorf("second run progress = %q, want no install or upgrade", p)
			}
		}
		obj, _ = kc.Dynamic().Resource(gw).Namespace("istio-ingress").Get(ctx, "public", metav1.GetOptions{})
		ing, _ = cs.NetworkingV1().Ingresses("istio-ingress").Get(ctx, "public-gateway", metav1.GetOptions{})
		if obj.GetResourceVersion() != gatewayRV || appliedAt(ing.ManagedFields) != ingressApplied {
			t.Errorf("re-applying unchanged manifests changed them: gateway %s → %s, ingress applied %s → %s",
				gatewayRV, obj.GetResourceVersion(), ingressApplied, appliedAt(ing.ManagedFields))
		}
	})

	t.Run("VaultInjectorPointsAtTheExternalVaultAndTheDRMount", func(t *testing.T) {
		s := stepsFor(t, testConfig(t), src, in, nil)
		res := runStep(t, StepVaultInjector, s.VaultInjector)
		out := res.Steps[StepVaultInjector].Outputs
		if out["release"] != "vault" || out["revision"] != "1" || out["auth_path"] != "auth/k8s-dr-prod-eu" {
			t.Fatalf("outputs = %v", out)
		}
		d := assertAvailable(ctx, t, cs, "vault", "vault-agent-injector", 1)
		env := map[string]string{}
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		if env["AGENT_INJECT_VAULT_ADDR"] != testVault || env["AGENT_INJECT_VAULT_AUTH_PATH"] != "auth/k8s-dr-prod-eu" {
			t.Fatalf("injector env = %v, want the external Vault and auth/k8s-dr-prod-eu", env)
		}
		if p := res.Progress(StepVaultInjector); !containsLine(p, "vault 0.30.1 installed, revision 1") {
			t.Fatalf("progress = %q", p)
		}
	})

	t.Run("PlanShowsWhatWouldChangeWithoutChangingIt", func(t *testing.T) {
		cfg := testConfig(t)
		a := cfg.Addons[config.AddonIstiod]
		a.Values = map[string]any{"pilot": map[string]any{"autoscaleMin": 3}}
		cfg.Addons[config.AddonIstiod] = a
		s := stepsFor(t, cfg, src, in, nil)
		outputs := func(step, key string) (string, bool) {
			v, ok := map[string]string{"cluster.create/vpc_id": testVPC}[step+"/"+key]
			return v, ok
		}
		lines, err := s.Plan(ctx, "prod-eu", kc.AdminConfig(), outputs)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{
			StepLBC: {"aws-load-balancer-controller 1.13.4 in kube-system: unchanged at revision 4"},
			StepIstio: {
				"istio-base 1.27.1 in istio-system: unchanged at revision 1",
				"istiod 1.27.1 in istio-system: upgrade from revision 1 (values changed: pilot.autoscaleMin)",
			},
			StepIstioGateway:  {"istio-gateway 1.27.1 in istio-ingress: unchanged at revision 1"},
			StepVaultInjector: {"vault 0.30.1 in vault: unchanged at revision 1"},
		}
		for step, w := range want {
			if !slices.Equal(lines[step], w) {
				t.Errorf("plan of %s =\n  %s\nwant\n  %s", step, strings.Join(lines[step], "\n  "), strings.Join(w, "\n  "))
			}
		}
		if revs := revisions(ctx, t, cs, "istio-system", "istiod"); !slices.Equal(revs, []int{1}) {
			t.Fatalf("planning changed istiod: revisions %v", revs)
		}
		if d := assertAvailable(ctx, t, cs, "istio-system", "istiod", 2); d == nil {
			t.Fatal("istiod gone")
		}
	})

	t.Run("MissingRequiredValueFailsTheInstallLikeTheRealChart", func(t *testing.T) {
		_, err := in.InstallOrUpgrade(ctx, kc.AdminConfig(), Release{
			Name: "lbc-no-cluster-name", Namespace: "render-check", Wait: true, Timeout: rolloutTimeout,
			Chart:  ChartRef{Repo: "file://" + chartsDir(t), Name: "aws-load-balancer-controller", Version: "1.13.4"},
			Values: map[string]any{"region": testRegion, "vpcId": testVPC, "serviceAccount": map[string]any{"name": "x"}},
		})
		if err == nil || !strings.Contains(err.Error(), "Chart cannot be installed without a valid clusterName!") {
			t.Fatalf("err = %v, want the chart's required clusterName message", err)
		}
		if recovery.IsRetryable(err) {
			t.Fatalf("a render error is classified retryable: %v", err)
		}
		if revs := revisions(ctx, t, cs, "render-check", "lbc-no-cluster-name"); len(revs) != 0 {
			t.Fatalf("a release that never rendered stored revisions %v", revs)
		}
	})

	t.Run("ReleaseUninstalledWithItsHistoryKeptIsInstalledAgain", func(t *testing.T) {
		rel := Release{Name: "istio-base", Namespace: "uninstall-test", Wait: true, Timeout: rolloutTimeout,
			Chart: ChartRef{Repo: "file://" + chartsDir(t), Name: "base", Version: "1.27.1"}}
		if out, err := in.InstallOrUpgrade(ctx, kc.AdminConfig(), rel); err != nil || out.Revision != 1 {
			t.Fatalf("install = %+v, %v", out, err)
		}
		un := action.NewUninstall(actionConfig(t, kc, "uninstall-test"))
		un.KeepHistory = true
		if _, err := un.Run("istio-base"); err != nil {
			t.Fatal(err)
		}
		out, err := in.InstallOrUpgrade(ctx, kc.AdminConfig(), rel)
		if err != nil || out.Action != Installed || out.Revision != 2 || out.Reason != "revision 1 was uninstalled" {
			t.Fatalf("after uninstall = %+v, %v; want installed again as revision 2", out, err)
		}
		if _, err := cs.CoreV1().ConfigMaps("uninstall-test").Get(ctx, "istio-base-settings", metav1.GetOptions{}); err != nil {
			t.Fatalf("the chart's ConfigMap is not back: %v", err)
		}
	})

	t.Run("FailedRolloutParksOnlyItsStepAndRetryAfterTheFixCompletes", func(t *testing.T) {
		testFailedRolloutAndRetry(ctx, t, kc, src, in)
	})

	t.Run("HTTPChartRepository", func(t *testing.T) {
		testHTTPRepository(ctx, t, kc, in)
	})

	t.Run("OCIRegistry", func(t *testing.T) {
		testOCIRegistry(ctx, t, kc, in)
	})
}

func testFailedRolloutAndRetry(ctx context.Context, t *testing.T, kc *kubeenv.Cluster, src kube.ConfigSource, in *Installer) {
	cs := kc.Clientset()
	const pool = "drbot-test/pool"
	cfg := testConfig(t)
	a := cfg.Addons[config.AddonLoadBalancerController]
	a.Namespace = "lbc-retry"
	// No node carries the label yet: the pods stay Pending, as on a cluster
	// whose node group for the add-ons is missing.
	a.Values = map[string]any{"replicaCount": 1, "nodeSelector": map[string]any{pool: "addons"}}
	cfg.Addons[config.AddonLoadBalancerController] = a
	v := cfg.Addons[config.AddonVaultInjector]
	v.Namespace = "vault-retry"
	cfg.Addons[config.AddonVaultInjector] = v
	s := stepsFor(t, cfg, src, in, func(o *Options) { o.Timeout = 10 * time.Second; o.ProgressEvery = 3 * time.Second })

	book, err := recovery.NewRunbook([]recovery.Step{
		steptest.Stub("cluster.create", recovery.PhaseProvision, map[string]string{"cluster_name": testCluster, "region": testRegion, "vpc_id": testVPC}),
		{ID: StepLBC, Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: s.LBC},
		{ID: StepVaultInjector, Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: s.VaultInjector},
	})
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	engCtx, stopEngine := context.WithCancel(ctx)
	eng := recovery.New(engCtx, store, book, recovery.Options{
		Retry:  recovery.RetryPolicy{MaxAttempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	defer func() { stopEngine(); eng.Wait() }()
	run, err := eng.Start(recovery.StartRequest{Target: "prod-eu", Mode: state.ModeRecovery, Initiator: "U_TEST"})
	if err != nil {
		t.Fatal(err)
	}
	waitRun := func(what string, done func(steptest.Result) bool) steptest.Result {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			res := steptest.Load(t, store, run.ID)
			if done(res) {
				return res
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: run %s, steps %+v", what, res.Run.Status, res.Steps)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	res := waitRun("the run to block", func(r steptest.Result) bool { return r.Run.Status == state.RunBlocked || r.Run.Status.Finished() })
	lbcRec, vaultRec := res.Steps[StepLBC], res.Steps[StepVaultInjector]
	if lbcRec.Status != state.StepFailed || !strings.Contains(lbcRec.Error, "did not roll out within 10s") ||
		!strings.Contains(lbcRec.Error, "Deployment is not ready: lbc-retry/aws-load-balancer-controller. 0 out of 1 expected pods are ready") || lbcRec.Attempt != 1 {
		t.Fatalf("addons.lbc = %s after %d attempts (%q), want failed once with the rollout message", lbcRec.Status, lbcRec.Attempt, lbcRec.Error)
	}
	if p := res.Progress(StepLBC); !containsLine(p, "installing aws-load-balancer-controller 1.13.4 in lbc-retry, waiting up to 10s") ||
		!containsLine(p, "aws-load-balancer-controller 1.13.4 still rolling out, 3s") {
		t.Errorf("progress = %q, want the start line and a line while it waited", p)
	}
	if vaultRec.Status != state.StepSucceeded {
		t.Fatalf("the independent addons.vault-injector is %s (%s), want succeeded", vaultRec.Status, vaultRec.Error)
	}
	assertAvailable(ctx, t, cs, "vault-retry", "vault-agent-injector", 1)

	// The fix: a node the add-ons may run on.
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("nodes: %v, %v", nodes, err)
	}
	patch := []byte(`{"metadata":{"labels":{"` + pool + `":"addons"}}}`)
	if _, err := cs.CoreV1().Nodes().Patch(ctx, nodes.Items[0].Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Decide(recovery.DecisionRequest{RunID: run.ID, StepID: StepLBC, Kind: recovery.DecideRetry, By: "U_OPERATOR", Round: lbcRec.Failures}); err != nil {
		t.Fatal(err)
	}
	res = waitRun("the run to finish", func(r steptest.Result) bool { return r.Run.Status.Finished() })
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s after Retry: %+v", res.Run.Status, res.Steps)
	}
	if got := res.Steps[StepLBC].Outputs["revision"]; got != "2" {
		t.Fatalf("revision after Retry = %s, want 2 (the failed install upgraded)", got)
	}
	assertAvailable(ctx, t, cs, "lbc-retry", "aws-load-balancer-controller", 1)
}
