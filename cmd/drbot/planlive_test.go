package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/iam"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/gitlabfake"
)

func TestPlanLiveSaysWhatStepsWouldCreateWithoutChangingAnything(t *testing.T) {
	aws := awsfake.New(t, awsfake.Options{})
	for _, kv := range aws.Env("eu-central-1", "AKIDPLAN0000000001", "made-up-plan-secret") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	// One role exists already (an earlier drill left it): the plan says it is reused.
	existing := iam.NamesFor("prod-eu-dr").KarpenterNodeRole
	trust := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`
	if _, err := awsiam.NewFromConfig(aws.Config("eu-central-1", "AKIDPLAN0000000001", "made-up-plan-secret")).CreateRole(context.Background(),
		&awsiam.CreateRoleInput{RoleName: &existing, AssumeRolePolicyDocument: &trust}); err != nil {
		t.Fatal(err)
	}
	gl := gitlabfake.New(t)
	gl.AddToken("made-up-gitlab-token")
	t.Setenv("GITLAB_TOKEN", "made-up-gitlab-token")
	gl.AddProject("platform/argocd-apps", "main")
	gl.CommitFiles("platform/argocd-apps", "main", gitopstest.Templates(gitopstest.Options{Dir: "apps/prod-eu-west-1", Services: 12}), "primary templates")
	headBefore, _ := gl.Branch("platform/argocd-apps", "main")

	raw, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(raw), "url: https://gitlab.example.com", "url: "+gl.URL(), 1)
	path := filepath.Join(t.TempDir(), "drbot.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := drbot(t, "plan", "-config", path, "-target", "prod-eu", "-live")
	if code != 0 {
		t.Fatalf("code=%d err=%s", code, errOut)
	}
	for _, want := range []string{
		"What the steps would do now (read live; nothing is changed):",
		"would create EKS cluster prod-eu-dr in eu-central-1",
		"would create IAM role " + iam.NamesFor("prod-eu-dr").LBCRole,
		"would create EKS access entries (cluster admin) for arn:aws:iam::",
		"IAM role " + existing + " exists: would reuse it",
		"would create or label 12 namespace(s), each with the Secret newrelic-license",
		"Merge request (drbot/<run id> → main): 12 file(s)",
		"addons.lbc",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("live plan lacks %q:\n%s", want, out)
		}
	}
	if head, _ := gl.Branch("platform/argocd-apps", "main"); head != headBefore || len(gl.MergeRequests("platform/argocd-apps")) != 0 {
		t.Error("the plan changed GitLab")
	}
	for _, c := range aws.Calls() {
		if !strings.HasPrefix(c.Operation, "Get") && !strings.HasPrefix(c.Operation, "Describe") && !strings.HasPrefix(c.Operation, "List") && c.Operation != "CreateRole" {
			t.Errorf("the plan called %s %s", c.Service, c.Operation)
		}
	}
}
