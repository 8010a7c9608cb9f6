package argocd_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/argocd"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/argofake"
	"github.com/drbot/drbot/test/kubeenv"
)

const argoRole = "arn:aws:iam::111122223333:role/argocd-dr"

// env is a management cluster running the Argo CD stand-in and a DR
// cluster, shared by the subtests (they run in order and build on each other).
type env struct {
	mgmt, dr *kubeenv.Cluster

	mu   sync.Mutex
	seen map[string]argofake.ClusterConfig // what Argo CD was given, by cluster Secret
}

func TestArgoCD(t *testing.T) {
	e := &env{seen: map[string]argofake.ClusterConfig{}}
	e.mgmt = kubeenv.Start(t, kubeenv.WithName("management"))
	// 16 CPUs per node: a chart asking for 64 fits nowhere and goes Degraded.
	e.dr = kubeenv.Start(t, kubeenv.WithName("dr"), kubeenv.WithNodes(2, "16", "64Gi", 110))

	ctx := testContext(t, 30*time.Second)
	if _, err := e.mgmt.Clientset().CoreV1().Namespaces().Create(ctx, nsObject("argocd"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrl, err := argofake.Start(context.Background(), argofake.Options{
		Management:       e.mgmt.AdminConfig(),
		Poll:             250 * time.Millisecond,
		ProgressDeadline: 3 * time.Second,
		// Real Argo CD would get an EKS token for awsAuthConfig.clusterName; the stand-in maps the Secret to
		// the DR test cluster after checking that the Secret carries the right cluster, role and CA.
		DestinationConfig: func(secret, server string, cfg argofake.ClusterConfig) (*rest.Config, error) {
			e.mu.Lock()
			e.seen[secret] = cfg
			e.mu.Unlock()
			if cfg.AWSAuthConfig == nil || cfg.AWSAuthConfig.RoleARN != argoRole || argocd.SecretName(cfg.AWSAuthConfig.ClusterName) != secret {
				return nil, fmt.Errorf("secret %s: unexpected awsAuthConfig %+v", secret, cfg.AWSAuthConfig)
			}
			if !bytes.Equal(cfg.TLSClientConfig.CAData, e.dr.CAData()) || cfg.TLSClientConfig.Insecure || server != e.dr.Endpoint() {
				return nil, fmt.Errorf("secret %s: wrong CA, insecure or server %q", secret, server)
			}
			return e.dr.AdminConfig(), nil
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctrl.Stop)

	t.Run("RegisterAndKarpenterComeUpThroughArgoCD", e.testFirstRun)
	t.Run("SecondRunChangesNothing", e.testSecondRun)
	t.Run("RegisterRepairsAStaleSecret", e.testStaleSecret)
	t.Run("RegisterRefusesANameTakenByAnotherSecret", e.testNameTaken)
	t.Run("DestinationByServerAndWholeObjectTemplates", e.testByServer)
	t.Run("DegradedTooLongFailsNamingTheApplication", e.testDegraded)
}

func testConfig() *config.Config {
	return &config.Config{
		Targets: []config.Target{
			{Name: "prod-eu", DR: config.DR{Region: "eu-west-1", ClusterName: "dr-eu"}},
			{Name: "prod-us", DR: config.DR{Region: "us-west-2", ClusterName: "dr-us"}},
			{Name: "degraded", DR: config.DR{Region: "eu-west-1", ClusterName: "dr-bad"}},
		},
		ArgoCD: config.ArgoCD{Namespace: "argocd", Project: "default", RoleARN: argoRole, DestinationBy: "name"},
		Addons: map[string]config.Addon{config.AddonKarpenter: {
			Chart: "karpenter", Repo: "oci://public.ecr.aws/karpenter", Version: "1.3.3", Namespace: "kube-system",
			Values: map[string]any{"replicaCount": 2, "settings": map[string]any{"interruptionQueue": "dr-eu-interruptions"}},
			NodePool: map[string]any{
				"template": map[string]any{"spec": map[string]any{
					"requirements": []any{map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": []any{"spot", "on-demand"}}},
				}},
				"limits": map[string]any{"cpu": 1000},
			},
			EC2NodeClass: map[string]any{
				"tags":     map[string]any{"cluster": "${CLUSTER_NAME}", "team": "platform"},
				"userData": "echo ${NOT_OURS}",
			},
		}},
	}
}

func (e *env) steps(t *testing.T, cfg *config.Config, iamOutputs map[string]string, opts argocd.Options) []recovery.Step {
	t.Helper()
	opts.Management = e.mgmt.AdminConfig()
	opts.DR = kube.Static(e.dr.AdminConfig())
	a, err := argocd.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return []recovery.Step{
		steptest.Stub("cluster.access", recovery.PhaseProvision, map[string]string{
			"endpoint": e.dr.Endpoint(),
			"ca_data":  base64.StdEncoding.EncodeToString(e.dr.CAData()),
		}),
		steptest.Stub("iam.roles", recovery.PhaseBootstrap, iamOutputs),
		{ID: "argocd.register", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.access"}, Action: a.Register},
		{ID: "addons.karpenter", Phase: recovery.PhaseBootstrap, DependsOn: []string{"argocd.register", "iam.roles"}, Action: a.Karpenter},
	}
}

var euIAM = map[string]string{"karpenter_node_role_name": "arn:aws:iam::111122223333:role/dr-eu-karpenter-node"}

func (e *env) testFirstRun(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	res := steptest.Run(t, steptest.Options{Target: "prod-eu"}, e.steps(t, testConfig(), euIAM, argocd.Options{ProgressEvery: time.Second})...)
	requireSucceeded(t, res)

	sec, err := e.mgmt.Clientset().CoreV1().Secrets("argocd").Get(ctx, "cluster-dr-eu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sec.Labels[argofake.SecretTypeLabel] != "cluster" || string(sec.Data["name"]) != "dr-eu" || string(sec.Data["server"]) != e.dr.Endpoint() {
		t.Errorf("cluster secret labels %v, name %q, server %q", sec.Labels, sec.Data["name"], sec.Data["server"])
	}
	var conf map[string]map[string]any
	if err := json.Unmarshal(sec.Data["config"], &conf); err != nil {
		t.Fatalf("config is not JSON: %v", err)
	}
	want := map[string]map[string]any{
		"awsAuthConfig":   {"clusterName": "dr-eu", "roleARN": argoRole},
		"tlsClientConfig": {"insecure": false, "caData": base64.StdEncoding.EncodeToString(e.dr.CAData())},
	}
	if fmt.Sprint(conf) != fmt.Sprint(want) {
		t.Errorf("config = %v, want %v", conf, want)
	}
	e.mu.Lock()
	_, connected := e.seen["cluster-dr-eu"]
	e.mu.Unlock()
	if !connected {
		t.Error("the Argo CD stand-in never connected to the registered cluster")
	}

	app, err := e.mgmt.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd").Get(ctx, "karpenter-dr-eu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]any{
		"spec.source.repoURL":                                      "public.ecr.aws/karpenter",
		"spec.source.chart":                                        "karpenter",
		"spec.source.targetRevision":                               "1.3.3",
		"spec.source.helm.valuesObject.settings.clusterName":       "dr-eu",
		"spec.source.helm.valuesObject.settings.interruptionQueue": "dr-eu-interruptions",
		"spec.source.helm.valuesObject.serviceAccount.name":        "karpenter",
		"spec.source.helm.valuesObject.replicaCount":               int64(2),
		"spec.destination.name":                                    "dr-eu",
		"spec.destination.namespace":                               "kube-system",
		"spec.project":                                             "default",
		"status.health.status":                                     "Healthy",
		"status.sync.status":                                       "Synced",
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(app.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("application %s = %v (%T), want %v", path, got, got, want)
		}
	}
	if opts, _, _ := unstructured.NestedStringSlice(app.Object, "spec", "syncPolicy", "syncOptions"); !slices.Contains(opts, "CreateNamespace=true") {
		t.Errorf("syncOptions = %v", opts)
	}
	if _, ok, _ := unstructured.NestedMap(app.Object, "spec", "syncPolicy", "automated"); !ok {
		t.Error("automated sync is off")
	}
	dep, err := e.dr.Clientset().AppsV1().Deployments("kube-system").Get(ctx, "karpenter-dr-eu", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("argo cd did not deploy karpenter into the DR cluster: %v", err)
	}
	if dep.Status.AvailableReplicas != 2 {
		t.Errorf("karpenter has %d available replicas, want 2", dep.Status.AvailableReplicas)
	}

	nc := e.get(ctx, t, argocd.EC2NodeClassGVR, "default")
	for path, want := range map[string]any{
		"spec.role":          "dr-eu-karpenter-node",
		"spec.tags.cluster":  "dr-eu",
		"spec.tags.team":     "platform",
		"spec.userData":      "echo ${NOT_OURS}",
		"metadata.name":      "default",
		"metadata.namespace": nil,
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(nc.Object, strings.Split(path, ".")...)
		if got != want {
			t.Errorf("EC2NodeClass %s = %v, want %v", path, got, want)
		}
	}
	for _, terms := range []string{"subnetSelectorTerms", "securityGroupSelectorTerms"} {
		got, _, _ := unstructured.NestedSlice(nc.Object, "spec", terms)
		if fmt.Sprint(got) != "[map[tags:map[karpenter.sh/discovery:dr-eu]]]" {
			t.Errorf("EC2NodeClass %s = %v", terms, got)
		}
	}
	np := e.get(ctx, t, argocd.NodePoolGVR, "default")
	if ref, _, _ := unstructured.NestedStringMap(np.Object, "spec", "template", "spec", "nodeClassRef"); ref["name"] != "default" || ref["kind"] != "EC2NodeClass" || ref["group"] != "karpenter.k8s.aws" {
		t.Errorf("NodePool nodeClassRef = %v", ref)
	}
	if req, _, _ := unstructured.NestedSlice(np.Object, "spec", "template", "spec", "requirements"); fmt.Sprint(req) != "[map[key:karpenter.sh/capacity-type operator:In values:[spot on-demand]]]" {
		t.Errorf("NodePool requirements from the template were not kept: %v", req)
	}
	for _, obj := range []*unstructured.Unstructured{nc, np} {
		mf := obj.GetManagedFields()
		if len(mf) != 1 || mf[0].Manager != "drbot" || mf[0].Operation != metav1.ManagedFieldsOperationApply {
			t.Errorf("%s managed fields = %+v, want one server-side apply by drbot", obj.GetKind(), mf)
		}
	}

	assertProgress(t, res, "argocd.register", "secret argocd/cluster-dr-eu created")
	assertProgress(t, res, "addons.karpenter", "karpenter-dr-eu created (chart karpenter 1.3.3)")
	assertProgress(t, res, "addons.karpenter", "karpenter-dr-eu Synced and Healthy after")
	assertProgress(t, res, "addons.karpenter", "EC2NodeClass default created, NodePool default created (node role dr-eu-karpenter-node, from iam.roles)")
	if h := res.Steps["addons.karpenter"].Handle; h != "argocd/karpenter-dr-eu" {
		t.Errorf("handle = %q, want the application", h)
	}
	if out := res.Steps["addons.karpenter"].Outputs; out["node_role"] != "dr-eu-karpenter-node" || out["node_pool"] != "default" || out["application"] != "argocd/karpenter-dr-eu" {
		t.Errorf("outputs = %v", out)
	}
}

func (e *env) testSecondRun(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	secRV := e.secretRV(ctx, t, "cluster-dr-eu")
	appGen := e.app(ctx, t, "karpenter-dr-eu").GetGeneration()
	ncRV := e.get(ctx, t, argocd.EC2NodeClassGVR, "default").GetResourceVersion()
	npRV := e.get(ctx, t, argocd.NodePoolGVR, "default").GetResourceVersion()

	res := steptest.Run(t, steptest.Options{Target: "prod-eu"}, e.steps(t, testConfig(), euIAM, argocd.Options{})...)
	requireSucceeded(t, res)

	if rv := e.secretRV(ctx, t, "cluster-dr-eu"); rv != secRV {
		t.Errorf("cluster secret resourceVersion %s → %s on a re-run", secRV, rv)
	}
	if g := e.app(ctx, t, "karpenter-dr-eu").GetGeneration(); g != appGen {
		t.Errorf("application generation %d → %d on a re-run", appGen, g)
	}
	if rv := e.get(ctx, t, argocd.EC2NodeClassGVR, "default").GetResourceVersion(); rv != ncRV {
		t.Errorf("EC2NodeClass resourceVersion %s → %s on a re-run", ncRV, rv)
	}
	if rv := e.get(ctx, t, argocd.NodePoolGVR, "default").GetResourceVersion(); rv != npRV {
		t.Errorf("NodePool resourceVersion %s → %s on a re-run", npRV, rv)
	}
	apps, err := e.mgmt.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(apps.Items) != 1 {
		t.Errorf("%d applications after two runs, want 1", len(apps.Items))
	}
	assertProgress(t, res, "argocd.register", "secret argocd/cluster-dr-eu unchanged")
	assertProgress(t, res, "addons.karpenter", "karpenter-dr-eu unchanged")
	assertProgress(t, res, "addons.karpenter", "EC2NodeClass default unchanged, NodePool default unchanged")
}

func (e *env) testStaleSecret(t *testing.T) {
	ctx := testContext(t, time.Minute)
	secrets := e.mgmt.Clientset().CoreV1().Secrets("argocd")
	sec, err := secrets.Get(ctx, "cluster-dr-eu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A previous drill's registration pointing at a cluster that is gone.
	sec.Data["server"] = []byte("https://gone.eks.amazonaws.com")
	if _, err := secrets.Update(ctx, sec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	steps := e.steps(t, testConfig(), euIAM, argocd.Options{})
	res := steptest.Run(t, steptest.Options{Target: "prod-eu"}, steps[0], steps[2])
	requireSucceeded(t, res)
	got, err := secrets.Get(ctx, "cluster-dr-eu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Data["server"]) != e.dr.Endpoint() {
		t.Errorf("server = %q, want %q", got.Data["server"], e.dr.Endpoint())
	}
	assertProgress(t, res, "argocd.register", "secret argocd/cluster-dr-eu updated")
}

func (e *env) testNameTaken(t *testing.T) {
	ctx := testContext(t, time.Minute)
	secrets := e.mgmt.Clientset().CoreV1().Secrets("argocd")
	sec, err := secrets.Get(ctx, "cluster-dr-eu", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Someone registered dr-us by hand under another Secret name.
	other := sec.DeepCopy()
	other.ObjectMeta = metav1.ObjectMeta{Name: "hand-made", Namespace: "argocd", Labels: map[string]string{argofake.SecretTypeLabel: "cluster"}}
	other.Data["name"] = []byte("dr-us")
	if _, err := secrets.Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = secrets.Delete(context.Background(), "hand-made", metav1.DeleteOptions{}) }()

	steps := e.steps(t, testConfig(), nil, argocd.Options{})
	res := steptest.Run(t, steptest.Options{Target: "prod-us"}, steps[0], steps[2])
	rec := res.Steps["argocd.register"]
	if rec.Status != state.StepFailed || !strings.Contains(rec.Error, `cluster name "dr-us" is already registered in Argo CD by secret argocd/hand-made`) {
		t.Errorf("step %s, error %q", rec.Status, rec.Error)
	}
	if _, err := secrets.Get(ctx, "cluster-dr-us", metav1.GetOptions{}); err == nil {
		t.Error("a second secret for dr-us was created")
	}
}

func (e *env) testByServer(t *testing.T) {
	ctx := testContext(t, 2*time.Minute)
	cfg := testConfig()
	cfg.ArgoCD.DestinationBy = "server"
	k := cfg.Addons[config.AddonKarpenter]
	k.Values = nil
	k.NodePool = map[string]any{
		"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
		"metadata": map[string]any{"name": "${CLUSTER_NAME}-pool", "labels": map[string]any{"owner": "sre"}},
		"spec":     map[string]any{"disruption": map[string]any{"consolidationPolicy": "WhenEmptyOrUnderutilized"}},
	}
	k.EC2NodeClass = map[string]any{"metadata": map[string]any{"name": "${CLUSTER_NAME}-class"}, "spec": map[string]any{}}
	cfg.Addons[config.AddonKarpenter] = k

	res := steptest.Run(t, steptest.Options{Target: "prod-us"}, e.steps(t, cfg, nil, argocd.Options{})...)
	requireSucceeded(t, res)
	app := e.app(ctx, t, "karpenter-dr-us")
	if dest, _, _ := unstructured.NestedStringMap(app.Object, "spec", "destination"); dest["server"] != e.dr.Endpoint() || dest["name"] != "" {
		t.Errorf("destination = %v, want the server only", dest)
	}
	nc := e.get(ctx, t, argocd.EC2NodeClassGVR, "dr-us-class")
	if role, _, _ := unstructured.NestedString(nc.Object, "spec", "role"); role != "KarpenterNodeRole-dr-us" {
		t.Errorf("EC2NodeClass role = %q, want the default name when iam.roles gives none", role)
	}
	np := e.get(ctx, t, argocd.NodePoolGVR, "dr-us-pool")
	if np.GetLabels()["owner"] != "sre" {
		t.Errorf("NodePool labels = %v", np.GetLabels())
	}
	if ref, _, _ := unstructured.NestedString(np.Object, "spec", "template", "spec", "nodeClassRef", "name"); ref != "dr-us-class" {
		t.Errorf("NodePool nodeClassRef.name = %q", ref)
	}
	assertProgress(t, res, "addons.karpenter", "node role KarpenterNodeRole-dr-us, default name; iam.roles gave none")
}

func (e *env) testDegraded(t *testing.T) {
	cfg := testConfig()
	k := cfg.Addons[config.AddonKarpenter]
	k.Values = map[string]any{"resources": map[string]any{"requests": map[string]any{"cpu": "64"}}}
	cfg.Addons[config.AddonKarpenter] = k

	began := time.Now()
	res := steptest.Run(t, steptest.Options{Target: "degraded"},
		e.steps(t, cfg, nil, argocd.Options{DegradedTimeout: 2 * time.Second, WaitTimeout: 90 * time.Second, ProgressEvery: time.Second})...)
	rec := res.Steps["addons.karpenter"]
	if rec.Status != state.StepFailed || rec.Retryable {
		t.Fatalf("step %s (retryable %v), want a permanent failure; error %q", rec.Status, rec.Retryable, rec.Error)
	}
	for _, want := range []string{"argo cd application argocd/karpenter-dr-bad has been unhealthy", "Degraded", "exceeded its progress deadline"} {
		if !strings.Contains(rec.Error, want) {
			t.Errorf("error %q lacks %q", rec.Error, want)
		}
	}
	if took := time.Since(began); took > 60*time.Second {
		t.Errorf("failing took %s: the degraded timeout was not honoured", took)
	}
	if res.Steps["argocd.register"].Status != state.StepSucceeded {
		t.Errorf("register: %s", res.Steps["argocd.register"].Status)
	}
	if len(res.Progress("addons.karpenter")) < 2 {
		t.Errorf("no progress lines while waiting: %v", res.Progress("addons.karpenter"))
	}
}

// helpers

func (e *env) get(ctx context.Context, t *testing.T, gvr schema.GroupVersionResource, name string) *unstructured.Unstructured {
	t.Helper()
	obj, err := e.dr.Dynamic().Resource(gvr).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("getting %s %q: %v", gvr, name, err)
	}
	return obj
}

func (e *env) app(ctx context.Context, t *testing.T, name string) *unstructured.Unstructured {
	t.Helper()
	app, err := e.mgmt.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return app
}

func (e *env) secretRV(ctx context.Context, t *testing.T, name string) string {
	t.Helper()
	s, err := e.mgmt.Clientset().CoreV1().Secrets("argocd").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s.ResourceVersion
}

func requireSucceeded(t *testing.T, res steptest.Result) {
	t.Helper()
	if res.Run.Status != state.RunSucceeded {
		for id, rec := range res.Steps {
			if rec.Status != state.StepSucceeded {
				t.Errorf("step %s: %s: %s", id, rec.Status, rec.Error)
			}
		}
		t.FailNow()
	}
}

func assertProgress(t *testing.T, res steptest.Result, step, want string) {
	t.Helper()
	lines := res.Progress(step)
	for _, l := range lines {
		if strings.Contains(l, want) {
			return
		}
	}
	t.Errorf("%s progress lacks %q:\n  %s", step, want, strings.Join(lines, "\n  "))
}

func nsObject(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
