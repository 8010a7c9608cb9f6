package readiness

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	vault "github.com/hashicorp/vault/api"

	"github.com/drbot/drbot/config"
)

// CheckVault is the id of the Vault check.
const CheckVault = "vault"

// VaultNeed is a path drbot uses and the capabilities it needs there. Each
// entry of Caps is one capability or alternatives joined by "|"
// ("create|update": Vault picks one by whether the path exists).
type VaultNeed struct {
	Path string
	Caps []string
}

// VaultCheck reads, and never writes: the primary cluster's auth mount has
// its roles, the New Relic licence key is readable (its value is never
// shown) and drbot's token has the capabilities the runbook needs
// (sys/capabilities-self, a POST that only reads).
type VaultCheck struct {
	Config *config.Config
	// Client carries drbot's token; nil with ClientErr set fails the check.
	Client    *vault.Client
	ClientErr error
	// Roles are role names the primary mount must have (e.g. the ones the
	// services log in with). Empty: at least one role must exist.
	Roles []string
	// Needs returns the capabilities needed for a target (DefaultVaultNeeds when nil).
	Needs func(t *config.Target) []VaultNeed
}

// DefaultVaultNeeds is what vault.auth and namespaces do for a target:
// enable and configure the DR auth mount, copy the primary's roles to it,
// read the licence key.
func DefaultVaultNeeds(cfg *config.Config, t *config.Target) []VaultNeed {
	mount := strings.Trim(cfg.Vault.TargetMountFor(t.Name), "/")
	source := strings.Trim(cfg.Vault.SourceMount, "/")
	kvMount, kvPath := cfg.Vault.NewRelicKV()
	return []VaultNeed{
		{Path: "sys/auth/" + mount, Caps: []string{"sudo", "create|update"}},
		{Path: "auth/" + mount + "/config", Caps: []string{"create|update"}},
		{Path: "auth/" + mount + "/role/drbot-probe", Caps: []string{"create|update", "read"}},
		{Path: "auth/" + source + "/role", Caps: []string{"list"}},
		{Path: "auth/" + source + "/role/drbot-probe", Caps: []string{"read"}},
		{Path: kvMount + "/data/" + kvPath, Caps: []string{"read"}},
	}
}

// ID is the check's id.
func (v *VaultCheck) ID() string { return CheckVault }

// Run checks the shared mount and key once and the capabilities per target.
func (v *VaultCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	const title = "Vault: the primary's roles, the New Relic key and drbot's capabilities"
	if v.ClientErr != nil || v.Client == nil {
		err := v.ClientErr
		if err == nil {
			err = errors.New("no Vault client")
		}
		return []Result{ErrorResult(CheckVault, "", title, err, "check vault.address and drbot's Vault login (vault.token or vault.auth)")}
	}
	shared := v.shared(ctx)
	var out []Result
	for _, t := range targets {
		res := Result{Check: CheckVault, Target: t.Name, Title: title, Status: Pass}
		res.Evidence = append(res.Evidence, shared.evidence...)
		var fixes []string
		if shared.failed {
			res.Status = Fail
			fixes = append(fixes, shared.fixes...)
		}
		needs := DefaultVaultNeeds(v.Config, t)
		if v.Needs != nil {
			needs = v.Needs(t)
		}
		ev, ok, err := v.capabilities(ctx, needs)
		switch {
		case err != nil:
			res.Status = Fail
			res.Evidence = append(res.Evidence, err.Error())
			fixes = append(fixes, "let drbot's token call sys/capabilities-self (the default policy allows it)")
		case !ok:
			res.Status = Fail
			res.Evidence = append(res.Evidence, ev...)
			fixes = append(fixes, "add the missing capabilities to the policies of drbot's Vault token")
		default:
			res.Evidence = append(res.Evidence, ev...)
		}
		res.Fix = strings.Join(fixes, "; ")
		out = append(out, res)
	}
	return out
}

type vaultShared struct {
	failed   bool
	evidence []string
	fixes    []string
}

