package recovery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestStepUserAgentNamesTheStepOfTheRequestsContextOnly(t *testing.T) {
	got := make(chan string, 3)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { got <- r.UserAgent() }))
	defer srv.Close()
	c := &http.Client{Transport: StepUserAgent(nil)}
	send := func(ctx context.Context, ua string) string {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL, nil)
		req.Header.Set("User-Agent", ua)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return <-got
	}
	if ua := send(WithStep(context.Background(), "vault.auth"), "vault-client/1"); ua != "vault-client/1 drbot-step/vault.auth" || StepFromUserAgent(ua) != "vault.auth" {
		t.Errorf("in a step: User-Agent %q", ua)
	}
	if ua := send(context.Background(), "vault-client/1"); ua != "vault-client/1" || StepFromUserAgent(ua) != "" {
		t.Errorf("outside a step: User-Agent %q", ua)
	}
	// Wrapped twice (a client built inside another's transport) still names the step once.
	c.Transport = StepUserAgent(StepUserAgent(nil))
	if ua := send(WithStep(context.Background(), "namespaces"), "x"); ua != "x drbot-step/namespaces" {
		t.Errorf("wrapped twice: User-Agent %q", ua)
	}
}

func TestStepDoerNamesTheStepLikeTheTransport(t *testing.T) {
	var seen string
	d := StepDoer(doerFunc(func(r *http.Request) (*http.Response, error) { seen = r.Header.Get("User-Agent"); return nil, nil }))
	req, _ := http.NewRequestWithContext(WithStep(context.Background(), "endpoints.apply"), "GET", "http://127.0.0.1:1/", nil)
	req.Header.Set("User-Agent", "aws-sdk-go-v2/1")
	_, _ = d.Do(req)
	if seen != "aws-sdk-go-v2/1 drbot-step/endpoints.apply" {
		t.Errorf("User-Agent %q", seen)
	}
	if req.Header.Get("User-Agent") != "aws-sdk-go-v2/1" {
		t.Error("the caller's request was modified")
	}
}

type doerFunc func(*http.Request) (*http.Response, error)

func (f doerFunc) Do(r *http.Request) (*http.Response, error) { return f(r) }

func TestStepUserAgentForTagsRequestsWithoutAStepContext(t *testing.T) {
	var seen []string
	rt := StepUserAgentFor("deploy.watch")(roundTripFunc(func(r *http.Request) (*http.Response, error) {
		seen = append(seen, r.Header.Get("User-Agent"))
		return nil, nil
	}))
	for _, ctx := range []context.Context{context.Background(), WithStep(context.Background(), "gitops.merge")} {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://127.0.0.1:1/", nil)
		req.Header.Set("User-Agent", "drbot")
		_, _ = rt.RoundTrip(req)
	}
	if len(seen) != 2 || seen[0] != "drbot drbot-step/deploy.watch" || seen[1] != "drbot drbot-step/gitops.merge" {
		t.Errorf("User-Agents %q: an informer's request gets the fixed step, a step's own request keeps its step", seen)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
