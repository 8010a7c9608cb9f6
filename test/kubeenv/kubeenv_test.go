package kubeenv_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drbot/drbot/test/kubeenv"
)

// TestCluster starts one cluster, with a token webhook like EKS's, and checks what the other packages rely on.
func TestCluster(t *testing.T) {
	t.Parallel()
	hook := newTokenWebhook(t)
	c := kubeenv.Start(t, kubeenv.WithName("management"), kubeenv.WithTokenWebhook(hook.URL))
	cs := c.Clientset()

	t.Run("DeploymentOf20ReplicasBecomesAvailable", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 90*time.Second)
		ns := createNamespace(ctx, t, cs, "rollout")
		createDeployment(ctx, t, cs, ns, "web", 20, nil)

		var d *appsv1.Deployment
		waitUntil(ctx, t, "deployment web to have 20 available replicas", func() (bool, error) {
			var err error
			d, err = cs.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return d.Status.ObservedGeneration == d.Generation && d.Status.AvailableReplicas == 20 && d.Status.ReadyReplicas == 20 && d.Status.UpdatedReplicas == 20, nil
		})
		if cond := deploymentCondition(d, appsv1.DeploymentAvailable); cond == nil || cond.Status != corev1.ConditionTrue {
			t.Errorf("Available condition = %+v, want True", cond)
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			t.Fatalf("listing pods: %v", err)
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" && p.Status.PodIP != "" {
				running++
			}
		}
		if running != 20 {
			t.Errorf("running pods on a node with an IP = %d of %d, want 20", running, len(pods.Items))
		}
	})

	t.Run("DeploymentThatCannotFitStaysUnavailableWithPendingPods", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 90*time.Second)
		ns := createNamespace(ctx, t, cs, "toobig")
		// The default node has 32 CPUs; 64 fits nowhere.
		createDeployment(ctx, t, cs, ns, "huge", 2, corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64")})

		waitUntil(ctx, t, "both pods of huge to be marked Unschedulable", func() (bool, error) {
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=huge"})
			if err != nil {
				return false, err
			}
			unschedulable := 0
			for _, p := range pods.Items {
				for _, cond := range p.Status.Conditions {
					if cond.Type == corev1.PodScheduled && cond.Status == corev1.ConditionFalse && cond.Reason == corev1.PodReasonUnschedulable {
						unschedulable++
					}
				}
			}
			return unschedulable == 2, nil
		})
		var d *appsv1.Deployment
		waitUntil(ctx, t, "deployment huge to report its Available condition", func() (bool, error) {
			var err error
			d, err = cs.AppsV1().Deployments(ns).Get(ctx, "huge", metav1.GetOptions{})
			return err == nil && deploymentCondition(d, appsv1.DeploymentAvailable) != nil, err
		})
		if cond := deploymentCondition(d, appsv1.DeploymentAvailable); cond.Status != corev1.ConditionFalse {
			t.Errorf("Available condition = %+v, want False", cond)
		}
		if d.Status.AvailableReplicas != 0 || d.Status.ReadyReplicas != 0 {
			t.Errorf("available/ready replicas = %d/%d, want 0/0", d.Status.AvailableReplicas, d.Status.ReadyReplicas)
		}
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=huge"})
		if err != nil {
			t.Fatalf("listing pods: %v", err)
		}
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodPending || p.Spec.NodeName != "" {
				t.Errorf("pod %s phase %s on node %q, want Pending and unbound", p.Name, p.Status.Phase, p.Spec.NodeName)
			}
		}
	})

	t.Run("CRDsAreServedForArgoKarpenterAndIstio", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 30*time.Second)
		ns := createNamespace(ctx, t, cs, "argocd")
		dyn := c.Dynamic()

		appGVR := schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}
		app := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1",
			"kind":       "Application",
			"metadata":   map[string]any{"name": "payments", "namespace": ns},
			"spec": map[string]any{
				"project": "default",
				"source":  map[string]any{"repoURL": "https://gitlab.example.com/platform/apps.git", "path": "payments", "targetRevision": "main"},
			},
		}}
		if _, err := dyn.Resource(appGVR).Namespace(ns).Create(ctx, app, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating application: %v", err)
		}
		got, err := dyn.Resource(appGVR).Namespace(ns).Get(ctx, "payments", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading application back: %v", err)
		}
		if path, _, _ := unstructured.NestedString(got.Object, "spec", "source", "path"); path != "payments" {
			t.Errorf("spec.source.path = %q, want %q (unknown fields must be preserved)", path, "payments")
		}
		// Status is a subresource: the stand-in controllers write it with UpdateStatus.
		if err := unstructured.SetNestedField(got.Object, "Healthy", "status", "health", "status"); err != nil {
			t.Fatal(err)
		}
		if _, err := dyn.Resource(appGVR).Namespace(ns).UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
			t.Errorf("updating application status: %v", err)
		}

		// NodePool is cluster-scoped.
		npGVR := schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}
		np := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
			"metadata": map[string]any{"name": "default"},
			"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"nodeClassRef": map[string]any{"group": "karpenter.k8s.aws", "kind": "EC2NodeClass", "name": "default"}}}},
		}}
		if _, err := dyn.Resource(npGVR).Create(ctx, np, metav1.CreateOptions{}); err != nil {
			t.Errorf("creating cluster-scoped nodepool: %v", err)
		}

		// A VirtualService written as v1beta1 reads back as v1.
		vsBeta := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1beta1", Resource: "virtualservices"}
		vs := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
			"metadata": map[string]any{"name": "payments", "namespace": ns},
			"spec":     map[string]any{"hosts": []any{"payments.example.com"}, "gateways": []any{"istio-system/public"}},
		}}
		if _, err := dyn.Resource(vsBeta).Namespace(ns).Create(ctx, vs, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating v1beta1 virtualservice: %v", err)
		}
		vsV1, err := dyn.Resource(schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"}).Namespace(ns).Get(ctx, "payments", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("reading virtualservice as v1: %v", err)
		}
		if vsV1.GetAPIVersion() != "networking.istio.io/v1" {
			t.Errorf("apiVersion = %q, want networking.istio.io/v1", vsV1.GetAPIVersion())
		}
	})

	t.Run("ServiceAccountConfigAuthenticatesAsThatServiceAccount", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 30*time.Second)
		cfg, err := c.ServiceAccountConfig(ctx, "drbot", "drbot")
		if err != nil {
			t.Fatalf("ServiceAccountConfig: %v", err)
		}
		sacs := kubernetes.NewForConfigOrDie(cfg)
		review, err := sacs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("self subject review: %v", err)
		}
		if got, want := review.Status.UserInfo.Username, "system:serviceaccount:drbot:drbot"; got != want {
			t.Errorf("username = %q, want %q", got, want)
		}
		// No RBAC grants it anything, unlike the admin.
		if _, err := sacs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
			t.Errorf("listing nodes as the service account: err = %v, want 403 Forbidden", err)
		}
		// A second call reuses the existing service account.
		if _, err := c.ServiceAccountConfig(ctx, "drbot", "drbot"); err != nil {
			t.Errorf("second ServiceAccountConfig: %v", err)
		}
	})

	t.Run("TokenWebhookAuthenticatesEKSStyleTokens", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 30*time.Second)
		cfg := c.AdminConfig()
		cfg.BearerToken = hook.goodToken
		ekscs := kubernetes.NewForConfigOrDie(cfg)
		review, err := ekscs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("self subject review with the webhook token: %v", err)
		}
		if got := review.Status.UserInfo.Username; got != "arn:aws:iam::111122223333:role/drbot" {
			t.Errorf("username = %q, want the webhook's", got)
		}
		if _, err := ekscs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("listing namespaces in system:masters via the webhook: %v", err)
		}

		cfg.BearerToken = "k8s-aws-v1.made-up-unknown"
		if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
			t.Errorf("listing namespaces with an unknown token: err = %v, want 401 Unauthorized", err)
		}
		if n := hook.reviews(); n < 2 {
			t.Errorf("webhook saw %d token reviews, want at least 2", n)
		}
	})

	t.Run("ServerReportsKubernetesVersion", func(t *testing.T) {
		t.Parallel()
		v, err := cs.Discovery().ServerVersion()
		if err != nil {
			t.Fatalf("getting server version: %v", err)
		}
		// Helm and version checks read this; an unstamped build would say v0.0.0-master.
		if v.GitVersion != "v1.37.2" || v.Major != "1" || v.Minor != "37" {
			t.Errorf("server version = %s (major %q minor %q), want v1.37.2", v.GitVersion, v.Major, v.Minor)
		}
	})

	t.Run("KubeconfigAndAdminConfigVerifyTLSWithCAData", func(t *testing.T) {
		t.Parallel()
		ctx := testContext(t, 30*time.Second)
		cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
		if err != nil {
			t.Fatalf("loading kubeconfig: %v", err)
		}
		if cfg.Host != c.Endpoint() || cfg.Insecure || string(cfg.CAData) != string(c.CAData()) {
			t.Errorf("kubeconfig host=%q insecure=%v, want %q verified with CAData", cfg.Host, cfg.Insecure, c.Endpoint())
		}
		if _, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Nodes().Get(ctx, "kwok-node-0", metav1.GetOptions{}); err != nil {
			t.Errorf("getting node through the kubeconfig: %v", err)
		}
		// Without the CA the serving certificate must not verify: TLS is real, not skipped.
		bare := c.AdminConfig()
		bare.CAData = nil
		_, err = kubernetes.NewForConfigOrDie(bare).CoreV1().Namespaces().Get(ctx, "default", metav1.GetOptions{})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("request without CAData: err = %v, want a certificate verification error", err)
		}
		// AdminConfig hands out copies.
		c.AdminConfig().Host = "https://changed.invalid"
		if c.AdminConfig().Host != c.Endpoint() {
			t.Error("changing one AdminConfig changed the next")
		}
	})
}

