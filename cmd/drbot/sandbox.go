package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/term"
	"k8s.io/klog/v2"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/slackfake"
	"github.com/drbot/drbot/test/world"
)

const sandboxUsage = `usage: drbot sandbox [-services N] [-speed X] [-fail STEP] [-interactive] [-dir DIR]

A whole DR recovery on this machine, no AWS or Slack account needed: the real
drbot (engine, state file, Slack Socket Mode) recovers the target prod-eu
against the stand-ins of test/ — Slack, AWS, GitLab with N primary templates,
Vault, Argo CD, the load balancer controller and two real Kubernetes control
planes — all on 127.0.0.1. The sandbox types /dr start as @oncall, shows the
incident channel (the pinned status board, the phase threads, the approval
prompts) and approves both gates as @lead after a second. At the end it
prints the post-mortem and where the state file is.

-interactive: you decide at each gate (a = approve, r = reject) and at a
failed step (r = retry, s = skip, a = abort), as the buttons in Slack do.
-fail STEP: the step's action fails on its first attempt (a wrapper around
the real action; the retry runs the real one), so you can practise
Retry/Skip/Abort. Without -interactive the sandbox then stops at the blocked
step and exits 1.

-speed X: the far ends take AWS's time (world.Realistic: EKS 12 min, NLB
3 min, CloudFront 5 min…) divided by X, and drbot polls X times as often as
in production; 0 answers at once. The default, 200, plays a recovery of
about 40 minutes in about 12 seconds.

The Kubernetes binaries are built once by ` + "`make sandbox`" + ` (make kube-bins).
drbot's logs go to DIR/drbot.log, not the terminal.

`

// The far ends take AWS's time, 200 times faster: the board shows the
// phases in their real proportions and a 150-service run stays short.
const defaultSandboxSpeed = 200

// sandboxLatency is the far ends' latency at speed: AWS's
// (world.Realistic) divided by speed, none at speed 0.
func sandboxLatency(speed float64) world.Latencies {
	if speed == 0 {
		return world.Latencies{}
	}
	return world.Realistic().Scaled(speed)
}

// sandboxGatePause is how long the sandbox's lead "reads" a gate.
const sandboxGatePause = time.Second

func cmdSandbox(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first Ctrl-C stops the sandbox tidily; a second one kills it
		// (the control planes die with it: they have a parent-death signal).
		<-ctx.Done()
		stop()
	}()
	return runSandbox(ctx, args, os.Stdin, stdout, stderr)
}

