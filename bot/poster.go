package bot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// SlackAPI is the part of slack-go the poster uses.
type SlackAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	AddPinContext(ctx context.Context, channel string, item slack.ItemRef) error
	GetConversationHistoryContext(ctx context.Context, params *slack.GetConversationHistoryParameters) (*slack.GetConversationHistoryResponse, error)
	GetConversationRepliesContext(ctx context.Context, params *slack.GetConversationRepliesParameters) ([]slack.Message, bool, string, error)
	UploadFileContext(ctx context.Context, params slack.UploadFileParameters) (*slack.FileSummary, error)
	GetConversationsContext(ctx context.Context, params *slack.GetConversationsParameters) ([]slack.Channel, string, error)
}

// metadataType marks drbot's messages; the payload carries the outbox key
// of the message, so a restarted poster can see what already arrived.
const metadataType = "drbot_outbox"

// Poster turns the engine's events into Slack messages. It is the
// dispatcher's Notifier: events arrive one at a time, in order but for
// urgent ones (recovery.Urgent) that overtake other steps' lines, and an
// event is marked delivered only after every message it implies is posted.
// Thread roots are made on demand (ensureRoots), so an event that
// overtook others still lands in its thread.
type Poster struct {
	api    SlackAPI
	store  *state.Store
	book   *recovery.Runbook
	budget time.Duration
	log    *slog.Logger
	clock  func() time.Time

	announce   string
	announceID string
	pacer      *pacer
	// suspect is set when a post may have landed without drbot recording
	// it (after a start, a 5xx or a network error): until an event is
	// delivered cleanly, each message is looked for before it is posted.
	// The dispatcher delivers urgent events out of order, so it also flags
	// the events that may have been posted (recovery.MayBeDelivered).
	suspect bool

	boardMu    sync.Mutex
	boardDirty map[string]bool
	boardWake  chan struct{}

	// openChannel creates the channel of a run started while Slack was
	// unreachable (see SetChannelOpener).
	openChannel func(ctx context.Context, run state.Run) (string, error)
}

// PosterOptions tune the poster.
type PosterOptions struct {
	Budget time.Duration // MTTR budget shown on the board
	// AnnounceChannel receives drill announcements (config slack.announce_channel).
	AnnounceChannel string
	// PostsPerSecond and Burst pace chat.postMessage per channel (Slack
	// allows about one per second per channel; defaults 1 and 4).
	PostsPerSecond float64
	Burst          int
	// BoardInterval is the least time between two updates of a board (default 2s).
	BoardInterval time.Duration
	Logger        *slog.Logger
	Clock         func() time.Time
}

