package helm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/drbot/drbot/recovery"
)

// fieldManager owns what drbot applies, so a re-apply from a changed
// config removes fields drbot set before and a person's kubectl edits to
// other fields stay.
const fieldManager = "drbot"

// ParseManifests reads YAML (or JSON) documents separated by "---" into
// objects; empty documents are skipped.
func ParseManifests(text string) ([]map[string]any, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(text), 4096)
	var out []map[string]any
	for i := 1; ; i++ {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		if len(obj) > 0 {
			out = append(out, obj)
		}
	}
}

// applyManifests server-side applies objects (force, field manager drbot)
// through the dynamic client and returns them as "Kind namespace/name".
// Namespaced objects without a namespace go to defaultNamespace.
func applyManifests(ctx context.Context, cfg *rest.Config, defaultNamespace string, objs []map[string]any) ([]string, error) {
	if len(objs) == 0 {
		return nil, nil
	}
	getter := newRESTGetter(cfg, defaultNamespace)
	restCfg, _ := getter.ToRESTConfig()
	dyn, err := dynamic.NewForConfig(restCfg)
	if err != nil {
		return nil, recovery.Permanent(fmt.Errorf("building a dynamic client: %w", err))
	}
	dc, err := getter.ToDiscoveryClient()
	if err != nil {
		return nil, recovery.Permanent(fmt.Errorf("building a discovery client: %w", err))
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(dc)

	var applied []string
	for i, raw := range objs {
		content, err := normalize(raw)
		if err != nil {
			return applied, recovery.Permanent(fmt.Errorf("ingress manifest %d: %w", i+1, err))
		}
		obj := &unstructured.Unstructured{Object: content}
		gvk := obj.GroupVersionKind()
		if gvk.Kind == "" || gvk.Version == "" || obj.GetName() == "" {
			return applied, recovery.Permanent(fmt.Errorf("ingress manifest %d: apiVersion, kind and metadata.name are required", i+1))
		}
		what := fmt.Sprintf("%s %s", gvk.Kind, obj.GetName())
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			// A chart installed just before may have added the kind.
			mapper.Reset()
			mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			if meta.IsNoMatchError(err) {
				return applied, recovery.Permanent(fmt.Errorf("ingress manifest %d (%s): the cluster has no %s; is its CRD installed?", i+1, what, gvk))
			}
			return applied, classifyKube(fmt.Errorf("ingress manifest %d (%s): looking up its API: %w", i+1, what, err))
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if obj.GetNamespace() == "" {
				obj.SetNamespace(defaultNamespace)
			}
			ri = dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
			what = fmt.Sprintf("%s %s/%s", gvk.Kind, obj.GetNamespace(), obj.GetName())
		} else {
			obj.SetNamespace("")
		}
		if _, err := ri.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
			return applied, classifyKube(fmt.Errorf("applying %s: %w", what, err))
		}
		applied = append(applied, what)
	}
	return applied, nil
}
