package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/world"
)

// Crash torture (issue 10 part 2): a whole recovery with drbot as a child
// process, SIGKILLed at points taken from the journal's transitions —
// a step started or finished, a gate opened or decided, a message sent —
// and at random moments, restarted each time. Afterwards the far ends
// must show everything done exactly once.

// tortureLatencies are the far ends' realistic times (issue 10's table),
// scaled so that the run lasts long enough to be killed many times.
var tortureLatencies = world.Latencies{
	EKSControlPlane: 12 * time.Minute, NodeGroup: 4 * time.Minute, EKSAddon: 90 * time.Second, LoadBalancer: 2 * time.Minute,
	Route53InSync: time.Minute, CloudFrontDeploy: 5 * time.Minute, AddonPodsReady: 90 * time.Second, AppsHealthySpread: 6 * time.Minute,
}

// killKinds are the transition points a kill waits for, in turn.
var killKinds = []string{"step.started", "outbox.sent", "random", "step.finished", "gate"}

// killPoint is one SIGKILL and what came of it.
type killPoint struct {
	N        int
	Trigger  string // what the kill waited for
	Fired    string // the transition it saw ("timeout" when none came)
	Alive    time.Duration
	Restart  time.Duration // from the kill to the next child's Socket Mode connection
	Finished bool          // the run had finished before the kill (it proves less)
}

func TestCrashTorture(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and kills a drbot child process many times")
	}
	kills := 5
	if v := os.Getenv("DRBOT_TORTURE_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			t.Fatalf("DRBOT_TORTURE_KILLS=%q is not a count", v)
		}
		kills = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("DRBOT_TORTURE_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("DRBOT_TORTURE_SEED=%q: %v", v, err)
		}
		seed = s
	}
	t.Logf("%d kill points, seed %d (DRBOT_TORTURE_SEED=%d repeats the choices)", kills, seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x70e7))

	speed := 300.0
	if kills > 10 {
		speed = 30 // a longer run has room for more kills
	}
	w := world.Start(t, world.Options{Services: 20, Latency: tortureLatencies.Scaled(speed)})
	dir := t.TempDir()
	opts := worldChildOptions{Poster: bot.PosterOptions{PostsPerSecond: 50, Burst: 10, BoardInterval: 100 * time.Millisecond}}
	child := startWorldChild(t, w, dir, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	if err := slashAsChild(ctx, w, world.UserOncall, "start "+w.Opts.Target); err != nil {
		t.Fatal(err)
	}
	// The cutover gate waits (as people do) until the last few kills, so
	// the run outlasts them however fast the far ends answer.
	var killed atomic.Int64
	approver := &slackApprover{Slack: w.Slack, User: world.UserLead, Delay: 300 * time.Millisecond, Retry: 2 * time.Second,
		Hold: func(g slackGate) bool {
			return g.Value.StepID == standard.EndpointsApply && killed.Load() < int64(kills-3)
		}}
	actx, acancel := context.WithCancel(ctx)
	var awg sync.WaitGroup
	awg.Go(func() { approver.Run(actx) })
	defer func() { acancel(); awg.Wait() }()

	tail := &logTail{path: child.LogPath}
	var points []killPoint
	for i := range kills {
		tail.skip()
		kind := killKinds[i%len(killKinds)]
		kp := killPoint{N: i + 1}
		started := time.Now()
		kp.Trigger, kp.Fired = waitKillPoint(ctx, w, tail, kind, rng)
		kp.Finished = tail.sawRunFinished()
		if err := child.Kill(); err != nil {
			t.Fatal(err)
		}
		kp.Alive = time.Since(started)
		down := time.Now()
		child = startWorldChild(t, w, dir, opts)
		kp.Restart = time.Since(down)
		points = append(points, kp)
		killed.Add(1)
		if kp.Finished {
			break
		}
	}

	wctx, wcancel := context.WithTimeout(ctx, 4*time.Minute)
	defer wcancel()
	run, err := child.WaitRun(wctx)
	if err != nil {
		t.Log("kill points:\n" + killTable(points))
		t.Fatalf("%v\n%s", err, stuckReport(child, run.ID))
	}
	if err := waitDelivered(ctx, child); err != nil {
		t.Fatal(err)
	}
	acancel()
	awg.Wait()
	if err := child.Stop(); err != nil {
		t.Fatal(err)
	}
	// The last drbot's own cost, apart from the stand-ins in this process.
	if ru, _ := child.Wait(); ru == nil || ru.Maxrss <= 0 || ru.Utime.Nano()+ru.Stime.Nano() <= 0 {
		t.Errorf("the child's rusage = %+v; want its CPU time and peak RSS measured", ru)
	} else {
		t.Logf("the last drbot child: CPU %s, peak RSS %d MiB", time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Round(time.Millisecond), ru.Maxrss/1024)
	}
	t.Log("kill points:\n" + killTable(points))
	landed := 0
	for _, p := range points {
		if !p.Finished {
			landed++
		}
	}
	if landed < kills {
		t.Errorf("only %d of %d kills landed before the run finished; the run is too short for this many", landed, kills)
	}
	if run.Status != state.RunSucceeded {
		t.Errorf("the run ended %s, want succeeded", run.Status)
	}
	checkWorldOnce(t, w, child, run.ID, landed)
}

