package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/slackfake"
	"github.com/drbot/drbot/test/vaultfake"
	"github.com/drbot/drbot/test/world"
)

// Fault injection (issue 10 part 3): every far end fails 10–20 % of
// drbot's calls — AWS throttles, answers 5xx or stalls, Vault and GitLab
// answer 5xx, Slack rate-limits and answers 5xx, and the Socket Mode
// connection drops without warning. Each run completes, or stops blocked
// with a message naming the failing call; drbot never panics and loses
// no journal entry and no message.

func TestFaultInjection(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and a drbot child process")
	}
	runs := 1
	if v := os.Getenv("DRBOT_FAULT_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("DRBOT_FAULT_RUNS=%q is not a count", v)
		}
		runs = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("DRBOT_FAULT_SEED"); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("DRBOT_FAULT_SEED=%q: %v", v, err)
		}
		seed = s
	}
	fixed := 0.0
	if v := os.Getenv("DRBOT_FAULT_RATE"); v != "" {
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r <= 0 || r >= 1 {
			t.Fatalf("DRBOT_FAULT_RATE=%q is not a share between 0 and 1", v)
		}
		fixed = r
	}
	for i := range runs {
		s := seed + uint64(i)
		rate := 0.10 + 0.10*float64(s%3)/2 // 10, 15 or 20 %
		if fixed > 0 {
			rate = fixed
		}
		t.Run(fmt.Sprintf("seed=%d,rate=%.2f", s, rate), func(t *testing.T) { faultRun(t, s, rate) })
	}
}

// drbotStep picks the calls drbot makes from a step (they name it in the
// User-Agent), not the controllers' and Argo CD's in the same world.
func drbotStep(ua string) bool { return strings.Contains(ua, recovery.StepUserAgentPrefix) }

