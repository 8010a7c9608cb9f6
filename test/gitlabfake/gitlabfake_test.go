package gitlabfake_test

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/test/gitlabfake"
)

const project = "platform/argocd-apps"

func newClient(t *testing.T, srv *gitlabfake.Server, token string) *gitlab.Client {
	t.Helper()
	c, err := gitlab.NewClient(token, gitlab.WithBaseURL(srv.URL()+"/api/v4"), gitlab.WithoutRetries())
	if err != nil {
		t.Fatalf("creating gitlab client: %v", err)
	}
	return c
}

func statusOf(t *testing.T, err error) int {
	t.Helper()
	if errors.Is(err, gitlab.ErrNotFound) {
		return http.StatusNotFound
	}
	var er *gitlab.ErrorResponse
	if !errors.As(err, &er) {
		t.Fatalf("error %v is not a *gitlab.ErrorResponse", err)
	}
	return er.Response.StatusCode
}

func createActions(n int, dir string) []*gitlab.CommitActionOptions {
	var actions []*gitlab.CommitActionOptions
	for i := range n {
		actions = append(actions, &gitlab.CommitActionOptions{
			Action:   gitlab.Ptr(gitlab.FileCreate),
			FilePath: gitlab.Ptr(fmt.Sprintf("%s/svc-%03d/application.yaml", dir, i)),
			Content:  gitlab.Ptr(fmt.Sprintf("kind: Application\nmetadata:\n  name: svc-%03d\n", i)),
		})
	}
	return actions
}

func TestTreeAndRawFileReadsPaginateLikeGitLab(t *testing.T) {
	srv := gitlabfake.New(t)
	pid := srv.AddProject(project, "main")
	files := map[string]string{"README.md": "hello\n"}
	for i := range 45 {
		files[fmt.Sprintf("apps/primary/svc-%02d.yaml", i)] = fmt.Sprintf("name: svc-%02d\n", i)
	}
	srv.CommitFiles(project, "main", files, "seed templates")
	srv.AddToken("made-up-token")
	c := newClient(t, srv, "made-up-token")

	// Walk the recursive tree page by page using the client's own pagination helper.
	var blobs []string
	pages := 0
	opt := &gitlab.ListTreeOptions{Path: gitlab.Ptr("apps"), Ref: gitlab.Ptr("main"), Recursive: gitlab.Ptr(true),
		ListOptions: gitlab.ListOptions{PerPage: 20}}
	var reqOpts []gitlab.RequestOptionFunc
	for {
		nodes, resp, err := c.Repositories.ListTree(pid, opt, reqOpts...)
		if err != nil {
			t.Fatalf("listing tree: %v", err)
		}
		pages++
		if resp.TotalItems != 46 || resp.TotalPages != 3 {
			t.Errorf("page %d: total items %d pages %d, want 46 and 3", pages, resp.TotalItems, resp.TotalPages)
		}
		for _, n := range nodes {
			if n.Type == "blob" {
				blobs = append(blobs, n.Path)
			}
		}
		next, more := gitlab.WithNext(resp)
		if !more {
			break
		}
		reqOpts = []gitlab.RequestOptionFunc{next}
	}
	if pages != 3 || len(blobs) != 45 {
		t.Fatalf("got %d blobs over %d pages, want 45 over 3", len(blobs), pages)
	}
	if !sort.StringsAreSorted(blobs) || blobs[0] != "apps/primary/svc-00.yaml" {
		t.Errorf("blobs not in path order: %v", blobs[:3])
	}

	// Offset pagination by page number works too.
	nodes, resp, err := c.Repositories.ListTree(pid, &gitlab.ListTreeOptions{Recursive: gitlab.Ptr(true),
		ListOptions: gitlab.ListOptions{PerPage: 100}})
	if err != nil || len(nodes) != 48 || resp.NextPage != 0 {
		t.Fatalf("whole tree: %d nodes next %d err %v, want 48 (README, 2 trees, 45 blobs)", len(nodes), resp.NextPage, err)
	}

	// A directory listing puts trees first, like GitLab.
	top, _, err := c.Repositories.ListTree(project, &gitlab.ListTreeOptions{})
	if err != nil || len(top) != 2 || top[0].Type != "tree" || top[0].Name != "apps" || top[0].Mode != "040000" || top[1].Path != "README.md" {
		t.Errorf("top level = %v, %v", top, err)
	}

	raw, _, err := c.RepositoryFiles.GetRawFile(project, "apps/primary/svc-07.yaml", &gitlab.GetRawFileOptions{Ref: gitlab.Ptr("main")})
	if err != nil || string(raw) != "name: svc-07\n" {
		t.Errorf("raw file = %q, %v", raw, err)
	}
	f, _, err := c.RepositoryFiles.GetFile(pid, "README.md", &gitlab.GetFileOptions{Ref: gitlab.Ptr("main")})
	if err != nil {
		t.Fatalf("getting file: %v", err)
	}
	// git hash-object of "hello\n": blob ids are real git ids.
	if f.BlobID != "ce013625030ba8dba906f756967f9e9ca394464a" || f.Encoding != "base64" || f.Content != "aGVsbG8K" {
		t.Errorf("file = %+v", f)
	}
	head, _ := srv.Branch(project, "main")
	if f.LastCommitID != head || f.CommitID != head {
		t.Errorf("last_commit_id %s commit_id %s, want head %s", f.LastCommitID, f.CommitID, head)
	}
	meta, _, err := c.RepositoryFiles.GetFileMetaData(pid, "README.md", &gitlab.GetFileMetaDataOptions{Ref: gitlab.Ptr("main")})
	if err != nil || meta.BlobID != f.BlobID || meta.Size != 6 {
		t.Errorf("file metadata = %+v, %v", meta, err)
	}
	if _, _, err := c.RepositoryFiles.GetRawFile(pid, "nope.yaml", nil); statusOf(t, err) != 404 {
		t.Errorf("missing file err = %v, want 404", err)
	}
}

