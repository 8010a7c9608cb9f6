// Package drills rehearses recovery on a schedule: cron schedules per
// drill, announcements at lead times, drill starts, missed-drill reports,
// skip and postpone, and the MTTR scorecard.
package drills

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Starter starts a drill run (the bot does: it opens the drill-… channel).
type Starter interface {
	StartDrill(ctx context.Context, d config.Drill, by, reason string) (state.Run, error)
}

// Options configure a Scheduler.
type Options struct {
	Clock func() time.Time
	// Tolerance is how late a start or an announcement may be and still
	// count as on time (default 2m). Later ones are reported as missed
	// (starts) or sent marked late (announcements).
	Tolerance time.Duration
	// Expected is the expected duration of a drill of a target (the plan's estimate).
	Expected func(target string) time.Duration
	Logger   *slog.Logger
	// OnEnqueue wakes the outbox dispatcher.
	OnEnqueue func()
}

// Scheduler decides, on every tick, which announcements are due and which
// drills start. What it did is recorded in the state with the outbox
// entry that reports it, so a restart neither repeats nor loses anything.
type Scheduler struct {
	drills  []config.Drill
	store   *state.Store
	starter Starter
	opts    Options
	scheds  map[string]cron.Schedule
}

// New validates the schedules and makes a scheduler.
func New(drills []config.Drill, store *state.Store, starter Starter, opts Options) (*Scheduler, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Tolerance <= 0 {
		opts.Tolerance = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Scheduler{drills: drills, store: store, starter: starter, opts: opts, scheds: map[string]cron.Schedule{}}
	for _, d := range drills {
		spec := d.Schedule
		if d.Timezone != "" {
			spec = "CRON_TZ=" + d.Timezone + " " + spec
		}
		sched, err := cron.ParseStandard(spec)
		if err != nil {
			return nil, fmt.Errorf("drill %q: schedule %q: %w", d.Name, d.Schedule, err)
		}
		s.scheds[d.Name] = sched
	}
	return s, nil
}

// Run ticks every interval until ctx ends (see RunTicks).
func (s *Scheduler) Run(ctx context.Context, interval time.Duration) {
	RunTicks(ctx, interval, s.opts.Logger, "drill scheduler tick", s.Tick)
}

// RunTicks calls tick now and every interval until ctx ends. Each tick is
// wrapped with cron.Recover and cron.SkipIfStillRunning: a panic is
// logged, and a slow tick is never overlapped by the next. The drill and
// readiness schedulers share it.
func RunTicks(ctx context.Context, interval time.Duration, log *slog.Logger, what string, tick func(context.Context) error) {
	chain := cron.NewChain(cron.Recover(cronLogger{log}), cron.SkipIfStillRunning(cronLogger{log}))
	job := chain.Then(cron.FuncJob(func() {
		if err := tick(ctx); err != nil {
			log.Error(what, "err", err)
		}
	}))
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		job.Run()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

const lastTickKey = "drills/last_tick"

func occurrenceKey(name string, start time.Time) string {
	return fmt.Sprintf("drill/%s/%d", name, start.Unix())
}

// occurrences lists a drill's starts in (from, to], with postponements
// applied.
func (s *Scheduler) occurrences(tx *state.Tx, d config.Drill, from, to time.Time) []time.Time {
	var out []time.Time
	moved := tx.KVPrefix("drill/" + d.Name + "/")
	for t := s.scheds[d.Name].Next(from); !t.After(to); t = s.scheds[d.Name].Next(t) {
		if _, ok := moved[occurrenceKey(d.Name, t)+"/postponed"]; ok {
			continue
		}
		out = append(out, t)
	}
	for k, v := range moved {
		if !strings.HasSuffix(k, "/postponed") {
			continue
		}
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		if t := time.Unix(sec, 0).In(s.scheds[d.Name].Next(from).Location()); t.After(from) && !t.After(to) {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Before(out[j]) })
	return out
}

func maxLead(d config.Drill) time.Duration {
	var m time.Duration
	for _, l := range d.Announce {
		m = max(m, l.Std())
	}
	return m
}

// Tick does what is due at the scheduler's clock.
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
		last = now.Add(-s.opts.Tolerance) // first start: nothing before now is "missed"
	}
	for _, d := range s.drills {
		if err := s.tickDrill(ctx, d, last, now); err != nil {
			return fmt.Errorf("drill %q: %w", d.Name, err)
		}
	}
	return s.store.Update(func(tx *state.Tx) error { return tx.PutKV(lastTickKey, strconv.FormatInt(now.Unix(), 10)) })
}

