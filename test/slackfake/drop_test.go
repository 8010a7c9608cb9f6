package slackfake_test

import (
	"context"
	"testing"
	"time"

	"github.com/slack-go/slack/socketmode"
)

func TestDropConnectionCutsTheSocketWithoutWarningAndTheClientComesBack(t *testing.T) {
	e := start(t)
	if err := e.srv.WaitFor(e.ctx, "first connection", func() bool { return e.srv.Connections() == 1 }); err != nil {
		t.Fatal(err)
	}
	e.next(t, socketmode.EventTypeHello)
	if !e.srv.DropConnection() {
		t.Fatal("DropConnection found no live connection")
	}
	// The client may already have reconnected: a second drop may only find
	// a live connection if it is a new one.
	if e.srv.DropConnection() && e.srv.Connections() == 1 {
		t.Error("a second DropConnection found the dropped connection live; the first did not forget it")
	}
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	if err := e.srv.WaitFor(ctx, "reconnect", func() bool { return e.srv.Connections() >= 2 }); err != nil {
		t.Fatal(err)
	}
	id, err := e.srv.SlashCommand(e.ctx, "U1", "C1", "/dr", "status")
	if err != nil {
		t.Fatal(err)
	}
	evt := e.next(t, socketmode.EventTypeSlashCommand)
	if evt.Request.EnvelopeID != id {
		t.Errorf("envelope %q arrived, want %q", evt.Request.EnvelopeID, id)
	}
}