func TestOneCommitOf150FilesMergesThroughAnMRWithTheRightSHA(t *testing.T) {
	srv := gitlabfake.New(t)
	pid := srv.AddProject(project, "main")
	srv.AddToken("made-up-token")
	c := newClient(t, srv, "made-up-token")
	mainHeads := srv.Subscribe(project, "main")

	commit, _, err := c.Commits.CreateCommit(pid, &gitlab.CreateCommitOptions{
		Branch:        gitlab.Ptr("dr/eks-dr-1"),
		StartBranch:   gitlab.Ptr("main"),
		CommitMessage: gitlab.Ptr("DR: Application templates for eks-dr-1"),
		Actions:       createActions(150, "apps/dr"),
	})
	if err != nil {
		t.Fatalf("creating commit: %v", err)
	}
	if commit.Stats == nil || commit.Stats.Additions != 450 || len(commit.ParentIDs) != 1 {
		t.Errorf("commit stats %+v parents %v, want 450 additions and one parent", commit.Stats, commit.ParentIDs)
	}
	if sha, ok := srv.Branch(project, "dr/eks-dr-1"); !ok || sha != commit.ID {
		t.Fatalf("branch head %s, want %s", sha, commit.ID)
	}

	mr, _, err := c.MergeRequests.CreateMergeRequest(pid, &gitlab.CreateMergeRequestOptions{
		SourceBranch: gitlab.Ptr("dr/eks-dr-1"), TargetBranch: gitlab.Ptr("main"),
		Title: gitlab.Ptr("DR: deploy to eks-dr-1"), RemoveSourceBranch: gitlab.Ptr(true),
	})
	if err != nil {
		t.Fatalf("creating merge request: %v", err)
	}
	got, _, err := c.MergeRequests.GetMergeRequest(project, mr.IID, nil)
	if err != nil {
		t.Fatalf("getting merge request: %v", err)
	}
	if got.State != "opened" || got.DetailedMergeStatus != "mergeable" || got.SHA != commit.ID || got.HasConflicts ||
		got.ChangesCount != "150" || got.DiffRefs.HeadSha != commit.ID || got.DiffRefs.BaseSha != commit.ParentIDs[0] ||
		!strings.HasSuffix(got.WebURL, "/platform/argocd-apps/-/merge_requests/1") {
		t.Fatalf("merge request = %+v", got)
	}

	// The source branch moves after the MR was read: the old SHA is stale.
	stale := got.SHA
	newHead := srv.CommitFiles(project, "dr/eks-dr-1", map[string]string{"apps/dr/extra.yaml": "x: 1\n"}, "one more")
	_, _, err = c.MergeRequests.AcceptMergeRequest(pid, mr.IID, &gitlab.AcceptMergeRequestOptions{SHA: gitlab.Ptr(stale)})
	if statusOf(t, err) != http.StatusConflict || !strings.Contains(err.Error(), "SHA does not match HEAD of source branch: "+newHead) {
		t.Fatalf("accept with stale sha: err = %v, want 409 naming the new head", err)
	}
	if m, _ := srv.MergeRequest(project, mr.IID); m.State != "opened" {
		t.Fatalf("merge request state after a refused merge = %s", m.State)
	}

	merged, _, err := c.MergeRequests.AcceptMergeRequest(pid, mr.IID, &gitlab.AcceptMergeRequestOptions{SHA: gitlab.Ptr(newHead)})
	if err != nil {
		t.Fatalf("accepting merge request: %v", err)
	}
	mainHead, _ := srv.Branch(project, "main")
	if merged.State != "merged" || merged.MergeCommitSHA != mainHead || merged.MergedAt == nil || merged.SHA != newHead {
		t.Errorf("merged MR = state %s merge_commit %s (main %s) sha %s", merged.State, merged.MergeCommitSHA, mainHead, merged.SHA)
	}
	mc, _, err := c.Commits.GetCommit(pid, mainHead, nil)
	if err != nil || len(mc.ParentIDs) != 2 || mc.ParentIDs[1] != newHead {
		t.Errorf("merge commit = %+v, %v; want parents [old main, %s]", mc, err, newHead)
	}
	files := srv.Files(project, "main")
	if len(files) != 151 || files["apps/dr/svc-149/application.yaml"] != "kind: Application\nmetadata:\n  name: svc-149\n" {
		t.Errorf("main has %d files after merge, want 151", len(files))
	}
	if _, ok := srv.Branch(project, "dr/eks-dr-1"); ok {
		t.Errorf("source branch kept although remove_source_branch was set")
	}
	select {
	case sha := <-mainHeads:
		if sha != mainHead {
			t.Errorf("subscriber got %s, want %s", sha, mainHead)
		}
	case <-time.After(time.Second):
		t.Errorf("no change notification for main")
	}

	if _, _, err := c.MergeRequests.AcceptMergeRequest(pid, mr.IID, nil); statusOf(t, err) != http.StatusMethodNotAllowed {
		t.Errorf("merging a merged MR: err = %v, want 405", err)
	}
}

