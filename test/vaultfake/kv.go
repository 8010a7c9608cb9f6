package vaultfake

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// kvSecret is one KV v2 secret with its versions (index i is version i+1).
type kvSecret struct {
	versions []*kvVersion
}

type kvVersion struct {
	data    map[string]any
	created time.Time
	deleted time.Time
}

func (v *kvVersion) metadata(version int) map[string]any {
	deletion := ""
	if !v.deleted.IsZero() {
		deletion = v.deleted.UTC().Format(time.RFC3339Nano)
	}
	return map[string]any{
		"created_time":    v.created.UTC().Format(time.RFC3339Nano),
		"custom_metadata": nil,
		"deletion_time":   deletion,
		"destroyed":       false,
		"version":         version,
	}
}

// handleSecretPath serves requests under a secrets engine mount; only KV v2
// data reads/writes/deletes and metadata lists are modelled.
func (s *Server) handleSecretPath(req *request, m *secretMount, rest string) *response {
	if m.Type != "kv" || m.Options["version"] != "2" {
		return s.unexpectedf(http.StatusNotFound, "%s /v1/%s: secrets engine %q (type %s, options %v) is not modelled",
			req.method, req.path, m.Path, m.Type, m.Options)
	}
	switch {
	case strings.HasPrefix(rest, "data/"):
		p := strings.TrimPrefix(rest, "data/")
		switch req.op {
		case "read":
			return s.readKV(m, p, req.query.Get("version"))
		case "write":
			return s.writeKV(m, p, req.body)
		case "delete":
			if sec, ok := m.kv[p]; ok && len(sec.versions) > 0 {
				sec.versions[len(sec.versions)-1].deleted = time.Now()
			}
			return noContent()
		}
	case rest == "metadata" || strings.HasPrefix(rest, "metadata/"):
		if req.op == "list" {
			prefix := strings.TrimPrefix(strings.TrimPrefix(rest, "metadata"), "/")
			if prefix != "" {
				prefix += "/"
			}
			keys := kvChildren(m.kv, prefix)
			if len(keys) == 0 {
				return notFound()
			}
			return okData(map[string]any{"keys": keys})
		}
		return s.unexpectedf(http.StatusNotFound, "%s /v1/%s: KV v2 metadata %s is not modelled", req.method, req.path, req.op)
	default:
		return s.unexpectedf(http.StatusNotFound, "%s /v1/%s: KV v2 path %q is not modelled", req.method, req.path, rest)
	}
	return s.unsupported(req)
}

func (s *Server) readKV(m *secretMount, p, versionParam string) *response {
	sec, ok := m.kv[p]
	if !ok || len(sec.versions) == 0 {
		return notFound()
	}
	n := len(sec.versions)
	if versionParam != "" && versionParam != "0" {
		v, err := strconv.Atoi(versionParam)
		if err != nil {
			return badRequest("error converting input %s for field \"version\": %v", versionParam, err)
		}
		if v < 1 || v > n {
			return notFound()
		}
		n = v
	}
	v := sec.versions[n-1]
	if !v.deleted.IsZero() {
		// Vault answers 404 but still returns the version metadata.
		return &response{http.StatusNotFound, envelope(map[string]any{"data": nil, "metadata": v.metadata(n)}, nil)}
	}
	return okData(map[string]any{"data": copyMap(v.data), "metadata": v.metadata(n)})
}

func (s *Server) writeKV(m *secretMount, p string, body map[string]any) *response {
	data, ok := body["data"].(map[string]any)
	if !ok {
		return badRequest("no data provided")
	}
	sec := m.kv[p]
	if sec == nil {
		sec = &kvSecret{}
	}
	if opts, ok := body["options"].(map[string]any); ok {
		if raw, ok := opts["cas"]; ok {
			cas, err := coerce("cas", tInt, raw)
			if err != nil {
				return badRequest("%v", err)
			}
			if cas.(int64) != int64(len(sec.versions)) {
				return badRequest("check-and-set parameter did not match the current version")
			}
		}
	}
	sec.versions = append(sec.versions, &kvVersion{data: copyMap(data), created: time.Now()})
	m.kv[p] = sec
	n := len(sec.versions)
	return okData(sec.versions[n-1].metadata(n))
}

// kvChildren lists the direct children of prefix, folders with a trailing slash.
func kvChildren(kv map[string]*kvSecret, prefix string) []string {
	set := map[string]bool{}
	for p := range kv {
		rest, ok := strings.CutPrefix(p, prefix)
		if !ok || rest == "" {
			continue
		}
		if i := strings.Index(rest, "/"); i >= 0 {
			set[rest[:i+1]] = true
		} else {
			set[rest] = true
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// copyMap deep-copies a JSON-shaped map so callers cannot alias fake state.
func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	var out map[string]any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		return nil
	}
	return out
}
