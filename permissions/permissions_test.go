package permissions

import (
	"slices"
	"strings"
	"testing"
)

func sample() Set {
	return Set{
		Steps: []Step{
			{ID: "a", Need: Need{
				AWS:    []AWS{{Actions: []string{"eks:DescribeCluster"}, Resources: []string{"arn:aws:eks:${DR_REGION}:${ACCOUNT_ID}:cluster/${DR_CLUSTER}"}}},
				Kube:   []KubeRule{{Cluster: Management, Namespace: "${ARGOCD_NAMESPACE}", APIGroup: "", Resources: []string{"secrets"}, Verbs: []string{"get", "create"}}},
				Vault:  []VaultPath{{Path: "auth/${VAULT_TARGET_MOUNT}/role/*", Capabilities: []string{"read", "update"}}},
				GitLab: []GitLabCall{{Method: "GET", Path: "/projects/:id/repository/branches/:branch", Scope: "read_api", Role: Reporter}},
			}},
			{ID: "b", Need: Need{
				AWS:    []AWS{{Actions: []string{"elasticloadbalancing:DescribeTags"}}},
				Kube:   []KubeRule{{Cluster: Management, Namespace: "${ARGOCD_NAMESPACE}", APIGroup: "", Resources: []string{"secrets"}, Verbs: []string{"delete"}}},
				GitLab: []GitLabCall{{Method: "PUT", Path: "/projects/:id/merge_requests/:iid/merge", Scope: "api", Role: Developer}},
			}},
		},
		Other: map[string]Need{"serve": {Slack: []string{"chat:write", "commands"}}},
	}
}

func TestAllowsChecksTheNamedStepOnly(t *testing.T) {
	s := sample()
	vars := map[string]string{"ARGOCD_NAMESPACE": "argocd", "VAULT_TARGET_MOUNT": "k8s-dr-prod"}
	if !s.AllowsAction("eks:DescribeCluster", "a") || s.AllowsAction("eks:DescribeCluster", "b") || s.AllowsAction("eks:DeleteCluster") {
		t.Error("AllowsAction does not follow the steps' declarations")
	}
	if !s.AllowsKube(Management, vars, "create", "", "secrets", "argocd", "a") || s.AllowsKube(Management, vars, "delete", "", "secrets", "argocd", "a") ||
		s.AllowsKube(Management, vars, "get", "", "secrets", "kube-system", "a") || s.AllowsKube(DR, vars, "get", "", "secrets", "argocd") {
		t.Error("AllowsKube does not follow verb, namespace and cluster")
	}
	if !s.AllowsVault(vars, "auth/k8s-dr-prod/role/payments", []string{"create", "update"}, "a") || s.AllowsVault(vars, "auth/kubernetes/role/payments", []string{"read"}, "a") ||
		s.AllowsVault(vars, "auth/k8s-dr-prod/role/payments", []string{"delete"}) {
		t.Error("AllowsVault does not follow path globs and capabilities")
	}
	if !s.AllowsGitLab("GET", "/projects/platform/argocd-apps/repository/branches/drbot/dr-prod", "a") ||
		s.AllowsGitLab("DELETE", "/projects/platform/argocd-apps/repository/branches/drbot/dr-prod") ||
		s.AllowsGitLab("PUT", "/projects/1/merge_requests/7/merge", "a") || !s.AllowsGitLab("PUT", "/projects/1/merge_requests/7/merge") {
		t.Error("AllowsGitLab does not follow methods, paths and steps")
	}
}

func TestVaultListOnAPathIsCoveredByItsChildGlob(t *testing.T) {
	s := Set{Steps: []Step{{ID: "x", Need: Need{Vault: []VaultPath{{Path: "auth/kubernetes/role/*", Capabilities: []string{"list"}}}}}}}
	if !s.AllowsVault(nil, "auth/kubernetes/role", VaultCapability("GET", true), "x") {
		t.Error("LIST auth/kubernetes/role is routed as auth/kubernetes/role/ and matches auth/kubernetes/role/*")
	}
	if s.AllowsVault(nil, "auth/kubernetes/role", VaultCapability("GET", false), "x") {
		t.Error("a read is not a list")
	}
}

