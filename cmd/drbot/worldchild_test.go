package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/slackfake"
	"github.com/drbot/drbot/test/world"
)

// The world child: the test binary re-executed as `drbot serve` with the
// real wired standard runbook, aimed at a world the parent started. Crash
// torture SIGKILLs it; benchmarks read its CPU time and peak RSS, which
// are drbot's alone (the stand-ins and the control planes stay in the
// parent).

const worldChildEnv = "DRBOT_WORLD_CHILD"

// worldChildProfileEnv names a directory where a world child writes, each
// time its RSS reaches a new peak, a heap profile (heap.pprof), its
// runtime.MemStats (memstats.json) and /proc/self/smaps_rollup
// (smaps_rollup.txt): what the memory was at the peak the benchmark
// reports.
const worldChildProfileEnv = "DRBOT_CHILD_PROFILE"

// worldChildConfig is what the parent tells a world child, as JSON in
// DRBOT_WORLD_CHILD. Credentials travel in the environment (world.Start
// sets them).
type worldChildConfig struct {
	World    world.Addresses `json:"world"`
	StateDir string          `json:"state_dir"`
	// The poster's pacing (bot.PosterOptions without the parts serve sets).
	PostsPerSecond float64       `json:"posts_per_second"`
	Burst          int           `json:"burst"`
	BoardInterval  time.Duration `json:"board_interval"`
	// LogLevel of the child's JSON log on its stderr (slog level, default info).
	LogLevel slog.Level `json:"log_level"`
}

// worldChildOptions shape a world child.
type worldChildOptions struct {
	Poster   bot.PosterOptions // PostsPerSecond, Burst and BoardInterval are passed on
	LogLevel slog.Level
	// Log receives the child's stderr (its JSON log and any panic); by
	// default <stateDir>/drbot-child.log, appended across restarts.
	Log string
	// Env is added to the child's environment.
	Env []string
	// ReadyTimeout bounds the wait for the child's Socket Mode connection
	// (default 60s).
	ReadyTimeout time.Duration
}

// TestWorldChild is not a test on its own: startWorldChild runs the test
// binary with DRBOT_WORLD_CHILD set, and this serves until SIGTERM.
func TestWorldChild(t *testing.T) {
	raw := os.Getenv(worldChildEnv)
	if raw == "" {
		t.Skip("child process of startWorldChild only")
	}
	var cc worldChildConfig
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		t.Fatalf("decoding %s: %v", worldChildEnv, err)
	}
	cfg, err := cc.World.Config(cc.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: cc.LogLevel}))
	std, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	var live atomic.Pointer[state.Store] // set once serve has opened it
	book, rollback, err := wireActions(cfg, std, log, live.Load)
	if err != nil {
		t.Fatalf("wiring the runbook: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if dir := os.Getenv(worldChildProfileEnv); dir != "" {
		go profileAtPeak(ctx, dir)
	}
	err = serve(ctx, cfg, book, log, serveOptions{
		rollback: rollback,
		onStore:  live.Store,
		poster:   bot.PosterOptions{PostsPerSecond: cc.PostsPerSecond, Burst: cc.Burst, BoardInterval: cc.BoardInterval},
	})
	if err != nil {
		t.Fatalf("serve: %v", err)
	}
}

// profileAtPeak samples the process's RSS every 100 ms until ctx ends and
// rewrites the profiles in dir whenever it grew by 1 MiB over the last
// peak.
func profileAtPeak(ctx context.Context, dir string) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	var peak int64
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rss := rssKiB()
		if rss < peak+1024 {
			continue
		}
		peak = rss
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if f, err := os.Create(filepath.Join(dir, "heap.pprof")); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
		}
		ms.PauseNs, ms.PauseEnd, ms.BySize = [256]uint64{}, [256]uint64{}, [61]struct {
			Size    uint32
			Mallocs uint64
			Frees   uint64
		}{}
		if data, err := json.MarshalIndent(struct {
			RSSKiB  int64 `json:"rss_kib"`
			Threads int   `json:"goroutines"`
			runtime.MemStats
		}{rss, runtime.NumGoroutine(), ms}, "", " "); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "memstats.json"), data, 0o644)
		}
		if data, err := os.ReadFile("/proc/self/smaps_rollup"); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "smaps_rollup.txt"), data, 0o644)
		}
		if data, err := os.ReadFile("/proc/self/smaps"); err == nil {
			_ = os.WriteFile(filepath.Join(dir, "smaps.txt"), data, 0o644)
		}
	}
}

