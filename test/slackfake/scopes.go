package slackfake

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// DefaultScopes are the bot scopes of drbot's app manifest
// (manifests/slack-app.yaml).
var DefaultScopes = []string{"commands", "chat:write", "channels:manage", "channels:read", "channels:history",
	"groups:read", "groups:write", "groups:history", "pins:write", "usergroups:read", "users:read", "files:write"}

// ScopedAPIURL is an API base URL (ending in "/") in front of the fake that
// adds Slack's X-OAuth-Scopes header, listing scopes, to every Web API
// answer, as Slack does for the token used. The front is a reverse proxy on
// loopback, closed when the test ends; everything else about the call is
// the fake's.
func (s *Server) ScopedAPIURL(t testing.TB, scopes ...string) string {
	t.Helper()
	target, err := url.Parse(s.srv.URL)
	if err != nil {
		t.Fatalf("slackfake: ScopedAPIURL: %v", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	header := strings.Join(scopes, ",")
	proxy.ModifyResponse = func(r *http.Response) error {
		if strings.HasPrefix(r.Request.URL.Path, "/api/") {
			r.Header.Set("X-OAuth-Scopes", header)
		}
		return nil
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	return front.URL + "/api/"
}
