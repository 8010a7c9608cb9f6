package vaultauth

import (
	"fmt"
	"testing"
)

func TestRoleBodyFoldsDeprecatedAliasesIntoTokenFields(t *testing.T) {
	read := map[string]any{
		"policies": []any{"a"}, "token_policies": []any{"a"}, // both echoed by Vault
		"ttl":                         "1800", // an old role read without its token_* twin
		"token_type":                  "default",
		"bound_service_account_names": []any{"app"},
	}
	got := fmt.Sprint(RoleBody(read))
	if want := "map[bound_service_account_names:[app] token_policies:[a] token_ttl:1800]"; got != want {
		t.Errorf("RoleBody = %s, want %s", got, want)
	}
}

func TestSameRoleIgnoresAliasesButNotGrants(t *testing.T) {
	src := map[string]any{"policies": []any{"a"}, "token_policies": []any{"a"}, "bound_service_account_names": []any{"app"}}
	copied := map[string]any{"token_policies": []any{"a"}, "bound_service_account_names": []any{"app"}}
	if !SameRole(src, copied) {
		t.Error("a copy without the deprecated echo is not the same role")
	}
	widened := map[string]any{"token_policies": []any{"a", "admin"}, "bound_service_account_names": []any{"app"}}
	if SameRole(src, widened) {
		t.Error("a role with another policy counts as the same")
	}
}