func (v *VaultCheck) shared(ctx context.Context) vaultShared {
	var s vaultShared
	fail := func(evidence, fix string) {
		s.failed = true
		s.evidence = append(s.evidence, evidence)
		s.fixes = append(s.fixes, fix)
	}
	source := strings.Trim(v.Config.Vault.SourceMount, "/")
	list, err := v.Client.Logical().ListWithContext(ctx, "auth/"+source+"/role")
	var roles []string
	if err == nil && list != nil {
		keys, _ := list.Data["keys"].([]any)
		for _, k := range keys {
			if name, ok := k.(string); ok {
				roles = append(roles, name)
			}
		}
	}
	sort.Strings(roles)
	switch {
	case err != nil:
		fail(fmt.Sprintf("cannot list the roles of auth/%s: %s", source, firstLine(err.Error())), "check vault.source_mount and that drbot's token may list its roles")
	case len(roles) == 0:
		fail(fmt.Sprintf("auth/%s has no roles: a recovery would copy none and no service could log in", source), "check vault.source_mount names the primary cluster's kubernetes auth mount")
	default:
		var missing []string
		for _, want := range v.Roles {
			if !slices.Contains(roles, want) {
				missing = append(missing, want)
			}
		}
		if len(missing) > 0 {
			fail(fmt.Sprintf("role(s) %s missing from auth/%s (it has: %s)", strings.Join(missing, ", "), source, strings.Join(roles, ", ")),
				"restore the role(s) in the primary mount, or update the expected roles if they were renamed on purpose")
		} else {
			s.evidence = append(s.evidence, fmt.Sprintf("auth/%s has %d role(s): %s", source, len(roles), clipList(roles, 12)))
		}
	}

	kvMount, kvPath := v.Config.Vault.NewRelicKV()
	field := v.Config.Vault.NewRelicKeyField
	where := fmt.Sprintf("%s/data/%s", kvMount, kvPath)
	sec, err := v.Client.Logical().ReadWithContext(ctx, where)
	switch {
	case err != nil:
		fail(fmt.Sprintf("cannot read the New Relic key at %s: %s", where, firstLine(err.Error())), "let drbot's token read vault.newrelic_key_path")
	case sec == nil || sec.Data == nil:
		fail(fmt.Sprintf("the New Relic key %s does not exist", where), "write the licence key at vault.newrelic_key_path or fix the path")
	default:
		data, _ := sec.Data["data"].(map[string]any)
		val, _ := data[field].(string)
		if val == "" {
			fail(fmt.Sprintf("the New Relic key %s has no non-empty field %q", where, field), "check vault.newrelic_key_field")
		} else {
			s.evidence = append(s.evidence, fmt.Sprintf("the New Relic key %s has field %q (value not shown)", where, field))
		}
	}
	return s
}

// capabilities asks sys/capabilities-self for every path at once.
func (v *VaultCheck) capabilities(ctx context.Context, needs []VaultNeed) ([]string, bool, error) {
	if len(needs) == 0 {
		return nil, true, nil
	}
	paths := make([]string, len(needs))
	for i, n := range needs {
		paths[i] = n.Path
	}
	sec, err := v.Client.Logical().WriteWithContext(ctx, "sys/capabilities-self", map[string]any{"paths": paths})
	if err != nil {
		return nil, false, fmt.Errorf("asking sys/capabilities-self: %s", firstLine(err.Error()))
	}
	if sec == nil {
		return nil, false, errors.New("sys/capabilities-self answered nothing")
	}
	var missing []string
	for _, n := range needs {
		raw, _ := sec.Data[n.Path].([]any)
		var have []string
		for _, c := range raw {
			if s, ok := c.(string); ok {
				have = append(have, s)
			}
		}
		if slices.Contains(have, "root") {
			continue
		}
		for _, want := range n.Caps {
			if !slices.ContainsFunc(strings.Split(want, "|"), func(c string) bool { return slices.Contains(have, c) }) {
				missing = append(missing, fmt.Sprintf("%s needs %s (has: %s)", n.Path, want, orNone(have)))
			}
		}
	}
	if len(missing) > 0 {
		return missing, false, nil
	}
	return []string{fmt.Sprintf("the token has the capabilities needed on %d path(s)", len(needs))}, true, nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func clipList(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(" and %d more", len(items)-max)
}

// firstLine makes a (possibly multi-line) error one line of at most 300
// characters: Vault's errors put the useful part on later lines.
func firstLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 300 {
		s = string(r[:299]) + "…"
	}
	return s
}
