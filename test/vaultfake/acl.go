package vaultfake

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl"
	"github.com/hashicorp/hcl/hcl/ast"
)

// defaultPolicy is a trimmed copy of Vault's built-in "default" policy text.
const defaultPolicy = `# Allow tokens to look up their own properties
path "auth/token/lookup-self" {
    capabilities = ["read"]
}

# Allow a token to look up its own capabilities on a path
path "sys/capabilities-self" {
    capabilities = ["update"]
}
`

// pathRule is one path stanza of an ACL policy.
type pathRule struct {
	Policy       string   `hcl:"policy"`
	Capabilities []string `hcl:"capabilities"`
}

var validPathKeys = map[string]bool{
	"comment": true, "policy": true, "capabilities": true, "allowed_parameters": true,
	"denied_parameters": true, "required_parameters": true, "min_wrapping_ttl": true,
	"max_wrapping_ttl": true, "mfa_methods": true, "control_group": true, "subscribe_event_types": true,
}

var validCapabilities = map[string]bool{
	"create": true, "read": true, "update": true, "patch": true, "delete": true,
	"list": true, "sudo": true, "deny": true, "subscribe": true, "recover": true,
}

// parsePolicy parses ACL policy HCL into pattern -> capabilities. Parameter
// constraints are accepted and ignored: they do not change capabilities.
func parsePolicy(text string) (map[string][]string, error) {
	file, err := hcl.Parse(text)
	if err != nil {
		return nil, err
	}
	list, ok := file.Node.(*ast.ObjectList)
	if !ok {
		return nil, fmt.Errorf("policy does not contain a root object")
	}
	for _, item := range list.Items {
		if k := item.Keys[0].Token.Value().(string); k != "path" && k != "name" {
			return nil, fmt.Errorf("invalid key %q on line %d", k, item.Pos().Line)
		}
	}
	out := map[string][]string{}
	for _, item := range list.Filter("path").Items {
		if len(item.Keys) == 0 {
			return nil, fmt.Errorf("path stanza without a path on line %d", item.Pos().Line)
		}
		pattern := item.Keys[0].Token.Value().(string)
		obj, ok := item.Val.(*ast.ObjectType)
		if !ok {
			return nil, fmt.Errorf("path %q: not an object", pattern)
		}
		for _, kv := range obj.List.Items {
			if k := kv.Keys[0].Token.Value().(string); !validPathKeys[k] {
				return nil, fmt.Errorf("path %q: invalid key %q", pattern, k)
			}
		}
		var r pathRule
		if err := hcl.DecodeObject(&r, item.Val); err != nil {
			return nil, fmt.Errorf("path %q: %w", pattern, err)
		}
		caps := append([]string(nil), r.Capabilities...)
		switch r.Policy {
		case "":
		case "deny":
			caps = append(caps, "deny")
		case "read":
			caps = append(caps, "read", "list")
		case "write":
			caps = append(caps, "create", "read", "update", "delete", "list")
		case "sudo":
			caps = append(caps, "create", "read", "update", "delete", "list", "sudo")
		default:
			return nil, fmt.Errorf("path %q: invalid policy %q", pattern, r.Policy)
		}
		for _, c := range caps {
			if !validCapabilities[c] {
				return nil, fmt.Errorf("path %q: invalid capability %q", pattern, c)
			}
		}
		out[pattern] = append(out[pattern], caps...)
	}
	return out, nil
}

