package main

import (
	"context"
	"sort"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
)

// BenchmarkSocketModeAckLatency sends 200 slash commands and 200 button
// clicks per iteration while a run is active (waiting at its merge gate,
// with the poster busy) and reports the time from envelope to ack.
func BenchmarkSocketModeAckLatency(b *testing.B) {
	p50, p99, n := measureAckLatency(b)
	b.ReportMetric(p50, "p50-ms")
	b.ReportMetric(p99, "p99-ms")
	b.ReportMetric(n, "acks")
	if p99 >= 100 {
		b.Errorf("p99 time-to-ack %.1fms, want under 100ms", p99)
	}
}

// measureAckLatency is the benchmark's body; `make bench` puts its
// figures in the one table (BenchmarkRecovery).
func measureAckLatency(b *testing.B) (p50, p99, acks float64) {
	e := newE2E(b, testBook(b))
	e.command(userOncall, "start prod-eu")
	e.waitFor("the merge gate", func() bool { r := e.run(); return r.ID != "" && e.refs(r.ID)["gate/gitops.merge/1"] != "" })
	run := e.run()
	gateTS := e.refs(run.ID)["gate/gitops.merge/1"]
	value := bot.ButtonValue{RunID: run.ID, StepID: "gitops.merge", Round: 1}.String()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	var ids []string
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := 0; j < 200; j++ {
			id, err := e.slack.SlashCommand(ctx, userOncall, chanOps, "/dr", "status")
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
			// An unauthorised approver: refused, audited, nothing changes.
			id, err = e.slack.Click(ctx, userRandom, run.Slack.ChannelID, gateTS, bot.ActionApprove, value)
			if err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
	}
	var lat []float64
	for _, id := range ids {
		ack, err := e.slack.WaitAck(ctx, id)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, float64(ack.Latency)/float64(time.Millisecond))
	}
	b.StopTimer()
	sort.Float64s(lat)
	pct := func(p float64) float64 { return lat[int(p*float64(len(lat)-1))] }
	return pct(0.50), pct(0.99), float64(len(lat))
}
