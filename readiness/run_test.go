package readiness

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/drbot/drbot/config"
)

// funcCheck is a hand-written check for the runner's tests.
type funcCheck struct {
	id string
	fn func(ctx context.Context, targets []*config.Target) []Result
}

func (f funcCheck) ID() string { return f.id }
func (f funcCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	return f.fn(ctx, targets)
}

func fixed(id string, rs ...Result) funcCheck {
	return funcCheck{id: id, fn: func(context.Context, []*config.Target) []Result { return rs }}
}

var t0 = time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)

func TestRunSortsFailingFirstAndScoresPasses(t *testing.T) {
	checks := []Check{
		fixed("a", Result{Check: "a", Status: Pass}),
		fixed("b", Result{Check: "b", Target: "t2", Status: Fail}, Result{Check: "b", Target: "t1", Status: Warn}),
		fixed("c", Result{Check: "c", Status: Fail}),
	}
	rep := Options{Clock: func() time.Time { return t0 }}.Run(context.Background(), checks, nil, "cli")
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.Label()+"="+string(r.Status))
	}
	want := "b [t2]=fail c=fail b [t1]=warn a=pass"
	if strings.Join(got, " ") != want {
		t.Errorf("order = %q, want %q", strings.Join(got, " "), want)
	}
	if p, n := rep.Score(); p != 1 || n != 4 {
		t.Errorf("score = %d/%d, want 1/4", p, n)
	}
	if !rep.Failed() || rep.Trigger != "cli" || !rep.At.Equal(t0) {
		t.Errorf("report = %+v", rep)
	}
}

func TestRunTurnsAPanicIntoAFailWithTheCause(t *testing.T) {
	boom := funcCheck{id: "boom", fn: func(context.Context, []*config.Target) []Result { panic("nil map in vault check") }}
	rep := Run(context.Background(), []Check{boom, fixed("ok", Result{Status: Pass})}, nil, "cli")
	if len(rep.Results) != 2 {
		t.Fatalf("results = %+v", rep.Results)
	}
	r := rep.Results[0]
	if r.Check != "boom" || r.Status != Fail || !strings.Contains(strings.Join(r.Evidence, " "), "nil map in vault check") {
		t.Errorf("panicking check gave %+v", r)
	}
	if rep.Results[1].Check != "ok" || rep.Results[1].Title != "ok" {
		t.Errorf("missing check id and title are not filled in: %+v", rep.Results[1])
	}
}

func TestRunFailsACheckThatOutlivesItsTimeout(t *testing.T) {
	slow := funcCheck{id: "slow", fn: func(ctx context.Context, _ []*config.Target) []Result {
		time.Sleep(2 * time.Second) // ignores ctx on purpose
		return []Result{{Status: Pass}}
	}}
	start := time.Now()
	rep := Options{Timeout: 100 * time.Millisecond}.Run(context.Background(), []Check{slow, fixed("quick", Result{Status: Pass})}, nil, "cli")
	if d := time.Since(start); d > time.Second {
		t.Errorf("run waited %s for a check past its timeout", d)
	}
	r := rep.Results[0]
	if r.Check != "slow" || r.Status != Fail || !strings.Contains(r.Evidence[0], "did not finish within 100ms") {
		t.Errorf("slow check gave %+v", r)
	}
}

func TestRunMarksAResultWithoutVerdictFailed(t *testing.T) {
	rep := Run(context.Background(), []Check{fixed("mute", Result{Target: "t"})}, nil, "cli")
	if r := rep.Results[0]; r.Status != Fail || r.Check != "mute" {
		t.Errorf("result without a status = %+v", r)
	}
}

func TestErrorResultCarriesTheErrorAsEvidence(t *testing.T) {
	r := ErrorResult("vault", "prod", "Vault", errors.New("dial tcp 127.0.0.1:1: connection refused"), "start Vault")
	if r.Status != Fail || r.Evidence[0] != "dial tcp 127.0.0.1:1: connection refused" || r.Fix != "start Vault" {
		t.Errorf("ErrorResult = %+v", r)
	}
}

func TestRegressionsAreChecksThatPassedBeforeAndFailNow(t *testing.T) {
	prev := Report{Results: []Result{
		{Check: "vault", Target: "a", Status: Pass},
		{Check: "vault", Target: "b", Status: Pass},
		{Check: "slack", Status: Fail},
		{Check: "gitlab", Status: Warn},
	}}
	cur := Report{Results: []Result{
		{Check: "vault", Target: "a", Status: Fail}, // regression
		{Check: "vault", Target: "b", Status: Warn}, // worse, but not failing
		{Check: "slack", Status: Fail},              // was failing already
		{Check: "gitlab", Status: Fail},             // was a warning
		{Check: "new", Status: Fail},                // not checked before
	}}
	got := Regressions(&prev, cur)
	if len(got) != 1 || got[0].Label() != "vault [a]" {
		t.Errorf("regressions = %+v, want only vault [a]", got)
	}
	if Regressions(nil, cur) != nil {
		t.Error("a first report has regressions")
	}
}