func TestHelpersMergeAndSort(t *testing.T) {
	s := sample()
	if got := s.AWSActions(); !slices.Equal(got, []string{"eks:DescribeCluster", "elasticloadbalancing:DescribeTags"}) {
		t.Errorf("AWSActions = %v", got)
	}
	rules := s.KubeRules(Management)
	if len(rules) != 1 || !slices.Equal(rules[0].Verbs, []string{"get", "create", "delete"}) {
		t.Errorf("KubeRules = %+v, want one secrets rule with the verbs of both steps", rules)
	}
	if scopes, role := s.GitLabScopes(); !slices.Equal(scopes, []string{"api"}) || role != Developer {
		t.Errorf("GitLabScopes = %v %s, want [api] Developer", scopes, role)
	}
	if got := s.VaultCapabilities()["auth/${VAULT_TARGET_MOUNT}/role/*"]; !slices.Equal(got, []string{"read", "update"}) {
		t.Errorf("VaultCapabilities = %v", got)
	}
	if got := s.SlackScopes(); !slices.Equal(got, []string{"chat:write", "commands"}) {
		t.Errorf("SlackScopes = %v", got)
	}
}

func TestValidateRefusesWildcardsUnscopedGrantsAndUnknownPlaceholders(t *testing.T) {
	for name, need := range map[string]Need{
		"wildcard action":    {AWS: []AWS{{Actions: []string{"eks:*"}, Resources: []string{"arn:aws:eks:::cluster/x"}}}},
		"scopable on *":      {AWS: []AWS{{Actions: []string{"eks:DeleteCluster"}}}},
		"star resource":      {AWS: []AWS{{Actions: []string{"eks:DeleteCluster"}, Resources: []string{"*"}}}},
		"unknown var":        {AWS: []AWS{{Actions: []string{"eks:DeleteCluster"}, Resources: []string{"arn:aws:eks:${NOPE}"}}}},
		"management *":       {Kube: []KubeRule{{Cluster: Management, APIGroup: "*", Resources: []string{"*"}, Verbs: []string{"get"}}}},
		"gitlab write scope": {GitLab: []GitLabCall{{Method: "POST", Path: "/x", Scope: "write_repository"}}},
	} {
		err := Set{Steps: []Step{{ID: "s", Need: need}}}.Validate()
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := sample().Validate(); err != nil {
		t.Errorf("a good set: %v", err)
	}
}

func TestIAMActionNamesTheGrantAnSDKCallNeeds(t *testing.T) {
	for _, c := range []struct{ svc, op, want string }{
		{"eks", "CreateCluster", "eks:CreateCluster"},
		{"apigateway", "UpdateIntegration", "apigateway:PATCH"},
		{"apigateway", "GetStage", "apigateway:GET"},
		{"apigateway", "CreateDeployment", "apigateway:POST"},
		{"s3", "ListObjectsV2", "s3:ListBucket"},
		{"cloudfront", "UpdateDistribution2020_05_31", "cloudfront:UpdateDistribution"},
		{"elasticloadbalancing", "DescribeTags", "elasticloadbalancing:DescribeTags"},
	} {
		if got := IAMAction(c.svc, c.op); got != c.want {
			t.Errorf("IAMAction(%s, %s) = %s, want %s", c.svc, c.op, got, c.want)
		}
	}
}

func TestRenderedPolicyGrantsStarOnlyToUnscopedActions(t *testing.T) {
	doc, err := IAMPolicy(sample())
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	star := s[strings.Index(s, `"NoResourceLevelPermissions"`):]
	star = star[:strings.Index(star, "}")]
	if !strings.Contains(star, "elasticloadbalancing:DescribeTags") || strings.Contains(star, "eks:DescribeCluster") {
		t.Errorf("the * statement is %s", star)
	}
}

func TestRunbookSaysWhichStepsRunAfterAnAbort(t *testing.T) {
	doc := string(Runbook(Set{Steps: []Step{
		{ID: "postmortem", Title: "Write the post-mortem", Phase: "close", OnAbort: true},
		{ID: "teardown", Title: "Tear the drill down", Phase: "close", Drill: true, OnAbort: true},
		{ID: "deploy.watch", Title: "Watch", Phase: "deploy"},
	}}))
	for _, want := range []string{
		"Write the post-mortem (also after an abort)",
		"Tear the drill down (drills only; also after an abort)",
		"**Write the post-mortem.** Phase close, runs after an abort too.",
		"**Tear the drill down.** Phase close, drills only, runs after an abort too.",
		"**Watch.** Phase deploy.\n",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("the runbook lacks %q:\n%s", want, doc)
		}
	}
}
