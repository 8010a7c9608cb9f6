package manifests

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/permissions"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/test/kubeenv"
)

// render builds manifests/ with the kustomize API, as `kubectl kustomize manifests/` does.
func render(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(t), "manifests"))
	if err != nil {
		t.Fatalf("kustomize build manifests/: %v", err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range m.Resources() {
		// Through JSON, so numbers are int64/float64 as apimachinery expects.
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatalf("rendered %s: %v", r.CurId(), err)
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(data); err != nil {
			t.Fatalf("rendered %s: %v", r.CurId(), err)
		}
		objs = append(objs, u)
	}
	return objs
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && (name == "" || o.GetName() == name) {
			return o
		}
	}
	t.Fatalf("the rendered base has no %s %q", kind, name)
	return nil
}

// secretTemplate is the token Secret's template, kept out of the kustomization so applying the base never
// overwrites real tokens with placeholders.
func secretTemplate(t *testing.T) *unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "secret-tokens.template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("secret-tokens.template.yaml: %v", err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		t.Fatalf("secret-tokens.template.yaml: %v", err)
	}
	return u
}

func TestRenderedBaseHoldsEveryObjectDrbotNeeds(t *testing.T) {
	objs := render(t)
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
		if o.GetKind() == "Secret" {
			t.Errorf("the base renders Secret %s: tokens come from secret-tokens.template.yaml, never from the base", o.GetName())
		}
	}
	for _, want := range []string{"Namespace/drbot", "ServiceAccount/drbot", "ClusterRole/drbot", "ClusterRoleBinding/drbot",
		"Role/drbot", "RoleBinding/drbot", "PersistentVolumeClaim/drbot-state", "Deployment/drbot", "NetworkPolicy/drbot",
		"PodDisruptionBudget/drbot"} {
		if !slices.Contains(kinds, want) {
			t.Errorf("the rendered base lacks %s; it has %v", want, kinds)
		}
	}
	find(t, objs, "ConfigMap", "") // name carries kustomize's content hash
}

func TestDeploymentIsOneNonRootReadOnlyPodOnThePVC(t *testing.T) {
	objs := render(t)
	var dep struct {
		Spec struct {
			Replicas *int32 `json:"replicas"`
			Strategy struct {
				Type string `json:"type"`
			} `json:"strategy"`
			Template struct {
				Spec corev1.PodSpec `json:"spec"`
			} `json:"template"`
		} `json:"spec"`
	}
	convert(t, find(t, objs, "Deployment", "drbot"), &dep)
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 1 {
		t.Errorf("replicas = %v, want exactly 1 (bbolt allows one writer)", dep.Spec.Replicas)
	}
	if dep.Spec.Strategy.Type != "Recreate" {
		t.Errorf("strategy = %q, want Recreate (a rolling update would run two pods against one RWO volume and file lock)", dep.Spec.Strategy.Type)
	}
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Containers))
	}
	c := pod.Containers[0]
	if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
		t.Errorf("image %q: want a pinned tag or digest", c.Image)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container securityContext %+v: want readOnlyRootFilesystem, no privilege escalation, drop ALL", sc)
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v: want GET /healthz", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v: want GET /readyz", c.ReadinessProbe)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want cpu and memory requests and a memory limit", c.Resources)
	}

	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = v
	}
	state := volumes[mounts["/var/lib/drbot"]]
	if state.PersistentVolumeClaim == nil || state.PersistentVolumeClaim.ClaimName != "drbot-state" {
		t.Errorf("/var/lib/drbot is mounted from %+v, want the PVC drbot-state", state)
	}
	cfg := volumes[mounts["/etc/drbot"]]
	cm := find(t, objs, "ConfigMap", "")
	if cfg.ConfigMap == nil || cfg.ConfigMap.Name != cm.GetName() {
		t.Errorf("/etc/drbot is mounted from %+v, want the generated ConfigMap %s", cfg, cm.GetName())
	}
	if !slices.Contains(c.Args, "/etc/drbot/drbot.yaml") {
		t.Errorf("args %q do not point drbot at /etc/drbot/drbot.yaml", c.Args)
	}
}

