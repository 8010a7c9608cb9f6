package vaultfake_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/drbot/drbot/test/vaultfake"
)

func newClient(t *testing.T, srv *vaultfake.Server, token string) *vault.Client {
	t.Helper()
	cfg := vault.DefaultConfig()
	cfg.Address = srv.URL()
	cfg.MaxRetries = 0
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatalf("creating vault client: %v", err)
	}
	c.SetToken(token)
	return c
}

// madeUpJWT is shaped like a service account token but signs nothing.
func madeUpJWT() string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc([]byte(`{"sub":"system:serviceaccount:vault:reviewer"}`)) + ".c2ln"
}

func madeUpCA() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("made-up certificate bytes")}))
}

func responseStatus(t *testing.T, err error) int {
	t.Helper()
	var re *vault.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v is not a *api.ResponseError", err)
	}
	return re.StatusCode
}

func TestEnableAuthThenConfigIsReadBackWithoutReviewerJWT(t *testing.T) {
	srv := vaultfake.New(t)
	c := newClient(t, srv, srv.RootToken())

	if err := c.Sys().EnableAuthWithOptions("k8s-dr", &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatalf("enabling auth: %v", err)
	}
	mounts, err := c.Sys().ListAuth()
	if err != nil {
		t.Fatalf("listing auth mounts: %v", err)
	}
	if m := mounts["k8s-dr/"]; m == nil || m.Type != "kubernetes" {
		t.Fatalf("auth mount k8s-dr/ = %+v, want type kubernetes", m)
	}
	if m := mounts["token/"]; m == nil || m.Type != "token" {
		t.Errorf("token/ mount missing from %v", mounts)
	}

	jwt := madeUpJWT()
	_, err = c.Logical().Write("auth/k8s-dr/config", map[string]any{
		"kubernetes_host":    "https://dr.example.internal",
		"kubernetes_ca_cert": madeUpCA(),
		"token_reviewer_jwt": jwt,
	})
	if err != nil {
		t.Fatalf("writing config: %v", err)
	}
	sec, err := c.Logical().Read("auth/k8s-dr/config")
	if err != nil {
		t.Fatalf("reading config: %v", err)
	}
	if got := sec.Data["kubernetes_host"]; got != "https://dr.example.internal" {
		t.Errorf("kubernetes_host = %v", got)
	}
	if got := sec.Data["kubernetes_ca_cert"]; got != madeUpCA() {
		t.Errorf("kubernetes_ca_cert = %v", got)
	}
	if _, present := sec.Data["token_reviewer_jwt"]; present {
		t.Errorf("config read returned token_reviewer_jwt; Vault never does")
	}
	if got := sec.Data["disable_local_ca_jwt"]; got != false {
		t.Errorf("disable_local_ca_jwt = %v, want false", got)
	}
	stored, ok := srv.AuthConfig("k8s-dr")
	if !ok || stored["token_reviewer_jwt"] != jwt {
		t.Errorf("stored reviewer JWT not kept")
	}
}

func TestConfigWriteRejectsMissingHostAndNonPEMCA(t *testing.T) {
	srv := vaultfake.New(t)
	srv.EnableKubernetesAuth("k8s-dr")
	c := newClient(t, srv, srv.RootToken())

	_, err := c.Logical().Write("auth/k8s-dr/config", map[string]any{"kubernetes_ca_cert": madeUpCA()})
	if err == nil || responseStatus(t, err) != 400 || !strings.Contains(err.Error(), "no host provided") {
		t.Errorf("config without host: err = %v, want 400 no host provided", err)
	}
	// The base64 CA from EKS DescribeCluster must be decoded to PEM first.
	b64 := base64.StdEncoding.EncodeToString([]byte(madeUpCA()))
	_, err = c.Logical().Write("auth/k8s-dr/config", map[string]any{"kubernetes_host": "https://x", "kubernetes_ca_cert": b64})
	if err == nil || responseStatus(t, err) != 400 {
		t.Errorf("config with base64 CA: err = %v, want 400", err)
	}
	if _, ok := srv.AuthConfig("k8s-dr"); ok {
		t.Errorf("a rejected config write was stored")
	}
}

