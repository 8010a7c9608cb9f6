package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/drbot/drbot/config"
)

const repoRoot = "../.."

func TestCheckedInConfigReferenceIsWhatTheGeneratorWrites(t *testing.T) {
	want, err := render(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile(filepath.Join(repoRoot, outFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Fatalf("%s is stale: run make generate (go run ./hack/gendocs)", outFile)
	}
	again, err := render(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, want) {
		t.Fatal("two renders differ: the generator is not deterministic")
	}
}

func TestCheckModeFailsOnAStaleReference(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"config", "docs", "examples"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, filepath.Join(repoRoot, exampleFile), filepath.Join(root, exampleFile))
	goFiles, _ := filepath.Glob(filepath.Join(repoRoot, "config", "*.go"))
	for _, f := range goFiles {
		copyFile(t, f, filepath.Join(root, "config", filepath.Base(f)))
	}
	if err := os.WriteFile(filepath.Join(root, outFile), []byte("# old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(root, true); err == nil || !strings.Contains(err.Error(), "stale") {
		t.Fatalf("check on a stale file: got %v, want a stale error", err)
	}
	if err := run(root, false); err != nil {
		t.Fatal(err)
	}
	if err := run(root, true); err != nil {
		t.Fatalf("check right after generating: %v", err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDescriptionsReadAsYAMLNotGo(t *testing.T) {
	out, err := render(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(out)
	for _, want := range []string{
		// A field doc loses its Go name: "DeployTimeout bounds …" → "Bounds …".
		"| `argocd.deploy_timeout` | duration |  | `30m` | Bounds deploy.watch",
		// Go field names in a type's doc become keys.
		"`chart`, `repo` and `namespace` default per add-on name; `version` is required.",
		"(named by `dr.cluster_name`)",
		// An inlined struct's fields take its doc.
		"| `cutover.route53[].ingress` | string |  |  | Names the Kubernetes object",
		// Enums, map keys, secrets and their _file form.
		"| `targets[].cluster.provider` | one of `terraform`, `eks`, `existing` | yes |",
		"Keys: `merge`, `cutover`.",
		"| `slack.bot_token_file` | absolute file path | yes (or `bot_token`) |",
		// Examples come from examples/drbot.yaml, long ones as a link to the line.
		"`\"${SLACK_BOT_TOKEN}\"`",
		"(../examples/drbot.yaml#L",
		// Add-on defaults come from the config package.
		"| `istio-gateway` | `gateway` | `https://istio-release.storage.googleapis.com/charts` | `istio-ingress` |",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("reference lacks %q", want)
		}
	}
	keys := map[string]bool{}
	for _, k := range config.Keys() {
		keys[k.Path] = true
	}
	for _, line := range strings.Split(doc, "\n") {
		rest, ok := strings.CutPrefix(line, "| `")
		path, _, _ := strings.Cut(rest, "`")
		if ok && keys[path] && strings.Count(strings.ReplaceAll(line, `\|`, ""), "|") != 7 {
			t.Errorf("table row with a stray pipe: %s", line)
		}
	}
}

func TestSentenceDropsTheGoNameAndKeepsTheMeaning(t *testing.T) {
	for _, c := range []struct{ name, in, want string }{
		{"Readiness", "Readiness is the scheduled check.", "The scheduled check."},
		{"Checks", "Checks are HTTP requests\nthrough the endpoints.", "HTTP requests through the endpoints."},
		{"PathStyle", "PathStyle addresses the bucket", "Addresses the bucket."},
		{"IngressManifests", "IngressManifests (istio-gateway only) are applied after the gateway.", "Applied after the gateway (istio-gateway only)."},
		{"Cutover", "Lists entry points; see Config.CutoverFor", "Lists entry points."},
		{"X", "", ""},
	} {
		if got := sentence(c.name, c.in); got != c.want {
			t.Errorf("sentence(%q, %q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}
