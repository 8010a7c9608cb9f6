package argofake

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// appSpec is what the controller reads from an Application.
type appSpec struct {
	destName, destServer, namespace string
	automated                       bool
	createNamespace                 bool
	values                          map[string]any
	sourceType                      string
	targetRevision                  string
}

func parseSpec(app *unstructured.Unstructured) (*appSpec, error) {
	s := &appSpec{}
	s.destName, _, _ = unstructured.NestedString(app.Object, "spec", "destination", "name")
	s.destServer, _, _ = unstructured.NestedString(app.Object, "spec", "destination", "server")
	s.namespace, _, _ = unstructured.NestedString(app.Object, "spec", "destination", "namespace")
	if s.namespace == "" {
		s.namespace = "default"
	}
	if auto, ok, _ := unstructured.NestedFieldNoCopy(app.Object, "spec", "syncPolicy", "automated"); ok && auto != nil {
		// automated: {} (or with prune/selfHeal) turns automated sync on; enabled: false turns it off again.
		s.automated = true
		if m, ok := auto.(map[string]any); ok {
			if en, ok := m["enabled"].(bool); ok && !en {
				s.automated = false
			}
		}
	}
	opts, _, _ := unstructured.NestedStringSlice(app.Object, "spec", "syncPolicy", "syncOptions")
	for _, o := range opts {
		if strings.EqualFold(strings.ReplaceAll(o, " ", ""), "CreateNamespace=true") {
			s.createNamespace = true
		}
	}

	var sources []map[string]any
	if src, ok, _ := unstructured.NestedMap(app.Object, "spec", "source"); ok {
		sources = append(sources, src)
	} else if list, ok, _ := unstructured.NestedSlice(app.Object, "spec", "sources"); ok {
		for _, x := range list {
			if m, ok := x.(map[string]any); ok {
				sources = append(sources, m)
			}
		}
	}
	if len(sources) == 0 {
		return s, fmt.Errorf("spec.source or spec.sources is required")
	}
	s.sourceType = "Directory"
	s.values = map[string]any{}
	for i, src := range sources {
		if i == 0 {
			s.targetRevision, _ = src["targetRevision"].(string)
		}
		repo, _ := src["repoURL"].(string)
		chart, _ := src["chart"].(string)
		path, _ := src["path"].(string)
		if repo == "" {
			return s, fmt.Errorf("spec.source.repoURL and either spec.source.path or spec.source.chart are required")
		}
		_, hasHelm := src["helm"]
		if chart != "" || hasHelm {
			s.sourceType = "Helm"
		}
		if chart == "" && path == "" && !hasHelm {
			return s, fmt.Errorf("spec.source.repoURL and either spec.source.path or spec.source.chart are required")
		}
		if err := mergeHelmValues(s.values, src); err != nil {
			return s, err
		}
	}
	return s, nil
}

// mergeHelmValues applies one source's Helm values in Argo CD's order: values, then valuesObject, then parameters.
func mergeHelmValues(dst map[string]any, src map[string]any) error {
	helm, _ := src["helm"].(map[string]any)
	if helm == nil {
		return nil
	}
	if text, _ := helm["values"].(string); strings.TrimSpace(text) != "" {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(text), &m); err != nil {
			return fmt.Errorf("parsing spec.source.helm.values: %w", err)
		}
		mergeMaps(dst, m)
	}
	if obj, ok := helm["valuesObject"].(map[string]any); ok {
		mergeMaps(dst, obj)
	}
	if params, ok := helm["parameters"].([]any); ok {
		for _, p := range params {
			m, _ := p.(map[string]any)
			name, _ := m["name"].(string)
			if name == "" {
				continue
			}
			setPath(dst, strings.Split(name, "."), m["value"])
		}
	}
	return nil
}

func mergeMaps(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeMaps(dm, sm)
				continue
			}
			cp := map[string]any{}
			mergeMaps(cp, sm)
			dst[k] = cp
			continue
		}
		dst[k] = v
	}
}

func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		next, ok := m[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[p] = next
		}
		m = next
	}
	m[path[len(path)-1]] = v
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func (s *appSpec) image() string {
	switch img := s.values["image"].(type) {
	case string:
		if img != "" {
			return img
		}
	case map[string]any:
		repo := scalarString(img["repository"])
		if repo == "" {
			break
		}
		if reg := scalarString(img["registry"]); reg != "" {
			repo = reg + "/" + repo
		}
		if tag := scalarString(img["tag"]); tag != "" {
			return repo + ":" + tag
		}
		return repo
	}
	return DefaultImage
}

func (s *appSpec) replicas() (int32, error) {
	v, ok := s.values["replicaCount"]
	if !ok || v == nil {
		return 1, nil
	}
	var n float64
	switch x := v.(type) {
	case int64:
		n = float64(x)
	case float64:
		n = x
	case string:
		i, err := strconv.Atoi(x)
		if err != nil {
			return 0, fmt.Errorf("helm value replicaCount %q is not a number", x)
		}
		n = float64(i)
	default:
		return 0, fmt.Errorf("helm value replicaCount has type %T, want a number", v)
	}
	if n < 0 || n != math.Trunc(n) || n > math.MaxInt32 {
		return 0, fmt.Errorf("helm value replicaCount %v is not a non-negative integer", v)
	}
	return int32(n), nil
}

func (s *appSpec) resources() (corev1.ResourceRequirements, error) {
	var rr corev1.ResourceRequirements
	res, _ := s.values["resources"].(map[string]any)
	for _, kind := range []string{"requests", "limits"} {
		m, _ := res[kind].(map[string]any)
		if len(m) == 0 {
			continue
		}
		list := corev1.ResourceList{}
		for name, v := range m {
			q, err := resource.ParseQuantity(scalarString(v))
			if err != nil {
				return rr, fmt.Errorf("helm value resources.%s.%s %v: %w", kind, name, v, err)
			}
			list[corev1.ResourceName(name)] = q
		}
		if kind == "requests" {
			rr.Requests = list
		} else {
			rr.Limits = list
		}
	}
	return rr, nil
}

// instanceValue fits an Application name into a label value (63 characters at most), as Argo CD's tracking must.
func instanceValue(app string) string {
	if len(app) <= 63 {
		return app
	}
	return strings.TrimRight(app[:63], "-_.")
}

// desiredDeployment is the one object the stand-in syncs for an Application.
func desiredDeployment(app string, s *appSpec, deadline int32) (*appsv1.Deployment, error) {
	replicas, err := s.replicas()
	if err != nil {
		return nil, err
	}
	rr, err := s.resources()
	if err != nil {
		return nil, err
	}
	labels := map[string]string{InstanceLabel: instanceValue(app)}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:      app,
			Namespace: s.namespace,
			Labels:    map[string]string{InstanceLabel: instanceValue(app), "app.kubernetes.io/managed-by": "argofake"},
			Annotations: map[string]string{
				"argocd.argoproj.io/tracking-id": fmt.Sprintf("%s:apps/Deployment:%s/%s", app, s.namespace, app),
			},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:                &replicas,
			ProgressDeadlineSeconds: &deadline,
			Selector:                &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: s.image(), Resources: rr}},
				},
			},
		},
	}, nil
}
