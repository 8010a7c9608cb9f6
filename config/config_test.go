package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// minimal is the smallest valid config; tests append to it or edit it.
const minimal = `slack:
  app_token: "${T_APP}"
  bot_token: "${T_BOT}"
  announce_channel: "#dr"
access:
  starters: [U1AAA]
  approvers:
    merge: [U1AAA]
    cutover: [U2BBB, U3CCC]
targets:
  - name: prod
    primary: {region: eu-west-1, cluster: prod}
    dr: {region: eu-central-1, cluster_name: prod-dr}
    cluster:
      provider: existing
      existing: {node_group: pilot, desired: 3}
    drbot_role_arn: arn:aws:iam::111122223333:role/drbot
gitlab:
  url: https://gitlab.example.com
  token: "${T_GITLAB}"
  project: platform/apps
  templates_path: apps/prod
  dr_path: apps/dr
vault:
  address: https://vault.example.com
  token: "${T_VAULT}"
  source_mount: kubernetes
  newrelic_key_path: secret/newrelic
  namespaces: [payments]
`

// lineOf is the 1-based line of the first occurrence of s in doc.
func lineOf(t *testing.T, doc, s string) int {
	t.Helper()
	i := strings.Index(doc, s)
	if i < 0 {
		t.Fatalf("%q not in document", s)
	}
	return strings.Count(doc[:i], "\n") + 1
}

func mustParse(t *testing.T, doc string) *Config {
	t.Helper()
	c, err := Parse([]byte(doc), "drbot.yaml")
	if err != nil {
		t.Fatalf("Parse: unexpected problems:\n%v", err)
	}
	return c
}

func problems(t *testing.T, doc string) []Problem {
	t.Helper()
	_, err := Parse([]byte(doc), "drbot.yaml")
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: want *Errors, got %v", err)
	}
	return errs.List
}

// edit replaces old (which must occur exactly once) with new.
func edit(t *testing.T, doc, old, new string) string {
	t.Helper()
	if n := strings.Count(doc, old); n != 1 {
		t.Fatalf("%q occurs %d times, want 1", old, n)
	}
	return strings.Replace(doc, old, new, 1)
}

func find(list []Problem, path string) (Problem, bool) {
	for _, p := range list {
		if p.Path == path {
			return p, true
		}
	}
	return Problem{}, false
}

func TestExampleLoadsWithoutProblemsOrWarnings(t *testing.T) {
	c, err := Load("../examples/drbot.yaml")
	if err != nil {
		t.Fatalf("examples/drbot.yaml:\n%v", err)
	}
	if w := c.Warnings(); len(w) > 0 {
		t.Errorf("unexpected warnings:\n%s", strings.Join(w, "\n"))
	}
	if len(c.Targets) != 2 {
		t.Fatalf("targets = %d, want 2", len(c.Targets))
	}
	drill, ok := c.Target("drill-eu")
	if !ok || !drill.DrillOnly || drill.Cluster.EKS == nil || drill.Cluster.EKS.NodeGroup.Desired != 3 {
		t.Errorf("drill-eu target = %+v", drill)
	}
	prod, _ := c.Target("prod-eu")
	if got := c.CutoverFor(prod); len(got.Route53) != 4 || len(got.APIGateway) != 2 {
		t.Errorf("prod-eu should use the top-level cutover, got %+v", got)
	}
	if got := c.CutoverFor(drill); len(got.Route53) != 1 || got.Route53[0].Ref() != "istio-ingress/istio-gateway" {
		t.Errorf("drill-eu should use its own cutover, got %+v", got)
	}
	if got := c.Addons[AddonKarpenter]; got.Repo != "oci://public.ecr.aws/karpenter" || got.NodePool == nil {
		t.Errorf("karpenter add-on = %+v", got)
	}
	if got := c.Drills[1].Announce; !slices.Equal(got, []Duration{Duration(7 * 24 * time.Hour), Duration(48 * time.Hour), Duration(2 * time.Hour), Duration(15 * time.Minute)}) {
		t.Errorf("quarterly announce = %v", got)
	}
	if got := c.Vault.TargetMountFor("prod-eu"); got != "k8s-dr-prod-eu" {
		t.Errorf("TargetMountFor = %q", got)
	}
}

