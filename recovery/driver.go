package recovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/drbot/drbot/state"
)

// driver runs one run. Its loop goroutine owns the run record and every
// step record that is not running; a worker goroutine owns its step's
// record while the action runs. Every change is journaled before the next
// side effect.
type driver struct {
	e    *Engine
	book *Runbook
	run  state.Run
	log  *slog.Logger

	recs    map[string]state.StepRecord
	running map[string]bool
	results chan stepResult
	signal  chan struct{}
	done    chan struct{}
	// gatesPassed receives what a round of GateChecks found; checking is
	// set while a round runs (outside the loop: a check calls GitLab).
	gatesPassed chan []gatePassed
	checking    bool

	ctx      context.Context // ends on abort or engine shutdown
	cancel   context.CancelFunc
	aborting atomic.Bool
	abortBy  string
}

// stepCtx is the context a step's action runs in: an abort ends it, except
// for an OnAbort step, which would only run again in the clean-up.
func (d *driver) stepCtx(s Step) context.Context {
	if s.OnAbort {
		return d.e.ctx
	}
	return d.ctx
}

type stepResult struct {
	rec      state.StepRecord
	shutdown bool // the engine stopped mid-step: nothing journaled, resume re-runs it
}

func newDriver(e *Engine, run state.Run) *driver {
	ctx, cancel := context.WithCancel(e.ctx)
	return &driver{
		e: e, book: e.book.ForMode(run.Mode), run: run,
		log:     e.log.With("run_id", run.ID, "target", run.Target),
		recs:    map[string]state.StepRecord{},
		running: map[string]bool{},
		results: make(chan stepResult),
		signal:  make(chan struct{}, 1),
		// One round at a time, so the round never blocks on sending.
		gatesPassed: make(chan []gatePassed, 1),
		done:        make(chan struct{}),
		ctx:         ctx, cancel: cancel,
	}
}

// poke wakes the loop after a decision was recorded.
func (d *driver) poke() {
	select {
	case d.signal <- struct{}{}:
	default:
	}
}

func (d *driver) loop() {
	defer close(d.done)
	defer d.cancel()
	if err := d.load(); err != nil {
		d.log.Error("loading run journal; the run stays as it is until drbot restarts", "err", err)
		return
	}
	checks := time.NewTicker(d.e.opts.GateCheckEvery)
	defer checks.Stop()
	for {
		if d.e.ctx.Err() != nil {
			d.drainOnShutdown()
			return
		}
		if err := d.applyDecisions(); err != nil {
			d.log.Error("applying decisions", "err", err)
		}
		if d.aborting.Load() {
			if len(d.running) == 0 && d.cleanUp() {
				return
			}
		} else {
			d.launchReady()
			if len(d.running) == 0 && d.settle() {
				return
			}
		}
		select {
		case r := <-d.results:
			delete(d.running, r.rec.StepID)
			if !r.shutdown {
				d.recs[r.rec.StepID] = r.rec
			}
		case <-d.signal:
		case <-checks.C:
			d.checkGates()
		case passed := <-d.gatesPassed:
			d.checking = false
			d.passGates(passed)
		case <-d.e.ctx.Done():
		}
	}
}

// gatePassed is a gate whose GateCheck found it approved elsewhere.
type gatePassed struct {
	step  Step
	round int
	by    string
}

