package gitlabfake

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

type mergeRequest struct {
	id, iid                int64
	title, description     string
	source, target         string
	state                  string // opened, closed, merged
	author                 *user
	createdAt, updatedAt   time.Time
	mergedAt, closedAt     time.Time
	mergedBy, closedBy     *user
	forceRemoveSource      bool
	squash                 bool
	approvedBy             []*user
	notes                  []*note
	mergeCommitSHA         string
	squashCommitSHA        string
	shouldRemoveSourceOnMR *bool

	// Frozen when the MR is merged, as GitLab keeps the merged diff.
	frozen *mrState
}

type note struct {
	id     int64
	body   string
	author *user
	at     time.Time
}

// mrState is the computed, branch-dependent part of a merge request.
type mrState struct {
	sha           string
	baseSHA       string
	startSHA      string
	changes       []fileDiff
	hasConflicts  bool
	canFF         bool
	detailed      string
	mergeStatus   string
	approvalsLeft int64
}

func isDraft(title string) bool {
	t := strings.ToLower(strings.TrimSpace(title))
	for _, prefix := range []string{"draft:", "[draft]", "(draft)", "draft -"} {
		if strings.HasPrefix(t, prefix) {
			return true
		}
	}
	return false
}

// state computes what GitLab would show for the MR now.
func (p *project) state(mr *mergeRequest) mrState {
	left := max(p.approvalsRequired-int64(len(mr.approvedBy)), 0)
	if mr.frozen != nil {
		st := *mr.frozen
		st.approvalsLeft = left
		return st
	}
	st := mrState{approvalsLeft: left}
	srcID, srcOK := p.branches[mr.source]
	tgtID, tgtOK := p.branches[mr.target]
	if srcOK {
		st.sha = srcID
	}
	if srcOK && tgtOK {
		st.startSHA = tgtID
		baseFiles := map[string]file{}
		if base := p.mergeBase(srcID, tgtID); base != nil {
			st.baseSHA = base.id
			baseFiles = base.files
		}
		src, tgt := p.commits[srcID], p.commits[tgtID]
		st.changes = treeDiff(baseFiles, src.files)
		_, conflicts := threeWayMerge(baseFiles, tgt.files, src.files)
		st.hasConflicts = len(conflicts) > 0
		st.canFF = p.isAncestor(tgtID, srcID)
	}
	switch {
	case mr.state != "opened":
		st.detailed = "not_open"
	case isDraft(mr.title):
		st.detailed = "draft_status"
	case !srcOK || !tgtOK:
		st.detailed = "broken_status"
	case st.hasConflicts:
		st.detailed = "conflict"
	case p.mergeMethod == "ff" && !st.canFF:
		st.detailed = "need_rebase"
	case left > 0:
		st.detailed = "not_approved"
	default:
		st.detailed = "mergeable"
	}
	st.mergeStatus = "can_be_merged"
	if st.hasConflicts || st.detailed == "broken_status" {
		st.mergeStatus = "cannot_be_merged"
	}
	return st
}

