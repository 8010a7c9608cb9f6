package readiness

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drbot/drbot/state"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func openStore(t *testing.T) *state.Store {
	t.Helper()
	s, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestSaveRecordsRegressionsAgainstThePreviousReport(t *testing.T) {
	s := openStore(t)
	if _, ok, err := Latest(s); ok || err != nil {
		t.Fatalf("empty state has a latest report (ok=%v err=%v)", ok, err)
	}
	first := Report{At: t0, Trigger: "schedule", Results: []Result{{Check: "vault", Target: "prod", Status: Pass}, {Check: "slack", Status: Pass}}}
	saved, err := Save(s, first)
	if err != nil || len(saved.Regressions) != 0 {
		t.Fatalf("first save: %+v, %v", saved.Regressions, err)
	}
	second := Report{At: t0.Add(24 * time.Hour), Trigger: "schedule", Results: []Result{{Check: "vault", Target: "prod", Status: Fail}, {Check: "slack", Status: Pass}}}
	saved, err = Save(s, second)
	if err != nil || len(saved.Regressions) != 1 || saved.Regressions[0].Label() != "vault [prod]" {
		t.Fatalf("second save regressions = %+v, %v", saved.Regressions, err)
	}
	latest, ok, err := Latest(s)
	if err != nil || !ok || !latest.At.Equal(second.At) || len(latest.Regressions) != 1 {
		t.Errorf("latest = %+v (ok=%v err=%v)", latest, ok, err)
	}
	all, err := List(s, 0)
	if err != nil || len(all) != 2 || !all[0].At.Equal(t0) {
		t.Errorf("list = %d reports, first at %v (err %v); want 2, oldest first", len(all), all[0].At, err)
	}
	if last, _ := List(s, 1); len(last) != 1 || !last[0].At.Equal(second.At) {
		t.Errorf("List(1) = %+v, want the newest", last)
	}
}

func TestHistoryKeepsTheNewestReportsOnly(t *testing.T) {
	s := openStore(t)
	for i := range state.MaxReadinessReports + 3 {
		if _, err := Save(s, Report{At: t0.Add(time.Duration(i) * time.Hour), Trigger: "cli"}); err != nil {
			t.Fatal(err)
		}
	}
	all, _ := List(s, 0)
	if len(all) != state.MaxReadinessReports || !all[0].At.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("kept %d reports from %v; want %d from the 4th", len(all), all[0].At, state.MaxReadinessReports)
	}
}

func sampleReport() Report {
	rep := Report{At: t0, Trigger: "schedule", Results: []Result{
		{Check: "permissions.kube", Title: "drbot may manage the Argo CD cluster Secret and Applications", Status: Pass, Evidence: []string{"allowed: 11 of 11"}},
		{Check: "vault", Target: "prod-eu", Title: "Vault: the primary's roles, the New Relic key and drbot's capabilities", Status: Fail,
			Evidence: []string{"role(s) orders missing from auth/k8s-primary (it has: orders-v2, payments)"}, Fix: "restore the role(s) in the primary mount"},
		{Check: "sources.templates", Target: "prod-eu", Title: "the primary's templates parse", Status: Warn,
			Evidence: []string{"overrides naming no Application: svc-9999"}, Fix: "remove or rename the overrides in gitlab.overrides"},
		{Check: "slack", Title: "Slack", Status: Pass},
	}}
	Sort(rep.Results)
	rep.Regressions = []Result{rep.Results[0]}
	return rep
}

func TestWriteTextMatchesGolden(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, sampleReport()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "report.golden.txt")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (go test ./readiness -update writes it): %v", err)
	}
	if b.String() != string(want) {
		t.Errorf("text report differs from %s:\n%s", path, b.String())
	}
}

func TestSummarySaysAgeScoreAndWhatFailed(t *testing.T) {
	got := Summary(sampleReport(), t0.Add(3*time.Hour))
	for _, want := range []string{"3h ago", "2/4 passed", "❌", "vault [prod-eu]"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	ok := Summary(Report{At: t0, Results: []Result{{Check: "slack", Status: Pass}}}, t0.Add(time.Minute))
	if !strings.Contains(ok, "1/1 passed, nothing would break") {
		t.Errorf("summary of a clean report = %q", ok)
	}
}
