package slackfake_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/drbot/drbot/test/slackfake"
)

type env struct {
	srv *slackfake.Server
	api *slack.Client
	sm  *socketmode.Client
	ctx context.Context
}

// start runs the fake with one admin user "U1" (alice), a plain user "U2"
// (bob) and the command channel "C1" (#ops), and a real socketmode client.
func start(t *testing.T) *env {
	t.Helper()
	srv := slackfake.New(t, slackfake.Options{})
	srv.AddUser("U1", "alice", true)
	srv.AddUser("U2", "bob", false)
	srv.AddChannel("C1", "ops")
	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(srv.AppToken()))
	sm := socketmode.New(api)
	ctx := t.Context()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sm.RunContext(ctx)
	}()
	// Runs before the fake's own cleanup: the client is gone before the server stops.
	t.Cleanup(func() { <-done })
	return &env{srv: srv, api: api, sm: sm, ctx: ctx}
}

// next returns the next client event of type typ, skipping connection chatter.
func (e *env) next(t *testing.T, typ socketmode.EventType) socketmode.Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case evt := <-e.sm.Events:
			if evt.Type == typ {
				return evt
			}
			switch evt.Type {
			case socketmode.EventTypeConnecting, socketmode.EventTypeConnected, socketmode.EventTypeHello:
			case socketmode.EventTypeDisconnect, socketmode.EventTypeIncomingError:
				// slack-go reports the old connection's read ending around a reconnect.
				t.Logf("skipping %q event: %v", evt.Type, evt.Data)
			default:
				t.Fatalf("got event %q (%+v) while waiting for %q", evt.Type, evt.Data, typ)
			}
		case <-timeout:
			t.Fatalf("no %q event within 10s", typ)
		}
	}
}

func buttonBlocks(actionID, value string) slack.MsgOption {
	btn := slack.NewButtonBlockElement(actionID, value, slack.NewTextBlockObject(slack.PlainTextType, "Approve", false, false))
	btn.Style = slack.StylePrimary
	return slack.MsgOptionBlocks(
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*Gate*: promote DR?", false, false), nil, nil),
		slack.NewActionBlock("gate", btn),
	)
}

