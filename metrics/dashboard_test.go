package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestGrafanaDashboardQueriesOnlyMetricsDrbotExposes keeps the dashboard in
// manifests/ from drifting from the metric names: a renamed series would
// otherwise leave an empty panel nobody notices until a disaster.
func TestGrafanaDashboardQueriesOnlyMetricsDrbotExposes(t *testing.T) {
	raw, err := os.ReadFile("../manifests/grafana-dashboard.json")
	if err != nil {
		t.Fatalf("reading dashboard: %v", err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if dash.UID == "" {
		t.Errorf("dashboard has no uid; re-imports would duplicate it")
	}

	m := New()
	m.OutboxDepth(func() (int, error) { return 0, nil })
	m.slackErrors.WithLabelValues("chat.postMessage", "ratelimited") // vectors appear once they have a child
	m.stepDuration.WithLabelValues("s")
	m.approvalWait.WithLabelValues("cutover")
	m.events.WithLabelValues("run.started")
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	exposed := map[string]bool{"up": true}
	for _, f := range families {
		name := f.GetName()
		exposed[name] = true
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			exposed[name+suffix] = true
		}
	}

	name := regexp.MustCompile(`\b(drbot_[a-z_]+|go_[a-z_]+|process_[a-z_]+|up)\b`)
	seen := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `job=~"$job"`) {
				t.Errorf("panel %q query %q ignores the job variable", p.Title, tg.Expr)
			}
			for _, n := range name.FindAllString(tg.Expr, -1) {
				seen[n] = true
				if !exposed[n] {
					t.Errorf("panel %q queries %s, which drbot does not expose", p.Title, n)
				}
			}
		}
	}
	for _, want := range []string{"drbot_runs_total", "drbot_step_duration_seconds_bucket", "drbot_ack_seconds_bucket", "drbot_outbox_pending",
		"drbot_outbox_delivery_latency_seconds_bucket", "drbot_slack_api_errors_total", "drbot_approval_wait_seconds_bucket"} {
		if !seen[want] {
			t.Errorf("no panel shows %s", want)
		}
	}
}
