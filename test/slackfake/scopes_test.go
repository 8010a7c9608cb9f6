package slackfake_test

import (
	"context"
	"net/http"
	"sync"
	"testing"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/test/slackfake"
)

// headerTap keeps the X-OAuth-Scopes header of the last answer.
type headerTap struct {
	mu     sync.Mutex
	scopes []string
}

func (h *headerTap) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		h.mu.Lock()
		h.scopes = resp.Header.Values("X-OAuth-Scopes")
		h.mu.Unlock()
	}
	return resp, err
}

func TestScopedAPIURLAddsTheScopesHeaderToRealCalls(t *testing.T) {
	srv := slackfake.New(t, slackfake.Options{})
	tap := &headerTap{}
	api := slack.New(srv.BotToken(), slack.OptionAPIURL(srv.ScopedAPIURL(t, "chat:write", "channels:read")), slack.OptionHTTPClient(&http.Client{Transport: tap}))
	auth, err := api.AuthTestContext(context.Background())
	if err != nil || auth.UserID != slackfake.BotUserID {
		t.Fatalf("auth.test through the scoped URL = %+v, %v", auth, err)
	}
	tap.mu.Lock()
	got := tap.scopes
	tap.mu.Unlock()
	if len(got) != 1 || got[0] != "chat:write,channels:read" {
		t.Errorf("X-OAuth-Scopes = %q", got)
	}
	if srv.CallCount("auth.test") != 1 {
		t.Errorf("the fake saw %d auth.test calls, want 1", srv.CallCount("auth.test"))
	}
}