func TestSlashCommandArrivesAsSlashCommandEventAndItsAckIsTimed(t *testing.T) {
	e := start(t)
	id, err := e.srv.SlashCommand(e.ctx, "U1", "C1", "/dr", "status prod")
	if err != nil {
		t.Fatal(err)
	}
	evt := e.next(t, socketmode.EventTypeSlashCommand)
	cmd, ok := evt.Data.(slack.SlashCommand)
	if !ok {
		t.Fatalf("Data is %T, want slack.SlashCommand", evt.Data)
	}
	if evt.Request.EnvelopeID != id || !evt.Request.AcceptsResponsePayload || evt.Request.RetryAttempt != 0 {
		t.Errorf("request = %+v, want envelope %q accepting a response payload, first attempt", evt.Request, id)
	}
	if cmd.Command != "/dr" || cmd.Text != "status prod" || cmd.UserID != "U1" || cmd.UserName != "alice" ||
		cmd.ChannelID != "C1" || cmd.ChannelName != "ops" || cmd.TeamID != slackfake.TeamID || cmd.APIAppID != slackfake.AppID {
		t.Errorf("slash command = %+v", cmd)
	}
	if !strings.HasPrefix(cmd.ResponseURL, "http://127.0.0.1") || cmd.TriggerID == "" {
		t.Errorf("response_url %q / trigger_id %q not filled like Slack", cmd.ResponseURL, cmd.TriggerID)
	}

	if err := e.sm.Ack(*evt.Request, map[string]any{"text": "working on it"}); err != nil {
		t.Fatal(err)
	}
	ack, err := e.srv.WaitAck(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Latency <= 0 || ack.Latency > 3*time.Second || !strings.Contains(string(ack.Payload), "working on it") {
		t.Errorf("ack = %+v, want a positive latency under 3s and the payload", ack)
	}
	// The ack payload is what Slack shows the user who typed the command.
	if eph := e.srv.Ephemerals("U1"); len(eph) != 1 || eph[0].Text != "working on it" || eph[0].Channel != "C1" {
		t.Errorf("ephemerals of U1 = %+v, want the ack text", eph)
	}
	if got := e.srv.Acks(); len(got) != 1 || got[0].EnvelopeID != id || got[0].Type != "slash_commands" {
		t.Errorf("Acks() = %+v", got)
	}
}

func TestRedeliveryKeepsEnvelopeIDAndPayloadAndSetsRetryAttempt(t *testing.T) {
	e := start(t)
	id, err := e.srv.SlashCommand(e.ctx, "U1", "C1", "/dr", "failover")
	if err != nil {
		t.Fatal(err)
	}
	first := e.next(t, socketmode.EventTypeSlashCommand)
	// The test plays a slow bot: Slack redelivers before the first ack.
	again, err := e.srv.SlashCommand(e.ctx, "", "", "", "", slackfake.Redelivery(id, 1, "timeout"))
	if err != nil {
		t.Fatal(err)
	}
	if again != id {
		t.Fatalf("redelivery envelope id = %q, want %q", again, id)
	}
	second := e.next(t, socketmode.EventTypeSlashCommand)
	if second.Request.EnvelopeID != id || second.Request.RetryAttempt != 1 || second.Request.RetryReason != "timeout" {
		t.Errorf("redelivered request = %+v", second.Request)
	}
	if a, b := first.Data.(slack.SlashCommand), second.Data.(slack.SlashCommand); a != b {
		t.Errorf("redelivered payload differs:\n%+v\n%+v", a, b)
	}
	for _, ev := range []socketmode.Event{first, second} {
		if err := e.sm.Ack(*ev.Request); err != nil {
			t.Fatal(err)
		}
	}
	ack, err := e.srv.WaitAck(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if ack.RetryAttempt != 1 {
		t.Errorf("WaitAck returned the ack of attempt %d, want the redelivery's", ack.RetryAttempt)
	}
	if n := len(e.srv.Acks()); n != 2 {
		t.Errorf("%d acks recorded, want 2", n)
	}
}

func TestClickArrivesAsBlockActionsCallbackAndResponseURLReplacesTheMessage(t *testing.T) {
	e := start(t)
	_, ts, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("gate", false), buttonBlocks("approve", "run-42"))
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.srv.Click(e.ctx, "U2", "C1", ts, "approve", "")
	if err != nil {
		t.Fatal(err)
	}
	evt := e.next(t, socketmode.EventTypeInteractive)
	cb, ok := evt.Data.(slack.InteractionCallback)
	if !ok {
		t.Fatalf("Data is %T, want slack.InteractionCallback", evt.Data)
	}
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) != 1 {
		t.Fatalf("callback type %q with %d block actions", cb.Type, len(cb.ActionCallback.BlockActions))
	}
	act := cb.ActionCallback.BlockActions[0]
	if act.ActionID != "approve" || act.Value != "run-42" || act.BlockID != "gate" || act.ActionTs == "" {
		t.Errorf("action = %+v", act)
	}
	if cb.Container.MessageTs != ts || cb.Container.ChannelID != "C1" || cb.User.ID != "U2" || cb.User.Name != "bob" ||
		cb.Channel.ID != "C1" || cb.Message.Timestamp != ts || cb.TriggerID == "" || cb.ResponseURL == "" {
		t.Errorf("callback = container %+v user %+v channel %q message ts %q trigger %q response_url %q",
			cb.Container, cb.User, cb.Channel.ID, cb.Message.Timestamp, cb.TriggerID, cb.ResponseURL)
	}
	if len(cb.Message.Blocks.BlockSet) != 2 {
		t.Errorf("clicked message carries %d blocks, want 2", len(cb.Message.Blocks.BlockSet))
	}
	if err := e.sm.Ack(*evt.Request); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.WaitAck(e.ctx, id); err != nil {
		t.Fatal(err)
	}

	if _, _, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("approved by bob", false),
		slack.MsgOptionReplaceOriginal(cb.ResponseURL)); err != nil {
		t.Fatal(err)
	}
	msgs := e.srv.Messages("C1")
	if len(msgs) != 1 || msgs[0].Text != "approved by bob" || msgs[0].Blocks != nil || msgs[0].Edits != 1 {
		t.Errorf("after replace_original: %+v", msgs)
	}
	posts := e.srv.ResponseURLPosts()
	if len(posts) != 1 || !posts[0].ReplaceOriginal || posts[0].MessageTS != ts || posts[0].Kind != "action" {
		t.Errorf("response_url posts = %+v", posts)
	}
}