func TestUnknownKeyAndWrongTypeAreReportedTogetherWithPathsAndLines(t *testing.T) {
	doc := edit(t, minimal, "      provider: existing\n", "      provder: existing\n")
	doc += "drills:\n  - name: weekly\n    schedule: \"@weekly\"\n    target: prod\n    announce: [24h, tomorrow]\n"
	_, err := Parse([]byte(doc), "drbot.yaml")
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want *Errors, got %v", err)
	}
	want := []string{
		fmt.Sprintf(`drbot.yaml:%d:7: targets[0].cluster.provder: unknown key (did you mean "provider"?)`, lineOf(t, doc, "provder")),
		fmt.Sprintf(`drbot.yaml:%d:5: targets[0].cluster.provider: missing required key`, lineOf(t, doc, "    cluster:")),
		fmt.Sprintf(`drbot.yaml:%d:21: drills[0].announce[1]: want a duration like "24h", got "tomorrow"`, lineOf(t, doc, "tomorrow")),
	}
	got := strings.Split(err.Error(), "\n")
	// The missing provider is reported on the parent's line, which comes first.
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestMissingRequiredKeysAreReportedOnTheParentLine(t *testing.T) {
	tests := []struct {
		name     string
		old, new string
		path     string
		lineOf   string
	}{
		{"top-level section", "gitlab:\n  url: https://gitlab.example.com\n  token: \"${T_GITLAB}\"\n  project: platform/apps\n  templates_path: apps/prod\n  dr_path: apps/dr\n", "", "gitlab", "slack:"},
		{"nested scalar", "    dr: {region: eu-central-1, cluster_name: prod-dr}\n", "    dr: {region: eu-central-1}\n", "targets[0].dr.cluster_name", "    dr:"},
		{"secret", "  bot_token: \"${T_BOT}\"\n", "", "slack.bot_token", "slack:"},
		{"empty list", "  namespaces: [payments]\n", "  namespaces: []\n", "vault.namespaces", "namespaces:"},
		{"provider block", "      existing: {node_group: pilot, desired: 3}\n", "", "targets[0].cluster.existing", "    cluster:"},
		{"approvers for a gate", "    cutover: [U2BBB, U3CCC]\n", "", "access.approvers.cutover", "  approvers:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, minimal, tt.old, tt.new)
			list := problems(t, doc)
			p, ok := find(list, tt.path)
			if !ok {
				t.Fatalf("no problem at %s; got %+v", tt.path, list)
			}
			if !strings.HasPrefix(p.Msg, "missing required key") && p.Msg != "must not be empty" {
				t.Errorf("msg = %q", p.Msg)
			}
			if want := lineOf(t, doc, tt.lineOf); p.Line != want {
				t.Errorf("line = %d, want %d", p.Line, want)
			}
		})
	}
}

