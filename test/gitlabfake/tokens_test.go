package gitlabfake_test

import (
	"net/http"
	"slices"
	"testing"

	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/test/gitlabfake"
)

func TestTokenSelfListsItsScopesAndDefaultsToAPI(t *testing.T) {
	srv := gitlabfake.New(t)
	srv.AddToken("glpat-default")
	srv.AddToken("glpat-narrow")
	srv.SetTokenScopes("glpat-narrow", "read_api", "write_repository")

	tok, _, err := newClient(t, srv, "glpat-default").PersonalAccessTokens.GetSinglePersonalAccessToken()
	if err != nil || !slices.Equal(tok.Scopes, []string{"api"}) || !tok.Active || tok.Revoked {
		t.Fatalf("default token = %+v, %v", tok, err)
	}
	tok, _, err = newClient(t, srv, "glpat-narrow").PersonalAccessTokens.GetSinglePersonalAccessToken()
	if err != nil || !slices.Equal(tok.Scopes, []string{"read_api", "write_repository"}) {
		t.Fatalf("narrow token = %+v, %v", tok, err)
	}
}

func TestATokenWithoutAPIMayReadButNotWrite(t *testing.T) {
	srv := gitlabfake.New(t)
	srv.AddToken("glpat-read")
	srv.AddProject(project, "main")
	srv.SetTokenScopes("glpat-read", "read_api")
	c := newClient(t, srv, "glpat-read")
	if _, _, err := c.Branches.GetBranch(project, "main"); err != nil {
		t.Errorf("read_api cannot read a branch: %v", err)
	}
	_, _, err := c.Branches.CreateBranch(project, &gitlab.CreateBranchOptions{Branch: gitlab.Ptr("drbot/x"), Ref: gitlab.Ptr("main")})
	if err == nil || statusOf(t, err) != http.StatusForbidden {
		t.Errorf("read_api created a branch: %v", err)
	}
	if _, ok := srv.Branch(project, "drbot/x"); ok {
		t.Error("the refused branch exists")
	}
	srv.SetTokenScopes("glpat-read", "read_repository")
	if _, _, err := c.Projects.GetProject(project, nil); err == nil || statusOf(t, err) != http.StatusForbidden {
		t.Errorf("read_repository read the API: %v", err)
	}
}

func TestProjectPermissionsShowTheUsersAccessLevel(t *testing.T) {
	srv := gitlabfake.New(t)
	id := srv.AddUser("glpat-dev", "drbot")
	srv.AddProject(project, "main")
	c := newClient(t, srv, "glpat-dev")
	p, _, err := c.Projects.GetProject(project, nil)
	if err != nil || p.Permissions == nil || p.Permissions.ProjectAccess == nil || p.Permissions.ProjectAccess.AccessLevel != gitlab.MaintainerPermissions {
		t.Fatalf("default access = %+v, %v; want Maintainer", p.Permissions, err)
	}
	srv.SetAccessLevel(project, id, gitlabfake.AccessReporter)
	p, _, _ = c.Projects.GetProject(project, nil)
	if p.Permissions.ProjectAccess.AccessLevel != gitlab.ReporterPermissions {
		t.Errorf("access after SetAccessLevel = %d, want Reporter", p.Permissions.ProjectAccess.AccessLevel)
	}
	srv.SetAccessLevel(project, id, 0)
	p, _, _ = c.Projects.GetProject(project, nil)
	if p.Permissions.ProjectAccess != nil {
		t.Errorf("a non-member has project access %+v", p.Permissions.ProjectAccess)
	}
}