func TestClickOnAMissingButtonFailsLoudly(t *testing.T) {
	e := start(t)
	_, ts, err := e.api.PostMessageContext(e.ctx, "C1", buttonBlocks("approve", "run-42"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Click(e.ctx, "U1", "C1", ts, "reject", ""); err == nil || !strings.Contains(err.Error(), "reject") {
		t.Errorf("click on a missing action_id: err = %v", err)
	}
	if _, err := e.srv.Click(e.ctx, "U1", "C1", ts, "approve", "run-7"); err == nil {
		t.Error("click with a value the button does not carry succeeded")
	}
}

func TestPostMessageMetadataComesBackFromHistoryWithIncludeAllMetadata(t *testing.T) {
	e := start(t)
	md := slack.SlackMetadata{EventType: "drbot_run", EventPayload: map[string]any{"run_id": "r-1", "step": "eks"}}
	_, ts, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("run r-1", false), slack.MsgOptionMetadata(md),
		slack.MsgOptionDisableLinkUnfurl())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ts, "1") || !strings.Contains(ts, ".") {
		t.Errorf("ts %q is not Slack-shaped", ts)
	}
	h, err := e.api.GetConversationHistoryContext(e.ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", IncludeAllMetadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 1 || h.Messages[0].Metadata.EventType != "drbot_run" || h.Messages[0].Metadata.EventPayload["run_id"] != "r-1" {
		t.Fatalf("history = %+v", h.Messages)
	}
	plain, err := e.api.GetConversationHistoryContext(e.ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if plain.Messages[0].Metadata.EventType != "" {
		t.Errorf("metadata returned without include_all_metadata: %+v", plain.Messages[0].Metadata)
	}
	got := e.srv.Messages("C1")
	if len(got) != 1 || got[0].Metadata == nil || got[0].Metadata.EventPayload["step"] != "eks" ||
		got[0].UnfurlLinks == nil || *got[0].UnfurlLinks {
		t.Errorf("stored message = %+v", got)
	}
	// A malformed metadata string is refused like Slack does.
	_, _, err = e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("x", false),
		slack.UnsafeMsgOptionEndpoint(e.srv.APIURL()+"chat.postMessage", func(v url.Values) { v.Set("metadata", "{not json") }))
	if err == nil || err.Error() != "invalid_metadata_format" {
		t.Errorf("bad metadata: err = %v, want invalid_metadata_format", err)
	}
}

func TestHistoryPagesNewestFirstWithCursor(t *testing.T) {
	e := start(t)
	var tss []string
	for i := range 5 {
		_, ts, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText(strings.Repeat("m", i+1), false))
		if err != nil {
			t.Fatal(err)
		}
		if len(tss) > 0 && ts <= tss[len(tss)-1] {
			t.Errorf("ts %q not after %q", ts, tss[len(tss)-1])
		}
		tss = append(tss, ts)
	}
	var seen []string
	cursor := ""
	for range 5 {
		h, err := e.api.GetConversationHistoryContext(e.ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range h.Messages {
			seen = append(seen, m.Timestamp)
		}
		cursor = h.ResponseMetaData.NextCursor
		if h.HasMore != (cursor != "") {
			t.Errorf("has_more %v with cursor %q", h.HasMore, cursor)
		}
		if cursor == "" {
			break
		}
	}
	want := []string{tss[4], tss[3], tss[2], tss[1], tss[0]}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Errorf("pages gave %v, want %v", seen, want)
	}
	h, err := e.api.GetConversationHistoryContext(e.ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1", Oldest: tss[2]})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 2 {
		t.Errorf("oldest=%s (exclusive) gave %d messages, want 2", tss[2], len(h.Messages))
	}
}

