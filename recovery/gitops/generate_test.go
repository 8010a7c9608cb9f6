package gitops_test

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
)

func sources(files map[string]string) []gitops.Source {
	var out []gitops.Source
	for p, c := range files {
		if gitops.IsTemplateFile(p) {
			out = append(out, gitops.Source{Path: p, Content: []byte(c)})
		}
	}
	return out
}

func decode(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatalf("generated file is not YAML: %v\n%s", err, b)
	}
	return m
}

func dig(m map[string]any, keys ...string) any {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = mm[k]
	}
	return cur
}

func TestGenerateIsByteIdenticalWhateverTheOrderOfFilesAndKeys(t *testing.T) {
	files := gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: 40})
	opts := gitops.GenerateOptions{DRPath: "apps/dr", Destination: gitops.Destination{Name: drCluster}}
	first := gitops.Generate(sources(files), opts)

	// Same templates, files in another order and the keys of one template reordered.
	shuffled := sources(files)
	rand.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for i, s := range shuffled {
		if strings.HasSuffix(s.Path, "svc-0002.yaml") {
			var doc yaml.Node
			if err := yaml.Unmarshal(s.Content, &doc); err != nil {
				t.Fatal(err)
			}
			m := doc.Content[0]
			// Swap "apiVersion" and "kind" with the last pairs.
			m.Content[0], m.Content[len(m.Content)-2] = m.Content[len(m.Content)-2], m.Content[0]
			m.Content[1], m.Content[len(m.Content)-1] = m.Content[len(m.Content)-1], m.Content[1]
			out, err := yaml.Marshal(&doc)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(out, s.Content) {
				t.Fatal("reordering did not change the template")
			}
			shuffled[i].Content = out
		}
	}
	second := gitops.Generate(shuffled, opts)

	if first.Hash != second.Hash || len(first.Files) != 40 || len(second.Files) != 40 {
		t.Fatalf("hash %s with %d files, then %s with %d files; want equal with 40", first.Hash, len(first.Files), second.Hash, len(second.Files))
	}
	for i := range first.Files {
		if first.Files[i].Path != second.Files[i].Path || !bytes.Equal(first.Files[i].Content, second.Files[i].Content) {
			t.Fatalf("file %d differs:\n%s\n---\n%s", i, first.Files[i].Content, second.Files[i].Content)
		}
	}
}

func TestGenerateSwitchesOnlyTheDestinationAndWritesStableFileNames(t *testing.T) {
	files := gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: 12})
	for _, dst := range []gitops.Destination{{Name: drCluster}, {Server: "https://10.1.2.3:6443"}} {
		set := gitops.Generate(sources(files), gitops.GenerateOptions{DRPath: "apps/dr/", Destination: dst})
		if len(set.Files) != 12 || len(set.Malformed) != 0 {
			t.Fatalf("%v: %d files, malformed %v", dst, len(set.Files), set.Malformed)
		}
		for _, f := range set.Files {
			want := "apps/dr/" + f.Namespace + "/" + f.App + ".yaml"
			if f.Path != want {
				t.Errorf("path %q, want %q", f.Path, want)
			}
			got := decode(t, f.Content)
			i, err := strconv.Atoi(strings.TrimPrefix(f.App, "svc-"))
			if err != nil {
				t.Fatal(err)
			}
			primary := decode(t, []byte(gitopstest.Application(i, false)))
			gotDst := dig(got, "spec", "destination").(map[string]any)
			wantDst := map[string]any{"namespace": gitopstest.Namespace(i)}
			if dst.Name != "" {
				wantDst["name"] = dst.Name
			} else {
				wantDst["server"] = dst.Server
			}
			if !reflect.DeepEqual(gotDst, wantDst) {
				t.Errorf("%s destination = %v, want %v", f.App, gotDst, wantDst)
			}
			// Everything else is the primary's: source (image, chart, Git URL, values), sync policy, labels.
			delete(got["spec"].(map[string]any), "destination")
			delete(primary["spec"].(map[string]any), "destination")
			if !reflect.DeepEqual(got, primary) {
				t.Errorf("%s differs from its primary template beyond the destination:\n got %v\nwant %v", f.App, got, primary)
			}
		}
	}
}