// checkGates starts a round of GateChecks on the waiting gates that can
// tell whether their approval happened elsewhere. The round runs beside the
// loop: a check asks GitLab and may take up to a minute, while step
// results and decisions must not wait.
func (d *driver) checkGates() {
	if d.aborting.Load() || d.checking {
		return // no gate opens on an aborted run; one round at a time
	}
	type waiting struct {
		step Step
		rec  state.StepRecord
	}
	var gates []waiting
	for _, s := range d.book.Steps() {
		if rec := d.recs[s.ID]; s.GateCheck != nil && rec.Status == state.StepWaiting {
			gates = append(gates, waiting{s, rec})
		}
	}
	if len(gates) == 0 {
		return
	}
	d.checking = true
	go func() {
		var passed []gatePassed
		for _, g := range gates {
			sc := &StepContext{d: d, step: g.step, rec: &g.rec, Logger: d.log.With("step", g.step.ID)}
			ctx, cancel := context.WithTimeout(WithStep(d.ctx, g.step.ID), time.Minute)
			by, ok, err := callGateCheck(ctx, g.step.GateCheck, sc)
			cancel()
			if err != nil {
				d.log.Warn("checking whether the gate was passed elsewhere", "step", g.step.ID, "err", err)
				continue
			}
			if ok {
				passed = append(passed, gatePassed{step: g.step, round: g.rec.GateRound, by: by})
			}
		}
		d.gatesPassed <- passed
	}()
}

// passGates decides the gates a round found approved elsewhere on that
// person's behalf, audited, if they still wait in the same round.
func (d *driver) passGates(passed []gatePassed) {
	for _, p := range passed {
		s, rec := p.step, d.recs[p.step.ID]
		if d.aborting.Load() || rec.Status != state.StepWaiting || rec.GateRound != p.round {
			continue // decided meanwhile, asked again, or the run was aborted
		}
		key := GateKey(d.run.ID, s.ID, rec.GateRound)
		why := "approved outside Slack by " + p.by
		ev := Event{Key: d.run.ID + "/decision/" + key, Kind: EventDecision, RunID: d.run.ID, Target: d.run.Target, Mode: d.run.Mode,
			StepID: s.ID, Title: s.Title, Phase: s.Phase, Gate: s.Gate, Actor: "drbot", Message: string(DecideApprove), Time: d.e.store.Now(), Round: rec.GateRound,
			Fields: map[string]string{"decision": string(DecideApprove), "reason": why, "on": "gate"}}
		_ = d.commit(func(tx *state.Tx) error {
			if _, won, err := tx.Decide(state.Decision{Key: key, RunID: d.run.ID, StepID: s.ID, Kind: string(DecideApprove), By: "drbot", Reason: why}); err != nil || !won {
				return err
			}
			return tx.Audit(state.AuditEntry{Actor: p.by, Action: "decide.approve", RunID: d.run.ID, Target: d.run.Target, Step: s.ID, Result: "recorded", Detail: map[string]string{"reason": why}})
		}, ev)
		d.poke()
	}
}

// load reads the journal. A step found running was interrupted by a crash:
// it is put back to pending (its action is idempotent and runs again), and
// the interrupted attempt does not use up the retry budget.
func (d *driver) load() error {
	var recs map[string]state.StepRecord
	if err := d.e.store.View(func(tx *state.Tx) (err error) { recs, err = tx.Steps(d.run.ID); return }); err != nil {
		return err
	}
	now := d.e.store.Now()
	for _, s := range d.book.Steps() {
		rec, ok := recs[s.ID]
		if !ok {
			rec = state.StepRecord{RunID: d.run.ID, StepID: s.ID, Status: state.StepPending}
		}
		if rec.Status == state.StepRunning {
			rec.History = append(rec.History, state.AttemptRecord{Attempt: rec.Attempt, StartedAt: rec.StartedAt, FinishedAt: now, Outcome: "interrupted"})
			rec.Status = state.StepPending
			rec.Budget++
			if err := d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }); err != nil {
				return err
			}
			d.log.Info("step was running when drbot stopped; it will run again", "step", s.ID, "attempt", rec.Attempt)
		}
		d.recs[s.ID] = rec
	}
	return nil
}