func TestDuplicateOpenMergeRequestIsAConflict(t *testing.T) {
	srv := gitlabfake.New(t)
	pid := srv.AddProject(project, "main")
	srv.CommitFiles(project, "dr/x", map[string]string{"a.yaml": "a\n"}, "change")
	srv.AddToken("made-up-token")
	c := newClient(t, srv, "made-up-token")
	opts := &gitlab.CreateMergeRequestOptions{SourceBranch: gitlab.Ptr("dr/x"), TargetBranch: gitlab.Ptr("main"), Title: gitlab.Ptr("x")}
	first, _, err := c.MergeRequests.CreateMergeRequest(pid, opts)
	if err != nil {
		t.Fatalf("first merge request: %v", err)
	}
	_, _, err = c.MergeRequests.CreateMergeRequest(pid, opts)
	if statusOf(t, err) != http.StatusConflict || !strings.Contains(err.Error(), fmt.Sprintf("Another open merge request already exists for this source branch: !%d", first.IID)) {
		t.Errorf("duplicate: err = %v, want 409", err)
	}
	open, _, err := c.MergeRequests.ListProjectMergeRequests(pid, &gitlab.ListProjectMergeRequestsOptions{
		SourceBranch: gitlab.Ptr("dr/x"), State: gitlab.Ptr("opened")})
	if err != nil || len(open) != 1 || open[0].IID != first.IID {
		t.Errorf("open MRs for dr/x = %v, %v", open, err)
	}
	_, _, err = c.MergeRequests.CreateMergeRequest(pid, &gitlab.CreateMergeRequestOptions{
		SourceBranch: gitlab.Ptr("nope"), TargetBranch: gitlab.Ptr("main"), Title: gitlab.Ptr("x")})
	if statusOf(t, err) != http.StatusUnprocessableEntity {
		t.Errorf("MR from a missing branch: err = %v, want 422", err)
	}
}