// capabilities evaluates the named policies for path like Vault's ACL: an
// exact rule wins; otherwise the highest-priority matching glob/"+" rule
// (see priorityLess); rules for the same pattern from several policies are
// merged; "deny" overrides everything.
func (s *Server) capabilities(policies []string, path string) []string {
	merged := map[string]map[string]bool{}
	for _, name := range policies {
		text, ok := s.policies[strings.ToLower(name)]
		if !ok {
			continue
		}
		rules, err := parsePolicy(text)
		if err != nil {
			continue // stored policies were validated on write
		}
		for pattern, caps := range rules {
			if merged[pattern] == nil {
				merged[pattern] = map[string]bool{}
			}
			for _, c := range caps {
				merged[pattern][c] = true
			}
		}
	}

	var caps map[string]bool
	if c, ok := merged[path]; ok && !strings.HasSuffix(path, "*") && !hasPlusSegment(path) {
		caps = c
	} else {
		var best string
		found := false
		for pattern := range merged {
			if !isWildcard(pattern) || !wildcardMatch(pattern, path) {
				continue
			}
			if !found || priorityLess(best, pattern) {
				best, found = pattern, true
			}
		}
		if found {
			caps = merged[best]
		}
	}
	if len(caps) == 0 || caps["deny"] {
		return []string{"deny"}
	}
	out := make([]string, 0, len(caps))
	for c := range caps {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// allowed reports whether a non-root token's policies permit req.
func (s *Server) allowed(policies []string, req *request) bool {
	switch req.path {
	case "sys/capabilities-self", "auth/token/lookup-self":
		return true // granted by Vault's default policy
	}
	aclPath := req.path
	if req.op == "list" {
		aclPath += "/" // Vault evaluates list requests against the path with a trailing slash
	}
	caps := map[string]bool{}
	for _, c := range s.capabilities(policies, aclPath) {
		caps[c] = true
	}
	var ok bool
	switch req.op {
	case "read":
		ok = caps["read"]
	case "list":
		ok = caps["list"]
	case "delete":
		ok = caps["delete"]
	case "write":
		ok = caps["create"] || caps["update"]
	}
	if ok && sudoPath.MatchString(req.path) {
		ok = caps["sudo"]
	}
	return ok
}

// sudoPath covers the sudo-protected paths drbot may touch (from the api
// package's sudo path list).
var sudoPath = regexp.MustCompile(`^sys/auth/.+$`)

func isWildcard(pattern string) bool {
	return strings.HasSuffix(pattern, "*") || hasPlusSegment(pattern)
}

func hasPlusSegment(pattern string) bool { return plusSegments(pattern) > 0 }

func plusSegments(pattern string) int {
	n := 0
	for seg := range strings.SplitSeq(pattern, "/") {
		if seg == "+" {
			n++
		}
	}
	return n
}

// wildcardMatch matches a pattern with "+" segments and an optional trailing
// "*" glob against path.
func wildcardMatch(pattern, path string) bool {
	glob := strings.HasSuffix(pattern, "*")
	pattern = strings.TrimSuffix(pattern, "*")
	ps := strings.Split(pattern, "/")
	xs := strings.Split(path, "/")
	if glob {
		if len(xs) < len(ps) {
			return false
		}
	} else if len(xs) != len(ps) {
		return false
	}
	for i, p := range ps {
		if i == len(ps)-1 && glob {
			if p == "+" || !strings.HasPrefix(xs[i], p) {
				return false // "+*" is not a meaningful pattern
			}
			continue
		}
		if p != "+" && xs[i] != p {
			return false
		}
	}
	return true
}

// priorityLess reports whether pattern a has lower priority than b, following
// Vault's documented rules: earlier first wildcard loses; a trailing "*" loses;
// more "+" segments lose; shorter loses; lexicographically smaller loses.
func priorityLess(a, b string) bool {
	fa, fb := firstWildcard(a), firstWildcard(b)
	if fa != fb {
		return fa < fb
	}
	ga, gb := strings.HasSuffix(a, "*"), strings.HasSuffix(b, "*")
	if ga != gb {
		return ga
	}
	pa, pb := plusSegments(a), plusSegments(b)
	if pa != pb {
		return pa > pb
	}
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func firstWildcard(p string) int {
	i := strings.IndexAny(p, "+*")
	if i < 0 {
		return len(p)
	}
	return i
}