// runSandbox is cmdSandbox with the keyboard given (tests script it).
func runSandbox(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("sandbox", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, sandboxUsage); fs.PrintDefaults() }
	services := fs.Int("services", 150, "how many services the primary region ran (GitLab templates)")
	speed := fs.Float64("speed", defaultSandboxSpeed, "far ends this many times faster than AWS (0: at once)")
	fail := fs.String("fail", "", "step id whose first attempt fails, e.g. "+standard.AddonsIstio)
	interactive := fs.Bool("interactive", false, "decide gates and failures from the keyboard")
	dir := fs.String("dir", "", "where the state file and logs go (default: a new directory in $TMPDIR)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{code: 2, msg: "drbot sandbox takes no arguments: " + strings.Join(fs.Args(), " ")}
	}
	if *services < 1 || *speed < 0 {
		return &exitError{code: 2, msg: "drbot sandbox: -services must be at least 1 and -speed at least 0"}
	}
	if *fail != "" {
		if err := knownStep(*fail); err != nil {
			return &exitError{code: 2, msg: "drbot sandbox: -fail: " + err.Error()}
		}
	}

	if *dir == "" {
		d, err := os.MkdirTemp("", "drbot-sandbox-")
		if err != nil {
			return fmt.Errorf("making the sandbox directory: %w", err)
		}
		*dir = d
	} else if err := os.MkdirAll(*dir, 0o755); err != nil {
		return fmt.Errorf("making the sandbox directory: %w", err)
	}
	logPath := filepath.Join(*dir, "drbot.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening the sandbox log: %w", err)
	}
	defer logFile.Close()
	log := slog.New(slog.NewTextHandler(logFile, &slog.HandlerOptions{Level: slog.LevelDebug}))
	// Libraries that log on their own (client-go, the default slog) write
	// to the file too: the terminal is the channel's.
	prevDefault := slog.Default()
	slog.SetDefault(log)
	defer slog.SetDefault(prevDefault)
	klog.LogToStderr(false)
	klog.SetOutput(logFile)
	defer klog.LogToStderr(true)

	t := &terminal{out: stdout, tty: isTerminal(stdout)}
	if t.tty {
		t.width, _, _ = term.GetSize(int(stdout.(*os.File).Fd()))
	}
	pace := "the far ends answering at once"
	if *speed > 0 {
		pace = fmt.Sprintf("the far ends %gx faster than AWS", *speed)
	}
	t.printf("drbot sandbox: recovering %d services of prod-eu into eu-central-1, %s; everything on 127.0.0.1.", *services, pace)
	fmt.Fprintf(stdout, "drbot's logs:\n  %s\n", logPath)

	h, err := world.NewHarness("sandbox", logFile, *dir)
	if err != nil {
		return err
	}
	succeeded := false
	defer func() {
		// The stand-ins' scratch (etcd data, control-plane logs) is kept
		// only when something went wrong.
		if succeeded {
			scratch, _ := filepath.Glob(filepath.Join(*dir, "tmp-*"))
			for _, d := range scratch {
				_ = os.RemoveAll(d)
			}
		}
	}()
	defer h.Close()
	began := time.Now()
	t.printf("Starting Slack, AWS, GitLab, Vault, Argo CD and two Kubernetes control planes…")
	var w *world.World
	if err := h.Go(func() {
		w = world.Start(h, world.Options{Services: *services, Latency: sandboxLatency(*speed)})
	}); err != nil {
		if strings.Contains(err.Error(), "control-plane binaries not prepared") {
			return fmt.Errorf("the Kubernetes control-plane binaries are missing: run `make sandbox` (it builds them once, then starts the sandbox)\n(%v)", err)
		}
		return fmt.Errorf("starting the stand-ins (details in %s): %w", logPath, err)
	}
	t.printf("Ready in %s.", time.Since(began).Round(100*time.Millisecond))

	cfg, err := w.Config(*dir)
	if err != nil {
		return err
	}
	d, err := newWorldDriver(w, cfg, log, withPollScale(*speed))
	if err != nil {
		return err
	}
	if *fail != "" {
		if d.book, err = failFirstAttempt(d.book, *fail); err != nil {
			return err
		}
	}
	if err := d.serve(ctx, serveOptions{poster: bot.PosterOptions{PostsPerSecond: 50, Burst: 20, BoardInterval: 250 * time.Millisecond}}); err != nil {
		return fmt.Errorf("starting drbot (details in %s): %w", logPath, err)
	}
	defer func() {
		if err := d.stop(); err != nil {
			log.Warn("stopping drbot", "err", err)
		}
	}()

	t.printf("#ops  @oncall: /dr start %s", w.Opts.Target)
	if err := d.slash(ctx, world.UserOncall, "start "+w.Opts.Target); err != nil {
		return err
	}
	s := &sandbox{d: d, w: w, t: t, view: newChannelView(), interactive: *interactive, clicked: map[string]bool{}, pending: map[string]time.Time{}, fail: *fail}
	if *interactive {
		s.keys = keyboardLines(stdin)
	}
	run, err := s.watch(ctx)
	if err != nil {
		return err
	}
	if err := s.finish(ctx, run, cfg.State.Path, logPath); err != nil {
		return err
	}
	// A stand-in that met a request it does not understand says so: drbot
	// or the stand-in has a bug, however the run ended.
	if errs := h.Errors(); len(errs) > 0 {
		return &exitError{code: 1, msg: fmt.Sprintf("the stand-ins reported %d problem(s) (all in %s); the first: %s", len(errs), logPath, errs[0])}
	}
	succeeded = true
	return nil
}

// knownStep checks id against the standard runbook's steps.
func knownStep(id string) error {
	book, err := standard.Runbook()
	if err != nil {
		return err
	}
	var ids []string
	for _, s := range book.ForMode(state.ModeRecovery).Steps() {
		if s.ID == id {
			return nil
		}
		ids = append(ids, s.ID)
	}
	return fmt.Errorf("no step %q in the recovery; steps: %s", id, strings.Join(ids, ", "))
}

