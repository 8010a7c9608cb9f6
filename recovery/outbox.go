package recovery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/drbot/drbot/state"
)

// Dispatcher drains the outbox to a Notifier, one entry at a time. An
// entry is marked delivered, with the notifier's reference, only after
// Notify succeeded; a failed delivery is retried with backoff and holds
// back every later entry.
//
// Entries go out in the order they happened, with one exception: an
// urgent entry (a gate to approve, a failure to decide; see Urgent)
// overtakes pending informational entries of other steps, so that a
// person sees what they must act on before the step lines queued at
// Slack's pace. It never overtakes an earlier urgent entry nor an entry
// whose delivery failed; its step's earlier entries and its run's own
// entries (run.started) go just before it, in order.
type Dispatcher struct {
	store    *state.Store
	notifier Notifier
	log      *slog.Logger
	wakeCh   chan struct{}
	// Poll is how often the outbox is checked without a wake-up (default 2s).
	Poll time.Duration
	// MaxBackoff caps the wait after failed deliveries (default 30s).
	MaxBackoff time.Duration
	// Urgent says which events may overtake informational ones (default
	// Urgent; the bot adds its own kinds, see bot.Urgent).
	Urgent func(Event) bool

	// floor is a sequence number below which every entry is delivered.
	floor uint64
	// started is set at the first pick; unsure holds, until they are
	// delivered, the entries that may have been in flight when an earlier
	// process stopped (see pick).
	started bool
	unsure  map[uint64]bool
}

// NewDispatcher makes a dispatcher; call Run to start it.
func NewDispatcher(store *state.Store, n Notifier, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.Default()
	}
	return &Dispatcher{store: store, notifier: n, log: log, wakeCh: make(chan struct{}, 1), Poll: 2 * time.Second, MaxBackoff: 30 * time.Second, Urgent: Urgent}
}

// Urgent reports whether a person must act on ev, or must learn at once
// that the run stopped: a gate waiting (again), a failed step, a blocked
// or failed run.
func Urgent(ev Event) bool {
	switch ev.Kind {
	case EventGateWaiting, EventGateReopened, EventStepFailed, EventRunBlocked, EventRunFailed:
		return true
	}
	return false
}

type redeliveryKey struct{}

// MayBeDelivered reports whether the event Notify was handed may already
// have reached its destination, in part or whole: its delivery failed
// before, or it may have been in flight when drbot stopped. A notifier
// that cannot tell otherwise must then look before it posts.
func MayBeDelivered(ctx context.Context) bool {
	v, _ := ctx.Value(redeliveryKey{}).(bool)
	return v
}

// Wake tells the dispatcher new entries are waiting. It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wakeCh <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	backoff := time.Duration(0)
	for {
		n, err := d.DrainOnce(ctx)
		switch {
		case err != nil:
			backoff = min(max(2*backoff, 250*time.Millisecond), d.MaxBackoff)
			d.log.Warn("delivering outbox entry; will retry", "err", err, "backoff", backoff)
		case n > 0:
			backoff = 0
			continue
		default:
			backoff = 0
		}
		wait := d.Poll
		if backoff > 0 {
			wait = backoff
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-d.wakeCh:
			if backoff > 0 {
				continue
			}
		case <-time.After(wait):
		}
	}
}

// queued is a pending entry with its decoded event.
type queued struct {
	state.OutboxEntry
	ev Event
}

// DrainOnce delivers pending entries until one fails or none are left,
// and reports how many were delivered. The queue is read again before
// each delivery, so an urgent entry enqueued meanwhile goes next.
func (d *Dispatcher) DrainOnce(ctx context.Context) (int, error) {
	n := 0
	for {
		pending, err := d.pending()
		if err != nil {
			return n, err
		}
		if len(pending) == 0 {
			return n, nil
		}
		q, maybeDelivered := d.pick(pending)
		if err := d.deliver(ctx, q, maybeDelivered); err != nil {
			return n, err
		}
		delete(d.unsure, q.Seq)
		n++
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
	}
}

// pending reads the undelivered entries in order. An undecodable entry
// would block the queue for ever: it is recorded and passed.
func (d *Dispatcher) pending() ([]queued, error) {
	var entries []state.OutboxEntry
	if err := d.store.View(func(tx *state.Tx) (err error) { entries, err = tx.PendingOutbox(d.floor); return }); err != nil {
		return nil, fmt.Errorf("reading outbox: %w", err)
	}
	out := make([]queued, 0, len(entries))
	for _, e := range entries {
		q := queued{OutboxEntry: e}
		if err := json.Unmarshal(e.Payload, &q.ev); err != nil {
			d.log.Error("dropping undecodable outbox entry", "seq", e.Seq, "key", e.Key, "err", err)
			if err := d.store.Update(func(tx *state.Tx) error { return tx.MarkDelivered(e.Seq, "undecodable") }); err != nil {
				return nil, fmt.Errorf("passing undecodable outbox entry %d: %w", e.Seq, err)
			}
			continue
		}
		out = append(out, q)
	}
	if len(entries) > 0 {
		d.floor = entries[0].Seq
	}
	return out, nil
}

