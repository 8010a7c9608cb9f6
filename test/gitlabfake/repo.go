package gitlabfake

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
)

func (s *Server) projectJSON(p *project) map[string]any {
	ns, name := "", p.PathWithNamespace
	if i := strings.LastIndex(p.PathWithNamespace, "/"); i >= 0 {
		ns, name = p.PathWithNamespace[:i], p.PathWithNamespace[i+1:]
	}
	web := s.srv.URL + "/" + p.PathWithNamespace
	return map[string]any{
		"id":                     p.ID,
		"description":            "",
		"name":                   name,
		"name_with_namespace":    strings.ReplaceAll(p.PathWithNamespace, "/", " / "),
		"path":                   name,
		"path_with_namespace":    p.PathWithNamespace,
		"default_branch":         p.DefaultBranch,
		"visibility":             "private",
		"web_url":                web,
		"http_url_to_repo":       web + ".git",
		"ssh_url_to_repo":        "git@127.0.0.1:" + p.PathWithNamespace + ".git",
		"readme_url":             nil,
		"topics":                 []string{},
		"created_at":             timeJSON(p.CreatedAt),
		"last_activity_at":       timeJSON(p.CreatedAt),
		"empty_repo":             false,
		"archived":               false,
		"merge_method":           p.mergeMethod,
		"approvals_before_merge": p.approvalsRequired,
		"namespace": map[string]any{
			"id": 1, "name": ns, "path": path.Base(ns), "kind": "group", "full_path": ns,
			"web_url": s.srv.URL + "/groups/" + ns,
		},
	}
}

func (s *Server) commitJSON(p *project, c *commit, withStats bool) map[string]any {
	parents := append([]string{}, c.parents...)
	out := map[string]any{
		"id":                c.id,
		"short_id":          c.id[:8],
		"title":             c.title(),
		"message":           c.message,
		"author_name":       c.authorName,
		"author_email":      c.authorEmail,
		"authored_date":     timeJSON(c.at),
		"committer_name":    c.authorName,
		"committer_email":   c.authorEmail,
		"committed_date":    timeJSON(c.at),
		"created_at":        timeJSON(c.at),
		"parent_ids":        parents,
		"web_url":           s.srv.URL + "/" + p.PathWithNamespace + "/-/commit/" + c.id,
		"trailers":          map[string]string{},
		"extended_trailers": map[string]string{},
		"status":            nil,
		"last_pipeline":     nil,
	}
	if withStats {
		adds, dels := 0, 0
		for _, d := range treeDiff(p.parentFiles(c), c.files) {
			adds += d.Additions
			dels += d.Deletions
		}
		out["stats"] = map[string]int{"additions": adds, "deletions": dels, "total": adds + dels}
	}
	return out
}

// parentFiles is the first parent's tree, or the empty tree for a root commit.
func (p *project) parentFiles(c *commit) map[string]file {
	if len(c.parents) == 0 {
		return map[string]file{}
	}
	return p.commits[c.parents[0]].files
}

