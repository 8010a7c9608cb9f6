// Package gitlabfake is a stateful stand-in for the GitLab REST v4 endpoints
// drbot uses (projects, repository tree/files/branches/commits/compare, merge
// requests with approvals and notes), driven by the real
// gitlab.com/gitlab-org/api/client-go client in tests.
//
// The repository is a small git model: every commit is a full snapshot of the
// file tree with its parents, and commit, tree and blob ids are real git
// object ids (SHA-1) computed from that content. Merges are three-way merges
// on whole files, so two branches changing the same file differently
// conflict.
//
// Fidelity notes (where the fake knowingly simplifies GitLab):
//   - Every registered token may do everything; there are no project members,
//     roles or protected-branch push rules. The author of a merge request may
//     not approve it (GitLab's default "prevent approval by author").
//   - Approvals are one project-wide "approvals required" count; approvals are
//     reset when the source branch moves (GitLab's "reset approvals on push").
//   - No pipelines, system notes, discussions, labels or milestones; keyset
//     pagination is not modelled (offset pagination is).
//   - Merge methods "merge" (default, always a merge commit) and "ff"; for a
//     fast-forward merge merge_commit_sha is set to the new target head.
//   - A new project starts with one empty commit on its default branch.
//
// Any request the fake does not understand is answered 404/405, recorded in
// Unexpected, and fails the test at cleanup unless AllowUnexpected was called.
package gitlabfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Call is one request the fake received. Tokens and bodies are not kept.
type Call struct {
	Method string
	Path   string // unescaped path below /api/v4, e.g. /projects/1/repository/commits
	Query  string
	Status int
	// UserAgent names the drbot step making the call (recovery.StepFromUserAgent).
	UserAgent string
}

// Server is the GitLab stand-in. All methods are safe for concurrent use.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu              sync.Mutex
	users           map[string]*user // token -> user
	nextUserID      int64
	projects        map[int64]*project
	nextProjectID   int64
	nextMRID        int64
	nextNoteID      int64
	commitSeq       int64
	subs            map[subKey][]chan string
	tokens          map[int64]*tokenInfo // user id -> its token's scopes (see tokens.go)
	access          map[accessKey]int64  // project member access levels (see tokens.go)
	calls           []Call
	unexpected      []string
	allowUnexpected bool
}

type user struct {
	ID       int64
	Username string
}

type subKey struct {
	project int64
	branch  string
}

// New starts a GitLab stand-in on loopback and closes it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:             t,
		users:         map[string]*user{},
		nextUserID:    1,
		projects:      map[int64]*project{},
		nextProjectID: 1,
		nextMRID:      1000,
		nextNoteID:    5000,
		subs:          map[subKey][]chan string{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(func() {
		s.srv.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		for k, chans := range s.subs {
			for _, ch := range chans {
				close(ch)
			}
			delete(s.subs, k)
		}
		if len(s.unexpected) > 0 && !s.allowUnexpected {
			t.Errorf("gitlabfake: %d unexpected request(s):\n  %s", len(s.unexpected), strings.Join(s.unexpected, "\n  "))
		}
	})
	return s
}

// URL is the server root; give the client gitlab.WithBaseURL(URL()+"/api/v4").
func (s *Server) URL() string { return s.srv.URL }

// AddToken registers a token (PRIVATE-TOKEN or Bearer) for a new user named
// "user<id>" and returns the user id.
func (s *Server) AddToken(token string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUserLocked(token, "")
}

// AddUser registers a token for a new user with the given username and
// returns the user id.
func (s *Server) AddUser(token, username string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addUserLocked(token, username)
}

func (s *Server) addUserLocked(token, username string) int64 {
	id := s.nextUserID
	s.nextUserID++
	if username == "" {
		username = fmt.Sprintf("user%d", id)
	}
	s.users[token] = &user{ID: id, Username: username}
	return id
}

// Calls returns every request received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Unexpected lists the requests the fake did not understand.
func (s *Server) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// AllowUnexpected stops the fake from failing the test at cleanup because of
// unexpected requests; use it in tests that probe unsupported calls on purpose.
func (s *Server) AllowUnexpected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowUnexpected = true
}

