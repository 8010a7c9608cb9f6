package argocd

import (
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/drbot/drbot/config"
)

func TestRenderNodeObjectsDefaultsWhatKarpenterNeeds(t *testing.T) {
	nc, np, err := RenderNodeObjects(config.Addon{}, KarpenterVars{ClusterName: "dr-eu", NodeRole: "KarpenterNodeRole-dr-eu"})
	if err != nil {
		t.Fatal(err)
	}
	if nc.GetAPIVersion() != "karpenter.k8s.aws/v1" || nc.GetKind() != "EC2NodeClass" || nc.GetName() != "default" {
		t.Errorf("node class %s %s %s", nc.GetAPIVersion(), nc.GetKind(), nc.GetName())
	}
	got := fmt.Sprint(nc.Object["spec"])
	want := "map[amiSelectorTerms:[map[alias:al2023@latest]] role:KarpenterNodeRole-dr-eu " +
		"securityGroupSelectorTerms:[map[tags:map[karpenter.sh/discovery:dr-eu]]] subnetSelectorTerms:[map[tags:map[karpenter.sh/discovery:dr-eu]]]]"
	if got != want {
		t.Errorf("node class spec\n got %s\nwant %s", got, want)
	}
	if np.GetAPIVersion() != "karpenter.sh/v1" || np.GetKind() != "NodePool" || np.GetName() != "default" {
		t.Errorf("node pool %s %s %s", np.GetAPIVersion(), np.GetKind(), np.GetName())
	}
	if ref, _, _ := unstructured.NestedStringMap(np.Object, "spec", "template", "spec", "nodeClassRef"); fmt.Sprint(ref) != "map[group:karpenter.k8s.aws kind:EC2NodeClass name:default]" {
		t.Errorf("nodeClassRef = %v", ref)
	}
}

func TestRenderNodeObjectsKeepsInstanceProfileAndFillsPlaceholders(t *testing.T) {
	addon := config.Addon{EC2NodeClass: map[string]any{
		"instanceProfile":     "${CLUSTER_NAME}-nodes",
		"subnetSelectorTerms": []any{map[string]any{"id": "subnet-1"}},
		"metadataOptions":     map[string]any{"httpPutResponseHopLimit": 2},
		"userData":            "#!/bin/bash\necho ${HOME} in ${REGION}",
	}}
	nc, _, err := RenderNodeObjects(addon, KarpenterVars{ClusterName: "dr", NodeRole: "r", Region: "eu-west-1"})
	if err != nil {
		t.Fatal(err)
	}
	spec := nc.Object["spec"].(map[string]any)
	if _, ok := spec["role"]; ok {
		t.Error("role set next to instanceProfile (Karpenter takes one or the other)")
	}
	if spec["instanceProfile"] != "dr-nodes" || spec["userData"] != "#!/bin/bash\necho ${HOME} in eu-west-1" {
		t.Errorf("placeholders: %v / %q", spec["instanceProfile"], spec["userData"])
	}
	if fmt.Sprint(spec["subnetSelectorTerms"]) != "[map[id:subnet-1]]" {
		t.Errorf("subnet selector from the template replaced: %v", spec["subnetSelectorTerms"])
	}
	// YAML ints become int64, which the dynamic client can copy.
	if v, _, _ := unstructured.NestedInt64(nc.Object, "spec", "metadataOptions", "httpPutResponseHopLimit"); v != 2 {
		t.Errorf("hop limit = %v", v)
	}
	_ = nc.DeepCopy()
	// The config is not modified.
	if addon.EC2NodeClass["instanceProfile"] != "${CLUSTER_NAME}-nodes" {
		t.Error("the config's template was modified")
	}
}

func TestRenderNodeObjectsRejectsAnotherAPIVersion(t *testing.T) {
	_, _, err := RenderNodeObjects(config.Addon{NodePool: map[string]any{"apiVersion": "karpenter.sh/v1beta1", "spec": map[string]any{}}}, KarpenterVars{})
	if err == nil || !strings.Contains(err.Error(), `addons.karpenter.node_pool: apiVersion "karpenter.sh/v1beta1" is not supported, want karpenter.sh/v1`) {
		t.Errorf("err = %v", err)
	}
}

func TestApplicationMergesConfigValuesOverRequiredOnes(t *testing.T) {
	a := &Argo{cfg: &config.Config{ArgoCD: config.ArgoCD{Namespace: "gitops", DestinationBy: "server"}}}
	app, err := a.Application("dr", "https://dr.example", config.Addon{
		Version: "1.3.3", Repo: "https://charts.example/karpenter",
		Values: map[string]any{"serviceAccount": map[string]any{"annotations": map[string]any{"a": "b"}}, "settings": map[string]any{"clusterName": "override"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	vals, _, _ := unstructured.NestedMap(app.Object, "spec", "source", "helm", "valuesObject")
	if fmt.Sprint(vals) != "map[serviceAccount:map[annotations:map[a:b] name:karpenter] settings:map[clusterName:override]]" {
		t.Errorf("values = %v", vals)
	}
	if app.GetNamespace() != "gitops" || app.GetName() != "karpenter-dr" {
		t.Errorf("application %s/%s", app.GetNamespace(), app.GetName())
	}
	if repo, _, _ := unstructured.NestedString(app.Object, "spec", "source", "repoURL"); repo != "https://charts.example/karpenter" {
		t.Errorf("repoURL = %q", repo)
	}
	if dest, _, _ := unstructured.NestedStringMap(app.Object, "spec", "destination"); fmt.Sprint(dest) != "map[namespace:kube-system server:https://dr.example]" {
		t.Errorf("destination = %v", dest)
	}
	if _, err := a.Application("dr", "", config.Addon{}); err == nil {
		t.Error("an unpinned chart was accepted")
	}
}

func TestReadAppState(t *testing.T) {
	app := func(status map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"spec": map[string]any{
				"source":      map[string]any{"repoURL": "r", "chart": "karpenter", "targetRevision": "1.3.3"},
				"destination": map[string]any{"name": "dr", "namespace": "kube-system"},
			},
			"status": status,
		}}
	}
	compared := func(rev string) map[string]any {
		return map[string]any{
			"source":      map[string]any{"repoURL": "r", "chart": "karpenter", "targetRevision": rev},
			"destination": map[string]any{"name": "dr", "namespace": "kube-system"},
		}
	}
	for _, tc := range []struct {
		name       string
		status     map[string]any
		ready, bad bool
	}{
		{"empty status", nil, false, false},
		{"healthy and synced", map[string]any{"health": map[string]any{"status": "Healthy"}, "sync": map[string]any{"status": "Synced", "comparedTo": compared("1.3.3")}}, true, false},
		{"healthy for the previous version", map[string]any{"health": map[string]any{"status": "Healthy"}, "sync": map[string]any{"status": "Synced", "comparedTo": compared("1.2.0")}}, false, false},
		{"degraded", map[string]any{"health": map[string]any{"status": "Degraded"}, "sync": map[string]any{"status": "Synced"}}, false, true},
		{"sync failed", map[string]any{"health": map[string]any{"status": "Missing"}, "operationState": map[string]any{"phase": "Failed", "message": "boom"}}, false, true},
		{"unknown destination", map[string]any{"conditions": []any{map[string]any{"type": "InvalidSpecError", "message": "no cluster"}}}, false, true},
	} {
		s := ReadAppState(app(tc.status))
		if s.Ready() != tc.ready || s.Bad() != tc.bad {
			t.Errorf("%s: ready %v bad %v, want %v %v (%s)", tc.name, s.Ready(), s.Bad(), tc.ready, tc.bad, s)
		}
	}
}