func TestRoleWriteReadRoundTripsTTLInSeconds(t *testing.T) {
	srv := vaultfake.New(t)
	srv.EnableKubernetesAuth("k8s-dr")
	c := newClient(t, srv, srv.RootToken())

	_, err := c.Logical().Write("auth/k8s-dr/role/payments", map[string]any{
		"bound_service_account_names":      []string{"payments"},
		"bound_service_account_namespaces": []string{"payments", "payments-jobs"},
		"token_policies":                   []string{"payments-read"},
		"token_ttl":                        "1h",
		"audience":                         "vault",
	})
	if err != nil {
		t.Fatalf("writing role: %v", err)
	}
	sec, err := c.Logical().Read("auth/k8s-dr/role/payments")
	if err != nil || sec == nil {
		t.Fatalf("reading role: %v, %v", sec, err)
	}
	if got := sec.Data["token_ttl"]; got != json.Number("3600") {
		t.Errorf("token_ttl = %#v, want json.Number 3600", got)
	}
	if got := sec.Data["bound_service_account_namespaces"]; !reflect.DeepEqual(got, []any{"payments", "payments-jobs"}) {
		t.Errorf("namespaces = %#v", got)
	}
	if got := sec.Data["token_policies"]; !reflect.DeepEqual(got, []any{"payments-read"}) {
		t.Errorf("token_policies = %#v", got)
	}
	if got := sec.Data["audience"]; got != "vault" {
		t.Errorf("audience = %v", got)
	}
	if got := sec.Data["alias_name_source"]; got != "serviceaccount_uid" {
		t.Errorf("alias_name_source = %v, want the plugin default", got)
	}
	if _, present := sec.Data["policies"]; present {
		t.Errorf("deprecated policies echoed although token_policies was used")
	}

	missing, err := c.Logical().Read("auth/k8s-dr/role/nope")
	if err != nil || missing != nil {
		t.Errorf("reading a missing role = %v, %v; want nil, nil (404)", missing, err)
	}
}

func TestRoleValidationMatchesThePlugin(t *testing.T) {
	srv := vaultfake.New(t)
	srv.EnableKubernetesAuth("k8s-dr")
	c := newClient(t, srv, srv.RootToken())

	cases := []struct {
		name   string
		fields map[string]any
		want   string
	}{
		{"no names", map[string]any{"bound_service_account_namespaces": "a"}, `"bound_service_account_names" can not be empty`},
		{"no namespaces", map[string]any{"bound_service_account_names": "a"}, `"bound_service_account_namespaces" can not be empty`},
		{"star mixed", map[string]any{"bound_service_account_names": "a,*", "bound_service_account_namespaces": "a"}, `can not mix "*" with values`},
		{"bad ttl", map[string]any{"bound_service_account_names": "a", "bound_service_account_namespaces": "a", "token_ttl": "soon"}, `field "token_ttl"`},
		{"bad alias source", map[string]any{"bound_service_account_names": "a", "bound_service_account_namespaces": "a", "alias_name_source": "x"}, "alias_name_source"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Logical().Write("auth/k8s-dr/role/r", tc.fields)
			if err == nil || responseStatus(t, err) != 400 || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want 400 containing %q", err, tc.want)
			}
		})
	}
	if _, ok := srv.Role("k8s-dr", "r"); ok {
		t.Errorf("an invalid role was stored")
	}

	// A namespace selector replaces the namespaces list; deprecated aliases map to token_*.
	sec, err := c.Logical().Write("auth/k8s-dr/role/legacy", map[string]any{
		"bound_service_account_names":              "app",
		"bound_service_account_namespace_selector": `{"matchLabels":{"team":"a"}}`,
		"policies": "old-style",
		"ttl":      600,
	})
	if err != nil {
		t.Fatalf("writing legacy role: %v", err)
	}
	if sec == nil || len(sec.Warnings) == 0 {
		t.Errorf("want the plugin's missing-audience warning, got %+v", sec)
	}
	got, _ := srv.Role("k8s-dr", "legacy")
	if !reflect.DeepEqual(got["token_policies"], []string{"old-style"}) || got["token_ttl"] != int64(600) || got["ttl"] != int64(600) {
		t.Errorf("deprecated aliases not mapped: %v", got)
	}
}

