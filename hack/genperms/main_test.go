package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbot/drbot/permissions"
	"github.com/drbot/drbot/recovery/standard"
)

const repoRoot = "../.."

func render(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := permissions.Render(standard.Permissions())
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestRenderIsByteForByteDeterministic(t *testing.T) {
	a, b := render(t), render(t)
	if len(a) != len(b) {
		t.Fatalf("two renders made %d and %d files", len(a), len(b))
	}
	for p, content := range a {
		if !bytes.Equal(content, b[p]) {
			t.Errorf("%s differs between two renders", p)
		}
	}
}

func TestCheckedInArtefactsAreWhatTheDeclarationGenerates(t *testing.T) {
	for p, want := range render(t) {
		got, err := os.ReadFile(filepath.Join(repoRoot, p))
		if err != nil {
			t.Errorf("%s: %v (run make generate)", p, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run make generate and commit it", p)
		}
	}
}

func TestGeneratorWritesEveryFileUnderTheRoot(t *testing.T) {
	dir := t.TempDir()
	if err := generate(dir); err != nil {
		t.Fatal(err)
	}
	for p, want := range render(t) {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s not written as rendered (err %v)", p, err)
		}
	}
}

func TestIAMPolicyHasNoWildcardActionAndStarResourcesOnlyForUnscopedActions(t *testing.T) {
	var doc struct {
		Statement []struct {
			Sid      string
			Effect   string
			Action   []string
			Resource json.RawMessage
		}
	}
	if err := json.Unmarshal(render(t)["manifests/iam/drbot-policy.json"], &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Statement) == 0 {
		t.Fatal("the policy has no statements")
	}
	granted := map[string]bool{}
	for _, st := range doc.Statement {
		if st.Effect != "Allow" {
			t.Errorf("%s: effect %s", st.Sid, st.Effect)
		}
		var star string
		starred := json.Unmarshal(st.Resource, &star) == nil
		if starred && star != "*" {
			t.Errorf("%s: resource %q is a string but not *", st.Sid, star)
		}
		var list []string
		if !starred {
			if err := json.Unmarshal(st.Resource, &list); err != nil {
				t.Fatalf("%s: resource %s", st.Sid, st.Resource)
			}
			for _, r := range list {
				if r == "*" || !strings.HasPrefix(r, "arn:aws:") {
					t.Errorf("%s: resource %q is not an ARN pattern", st.Sid, r)
				}
			}
		}
		for _, a := range st.Action {
			granted[a] = true
			if strings.ContainsAny(a, "*?") {
				t.Errorf("%s: wildcard action %q", st.Sid, a)
			}
			if starred && !permissions.IsUnscoped(a) {
				t.Errorf("%s: %s supports resource-level permissions but is granted on *", st.Sid, a)
			}
		}
	}
	// Every declared action is granted somewhere.
	for _, a := range standard.Permissions().AWSActions() {
		if !granted[a] {
			t.Errorf("declared action %s is not in the policy", a)
		}
	}
}

func TestRunbookReferenceHasEveryStepWithItsRollback(t *testing.T) {
	doc := string(render(t)["docs/runbook.md"])
	for _, s := range standard.Steps() {
		i := strings.Index(doc, "\n## "+s.ID+"\n")
		if i < 0 {
			t.Errorf("docs/runbook.md has no section for %s", s.ID)
			continue
		}
		section := doc[i+1:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
		if !strings.Contains(section, "**By hand, if drbot is unavailable.**") || !strings.Contains(section, "**Reads and changes.**") {
			t.Errorf("the section of %s lacks its manual rollback or what it touches", s.ID)
		}
		if s.Gate != "" && !strings.Contains(section, "**Approval gate") {
			t.Errorf("the section of %s does not say what its gate shows", s.ID)
		}
	}
}

func TestVaultPolicyGlobsOnlyAtTheEnd(t *testing.T) {
	for _, line := range strings.Split(string(render(t)["manifests/vault/drbot.hcl"]), "\n") {
		if p, ok := strings.CutPrefix(line, "path \""); ok {
			p = strings.TrimSuffix(p, "\" {")
			if i := strings.IndexByte(p, '*'); i >= 0 && i != len(p)-1 {
				t.Errorf("vault path %q has a * before its end, which Vault does not allow", p)
			}
			if strings.Contains(p, "${") {
				t.Errorf("vault path %q keeps a placeholder", p)
			}
		}
	}
}
