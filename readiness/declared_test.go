package readiness_test

import (
	"slices"
	"testing"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery/standard"
)

func TestDeclaredPermissionsBecomeConcreteReviewsAndVaultPaths(t *testing.T) {
	cfg := &config.Config{ArgoCD: config.ArgoCD{Namespace: "gitops"},
		Vault: config.Vault{SourceMount: "k8s-primary", TargetMount: "k8s-dr-{target}", NewRelicKeyPath: "secret/observability/newrelic"}}
	tg := &config.Target{Name: "prod-eu"}

	var reviews []string
	for _, a := range readiness.KubeNeedsFrom(standard.Permissions(), cfg) {
		reviews = append(reviews, a.Verb+" "+a.Resource+"."+a.Group+" @"+a.Namespace)
	}
	for _, want := range []string{"patch secrets. @gitops", "create applications.argoproj.io @gitops", "watch applications.argoproj.io @gitops"} {
		if !slices.Contains(reviews, want) {
			t.Errorf("reviews lack %q: %v", want, reviews)
		}
	}

	paths := map[string][]string{}
	for _, n := range readiness.VaultNeedsFrom(standard.Permissions(), cfg, tg) {
		paths[n.Path] = n.Caps
	}
	for path, cap := range map[string]string{
		"sys/auth/k8s-dr-prod-eu":              "sudo",
		"auth/k8s-dr-prod-eu/role/drbot-probe": "create",
		"auth/k8s-primary/role/drbot-probe":    "list",
		"secret/data/observability/newrelic":   "read",
	} {
		if !slices.Contains(paths[path], cap) {
			t.Errorf("vault needs lack %s on %s: %v", cap, path, paths)
		}
	}
	for p := range paths {
		if slices.Contains([]byte(p), '$') || slices.Contains([]byte(p), '*') {
			t.Errorf("vault path %q is not concrete", p)
		}
	}
}