// NewPoster makes a poster.
func NewPoster(api SlackAPI, store *state.Store, book *recovery.Runbook, opts PosterOptions) *Poster {
	if opts.PostsPerSecond <= 0 {
		opts.PostsPerSecond = 1
	}
	if opts.Burst <= 0 {
		opts.Burst = 4
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	return &Poster{
		api: api, store: store, book: book, budget: opts.Budget, log: opts.Logger, clock: opts.Clock, announce: opts.AnnounceChannel,
		pacer: newPacer(opts.PostsPerSecond, opts.Burst), suspect: true,
		boardDirty: map[string]bool{}, boardWake: make(chan struct{}, 1),
	}
}

// Notify implements recovery.Notifier.
func (p *Poster) Notify(ctx context.Context, ev recovery.Event) (string, error) {
	var run state.Run
	var refs map[string]string
	err := p.store.View(func(tx *state.Tx) error {
		var ok bool
		var err error
		if run, ok, err = tx.Run(ev.RunID); err != nil || !ok {
			return err
		}
		refs, err = tx.MessageRefs(ev.RunID)
		return err
	})
	if err != nil {
		return "", err
	}
	if ev.RunID == "" && ev.Kind == readiness.EventReport {
		return p.PostReadiness(ctx, ev)
	}
	if ev.RunID == "" && strings.HasPrefix(string(ev.Kind), "drill.") {
		return p.postDrill(ctx, ev)
	}
	ch, err := p.channelOf(ctx, run, refs)
	if err != nil {
		return "", p.mark(err)
	}
	if ch == "" {
		return "no-channel", nil // a run not started from Slack
	}
	run.Slack.ChannelID = ch
	if err := p.ensureRoots(ctx, run, refs); err != nil {
		return "", p.mark(err)
	}
	ts, err := p.post(ctx, ch, refs["log"], ev.Key+"#log", slack.MsgOptionText(LogLine(ev), false))
	if err != nil {
		return "", p.mark(err)
	}
	if err := p.eventMessages(ctx, run, refs, ev); err != nil {
		return "", p.mark(err)
	}
	p.suspect = false
	p.MarkBoardDirty(run.ID)
	return ts, nil
}

// Urgent is the outbox's urgency (recovery.Urgent) with the bot's own
// kinds: a rollback waiting for approval, a rollback that did not finish.
// Give it to the dispatcher (Dispatcher.Urgent).
func Urgent(ev recovery.Event) bool {
	return recovery.Urgent(ev) || ev.Kind == EventRollbackRequested || ev.Kind == EventRollbackFailed
}

// postDrill posts a drill schedule event in the announce channel.
func (p *Poster) postDrill(ctx context.Context, ev recovery.Event) (string, error) {
	ch, err := p.announceChannel(ctx)
	if err != nil {
		return "", err
	}
	blocks := DrillBlocks(ev)
	ts, err := p.post(ctx, ch, "", ev.Key, slack.MsgOptionText("Drill "+ev.Fields["drill"]+": "+strings.TrimPrefix(string(ev.Kind), "drill."), false), slack.MsgOptionBlocks(blocks...))
	if err != nil {
		return "", p.mark(err)
	}
	p.suspect = false
	return ts, nil
}

// announceChannel resolves slack.announce_channel ("#name" or an id) to
// the channel id the history look-ups need, once.
func (p *Poster) announceChannel(ctx context.Context) (string, error) {
	if p.announceID != "" {
		return p.announceID, nil
	}
	if p.announce == "" {
		return "", errNoAnnounceChannel
	}
	id, err := p.channelID(ctx, p.announce, "slack.announce_channel")
	if err != nil {
		return "", err
	}
	p.announceID = id
	return id, nil
}

// channelID resolves a configured channel ("#name" or an id, from the
// config key named by key) to its id, listing the channels drbot can see.
func (p *Poster) channelID(ctx context.Context, ref, key string) (string, error) {
	name, isName := strings.CutPrefix(ref, "#")
	if !isName {
		return ref, nil
	}
	cursor := ""
	for {
		var chans []slack.Channel
		var next string
		err := retrySlack(ctx, func() (err error) {
			chans, next, err = p.api.GetConversationsContext(ctx, &slack.GetConversationsParameters{Cursor: cursor, Limit: 200, Types: []string{"public_channel", "private_channel"}})
			return err
		})
		if err != nil {
			return "", fmt.Errorf("looking up %s %s: %w", key, ref, err)
		}
		for _, c := range chans {
			if c.Name == name {
				return c.ID, nil
			}
		}
		if next == "" {
			return "", fmt.Errorf("the channel %s does not exist or drbot cannot see it; invite drbot or fix %s", ref, key)
		}
		cursor = next
	}
}

// mark remembers that a failed event may have left posts behind.
func (p *Poster) mark(err error) error {
	p.suspect = true
	return err
}

func (p *Poster) eventMessages(ctx context.Context, run state.Run, refs map[string]string, ev recovery.Event) error {
	ch := run.Slack.ChannelID
	thread := refs["phase/"+string(ev.Phase)]
	switch ev.Kind {
	case recovery.EventStepStarted, recovery.EventStepProgress, recovery.EventStepRetrying, recovery.EventStepSucceeded,
		recovery.EventStepSkipped, recovery.EventStepCancelled, recovery.EventGateReopened:
		_, err := p.post(ctx, ch, thread, ev.Key+"#phase", slack.MsgOptionText(StepLine(ev), false))
		return err
	case recovery.EventStepFailed:
		name := fmt.Sprintf("failure/%s/%d", ev.StepID, ev.Round)
		return p.postRef(ctx, run.ID, ch, thread, name, ev.Key+"#phase", true,
			slack.MsgOptionText(StepLine(ev), false), slack.MsgOptionBlocks(FailureBlocks(ev, ev.Round, nil)...))
	case recovery.EventGateWaiting:
		name := fmt.Sprintf("gate/%s/%d", ev.StepID, ev.Round)
		text := fmt.Sprintf("Approval needed: %s gate before %s", ev.Gate, ev.StepID)
		return p.postRef(ctx, run.ID, ch, thread, name, ev.Key+"#phase", true,
			slack.MsgOptionText(text, false), slack.MsgOptionBlocks(GateBlocks(ev, ev.Round, nil)...))
	case recovery.EventDecision:
		return p.markDecided(ctx, run, refs, ev)
	case recovery.EventAttachment:
		return p.upload(ctx, ch, refs["log"], ev)
	case EventRollbackRequested:
		return p.postRef(ctx, run.ID, ch, thread, fmt.Sprintf("rollback/%d", ev.Round), ev.Key+"#phase", true,
			slack.MsgOptionText("Rollback requested", false), slack.MsgOptionBlocks(RollbackBlocks(ev, nil)...))
	case EventRollbackProgress, EventRollbackDone, EventRollbackFailed, EventRollbackRejected:
		if ev.Fields["on"] == "rollback" {
			if err := p.markRollbackDecided(ctx, run, refs, ev); err != nil {
				return err
			}
		}
		line := ":rewind: " + ev.Message
		if ev.Error != "" {
			line += " " + quote(ev.Error)
		}
		_, err := p.post(ctx, ch, thread, ev.Key+"#phase", slack.MsgOptionText(line, false))
		return err
	case recovery.EventRunStarted, recovery.EventRunResumed, recovery.EventRunBlocked, recovery.EventRunSucceeded,
		recovery.EventRunFailed, recovery.EventRunAborted:
		_, err := p.post(ctx, ch, "", ev.Key+"#run", slack.MsgOptionText(RunLine(ev), false))
		return err
	}
	return nil
}

// markRollbackDecided replaces a rollback request's buttons with who decided.
func (p *Poster) markRollbackDecided(ctx context.Context, run state.Run, refs map[string]string, ev recovery.Event) error {
	ts := refs[fmt.Sprintf("rollback/%d", ev.Round)]
	if ts == "" {
		return nil
	}
	var dec state.Decision
	var req recovery.Event
	_ = p.store.View(func(tx *state.Tx) error {
		dec, _, _ = tx.Decision(rollbackKey(run.ID, ev.Round))
		if e, ok, _ := tx.OutboxEntryByKey(fmt.Sprintf("%s/rollback/%d/requested", run.ID, ev.Round)); ok {
			_ = json.Unmarshal(e.Payload, &req)
		}
		return nil
	})
	return p.update(ctx, run.Slack.ChannelID, ts, slack.MsgOptionText(decidedLine(dec), false), slack.MsgOptionBlocks(RollbackBlocks(req, &dec)...))
}

// upload shares a document as a file in the post-mortem log thread. Files
// carry no metadata, so after a crash the thread is searched by file name.
func (p *Poster) upload(ctx context.Context, ch, thread string, ev recovery.Event) error {
	name := ev.Fields["filename"]
	if p.suspect || recovery.MayBeDelivered(ctx) {
		msgs, _, _, err := p.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: ch, Timestamp: thread, Limit: 1000})
		if err != nil {
			return fmt.Errorf("reading thread %s before uploading %s: %w", thread, name, err)
		}
		for _, m := range msgs {
			for _, f := range m.Files {
				if f.Name == name {
					return nil
				}
			}
		}
	}
	return slackFailure(retrySlack(ctx, func() error {
		_, err := p.api.UploadFileContext(ctx, slack.UploadFileParameters{
			Filename: name, Title: ev.Fields["title"], Content: ev.Message, FileSize: len(ev.Message),
			Channel: ch, ThreadTimestamp: thread, SnippetType: "markdown",
		})
		return err
	}))
}

