// Package postmortem writes a run's post-mortem in Markdown from drbot's
// own journal, events and audit log (never by scraping Slack): summary,
// time to recover against the budget, a UTC timeline, per-phase and
// per-step durations with the critical path, approvals, failures and
// retries, and blank action items for people.
package postmortem

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Input is everything the post-mortem is written from.
type Input struct {
	Run          state.Run
	Steps        map[string]state.StepRecord
	Events       []recovery.Event
	Audit        []state.AuditEntry
	Book         *recovery.Runbook // the runbook in the run's mode
	Budget       time.Duration
	PhaseBudgets map[string]time.Duration
	Description  string // e.g. "primary eu-west-1/prod → DR prod-dr in eu-central-1"
	// Regressions are lines from the scorecard (drills only).
	Regressions []string
	// Abort is the decision that aborted the run, nil if none. The
	// post-mortem of an aborted run is written during its clean-up, before
	// the run is recorded aborted: this is how it knows.
	Abort *state.Decision
}

// Load reads a run's input from the state.
func Load(store *state.Store, book *recovery.Runbook, runID string) (Input, error) {
	in := Input{}
	err := store.View(func(tx *state.Tx) error {
		run, ok, err := tx.Run(runID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("no run %q", runID)
		}
		in.Run = run
		if in.Steps, err = tx.Steps(runID); err != nil {
			return err
		}
		if abort, ok, err := tx.Decision(recovery.AbortKey(runID)); err != nil {
			return err
		} else if ok {
			in.Abort = &abort
		}
		if in.Audit, err = tx.AuditLog(runID); err != nil {
			return err
		}
		entries, err := tx.RunOutbox(runID)
		if err != nil {
			return err
		}
		for _, e := range entries {
			var ev recovery.Event
			if err := json.Unmarshal(e.Payload, &ev); err != nil {
				return fmt.Errorf("decoding event %s: %w", e.Key, err)
			}
			in.Events = append(in.Events, ev)
		}
		return nil
	})
	if err != nil {
		return Input{}, err
	}
	in.Book = book.ForMode(in.Run.Mode)
	return in, nil
}

func modeWord(m state.Mode) string {
	if m == state.ModeDrill {
		return "Drill"
	}
	return "DR recovery"
}

// end is when the run ended, or the last event for an unfinished run.
func (in Input) end() time.Time {
	if !in.Run.FinishedAt.IsZero() {
		return in.Run.FinishedAt
	}
	end := in.Run.StartedAt
	for _, ev := range in.Events {
		if ev.Time.After(end) {
			end = ev.Time
		}
	}
	return end
}

// aborted reports whether the run was aborted, finished or still cleaning up.
func (in Input) aborted() bool { return in.Abort != nil || in.Run.Status == state.RunAborted }

// stepStatus is a step's outcome in words; on an aborted run, what the
// abort left it as.
func (in Input) stepStatus(rec state.StepRecord) string {
	if !in.aborted() {
		if rec.Status == "" {
			return "not started"
		}
		return string(rec.Status)
	}
	switch rec.Status {
	case "", state.StepPending:
		return "not run (aborted)"
	case state.StepWaiting:
		return "waiting at its gate when aborted"
	case state.StepCancelled:
		return "cancelled by the abort"
	}
	return string(rec.Status)
}

// abortLines say who aborted the run, when, why, and where it stood.
func (in Input) abortLines(b *strings.Builder) {
	who, when, why := "", "", ""
	if a := in.Abort; a != nil {
		who, why = " by "+person(a.By), reasonSuffix(a.Reason)
		if !a.DecidedAt.IsZero() {
			when = " at " + utc(a.DecidedAt)
		}
	}
	fmt.Fprintf(b, "- Outcome: **aborted**%s%s%s\n", who, when, why)
	// The engine's "aborted by U…" says nothing more; what it adds (a
	// clean-up step that failed) does.
	if in.Run.Error != "" && (in.Abort == nil || in.Run.Error != "aborted by "+in.Abort.By) {
		fmt.Fprintf(b, "- Recorded: %s\n", oneLine(in.Run.Error))
	}
	var at []string
	notRun := 0
	for _, s := range in.Book.Steps() {
		rec := in.Steps[s.ID]
		switch rec.Status {
		case state.StepFailed:
			if !s.OnAbort {
				at = append(at, fmt.Sprintf("`%s` failed (%s)", s.ID, oneLine(rec.Error)))
			}
		case state.StepWaiting:
			at = append(at, fmt.Sprintf("`%s` waiting at the %s gate", s.ID, s.Gate))
		case state.StepCancelled:
			at = append(at, fmt.Sprintf("`%s` running, cancelled", s.ID))
		case "", state.StepPending:
			if !s.OnAbort {
				notRun++
			}
		}
	}
	if len(at) == 0 {
		at = []string{"no step was failed, waiting or running"}
	}
	fmt.Fprintf(b, "- Aborted at: %s\n", strings.Join(at, "; "))
	fmt.Fprintf(b, "- Steps never run because of the abort: %d (not counting the clean-up that runs after an abort: this post-mortem and a drill's teardown)\n", notRun)
}

