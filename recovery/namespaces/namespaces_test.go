package namespaces_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vault "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/namespaces"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/vaultfake"
)

// Made-up licence keys, distinctive enough to search for.
const (
	licence        = "NRAK-MADEUP-0123456789abcdefLICENCE"
	rotatedLicence = "NRAK-MADEUP-ROTATED-9876543210fedcba"
)

var wantNamespaces = []string{"orders", "payments", "search", "web"}

type env struct {
	dr   *kubeenv.Cluster
	vf   *vaultfake.Server
	cfg  *config.Config
	logs *syncBuffer
	// keys holds every licence value the test has used; none may leak.
	keys []string
}

func TestNamespaces(t *testing.T) {
	e := &env{dr: kubeenv.Start(t, kubeenv.WithName("dr")), vf: vaultfake.New(t), logs: &syncBuffer{}, keys: []string{licence}}
	e.vf.PutKV("kv", "observability/newrelic", map[string]any{"license_key": licence, "account": "1234"})
	e.cfg = &config.Config{
		Targets: []config.Target{{Name: "prod-eu", DR: config.DR{Region: "eu-west-1", ClusterName: "dr-eu"}}},
		Vault: config.Vault{
			Address: e.vf.URL(), NewRelicKeyPath: "kv/observability/newrelic", NewRelicKeyField: "license_key",
			NewRelicSecretName: "newrelic-license", Namespaces: []string{"payments", "orders", "web"},
		},
	}

	t.Run("CreatesLabelledNamespacesEachWithTheLicence", e.testFirstRun)
	t.Run("SecondRunChangesNothing", e.testSecondRun)
	t.Run("RotatedKeyUpdatesEverySecret", e.testRotated)
	t.Run("MissingFieldNamesPathAndFieldOnly", e.testMissingField)
}