func (s *Scheduler) tickDrill(ctx context.Context, d config.Drill, last, now time.Time) error {
	var starts []time.Time
	_ = s.store.View(func(tx *state.Tx) error {
		starts = s.occurrences(tx, d, last.Add(-maxLead(d)-time.Second), now.Add(maxLead(d)))
		return nil
	})
	for _, start := range starts {
		key := occurrenceKey(d.Name, start)
		var handled, skipped bool
		_ = s.store.View(func(tx *state.Tx) error {
			_, handled = tx.KV(key + "/start")
			_, skipped = tx.KV(key + "/skipped")
			return nil
		})
		if handled || skipped {
			continue
		}
		if !start.After(now) {
			if start.Before(last.Add(-s.opts.Tolerance)) {
				continue // before the window this scheduler is responsible for
			}
			if now.Sub(start) <= s.opts.Tolerance {
				if err := s.start(ctx, d, start, "drbot-scheduler", "scheduled drill"); err != nil {
					return err
				}
			} else if err := s.missed(d, start, now); err != nil {
				return err
			}
			continue
		}
		if err := s.announce(d, start, now); err != nil {
			return err
		}
	}
	return nil
}

// announce sends the most recent due announcement of an occurrence, once.
// Earlier leads that were missed (drbot was down) are superseded, so
// people get one late message, not a burst.
func (s *Scheduler) announce(d config.Drill, start, now time.Time) error {
	leads := make([]time.Duration, 0, len(d.Announce))
	for _, l := range d.Announce {
		leads = append(leads, l.Std())
	}
	sort.Slice(leads, func(i, j int) bool { return leads[i] > leads[j] })
	var due time.Duration = -1
	for _, l := range leads {
		if !start.Add(-l).After(now) {
			due = l // the latest lead whose time has come
		}
	}
	if due < 0 {
		return nil
	}
	key := occurrenceKey(d.Name, start)
	return s.store.Update(func(tx *state.Tx) error {
		for _, l := range leads {
			if l < due {
				continue
			}
			k := fmt.Sprintf("%s/announce/%s", key, l)
			if _, sent := tx.KV(k); sent {
				if l == due {
					return nil
				}
				continue
			}
			if l > due {
				if err := tx.PutKV(k, "superseded"); err != nil {
					return err
				}
				continue
			}
			late := now.Sub(start.Add(-l)) > s.opts.Tolerance
			if err := tx.PutKV(k, strconv.FormatInt(now.Unix(), 10)); err != nil {
				return err
			}
			return recovery.Enqueue(tx, s.event(recovery.EventDrillAnnounce, d, start, k, func(ev *recovery.Event) {
				ev.Fields["lead"] = short(l)
				if late {
					ev.Fields["late"] = "true"
				}
			}))
		}
		return nil
	})
}

func (s *Scheduler) event(kind recovery.EventKind, d config.Drill, start time.Time, key string, fill func(*recovery.Event)) recovery.Event {
	ev := recovery.Event{Key: key, Kind: kind, Target: d.Target, Mode: state.ModeDrill, Time: s.opts.Clock(),
		Fields: map[string]string{"drill": d.Name, "start": start.UTC().Format(time.RFC3339), "start_unix": strconv.FormatInt(start.Unix(), 10),
			"on_point": strings.Join(d.OnPoint, ","), "timezone": d.Timezone}}
	if s.opts.Expected != nil {
		ev.Fields["expected"] = short(s.opts.Expected(d.Target))
	}
	if fill != nil {
		fill(&ev)
	}
	return ev
}

// missed reports, once, a drill whose start passed while drbot was down;
// it is not started silently (people are offered Run now).
func (s *Scheduler) missed(d config.Drill, start, now time.Time) error {
	key := occurrenceKey(d.Name, start)
	err := s.store.Update(func(tx *state.Tx) error {
		if _, done := tx.KV(key + "/start"); done {
			return nil
		}
		if err := tx.PutKV(key+"/start", "missed"); err != nil {
			return err
		}
		if err := tx.Audit(state.AuditEntry{Actor: "drbot-scheduler", Action: "drill.missed", Target: d.Target, Result: "reported",
			Detail: map[string]string{"drill": d.Name, "start": start.UTC().Format(time.RFC3339), "noticed": now.UTC().Format(time.RFC3339)}}); err != nil {
			return err
		}
		return recovery.Enqueue(tx, s.event(recovery.EventDrillMissed, d, start, key+"/missed", nil))
	})
	s.wake()
	return err
}

func (s *Scheduler) wake() {
	if s.opts.OnEnqueue != nil {
		s.opts.OnEnqueue()
	}
}

