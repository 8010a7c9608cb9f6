package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
)

type movableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *movableClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *movableClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func TestDrillIsAnnouncedAndOnlyAuthorisedPeopleMayPostponeIt(t *testing.T) {
	clk := &movableClock{now: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	e := newE2EWith(t, testBook(t), func(cfg *config.Config, opts *serveOptions) {
		cfg.Drills = []config.Drill{{Name: "december", Schedule: "0 10 2 12 *", Timezone: "UTC", Target: "drill-eu",
			Announce: []config.Duration{config.Duration(24 * time.Hour), config.Duration(time.Hour)}, OnPoint: []string{userSRE}, Teardown: true}}
		opts.drillClock, opts.drillTick = clk.Now, 20*time.Millisecond
	})
	clk.Set(time.Date(2026, 12, 1, 10, 0, 30, 0, time.UTC)) // the 24h notice is due
	var ann string
	e.waitFor("the announcement", func() bool {
		for _, m := range e.slack.Messages(chanAnnounce) {
			if strings.Contains(blocksText(m), bot.ActionDrillPostpone) {
				ann = m.TS
				return true
			}
		}
		return false
	})
	m, _ := e.message(chanAnnounce, ann)
	if !strings.Contains(blocksText(m), "<@"+userSRE+">") || strings.Contains(blocksText(m), "late") {
		t.Errorf("announcement = %s", blocksText(m))
	}
	value := fmt.Sprintf("december|%d", time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC).Unix())
	e.click(userRandom, chanAnnounce, ann, bot.ActionDrillSkip, value)
	e.waitFor("the refusal", func() bool { return anyContains(e.responses(userRandom), "may not change this drill") })
	e.click(userSRE, chanAnnounce, ann, bot.ActionDrillPostpone, value)
	e.waitFor("the postponement", func() bool {
		for _, m := range e.slack.Messages(chanAnnounce) {
			if strings.Contains(blocksText(m), "was postponed to 2026-12-03T10:00:00Z by <@"+userSRE+">") {
				return true
			}
		}
		return false
	})
	clk.Set(time.Date(2026, 12, 2, 10, 0, 30, 0, time.UTC))
	time.Sleep(200 * time.Millisecond)
	if e.run().ID != "" {
		t.Fatal("a postponed drill started at its old time")
	}
	clk.Set(time.Date(2026, 12, 3, 10, 0, 30, 0, time.UTC))
	e.waitFor("the drill run", func() bool { return e.run().ID != "" })
	run := e.run()
	c, _ := e.slack.Channel(run.Slack.ChannelID)
	if run.Mode != "drill" || !strings.HasPrefix(c.Name, "drill-drill-eu-") || run.Initiator != userSRE || run.Drill != "december" {
		t.Errorf("drill run = %+v in #%s", run, c.Name)
	}
}
