package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/gitlabfake"
)

func TestPlanLiveSaysWhatStepsWouldCreateWithoutChangingAnything(t *testing.T) {
	aws := awsfake.New(t, awsfake.Options{})
	for _, kv := range aws.Env("eu-central-1", "AKIDPLAN0000000001", "made-up-plan-secret") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
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
	if n := aws.CallsTo("eks", "CreateCluster"); n != 0 {
		t.Errorf("the plan called CreateCluster %d times", n)
	}
}