func TestListRolesAndCopyThemToAnotherMount(t *testing.T) {
	srv := vaultfake.New(t)
	for _, name := range []string{"orders", "billing", "search"} {
		srv.PutRole("kubernetes", name, map[string]any{
			"bound_service_account_names":      []string{name},
			"bound_service_account_namespaces": []string{name},
			"token_policies":                   []string{name + "-read", "common"},
			"token_ttl":                        "20m",
			"token_max_ttl":                    7200,
			"audience":                         "vault",
		})
	}
	c := newClient(t, srv, srv.RootToken())
	if err := c.Sys().EnableAuthWithOptions("k8s-dr", &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatalf("enabling auth: %v", err)
	}

	list, err := c.Logical().List("auth/kubernetes/role")
	if err != nil || list == nil {
		t.Fatalf("listing roles: %v, %v", list, err)
	}
	keys, _ := list.Data["keys"].([]any)
	if !reflect.DeepEqual(keys, []any{"billing", "orders", "search"}) {
		t.Fatalf("keys = %v", keys)
	}
	for _, k := range keys {
		name := k.(string)
		role, err := c.Logical().Read("auth/kubernetes/role/" + name)
		if err != nil {
			t.Fatalf("reading role %q: %v", name, err)
		}
		// What a read returns must be writable as-is.
		if _, err := c.Logical().Write("auth/k8s-dr/role/"+name, role.Data); err != nil {
			t.Fatalf("copying role %q: %v", name, err)
		}
	}
	for _, name := range []string{"orders", "billing", "search"} {
		src, _ := srv.Role("kubernetes", name)
		dst, ok := srv.Role("k8s-dr", name)
		// As in Vault, writing back token_type "default" stores "default-service".
		if dst["token_type"] != "default-service" || src["token_type"] != "default" {
			t.Errorf("role %q: token_type %v -> %v, want default -> default-service", name, src["token_type"], dst["token_type"])
		}
		delete(src, "token_type")
		delete(dst, "token_type")
		if !ok || !reflect.DeepEqual(src, dst) {
			t.Errorf("role %q: copy %v differs from source %v", name, dst, src)
		}
	}
	if got, _ := srv.Role("k8s-dr", "orders"); got["token_ttl"] != int64(1200) {
		t.Errorf("copied token_ttl = %v, want 1200", got["token_ttl"])
	}

	// Listing on an unmounted path is a 404 in Vault, which the client turns into nil.
	empty, err := c.Logical().List("auth/k8s-other/role")
	if err != nil || empty != nil {
		t.Errorf("listing roles on an unmounted path = %v, %v; want nil, nil", empty, err)
	}
}