func (s *Server) listTree(req *request, p *project) *response {
	if req.params.str("pagination") == "keyset" {
		return s.unexpectedf(http.StatusBadRequest, "%s %s: keyset pagination of the tree is not modelled", req.method, req.path)
	}
	c := p.resolve(req.params.str("ref"))
	if c == nil {
		return notFound("Tree")
	}
	dir := strings.Trim(req.params.str("path"), "/")
	if _, ok := c.dirIDs[dir]; !ok {
		return notFound("Tree")
	}
	recursive := req.params.boolean("recursive")
	inScope := func(p string) bool {
		rel := p
		if dir != "" {
			var ok bool
			if rel, ok = strings.CutPrefix(p, dir+"/"); !ok {
				return false
			}
		}
		return recursive || !strings.Contains(rel, "/")
	}
	type node struct {
		id, name, typ, path, mode string
	}
	var nodes []node
	for d, id := range c.dirIDs {
		if d != "" && inScope(d) {
			nodes = append(nodes, node{id, path.Base(d), "tree", d, "040000"})
		}
	}
	for fp, f := range c.files {
		if inScope(fp) {
			nodes = append(nodes, node{blobID(f.content), path.Base(fp), "blob", fp, f.mode()})
		}
	}
	sort.Slice(nodes, func(i, j int) bool {
		if !recursive && nodes[i].typ != nodes[j].typ {
			return nodes[i].typ == "tree" // trees first, as GitLab lists a directory
		}
		return nodes[i].path < nodes[j].path
	})
	start, end, header := s.paginate(req, len(nodes))
	out := []map[string]any{}
	for _, n := range nodes[start:end] {
		out = append(out, map[string]any{"id": n.id, "name": n.name, "type": n.typ, "path": n.path, "mode": n.mode})
	}
	return &response{status: http.StatusOK, body: out, header: header}
}

func (s *Server) fileHeaders(p *project, c *commit, ref, fp string, f file) http.Header {
	sum := sha256.Sum256([]byte(f.content))
	h := http.Header{}
	h.Set("X-Gitlab-Blob-Id", blobID(f.content))
	h.Set("X-Gitlab-Commit-Id", c.id)
	h.Set("X-Gitlab-Content-Sha256", hex.EncodeToString(sum[:]))
	h.Set("X-Gitlab-Encoding", "base64")
	h.Set("X-Gitlab-Execute-Filemode", strconv.FormatBool(f.exec))
	h.Set("X-Gitlab-File-Name", path.Base(fp))
	h.Set("X-Gitlab-File-Path", fp)
	h.Set("X-Gitlab-Last-Commit-Id", p.lastCommitFor(c, fp).id)
	h.Set("X-Gitlab-Ref", ref)
	h.Set("X-Gitlab-Size", strconv.Itoa(len(f.content)))
	return h
}

func (s *Server) getFile(req *request, p *project, fp string) *response {
	ref := req.params.str("ref")
	if ref == "" {
		return missingParams("ref")
	}
	c := p.resolve(ref)
	if c == nil {
		return notFound("Commit")
	}
	f, ok := c.files[fp]
	if !ok {
		return notFound("File")
	}
	header := s.fileHeaders(p, c, ref, fp, f)
	sum := sha256.Sum256([]byte(f.content))
	body := map[string]any{
		"file_name":        path.Base(fp),
		"file_path":        fp,
		"size":             len(f.content),
		"encoding":         "base64",
		"content":          base64.StdEncoding.EncodeToString([]byte(f.content)),
		"content_sha256":   hex.EncodeToString(sum[:]),
		"ref":              ref,
		"blob_id":          blobID(f.content),
		"commit_id":        c.id,
		"last_commit_id":   p.lastCommitFor(c, fp).id,
		"execute_filemode": f.exec,
	}
	return &response{status: http.StatusOK, body: body, header: header}
}

func (s *Server) getRawFile(req *request, p *project, fp string) *response {
	ref := req.params.str("ref")
	if ref == "" {
		ref = p.DefaultBranch
	}
	c := p.resolve(ref)
	if c == nil {
		return notFound("Commit")
	}
	f, ok := c.files[fp]
	if !ok {
		return notFound("File")
	}
	return &response{
		status: http.StatusOK, raw: []byte(f.content), rawType: "text/plain; charset=utf-8",
		header: s.fileHeaders(p, c, ref, fp, f),
	}
}

func (s *Server) branchJSON(p *project, name string) map[string]any {
	c := p.commits[p.branches[name]]
	isDefault := name == p.DefaultBranch
	merged := false
	if !isDefault {
		if head, ok := p.branches[p.DefaultBranch]; ok {
			merged = p.isAncestor(c.id, head)
		}
	}
	return map[string]any{
		"name":                 name,
		"commit":               s.commitJSON(p, c, false),
		"merged":               merged,
		"protected":            isDefault,
		"default":              isDefault,
		"developers_can_push":  false,
		"developers_can_merge": false,
		"can_push":             true,
		"web_url":              s.srv.URL + "/" + p.PathWithNamespace + "/-/tree/" + name,
	}
}