// TestTwoClustersAreDistinct starts a management and a DR cluster side by side, as the recovery tests do.
func TestTwoClustersAreDistinct(t *testing.T) {
	t.Parallel()
	mgmt := kubeenv.Start(t, kubeenv.WithName("management"))
	dr := kubeenv.Start(t, kubeenv.WithName("dr"), kubeenv.WithNodes(3, "8", "32Gi", 50))
	ctx := testContext(t, 30*time.Second)

	if mgmt.Endpoint() == dr.Endpoint() {
		t.Fatalf("both clusters at %s", mgmt.Endpoint())
	}
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "only-in-management", Namespace: "default"}, Data: map[string]string{"k": "v"}}
	if _, err := mgmt.Clientset().CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating configmap in management: %v", err)
	}
	if _, err := mgmt.Clientset().CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("configmap missing from management: %v", err)
	}
	if _, err := dr.Clientset().CoreV1().ConfigMaps("default").Get(ctx, cm.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("getting management's configmap from dr: err = %v, want NotFound", err)
	}

	nodes, err := dr.Clientset().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing dr nodes: %v", err)
	}
	if len(nodes.Items) != 3 {
		t.Errorf("dr has %d nodes, want 3", len(nodes.Items))
	}
	for _, n := range nodes.Items {
		if cpu := n.Status.Allocatable.Cpu(); cpu.Cmp(resource.MustParse("8")) != 0 {
			t.Errorf("node %s allocatable cpu = %s, want 8", n.Name, cpu)
		}
	}
	// One cluster's admin token means nothing to the other.
	cross := dr.AdminConfig()
	cross.BearerToken = mgmt.AdminConfig().BearerToken
	if _, err := kubernetes.NewForConfigOrDie(cross).CoreV1().Namespaces().List(ctx, metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Errorf("management's admin token against dr: err = %v, want 401 Unauthorized", err)
	}
}

