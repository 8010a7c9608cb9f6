package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/permissions"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/slackfake"
	"github.com/drbot/drbot/test/vaultfake"
)

// checkWorld is a config file whose far ends are stand-ins: Vault, GitLab,
// Slack and the charts are ready; the management cluster is not named
// (drbot is not running in a cluster), so permissions.kube fails; the AWS
// stand-in is empty, so the AWS checks say what they miss.
func checkWorld(t *testing.T) (cfgPath, statePath string) {
	t.Helper()
	v := vaultfake.New(t)
	v.EnableKubernetesAuth("k8s-primary")
	v.PutRole("k8s-primary", "payments", map[string]any{"bound_service_account_names": []any{"payments"}, "bound_service_account_namespaces": []any{"payments"}})
	v.PutKV("secret", "observability/newrelic", map[string]any{"license_key": "made-up-licence-key"})
	t.Setenv("TEST_VAULT_TOKEN", v.RootToken())

	g := gitlabfake.New(t)
	g.AddUser("glpat-made-up", "drbot")
	g.AddProject("platform/apps", "main")
	g.CommitFiles("platform/apps", "main", gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: 3}), "seed")
	t.Setenv("TEST_GITLAB_TOKEN", "glpat-made-up")

	s := slackfake.New(t, slackfake.Options{})
	s.AddUser("U01ALICE", "alice", false)
	s.AddChannel("C1", "sre-dr")
	t.Setenv("TEST_SLACK_APP_TOKEN", s.AppToken())
	t.Setenv("TEST_SLACK_BOT_TOKEN", s.BotToken())

	a := awsfake.New(t, awsfake.Options{})
	a.AddIdentity("AKIDREADINESS0000001", "made-up-aws-secret", "arn:aws:iam::111122223333:role/drbot")
	// drbot's role has the policy operators are told to apply
	// (manifests/iam/drbot-policy.json), filled in for this config.
	policy, err := os.ReadFile("../../manifests/iam/drbot-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AttachPolicyDocument("arn:aws:iam::111122223333:role/drbot", permissions.Expand(string(policy), map[string]string{
		"ACCOUNT_ID": "111122223333", "DR_REGION": "eu-central-1", "DR_CLUSTER": "dr-eks", "API_REGION": "eu-central-1", "DRBOT_ROLE_NAME": "drbot",
		// not used by this config (provider existing, no state backup)
		"EKS_CLUSTER_ROLE_NAME": "unused", "EKS_NODE_ROLE_NAME": "unused", "STATE_BUCKET": "unused",
	})); err != nil {
		t.Fatal(err)
	}
	for _, kv := range a.Env("eu-central-1", "AKIDREADINESS0000001", "made-up-aws-secret") {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}

	charts, err := filepath.Abs("../../test/testdata/charts")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	statePath = filepath.Join(dir, "drbot.db")
	yaml := fmt.Sprintf(`state:
  path: %s
slack:
  api_url: %s
  app_token: "${TEST_SLACK_APP_TOKEN}"
  bot_token: "${TEST_SLACK_BOT_TOKEN}"
  announce_channel: "#sre-dr"
access:
  starters: [U01ALICE]
  approvers: {merge: [U01ALICE], cutover: [U01ALICE]}
targets:
  - name: prod-eu
    primary: {region: eu-west-1, cluster: primary-eks}
    dr: {region: eu-central-1, cluster_name: dr-eks}
    cluster:
      provider: existing
      existing: {node_group: pilot, desired: 3}
    drbot_role_arn: arn:aws:iam::111122223333:role/drbot
addons:
  aws-load-balancer-controller: {repo: "file://%[3]s", chart: aws-load-balancer-controller, version: 1.13.4}
  istio-base: {repo: "file://%[3]s", chart: base, version: 1.27.1}
  istiod: {repo: "file://%[3]s", chart: istiod, version: 1.27.1}
  istio-gateway: {repo: "file://%[3]s", chart: gateway, version: 1.27.1}
  vault-injector: {repo: "file://%[3]s", chart: vault, version: 0.30.1}
gitlab:
  url: %s
  token: "${TEST_GITLAB_TOKEN}"
  project: platform/apps
  templates_path: apps/primary
  dr_path: apps/dr
vault:
  address: %s
  auth: {method: token}
  token: "${TEST_VAULT_TOKEN}"
  source_mount: k8s-primary
  newrelic_key_path: secret/observability/newrelic
  namespaces: [payments]
readiness:
  schedule: "off"
`, statePath, s.ScopedAPIURL(t, slackfake.DefaultScopes...), charts, g.URL(), v.URL())
	cfgPath = filepath.Join(dir, "drbot.yaml")
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "") // never the in-cluster config of a CI pod
	return cfgPath, statePath
}