// markDecided replaces a gate's or failed step's buttons with who decided.
func (p *Poster) markDecided(ctx context.Context, run state.Run, refs map[string]string, ev recovery.Event) error {
	on := ev.Fields["on"]
	ts := refs[fmt.Sprintf("%s/%s/%d", on, ev.StepID, ev.Round)]
	if ts == "" {
		return nil // an abort from /dr abort, or a decision on a message never posted
	}
	var dec state.Decision
	err := p.store.View(func(tx *state.Tx) error {
		key := recovery.GateKey(run.ID, ev.StepID, ev.Round)
		if on == "failure" {
			key = recovery.FailureKey(run.ID, ev.StepID, ev.Round)
		}
		var err error
		dec, _, err = tx.Decision(key)
		return err
	})
	if err != nil {
		return err
	}
	// The original event is rebuilt from the step for the same text.
	step, _ := p.book.ForMode(run.Mode).Step(ev.StepID)
	orig := recovery.Event{RunID: run.ID, StepID: ev.StepID, Title: step.Title, Gate: step.Gate, Attempt: ev.Attempt}
	var blocks []slack.Block
	if on == "gate" {
		blocks = GateBlocks(orig, ev.Round, &dec)
	} else {
		var rec state.StepRecord
		_ = p.store.View(func(tx *state.Tx) (err error) { rec, _, err = tx.Step(run.ID, ev.StepID); return })
		orig.Attempt = rec.Attempt
		orig.Error = failureError(rec)
		blocks = FailureBlocks(orig, ev.Round, &dec)
	}
	return p.update(ctx, run.Slack.ChannelID, ts, slack.MsgOptionText(decidedLine(dec), false), slack.MsgOptionBlocks(blocks...))
}

