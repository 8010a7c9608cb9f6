package vaultauth_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/recovery/vaultauth"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/vaultfake"
)

const (
	sourceMount = "kubernetes"
	roleCount   = 150
)

// leastPrivilege is the policy in the package documentation, for the mounts of this test.
const leastPrivilege = `
path "sys/auth"                { capabilities = ["read"] }
path "sys/auth/k8s-dr-*"       { capabilities = ["create", "update", "sudo"] }
path "auth/k8s-dr-*"           { capabilities = ["read", "create", "update"] }
path "auth/kubernetes/role/*"  { capabilities = ["read", "list"] }
`

type env struct {
	dr   *kubeenv.Cluster
	vf   *vaultfake.Server
	cfg  *config.Config
	logs *syncBuffer
}

func TestVaultAuth(t *testing.T) {
	e := &env{dr: kubeenv.Start(t, kubeenv.WithName("dr")), vf: vaultfake.New(t), logs: &syncBuffer{}}
	for i := range roleCount {
		e.vf.PutRole(sourceMount, roleName(i), sourceRole(i))
	}
	e.cfg = &config.Config{
		Targets: []config.Target{
			{Name: "prod-eu", DR: config.DR{Region: "eu-west-1", ClusterName: "dr-eu"}},
			{Name: "prod-us", DR: config.DR{Region: "us-west-2", ClusterName: "dr-us"}},
			{Name: "weird", DR: config.DR{Region: "us-west-2", ClusterName: "dr-weird"}},
		},
		Vault: config.Vault{Address: e.vf.URL(), SourceMount: sourceMount, TargetMount: "k8s-dr-{target}"},
	}

	t.Run("CopiesEveryRoleAndConfiguresTheMount", e.testFirstRun)
	t.Run("SecondRunCopiesNothing", e.testSecondRun)
	t.Run("ChangedSourceRoleIsCopiedAgain", e.testChangedRole)
	t.Run("LeastPrivilegePolicyIsEnough", e.testLeastPrivilege)
	t.Run("MountOfAnotherTypeIsRefused", e.testWrongType)
	t.Run("MissingSourceMountIsNamed", e.testMissingSource)
}

func roleName(i int) string { return fmt.Sprintf("svc-%03d", i) }

// sourceRole varies the fields a real primary mount has, including the deprecated aliases.
func sourceRole(i int) map[string]any {
	r := map[string]any{
		"bound_service_account_names":      []any{fmt.Sprintf("app-%d", i), "worker"},
		"bound_service_account_namespaces": []any{fmt.Sprintf("team-%d", i%7)},
		"token_policies":                   []any{fmt.Sprintf("svc-%d-read", i), "common"},
		"token_ttl":                        "1h",
		"token_max_ttl":                    "4h",
	}
	switch i % 5 {
	case 0:
		r["audience"] = "vault"
	case 1:
		// Written long ago with the deprecated names.
		delete(r, "token_policies")
		delete(r, "token_ttl")
		r["policies"] = []any{"legacy"}
		r["ttl"] = "30m"
	case 2:
		delete(r, "bound_service_account_namespaces")
		r["bound_service_account_namespace_selector"] = `{"matchLabels":{"team":"payments"}}`
	case 3:
		r["token_type"] = "batch"
		r["alias_name_source"] = "serviceaccount_name"
	}
	return r
}

func (e *env) client(t *testing.T, token string) *vault.Client {
	t.Helper()
	vc, err := vault.NewClient(&vault.Config{Address: e.vf.URL()})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(token)
	return vc
}

