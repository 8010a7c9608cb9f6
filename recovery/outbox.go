package recovery

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/drbot/drbot/state"
)

// Dispatcher drains the outbox to a Notifier in order. An entry is marked
// delivered, with the notifier's reference, only after Notify succeeded;
// a failed delivery is retried with backoff and holds back later entries,
// so people read events in the order they happened.
type Dispatcher struct {
	store    *state.Store
	notifier Notifier
	log      *slog.Logger
	wakeCh   chan struct{}
	// Poll is how often the outbox is checked without a wake-up (default 2s).
	Poll time.Duration
	// MaxBackoff caps the wait after failed deliveries (default 30s).
	MaxBackoff time.Duration
}

// NewDispatcher makes a dispatcher; call Run to start it.
func NewDispatcher(store *state.Store, n Notifier, log *slog.Logger) *Dispatcher {
	if log == nil {
		log = slog.Default()
	}
	return &Dispatcher{store: store, notifier: n, log: log, wakeCh: make(chan struct{}, 1), Poll: 2 * time.Second, MaxBackoff: 30 * time.Second}
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

// DrainOnce delivers pending entries in order until one fails or none are
// left, and reports how many were delivered.
func (d *Dispatcher) DrainOnce(ctx context.Context) (int, error) {
	var pending []state.OutboxEntry
	if err := d.store.View(func(tx *state.Tx) (err error) { pending, err = tx.Outbox(true, 100); return }); err != nil {
		return 0, fmt.Errorf("reading outbox: %w", err)
	}
	for i, e := range pending {
		var ev Event
		if err := json.Unmarshal(e.Payload, &ev); err != nil {
			// An undecodable entry would block the queue for ever: record and pass it.
			d.log.Error("dropping undecodable outbox entry", "seq", e.Seq, "key", e.Key, "err", err)
			if err := d.store.Update(func(tx *state.Tx) error { return tx.MarkDelivered(e.Seq, "undecodable") }); err != nil {
				return i, err
			}
			continue
		}
		ref, err := d.notifier.Notify(ctx, ev)
		if err != nil && !IsRetryable(err) && isClassified(err) {
			// The destination refused this one message for good (an
			// archived channel, a scope drbot lacks): say so and move on
			// rather than hold back every later message of every run.
			d.log.Error("outbox entry cannot be delivered; skipping it", "seq", e.Seq, "key", e.Key, "kind", e.Kind, "err", err)
			if err := d.store.Update(func(tx *state.Tx) error {
				if err := tx.MarkDelivered(e.Seq, "undeliverable: "+err.Error()); err != nil {
					return err
				}
				return tx.Audit(state.AuditEntry{Actor: "drbot", Action: "outbox.undeliverable", RunID: e.RunID, Result: "skipped", Detail: map[string]string{"key": e.Key, "error": err.Error()}})
			}); err != nil {
				return i, err
			}
			continue
		}
		if err != nil {
			_ = d.store.Update(func(tx *state.Tx) error { return tx.MarkAttempt(e.Seq, err.Error()) })
			return i, fmt.Errorf("delivering %s (%s): %w", e.Key, e.Kind, err)
		}
		if err := d.store.Update(func(tx *state.Tx) error { return tx.MarkDelivered(e.Seq, ref) }); err != nil {
			return i, fmt.Errorf("marking %s delivered: %w", e.Key, err)
		}
	}
	return len(pending), nil
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