func (e *env) run(t *testing.T, cfg *config.Config) (steptest.Result, string) {
	t.Helper()
	vc, err := vault.NewClient(&vault.Config{Address: e.vf.URL()})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(e.vf.RootToken())
	n, err := namespaces.New(cfg, vc, namespaces.Options{
		DR:              kube.Static(e.dr.AdminConfig()),
		Labels:          map[string]string{"istio-injection": "enabled"},
		NamespaceLabels: map[string]map[string]string{"payments": {"team": "payments"}},
		More: func(context.Context, *recovery.StepContext) ([]string, error) {
			return []string{"search", "orders"}, nil // from the templates; orders twice
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A state file of our own, so the test can read every byte journaled.
	dbPath := filepath.Join(t.TempDir(), "drbot.db")
	store, err := state.Open(dbPath, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	res := steptest.Run(t, steptest.Options{
		Store:  store,
		Logger: slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	},
		steptest.Stub("cluster.access", recovery.PhaseProvision, map[string]string{"endpoint": e.dr.Endpoint()}),
		recovery.Step{ID: "namespaces", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.access"}, Action: n.Action},
	)
	return res, dbPath
}

func (e *env) testFirstRun(t *testing.T) {
	ctx := testContext(t, time.Minute)
	cs := e.dr.Clientset()
	// orders exists already, with a label of its own and injection off.
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "orders", Labels: map[string]string{"owner": "sre", "istio-injection": "disabled"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	res, db := e.run(t, e.cfg)
	requireSucceeded(t, res)
	for _, ns := range wantNamespaces {
		got, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("namespace %s: %v", ns, err)
		}
		if got.Labels["istio-injection"] != "enabled" {
			t.Errorf("namespace %s labels %v", ns, got.Labels)
		}
		sec, err := cs.CoreV1().Secrets(ns).Get(ctx, "newrelic-license", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("secret in %s: %v", ns, err)
		}
		if string(sec.Data["license_key"]) != licence || len(sec.Data) != 1 {
			t.Errorf("secret in %s has keys %v or the wrong licence", ns, keys(sec.Data))
		}
	}
	orders, _ := cs.CoreV1().Namespaces().Get(ctx, "orders", metav1.GetOptions{})
	if orders.Labels["owner"] != "sre" {
		t.Errorf("existing label lost: %v", orders.Labels)
	}
	payments, _ := cs.CoreV1().Namespaces().Get(ctx, "payments", metav1.GetOptions{})
	if payments.Labels["team"] != "payments" {
		t.Errorf("per-namespace label missing: %v", payments.Labels)
	}

	assertProgress(t, res, "4 namespaces: 3 created, 1 relabelled, 0 unchanged; Secret newrelic-license: 4 created, 0 updated, 0 unchanged")
	if got := res.Steps["namespaces"].Outputs["namespaces"]; got != `["orders","payments","search","web"]` {
		t.Errorf("namespaces output = %s", got)
	}
	e.assertNoKey(t, res, db)
}

func (e *env) testSecondRun(t *testing.T) {
	ctx := testContext(t, time.Minute)
	before := e.resourceVersions(ctx, t)
	res, db := e.run(t, e.cfg)
	requireSucceeded(t, res)
	if after := e.resourceVersions(ctx, t); after != before {
		t.Errorf("resourceVersions changed on a re-run:\n before %s\n after  %s", before, after)
	}
	assertProgress(t, res, "4 namespaces: 0 created, 0 relabelled, 4 unchanged; Secret newrelic-license: 0 created, 0 updated, 4 unchanged")
	e.assertNoKey(t, res, db)
}

func (e *env) testRotated(t *testing.T) {
	ctx := testContext(t, time.Minute)
	e.keys = append(e.keys, rotatedLicence)
	e.vf.PutKV("kv", "observability/newrelic", map[string]any{"license_key": rotatedLicence})
	res, db := e.run(t, e.cfg)
	requireSucceeded(t, res)
	for _, ns := range wantNamespaces {
		sec, err := e.dr.Clientset().CoreV1().Secrets(ns).Get(ctx, "newrelic-license", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if string(sec.Data["license_key"]) != rotatedLicence {
			t.Errorf("secret in %s still holds the old licence", ns)
		}
	}
	assertProgress(t, res, "Secret newrelic-license: 0 created, 4 updated, 0 unchanged")
	e.assertNoKey(t, res, db)
}

func (e *env) testMissingField(t *testing.T) {
	cfg := *e.cfg
	cfg.Vault.NewRelicKeyField = "licence_key"
	res, db := e.run(t, &cfg)
	rec := res.Steps["namespaces"]
	if rec.Status != state.StepFailed || rec.Retryable ||
		rec.Error != `vault KV secret kv/observability/newrelic has no field "licence_key": check vault.newrelic_key_field` {
		t.Errorf("step %s (retryable %v): %q", rec.Status, rec.Retryable, rec.Error)
	}
	e.assertNoKey(t, res, db)
}

// assertNoKey checks that no licence value, plain or base64, is in the
// journal (every byte of the state file and the decoded records), in any
// event or progress line, or in the logs.
func (e *env) assertNoKey(t *testing.T, res steptest.Result, dbPath string) {
	t.Helper()
	raw, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	journal, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, ev := range res.Events {
		lines = append(lines, ev.Message, ev.Error, fmt.Sprint(ev.Fields))
	}
	logs := e.logs.String()
	if len(logs) == 0 || len(res.Events) == 0 {
		t.Fatal("nothing was logged or journaled: the check would be vacuous")
	}
	for _, key := range e.keys {
		for _, form := range []string{key, base64.StdEncoding.EncodeToString([]byte(key))} {
			if bytes.Contains(raw, []byte(form)) {
				t.Errorf("a licence key is in the state file")
			}
			if bytes.Contains(journal, []byte(form)) {
				t.Errorf("a licence key is in the journal")
			}
			if strings.Contains(strings.Join(lines, "\n"), form) {
				t.Errorf("a licence key is in an event or progress line")
			}
			if strings.Contains(logs, form) {
				t.Errorf("a licence key is in the logs")
			}
		}
	}
}

func (e *env) resourceVersions(ctx context.Context, t *testing.T) string {
	t.Helper()
	var out []string
	for _, ns := range wantNamespaces {
		n, err := e.dr.Clientset().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		s, err := e.dr.Clientset().CoreV1().Secrets(ns).Get(ctx, "newrelic-license", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ns+"="+n.ResourceVersion+"/"+s.ResourceVersion)
	}
	return strings.Join(out, " ")
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
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
	lines := res.Progress("namespaces")
	for _, l := range lines {
		if strings.Contains(l, want) {
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