func TestThreadRepliesAreListedUnderTheirParent(t *testing.T) {
	e := start(t)
	_, parent, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("run r-1 started", false))
	if err != nil {
		t.Fatal(err)
	}
	for _, text := range []string{"step 1 done", "step 2 done"} {
		if _, _, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText(text, false), slack.MsgOptionTS(parent)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, hasMore, _, err := e.api.GetConversationRepliesContext(e.ctx, &slack.GetConversationRepliesParameters{ChannelID: "C1", Timestamp: parent})
	if err != nil {
		t.Fatal(err)
	}
	if hasMore || len(msgs) != 3 || msgs[0].Timestamp != parent || msgs[1].Text != "step 1 done" ||
		msgs[2].ThreadTimestamp != parent || msgs[0].ReplyCount != 2 {
		t.Errorf("replies = %+v", msgs)
	}
	h, err := e.api.GetConversationHistoryContext(e.ctx, &slack.GetConversationHistoryParameters{ChannelID: "C1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 1 || h.Messages[0].LatestReply != msgs[2].Timestamp {
		t.Errorf("history shows %d top-level messages (latest_reply %q), want only the parent", len(h.Messages), h.Messages[0].LatestReply)
	}
	if r := e.srv.Replies("C1", parent); len(r) != 2 || r[1].Text != "step 2 done" {
		t.Errorf("Replies = %+v", r)
	}
	if m := e.srv.Messages("C1"); len(m) != 1 || len(m[0].Replies) != 2 {
		t.Errorf("Messages = %+v", m)
	}
}

func TestChatUpdateReplacesBlocksAndCountsEdits(t *testing.T) {
	e := start(t)
	_, ts, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("gate", false), buttonBlocks("approve", "v"))
	if err != nil {
		t.Fatal(err)
	}
	done := slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, ":white_check_mark: approved", false, false), nil, nil)
	if _, _, _, err := e.api.UpdateMessageContext(e.ctx, "C1", ts, slack.MsgOptionBlocks(done)); err != nil {
		t.Fatal(err)
	}
	m := e.srv.Messages("C1")[0]
	if m.Edits != 1 || m.Text != "gate" || !strings.Contains(string(m.Blocks), "approved") || strings.Contains(string(m.Blocks), "button") {
		t.Errorf("after update: edits %d text %q blocks %s", m.Edits, m.Text, m.Blocks)
	}
	if _, _, _, err := e.api.UpdateMessageContext(e.ctx, "C1", "1.000001", slack.MsgOptionText("x", false)); err == nil || err.Error() != "message_not_found" {
		t.Errorf("update of a missing message: err = %v", err)
	}
}

func TestBlockKitLimitsAreEnforced(t *testing.T) {
	e := start(t)
	long := slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, strings.Repeat("x", 151), false, false))
	_, _, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionBlocks(long))
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "invalid_blocks" || len(se.ResponseMetadata.Messages) == 0 {
		t.Fatalf("header of 151 chars: err = %#v", err)
	}
	if !strings.Contains(se.ResponseMetadata.Messages[0], "/blocks/0/text/text") {
		t.Errorf("message %q does not point at the text", se.ResponseMetadata.Messages[0])
	}
	if len(e.srv.Messages("C1")) != 0 {
		t.Error("a rejected message was stored")
	}
}

