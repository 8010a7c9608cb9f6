package gitops

import (
	"context"
	"fmt"
	"net/http"
	"strconv"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/recovery"
)

// Outputs gitops.merge journals on itself when GitLab refuses the merge
// because the branch moved: the head it saw. Pressing Retry after that
// error approves that head, which is what the error asks people to review.
const (
	outRefusedSHA = "refused_sha"
	outBranchHead = "branch_head"
)

// transientStatuses are detailed merge statuses GitLab passes through on its
// own; the step retries them.
var transientStatuses = map[string]bool{
	"checking": true, "unchecked": true, "preparing": true, "approvals_syncing": true, "ci_still_running": true,
}

// statusHints say what to do about a detailed merge status.
var statusHints = map[string]string{
	"not_approved":               "it needs approvals in GitLab",
	"conflict":                   "the branch conflicts with the target branch; resolve the conflicts",
	"draft_status":               "it is a draft; mark it ready",
	"need_rebase":                "the project merges by fast-forward only; rebase the branch",
	"discussions_not_resolved":   "unresolved discussions block it; resolve them",
	"ci_must_pass":               "its pipeline must pass first",
	"blocked_status":             "another merge request blocks it",
	"not_open":                   "it is not open",
	"broken_status":              "its source or target branch is missing",
	"requested_changes":          "a reviewer requested changes",
	"jira_association_missing":   "it needs a Jira issue key",
	"merge_request_blocked":      "another merge request blocks it",
	"security_policy_violations": "security policies block it",
	"commits_status":             "the source branch is missing or has no commits",
	"external_status_checks":     "external status checks must pass",
	"title_regex":                "its title does not match the project's required format",
	"locked_paths":               "it touches locked paths",
	"locked_lfs_files":           "it touches locked LFS files",
}

// Merge is gitops.merge, run once the merge gate is approved. A merge
// request someone already merged in GitLab counts as done; otherwise it
// is accepted with the SHA that was reviewed, so GitLab refuses it if the
// branch changed since.
func (g *GitOps) Merge(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	iidStr, _ := sc.Output(StepMR, "mr_iid")
	if iidStr == "" {
		return recovery.Result{Outputs: map[string]string{"merged": "nothing to merge: the DR directory already matched"}}, nil
	}
	iid, err := strconv.ParseInt(iidStr, 10, 64)
	if err != nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("%s output mr_iid %q is not a number", StepMR, iidStr))
	}
	expected, _ := sc.Output(StepMR, "sha")
	if head, ok := sc.Output(sc.StepID(), outBranchHead); ok && head != "" {
		expected = head // the head named by the refusal this Retry answers
	}

	mr, err := g.getMR(ctx, iid)
	if err != nil {
		return recovery.Result{}, err
	}
	switch mr.State {
	case "merged":
		return g.merged(sc, mr, expected), nil
	case "closed":
		return recovery.Result{}, recovery.Permanent(fmt.Errorf(
			"merge request !%d (%s) was closed in GitLab: reopen it and Retry, or merge by hand and Skip", iid, mr.WebURL))
	case "locked":
		return recovery.Result{}, recovery.Retryable(fmt.Errorf("merge request !%d is locked: GitLab is merging it", iid))
	}
	if expected == "" {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("%s journaled no sha for merge request !%d: Retry %s", StepMR, iid, StepMR))
	}
	if mr.SHA != expected {
		return recovery.Result{}, g.branchMoved(sc, mr, expected, mr.SHA)
	}
	if mr.DetailedMergeStatus != "mergeable" {
		return recovery.Result{}, g.notMergeable(ctx, mr)
	}

	accepted, _, err := g.gl.MergeRequests.AcceptMergeRequest(g.project(), iid, &gitlab.AcceptMergeRequestOptions{
		SHA: gitlab.Ptr(expected), ShouldRemoveSourceBranch: gitlab.Ptr(true),
	}, gitlab.WithContext(ctx))
	switch code := statusOf(err); {
	case err == nil:
	case code == http.StatusConflict:
		now, gerr := g.getMR(ctx, iid)
		if gerr != nil {
			return recovery.Result{}, gerr
		}
		return recovery.Result{}, g.branchMoved(sc, now, expected, now.SHA)
	case code == http.StatusMethodNotAllowed || code == http.StatusNotAcceptable || code == http.StatusUnprocessableEntity:
		now, gerr := g.getMR(ctx, iid)
		if gerr != nil {
			return recovery.Result{}, gerr
		}
		if now.State == "merged" {
			return g.merged(sc, now, expected), nil
		}
		return recovery.Result{}, g.notMergeable(ctx, now)
	default:
		return recovery.Result{}, classify(fmt.Errorf("merging merge request !%d of gitlab project %q: %w", iid, g.project(), err))
	}
	if accepted.State != "merged" {
		return recovery.Result{}, recovery.Retryable(fmt.Errorf("merge request !%d accepted but still %s in GitLab", iid, accepted.State))
	}
	sc.Progress("merged !%d at %s: %s", iid, short(expected), accepted.WebURL)
	return recovery.Result{Outputs: mergedOutputs(accepted, "drbot")}, nil
}

