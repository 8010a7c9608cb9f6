package metrics

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// fakeNotifier records what it delivered and refuses the kinds in failOnce
// the first time it sees them, like a Slack outage the outbox retries.
type fakeNotifier struct {
	mu        sync.Mutex
	failOnce  map[recovery.EventKind]bool
	delivered []recovery.Event
}

func (f *fakeNotifier) Notify(_ context.Context, ev recovery.Event) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOnce[ev.Kind] {
		delete(f.failOnce, ev.Kind)
		return "", errors.New("slack unavailable")
	}
	f.delivered = append(f.delivered, ev)
	return "ts-" + strconv.Itoa(len(f.delivered)), nil
}

// scrape fetches /metrics over HTTP and returns each sample by its series
// as exposed, e.g. `drbot_runs_total{mode="recovery",result="succeeded"}`.
func scrape(t *testing.T, h http.Handler) (map[string]float64, string) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatalf("scraping: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading scrape: %v", err)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("parsing sample %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return samples, string(body)
}

func wantSample(t *testing.T, samples map[string]float64, series string, want float64) {
	t.Helper()
	got, ok := samples[series]
	if !ok {
		t.Errorf("series %s missing from /metrics", series)
		return
	}
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", series, got, want)
	}
}

func TestNotifierDerivesRunStepApprovalAndDeliveryMetricsFromEvents(t *testing.T) {
	m := New()
	t0 := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return t0.Add(120 * time.Second) }
	fake := &fakeNotifier{failOnce: map[recovery.EventKind]bool{recovery.EventRunSucceeded: true}}
	n := m.Notifier(fake)

	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	base := recovery.Event{RunID: "r1", Target: "prod", Mode: state.ModeRecovery}
	ev := func(kind recovery.EventKind, step string, attempt, round int, sec int, mod func(*recovery.Event)) recovery.Event {
		e := base
		e.Kind, e.StepID, e.Attempt, e.Round, e.Time = kind, step, attempt, round, at(sec)
		if mod != nil {
			mod(&e)
		}
		return e
	}
	gate := func(e *recovery.Event) { e.Gate = recovery.GateCutover }
	events := []recovery.Event{
		ev(recovery.EventRunStarted, "", 0, 0, 0, nil),
		ev(recovery.EventStepStarted, "create-cluster", 1, 0, 1, nil),
		ev(recovery.EventStepSucceeded, "create-cluster", 1, 0, 4, nil),
		ev(recovery.EventGateWaiting, "switch-dns", 0, 1, 5, gate),
		ev(recovery.EventDecision, "switch-dns", 0, 1, 95, func(e *recovery.Event) {
			gate(e)
			e.Fields = map[string]string{"decision": "approve", "on": "gate"}
		}),
		ev(recovery.EventStepStarted, "switch-dns", 1, 0, 96, gate),
		ev(recovery.EventStepRetrying, "switch-dns", 1, 0, 97, gate),
		ev(recovery.EventStepStarted, "switch-dns", 2, 0, 100, gate),
		ev(recovery.EventStepSucceeded, "switch-dns", 2, 0, 102, gate),
		// A decision about a failure is not an approval wait.
		ev(recovery.EventDecision, "verify", 0, 1, 105, func(e *recovery.Event) {
			e.Fields = map[string]string{"decision": "skip", "on": "failure"}
		}),
		ev(recovery.EventRunSucceeded, "", 0, 0, 110, nil),
	}
	ctx := context.Background()
	latencySum := 0.0
	for _, e := range events {
		ref, err := n.Notify(ctx, e)
		if err != nil {
			// The outbox retries a failed delivery with the same event.
			if ref, err = n.Notify(ctx, e); err != nil {
				t.Fatalf("redelivering %s: %v", e.Kind, err)
			}
		}
		if ref == "" {
			t.Errorf("%s: the wrapper lost the notifier's ref", e.Kind)
		}
		latencySum += 120 - e.Time.Sub(t0).Seconds()
	}
	if len(fake.delivered) != len(events) {
		t.Fatalf("fake delivered %d events, want %d", len(fake.delivered), len(events))
	}

	s, _ := scrape(t, m.Handler())
	wantSample(t, s, `drbot_runs_total{mode="recovery",result="succeeded"}`, 1) // not 2: the failed try is not counted
	wantSample(t, s, `drbot_runs_total{mode="drill",result="failed"}`, 0)
	wantSample(t, s, `drbot_step_duration_seconds_sum{step="create-cluster"}`, 3)
	wantSample(t, s, `drbot_step_duration_seconds_count{step="create-cluster"}`, 1)
	// Timed from the attempt that succeeded, not the first one.
	wantSample(t, s, `drbot_step_duration_seconds_sum{step="switch-dns"}`, 2)
	wantSample(t, s, `drbot_step_duration_seconds_bucket{step="create-cluster",le="5"}`, 1)
	wantSample(t, s, `drbot_step_duration_seconds_bucket{step="create-cluster",le="1"}`, 0)
	wantSample(t, s, `drbot_approval_wait_seconds_sum{gate="cutover"}`, 90)
	wantSample(t, s, `drbot_approval_wait_seconds_count{gate="cutover"}`, 1)
	if _, ok := s[`drbot_approval_wait_seconds_count{gate=""}`]; ok {
		t.Errorf("a failure decision was observed as an approval wait")
	}
	wantSample(t, s, `drbot_events_total{kind="step.started"}`, 3)
	wantSample(t, s, `drbot_events_total{kind="run.succeeded"}`, 1)
	wantSample(t, s, `drbot_outbox_delivery_latency_seconds_count`, float64(len(events)))
	wantSample(t, s, `drbot_outbox_delivery_latency_seconds_sum`, latencySum)

	m.mu.Lock()
	open := len(m.started) + len(m.waiting)
	m.mu.Unlock()
	if open != 0 {
		t.Errorf("%d step/gate timers left after the run finished, want 0", open)
	}
}

func TestStepSucceededWithoutItsStartIsNotObserved(t *testing.T) {
	// After a restart the outbox may deliver step.succeeded whose
	// step.started went out before the crash: there is nothing to time.
	m := New()
	n := m.Notifier(&fakeNotifier{})
	_, err := n.Notify(context.Background(), recovery.Event{Kind: recovery.EventStepSucceeded, RunID: "r1", StepID: "s", Attempt: 2, Time: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := scrape(t, m.Handler())
	if _, ok := s[`drbot_step_duration_seconds_count{step="s"}`]; ok {
		t.Errorf("step duration observed without a start")
	}
	wantSample(t, s, `drbot_events_total{kind="step.succeeded"}`, 1)
}

func TestAckAndOutboxDepthAreExposed(t *testing.T) {
	m := New()
	s, _ := scrape(t, m.Handler())
	if _, ok := s["drbot_outbox_pending"]; ok {
		t.Errorf("outbox gauge exposed before OutboxDepth was wired")
	}

	m.ObserveAck(250 * time.Millisecond)
	m.ObserveAck(50 * time.Millisecond)
	depth, depthErr := 4, error(nil)
	m.OutboxDepth(func() (int, error) { return depth, depthErr })
	s, _ = scrape(t, m.Handler())
	wantSample(t, s, "drbot_ack_seconds_sum", 0.3)
	wantSample(t, s, "drbot_ack_seconds_count", 2)
	wantSample(t, s, `drbot_ack_seconds_bucket{le="0.1"}`, 1)
	wantSample(t, s, "drbot_outbox_pending", 4)

	depthErr = errors.New("store closed")
	s, _ = scrape(t, m.Handler())
	if v := s["drbot_outbox_pending"]; !math.IsNaN(v) {
		t.Errorf("outbox gauge = %v while the count fails, want NaN", v)
	}

	// Wiring again replaces the function instead of panicking on a duplicate.
	m.OutboxDepth(func() (int, error) { return 7, nil })
	s, _ = scrape(t, m.Handler())
	wantSample(t, s, "drbot_outbox_pending", 7)
}

func TestStoreOutboxDepthCountsUndeliveredEntries(t *testing.T) {
	store, err := state.Open(t.TempDir()+"/drbot.db", state.Options{})
	if err != nil {
		t.Fatalf("opening store: %v", err)
	}
	defer store.Close()
	err = store.Update(func(tx *state.Tx) error {
		for _, k := range []string{"a", "b", "c"} {
			if _, err := tx.Enqueue(state.OutboxEntry{Key: k, Kind: "step.started", Payload: []byte(`{}`)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("enqueueing: %v", err)
	}
	m := New()
	m.OutboxDepth(StoreOutboxDepth(store))
	s, _ := scrape(t, m.Handler())
	wantSample(t, s, "drbot_outbox_pending", 3)

	err = store.Update(func(tx *state.Tx) error {
		pending, err := tx.Outbox(true, 1)
		if err != nil {
			return err
		}
		return tx.MarkDelivered(pending[0].Seq, "ts")
	})
	if err != nil {
		t.Fatalf("marking delivered: %v", err)
	}
	s, _ = scrape(t, m.Handler())
	wantSample(t, s, "drbot_outbox_pending", 2)
}