// failureError is the error of the failure a button was about: the step's
// last failed attempt.
func failureError(rec state.StepRecord) string {
	for i := len(rec.History) - 1; i >= 0; i-- {
		if rec.History[i].Outcome == "failed" {
			return rec.History[i].Error
		}
	}
	return rec.Error
}

// ensureRoots posts, once per run, the pinned board, the post-mortem log
// root and one root per phase, and records their ts.
func (p *Poster) ensureRoots(ctx context.Context, run state.Run, refs map[string]string) error {
	ch := run.Slack.ChannelID
	if refs["board"] == "" {
		blocks := Board(p.boardView(run))
		if err := p.postRef(ctx, run.ID, ch, "", "board", run.ID+"/board", false, slack.MsgOptionText("Status board", false), slack.MsgOptionBlocks(blocks...)); err != nil {
			return err
		}
		ts, _ := p.refs(run.ID)
		refs["board"] = ts["board"]
	}
	if refs["board-pinned"] == "" {
		err := retrySlack(ctx, func() error { return p.api.AddPinContext(ctx, ch, slack.NewRefToMessage(ch, refs["board"])) })
		if err != nil && !strings.Contains(err.Error(), "already_pinned") {
			return fmt.Errorf("pinning the board: %w", err)
		}
		if err := p.store.Update(func(tx *state.Tx) error { return tx.PutMessageRef(run.ID, "board-pinned", refs["board"]) }); err != nil {
			return err
		}
	}
	if refs["log"] == "" {
		if err := p.postRef(ctx, run.ID, ch, "", "log", run.ID+"/log", false, slack.MsgOptionText(LogRoot(run), false)); err != nil {
			return err
		}
	}
	book := p.book.ForMode(run.Mode)
	for _, phase := range recovery.Phases {
		name := "phase/" + string(phase)
		if refs[name] != "" {
			continue
		}
		var ids []string
		for _, s := range book.Steps() {
			if s.Phase == phase {
				ids = append(ids, s.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		if err := p.postRef(ctx, run.ID, ch, "", name, run.ID+"/"+name, false, slack.MsgOptionText(PhaseRoot(run, phase, ids), false)); err != nil {
			return err
		}
	}
	fresh, err := p.refs(run.ID)
	for k, v := range fresh {
		refs[k] = v
	}
	return err
}

func (p *Poster) refs(runID string) (map[string]string, error) {
	var refs map[string]string
	err := p.store.View(func(tx *state.Tx) (err error) { refs, err = tx.MessageRefs(runID); return })
	return refs, err
}

// postRef posts a message and records its ts under name.
func (p *Poster) postRef(ctx context.Context, runID, ch, thread, name, key string, broadcast bool, opts ...slack.MsgOption) error {
	if broadcast && thread != "" {
		opts = append(opts, slack.MsgOptionBroadcast())
	}
	ts, err := p.post(ctx, ch, thread, key, opts...)
	if err != nil {
		return err
	}
	return p.store.Update(func(tx *state.Tx) error { return tx.PutMessageRef(runID, name, ts) })
}

// post sends one message carrying its key in metadata, unless the key is
// already in the channel or thread (checked when a post may have been
// lost track of). 429s wait for Retry-After; 5xx and network errors are
// retried a few times, each retry checking first.
func (p *Poster) post(ctx context.Context, ch, thread, key string, opts ...slack.MsgOption) (string, error) {
	opts = append(opts, slack.MsgOptionMetadata(slack.SlackMetadata{EventType: metadataType, EventPayload: map[string]any{"key": key}}))
	if thread != "" {
		opts = append(opts, slack.MsgOptionTS(thread))
	}
	check := p.suspect || recovery.MayBeDelivered(ctx)
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		if check {
			ts, found, err := p.find(ctx, ch, thread, key)
			if err != nil {
				lastErr = err
				if wait, ok := retryWait(err, attempt); ok {
					if sleep(ctx, wait) != nil {
						return "", ctx.Err()
					}
					continue
				}
				return "", slackFailure(err)
			}
			if found {
				return ts, nil
			}
		}
		if err := p.pacer.wait(ctx, ch); err != nil {
			return "", err
		}
		_, ts, err := p.api.PostMessageContext(ctx, ch, opts...)
		if err == nil {
			return ts, nil
		}
		lastErr = err
		wait, ok := retryWait(err, attempt)
		if !ok {
			return "", slackFailure(fmt.Errorf("posting to %s: %w", ch, err))
		}
		var rl *slack.RateLimitedError
		check = check || !errors.As(err, &rl) // a 429 posted nothing; a 5xx may have
		p.log.Warn("slack post failed; retrying", "channel", ch, "err", err, "wait", wait)
		if sleep(ctx, wait) != nil {
			return "", ctx.Err()
		}
	}
	return "", fmt.Errorf("posting to %s: giving up for now: %w", ch, lastErr)
}

// find looks for a message carrying key in a thread or the channel.
func (p *Poster) find(ctx context.Context, ch, thread, key string) (string, bool, error) {
	match := func(msgs []slack.Message) (string, bool) {
		for _, m := range msgs {
			if m.Metadata.EventType == metadataType {
				if k, _ := m.Metadata.EventPayload["key"].(string); k == key {
					return m.Timestamp, true
				}
			}
		}
		return "", false
	}
	cursor := ""
	for {
		var msgs []slack.Message
		var next string
		if thread != "" {
			m, _, c, err := p.api.GetConversationRepliesContext(ctx, &slack.GetConversationRepliesParameters{ChannelID: ch, Timestamp: thread, Cursor: cursor, Limit: 200, IncludeAllMetadata: true})
			if err != nil {
				return "", false, fmt.Errorf("reading thread %s in %s: %w", thread, ch, err)
			}
			msgs, next = m, c
		} else {
			resp, err := p.api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: ch, Cursor: cursor, Limit: 200, IncludeAllMetadata: true})
			if err != nil {
				return "", false, fmt.Errorf("reading history of %s: %w", ch, err)
			}
			msgs, next = resp.Messages, resp.ResponseMetaData.NextCursor
		}
		if ts, ok := match(msgs); ok {
			return ts, true, nil
		}
		if next == "" {
			return "", false, nil
		}
		cursor = next
	}
}

