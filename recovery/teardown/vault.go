package teardown

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// removeVault disables the DR cluster's Kubernetes auth mount (which takes its
// config and every copied role with it).
func (x *attempt) removeVault(ctx context.Context) (string, error) {
	mount := strings.Trim(x.t.cfg.Vault.TargetMountFor(x.target.Name), "/")
	what := "Vault auth mount auth/" + mount
	fix := "disable it by hand: vault auth disable " + mount
	switch {
	case mount == "":
		return "no DR auth mount configured (vault.target_mount is empty)", nil
	case mount == strings.Trim(x.t.cfg.Vault.SourceMount, "/"):
		// vault.auth refuses this too; never disable the primary's mount.
		x.leave(PartVault, what, errors.New("vault.target_mount resolves to the primary cluster's mount"), "drbot will not disable it; fix vault.target_mount")
		return "", nil
	case x.t.opts.Vault == nil:
		x.leave(PartVault, what, errors.New("teardown was built without a Vault client (a wiring bug)"), fix)
		return "", nil
	}
	sys := x.t.opts.Vault.Sys()
	mounts, err := sys.ListAuthWithContext(ctx)
	if err != nil {
		x.leave(PartVault, what, fmt.Errorf("listing Vault auth mounts: %w", err), fix)
		return "", nil
	}
	m, ok := mounts[mount+"/"]
	if !ok {
		return "auth/" + mount + " already gone", nil
	}
	if m.Type != "kubernetes" {
		x.leave(PartVault, what, fmt.Errorf("it is a %s auth method, not the kubernetes one vault.auth makes", m.Type), "drbot will not disable it; check vault.target_mount")
		return "", nil
	}
	if err := sys.DisableAuthWithContext(ctx, mount); err != nil {
		x.leave(PartVault, what, fmt.Errorf("disabling it: %w", err), fix)
		return "", nil
	}
	x.sc.Progress("disabled Vault auth mount auth/%s", mount)
	return "disabled auth/" + mount, nil
}