func (s *Server) mrJSON(p *project, mr *mergeRequest, full bool, viewer *user) map[string]any {
	st := p.state(mr)
	ref := fmt.Sprintf("!%d", mr.iid)
	optTime := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return timeJSON(t)
	}
	optUser := func(u *user) any {
		if u == nil {
			return nil
		}
		return s.userJSON(u)
	}
	optString := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	var shouldRemove any
	if mr.shouldRemoveSourceOnMR != nil {
		shouldRemove = *mr.shouldRemoveSourceOnMR
	}
	out := map[string]any{
		"id":                            mr.id,
		"iid":                           mr.iid,
		"project_id":                    p.ID,
		"title":                         mr.title,
		"description":                   mr.description,
		"state":                         mr.state,
		"created_at":                    timeJSON(mr.createdAt),
		"updated_at":                    timeJSON(mr.updatedAt),
		"merged_by":                     optUser(mr.mergedBy),
		"merge_user":                    optUser(mr.mergedBy),
		"merged_at":                     optTime(mr.mergedAt),
		"closed_by":                     optUser(mr.closedBy),
		"closed_at":                     optTime(mr.closedAt),
		"target_branch":                 mr.target,
		"source_branch":                 mr.source,
		"user_notes_count":              len(mr.notes),
		"upvotes":                       0,
		"downvotes":                     0,
		"author":                        s.userJSON(mr.author),
		"assignees":                     []any{},
		"assignee":                      nil,
		"reviewers":                     []any{},
		"source_project_id":             p.ID,
		"target_project_id":             p.ID,
		"labels":                        []string{},
		"draft":                         isDraft(mr.title),
		"work_in_progress":              isDraft(mr.title),
		"milestone":                     nil,
		"merge_when_pipeline_succeeds":  false,
		"merge_status":                  st.mergeStatus,
		"detailed_merge_status":         st.detailed,
		"sha":                           st.sha,
		"merge_commit_sha":              optString(mr.mergeCommitSHA),
		"squash_commit_sha":             optString(mr.squashCommitSHA),
		"discussion_locked":             nil,
		"should_remove_source_branch":   shouldRemove,
		"force_remove_source_branch":    mr.forceRemoveSource,
		"allow_collaboration":           false,
		"allow_maintainer_to_push":      false,
		"web_url":                       fmt.Sprintf("%s/%s/-/merge_requests/%d", s.srv.URL, p.PathWithNamespace, mr.iid),
		"references":                    map[string]string{"short": ref, "relative": ref, "full": p.PathWithNamespace + ref},
		"time_stats":                    map[string]any{"time_estimate": 0, "total_time_spent": 0},
		"squash":                        mr.squash,
		"squash_on_merge":               mr.squash,
		"task_completion_status":        map[string]int{"count": 0, "completed_count": 0},
		"has_conflicts":                 st.hasConflicts,
		"blocking_discussions_resolved": true,
		"imported":                      false,
		"imported_from":                 "none",
	}
	if full {
		out["subscribed"] = false
		out["changes_count"] = strconv.Itoa(len(st.changes))
		out["user"] = map[string]bool{"can_merge": viewer != nil && mr.state == "opened"}
		out["diff_refs"] = map[string]any{"base_sha": optString(st.baseSHA), "head_sha": optString(st.sha), "start_sha": optString(st.startSHA)}
		out["merge_error"] = nil
		out["first_contribution"] = false
		out["diverged_commits_count"] = 0
		out["rebase_in_progress"] = false
		out["pipeline"] = nil
		out["head_pipeline"] = nil
		out["latest_build_started_at"] = nil
		out["latest_build_finished_at"] = nil
		out["first_deployed_to_production_at"] = nil
	}
	return out
}

func (s *Server) listMergeRequests(req *request, p *project) *response {
	state := req.params.str("state")
	if state == "" {
		state = "all"
	}
	iids := map[string]bool{}
	if list, ok := req.params["iids"].([]any); ok {
		for _, v := range list {
			iids[fmt.Sprint(v)] = true
		}
	}
	search := strings.ToLower(req.params.str("search"))
	var list []*mergeRequest
	for _, mr := range p.mrs {
		switch {
		case state != "all" && mr.state != state:
		case req.params.has("source_branch") && mr.source != req.params.str("source_branch"):
		case req.params.has("target_branch") && mr.target != req.params.str("target_branch"):
		case len(iids) > 0 && !iids[strconv.FormatInt(mr.iid, 10)]:
		case search != "" && !strings.Contains(strings.ToLower(mr.title+" "+mr.description), search):
		default:
			list = append(list, mr)
		}
	}
	asc := req.params.str("sort") == "asc"
	byUpdated := req.params.str("order_by") == "updated_at"
	sort.SliceStable(list, func(i, j int) bool {
		a, b := list[i].createdAt, list[j].createdAt
		if byUpdated {
			a, b = list[i].updatedAt, list[j].updatedAt
		}
		if a.Equal(b) {
			a, b = time.Unix(list[i].iid, 0), time.Unix(list[j].iid, 0)
		}
		if asc {
			return a.Before(b)
		}
		return a.After(b)
	})
	start, end, header := s.paginate(req, len(list))
	out := []map[string]any{}
	for _, mr := range list[start:end] {
		out = append(out, s.mrJSON(p, mr, false, req.user))
	}
	return &response{status: http.StatusOK, body: out, header: header}
}

