package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/slackfake"
)

// childConfig is what the parent tells a drbot child process.
type childConfig struct {
	APIURL, AppToken, BotToken, StatePath string
	Backup                                *config.StateBackup // S3 copies of the state, when set
	Book                                  string              // "slow" for the restore test
	Effects                               string              // where the slow book logs its side effects
}

// crashBook has no gates (nobody clicks while drbot is dead) and slow,
// idempotent steps in two branches, so kills land mid-run.
func crashBook(t testing.TB) *recovery.Runbook {
	slow := func(context.Context, *recovery.StepContext) (recovery.Result, error) {
		time.Sleep(120 * time.Millisecond)
		return recovery.Result{}, nil
	}
	var steps []recovery.Step
	for i, s := range []struct {
		id    string
		phase recovery.Phase
		deps  string
	}{
		{"cluster.create", recovery.PhaseProvision, ""}, {"cluster.access", recovery.PhaseProvision, "cluster.create"},
		{"namespaces", recovery.PhaseBootstrap, "cluster.access"}, {"vault.auth", recovery.PhaseBootstrap, "cluster.access"},
		{"templates.generate", recovery.PhaseDeploy, ""}, {"gitops.mr", recovery.PhaseDeploy, "templates.generate"},
		{"deploy.watch", recovery.PhaseDeploy, "gitops.mr,namespaces,vault.auth"},
		{"endpoints.apply", recovery.PhaseCutover, "deploy.watch"}, {"postmortem", recovery.PhaseClose, "endpoints.apply"},
	} {
		st := recovery.Step{ID: s.id, Title: "step " + s.id, Phase: s.phase, Action: slow}
		if s.deps != "" {
			st.DependsOn = strings.Split(s.deps, ",")
		}
		if i == 0 {
			st.Action = func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
				sc.Progress("control plane CREATING")
				return slow(ctx, sc)
			}
		}
		steps = append(steps, st)
	}
	book, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	return book
}

// TestBotChild is not a test on its own: the crash test runs the test
// binary as drbot with DRBOT_CHILD set.
func TestBotChild(t *testing.T) {
	raw := os.Getenv("DRBOT_CHILD")
	if raw == "" {
		t.Skip("child process of TestBotSurvivesSIGKILL only")
	}
	var cc childConfig
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHILD_APP_TOKEN", cc.AppToken)
	t.Setenv("CHILD_BOT_TOKEN", cc.BotToken)
	cfg.Slack.APIURL, cfg.State.Path, cfg.State.Backup = cc.APIURL, cc.StatePath, cc.Backup
	cfg.Slack.AppToken, cfg.Slack.BotToken = config.EnvSecret("CHILD_APP_TOKEN"), config.EnvSecret("CHILD_BOT_TOKEN")
	cfg.Slack.Invite = nil
	cfg.Access = config.Access{Starters: []string{userOncall}, Approvers: map[string][]string{"merge": {userLead}, "cutover": {userLead}}, TwoPersonRule: true}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	book := crashBook(t)
	if cc.Book == "slow" {
		book = slowBook(t, cc.Effects)
	}
	if err := serve(ctx, cfg, book, log, serveOptions{poster: bot.PosterOptions{PostsPerSecond: 100, Burst: 20, BoardInterval: 50 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
}

func TestBotSurvivesSIGKILLWithEveryMessageOnceAndTheRunFinished(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	fake := slackfake.New(t, slackfake.Options{})
	fake.AddUser(userOncall, "oncall", false)
	fake.AddChannel(chanOps, "ops")
	statePath := filepath.Join(t.TempDir(), "drbot.db")
	cc, _ := json.Marshal(childConfig{APIURL: fake.APIURL(), AppToken: fake.AppToken(), BotToken: fake.BotToken(), StatePath: statePath})
	spawn := func() *exec.Cmd {
		before := fake.Connections()
		cmd := exec.Command(os.Args[0], "-test.run=^TestBotChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "DRBOT_CHILD="+string(cc))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		waitFake(t, fake, "the child to connect", func() bool { return fake.Connections() > before })
		return cmd
	}
	child := spawn()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := fake.SlashCommand(ctx, userOncall, chanOps, "/dr", "start prod-eu"); err != nil {
		t.Fatal(err)
	}
	var ch string
	waitFake(t, fake, "the incident channel", func() bool {
		for _, c := range fake.Channels() {
			if strings.HasPrefix(c.Name, "dr-prod-eu-") {
				ch = c.ID
				return true
			}
		}
		return false
	})
	count := func() int {
		n := 0
		for _, m := range fake.Messages(ch) {
			n += 1 + len(fake.Replies(ch, m.TS))
		}
		return n
	}
	for _, killAt := range []int{6, 16, 28} {
		waitFake(t, fake, "messages before the kill", func() bool { return count() >= killAt })
		_ = child.Process.Signal(syscall.SIGKILL)
		_ = child.Wait()
		if finished(fake, ch) {
			t.Fatalf("the run finished before the kill at %d messages; the test proves nothing", killAt)
		}
		child = spawn()
	}
	waitFake(t, fake, "the run to finish", func() bool { return finished(fake, ch) })
	time.Sleep(300 * time.Millisecond) // let the last board update land
	_ = child.Process.Signal(syscall.SIGTERM)
	if err := child.Wait(); err != nil {
		t.Fatalf("the child did not stop cleanly: %v", err)
	}

	store, err := state.Open(statePath, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var runs []state.Run
	_ = store.View(func(tx *state.Tx) (err error) { runs, err = tx.Runs(); return })
	if len(runs) != 1 || runs[0].Status != state.RunSucceeded || runs[0].Resumes != 3 {
		t.Fatalf("runs = %+v, want one succeeded run resumed three times", runs)
	}
	checkEveryMessageOnce(t, fake, store, runs[0].ID)
	resumed := 0
	for _, m := range fake.Messages(ch) {
		if strings.Contains(m.Text, "resumed this run") {
			resumed++
		}
	}
	if resumed != 3 {
		t.Errorf("the channel says %d times that drbot resumed, want 3", resumed)
	}
}

func finished(fake *slackfake.Server, ch string) bool {
	for _, m := range fake.Messages(ch) {
		if strings.Contains(m.Text, "finished in") {
			return true
		}
	}
	return false
}

func waitFake(t *testing.T, fake *slackfake.Server, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fake.WaitFor(ctx, what, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