// failFirstAttempt wraps one step's action so its first attempt fails
// permanently (no automatic retries): the run blocks there for a person,
// and Retry runs the real action.
func failFirstAttempt(book *recovery.Runbook, id string) (*recovery.Runbook, error) {
	steps := book.Steps()
	for i := range steps {
		if steps[i].ID != id {
			continue
		}
		real := steps[i].Action
		var failed atomic.Bool
		steps[i].Action = func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
			if failed.CompareAndSwap(false, true) {
				return recovery.Result{}, recovery.Permanent(fmt.Errorf("sandbox: injected failure of %s (-fail); a retry runs the real step", id))
			}
			return real(ctx, sc)
		}
		return recovery.NewRunbook(steps)
	}
	return nil, fmt.Errorf("no step %q in the runbook", id)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// keyboardLines hands over the keyboard's lines; the channel closes at EOF.
func keyboardLines(r io.Reader) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			ch <- strings.TrimSpace(sc.Text())
		}
	}()
	return ch
}

// sandbox follows one run: it shows the incident channel and plays the
// people who click.
type sandbox struct {
	d           *worldDriver
	w           *world.World
	t           *terminal
	view        *channelView
	interactive bool
	keys        <-chan string
	fail        string

	channel string
	board   string
	waiting []actionable         // messages with buttons, as last seen
	clicked map[string]bool      // button values already decided
	pending map[string]time.Time // gates first seen, for the pause
}

