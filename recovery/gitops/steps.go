package gitops

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/drbot/drbot/recovery"
)

// Generate is templates.generate: it reads the primary's templates at the
// default branch's head, derives the DR set and journals what later steps
// need to regenerate and check it (the source sha and the content hash),
// plus counts and the skipped files. The files themselves are not
// journaled: gitops.mr regenerates them from the same sha.
func (g *GitOps) Generate(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	t, err := g.target(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	dst, err := g.destination(sc, t)
	if err != nil {
		return recovery.Result{}, err
	}
	sha, err := g.headSHA(ctx, g.cfg.GitLab.DefaultBranch)
	if err != nil {
		return recovery.Result{}, err
	}
	set, err := g.generateAt(ctx, sha, g.generateOptions(dst))
	if err != nil {
		return recovery.Result{}, err
	}
	if merr := set.MalformedError(); merr != nil {
		if g.cfg.GitLab.FailOnUnparseable {
			return recovery.Result{}, recovery.Permanent(merr)
		}
		sc.Progress("recovering without %d malformed template(s) (gitlab.fail_on_unparseable is false): %s", len(set.Malformed), problemList(set.Malformed, 10))
	}
	if len(set.Files) == 0 {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("no Argo CD Application found under %q at %s: check gitlab.templates_path",
			g.cfg.GitLab.TemplatesPath, short(sha)))
	}
	if len(set.UnusedOverrides) > 0 {
		sc.Progress("gitlab.overrides name no Application in the templates (typo?): %s", strings.Join(set.UnusedOverrides, ", "))
	}
	sc.Progress("%d Application(s) for %s from %s at %s", len(set.Files), dst, g.cfg.GitLab.TemplatesPath, short(sha))
	return recovery.Result{Outputs: generateOutputs(set, sha, dst)}, nil
}

func generateOutputs(set *Set, sha string, dst Destination) map[string]string {
	out := map[string]string{
		"source_sha":  sha,
		"hash":        set.Hash,
		"count":       strconv.Itoa(len(set.Files)),
		"namespaces":  mustJSON(set.Namespaces()),
		"skipped":     mustJSON(nonNil(set.Skipped)),
		"destination": dst.String(),
	}
	if len(set.Malformed) > 0 {
		out["malformed"] = mustJSON(set.Malformed)
	}
	if len(set.UnusedOverrides) > 0 {
		out["unused_overrides"] = strings.Join(set.UnusedOverrides, ",")
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encoding %T: %v", v, err)) // only plain maps and slices reach here
	}
	return string(b)
}

func problemList(ps []Problem, max int) string {
	var parts []string
	for i, p := range ps {
		if i == max {
			parts = append(parts, fmt.Sprintf("and %d more", len(ps)-max))
			break
		}
		parts = append(parts, p.String())
	}
	return strings.Join(parts, "; ")
}
