package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/state/backup"
	"github.com/drbot/drbot/test/slackfake"
)

// slowBook is six steps in a chain, 1.5 s each, whose side effect is a
// marker file made once; every call is logged so the test can tell which
// steps ran again after a restore.
func slowBook(t testing.TB, dir string) *recovery.Runbook {
	var steps []recovery.Step
	prev := ""
	for i := 1; i <= 6; i++ {
		id := fmt.Sprintf("step-%d", i)
		s := recovery.Step{ID: id, Title: id, Phase: recovery.PhaseProvision, Action: func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
			appendLine(t, filepath.Join(dir, "calls.log"), fmt.Sprintf("%s %d", id, sc.Attempt()))
			select {
			case <-time.After(1500 * time.Millisecond):
			case <-ctx.Done():
				return recovery.Result{}, ctx.Err()
			}
			marker := filepath.Join(dir, id)
			if _, err := os.Stat(marker); err != nil {
				appendLine(t, filepath.Join(dir, "effects.log"), id)
				if err := os.WriteFile(marker, []byte(id), 0o600); err != nil {
					return recovery.Result{}, err
				}
			}
			return recovery.Result{}, nil
		}}
		if prev != "" {
			s.DependsOn = []string{prev}
		}
		steps = append(steps, s)
		prev = id
	}
	book, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	return book
}

func appendLine(t testing.TB, path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, _ = f.WriteString(line + "\n")
}

func TestBotRestoredFromS3AfterLosingItsStateResumesAndRepeatsNothingDone(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes and waits for the 10 s backup debounce")
	}
	s3srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(s3srv.Close)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL_S3": s3srv.URL, "AWS_ACCESS_KEY_ID": "AKIDBACKUP00000001", "AWS_SECRET_ACCESS_KEY": "made-up-backup-secret", "AWS_REGION": "us-east-1"} {
		t.Setenv(k, v)
	}
	client := s3.New(s3.Options{Region: "us-east-1", BaseEndpoint: aws.String(s3srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDBACKUP00000001", "made-up-backup-secret", "")})
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("drbot-state")}); err != nil {
		t.Fatal(err)
	}
	fake := slackfake.New(t, slackfake.Options{})
	fake.AddUser(userOncall, "oncall", false)
	fake.AddChannel(chanOps, "ops")
	effects := t.TempDir()
	spawn := func(statePath string) *exec.Cmd {
		cc, _ := json.Marshal(childConfig{APIURL: fake.APIURL(), AppToken: fake.AppToken(), BotToken: fake.BotToken(), StatePath: statePath,
			Backup: &config.StateBackup{Bucket: "drbot-state", Prefix: "drbot", Region: "us-east-1", Keep: 48, PathStyle: true}, Book: "slow", Effects: effects})
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
	copies := func() int {
		keys, _ := backup.List(ctx, client, "drbot-state", "drbot")
		return len(keys)
	}
	lost := filepath.Join(t.TempDir(), "drbot.db")
	child := spawn(lost)
	if _, err := fake.SlashCommand(ctx, userOncall, chanOps, "/dr", "start prod-eu"); err != nil {
		t.Fatal(err)
	}
	// Wait until some steps are done and a copy made after them exists, then lose the machine.
	deadline := time.Now().Add(60 * time.Second)
	for !(len(readLines(t, filepath.Join(effects, "effects.log"))) >= 4 && copies() >= 2) {
		if time.Now().After(deadline) {
			t.Fatalf("no progress: effects %v, %d copies", readLines(t, filepath.Join(effects, "effects.log")), copies())
		}
		time.Sleep(100 * time.Millisecond)
	}
	killedAt := time.Now()
	_ = child.Process.Signal(syscall.SIGKILL)
	_ = child.Wait()
	if err := os.Remove(lost); err != nil {
		t.Fatal(err)
	}

	fresh := filepath.Join(t.TempDir(), "restored", "drbot.db")
	if code, out, errOut := drbot(t, "state", "-state", fresh, "restore", "s3://drbot-state/drbot"); code != 0 || !strings.Contains(out, "restored s3://drbot-state/drbot/drbot-") {
		t.Fatalf("restore: code=%d out=%s err=%s", code, out, errOut)
	}
	mark, err := backup.ReadMark(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if behind := killedAt.Sub(mark.Newest); behind > 12*time.Second {
		t.Errorf("the restored state is %s behind the lost one, want at most ~10 s", behind)
	}
	doneBefore := map[string]bool{}
	st, err := state.Open(fresh, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_ = st.View(func(tx *state.Tx) error {
		runs, _ := tx.Runs()
		recs, _ := tx.Steps(runs[0].ID)
		for id, r := range recs {
			if r.Status == state.StepSucceeded {
				doneBefore[id] = true
			}
		}
		return nil
	})
	_ = st.Close()
	if len(doneBefore) == 0 {
		t.Fatal("the copy has no finished step; the test proves nothing")
	}
	callsBefore := len(readLines(t, filepath.Join(effects, "calls.log")))

	child = spawn(fresh)
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
	ctxLong, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := fake.WaitFor(ctxLong, "the run to finish", func() bool { return finished(fake, ch) }); err != nil {
		t.Fatal(err)
	}
	_ = child.Process.Signal(syscall.SIGTERM)
	_ = child.Wait()

	for _, l := range readLines(t, filepath.Join(effects, "calls.log"))[callsBefore:] {
		if id := strings.Fields(l)[0]; doneBefore[id] {
			t.Errorf("%s ran again after the restore although the restored journal recorded it done", id)
		}
	}
	seen := map[string]int{}
	for _, id := range readLines(t, filepath.Join(effects, "effects.log")) {
		seen[id]++
	}
	for i := 1; i <= 6; i++ {
		if id := fmt.Sprintf("step-%d", i); seen[id] != 1 {
			t.Errorf("%s's side effect happened %d times, want once", id, seen[id])
		}
	}
}

func readLines(t testing.TB, path string) []string {
	raw, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}