func TestKVv2GetReturnsSeededDataAndMetadata(t *testing.T) {
	srv := vaultfake.New(t)
	srv.PutKV("secret", "drbot/newrelic", map[string]any{"license_key": "made-up-licence"})
	srv.PutKV("secret", "drbot/newrelic", map[string]any{"license_key": "made-up-licence-2"})
	c := newClient(t, srv, srv.RootToken())

	got, err := c.KVv2("secret").Get(context.Background(), "drbot/newrelic")
	if err != nil {
		t.Fatalf("reading KV: %v", err)
	}
	if got.Data["license_key"] != "made-up-licence-2" || got.VersionMetadata.Version != 2 {
		t.Errorf("got data %v version %d, want the second version", got.Data, got.VersionMetadata.Version)
	}
	v1, err := c.KVv2("secret").GetVersion(context.Background(), "drbot/newrelic", 1)
	if err != nil || v1.Data["license_key"] != "made-up-licence" {
		t.Errorf("version 1 = %v, %v", v1, err)
	}
	if _, err := c.KVv2("secret").Get(context.Background(), "drbot/missing"); !errors.Is(err, vault.ErrSecretNotFound) {
		t.Errorf("missing secret err = %v, want ErrSecretNotFound", err)
	}

	if _, err := c.KVv2("secret").Put(context.Background(), "drbot/other", map[string]any{"k": "v"}); err != nil {
		t.Fatalf("writing KV: %v", err)
	}
	if d, ok := srv.KV("secret", "drbot/other"); !ok || d["k"] != "v" {
		t.Errorf("written secret = %v, %v", d, ok)
	}
	keys, err := c.Logical().List("secret/metadata/drbot")
	if err != nil || keys == nil || !reflect.DeepEqual(keys.Data["keys"], []any{"newrelic", "other"}) {
		t.Errorf("listing secret/metadata/drbot = %v, %v", keys, err)
	}
	mounts, err := c.Sys().ListMounts()
	if err != nil {
		t.Fatalf("listing mounts: %v", err)
	}
	if m := mounts["secret/"]; m == nil || m.Type != "kv" || m.Options["version"] != "2" {
		t.Errorf("secret/ mount = %+v, want kv v2", m)
	}
}

func TestBadOrMissingTokenIsPermissionDenied(t *testing.T) {
	srv := vaultfake.New(t)
	for _, token := range []string{"made-up-unknown-token", ""} {
		c := newClient(t, srv, token)
		c.ClearToken()
		if token != "" {
			c.SetToken(token)
		}
		_, err := c.Sys().ListAuth()
		if err == nil {
			t.Fatalf("token %q: listing auth succeeded", token)
		}
		var re *vault.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 403 || !slices.Contains(re.Errors, "permission denied") {
			t.Errorf("token %q: err = %v, want 403 permission denied", token, err)
		}
	}
}

func TestDuplicateEnableAuthFails(t *testing.T) {
	srv := vaultfake.New(t)
	c := newClient(t, srv, srv.RootToken())
	opts := &vault.EnableAuthOptions{Type: "kubernetes"}
	if err := c.Sys().EnableAuthWithOptions("k8s-dr", opts); err != nil {
		t.Fatalf("first enable: %v", err)
	}
	err := c.Sys().EnableAuthWithOptions("k8s-dr", opts)
	if err == nil || responseStatus(t, err) != 400 || !strings.Contains(err.Error(), "path is already in use at k8s-dr/") {
		t.Errorf("second enable err = %v, want 400 path is already in use", err)
	}
	if err := c.Sys().DisableAuth("k8s-dr"); err != nil {
		t.Fatalf("disabling: %v", err)
	}
	if err := c.Sys().EnableAuthWithOptions("k8s-dr", opts); err != nil {
		t.Errorf("enable after disable: %v", err)
	}
}

