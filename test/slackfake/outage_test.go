package slackfake_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

func TestSetDownFailsWebAPICallsAndDropsSocketModeUntilSlackIsBack(t *testing.T) {
	e := start(t)
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Second)
	defer cancel()
	if err := e.srv.WaitFor(ctx, "a Socket Mode connection", func() bool { return e.srv.Connections() == 1 }); err != nil {
		t.Fatal(err)
	}

	e.srv.SetDown(true)
	if !e.srv.Down() {
		t.Fatal("Down() = false after SetDown(true)")
	}
	_, _, err := e.api.PostMessageContext(ctx, "C1", slack.MsgOptionText("lost", false))
	var sc slack.StatusCodeError
	if !errors.As(err, &sc) || sc.Code < 500 {
		t.Fatalf("chat.postMessage while down: err = %v, want a 5xx slack.StatusCodeError", err)
	}
	if _, err := e.api.CreateConversationContext(ctx, slack.CreateConversationParams{ChannelName: "dr-lost"}); err == nil {
		t.Fatal("conversations.create succeeded while Slack is down")
	}
	// The client loses its WebSocket and cannot get a new one.
	for {
		evt := e.next(t, socketmode.EventTypeConnectionError)
		if ce, ok := evt.Data.(*slack.ConnectionErrorEvent); ok && errors.As(ce.ErrorObj, &sc) && sc.Code >= 500 {
			break
		}
	}
	if len(e.srv.Messages("C1")) != 0 {
		t.Errorf("a refused post reached the channel: %+v", e.srv.Messages("C1"))
	}
	if _, ok := e.srv.Channel("dr-lost"); ok {
		t.Error("a refused conversations.create made the channel")
	}

	e.srv.SetDown(false)
	if e.srv.Down() {
		t.Fatal("Down() = true after SetDown(false)")
	}
	if _, _, err := e.api.PostMessageContext(ctx, "C1", slack.MsgOptionText("back", false)); err != nil {
		t.Fatalf("chat.postMessage after the outage: %v", err)
	}
	if err := e.srv.WaitFor(ctx, "the client to reconnect", func() bool { return e.srv.Connections() == 2 }); err != nil {
		t.Fatal(err)
	}
	injected := 0
	for _, c := range e.srv.Calls() {
		if c.Injected {
			injected++
		}
	}
	if injected < 3 {
		t.Errorf("%d calls recorded as refused by the outage, want at least 3 (post, create, connections.open)", injected)
	}
}