func (p *Poster) update(ctx context.Context, ch, ts string, opts ...slack.MsgOption) error {
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		_, _, _, err := p.api.UpdateMessageContext(ctx, ch, ts, opts...)
		if err == nil {
			return nil
		}
		lastErr = err
		wait, ok := retryWait(err, attempt)
		if !ok {
			return slackFailure(fmt.Errorf("updating %s in %s: %w", ts, ch, err))
		}
		if sleep(ctx, wait) != nil {
			return ctx.Err()
		}
	}
	return fmt.Errorf("updating %s in %s: %w", ts, ch, lastErr)
}

// retryWait says whether and how long to wait before retrying a Slack
// call: Retry-After for 429s, backoff for 5xx and network errors.
func retryWait(err error, attempt int) (time.Duration, bool) {
	var rl *slack.RateLimitedError
	if errors.As(err, &rl) {
		return rl.RetryAfter, true
	}
	var sc slack.StatusCodeError
	if errors.As(err, &sc) && sc.Code >= 500 {
		return backoff(attempt), true
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) || strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF") {
		return backoff(attempt), true
	}
	return 0, false
}

// authErrors are Slack's answers about drbot's own credentials: every
// message would fail alike, so they are retried until someone fixes the
// token; any other refusal concerns one message and is final for it.
var authErrors = map[string]bool{"invalid_auth": true, "not_authed": true, "token_revoked": true, "token_expired": true, "account_inactive": true, "no_permission": true}