func (s *Server) listBranches(req *request, p *project) *response {
	search := req.params.str("search")
	var names []string
	for name := range p.branches {
		if matchSearch(name, search) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	start, end, header := s.paginate(req, len(names))
	out := []map[string]any{}
	for _, n := range names[start:end] {
		out = append(out, s.branchJSON(p, n))
	}
	return &response{status: http.StatusOK, body: out, header: header}
}

// matchSearch implements GitLab's branch search: ^prefix, suffix$, or substring.
func matchSearch(name, search string) bool {
	switch {
	case search == "":
		return true
	case strings.HasPrefix(search, "^"):
		return strings.HasPrefix(name, search[1:])
	case strings.HasSuffix(search, "$"):
		return strings.HasSuffix(name, search[:len(search)-1])
	}
	return strings.Contains(name, search)
}

func (s *Server) getBranch(p *project, name string) *response {
	if _, ok := p.branches[name]; !ok {
		return notFound("Branch")
	}
	return ok(s.branchJSON(p, name))
}

func (s *Server) createBranch(req *request, p *project) *response {
	var missing []string
	for _, k := range []string{"branch", "ref"} {
		if req.params.str(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return missingParams(missing...)
	}
	name, ref := req.params.str("branch"), req.params.str("ref")
	if !validBranchName(name) {
		return apiError(http.StatusBadRequest, "Branch name is invalid")
	}
	if _, exists := p.branches[name]; exists {
		return apiError(http.StatusBadRequest, "Branch already exists")
	}
	c := p.resolve(ref)
	if c == nil {
		return apiError(http.StatusBadRequest, "Invalid reference name: "+ref)
	}
	s.setBranch(p, name, c.id)
	return created(s.branchJSON(p, name))
}

func (s *Server) deleteBranch(p *project, name string) *response {
	if _, ok := p.branches[name]; !ok {
		return notFound("Branch")
	}
	if name == p.DefaultBranch {
		return apiError(http.StatusMethodNotAllowed, "Cannot remove HEAD branch")
	}
	s.setBranch(p, name, "")
	return noContent()
}

// validBranchName applies the git check-ref-format rules that matter here.
func validBranchName(name string) bool {
	if name == "" || name == "HEAD" || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "/") ||
		strings.HasSuffix(name, "/") || strings.HasSuffix(name, ".") || strings.HasSuffix(name, ".lock") ||
		strings.Contains(name, "..") || strings.Contains(name, "//") || strings.Contains(name, "@{") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(" ~^:?*[\\", r) {
			return false
		}
	}
	return true
}

func (s *Server) getCommit(req *request, p *project, ref string) *response {
	c := p.resolve(ref)
	if c == nil {
		return notFound("Commit")
	}
	stats := !req.params.has("stats") || req.params.boolean("stats")
	return ok(s.commitJSON(p, c, stats))
}

func (s *Server) getCommitDiff(req *request, p *project, ref string) *response {
	c := p.resolve(ref)
	if c == nil {
		return notFound("Commit")
	}
	return s.diffList(req, treeDiff(p.parentFiles(c), c.files))
}

func (s *Server) diffList(req *request, diffs []fileDiff) *response {
	start, end, header := s.paginate(req, len(diffs))
	out := []map[string]any{}
	for _, d := range diffs[start:end] {
		out = append(out, d.json())
	}
	return &response{status: http.StatusOK, body: out, header: header}
}

