package recovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/drbot/drbot/state"
)

// RetryPolicy bounds how a step's retryable errors are retried.
type RetryPolicy struct {
	MaxAttempts    int           // attempts per step before it parks as failed
	InitialBackoff time.Duration // first wait
	MaxBackoff     time.Duration // cap of the exponential growth
}

// Backoff is the wait after the given failed attempt: exponential, capped,
// with jitter in [d/2, d] so parallel steps do not retry in lockstep.
func (p RetryPolicy) Backoff(attempt int) time.Duration {
	d := float64(p.InitialBackoff) * math.Pow(2, float64(attempt-1))
	if max := float64(p.MaxBackoff); max > 0 && d > max {
		d = max
	}
	return time.Duration(d/2 + mrand.Float64()*d/2)
}

// DefaultRetry is used when Options.Retry is zero.
var DefaultRetry = RetryPolicy{MaxAttempts: 5, InitialBackoff: 2 * time.Second, MaxBackoff: time.Minute}

// DecisionKind is what an operator decides.
type DecisionKind string

const (
	DecideApprove DecisionKind = "approve" // a gate: go ahead
	DecideReject  DecisionKind = "reject"  // a gate: do not; the step parks as failed
	DecideRetry   DecisionKind = "retry"   // a failed step: run it again with a fresh budget
	DecideSkip    DecisionKind = "skip"    // a failed step: mark it skipped; dependents proceed
	DecideAbort   DecisionKind = "abort"   // the run: cancel running steps and stop
)

// Authorizer says whether user may take a decision. It is checked on every
// decision; the denial is audited.
type Authorizer func(run state.Run, step Step, kind DecisionKind, user string) error

// DefaultConcurrency is how many steps of a run may run at once unless
// configured (runbook.concurrency has the same default). It is above the
// standard runbook's widest set of steps that become ready together (six,
// right after cluster.access): a ready step waiting for a slot behind
// four Helm installs would put their minutes on the critical path.
const DefaultConcurrency = 8

// Options configure an Engine.
type Options struct {
	Concurrency int // steps running at once per run (default DefaultConcurrency)
	Retry       RetryPolicy
	Logger      *slog.Logger
	Authorize   Authorizer // nil allows everything
	// PreApproved says a gate needs no person for this run (drills whose
	// config pre-approves the gate). The decision is recorded as drbot's.
	PreApproved func(run state.Run, step Step) bool
	// GateCheckEvery is how often waiting gates' GateChecks run (default 30s).
	GateCheckEvery time.Duration
	// OnEnqueue is called after a transaction added outbox entries; the
	// outbox dispatcher uses it to wake up.
	OnEnqueue func()
	// NewRunID makes run ids; tests pin it.
	NewRunID func(target string, now time.Time) string
}

// Engine runs runbooks durably.
type Engine struct {
	ctx   context.Context
	store *state.Store
	book  *Runbook
	opts  Options
	log   *slog.Logger

	mu       sync.Mutex
	drivers  map[string]*driver
	starting map[string]bool // runs being started, not yet driven: Resume leaves them alone
	resumeMu sync.Mutex      // one Resume at a time, so a run is never driven twice
	wg       sync.WaitGroup
	stopping bool // Wait was called: runs started now are left to the next start
}

// New makes an engine whose runs live as long as ctx.
func New(ctx context.Context, store *state.Store, book *Runbook, opts Options) *Engine {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Retry.MaxAttempts <= 0 {
		opts.Retry = DefaultRetry
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.NewRunID == nil {
		opts.NewRunID = newRunID
	}
	if opts.GateCheckEvery <= 0 {
		opts.GateCheckEvery = 30 * time.Second
	}
	return &Engine{ctx: ctx, store: store, book: book, opts: opts, log: opts.Logger, drivers: map[string]*driver{}, starting: map[string]bool{}}
}

func newRunID(target string, now time.Time) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s-%s", target, now.UTC().Format("20060102-1504"), hex.EncodeToString(b))
}

// Runbook is the table the engine runs.
func (e *Engine) Runbook() *Runbook { return e.book }

// Store is the engine's state.
func (e *Engine) Store() *state.Store { return e.store }

// StartRequest asks for a new run.
type StartRequest struct {
	Target    string
	Mode      state.Mode
	Initiator string
	Reason    string
	Slack     state.SlackRef // where the run talks, when started from Slack
	Drill     string         // the drills[] entry, for a drill started by the scheduler or Run now
}

// BusyError says the target already has an active run.
type BusyError struct{ Lock state.Lock }

func (b *BusyError) Error() string {
	return fmt.Sprintf("target %q already has an active run %s (since %s)", b.Lock.Target, b.Lock.RunID, b.Lock.Since.UTC().Format(time.RFC3339))
}

