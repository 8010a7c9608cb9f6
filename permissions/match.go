package permissions

import (
	"slices"
	"strings"
)

// These say whether one observed call (from a stand-in's log or the
// Kubernetes audit log) is covered by the declarations of the named steps
// or parts (all of them when names is empty). vars expand placeholders.

// AllowsKube covers one Kubernetes request: verb as the audit log has it
// (get, list, watch, create, update, patch, delete, deletecollection),
// group "" for core, namespace "" for cluster-scoped objects.
func (s Set) AllowsKube(c Cluster, vars map[string]string, verb, group, resource, namespace string, names ...string) bool {
	for _, n := range s.needs(names...) {
		for _, r := range n.Kube {
			if r.Cluster != c || (r.APIGroup != "*" && r.APIGroup != group) {
				continue
			}
			if !slices.Contains(r.Resources, resource) && !slices.Contains(r.Resources, "*") {
				continue
			}
			if !slices.Contains(r.Verbs, verb) && !slices.Contains(r.Verbs, "*") {
				continue
			}
			ns := Expand(r.Namespace, vars)
			if ns == "*" || ns == namespace {
				return true
			}
		}
	}
	return false
}

// VaultCapability is the capability a Vault request needs: the api
// client's methods by HTTP method (LIST is sent as GET ?list=true).
func VaultCapability(method string, list bool) []string {
	switch {
	case method == "LIST" || (method == "GET" && list):
		return []string{"list"}
	case method == "GET" || method == "HEAD":
		return []string{"read"}
	case method == "POST" || method == "PUT":
		return []string{"create", "update"} // either, depending on whether the path exists
	case method == "PATCH":
		return []string{"patch"}
	case method == "DELETE":
		return []string{"delete"}
	}
	return nil
}

// AllowsVault covers one Vault request: path without /v1/, capability
// wanted (one of caps suffices).
func (s Set) AllowsVault(vars map[string]string, path string, caps []string, names ...string) bool {
	if slices.Contains(caps, "list") && !strings.HasSuffix(path, "/") {
		path += "/" // Vault routes a list on a/b as a/b/
	}
	for _, n := range s.needs(names...) {
		for _, p := range n.Vault {
			if !VaultPathMatches(Expand(p.Path, vars), path) {
				continue
			}
			for _, c := range caps {
				if slices.Contains(p.Capabilities, c) {
					return true
				}
			}
		}
	}
	return false
}

// VaultPathMatches matches a policy path the way Vault does: a trailing *
// is a prefix glob, a + segment matches one segment; a list request on
// "a/b/" is matched by "a/b/" or "a/b/*".
func VaultPathMatches(pattern, path string) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return segmentsMatch(prefix, path, true)
	}
	return segmentsMatch(pattern, path, false) || segmentsMatch(pattern, strings.TrimSuffix(path, "/"), false)
}

func segmentsMatch(pattern, path string, prefix bool) bool {
	ps := strings.Split(pattern, "/")
	xs := strings.Split(path, "/")
	for i, p := range ps {
		if i >= len(xs) {
			return false
		}
		last := i == len(ps)-1
		switch {
		case p == "+":
		case last && prefix:
			return strings.HasPrefix(xs[i], p)
		case p != xs[i]:
			return false
		}
	}
	return prefix || len(xs) == len(ps)
}

// AllowsGitLab covers one GitLab request (path below /api/v4, unescaped).
func (s Set) AllowsGitLab(method, path string, names ...string) bool {
	for _, n := range s.needs(names...) {
		for _, c := range n.GitLab {
			if c.Method == method && GitLabPathMatches(c.Path, path) {
				return true
			}
		}
	}
	return false
}

// GitLabPathMatches matches "/projects/:id/repository/branches/:branch"
// against a request path; a :param matches one or more segments, since
// project paths and branch names hold slashes once unescaped.
func GitLabPathMatches(pattern, path string) bool {
	return matchSegs(strings.Split(strings.Trim(pattern, "/"), "/"), strings.Split(strings.Trim(path, "/"), "/"))
}

func matchSegs(ps, xs []string) bool {
	if len(ps) == 0 {
		return len(xs) == 0
	}
	if len(xs) == 0 {
		return false
	}
	if strings.HasPrefix(ps[0], ":") {
		for k := 1; k <= len(xs); k++ {
			if matchSegs(ps[1:], xs[k:]) {
				return true
			}
		}
		return false
	}
	return ps[0] == xs[0] && matchSegs(ps[1:], xs[1:])
}
