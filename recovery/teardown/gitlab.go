package teardown

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/recovery"
)

// removeGitLab closes the drill's merge request if it is still open and
// deletes its branch; if it was merged, one commit on the target branch
// takes the drill's changes under gitlab.dr_path back out.
func (x *attempt) removeGitLab(ctx context.Context) (string, error) {
	g := x.t.cfg.GitLab
	pid := g.Project
	branch := g.BranchPrefix + x.sc.Run().ID
	gl := x.t.opts.GitLab
	if gl == nil {
		x.leave(PartGitLab, "GitLab branch "+branch+" and its merge request", errors.New("teardown was built without a GitLab client (a wiring bug)"),
			"close the merge request, delete the branch, and if it was merged revert it, by hand")
		return "", nil
	}
	opt := gitlab.WithContext(ctx)

	var mr *gitlab.MergeRequest
	if s := x.output(stepGitOpsMR, "mr_iid"); s != "" {
		iid, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return "", recovery.Permanent(fmt.Errorf("%s output mr_iid %q is not a number", stepGitOpsMR, s))
		}
		got, _, err := gl.MergeRequests.GetMergeRequest(pid, iid, nil, opt)
		switch {
		case errors.Is(err, gitlab.ErrNotFound):
		case err != nil:
			x.leave(PartGitLab, fmt.Sprintf("GitLab merge request !%d", iid), glError("reading it", err), "close it (or revert it if merged) and delete branch "+branch+" by hand")
			return "", nil
		default:
			mr = got
		}
	} else {
		// gitops.mr may have opened one and failed before journaling it.
		list, _, err := gl.MergeRequests.ListProjectMergeRequests(pid, &gitlab.ListProjectMergeRequestsOptions{SourceBranch: gitlab.Ptr(branch)}, opt)
		if err != nil {
			x.leave(PartGitLab, "GitLab merge requests of branch "+branch, glError("listing them", err), "close them and delete the branch by hand")
			return "", nil
		}
		if len(list) > 0 {
			got, _, err := gl.MergeRequests.GetMergeRequest(pid, list[0].IID, nil, opt)
			if err != nil {
				x.leave(PartGitLab, fmt.Sprintf("GitLab merge request !%d", list[0].IID), glError("reading it", err), "close it and delete branch "+branch+" by hand")
				return "", nil
			}
			mr = got
		}
	}

	var did []string
	if mr != nil {
		branch = mr.SourceBranch
		ref := fmt.Sprintf("merge request !%d", mr.IID)
		switch mr.State {
		case "opened", "locked":
			_, _, err := gl.MergeRequests.UpdateMergeRequest(pid, mr.IID, &gitlab.UpdateMergeRequestOptions{StateEvent: gitlab.Ptr("close")}, opt)
			if err != nil {
				x.leave(PartGitLab, "GitLab "+ref, glError("closing it", err), "close it by hand: "+mr.WebURL)
				return "", nil
			}
			x.sc.Progress("closed %s: %s", ref, mr.WebURL)
			did = append(did, "closed "+ref)
		case "merged":
			summary, ok := x.revert(ctx, gl, mr)
			if !ok {
				return "", nil
			}
			did = append(did, summary)
		default:
			did = append(did, ref+" already "+mr.State)
		}
	}

	// Only drbot's own branches are deleted, never the target.
	if branch != "" && branch != g.DefaultBranch && (mr == nil || branch != mr.TargetBranch) && strings.HasPrefix(branch, g.BranchPrefix) {
		_, _, err := gl.Branches.GetBranch(pid, branch, opt)
		switch {
		case errors.Is(err, gitlab.ErrNotFound):
			if mr != nil {
				did = append(did, "branch "+branch+" already gone")
			}
		case err != nil:
			x.leave(PartGitLab, "GitLab branch "+branch, glError("reading it", err), "delete it by hand")
			return "", nil
		default:
			if _, err := gl.Branches.DeleteBranch(pid, branch, opt); err != nil && !errors.Is(err, gitlab.ErrNotFound) {
				x.leave(PartGitLab, "GitLab branch "+branch, glError("deleting it", err), "delete it by hand")
				return "", nil
			}
			x.sc.Progress("deleted branch %s", branch)
			did = append(did, "deleted branch "+branch)
		}
	}
	if len(did) == 0 {
		return "no merge request or branch of this drill in GitLab", nil
	}
	return strings.Join(did, "; "), nil
}