func TestFailingActionAppliesNothing(t *testing.T) {
	srv := gitlabfake.New(t)
	pid := srv.AddProject(project, "main")
	before := srv.CommitFiles(project, "main", map[string]string{"apps/existing.yaml": "v1\n"}, "seed")
	srv.AddToken("made-up-token")
	c := newClient(t, srv, "made-up-token")

	_, _, err := c.Commits.CreateCommit(pid, &gitlab.CreateCommitOptions{
		Branch: gitlab.Ptr("main"), CommitMessage: gitlab.Ptr("two files"),
		Actions: []*gitlab.CommitActionOptions{
			{Action: gitlab.Ptr(gitlab.FileCreate), FilePath: gitlab.Ptr("apps/new.yaml"), Content: gitlab.Ptr("new\n")},
			{Action: gitlab.Ptr(gitlab.FileCreate), FilePath: gitlab.Ptr("apps/existing.yaml"), Content: gitlab.Ptr("v2\n")},
		},
	})
	if statusOf(t, err) != http.StatusBadRequest || !strings.Contains(err.Error(), "A file with this name already exists") {
		t.Fatalf("err = %v, want 400 A file with this name already exists", err)
	}
	if head, _ := srv.Branch(project, "main"); head != before {
		t.Errorf("main moved to %s after a failed commit", head)
	}
	if _, ok := srv.File(project, "main", "apps/new.yaml"); ok {
		t.Errorf("the first action was applied although the commit failed")
	}

	for _, tc := range []struct {
		action gitlab.FileActionValue
		path   string
	}{{gitlab.FileUpdate, "apps/missing.yaml"}, {gitlab.FileDelete, "apps/missing.yaml"}} {
		_, _, err := c.Commits.CreateCommit(pid, &gitlab.CreateCommitOptions{
			Branch: gitlab.Ptr("main"), CommitMessage: gitlab.Ptr("x"),
			Actions: []*gitlab.CommitActionOptions{{Action: gitlab.Ptr(tc.action), FilePath: gitlab.Ptr(tc.path), Content: gitlab.Ptr("x")}},
		})
		if statusOf(t, err) != http.StatusBadRequest || !strings.Contains(err.Error(), "A file with this name doesn't exist") {
			t.Errorf("%s on a missing file: err = %v", tc.action, err)
		}
	}

	// update, move and chmod in one commit, guarded by last_commit_id.
	moved, _, err := c.Commits.CreateCommit(pid, &gitlab.CreateCommitOptions{
		Branch: gitlab.Ptr("main"), CommitMessage: gitlab.Ptr("update and move"),
		Actions: []*gitlab.CommitActionOptions{
			{Action: gitlab.Ptr(gitlab.FileUpdate), FilePath: gitlab.Ptr("apps/existing.yaml"), Content: gitlab.Ptr("v2\n"), LastCommitID: gitlab.Ptr(before)},
			{Action: gitlab.Ptr(gitlab.FileMove), PreviousPath: gitlab.Ptr("apps/existing.yaml"), FilePath: gitlab.Ptr("apps/renamed.yaml")},
		},
	})
	if err != nil {
		t.Fatalf("update and move: %v", err)
	}
	if got, _ := srv.File(project, "main", "apps/renamed.yaml"); got != "v2\n" {
		t.Errorf("renamed file content = %q", got)
	}
	_, _, err = c.Commits.CreateCommit(pid, &gitlab.CreateCommitOptions{
		Branch: gitlab.Ptr("main"), CommitMessage: gitlab.Ptr("stale edit"),
		Actions: []*gitlab.CommitActionOptions{
			{Action: gitlab.Ptr(gitlab.FileUpdate), FilePath: gitlab.Ptr("apps/renamed.yaml"), Content: gitlab.Ptr("v3\n"), LastCommitID: gitlab.Ptr(before)},
		},
	})
	if statusOf(t, err) != http.StatusBadRequest || !strings.Contains(err.Error(), "changed since you started editing") {
		t.Errorf("update with a stale last_commit_id: err = %v", err)
	}
	// Content changed as well as the path, so (like git) the diff is a delete plus an add.
	cmp, _, err := c.Repositories.Compare(pid, &gitlab.CompareOptions{From: gitlab.Ptr(before), To: gitlab.Ptr(moved.ID)})
	if err != nil || len(cmp.Diffs) != 2 || !cmp.Diffs[0].DeletedFile || cmp.Diffs[0].Diff != "@@ -1 +0,0 @@\n-v1\n" ||
		!cmp.Diffs[1].NewFile || cmp.Diffs[1].NewPath != "apps/renamed.yaml" || len(cmp.Commits) != 1 || cmp.Commit.ID != moved.ID {
		t.Errorf("compare = %+v, %v", cmp, err)
	}
	// A pure move is reported as a rename; an edit as a hunk.
	final, _, err := c.Commits.CreateCommit(pid, &gitlab.CreateCommitOptions{
		Branch: gitlab.Ptr("main"), CommitMessage: gitlab.Ptr("move and edit"),
		Actions: []*gitlab.CommitActionOptions{
			{Action: gitlab.Ptr(gitlab.FileMove), PreviousPath: gitlab.Ptr("apps/renamed.yaml"), FilePath: gitlab.Ptr("apps/final.yaml")},
			{Action: gitlab.Ptr(gitlab.FileCreate), FilePath: gitlab.Ptr("apps/list.yaml"), Content: gitlab.Ptr("a\nb\nc\n")},
		},
	})
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	edit := srv.CommitFiles(project, "main", map[string]string{"apps/list.yaml": "a\nB\nc\n"}, "edit")
	cmp, _, err = c.Repositories.Compare(pid, &gitlab.CompareOptions{From: gitlab.Ptr(moved.ID), To: gitlab.Ptr(edit)})
	if err != nil || len(cmp.Diffs) != 2 || !cmp.Diffs[0].RenamedFile || cmp.Diffs[0].OldPath != "apps/renamed.yaml" ||
		cmp.Diffs[1].NewPath != "apps/list.yaml" || len(cmp.Commits) != 2 || cmp.Commits[0].ID != final.ID {
		t.Errorf("compare after move = %+v, %v", cmp, err)
	}
	diffs, _, err := c.Commits.GetCommitDiff(pid, edit, nil)
	if err != nil || len(diffs) != 1 || diffs[0].Diff != "@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n" {
		t.Errorf("commit diff = %+v, %v", diffs, err)
	}
}

