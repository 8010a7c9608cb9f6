package readiness

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/drills"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// EventReport is the outbox event of a scheduled report: Message holds the
// report as JSON, Fields["channel"] where to post it and Fields["owners"]
// (comma-separated) whom a regression mentions. It has no run.
const EventReport recovery.EventKind = "readiness.report"

// RunFunc runs the readiness checks against targets (the scheduler, the
// CLI and /dr check share one).
type RunFunc func(ctx context.Context, targets []*config.Target, trigger string) Report

// ScheduleOptions tune a Scheduler.
type ScheduleOptions struct {
	Clock  func() time.Time
	Logger *slog.Logger
	// OnEnqueue wakes the outbox dispatcher.
	OnEnqueue func()
}

// Scheduler runs the checks on config readiness.schedule and posts each
// report through the outbox (so a crash neither loses nor doubles it),
// saving it in the same transaction.
type Scheduler struct {
	cfg   *config.Config
	store *state.Store
	run   RunFunc
	sched cron.Schedule
	opts  ScheduleOptions
}

const lastTickKey = "readiness/last_tick"

// NewScheduler parses the schedule. It returns nil (and no error) when
// readiness.schedule is "off".
func NewScheduler(cfg *config.Config, store *state.Store, run RunFunc, opts ScheduleOptions) (*Scheduler, error) {
	spec := strings.TrimSpace(cfg.Readiness.Schedule)
	if strings.EqualFold(spec, "off") {
		return nil, nil
	}
	if spec == "" {
		spec = "0 7 * * *"
	}
	if tz := cfg.Readiness.Timezone; tz != "" {
		spec = "CRON_TZ=" + tz + " " + spec
	}
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		return nil, fmt.Errorf("readiness.schedule %q: %w", cfg.Readiness.Schedule, err)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Scheduler{cfg: cfg, store: store, run: run, sched: sched, opts: opts}, nil
}

// Next is when the checks run next after t.
func (s *Scheduler) Next(t time.Time) time.Time { return s.sched.Next(t) }

// Run ticks every interval until ctx ends (drills.RunTicks: a panic in a
// tick is logged and a slow tick is never overlapped by the next).
func (s *Scheduler) Run(ctx context.Context, interval time.Duration) {
	drills.RunTicks(ctx, interval, s.opts.Logger, "readiness scheduler tick", s.Tick)
}

// Tick runs the checks once when a scheduled time passed since the last
// tick (once, however many were missed while drbot was down). The first
// tick after drbot's first start only remembers the time.
func (s *Scheduler) Tick(ctx context.Context) error {
	now := s.opts.Clock()
	var last time.Time
	_ = s.store.View(func(tx *state.Tx) error {
		if v, ok := tx.KV(lastTickKey); ok {
			if sec, err := strconv.ParseInt(v, 10, 64); err == nil {
				last = time.Unix(sec, 0)
			}
		}
		return nil
	})
	if last.IsZero() {
		return s.store.Update(func(tx *state.Tx) error { return tx.PutKV(lastTickKey, strconv.FormatInt(now.Unix(), 10)) })
	}
	due := s.sched.Next(last)
	if due.After(now) {
		return nil
	}
	if _, err := s.RunNow(ctx, "schedule", due); err != nil {
		return err
	}
	return s.store.Update(func(tx *state.Tx) error { return tx.PutKV(lastTickKey, strconv.FormatInt(now.Unix(), 10)) })
}

// RunNow runs the checks, saves the report and enqueues its message for
// the readiness channel; occurrence names the scheduled time (the message's
// idempotency key).
func (s *Scheduler) RunNow(ctx context.Context, trigger string, occurrence time.Time) (Report, error) {
	rep := s.run(ctx, Targets(s.cfg), trigger)
	err := s.store.Update(func(tx *state.Tx) (err error) {
		if rep, err = SaveTx(tx, rep); err != nil {
			return err
		}
		ev, err := ReportEvent(s.cfg, rep, fmt.Sprintf("readiness/%d", occurrence.Unix()))
		if err != nil {
			return err
		}
		return recovery.Enqueue(tx, ev)
	})
	if err != nil {
		return rep, fmt.Errorf("recording the scheduled readiness report: %w", err)
	}
	if s.opts.OnEnqueue != nil {
		s.opts.OnEnqueue()
	}
	passed, total := rep.Score()
	s.opts.Logger.Info("readiness checked", "trigger", trigger, "passed", passed, "total", total, "failed", rep.Count(Fail), "regressions", len(rep.Regressions))
	return rep, nil
}

// ReportEvent is the outbox event that posts rep in the readiness channel.
func ReportEvent(cfg *config.Config, rep Report, key string) (recovery.Event, error) {
	raw, err := json.Marshal(rep)
	if err != nil {
		return recovery.Event{}, fmt.Errorf("encoding the readiness report: %w", err)
	}
	return recovery.Event{Key: key, Kind: EventReport, Time: rep.At, Message: string(raw),
		Fields: map[string]string{"channel": Channel(cfg), "owners": strings.Join(cfg.Readiness.Owners, ",")}}, nil
}

// DecodeEvent reads the report back out of an EventReport event.
func DecodeEvent(ev recovery.Event) (Report, []string, error) {
	var rep Report
	if err := json.Unmarshal([]byte(ev.Message), &rep); err != nil {
		return rep, nil, fmt.Errorf("decoding the readiness report of %s: %w", ev.Key, err)
	}
	var owners []string
	for _, o := range strings.Split(ev.Fields["owners"], ",") {
		if o != "" {
			owners = append(owners, o)
		}
	}
	return rep, owners, nil
}

// Channel is where scheduled reports go: readiness.channel, else the
// announce channel.
func Channel(cfg *config.Config) string {
	if cfg.Readiness.Channel != "" {
		return cfg.Readiness.Channel
	}
	return cfg.Slack.AnnounceChannel
}

// Targets are the targets readiness checks: readiness.targets, else all.
func Targets(cfg *config.Config) []*config.Target {
	var out []*config.Target
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		if len(cfg.Readiness.Targets) == 0 || containsString(cfg.Readiness.Targets, t.Name) {
			out = append(out, t)
		}
	}
	return out
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