func (e *env) run(t *testing.T, target, token string, cfg *config.Config) steptest.Result {
	t.Helper()
	a, err := vaultauth.New(cfg, e.client(t, token), vaultauth.Options{DR: kube.Static(e.dr.AdminConfig()), Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	return steptest.Run(t, steptest.Options{Target: target, Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))},
		steptest.Stub("cluster.access", recovery.PhaseProvision, map[string]string{
			"endpoint": e.dr.Endpoint(),
			"ca_data":  base64.StdEncoding.EncodeToString(e.dr.CAData()),
		}),
		recovery.Step{ID: "vault.auth", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.access"}, Action: a.Action},
	)
}

func (e *env) testFirstRun(t *testing.T) {
	ctx := testContext(t, time.Minute)
	res := e.run(t, "prod-eu", e.vf.RootToken(), e.cfg)
	requireSucceeded(t, res)

	mount := "k8s-dr-prod-eu"
	var found bool
	for _, m := range e.vf.Mounts() {
		if m.Auth && m.Path == mount+"/" {
			found = m.Type == "kubernetes"
		}
	}
	if !found {
		t.Fatalf("no kubernetes auth mount at %s: %+v", mount, e.vf.Mounts())
	}
	conf, ok := e.vf.AuthConfig(mount)
	if !ok {
		t.Fatal("auth config not written")
	}
	if conf["kubernetes_host"] != e.dr.Endpoint() {
		t.Errorf("kubernetes_host = %v", conf["kubernetes_host"])
	}
	if ca, _ := conf["kubernetes_ca_cert"].(string); strings.TrimSpace(ca) != strings.TrimSpace(string(e.dr.CAData())) || !strings.HasSuffix(ca, "\n") {
		t.Errorf("kubernetes_ca_cert is not the DR cluster's CA as newline-terminated PEM: %q", ca)
	}

	// The reviewer JWT is the service account's token and may call the TokenReview API, as Vault will.
	sec, err := e.dr.Clientset().CoreV1().Secrets("kube-system").Get(ctx, "drbot-token-reviewer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	jwt := string(sec.Data["token"])
	if jwt == "" || conf["token_reviewer_jwt"] != jwt {
		t.Fatal("token_reviewer_jwt is not the reviewer service account's token")
	}
	reviewer := e.dr.AdminConfig()
	reviewer.BearerToken = jwt
	rcs, err := kubernetes.NewForConfig(reviewer)
	if err != nil {
		t.Fatal(err)
	}
	client, err := e.dr.ServiceAccountConfig(ctx, "team-1", "app-1")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := rcs.AuthenticationV1().TokenReviews().Create(ctx, &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: client.BearerToken}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the reviewer cannot review tokens (system:auth-delegator missing?): %v", err)
	}
	if !tr.Status.Authenticated || tr.Status.User.Username != "system:serviceaccount:team-1:app-1" {
		t.Errorf("token review: %+v", tr.Status)
	}

	if got := e.vf.Roles(mount); len(got) != roleCount {
		t.Fatalf("%d roles on the DR mount, want %d", len(got), roleCount)
	}
	for i := range roleCount {
		src, _ := e.vf.Role(sourceMount, roleName(i))
		dst, ok := e.vf.Role(mount, roleName(i))
		if !ok || !vaultauth.SameRole(src, dst) {
			t.Errorf("role %s differs:\n source %v\n dr     %v", roleName(i), src, dst)
		}
	}
	// Spot checks, so "same" cannot be vacuous.
	r1, _ := e.vf.Role(mount, "svc-001")
	if fmt.Sprint(r1["token_policies"], r1["token_ttl"], r1["bound_service_account_names"]) != "[legacy] 1800 [app-1 worker]" {
		t.Errorf("svc-001 on the DR mount: %v", r1)
	}
	r3, _ := e.vf.Role(mount, "svc-003")
	if r3["token_type"] != "batch" || r3["alias_name_source"] != "serviceaccount_name" {
		t.Errorf("svc-003 on the DR mount: %v", r3)
	}

	assertProgress(t, res, "copied 150 roles, 0 already present")
	out := res.Steps["vault.auth"].Outputs
	if out["roles_copied"] != "150" || out["roles_present"] != "0" || out["mount"] != mount {
		t.Errorf("outputs = %v", out)
	}
	e.assertAbsent(t, res, jwt)
}

func (e *env) testSecondRun(t *testing.T) {
	ctx := testContext(t, time.Minute)
	before := len(e.vf.Calls())
	rvs := e.reviewerRVs(ctx, t)

	res := e.run(t, "prod-eu", e.vf.RootToken(), e.cfg)
	requireSucceeded(t, res)
	assertProgress(t, res, "copied 0 roles, 150 already present")

	enables := 0
	for _, c := range e.vf.Calls() {
		if c.Op == "write" && c.Path == "sys/auth/k8s-dr-prod-eu" {
			enables++
		}
	}
	if enables != 1 {
		t.Errorf("the mount was enabled %d times over two runs, want 1", enables)
	}
	for _, c := range e.vf.Calls()[before:] {
		if c.Op == "write" && strings.HasPrefix(c.Path, "auth/k8s-dr-prod-eu/role/") {
			t.Errorf("second run wrote %s", c.Path)
		}
	}
	if got := e.reviewerRVs(ctx, t); got != rvs {
		t.Errorf("reviewer objects changed on a re-run: %s → %s", rvs, got)
	}
	if n := len(e.vf.Roles("k8s-dr-prod-eu")); n != roleCount {
		t.Errorf("%d roles after two runs", n)
	}
}

func (e *env) testChangedRole(t *testing.T) {
	r := sourceRole(7)
	r["token_policies"] = []any{"svc-7-read", "svc-7-write"}
	e.vf.PutRole(sourceMount, "svc-007", r)

	res := e.run(t, "prod-eu", e.vf.RootToken(), e.cfg)
	requireSucceeded(t, res)
	assertProgress(t, res, "copied 1 role, 149 already present")
	got, _ := e.vf.Role("k8s-dr-prod-eu", "svc-007")
	if fmt.Sprint(got["token_policies"]) != "[svc-7-read svc-7-write]" {
		t.Errorf("svc-007 on the DR mount: %v", got)
	}
}

func (e *env) testLeastPrivilege(t *testing.T) {
	e.vf.PutPolicy("drbot", leastPrivilege)
	e.vf.AddToken("hvs.made-up-drbot-limited", "drbot")
	res := e.run(t, "prod-us", "hvs.made-up-drbot-limited", e.cfg)
	requireSucceeded(t, res)
	assertProgress(t, res, "copied 150 roles, 0 already present")
	if _, ok := e.vf.AuthConfig("k8s-dr-prod-us"); !ok {
		t.Error("config not written")
	}
}

func (e *env) testWrongType(t *testing.T) {
	if err := e.client(t, e.vf.RootToken()).Sys().EnableAuthWithOptions("k8s-dr-weird", &vault.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	res := e.run(t, "weird", e.vf.RootToken(), e.cfg)
	rec := res.Steps["vault.auth"]
	if rec.Status != state.StepFailed || rec.Retryable || !strings.Contains(rec.Error, "auth/k8s-dr-weird is a approle auth method, not kubernetes") {
		t.Errorf("step %s (retryable %v): %s", rec.Status, rec.Retryable, rec.Error)
	}
}

func (e *env) testMissingSource(t *testing.T) {
	cfg := *e.cfg
	cfg.Vault.SourceMount = "k8s-primary-typo"
	res := e.run(t, "prod-eu", e.vf.RootToken(), &cfg)
	rec := res.Steps["vault.auth"]
	if rec.Status != state.StepFailed || !strings.Contains(rec.Error, `vault has no auth mount "k8s-primary-typo" to copy roles from: check vault.source_mount`) {
		t.Errorf("step %s: %s", rec.Status, rec.Error)
	}
}

func (e *env) reviewerRVs(ctx context.Context, t *testing.T) string {
	t.Helper()
	cs := e.dr.Clientset()
	sa, err := cs.CoreV1().ServiceAccounts("kube-system").Get(ctx, "drbot-token-reviewer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sec, err := cs.CoreV1().Secrets("kube-system").Get(ctx, "drbot-token-reviewer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	crb, err := cs.RbacV1().ClusterRoleBindings().Get(ctx, "drbot-token-reviewer", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sa.ResourceVersion + "/" + sec.ResourceVersion + "/" + crb.ResourceVersion
}

// assertAbsent checks that secret appears in no journal record, event or log line.
func (e *env) assertAbsent(t *testing.T, res steptest.Result, secret string) {
	t.Helper()
	journal, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(journal, []byte(secret)) {
		t.Error("the reviewer token is in the journal")
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the reviewer token is in the logs")
	}
}

func requireSucceeded(t *testing.T, res steptest.Result) {
	t.Helper()
	if res.Run.Status != state.RunSucceeded {
		for id, rec := range res.Steps {
			if rec.Status != state.StepSucceeded {
				t.Errorf("step %s: %s: %s", id, rec.Status, rec.Error)
			}
		}
		t.FailNow()
	}
}

func assertProgress(t *testing.T, res steptest.Result, want string) {
	t.Helper()
	lines := res.Progress("vault.auth")
	for _, l := range lines {
		if l == want {
			return
		}
	}
	t.Errorf("progress lacks %q:\n  %s", want, strings.Join(lines, "\n  "))
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
