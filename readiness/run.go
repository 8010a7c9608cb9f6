package readiness

import (
	"context"
	"fmt"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/drbot/drbot/config"
)

// DefaultTimeout bounds one check when Options.Timeout is zero.
const DefaultTimeout = 2 * time.Minute

// Options tune a readiness run.
type Options struct {
	// Timeout bounds each check (default DefaultTimeout); a check still
	// running then is reported as failed and left to finish on its own.
	Timeout time.Duration
	// Clock stamps the report (default time.Now).
	Clock func() time.Time
}

// Run runs every check concurrently with the default options.
func Run(ctx context.Context, checks []Check, targets []*config.Target, trigger string) Report {
	return Options{}.Run(ctx, checks, targets, trigger)
}

// Run runs every check concurrently, each under its own timeout. A check
// that panics or does not finish in time becomes one failing result with
// the cause as evidence; the report is sorted failing first.
func (o Options) Run(ctx context.Context, checks []Check, targets []*config.Target, trigger string) Report {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	rep := Report{At: o.Clock().UTC(), Trigger: trigger}
	out := make([][]Result, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() { out[i] = runOne(ctx, c, targets, o.Timeout) })
	}
	wg.Wait()
	for _, rs := range out {
		rep.Results = append(rep.Results, rs...)
	}
	Sort(rep.Results)
	return rep
}

func runOne(ctx context.Context, c Check, targets []*config.Target, timeout time.Duration) []Result {
	id := c.ID()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan []Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				stack := strings.SplitN(string(debug.Stack()), "\n", 12)
				done <- []Result{{Check: id, Title: id, Status: Fail,
					Evidence: []string{fmt.Sprintf("the check panicked: %v", p), strings.TrimSpace(strings.Join(stack[min(len(stack)-1, 7):], " "))},
					Fix:      "this is a bug in drbot: report it with the evidence"}}
			}
		}()
		done <- c.Run(cctx, targets)
	}()
	select {
	case rs := <-done:
		for i := range rs {
			if rs[i].Check == "" {
				rs[i].Check = id
			}
			if rs[i].Title == "" {
				rs[i].Title = rs[i].Check
			}
			if rs[i].Status == "" {
				rs[i].Status = Fail
				rs[i].Evidence = append(rs[i].Evidence, "the check gave no verdict")
			}
		}
		return rs
	case <-cctx.Done():
		why := fmt.Sprintf("the check did not finish within %s", timeout)
		if ctx.Err() != nil {
			why = "the run was cancelled: " + ctx.Err().Error()
		}
		return []Result{{Check: id, Title: id, Status: Fail, Evidence: []string{why},
			Fix: "find out which far end is slow or unreachable from drbot; run `drbot check` again"}}
	}
}

// ErrorResult is the failing result of a check that could not look at
// what it checks: the error is the evidence.
func ErrorResult(check, target, title string, err error, fix string) Result {
	return Result{Check: check, Target: target, Title: title, Status: Fail, Evidence: []string{err.Error()}, Fix: fix}
}

var statusRank = map[Status]int{Fail: 0, Warn: 1, Pass: 2}

// Sort orders results failing first, then warnings, then passes; within
// each by check and target.
func Sort(rs []Result) {
	sort.SliceStable(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if statusRank[a.Status] != statusRank[b.Status] {
			return statusRank[a.Status] < statusRank[b.Status]
		}
		if a.Check != b.Check {
			return a.Check < b.Check
		}
		return a.Target < b.Target
	})
}

// Score is how many results passed out of how many there are.
func (r Report) Score() (passed, total int) {
	for _, res := range r.Results {
		if res.Status == Pass {
			passed++
		}
	}
	return passed, len(r.Results)
}

// Count is how many results have the status.
func (r Report) Count(s Status) int {
	n := 0
	for _, res := range r.Results {
		if res.Status == s {
			n++
		}
	}
	return n
}

// Failed reports whether any check found something that would break a recovery.
func (r Report) Failed() bool { return r.Count(Fail) > 0 }

// Key is what regressions are tracked by: check and target.
func (r Result) Key() string { return r.Check + "|" + r.Target }

// Regressions are the results that fail now but passed in prev.
func Regressions(prev *Report, cur Report) []Result {
	if prev == nil {
		return nil
	}
	passed := map[string]bool{}
	for _, r := range prev.Results {
		if r.Status == Pass {
			passed[r.Key()] = true
		}
	}
	var out []Result
	for _, r := range cur.Results {
		if r.Status == Fail && passed[r.Key()] {
			out = append(out, r)
		}
	}
	return out
}

// Emoji is the status as people read it.
func (s Status) Emoji() string {
	switch s {
	case Pass:
		return "✅"
	case Warn:
		return "⚠️"
	}
	return "❌"
}