// rssKiB is VmRSS from /proc/self/status (0 when unreadable).
func rssKiB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var n int64
			fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
			return n
		}
	}
	return 0
}

// worldChild is a running drbot child process.
type worldChild struct {
	t         testing.TB
	cmd       *exec.Cmd
	StatePath string // the bbolt file; open it only after the child stopped
	LogPath   string // the child's stderr
	logFile   *os.File

	snaps   atomic.Int64
	done    chan struct{}
	waitErr error
}

// startWorldChild starts drbot serve as a child process aimed at w, with
// its state in stateDir, and returns once it is connected to Slack. The
// child is SIGKILLed when the test ends, if still running. Start it again
// with the same stateDir after a Kill to resume.
func startWorldChild(t testing.TB, w *world.World, stateDir string, opts worldChildOptions) *worldChild {
	t.Helper()
	cc, err := json.Marshal(worldChildConfig{
		World: w.Addresses(), StateDir: stateDir,
		PostsPerSecond: opts.Poster.PostsPerSecond, Burst: opts.Poster.Burst, BoardInterval: opts.Poster.BoardInterval,
		LogLevel: opts.LogLevel,
	})
	if err != nil {
		t.Fatal(err)
	}
	if opts.Log == "" {
		opts.Log = filepath.Join(stateDir, "drbot-child.log")
	}
	if opts.ReadyTimeout <= 0 {
		opts.ReadyTimeout = time.Minute
	}
	logFile, err := os.OpenFile(opts.Log, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logFile, "--- drbot child started %s\n", time.Now().UTC().Format(time.RFC3339Nano))
	cfg, err := w.Addresses().Config(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	c := &worldChild{t: t, StatePath: cfg.State.Path, LogPath: opts.Log, logFile: logFile, done: make(chan struct{})}
	before := w.Slack.Connections()
	c.cmd = exec.Command(os.Args[0], "-test.run=^TestWorldChild$", "-test.count=1", "-test.timeout=0")
	c.cmd.Env = append(append(os.Environ(), worldChildEnv+"="+string(cc)), opts.Env...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	if err := c.cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatalf("starting the drbot child: %v", err)
	}
	go func() {
		c.waitErr = c.cmd.Wait()
		_ = logFile.Close()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = c.Kill()
		if t.Failed() {
			c.keepLog()
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), opts.ReadyTimeout)
	defer cancel()
	err = w.Slack.WaitFor(ctx, "the drbot child's Socket Mode connection", func() bool {
		select {
		case <-c.done:
			return true
		default:
		}
		return w.Slack.Connections() > before
	})
	select {
	case <-c.done:
		t.Fatalf("the drbot child exited before it connected (%v); its log %s ends:\n%s", c.waitErr, c.LogPath, c.logTail(40))
	default:
	}
	if err != nil {
		t.Fatalf("%v; the child's log %s ends:\n%s", err, c.LogPath, c.logTail(40))
	}
	return c
}

// Kill SIGKILLs the child and waits for it to go.
func (c *worldChild) Kill() error {
	if c.exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing the drbot child: %w", err)
	}
	<-c.done
	return nil
}

// Stop asks the child to shut down (SIGTERM) and waits up to a minute;
// an error says it did not exit cleanly.
func (c *worldChild) Stop() error {
	if !c.exited() {
		if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("stopping the drbot child: %w", err)
		}
	}
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		_ = c.Kill()
		return errors.New("the drbot child did not stop within a minute of SIGTERM; killed it")
	}
	_, err := c.Wait()
	return err
}

// Wait waits for the child to exit and returns its resource usage: user
// and system CPU time (Utime, Stime) and peak RSS (Maxrss, KiB on Linux)
// of drbot alone. The error is non-nil when the child did not exit 0.
func (c *worldChild) Wait() (*syscall.Rusage, error) {
	<-c.done
	var ru *syscall.Rusage
	if c.cmd.ProcessState != nil {
		ru, _ = c.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	}
	if c.waitErr != nil {
		return ru, fmt.Errorf("the drbot child: %w; its log %s ends:\n%s", c.waitErr, c.LogPath, c.logTail(20))
	}
	return ru, nil
}

// Done is closed once the child has exited.
func (c *worldChild) Done() <-chan struct{} { return c.done }

func (c *worldChild) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

var keptLogs sync.Map // log path → kept already

