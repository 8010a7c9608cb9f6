// Package gitopstest makes primary Argo CD Application templates for tests
// and benchmarks: many services over several namespaces, Helm chart
// sources (valuesObject), Git sources with a Helm values string, plain Git
// directory sources, multi-document files, a non-Application document,
// and malformed files on request.
package gitopstest

import (
	"fmt"
	"path"
	"strings"
)

// Namespaces the services are spread over, round-robin.
var Namespaces = []string{"payments", "orders", "search", "identity", "catalog"}

// PrimaryCluster is the destination name in the primary's templates.
const PrimaryCluster = "primary-eks"

// Options shape the templates.
type Options struct {
	Dir      string // templates directory, e.g. "apps/primary"
	Services int
	// Malformed adds that many broken files (up to 3 kinds, cycling): bad
	// YAML, an Application without metadata.name, one without destination.
	Malformed int
	// Huge names services whose pods request 64 CPUs (unschedulable on
	// kubeenv's nodes), so their Applications end Degraded.
	Huge map[string]bool
}

// Service is the i-th service's name.
func Service(i int) string { return fmt.Sprintf("svc-%04d", i) }

// Namespace is the i-th service's namespace.
func Namespace(i int) string { return Namespaces[i%len(Namespaces)] }

// Templates returns repository path → content. Every tenth file holds two
// Applications and a ConfigMap (which generation skips).
func Templates(o Options) map[string]string {
	files := map[string]string{}
	for i := 0; i < o.Services; i++ {
		p := path.Join(o.Dir, Namespace(i), Service(i)+".yaml")
		doc := Application(i, o.Huge[Service(i)])
		if i%10 == 0 && i+1 < o.Services {
			doc += "---\n" + Application(i+1, o.Huge[Service(i+1)]) +
				"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + Service(i) + "-notes\ndata:\n  owner: team-" + Namespace(i) + "\n"
			p = path.Join(o.Dir, Namespace(i), Service(i)+"-pair.yaml")
			i++
		}
		files[p] = doc
	}
	for k := 0; k < o.Malformed; k++ {
		p := path.Join(o.Dir, "broken", fmt.Sprintf("broken-%d.yaml", k))
		switch k % 3 {
		case 0:
			files[p] = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: broken-yaml\n spec: [unclosed\n"
		case 1:
			files[p] = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  labels: {tier: x}\nspec:\n  destination: {name: primary-eks, namespace: x}\n  source: {repoURL: https://example.com/x.git, path: x}\n"
		default:
			files[p] = fmt.Sprintf("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: no-destination-%d\nspec:\n  source: {repoURL: https://example.com/x.git, path: x}\n", k)
		}
	}
	files[path.Join(o.Dir, "README.md")] = "Primary Argo CD Applications. Not YAML: never read as a template.\n"
	return files
}

// Application is the i-th service's primary template. Sources cycle over a
// Helm chart with valuesObject, a Git path with a Helm values string and a
// plain Git directory.
func Application(i int, huge bool) string {
	name, ns := Service(i), Namespace(i)
	tier := "tier-1"
	if i%7 == 0 {
		tier = "tier-0"
	}
	var source string
	resources := ""
	if huge {
		resources = "\n        resources: {requests: {cpu: \"64\", memory: 1Gi}}"
	}
	switch i % 3 {
	case 0:
		source = fmt.Sprintf(`  source:
    repoURL: https://charts.example.com/stable
    chart: %[1]s
    targetRevision: 1.%[2]d.0
    helm:
      valuesObject:
        replicaCount: 1
        image: {repository: registry.example.com/%[1]s, tag: "2.%[2]d.1"}%[3]s
`, name, i%20, resources)
	case 1:
		values := fmt.Sprintf("replicaCount: 1\nimage:\n  repository: registry.example.com/%s\n  tag: \"1.10\"\n", name)
		if huge {
			values += "resources:\n  requests:\n    cpu: \"64\"\n"
		}
		source = fmt.Sprintf("  source:\n    repoURL: https://gitlab.example.com/platform/services.git\n    path: charts/%s\n    targetRevision: main\n    helm:\n      releaseName: %s\n      values: |\n%s",
			name, name, indent(values, "        "))
	default:
		source = fmt.Sprintf("  source:\n    repoURL: https://gitlab.example.com/platform/manifests.git\n    path: services/%s\n    targetRevision: v3.%d\n", name, i%9)
	}
	return fmt.Sprintf(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: %s
  namespace: argocd
  labels: {team: %s, tier: %s}
  finalizers: [resources-finalizer.argocd.argoproj.io]
spec:
  project: default
  destination:
    name: %s
    namespace: %s
%s  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true]
    retry: {limit: 5}
`, name, ns, tier, PrimaryCluster, ns, source)
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = prefix + l
	}
	return strings.Join(lines, "\n") + "\n"
}