// MergedElsewhere is the merge gate's check: the merge request was merged
// by a person in GitLab while the gate waited, which passes the gate.
func (g *GitOps) MergedElsewhere(ctx context.Context, sc *recovery.StepContext) (string, bool, error) {
	raw, ok := sc.Output(StepMR, "mr_iid")
	if !ok {
		return "", false, nil
	}
	iid, err := strconv.ParseInt(raw, 10, 64)
	if err != nil {
		return "", false, fmt.Errorf("%s output mr_iid %q is not a number", StepMR, raw)
	}
	mr, err := g.getMR(ctx, iid)
	if err != nil || mr.State != "merged" {
		return "", false, err
	}
	by := "someone in GitLab"
	if mr.MergeUser != nil {
		by = mr.MergeUser.Username + " (GitLab)"
	}
	return by, true, nil
}

func (g *GitOps) merged(sc *recovery.StepContext, mr *gitlab.MergeRequest, expected string) recovery.Result {
	by := "someone"
	if mr.MergeUser != nil {
		by = mr.MergeUser.Username
	}
	if mr.SHA != expected {
		sc.Progress("merge request !%d was merged in GitLab by %s at %s, not at the reviewed %s", mr.IID, by, short(mr.SHA), short(expected))
	} else {
		sc.Progress("merge request !%d was merged in GitLab by %s", mr.IID, by)
	}
	return recovery.Result{Outputs: mergedOutputs(mr, by)}
}

func mergedOutputs(mr *gitlab.MergeRequest, by string) map[string]string {
	return map[string]string{
		"merged_by": by, "merge_commit_sha": mr.MergeCommitSHA, "merged_sha": mr.SHA, "mr_url": mr.WebURL,
	}
}

// branchMoved journals the head GitLab has now and sends the step back to
// its gate: what people approved is not what would be merged. Approving
// again (after reviewing the new diff) merges exactly that head.
func (g *GitOps) branchMoved(sc *recovery.StepContext, mr *gitlab.MergeRequest, expected, head string) error {
	if err := sc.SaveOutputs(map[string]string{outRefusedSHA: expected, outBranchHead: head}); err != nil {
		return err
	}
	return recovery.ReopenGate(fmt.Errorf(
		"the branch changed since the MR was reviewed (expected %s, head is %s): review the new diff at %s; approving again merges %s",
		short(expected), short(head), mr.WebURL, short(head)))
}

func (g *GitOps) notMergeable(ctx context.Context, mr *gitlab.MergeRequest) error {
	st := mr.DetailedMergeStatus
	if transientStatuses[st] {
		return recovery.Retryable(fmt.Errorf("merge request !%d is not mergeable yet: GitLab status %s", mr.IID, st))
	}
	hint := statusHints[st]
	if hint == "" {
		hint = "see the merge request in GitLab"
	}
	if st == "not_approved" {
		if ap, _, err := g.gl.Approvals.GetConfiguration(g.project(), mr.IID, gitlab.WithContext(ctx)); err == nil {
			hint += " (" + approvalLine(ap) + ")"
		}
	}
	if mr.HasConflicts && st != "conflict" {
		hint += "; it also has conflicts"
	}
	return recovery.Permanent(fmt.Errorf("merge request !%d cannot be merged: GitLab status %s — %s; fix it in GitLab (%s), then Retry",
		mr.IID, st, hint, mr.WebURL))
}