// commit journals a change and its events in one transaction, retrying a
// failing disk for as long as the engine lives: acting without a journal
// entry would break resumption.
func (d *driver) commit(fn func(tx *state.Tx) error, evs ...Event) error {
	for wait := 100 * time.Millisecond; ; wait = min(wait*2, 5*time.Second) {
		err := d.e.store.Update(func(tx *state.Tx) error {
			if err := fn(tx); err != nil {
				return err
			}
			return enqueue(tx, evs...)
		})
		if err == nil {
			if len(evs) > 0 {
				d.e.wake()
			}
			return nil
		}
		d.log.Error("writing journal", "err", err)
		select {
		case <-time.After(wait):
		case <-d.e.ctx.Done():
			return fmt.Errorf("writing journal: %w (engine stopping)", err)
		}
	}
}

func (d *driver) stepEvent(s Step, kind EventKind, keySuffix string, rec state.StepRecord) Event {
	return Event{
		Key: fmt.Sprintf("%s/%s/%s", d.run.ID, s.ID, keySuffix), Kind: kind, RunID: d.run.ID, Target: d.run.Target, Mode: d.run.Mode,
		StepID: s.ID, Title: s.Title, Phase: s.Phase, Gate: s.Gate, Attempt: rec.Attempt, Error: rec.Error, Time: d.e.store.Now(),
	}
}

func (d *driver) failedEvent(s Step, rec state.StepRecord) Event {
	ev := d.stepEvent(s, EventStepFailed, fmt.Sprintf("failed/%d", rec.Failures), rec)
	ev.Round = rec.Failures
	return ev
}

// applyDecisions acts on decisions recorded since the loop last looked.
func (d *driver) applyDecisions() error {
	var abort state.Decision
	var aborted bool
	decisions := map[string]state.Decision{}
	err := d.e.store.View(func(tx *state.Tx) error {
		var err error
		if abort, aborted, err = tx.Decision(AbortKey(d.run.ID)); err != nil {
			return err
		}
		for id, rec := range d.recs {
			var key string
			switch rec.Status {
			case state.StepWaiting:
				key = GateKey(d.run.ID, id, rec.GateRound)
			case state.StepFailed:
				key = FailureKey(d.run.ID, id, rec.Failures)
			default:
				continue
			}
			if dec, ok, err := tx.Decision(key); err != nil {
				return err
			} else if ok {
				decisions[id] = dec
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if aborted {
		// Decisions recorded before the abort are not acted on: the run
		// only cleans up now.
		if !d.aborting.Load() {
			d.abortBy = abort.By
			d.aborting.Store(true)
			d.cancel() // running actions see their context end
			d.log.Info("run aborted", "by", abort.By)
			return d.prepareCleanUp()
		}
		return nil
	}
	for _, id := range sortedKeys(decisions) {
		dec, rec := decisions[id], d.recs[id]
		s, _ := d.book.Step(id)
		switch DecisionKind(dec.Kind) {
		case DecideApprove:
			// launchReady starts the action: the gate's round is approved.
		case DecideReject:
			rec.Status, rec.Rejected, rec.Failures = state.StepFailed, true, rec.Failures+1
			rec.Error = fmt.Sprintf("rejected at the %s gate by %s", s.Gate, dec.By)
			if dec.Reason != "" {
				rec.Error += ": " + dec.Reason
			}
			if err := d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }, d.failedEvent(s, rec)); err != nil {
				return err
			}
		case DecideRetry:
			if rec.Rejected {
				rec.GateRound++ // ask the gate again
			}
			rec.Status, rec.Rejected, rec.Error = state.StepPending, false, ""
			rec.Budget = rec.Attempt + d.e.opts.Retry.MaxAttempts
			if err := d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }); err != nil {
				return err
			}
		case DecideSkip:
			rec.Status = state.StepSkipped
			rec.FinishedAt = d.e.store.Now()
			ev := d.stepEvent(s, EventStepSkipped, fmt.Sprintf("skipped/%d", rec.Failures), rec)
			ev.Actor = dec.By
			if err := d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }, ev); err != nil {
				return err
			}
		}
		d.recs[id] = rec
	}
	return nil
}