// Start takes the target's lock, records the run and starts driving it.
func (e *Engine) Start(req StartRequest) (state.Run, error) {
	if req.Target == "" {
		return state.Run{}, errors.New("starting a run: no target")
	}
	if req.Mode == "" {
		req.Mode = state.ModeRecovery
	}
	now := e.store.Now()
	run := state.Run{
		ID: e.opts.NewRunID(req.Target, now), Target: req.Target, Mode: req.Mode,
		Initiator: req.Initiator, Reason: req.Reason, Status: state.RunRunning,
		CreatedAt: now, StartedAt: now, Slack: req.Slack, Drill: req.Drill,
	}
	e.mu.Lock()
	e.starting[run.ID] = true
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.starting, run.ID)
		e.mu.Unlock()
	}()
	var busy *BusyError
	err := e.store.Update(func(tx *state.Tx) error {
		held, ok, err := tx.AcquireLock(run.Target, run.ID)
		if err != nil {
			return err
		}
		if !ok {
			busy = &BusyError{Lock: held}
			return tx.Audit(state.AuditEntry{Actor: req.Initiator, Action: "run.start", Target: req.Target, RunID: held.RunID, Result: "refused: target busy"})
		}
		if err := tx.PutRun(run); err != nil {
			return err
		}
		if err := tx.Audit(state.AuditEntry{Actor: req.Initiator, Action: "run.start", Target: req.Target, RunID: run.ID, Result: "started",
			Detail: map[string]string{"mode": string(run.Mode), "reason": req.Reason}}); err != nil {
			return err
		}
		return enqueue(tx, runEvent(run, EventRunStarted, "started", now, func(ev *Event) { ev.Actor = req.Initiator; ev.Message = req.Reason }))
	})
	if err != nil {
		return state.Run{}, fmt.Errorf("starting run on %q: %w", req.Target, err)
	}
	if busy != nil {
		return state.Run{}, busy
	}
	e.wake()
	e.launch(run)
	return run, nil
}

// Resume picks up every unfinished run in the state file, says so in each
// run's events, and drives it on. Finished steps are not re-run; a step
// that was running is run again; a gate that was waiting waits again.
func (e *Engine) Resume() ([]state.Run, error) {
	e.resumeMu.Lock()
	defer e.resumeMu.Unlock()
	var runs []state.Run
	if err := e.store.View(func(tx *state.Tx) (err error) { runs, err = tx.UnfinishedRuns(); return }); err != nil {
		return nil, fmt.Errorf("listing unfinished runs: %w", err)
	}
	var resumed []state.Run
	for _, run := range runs {
		if e.active(run.ID) {
			continue
		}
		now := e.store.Now()
		run.Resumes++
		err := e.store.Update(func(tx *state.Tx) error {
			if err := tx.PutRun(run); err != nil {
				return err
			}
			return enqueue(tx, runEvent(run, EventRunResumed, fmt.Sprintf("resumed/%d", run.Resumes), now, func(ev *Event) {
				ev.Message = "drbot restarted and resumed this run where it stopped"
			}))
		})
		if err != nil {
			return resumed, fmt.Errorf("resuming run %s: %w", run.ID, err)
		}
		e.log.Info("resuming run", "run_id", run.ID, "target", run.Target, "status", run.Status)
		e.launch(run)
		resumed = append(resumed, run)
	}
	e.wake()
	return resumed, nil
}

// active reports whether the run is driven or being started.
func (e *Engine) active(runID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.drivers[runID]
	return ok || e.starting[runID]
}

func (e *Engine) launch(run state.Run) {
	d := newDriver(e, run)
	e.mu.Lock()
	if e.stopping {
		// A drill tick or a late /dr start during shutdown: the run is
		// journaled, and the next start resumes it.
		e.mu.Unlock()
		e.log.Info("not driving a run started during shutdown; it resumes on the next start", "run_id", run.ID)
		return
	}
	e.drivers[run.ID] = d
	e.wg.Add(1) // under mu, ordered with Wait's stopping
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		d.loop()
		e.mu.Lock()
		delete(e.drivers, run.ID)
		e.mu.Unlock()
	}()
}

