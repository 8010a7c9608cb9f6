package kubeenv

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestVersionKeyMatchesToolsModules keeps the Go side's cache key in step with what hack/kube-bins.sh builds.
func TestVersionKeyMatchesToolsModules(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	find := func(file, pattern string) string {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(pattern).FindSubmatch(data)
		if m == nil {
			t.Fatalf("%s: no match for %s", file, pattern)
		}
		return string(m[1])
	}
	k8s := find("tools/kube/go.mod", `(?m)^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)`)
	etcd := find("tools/etcd/go.mod", `(?m)^\s*(?:require\s+)?go\.etcd\.io/etcd/server/v3 (v\S+)`)
	kwok := find("hack/kube-bins.sh", `(?m)^KWOK_VERSION=(v\S+)`)
	if want := "k8s-" + k8s + "-etcd-" + etcd + "-kwok-" + kwok; VersionKey != want {
		t.Errorf("VersionKey = %q, want %q", VersionKey, want)
	}
}

// TestMissingBinariesNameThePrepareCommand checks the message a developer sees before the first `make kube-bins`.
func TestMissingBinariesNameThePrepareCommand(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "etcd"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(BinEnv, dir)
	_, err := binDir()
	if err == nil {
		t.Fatal("binDir found binaries in a directory holding only etcd")
	}
	for _, want := range []string{"make kube-bins", "kube-apiserver", "kwok", "stages.yaml"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "etcd,") {
		t.Errorf("error %q lists etcd, which is present", err)
	}
}

// TestCRDDirHoldsTheCRDs checks that CRDDir points at the shipped definitions, each one a valid CRD document.
func TestCRDDirHoldsTheCRDs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(CRDDir(), "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %q (err %v)", CRDDir(), err)
	}
	got := map[string]string{}
	for _, f := range files {
		objs, err := readObjects(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			scope, _, _ := unstructured.NestedString(o.Object, "spec", "scope")
			got[o.GetName()] = scope
		}
	}
	want := map[string]string{
		"applications.argoproj.io":            "Namespaced",
		"appprojects.argoproj.io":             "Namespaced",
		"nodepools.karpenter.sh":              "Cluster",
		"ec2nodeclasses.karpenter.k8s.aws":    "Cluster",
		"gateways.networking.istio.io":        "Namespaced",
		"virtualservices.networking.istio.io": "Namespaced",
	}
	for name, scope := range want {
		if got[name] != scope {
			t.Errorf("crd %s scope = %q, want %q", name, got[name], scope)
		}
	}
	if len(got) != len(want) {
		t.Errorf("found %d CRDs %v, want %d", len(got), got, len(want))
	}
}