// Render writes the post-mortem.
func Render(in Input) string {
	var b strings.Builder
	run := in.Run
	ttr := in.end().Sub(run.StartedAt).Round(time.Second)
	aborted := in.aborted()
	fmt.Fprintf(&b, "# Post-mortem: %s of %s\n\n", modeWord(run.Mode), run.Target)
	fmt.Fprintf(&b, "Run `%s`", run.ID)
	if in.Description != "" {
		fmt.Fprintf(&b, " — %s", in.Description)
	}
	b.WriteString("\n\n## Summary\n\n")
	fmt.Fprintf(&b, "- Started %s by %s", utc(run.StartedAt), person(run.Initiator))
	if run.Reason != "" {
		fmt.Fprintf(&b, " — reason: %s", run.Reason)
	}
	b.WriteString("\n")
	if aborted {
		in.abortLines(&b)
	} else {
		fmt.Fprintf(&b, "- Outcome: **%s**", run.Status)
		if run.Error != "" {
			fmt.Fprintf(&b, " (%s)", run.Error)
		}
		b.WriteString("\n")
	}
	budget := ""
	if in.Budget > 0 {
		verdict := "within"
		if ttr > in.Budget {
			verdict = "**over**"
		}
		budget = fmt.Sprintf(" against a budget of %s: %s budget (%d%%)", recovery.ShortDuration(in.Budget), verdict, int(100*ttr/in.Budget))
	}
	if aborted {
		// Nothing was recovered: how long it ran until people stopped it.
		until := ttr
		if in.Abort != nil && in.Abort.DecidedAt.After(run.StartedAt) {
			until = in.Abort.DecidedAt.Sub(run.StartedAt).Round(time.Second)
		}
		fmt.Fprintf(&b, "- Ran for **%s** before the abort; nothing was recovered\n", recovery.ShortDuration(until))
	} else {
		fmt.Fprintf(&b, "- Time to recover: **%s**%s\n", recovery.ShortDuration(ttr), budget)
	}
	retries, failures, skipped := 0, 0, 0
	for _, ev := range in.Events {
		switch ev.Kind {
		case recovery.EventStepRetrying:
			retries++
		case recovery.EventStepFailed:
			failures++
		case recovery.EventStepSkipped:
			skipped++
		}
	}
	fmt.Fprintf(&b, "- Retries: %d · failures that needed a person: %d · skipped steps: %d · restarts of drbot: %d\n", retries, failures, skipped, run.Resumes)
	for _, r := range in.Regressions {
		fmt.Fprintf(&b, "- :warning: %s\n", r)
	}

	b.WriteString("\n## Phases\n\n| Phase | Duration | Budget | Steps |\n|---|---|---|---|\n")
	for _, p := range recovery.Phases {
		var start, end time.Time
		n := 0
		for _, s := range in.Book.Steps() {
			if s.Phase != p {
				continue
			}
			n++
			st, en := recovery.StepSpan(in.Steps[s.ID])
			if !st.IsZero() && (start.IsZero() || st.Before(start)) {
				start = st
			}
			if en.After(end) {
				end = en
			}
		}
		if n == 0 {
			continue
		}
		dur := "—"
		if !start.IsZero() && !end.IsZero() {
			dur = recovery.ShortDuration(end.Sub(start))
		}
		pb := "—"
		if d := in.PhaseBudgets[string(p)]; d > 0 {
			pb = recovery.ShortDuration(d)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d |\n", p, dur, pb, n)
	}

	// The critical path of what actually happened: the schedule with the
	// measured durations.
	actual := map[string]time.Duration{}
	for _, s := range in.Book.Steps() {
		st, en := recovery.StepSpan(in.Steps[s.ID])
		if !st.IsZero() && !en.IsZero() {
			actual[s.ID] = en.Sub(st)
		} else {
			actual[s.ID] = 0
		}
	}
	critical := map[string]bool{}
	if measured, err := in.Book.WithEstimates(actual); err == nil {
		for _, id := range measured.Schedule().CriticalPath {
			critical[id] = true
		}
	}
	b.WriteString("\n## Steps\n\n| Step | Phase | Started | Duration | Attempts | Outcome |\n|---|---|---|---|---|---|\n")
	for _, s := range in.Book.Steps() {
		rec := in.Steps[s.ID]
		st, en := recovery.StepSpan(rec)
		dur := "—"
		if !st.IsZero() && !en.IsZero() {
			dur = recovery.ShortDuration(en.Sub(st))
		}
		name := "`" + s.ID + "`"
		if critical[s.ID] {
			name += " ★"
		}
		status := in.stepStatus(rec)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %s |\n", name, s.Phase, clock(st), dur, rec.Attempt, status)
	}
	b.WriteString("\n★ critical path: the chain of steps that set the time to recover.\n")

	b.WriteString("\n## Approvals\n\n")
	asked := map[string]time.Time{}
	var rows []string
	for _, ev := range in.Events {
		switch ev.Kind {
		case recovery.EventGateWaiting:
			asked[fmt.Sprintf("%s/%d", ev.StepID, ev.Round)] = ev.Time
		case recovery.EventDecision:
			if ev.Fields["on"] != "gate" {
				continue
			}
			waited := "—"
			if at, ok := asked[fmt.Sprintf("%s/%d", ev.StepID, ev.Round)]; ok {
				waited = recovery.ShortDuration(ev.Time.Sub(at))
			}
			reason := ev.Fields["reason"]
			if reason == "" {
				reason = "—"
			}
			rows = append(rows, fmt.Sprintf("| %s | `%s` | %s | %s | %s | %s | %s |", ev.Gate, ev.StepID, ev.Fields["decision"], person(ev.Actor), clock(ev.Time), waited, reason))
		}
	}
	if len(rows) == 0 {
		b.WriteString("No gate was decided.\n")
	} else {
		b.WriteString("| Gate | Step | Decision | By | At | Waited | Reason |\n|---|---|---|---|---|---|---|\n")
		b.WriteString(strings.Join(rows, "\n") + "\n")
	}
	denied := 0
	for _, a := range in.Audit {
		if a.Result == "denied" {
			denied++
		}
	}
	if denied > 0 {
		fmt.Fprintf(&b, "\n%d refused action(s) are in the audit log.\n", denied)
	}

	b.WriteString("\n## Failures and retries\n\n")
	var fails []string
	for _, ev := range in.Events {
		switch ev.Kind {
		case recovery.EventStepRetrying:
			fails = append(fails, fmt.Sprintf("- %s `%s` attempt %d failed, retried after %s: %s", clock(ev.Time), ev.StepID, ev.Attempt, ev.Fields["backoff"], oneLine(ev.Error)))
		case recovery.EventStepFailed:
			fails = append(fails, fmt.Sprintf("- %s `%s` failed (attempt %d) and waited for a person: %s", clock(ev.Time), ev.StepID, ev.Attempt, oneLine(ev.Error)))
		case recovery.EventDecision:
			if on := ev.Fields["on"]; on == "failure" || on == "run" {
				fails = append(fails, fmt.Sprintf("- %s %s decided **%s** on `%s`%s", clock(ev.Time), person(ev.Actor), ev.Fields["decision"], orRun(ev.StepID), reasonSuffix(ev.Fields["reason"])))
			}
		}
	}
	if len(fails) == 0 {
		b.WriteString("None.\n")
	} else {
		b.WriteString(strings.Join(fails, "\n") + "\n")
	}

	b.WriteString("\n## Timeline (UTC)\n\n| Time | Event |\n|---|---|\n")
	events := append([]recovery.Event(nil), in.Events...)
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	for _, ev := range events {
		if ev.Kind == recovery.EventStepProgress {
			continue // progress lines live in the thread; the timeline keeps transitions
		}
		fmt.Fprintf(&b, "| %s | %s |\n", ev.Time.UTC().Format("15:04:05"), describe(ev))
	}

	b.WriteString("\n## Action items\n\n| Action | Owner | Due |\n|---|---|---|\n|  |  |  |\n|  |  |  |\n")
	return b.String()
}

func describe(ev recovery.Event) string {
	switch ev.Kind {
	case recovery.EventRunStarted:
		return "run started by " + person(ev.Actor)
	case recovery.EventRunResumed:
		return "drbot restarted and resumed the run"
	case recovery.EventRunBlocked:
		return "run blocked: " + ev.Message
	case recovery.EventRunSucceeded, recovery.EventRunFailed, recovery.EventRunAborted:
		return fmt.Sprintf("run %s after %s", strings.TrimPrefix(string(ev.Kind), "run."), ev.Fields["duration"])
	case recovery.EventStepStarted:
		return fmt.Sprintf("`%s` started (attempt %d)", ev.StepID, ev.Attempt)
	case recovery.EventStepSucceeded:
		return fmt.Sprintf("`%s` succeeded", ev.StepID)
	case recovery.EventStepRetrying:
		return fmt.Sprintf("`%s` attempt %d failed; retrying", ev.StepID, ev.Attempt)
	case recovery.EventStepFailed:
		return fmt.Sprintf("`%s` failed", ev.StepID)
	case recovery.EventStepSkipped:
		return fmt.Sprintf("`%s` skipped by %s", ev.StepID, person(ev.Actor))
	case recovery.EventStepCancelled:
		return fmt.Sprintf("`%s` cancelled", ev.StepID)
	case recovery.EventGateWaiting:
		return fmt.Sprintf("%s gate asked before `%s`", ev.Gate, ev.StepID)
	case recovery.EventDecision:
		return fmt.Sprintf("%s decided %s on `%s`", person(ev.Actor), ev.Fields["decision"], orRun(ev.StepID))
	default:
		return string(ev.Kind)
	}
}

func person(id string) string {
	if id == "" {
		return "drbot"
	}
	return "<@" + id + ">"
}

func orRun(step string) string {
	if step == "" {
		return "the run"
	}
	return step
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " — " + r
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	line, _, _ := strings.Cut(s, "\n")
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	return line
}

func utc(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

func clock(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format("15:04:05")
}
