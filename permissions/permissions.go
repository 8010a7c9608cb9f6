// Package permissions is the vocabulary of what drbot touches: AWS actions
// with the resources they may act on, Kubernetes rules per cluster, Vault
// paths and capabilities, GitLab API calls with the token scope and project
// role they need, and Slack scopes. recovery/standard declares, next to the
// runbook table, what each step needs in these terms; the generated IAM
// policy, RBAC, Vault policy and runbook reference, the readiness permission
// checks and the call-log test all read that one declaration.
//
// Resource names in a declaration may hold ${PLACEHOLDERS} (see Vars); the
// generated artefacts keep them, readiness checks expand them from config.
package permissions

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Cluster names the Kubernetes cluster a rule applies to.
type Cluster string

const (
	// Management is the cluster Argo CD runs in (and drbot, usually).
	Management Cluster = "management"
	// DR is the cluster drbot creates (or scales up) in the DR region.
	DR Cluster = "dr"
)

// AWS is one statement: actions allowed on resources.
type AWS struct {
	// Actions are IAM actions, "service:Action" (never a wildcard).
	Actions []string
	// Resources are ARN patterns; nil means "*", which only actions in
	// Unscoped may have.
	Resources []string
	// Conditions narrow the statement further (e.g. iam:PassedToService).
	Conditions []Condition
	// Why says in a few words what drbot does with it.
	Why string
}

// Condition is one IAM condition: Operator{Key: Values}.
type Condition struct {
	Operator string // e.g. StringEquals
	Key      string // e.g. iam:PassedToService
	Values   []string
}

// KubeRule is one RBAC rule in one cluster.
type KubeRule struct {
	Cluster   Cluster
	APIGroup  string // "" is the core group; "*" any (only for Helm charts on the DR cluster)
	Resources []string
	Verbs     []string
	// Namespace is where the rule applies: "" cluster-scoped objects,
	// "*" any namespace, else one namespace (may be a ${PLACEHOLDER}).
	Namespace string
	Why       string
}

// VaultPath is a Vault policy path (globs as Vault has them: a trailing *
// is a prefix, + one segment) and the capabilities drbot uses there.
type VaultPath struct {
	Path         string
	Capabilities []string
	Why          string
}

// GitLabCall is one GitLab REST endpoint drbot calls ("/projects/:id/..."
// below /api/v4), the token scope it needs and the least project role.
type GitLabCall struct {
	Method string
	Path   string
	Scope  string // read_api or api
	Role   Role
}

// Role is a GitLab project role, ordered by what it may do.
type Role int

const (
	Guest Role = iota + 1
	Reporter
	Developer
	Maintainer
)

func (r Role) String() string {
	switch r {
	case Guest:
		return "Guest"
	case Reporter:
		return "Reporter"
	case Developer:
		return "Developer"
	case Maintainer:
		return "Maintainer"
	}
	return "none"
}

// Need is everything one step (or one part of drbot that is not a step)
// touches.
type Need struct {
	AWS    []AWS
	Kube   []KubeRule
	Vault  []VaultPath
	GitLab []GitLabCall
	Slack  []string
	// Outside lists what the step makes something else do with drbot's
	// credentials, so it cannot be declared action by action (a user's
	// Terraform module, the charts Helm installs).
	Outside []string
}

// Doc is the operator's reference for a step, generated into docs/runbook.md.
type Doc struct {
	Does       string // what it does
	Idempotent string // how a repeat or a resume is safe
	Gate       string // what the approval gate shows; "" when it has none
	Rollback   string // how to undo it by hand if drbot is unavailable
}

// Step is one runbook step's declaration.
type Step struct {
	ID    string
	Title string
	Phase string
	// DependsOn and Gate are copied from the runbook table.
	DependsOn []string
	Gate      string
	Drill     bool // runs only in drills
	OnAbort   bool // runs after an abort too (recovery.Step.OnAbort)
	Need      Need
	Doc       Doc
}

// Set is the whole declaration: the runbook's steps in table order and the
// needs of drbot's other parts (serve, state backup, rollback, plan, check).
type Set struct {
	Steps []Step
	Other map[string]Need
}

// Step returns a step's declaration.
func (s Set) Step(id string) (Step, bool) {
	for _, st := range s.Steps {
		if st.ID == id {
			return st, true
		}
	}
	return Step{}, false
}

