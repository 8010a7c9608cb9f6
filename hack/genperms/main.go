// Command genperms writes the artefacts generated from the permission
// declaration (recovery/standard/permissions.go): the IAM policy and trust
// policies, the management-cluster RBAC and the DR access entry, the Vault
// policy, and docs/runbook.md. Run from the repository root (make generate);
// CI regenerates and fails on a diff.
package main

import (
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/drbot/drbot/permissions"
	"github.com/drbot/drbot/recovery/standard"
)

func main() {
	root := flag.String("root", ".", "repository root to write under")
	flag.Parse()
	if err := generate(*root); err != nil {
		fmt.Fprintln(os.Stderr, "genperms:", err)
		os.Exit(1)
	}
}

func generate(root string) error {
	files, err := permissions.Render(standard.Permissions())
	if err != nil {
		return err
	}
	for _, p := range slices.Sorted(maps.Keys(files)) {
		path := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating the directory of %s: %w", p, err)
		}
		if err := os.WriteFile(path, files[p], 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}
