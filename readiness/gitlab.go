package readiness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/config"
)

// CheckGitLab is the id of the GitLab check.
const CheckGitLab = "gitlab"

// GitLabCheck reads the token's own record and the project: the token has
// the api scope (drbot creates branches, commits and merge requests through
// the REST API), drbot is at least Developer in the project and the
// default branch exists.
type GitLabCheck struct {
	Config    *config.Config
	Client    *gitlab.Client
	ClientErr error
}

// ID is the check's id.
func (g *GitLabCheck) ID() string { return CheckGitLab }

// Run checks once: the project is shared by every target.
func (g *GitLabCheck) Run(ctx context.Context, _ []*config.Target) []Result {
	const title = "GitLab: the token's scopes and drbot's access to the templates project"
	if g.ClientErr != nil || g.Client == nil {
		err := g.ClientErr
		if err == nil {
			err = errors.New("no GitLab client")
		}
		return []Result{ErrorResult(CheckGitLab, "", title, err, "check gitlab.url and gitlab.token")}
	}
	res := Result{Check: CheckGitLab, Title: title, Status: Pass}
	var fixes []string
	fail := func(evidence, fix string) {
		res.Status = Fail
		res.Evidence = append(res.Evidence, evidence)
		fixes = append(fixes, fix)
	}
	pid := g.Config.GitLab.Project

	tok, _, err := g.Client.PersonalAccessTokens.GetSinglePersonalAccessToken(gitlab.WithContext(ctx))
	switch {
	case err != nil:
		fail("cannot read the token's own record (GET /personal_access_tokens/self): "+firstLine(err.Error()), "check gitlab.token is a valid personal, project or group access token")
	case tok.Revoked || !tok.Active:
		fail(fmt.Sprintf("the token %q is revoked or inactive", tok.Name), "issue a new token with the api scope and update gitlab.token")
	case !slices.Contains(tok.Scopes, "api"):
		fail(fmt.Sprintf("the token %q has scopes [%s] but drbot needs api (it creates branches, commits and merge requests through the API)", tok.Name, strings.Join(tok.Scopes, ", ")),
			"issue a token with the api scope and update gitlab.token")
	default:
		line := fmt.Sprintf("the token %q has scopes [%s]", tok.Name, strings.Join(tok.Scopes, ", "))
		if tok.ExpiresAt != nil {
			line += ", expires " + tok.ExpiresAt.String()
		}
		res.Evidence = append(res.Evidence, line)
	}

	proj, _, err := g.Client.Projects.GetProject(pid, nil, gitlab.WithContext(ctx))
	if err != nil {
		fail(fmt.Sprintf("cannot read project %q: %s", pid, firstLine(err.Error())), "check gitlab.project and that drbot's token can see it")
		res.Fix = strings.Join(fixes, "; ")
		return []Result{res}
	}
	level := gitlab.NoPermissions
	if p := proj.Permissions; p != nil {
		if p.ProjectAccess != nil {
			level = max(level, p.ProjectAccess.AccessLevel)
		}
		if p.GroupAccess != nil {
			level = max(level, p.GroupAccess.AccessLevel)
		}
	}
	if level < gitlab.DeveloperPermissions {
		fail(fmt.Sprintf("drbot's access to project %s is %s; pushing branches and opening merge requests needs Developer", proj.PathWithNamespace, accessName(level)),
			"make drbot's GitLab user (or the token's bot user) a Developer or Maintainer of the project")
	} else {
		res.Evidence = append(res.Evidence, fmt.Sprintf("drbot is %s of project %s", accessName(level), proj.PathWithNamespace))
	}
	branch := g.Config.GitLab.DefaultBranch
	if _, _, err := g.Client.Branches.GetBranch(pid, branch, gitlab.WithContext(ctx)); err != nil {
		fail(fmt.Sprintf("branch %q of project %s: %s", branch, proj.PathWithNamespace, firstLine(err.Error())), "check gitlab.default_branch")
	} else {
		res.Evidence = append(res.Evidence, fmt.Sprintf("branch %s exists", branch))
	}
	res.Fix = strings.Join(fixes, "; ")
	return []Result{res}
}

func accessName(l gitlab.AccessLevelValue) string {
	switch {
	case l >= gitlab.OwnerPermissions:
		return "Owner"
	case l >= gitlab.MaintainerPermissions:
		return "Maintainer"
	case l >= gitlab.DeveloperPermissions:
		return "Developer"
	case l >= gitlab.ReporterPermissions:
		return "Reporter"
	case l >= gitlab.GuestPermissions:
		return "Guest"
	}
	return "no access"
}