// launchReady starts every step whose dependencies are done, up to the
// concurrency bound, and parks gated steps at their gate.
func (d *driver) launchReady() {
	for _, s := range d.book.Steps() {
		if len(d.running) >= d.e.opts.Concurrency {
			return
		}
		rec := d.recs[s.ID]
		if d.running[s.ID] || (rec.Status != state.StepPending && rec.Status != state.StepWaiting) || !d.depsDone(s) {
			continue
		}
		if s.Gate != GateNone && !d.gateApproved(s, &rec) {
			continue
		}
		if rec.Budget == 0 {
			rec.Budget = d.e.opts.Retry.MaxAttempts
		}
		if d.run.Status != state.RunRunning {
			d.setRunStatus(state.RunRunning)
		}
		d.running[s.ID] = true
		go d.execute(s, rec)
	}
}

// gateApproved reports whether the step's current gate round is approved.
// If the gate has not asked yet, it asks: the step waits and the event
// carries its dependencies' outputs for the approval message.
func (d *driver) gateApproved(s Step, rec *state.StepRecord) bool {
	if rec.GateRound == 0 {
		rec.GateRound = 1
	}
	var dec state.Decision
	var decided bool
	_ = d.e.store.View(func(tx *state.Tx) (err error) {
		dec, decided, err = tx.Decision(GateKey(d.run.ID, s.ID, rec.GateRound))
		return err
	})
	if decided && DecisionKind(dec.Kind) == DecideApprove {
		return true
	}
	if !decided && d.e.opts.PreApproved != nil && d.e.opts.PreApproved(d.run, s) {
		return d.preApprove(s, rec.GateRound)
	}
	if rec.Status == state.StepWaiting {
		return false
	}
	rec.Status = state.StepWaiting
	ev := d.stepEvent(s, EventGateWaiting, fmt.Sprintf("gate/%d", rec.GateRound), *rec)
	ev.Round = rec.GateRound
	ev.Fields = map[string]string{}
	if rec.Error != "" && rec.GateRound > 1 {
		ev.Fields["asked again because"] = rec.Error
	}
	for _, dep := range s.DependsOn {
		for k, v := range d.recs[dep].Outputs {
			ev.Fields[dep+"."+k] = v
		}
	}
	r := *rec
	if err := d.commit(func(tx *state.Tx) error { return tx.PutStep(r) }, ev); err != nil {
		return false
	}
	d.recs[s.ID] = r
	d.log.Info("waiting at gate", "step", s.ID, "gate", s.Gate, "round", r.GateRound)
	return false
}

// preApprove records drbot's approval of a gate that config pre-approves
// (drills only), with its audit entry and event.
func (d *driver) preApprove(s Step, round int) bool {
	key := GateKey(d.run.ID, s.ID, round)
	const why = "pre-approved for drills by config"
	ev := Event{Key: d.run.ID + "/decision/" + key, Kind: EventDecision, RunID: d.run.ID, Target: d.run.Target, Mode: d.run.Mode,
		StepID: s.ID, Title: s.Title, Phase: s.Phase, Gate: s.Gate, Actor: "drbot", Message: string(DecideApprove), Time: d.e.store.Now(), Round: round,
		Fields: map[string]string{"decision": string(DecideApprove), "reason": why, "on": "gate"}}
	err := d.commit(func(tx *state.Tx) error {
		if _, _, err := tx.Decide(state.Decision{Key: key, RunID: d.run.ID, StepID: s.ID, Kind: string(DecideApprove), By: "drbot", Reason: why}); err != nil {
			return err
		}
		return tx.Audit(state.AuditEntry{Actor: "drbot", Action: "decide.approve", RunID: d.run.ID, Target: d.run.Target, Step: s.ID, Result: "recorded", Detail: map[string]string{"reason": why}})
	}, ev)
	return err == nil
}