// request is one decoded API call.
type request struct {
	method string
	path   string   // unescaped, below /api/v4
	segs   []string // unescaped path segments below /api/v4
	params params
	user   *user
	r      *http.Request
}

// response is what a handler returns.
type response struct {
	status  int
	body    any    // JSON-encoded unless raw is set
	raw     []byte // written as-is with rawType
	rawType string
	header  http.Header
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.injectFault(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()

	req, resp := s.decode(r)
	if resp == nil {
		resp = s.route(req)
	}
	s.calls = append(s.calls, Call{Method: r.Method, Path: req.path, Query: r.URL.RawQuery, Status: resp.status, UserAgent: r.UserAgent()})

	for k, vs := range resp.header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	switch {
	case resp.raw != nil:
		w.Header().Set("Content-Type", resp.rawType)
		w.WriteHeader(resp.status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(resp.raw)
		}
	case resp.body == nil:
		w.WriteHeader(resp.status)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.status)
		if r.Method != http.MethodHead {
			_ = json.NewEncoder(w).Encode(resp.body)
		}
	}
}

func (s *Server) decode(r *http.Request) (*request, *response) {
	req := &request{method: r.Method, r: r}
	escaped, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/")
	if !ok {
		req.path = r.URL.Path
		return req, s.unexpectedf(http.StatusNotFound, "%s %s: not under /api/v4/", r.Method, r.URL.Path)
	}
	for _, seg := range strings.Split(escaped, "/") {
		u, err := url.PathUnescape(seg)
		if err != nil {
			req.path = r.URL.Path
			return req, s.unexpectedf(http.StatusBadRequest, "%s %s: bad escaping: %v", r.Method, r.URL.Path, err)
		}
		req.segs = append(req.segs, u)
	}
	req.path = "/" + strings.Join(req.segs, "/")

	token := r.Header.Get("Private-Token")
	if token == "" {
		token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	u, known := s.users[token]
	if token == "" || !known {
		return req, &response{status: http.StatusUnauthorized, body: message("401 Unauthorized")}
	}
	req.user = u
	if resp := s.checkScope(req); resp != nil {
		return req, resp
	}

	p, err := parseParams(r)
	if err != nil {
		return req, &response{status: http.StatusBadRequest, body: map[string]any{"error": err.Error()}}
	}
	req.params = p
	return req, nil
}

func (s *Server) route(req *request) *response {
	segs := req.segs
	switch {
	case len(segs) == 1 && segs[0] == "user" && req.method == http.MethodGet:
		return ok(s.userJSON(req.user))
	case len(segs) == 2 && segs[0] == "personal_access_tokens" && segs[1] == "self" && req.method == http.MethodGet:
		return ok(s.tokenJSON(req.user))
	case len(segs) >= 2 && segs[0] == "projects":
		p := s.lookupProject(segs[1])
		if p == nil {
			return notFound("Project")
		}
		return s.routeProject(req, p, segs[2:])
	}
	return s.unexpectedf(http.StatusNotFound, "%s %s: no such endpoint in the fake", req.method, req.path)
}

func (s *Server) routeProject(req *request, p *project, segs []string) *response {
	m := req.method
	is := func(method string, want ...string) bool {
		if m != method && !(method == http.MethodGet && m == http.MethodHead) {
			return false
		}
		if len(segs) != len(want) {
			return false
		}
		for i, w := range want {
			if w != "*" && segs[i] != w {
				return false
			}
		}
		return true
	}
	get, post, put, del := http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete

	switch {
	case is(get):
		body := s.projectJSON(p)
		body["permissions"] = s.permissionsJSON(p, req.user)
		return ok(body)
	case is(get, "repository", "tree"):
		return s.listTree(req, p)
	case is(get, "repository", "files", "*", "raw"):
		return s.getRawFile(req, p, segs[2])
	case is(get, "repository", "files", "*"):
		return s.getFile(req, p, segs[2])
	case is(post, "repository", "files", "*"), is(put, "repository", "files", "*"), is(del, "repository", "files", "*"):
		return s.singleFileCommit(req, p, segs[2])
	case is(get, "repository", "branches"):
		return s.listBranches(req, p)
	case is(post, "repository", "branches"):
		return s.createBranch(req, p)
	case is(get, "repository", "branches", "*"):
		return s.getBranch(p, segs[2])
	case is(del, "repository", "branches", "*"):
		return s.deleteBranch(p, segs[2])
	case is(get, "repository", "commits"):
		return s.listCommits(req, p)
	case is(post, "repository", "commits"):
		return s.createCommit(req, p)
	case is(get, "repository", "commits", "*"):
		return s.getCommit(req, p, segs[2])
	case is(get, "repository", "commits", "*", "diff"):
		return s.getCommitDiff(req, p, segs[2])
	case is(get, "repository", "compare"):
		return s.compare(req, p)
	case is(get, "merge_requests"):
		return s.listMergeRequests(req, p)
	case is(post, "merge_requests"):
		return s.createMergeRequest(req, p)
	}

	if len(segs) >= 2 && segs[0] == "merge_requests" {
		iid, err := strconv.ParseInt(segs[1], 10, 64)
		if err != nil || iid < 1 || iid > int64(len(p.mrs)) {
			return notFound("Merge Request")
		}
		mr := p.mrs[iid-1]
		switch {
		case is(get, "merge_requests", "*"):
			return ok(s.mrJSON(p, mr, true, req.user))
		case is(put, "merge_requests", "*"):
			return s.updateMergeRequest(req, p, mr)
		case is(put, "merge_requests", "*", "merge"):
			return s.acceptMergeRequest(req, p, mr)
		case is(get, "merge_requests", "*", "changes"):
			return s.mergeRequestChanges(req, p, mr)
		case is(get, "merge_requests", "*", "diffs"):
			return s.mergeRequestDiffs(req, p, mr)
		case is(get, "merge_requests", "*", "notes"):
			return s.listNotes(req, p, mr)
		case is(post, "merge_requests", "*", "notes"):
			return s.createNote(req, p, mr)
		case is(get, "merge_requests", "*", "approvals"):
			return ok(s.approvalsJSON(p, mr, req.user))
		case is(post, "merge_requests", "*", "approve"):
			return s.approve(req, p, mr)
		case is(post, "merge_requests", "*", "unapprove"):
			return s.unapprove(req, p, mr)
		case is(get, "merge_requests", "*", "approval_state"):
			return ok(s.approvalStateJSON(p, mr))
		}
	}
	return s.unexpectedf(http.StatusNotFound, "%s %s: no such project endpoint in the fake", req.method, req.path)
}

// unexpectedf records a request the fake does not understand.
func (s *Server) unexpectedf(status int, format string, args ...any) *response {
	msg := fmt.Sprintf(format, args...)
	s.unexpected = append(s.unexpected, msg)
	return &response{status: status, body: message("gitlabfake: unexpected request: " + msg)}
}

func (s *Server) lookupProject(id string) *project {
	if n, err := strconv.ParseInt(id, 10, 64); err == nil {
		return s.projects[n]
	}
	for _, p := range s.projects {
		if strings.EqualFold(p.PathWithNamespace, id) {
			return p
		}
	}
	return nil
}

// mustProject finds a project for a seed helper or fails the test.
func (s *Server) mustProject(project string) *project {
	s.t.Helper()
	p := s.lookupProject(project)
	if p == nil {
		s.t.Fatalf("gitlabfake: no project %q", project)
	}
	return p
}

func (s *Server) userJSON(u *user) map[string]any {
	if u == nil {
		return nil
	}
	return map[string]any{
		"id": u.ID, "username": u.Username, "name": u.Username, "state": "active",
		"avatar_url": "", "web_url": s.srv.URL + "/" + u.Username,
	}
}

func ok(body any) *response { return &response{status: http.StatusOK, body: body} }

func created(body any) *response { return &response{status: http.StatusCreated, body: body} }

func noContent() *response { return &response{status: http.StatusNoContent} }

func message(msg any) map[string]any { return map[string]any{"message": msg} }

// apiError is GitLab's render_api_error!: {"message": msg}.
func apiError(status int, msg any) *response {
	return &response{status: status, body: message(msg)}
}

func notFound(what string) *response {
	return apiError(http.StatusNotFound, "404 "+what+" Not Found")
}

// missingParams is Grape's answer for absent required parameters.
func missingParams(names ...string) *response {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " is missing"
	}
	return &response{status: http.StatusBadRequest, body: map[string]any{"error": strings.Join(parts, ", ")}}
}