// slackFailure classifies an error Slack gave for good: per-message
// refusals are permanent (the outbox skips the entry, audited), the rest
// are left for the dispatcher to retry.
func slackFailure(err error) error {
	if err == nil {
		return nil
	}
	var resp slack.SlackErrorResponse
	if errors.As(err, &resp) {
		if authErrors[resp.Err] {
			return err
		}
		return recovery.Permanent(err)
	}
	if _, retry := retryWait(err, 0); retry {
		return err
	}
	return recovery.Permanent(err)
}

// retrySlack runs one idempotent Slack call, retrying 429s, 5xx and
// network errors a few times.
func retrySlack(ctx context.Context, call func() error) error {
	var err error
	for attempt := 0; attempt < 8; attempt++ {
		if err = call(); err == nil {
			return nil
		}
		wait, ok := retryWait(err, attempt)
		if !ok {
			return err
		}
		if sleep(ctx, wait) != nil {
			return ctx.Err()
		}
	}
	return err
}

func backoff(attempt int) time.Duration {
	return min(50*time.Millisecond<<attempt, 5*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MarkBoardDirty asks for the run's board to be redrawn soon.
func (p *Poster) MarkBoardDirty(runID string) {
	p.boardMu.Lock()
	p.boardDirty[runID] = true
	p.boardMu.Unlock()
	select {
	case p.boardWake <- struct{}{}:
	default:
	}
}

// RunBoards keeps boards current with chat.update, coalescing: however
// many events arrive, a board is redrawn at most once per interval, always
// from the latest state.
func (p *Poster) RunBoards(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-p.boardWake:
		}
		p.boardMu.Lock()
		dirty := p.boardDirty
		p.boardDirty = map[string]bool{}
		p.boardMu.Unlock()
		for runID := range dirty {
			if err := p.RefreshBoard(ctx, runID); err != nil {
				p.log.Warn("refreshing board", "run_id", runID, "err", err)
				p.MarkBoardDirty(runID)
			}
		}
		if sleep(ctx, interval) != nil {
			return ctx.Err()
		}
	}
}

