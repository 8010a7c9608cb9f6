// Package metrics exposes drbot's Prometheus metrics: runs by mode and
// result, step durations, time to ack, outbox depth and delivery latency,
// Slack API errors and approval waits.
//
// Most series are derived from the engine's events as the outbox delivers
// them, so they count what people were told, once, in order.
package metrics

import (
	"context"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Metrics holds drbot's collectors on a registry of its own, so tests and
// several instances in one process do not collide on the global one.
type Metrics struct {
	reg *prometheus.Registry

	runs            *prometheus.CounterVec
	events          *prometheus.CounterVec
	stepDuration    *prometheus.HistogramVec
	approvalWait    *prometheus.HistogramVec
	deliveryLatency prometheus.Histogram
	ack             prometheus.Histogram
	slackErrors     *prometheus.CounterVec

	now func() time.Time

	mu       sync.Mutex
	started  map[stepKey]time.Time // step.started time, by run/step/attempt
	waiting  map[stepKey]time.Time // gate.waiting time, by run/step/round
	depth    func() (int, error)
	depthReg bool
}

type stepKey struct {
	run, step string
	n         int
}

// New makes the collectors and registers them, with the Go runtime and
// process collectors, on a fresh registry.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drbot_runs_total", Help: "Runs finished, by mode (recovery, drill, plan) and result (succeeded, failed, aborted).",
		}, []string{"mode", "result"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drbot_events_total", Help: "Engine events delivered from the outbox, by kind.",
		}, []string{"kind"}),
		stepDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "drbot_step_duration_seconds", Help: "Time from a step attempt's start to its success, by step.",
			// Steps run from seconds (a DNS check) to half an hour (an EKS cluster).
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 900, 1200, 1800, 3600},
		}, []string{"step"}),
		approvalWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "drbot_approval_wait_seconds", Help: "Time a gate waited for a person's decision, by gate.",
			Buckets: []float64{10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400},
		}, []string{"gate"}),
		deliveryLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "drbot_outbox_delivery_latency_seconds", Help: "Time from an event happening to its delivery by the outbox.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900},
		}),
		ack: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "drbot_ack_seconds", Help: "Time from receiving a Slack request to acknowledging it (Slack allows 3 s).",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5},
		}),
		slackErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "drbot_slack_api_errors_total", Help: "Slack Web API calls that failed, by method and code (Slack's error string, http_429, http_5xx or transport).",
		}, []string{"method", "code"}),
		now:     time.Now,
		started: map[stepKey]time.Time{},
		waiting: map[stepKey]time.Time{},
	}
	m.reg.MustRegister(m.runs, m.events, m.stepDuration, m.approvalWait, m.deliveryLatency, m.ack, m.slackErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Zero series from the start, so rate() and increase() see the first run.
	for _, mode := range []state.Mode{state.ModeRecovery, state.ModeDrill, state.ModePlan} {
		for _, res := range []state.RunStatus{state.RunSucceeded, state.RunFailed, state.RunAborted} {
			m.runs.WithLabelValues(string(mode), string(res))
		}
	}
	return m
}

// Registry is the registry the collectors live on, for callers adding their own.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// ObserveAck records how long the bot took to ack a Slack request.
func (m *Metrics) ObserveAck(d time.Duration) { m.ack.Observe(d.Seconds()) }

// OutboxDepth exposes fn as the gauge drbot_outbox_pending, read at each
// scrape. A later call replaces fn. The gauge reads NaN while fn fails.
func (m *Metrics) OutboxDepth(fn func() (int, error)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.depth = fn
	if m.depthReg {
		return
	}
	m.depthReg = true
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "drbot_outbox_pending", Help: "Outbox entries not yet delivered.",
	}, func() float64 {
		m.mu.Lock()
		fn := m.depth
		m.mu.Unlock()
		n, err := fn()
		if err != nil {
			return math.NaN()
		}
		return float64(n)
	}))
}

// StoreOutboxDepth counts the undelivered outbox entries in store, for OutboxDepth.
func StoreOutboxDepth(store *state.Store) func() (int, error) {
	return func() (int, error) {
		var n int
		err := store.View(func(tx *state.Tx) error {
			pending, err := tx.Outbox(true, 0)
			n = len(pending)
			return err
		})
		return n, err
	}
}

// Notifier wraps the outbox's notifier: every event it delivers updates
// the metrics. Nothing is observed for a failed delivery; the outbox
// retries it and it is observed once, when it gets through.
func (m *Metrics) Notifier(next recovery.Notifier) recovery.Notifier {
	return recovery.NotifierFunc(func(ctx context.Context, ev recovery.Event) (string, error) {
		ref, err := next.Notify(ctx, ev)
		if err != nil {
			return ref, err
		}
		m.observe(ev)
		return ref, nil
	})
}

func (m *Metrics) observe(ev recovery.Event) {
	m.events.WithLabelValues(string(ev.Kind)).Inc()
	if !ev.Time.IsZero() {
		m.deliveryLatency.Observe(max(m.now().Sub(ev.Time), 0).Seconds())
	}
	attempt := stepKey{ev.RunID, ev.StepID, ev.Attempt}
	round := stepKey{ev.RunID, ev.StepID, ev.Round}

	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Kind {
	case recovery.EventStepStarted:
		m.started[attempt] = ev.Time
	case recovery.EventStepSucceeded:
		if at, ok := m.started[attempt]; ok {
			m.stepDuration.WithLabelValues(ev.StepID).Observe(max(ev.Time.Sub(at), 0).Seconds())
		}
		delete(m.started, attempt)
	case recovery.EventStepFailed, recovery.EventStepRetrying, recovery.EventStepCancelled, recovery.EventGateReopened:
		delete(m.started, attempt)
	case recovery.EventGateWaiting:
		m.waiting[round] = ev.Time
	case recovery.EventDecision:
		if ev.Fields["on"] != "gate" {
			break
		}
		if at, ok := m.waiting[round]; ok {
			m.approvalWait.WithLabelValues(string(ev.Gate)).Observe(max(ev.Time.Sub(at), 0).Seconds())
		}
		delete(m.waiting, round)
	case recovery.EventRunSucceeded, recovery.EventRunFailed, recovery.EventRunAborted:
		mode := string(ev.Mode)
		if mode == "" {
			mode = "unknown"
		}
		result := map[recovery.EventKind]state.RunStatus{
			recovery.EventRunSucceeded: state.RunSucceeded, recovery.EventRunFailed: state.RunFailed, recovery.EventRunAborted: state.RunAborted,
		}[ev.Kind]
		m.runs.WithLabelValues(mode, string(result)).Inc()
		// Forget what the finished run left open, so the maps stay small.
		for k := range m.started {
			if k.run == ev.RunID {
				delete(m.started, k)
			}
		}
		for k := range m.waiting {
			if k.run == ev.RunID {
				delete(m.waiting, k)
			}
		}
	}
}
