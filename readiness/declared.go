package readiness

import (
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/permissions"
	"github.com/drbot/drbot/recovery/standard"
)

// Declared permissions (recovery/standard.Permissions()) turned into what
// the kube and Vault checks ask about, with the placeholders filled in from
// the config.

// probeName stands in for a glob segment ("role/*" → "role/drbot-probe"):
// sys/capabilities-self answers for concrete paths.
const probeName = "drbot-probe"

// KubeNeedsFrom is every verb on every resource the declaration gives
// drbot in the management cluster, one SelfSubjectAccessReview each.
func KubeNeedsFrom(set permissions.Set, cfg *config.Config) []authorizationv1.ResourceAttributes {
	vars := standard.PermissionVars(cfg, nil)
	var out []authorizationv1.ResourceAttributes
	for _, r := range set.KubeRules(permissions.Management) {
		ns := permissions.Expand(r.Namespace, vars)
		if ns == "*" {
			ns = ""
		}
		for _, res := range r.Resources {
			for _, verb := range r.Verbs {
				out = append(out, authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: r.APIGroup, Resource: res})
			}
		}
	}
	return out
}

// VaultNeedsFrom is the declaration's Vault paths for a target, globs made
// concrete, each with its declared capabilities.
func VaultNeedsFrom(set permissions.Set, cfg *config.Config, t *config.Target) []VaultNeed {
	vars := standard.PermissionVars(cfg, t)
	caps := set.VaultCapabilities()
	var out []VaultNeed
	for _, p := range sortedKeys(caps) {
		path := permissions.Expand(p, vars)
		if strings.Contains(path, "${") {
			continue // a placeholder this config does not fill (e.g. no vault.auth)
		}
		path = strings.ReplaceAll(path, "+", probeName)
		if strings.HasSuffix(path, "*") {
			path = strings.TrimSuffix(path, "*") + probeName
		}
		out = append(out, VaultNeed{Path: path, Caps: caps[p]})
	}
	return out
}