func TestMergeRequestIsNotApprovedUntilAnotherUserApproves(t *testing.T) {
	srv := gitlabfake.New(t)
	pid := srv.AddProject(project, "main")
	srv.SetApprovalsRequired(project, 1)
	srv.CommitFiles(project, "dr/x", map[string]string{"a.yaml": "a\n"}, "change")
	srv.AddUser("made-up-bot-token", "drbot")
	srv.AddUser("made-up-reviewer-token", "reviewer")
	bot := newClient(t, srv, "made-up-bot-token")
	reviewer := newClient(t, srv, "made-up-reviewer-token")

	mr, _, err := bot.MergeRequests.CreateMergeRequest(pid, &gitlab.CreateMergeRequestOptions{
		SourceBranch: gitlab.Ptr("dr/x"), TargetBranch: gitlab.Ptr("main"), Title: gitlab.Ptr("x")})
	if err != nil {
		t.Fatalf("creating merge request: %v", err)
	}
	if mr.DetailedMergeStatus != "not_approved" {
		t.Errorf("status = %s, want not_approved", mr.DetailedMergeStatus)
	}
	if _, _, err := bot.MergeRequests.AcceptMergeRequest(pid, mr.IID, nil); statusOf(t, err) != http.StatusMethodNotAllowed {
		t.Errorf("merging an unapproved MR: err = %v, want 405", err)
	}
	if _, _, err := bot.MergeRequestApprovals.ApproveMergeRequest(pid, mr.IID, nil); statusOf(t, err) != http.StatusUnauthorized {
		t.Errorf("author approving own MR: err = %v, want 401", err)
	}
	appr, _, err := reviewer.MergeRequestApprovals.ApproveMergeRequest(pid, mr.IID, &gitlab.ApproveMergeRequestOptions{SHA: gitlab.Ptr(mr.SHA)})
	if err != nil {
		t.Fatalf("approving: %v", err)
	}
	if !appr.Approved || appr.ApprovalsLeft != 0 || len(appr.ApprovedBy) != 1 || appr.ApprovedBy[0].User.Username != "reviewer" {
		t.Errorf("approvals after approve = %+v", appr)
	}
	conf, _, err := bot.MergeRequestApprovals.GetConfiguration(pid, mr.IID)
	if err != nil || conf.ApprovalsRequired != 1 || !conf.Approved {
		t.Errorf("approval configuration = %+v, %v", conf, err)
	}
	got, _, err := bot.MergeRequests.GetMergeRequest(pid, mr.IID, nil)
	if err != nil || got.DetailedMergeStatus != "mergeable" {
		t.Fatalf("status after approval = %v, %v", got.DetailedMergeStatus, err)
	}

	// A push to the source branch drops the approval, as GitLab does by default.
	srv.CommitFiles(project, "dr/x", map[string]string{"b.yaml": "b\n"}, "more")
	got, _, _ = bot.MergeRequests.GetMergeRequest(pid, mr.IID, nil)
	if got.DetailedMergeStatus != "not_approved" {
		t.Errorf("status after a push = %s, want not_approved", got.DetailedMergeStatus)
	}

	note, _, err := bot.Notes.CreateMergeRequestNote(pid, mr.IID, &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr("Waiting for approval in Slack")})
	if err != nil || note.Body != "Waiting for approval in Slack" || note.Author.Username != "drbot" {
		t.Errorf("note = %+v, %v", note, err)
	}
	if snap, _ := srv.MergeRequest(project, mr.IID); len(snap.Notes) != 1 {
		t.Errorf("notes = %v", snap.Notes)
	}
}