func TestOverridesMergeIntoHelmValuesWithoutDroppingThePrimarysValues(t *testing.T) {
	files := gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: 3})
	set := gitops.Generate(sources(files), gitops.GenerateOptions{
		DRPath: "apps/dr", Destination: gitops.Destination{Name: drCluster},
		Overrides: map[string]map[string]any{
			// svc-0000: a chart with valuesObject.
			"svc-0000": {"replicaCount": 4, "image": map[string]any{"tag": "2.0.1-dr"}, "valueFiles": []any{"values-dr.yaml"}},
			// svc-0001: a Git source whose values are a string.
			"svc-0001": {"replicaCount": 2},
			// svc-0002: a plain directory source; spec is merged as is.
			"svc-0002": {"spec": map[string]any{"syncPolicy": map[string]any{"automated": map[string]any{"selfHeal": false}}}},
			"svc-9999": {"replicaCount": 1},
		},
	})
	byApp := map[string]map[string]any{}
	for _, f := range set.Files {
		byApp[f.App] = decode(t, f.Content)
	}
	vo := dig(byApp["svc-0000"], "spec", "source", "helm", "valuesObject").(map[string]any)
	if vo["replicaCount"] != 4 || !reflect.DeepEqual(vo["image"], map[string]any{"repository": "registry.example.com/svc-0000", "tag": "2.0.1-dr"}) {
		t.Errorf("svc-0000 valuesObject = %v, want replicaCount 4 and the tag overridden, repository kept", vo)
	}
	if vf := dig(byApp["svc-0000"], "spec", "source", "helm", "valueFiles"); !reflect.DeepEqual(vf, []any{"values-dr.yaml"}) {
		t.Errorf("svc-0000 valueFiles = %v", vf)
	}
	helm1 := dig(byApp["svc-0001"], "spec", "source", "helm").(map[string]any)
	if _, ok := helm1["valuesObject"]; ok {
		t.Errorf("svc-0001 got a valuesObject, which would replace its values string in Argo CD: %v", helm1)
	}
	var values map[string]any
	if err := yaml.Unmarshal([]byte(helm1["values"].(string)), &values); err != nil {
		t.Fatal(err)
	}
	if values["replicaCount"] != 2 || dig(values, "image", "tag") != "1.10" {
		t.Errorf("svc-0001 values = %v, want replicaCount 2 and the string tag 1.10 kept", values)
	}
	if auto := dig(byApp["svc-0002"], "spec", "syncPolicy", "automated"); !reflect.DeepEqual(auto, map[string]any{"prune": true, "selfHeal": false}) {
		t.Errorf("svc-0002 automated = %v, want prune kept and selfHeal false", auto)
	}
	if !reflect.DeepEqual(set.UnusedOverrides, []string{"svc-9999"}) {
		t.Errorf("unused overrides = %v, want [svc-9999]", set.UnusedOverrides)
	}
}

func TestMalformedTemplatesAreAllReportedInOneErrorAndOtherKindsSkipped(t *testing.T) {
	files := gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: 20, Malformed: 3})
	// The same Application name twice is malformed too: Argo CD names are unique.
	files["apps/primary/dup/a.yaml"] = gitopstest.Application(5, false)
	set := gitops.Generate(sources(files), gitops.GenerateOptions{DRPath: "apps/dr", Destination: gitops.Destination{Name: drCluster}})
	err := set.MalformedError()
	if err == nil {
		t.Fatal("no error for malformed templates")
	}
	for _, want := range []string{
		"5 template(s) cannot be used",
		"broken-0.yaml: invalid YAML: yaml: line 4",
		"broken-1.yaml: document 1: metadata.name is missing",
		`broken-2.yaml: document 1: application "no-destination-2" has no spec.destination`,
		`apps/primary/dup/a.yaml: application "svc-0005" is defined 2 times`,
		`apps/primary/payments/svc-0005.yaml: application "svc-0005" is defined 2 times`,
		"fail_on_unparseable",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if len(set.Files) != 19 {
		t.Errorf("%d files, want the 19 good ones", len(set.Files))
	}
	wantSkipped := []string{"apps/primary/payments/svc-0000-pair.yaml: ConfigMap (document 3)", "apps/primary/payments/svc-0010-pair.yaml: ConfigMap (document 3)"}
	if !reflect.DeepEqual(set.Skipped, wantSkipped) {
		t.Errorf("skipped = %v, want %v", set.Skipped, wantSkipped)
	}
}

func TestWavesAnnotateTiersBeforeTheRestAndSuffixKeepsReleaseNames(t *testing.T) {
	files := gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: 8})
	set := gitops.Generate(sources(files), gitops.GenerateOptions{
		DRPath: "apps/dr", Destination: gitops.Destination{Name: drCluster}, NameSuffix: "-dr",
		Waves: []gitops.Wave{{Name: "tier-0", Selector: map[string]string{"tier": "tier-0"}}, {Name: "edge", Apps: []string{"svc-0003"}}},
	})
	got := map[string]any{}
	for _, f := range set.Files {
		m := decode(t, f.Content)
		got[f.App] = dig(m, "metadata", "annotations", "argocd.argoproj.io/sync-wave")
		if f.App == "svc-0000-dr" {
			if rn := dig(m, "spec", "source", "helm", "releaseName"); rn != "svc-0000" {
				t.Errorf("svc-0000-dr releaseName = %v, want the primary's name", rn)
			}
			if name := dig(m, "metadata", "name"); name != "svc-0000-dr" || !strings.HasSuffix(f.Path, "/svc-0000-dr.yaml") {
				t.Errorf("name %v path %s", name, f.Path)
			}
		}
	}
	want := map[string]any{"svc-0000-dr": "-2", "svc-0007-dr": "-2", "svc-0003-dr": "-1"}
	for app, w := range got {
		if want[app] != w {
			t.Errorf("%s sync-wave = %v, want %v", app, w, want[app])
		}
	}
}