func TestCheckPrintsTheReportRecordsItAndExitsOneOnAFailure(t *testing.T) {
	cfgPath, statePath := checkWorld(t)
	code, out, errOut := drbot(t, "check", "-config", cfgPath)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (permissions.kube cannot be checked)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{"Readiness ", "❌ permissions.kube", "images [prod-eu]", "capacity [prod-eu]", "✅ permissions.aws [prod-eu]", "cutover [prod-eu]", "argocd.management_kubeconfig", "✅ vault [prod-eu]", "✅ gitlab", "✅ slack",
		"✅ sources.templates [prod-eu]", "✅ sources.charts [prod-eu]", "Recorded in " + statePath} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "made-up-licence-key") {
		t.Error("the report prints the New Relic key")
	}
	if !strings.Contains(errOut, "check(s) found something that would break a recovery") {
		t.Errorf("stderr = %q", errOut)
	}
	store, err := state.Open(statePath, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	rep, ok, err := readiness.Latest(store)
	_ = store.Close()
	if !ok || err != nil || rep.Trigger != "cli" || !strings.Contains(readinessText(rep), "❌ permissions.kube") {
		t.Errorf("recorded report = %+v ok=%v err=%v", rep, ok, err)
	}

	// drbot plan shows it, with its age.
	code, out, _ = drbot(t, "plan", "-config", cfgPath)
	if code != 0 || !strings.Contains(out, "Last readiness check") || !strings.Contains(out, "permissions.kube") {
		t.Errorf("plan (exit %d) does not show the last readiness:\n%s", code, out)
	}
}

func TestCheckWhileServeHoldsTheStateOnlyPrints(t *testing.T) {
	cfgPath, statePath := checkWorld(t)
	held, err := state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	start := time.Now()
	code, out, _ := drbot(t, "check", "-config", cfgPath, "-target", "prod-eu")
	if code != 1 || !strings.Contains(out, "Not recorded: the state file is held by a running drbot") || !strings.Contains(out, "❌ permissions.kube") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("check took %s with the state held", d)
	}
	if code, _, errOut := drbot(t, "check", "-config", cfgPath, "-target", "nope"); code != 2 || !strings.Contains(errOut, `no target "nope"`) {
		t.Errorf("unknown target: exit %d, stderr %q", code, errOut)
	}
}

func readinessText(rep readiness.Report) string {
	var b strings.Builder
	_ = readiness.WriteText(&b, rep)
	return b.String()
}