// keepLog copies the child's log out of the test's temporary directory,
// which the test removes, and says where.
func (c *worldChild) keepLog() {
	if _, dup := keptLogs.LoadOrStore(c.LogPath, true); dup {
		return // restarted children share one log
	}
	data, err := os.ReadFile(c.LogPath)
	if err != nil {
		return
	}
	name := filepath.Join(os.TempDir(), fmt.Sprintf("drbot-child-%s-%d.log", strings.ReplaceAll(c.t.Name(), "/", "_"), time.Now().UnixNano()))
	if os.WriteFile(name, data, 0o600) == nil {
		c.t.Logf("the drbot child's log is kept in %s", name)
	}
}

// Goroutines makes a stuck child dump its goroutines (SIGQUIT, which
// also ends it) and returns the dump.
func (c *worldChild) Goroutines() string {
	if c.exited() {
		return "(the child had exited)"
	}
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		_ = c.Kill()
	}
	data, err := os.ReadFile(c.LogPath)
	if err != nil {
		return err.Error()
	}
	s := string(data)
	if i := strings.LastIndex(s, "\nSIGQUIT"); i >= 0 {
		return s[i+1:]
	}
	return c.logTail(200)
}

// logTail is the end of the child's log, for failure messages.
func (c *worldChild) logTail(lines int) string {
	data, err := os.ReadFile(c.LogPath)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// Inspect is `drbot state inspect <run>` through the child's admin
// socket. It needs a run id: the listing without one opens a read
// transaction inside another (SchemaVersion inside View), which deadlocks
// bbolt when a writer must grow the file meanwhile — poll Runs instead.
func (c *worldChild) Inspect(runID string) (string, error) {
	if runID == "" {
		return "", errors.New("inspect without a run id can deadlock a serving drbot; use Runs")
	}
	return c.admin("GET", "inspect", url.Values{"run": {runID}})
}

// Audit is `drbot state audit <run>` through the child's admin socket.
func (c *worldChild) Audit(runID string) (string, error) {
	return c.admin("GET", "audit", url.Values{"run": {runID}})
}

func (c *worldChild) admin(method, op string, q url.Values) (string, error) {
	var buf bytes.Buffer
	if err := viaAdmin(c.StatePath, method, op, q, &buf); err != nil {
		return "", err
	}
	if i := strings.Index(buf.String(), "\nERROR: "); i >= 0 {
		return buf.String(), errors.New(strings.TrimSpace(buf.String()[i+1:]))
	}
	return buf.String(), nil
}

// Snapshot runs fn on a copy of the child's state that the child makes
// itself (POST /backup on its admin socket: one read transaction), opened
// read-only in the parent, so tests read the state while drbot holds it.
func (c *worldChild) Snapshot(fn func(*state.Store) error) error {
	dir := filepath.Join(filepath.Dir(c.StatePath), "snapshots")
	path := filepath.Join(dir, fmt.Sprintf("snap-%d.db", c.snaps.Add(1)))
	defer os.Remove(path)
	if _, err := c.admin("POST", "backup", url.Values{"path": {path}}); err != nil {
		return fmt.Errorf("copying the child's state: %w", err)
	}
	s, err := state.Open(path, state.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

// Runs lists the child's runs, oldest first.
func (c *worldChild) Runs() ([]state.Run, error) {
	var runs []state.Run
	err := c.Snapshot(func(s *state.Store) error {
		return s.View(func(tx *state.Tx) (err error) { runs, err = tx.Runs(); return })
	})
	return runs, err
}

// Undelivered counts the child's outbox entries not yet in Slack.
func (c *worldChild) Undelivered() (int, error) {
	var pending []state.OutboxEntry
	err := c.Snapshot(func(s *state.Store) error {
		return s.View(func(tx *state.Tx) (err error) { pending, err = tx.Outbox(true, 0); return })
	})
	return len(pending), err
}

// WaitRun waits until the child's newest run finished or is blocked.
func (c *worldChild) WaitRun(ctx context.Context) (state.Run, error) {
	var last state.Run
	for {
		runs, err := c.Runs()
		if err == nil && len(runs) > 0 {
			last = runs[len(runs)-1]
			if last.Status.Finished() || last.Status == state.RunBlocked {
				return last, nil
			}
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("the run is still %q: %w", last.Status, ctx.Err())
		case <-c.done:
			return last, fmt.Errorf("the drbot child exited during the run (%v); its log ends:\n%s", c.waitErr, c.logTail(20))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// PanicLines are the child's log lines that report a Go panic or a
// fatal runtime error.
func (c *worldChild) PanicLines() []string { return panicLines(c.LogPath) }

func panicLines(path string) []string {
	data, err := os.ReadFile(path)
	if err != nil {
		return []string{err.Error()}
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "panic:") || strings.HasPrefix(line, "fatal error:") || strings.Contains(line, "DATA RACE") {
			out = append(out, line)
		}
	}
	return out
}

// slackGate is a gate message with an Approve button, as Slack shows it.
type slackGate struct {
	Channel, TS string
	Value       bot.ButtonValue
	raw         string
}

// slackGates lists the Approve buttons in the messages and thread
// replies of every channel drbot opened for a run (dr-…), so a parent can
// play the approver while the child holds the state.
func slackGates(s *slackfake.Server) []slackGate {
	var out []slackGate
	for _, ch := range s.Channels() {
		if !strings.HasPrefix(ch.Name, "dr-") {
			continue
		}
		for _, m := range s.Messages(ch.ID) {
			out = append(out, gateButtons(ch.ID, m)...)
			for _, r := range m.Replies {
				if r.TS != m.TS {
					out = append(out, gateButtons(ch.ID, r)...)
				}
			}
		}
	}
	return out
}

func gateButtons(ch string, m slackfake.Message) []slackGate {
	if len(m.Blocks) == 0 {
		return nil
	}
	var blocks []struct {
		Type     string `json:"type"`
		Elements []struct {
			Type     string `json:"type"`
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	if json.Unmarshal(m.Blocks, &blocks) != nil {
		return nil
	}
	var out []slackGate
	for _, b := range blocks {
		if b.Type != "actions" {
			continue
		}
		for _, e := range b.Elements {
			if e.ActionID != bot.ActionApprove {
				continue
			}
			v, err := bot.ParseButtonValue(e.Value)
			if err != nil {
				continue
			}
			out = append(out, slackGate{Channel: ch, TS: m.TS, Value: v, raw: e.Value})
		}
	}
	return out
}

// slackApprover clicks Approve on every gate message as user, from Slack
// alone, and clicks again when a button is still there after retry (the
// click may have reached a drbot that was killed before it recorded it).
type slackApprover struct {
	Slack *slackfake.Server
	User  string
	Delay time.Duration // before the first click on a gate
	Retry time.Duration // before clicking a button that is still there again (default 3s)
	// OnGate, when set, hears of each gate the first time it is seen.
	OnGate func(slackGate)
	// Hold, when set, keeps a gate waiting (not clicked) while it says so.
	Hold func(slackGate) bool

	mu     sync.Mutex
	clicks map[string]int // button value → clicks sent
}

// Run approves until ctx ends.
func (a *slackApprover) Run(ctx context.Context) {
	if a.Retry <= 0 {
		a.Retry = 3 * time.Second
	}
	first := map[string]time.Time{}
	last := map[string]time.Time{}
	for ctx.Err() == nil {
		for _, g := range slackGates(a.Slack) {
			key := g.raw + "@" + g.TS
			seen, ok := first[key]
			if !ok {
				first[key] = time.Now()
				seen = first[key]
				if a.OnGate != nil {
					a.OnGate(g)
				}
			}
			if time.Since(seen) < a.Delay || time.Since(last[key]) < a.Retry || (a.Hold != nil && a.Hold(g)) {
				continue
			}
			last[key] = time.Now()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			id, err := a.Slack.Click(cctx, a.User, g.Channel, g.TS, bot.ActionApprove, g.raw)
			if err == nil {
				a.mu.Lock()
				if a.clicks == nil {
					a.clicks = map[string]int{}
				}
				a.clicks[g.raw]++
				a.mu.Unlock()
				_, _ = a.Slack.WaitAck(cctx, id) // a killed drbot never acks; the button stays and is clicked again
			}
			cancel()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Clicks is how many clicks went to each gate (button value).
func (a *slackApprover) Clicks() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.clicks))
	for k, v := range a.clicks {
		out[k] = v
	}
	return out
}

// slashAsChild types `/dr text` in the ops channel as user and waits for
// drbot's ack.
func slashAsChild(ctx context.Context, w *world.World, user, text string) error {
	id, err := w.Slack.SlashCommand(ctx, user, world.ChanOps, "/dr", text)
	if err != nil {
		return fmt.Errorf("/dr %s: %w", text, err)
	}
	if _, err := w.Slack.WaitAck(ctx, id); err != nil {
		return fmt.Errorf("/dr %s: no ack: %w", text, err)
	}
	return nil
}
