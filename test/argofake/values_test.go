package argofake

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestHelmValuesApplyInArgoCDOrder(t *testing.T) {
	docs, err := parseApplications([]byte(`
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web}
spec:
  source:
    repoURL: https://charts.example.com
    chart: web
    targetRevision: 1.2.3
    helm:
      values: |
        replicaCount: 5
        image: {repository: example/web, tag: "1.0"}
        resources: {requests: {cpu: 250m}}
      valuesObject:
        replicaCount: 4
        image: {tag: "2.0"}
      parameters:
        - {name: image.tag, value: "3.0"}
  destination: {name: dr, namespace: web}
`))
	if err != nil || len(docs) != 1 {
		t.Fatalf("parseApplications = %d docs, %v; want 1", len(docs), err)
	}
	spec, err := parseSpec(docs[0])
	if err != nil {
		t.Fatalf("parseSpec: %v", err)
	}
	d, err := desiredDeployment("web", spec, 20)
	if err != nil {
		t.Fatalf("desiredDeployment: %v", err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if *d.Spec.Replicas != 4 || c.Image != "example/web:3.0" || c.Resources.Requests.Cpu().String() != "250m" {
		t.Errorf("replicas=%d image=%q cpu=%s; want 4 (valuesObject over values), example/web:3.0 (parameters last), 250m",
			*d.Spec.Replicas, c.Image, c.Resources.Requests.Cpu())
	}
	if spec.sourceType != "Helm" || spec.targetRevision != "1.2.3" || spec.automated {
		t.Errorf("sourceType=%q targetRevision=%q automated=%v; want Helm, 1.2.3, false", spec.sourceType, spec.targetRevision, spec.automated)
	}
}

func TestBadReplicaCountIsASyncError(t *testing.T) {
	for _, v := range []any{"many", -1.0, 1.5} {
		app := &unstructured.Unstructured{Object: map[string]any{
			"spec": map[string]any{
				"source": map[string]any{"repoURL": "r", "path": "p", "helm": map[string]any{"valuesObject": map[string]any{"replicaCount": v}}},
			},
		}}
		spec, err := parseSpec(app)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := desiredDeployment("web", spec, 20); err == nil || !strings.Contains(err.Error(), "replicaCount") {
			t.Errorf("replicaCount %v: err = %v, want an error naming replicaCount", v, err)
		}
	}
}

func TestDestinationResolutionUsesArgoCDMessages(t *testing.T) {
	clusters := []*cluster{
		{name: "dr", server: "https://dr.example.com"},
		{name: "twin", server: "https://a.example.com"},
		{name: "twin", server: "https://b.example.com"},
		{name: inClusterName, server: inClusterServer},
	}
	for _, tc := range []struct{ name, server, want string }{
		{"dr", "", ""},
		{"", "https://dr.example.com/", ""},
		{"", inClusterServer, ""},
		{"nope", "", "there are no clusters with this name: nope"},
		{"twin", "", "there are 2 clusters with the same name"},
		{"", "https://x.example.com", "cluster 'https://x.example.com' has not been configured"},
		{"dr", "https://dr.example.com", "can't have both name and server defined"},
		{"", "", "Destination server missing from app spec"},
	} {
		_, err := resolve(clusters, tc.name, tc.server)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("resolve(%q, %q) = %v, want %q", tc.name, tc.server, err, tc.want)
		}
	}
}
