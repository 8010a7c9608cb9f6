package argofake_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/test/argofake"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/kubeenv"
)

const (
	project  = "platform/dr-apps"
	glToken  = "glpat-made-up-argofake"
	appsPath = "apps/dr"
	eksName  = "dr-eks"
)

// env is one management + DR cluster pair, one GitLab and one controller, shared by the subtests.
type env struct {
	mgmt, dr *kubeenv.Cluster
	gl       *gitlabfake.Server
	glc      *gitlab.Client
	ctrl     *argofake.Controller

	mu        sync.Mutex
	hookCalls []string
}

func TestController(t *testing.T) {
	e := &env{}
	e.mgmt = kubeenv.Start(t, kubeenv.WithName("management"))
	// 16 CPUs per node: a Deployment asking for 64 fits nowhere.
	e.dr = kubeenv.Start(t, kubeenv.WithName("dr"), kubeenv.WithNodes(2, "16", "64Gi", 110))
	e.gl = gitlabfake.New(t)
	e.gl.AddToken(glToken)
	e.gl.AddProject(project, "main")
	var err error
	e.glc, err = gitlab.NewClient(glToken, gitlab.WithBaseURL(e.gl.URL()+"/api/v4"))
	if err != nil {
		t.Fatal(err)
	}

	ctx := testContext(t, 30*time.Second)
	mcs := e.mgmt.Clientset()
	if _, err := mcs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating argocd namespace: %v", err)
	}
	// The DR cluster is registered the way drbot does it for EKS: awsAuthConfig plus the cluster's CA.
	drConfig, _ := json.Marshal(map[string]any{
		"awsAuthConfig":   map[string]any{"clusterName": eksName, "roleARN": "arn:aws:iam::111122223333:role/argocd-dr"},
		"tlsClientConfig": map[string]any{"insecure": false, "caData": base64.StdEncoding.EncodeToString(e.dr.CAData())},
	})
	createClusterSecret(ctx, t, e.mgmt, "cluster-dr-eks", "dr-cluster", e.dr.Endpoint(), drConfig)

	ctrl, err := argofake.Start(context.Background(), argofake.Options{
		Management:       e.mgmt.AdminConfig(),
		GitLab:           argofake.GitLab{URL: e.gl.URL(), Token: glToken, Project: project, Branch: "main", AppOfAppsPath: appsPath},
		Poll:             250 * time.Millisecond,
		ProgressDeadline: 6 * time.Second,
		DestinationConfig: func(secretName, server string, cfg argofake.ClusterConfig) (*rest.Config, error) {
			e.mu.Lock()
			e.hookCalls = append(e.hookCalls, secretName)
			e.mu.Unlock()
			if cfg.AWSAuthConfig == nil || cfg.AWSAuthConfig.ClusterName != eksName || server != e.dr.Endpoint() {
				return nil, fmt.Errorf("unexpected cluster %q at %q: %+v", secretName, server, cfg.AWSAuthConfig)
			}
			if !bytes.Equal(cfg.TLSClientConfig.CAData, e.dr.CAData()) {
				return nil, fmt.Errorf("caData of %q is not the DR cluster's CA", secretName)
			}
			// Real Argo CD would get an EKS token for cfg.AWSAuthConfig here.
			return e.dr.AdminConfig(), nil
		},
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatalf("starting controller: %v", err)
	}
	e.ctrl = ctrl
	t.Cleanup(ctrl.Stop)

	t.Run("CommittedApplicationsRollOutThroughProgressingToHealthy", e.testRollout)
	t.Run("UnschedulableDeploymentMakesItsApplicationDegraded", e.testDegraded)
	t.Run("UnregisteredDestinationIsUnknownWithInvalidSpecErrorUntilRegistered", e.testUnregistered)
	t.Run("ApplicationWithoutAutomatedSyncStaysOutOfSyncAndMissing", e.testManual)
	t.Run("InClusterDestinationDeploysIntoTheManagementCluster", e.testInCluster)
	t.Run("ApplicationRemovedFromGitIsPrunedWithItsDeployment", e.testPrune)
}

