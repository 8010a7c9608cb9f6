package drills

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

type fakeStarter struct {
	mu     sync.Mutex
	starts []string
}

func (f *fakeStarter) StartDrill(_ context.Context, d config.Drill, by, reason string) (state.Run, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts = append(f.starts, d.Name+" by "+by)
	return state.Run{ID: "drill-run-" + d.Name}, nil
}

func (f *fakeStarter) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.starts) }

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

// december2 runs once a year, on 2 December at 10:00 UTC, so a test sees
// one occurrence only.
func december2() config.Drill {
	d := weekly()
	d.Schedule = "0 10 2 12 *"
	return d
}

func weekly() config.Drill {
	return config.Drill{Name: "weekly", Schedule: "0 10 * * 3", Timezone: "UTC", Target: "drill-eu",
		Announce: []config.Duration{config.Duration(168 * time.Hour), config.Duration(24 * time.Hour), config.Duration(time.Hour)}, OnPoint: []string{"U0ONCALL"}}
}

func date(day, hour, min int) time.Time { return time.Date(2026, 11, day, hour, min, 0, 0, time.UTC) }

type rig struct {
	t       *testing.T
	store   *state.Store
	clk     *clock
	starter *fakeStarter
	sched   *Scheduler
	drill   config.Drill
}

func newRig(t *testing.T, start time.Time, d config.Drill) *rig {
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	r := &rig{t: t, store: store, clk: &clock{now: start}, starter: &fakeStarter{}, drill: d}
	r.restart()
	return r
}

// restart makes a new scheduler on the same state, as a restarted drbot would.
func (r *rig) restart() {
	s, err := New([]config.Drill{r.drill}, r.store, r.starter, Options{Clock: r.clk.Now, Expected: func(string) time.Duration { return 45 * time.Minute }})
	if err != nil {
		r.t.Fatal(err)
	}
	r.sched = s
}

func (r *rig) at(t time.Time) {
	r.t.Helper()
	r.clk.now = t
	if err := r.sched.Tick(context.Background()); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) events(kind recovery.EventKind) []recovery.Event {
	var out []recovery.Event
	_ = r.store.View(func(tx *state.Tx) error {
		all, err := tx.Outbox(false, 0)
		for _, e := range all {
			var ev recovery.Event
			if json.Unmarshal(e.Payload, &ev) == nil && ev.Kind == kind {
				out = append(out, ev)
			}
		}
		return err
	})
	return out
}

func leads(evs []recovery.Event) []string {
	var out []string
	for _, ev := range evs {
		l := ev.Fields["lead"]
		if ev.Fields["late"] == "true" {
			l += " late"
		}
		out = append(out, l)
	}
	return out
}

func TestAnnouncementsAtEachLeadTimeExactlyOnceAcrossARestart(t *testing.T) {
	r := newRig(t, date(24, 9, 0), december2())
	r.at(date(24, 9, 0))
	r.at(date(25, 9, 0))
	r.at(date(25, 10, 0).Add(30 * time.Second))
	r.at(date(25, 10, 1))
	r.restart()
	r.at(date(25, 10, 5))
	r.at(time.Date(2026, 12, 1, 10, 0, 10, 0, time.UTC))
	r.restart()
	r.at(time.Date(2026, 12, 1, 10, 3, 0, 0, time.UTC))
	r.at(time.Date(2026, 12, 2, 9, 0, 5, 0, time.UTC))
	if got := leads(r.events(recovery.EventDrillAnnounce)); len(got) != 3 || got[0] != "7d" || got[1] != "24h" || got[2] != "1h" {
		t.Fatalf("announcements = %v, want 7d, 24h, 1h once each", got)
	}
	ann := r.events(recovery.EventDrillAnnounce)[0]
	if ann.Fields["expected"] != "45m" || ann.Fields["on_point"] != "U0ONCALL" || ann.Target != "drill-eu" || ann.Fields["start"] != "2026-12-02T10:00:00Z" {
		t.Errorf("announcement fields = %+v", ann.Fields)
	}
	if r.starter.count() != 0 {
		t.Fatal("started before its time")
	}
	r.at(time.Date(2026, 12, 2, 10, 0, 20, 0, time.UTC))
	r.restart()
	r.at(time.Date(2026, 12, 2, 10, 1, 0, 0, time.UTC))
	if r.starter.count() != 1 {
		t.Fatalf("starts = %v, want exactly one", r.starter.starts)
	}
}