func (s *Server) listCommits(req *request, p *project) *response {
	ref := req.params.str("ref_name")
	c := p.resolve(ref)
	if c == nil {
		return notFound("Revision")
	}
	filter := strings.Trim(req.params.str("path"), "/")
	var list []*commit
	for _, h := range p.history(c.id) {
		if filter != "" && !touches(p.parentFiles(h), h.files, filter) {
			continue
		}
		list = append(list, h)
	}
	start, end, header := s.paginate(req, len(list))
	out := []map[string]any{}
	for _, h := range list[start:end] {
		out = append(out, s.commitJSON(p, h, req.params.boolean("with_stats")))
	}
	return &response{status: http.StatusOK, body: out, header: header}
}

// touches reports whether a path (file or directory) differs between trees.
func touches(a, b map[string]file, prefix string) bool {
	in := func(p string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }
	for p, f := range a {
		if in(p) && b[p] != f {
			return true
		}
	}
	for p := range b {
		if _, ok := a[p]; in(p) && !ok {
			return true
		}
	}
	return false
}

func (s *Server) compare(req *request, p *project) *response {
	var missing []string
	for _, k := range []string{"from", "to"} {
		if req.params.str(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return missingParams(missing...)
	}
	from, to := p.resolve(req.params.str("from")), p.resolve(req.params.str("to"))
	if from == nil || to == nil {
		return notFound("Ref")
	}
	baseFiles := from.files
	if !req.params.boolean("straight") {
		if base := p.mergeBase(from.id, to.id); base != nil {
			baseFiles = base.files
		} else {
			baseFiles = map[string]file{}
		}
	}
	inFrom := p.ancestors(from.id)
	var commits []*commit
	for _, c := range p.history(to.id) {
		if !inFrom[c.id] {
			commits = append(commits, c)
		}
	}
	// GitLab lists compare commits oldest first; "commit" is the newest.
	sort.Slice(commits, func(i, j int) bool { return commits[i].seq < commits[j].seq })
	commitList := []map[string]any{}
	for _, c := range commits {
		commitList = append(commitList, s.commitJSON(p, c, false))
	}
	var last any
	if len(commits) > 0 {
		last = s.commitJSON(p, commits[len(commits)-1], false)
	}
	diffs := []map[string]any{}
	for _, d := range treeDiff(baseFiles, to.files) {
		diffs = append(diffs, d.json())
	}
	return ok(map[string]any{
		"commit":           last,
		"commits":          commitList,
		"diffs":            diffs,
		"compare_timeout":  false,
		"compare_same_ref": from.id == to.id,
		"web_url": fmt.Sprintf("%s/%s/-/compare/%s...%s", s.srv.URL, p.PathWithNamespace,
			req.params.str("from"), req.params.str("to")),
	})
}

// commitAction is one entry of the actions list of POST repository/commits.
type commitAction struct {
	action       string
	filePath     string
	previousPath string
	content      string
	hasContent   bool
	encoding     string
	lastCommitID string
	exec         *bool
}

var validActions = map[string]bool{"create": true, "update": true, "delete": true, "move": true, "chmod": true}

func parseActions(raw any) ([]commitAction, *response) {
	list, ok := raw.([]any)
	if !ok {
		return nil, &response{status: http.StatusBadRequest, body: map[string]any{"error": "actions is invalid"}}
	}
	bad := func(format string, args ...any) *response {
		return &response{status: http.StatusBadRequest, body: map[string]any{"error": fmt.Sprintf(format, args...)}}
	}
	var out []commitAction
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok {
			return nil, bad("actions[%d] is invalid", i)
		}
		pa := params(m)
		a := commitAction{
			action: pa.str("action"), filePath: pa.str("file_path"), previousPath: pa.str("previous_path"),
			content: pa.str("content"), hasContent: pa.has("content"), encoding: pa.str("encoding"),
			lastCommitID: pa.str("last_commit_id"),
		}
		if a.action == "" {
			return nil, bad("actions[%d][action] is missing", i)
		}
		if !validActions[a.action] {
			return nil, bad("actions[%d][action] does not have a valid value", i)
		}
		if a.filePath == "" {
			return nil, bad("actions[%d][file_path] is missing", i)
		}
		if a.encoding != "" && a.encoding != "text" && a.encoding != "base64" {
			return nil, bad("actions[%d][encoding] does not have a valid value", i)
		}
		if pa.has("execute_filemode") {
			e := pa.boolean("execute_filemode")
			a.exec = &e
		}
		out = append(out, a)
	}
	return out, nil
}