func TestBadEnumValuesListTheAllowedValues(t *testing.T) {
	tests := []struct {
		name, old, new, path, want string
	}{
		{"provider", "provider: existing", "provider: ekss", "targets[0].cluster.provider",
			`want one of terraform, eks, existing; got "ekss" (did you mean "eks"?)`},
		{"map key", "    merge: [U1AAA]", "    merg: [U1AAA]", "access.approvers.merg",
			`unknown key (want one of merge, cutover; did you mean "merge"?)`},
		{"destination_by", "vault:", "argocd: {destination_by: url}\nvault:", "argocd.destination_by",
			`want one of name, server; got "url"`},
		{"route53 type", "vault:", "cutover:\n  route53:\n    - {zone_id: Z1, name: a.example.com, type: MX, service: ns/svc}\nvault:",
			"cutover.route53[0].type", `want one of A, AAAA, CNAME; got "MX"`},
		{"addon name", "vault:", "addons:\n  nginx: {version: 1.0.0}\nvault:", "addons.nginx",
			"unknown key (want one of aws-load-balancer-controller, karpenter, istio-base, istiod, istio-gateway, vault-injector)"},
		{"mttr phase", "vault:", "mttr:\n  phases: {provison: 10m}\nvault:", "mttr.phases.provison",
			`unknown key (want one of provision, bootstrap, deploy, cutover, close; did you mean "provision"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := problems(t, edit(t, minimal, tt.old, tt.new))
			p, ok := find(list, tt.path)
			if !ok || p.Msg != tt.want {
				t.Errorf("problem at %s = %q, want %q (all: %+v)", tt.path, p.Msg, tt.want, list)
			}
		})
	}
}

func TestLiteralSecretIsRejectedWithoutEchoingIt(t *testing.T) {
	const token = "xoxb-1234-not-a-real-token"
	tests := []struct{ name, value string }{
		{"plain literal", token},
		{"reference inside a literal", "xoxb-${SUFFIX}-" + token},
		{"lowercase-less var syntax", "$SLACK_BOT_TOKEN" + token},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := edit(t, minimal, `bot_token: "${T_BOT}"`, fmt.Sprintf("bot_token: %q", tt.value))
			_, err := Parse([]byte(doc), "drbot.yaml")
			if err == nil {
				t.Fatal("literal secret accepted")
			}
			want := fmt.Sprintf(`drbot.yaml:%d:14: slack.bot_token: secrets may not be written in the file; use "${VAR}" or bot_token_file`, lineOf(t, doc, "bot_token"))
			if err.Error() != want {
				t.Errorf("error = %q, want %q", err, want)
			}
			if strings.Contains(err.Error(), token) {
				t.Error("the error echoes the secret")
			}
		})
	}
}

func TestSecretResolvesFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "gitlab-token")
	if err := os.WriteFile(file, []byte("glpat-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("T_BOT", "xoxb-from-env")
	doc := edit(t, minimal, `  token: "${T_GITLAB}"`, "  token_file: "+file)
	c := mustParse(t, doc)

	if got, err := c.Slack.BotToken.Resolve(); err != nil || got != "xoxb-from-env" {
		t.Errorf("env secret = %q, %v", got, err)
	}
	if got := c.Slack.BotToken.Source(); got != "env T_BOT" {
		t.Errorf("env Source() = %q", got)
	}
	if got, err := c.GitLab.Token.Resolve(); err != nil || got != "glpat-from-file" {
		t.Errorf("file secret = %q, %v (trailing newline should be trimmed)", got, err)
	}
	if got := c.GitLab.Token.Source(); got != "file "+file {
		t.Errorf("file Source() = %q", got)
	}
}

func TestSecretResolveErrorsNameTheSourceNotTheValue(t *testing.T) {
	t.Setenv("T_EMPTY", "")
	missing := filepath.Join(t.TempDir(), "nope")
	tests := []struct {
		name   string
		secret Secret
		want   string
	}{
		{"unset env", EnvSecret("T_DRBOT_UNSET_VAR"), "secret env T_DRBOT_UNSET_VAR is not set"},
		{"empty env", EnvSecret("T_EMPTY"), "secret env T_EMPTY is empty"},
		{"missing file", FileSecret(missing), "reading secret file " + missing + ": no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.secret.Resolve()
			if err == nil || err.Error() != tt.want {
				t.Errorf("Resolve() error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestCheckSecretsReportsUnreadableSecretsWithLines(t *testing.T) {
	t.Setenv("T_APP", "xapp-1")
	t.Setenv("T_BOT", "xoxb-1")
	t.Setenv("T_GITLAB", "glpat-1")
	c := mustParse(t, minimal) // T_VAULT is not set
	err := c.CheckSecrets()
	want := fmt.Sprintf("drbot.yaml:%d:3: vault.token: secret env T_VAULT is not set", lineOf(t, minimal, `  token: "${T_VAULT}"`))
	if err == nil || err.Error() != want {
		t.Errorf("CheckSecrets() = %v, want %q", err, want)
	}
	t.Setenv("T_VAULT", "hvs.1")
	if err := c.CheckSecrets(); err != nil {
		t.Errorf("CheckSecrets() with all set = %v", err)
	}
}

func TestSecretWrittenBothWaysIsAnError(t *testing.T) {
	doc := edit(t, minimal, `  bot_token: "${T_BOT}"`+"\n", `  bot_token: "${T_BOT}"`+"\n  bot_token_file: /run/secrets/bot\n")
	list := problems(t, doc)
	want := Problem{Line: lineOf(t, doc, "bot_token_file"), Column: 3, Path: "slack.bot_token_file", Msg: "give either bot_token or bot_token_file, not both"}
	if len(list) != 1 || list[0] != want {
		t.Errorf("problems = %+v, want [%+v]", list, want)
	}
}

func TestSecretFileMustBeAbsolute(t *testing.T) {
	list := problems(t, edit(t, minimal, `  bot_token: "${T_BOT}"`, "  bot_token_file: secrets/bot"))
	if p, ok := find(list, "slack.bot_token_file"); !ok || p.Msg != "want an absolute path to the secret file" {
		t.Errorf("problems = %+v", list)
	}
}

func TestPrintedConfigDoesNotContainSecretValues(t *testing.T) {
	const botValue, fileValue = "xoxb-very-secret-bot-value", "glpat-very-secret-file-value"
	t.Setenv("T_BOT", botValue)
	t.Setenv("T_APP", "xapp-very-secret-app-value")
	file := filepath.Join(t.TempDir(), "gitlab")
	if err := os.WriteFile(file, []byte(fileValue), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustParse(t, edit(t, minimal, `  token: "${T_GITLAB}"`, "  token_file: "+file))
	if _, err := c.Slack.BotToken.Resolve(); err != nil { // resolving must not cache the value anywhere
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		out := fmt.Sprintf(format, c)
		for _, secret := range []string{botValue, fileValue, "xapp-very-secret-app-value"} {
			if strings.Contains(out, secret) {
				t.Errorf("fmt %s of the config contains a secret value", format)
			}
		}
		if format == "%+v" && !strings.Contains(out, "secret(env T_BOT)") {
			t.Errorf("%%+v should show where the secret comes from; got %s", out)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90s", 90 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"7d", 7 * 24 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0s", 0, true},
		{"30", 0, false},
		{"-5m", 0, false},
		{"tomorrow", 0, false},
		{"d", 0, false},
		{"1.5d", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if (err == nil) != tt.ok || (tt.ok && got.Std() != tt.want) {
				t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
			}
		})
	}
}

func TestDurationFieldsRejectBareNumbersWithAHint(t *testing.T) {
	list := problems(t, minimal+"mttr:\n  budget: 60\n")
	want := `want a duration like "24h", got "60" (add a unit: s, m, h or d)`
	if p, ok := find(list, "mttr.budget"); !ok || p.Msg != want {
		t.Errorf("problems = %+v", list)
	}
}

func TestDrillScheduleAndTimezoneAreValidated(t *testing.T) {
	tests := []struct {
		name, schedule, tz string
		badPath            string
	}{
		{"five fields", "0 9 * * 2", "Europe/Berlin", ""},
		{"descriptor", "@weekly", "", ""},
		{"every", "@every 168h", "America/New_York", ""},
		{"six fields", "0 0 9 * * 2", "UTC", "drills[0].schedule"},
		{"nonsense", "every tuesday", "UTC", "drills[0].schedule"},
		{"tz in schedule", "CRON_TZ=Europe/Berlin 0 9 * * 2", "UTC", "drills[0].schedule"},
		{"unknown zone", "@daily", "Europe/Atlantis", "drills[0].timezone"},
		{"local zone", "@daily", "Local", "drills[0].timezone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := minimal + fmt.Sprintf("drills:\n  - name: d\n    target: prod\n    schedule: %q\n", tt.schedule)
			if tt.tz != "" {
				doc += "    timezone: " + tt.tz + "\n"
			}
			c, err := Parse([]byte(doc), "drbot.yaml")
			if tt.badPath == "" {
				if err != nil {
					t.Fatalf("unexpected problems: %v", err)
				}
				if tt.tz == "" && c.Drills[0].Location() != time.UTC {
					t.Errorf("default location = %v, want UTC", c.Drills[0].Location())
				}
				return
			}
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("want problems, got %v", err)
			}
			if _, ok := find(errs.List, tt.badPath); !ok || len(errs.List) != 1 {
				t.Errorf("want one problem at %s, got %+v", tt.badPath, errs.List)
			}
		})
	}
}

func TestDrillWithUnknownTargetIsAnErrorWithSuggestion(t *testing.T) {
	doc := minimal + "drills:\n  - name: d\n    schedule: '@weekly'\n    target: prdo\n"
	list := problems(t, doc)
	want := Problem{Line: lineOf(t, doc, "prdo"), Column: 5, Path: "drills[0].target", Msg: `unknown target "prdo" (did you mean "prod"?); targets are prod`}
	if len(list) != 1 || list[0] != want {
		t.Errorf("problems = %+v, want [%+v]", list, want)
	}
}

func TestDrillAgainstAProductionTargetWarns(t *testing.T) {
	doc := minimal + "drills:\n  - name: d\n    schedule: '@weekly'\n    target: prod\n"
	c := mustParse(t, doc)
	want := fmt.Sprintf(`drbot.yaml:%d:5: drills[0].target: target "prod" is not drill_only: this drill rehearses against a production recovery target`, lineOf(t, doc, "target: prod"))
	if w := c.Warnings(); len(w) != 1 || w[0] != want {
		t.Errorf("warnings = %q, want %q", w, want)
	}
}

func TestDefaultsAreAppliedToAbsentKeys(t *testing.T) {
	doc := minimal + "drills:\n  - name: d\n    schedule: '@weekly'\n    target: prod\n"
	c := mustParse(t, edit(t, doc, "    cutover: [U2BBB, U3CCC]\n", "    cutover: [U2BBB, U3CCC]\n  two_person_rule: false\n"))
	checks := []struct {
		name      string
		got, want any
	}{
		{"state.path", c.State.Path, "/var/lib/drbot/drbot.db"},
		{"slack.api_url", c.Slack.APIURL, "https://slack.com/api/"},
		{"slack.incident_channel_prefix", c.Slack.IncidentChannelPrefix, "dr"},
		{"explicit false beats default true", c.Access.TwoPersonRule, false},
		{"argocd.namespace", c.ArgoCD.Namespace, "argocd"},
		{"argocd.project", c.ArgoCD.Project, "default"},
		{"argocd.destination_by", c.ArgoCD.DestinationBy, "name"},
		{"gitlab.default_branch", c.GitLab.DefaultBranch, "main"},
		{"gitlab.branch_prefix", c.GitLab.BranchPrefix, "drbot/"},
		{"gitlab.fail_on_unparseable", c.GitLab.FailOnUnparseable, true},
		{"vault.newrelic_secret_name", c.Vault.NewRelicSecretName, "newrelic-license"},
		{"vault.target_mount", c.Vault.TargetMountFor("prod"), "k8s-dr-prod"},
		{"drills[0].timezone", c.Drills[0].Timezone, "UTC"},
		{"drills[0].announce", c.Drills[0].Announce, []Duration{Duration(168 * time.Hour), Duration(24 * time.Hour), Duration(time.Hour)}},
		{"drills[0].teardown", c.Drills[0].Teardown, true},
		{"mttr.budget", c.MTTR.Budget.Std(), 60 * time.Minute},
		{"runbook.concurrency", c.Runbook.Concurrency, 8},
		{"runbook.retry.max_attempts", c.Runbook.Retry.MaxAttempts, 5},
		{"runbook.retry.initial_backoff", c.Runbook.Retry.InitialBackoff.Std(), 2 * time.Second},
		{"runbook.retry.max_backoff", c.Runbook.Retry.MaxBackoff.Std(), time.Minute},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestNormalisationAndDerivedDefaults(t *testing.T) {
	doc := edit(t, minimal, "slack:\n", "slack:\n  api_url: http://127.0.0.1:8080/api\n")
	doc = edit(t, doc, "  url: https://gitlab.example.com\n", "  url: https://gitlab.example.com/\n")
	doc = edit(t, doc, "  token: \"${T_VAULT}\"\n", "  auth: {method: aws, role: drbot}\n")
	doc += "addons:\n  istio-gateway: {version: 1.27.1}\n"
	c := mustParse(t, doc)
	if c.Slack.APIURL != "http://127.0.0.1:8080/api/" {
		t.Errorf("api_url = %q, want a trailing slash added", c.Slack.APIURL)
	}
	if c.GitLab.URL != "https://gitlab.example.com" {
		t.Errorf("gitlab.url = %q, want the trailing slash trimmed", c.GitLab.URL)
	}
	if c.Vault.Auth.Mount != "aws" {
		t.Errorf("vault.auth.mount = %q, want the method name", c.Vault.Auth.Mount)
	}
	want := Addon{Chart: "gateway", Repo: "https://istio-release.storage.googleapis.com/charts", Version: "1.27.1", Namespace: "istio-ingress"}
	if got := c.Addons[AddonIstioGateway]; !reflect.DeepEqual(got, want) {
		t.Errorf("istio-gateway = %+v, want %+v", got, want)
	}
}

func TestErrorsAreSortedByLine(t *testing.T) {
	doc := "runbook:\n  concurrency: many\n" + edit(t, minimal, "announce_channel: \"#dr\"", "announce_channel: [dr]") + "mttr:\n  budget: soon\n"
	list := problems(t, doc)
	if len(list) != 3 {
		t.Fatalf("want 3 problems, got %+v", list)
	}
	if !slices.IsSortedFunc(list, func(a, b Problem) int { return a.Line - b.Line }) {
		t.Errorf("problems not sorted by line: %+v", list)
	}
	if list[0].Path != "runbook.concurrency" || list[1].Path != "slack.announce_channel" || list[2].Path != "mttr.budget" {
		t.Errorf("order = %s, %s, %s", list[0].Path, list[1].Path, list[2].Path)
	}
}

func TestTypoSuggestsTheNearestKnownKey(t *testing.T) {
	tests := []struct{ old, new, path, want string }{
		{"  announce_channel:", "  anounce_channel:", "slack.anounce_channel", `unknown key (did you mean "announce_channel"?)`},
		{"  source_mount:", "  sourceMount:", "vault.sourceMount", `unknown key (did you mean "source_mount"?)`},
		{"  bot_token:", "  bot_tokn_file:", "slack.bot_tokn_file", `unknown key (did you mean "bot_token_file"?)`},
		{"vault:", "vault:\n  completely_unrelated: 1", "vault.completely_unrelated", "unknown key"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			list := problems(t, edit(t, minimal, tt.old, tt.new))
			if p, ok := find(list, tt.path); !ok || p.Msg != tt.want {
				t.Errorf("problem at %s = %q, want %q (all: %+v)", tt.path, p.Msg, tt.want, list)
			}
		})
	}
}

func TestDuplicateKeysAndTargetNamesAreErrors(t *testing.T) {
	second := "  - name: prod\n    primary: {region: eu-west-1, cluster: prod}\n    dr: {region: eu-central-1, cluster_name: prod-dr2}\n" +
		"    cluster: {provider: existing, existing: {node_group: pilot, desired: 1}}\n    drbot_role_arn: arn:aws:iam::111122223333:role/drbot\ngitlab:\n"
	doc := edit(t, minimal, "gitlab:\n", second)
	doc = edit(t, doc, "  newrelic_key_path: secret/newrelic\n", "  newrelic_key_path: secret/newrelic\n  source_mount: k8s\n")
	list := problems(t, doc)
	want := []Problem{
		{Line: lineOf(t, doc, "  source_mount: k8s"), Column: 3, Path: "vault.source_mount", Msg: fmt.Sprintf("duplicate key (first written on line %d)", lineOf(t, doc, "source_mount"))},
		{Line: lineOf(t, doc, "  - name: prod\n    primary: {region: eu-west-1, cluster: prod}\n    dr: {region: eu-central-1, cluster_name: prod-dr2}"), Column: 5, Path: "targets[1].name", Msg: fmt.Sprintf(`duplicate target name "prod" (first on line %d)`, lineOf(t, doc, "- name: prod"))},
	}
	slices.SortFunc(want, func(a, b Problem) int { return a.Line - b.Line })
	if !reflect.DeepEqual(list, want) {
		t.Errorf("problems:\n%+v\nwant:\n%+v", list, want)
	}
}

func TestProviderBlocksMustMatchTheProvider(t *testing.T) {
	doc := edit(t, minimal, "      existing: {node_group: pilot, desired: 3}\n",
		"      existing: {node_group: pilot, desired: 3}\n      terraform: {dir: /tf}\n")
	list := problems(t, doc)
	want := "not allowed when provider is existing (remove the block or change provider)"
	if p, ok := find(list, "targets[0].cluster.terraform"); !ok || p.Msg != want || p.Line != lineOf(t, doc, "terraform:") {
		t.Errorf("problems = %+v", list)
	}
}

func TestCutoverRowsNeedExactlyOneBackendAndKindSpecificKeys(t *testing.T) {
	doc := minimal + `cutover:
  route53:
    - {zone_id: Z1, name: a.example.com, type: A}
    - {zone_id: Z1, name: b.example.com, type: A, service: ns/svc, ingress: ns/ing}
  cloudfront:
    - {distribution_id: E1, origin_id: web, service: just-a-name}
  apigateway:
    - {api_id: abc123, kind: rest, resource_id: r1, service: ns/svc}
    - {api_id: abc123, kind: http, service: ns/svc}
`
	list := problems(t, doc)
	want := map[string]string{
		"cutover.route53[0]":                   `needs service or ingress ("namespace/name")`,
		"cutover.route53[1].ingress":           "give either service or ingress, not both",
		"cutover.cloudfront[0].service":        `want "namespace/name", got "just-a-name"`,
		"cutover.apigateway[0].http_method":    "missing required key (kind rest needs resource_id, http_method and stage)",
		"cutover.apigateway[0].stage":          "missing required key (kind rest needs resource_id, http_method and stage)",
		"cutover.apigateway[1].integration_id": "missing required key (kind http needs integration_id)",
	}
	if len(list) != len(want) {
		t.Errorf("got %d problems, want %d: %+v", len(list), len(want), list)
	}
	for path, msg := range want {
		if p, ok := find(list, path); !ok || p.Msg != msg {
			t.Errorf("problem at %s = %q, want %q", path, p.Msg, msg)
		}
	}
}

func TestVaultNeedsATokenUnlessAnotherAuthMethodIsUsed(t *testing.T) {
	noToken := edit(t, minimal, "  token: \"${T_VAULT}\"\n", "")
	list := problems(t, noToken)
	if p, ok := find(list, "vault.token"); !ok || !strings.HasPrefix(p.Msg, "missing required key") {
		t.Errorf("problems = %+v", list)
	}
	mustParse(t, edit(t, noToken, "  source_mount:", "  auth: {method: kubernetes, role: drbot}\n  source_mount:"))
	list = problems(t, edit(t, minimal, "  source_mount:", "  auth: {method: kubernetes}\n  source_mount:"))
	p1, ok1 := find(list, "vault.auth.role")
	p2, ok2 := find(list, "vault.token")
	if !ok1 || !ok2 || p1.Msg != "missing required key (auth.method kubernetes needs a role)" || p2.Msg != "not used with auth.method kubernetes; remove it" {
		t.Errorf("problems = %+v", list)
	}
}

func TestWrongTypesNameWhatWasWanted(t *testing.T) {
	tests := []struct{ old, new, path, want string }{
		{"  starters: [U1AAA]", "  starters: U1AAA", "access.starters", `want a list, got "U1AAA"`},
		{"    drbot_role_arn: arn:aws:iam::111122223333:role/drbot", "    drbot_role_arn: {arn: x}", "targets[0].drbot_role_arn", "want a string, got a mapping"},
		{"desired: 3}", "desired: three}", "targets[0].cluster.existing.desired", `want an integer, got "three"`},
		{"    drbot_role_arn:", "    drill_only: yes\n    drbot_role_arn:", "targets[0].drill_only", `want true or false, got "yes"`},
		{"slack:\n", "state: [a]\nslack:\n", "state", "want a mapping, got a list"},
		{`  token: "${T_GITLAB}"`, "  token: [x]", "gitlab.token", `want "${VAR}" or a file path, got a list`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			list := problems(t, edit(t, minimal, tt.old, tt.new))
			if p, ok := find(list, tt.path); !ok || p.Msg != tt.want {
				t.Errorf("problem at %s = %q, want %q (all: %+v)", tt.path, p.Msg, tt.want, list)
			}
		})
	}
}

func TestFreeFormMapsAcceptAnyKeysButReportDuplicates(t *testing.T) {
	doc := minimal + "addons:\n  karpenter:\n    version: 1.6.2\n    values:\n      anything: {goes: [1, 2]}\n      settings: {clusterName: x}\n"
	c := mustParse(t, doc)
	if got := c.Addons[AddonKarpenter].Values["anything"]; !reflect.DeepEqual(got, map[string]any{"goes": []any{1, 2}}) {
		t.Errorf("values.anything = %#v", got)
	}
	dup := doc + "      anything: again\n"
	list := problems(t, dup)
	if p, ok := find(list, "addons.karpenter.values"); !ok || p.Line != strings.Count(dup, "\n") || !strings.Contains(p.Msg, "already defined") {
		t.Errorf("problems = %+v", list)
	}
}

func TestKeysWithDotsArePathedWithBrackets(t *testing.T) {
	list := problems(t, minimal+"runbook:\n  estimates:\n    cluster.create: soon\n")
	if _, ok := find(list, `runbook.estimates["cluster.create"]`); !ok {
		t.Errorf("problems = %+v", list)
	}
}

func TestMergeKeysShareBlocksBetweenEntries(t *testing.T) {
	doc := minimal + `cutover:
  route53:
    - &apex {zone_id: Z1, name: a.example.com, type: A, ingress: istio-ingress/gw}
    - {<<: *apex, type: AAAA}
`
	c := mustParse(t, doc)
	got := c.Cutover.Route53[1]
	if got.Type != "AAAA" || got.Name != "a.example.com" || got.Ingress != "istio-ingress/gw" {
		t.Errorf("merged row = %+v", got)
	}
}

func TestWholeFileProblems(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"empty", "# nothing here\n", "drbot.yaml:1: the config file is empty"},
		{"syntax", "slack:\n  bot_token: [\n", "drbot.yaml:2: invalid YAML: did not find expected node content"},
		{"two documents", minimal + "---\nslack: {}\n", ""},
		{"not a mapping", "- a\n", "drbot.yaml:1:1: want a mapping of sections (slack:, targets:, …) at the top level, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.doc), "drbot.yaml")
			if err == nil {
				t.Fatal("want an error")
			}
			if tt.want != "" && err.Error() != tt.want {
				t.Errorf("error = %q, want %q", err, tt.want)
			}
			if tt.name == "two documents" && !strings.Contains(err.Error(), "more than one YAML document") {
				t.Errorf("error = %q", err)
			}
		})
	}
}

func TestLoadReportsUnreadableFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.HasPrefix(err.Error(), "reading config: ") {
		t.Errorf("Load() error = %v", err)
	}
}

func TestTagEnumsMatchExportedNames(t *testing.T) {
	keysOf := func(t reflect.Type, key string) []string {
		for _, f := range fieldsOf(t) {
			if f.key == key {
				return f.keys
			}
		}
		return nil
	}
	checks := []struct {
		name      string
		got, want []string
	}{
		{"access.approvers", keysOf(reflect.TypeFor[Access](), "approvers"), Gates},
		{"runbook.gates", keysOf(reflect.TypeFor[Runbook](), "gates"), Gates},
		{"mttr.phases", keysOf(reflect.TypeFor[MTTR](), "phases"), Phases},
		{"addons", keysOf(reflect.TypeFor[Config](), "addons"), Addons},
	}
	for _, c := range checks {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s tag keys = %v, exported = %v", c.name, c.got, c.want)
		}
	}
	for _, name := range Addons {
		if _, ok := addonDefaults[name]; !ok {
			t.Errorf("add-on %s has no defaults", name)
		}
	}
}

func TestStringFieldsKeepNumbersAsWritten(t *testing.T) {
	doc := edit(t, minimal, "  project: platform/apps", "  project: 4200")
	doc += "addons:\n  istiod: {version: 1.30}\n"
	c := mustParse(t, doc)
	if c.GitLab.Project != "4200" || c.Addons[AddonIstiod].Version != "1.30" {
		t.Errorf("project = %q, version = %q; want the text as written", c.GitLab.Project, c.Addons[AddonIstiod].Version)
	}
}

func TestDrillPreApproveNamesGatesOnly(t *testing.T) {
	ok := minimal + "drills:\n  - name: d\n    schedule: '@weekly'\n    target: prod\n    pre_approve: [merge, cutover]\n"
	if c := mustParse(t, ok); len(c.Drills[0].PreApprove) != 2 {
		t.Errorf("pre_approve = %v", c.Drills[0].PreApprove)
	}
	bad := minimal + "drills:\n  - name: d\n    schedule: '@weekly'\n    target: prod\n    pre_approve: [merge, deploy]\n"
	list := problems(t, bad)
	if p, found := find(list, "drills[0].pre_approve[1]"); !found || !strings.Contains(p.Msg, `want a gate (merge or cutover), got "deploy"`) {
		t.Errorf("problems = %+v", list)
	}
}

func TestCutoverChecksDefaultTheirStatusAndNeedAURL(t *testing.T) {
	c := mustParse(t, minimal+"cutover:\n  checks:\n    - url: https://api.example.com/healthz\n  critical_services: [payments]\n")
	if len(c.Cutover.Checks) != 1 || c.Cutover.Checks[0].ExpectStatus != 200 || c.Cutover.CriticalServices[0] != "payments" {
		t.Errorf("cutover = %+v", c.Cutover)
	}
	list := problems(t, minimal+"cutover:\n  checks:\n    - host: api.example.com\n")
	if _, found := find(list, "cutover.checks[0].url"); !found {
		t.Errorf("problems = %+v", list)
	}
}

func TestVaultAuthKeysBelongToTheirMethod(t *testing.T) {
	tests := []struct {
		name, auth, path, want string
	}{
		{"token_path with aws", "{method: aws, role: drbot, token_path: /var/run/secrets/vault/token}", "vault.auth.token_path", "only used with auth.method kubernetes"},
		{"iam_server_id with kubernetes", "{method: kubernetes, role: drbot, iam_server_id: vault.example.com}", "vault.auth.iam_server_id", "only used with auth.method aws"},
		{"relative token_path", "{method: kubernetes, role: drbot, token_path: token}", "vault.auth.token_path", `want an absolute file path, got "token"`},
		{"sts_region", "{method: aws, role: drbot, sts_region: global}", "vault.auth.sts_region", `want an AWS region like us-east-1, got "global"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			list := problems(t, edit(t, minimal, "  token: \"${T_VAULT}\"\n", "  auth: "+tt.auth+"\n"))
			p, ok := find(list, tt.path)
			if !ok || p.Msg != tt.want {
				t.Errorf("problem at %s = %+v (found %v), want %q; all: %+v", tt.path, p, ok, tt.want, list)
			}
		})
	}
	c := mustParse(t, edit(t, minimal, "  token: \"${T_VAULT}\"\n", "  auth: {method: aws, role: drbot, iam_server_id: vault.example.com}\n"))
	if c.Vault.Auth.STSRegion != "us-east-1" || c.Vault.Auth.IAMServerID != "vault.example.com" {
		t.Errorf("vault.auth = %+v, want sts_region us-east-1 by default and the server id kept", *c.Vault.Auth)
	}
}