func (e *env) testRollout(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	apps := e.mgmt.Dynamic().Resource(argofake.ApplicationGVR).Namespace("argocd")
	w, err := apps.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("watching applications: %v", err)
	}
	defer w.Stop()

	sha := e.gl.CommitFiles(project, "main", map[string]string{
		// Two Applications and a ConfigMap in one file; the ConfigMap is not the app of apps' business.
		appsPath + "/payments.yaml": application("payments", `name: dr-cluster`, "payments", `
      valuesObject:
        replicaCount: 2
        image: {repository: registry.example.com/payments, tag: "2.3.1"}`) + "---\n" + application("orders", `name: dr-cluster`, "orders", `
      values: |
        replicaCount: 2
        image:
          repository: registry.example.com/orders
          tag: 1.4`) + `---
apiVersion: v1
kind: ConfigMap
metadata: {name: not-an-app}
`,
		appsPath + "/nested/search.yaml": application("search", "server: "+e.dr.Endpoint(), "search", `
      parameters:
        - {name: replicaCount, value: "2"}`),
		// Outside the watched path: never applied.
		"apps/primary/billing.yaml": application("billing", `name: primary`, "billing", ""),
	}, "DR: payments, orders, search")

	seen := map[string][]string{}
	healthy := map[string]bool{}
	for len(healthy) < 3 {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for 3 healthy applications: %v; health transitions seen: %v", ctx.Err(), seen)
		case ev, ok := <-w.ResultChan():
			if !ok {
				t.Fatalf("watch closed; health transitions seen: %v", seen)
			}
			if ev.Type != watch.Added && ev.Type != watch.Modified {
				continue
			}
			u := ev.Object.(*unstructured.Unstructured)
			h := nested(u, "status", "health", "status")
			if h == "" {
				continue
			}
			if s := seen[u.GetName()]; len(s) == 0 || s[len(s)-1] != h {
				seen[u.GetName()] = append(s, h)
			}
			if h == argofake.HealthHealthy {
				healthy[u.GetName()] = true
			}
		}
	}
	for _, name := range []string{"payments", "orders", "search"} {
		if got := seen[name]; len(got) < 2 || got[0] != argofake.HealthProgressing || got[len(got)-1] != argofake.HealthHealthy {
			t.Errorf("%s health went %v, want Progressing first and Healthy last", name, got)
		}
		app, err := apps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("getting application %s: %v", name, err)
		}
		if got := nested(app, "status", "sync", "status"); got != argofake.SyncSynced {
			t.Errorf("%s sync status = %q, want Synced", name, got)
		}
		if got := nested(app, "status", "sync", "revision"); got != sha {
			t.Errorf("%s sync revision = %q, want the commit %q", name, got, sha)
		}
		if got := nested(app, "status", "operationState", "phase"); got != argofake.PhaseSucceeded {
			t.Errorf("%s operationState.phase = %q, want Succeeded", name, got)
		}
		if app.GetLabels()[argofake.ManagedLabel] != "true" {
			t.Errorf("%s labels = %v, want %s=true", name, app.GetLabels(), argofake.ManagedLabel)
		}
	}
	if _, err := apps.Get(ctx, "billing", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("application from outside %s: err = %v, want NotFound", appsPath, err)
	}
	if _, err := e.mgmt.Clientset().CoreV1().ConfigMaps("argocd").Get(ctx, "not-an-app", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ConfigMap document: err = %v, want NotFound (only Applications are applied)", err)
	}

	images := map[string]string{
		"payments": "registry.example.com/payments:2.3.1",
		"orders":   "registry.example.com/orders:1.4",
		"search":   argofake.DefaultImage,
	}
	for name, image := range images {
		d, err := e.dr.Clientset().AppsV1().Deployments(name).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("deployment %s in the DR cluster: %v", name, err)
		}
		if d.Status.AvailableReplicas != 2 || *d.Spec.Replicas != 2 {
			t.Errorf("deployment %s: %d of %d available, want 2 of 2", name, d.Status.AvailableReplicas, *d.Spec.Replicas)
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != image {
			t.Errorf("deployment %s image = %q, want %q", name, got, image)
		}
	}
	if _, err := e.mgmt.Clientset().AppsV1().Deployments("payments").Get(ctx, "payments", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("deployment payments in the management cluster: err = %v, want NotFound", err)
	}
	e.mu.Lock()
	calls := append([]string(nil), e.hookCalls...)
	e.mu.Unlock()
	if len(calls) != 1 || calls[0] != "cluster-dr-eks" {
		t.Errorf("DestinationConfig calls = %v, want one for cluster-dr-eks (the client is cached)", calls)
	}
	if got := e.ctrl.Revision(); got != sha {
		t.Errorf("Revision() = %q, want %q", got, sha)
	}
}