func (d *driver) depsDone(s Step) bool {
	for _, dep := range s.DependsOn {
		if !d.recs[dep].Status.Done() {
			return false
		}
	}
	return true
}

// settle is called when nothing is running. It finishes the run when
// every step is done, and marks it blocked when a failed step needs an
// operator. It reports whether the run finished.
func (d *driver) settle() bool {
	allDone, failed := true, 0
	for _, rec := range d.recs {
		if !rec.Status.Done() {
			allDone = false
		}
		if rec.Status == state.StepFailed {
			failed++
		}
	}
	switch {
	case allDone:
		d.finish(state.RunSucceeded, "")
		return true
	case failed > 0 && d.run.Status != state.RunBlocked:
		total := 0
		for _, rec := range d.recs {
			total += rec.Failures
		}
		d.run.Status = state.RunBlocked
		run := d.run
		ev := runEvent(run, EventRunBlocked, fmt.Sprintf("blocked/%d", total), d.e.store.Now(), func(ev *Event) {
			ev.Message = fmt.Sprintf("%d failed step(s) need a decision: Retry, Skip or Abort", failed)
		})
		_ = d.commit(func(tx *state.Tx) error { return tx.PutRun(run) }, ev)
		d.log.Warn("run blocked", "failed_steps", failed)
	}
	return false
}

