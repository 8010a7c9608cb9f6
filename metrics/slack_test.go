package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/slack-go/slack"
)

const fakeBotToken = "xoxb-made-up-test-token"

// slackStandIn answers the few Web API methods the test calls and fails
// loudly on anything else.
func slackStandIn(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	var unexpected []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch r.URL.Path {
		case "/chat.postMessage":
			_, _ = w.Write([]byte(`{"ok":false,"error":"channel_not_found"}`))
		case "/conversations.info":
			_, _ = w.Write([]byte(`{"ok":true,"channel":{"id":"C123","name":"dr-prod"}}`))
		case "/auth.test":
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		case "/users.info":
			w.WriteHeader(http.StatusBadGateway)
		default:
			mu.Lock()
			unexpected = append(unexpected, r.URL.Path)
			mu.Unlock()
			http.Error(w, "slack stand-in: unexpected request "+r.URL.Path, http.StatusNotFound)
		}
	}))
	t.Cleanup(func() {
		srv.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, p := range unexpected {
			t.Errorf("slack stand-in got unexpected request at %q", p)
		}
	})
	return srv
}

func TestSlackTransportCountsAPIErrorsByMethodAndCode(t *testing.T) {
	srv := slackStandIn(t)
	m := New()
	api := slack.New(fakeBotToken, slack.OptionAPIURL(srv.URL+"/"),
		slack.OptionHTTPClient(&http.Client{Transport: m.SlackTransport(nil)}))
	ctx := context.Background()

	_, _, err := api.PostMessageContext(ctx, "C404", slack.MsgOptionText("hello", false))
	// slack-go still reads Slack's error: the transport restored the body.
	if err == nil || !strings.Contains(err.Error(), "channel_not_found") {
		t.Errorf("PostMessage error = %v, want channel_not_found", err)
	}
	_, _, err = api.PostMessageContext(ctx, "C404", slack.MsgOptionText("again", false))
	if err == nil {
		t.Errorf("second PostMessage succeeded, want channel_not_found")
	}
	ch, err := api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: "C123"})
	if err != nil || ch.Name != "dr-prod" {
		t.Errorf("GetConversationInfo = %+v, %v; want dr-prod read through the transport", ch, err)
	}
	_, err = api.AuthTestContext(ctx)
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) {
		t.Errorf("AuthTest error = %v, want a rate limit", err)
	}
	if _, err = api.GetUserInfoContext(ctx, "U1"); err == nil {
		t.Errorf("GetUserInfo succeeded against a 502")
	}

	s, body := scrape(t, m.Handler())
	wantSample(t, s, `drbot_slack_api_errors_total{code="channel_not_found",method="chat.postMessage"}`, 2)
	wantSample(t, s, `drbot_slack_api_errors_total{code="http_429",method="auth.test"}`, 1)
	wantSample(t, s, `drbot_slack_api_errors_total{code="http_5xx",method="users.info"}`, 1)
	if strings.Contains(body, "conversations.info") {
		t.Errorf("a successful call was counted as an error:\n%s", body)
	}
	if strings.Contains(body, fakeBotToken) {
		t.Errorf("the bot token leaked into /metrics")
	}
}

func TestSlackTransportIgnoresNonAPIRequests(t *testing.T) {
	// A file download is not a Web API call, even with a dotted name.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/files-pri/T1-F1/runbook.md" {
			t.Errorf("got unexpected request at %q", r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write([]byte(`{"ok":false,"error":"looks_like_json"}`))
	}))
	defer srv.Close()
	m := New()
	c := &http.Client{Transport: m.SlackTransport(nil)}
	resp, err := c.Get(srv.URL + "/files-pri/T1-F1/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, body := scrape(t, m.Handler())
	if strings.Contains(body, "drbot_slack_api_errors_total{") {
		t.Errorf("a download was counted as a Slack API error:\n%s", body)
	}
}