func TestConflictingChangesBlockTheMerge(t *testing.T) {
	srv := gitlabfake.New(t)
	pid := srv.AddProject(project, "main")
	srv.CommitFiles(project, "main", map[string]string{"values.yaml": "replicas: 1\n"}, "base")
	srv.CommitFiles(project, "dr/x", map[string]string{"values.yaml": "replicas: 2\n"}, "branch edit")
	srv.CommitFiles(project, "main", map[string]string{"values.yaml": "replicas: 3\n"}, "main edit")
	srv.AddToken("made-up-token")
	c := newClient(t, srv, "made-up-token")
	mr, _, err := c.MergeRequests.CreateMergeRequest(pid, &gitlab.CreateMergeRequestOptions{
		SourceBranch: gitlab.Ptr("dr/x"), TargetBranch: gitlab.Ptr("main"), Title: gitlab.Ptr("x")})
	if err != nil {
		t.Fatalf("creating merge request: %v", err)
	}
	if !mr.HasConflicts || mr.DetailedMergeStatus != "conflict" {
		t.Errorf("has_conflicts %v status %s, want a conflict", mr.HasConflicts, mr.DetailedMergeStatus)
	}
	if _, _, err := c.MergeRequests.AcceptMergeRequest(pid, mr.IID, nil); statusOf(t, err) != http.StatusMethodNotAllowed {
		t.Errorf("merging a conflicting MR: err = %v, want 405", err)
	}
}