// tokenWebhook answers the API server's TokenReviews the way the EKS authenticator does, for one made-up token.
type tokenWebhook struct {
	*httptest.Server
	goodToken string
	mu        sync.Mutex
	count     int
}

func newTokenWebhook(t *testing.T) *tokenWebhook {
	h := &tokenWebhook{goodToken: "k8s-aws-v1.made-up-presigned-sts-url"}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review authenticationv1.TokenReview
		if r.Method != http.MethodPost || json.NewDecoder(r.Body).Decode(&review) != nil || review.Kind != "TokenReview" {
			t.Errorf("token webhook: unexpected request %s %q", r.Method, r.RequestURI)
			http.Error(w, "expected a TokenReview POST", http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.count++
		h.mu.Unlock()
		review.Status = authenticationv1.TokenReviewStatus{}
		if review.Spec.Token == h.goodToken {
			review.Status.Authenticated = true
			review.Status.User = authenticationv1.UserInfo{Username: "arn:aws:iam::111122223333:role/drbot", Groups: []string{"system:masters"}}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(review)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *tokenWebhook) reviews() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func createNamespace(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string) string {
	t.Helper()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating namespace %q: %v", name, err)
	}
	return name
}

func createDeployment(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, replicas int32, requests corev1.ResourceList) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name:      "app",
					Image:     "registry.example.com/" + name + ":1.0",
					Resources: corev1.ResourceRequirements{Requests: requests},
				}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment %s/%s: %v", ns, name, err)
	}
}

func deploymentCondition(d *appsv1.Deployment, typ appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range d.Status.Conditions {
		if d.Status.Conditions[i].Type == typ {
			return &d.Status.Conditions[i]
		}
	}
	return nil
}

// waitUntil polls cond until it is true, failing the test with the last error when ctx ends.
func waitUntil(ctx context.Context, t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s (last error: %v)", what, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func TestNodesKeepTheirLeaseSoTheyStayReady(t *testing.T) {
	c := kubeenv.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		leases, err := c.Clientset().CoordinationV1().Leases("kube-node-lease").List(ctx, metav1.ListOptions{})
		if err == nil && len(leases.Items) > 0 && leases.Items[0].Spec.RenewTime != nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no renewed node lease in kube-node-lease (err %v): nodes would flap NotReady", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}