// pick chooses the entry to deliver next and says whether it may already
// have been delivered. Delivery is sequential, so when drbot stops at most
// one entry is in flight: the one next chose, or the oldest (see below).
// Entries enqueued since have later sequence numbers and change neither
// what next chooses among the earlier ones nor which is oldest, so after
// a start the entry in flight was next's choice or the oldest entry: both
// go first, flagged for the notifier to look before it posts (the Slack
// poster otherwise looks only until its first clean delivery). An entry
// whose delivery failed before is flagged as well.
func (d *Dispatcher) pick(pending []queued) (queued, bool) {
	next := d.next(pending)
	if !d.started {
		d.started = true
		d.unsure = map[uint64]bool{next.Seq: true, pending[0].Seq: true}
	}
	if len(d.unsure) > 0 && !d.unsure[next.Seq] {
		for _, q := range pending {
			if d.unsure[q.Seq] {
				return q, true
			}
		}
		d.unsure = nil // none is pending any more
	}
	return next, d.unsure[next.Seq] || next.Attempts > 0
}

// next is the entry to deliver now: the oldest, unless an urgent entry
// may go first. Only the first urgent entry may, and only if no earlier
// delivery failed; what it must follow (its step's earlier lines, its
// run's own lines such as run.started) goes just before it, oldest first.
func (d *Dispatcher) next(pending []queued) queued {
	urgent := d.Urgent
	if urgent == nil {
		urgent = Urgent
	}
	for j, u := range pending {
		if !urgent(u.ev) {
			if u.Attempts > 0 {
				break // a failed delivery holds back everything after it
			}
			continue
		}
		for _, e := range pending[:j] {
			if e.RunID == u.RunID && (e.ev.StepID == "" || e.ev.StepID == u.ev.StepID) {
				return e
			}
		}
		return u
	}
	return pending[0]
}

// deliver hands one entry to the notifier and records the outcome.
func (d *Dispatcher) deliver(ctx context.Context, q queued, maybeDelivered bool) error {
	nctx := ctx
	if maybeDelivered {
		nctx = context.WithValue(ctx, redeliveryKey{}, true)
	}
	e := q.OutboxEntry
	ref, err := d.notifier.Notify(nctx, q.ev)
	if err != nil && !IsRetryable(err) && isClassified(err) {
		// The destination refused this one message for good (an
		// archived channel, a scope drbot lacks): say so and move on
		// rather than hold back every later message of every run.
		d.log.Error("outbox entry cannot be delivered; skipping it", "seq", e.Seq, "key", e.Key, "kind", e.Kind, "err", err)
		return d.store.Update(func(tx *state.Tx) error {
			if err := tx.MarkDelivered(e.Seq, "undeliverable: "+err.Error()); err != nil {
				return err
			}
			return tx.Audit(state.AuditEntry{Actor: "drbot", Action: "outbox.undeliverable", RunID: e.RunID, Result: "skipped", Detail: map[string]string{"key": e.Key, "error": err.Error()}})
		})
	}
	if err != nil {
		_ = d.store.Update(func(tx *state.Tx) error { return tx.MarkAttempt(e.Seq, err.Error()) })
		return fmt.Errorf("delivering %s (%s): %w", e.Key, e.Kind, err)
	}
	if err := d.store.Update(func(tx *state.Tx) error { return tx.MarkDelivered(e.Seq, ref) }); err != nil {
		return fmt.Errorf("marking %s delivered: %w", e.Key, err)
	}
	return nil
}

// LogNotifier writes events to a logger; drbot uses it when Slack is not
// configured (plan, tests, dry runs).
func LogNotifier(log *slog.Logger) Notifier {
	return NotifierFunc(func(_ context.Context, ev Event) (string, error) {
		args := []any{"run_id", ev.RunID, "event", ev.Kind}
		if ev.StepID != "" {
			args = append(args, "step", ev.StepID)
		}
		if ev.Message != "" {
			args = append(args, "message", ev.Message)
		}
		if ev.Error != "" {
			args = append(args, "error", ev.Error)
		}
		log.Info("event", args...)
		return "log", nil
	})
}
