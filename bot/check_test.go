package bot

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

func sampleReadiness() readiness.Report {
	rep := readiness.Report{At: t0, Trigger: "schedule", Results: []readiness.Result{
		{Check: "permissions.kube", Title: "drbot may manage the Argo CD cluster Secret and Applications", Status: readiness.Pass},
		{Check: "vault", Target: "prod-eu", Title: "Vault: the primary's roles, the New Relic key and drbot's capabilities", Status: readiness.Fail,
			Evidence: []string{"role(s) orders missing from auth/k8s-primary (it has: orders-v2, payments)"}, Fix: "restore the role(s) in the primary mount"},
		{Check: "slack", Title: "Slack: channels, people and groups resolve", Status: readiness.Warn,
			Evidence: []string{"Slack did not report the token's scopes"}, Fix: "compare the app's scopes with manifests/slack-app.yaml"},
		{Check: "gitlab", Title: "GitLab", Status: readiness.Pass},
	}}
	readiness.Sort(rep.Results)
	rep.Regressions = []readiness.Result{rep.Results[0]}
	return rep
}

func TestReadinessBlocksMatchGolden(t *testing.T) {
	blocks := ReadinessBlocks(sampleReadiness(), []string{"U900", "S0SRE"})
	checkLimits(t, blocks)
	var v any
	if err := json.Unmarshal(rawJSON(blocks), &v); err != nil {
		t.Fatal(err)
	}
	golden(t, "readiness_report", v)
}

func TestReadinessBlocksStayWithinFiftyBlocks(t *testing.T) {
	rep := readiness.Report{At: t0, Trigger: "cli"}
	for i := range 80 {
		rep.Results = append(rep.Results, readiness.Result{Check: "images", Target: strings.Repeat("t", i%7+1), Status: readiness.Fail, Evidence: []string{"missing"}})
	}
	blocks := ReadinessBlocks(rep, nil)
	checkLimits(t, blocks)
	if !strings.Contains(string(rawJSON(blocks)), "and 36 more") {
		t.Errorf("overflow line missing: %s", rawJSON(blocks[len(blocks)-1]))
	}
}

// responseSink records what drbot posts to a response_url.
type responseSink struct {
	mu    sync.Mutex
	posts []map[string]any
}

func (s *responseSink) serve(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Errorf("response_url got %q: %v", raw, err)
		}
		s.mu.Lock()
		s.posts = append(s.posts, m)
		s.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/commands/1"
}

func (s *responseSink) all() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]map[string]any(nil), s.posts...)
}

func readinessBot(t *testing.T) *Bot {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{Clock: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	noop := func(context.Context, *recovery.StepContext) (recovery.Result, error) { return recovery.Result{}, nil }
	book, err := recovery.NewRunbook([]recovery.Step{{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: noop, Estimate: time.Minute}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Access:    config.Access{Starters: []string{"U1"}},
		Targets:   []config.Target{{Name: "prod-eu", Cluster: config.Cluster{Provider: config.ProviderEKS}}},
		Readiness: config.Readiness{Owners: []string{"U900"}},
		MTTR:      config.MTTR{Budget: config.Duration(time.Hour)},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := recovery.New(context.Background(), store, book, recovery.Options{Logger: log})
	return &Bot{cfg: cfg, store: store, eng: eng, policy: NewPolicy(cfg.Access, nil), log: log, clock: func() time.Time { return t0.Add(3 * time.Hour) }}
}

func TestCheckCommandAnswersPrivatelyWithTheReportAndSavesIt(t *testing.T) {
	b := readinessBot(t)
	var gotTargets []string
	var gotTrigger string
	b.SetReadiness(func(_ context.Context, targets []*config.Target, trigger string) readiness.Report {
		for _, tg := range targets {
			gotTargets = append(gotTargets, tg.Name)
		}
		gotTrigger = trigger
		return sampleReadiness()
	})
	sink := &responseSink{}
	url := sink.serve(t)
	b.check(context.Background(), slack.SlashCommand{UserID: "U1", ResponseURL: url}, Command{Name: "check", Target: "prod-eu"})

	posts := sink.all()
	if len(posts) != 2 {
		t.Fatalf("%d response_url posts, want a notice and the report: %v", len(posts), posts)
	}
	report := posts[1]
	raw, _ := json.Marshal(report["blocks"])
	if report["response_type"] != "ephemeral" || !strings.Contains(string(rawJSON(json.RawMessage(raw))), "vault [prod-eu]") {
		t.Errorf("report reply = %v", report)
	}
	if strings.Join(gotTargets, ",") != "prod-eu" || gotTrigger != "slack:U1" {
		t.Errorf("checks ran on %v with trigger %q", gotTargets, gotTrigger)
	}
	if rep, ok, err := readiness.Latest(b.store); !ok || err != nil || rep.Trigger != "schedule" || !rep.Failed() {
		t.Errorf("the report was not saved: %+v ok=%v err=%v", rep, ok, err)
	}
}

func TestCheckCommandRefusesWhoMayNotStartOrOwn(t *testing.T) {
	b := readinessBot(t)
	ran := false
	b.SetReadiness(func(context.Context, []*config.Target, string) readiness.Report {
		ran = true
		return readiness.Report{}
	})
	sink := &responseSink{}
	b.check(context.Background(), slack.SlashCommand{UserID: "U666", ResponseURL: sink.serve(t)}, Command{Name: "check"})
	if ran {
		t.Error("a stranger ran the checks")
	}
	if posts := sink.all(); len(posts) != 1 || !strings.Contains(posts[0]["text"].(string), "may not run the readiness checks") {
		t.Errorf("reply = %v", posts)
	}
	// A readiness owner who is not a starter may.
	b.check(context.Background(), slack.SlashCommand{UserID: "U900", ResponseURL: sink.serve(t)}, Command{Name: "check"})
	if !ran {
		t.Error("a readiness owner could not run the checks")
	}
}

func TestPlanStartAndHistoryShowTheLastReadinessAndItsAge(t *testing.T) {
	b := readinessBot(t)
	if note := b.readinessStartNote(); note != "" {
		t.Errorf("without any report /dr start says %q", note)
	}
	if _, err := readiness.Save(b.store, sampleReadiness()); err != nil {
		t.Fatal(err)
	}
	plan := b.planText(Command{Name: "plan", Target: "prod-eu"})
	if !strings.Contains(plan, "Last readiness check 3h ago: 2/4 passed") || !strings.Contains(plan, "vault [prod-eu]") {
		t.Errorf("plan does not show the last readiness:\n%s", plan)
	}
	if note := b.readinessStartNote(); !strings.Contains(note, "Starting anyway") || !strings.Contains(note, "3h ago") {
		t.Errorf("/dr start note after a ❌ = %q", note)
	}
	hist := b.historyText()
	if !strings.Contains(hist, "*Readiness*") || !strings.Contains(hist, "Nov 25 10:00 ❌ 2/4") || !strings.Contains(hist, "regressed: `vault [prod-eu]`") {
		t.Errorf("history does not show readiness over time:\n%s", hist)
	}
	green := readiness.Report{At: t0.Add(time.Hour), Trigger: "cli", Results: []readiness.Result{{Check: "vault", Target: "prod-eu", Status: readiness.Pass}}}
	if _, err := readiness.Save(b.store, green); err != nil {
		t.Fatal(err)
	}
	if note := b.readinessStartNote(); strings.Contains(note, "Starting anyway") || !strings.Contains(note, "nothing would break") {
		t.Errorf("/dr start note after a green report = %q", note)
	}
}
