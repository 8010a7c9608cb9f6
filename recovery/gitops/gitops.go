package gitops

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// Step ids this package implements, and the ones it reads outputs from.
const (
	StepGenerate = "templates.generate"
	StepMR       = "gitops.mr"
	StepMerge    = "gitops.merge"
	stepAccess   = "cluster.access"
)

// Narrow views of the GitLab client, with client-go's exact signatures, so
// *gitlab.Client's services satisfy them.
type (
	BranchesAPI interface {
		GetBranch(pid any, branch string, options ...gitlab.RequestOptionFunc) (*gitlab.Branch, *gitlab.Response, error)
	}
	TreeAPI interface {
		ListTree(pid any, opt *gitlab.ListTreeOptions, options ...gitlab.RequestOptionFunc) ([]*gitlab.TreeNode, *gitlab.Response, error)
	}
	FilesAPI interface {
		GetRawFile(pid any, fileName string, opt *gitlab.GetRawFileOptions, options ...gitlab.RequestOptionFunc) ([]byte, *gitlab.Response, error)
	}
	CommitsAPI interface {
		CreateCommit(pid any, opt *gitlab.CreateCommitOptions, options ...gitlab.RequestOptionFunc) (*gitlab.Commit, *gitlab.Response, error)
	}
	MergeRequestsAPI interface {
		ListProjectMergeRequests(pid any, opt *gitlab.ListProjectMergeRequestsOptions, options ...gitlab.RequestOptionFunc) ([]*gitlab.BasicMergeRequest, *gitlab.Response, error)
		GetMergeRequest(pid any, mergeRequest int64, opt *gitlab.GetMergeRequestsOptions, options ...gitlab.RequestOptionFunc) (*gitlab.MergeRequest, *gitlab.Response, error)
		CreateMergeRequest(pid any, opt *gitlab.CreateMergeRequestOptions, options ...gitlab.RequestOptionFunc) (*gitlab.MergeRequest, *gitlab.Response, error)
		UpdateMergeRequest(pid any, mergeRequest int64, opt *gitlab.UpdateMergeRequestOptions, options ...gitlab.RequestOptionFunc) (*gitlab.MergeRequest, *gitlab.Response, error)
		AcceptMergeRequest(pid any, mergeRequest int64, opt *gitlab.AcceptMergeRequestOptions, options ...gitlab.RequestOptionFunc) (*gitlab.MergeRequest, *gitlab.Response, error)
	}
	ApprovalsAPI interface {
		GetConfiguration(pid any, mr int64, options ...gitlab.RequestOptionFunc) (*gitlab.MergeRequestApprovals, *gitlab.Response, error)
	}
)

// GitLabAPI is every GitLab call the package makes.
type GitLabAPI struct {
	Branches      BranchesAPI
	Tree          TreeAPI
	Files         FilesAPI
	Commits       CommitsAPI
	MergeRequests MergeRequestsAPI
	Approvals     ApprovalsAPI
}

// FromClient takes the services of a real client.
func FromClient(c *gitlab.Client) GitLabAPI {
	return GitLabAPI{
		Branches: c.Branches, Tree: c.Repositories, Files: c.RepositoryFiles, Commits: c.Commits,
		MergeRequests: c.MergeRequests, Approvals: c.MergeRequestApprovals,
	}
}

// Options are the settings config.Config does not carry (yet).
type Options struct {
	// Waves order services in tiers with Argo CD sync waves; see Wave.
	Waves []Wave
	// NameSuffix renames the DR Applications (e.g. "-dr"); see GenerateOptions.
	NameSuffix string
	// Fetchers bounds concurrent raw-file reads from GitLab; default 8.
	Fetchers int
}

// GitOps serves templates.generate, gitops.mr and gitops.merge for every run.
type GitOps struct {
	cfg  *config.Config
	gl   GitLabAPI
	opts Options

	mu    sync.Mutex
	cache cachedSet // the last generation, so gitops.mr does not read GitLab again
}

type cachedSet struct {
	key string
	set *Set
}

// New builds the actions over a GitLab API (usually FromClient).
func New(cfg *config.Config, gl GitLabAPI, opts Options) *GitOps {
	if opts.Fetchers <= 0 {
		opts.Fetchers = 8
	}
	return &GitOps{cfg: cfg, gl: gl, opts: opts}
}

// Actions maps the step ids to their actions, for Runbook.WithActions.
func (g *GitOps) Actions() map[string]recovery.Action {
	return map[string]recovery.Action{StepGenerate: g.Generate, StepMR: g.MergeRequest, StepMerge: g.Merge}
}

func (g *GitOps) project() string { return g.cfg.GitLab.Project }

func (g *GitOps) target(sc *recovery.StepContext) (*config.Target, error) {
	name := sc.Run().Target
	t, ok := g.cfg.Target(name)
	if !ok {
		return nil, recovery.Permanent(fmt.Errorf("target %q is not in the config", name))
	}
	return t, nil
}

