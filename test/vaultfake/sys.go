package vaultfake

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// handleSysAuth serves sys/auth (list) and sys/auth/<path> (enable, read, disable).
func (s *Server) handleSysAuth(req *request) *response {
	if req.path == "sys/auth" {
		if req.op != "read" {
			return s.unsupported(req)
		}
		data := map[string]any{}
		for p, m := range s.authMounts {
			data[p] = authMountInfo(m)
		}
		// Vault also repeats the mounts at the top level of the body.
		body := envelope(data, nil)
		for p, v := range data {
			body[p] = v
		}
		return &response{http.StatusOK, body}
	}

	p := strings.TrimPrefix(req.path, "sys/auth/")
	if strings.HasSuffix(p, "/tune") {
		return s.unexpectedf(http.StatusNotFound, "%s /v1/%s: tuning auth mounts is not modelled", req.method, req.path)
	}
	mp := normalizeMountPath(p)
	switch req.op {
	case "read":
		m, ok := s.authMounts[mp]
		if !ok {
			return badRequest("No auth engine at %s", mp)
		}
		return okData(authMountInfo(m))
	case "write":
		typ := stringField(req.body, "type")
		if typ == "" {
			typ = stringField(req.body, "plugin_name")
		}
		if typ == "" {
			return badRequest("backend type must be specified as a string")
		}
		if typ == "token" {
			return badRequest("token credential backend cannot be instantiated")
		}
		if conflict := mountConflict(mp, s.authMountPaths()); conflict != "" {
			return badRequest("path is already in use at %s", conflict)
		}
		m := s.newAuthMount(mp, typ, stringField(req.body, "description"))
		m.Local, _ = req.body["local"].(bool)
		m.SealWrap, _ = req.body["seal_wrap"].(bool)
		m.Options = stringMap(req.body["options"])
		s.authMounts[mp] = m
		return noContent()
	case "delete":
		if mp == "token/" {
			return badRequest("token credential backend cannot be disabled")
		}
		delete(s.authMounts, mp)
		return noContent()
	}
	return s.unsupported(req)
}

// handleSysMounts serves sys/mounts, sys/mounts/<path> and sys/mounts/auth/<path>.
func (s *Server) handleSysMounts(req *request) *response {
	if req.path == "sys/mounts" {
		if req.op != "read" {
			return s.unsupported(req)
		}
		data := map[string]any{}
		for p, m := range s.secretMounts {
			data[p] = secretMountInfo(m)
		}
		body := envelope(data, nil)
		for p, v := range data {
			body[p] = v
		}
		return &response{http.StatusOK, body}
	}

	p := strings.TrimPrefix(req.path, "sys/mounts/")
	if strings.HasSuffix(p, "/tune") {
		return s.unexpectedf(http.StatusNotFound, "%s /v1/%s: tuning mounts is not modelled", req.method, req.path)
	}
	if ap, isAuth := strings.CutPrefix(p, "auth/"); isAuth {
		if req.op != "read" {
			return s.unsupported(req)
		}
		m, ok := s.authMounts[normalizeMountPath(ap)]
		if !ok {
			return badRequest("No auth engine at auth/%s", normalizeMountPath(ap))
		}
		return okData(authMountInfo(m))
	}

	mp := normalizeMountPath(p)
	switch req.op {
	case "read":
		m, ok := s.secretMounts[mp]
		if !ok {
			return badRequest("No secret engine mount at %s", mp)
		}
		return okData(secretMountInfo(m))
	case "write":
		typ := stringField(req.body, "type")
		if typ == "" {
			return badRequest("backend type must be specified as a string")
		}
		options := stringMap(req.body["options"])
		if typ == "kv-v2" {
			typ = "kv"
			options["version"] = "2"
		}
		for _, reserved := range []string{"auth/", "sys/", "cubbyhole/", "identity/"} {
			if strings.HasPrefix(mp, reserved) {
				return badRequest("cannot mount under %q", reserved)
			}
		}
		if conflict := mountConflict(mp, s.secretMountPaths()); conflict != "" {
			return badRequest("path is already in use at %s", conflict)
		}
		s.secretMounts[mp] = s.newSecretMount(mp, typ, stringField(req.body, "description"), options)
		return noContent()
	case "delete":
		switch mp {
		case "sys/", "cubbyhole/", "identity/":
			return badRequest("cannot unmount %q", mp)
		}
		delete(s.secretMounts, mp)
		return noContent()
	}
	return s.unsupported(req)
}