func TestCapabilitiesSelfFollowsPolicies(t *testing.T) {
	srv := vaultfake.New(t)
	root := newClient(t, srv, srv.RootToken())
	err := root.Sys().PutPolicy("drbot", `
path "auth/k8s-dr/*" { capabilities = ["create", "read", "update", "delete", "list"] }
path "auth/k8s-dr/config" { capabilities = ["read"] }
path "auth/+/role/*" { capabilities = ["read", "list"] }
path "sys/auth/*" { capabilities = ["create", "update", "delete", "sudo"] }
path "secret/data/prod/*" { capabilities = ["deny"] }
path "secret/data/*" { capabilities = ["read"] }
`)
	if err != nil {
		t.Fatalf("writing policy: %v", err)
	}
	if caps, err := root.Sys().CapabilitiesSelf("auth/k8s-dr/config"); err != nil || !reflect.DeepEqual(caps, []string{"root"}) {
		t.Errorf("root capabilities = %v, %v", caps, err)
	}

	srv.AddToken("made-up-drbot-token", "drbot")
	c := newClient(t, srv, "made-up-drbot-token")
	for path, want := range map[string][]string{
		"auth/k8s-dr/config":     {"read"},                                       // exact beats glob
		"auth/k8s-dr/role/x":     {"create", "delete", "list", "read", "update"}, // later wildcard beats auth/+/
		"auth/kubernetes/role/x": {"list", "read"},
		"secret/data/app/db":     {"read"},
		"secret/data/prod/db":    {"deny"},
		"sys/policies/acl/drbot": {"deny"},
		"sys/auth/k8s-dr":        {"create", "delete", "sudo", "update"},
		"auth/kubernetes/login":  {"deny"},
	} {
		caps, err := c.Sys().CapabilitiesSelf(path)
		if err != nil {
			t.Fatalf("capabilities-self %q: %v", path, err)
		}
		if !reflect.DeepEqual(caps, want) {
			t.Errorf("capabilities %q = %v, want %v", path, caps, want)
		}
	}

	// The same policies gate real requests.
	if err := c.Sys().EnableAuthWithOptions("k8s-dr", &vault.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Errorf("enabling auth with sudo policy: %v", err)
	}
	if _, err := c.Logical().Write("auth/k8s-dr/config", map[string]any{"kubernetes_host": "https://x"}); err == nil || responseStatus(t, err) != 403 {
		t.Errorf("config write with read-only rule: err = %v, want 403", err)
	}
	if err := c.Sys().PutPolicy("other", `path "x" { capabilities = ["read"] }`); err == nil || responseStatus(t, err) != 403 {
		t.Errorf("policy write without a rule: err = %v, want 403", err)
	}
}

func TestPoliciesCanBeWrittenListedAndDeleted(t *testing.T) {
	srv := vaultfake.New(t)
	c := newClient(t, srv, srv.RootToken())
	if err := c.Sys().PutPolicy("Payments-Read", `path "secret/data/payments/*" { capabilities = ["read"] }`); err != nil {
		t.Fatalf("writing policy: %v", err)
	}
	names, err := c.Sys().ListPolicies()
	if err != nil || !reflect.DeepEqual(names, []string{"default", "payments-read", "root"}) {
		t.Errorf("policies = %v, %v", names, err)
	}
	text, err := c.Sys().GetPolicy("payments-read")
	if err != nil || !strings.Contains(text, "secret/data/payments/*") {
		t.Errorf("policy text = %q, %v", text, err)
	}
	if err := c.Sys().PutPolicy("broken", `path "x" { capabilities = ["fly"] }`); err == nil || responseStatus(t, err) != 400 {
		t.Errorf("invalid policy err = %v, want 400", err)
	}
	if err := c.Sys().DeletePolicy("payments-read"); err != nil {
		t.Fatalf("deleting policy: %v", err)
	}
	if _, ok := srv.Policy("payments-read"); ok {
		t.Errorf("policy still stored after delete")
	}
}

func TestUnknownRequestsAreAnsweredLoudlyAndRecorded(t *testing.T) {
	srv := vaultfake.New(t)
	srv.AllowUnexpected()
	srv.EnableKubernetesAuth("k8s-dr")
	c := newClient(t, srv, srv.RootToken())

	_, err := c.Logical().Write("auth/k8s-dr/not-modelled", map[string]any{"role": "x"})
	if err == nil || responseStatus(t, err) != 404 {
		t.Errorf("unmodelled path err = %v, want 404", err)
	}
	_, err = c.Logical().Delete("auth/k8s-dr/config")
	if err == nil || responseStatus(t, err) != 405 {
		t.Errorf("config delete err = %v, want 405", err)
	}
	un := srv.Unexpected()
	if len(un) != 2 || !strings.Contains(un[0], "auth/k8s-dr/not-modelled") || !strings.Contains(un[1], "auth/k8s-dr/config") {
		t.Errorf("unexpected = %q", un)
	}
	calls := srv.Calls()
	if len(calls) != 2 || calls[0].Status != 404 || calls[1].Op != "delete" {
		t.Errorf("calls = %+v", calls)
	}
}