// waitKillPoint waits for the next transition of kind in the child's
// log (or Slack), and says what it waited for and what it saw.
func waitKillPoint(ctx context.Context, w *world.World, tail *logTail, kind string, rng *rand.Rand) (trigger, fired string) {
	const patience = 4 * time.Second // then kill anyway: a long wait would let the run end early
	deadline := time.Now().Add(patience)
	switch kind {
	case "random":
		d := time.Duration(100+rng.IntN(1400)) * time.Millisecond
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
		return "random", "after " + d.String()
	case "outbox.sent":
		k := 1 + rng.IntN(2)
		base := slackWrites(w)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			if n := slackWrites(w); n >= base+k {
				return fmt.Sprintf("message %d sent", k), fmt.Sprintf("Slack write #%d", n)
			}
			time.Sleep(2 * time.Millisecond)
		}
		return fmt.Sprintf("message %d sent", k), "timeout"
	}
	k := 1
	if kind == "step.started" {
		k += rng.IntN(2) // steps start in bursts
	}
	want := map[string][]string{
		"step.started":  {"step started"},
		"step.finished": {"step succeeded", "step failed"},
		"gate":          {"waiting at gate", "decision recorded"},
	}[kind]
	trigger = fmt.Sprintf("%s #%d", kind, k)
	seen := 0
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, l := range tail.lines() {
			if !oneOf(l.Msg, want) {
				continue
			}
			if seen++; seen >= k {
				return trigger, l.String()
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	if kind == "gate" {
		return trigger, "timeout (no gate in reach)"
	}
	return trigger, "timeout"
}

func oneOf(s string, subs []string) bool {
	for _, x := range subs {
		if s == x {
			return true
		}
	}
	return false
}

// slackWrites counts the successful message posts and updates Slack saw.
func slackWrites(w *world.World) int {
	n := 0
	for _, c := range w.Slack.Calls() {
		if (c.Method == "chat.postMessage" || c.Method == "chat.update") && c.Error == "" && c.Status < 300 {
			n++
		}
	}
	return n
}

// logLine is one line of the child's JSON log.
type logLine struct {
	Msg    string `json:"msg"`
	Step   string `json:"step"`
	Gate   string `json:"gate"`
	Status string `json:"status"`
}

func (l logLine) String() string {
	s := l.Msg
	if l.Step != "" {
		s += " " + l.Step
	}
	return s
}

// logTail reads the lines the child appends to its log.
type logTail struct {
	path     string
	off      int64
	finished bool
}

// skip moves past everything logged so far.
func (t *logTail) skip() { _ = t.lines() }

// lines are the complete lines logged since the last call.
func (t *logTail) lines() []logLine {
	f, err := os.Open(t.path)
	if err != nil {
		return nil
	}
	defer f.Close()
	if _, err := f.Seek(t.off, io.SeekStart); err != nil {
		return nil
	}
	var out []logLine
	r := bufio.NewReader(f)
	for {
		raw, err := r.ReadString('\n')
		if err != nil {
			break // a partial line waits for the next call
		}
		t.off += int64(len(raw))
		var l logLine
		if json.Unmarshal([]byte(raw), &l) == nil && l.Msg != "" {
			if l.Msg == "run finished" {
				t.finished = true
			}
			out = append(out, l)
		}
	}
	return out
}

func (t *logTail) sawRunFinished() bool { _ = t.lines(); return t.finished }

// waitDelivered waits until the child holds no undelivered message.
func waitDelivered(ctx context.Context, c *worldChild) error {
	for {
		n, err := c.Undelivered()
		if err == nil && n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d message(s) still undelivered (%v): %w", n, err, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func killTable(points []killPoint) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tWAITED FOR\tKILLED AT\tALIVE\tBACK IN\tOUTCOME")
	for _, p := range points {
		outcome := "killed mid-run, resumed"
		if p.Finished {
			outcome = "run had finished"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", p.N, p.Trigger, p.Fired, p.Alive.Round(time.Millisecond), p.Restart.Round(time.Millisecond), outcome)
	}
	_ = tw.Flush()
	return b.String()
}

// checkWorldOnce checks, once the child has stopped, that the far ends
// show the recovery done exactly once and that the state tells all of it:
// one incident channel, every message once, one EKS cluster, one MR and
// one merge, each cutover row changed once, each approval recorded once,
// the audit log and the journal complete. resumes is how many times a
// killed drbot resumed the run.
func checkWorldOnce(t *testing.T, w *world.World, child *worldChild, runID string, resumes int) {
	t.Helper()
	if p := child.PanicLines(); len(p) > 0 {
		t.Errorf("the child's log reports: %q", p)
	}
	var channels []string
	for _, c := range w.Slack.Channels() {
		if strings.HasPrefix(c.Name, "dr-") {
			channels = append(channels, c.Name)
		}
	}
	if len(channels) != 1 {
		t.Errorf("incident channels = %v, want one", channels)
	}

	// AWS: one cluster, and each cutover row changed once.
	ok := map[string]int{}
	for _, c := range w.AWS.Calls() {
		if c.Status < 300 {
			ok[c.Operation]++
		}
	}
	for op, want := range map[string]int{
		"CreateCluster": 1, "CreateNodegroup": 1,
		"ChangeResourceRecordSets": 1, "UpdateDistribution": 1, "UpdateIntegration": 1, "CreateDeployment": 1,
	} {
		if ok[op] != want {
			t.Errorf("%s succeeded %d times, want %d", op, ok[op], want)
		}
	}

	// GitLab: one merge request, merged once.
	mrs := w.GitLab.MergeRequests(world.Project)
	if len(mrs) != 1 {
		t.Errorf("merge requests = %d, want 1", len(mrs))
	}
	merges, opened := 0, 0
	for _, c := range w.GitLab.Calls() {
		if c.Status >= 300 {
			continue
		}
		switch {
		case c.Method == "PUT" && strings.HasSuffix(c.Path, "/merge"):
			merges++
		case c.Method == "POST" && strings.HasSuffix(c.Path, "/merge_requests"):
			opened++
		}
	}
	if merges != 1 || opened != 1 {
		t.Errorf("GitLab: %d merge request(s) opened and %d merge(s), want one each", opened, merges)
	}

	store, err := state.Open(child.StatePath, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	checkEveryMessageOnce(t, w.Slack, store, runID)
	resumed := 0
	ch, _ := w.Slack.Channel(channelOf(store, runID))
	for _, m := range w.Slack.Messages(ch.ID) {
		if strings.Contains(m.Text, "resumed this run") {
			resumed++
		}
	}
	if resumed != resumes {
		t.Errorf("the channel says %d times that drbot resumed, want %d", resumed, resumes)
	}
	checkJournal(t, store, runID, true)

	// Approvals: one decision per gate, recorded once in the audit log.
	std, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	var run state.Run
	var audit []state.AuditEntry
	_ = store.View(func(tx *state.Tx) error {
		run, _, _ = tx.Run(runID)
		audit, err = tx.AuditLog(runID)
		return err
	})
	if run.Resumes != resumes {
		t.Errorf("the run was resumed %d times, want %d", run.Resumes, resumes)
	}
	recorded := map[string]int{}
	for _, e := range audit {
		if e.Result == "recorded" || e.Action == "run.start" || e.Action == "run.finish" {
			recorded[e.Action+" "+e.Step]++
		}
	}
	for _, s := range std.ForMode(state.ModeRecovery).Steps() {
		if s.Gate == "" {
			continue
		}
		var d state.Decision
		var found bool
		_ = store.View(func(tx *state.Tx) (err error) {
			d, found, err = tx.Decision(recovery.GateKey(runID, s.ID, 1))
			return err
		})
		if !found || d.Kind != string(recovery.DecideApprove) || d.By != world.UserLead {
			t.Errorf("gate %s: decision %+v (found %v), want approved by %s", s.ID, d, found, world.UserLead)
		}
		if n := recorded["decide.approve "+s.ID]; n != 1 {
			t.Errorf("gate %s: %d recorded approvals in the audit log, want 1", s.ID, n)
		}
	}
	if recorded["run.start "] != 1 || recorded["run.finish "] != 1 {
		t.Errorf("audit log: %d run.start and %d run.finish entries, want one each", recorded["run.start "], recorded["run.finish "])
	}
}

// channelOf is the run's incident channel.
func channelOf(store *state.Store, runID string) string {
	var run state.Run
	_ = store.View(func(tx *state.Tx) (err error) { run, _, err = tx.Run(runID); return })
	return run.Slack.ChannelID
}

// checkJournal checks that every step of the run that ran has a start
// and an end, that every attempt before the last one ended, and, when
// succeeded is set, that every step of the recovery succeeded.
func checkJournal(t *testing.T, store *state.Store, runID string, succeeded bool) {
	t.Helper()
	var steps map[string]state.StepRecord
	_ = store.View(func(tx *state.Tx) (err error) { steps, err = tx.Steps(runID); return })
	std, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range std.ForMode(state.ModeRecovery).Steps() {
		rec, ok := steps[s.ID]
		if !ok {
			if succeeded {
				t.Errorf("step %s: no journal record", s.ID)
			}
			continue
		}
		if succeeded && rec.Status != state.StepSucceeded {
			t.Errorf("step %s is %s, want succeeded", s.ID, rec.Status)
		}
		if rec.Status == state.StepSucceeded || rec.Status == state.StepFailed {
			if rec.StartedAt.IsZero() || rec.FinishedAt.IsZero() {
				t.Errorf("step %s is %s without a start (%v) or an end (%v)", s.ID, rec.Status, rec.StartedAt, rec.FinishedAt)
			}
		}
		for _, h := range rec.History {
			if h.StartedAt.IsZero() || h.FinishedAt.IsZero() || h.Outcome == "" {
				t.Errorf("step %s attempt %d: %+v lacks a start, an end or an outcome", s.ID, h.Attempt, h)
			}
		}
	}
}

// stuckReport is what a run that stopped moving leaves to look at: the
// journal through the admin socket and the child's goroutines.
func stuckReport(c *worldChild, runID string) string {
	out := "(no run)"
	if runID != "" {
		var err error
		if out, err = c.Inspect(runID); err != nil {
			out = err.Error()
		}
	}
	return out + "\n" + c.Goroutines()
}