// TestConfigMapHoldsAValidConfigReadingSecretsFromTheMountedSecret parses the ConfigMap's drbot.yaml as
// drbot does, and checks its token files are keys of the Secret template mounted at /run/secrets/drbot.
func TestConfigMapHoldsAValidConfigReadingSecretsFromTheMountedSecret(t *testing.T) {
	cm := find(t, render(t), "ConfigMap", "")
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	text, ok := data["drbot.yaml"]
	if !ok {
		t.Fatalf("ConfigMap %s has no drbot.yaml", cm.GetName())
	}
	if _, err := config.Parse([]byte(text), "drbot.yaml"); err != nil {
		t.Fatalf("the ConfigMap's drbot.yaml is not a valid config:\n%v", err)
	}
	keys, _, _ := unstructured.NestedStringMap(secretTemplate(t).Object, "stringData")
	for _, line := range strings.Split(text, "\n") {
		_, path, ok := strings.Cut(line, "_file: ")
		if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		path = strings.Fields(path)[0]
		key, ok := strings.CutPrefix(path, "/run/secrets/drbot/")
		if !ok {
			t.Errorf("%q reads a secret outside the mounted Secret /run/secrets/drbot", strings.TrimSpace(line))
			continue
		}
		if _, ok := keys[key]; !ok {
			t.Errorf("%q names key %q, which secret-tokens.template.yaml does not have", strings.TrimSpace(line), key)
		}
	}
	for k, v := range keys {
		if !strings.Contains(v, "REPLACE-ME") {
			t.Errorf("secret-tokens.template.yaml key %s holds %q: only placeholders belong there", k, v)
		}
	}
}

func convert(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	data, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, into); err != nil {
		t.Fatalf("decoding %s %s: %v", u.GetKind(), u.GetName(), err)
	}
}

// warnings collects the API server's warnings (PodSecurity's among them).
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

type dryRunner struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
	warn   *warnings
}

func newDryRunner(t *testing.T, cfg *rest.Config) *dryRunner {
	t.Helper()
	w := &warnings{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = w
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &dryRunner{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), warn: w}
}

// apply server-side applies obj, with dryRun only validating and admitting it (nothing is stored).
// Field validation is Strict, so a misspelt or misplaced field is an error, not silently dropped.
func (d *dryRunner) apply(ctx context.Context, obj *unstructured.Unstructured, dryRun bool) error {
	gvk := obj.GroupVersionKind()
	m, err := d.mapper.RESTMapping(schema.GroupKind{Group: gvk.Group, Kind: gvk.Kind}, gvk.Version)
	if err != nil {
		return err
	}
	data, err := json.Marshal(obj.Object)
	if err != nil {
		return err
	}
	opts := metav1.PatchOptions{FieldManager: "drbot-manifests-test", FieldValidation: "Strict"}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var res dynamic.ResourceInterface = d.dyn.Resource(m.Resource)
	if m.Scope.Name() == "namespace" {
		res = d.dyn.Resource(m.Resource).Namespace(obj.GetNamespace())
	}
	_, err = res.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, opts)
	return err
}

// TestRenderedBaseIsAcceptedByTheAPIServer dry-runs every rendered object (and the Secret template) against
// a real kube-apiserver: schema with strict field validation, defaulting and admission, PodSecurity
// "restricted" included (any warning fails the test). The namespaces are created for real first, as
// namespaced objects cannot be dry-run into a namespace that does not exist.
func TestRenderedBaseIsAcceptedByTheAPIServer(t *testing.T) {
	objs := render(t)
	c := kubeenv.Start(t, kubeenv.WithName("mgmt"), kubeenv.WithCRDs(""))
	t.Run("DryRunAcceptsEveryObject", func(t *testing.T) { testDryRun(t, c, objs) })
	t.Run("RBACGrantsDrbotExactlyItsDeclaredRules", func(t *testing.T) { testRBAC(t, c, objs) })
}