func TestConversationsCreateEnforcesSlackNameRules(t *testing.T) {
	e := start(t)
	for name, want := range map[string]string{
		"Incident 42":           "invalid_name_specials",
		strings.Repeat("a", 81): "invalid_name_maxlength",
		"":                      "invalid_name_required",
		"ops":                   "name_taken",
	} {
		if _, err := e.api.CreateConversationContext(e.ctx, slack.CreateConversationParams{ChannelName: name}); err == nil || err.Error() != want {
			t.Errorf("create %q: err = %v, want %s", name, err, want)
		}
	}
	ch, err := e.api.CreateConversationContext(e.ctx, slack.CreateConversationParams{ChannelName: "dr-2025_11-prod", IsPrivate: true})
	if err != nil {
		t.Fatal(err)
	}
	if ch.Name != "dr-2025_11-prod" || !ch.IsPrivate || !ch.IsMember || !strings.HasPrefix(ch.ID, "C") {
		t.Errorf("created channel = %+v", ch)
	}
	if _, err := e.api.CreateConversationContext(e.ctx, slack.CreateConversationParams{ChannelName: "dr-2025_11-prod"}); err == nil || err.Error() != "name_taken" {
		t.Errorf("second create: err = %v, want name_taken", err)
	}
	// Look the channel up by name through paginated conversations.list.
	var found string
	cursor := ""
	for page := 0; page < 5 && found == ""; page++ {
		chans, next, err := e.api.GetConversationsContext(e.ctx, &slack.GetConversationsParameters{
			Types: []string{"public_channel", "private_channel"}, Limit: 1, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chans {
			if c.Name == "dr-2025_11-prod" {
				found = c.ID
			}
		}
		if cursor = next; cursor == "" {
			break
		}
	}
	if found != ch.ID {
		t.Errorf("conversations.list lookup found %q, want %q", found, ch.ID)
	}
	got, ok := e.srv.Channel("dr-2025_11-prod")
	if !ok || got.ID != ch.ID || !got.IsPrivate || len(got.Members) != 1 || got.Members[0] != slackfake.BotUserID {
		t.Errorf("Channel() = %+v, %v", got, ok)
	}
}

func TestInviteTopicPurposeAndPins(t *testing.T) {
	e := start(t)
	ch, err := e.api.CreateConversationContext(e.ctx, slack.CreateConversationParams{ChannelName: "dr-run"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.InviteUsersToConversationContext(e.ctx, ch.ID, "U1", "U9"); err == nil || err.Error() != "user_not_found" {
		t.Errorf("invite of an unknown user: err = %v", err)
	}
	if _, err := e.api.InviteUsersToConversationContext(e.ctx, ch.ID, "U1", "U2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.InviteUsersToConversationContext(e.ctx, ch.ID, "U1"); err == nil || err.Error() != "already_in_channel" {
		t.Errorf("re-invite: err = %v, want already_in_channel", err)
	}
	if _, err := e.api.SetTopicOfConversationContext(e.ctx, ch.ID, "DR of prod"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.SetPurposeOfConversationContext(e.ctx, ch.ID, "run r-1"); err != nil {
		t.Fatal(err)
	}
	_, ts, err := e.api.PostMessageContext(e.ctx, ch.ID, slack.MsgOptionText("plan", false))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.api.AddPinContext(e.ctx, ch.ID, slack.ItemRef{Timestamp: ts}); err != nil {
		t.Fatal(err)
	}
	if err := e.api.AddPinContext(e.ctx, ch.ID, slack.ItemRef{Timestamp: ts}); err == nil || err.Error() != "already_pinned" {
		t.Errorf("second pin: err = %v", err)
	}
	got, _ := e.srv.Channel(ch.ID)
	if strings.Join(got.Members, ",") != slackfake.BotUserID+",U1,U2" || got.Topic != "DR of prod" || got.Purpose != "run r-1" ||
		len(got.Pins) != 1 || got.Pins[0] != ts {
		t.Errorf("channel = %+v", got)
	}
	info, err := e.api.GetConversationInfoContext(e.ctx, &slack.GetConversationInfoInput{ChannelID: ch.ID, IncludeNumMembers: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.Topic.Value != "DR of prod" || info.NumMembers != 3 {
		t.Errorf("conversations.info = topic %q, %d members", info.Topic.Value, info.NumMembers)
	}
}

func TestChannelNamesWorkOnlyWhereSlackTakesThem(t *testing.T) {
	e := start(t)
	ch, _, err := e.api.PostMessageContext(e.ctx, "#ops", slack.MsgOptionText("by name", false))
	if err != nil || ch != "C1" {
		t.Fatalf("chat.postMessage to #ops: channel %q, err %v", ch, err)
	}
	if _, err := e.api.GetConversationInfoContext(e.ctx, &slack.GetConversationInfoInput{ChannelID: "ops"}); err == nil || err.Error() != "channel_not_found" {
		t.Errorf("conversations.info by name: err = %v, want channel_not_found", err)
	}
}

func TestUsersAndUserGroups(t *testing.T) {
	e := start(t)
	e.srv.AddUserGroup("S1", "dr-approvers", "U1", "U2")
	u, err := e.api.GetUserInfoContext(e.ctx, "U1")
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "alice" || !u.IsAdmin {
		t.Errorf("users.info = %+v", u)
	}
	if _, err := e.api.GetUserInfoContext(e.ctx, "U404"); err == nil || err.Error() != "user_not_found" {
		t.Errorf("unknown user: err = %v", err)
	}
	all, err := e.api.GetUsersContext(e.ctx, slack.GetUsersOptionLimit(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Errorf("users.list paged through %d users, want the bot and 2", len(all))
	}
	members, err := e.api.GetUserGroupMembersContext(e.ctx, "S1")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(members, ",") != "U1,U2" {
		t.Errorf("usergroups.users.list = %v", members)
	}
}

func TestInjectedRateLimitFailsPostMessageWithoutSideEffect(t *testing.T) {
	e := start(t)
	e.srv.InjectFailures(slackfake.FailurePlan{Rate: 1, Methods: []string{"chat.postMessage"}, Kinds: []slackfake.FailureKind{slackfake.RateLimited}})
	_, _, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("hello", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("err = %#v, want *slack.RateLimitedError with RetryAfter 1s", err)
	}
	if n := len(e.srv.Messages("C1")); n != 0 {
		t.Errorf("%d messages stored by a failed call", n)
	}
	if _, err := e.api.AuthTestContext(e.ctx); err != nil {
		t.Errorf("auth.test is not in the plan but failed: %v", err)
	}
	calls := e.srv.Calls()
	var injected int
	for _, c := range calls {
		if c.Injected {
			injected++
			if c.Method != "chat.postMessage" || c.Status != 429 {
				t.Errorf("injected call = %+v", c)
			}
		}
	}
	if injected != 1 || e.srv.CallCount("chat.postMessage") != 1 {
		t.Errorf("calls = %+v", calls)
	}
	e.srv.InjectFailures(slackfake.FailurePlan{})
	if _, _, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("hello", false)); err != nil {
		t.Errorf("post after clearing the plan: %v", err)
	}
}

func TestInjectedFailuresAreDeterministicForASeed(t *testing.T) {
	pattern := func() string {
		srv := slackfake.New(t, slackfake.Options{})
		srv.AddChannel("C1", "ops")
		api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()))
		srv.InjectFailures(slackfake.FailurePlan{Rate: 0.5, Kinds: []slackfake.FailureKind{slackfake.RateLimited, slackfake.ServerError}, Seed: 7})
		var b strings.Builder
		for range 20 {
			_, _, err := api.PostMessage("C1", slack.MsgOptionText("x", false))
			var rl *slack.RateLimitedError
			var sc slack.StatusCodeError
			switch {
			case err == nil:
				b.WriteByte('.')
			case errors.As(err, &rl):
				b.WriteByte('R')
			case errors.As(err, &sc) && (sc.Code == 500 || sc.Code == 503):
				b.WriteByte('E')
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
		if got := strings.Count(b.String(), "."); got != len(srv.Messages("C1")) {
			t.Errorf("%d successful posts but %d messages stored", got, len(srv.Messages("C1")))
		}
		return b.String()
	}
	a, b := pattern(), pattern()
	if a != b || !strings.Contains(a, ".") || !strings.ContainsAny(a, "RE") {
		t.Errorf("patterns %q and %q: want equal, mixing successes and failures", a, b)
	}
}

func TestDisconnectMakesTheClientReconnectAndEnvelopesStillArrive(t *testing.T) {
	e := start(t)
	if err := e.srv.WaitFor(e.ctx, "first connection", func() bool { return e.srv.Connections() == 1 }); err != nil {
		t.Fatal(err)
	}
	e.next(t, socketmode.EventTypeHello)
	e.srv.Disconnect("refresh_requested")
	ctx, cancel := context.WithTimeout(e.ctx, 10*time.Second)
	defer cancel()
	if err := e.srv.WaitFor(ctx, "reconnect", func() bool { return e.srv.Connections() == 2 }); err != nil {
		t.Fatal(err)
	}
	if got := e.srv.CallCount("apps.connections.open"); got != 2 {
		t.Errorf("apps.connections.open called %d times, want 2", got)
	}
	id, err := e.srv.SlashCommand(e.ctx, "U1", "C1", "/dr", "status")
	if err != nil {
		t.Fatal(err)
	}
	evt := e.next(t, socketmode.EventTypeSlashCommand)
	if evt.Request.EnvelopeID != id {
		t.Errorf("envelope %q arrived, want %q", evt.Request.EnvelopeID, id)
	}
	if err := e.sm.Ack(*evt.Request); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.WaitAck(e.ctx, id); err != nil {
		t.Fatal(err)
	}
}

func TestUploadFileV2LandsInTheChannelThread(t *testing.T) {
	e := start(t)
	_, parent, err := e.api.PostMessageContext(e.ctx, "C1", slack.MsgOptionText("run r-1", false))
	if err != nil {
		t.Fatal(err)
	}
	content := "step,status\neks,done\n"
	sum, err := e.api.UploadFileContext(e.ctx, slack.UploadFileParameters{
		Filename: "report.csv", Title: "DR report", Content: content, FileSize: len(content),
		Channel: "C1", ThreadTimestamp: parent, InitialComment: "report attached",
	})
	if err != nil {
		t.Fatal(err)
	}
	files := e.srv.Files()
	if len(files) != 1 || files[0].ID != sum.ID || string(files[0].Content) != content || files[0].Title != "DR report" ||
		files[0].Filename != "report.csv" || files[0].Channel != "C1" || files[0].ThreadTS != parent {
		t.Fatalf("files = %+v (summary %+v)", files, sum)
	}
	replies := e.srv.Replies("C1", parent)
	if len(replies) != 1 || replies[0].Text != "report attached" || len(replies[0].Files) != 1 || replies[0].Files[0].ID != sum.ID {
		t.Errorf("thread replies = %+v", replies)
	}
}

func TestSubmitViewCarriesTheModalStateValues(t *testing.T) {
	e := start(t)
	id, err := e.srv.SlashCommand(e.ctx, "U1", "C1", "/dr", "abort")
	if err != nil {
		t.Fatal(err)
	}
	evt := e.next(t, socketmode.EventTypeSlashCommand)
	if err := e.sm.Ack(*evt.Request); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.WaitAck(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	cmd := evt.Data.(slack.SlashCommand)
	modal := slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           slack.NewTextBlockObject(slack.PlainTextType, "Abort run", false, false),
		Submit:          slack.NewTextBlockObject(slack.PlainTextType, "Abort", false, false),
		CallbackID:      "abort",
		PrivateMetadata: "r-1",
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			slack.NewInputBlock("reason", slack.NewTextBlockObject(slack.PlainTextType, "Reason", false, false), nil,
				slack.NewPlainTextInputBlockElement(nil, "reason_text")),
		}},
	}
	if _, err := e.api.OpenViewContext(e.ctx, cmd.TriggerID, modal); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.OpenViewContext(e.ctx, cmd.TriggerID, modal); err == nil || err.Error() != "exchanged_trigger_id" {
		t.Errorf("second views.open with one trigger: err = %v", err)
	}
	if _, err := e.srv.SubmitView(e.ctx, "U1", "abort", "", map[string]map[string]string{"reason": {"reason_text": "wrong region"}}); err != nil {
		t.Fatal(err)
	}
	sub := e.next(t, socketmode.EventTypeInteractive)
	cb := sub.Data.(slack.InteractionCallback)
	if cb.Type != slack.InteractionTypeViewSubmission || cb.View.CallbackID != "abort" || cb.View.PrivateMetadata != "r-1" ||
		cb.View.State == nil || cb.View.State.Values["reason"]["reason_text"].Value != "wrong region" || cb.User.ID != "U1" {
		t.Errorf("view submission = type %q view %+v", cb.Type, cb.View)
	}
	if !sub.Request.AcceptsResponsePayload {
		t.Error("view_submission should accept a response payload")
	}
	if err := e.sm.Ack(*sub.Request, slack.NewClearViewSubmissionResponse()); err != nil {
		t.Fatal(err)
	}
	ack, err := e.srv.WaitAck(e.ctx, sub.Request.EnvelopeID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ack.Payload), `"clear"`) {
		t.Errorf("ack payload = %s", ack.Payload)
	}
}

func TestWrongTokensAreRefused(t *testing.T) {
	srv := slackfake.New(t, slackfake.Options{BotToken: "xoxb-right", AppToken: "xapp-right"})
	if _, err := slack.New("xoxb-wrong", slack.OptionAPIURL(srv.APIURL())).AuthTest(); err == nil || err.Error() != "invalid_auth" {
		t.Errorf("wrong bot token: err = %v", err)
	}
	if _, err := slack.New("xapp-right", slack.OptionAPIURL(srv.APIURL())).AuthTest(); err == nil || err.Error() != "not_allowed_token_type" {
		t.Errorf("app token on a bot method: err = %v", err)
	}
	if _, _, err := slack.New("xoxb-right", slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken("xapp-wrong")).StartSocketModeContext(t.Context()); err == nil || err.Error() != "invalid_auth" {
		t.Errorf("wrong app token: err = %v", err)
	}
	res, err := slack.New("xoxb-right", slack.OptionAPIURL(srv.APIURL())).AuthTest()
	if err != nil || res.UserID != slackfake.BotUserID || res.TeamID != slackfake.TeamID {
		t.Errorf("auth.test = %+v, %v", res, err)
	}
}

func TestUnknownMethodIsRecordedAsUnexpected(t *testing.T) {
	srv := slackfake.New(t, slackfake.Options{})
	srv.AllowUnexpected()
	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.APIURL()))
	err := api.AddReactionContext(t.Context(), "white_check_mark", slack.ItemRef{Channel: "C1", Timestamp: "1.000001"})
	var sc slack.StatusCodeError
	if !errors.As(err, &sc) || sc.Code != 404 {
		t.Errorf("reactions.add: err = %v, want HTTP 404", err)
	}
	got := srv.Unexpected()
	if len(got) != 1 || !strings.Contains(got[0], "reactions.add") {
		t.Errorf("Unexpected() = %q", got)
	}
}

func TestEphemeralAndSlashCommandResponseURL(t *testing.T) {
	e := start(t)
	if _, err := e.api.PostEphemeralContext(e.ctx, "C1", "U2", slack.MsgOptionText("only you", false)); err != nil {
		t.Fatal(err)
	}
	id, err := e.srv.SlashCommand(e.ctx, "U1", "C1", "/dr", "plan")
	if err != nil {
		t.Fatal(err)
	}
	evt := e.next(t, socketmode.EventTypeSlashCommand)
	if err := e.sm.Ack(*evt.Request); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.WaitAck(e.ctx, id); err != nil {
		t.Fatal(err)
	}
	respURL := evt.Data.(slack.SlashCommand).ResponseURL
	if err := slack.PostWebhookContext(e.ctx, respURL, &slack.WebhookMessage{Text: "plan posted", ResponseType: slack.ResponseTypeInChannel}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if err := slack.PostWebhookContext(e.ctx, respURL, &slack.WebhookMessage{Text: "progress"}); err != nil {
			t.Fatal(err)
		}
	}
	// Slack allows five uses of a response_url.
	var sc slack.StatusCodeError
	if err := slack.PostWebhookContext(e.ctx, respURL, &slack.WebhookMessage{Text: "one too many"}); !errors.As(err, &sc) || sc.Code != 404 {
		t.Errorf("sixth use: err = %v, want 404", err)
	}
	if m := e.srv.Messages("C1"); len(m) != 1 || m[0].Text != "plan posted" {
		t.Errorf("channel messages = %+v", m)
	}
	if n := len(e.srv.Ephemerals("U1")); n != 4 {
		t.Errorf("U1 has %d ephemerals, want 4", n)
	}
	if eph := e.srv.Ephemerals("U2"); len(eph) != 1 || eph[0].Text != "only you" {
		t.Errorf("U2 ephemerals = %+v", eph)
	}
	if posts := e.srv.ResponseURLPosts(); len(posts) != 6 || posts[5].Error != "used_url" || posts[0].ResponseType != "in_channel" {
		t.Errorf("response_url posts = %+v", posts)
	}
}