func TestStartReadinessRunsTheScheduleUntilStoppedAndOffDisablesIt(t *testing.T) {
	cfgPath, statePath := checkWorld(t)
	cfg, _, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(statePath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b := bot.New(cfg, slack.New("xoxb-made-up", slack.OptionAPIURL(cfg.Slack.APIURL)), nil, store, bot.NewPolicy(cfg.Access, nil), bot.Options{Logger: log})
	lastTick := func() bool {
		var ok bool
		_ = store.View(func(tx *state.Tx) error { _, ok = tx.KV("readiness/last_tick"); return nil })
		return ok
	}

	stop, err := startReadiness(context.Background(), cfg, store, b, func() {}, log, nil, 0) // readiness.schedule: off
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if lastTick() {
		t.Error("schedule off still ticked")
	}

	cfg.Readiness.Schedule = "0 7 * * *"
	stop, err = startReadiness(context.Background(), cfg, store, b, func() {}, log, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !lastTick() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	if !lastTick() {
		t.Error("the scheduler never ticked")
	}

	cfg.Readiness.Schedule = "every day"
	if _, err := startReadiness(context.Background(), cfg, store, b, func() {}, log, nil, 0); err == nil || !strings.Contains(err.Error(), "readiness.schedule") {
		t.Errorf("a bad schedule started: %v", err)
	}
}

func TestSlashCheckOverSocketModeAnswersPrivatelyWithTheReport(t *testing.T) {
	fake := slackfake.New(t, slackfake.Options{})
	fake.AddUser("U01ALICE", "alice", false)
	fake.AddUser("U01EVE", "eve", false)
	fake.AddChannel("C1", "ops")
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cfg, _, err := loadConfig(example)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Access.Starters, cfg.Access.Admins = []string{"U01ALICE"}, nil
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	api := slack.New(fake.BotToken(), slack.OptionAPIURL(fake.APIURL()), slack.OptionAppLevelToken(fake.AppToken()))
	b := bot.New(cfg, api, nil, store, bot.NewPolicy(cfg.Access, nil), bot.Options{Logger: log})
	var ran []string
	b.SetReadiness(func(_ context.Context, targets []*config.Target, trigger string) readiness.Report {
		for _, tg := range targets {
			ran = append(ran, tg.Name+"/"+trigger)
		}
		return readiness.Report{At: time.Now(), Trigger: trigger, Results: []readiness.Result{
			{Check: "vault", Target: targets[0].Name, Title: "Vault", Status: readiness.Fail, Evidence: []string{"role orders missing from auth/kubernetes"}, Fix: "restore it"}}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	wait := func(what string, cond func() bool) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer wcancel()
		if err := fake.WaitFor(wctx, what, cond); err != nil {
			t.Fatal(err)
		}
	}
	wait("a Socket Mode connection", func() bool { return fake.Connections() > 0 })
	posts := func(user string) []slackfake.ResponseURLPost {
		var out []slackfake.ResponseURLPost
		for _, p := range fake.ResponseURLPosts() {
			if p.User == user {
				out = append(out, p)
			}
		}
		return out
	}

	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	if _, err := fake.SlashCommand(sctx, "U01ALICE", "C1", "/dr", "check prod-eu"); err != nil {
		t.Fatal(err)
	}
	wait("the readiness report", func() bool { return len(posts("U01ALICE")) >= 2 })
	report := posts("U01ALICE")[1]
	if report.ResponseType != "ephemeral" || !strings.Contains(string(report.Blocks), "role orders missing from auth/kubernetes") || !strings.Contains(report.Text, "0/1 passed") {
		t.Errorf("report reply = %+v\nblocks %s", report, report.Blocks)
	}
	if strings.Join(ran, ",") != "prod-eu/slack:U01ALICE" {
		t.Errorf("checks ran for %v", ran)
	}
	if rep, ok, _ := readiness.Latest(store); !ok || rep.Trigger != "slack:U01ALICE" {
		t.Errorf("the report was not recorded: %+v", rep)
	}
	if n := fake.CallCount("chat.postMessage"); n != 0 {
		t.Errorf("/dr check posted %d channel messages; the report is private", n)
	}

	if _, err := fake.SlashCommand(sctx, "U01EVE", "C1", "/dr", "check"); err != nil {
		t.Fatal(err)
	}
	wait("the refusal", func() bool { return len(posts("U01EVE")) >= 1 })
	if p := posts("U01EVE")[0]; !strings.Contains(p.Text, "may not run the readiness checks") || len(ran) != 1 {
		t.Errorf("a stranger got %q and the checks ran %d time(s)", p.Text, len(ran))
	}
}