func testDryRun(t *testing.T, c *kubeenv.Cluster, objs []*unstructured.Unstructured) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := newDryRunner(t, c.AdminConfig())

	// drbot's Namespace for real (with its Pod Security labels, so admission judges the Deployment by
	// them); Argo CD's is created by Argo CD's own install.
	if err := d.apply(ctx, find(t, objs, "Namespace", "drbot"), false); err != nil {
		t.Fatalf("creating namespace drbot: %v", err)
	}
	if _, err := c.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace argocd: %v", err)
	}
	d.warn.take()

	for _, o := range append(objs, secretTemplate(t)) {
		what := o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
		if err := d.apply(ctx, o, true); err != nil {
			t.Errorf("%s rejected by the API server: %v", what, err)
			continue
		}
		if w := d.warn.take(); len(w) > 0 {
			t.Errorf("%s accepted with warnings: %q", what, w)
		} else {
			t.Logf("%s accepted (dry-run)", what)
		}
	}
	// Dry-run stored nothing.
	if _, err := c.Clientset().AppsV1().Deployments("drbot").Get(ctx, "drbot", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the dry-run stored the Deployment (get: %v)", err)
	}

	// The warning check is live: a pod template that breaks "restricted" draws PodSecurity's warning.
	bad := find(t, objs, "Deployment", "drbot").DeepCopy()
	bad.SetName("drbot-insecure")
	unstructured.RemoveNestedField(bad.Object, "spec", "template", "spec", "securityContext")
	containers, _, _ := unstructured.NestedSlice(bad.Object, "spec", "template", "spec", "containers")
	delete(containers[0].(map[string]any), "securityContext")
	if err := unstructured.SetNestedSlice(bad.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if err := d.apply(ctx, bad, true); err != nil {
		t.Fatalf("dry-run of the insecure control Deployment: %v", err)
	}
	if w := d.warn.take(); !slices.ContainsFunc(w, func(s string) bool { return strings.Contains(s, "PodSecurity") }) {
		t.Errorf("a Deployment without securityContext drew no PodSecurity warning (got %q): the check above proves nothing", w)
	}
}

// testRBAC applies the RBAC for real (after the dry-run) and asks the API server's authorizer what the
// drbot ServiceAccount may do.
func testRBAC(t *testing.T, c *kubeenv.Cluster, objs []*unstructured.Unstructured) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := newDryRunner(t, c.AdminConfig())
	if _, err := c.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace argocd: %v", err)
	}
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding":
			if err := d.apply(ctx, o, false); err != nil {
				t.Fatalf("applying %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		}
	}
	cs := c.Clientset()
	type check struct {
		ns, group, resource, verb, name string
		allowed                         bool
	}
	// Every verb the permission declaration gives drbot in the management cluster is granted (namespaced
	// rules first: SelfSubjectAccessReviews are every user's anyway, so they cannot be the one waited for)...
	var checks []check
	for _, r := range standard.Permissions().KubeRules(permissions.Management) {
		for _, v := range r.Verbs {
			ck := check{permissions.Expand(r.Namespace, permissions.RenderVars), r.APIGroup, r.Resources[0], v, "", true}
			if ck.ns == "" {
				checks = append(checks, ck)
			} else {
				checks = append([]check{ck}, checks...)
			}
		}
	}
	// ... and nothing more.
	checks = append(checks, []check{
		{"drbot", "coordination.k8s.io", "leases", "update", "drbot", false},
		{"drbot", "", "secrets", "get", "drbot-tokens", false},
		{"kube-system", "", "secrets", "list", "", false},
		{"argocd", "", "secrets", "update", "argocd-secret", false},
		{"argocd", "argoproj.io", "appprojects", "update", "default", false},
		{"argocd", "", "pods", "list", "", false},
		{"", "", "nodes", "list", "", false},
		{"", "rbac.authorization.k8s.io", "clusterrolebindings", "create", "", false},
	}...)
	for i, ck := range checks {
		if i == 0 && !ck.allowed {
			t.Fatal("the first check must be a grant: it is the one waited for")
		}
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:   "system:serviceaccount:drbot:drbot",
			Groups: []string{"system:serviceaccounts", "system:serviceaccounts:drbot", "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: ck.ns, Group: ck.group, Resource: ck.resource, Verb: ck.verb, Name: ck.name,
			},
		}}
		got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SubjectAccessReview: %v", err)
		}
		// The authorizer learns of new bindings through an informer: wait for the first grant to show.
		for i == 0 && got.Status.Allowed != ck.allowed && ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			if got, err = cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{}); err != nil {
				t.Fatalf("SubjectAccessReview: %v", err)
			}
		}
		if got.Status.Allowed != ck.allowed {
			t.Errorf("drbot %s %s.%s %q in %q: allowed=%v, want %v (%s)", ck.verb, ck.resource, ck.group, ck.name, ck.ns,
				got.Status.Allowed, ck.allowed, got.Status.Reason)
		}
	}
}
