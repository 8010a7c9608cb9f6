package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
)

const example = "../../examples/drbot.yaml"

func drbot(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestValidateAcceptsTheExample(t *testing.T) {
	code, out, errOut := drbot(t, "validate", "-config", example)
	if code != 0 || !strings.Contains(out, "is valid") {
		t.Fatalf("code=%d out=%q err=%q", code, out, errOut)
	}
}

func TestValidateNamesUnknownKeyAndWrongTypeWithTheirLines(t *testing.T) {
	raw, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	// Plant two mistakes at known lines: an unknown key under state, and a
	// word where runbook.concurrency wants a number.
	text = strings.Replace(text, "\nstate:\n", "\nstate:\n  pathh: /tmp/x\n", 1)
	text = regexp.MustCompile(`(?m)^  concurrency: \d+`).ReplaceAllString(text, "  concurrency: lots")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	lineOf := func(needle string) string {
		for i, l := range strings.Split(text, "\n") {
			if strings.Contains(l, needle) {
				return ":" + strconv.Itoa(i+1) + ":"
			}
		}
		t.Fatalf("test setup: %q not planted", needle)
		return ""
	}
	code, _, errOut := drbot(t, "validate", "-config", bad)
	if code == 0 {
		t.Fatal("validate accepted a bad config")
	}
	for _, want := range []string{lineOf("pathh:"), "state.pathh", lineOf("concurrency: lots"), "runbook.concurrency"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error output lacks %q:\n%s", want, errOut)
		}
	}
}

func TestPlanListsEveryStepAndTheEstimates(t *testing.T) {
	code, out, errOut := drbot(t, "plan", "-config", example, "-drill", "-target", "drill-eu")
	if code != 0 {
		t.Fatalf("code=%d err=%s", code, errOut)
	}
	for _, s := range standard.Steps() {
		if !strings.Contains(out, " "+s.ID+" ") {
			t.Errorf("plan does not list %s", s.ID)
		}
	}
	for _, want := range []string{"Critical path (*): cluster.create", "Estimated time to recover:", "Sequential sum:", "MTTR budget:"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan lacks %q", want)
		}
	}
}

func TestPlanRefusesAnUnknownTarget(t *testing.T) {
	code, _, errOut := drbot(t, "plan", "-config", example, "-target", "nope")
	if code == 0 || !strings.Contains(errOut, `no target "nope"`) || !strings.Contains(errOut, "prod-eu") {
		t.Fatalf("code=%d err=%s", code, errOut)
	}
}

func TestServeWithoutSlackTokensExitsNamingTheVariables(t *testing.T) {
	t.Setenv("SLACK_APP_TOKEN", "")
	t.Setenv("SLACK_BOT_TOKEN", "")
	os.Unsetenv("SLACK_APP_TOKEN")
	os.Unsetenv("SLACK_BOT_TOKEN")
	code, _, errOut := drbot(t, "serve", "-config", example)
	if code == 0 {
		t.Fatal("serve started without tokens")
	}
	// The example reads both tokens from the environment.
	for _, want := range []string{"slack.app_token", "SLACK_APP_TOKEN", "slack.bot_token", "SLACK_BOT_TOKEN"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("serve error lacks %s:\n%s", want, errOut)
		}
	}
}

func TestConfigComesFromDRBOT_CONFIGWhenNoFlag(t *testing.T) {
	t.Setenv("DRBOT_CONFIG", example)
	if code, _, errOut := drbot(t, "validate"); code != 0 {
		t.Fatalf("code=%d err=%s", code, errOut)
	}
	t.Setenv("DRBOT_CONFIG", "")
	if code, _, errOut := drbot(t, "validate"); code != 2 || !strings.Contains(errOut, "DRBOT_CONFIG") {
		t.Fatalf("code=%d err=%s", code, errOut)
	}
}

func TestStateInspectAuditAndBackup(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drbot.db")
	s, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(func(tx *state.Tx) error {
		if err := tx.PutRun(state.Run{ID: "prod-eu-1", Target: "prod-eu", Mode: state.ModeDrill, Status: state.RunBlocked, Initiator: "U1"}); err != nil {
			return err
		}
		if err := tx.PutStep(state.StepRecord{RunID: "prod-eu-1", StepID: "cluster.create", Status: state.StepFailed, Attempt: 2, Error: "boom\ndetail"}); err != nil {
			return err
		}
		return tx.Audit(state.AuditEntry{Actor: "U1", Action: "run.start", RunID: "prod-eu-1", Result: "started"})
	})
	_ = s.Close()
	if err != nil {
		t.Fatal(err)
	}

	code, out, errOut := drbot(t, "state", "-state", path, "inspect")
	if code != 0 || !strings.Contains(out, "prod-eu-1") || !strings.Contains(out, "blocked") {
		t.Fatalf("inspect: code=%d out=%s err=%s", code, out, errOut)
	}
	code, out, _ = drbot(t, "state", "-state", path, "inspect", "-run", "prod-eu-1")
	if code != 0 || !strings.Contains(out, "cluster.create") || !strings.Contains(out, "boom") || strings.Contains(out, "detail") {
		t.Fatalf("inspect -run: code=%d out=%s", code, out)
	}
	code, out, _ = drbot(t, "state", "-state", path, "audit")
	if code != 0 || !strings.Contains(out, "run.start") {
		t.Fatalf("audit: code=%d out=%s", code, out)
	}
	dst := filepath.Join(dir, "copy.db")
	if code, _, errOut := drbot(t, "state", "-state", path, "backup", dst); code != 0 {
		t.Fatalf("backup: %s", errOut)
	}
	code, out, _ = drbot(t, "state", "-state", dst, "inspect")
	if code != 0 || !strings.Contains(out, "prod-eu-1") {
		t.Fatalf("backup copy lacks the run: %s", out)
	}
}

func TestVersionPrintsVersionCommitAndDate(t *testing.T) {
	code, out, _ := drbot(t, "version")
	if code != 0 || !strings.Contains(out, "drbot dev (commit unknown, built unknown") {
		t.Fatalf("code=%d out=%q", code, out)
	}
}

func TestStateCommandsReachTheRunningDrbotWhenItHoldsTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drbot.db")
	s, err := state.Open(path, state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Update(func(tx *state.Tx) error {
		return tx.PutRun(state.Run{ID: "prod-eu-live", Target: "prod-eu", Status: state.RunRunning})
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop, err := serveAdmin(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	code, out, errOut := drbot(t, "state", "-state", path, "inspect")
	if code != 0 || !strings.Contains(out, "prod-eu-live") {
		t.Fatalf("inspect while held: code=%d out=%s err=%s", code, out, errOut)
	}
	dst := filepath.Join(dir, "hot.db")
	code, out, errOut = drbot(t, "state", "-state", path, "backup", dst)
	if code != 0 || !strings.Contains(out, "hot copy") {
		t.Fatalf("backup while held: code=%d out=%s err=%s", code, out, errOut)
	}
	copyStore, err := state.Open(dst, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer copyStore.Close()
	_ = copyStore.View(func(tx *state.Tx) error {
		if _, ok, _ := tx.Run("prod-eu-live"); !ok {
			t.Error("hot copy lacks the live run")
		}
		return nil
	})
}