// handleSysPolicies serves sys/policies/acl (list) and sys/policies/acl/<name>.
func (s *Server) handleSysPolicies(req *request) *response {
	if req.path == "sys/policies/acl" {
		if req.op != "list" {
			return s.unsupported(req)
		}
		keys := []string{"root"}
		for name := range s.policies {
			keys = append(keys, name)
		}
		sort.Strings(keys)
		return okData(map[string]any{"keys": keys, "policies": keys})
	}

	name := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(req.path, "sys/policies/acl/")))
	switch req.op {
	case "read":
		if name == "root" {
			return okData(map[string]any{"name": "root", "policy": ""})
		}
		text, ok := s.policies[name]
		if !ok {
			return notFound()
		}
		return okData(map[string]any{"name": name, "policy": text})
	case "write":
		if name == "root" {
			return badRequest("cannot update %q policy", "root")
		}
		text := stringField(req.body, "policy")
		if strings.TrimSpace(text) == "" {
			return badRequest("'policy' parameter not supplied or empty")
		}
		if _, err := parsePolicy(text); err != nil {
			return badRequest("failed to parse policy: %v", err)
		}
		s.policies[name] = text
		return noContent()
	case "delete":
		if name == "root" || name == "default" {
			return badRequest("cannot delete %q policy", name)
		}
		delete(s.policies, name)
		return noContent()
	}
	return s.unsupported(req)
}

// handleCapabilities serves sys/capabilities-self and sys/capabilities. The
// answer for each path is "root" for a root token, otherwise the result of the
// token's ACL policies evaluated with Vault's path-priority rules (see acl.go),
// with ["deny"] when nothing matches.
func (s *Server) handleCapabilities(req *request) *response {
	if req.op != "write" {
		return s.unsupported(req)
	}
	token := stringField(req.body, "token")
	if token == "" {
		if req.path == "sys/capabilities" {
			return badRequest("missing token")
		}
		token = req.token
	}
	var paths []string
	if raw, ok := req.body["paths"]; ok {
		v, err := coerce("paths", tCommaStringSlice, raw)
		if err != nil {
			return badRequest("%v", err)
		}
		paths = v.([]string)
	}
	if p := stringField(req.body, "path"); p != "" {
		paths = append(paths, p)
	}
	if len(paths) == 0 {
		return badRequest("paths must be supplied")
	}
	policies, root, known := s.lookupToken(token)
	if !known {
		return badRequest("invalid token")
	}
	data := map[string]any{}
	for _, p := range paths {
		p = strings.TrimPrefix(p, "/")
		if root {
			data[p] = []string{"root"}
			continue
		}
		data[p] = s.capabilities(policies, p)
	}
	if len(paths) == 1 {
		data["capabilities"] = data[strings.TrimPrefix(paths[0], "/")]
	}
	body := envelope(data, nil)
	for k, v := range data {
		body[k] = v
	}
	return &response{http.StatusOK, body}
}

// unsupported answers an operation a known path does not support, the way
// Vault does (405), and records it as unexpected.
func (s *Server) unsupported(req *request) *response {
	s.unexpectedf(http.StatusMethodNotAllowed, "%s /v1/%s: %s is not supported on this path", req.method, req.path, req.op)
	return unsupportedOperation()
}

func authMountInfo(m *authMount) map[string]any {
	return map[string]any{
		"accessor":                m.Accessor,
		"config":                  mountConfigInfo(),
		"description":             m.Description,
		"external_entropy_access": false,
		"local":                   m.Local,
		"options":                 m.Options,
		"plugin_version":          "",
		"running_plugin_version":  "v0.0.0+builtin",
		"running_sha256":          "",
		"seal_wrap":               m.SealWrap,
		"type":                    m.Type,
		"uuid":                    m.UUID,
		"deprecation_status":      "supported",
	}
}

func secretMountInfo(m *secretMount) map[string]any {
	return map[string]any{
		"accessor":                m.Accessor,
		"config":                  mountConfigInfo(),
		"description":             m.Description,
		"external_entropy_access": false,
		"local":                   false,
		"options":                 m.Options,
		"plugin_version":          "",
		"running_plugin_version":  "v0.0.0+builtin",
		"running_sha256":          "",
		"seal_wrap":               false,
		"type":                    m.Type,
		"uuid":                    m.UUID,
		"deprecation_status":      "supported",
	}
}

func mountConfigInfo() map[string]any {
	return map[string]any{"default_lease_ttl": 0, "max_lease_ttl": 0, "force_no_cache": false, "token_type": "default-service"}
}

func (s *Server) authMountPaths() []string {
	var out []string
	for p := range s.authMounts {
		out = append(out, p)
	}
	return out
}

func (s *Server) secretMountPaths() []string {
	var out []string
	for p := range s.secretMounts {
		out = append(out, p)
	}
	return out
}

// mountConflict returns the existing mount path that overlaps mp, as Vault's
// router refuses a mount equal to, inside, or above another one.
func mountConflict(mp string, existing []string) string {
	sort.Strings(existing)
	for _, e := range existing {
		if strings.HasPrefix(mp, e) || strings.HasPrefix(e, mp) {
			return e
		}
	}
	return ""
}

func normalizeMountPath(p string) string {
	return strings.Trim(p, "/") + "/"
}

func stringField(body map[string]any, key string) string {
	switch v := body[key].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

func stringMap(v any) map[string]string {
	out := map[string]string{}
	if m, ok := v.(map[string]any); ok {
		for k, val := range m {
			out[k] = fmt.Sprint(val)
		}
	}
	return out
}
