package recovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/drbot/drbot/state"
)

func openOutboxStore(t *testing.T) *state.Store {
	t.Helper()
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func enqueueAll(t *testing.T, store *state.Store, evs ...Event) {
	t.Helper()
	if err := store.Update(func(tx *state.Tx) error { return Enqueue(tx, evs...) }); err != nil {
		t.Fatal(err)
	}
}

// stepLines makes n informational entries of run, spread over steps
// s0…s(steps-1), each step's lines numbered in order.
func stepLines(run string, n, steps int) []Event {
	var evs []Event
	for i := range n {
		step := fmt.Sprintf("s%d", i%steps)
		evs = append(evs, Event{Key: fmt.Sprintf("%s/%s/progress/%d", run, step, i/steps), Kind: EventStepProgress, RunID: run, StepID: step})
	}
	return evs
}

// recorder is a notifier that remembers what it was handed, in order.
type recorder struct {
	mu      sync.Mutex
	keys    []string
	flagged []string // keys handed with MayBeDelivered
	fail    func(Event) error
}

func (r *recorder) Notify(ctx context.Context, ev Event) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		if err := r.fail(ev); err != nil {
			return "", err
		}
	}
	r.keys = append(r.keys, ev.Key)
	if MayBeDelivered(ctx) {
		r.flagged = append(r.flagged, ev.Key)
	}
	return "ok", nil
}

func (r *recorder) position(key string) int { return slices.Index(r.keys, key) }

// assertStepOrder checks that each step's (and each run's own) entries
// were delivered in the order they were enqueued, each exactly once.
func assertStepOrder(t *testing.T, store *state.Store, delivered []string) {
	t.Helper()
	var all []state.OutboxEntry
	_ = store.View(func(tx *state.Tx) (err error) { all, err = tx.Outbox(false, 0); return })
	stepOf := map[string]string{}
	var want []string
	for _, e := range all {
		var ev Event
		if err := json.Unmarshal(e.Payload, &ev); err != nil {
			t.Fatal(err)
		}
		stepOf[e.Key] = ev.RunID + "|" + ev.StepID
		want = append(want, e.Key)
	}
	if got := slices.Sorted(slices.Values(delivered)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Fatalf("delivered %d entries (%d distinct), want each of the %d once", len(delivered), len(slices.Compact(got)), len(want))
	}
	last := map[string]int{}
	for _, k := range want {
		pos := slices.Index(delivered, k)
		if prev, ok := last[stepOf[k]]; ok && pos < prev {
			t.Errorf("%s delivered at %d, before an earlier entry of %s at %d", k, pos, stepOf[k], prev)
		}
		last[stepOf[k]] = pos
	}
}

func TestGateWaitingOvertakes200QueuedLinesOfOtherSteps(t *testing.T) {
	store := openOutboxStore(t)
	enqueueAll(t, store, Event{Key: "r/started", Kind: EventRunStarted, RunID: "r"})
	enqueueAll(t, store, stepLines("r", 200, 10)...)
	enqueueAll(t, store, Event{Key: "r/gitops.merge/gate/1", Kind: EventGateWaiting, RunID: "r", StepID: "gitops.merge"})
	enqueueAll(t, store, Event{Key: "r/s3/progress/late", Kind: EventStepProgress, RunID: "r", StepID: "s3"})

	rec := &recorder{}
	d := NewDispatcher(store, rec, quietLogger())
	n, err := d.DrainOnce(context.Background())
	if err != nil || n != 203 {
		t.Fatalf("DrainOnce = %d, %v; want all 203 delivered", n, err)
	}
	// run.started is the run's own line: it stays first; the gate follows.
	if got := rec.keys[:2]; !slices.Equal(got, []string{"r/started", "r/gitops.merge/gate/1"}) {
		t.Errorf("first deliveries = %v, want run.started then the gate", got)
	}
	if rec.position("r/s3/progress/late") != 202 {
		t.Errorf("a line enqueued after the gate went out at %d, want last", rec.position("r/s3/progress/late"))
	}
	assertStepOrder(t, store, rec.keys)
}