// watch shows the channel until the run finishes, or (without
// -interactive) until it blocks.
func (s *sandbox) watch(ctx context.Context) (state.Run, error) {
	var blockedSince time.Time
	for {
		run := s.d.latestRun()
		s.refresh(run)
		if run.ID != "" && run.Status.Finished() {
			return run, nil
		}
		for _, a := range s.open() {
			if err := s.decide(ctx, run, a); err != nil {
				return run, err
			}
		}
		if run.Status == state.RunBlocked {
			if blockedSince.IsZero() {
				blockedSince = time.Now()
			}
			// Without a person at the keyboard nothing unblocks the run.
			if !s.interactive || time.Since(blockedSince) > 10*time.Second {
				return run, s.blocked(run)
			}
		} else {
			blockedSince = time.Time{}
		}
		select {
		case <-ctx.Done():
			return run, fmt.Errorf("stopped while the run was %s; its state file is %s", run.Status, s.d.cfg.State.Path)
		case err := <-s.d.done:
			s.d.cancel = nil
			return run, fmt.Errorf("drbot serve stopped during the run: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// refresh prints what is new in the incident channel and redraws the board.
func (s *sandbox) refresh(run state.Run) {
	if s.channel == "" {
		s.channel = run.Slack.ChannelID
		if s.channel == "" {
			return
		}
		if c, ok := s.w.Slack.Channel(s.channel); ok {
			s.t.printf("drbot opened the incident channel #%s", c.Name)
		}
	}
	c, _ := s.w.Slack.Channel(s.channel)
	lines, board, waiting := s.view.update(s.w.Slack.Messages(s.channel), c.Pins)
	s.waiting = waiting
	for _, l := range lines {
		s.t.message(l)
	}
	if board != "" && (board != s.board || len(lines) > 0) {
		s.board = board
		s.t.drawBoard(board)
	}
}

// open lists the messages whose buttons nobody pressed yet.
func (s *sandbox) open() []actionable {
	var out []actionable
	for _, a := range s.waiting {
		if !s.clicked[a.key()] {
			out = append(out, a)
		}
	}
	return out
}

// decide plays the person who presses a button on a.
func (s *sandbox) decide(ctx context.Context, run state.Run, a actionable) error {
	key := a.key()
	if !isGate(a) {
		if !s.interactive {
			return nil // reported once the run is blocked
		}
		return s.decideFailure(ctx, a)
	}
	if s.interactive {
		return s.decideGate(ctx, a)
	}
	first, ok := s.pending[key]
	if !ok {
		s.pending[key] = time.Now()
		s.t.printf("  (sandbox: @lead reads the gate and approves in %s)", sandboxGatePause)
		return nil
	}
	if time.Since(first) < sandboxGatePause {
		return nil
	}
	s.clicked[key] = true
	b, _ := buttonFor(a.Buttons, bot.ActionApprove)
	return s.click(ctx, world.UserLead, a.TS, b)
}

func (s *sandbox) decideGate(ctx context.Context, a actionable) error {
	answer, err := s.ask(ctx, "Your call as @lead: [a]pprove or [r]eject? ", "a", "r")
	if err != nil {
		return err
	}
	s.clicked[a.key()] = true
	if answer == "a" {
		b, _ := buttonFor(a.Buttons, bot.ActionApprove)
		return s.click(ctx, world.UserLead, a.TS, b)
	}
	reason, err := s.askLine(ctx, "Why? (it goes to the audit log and the post-mortem): ")
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "rejected in the sandbox"
	}
	b, _ := buttonFor(a.Buttons, bot.ActionReject)
	return s.reject(ctx, a.TS, b, reason)
}

func (s *sandbox) decideFailure(ctx context.Context, a actionable) error {
	answer, err := s.ask(ctx, "Your call as @oncall: [r]etry, [s]kip or [a]bort? ", "r", "s", "a")
	if err != nil {
		return err
	}
	s.clicked[a.key()] = true
	action := map[string]string{"r": bot.ActionRetry, "s": bot.ActionSkip, "a": bot.ActionAbort}[answer]
	b, ok := buttonFor(a.Buttons, action)
	if !ok {
		return fmt.Errorf("the failure message has no %s button", action)
	}
	return s.click(ctx, world.UserOncall, a.TS, b)
}

// ask reads answers until one of choices comes.
func (s *sandbox) ask(ctx context.Context, prompt string, choices ...string) (string, error) {
	for {
		line, err := s.askLine(ctx, prompt)
		if err != nil {
			return "", err
		}
		line = strings.ToLower(line)
		for _, c := range choices {
			if line == c {
				return c, nil
			}
		}
		s.t.printf("  type one of %s", strings.Join(choices, ", "))
	}
}

func (s *sandbox) askLine(ctx context.Context, prompt string) (string, error) {
	s.t.keepBoard()
	fmt.Fprint(s.t.out, prompt)
	if !s.t.tty {
		fmt.Fprintln(s.t.out)
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case line, ok := <-s.keys:
		if !ok {
			return "", errors.New("the keyboard (stdin) closed while drbot waited for a decision")
		}
		if !s.t.tty {
			s.t.printf("> %s", line)
		}
		return line, nil
	}
}

// click presses a button as user and waits for drbot's ack.
func (s *sandbox) click(ctx context.Context, user, ts string, b button) error {
	s.t.printf("  @%s pressed [%s]", strings.ToLower(strings.TrimPrefix(user, "U0")), b.Label)
	id, err := s.w.Slack.Click(ctx, user, s.channel, ts, b.ActionID, b.Value)
	if err != nil {
		return fmt.Errorf("pressing %s: %w", b.Label, err)
	}
	if _, err := s.w.Slack.WaitAck(ctx, id); err != nil {
		return fmt.Errorf("pressing %s: no ack: %w", b.Label, err)
	}
	return nil
}

// reject presses Reject… and fills in the reason form that opens.
func (s *sandbox) reject(ctx context.Context, ts string, b button, reason string) error {
	before := len(s.w.Slack.Views())
	if err := s.click(ctx, world.UserLead, ts, b); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var view slackfake.View
	err := s.w.Slack.WaitFor(wctx, "the reject form", func() bool {
		vs := s.w.Slack.Views()
		for _, v := range vs[min(before, len(vs)):] {
			if v.User == world.UserLead {
				view = v
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	block, action, ok := modalInput(view.Raw)
	if !ok {
		return errors.New("the reject form has no reason field")
	}
	id, err := s.w.Slack.SubmitView(ctx, world.UserLead, view.CallbackID, view.PrivateMetadata, map[string]map[string]string{block: {action: reason}})
	if err != nil {
		return fmt.Errorf("submitting the reject form: %w", err)
	}
	_, err = s.w.Slack.WaitAck(ctx, id)
	return err
}

// blocked explains a run stopped at a failed step and what a person
// would do.
func (s *sandbox) blocked(run state.Run) error {
	// Let the failure message reach the channel before saying so.
	deadline := time.Now().Add(3 * time.Second)
	var failed []actionable
	for time.Now().Before(deadline) {
		s.refresh(run)
		failed = failed[:0]
		for _, a := range s.open() {
			if !isGate(a) {
				failed = append(failed, a)
			}
		}
		if len(failed) > 0 && strings.Contains(s.board, "BLOCKED") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.t.keepBoard()
	step := s.fail
	_ = s.d.srv.store.View(func(tx *state.Tx) error {
		recs, err := tx.Steps(run.ID)
		for id, r := range recs {
			if r.Status == state.StepFailed {
				step = id
			}
		}
		return err
	})
	hint := "drbot sandbox -interactive"
	if s.fail != "" {
		hint = "drbot sandbox -interactive -fail " + s.fail
	}
	return &exitError{code: 1, msg: fmt.Sprintf("The run %s is blocked at %s, waiting for a person.\n"+
		"In Slack you would press Retry (run the step again), Skip (mark it done after doing it by hand) or Abort on the failure message.\n"+
		"Try it: %s, then type r, s or a.\nState file: %s", run.ID, step, hint, s.d.cfg.State.Path)}
}

// finish prints the end of the run: the board, the post-mortem and where
// the state is.
func (s *sandbox) finish(ctx context.Context, run state.Run, statePath, logPath string) error {
	// The board and the post-mortem file follow the run's end by a moment.
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	final := strings.ToUpper(string(run.Status))
	for wctx.Err() == nil && !strings.Contains(s.board, final) {
		s.refresh(run)
		time.Sleep(50 * time.Millisecond)
	}
	s.t.keepBoard()
	if !s.t.tty {
		s.t.fullBoard(s.board)
	}

	// The upload has its own deadline: it is the outbox's last entry, which
	// may still wait behind step lines when the board already shows the end.
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	md, where := s.postmortem(pctx, run)
	fmt.Fprintln(s.t.out)
	s.t.printf("Post-mortem of run %s (%s):", run.ID, where)
	fmt.Fprintln(s.t.out, strings.Repeat("─", s.t.cols()))
	for _, l := range wrap(strings.TrimRight(md, "\n"), s.t.cols(), "  ") {
		fmt.Fprintln(s.t.out, l)
	}
	fmt.Fprintln(s.t.out, strings.Repeat("─", s.t.cols()))
	// Paths and commands stay whole, for copying, however long.
	fmt.Fprintf(s.t.out, "State file:\n  %s\nLook at the run again with:\n  drbot state -state %s inspect -run %s\ndrbot's logs:\n  %s\n", statePath, statePath, run.ID, logPath)
	if run.Status != state.RunSucceeded {
		return &exitError{code: 1, msg: fmt.Sprintf("the run %s ended %s", run.ID, run.Status)}
	}
	took := run.FinishedAt.Sub(run.StartedAt).Round(100 * time.Millisecond)
	s.t.printf("Recovered %d services in %s.", s.w.Opts.Services, took)
	return nil
}

// postmortem is the run's post-mortem as `drbot state postmortem` renders
// it from the state, now that the run is over; the copy drbot uploaded to
// the channel was written by the postmortem step, before the run ended.
func (s *sandbox) postmortem(ctx context.Context, run state.Run) (string, string) {
	var file slackfake.File
	var pm state.StepRecord
	_ = s.d.srv.store.View(func(tx *state.Tx) (err error) { pm, _, err = tx.Step(run.ID, standard.Postmortem); return })
	if pm.Status != state.StepSucceeded {
		// Only a post-mortem step that ran uploads a file (it runs at the
		// end of a run that got there, and after an abort).
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 0)
		defer cancel()
	}
	_ = s.w.Slack.WaitFor(ctx, "the post-mortem upload", func() bool {
		for _, f := range s.w.Slack.Files() {
			if f.Channel == s.channel && strings.HasSuffix(f.Filename, ".md") && len(f.Content) > 0 {
				file = f
				return true
			}
		}
		return false
	})
	where := "from the state file"
	if file.ID != "" {
		where += "; drbot uploaded it to the channel as " + file.Filename
	}
	var b strings.Builder
	if err := writePostmortem(s.d.srv.store, s.d.cfg, run.ID, &b); err != nil {
		if file.ID != "" {
			return string(file.Content), "uploaded to the channel as " + file.Filename
		}
		return "(no post-mortem: " + err.Error() + ")", where
	}
	return b.String(), where
}
