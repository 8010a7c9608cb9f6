package recovery

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/drbot/drbot/state"
)

// crashBook is a 12-step DAG with parallel branches and a gate-free path,
// whose actions are idempotent the way real ones must be: each observes a
// marker file and creates its side effect only when missing. Every call is
// logged to calls.log as "step attempt" so the parent can count them.
func crashBook(dir string) []Step {
	act := func(id string) Action {
		return func(ctx context.Context, sc *StepContext) (Result, error) {
			appendLine(filepath.Join(dir, "calls.log"), fmt.Sprintf("%s %d", id, sc.Attempt()))
			marker := filepath.Join(dir, "effects", id)
			if _, err := os.Stat(marker); err == nil {
				return Result{Outputs: map[string]string{"observed": "already done"}}, nil
			}
			select {
			case <-time.After(40 * time.Millisecond): // the work; a kill often lands here
			case <-ctx.Done():
				return Result{}, ctx.Err()
			}
			if err := os.WriteFile(marker, []byte(id), 0o600); err != nil {
				return Result{}, err
			}
			sc.Progress("%s done", id)
			return Result{Outputs: map[string]string{"made": id}}, nil
		}
	}
	deps := [][2]string{
		{"cluster.create", ""}, {"templates.generate", ""}, {"cluster.access", "cluster.create"},
		{"iam.roles", "cluster.create"}, {"gitops.mr", "templates.generate"}, {"addons.lbc", "cluster.access,iam.roles"},
		{"argocd.register", "cluster.access"}, {"namespaces", "cluster.access"}, {"vault.auth", "cluster.access"},
		{"gitops.merge", "gitops.mr,argocd.register,namespaces,vault.auth"}, {"deploy.watch", "gitops.merge,addons.lbc"},
		{"postmortem", "deploy.watch"},
	}
	var steps []Step
	for _, d := range deps {
		s := Step{ID: d[0], Phase: PhaseProvision, Action: act(d[0])}
		if d[1] != "" {
			s.DependsOn = strings.Split(d[1], ",")
		}
		steps = append(steps, s)
	}
	return steps
}