func TestStepFailedBringsItsOwnStepsLinesAlongAndNoOthers(t *testing.T) {
	store := openOutboxStore(t)
	enqueueAll(t, store, Event{Key: "r/started", Kind: EventRunStarted, RunID: "r"})
	enqueueAll(t, store, stepLines("r", 40, 4)...) // s0…s3, 10 lines each
	enqueueAll(t, store, Event{Key: "r/s2/failed/1", Kind: EventStepFailed, RunID: "r", StepID: "s2"})

	rec := &recorder{}
	if _, err := NewDispatcher(store, rec, quietLogger()).DrainOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	failed := rec.position("r/s2/failed/1")
	if failed != 11 { // run.started, s2's ten lines, then the failure
		t.Errorf("step.failed delivered at %d, want 11 (after run.started and its own 10 lines): %v", failed, rec.keys[:failed+1])
	}
	for _, k := range rec.keys[1:failed] {
		if !strings.HasPrefix(k, "r/s2/") {
			t.Errorf("%s of another step went out before the failure", k)
		}
	}
	assertStepOrder(t, store, rec.keys)
}

func TestUrgentEntriesNeverOvertakeEachOther(t *testing.T) {
	store := openOutboxStore(t)
	enqueueAll(t, store, Event{Key: "r/started", Kind: EventRunStarted, RunID: "r"})
	enqueueAll(t, store, Event{Key: "r/a/started", Kind: EventStepStarted, RunID: "r", StepID: "a"})
	enqueueAll(t, store, stepLines("r", 30, 3)...)
	// a's failure waits for a's line; b's gate must not overtake a's failure.
	enqueueAll(t, store,
		Event{Key: "r/a/failed/1", Kind: EventStepFailed, RunID: "r", StepID: "a"},
		Event{Key: "r/b/gate/1", Kind: EventGateWaiting, RunID: "r", StepID: "b"},
		Event{Key: "r/blocked", Kind: EventRunBlocked, RunID: "r"},
	)
	rec := &recorder{}
	if _, err := NewDispatcher(store, rec, quietLogger()).DrainOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := []string{"r/started", "r/a/started", "r/a/failed/1", "r/b/gate/1", "r/blocked"}
	if got := rec.keys[:5]; !slices.Equal(got, want) {
		t.Errorf("first deliveries = %v, want %v", got, want)
	}
	assertStepOrder(t, store, rec.keys)
}

func TestGateOfOneRunOvertakesAnotherRunsBacklogWithItsRunStarted(t *testing.T) {
	store := openOutboxStore(t)
	enqueueAll(t, store, Event{Key: "a/started", Kind: EventRunStarted, RunID: "a"})
	enqueueAll(t, store, stepLines("a", 50, 5)...)
	enqueueAll(t, store, Event{Key: "b/started", Kind: EventRunStarted, RunID: "b"})
	enqueueAll(t, store, stepLines("b", 20, 2)...)
	// b's gate is for a step named like one of a's: steps are per run.
	enqueueAll(t, store, Event{Key: "b/s0/gate/1", Kind: EventGateWaiting, RunID: "b", StepID: "s0"})

	rec := &recorder{}
	if _, err := NewDispatcher(store, rec, quietLogger()).DrainOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	gate := rec.position("b/s0/gate/1")
	// a/started (oldest, possibly in flight at a start), b/started, b's s0 lines, the gate.
	if gate != 12 {
		t.Errorf("b's gate delivered at %d, want 12: %v", gate, rec.keys[:gate+1])
	}
	for _, k := range rec.keys[2:gate] {
		if !strings.HasPrefix(k, "b/s0/") {
			t.Errorf("%s went out before b's gate; only b's run line and s0's lines should", k)
		}
	}
	assertStepOrder(t, store, rec.keys)
}

var errSlackDown = Retryable(errors.New("slack answered 503"))