// params merges query-string, form and JSON body parameters, as Grape does.
type params map[string]any

func parseParams(r *http.Request) (params, error) {
	p := params{}
	for k, v := range r.URL.Query() {
		if len(v) == 1 && !strings.HasSuffix(k, "[]") {
			p[k] = v[0]
		} else {
			p[strings.TrimSuffix(k, "[]")] = anySlice(v)
		}
	}
	if r.Body == nil {
		return p, nil
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return p, nil
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := url.ParseQuery(string(raw))
		if err != nil {
			return nil, fmt.Errorf("parsing form body: %w", err)
		}
		for k, v := range form {
			p[k] = v[0]
		}
		return p, nil
	}
	var body map[string]any
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	if err := dec.Decode(&body); err != nil {
		return nil, fmt.Errorf("body is not valid JSON: %v", err)
	}
	for k, v := range body {
		p[k] = v
	}
	return p, nil
}

func anySlice(v []string) []any {
	out := make([]any, len(v))
	for i, s := range v {
		out[i] = s
	}
	return out
}

func (p params) has(k string) bool {
	v, ok := p[k]
	return ok && v != nil
}

func (p params) str(k string) string {
	switch v := p[k].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

func (p params) boolean(k string) bool {
	switch v := p[k].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	case json.Number:
		return v.String() != "0"
	}
	return false
}

