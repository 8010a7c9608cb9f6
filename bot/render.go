package bot

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Rendering is pure: a view model in, Block Kit out. Golden files in
// testdata/ pin the output.

// Slack's limits (https://docs.slack.dev/reference/block-kit/blocks).
const (
	maxBlocks     = 50
	maxTextLen    = 3000
	maxHeaderLen  = 150
	maxActionID   = 255
	maxButtonText = 75
)

// Action ids of drbot's buttons.
const (
	ActionApprove = "drbot.gate.approve"
	ActionReject  = "drbot.gate.reject"
	ActionRetry   = "drbot.step.retry"
	ActionSkip    = "drbot.step.skip"
	ActionAbort   = "drbot.run.abort"
	// CallbackReject is the reject-reason modal.
	CallbackReject = "drbot.gate.reject.reason"
	blockReason    = "reason"
	actionReason   = "reason_input"
)

// StepView is one step as the board shows it.
type StepView struct {
	ID       string
	Title    string
	Phase    recovery.Phase
	Gate     recovery.Gate
	Status   state.StepStatus
	Attempt  int
	Started  time.Time
	Finished time.Time
	Error    string
}

// Progress counts healthy applications in the deploy phase.
type Progress struct{ Done, Total int }

// BoardView is everything the pinned status board shows.
type BoardView struct {
	Run    state.Run
	Steps  []StepView
	Budget time.Duration
	Now    time.Time
	Deploy *Progress
	// Cutover counts the change set's rows verified so far.
	Cutover *Progress
}

// ButtonValue identifies what a button decides: run, step and the gate
// round or failure count it was posted for (so an old button is stale).
type ButtonValue struct {
	RunID  string
	StepID string
	Round  int
}

func (v ButtonValue) String() string { return v.RunID + "|" + v.StepID + "|" + strconv.Itoa(v.Round) }

// ParseButtonValue reads a ButtonValue back.
func ParseButtonValue(s string) (ButtonValue, error) {
	parts := strings.Split(s, "|")
	if len(parts) != 3 || parts[0] == "" {
		return ButtonValue{}, fmt.Errorf("malformed button value %q", clip(s))
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil {
		return ButtonValue{}, fmt.Errorf("malformed button round in %q", clip(s))
	}
	return ButtonValue{RunID: parts[0], StepID: parts[1], Round: n}, nil
}

func mrkdwn(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, truncate(text, maxTextLen), false, false)
}

func plain(text string, limit int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, truncate(text, limit), false, false)
}

func truncate(s string, limit int) string {
	r := []rune(s)
	if len(r) <= limit {
		return s
	}
	return string(r[:limit-1]) + "…"
}

func section(text string) slack.Block { return slack.NewSectionBlock(mrkdwn(text), nil, nil) }

func contextLine(text string) slack.Block {
	return slack.NewContextBlock("", mrkdwn(text))
}

var statusEmoji = map[state.StepStatus]string{
	state.StepPending: ":white_circle:", state.StepWaiting: ":raised_hand:", state.StepRunning: ":arrows_counterclockwise:",
	state.StepSucceeded: ":white_check_mark:", state.StepFailed: ":x:", state.StepSkipped: ":fast_forward:", state.StepCancelled: ":no_entry_sign:",
}

var runEmoji = map[state.RunStatus]string{
	state.RunPending: ":hourglass:", state.RunRunning: ":arrows_counterclockwise:", state.RunBlocked: ":rotating_light:",
	state.RunSucceeded: ":white_check_mark:", state.RunFailed: ":x:", state.RunAborted: ":no_entry_sign:",
}

func modeWord(m state.Mode) string {
	if m == state.ModeDrill {
		return "Drill"
	}
	return "DR recovery"
}

// phaseState folds a phase's steps into one state for the board.
func phaseState(steps []StepView) (state.StepStatus, time.Time, time.Time) {
	var start, end time.Time
	counts := map[state.StepStatus]int{}
	for _, s := range steps {
		counts[s.Status]++
		if !s.Started.IsZero() && (start.IsZero() || s.Started.Before(start)) {
			start = s.Started
		}
		if s.Finished.After(end) {
			end = s.Finished
		}
	}
	switch {
	case counts[state.StepFailed] > 0:
		return state.StepFailed, start, end
	case counts[state.StepWaiting] > 0:
		return state.StepWaiting, start, end
	case counts[state.StepRunning] > 0:
		return state.StepRunning, start, end
	case counts[state.StepSucceeded]+counts[state.StepSkipped] == len(steps):
		return state.StepSucceeded, start, end
	case counts[state.StepCancelled] > 0:
		return state.StepCancelled, start, end
	case start.IsZero():
		return state.StepPending, start, end
	default:
		return state.StepRunning, start, end
	}
}