// needs returns the needs of the named steps and other parts, or of all
// of them when names is empty.
func (s Set) needs(names ...string) []Need {
	var out []Need
	if len(names) == 0 {
		for _, st := range s.Steps {
			out = append(out, st.Need)
		}
		for _, k := range slices.Sorted(maps.Keys(s.Other)) {
			out = append(out, s.Other[k])
		}
		return out
	}
	for _, n := range names {
		if st, ok := s.Step(n); ok {
			out = append(out, st.Need)
		} else if o, ok := s.Other[n]; ok {
			out = append(out, o)
		}
	}
	return out
}

// AWSActions is the sorted, deduplicated list of IAM actions of the named
// steps (and other parts), or of everything: the input of the readiness
// SimulatePrincipalPolicy check.
func (s Set) AWSActions(names ...string) []string {
	seen := map[string]bool{}
	for _, n := range s.needs(names...) {
		for _, st := range n.AWS {
			for _, a := range st.Actions {
				seen[a] = true
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// AWSStatements are the statements of the named steps (or everything).
func (s Set) AWSStatements(names ...string) []AWS {
	var out []AWS
	for _, n := range s.needs(names...) {
		out = append(out, n.AWS...)
	}
	return out
}

// KubeRules are the merged rules drbot needs in one cluster: one rule per
// (namespace, group, resource), verbs unioned, sorted.
func (s Set) KubeRules(c Cluster) []KubeRule {
	type key struct{ ns, group, res string }
	verbs := map[key]map[string]bool{}
	for _, n := range s.needs() {
		for _, r := range n.Kube {
			if r.Cluster != c {
				continue
			}
			for _, res := range r.Resources {
				k := key{r.Namespace, r.APIGroup, res}
				if verbs[k] == nil {
					verbs[k] = map[string]bool{}
				}
				for _, v := range r.Verbs {
					verbs[k][v] = true
				}
			}
		}
	}
	keys := slices.Collect(maps.Keys(verbs))
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.ns != b.ns {
			return a.ns < b.ns
		}
		if a.group != b.group {
			return a.group < b.group
		}
		return a.res < b.res
	})
	var out []KubeRule
	for _, k := range keys {
		out = append(out, KubeRule{Cluster: c, Namespace: k.ns, APIGroup: k.group, Resources: []string{k.res}, Verbs: sortVerbs(verbs[k])})
	}
	return out
}

// verbOrder is how kubectl lists verbs; generated RBAC follows it.
var verbOrder = []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "*"}

func sortVerbs(set map[string]bool) []string {
	var out []string
	for _, v := range verbOrder {
		if set[v] {
			out = append(out, v)
		}
	}
	for _, v := range slices.Sorted(maps.Keys(set)) {
		if !slices.Contains(verbOrder, v) {
			out = append(out, v)
		}
	}
	return out
}

// VaultCapabilities maps each Vault path to the union of its capabilities,
// for the generated policy and the sys/capabilities-self check.
func (s Set) VaultCapabilities() map[string][]string {
	caps := map[string]map[string]bool{}
	for _, n := range s.needs() {
		for _, p := range n.Vault {
			if caps[p.Path] == nil {
				caps[p.Path] = map[string]bool{}
			}
			for _, c := range p.Capabilities {
				caps[p.Path][c] = true
			}
		}
	}
	out := map[string][]string{}
	for p, set := range caps {
		out[p] = sortCaps(set)
	}
	return out
}

var capOrder = []string{"create", "read", "update", "patch", "delete", "list", "sudo"}

func sortCaps(set map[string]bool) []string {
	var out []string
	for _, c := range capOrder {
		if set[c] {
			out = append(out, c)
		}
	}
	return out
}

// GitLabScopes are the personal/project access token scopes drbot needs
// and the least project role: api as soon as one call writes.
func (s Set) GitLabScopes() (scopes []string, role Role) {
	seen := map[string]bool{}
	for _, n := range s.needs() {
		for _, c := range n.GitLab {
			seen[c.Scope] = true
			role = max(role, c.Role)
		}
	}
	if seen["api"] {
		delete(seen, "read_api") // api includes it
	}
	return slices.Sorted(maps.Keys(seen)), role
}

// GitLabCalls are the declared endpoints of the named steps (or all).
func (s Set) GitLabCalls(names ...string) []GitLabCall {
	var out []GitLabCall
	for _, n := range s.needs(names...) {
		out = append(out, n.GitLab...)
	}
	return out
}

// SlackScopes are the bot scopes drbot needs, sorted.
func (s Set) SlackScopes() []string {
	seen := map[string]bool{}
	for _, n := range s.needs() {
		for _, sc := range n.Slack {
			seen[sc] = true
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// Vars are the placeholders declarations may hold, with what each stands
// for; generated artefacts keep them and say so.
var Vars = map[string]string{
	"ACCOUNT_ID":            "the AWS account of the DR cluster (12 digits)",
	"DR_REGION":             "targets[].dr.region",
	"DR_CLUSTER":            "targets[].dr.cluster_name",
	"API_REGION":            "the region of the API Gateway APIs the cutover moves (cutover.api_gateway_region)",
	"EKS_CLUSTER_ROLE_NAME": "the role name of targets[].cluster.eks.role_arn (EKS API provider)",
	"EKS_NODE_ROLE_NAME":    "the role name of targets[].cluster.eks.node_group.node_role_arn",
	"DRBOT_ROLE_NAME":       "the role name of targets[].drbot_role_arn (drbot's own role)",
	"STATE_BUCKET":          "state.backup.bucket",
	"ARGOCD_NAMESPACE":      "argocd.namespace (argocd)",
	"DRBOT_NAMESPACE":       "the namespace drbot runs in (drbot)",
	"VAULT_SOURCE_MOUNT":    "vault.source_mount (kubernetes)",
	"VAULT_TARGET_MOUNT":    "vault.target_mount, k8s-dr-{target} by default",
	"VAULT_LOGIN_MOUNT":     "vault.auth.mount, where drbot itself logs in",
	"NEWRELIC_KV_MOUNT":     "the KV v2 mount of vault.newrelic_key_path",
	"NEWRELIC_KV_PATH":      "the path below that mount of vault.newrelic_key_path",
	"OIDC_PROVIDER":         "the management cluster's OIDC issuer without https:// (IRSA only)",
}

// Expand replaces ${NAME} with vars[NAME]; unknown names stay.
func Expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			b.WriteString(s)
			return b.String()
		}
		name := s[i+2 : i+j]
		b.WriteString(s[:i])
		if v, ok := vars[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(s[i : i+j+1])
		}
		s = s[i+j+1:]
	}
}

// Placeholders lists the ${NAMES} s holds.
func Placeholders(s string) []string {
	var out []string
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, s[i+2:i+j])
		s = s[i+j+1:]
	}
}

