package metrics

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"path"
	"regexp"
)

// A Web API method is dotted words (chat.postMessage, apps.connections.open);
// anything else (file upload URLs, the websocket) is not counted.
var slackMethod = regexp.MustCompile(`^[A-Za-z]+(\.[A-Za-z]+)+$`)

// Slack's error strings are short snake_case words; anything else is
// folded so a strange server cannot blow up the label set.
var slackCode = regexp.MustCompile(`^[a-z0-9_]{1,64}$`)

// SlackTransport wraps base (http.DefaultTransport when nil) for slack-go's
// HTTP client: each failed Web API call counts in
// drbot_slack_api_errors_total by method and code. The body is read to find
// Slack's {"ok":false,"error":…} and handed on unchanged; neither the body
// nor the request's token is logged or kept.
func (m *Metrics) SlackTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &slackTransport{base: base, m: m}
}

type slackTransport struct {
	base http.RoundTripper
	m    *Metrics
}

func (t *slackTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	method := path.Base(req.URL.Path)
	if !slackMethod.MatchString(method) {
		return resp, err
	}
	if err != nil {
		// A call the caller gave up on is not Slack's failure.
		if req.Context().Err() == nil {
			t.m.slackErrors.WithLabelValues(method, "transport").Inc()
		}
		return resp, err
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		t.m.slackErrors.WithLabelValues(method, "http_429").Inc()
		return resp, nil
	case resp.StatusCode >= 500:
		t.m.slackErrors.WithLabelValues(method, "http_5xx").Inc()
		return resp, nil
	case resp.StatusCode != http.StatusOK || resp.Body == nil:
		return resp, nil
	}
	// Skip downloads (files.slack.com/…/name.png); stand-ins that forget
	// the header get Go's sniffed text/plain.
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" && mt != "text/plain" {
			return resp, nil
		}
	}
	body, rerr := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if rerr != nil {
		// Hand the caller what arrived and the same error it would have met.
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{rerr}))
		return resp, nil
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var reply struct {
		OK    *bool  `json:"ok"`
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &reply) != nil || reply.OK == nil || *reply.OK {
		return resp, nil
	}
	code := reply.Error
	if !slackCode.MatchString(code) {
		code = "other"
	}
	t.m.slackErrors.WithLabelValues(method, code).Inc()
	return resp, nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }
