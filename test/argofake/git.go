package argofake

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

func newGitLabClient(g GitLab) (*gitlab.Client, error) {
	base := strings.TrimSuffix(g.URL, "/")
	if !strings.HasSuffix(base, "/api/v4") {
		base += "/api/v4"
	}
	// Few retries: the next poll is a retry anyway, and Stop must not wait out a long backoff.
	client, err := gitlab.NewClient(g.Token, gitlab.WithBaseURL(base), gitlab.WithCustomRetryMax(1))
	if err != nil {
		return nil, fmt.Errorf("building gitlab client for %q: %w", base, err)
	}
	return client, nil
}

// syncGit applies the Applications of the branch head when it moved since the last successful apply.
func (c *Controller) syncGit(ctx context.Context) error {
	g := c.opts.GitLab
	branch, _, err := c.git.Branches.GetBranch(g.Project, g.Branch, gitlab.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("reading branch %q of gitlab project %q: %w", g.Branch, g.Project, err)
	}
	if branch.Commit == nil || branch.Commit.ID == "" {
		return fmt.Errorf("branch %q of gitlab project %q has no head commit", g.Branch, g.Project)
	}
	sha := branch.Commit.ID
	if sha == c.Revision() {
		return nil
	}
	apps, err := c.readApplications(ctx, sha)
	if err != nil {
		return err
	}
	if err := c.applyApplications(ctx, apps, sha); err != nil {
		return err
	}
	c.mu.Lock()
	c.revision = sha
	c.mu.Unlock()
	c.log.Info("applied git revision", "revision", sha, "applications", len(apps))
	return nil
}

// readApplications reads every Application document under AppOfAppsPath at commit sha, by name.
func (c *Controller) readApplications(ctx context.Context, sha string) (map[string]*unstructured.Unstructured, error) {
	g := c.opts.GitLab
	opt := &gitlab.ListTreeOptions{
		ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
		Ref:         gitlab.Ptr(sha),
		Recursive:   gitlab.Ptr(true),
	}
	if p := strings.Trim(g.AppOfAppsPath, "/"); p != "" {
		opt.Path = gitlab.Ptr(p)
	}
	var files []string
	for {
		nodes, resp, err := c.git.Repositories.ListTree(g.Project, opt, gitlab.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("listing tree %q of gitlab project %q at %s: %w", g.AppOfAppsPath, g.Project, sha, err)
		}
		for _, n := range nodes {
			ext := path.Ext(n.Path)
			if n.Type == "blob" && (ext == ".yaml" || ext == ".yml") {
				files = append(files, n.Path)
			}
		}
		if resp == nil || resp.NextPage == 0 {
			break
		}
		opt.Page = resp.NextPage
	}
	sort.Strings(files)

	apps := map[string]*unstructured.Unstructured{}
	for _, f := range files {
		raw, _, err := c.git.RepositoryFiles.GetRawFile(g.Project, f, &gitlab.GetRawFileOptions{Ref: gitlab.Ptr(sha)}, gitlab.WithContext(ctx))
		if err != nil {
			return nil, fmt.Errorf("reading %q of gitlab project %q at %s: %w", f, g.Project, sha, err)
		}
		docs, err := parseApplications(raw)
		if err != nil {
			return nil, fmt.Errorf("parsing %q at %s: %w", f, sha, err)
		}
		for _, app := range docs {
			if prev, ok := apps[app.GetName()]; ok {
				c.log.Warn("application defined twice in git, the later file wins", "application", app.GetName(), "file", f, "previous", prev.GetAnnotations()["argofake/file"])
			}
			ann := app.GetAnnotations()
			if ann == nil {
				ann = map[string]string{}
			}
			ann["argofake/file"] = f
			app.SetAnnotations(ann)
			apps[app.GetName()] = app
		}
	}
	return apps, nil
}

// parseApplications returns the argoproj.io/v1alpha1 Application documents of a multi-document YAML file;
// other kinds are skipped, as an app-of-apps only manages Applications here.
func parseApplications(raw []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading document %d: %w", i, err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		j = bytes.TrimSpace(j)
		if len(j) == 0 || string(j) == "null" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := json.Unmarshal(j, &head); err != nil {
			return nil, fmt.Errorf("document %d is not an object: %w", i, err)
		}
		if head.Kind != "Application" || head.APIVersion != "argoproj.io/v1alpha1" {
			continue
		}
		// unstructured's own decoder keeps integers as int64, as objects read from the API server do,
		// so specs compare equal after a round trip.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(j); err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if u.GetName() == "" {
			return nil, fmt.Errorf("document %d: application without metadata.name", i)
		}
		out = append(out, u)
	}
}

// applyApplications creates or updates the Applications from Git in the Argo CD namespace and deletes managed
// ones that are no longer in Git.
func (c *Controller) applyApplications(ctx context.Context, apps map[string]*unstructured.Unstructured, sha string) error {
	ns := c.opts.Namespace
	client := c.dyn.Resource(ApplicationGVR).Namespace(ns)
	var errs []error
	for _, name := range sortedKeys(apps) {
		want := apps[name]
		if err := c.applyApplication(ctx, want, sha); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	managed, err := client.List(ctx, metav1.ListOptions{LabelSelector: ManagedLabel + "=true"})
	if err != nil {
		return fmt.Errorf("listing managed applications in %q: %w", ns, err)
	}
	for _, app := range managed.Items {
		if _, ok := apps[app.GetName()]; ok || app.GetDeletionTimestamp() != nil {
			continue
		}
		if err := client.Delete(ctx, app.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("pruning application %s/%s: %w", ns, app.GetName(), err))
			continue
		}
		c.log.Info("pruned application removed from git", "application", app.GetName(), "revision", sha)
	}
	return errors.Join(errs...)
}

func (c *Controller) applyApplication(ctx context.Context, want *unstructured.Unstructured, sha string) error {
	ns := c.opts.Namespace
	client := c.dyn.Resource(ApplicationGVR).Namespace(ns)
	name := want.GetName()
	want = want.DeepCopy()
	want.SetNamespace(ns)
	labels := want.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[ManagedLabel] = "true"
	want.SetLabels(labels)
	ann := want.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[RevisionAnnotation] = sha
	want.SetAnnotations(ann)
	// Status belongs to the controller, never to Git.
	delete(want.Object, "status")

	have, err := client.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		if _, err := client.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating application %s/%s: %w", ns, name, err)
		}
		c.log.Info("created application", "application", name, "revision", sha)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading application %s/%s: %w", ns, name, err)
	}
	updated := have.DeepCopy()
	updated.Object["spec"] = want.Object["spec"]
	mergedLabels := updated.GetLabels()
	if mergedLabels == nil {
		mergedLabels = map[string]string{}
	}
	for k, v := range labels {
		mergedLabels[k] = v
	}
	updated.SetLabels(mergedLabels)
	mergedAnn := updated.GetAnnotations()
	if mergedAnn == nil {
		mergedAnn = map[string]string{}
	}
	for k, v := range ann {
		mergedAnn[k] = v
	}
	updated.SetAnnotations(mergedAnn)
	if fin := want.GetFinalizers(); len(fin) > 0 {
		updated.SetFinalizers(fin)
	}
	if equality.Semantic.DeepEqual(have.Object, updated.Object) {
		return nil
	}
	if _, err := client.Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating application %s/%s: %w", ns, name, err)
	}
	c.log.Info("updated application", "application", name, "revision", sha)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