func (p params) integer(k string, def int64) int64 {
	switch v := p[k].(type) {
	case json.Number:
		if n, err := v.Int64(); err == nil {
			return n
		}
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return def
}

// paginate applies GitLab offset pagination (page, per_page; default 20, max
// 100) and sets the X-* and Link headers the client reads.
func (s *Server) paginate(req *request, total int) (start, end int, header http.Header) {
	page := req.params.integer("page", 1)
	if page < 1 {
		page = 1
	}
	perPage := req.params.integer("per_page", 20)
	if perPage < 1 {
		perPage = 20
	}
	if perPage > 100 {
		perPage = 100
	}
	totalPages := (int64(total) + perPage - 1) / perPage
	if totalPages == 0 {
		totalPages = 1
	}
	header = http.Header{}
	header.Set("X-Page", strconv.FormatInt(page, 10))
	header.Set("X-Per-Page", strconv.FormatInt(perPage, 10))
	header.Set("X-Total", strconv.Itoa(total))
	header.Set("X-Total-Pages", strconv.FormatInt(totalPages, 10))
	header.Set("X-Next-Page", "")
	header.Set("X-Prev-Page", "")

	link := func(pg int64, rel string) string {
		u := *req.r.URL
		q := u.Query()
		q.Set("page", strconv.FormatInt(pg, 10))
		q.Set("per_page", strconv.FormatInt(perPage, 10))
		u.RawQuery = q.Encode()
		return fmt.Sprintf("<%s%s>; rel=%q", s.srv.URL, u.RequestURI(), rel)
	}
	var links []string
	if page > 1 {
		header.Set("X-Prev-Page", strconv.FormatInt(page-1, 10))
		links = append(links, link(page-1, "prev"))
	}
	if page < totalPages {
		header.Set("X-Next-Page", strconv.FormatInt(page+1, 10))
		links = append(links, link(page+1, "next"))
	}
	links = append(links, link(1, "first"), link(totalPages, "last"))
	header.Set("Link", strings.Join(links, ", "))

	start = int((page - 1) * perPage)
	if start > total {
		start = total
	}
	end = start + int(perPage)
	if end > total {
		end = total
	}
	return start, end, header
}

// timeJSON formats times like GitLab (UTC, milliseconds).
func timeJSON(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
