package bot

import (
	"context"

	"github.com/slack-go/slack"
)

// check is being built (placeholder so the command table compiles).
func (b *Bot) check(ctx context.Context, sc slack.SlashCommand, cmd Command) {
	b.reply(ctx, sc.ResponseURL, ":construction: /dr check is not built yet")
}