func TestBranchesCreateListAndDelete(t *testing.T) {
	srv := gitlabfake.New(t)
	pid := srv.AddProject(project, "main")
	srv.AddToken("made-up-token")
	c := newClient(t, srv, "made-up-token")
	b, _, err := c.Branches.CreateBranch(pid, &gitlab.CreateBranchOptions{Branch: gitlab.Ptr("dr/eks-dr-1"), Ref: gitlab.Ptr("main")})
	if err != nil || b.Name != "dr/eks-dr-1" || b.Commit == nil {
		t.Fatalf("creating branch: %+v, %v", b, err)
	}
	_, _, err = c.Branches.CreateBranch(pid, &gitlab.CreateBranchOptions{Branch: gitlab.Ptr("dr/eks-dr-1"), Ref: gitlab.Ptr("main")})
	if statusOf(t, err) != http.StatusBadRequest || !strings.Contains(err.Error(), "Branch already exists") {
		t.Errorf("duplicate branch: err = %v", err)
	}
	got, _, err := c.Branches.GetBranch(project, "dr/eks-dr-1")
	if err != nil || got.Commit.ID != b.Commit.ID {
		t.Errorf("get branch = %+v, %v", got, err)
	}
	list, _, err := c.Branches.ListBranches(pid, &gitlab.ListBranchesOptions{Search: gitlab.Ptr("^dr/")})
	if err != nil || len(list) != 1 {
		t.Errorf("search ^dr/ = %v, %v", list, err)
	}
	if _, err := c.Branches.DeleteBranch(pid, "main"); statusOf(t, err) != http.StatusMethodNotAllowed {
		t.Errorf("deleting the default branch: err = %v, want 405", err)
	}
	if _, err := c.Branches.DeleteBranch(pid, "dr/eks-dr-1"); err != nil {
		t.Fatalf("deleting branch: %v", err)
	}
	if _, _, err := c.Branches.GetBranch(pid, "dr/eks-dr-1"); statusOf(t, err) != 404 {
		t.Errorf("deleted branch still found: %v", err)
	}
	p, _, err := c.Projects.GetProject(project, nil)
	if err != nil || p.ID != pid || p.DefaultBranch != "main" || p.PathWithNamespace != project {
		t.Errorf("project = %+v, %v", p, err)
	}
}

func TestRequestsWithoutAValidTokenAreUnauthorized(t *testing.T) {
	srv := gitlabfake.New(t)
	srv.AddProject(project, "main")
	srv.AddToken("made-up-token")
	for _, token := range []string{"", "made-up-wrong-token"} {
		c := newClient(t, srv, token)
		_, _, err := c.Projects.GetProject(project, nil)
		var er *gitlab.ErrorResponse
		if !errors.As(err, &er) || er.Response.StatusCode != http.StatusUnauthorized || !strings.Contains(er.Message, "401 Unauthorized") {
			t.Errorf("token %q: err = %v, want 401 Unauthorized", token, err)
		}
	}
	if _, _, err := newClient(t, srv, "made-up-token").Projects.GetProject(project, nil); err != nil {
		t.Errorf("valid token: %v", err)
	}
}

func TestUnknownEndpointsAreRecordedAsUnexpected(t *testing.T) {
	srv := gitlabfake.New(t)
	srv.AllowUnexpected()
	pid := srv.AddProject(project, "main")
	srv.AddToken("made-up-token")
	c := newClient(t, srv, "made-up-token")
	if _, _, err := c.Pipelines.ListProjectPipelines(pid, nil); statusOf(t, err) != 404 {
		t.Errorf("pipelines err = %v, want 404", err)
	}
	un := srv.Unexpected()
	if len(un) != 1 || !strings.Contains(un[0], "/projects/1/pipelines") {
		t.Errorf("unexpected = %q", un)
	}
	calls := srv.Calls()
	if len(calls) != 1 || calls[0].Status != 404 || calls[0].Method != http.MethodGet {
		t.Errorf("calls = %+v", calls)
	}
}