// start begins a drill and records it. A target already busy (a run in
// progress) is reported by the starter's error.
func (s *Scheduler) start(ctx context.Context, d config.Drill, start time.Time, by, reason string) error {
	key := occurrenceKey(d.Name, start)
	run, err := s.starter.StartDrill(ctx, d, by, reason)
	result := "started " + run.ID
	if err != nil {
		result = "not started: " + err.Error()
		s.opts.Logger.Warn("starting scheduled drill", "drill", d.Name, "err", err)
	}
	return s.store.Update(func(tx *state.Tx) error {
		if err := tx.PutKV(key+"/start", result); err != nil {
			return err
		}
		return tx.Audit(state.AuditEntry{Actor: by, Action: "drill.start", Target: d.Target, RunID: run.ID, Result: result,
			Detail: map[string]string{"drill": d.Name, "start": start.UTC().Format(time.RFC3339)}})
	})
}

func (s *Scheduler) drill(name string) (config.Drill, error) {
	for _, d := range s.drills {
		if d.Name == name {
			return d, nil
		}
	}
	return config.Drill{}, fmt.Errorf("no drill %q in the config", name)
}

// ErrAlreadyHandled says an occurrence was started, skipped or moved.
var ErrAlreadyHandled = errors.New("this drill was already started, skipped or postponed")

// Skip cancels one occurrence.
func (s *Scheduler) Skip(name string, startUnix int64, by string) error {
	d, err := s.drill(name)
	if err != nil {
		return err
	}
	start := time.Unix(startUnix, 0)
	key := occurrenceKey(name, start)
	err = s.store.Update(func(tx *state.Tx) error {
		if err := s.unhandled(tx, key); err != nil {
			return err
		}
		if err := tx.PutKV(key+"/skipped", by); err != nil {
			return err
		}
		if err := tx.Audit(state.AuditEntry{Actor: by, Action: "drill.skip", Target: d.Target, Result: "recorded", Detail: map[string]string{"drill": name, "start": start.UTC().Format(time.RFC3339)}}); err != nil {
			return err
		}
		return recovery.Enqueue(tx, s.event(recovery.EventDrillSkipped, d, start, key+"/skipped", func(ev *recovery.Event) { ev.Actor = by }))
	})
	s.wake()
	return err
}

// Postpone moves one occurrence by d (the button offers 24h).
func (s *Scheduler) Postpone(name string, startUnix int64, by string, by2 time.Duration) error {
	d, err := s.drill(name)
	if err != nil {
		return err
	}
	start := time.Unix(startUnix, 0)
	key := occurrenceKey(name, start)
	moved := start.Add(by2)
	err = s.store.Update(func(tx *state.Tx) error {
		if err := s.unhandled(tx, key); err != nil {
			return err
		}
		if err := tx.PutKV(key+"/postponed", strconv.FormatInt(moved.Unix(), 10)); err != nil {
			return err
		}
		if err := tx.Audit(state.AuditEntry{Actor: by, Action: "drill.postpone", Target: d.Target, Result: "recorded",
			Detail: map[string]string{"drill": name, "from": start.UTC().Format(time.RFC3339), "to": moved.UTC().Format(time.RFC3339)}}); err != nil {
			return err
		}
		return recovery.Enqueue(tx, s.event(recovery.EventDrillPostponed, d, start, key+"/postponed", func(ev *recovery.Event) {
			ev.Actor = by
			ev.Fields["to"] = moved.UTC().Format(time.RFC3339)
		}))
	})
	s.wake()
	return err
}

func (s *Scheduler) unhandled(tx *state.Tx, key string) error {
	for _, suffix := range []string{"/start", "/skipped", "/postponed"} {
		if v, ok := tx.KV(key + suffix); ok && !(suffix == "/start" && v == "missed") {
			return ErrAlreadyHandled
		}
	}
	return nil
}

// RunNow starts a missed drill on request.
func (s *Scheduler) RunNow(ctx context.Context, name string, startUnix int64, by string) (state.Run, error) {
	d, err := s.drill(name)
	if err != nil {
		return state.Run{}, err
	}
	key := occurrenceKey(name, time.Unix(startUnix, 0))
	var state0 string
	_ = s.store.View(func(tx *state.Tx) error { state0, _ = tx.KV(key + "/start"); return nil })
	if state0 != "missed" {
		return state.Run{}, ErrAlreadyHandled
	}
	run, err := s.starter.StartDrill(ctx, d, by, "missed drill run on request")
	if err != nil {
		return state.Run{}, err
	}
	err = s.store.Update(func(tx *state.Tx) error {
		if err := tx.PutKV(key+"/start", "started late "+run.ID); err != nil {
			return err
		}
		return tx.Audit(state.AuditEntry{Actor: by, Action: "drill.run-now", Target: d.Target, RunID: run.ID, Result: "started", Detail: map[string]string{"drill": name}})
	})
	return run, err
}

func short(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}

// cronLogger adapts slog to cron's logger.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Info(msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error(msg, append(kv, "err", err)...)
}