// revert commits, on the merge request's target branch, the inverse of
// what it changed under gitlab.dr_path: files it added are deleted, files
// it changed or deleted get their content from before it back. A file
// someone changed after the merge is left alone and listed. It reports
// false when it left something behind.
func (x *attempt) revert(ctx context.Context, gl *gitlab.Client, mr *gitlab.MergeRequest) (string, bool) {
	pid := x.t.cfg.GitLab.Project
	opt := gitlab.WithContext(ctx)
	drPath := strings.Trim(x.t.cfg.GitLab.DRPath, "/")
	target := mr.TargetBranch
	what := fmt.Sprintf("the files merge request !%d merged into %s under %s", mr.IID, target, drPath)
	fix := fmt.Sprintf("revert merge request !%d by hand (%s)", mr.IID, mr.WebURL)

	var diffs []*gitlab.MergeRequestDiff
	lopt := &gitlab.ListMergeRequestDiffsOptions{ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1}}
	for {
		page, resp, err := gl.MergeRequests.ListMergeRequestDiffs(pid, mr.IID, lopt, opt)
		if err != nil {
			x.leave(PartGitLab, what, glError("listing the merge request's changes", err), fix)
			return "", false
		}
		diffs = append(diffs, page...)
		if resp == nil || resp.NextPage == 0 {
			break
		}
		lopt.Page = resp.NextPage
	}

	b, _, err := gl.Branches.GetBranch(pid, target, opt)
	if err == nil && b.Commit == nil {
		err = errors.New("it has no head commit")
	}
	if err != nil {
		x.leave(PartGitLab, what, glError("reading branch "+target, err), fix)
		return "", false
	}
	trees := map[string]map[string]string{}
	tree := func(ref string) (map[string]string, error) {
		if t, ok := trees[ref]; ok {
			return t, nil
		}
		t, err := x.listBlobs(ctx, gl, drPath, ref)
		if err != nil {
			return nil, err
		}
		trees[ref] = t
		return t, nil
	}
	head, err := tree(b.Commit.ID)
	if err != nil {
		x.leave(PartGitLab, what, err, fix)
		return "", false
	}
	base, merged := mr.DiffRefs.BaseSha, mr.DiffRefs.HeadSha
	if merged == "" {
		merged = mr.SHA
	}

	under := func(p string) bool {
		return p != "" && (drPath == "" || p == drPath || strings.HasPrefix(p, drPath+"/"))
	}
	var actions []*gitlab.CommitActionOptions
	var deleted, restored, outside, changedSince []string
	restore := func(p string) error {
		if base == "" {
			return fmt.Errorf("merge request !%d reports no base commit to restore %s from", mr.IID, p)
		}
		bt, err := tree(base)
		if err != nil {
			return err
		}
		mt, err := tree(merged)
		if err != nil {
			return err
		}
		hID, inHead := head[p]
		mID, inMerged := mt[p]
		bID, inBase := bt[p]
		var action gitlab.FileActionValue
		switch {
		case inHead == inBase && hID == bID:
			return nil // already as before the merge
		case inHead && inMerged && hID == mID && inBase:
			action = gitlab.FileUpdate
		case inHead && inMerged && hID == mID && !inBase:
			actions = append(actions, &gitlab.CommitActionOptions{Action: gitlab.Ptr(gitlab.FileDelete), FilePath: gitlab.Ptr(p)})
			deleted = append(deleted, p)
			return nil
		case !inHead && !inMerged && inBase:
			action = gitlab.FileCreate
		default:
			changedSince = append(changedSince, p)
			return nil
		}
		raw, _, err := gl.RepositoryFiles.GetRawFile(pid, p, &gitlab.GetRawFileOptions{Ref: gitlab.Ptr(base)}, opt)
		if err != nil {
			return glError(fmt.Sprintf("reading %s at %s", p, short(base)), err)
		}
		actions = append(actions, &gitlab.CommitActionOptions{
			Action: gitlab.Ptr(action), FilePath: gitlab.Ptr(p),
			Content: gitlab.Ptr(base64.StdEncoding.EncodeToString(raw)), Encoding: gitlab.Ptr("base64"),
		})
		restored = append(restored, p)
		return nil
	}
	for _, d := range diffs {
		if !under(d.NewPath) && !under(d.OldPath) {
			outside = append(outside, d.NewPath)
			continue
		}
		var err error
		switch {
		case d.NewFile:
			if _, ok := head[d.NewPath]; ok {
				actions = append(actions, &gitlab.CommitActionOptions{Action: gitlab.Ptr(gitlab.FileDelete), FilePath: gitlab.Ptr(d.NewPath)})
				deleted = append(deleted, d.NewPath)
			}
		case d.RenamedFile:
			if under(d.NewPath) {
				err = restore(d.NewPath)
			}
			if err == nil && under(d.OldPath) {
				err = restore(d.OldPath)
			}
		case d.DeletedFile:
			err = restore(d.OldPath)
		default:
			err = restore(d.NewPath)
		}
		if err != nil {
			x.leave(PartGitLab, what, err, fix)
			return "", false
		}
	}

	ok := true
	if len(outside) > 0 {
		x.leave(PartGitLab, fmt.Sprintf("changes merge request !%d made outside %s: %s", mr.IID, drPath, capList(outside, 10)),
			errors.New("drbot reverts only gitlab.dr_path"), "revert those files by hand if the drill should not have changed them")
		ok = false
	}
	if len(changedSince) > 0 {
		x.leave(PartGitLab, fmt.Sprintf("%s on %s: %s", drPath, target, capList(changedSince, 10)),
			fmt.Errorf("changed since merge request !%d was merged", mr.IID), "restore them from "+short(base)+" by hand if the drill's changes are still in them")
		ok = false
	}
	if len(actions) == 0 {
		if !ok {
			return "", false
		}
		return fmt.Sprintf("merge request !%d already reverted on %s", mr.IID, target), true
	}
	commit, _, err := gl.Commits.CreateCommit(pid, &gitlab.CreateCommitOptions{
		Branch: gitlab.Ptr(target),
		CommitMessage: gitlab.Ptr(fmt.Sprintf("Revert DR drill %s of %s (%d files)\n\nTakes back what merge request !%d merged under %s. drbot run %s.",
			x.sc.Run().ID, x.target.Name, len(actions), mr.IID, drPath, x.sc.Run().ID)),
		Actions: actions,
	}, opt)
	if err != nil {
		x.leave(PartGitLab, what, glError(fmt.Sprintf("committing the revert (%d file(s)) to %s", len(actions), target), err),
			fmt.Sprintf("delete %s and restore %s on %s by hand (or revert %s)", listOrNone(deleted), listOrNone(restored), target, mr.WebURL))
		return "", false
	}
	if err := x.sc.SaveOutputs(map[string]string{"revert_commit": commit.ID}); err != nil {
		x.leave(PartGitLab, what, err, "the revert is committed ("+commit.ID+"); press Retry")
		return "", false
	}
	summary := fmt.Sprintf("reverted merge request !%d on %s in %s (%d deleted, %d restored)", mr.IID, target, short(commit.ID), len(deleted), len(restored))
	x.sc.Progress("%s", summary)
	return summary, ok
}

