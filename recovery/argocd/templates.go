package argocd

import (
	"encoding/json"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utiljson "k8s.io/apimachinery/pkg/util/json"

	"github.com/drbot/drbot/config"
)

// Karpenter v1 resources (cluster-scoped).
var (
	NodePoolGVR     = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodepools"}
	EC2NodeClassGVR = schema.GroupVersionResource{Group: "karpenter.k8s.aws", Version: "v1", Resource: "ec2nodeclasses"}
)

const (
	// DiscoveryTag is the tag Karpenter's selector terms look for on subnets
	// and security groups (the getting-started convention).
	DiscoveryTag = "karpenter.sh/discovery"
	// DefaultName names the NodePool and EC2NodeClass when the templates do not.
	DefaultName = "default"
)

// KarpenterVars fill the ${…} placeholders of the templates.
type KarpenterVars struct {
	ClusterName string // ${CLUSTER_NAME}
	NodeRole    string // ${NODE_ROLE} (also ${KARPENTER_NODE_ROLE}); the IAM role name of the nodes
	Region      string // ${REGION} (also ${AWS_REGION})
}

func (v KarpenterVars) replacer() *strings.Replacer {
	return strings.NewReplacer(
		"${CLUSTER_NAME}", v.ClusterName,
		"${NODE_ROLE}", v.NodeRole,
		"${KARPENTER_NODE_ROLE}", v.NodeRole,
		"${REGION}", v.Region,
		"${AWS_REGION}", v.Region,
	)
}

// RenderNodeObjects builds the EC2NodeClass and the NodePool from the
// add-on's templates. A template is either the resource's spec or a whole
// object (with spec, and optionally apiVersion, kind and metadata). Known
// placeholders are filled in every string; what Karpenter needs and the
// template leaves out is defaulted: the node role, subnet and security group
// selectors on the discovery tag, the AL2023 AMI alias, and the NodePool's
// reference to the EC2NodeClass. Other ${…} (for example in userData) are
// left alone.
func RenderNodeObjects(addon config.Addon, vars KarpenterVars) (nodeClass, nodePool *unstructured.Unstructured, err error) {
	r := vars.replacer()
	nodeClass, err = fromTemplate(addon.EC2NodeClass, "ec2_node_class", EC2NodeClassGVR, "EC2NodeClass", r)
	if err != nil {
		return nil, nil, err
	}
	spec := nodeClass.Object["spec"].(map[string]any)
	_, hasRole := spec["role"]
	_, hasProfile := spec["instanceProfile"]
	if !hasRole && !hasProfile {
		spec["role"] = vars.NodeRole
	}
	discovery := []any{map[string]any{"tags": map[string]any{DiscoveryTag: vars.ClusterName}}}
	setDefault(spec, "subnetSelectorTerms", discovery)
	setDefault(spec, "securityGroupSelectorTerms", copyJSON(discovery))
	setDefault(spec, "amiSelectorTerms", []any{map[string]any{"alias": "al2023@latest"}})

	nodePool, err = fromTemplate(addon.NodePool, "node_pool", NodePoolGVR, "NodePool", r)
	if err != nil {
		return nil, nil, err
	}
	spec = nodePool.Object["spec"].(map[string]any)
	tmpl := child(spec, "template")
	tspec := child(tmpl, "spec")
	setDefault(tspec, "nodeClassRef", map[string]any{"group": EC2NodeClassGVR.Group, "kind": "EC2NodeClass", "name": nodeClass.GetName()})
	setDefault(tspec, "requirements", []any{
		map[string]any{"key": "kubernetes.io/arch", "operator": "In", "values": []any{"amd64"}},
		map[string]any{"key": "karpenter.sh/capacity-type", "operator": "In", "values": []any{"on-demand"}},
	})
	return nodeClass, nodePool, nil
}

// fromTemplate turns a config template into an object, JSON-normalized (so
// YAML ints and nested maps are what the dynamic client expects).
func fromTemplate(tmpl map[string]any, key string, gvr schema.GroupVersionResource, kind string, r *strings.Replacer) (*unstructured.Unstructured, error) {
	where := "addons.karpenter." + key
	m := map[string]any{}
	if len(tmpl) > 0 {
		raw, err := json.Marshal(tmpl)
		if err != nil {
			return nil, fmt.Errorf("%s is not JSON-compatible: %w", where, err)
		}
		if err := utiljson.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("decoding %s: %w", where, err)
		}
	}
	m = fill(m, r).(map[string]any)

	obj := &unstructured.Unstructured{Object: map[string]any{}}
	if spec, ok := m["spec"]; ok {
		// A whole object.
		for k := range m {
			switch k {
			case "apiVersion", "kind", "metadata", "spec":
			default:
				return nil, fmt.Errorf("%s: unexpected top-level key %q next to spec (want apiVersion, kind, metadata, spec)", where, k)
			}
		}
		if av, _ := m["apiVersion"].(string); av != "" && av != gvr.GroupVersion().String() {
			return nil, fmt.Errorf("%s: apiVersion %q is not supported, want %s", where, av, gvr.GroupVersion())
		}
		if k, _ := m["kind"].(string); k != "" && k != kind {
			return nil, fmt.Errorf("%s: kind %q, want %s", where, k, kind)
		}
		sm, ok := spec.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: spec is not a mapping", where)
		}
		obj.Object["spec"] = sm
		if md, ok := m["metadata"].(map[string]any); ok {
			keep := map[string]any{}
			for _, k := range []string{"name", "labels", "annotations"} {
				if v, ok := md[k]; ok {
					keep[k] = v
				}
			}
			obj.Object["metadata"] = keep
		}
	} else {
		obj.Object["spec"] = m
	}
	obj.SetAPIVersion(gvr.GroupVersion().String())
	obj.SetKind(kind)
	if obj.GetName() == "" {
		obj.SetName(DefaultName)
	}
	return obj, nil
}

// fill replaces the placeholders in every string of v.
func fill(v any, r *strings.Replacer) any {
	switch x := v.(type) {
	case string:
		return r.Replace(x)
	case map[string]any:
		for k, e := range x {
			x[k] = fill(e, r)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = fill(e, r)
		}
		return x
	}
	return v
}

func setDefault(m map[string]any, key string, v any) {
	if _, ok := m[key]; !ok {
		m[key] = v
	}
}

// child returns m[key] as a map, creating it when absent.
func child(m map[string]any, key string) map[string]any {
	c, ok := m[key].(map[string]any)
	if !ok {
		c = map[string]any{}
		m[key] = c
	}
	return c
}

func copyJSON(v []any) []any {
	raw, _ := json.Marshal(v)
	var out []any
	_ = utiljson.Unmarshal(raw, &out)
	return out
}

// mergeValues deep-merges src over dst (src wins; maps merge, the rest is replaced).
func mergeValues(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}
