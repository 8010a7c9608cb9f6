package state

import (
	"encoding/json"
	"time"
)

// Mode says why a run exists.
type Mode string

const (
	ModeRecovery Mode = "recovery"
	ModeDrill    Mode = "drill"
	ModePlan     Mode = "plan"
)

// RunStatus is the life cycle of a run. A run is unfinished until it is
// succeeded, failed or aborted; unfinished runs are resumed on start-up.
type RunStatus string

const (
	RunPending   RunStatus = "pending"
	RunRunning   RunStatus = "running"
	RunBlocked   RunStatus = "blocked" // a step failed and nothing else can progress: an operator decides
	RunSucceeded RunStatus = "succeeded"
	RunFailed    RunStatus = "failed"
	RunAborted   RunStatus = "aborted"
)

// Finished reports whether the status is terminal.
func (s RunStatus) Finished() bool {
	return s == RunSucceeded || s == RunFailed || s == RunAborted
}

// SlackRef records where a run talks in Slack; filled by the bot.
type SlackRef struct {
	ChannelID   string            `json:"channel_id,omitempty"`
	ChannelName string            `json:"channel_name,omitempty"`
	RootTS      string            `json:"root_ts,omitempty"`
	Threads     map[string]string `json:"threads,omitempty"` // phase → thread ts
	OriginID    string            `json:"origin_id,omitempty"`
}

// Run is one recovery, drill or plan.
type Run struct {
	ID         string    `json:"id"`
	Target     string    `json:"target"`
	Mode       Mode      `json:"mode"`
	Initiator  string    `json:"initiator"`
	Reason     string    `json:"reason,omitempty"`
	Drill      string    `json:"drill,omitempty"` // the drills[] entry that started it, for a scheduled drill
	Status     RunStatus `json:"status"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Resumes    int       `json:"resumes,omitempty"` // how many times a restarted drbot picked the run up
	Slack      SlackRef  `json:"slack,omitzero"`
	Error      string    `json:"error,omitempty"`
}

// StepStatus is the journal state of one step in one run.
type StepStatus string

const (
	StepPending   StepStatus = "pending"
	StepWaiting   StepStatus = "waiting" // at its gate, waiting for a decision
	StepRunning   StepStatus = "running"
	StepSucceeded StepStatus = "succeeded"
	StepFailed    StepStatus = "failed"
	StepSkipped   StepStatus = "skipped"
	StepCancelled StepStatus = "cancelled"
)

// Done reports whether dependents may proceed past the step.
func (s StepStatus) Done() bool { return s == StepSucceeded || s == StepSkipped }

// StepRecord is the journal entry of one step. It is written before the
// step's side effect (running) and after it (succeeded/failed), and carries
// any async handle so that a resumed step polls instead of creating twice.
type StepRecord struct {
	RunID      string            `json:"run_id"`
	StepID     string            `json:"step_id"`
	Status     StepStatus        `json:"status"`
	Attempt    int               `json:"attempt"`
	Budget     int               `json:"budget,omitempty"`     // attempts allowed before the step parks as failed; raised by Retry
	GateRound  int               `json:"gate_round,omitempty"` // how many times the gate has asked; a rejection and a Retry ask again
	Rejected   bool              `json:"rejected,omitempty"`   // the current failure is a gate rejection, not an action error
	Failures   int               `json:"failures,omitempty"`   // times the step parked as failed; keys the operator's decision
	StartedAt  time.Time         `json:"started_at,omitzero"`
	FinishedAt time.Time         `json:"finished_at,omitzero"`
	Error      string            `json:"error,omitempty"`
	Retryable  bool              `json:"retryable,omitempty"`
	Outputs    map[string]string `json:"outputs,omitempty"`
	Handle     string            `json:"handle,omitempty"`
	History    []AttemptRecord   `json:"history,omitempty"`
}

// AttemptRecord keeps what happened to each finished attempt, for the post-mortem.
type AttemptRecord struct {
	Attempt    int       `json:"attempt"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Outcome    string    `json:"outcome"` // succeeded, failed, interrupted, cancelled
	Error      string    `json:"error,omitempty"`
}

// Decision is what a person (or drbot itself) decided at a gate or about a
// failed step. The first decision recorded under a key wins.
type Decision struct {
	Key       string    `json:"key"`
	RunID     string    `json:"run_id"`
	StepID    string    `json:"step_id"`
	Kind      string    `json:"kind"` // approve, reject, retry, skip, abort
	By        string    `json:"by"`
	Reason    string    `json:"reason,omitempty"`
	DecidedAt time.Time `json:"decided_at"`
}

// OutboxEntry is a message for people, written in the same transaction as
// the state change it reports. Key makes enqueueing idempotent.
type OutboxEntry struct {
	Seq         uint64          `json:"seq"`
	Key         string          `json:"key"`
	RunID       string          `json:"run_id,omitempty"`
	Kind        string          `json:"kind"`
	Payload     json.RawMessage `json:"payload"`
	CreatedAt   time.Time       `json:"created_at"`
	DeliveredAt time.Time       `json:"delivered_at,omitzero"`
	Ref         string          `json:"ref,omitempty"` // e.g. the Slack message ts
	Attempts    int             `json:"attempts,omitempty"`
	LastError   string          `json:"last_error,omitempty"`
}

// Delivered reports whether the entry reached its destination.
func (e OutboxEntry) Delivered() bool { return !e.DeliveredAt.IsZero() }

// AuditEntry is one line of the append-only audit log.
type AuditEntry struct {
	Seq    uint64            `json:"seq"`
	Time   time.Time         `json:"time"`
	Actor  string            `json:"actor"`
	Action string            `json:"action"`
	RunID  string            `json:"run_id,omitempty"`
	Target string            `json:"target,omitempty"`
	Step   string            `json:"step,omitempty"`
	Result string            `json:"result"` // allowed, denied, recorded, no-op …
	Detail map[string]string `json:"detail,omitempty"`
}

// Lock is one target's lock: one active run per target.
type Lock struct {
	Target string    `json:"target"`
	RunID  string    `json:"run_id"`
	Since  time.Time `json:"since"`
}