// listBlobs maps the path of every blob under dir at ref to its id; a
// missing directory is empty.
func (x *attempt) listBlobs(ctx context.Context, gl *gitlab.Client, dir, ref string) (map[string]string, error) {
	out := map[string]string{}
	opt := &gitlab.ListTreeOptions{ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1}, Path: gitlab.Ptr(dir), Ref: gitlab.Ptr(ref), Recursive: gitlab.Ptr(true)}
	for {
		nodes, resp, err := gl.Repositories.ListTree(x.t.cfg.GitLab.Project, opt, gitlab.WithContext(ctx))
		if errors.Is(err, gitlab.ErrNotFound) {
			return out, nil
		}
		if err != nil {
			return nil, glError(fmt.Sprintf("listing %s at %s", dir, short(ref)), err)
		}
		for _, n := range nodes {
			if n.Type == "blob" {
				out[n.Path] = n.ID
			}
		}
		if resp == nil || resp.NextPage == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
}

// glError wraps a GitLab error with what was being done, marking 429 and
// 5xx retryable.
func glError(doing string, err error) error {
	e := fmt.Errorf("%s: %w", doing, err)
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		if c := er.Response.StatusCode; c == http.StatusTooManyRequests || c >= 500 {
			return recovery.Retryable(e)
		}
	}
	return e
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "nothing"
	}
	return capList(l, 10)
}
