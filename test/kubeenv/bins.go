package kubeenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// VersionKey names the cache directory hack/kube-bins.sh builds into: .cache/kube/<VersionKey>/bin.
// It must match the versions in tools/kube/go.mod, tools/etcd/go.mod and the script's KWOK_VERSION (a test checks).
const VersionKey = "k8s-v1.37.2-etcd-v3.6.13-kwok-v0.8.0"

// BinEnv overrides where the control-plane binaries are looked for.
const BinEnv = "DRBOT_KUBE_BIN"

// PrepareCommand is what builds the binaries.
const PrepareCommand = "make kube-bins"

// requiredFiles are what a bin directory must hold.
var requiredFiles = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "stages.yaml"}

// errNoBins marks binaries that are absent, as opposed to a broken checkout.
var errNoBins = errors.New("control-plane binaries not prepared")

// binDir finds the directory holding the control-plane binaries: $DRBOT_KUBE_BIN, else the cache below the module root.
func binDir() (string, error) {
	dir := os.Getenv(BinEnv)
	if dir == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		dir = filepath.Join(root, ".cache", "kube", VersionKey, "bin")
		// The script writes the stamp last, so a half-finished build is not used.
		if _, err := os.Stat(filepath.Join(dir, "..", ".complete")); err != nil {
			return "", fmt.Errorf("%w: %s is missing or incomplete; run `%s` (hack/kube-bins.sh) to build them", errNoBins, dir, PrepareCommand)
		}
	}
	var missing []string
	for _, f := range requiredFiles {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.IsDir() {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return "", fmt.Errorf("%w: %s lacks %s; run `%s` (hack/kube-bins.sh) to build them", errNoBins, dir, strings.Join(missing, ", "), PrepareCommand)
	}
	return dir, nil
}

// moduleRoot walks up from the working directory (a package directory under go test) to the directory holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("finding module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// CRDDir is the directory of CustomResourceDefinitions that Start installs by default (test/testdata/crds), or ""
// when the module root cannot be found.
func CRDDir() string {
	root, err := moduleRoot()
	if err != nil {
		return ""
	}
	return filepath.Join(root, "test", "testdata", "crds")
}