func TestAFailedDeliveryStillHoldsBackALaterGate(t *testing.T) {
	store := openOutboxStore(t)
	enqueueAll(t, store, Event{Key: "r/started", Kind: EventRunStarted, RunID: "r"})
	enqueueAll(t, store, stepLines("r", 10, 2)...)
	down := true
	rec := &recorder{fail: func(ev Event) error {
		if down && ev.Key == "r/s1/progress/0" {
			return errSlackDown
		}
		return nil
	}}
	d := NewDispatcher(store, rec, quietLogger())
	if n, err := d.DrainOnce(context.Background()); err == nil || n != 2 {
		t.Fatalf("DrainOnce = %d, %v; want 2 delivered, then the failure", n, err)
	}
	enqueueAll(t, store, Event{Key: "r/s9/gate/1", Kind: EventGateWaiting, RunID: "r", StepID: "s9"})
	if n, err := d.DrainOnce(context.Background()); err == nil || n != 0 {
		t.Fatalf("DrainOnce = %d, %v; the gate overtook the failed entry", n, err)
	}
	down = false
	if _, err := d.DrainOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rec.keys[2:4]; !slices.Equal(got, []string{"r/s1/progress/0", "r/s9/gate/1"}) {
		t.Errorf("after the failure: %v, want the failed entry, then the gate", got)
	}
	if !slices.Contains(rec.flagged, "r/s1/progress/0") {
		t.Errorf("the retried entry was not flagged as maybe delivered: flagged %v", rec.flagged)
	}
	assertStepOrder(t, store, rec.keys)
}

// fakeSlack dedupes like the Slack poster: it looks for a key before
// posting only while suspect (from its start until its first clean
// delivery) or when the dispatcher says the entry may have been posted.
type fakeSlack struct {
	mu      sync.Mutex
	posts   map[string]int // key → times posted
	suspect bool
	crashOn string // post this key, then stop the goroutine as a kill would
}

func (s *fakeSlack) Notify(ctx context.Context, ev Event) (string, error) {
	s.mu.Lock()
	if (s.suspect || MayBeDelivered(ctx)) && s.posts[ev.Key] > 0 {
		s.suspect = false
		s.mu.Unlock()
		return "found", nil
	}
	s.posts[ev.Key]++
	crash := ev.Key == s.crashOn
	s.suspect = false
	s.mu.Unlock()
	if crash {
		runtime.Goexit() // posted, never marked delivered nor attempted
	}
	return "posted", nil
}

// drainUntilCrash runs a dispatcher, in its own goroutine as drbot would,
// until its notifier stops it.
func drainUntilCrash(t *testing.T, d *Dispatcher) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		defer close(done)
		_, err := d.DrainOnce(context.Background())
		done <- err
	}()
	if err, finished := <-done; finished {
		t.Fatalf("the dispatcher finished (%v) instead of crashing", err)
	}
}

func TestAnEntryInFlightAtACrashIsPostedOnceAfterAStart(t *testing.T) {
	for _, c := range []struct {
		name    string
		crashOn string
	}{
		// The oldest entry was in flight; a gate enqueued before the
		// restart goes first, and must not make the poster stop looking.
		{"oldest step line in flight", "r/s0/progress/0"},
		// A gate that overtook the step lines was in flight.
		{"overtaking gate in flight", "r/s9/gate/1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			store := openOutboxStore(t)
			enqueueAll(t, store, Event{Key: "r/started", Kind: EventRunStarted, RunID: "r"})
			enqueueAll(t, store, stepLines("r", 10, 2)...)
			slack := &fakeSlack{posts: map[string]int{}, suspect: true, crashOn: c.crashOn}
			if c.crashOn == "r/s9/gate/1" {
				enqueueAll(t, store, Event{Key: "r/s9/gate/1", Kind: EventGateWaiting, RunID: "r", StepID: "s9"})
			}
			drainUntilCrash(t, NewDispatcher(store, slack, quietLogger()))

			// drbot starts again: the engine resumes and enqueues more.
			enqueueAll(t, store,
				Event{Key: "r/s9/gate/1", Kind: EventGateWaiting, RunID: "r", StepID: "s9"}, // deduped when already there
				Event{Key: "r/s7/failed/1", Kind: EventStepFailed, RunID: "r", StepID: "s7"},
			)
			slack.mu.Lock()
			slack.suspect, slack.crashOn = true, ""
			slack.mu.Unlock()
			if _, err := NewDispatcher(store, slack, quietLogger()).DrainOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			for k, n := range slack.posts {
				if n != 1 {
					t.Errorf("%s posted %d times", k, n)
				}
			}
			if len(slack.posts) != 13 {
				t.Errorf("%d distinct entries posted, want 13", len(slack.posts))
			}
		})
	}
}