func appendLine(path, line string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		panic(err)
	}
	if err := f.Sync(); err != nil {
		panic(err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// TestCrashChild is not a test on its own: TestResumeAfterSIGKILL runs the
// test binary as a child with DRBOT_CRASH_DIR set, kills it, and runs it again.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("DRBOT_CRASH_DIR")
	if dir == "" {
		t.Skip("child process of TestResumeAfterSIGKILL only")
	}
	store, err := state.Open(filepath.Join(dir, "drbot.db"), state.Options{LockTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	book, err := NewRunbook(crashBook(dir))
	if err != nil {
		t.Fatal(err)
	}
	// The receiving side dedupes by idempotency key, as the Slack poster does
	// by message metadata: an entry delivered just before a kill, but not yet
	// marked, is recognised instead of posted twice.
	delivered := filepath.Join(dir, "delivered.log")
	notifier := NotifierFunc(func(_ context.Context, ev Event) (string, error) {
		for _, l := range readLines(t, delivered) {
			if strings.HasPrefix(l, ev.Key+" ") {
				return "dup-recognised", nil
			}
		}
		appendLine(delivered, ev.Key+" posted")
		return "posted", nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	disp := NewDispatcher(store, notifier, quietLogger())
	disp.Poll = 10 * time.Millisecond
	go func() { _ = disp.Run(ctx) }()
	eng := New(ctx, store, book, Options{Concurrency: 3, Retry: fastRetry, Logger: quietLogger(), OnEnqueue: disp.Wake})

	var runID string
	resumed, err := eng.Resume()
	if err != nil {
		t.Fatal(err)
	}
	if len(resumed) == 1 {
		runID = resumed[0].ID
	} else {
		var runs []state.Run
		_ = store.View(func(tx *state.Tx) (err error) { runs, err = tx.Runs(); return })
		if len(runs) > 0 {
			runID = runs[0].ID // finished already in an earlier life
		} else {
			run, err := eng.Start(StartRequest{Target: "prod-eu", Initiator: "U1"})
			if err != nil {
				t.Fatal(err)
			}
			runID = run.ID
		}
	}
	if err := eng.WaitRun(ctx, runID); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var pending []state.OutboxEntry
		_ = store.View(func(tx *state.Tx) (err error) { pending, err = tx.Outbox(true, 0); return })
		if len(pending) == 0 {
			return
		}
	}
	t.Fatal("outbox not drained")
}

func TestResumeAfterSIGKILLExecutesEachStepOnceAndLosesNoMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns child processes")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "effects"), 0o700); err != nil {
		t.Fatal(err)
	}
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), "DRBOT_CRASH_DIR="+dir)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd
	}
	effects := func() int {
		entries, _ := os.ReadDir(filepath.Join(dir, "effects"))
		return len(entries)
	}
	total := len(crashBook(dir))
	// Kill the child three times at different points of the run.
	for _, killAfter := range []int{2, 5, 9} {
		cmd := child()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for effects() < killAfter && time.Now().Before(deadline) {
			time.Sleep(2 * time.Millisecond)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if n := effects(); n >= total {
			t.Fatalf("the run finished before the kill at %d effects; the test proves nothing", killAfter)
		}
	}
	final := child()
	if err := final.Run(); err != nil {
		t.Fatalf("the resumed child did not finish cleanly: %v", err)
	}

	store, err := state.Open(filepath.Join(dir, "drbot.db"), state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var runs []state.Run
	var steps map[string]state.StepRecord
	var outbox []state.OutboxEntry
	_ = store.View(func(tx *state.Tx) (err error) {
		if runs, err = tx.Runs(); err != nil || len(runs) != 1 {
			return err
		}
		if steps, err = tx.Steps(runs[0].ID); err != nil {
			return err
		}
		outbox, err = tx.Outbox(false, 0)
		return err
	})
	if len(runs) != 1 || runs[0].Status != state.RunSucceeded || runs[0].Resumes != 3 {
		t.Fatalf("runs = %+v, want one succeeded run resumed 3 times", runs)
	}

	// Actions: every call belongs to a journaled attempt (journal first, then
	// act), no attempt ran twice, and each step succeeded exactly once.
	calls := map[string]map[int]int{}
	for _, l := range readLines(t, filepath.Join(dir, "calls.log")) {
		f := strings.Fields(l)
		n, _ := strconv.Atoi(f[1])
		if calls[f[0]] == nil {
			calls[f[0]] = map[int]int{}
		}
		calls[f[0]][n]++
	}
	for _, s := range crashBook(dir) {
		rec := steps[s.ID]
		succeeded := 0
		journaled := map[int]bool{}
		for _, h := range rec.History {
			journaled[h.Attempt] = true
			if h.Outcome == "succeeded" {
				succeeded++
				if calls[s.ID][h.Attempt] != 1 {
					t.Errorf("%s: successful attempt %d was executed %d times", s.ID, h.Attempt, calls[s.ID][h.Attempt])
				}
			}
		}
		if rec.Status != state.StepSucceeded || succeeded != 1 {
			t.Errorf("%s: status %s with %d successful attempts, want exactly one", s.ID, rec.Status, succeeded)
		}
		for attempt, n := range calls[s.ID] {
			if n != 1 || !journaled[attempt] {
				t.Errorf("%s: attempt %d executed %d times, journaled=%v", s.ID, attempt, n, journaled[attempt])
			}
		}
	}

	// Messages: every event the journal implies is in the outbox once, all
	// delivered, and the receiver saw each key exactly once.
	keys := map[string]int{}
	for _, e := range outbox {
		keys[e.Key]++
		if !e.Delivered() {
			t.Errorf("outbox entry %s never delivered", e.Key)
		}
	}
	want := []string{runs[0].ID + "/started", runs[0].ID + "/finished", runs[0].ID + "/resumed/1", runs[0].ID + "/resumed/2", runs[0].ID + "/resumed/3"}
	for id, rec := range steps {
		for _, h := range rec.History {
			want = append(want, fmt.Sprintf("%s/%s/started/%d", runs[0].ID, id, h.Attempt))
			if h.Outcome == "succeeded" {
				want = append(want, fmt.Sprintf("%s/%s/succeeded/%d", runs[0].ID, id, h.Attempt))
			}
		}
	}
	for _, k := range want {
		if keys[k] != 1 {
			t.Errorf("outbox has %d entries for %s, want 1", keys[k], k)
		}
	}
	seen := map[string]int{}
	for _, l := range readLines(t, filepath.Join(dir, "delivered.log")) {
		seen[strings.Fields(l)[0]]++
	}
	for k := range keys {
		if seen[k] != 1 {
			t.Errorf("receiver saw %s %d times, want 1", k, seen[k])
		}
	}
	if len(seen) != len(keys) {
		t.Errorf("receiver saw %d keys, outbox holds %d", len(seen), len(keys))
	}
}