func TestAnnouncementMissedWhileDownIsSentLateOnceAndEarlierOnesAreNotRepeated(t *testing.T) {
	r := newRig(t, date(24, 12, 0), december2())
	r.at(date(24, 12, 0))
	// drbot is down from Tue 24 Nov to Tue 1 Dec 15:00: the 7d and 24h notices were both due.
	r.restart()
	r.at(time.Date(2026, 12, 1, 15, 0, 0, 0, time.UTC))
	r.at(time.Date(2026, 12, 1, 15, 1, 0, 0, time.UTC))
	if got := leads(r.events(recovery.EventDrillAnnounce)); len(got) != 1 || got[0] != "24h late" {
		t.Fatalf("announcements = %v, want one late 24h notice", got)
	}
}

func TestDrillMissedWhileDownIsReportedAndNotRun(t *testing.T) {
	r := newRig(t, time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC), weekly())
	r.at(time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC))
	r.restart()
	r.at(time.Date(2026, 12, 2, 11, 30, 0, 0, time.UTC))
	r.at(time.Date(2026, 12, 2, 11, 31, 0, 0, time.UTC))
	if r.starter.count() != 0 {
		t.Fatal("a missed drill was started silently")
	}
	missed := r.events(recovery.EventDrillMissed)
	if len(missed) != 1 || missed[0].Fields["start_unix"] == "" {
		t.Fatalf("missed reports = %+v, want one", missed)
	}
	var start int64
	_, _ = fmtSscan(missed[0].Fields["start_unix"], &start)
	if _, err := r.sched.RunNow(context.Background(), "weekly", start, "U0ONCALL"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.sched.RunNow(context.Background(), "weekly", start, "U0LEAD"); !errors.Is(err, ErrAlreadyHandled) {
		t.Errorf("second Run now: %v, want ErrAlreadyHandled", err)
	}
	if r.starter.count() != 1 {
		t.Errorf("starts = %v", r.starter.starts)
	}
}

func TestSkipAndPostpone(t *testing.T) {
	r := newRig(t, time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), weekly())
	r.at(time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC))
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).Unix()
	if err := r.sched.Postpone("weekly", start, "U0ONCALL", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := r.sched.Skip("weekly", start, "U0LEAD"); !errors.Is(err, ErrAlreadyHandled) {
		t.Errorf("skip after postpone: %v, want ErrAlreadyHandled", err)
	}
	r.at(time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC))
	if r.starter.count() != 0 {
		t.Fatal("a postponed drill started at its old time")
	}
	r.at(time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC))
	if r.starter.count() != 1 {
		t.Fatalf("postponed drill starts = %v, want one a day later", r.starter.starts)
	}
	next := time.Date(2026, 12, 9, 10, 0, 0, 0, time.UTC).Unix()
	if err := r.sched.Skip("weekly", next, "U0LEAD"); err != nil {
		t.Fatal(err)
	}
	r.at(time.Date(2026, 12, 9, 10, 0, 30, 0, time.UTC))
	if r.starter.count() != 1 {
		t.Fatal("a skipped drill started")
	}
	var audit []state.AuditEntry
	_ = r.store.View(func(tx *state.Tx) (err error) { audit, err = tx.AuditLog(""); return })
	actions := map[string]string{}
	for _, a := range audit {
		actions[a.Action] = a.Actor
	}
	if actions["drill.postpone"] != "U0ONCALL" || actions["drill.skip"] != "U0LEAD" {
		t.Errorf("audit = %+v", audit)
	}
}

func fmtSscan(s string, v *int64) (int, error) { return fmt.Sscan(s, v) }