// commitRequest is a validated commit to make on a branch.
type commitRequest struct {
	branch, message, startBranch, startSHA string
	force                                  bool
	authorName, authorEmail                string
	actions                                []commitAction
}

func (s *Server) createCommit(req *request, p *project) *response {
	var missing []string
	for _, k := range []string{"branch", "commit_message", "actions"} {
		if !req.params.has(k) || req.params.str(k) == "" && k != "actions" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return missingParams(missing...)
	}
	actions, bad := parseActions(req.params["actions"])
	if bad != nil {
		return bad
	}
	cr := commitRequest{
		branch: req.params.str("branch"), message: req.params.str("commit_message"),
		startBranch: req.params.str("start_branch"), startSHA: req.params.str("start_sha"),
		force: req.params.boolean("force"), actions: actions,
	}
	cr.authorName, cr.authorEmail = s.author(req)
	if req.params.has("start_project") {
		return s.unexpectedf(http.StatusBadRequest, "%s %s: start_project (forks) is not modelled", req.method, req.path)
	}
	c, errResp := s.commit(p, cr)
	if errResp != nil {
		return errResp
	}
	stats := !req.params.has("stats") || req.params.boolean("stats")
	return created(s.commitJSON(p, c, stats))
}

func (s *Server) author(req *request) (string, string) {
	name, email := req.params.str("author_name"), req.params.str("author_email")
	if name == "" {
		name = req.user.Username
	}
	if email == "" {
		email = req.user.Username + "@example.com"
	}
	return name, email
}

// commit applies all actions or none, like Files::MultiService.
func (s *Server) commit(p *project, cr commitRequest) (*commit, *response) {
	if !validBranchName(cr.branch) {
		return nil, apiError(http.StatusBadRequest, "Branch name is invalid")
	}
	if cr.startSHA == "" && cr.startBranch == "" {
		cr.startBranch = cr.branch
	}
	var base *commit
	if cr.startSHA != "" {
		base = p.commits[cr.startSHA]
		if base == nil {
			return nil, apiError(http.StatusBadRequest, fmt.Sprintf("Cannot find start_sha '%s'", cr.startSHA))
		}
	} else {
		id, ok := p.branches[cr.startBranch]
		if !ok {
			return nil, apiError(http.StatusBadRequest, "You can only create or edit files when you are on a branch")
		}
		base = p.commits[id]
	}
	different := cr.startSHA != "" || cr.startBranch != cr.branch
	if _, exists := p.branches[cr.branch]; different && exists && !cr.force {
		return nil, apiError(http.StatusBadRequest,
			fmt.Sprintf("A branch called '%s' already exists. Switch to that branch in order to make changes", cr.branch))
	}

	files := copyFiles(base.files)
	for _, a := range cr.actions {
		if msg := applyAction(p, base, files, a); msg != "" {
			return nil, apiError(http.StatusBadRequest, msg)
		}
	}
	c := s.newCommit(p, []string{base.id}, files, cr.message, cr.authorName, cr.authorEmail)
	s.setBranch(p, cr.branch, c.id)
	return c, nil
}