func (e *env) testDegraded(t *testing.T) {
	ctx := testContext(t, 90*time.Second)
	e.gl.CommitFiles(project, "main", map[string]string{
		appsPath + "/huge.yaml": application("huge", `name: dr-cluster`, "huge", `
      valuesObject:
        replicaCount: 1
        resources: {requests: {cpu: "64", memory: 1Gi}}`),
	}, "DR: huge")

	app := waitApp(ctx, t, e, "huge", func(u *unstructured.Unstructured) bool {
		return nested(u, "status", "health", "status") == argofake.HealthDegraded
	})
	if got := nested(app, "status", "sync", "status"); got != argofake.SyncSynced {
		t.Errorf("sync status = %q, want Synced (applied, but not healthy)", got)
	}
	res, _, _ := unstructured.NestedSlice(app.Object, "status", "resources")
	if len(res) != 1 || !strings.Contains(fmt.Sprint(res[0]), "exceeded its progress deadline") {
		t.Errorf("status.resources = %v, want the Deployment with Argo CD's progress deadline message", res)
	}
	d, err := e.dr.Clientset().AppsV1().Deployments("huge").Get(ctx, "huge", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String(); got != "64" {
		t.Errorf("cpu request = %s, want 64 from the Helm values", got)
	}
	var progressing *appsv1.DeploymentCondition
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == appsv1.DeploymentProgressing {
			progressing = &d.Status.Conditions[i]
		}
	}
	if progressing == nil || progressing.Reason != "ProgressDeadlineExceeded" {
		t.Errorf("Progressing condition = %+v, want reason ProgressDeadlineExceeded from the deployment controller", progressing)
	}
	pods, err := e.dr.Clientset().CoreV1().Pods("huge").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodPending {
			t.Errorf("pod %s phase = %s, want Pending", p.Name, p.Status.Phase)
		}
	}
}

func (e *env) testUnregistered(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	e.gl.CommitFiles(project, "main", map[string]string{
		appsPath + "/ghosts.yaml": application("ghost-by-name", `name: dr-late`, "ghost", "") + "---\n" +
			application("ghost-by-server", `server: https://10.255.0.1:6443`, "ghost", ""),
	}, "DR: ghosts")

	for name, want := range map[string]string{
		"ghost-by-name":   "there are no clusters with this name: dr-late",
		"ghost-by-server": "cluster 'https://10.255.0.1:6443' has not been configured",
	} {
		app := waitApp(ctx, t, e, name, func(u *unstructured.Unstructured) bool {
			return nested(u, "status", "sync", "status") != ""
		})
		if s, h := nested(app, "status", "sync", "status"), nested(app, "status", "health", "status"); s != argofake.SyncUnknown || h != argofake.HealthUnknown {
			t.Errorf("%s sync/health = %s/%s, want Unknown/Unknown", name, s, h)
		}
		conds, _, _ := unstructured.NestedSlice(app.Object, "status", "conditions")
		if len(conds) != 1 {
			t.Fatalf("%s conditions = %v, want one", name, conds)
		}
		c := conds[0].(map[string]any)
		if c["type"] != argofake.ConditionInvalidSpec || !strings.Contains(c["message"].(string), want) {
			t.Errorf("%s condition = %v, want InvalidSpecError containing %q", name, c, want)
		}
	}

	// Registering the missing cluster (here with a service account token, the plain bearerToken form) heals it.
	cfg, err := e.dr.ServiceAccountConfig(ctx, "kube-system", "argocd-manager")
	if err != nil {
		t.Fatal(err)
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "argocd-manager"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "kube-system", Name: "argocd-manager"}},
	}
	if _, err := e.dr.Clientset().RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bearer, _ := json.Marshal(map[string]any{
		"bearerToken":     cfg.BearerToken,
		"tlsClientConfig": map[string]any{"caData": base64.StdEncoding.EncodeToString(e.dr.CAData())},
	})
	// Another Secret for the same API server, under the name the Application asks for.
	createClusterSecret(ctx, t, e.mgmt, "cluster-dr-late", "dr-late", e.dr.Endpoint()+"/", bearer)
	app := waitApp(ctx, t, e, "ghost-by-name", func(u *unstructured.Unstructured) bool {
		return nested(u, "status", "health", "status") == argofake.HealthHealthy
	})
	if conds, ok, _ := unstructured.NestedSlice(app.Object, "status", "conditions"); ok && len(conds) > 0 {
		t.Errorf("conditions after registration = %v, want none", conds)
	}
	if _, err := e.dr.Clientset().AppsV1().Deployments("ghost").Get(ctx, "ghost-by-name", metav1.GetOptions{}); err != nil {
		t.Errorf("deployment of ghost-by-name in the DR cluster: %v", err)
	}
}

