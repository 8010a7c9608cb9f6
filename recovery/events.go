package recovery

import (
	"context"
	"time"

	"github.com/drbot/drbot/state"
)

// EventKind names what happened.
type EventKind string

const (
	EventRunStarted    EventKind = "run.started"
	EventRunResumed    EventKind = "run.resumed"
	EventRunBlocked    EventKind = "run.blocked"
	EventRunSucceeded  EventKind = "run.succeeded"
	EventRunFailed     EventKind = "run.failed"
	EventRunAborted    EventKind = "run.aborted"
	EventStepStarted   EventKind = "step.started"
	EventStepProgress  EventKind = "step.progress"
	EventStepRetrying  EventKind = "step.retrying"
	EventStepSucceeded EventKind = "step.succeeded"
	EventStepFailed    EventKind = "step.failed"
	EventStepSkipped   EventKind = "step.skipped"
	EventStepCancelled EventKind = "step.cancelled"
	EventAttachment    EventKind = "step.attachment" // a document for people (Message is its content)
	EventGateWaiting   EventKind = "gate.waiting"
	EventGateReopened  EventKind = "gate.reopened" // what was approved no longer holds: asked again
	EventDecision      EventKind = "decision.recorded"
	// Drill schedule events have no run yet; they go to the announce channel.
	EventDrillAnnounce  EventKind = "drill.announce"
	EventDrillMissed    EventKind = "drill.missed"
	EventDrillSkipped   EventKind = "drill.skipped"
	EventDrillPostponed EventKind = "drill.postponed"
)

// Event is the engine's neutral report of a state change. It travels
// through the durable outbox; renderers (Slack, logs) turn it into words.
type Event struct {
	Key     string            `json:"key"`
	Kind    EventKind         `json:"kind"`
	RunID   string            `json:"run_id"`
	Target  string            `json:"target"`
	Mode    state.Mode        `json:"mode"`
	StepID  string            `json:"step_id,omitempty"`
	Title   string            `json:"title,omitempty"`
	Phase   Phase             `json:"phase,omitempty"`
	Gate    Gate              `json:"gate,omitempty"`
	Attempt int               `json:"attempt,omitempty"`
	Round   int               `json:"round,omitempty"` // gate round (gate events) or failure count (failures and their decisions)
	Message string            `json:"message,omitempty"`
	Error   string            `json:"error,omitempty"`
	Actor   string            `json:"actor,omitempty"`
	Time    time.Time         `json:"time"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Notifier delivers events to people. It returns a reference to what it
// posted (a Slack ts), kept in the outbox. Delivery is retried until it
// succeeds, in order.
type Notifier interface {
	Notify(ctx context.Context, ev Event) (ref string, err error)
}

// NotifierFunc adapts a function to Notifier.
type NotifierFunc func(ctx context.Context, ev Event) (string, error)

// Notify calls f.
func (f NotifierFunc) Notify(ctx context.Context, ev Event) (string, error) { return f(ctx, ev) }

// fieldAfter and afterAbort mark the failure of a clean-up step that ran
// after an abort (see Step.OnAbort).
const fieldAfter, afterAbort = "after", "abort"

// FailedAfterAbort reports whether ev is a clean-up step's failure after
// the run was aborted: nobody can retry, skip or abort it any more, so it
// offers no decision.
func FailedAfterAbort(ev Event) bool {
	return ev.Kind == EventStepFailed && ev.Fields[fieldAfter] == afterAbort
}
