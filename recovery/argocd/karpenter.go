package argocd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/client-go/dynamic"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

const (
	// KarpenterServiceAccount must match the Pod Identity association iam.roles makes.
	KarpenterServiceAccount = "karpenter"
	karpenterNamespace      = "kube-system"
)

// Karpenter is the addons.karpenter action: the Argo CD Application for the
// chart, waited on until Synced and Healthy, then the EC2NodeClass and the
// NodePool, server-side applied to the DR cluster.
func (a *Argo) Karpenter(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	if a.opts.DR == nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("argocd: Options.DR is not set, so the NodePool cannot be applied (a wiring bug)"))
	}
	t, err := a.target(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	addon, ok := a.cfg.Addons[config.AddonKarpenter]
	if !ok {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("addons.karpenter is not in the config: add it with at least a version"))
	}
	endpoint, _, err := clusterAccess(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	cluster := t.DR.ClusterName
	app, err := a.Application(cluster, endpoint, addon)
	if err != nil {
		return recovery.Result{}, recovery.Permanent(err)
	}
	ns, name := app.GetNamespace(), app.GetName()

	apps := a.dyn.Resource(ApplicationGVR).Namespace(ns)
	var genBefore int64
	if cur, err := apps.Get(ctx, name, metav1.GetOptions{}); err == nil {
		genBefore = cur.GetGeneration()
	} else if !apierrors.IsNotFound(err) {
		return recovery.Result{}, classify(fmt.Errorf("reading Argo CD application %s/%s: %w", ns, name, err))
	}
	got, err := apps.Apply(ctx, name, app, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return recovery.Result{}, classify(fmt.Errorf("applying Argo CD application %s/%s: %w", ns, name, err))
	}
	// The Application is the async handle: a resumed step watches it again.
	if err := sc.SaveHandle(ns + "/" + name); err != nil {
		return recovery.Result{}, err
	}
	verb := "updated"
	switch {
	case genBefore == 0:
		verb = "created"
	case got.GetGeneration() == genBefore:
		verb = "unchanged"
	}
	sc.Progress("Argo CD application %s/%s %s (chart %s %s); waiting for Synced and Healthy", ns, name, verb, addon.Chart, addon.Version)

	if err := a.waitHealthy(ctx, sc, apps, name); err != nil {
		return recovery.Result{}, err
	}

	nodeRole, roleFrom := nodeRoleName(sc, cluster)
	nodeClass, nodePool, err := RenderNodeObjects(addon, KarpenterVars{ClusterName: cluster, NodeRole: nodeRole, Region: t.DR.Region})
	if err != nil {
		return recovery.Result{}, recovery.Permanent(err)
	}
	rc, err := a.opts.DR.DRConfig(ctx, sc)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("reaching the DR cluster: %w", err)
	}
	dr, err := dynamic.NewForConfig(rc)
	if err != nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("building DR cluster dynamic client: %w", err))
	}
	var lines []string
	for _, o := range []struct {
		obj  *unstructured.Unstructured
		res  dynamic.NamespaceableResourceInterface
		kind string
	}{
		{nodeClass, dr.Resource(EC2NodeClassGVR), "EC2NodeClass"},
		{nodePool, dr.Resource(NodePoolGVR), "NodePool"},
	} {
		v, err := applyObject(ctx, o.res, o.obj)
		if err != nil {
			if apierrors.IsNotFound(err) {
				// No such resource type: the chart's CRDs are not served yet.
				return recovery.Result{}, recovery.Retryable(fmt.Errorf("applying %s %q: %w (Karpenter's CRDs are not installed in the DR cluster yet)", o.kind, o.obj.GetName(), err))
			}
			return recovery.Result{}, classify(fmt.Errorf("applying %s %q: %w", o.kind, o.obj.GetName(), err))
		}
		lines = append(lines, fmt.Sprintf("%s %s %s", o.kind, o.obj.GetName(), v))
	}
	sc.Progress("%s (node role %s, %s)", strings.Join(lines, ", "), nodeRole, roleFrom)
	return recovery.Result{Outputs: map[string]string{
		"application":    ns + "/" + name,
		"ec2_node_class": nodeClass.GetName(),
		"node_pool":      nodePool.GetName(),
		"node_role":      nodeRole,
	}}, nil
}