// applyAction changes files in place, or returns GitLab's error message.
func applyAction(p *project, base *commit, files map[string]file, a commitAction) string {
	fp, err := cleanPath(a.filePath)
	if err != "" {
		return err
	}
	content := a.content
	if a.encoding == "base64" {
		raw, decErr := base64.StdEncoding.DecodeString(a.content)
		if decErr != nil {
			return fmt.Sprintf("Invalid base64 content for %s", fp)
		}
		content = string(raw)
	}
	_, exists := files[fp]
	if a.lastCommitID != "" && (a.action == "update" || a.action == "delete" || a.action == "move") {
		check := fp
		if a.action == "move" && a.previousPath != "" {
			check, _ = cleanPath(a.previousPath)
		}
		if _, inBase := base.files[check]; inBase && p.lastCommitFor(base, check).id != a.lastCommitID {
			return "The file has changed since you started editing it: " + check
		}
	}
	switch a.action {
	case "create":
		if exists {
			return "A file with this name already exists"
		}
		if msg := pathClash(files, fp); msg != "" {
			return msg
		}
		f := file{content: content}
		if a.exec != nil {
			f.exec = *a.exec
		}
		files[fp] = f
	case "update":
		if !exists {
			return "A file with this name doesn't exist"
		}
		f := files[fp]
		f.content = content
		files[fp] = f
	case "delete":
		if !exists {
			return "A file with this name doesn't exist"
		}
		delete(files, fp)
	case "move":
		prev, perr := cleanPath(a.previousPath)
		if a.previousPath == "" {
			return "You must provide a previous_path when moving a file"
		}
		if perr != "" {
			return perr
		}
		old, ok := files[prev]
		if !ok {
			return "A file with this name doesn't exist"
		}
		if exists && prev != fp {
			return "A file with this name already exists"
		}
		delete(files, prev)
		if msg := pathClash(files, fp); msg != "" {
			return msg
		}
		if a.hasContent {
			old.content = content
		}
		files[fp] = old
	case "chmod":
		if !exists {
			return "A file with this name doesn't exist"
		}
		if a.exec != nil {
			f := files[fp]
			f.exec = *a.exec
			files[fp] = f
		}
	}
	return ""
}

func cleanPath(p string) (string, string) {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return "", "You must provide a file path"
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == ".." || seg == "." || seg == "" {
			return "", "Path cannot include directory traversal"
		}
	}
	return p, ""
}

// pathClash stops a file from shadowing a directory or sitting under a file.
func pathClash(files map[string]file, fp string) string {
	for d := parentDir(fp); d != ""; d = parentDir(d) {
		if _, ok := files[d]; ok {
			return "A file with this name already exists"
		}
	}
	for other := range files {
		if strings.HasPrefix(other, fp+"/") {
			return "A directory with this name already exists"
		}
	}
	return ""
}

// singleFileCommit serves POST/PUT/DELETE repository/files/:path.
func (s *Server) singleFileCommit(req *request, p *project, fp string) *response {
	required := []string{"branch", "commit_message"}
	action := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodDelete: "delete"}[req.method]
	if action != "delete" {
		required = append(required, "content")
	}
	var missing []string
	for _, k := range required {
		if !req.params.has(k) || (k != "content" && req.params.str(k) == "") {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return missingParams(missing...)
	}
	a := commitAction{
		action: action, filePath: fp, content: req.params.str("content"), hasContent: req.params.has("content"),
		encoding: req.params.str("encoding"), lastCommitID: req.params.str("last_commit_id"),
	}
	if req.params.has("execute_filemode") {
		e := req.params.boolean("execute_filemode")
		a.exec = &e
	}
	cr := commitRequest{
		branch: req.params.str("branch"), message: req.params.str("commit_message"),
		startBranch: req.params.str("start_branch"), actions: []commitAction{a},
	}
	cr.authorName, cr.authorEmail = s.author(req)
	if _, errResp := s.commit(p, cr); errResp != nil {
		return errResp
	}
	switch action {
	case "create":
		return created(map[string]any{"file_path": fp, "branch": cr.branch})
	case "update":
		return ok(map[string]any{"file_path": fp, "branch": cr.branch})
	}
	return noContent()
}