// Validate checks a Set is well formed: step ids unique, every AWS action
// "service:Action" without a wildcard, "*" resources only for Unscoped
// actions, every placeholder known, Kubernetes rules with a cluster.
func (s Set) Validate() error {
	var errs []string
	seen := map[string]bool{}
	for _, st := range s.Steps {
		if seen[st.ID] {
			errs = append(errs, fmt.Sprintf("step %s declared twice", st.ID))
		}
		seen[st.ID] = true
	}
	check := func(where string, n Need) {
		for _, a := range n.AWS {
			for _, act := range a.Actions {
				svc, op, ok := strings.Cut(act, ":")
				if !ok || svc == "" || op == "" || strings.ContainsAny(act, "*?") {
					errs = append(errs, fmt.Sprintf("%s: action %q is not service:Action", where, act))
				}
				if len(a.Resources) == 0 && !IsUnscoped(act) {
					errs = append(errs, fmt.Sprintf("%s: %s supports resource-level permissions but has no resources", where, act))
				}
			}
			for _, r := range a.Resources {
				if r == "*" {
					errs = append(errs, fmt.Sprintf("%s: resource \"*\" is spelled as no resources", where))
				}
				for _, p := range Placeholders(r) {
					if _, ok := Vars[p]; !ok {
						errs = append(errs, fmt.Sprintf("%s: unknown placeholder ${%s} in %s", where, p, r))
					}
				}
			}
		}
		for _, r := range n.Kube {
			if r.Cluster != Management && r.Cluster != DR {
				errs = append(errs, fmt.Sprintf("%s: kube rule without a cluster", where))
			}
			if r.Cluster == Management && (r.APIGroup == "*" || slices.Contains(r.Resources, "*")) {
				errs = append(errs, fmt.Sprintf("%s: wildcard rule in the management cluster", where))
			}
		}
		for _, c := range n.GitLab {
			if c.Scope != "api" && c.Scope != "read_api" {
				errs = append(errs, fmt.Sprintf("%s: gitlab %s %s has scope %q", where, c.Method, c.Path, c.Scope))
			}
		}
	}
	for _, st := range s.Steps {
		check(st.ID, st.Need)
	}
	for _, k := range slices.Sorted(maps.Keys(s.Other)) {
		check(k, s.Other[k])
	}
	if len(errs) > 0 {
		return fmt.Errorf("permission declaration: %s", strings.Join(errs, "; "))
	}
	return nil
}