// Board renders the pinned status board.
func Board(v BoardView) []slack.Block {
	run := v.Run
	blocks := []slack.Block{
		slack.NewHeaderBlock(plain(fmt.Sprintf("%s · %s", modeWord(run.Mode), run.Target), maxHeaderLen)),
	}
	end := v.Now
	if run.Status.Finished() {
		end = run.FinishedAt
	}
	elapsed := end.Sub(run.StartedAt).Round(time.Second)
	budget := ""
	if v.Budget > 0 {
		budget = fmt.Sprintf(" of the %s budget (%d%%)", recovery.ShortDuration(v.Budget), int(100*elapsed/v.Budget))
	}
	blocks = append(blocks, section(fmt.Sprintf("%s *%s* · run `%s`\nStarted by <@%s> · elapsed *%s*%s",
		runEmoji[run.Status], strings.ToUpper(string(run.Status)), run.ID, run.Initiator, recovery.ShortDuration(elapsed), budget)))
	if run.Reason != "" {
		blocks = append(blocks, contextLine("Reason: "+run.Reason))
	}
	blocks = append(blocks, slack.NewDividerBlock())
	byPhase := map[recovery.Phase][]StepView{}
	for _, s := range v.Steps {
		byPhase[s.Phase] = append(byPhase[s.Phase], s)
	}
	for i, p := range recovery.Phases {
		steps := byPhase[p]
		if len(steps) == 0 {
			continue
		}
		st, start, finish := phaseState(steps)
		dur := ""
		switch {
		case st == state.StepSucceeded && !start.IsZero():
			dur = " · " + recovery.ShortDuration(finish.Sub(start))
		case !start.IsZero():
			dur = " · " + recovery.ShortDuration(end.Sub(start)) + " so far"
		}
		done := 0
		var lines []string
		for _, s := range steps {
			if s.Status.Done() {
				done++
			}
			if s.Status != state.StepSucceeded && s.Status != state.StepPending {
				line := fmt.Sprintf("%s `%s`", statusEmoji[s.Status], s.ID)
				if s.Status == state.StepWaiting {
					line += fmt.Sprintf(" waiting for %s approval", s.Gate)
				}
				if s.Error != "" && s.Status == state.StepFailed {
					line += ": " + truncate(firstLine(s.Error), 200)
				}
				lines = append(lines, line)
			}
		}
		text := fmt.Sprintf("%s *%d. %s*%s · %d/%d steps", statusEmoji[st], i+1, titleCase(string(p)), dur, done, len(steps))
		if p == recovery.PhaseDeploy && v.Deploy != nil && v.Deploy.Total > 0 {
			text += "\n" + progressBar(v.Deploy.Done, v.Deploy.Total, "applications healthy")
		}
		if p == recovery.PhaseCutover && v.Cutover != nil && v.Cutover.Total > 0 {
			text += "\n" + progressBar(v.Cutover.Done, v.Cutover.Total, "rows verified")
		}
		if len(lines) > 0 {
			text += "\n" + strings.Join(lines, "\n")
		}
		blocks = append(blocks, section(text))
	}
	blocks = append(blocks, contextLine(fmt.Sprintf("Updated %s · progress is threaded under each phase; every event is in the post-mortem log thread", v.Now.UTC().Format("15:04:05 UTC"))))
	return capBlocks(blocks)
}

func progressBar(done, total int, what string) string {
	const width = 20
	filled := min(done, total) * width / total
	return fmt.Sprintf("`%s%s` %d/%d %s", strings.Repeat("▓", filled), strings.Repeat("░", width-filled), done, total, what)
}

// PhaseRoot is the message whose thread carries a phase's steps.
func PhaseRoot(run state.Run, phase recovery.Phase, steps []string) string {
	idx := 0
	for i, p := range recovery.Phases {
		if p == phase {
			idx = i + 1
		}
	}
	return fmt.Sprintf("*Phase %d · %s* — %s\nStep progress, logs and results are in this thread.", idx, titleCase(string(phase)), codeList(steps))
}

// LogRoot is the message whose thread receives every event of the run.
func LogRoot(run state.Run) string {
	return fmt.Sprintf("*Post-mortem log* of run `%s` — every event in order: who did what, when, every error and retry.", run.ID)
}

