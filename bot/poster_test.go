package bot

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// A Slack refusal of one message (an archived channel) is skipped by the
// outbox; a refusal of drbot's credentials holds the queue until fixed.
func TestOutboxSkipsMessagesSlackRefusesButWaitsOutCredentialProblems(t *testing.T) {
	for _, c := range []struct {
		code string
		skip bool
	}{{"is_archived", true}, {"channel_not_found", true}, {"missing_scope", true}, {"token_revoked", false}, {"invalid_auth", false}} {
		t.Run(c.code, func(t *testing.T) {
			store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			_ = store.Update(func(tx *state.Tx) error {
				return recovery.Enqueue(tx, recovery.Event{Key: "one", Kind: recovery.EventStepStarted, RunID: "r"})
			})
			d := recovery.NewDispatcher(store, recovery.NotifierFunc(func(context.Context, recovery.Event) (string, error) {
				return "", slackFailure(fmt.Errorf("posting to C1: %w", slack.SlackErrorResponse{Err: c.code}))
			}), slog.New(slog.NewTextHandler(io.Discard, nil)))
			_, _ = d.DrainOnce(context.Background())
			var pending []state.OutboxEntry
			_ = store.View(func(tx *state.Tx) (err error) { pending, err = tx.Outbox(true, 0); return })
			if skipped := len(pending) == 0; skipped != c.skip {
				t.Errorf("%s: skipped=%v, want %v", c.code, skipped, c.skip)
			}
		})
	}
}