func (s *Server) createMergeRequest(req *request, p *project) *response {
	var missing []string
	for _, k := range []string{"source_branch", "target_branch", "title"} {
		if req.params.str(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return missingParams(missing...)
	}
	if req.params.has("target_project_id") && req.params.integer("target_project_id", 0) != p.ID {
		return s.unexpectedf(http.StatusBadRequest, "%s %s: merge requests across projects (forks) are not modelled", req.method, req.path)
	}
	src, tgt := req.params.str("source_branch"), req.params.str("target_branch")
	var base []string
	if src == tgt {
		base = append(base, "You must select different branches")
	}
	if _, ok := p.branches[src]; !ok {
		base = append(base, fmt.Sprintf("Source branch %q does not exist", src))
	}
	if _, ok := p.branches[tgt]; !ok {
		base = append(base, fmt.Sprintf("Target branch %q does not exist", tgt))
	}
	if len(base) > 0 {
		return apiError(http.StatusUnprocessableEntity, base)
	}
	if dup := p.openMR(src, tgt, 0); dup != nil {
		return apiError(http.StatusConflict, []string{fmt.Sprintf("Another open merge request already exists for this source branch: !%d", dup.iid)})
	}
	now := time.Now().UTC()
	mr := &mergeRequest{
		id: s.nextMRID, iid: int64(len(p.mrs)) + 1,
		title: req.params.str("title"), description: req.params.str("description"),
		source: src, target: tgt, state: "opened", author: req.user,
		createdAt: now, updatedAt: now,
		forceRemoveSource: req.params.boolean("remove_source_branch"),
		squash:            req.params.boolean("squash"),
	}
	s.nextMRID++
	p.mrs = append(p.mrs, mr)
	return created(s.mrJSON(p, mr, true, req.user))
}

// openMR finds another open MR for the same source and target branches.
func (p *project) openMR(src, tgt string, exceptIID int64) *mergeRequest {
	for _, mr := range p.mrs {
		if mr.iid != exceptIID && mr.state == "opened" && mr.source == src && mr.target == tgt {
			return mr
		}
	}
	return nil
}

func (s *Server) updateMergeRequest(req *request, p *project, mr *mergeRequest) *response {
	if mr.state == "merged" {
		return ok(s.mrJSON(p, mr, true, req.user))
	}
	if req.params.has("title") {
		mr.title = req.params.str("title")
	}
	if req.params.has("description") {
		mr.description = req.params.str("description")
	}
	if req.params.has("target_branch") {
		t := req.params.str("target_branch")
		if _, ok := p.branches[t]; !ok {
			return apiError(http.StatusUnprocessableEntity, []string{fmt.Sprintf("Target branch %q does not exist", t)})
		}
		mr.target = t
	}
	if req.params.has("remove_source_branch") {
		mr.forceRemoveSource = req.params.boolean("remove_source_branch")
	}
	if req.params.has("squash") {
		mr.squash = req.params.boolean("squash")
	}
	switch req.params.str("state_event") {
	case "close":
		if mr.state == "opened" {
			mr.state, mr.closedAt, mr.closedBy = "closed", time.Now().UTC(), req.user
		}
	case "reopen":
		if mr.state == "closed" {
			if dup := p.openMR(mr.source, mr.target, mr.iid); dup != nil {
				return apiError(http.StatusConflict, []string{fmt.Sprintf("Another open merge request already exists for this source branch: !%d", dup.iid)})
			}
			mr.state, mr.closedAt, mr.closedBy = "opened", time.Time{}, nil
		}
	case "":
	default:
		return &response{status: http.StatusBadRequest, body: map[string]any{"error": "state_event does not have a valid value"}}
	}
	mr.updatedAt = time.Now().UTC()
	return ok(s.mrJSON(p, mr, true, req.user))
}

// acceptMergeRequest follows the API's order: not mergeable -> 405, then a
// sha that is not the source head -> 409, then merge.
func (s *Server) acceptMergeRequest(req *request, p *project, mr *mergeRequest) *response {
	st := p.state(mr)
	if st.detailed != "mergeable" {
		return apiError(http.StatusMethodNotAllowed, "405 Method Not Allowed")
	}
	if sha := req.params.str("sha"); sha != "" && sha != st.sha {
		return apiError(http.StatusConflict, "SHA does not match HEAD of source branch: "+st.sha)
	}
	squash := mr.squash || req.params.boolean("squash")
	var removeSource *bool
	if req.params.has("should_remove_source_branch") {
		v := req.params.boolean("should_remove_source_branch")
		removeSource = &v
	}
	s.merge(p, mr, st, squash, req.params.str("merge_commit_message"), req.params.str("squash_commit_message"), removeSource, req.user)
	return ok(s.mrJSON(p, mr, true, req.user))
}

func (s *Server) merge(p *project, mr *mergeRequest, st mrState, squash bool, mergeMsg, squashMsg string, removeSource *bool, by *user) {
	src, tgt := p.commits[st.sha], p.commits[st.startSHA]
	baseFiles := map[string]file{}
	var baseParents []string
	if st.baseSHA != "" {
		baseFiles = p.commits[st.baseSHA].files
		baseParents = []string{st.baseSHA}
	}
	name, email := by.Username, by.Username+"@example.com"
	head := src
	if squash {
		if squashMsg == "" {
			squashMsg = mr.title
		}
		head = s.newCommit(p, baseParents, copyFiles(src.files), squashMsg, name, email)
		mr.squashCommitSHA = head.id
	}
	newTarget := head
	if p.mergeMethod != "ff" {
		merged, _ := threeWayMerge(baseFiles, tgt.files, head.files)
		if mergeMsg == "" {
			mergeMsg = fmt.Sprintf("Merge branch '%s' into '%s'\n\n%s\n\nSee merge request %s!%d",
				mr.source, mr.target, mr.title, p.PathWithNamespace, mr.iid)
		}
		newTarget = s.newCommit(p, []string{tgt.id, head.id}, merged, mergeMsg, name, email)
	}

	frozen := st
	mr.frozen = &frozen
	now := time.Now().UTC()
	mr.state, mr.mergedAt, mr.mergedBy, mr.updatedAt = "merged", now, by, now
	mr.mergeCommitSHA = newTarget.id
	mr.frozen.detailed = "not_open"
	s.setBranch(p, mr.target, newTarget.id)

	remove := mr.forceRemoveSource
	if removeSource != nil {
		remove = *removeSource
		mr.shouldRemoveSourceOnMR = removeSource
	}
	if remove && mr.source != p.DefaultBranch {
		s.setBranch(p, mr.source, "")
	}
}

func (s *Server) mergeRequestChanges(req *request, p *project, mr *mergeRequest) *response {
	out := s.mrJSON(p, mr, true, req.user)
	changes := []map[string]any{}
	for _, d := range p.state(mr).changes {
		changes = append(changes, d.json())
	}
	out["changes"] = changes
	out["overflow"] = false
	return ok(out)
}

func (s *Server) mergeRequestDiffs(req *request, p *project, mr *mergeRequest) *response {
	return s.diffList(req, p.state(mr).changes)
}

func (s *Server) noteJSON(p *project, mr *mergeRequest, n *note) map[string]any {
	return map[string]any{
		"id": n.id, "type": nil, "body": n.body, "attachment": nil,
		"author":     s.userJSON(n.author),
		"created_at": timeJSON(n.at), "updated_at": timeJSON(n.at),
		"system": false, "noteable_id": mr.id, "noteable_type": "MergeRequest", "noteable_iid": mr.iid,
		"project_id": p.ID, "resolvable": false, "confidential": false, "internal": false,
	}
}

func (s *Server) listNotes(req *request, p *project, mr *mergeRequest) *response {
	notes := append([]*note(nil), mr.notes...)
	if req.params.str("sort") != "asc" {
		sort.SliceStable(notes, func(i, j int) bool { return notes[i].id > notes[j].id })
	}
	start, end, header := s.paginate(req, len(notes))
	out := []map[string]any{}
	for _, n := range notes[start:end] {
		out = append(out, s.noteJSON(p, mr, n))
	}
	return &response{status: http.StatusOK, body: out, header: header}
}

func (s *Server) createNote(req *request, p *project, mr *mergeRequest) *response {
	body := req.params.str("body")
	if body == "" {
		return missingParams("body")
	}
	n := &note{id: s.nextNoteID, body: body, author: req.user, at: time.Now().UTC()}
	s.nextNoteID++
	mr.notes = append(mr.notes, n)
	mr.updatedAt = n.at
	return created(s.noteJSON(p, mr, n))
}

func (s *Server) approvalsJSON(p *project, mr *mergeRequest, viewer *user) map[string]any {
	st := p.state(mr)
	approvedBy := []map[string]any{}
	hasApproved := false
	for _, u := range mr.approvedBy {
		approvedBy = append(approvedBy, map[string]any{"user": s.userJSON(u)})
		if viewer != nil && u.ID == viewer.ID {
			hasApproved = true
		}
	}
	canApprove := viewer != nil && mr.state == "opened" && !hasApproved && viewer.ID != mr.author.ID
	return map[string]any{
		"id": mr.id, "iid": mr.iid, "project_id": p.ID, "title": mr.title, "description": mr.description,
		"state": mr.state, "created_at": timeJSON(mr.createdAt), "updated_at": timeJSON(mr.updatedAt),
		"merge_status":                      st.mergeStatus,
		"approved":                          st.approvalsLeft == 0,
		"approvals_required":                p.approvalsRequired,
		"approvals_left":                    st.approvalsLeft,
		"require_password_to_approve":       false,
		"approved_by":                       approvedBy,
		"suggested_approvers":               []any{},
		"approvers":                         []any{},
		"approver_groups":                   []any{},
		"user_has_approved":                 hasApproved,
		"user_can_approve":                  canApprove,
		"approval_rules_left":               []any{},
		"has_approval_rules":                p.approvalsRequired > 0,
		"merge_request_approvers_available": true,
		"multiple_approval_rules_available": false,
	}
}

func (s *Server) approvalStateJSON(p *project, mr *mergeRequest) map[string]any {
	rules := []map[string]any{}
	if p.approvalsRequired > 0 {
		approvedBy := []map[string]any{}
		for _, u := range mr.approvedBy {
			approvedBy = append(approvedBy, s.userJSON(u))
		}
		rules = append(rules, map[string]any{
			"id": 1, "name": "All Members", "rule_type": "any_approver", "report_type": nil,
			"eligible_approvers": []any{}, "approvals_required": p.approvalsRequired,
			"source_rule": nil, "users": []any{}, "groups": []any{}, "contains_hidden_groups": false,
			"section": nil, "approved_by": approvedBy,
			"approved": int64(len(mr.approvedBy)) >= p.approvalsRequired, "overridden": false,
		})
	}
	return map[string]any{"approval_rules_overwritten": false, "rules": rules}
}

func (s *Server) approve(req *request, p *project, mr *mergeRequest) *response {
	st := p.state(mr)
	if sha := req.params.str("sha"); sha != "" && sha != st.sha {
		return apiError(http.StatusConflict, "SHA does not match HEAD of source branch: "+st.sha)
	}
	if mr.state != "opened" || req.user.ID == mr.author.ID {
		return apiError(http.StatusUnauthorized, "401 Unauthorized")
	}
	for _, u := range mr.approvedBy {
		if u.ID == req.user.ID {
			return apiError(http.StatusUnauthorized, "401 Unauthorized")
		}
	}
	mr.approvedBy = append(mr.approvedBy, req.user)
	mr.updatedAt = time.Now().UTC()
	return created(s.approvalsJSON(p, mr, req.user))
}

func (s *Server) unapprove(req *request, p *project, mr *mergeRequest) *response {
	for i, u := range mr.approvedBy {
		if u.ID == req.user.ID {
			mr.approvedBy = append(mr.approvedBy[:i:i], mr.approvedBy[i+1:]...)
			return created(s.approvalsJSON(p, mr, req.user))
		}
	}
	return apiError(http.StatusNotFound, "404 Not Found")
}