// StepLine renders an engine event as a reply in its phase thread.
func StepLine(ev recovery.Event) string {
	attempt := ""
	if ev.Attempt > 1 {
		attempt = fmt.Sprintf(" (attempt %d)", ev.Attempt)
	}
	switch ev.Kind {
	case recovery.EventStepStarted:
		return fmt.Sprintf(":arrow_forward: `%s` started%s — %s", ev.StepID, attempt, ev.Title)
	case recovery.EventStepProgress:
		return fmt.Sprintf(":small_blue_diamond: `%s` %s", ev.StepID, ev.Message)
	case recovery.EventStepRetrying:
		return fmt.Sprintf(":warning: `%s` failed%s, retrying in %s: %s", ev.StepID, attempt, ev.Fields["backoff"], quote(ev.Error))
	case recovery.EventStepSucceeded:
		return fmt.Sprintf(":white_check_mark: `%s` succeeded%s", ev.StepID, attempt)
	case recovery.EventStepSkipped:
		return fmt.Sprintf(":fast_forward: `%s` skipped by <@%s>", ev.StepID, ev.Actor)
	case recovery.EventStepCancelled:
		return fmt.Sprintf(":no_entry_sign: `%s` cancelled by the abort", ev.StepID)
	case recovery.EventStepFailed:
		return fmt.Sprintf(":x: `%s` failed%s: %s", ev.StepID, attempt, quote(ev.Error))
	case recovery.EventGateReopened:
		return fmt.Sprintf(":leftwards_arrow_with_hook: `%s` needs a new approval: %s", ev.StepID, quote(ev.Error))
	default:
		return fmt.Sprintf("`%s` %s %s", ev.StepID, ev.Kind, ev.Message)
	}
}

// LogLine renders any event as one line of the post-mortem log thread.
func LogLine(ev recovery.Event) string {
	parts := []string{ev.Time.UTC().Format("15:04:05Z"), "`" + string(ev.Kind) + "`"}
	if ev.StepID != "" {
		parts = append(parts, ev.StepID)
	}
	if ev.Attempt > 0 {
		parts = append(parts, fmt.Sprintf("attempt %d", ev.Attempt))
	}
	if ev.Actor != "" {
		parts = append(parts, fmt.Sprintf("by <@%s>", ev.Actor))
	}
	if ev.Message != "" {
		parts = append(parts, ev.Message)
	}
	if ev.Fields["reason"] != "" {
		parts = append(parts, "reason: "+ev.Fields["reason"])
	}
	if ev.Fields["backoff"] != "" {
		parts = append(parts, "backoff "+ev.Fields["backoff"])
	}
	line := strings.Join(parts, " · ")
	if ev.Error != "" {
		line += "\n" + quote(ev.Error)
	}
	return truncate(line, maxTextLen)
}

// RunLine announces a run-level event in the channel.
func RunLine(ev recovery.Event) string {
	switch ev.Kind {
	case recovery.EventRunStarted:
		return fmt.Sprintf(":rotating_light: %s of *%s* started by <@%s>. The status board is pinned.", modeWord(ev.Mode), ev.Target, ev.Actor)
	case recovery.EventRunResumed:
		return ":recycle: drbot restarted and resumed this run where it stopped."
	case recovery.EventRunBlocked:
		return ":rotating_light: The run is blocked: " + ev.Message + ". Use the buttons on the failed step."
	case recovery.EventRunSucceeded:
		return fmt.Sprintf(":white_check_mark: %s of *%s* finished in %s.", modeWord(ev.Mode), ev.Target, ev.Fields["duration"])
	case recovery.EventRunAborted:
		return fmt.Sprintf(":no_entry_sign: The run was %s after %s.", ev.Message, ev.Fields["duration"])
	default:
		return fmt.Sprintf("The run %s: %s", strings.TrimPrefix(string(ev.Kind), "run."), ev.Message)
	}
}

