package gitlabfake

import (
	"sort"
	"time"
)

// AddProject creates a project whose default branch (default "main") holds
// one empty commit, and returns its id. Projects are addressable by id or by
// path with namespace, in the API and in the seed helpers.
func (s *Server) AddProject(pathWithNamespace, defaultBranch string) int64 {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lookupProject(pathWithNamespace) != nil {
		s.t.Fatalf("gitlabfake: project %q already exists", pathWithNamespace)
	}
	if defaultBranch == "" {
		defaultBranch = "main"
	}
	p := &project{
		ID: s.nextProjectID, PathWithNamespace: pathWithNamespace, DefaultBranch: defaultBranch,
		CreatedAt: time.Now().UTC(), branches: map[string]string{}, commits: map[string]*commit{},
		mergeMethod: "merge", resetApprovalsOnPush: true,
	}
	s.nextProjectID++
	s.projects[p.ID] = p
	c := s.newCommit(p, nil, map[string]file{}, "Initial commit", "gitlabfake", "gitlabfake@example.com")
	s.setBranch(p, defaultBranch, c.id)
	return p.ID
}

// CommitFiles writes files (path -> content; created or overwritten) in one
// commit on branch, creating the branch from the default branch if needed,
// and returns the new commit id.
func (s *Server) CommitFiles(project, branch string, files map[string]string, msg string) string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	startID, ok := p.branches[branch]
	if !ok {
		startID = p.branches[p.DefaultBranch]
	}
	tree := copyFiles(p.commits[startID].files)
	for fp, content := range files {
		clean, bad := cleanPath(fp)
		if bad != "" {
			s.t.Fatalf("gitlabfake: CommitFiles %q: %s", fp, bad)
		}
		f := tree[clean]
		f.content = content
		tree[clean] = f
	}
	c := s.newCommit(p, []string{startID}, tree, msg, "gitlabfake", "gitlabfake@example.com")
	s.setBranch(p, branch, c.id)
	return c.id
}

// File returns a file's content at ref (branch, "HEAD" or sha).
func (s *Server) File(project, ref, path string) (string, bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustProject(project).resolve(ref)
	if c == nil {
		return "", false
	}
	f, ok := c.files[path]
	return f.content, ok
}

// Files returns every file at ref (path -> content), or nil if ref is unknown.
func (s *Server) Files(project, ref string) map[string]string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mustProject(project).resolve(ref)
	if c == nil {
		return nil
	}
	out := make(map[string]string, len(c.files))
	for fp, f := range c.files {
		out[fp] = f.content
	}
	return out
}

// Branch returns the commit a branch points to.
func (s *Server) Branch(project, name string) (string, bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	sha, ok := s.mustProject(project).branches[name]
	return sha, ok
}

// Branches lists branch names, sorted.
func (s *Server) Branches(project string) []string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.mustProject(project).branches {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// MergeRequest is a snapshot of a merge request for assertions.
type MergeRequest struct {
	IID                 int64
	Title               string
	Description         string
	SourceBranch        string
	TargetBranch        string
	State               string // opened, closed, merged
	Author              string
	SHA                 string // source head (frozen at merge)
	MergeCommitSHA      string
	DetailedMergeStatus string
	HasConflicts        bool
	ApprovedBy          []string
	Notes               []string
	ChangedPaths        []string
}

// MergeRequest returns a snapshot of the merge request with the given iid.
func (s *Server) MergeRequest(project string, iid int64) (MergeRequest, bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	if iid < 1 || iid > int64(len(p.mrs)) {
		return MergeRequest{}, false
	}
	return snapshot(p, p.mrs[iid-1]), true
}

// MergeRequests returns snapshots of every merge request, by iid.
func (s *Server) MergeRequests(project string) []MergeRequest {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	out := make([]MergeRequest, 0, len(p.mrs))
	for _, mr := range p.mrs {
		out = append(out, snapshot(p, mr))
	}
	return out
}

func snapshot(p *project, mr *mergeRequest) MergeRequest {
	st := p.state(mr)
	out := MergeRequest{
		IID: mr.iid, Title: mr.title, Description: mr.description,
		SourceBranch: mr.source, TargetBranch: mr.target, State: mr.state,
		Author: mr.author.Username, SHA: st.sha, MergeCommitSHA: mr.mergeCommitSHA,
		DetailedMergeStatus: st.detailed, HasConflicts: st.hasConflicts,
	}
	for _, u := range mr.approvedBy {
		out.ApprovedBy = append(out.ApprovedBy, u.Username)
	}
	for _, n := range mr.notes {
		out.Notes = append(out.Notes, n.body)
	}
	for _, d := range st.changes {
		out.ChangedPaths = append(out.ChangedPaths, d.NewPath)
	}
	return out
}

// SetApprovalsRequired sets how many approvals every merge request of the
// project needs before it is mergeable.
func (s *Server) SetApprovalsRequired(project string, n int64) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(project).approvalsRequired = n
}

// SetMergeMethod selects "merge" (merge commit, the default) or "ff"
// (fast-forward only; a diverged source branch needs a rebase).
func (s *Server) SetMergeMethod(project, method string) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if method != "merge" && method != "ff" {
		s.t.Fatalf("gitlabfake: merge method %q is not modelled", method)
	}
	s.mustProject(project).mergeMethod = method
}

// SetResetApprovalsOnPush turns off (or back on) dropping approvals when the
// source branch of an open merge request moves.
func (s *Server) SetResetApprovalsOnPush(project string, reset bool) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mustProject(project).resetApprovalsOnPush = reset
}

// Subscribe returns a channel that receives the branch's new head sha on
// every change ("" when the branch is deleted). A slow reader loses older
// values, never the newest. The channel is closed when the test ends.
func (s *Server) Subscribe(project, branch string) <-chan string {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.mustProject(project)
	ch := make(chan string, 16)
	k := subKey{p.ID, branch}
	s.subs[k] = append(s.subs[k], ch)
	return ch
}

// ProjectID returns the id of a project given its path (or id as a string).
func (s *Server) ProjectID(project string) int64 {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mustProject(project).ID
}