// destination resolves where the DR Applications point. By name it needs
// only the DR cluster's name, which is why generation runs in parallel
// with the cluster's creation; by server it needs cluster.access.
func (g *GitOps) destination(sc *recovery.StepContext, t *config.Target) (Destination, error) {
	if g.cfg.ArgoCD.DestinationBy != "server" {
		return Destination{Name: t.DR.ClusterName}, nil
	}
	endpoint, ok := sc.Output(stepAccess, "endpoint")
	if !ok || endpoint == "" {
		return Destination{}, recovery.Permanent(fmt.Errorf(
			"argocd.destination_by is server but %s has no endpoint output yet: %s must depend on %s for that setting (or use destination_by: name)",
			stepAccess, sc.StepID(), stepAccess))
	}
	return Destination{Server: endpoint}, nil
}

func (g *GitOps) generateOptions(dst Destination) GenerateOptions {
	return GenerateOptions{
		DRPath: g.cfg.GitLab.DRPath, Destination: dst, Overrides: g.cfg.GitLab.Overrides,
		Waves: g.opts.Waves, NameSuffix: g.opts.NameSuffix,
	}
}

// headSHA resolves a branch to its commit.
func (g *GitOps) headSHA(ctx context.Context, branch string) (string, error) {
	b, _, err := g.gl.Branches.GetBranch(g.project(), branch, gitlab.WithContext(ctx))
	if err != nil {
		return "", classify(fmt.Errorf("reading branch %q of gitlab project %q: %w", branch, g.project(), err))
	}
	if b.Commit == nil || b.Commit.ID == "" {
		return "", recovery.Permanent(fmt.Errorf("branch %q of gitlab project %q has no head commit", branch, g.project()))
	}
	return b.Commit.ID, nil
}

// treeEntry is one blob of a listed tree.
type treeEntry struct{ path, id string }

// listBlobs lists every blob under dir at ref, following pagination. A
// missing directory is an empty list.
func (g *GitOps) listBlobs(ctx context.Context, dir, ref string) ([]treeEntry, error) {
	opt := &gitlab.ListTreeOptions{
		ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
		Path:        gitlab.Ptr(strings.Trim(dir, "/")),
		Ref:         gitlab.Ptr(ref),
		Recursive:   gitlab.Ptr(true),
	}
	var out []treeEntry
	for {
		nodes, resp, err := g.gl.Tree.ListTree(g.project(), opt, gitlab.WithContext(ctx))
		if errors.Is(err, gitlab.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, classify(fmt.Errorf("listing %q of gitlab project %q at %s: %w", dir, g.project(), short(ref), err))
		}
		for _, n := range nodes {
			if n.Type == "blob" {
				out = append(out, treeEntry{path: n.Path, id: n.ID})
			}
		}
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path < out[j].path })
	return out, nil
}

// readTemplates reads every YAML file under the templates path at sha.
func (g *GitOps) readTemplates(ctx context.Context, sha string) ([]Source, error) {
	dir := g.cfg.GitLab.TemplatesPath
	blobs, err := g.listBlobs(ctx, dir, sha)
	if err != nil {
		return nil, err
	}
	var paths []string
	for _, b := range blobs {
		if IsTemplateFile(b.path) {
			paths = append(paths, b.path)
		}
	}
	if len(paths) == 0 {
		return nil, recovery.Permanent(fmt.Errorf("no YAML templates under %q in gitlab project %q at %s: check gitlab.templates_path", dir, g.project(), short(sha)))
	}
	out := make([]Source, len(paths))
	errs := make([]error, len(paths))
	sem := make(chan struct{}, g.opts.Fetchers)
	var wg sync.WaitGroup
	for i, p := range paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			raw, _, err := g.gl.Files.GetRawFile(g.project(), p, &gitlab.GetRawFileOptions{Ref: gitlab.Ptr(sha)}, gitlab.WithContext(ctx))
			if err != nil {
				errs[i] = classify(fmt.Errorf("reading %q of gitlab project %q at %s: %w", p, g.project(), short(sha), err))
				return
			}
			out[i] = Source{Path: p, Content: raw}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// generateAt reads the templates at sha and generates the DR set, reusing
// the last result for the same sha and options.
func (g *GitOps) generateAt(ctx context.Context, sha string, gopts GenerateOptions) (*Set, error) {
	key := fmt.Sprintf("%s|%#v", sha, gopts)
	g.mu.Lock()
	if g.cache.key == key {
		s := g.cache.set
		g.mu.Unlock()
		return s, nil
	}
	g.mu.Unlock()
	srcs, err := g.readTemplates(ctx, sha)
	if err != nil {
		return nil, err
	}
	s := Generate(srcs, gopts)
	g.mu.Lock()
	g.cache = cachedSet{key: key, set: s}
	g.mu.Unlock()
	return s, nil
}

// classify marks GitLab API errors: 429 and 5xx are retryable, other HTTP
// errors permanent; transport errors are left to recovery.IsRetryable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, gitlab.ErrNotFound) {
		return recovery.Permanent(err)
	}
	if code := statusOf(err); code != 0 {
		if code == http.StatusTooManyRequests || code >= 500 {
			return recovery.Retryable(err)
		}
		return recovery.Permanent(err)
	}
	return err
}

func statusOf(err error) int {
	if errors.Is(err, gitlab.ErrNotFound) {
		return http.StatusNotFound
	}
	var er *gitlab.ErrorResponse
	if errors.As(err, &er) && er.Response != nil {
		return er.Response.StatusCode
	}
	return 0
}

func short(sha string) string {
	if len(sha) == 40 {
		return sha[:12]
	}
	return sha
}