// WaitRun blocks until the run's driver stops (the run finished or the
// engine's context ended) or ctx ends.
func (e *Engine) WaitRun(ctx context.Context, runID string) error {
	e.mu.Lock()
	d, ok := e.drivers[runID]
	e.mu.Unlock()
	if !ok {
		return nil
	}
	select {
	case <-d.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Wait blocks until every driver has stopped.
func (e *Engine) Wait() {
	e.mu.Lock()
	e.stopping = true
	e.mu.Unlock()
	e.wg.Wait()
}

func (e *Engine) wake() {
	if e.opts.OnEnqueue != nil {
		e.opts.OnEnqueue()
	}
}

// DecisionRequest is an operator's decision about a run or one of its steps.
type DecisionRequest struct {
	RunID  string
	StepID string // empty for abort
	Kind   DecisionKind
	By     string
	Reason string
	// Round, when set, is the gate round or failure count the decider saw
	// (a button carries it); a decision for an older round is refused as
	// stale instead of deciding the current one.
	Round int
}

// ErrStale says a decision was made on an outdated view (an old button).
var ErrStale = errors.New("stale decision")

// DecisionResult reports the decision that stands. Applied is false when
// someone decided first; Decision then says who.
type DecisionResult struct {
	Decision state.Decision
	Applied  bool
}

// ErrDenied wraps authorisation refusals.
var ErrDenied = errors.New("not allowed")

// Decide records an operator's decision with compare-and-set semantics: the
// first decision for a gate round or a failure wins; later ones (double
// clicks, a second approver) are no-ops that report who decided.
func (e *Engine) Decide(req DecisionRequest) (DecisionResult, error) {
	// Who may decide is checked outside the write transaction: the check
	// may ask Slack for a user group's members, and bbolt has one writer.
	var target decisionTarget
	if err := e.store.View(func(tx *state.Tx) (err error) { target, err = e.decisionTarget(tx, req); return }); err != nil {
		return DecisionResult{}, fmt.Errorf("deciding %s on run %s: %w", req.Kind, req.RunID, err)
	}
	if e.opts.Authorize != nil {
		if err := e.opts.Authorize(target.run, target.step, req.Kind, req.By); err != nil {
			aerr := e.store.Update(func(tx *state.Tx) error {
				return tx.Audit(state.AuditEntry{Actor: req.By, Action: "decide." + string(req.Kind), RunID: target.run.ID, Target: target.run.Target, Step: target.step.ID, Result: "denied", Detail: map[string]string{"why": err.Error()}})
			})
			if aerr != nil {
				return DecisionResult{}, fmt.Errorf("auditing a refused decision: %w", aerr)
			}
			return DecisionResult{}, fmt.Errorf("%w: %v", ErrDenied, err)
		}
	}
	var res DecisionResult
	err := e.store.Update(func(tx *state.Tx) error {
		// The state may have moved since the check: decide on what holds now.
		now, err := e.decisionTarget(tx, req)
		if err != nil {
			return err
		}
		if now.key != target.key {
			return fmt.Errorf("%w: the step moved on while the decision was checked; look again", ErrStale)
		}
		run, step, key := now.run, now.step, now.key
		on, round := "run", 0
		if rec, ok, _ := tx.Step(run.ID, step.ID); ok && req.Kind != DecideAbort {
			on, round = "failure", rec.Failures
			if req.Kind == DecideApprove || req.Kind == DecideReject {
				on, round = "gate", rec.GateRound
			}
		}
		dec, won, err := tx.Decide(state.Decision{Key: key, RunID: run.ID, StepID: step.ID, Kind: string(req.Kind), By: req.By, Reason: req.Reason})
		if err != nil {
			return err
		}
		res = DecisionResult{Decision: dec, Applied: won}
		result := "recorded"
		if !won {
			result = fmt.Sprintf("no-op: %s already decided %s", dec.By, dec.Kind)
		}
		if err := tx.Audit(state.AuditEntry{Actor: req.By, Action: "decide." + string(req.Kind), RunID: run.ID, Target: run.Target, Step: step.ID, Result: result, Detail: map[string]string{"reason": req.Reason}}); err != nil {
			return err
		}
		if !won {
			return nil
		}
		return enqueue(tx, Event{Key: run.ID + "/decision/" + key, Kind: EventDecision, RunID: run.ID, Target: run.Target, Mode: run.Mode,
			StepID: step.ID, Title: step.Title, Phase: step.Phase, Gate: step.Gate, Actor: req.By, Message: string(req.Kind), Time: tx.Now(), Round: round,
			Fields: map[string]string{"decision": string(req.Kind), "reason": req.Reason, "on": on}})
	})
	if err != nil {
		return DecisionResult{}, fmt.Errorf("deciding %s on run %s: %w", req.Kind, req.RunID, err)
	}
	e.wake()
	if res.Applied {
		e.mu.Lock()
		d := e.drivers[req.RunID]
		e.mu.Unlock()
		if d != nil {
			d.poke()
		}
	}
	return res, nil
}

// decisionTarget is what a decision is about: the run, the step and the
// decision key of the gate round or failure it answers.
type decisionTarget struct {
	run  state.Run
	step Step
	key  string
}

func (e *Engine) decisionTarget(tx *state.Tx, req DecisionRequest) (decisionTarget, error) {
	run, ok, err := tx.Run(req.RunID)
	if err != nil {
		return decisionTarget{}, err
	}
	if !ok {
		return decisionTarget{}, fmt.Errorf("no run %q", req.RunID)
	}
	if run.Status.Finished() {
		return decisionTarget{}, fmt.Errorf("run %s is already %s", run.ID, run.Status)
	}
	if req.Kind == DecideAbort {
		return decisionTarget{run: run, step: Step{ID: req.StepID}, key: AbortKey(run.ID)}, nil
	}
	// Once aborted, the run only cleans up: a Retry, Skip or approval
	// would start what people decided to stop.
	if abort, aborted, err := tx.Decision(AbortKey(run.ID)); err != nil {
		return decisionTarget{}, err
	} else if aborted {
		return decisionTarget{}, fmt.Errorf("run %s was aborted by %s: it only runs its clean-up steps now and ends aborted", run.ID, abort.By)
	}
	step, found := e.book.ForMode(run.Mode).Step(req.StepID)
	if !found {
		return decisionTarget{}, fmt.Errorf("run %s has no step %q", run.ID, req.StepID)
	}
	rec, _, err := tx.Step(run.ID, step.ID)
	if err != nil {
		return decisionTarget{}, err
	}
	t := decisionTarget{run: run, step: step}
	switch req.Kind {
	case DecideApprove, DecideReject:
		if rec.Status != state.StepWaiting {
			return decisionTarget{}, fmt.Errorf("step %s is not waiting at a gate (it is %s)", step.ID, orPending(rec.Status))
		}
		if req.Round != 0 && req.Round != rec.GateRound {
			return decisionTarget{}, fmt.Errorf("%w: this gate has been asked again since (round %d, the button is from round %d)", ErrStale, rec.GateRound, req.Round)
		}
		t.key = GateKey(run.ID, step.ID, rec.GateRound)
	case DecideRetry, DecideSkip:
		if rec.Status != state.StepFailed {
			return decisionTarget{}, fmt.Errorf("step %s has not failed (it is %s); only a failed step can be retried or skipped", step.ID, orPending(rec.Status))
		}
		if req.Round != 0 && req.Round != rec.Failures {
			return decisionTarget{}, fmt.Errorf("%w: the step failed again since (failure %d, the button is from failure %d)", ErrStale, rec.Failures, req.Round)
		}
		t.key = FailureKey(run.ID, step.ID, rec.Failures)
	default:
		return decisionTarget{}, fmt.Errorf("unknown decision %q: want approve, reject, retry, skip or abort", req.Kind)
	}
	return t, nil
}

func orPending(s state.StepStatus) state.StepStatus {
	if s == "" {
		return state.StepPending
	}
	return s
}

// AbortKey is the decision key of a run's abort.
func AbortKey(runID string) string { return runID + "/abort" }

// abortCleanupKey marks, first-wins like a decision, that the clean-up
// after an abort was prepared, so a restart does not prepare it again.
func abortCleanupKey(runID string) string { return AbortKey(runID) + "/cleanup" }

// GateKey is the decision key of a gate's round.
func GateKey(runID, stepID string, round int) string {
	return fmt.Sprintf("%s/%s/gate/%d", runID, stepID, round)
}

// FailureKey is the decision key of a step's nth failure.
func FailureKey(runID, stepID string, failures int) string {
	return fmt.Sprintf("%s/%s/failure/%d", runID, stepID, failures)
}

func runEvent(run state.Run, kind EventKind, keySuffix string, now time.Time, fill func(*Event)) Event {
	ev := Event{Key: run.ID + "/" + keySuffix, Kind: kind, RunID: run.ID, Target: run.Target, Mode: run.Mode, Time: now}
	if fill != nil {
		fill(&ev)
	}
	return ev
}

// Enqueue writes events into the outbox within tx, for parts of drbot
// other than the engine (the drill scheduler) that report through it.
func Enqueue(tx *state.Tx, evs ...Event) error { return enqueue(tx, evs...) }

func enqueue(tx *state.Tx, evs ...Event) error {
	for _, ev := range evs {
		payload, err := json.Marshal(ev)
		if err != nil {
			return fmt.Errorf("encoding %s event: %w", ev.Kind, err)
		}
		if _, err := tx.Enqueue(state.OutboxEntry{Key: ev.Key, RunID: ev.RunID, Kind: string(ev.Kind), Payload: payload}); err != nil {
			return err
		}
	}
	return nil
}