// prepareCleanUp puts the OnAbort steps that failed or were cancelled
// before the abort back to pending, so the clean-up runs each of them
// once. It happens once per run: a restart during the clean-up finds it
// done and does not run again a clean-up step that failed in it.
func (d *driver) prepareCleanUp() error {
	var reset []state.StepRecord
	for _, s := range d.book.AbortSteps() {
		rec := d.recs[s.ID]
		if d.running[s.ID] || (rec.Status != state.StepFailed && rec.Status != state.StepCancelled) {
			continue
		}
		rec.Status, rec.Rejected = state.StepPending, false
		rec.Budget = rec.Attempt + d.e.opts.Retry.MaxAttempts
		reset = append(reset, rec)
	}
	var first bool
	err := d.commit(func(tx *state.Tx) error {
		_, won, err := tx.Decide(state.Decision{Key: abortCleanupKey(d.run.ID), RunID: d.run.ID, Kind: "cleanup", By: "drbot"})
		if err != nil || !won {
			return err
		}
		first = true
		for _, rec := range reset {
			if err := tx.PutStep(rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if first {
		for _, rec := range reset {
			d.recs[rec.StepID] = rec
		}
	}
	return nil
}

// cleanUp is called on an aborted run when nothing is running. It starts
// the next OnAbort step that has not run, or, when none is left, ends the
// run aborted, naming the clean-up steps that failed. It reports whether
// the run finished.
func (d *driver) cleanUp() bool {
	var failed []string
	for _, s := range d.book.AbortSteps() {
		rec := d.recs[s.ID]
		switch rec.Status {
		case state.StepPending, "": // never waiting: OnAbort steps have no gate
			if rec.Budget == 0 {
				rec.Budget = d.e.opts.Retry.MaxAttempts
			}
			if d.run.Status != state.RunRunning {
				d.setRunStatus(state.RunRunning)
			}
			d.log.Info("running a clean-up step after the abort", "step", s.ID)
			d.running[s.ID] = true
			go d.execute(s, rec)
			return false
		case state.StepFailed:
			failed = append(failed, fmt.Sprintf("%s (%s)", s.ID, firstLine(rec.Error)))
		}
	}
	msg := "aborted by " + d.abortBy
	if len(failed) > 0 {
		msg += "; after the abort, " + strings.Join(failed, ", ") + " failed: finish by hand"
	}
	d.finish(state.RunAborted, msg)
	return true
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	return line
}

func (d *driver) setRunStatus(st state.RunStatus) {
	d.run.Status = st
	run := d.run
	_ = d.commit(func(tx *state.Tx) error { return tx.PutRun(run) })
}

// finish ends the run, releases the target and reports the outcome.
func (d *driver) finish(st state.RunStatus, msg string) {
	now := d.e.store.Now()
	d.run.Status, d.run.FinishedAt, d.run.Error = st, now, msg
	run := d.run
	kind := map[state.RunStatus]EventKind{state.RunSucceeded: EventRunSucceeded, state.RunFailed: EventRunFailed, state.RunAborted: EventRunAborted}[st]
	ev := runEvent(run, kind, "finished", now, func(ev *Event) {
		ev.Message = msg
		ev.Fields = map[string]string{"duration": now.Sub(run.StartedAt).Round(time.Second).String()}
	})
	err := d.commit(func(tx *state.Tx) error {
		if err := tx.PutRun(run); err != nil {
			return err
		}
		if err := tx.ReleaseLock(run.Target, run.ID); err != nil {
			return err
		}
		return tx.Audit(state.AuditEntry{Actor: "drbot", Action: "run.finish", RunID: run.ID, Target: run.Target, Result: string(st)})
	}, ev)
	if err != nil {
		d.log.Error("recording run end", "err", err)
		return
	}
	d.log.Info("run finished", "status", st, "duration", now.Sub(run.StartedAt).Round(time.Second))
}

// drainOnShutdown waits for running actions to return after the engine's
// context ended. Nothing is journaled for them: resume re-runs them.
func (d *driver) drainOnShutdown() {
	for len(d.running) > 0 {
		r := <-d.results
		delete(d.running, r.rec.StepID)
	}
}

// execute runs one step's attempts until it succeeds, fails for good, is
// cancelled by an abort, or the engine stops.
func (d *driver) execute(s Step, rec state.StepRecord) {
	log := d.log.With("step", s.ID)
	result := func(shutdown bool) { d.results <- stepResult{rec: rec, shutdown: shutdown} }
	// stop ends the step after its context ended: an abort is journaled as
	// cancelled; an engine shutdown leaves the journal saying running, so
	// resume runs the step again.
	ctx := d.stepCtx(s)
	stop := func(now time.Time, attempted bool) {
		if !d.aborting.Load() || s.OnAbort {
			result(true)
			return
		}
		rec.Status, rec.FinishedAt, rec.Error = state.StepCancelled, now, "cancelled by abort"
		if attempted {
			rec.History = append(rec.History, state.AttemptRecord{Attempt: rec.Attempt, StartedAt: rec.StartedAt, FinishedAt: now, Outcome: "cancelled"})
		}
		_ = d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }, d.stepEvent(s, EventStepCancelled, fmt.Sprintf("cancelled/%d", rec.Attempt), rec))
		result(false)
	}
	for {
		rec.Attempt++
		rec.Status, rec.StartedAt, rec.FinishedAt, rec.Error, rec.Retryable = state.StepRunning, d.e.store.Now(), time.Time{}, "", false
		// Journal first, then act.
		if err := d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }, d.stepEvent(s, EventStepStarted, fmt.Sprintf("started/%d", rec.Attempt), rec)); err != nil {
			result(true)
			return
		}
		log.Info("step started", "attempt", rec.Attempt)
		sc := &StepContext{d: d, step: s, rec: &rec, Logger: log.With("attempt", rec.Attempt)}
		res, err := callAction(ctx, s.Action, sc)
		now := d.e.store.Now()
		if err == nil {
			rec.Status, rec.FinishedAt, rec.Outputs = state.StepSucceeded, now, mergeOutputs(rec.Outputs, res.Outputs)
			rec.History = append(rec.History, state.AttemptRecord{Attempt: rec.Attempt, StartedAt: rec.StartedAt, FinishedAt: now, Outcome: "succeeded"})
			if d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }, d.stepEvent(s, EventStepSucceeded, fmt.Sprintf("succeeded/%d", rec.Attempt), rec)) != nil {
				result(true)
				return
			}
			log.Info("step succeeded", "attempt", rec.Attempt, "took", now.Sub(rec.StartedAt).Round(time.Millisecond))
			result(false)
			return
		}
		if ctx.Err() != nil {
			stop(now, true)
			return
		}
		var reopen *reopenGate
		if errors.As(err, &reopen) && s.Gate != GateNone {
			rec.Status, rec.FinishedAt, rec.Error, rec.GateRound = state.StepPending, now, err.Error(), rec.GateRound+1
			rec.Budget = rec.Attempt + d.e.opts.Retry.MaxAttempts // a fresh approval gets a fresh retry budget
			rec.History = append(rec.History, state.AttemptRecord{Attempt: rec.Attempt, StartedAt: rec.StartedAt, FinishedAt: now, Outcome: "gate reopened", Error: err.Error()})
			if d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }, d.stepEvent(s, EventGateReopened, fmt.Sprintf("reopened/%d", rec.GateRound), rec)) != nil {
				result(true)
				return
			}
			log.Warn("what was approved no longer holds; asking the gate again", "round", rec.GateRound, "err", err)
			result(false)
			return
		}
		retryable := IsRetryable(err)
		rec.Error, rec.Retryable = err.Error(), retryable
		rec.History = append(rec.History, state.AttemptRecord{Attempt: rec.Attempt, StartedAt: rec.StartedAt, FinishedAt: now, Outcome: "failed", Error: err.Error()})
		if retryable && rec.Attempt < rec.Budget {
			wait := d.e.opts.Retry.Backoff(rec.Attempt)
			ev := d.stepEvent(s, EventStepRetrying, fmt.Sprintf("retrying/%d", rec.Attempt), rec)
			ev.Fields = map[string]string{"backoff": wait.Round(time.Millisecond).String(), "budget": fmt.Sprint(rec.Budget)}
			if d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }, ev) != nil {
				result(true)
				return
			}
			log.Warn("step failed, retrying", "attempt", rec.Attempt, "backoff", wait, "err", err)
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				stop(d.e.store.Now(), false) // the failed attempt is already in the history
				return
			}
		}
		rec.Status, rec.FinishedAt, rec.Failures = state.StepFailed, now, rec.Failures+1
		ev := d.failedEvent(s, rec)
		if d.aborting.Load() && s.OnAbort {
			// Nobody decides on an aborted run: the failure is told, and the
			// run ends aborted with it in its error.
			ev.Error += " — the run was aborted, so it ends aborted without this step: finish it by hand"
			ev.Fields = map[string]string{fieldAfter: afterAbort}
		}
		if d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }, ev) != nil {
			result(true)
			return
		}
		log.Error("step failed", "attempt", rec.Attempt, "retryable", retryable, "err", err)
		result(false)
		return
	}
}

// callAction runs the action, turning a panic into a permanent error so one
// bad integration cannot take the bot down.
func callAction(ctx context.Context, a Action, sc *StepContext) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = Permanent(fmt.Errorf("step panicked: %v\n%s", p, debug.Stack()))
		}
	}()
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	return a(WithStep(ctx, sc.step.ID), sc)
}

// callGateCheck runs a GateCheck, turning a panic into an error: the
// gate then waits for a person, as when GitLab cannot be asked.
func callGateCheck(ctx context.Context, check GateCheck, sc *StepContext) (by string, ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			by, ok, err = "", false, fmt.Errorf("gate check panicked: %v\n%s", p, debug.Stack())
		}
	}()
	return check(ctx, sc)
}

func mergeOutputs(prev, next map[string]string) map[string]string {
	if len(prev) == 0 && len(next) == 0 {
		return nil
	}
	out := map[string]string{}
	for k, v := range prev {
		out[k] = v
	}
	for k, v := range next {
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
