package gitlabfake

import (
	"net/http"
	"slices"
	"time"
)

// Token scopes and project access levels. Unless a test sets them, a token
// has the "api" scope and its user is a Maintainer of every project, so
// tests that do not care keep working as before.

type tokenInfo struct {
	name   string
	scopes []string
}

type accessKey struct {
	project int64
	user    int64
}

// Access levels, as GitLab numbers them.
const (
	AccessGuest      = 10
	AccessReporter   = 20
	AccessDeveloper  = 30
	AccessMaintainer = 40
	AccessOwner      = 50
)

// SetTokenScopes gives token (already registered) these scopes. A token
// without "api" gets 403 insufficient_scope on any write, and without
// "api" or "read_api" on any read, as GitLab answers.
func (s *Server) SetTokenScopes(token string, scopes ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[token]
	if !ok {
		s.t.Fatalf("gitlabfake: SetTokenScopes: unknown token")
	}
	if s.tokens == nil {
		s.tokens = map[int64]*tokenInfo{}
	}
	s.tokens[u.ID] = &tokenInfo{name: "drbot", scopes: slices.Clone(scopes)}
}

// SetAccessLevel makes the user (an id from AddToken/AddUser) a member of
// project with level (AccessDeveloper …); 0 removes the membership.
func (s *Server) SetAccessLevel(project string, user int64, level int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookupProject(project)
	if p == nil {
		s.t.Fatalf("gitlabfake: SetAccessLevel: no project %q", project)
	}
	if s.access == nil {
		s.access = map[accessKey]int64{}
	}
	s.access[accessKey{p.ID, user}] = level
}

func (s *Server) scopesOf(u *user) []string {
	if t, ok := s.tokens[u.ID]; ok {
		return t.scopes
	}
	return []string{"api"}
}

func (s *Server) accessLevel(p *project, u *user) int64 {
	if l, ok := s.access[accessKey{p.ID, u.ID}]; ok {
		return l
	}
	return AccessMaintainer
}

// checkScope refuses a call the token's scopes do not cover.
func (s *Server) checkScope(req *request) *response {
	scopes := s.scopesOf(req.user)
	if slices.Contains(scopes, "api") {
		return nil
	}
	read := req.method == http.MethodGet || req.method == http.MethodHead
	if read && slices.Contains(scopes, "read_api") {
		return nil
	}
	if read && len(req.segs) == 2 && req.segs[0] == "personal_access_tokens" && req.segs[1] == "self" {
		return nil // any token may read itself
	}
	return &response{status: http.StatusForbidden, body: map[string]any{
		"error": "insufficient_scope", "error_description": "The request requires higher privileges than provided by the access token.", "scope": "api"}}
}

func (s *Server) tokenJSON(u *user) map[string]any {
	name := "drbot"
	if t, ok := s.tokens[u.ID]; ok {
		name = t.name
	}
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	return map[string]any{
		"id": 900 + u.ID, "name": name, "revoked": false, "created_at": timeJSON(created), "description": "",
		"scopes": s.scopesOf(u), "user_id": u.ID, "last_used_at": nil, "active": true, "expires_at": "2027-01-01",
	}
}

func (s *Server) permissionsJSON(p *project, u *user) map[string]any {
	level := s.accessLevel(p, u)
	if level == 0 {
		return map[string]any{"project_access": nil, "group_access": nil}
	}
	return map[string]any{"project_access": map[string]any{"access_level": level, "notification_level": 3}, "group_access": nil}
}
