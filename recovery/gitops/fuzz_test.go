package gitops_test

import (
	"bytes"
	"path"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
)

// FuzzTemplates feeds Generate one primary template and one override, both
// fuzzed YAML. Generated files must be YAML that reads back as the DR
// Application they claim to be, under the DR path, and the same input must
// give the same bytes.
func FuzzTemplates(f *testing.F) {
	f.Add([]byte(gitopstest.Application(3, false)), []byte("replicaCount: 4\nimage: {tag: 2.3.1-dr}\nvalueFiles: [values-dr.yaml]\nspec: {syncPolicy: {automated: {selfHeal: false}}}\n"))
	f.Add([]byte(gitopstest.Application(7, true)), []byte("valueFiles: values-dr.yaml\n"))
	f.Fuzz(func(t *testing.T, template, override []byte) {
		opts := gitops.GenerateOptions{
			DRPath:      "apps/dr",
			Destination: gitops.Destination{Name: drCluster},
			Waves:       []gitops.Wave{{Name: "tier-0", Selector: map[string]string{"tier": "tier-0"}}, {Name: "edge", Apps: []string{"gateway"}}},
		}
		var ov map[string]any
		if yaml.Unmarshal(override, &ov) == nil && ov != nil {
			opts.Overrides = map[string]map[string]any{"unused": ov}
			var meta struct {
				Metadata struct {
					Name string `yaml:"name"`
				} `yaml:"metadata"`
			}
			if yaml.Unmarshal(template, &meta) == nil && meta.Metadata.Name != "" {
				opts.Overrides[meta.Metadata.Name] = ov
			}
		}
		if bytes.HasPrefix(override, []byte("#suffix")) {
			opts.NameSuffix = "-dr"
		}
		srcs := []gitops.Source{{Path: "apps/primary/app.yaml", Content: template}}
		first := gitops.Generate(srcs, opts) // must never panic
		second := gitops.Generate(srcs, opts)
		if first.Hash != second.Hash || !reflect.DeepEqual(first, second) {
			t.Fatalf("same input, different sets:\n%+v\n---\n%+v", first, second)
		}
		if len(first.Files) > 0 && len(first.Malformed) > 0 {
			t.Fatalf("a file was used although it is malformed: %v", first.Malformed)
		}
		for _, file := range first.Files {
			checkGenerated(t, file, opts)
		}
	})
}

func checkGenerated(t *testing.T, file gitops.File, opts gitops.GenerateOptions) {
	t.Helper()
	if path.Clean(file.Path) != file.Path || !strings.HasPrefix(file.Path, opts.DRPath+"/") || path.Dir(file.Path) != opts.DRPath+"/"+file.Namespace {
		t.Fatalf("file %q (namespace %q) is not a clean path under %s/<namespace>", file.Path, file.Namespace, opts.DRPath)
	}
	var app struct {
		Kind     string `yaml:"kind"`
		Metadata struct {
			Name string `yaml:"name"`
		} `yaml:"metadata"`
		Spec struct {
			Destination map[string]any `yaml:"destination"`
		} `yaml:"spec"`
		Status any `yaml:"status"`
	}
	if err := yaml.Unmarshal(file.Content, &app); err != nil {
		t.Fatalf("generated %s does not parse: %v\n%s", file.Path, err, file.Content)
	}
	// Unmarshal into a struct skips unknown keys; a generic decode checks the
	// whole document (duplicate keys, aliases before their anchors).
	var whole map[string]any
	if err := yaml.Unmarshal(file.Content, &whole); err != nil {
		t.Fatalf("generated %s does not parse: %v\n%s", file.Path, err, file.Content)
	}
	if app.Kind != "Application" || app.Metadata.Name != file.App || app.Status != nil {
		t.Fatalf("generated %s reads back as kind %q name %q (want Application %q) with status %v", file.Path, app.Kind, app.Metadata.Name, file.App, app.Status)
	}
	if app.Spec.Destination["name"] != drCluster || app.Spec.Destination["server"] != nil {
		t.Fatalf("generated %s deploys to %v, want name %s", file.Path, app.Spec.Destination, drCluster)
	}
}
