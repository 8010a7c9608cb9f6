package recovery

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"

	"github.com/drbot/drbot/state"
)

// StepContext is what an action knows about its run and how it reports.
type StepContext struct {
	// Logger carries run_id, step and attempt on every line.
	Logger *slog.Logger

	d        *driver
	step     Step
	rec      *state.StepRecord
	progress int
}

// Run is the run the step belongs to.
func (sc *StepContext) Run() state.Run { return sc.d.run }

// StepID is the step being run.
func (sc *StepContext) StepID() string { return sc.step.ID }

// Attempt counts from 1 and includes attempts interrupted by a crash.
func (sc *StepContext) Attempt() int { return sc.rec.Attempt }

// IdempotencyToken is the token of an AWS call (ClientRequestToken) that
// does what in this attempt: the SDK's retries of the call send the same
// one, so a lost response returns the first result. A new attempt gets a
// new token: AWS answers an old one with its first result even after that
// resource is gone (a Retry after a person deleted a FAILED cluster would
// create nothing). Steps find what an earlier attempt made by name first.
func (sc *StepContext) IdempotencyToken(what string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s\x00%d\x00%s", sc.d.run.ID, sc.rec.Attempt, what))
	return "drbot-" + hex.EncodeToString(h[:16])
}

// Handle is the async handle a previous attempt saved, or "".
func (sc *StepContext) Handle() string { return sc.rec.Handle }

// SaveHandle journals an async handle (an EKS update id, a Route 53 change
// id, an MR iid) before the action polls it, so a resumed step polls the
// same operation instead of starting another.
func (sc *StepContext) SaveHandle(handle string) error {
	sc.rec.Handle = handle
	rec := *sc.rec
	if err := sc.d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }); err != nil {
		return fmt.Errorf("journaling handle of %s: %w", sc.step.ID, err)
	}
	return nil
}

// SaveOutputs journals outputs before the step finishes (for example the
// rollback record of a cutover, kept even if the step then fails).
func (sc *StepContext) SaveOutputs(outputs map[string]string) error {
	sc.rec.Outputs = mergeOutputs(sc.rec.Outputs, outputs)
	rec := *sc.rec
	if err := sc.d.commit(func(tx *state.Tx) error { return tx.PutStep(rec) }); err != nil {
		return fmt.Errorf("journaling outputs of %s: %w", sc.step.ID, err)
	}
	return nil
}

// Output reads an output of a finished step of the same run.
func (sc *StepContext) Output(stepID, key string) (string, bool) {
	var rec state.StepRecord
	var ok bool
	_ = sc.d.e.store.View(func(tx *state.Tx) (err error) { rec, ok, err = tx.Step(sc.d.run.ID, stepID); return })
	if !ok {
		return "", false
	}
	v, ok := rec.Outputs[key]
	return v, ok
}

// Progress posts a progress line to the step's thread through the outbox.
func (sc *StepContext) Progress(format string, args ...any) {
	sc.progress++
	ev := sc.d.stepEvent(sc.step, EventStepProgress, fmt.Sprintf("progress/%d/%d", sc.rec.Attempt, sc.progress), *sc.rec)
	ev.Message = fmt.Sprintf(format, args...)
	if err := sc.d.commit(func(*state.Tx) error { return nil }, ev); err != nil {
		sc.Logger.Warn("recording progress", "err", err)
	}
}

// Attach hands people a document (the post-mortem, a plan): it travels
// through the outbox like every message and is uploaded as a file.
func (sc *StepContext) Attach(filename, title, content string) error {
	ev := sc.d.stepEvent(sc.step, EventAttachment, fmt.Sprintf("attachment/%d/%s", sc.rec.Attempt, filename), *sc.rec)
	ev.Message = content
	ev.Fields = map[string]string{"filename": filename, "title": title}
	if err := sc.d.commit(func(*state.Tx) error { return nil }, ev); err != nil {
		return fmt.Errorf("attaching %s: %w", filename, err)
	}
	return nil
}

// Store is the state the run lives in, read-only by convention: the
// post-mortem reads the run's own journal from it.
func (sc *StepContext) Store() *state.Store { return sc.d.e.store }