func faultRun(t *testing.T, seed uint64, rate float64) {
	t.Logf("DRBOT_FAULT_SEED=%d repeats this run's choices (same call order permitting)", seed)
	w := world.Start(t, world.Options{Services: 12, AWS: awsfake.Options{AllowUnexpected: false}})
	dir := t.TempDir()
	child := startWorldChild(t, w, dir, worldChildOptions{Poster: bot.PosterOptions{PostsPerSecond: 50, Burst: 10, BoardInterval: 200 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	if err := slashAsChild(ctx, w, world.UserOncall, "start "+w.Opts.Target); err != nil {
		t.Fatal(err)
	}

	w.AWS.InjectRate(awsfake.FaultRate{Rate: rate, Seed: seed, Only: func(_, _, ua string) bool { return drbotStep(ua) }})
	w.Vault.InjectFaults(vaultfake.FaultPlan{Rate: rate, Seed: seed + 1, Only: func(r *http.Request) bool { return drbotStep(r.UserAgent()) }})
	w.GitLab.InjectFaults(gitlabfake.FaultPlan{Rate: rate, Seed: seed + 2, Only: func(r *http.Request) bool { return drbotStep(r.UserAgent()) }})
	w.Slack.InjectFailures(slackfake.FailurePlan{Rate: rate, Kinds: []slackfake.FailureKind{slackfake.RateLimited, slackfake.ServerError}, Seed: int64(seed + 3)})

	var wg sync.WaitGroup
	fctx, fcancel := context.WithCancel(ctx)
	defer func() { fcancel(); wg.Wait() }()
	drops := 0
	wg.Go(func() { // the Socket Mode connection drops every few seconds
		for {
			select {
			case <-fctx.Done():
				return
			case <-time.After(4 * time.Second):
				if w.Slack.DropConnection() {
					drops++
				}
			}
		}
	})
	approver := &slackApprover{Slack: w.Slack, User: world.UserLead, Retry: 2 * time.Second}
	wg.Go(func() { approver.Run(fctx) })

	run, err := child.WaitRun(ctx)
	if err != nil {
		t.Fatalf("%v\n%s", err, stuckReport(child, run.ID))
	}
	fcancel()
	wg.Wait()
	// What the run did stands; the faults stop so the outbox can drain and
	// the checks read the far ends.
	w.AWS.InjectRate(awsfake.FaultRate{})
	w.Vault.InjectFaults(vaultfake.FaultPlan{})
	w.GitLab.InjectFaults(gitlabfake.FaultPlan{})
	w.Slack.InjectFailures(slackfake.FailurePlan{})
	if err := waitDelivered(ctx, child); err != nil {
		t.Fatal(err)
	}
	journal, _ := child.Inspect(run.ID)
	if err := child.Stop(); err != nil {
		t.Fatal(err)
	}

	awsFailed, vaultFailed, glFailed := w.AWS.RateFailures(), w.Vault.InjectedFaults(), w.GitLab.InjectedFaults()
	slackFailed := 0
	for _, c := range w.Slack.Calls() {
		if c.Injected {
			slackFailed++
		}
	}
	t.Logf("run %s ended %s; injected: %d AWS, %d Vault, %d GitLab, %d Slack failures, %d dropped connections\n%s",
		run.ID, run.Status, len(awsFailed), len(vaultFailed), len(glFailed), slackFailed, drops, journal)
	if len(awsFailed)+len(vaultFailed)+len(glFailed) < 5 || slackFailed < 3 || drops < 1 {
		t.Errorf("too few faults landed to prove anything")
	}
	if p := child.PanicLines(); len(p) > 0 {
		t.Errorf("the child's log reports: %q", p)
	}

	store, err := state.Open(child.StatePath, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	checkEveryMessageOnce(t, w.Slack, store, run.ID)
	switch run.Status {
	case state.RunSucceeded:
		checkJournal(t, store, run.ID, true)
	case state.RunBlocked:
		checkJournal(t, store, run.ID, false)
		checkBlockedNamesTheCall(t, w, store, run.ID, awsFailed, vaultFailed, glFailed)
	default:
		t.Errorf("the run ended %s; want succeeded, or blocked on a failed call", run.Status)
	}
}

// checkBlockedNamesTheCall checks that a blocked run's failed step says
// which call failed, and that Slack shows the failure with its buttons.
func checkBlockedNamesTheCall(t *testing.T, w *world.World, store *state.Store, runID string, awsFailed []awsfake.RateFailure, vaultFailed []vaultfake.Fault, glFailed []gitlabfake.Fault) {
	t.Helper()
	var steps map[string]state.StepRecord
	_ = store.View(func(tx *state.Tx) (err error) { steps, err = tx.Steps(runID); return })
	var names []string
	for _, f := range awsFailed {
		names = append(names, f.Operation)
	}
	for _, f := range vaultFailed {
		names = append(names, strings.TrimPrefix(f.Path, "/v1/"))
	}
	for _, f := range glFailed {
		names = append(names, strings.TrimPrefix(f.Path, "/api/v4/"))
	}
	failed := 0
	for id, rec := range steps {
		if rec.Status != state.StepFailed {
			continue
		}
		failed++
		named := false
		for _, n := range names {
			if n != "" && strings.Contains(rec.Error, n) {
				named = true
				break
			}
		}
		if !named {
			t.Errorf("blocked at step %s with %q, which names none of the failed calls", id, rec.Error)
		}
		shown := false
		for _, m := range w.Slack.Messages(channelOf(store, runID)) {
			for _, r := range append([]slackfake.Message{m}, m.Replies...) {
				if strings.Contains(string(r.Blocks), "`"+id+"` failed") && strings.Contains(string(r.Blocks), bot.ActionRetry) {
					shown = true
				}
			}
		}
		if !shown {
			t.Errorf("step %s failed but no Slack message shows it with a Retry button", id)
		}
	}
	if failed == 0 {
		t.Error("the run is blocked, but no step failed")
	}
}
