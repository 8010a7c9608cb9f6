package gitops

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/drbot/drbot/recovery"
)

// PlanEndpoint stands for the DR API server in a plan when Argo CD
// destinations are by server: the endpoint exists only once the cluster does.
const PlanEndpoint = "https://dr-cluster-endpoint.invalid"

// Plan reports the merge request a run against target would open — file
// count, Applications per namespace, what changes in the DR directory —
// reading GitLab and changing nothing.
func (g *GitOps) Plan(ctx context.Context, target string) (Report, error) {
	set, sha, dst, err := g.generated(ctx, target)
	if err != nil {
		return Report{}, err
	}
	base, err := g.listBlobs(ctx, g.cfg.GitLab.DRPath, sha)
	if err != nil {
		return Report{}, err
	}
	return g.report(target, sha, dst, set, base), nil
}

// Generated is the DR set a run against target would commit, generated
// from the default branch's head (the commit it returns), read-only and
// cached like Plan's: the readiness checks read the services' images from it.
func (g *GitOps) Generated(ctx context.Context, target string) (*Set, string, error) {
	set, sha, _, err := g.generated(ctx, target)
	return set, sha, err
}

func (g *GitOps) generated(ctx context.Context, target string) (*Set, string, Destination, error) {
	t, ok := g.cfg.Target(target)
	if !ok {
		return nil, "", Destination{}, fmt.Errorf("target %q is not in the config", target)
	}
	dst := Destination{Name: t.DR.ClusterName}
	if g.cfg.ArgoCD.DestinationBy == "server" {
		dst = Destination{Server: PlanEndpoint}
	}
	sha, err := g.headSHA(ctx, g.cfg.GitLab.DefaultBranch)
	if err != nil {
		return nil, "", dst, err
	}
	set, err := g.generateAt(ctx, sha, g.generateOptions(dst))
	return set, sha, dst, err
}

// WritePlan prints a plan report for drbot plan.
func WritePlan(w io.Writer, r Report, branchPrefix string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Merge request (%s → %s): %d file(s) under %s, destination %s\n", branchPrefix+"<run id>", r.Base, r.Files, r.DRPath, r.Destination)
	fmt.Fprintf(&b, "  templates: %s at %s\n", r.Templates, short(r.SourceSHA))
	fmt.Fprintf(&b, "  per namespace: %s\n", r.NamespaceLine())
	fmt.Fprintf(&b, "  vs %s: %d new, %d changed, %d removed\n", r.Base, len(r.Added), len(r.Changed), len(r.Removed))
	if len(r.Removed) > 0 {
		fmt.Fprintf(&b, "  removed: %s\n", capList(r.Removed, 20))
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "  skipped (not Applications): %s\n", capList(r.Skipped, 20))
	}
	if len(r.Malformed) > 0 {
		fmt.Fprintf(&b, "  MALFORMED (%d): %s\n", len(r.Malformed), problemList(r.Malformed, 20))
	}
	if len(r.Unused) > 0 {
		fmt.Fprintf(&b, "  overrides naming no Application: %s\n", strings.Join(r.Unused, ", "))
	}
	if strings.Contains(r.Destination, PlanEndpoint) {
		fmt.Fprintf(&b, "  (destination by server: the real endpoint is known once %s has run)\n", stepAccess)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ExpectedApps lists the DR Applications the merge brings, by name, from
// the DR directory of the merged commit (or the merge request's head, or
// the default branch when nothing was merged), so deploy.watch knows how
// many to wait for before Argo CD has created them all.
func (g *GitOps) ExpectedApps(ctx context.Context, sc *recovery.StepContext) ([]string, error) {
	ref, _ := sc.Output(StepMerge, "merge_commit_sha")
	if ref == "" {
		ref, _ = sc.Output(StepMR, "sha")
	}
	if ref == "" {
		ref = g.cfg.GitLab.DefaultBranch
	}
	blobs, err := g.listBlobs(ctx, g.cfg.GitLab.DRPath, ref)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, b := range blobs {
		if IsTemplateFile(b.path) {
			names = append(names, appOf(b.path))
		}
	}
	return names, nil
}
