package vaultfake

import (
	"sort"
	"strings"
	"time"
)

// EnableKubernetesAuth mounts a kubernetes auth method at auth/<mount>/. It is
// a no-op if one is already there; another type there fails the test.
func (s *Server) EnableKubernetesAuth(mount string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	mp := normalizeMountPath(mount)
	if m, ok := s.authMounts[mp]; ok {
		if m.Type != "kubernetes" {
			s.t.Fatalf("vaultfake: EnableKubernetesAuth(%q): a %s auth method is already mounted there", mount, m.Type)
		}
		return
	}
	if c := mountConflict(mp, s.authMountPaths()); c != "" {
		s.t.Fatalf("vaultfake: EnableKubernetesAuth(%q): path is already in use at %s", mount, c)
	}
	s.authMounts[mp] = s.newAuthMount(mp, "kubernetes", "")
}

// SetAuthConfig seeds auth/<mount>/config with the same validation as a write.
func (s *Server) SetAuthConfig(mount string, fields map[string]any) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.kubeMount(mount)
	if resp := s.writeKubeConfig(m, copyMap(fields)); resp.status >= 300 {
		s.t.Fatalf("vaultfake: SetAuthConfig(%q): %v", mount, resp.body)
	}
}

// PutRole creates or updates auth/<mount>/role/<name> with the same validation
// as a write through the API (fields as in the API: "1h" or 3600 for TTLs).
// The mount must be a kubernetes auth method; it is enabled if missing.
func (s *Server) PutRole(mount, name string, fields map[string]any) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.kubeMount(mount)
	key := strings.ToLower(name)
	r, _, err := writeRole(m.roles[key], copyMap(fields))
	if err != nil {
		s.t.Fatalf("vaultfake: PutRole(%q, %q): %v", mount, name, err)
	}
	m.roles[key] = r
}

// PutPolicy stores an ACL policy (HCL), validated like sys/policies/acl.
func (s *Server) PutPolicy(name, hcl string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := parsePolicy(hcl); err != nil {
		s.t.Fatalf("vaultfake: PutPolicy(%q): %v", name, err)
	}
	s.policies[strings.ToLower(name)] = hcl
}

// PutKV writes a new version of a KV v2 secret at <mount>/data/<path>,
// mounting a KV v2 engine at <mount>/ if nothing is there.
func (s *Server) PutKV(mount, path string, data map[string]any) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	mp := normalizeMountPath(mount)
	m, ok := s.secretMounts[mp]
	if !ok {
		m = s.newSecretMount(mp, "kv", "", map[string]string{"version": "2"})
		s.secretMounts[mp] = m
	}
	if m.Type != "kv" || m.Options["version"] != "2" {
		s.t.Fatalf("vaultfake: PutKV(%q): mount is %s %v, not KV v2", mount, m.Type, m.Options)
	}
	p := strings.Trim(path, "/")
	sec := m.kv[p]
	if sec == nil {
		sec = &kvSecret{}
		m.kv[p] = sec
	}
	sec.versions = append(sec.versions, &kvVersion{data: copyMap(data), created: time.Now()})
}

// Role returns the role as Vault would return it on read (TTLs as int64
// seconds), and whether it exists.
func (s *Server) Role(mount, name string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.authMounts[normalizeMountPath(mount)]
	if !ok {
		return nil, false
	}
	r, ok := m.roles[strings.ToLower(name)]
	if !ok {
		return nil, false
	}
	return r.read(), true
}

// Roles lists the role names on a kubernetes auth mount, sorted.
func (s *Server) Roles(mount string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.authMounts[normalizeMountPath(mount)]
	if !ok {
		return nil
	}
	out := make([]string, 0, len(m.roles))
	for k := range m.roles {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// AuthConfig returns the stored kubernetes auth config, including
// token_reviewer_jwt (which the API never returns), and whether it is set.
func (s *Server) AuthConfig(mount string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.authMounts[normalizeMountPath(mount)]
	if !ok || m.config == nil {
		return nil, false
	}
	out := map[string]any{}
	for k, v := range m.config {
		out[k] = v
	}
	return out, true
}

// Policy returns a stored ACL policy's HCL.
func (s *Server) Policy(name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[strings.ToLower(name)]
	return p, ok
}

// KV returns the latest live version of a KV v2 secret.
func (s *Server) KV(mount, path string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.secretMounts[normalizeMountPath(mount)]
	if !ok {
		return nil, false
	}
	sec, ok := m.kv[strings.Trim(path, "/")]
	if !ok || len(sec.versions) == 0 {
		return nil, false
	}
	v := sec.versions[len(sec.versions)-1]
	if !v.deleted.IsZero() {
		return nil, false
	}
	return copyMap(v.data), true
}

// Mounts lists every auth method and secrets engine, sorted by kind then path.
func (s *Server) Mounts() []Mount {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Mount
	for _, m := range s.authMounts {
		out = append(out, copyMount(m.Mount))
	}
	for _, m := range s.secretMounts {
		out = append(out, copyMount(m.Mount))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Auth != out[j].Auth {
			return out[i].Auth
		}
		return out[i].Path < out[j].Path
	})
	return out
}

func copyMount(m Mount) Mount {
	opts := map[string]string{}
	for k, v := range m.Options {
		opts[k] = v
	}
	m.Options = opts
	return m
}

// kubeMount returns the kubernetes auth mount at mount, enabling it if
// missing. Callers hold s.mu.
func (s *Server) kubeMount(mount string) *authMount {
	s.t.Helper()
	mp := normalizeMountPath(mount)
	m, ok := s.authMounts[mp]
	if !ok {
		m = s.newAuthMount(mp, "kubernetes", "")
		s.authMounts[mp] = m
	}
	if m.Type != "kubernetes" {
		s.t.Fatalf("vaultfake: auth/%s is a %s auth method, not kubernetes", mp, m.Type)
	}
	return m
}