// GateBlocks asks for a decision at a gate, with the context the approver
// needs; once decided it says who decided and the buttons are gone.
func GateBlocks(ev recovery.Event, round int, decided *state.Decision) []slack.Block {
	var ctx []string
	for _, k := range sortedFieldKeys(ev.Fields) {
		v := strings.TrimSpace(ev.Fields[k])
		if strings.HasPrefix(v, "{") || strings.HasPrefix(v, "[") {
			continue // machine records (a rollback record, per-app health) are for drbot, not the approver
		}
		if strings.Contains(v, "\n") {
			v = "\n```" + truncate(v, 1500) + "```"
		}
		ctx = append(ctx, fmt.Sprintf("• %s: %s", k, v))
	}
	text := fmt.Sprintf(":raised_hand: *Approval needed — %s gate* before `%s` (%s).", ev.Gate, ev.StepID, ev.Title)
	if ev.Gate == recovery.GateCutover {
		text += "\nThe initiator may not approve the cutover (two-person rule)."
	}
	blocks := []slack.Block{section(text)}
	if len(ctx) > 0 {
		blocks = append(blocks, section(strings.Join(ctx, "\n")))
	}
	if decided != nil {
		return append(blocks, contextLine(decidedLine(*decided)))
	}
	value := ButtonValue{RunID: ev.RunID, StepID: ev.StepID, Round: round}.String()
	approve := slack.NewButtonBlockElement(ActionApprove, value, plain("Approve", maxButtonText))
	approve.Style = slack.StylePrimary
	reject := slack.NewButtonBlockElement(ActionReject, value, plain("Reject…", maxButtonText))
	reject.Style = slack.StyleDanger
	return append(blocks, slack.NewActionBlock("drbot.gate", approve, reject))
}

// FailureBlocks reports a failed step with Retry / Skip / Abort.
func FailureBlocks(ev recovery.Event, failures int, decided *state.Decision) []slack.Block {
	if recovery.FailedAfterAbort(ev) {
		// The run is aborted: its engine refuses every decision, so no buttons.
		return []slack.Block{section(fmt.Sprintf(":x: *`%s` failed* (attempt %d) while cleaning up after the abort: %s",
			ev.StepID, ev.Attempt, quote(ev.Error)))}
	}
	blocks := []slack.Block{section(fmt.Sprintf(":x: *`%s` failed* (attempt %d): %s\nRetry runs it again, Skip marks it done so dependent steps go on (do it by hand first), Abort stops the run.",
		ev.StepID, ev.Attempt, quote(ev.Error)))}
	if decided != nil {
		return append(blocks, contextLine(decidedLine(*decided)))
	}
	value := ButtonValue{RunID: ev.RunID, StepID: ev.StepID, Round: failures}.String()
	retry := slack.NewButtonBlockElement(ActionRetry, value, plain("Retry", maxButtonText))
	retry.Style = slack.StylePrimary
	skip := slack.NewButtonBlockElement(ActionSkip, value, plain("Skip", maxButtonText))
	abort := slack.NewButtonBlockElement(ActionAbort, value, plain("Abort run", maxButtonText))
	abort.Style = slack.StyleDanger
	return append(blocks, slack.NewActionBlock("drbot.failure", retry, skip, abort))
}

var decidedWords = map[string]string{"approve": "Approved", "reject": "Rejected", "retry": "Retried", "skip": "Skipped", "abort": "Aborted"}

func decidedLine(d state.Decision) string {
	via, reason := splitVia(d.Reason)
	line := fmt.Sprintf("%s by <@%s>%s at %s", decidedWords[d.Kind], d.By, viaSuffix(via), d.DecidedAt.UTC().Format("15:04 UTC"))
	if reason != "" {
		line += " — " + reason
	}
	return line
}

// RejectModal asks for the reason of a rejection.
func RejectModal(v ButtonValue) slack.ModalViewRequest {
	input := slack.NewPlainTextInputBlockElement(plain("Why not? It goes to the audit log and the post-mortem.", 150), actionReason)
	input.Multiline = true
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		CallbackID:      CallbackReject,
		PrivateMetadata: v.String(),
		Title:           plain("Reject", 24),
		Submit:          plain("Reject", 24),
		Close:           plain("Cancel", 24),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			section(fmt.Sprintf("Reject the gate before `%s`?", v.StepID)),
			slack.NewInputBlock(blockReason, plain("Reason", 150), nil, input),
		}},
	}
}

// capBlocks keeps a message within Slack's block limit.
func capBlocks(blocks []slack.Block) []slack.Block {
	if len(blocks) <= maxBlocks {
		return blocks
	}
	return append(blocks[:maxBlocks-1], contextLine(fmt.Sprintf("… %d more not shown", len(blocks)-maxBlocks+1)))
}

func quote(s string) string {
	if s == "" {
		return ""
	}
	return "```" + truncate(strings.ReplaceAll(s, "```", "'''"), 1500) + "```"
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func codeList(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = "`" + id + "`"
	}
	return strings.Join(out, ", ")
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func sortedFieldKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