func (e *env) testManual(t *testing.T) {
	ctx := testContext(t, 30*time.Second)
	doc := strings.Replace(application("manual", `name: dr-cluster`, "manual", ""), "    automated: {prune: true, selfHeal: true}\n", "", 1)
	e.gl.CommitFiles(project, "main", map[string]string{appsPath + "/manual.yaml": doc}, "DR: manual")
	app := waitApp(ctx, t, e, "manual", func(u *unstructured.Unstructured) bool {
		return nested(u, "status", "sync", "status") != ""
	})
	if s, h := nested(app, "status", "sync", "status"), nested(app, "status", "health", "status"); s != argofake.SyncOutOfSync || h != argofake.HealthMissing {
		t.Errorf("sync/health = %s/%s, want OutOfSync/Missing", s, h)
	}
	if _, err := e.dr.Clientset().AppsV1().Deployments("manual").Get(ctx, "manual", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("deployment of a manual-sync application: err = %v, want NotFound", err)
	}
}

func (e *env) testInCluster(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	e.gl.CommitFiles(project, "main", map[string]string{
		appsPath + "/tools.yaml": application("tools", "server: https://kubernetes.default.svc", "tools", ""),
	}, "management: tools")
	waitApp(ctx, t, e, "tools", func(u *unstructured.Unstructured) bool {
		return nested(u, "status", "health", "status") == argofake.HealthHealthy
	})
	if _, err := e.mgmt.Clientset().AppsV1().Deployments("tools").Get(ctx, "tools", metav1.GetOptions{}); err != nil {
		t.Errorf("deployment tools in the management cluster: %v", err)
	}
}

func (e *env) testPrune(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	// Deleted the way drbot changes the repository: one commit through the API.
	_, _, err := e.glc.Commits.CreateCommit(project, &gitlab.CreateCommitOptions{
		Branch:        gitlab.Ptr("main"),
		CommitMessage: gitlab.Ptr("DR: drop search"),
		Actions: []*gitlab.CommitActionOptions{{
			Action:   gitlab.Ptr(gitlab.FileDelete),
			FilePath: gitlab.Ptr(appsPath + "/nested/search.yaml"),
		}},
	})
	if err != nil {
		t.Fatalf("deleting search.yaml: %v", err)
	}
	apps := e.mgmt.Dynamic().Resource(argofake.ApplicationGVR).Namespace("argocd")
	waitFor(ctx, t, "application search to be pruned and its deployment deleted", func() (bool, error) {
		_, err := apps.Get(ctx, "search", metav1.GetOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return false, err
		}
		_, derr := e.dr.Clientset().AppsV1().Deployments("search").Get(ctx, "search", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && apierrors.IsNotFound(derr), nil
	})
	if _, err := apps.Get(ctx, "payments", metav1.GetOptions{}); err != nil {
		t.Errorf("payments after pruning search: %v", err)
	}
}

// application renders an Application with automated sync, CreateNamespace=true and the resources finalizer.
func application(name, destination, namespace, helm string) string {
	h := ""
	if helm != "" {
		h = "\n    helm:" + helm
	}
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: %s
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  source:
    repoURL: https://gitlab.example.com/platform/charts.git
    path: charts/%s
    targetRevision: main%s
  destination:
    %s
    namespace: %s
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
`, name, name, h, destination, namespace)
}

func createClusterSecret(ctx context.Context, t *testing.T, c *kubeenv.Cluster, secret, name, server string, config []byte) {
	t.Helper()
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: secret, Namespace: "argocd", Labels: map[string]string{argofake.SecretTypeLabel: "cluster"}},
		StringData: map[string]string{"name": name, "server": server, "config": string(config)},
	}
	if _, err := c.Clientset().CoreV1().Secrets("argocd").Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating cluster secret %s: %v", secret, err)
	}
}

func waitApp(ctx context.Context, t *testing.T, e *env, name string, cond func(*unstructured.Unstructured) bool) *unstructured.Unstructured {
	t.Helper()
	var app *unstructured.Unstructured
	waitFor(ctx, t, "application "+name, func() (bool, error) {
		var err error
		app, err = e.mgmt.Dynamic().Resource(argofake.ApplicationGVR).Namespace("argocd").Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && cond(app), err
	})
	return app
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var lastErr error
	for {
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v (last error: %v)", what, ctx.Err(), lastErr)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func nested(u *unstructured.Unstructured, fields ...string) string {
	s, _, _ := unstructured.NestedString(u.Object, fields...)
	return s
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testWriter sends the controller's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