// Application builds the Karpenter Application for a DR cluster: the chart
// at its pinned version, drbot's required values with the config's values
// merged over them, the DR cluster as destination (by name or by server,
// per argocd.destination_by), automated sync creating the namespace.
func (a *Argo) Application(cluster, endpoint string, addon config.Addon) (*unstructured.Unstructured, error) {
	if addon.Version == "" {
		return nil, fmt.Errorf("addons.karpenter.version is empty: pin a chart version")
	}
	repo, chart := addon.Repo, addon.Chart
	if chart == "" {
		chart = "karpenter"
	}
	if repo == "" {
		repo = "oci://public.ecr.aws/karpenter"
	}
	// Argo CD takes a Helm OCI registry without the scheme (the repository
	// must be registered in Argo CD with enableOCI).
	repo = strings.TrimPrefix(repo, "oci://")
	ns := addon.Namespace
	if ns == "" {
		ns = karpenterNamespace
	}

	values := map[string]any{
		"settings":       map[string]any{"clusterName": cluster},
		"serviceAccount": map[string]any{"name": KarpenterServiceAccount},
	}
	if len(addon.Values) > 0 {
		raw, err := json.Marshal(addon.Values)
		if err != nil {
			return nil, fmt.Errorf("addons.karpenter.values is not JSON-compatible: %w", err)
		}
		var user map[string]any
		if err := utiljson.Unmarshal(raw, &user); err != nil {
			return nil, fmt.Errorf("decoding addons.karpenter.values: %w", err)
		}
		mergeValues(values, user)
	}

	dest := map[string]any{"namespace": ns}
	switch a.cfg.ArgoCD.DestinationBy {
	case "server":
		dest["server"] = endpoint
	default:
		dest["name"] = cluster
	}
	project := a.cfg.ArgoCD.Project
	if project == "" {
		project = "default"
	}
	app := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": ApplicationGVR.GroupVersion().String(),
		"kind":       "Application",
		"metadata": map[string]any{
			"name":      ApplicationName(cluster),
			"namespace": a.namespace(),
			"labels":    map[string]any{ManagedByLabel: FieldManager},
		},
		"spec": map[string]any{
			"project": project,
			"source": map[string]any{
				"repoURL":        repo,
				"chart":          chart,
				"targetRevision": addon.Version,
				"helm": map[string]any{
					"releaseName":  "karpenter",
					"valuesObject": values,
				},
			},
			"destination": dest,
			"syncPolicy": map[string]any{
				"automated":   map[string]any{"prune": true, "selfHeal": true},
				"syncOptions": []any{"CreateNamespace=true"},
			},
		},
	}}
	return app, nil
}

// nodeRoleName is the Karpenter node role: iam.roles' output, else the
// getting-started name.
func nodeRoleName(sc *recovery.StepContext, cluster string) (role, from string) {
	if v, ok := sc.Output(stepIAMRoles, "karpenter_node_role_name"); ok && v != "" {
		// An ARN is accepted: the EC2NodeClass wants the role's name.
		if i := strings.LastIndex(v, "/"); strings.HasPrefix(v, "arn:") && i >= 0 {
			v = v[i+1:]
		}
		return v, "from " + stepIAMRoles
	}
	return "KarpenterNodeRole-" + cluster, "default name; " + stepIAMRoles + " gave none"
}

// applyObject server-side applies obj and says whether it was created,
// updated or left unchanged.
func applyObject(ctx context.Context, res dynamic.NamespaceableResourceInterface, obj *unstructured.Unstructured) (string, error) {
	var rvBefore string
	if cur, err := res.Get(ctx, obj.GetName(), metav1.GetOptions{}); err == nil {
		rvBefore = cur.GetResourceVersion()
	} else if !apierrors.IsNotFound(err) {
		return "", err
	}
	got, err := res.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		return "", err
	}
	switch {
	case rvBefore == "":
		return "created", nil
	case got.GetResourceVersion() == rvBefore:
		return "unchanged", nil
	}
	return "updated", nil
}