// RefreshBoard redraws one run's board now.
func (p *Poster) RefreshBoard(ctx context.Context, runID string) error {
	var run state.Run
	var refs map[string]string
	err := p.store.View(func(tx *state.Tx) error {
		var err error
		if run, _, err = tx.Run(runID); err != nil {
			return err
		}
		refs, err = tx.MessageRefs(runID)
		return err
	})
	if err != nil || refs["board"] == "" {
		return err
	}
	if run.Slack.ChannelID == "" {
		run.Slack.ChannelID = refs[channelRef] // opened after the run started
	}
	return p.update(ctx, run.Slack.ChannelID, refs["board"], slack.MsgOptionText("Status board", false), slack.MsgOptionBlocks(Board(p.boardView(run))...))
}

// boardView builds the board's view model from the journal.
func (p *Poster) boardView(run state.Run) BoardView {
	v := BoardView{Run: run, Budget: p.budget, Now: p.clock()}
	var recs map[string]state.StepRecord
	_ = p.store.View(func(tx *state.Tx) (err error) { recs, err = tx.Steps(run.ID); return })
	for _, s := range p.book.ForMode(run.Mode).Steps() {
		rec := recs[s.ID]
		st := rec.Status
		if st == "" {
			st = state.StepPending
		}
		v.Steps = append(v.Steps, StepView{ID: s.ID, Title: s.Title, Phase: s.Phase, Gate: s.Gate, Status: st, Attempt: rec.Attempt,
			Started: stepStart(rec), Finished: rec.FinishedAt, Error: rec.Error})
		if s.ID == "endpoints.verify" {
			var verified, rows int
			if _, err := fmt.Sscan(rec.Outputs["verified"], &verified); err == nil {
				if _, err := fmt.Sscan(rec.Outputs["rows"], &rows); err == nil {
					v.Cutover = &Progress{Done: verified, Total: rows}
				}
			}
		}
		if s.ID == "deploy.watch" {
			var healthy, total int
			if _, err := fmt.Sscan(rec.Outputs["healthy"], &healthy); err == nil {
				if _, err := fmt.Sscan(rec.Outputs["total"], &total); err == nil {
					v.Deploy = &Progress{Done: healthy, Total: total}
				}
			}
		}
	}
	return v
}

// stepStart is when a step first started (across retries).
func stepStart(rec state.StepRecord) time.Time {
	start, _ := recovery.StepSpan(rec)
	return start
}

// pacer is a token bucket per channel.
type pacer struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens map[string]float64
	last   map[string]time.Time
}

func newPacer(rate float64, burst int) *pacer {
	return &pacer{rate: rate, burst: float64(burst), tokens: map[string]float64{}, last: map[string]time.Time{}}
}

func (p *pacer) wait(ctx context.Context, ch string) error {
	for {
		p.mu.Lock()
		now := time.Now()
		tok, seen := p.tokens[ch]
		if !seen {
			tok = p.burst
		} else {
			tok = min(p.burst, tok+now.Sub(p.last[ch]).Seconds()*p.rate)
		}
		p.last[ch] = now
		if tok >= 1 {
			p.tokens[ch] = tok - 1
			p.mu.Unlock()
			return nil
		}
		p.tokens[ch] = tok
		wait := time.Duration((1 - tok) / p.rate * float64(time.Second))
		p.mu.Unlock()
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}
