package recovery

import (
	"context"
	"net/http"
	"strings"
)

// Every request drbot sends while a step runs names the step in its
// User-Agent ("… drbot-step/<id>"), so the far ends' logs (CloudTrail's
// userAgent, the Kubernetes audit log, Vault's and GitLab's access logs,
// and the test stand-ins) attribute each call to the step that made it.

type stepKey struct{}

// StepUserAgentPrefix precedes the step id in the User-Agent.
const StepUserAgentPrefix = "drbot-step/"

// WithStep is ctx carrying the id of the step it runs for; the engine puts
// it on the ctx of every action and gate check.
func WithStep(ctx context.Context, stepID string) context.Context {
	return context.WithValue(ctx, stepKey{}, stepID)
}

// StepFromContext is the step id ctx carries, "" outside a step.
func StepFromContext(ctx context.Context) string {
	id, _ := ctx.Value(stepKey{}).(string)
	return id
}

// StepFromUserAgent is the step id a User-Agent names, "" when none.
func StepFromUserAgent(ua string) string {
	i := strings.LastIndex(ua, StepUserAgentPrefix)
	if i < 0 {
		return ""
	}
	id := ua[i+len(StepUserAgentPrefix):]
	if j := strings.IndexByte(id, ' '); j >= 0 {
		id = id[:j]
	}
	return id
}

// StepUserAgent wraps a transport: a request whose context carries a step
// id gets it appended to its User-Agent. User-Agent is not signed by SigV4,
// so this may run after the AWS SDK signs.
func StepUserAgent(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return stepTransport{next: next}
}

// StepUserAgentFor is StepUserAgent for clients whose requests do not
// carry the step's context (informers, watches on their own contexts):
// those are tagged with stepID.
func StepUserAgentFor(stepID string) func(http.RoundTripper) http.RoundTripper {
	return func(next http.RoundTripper) http.RoundTripper {
		if next == nil {
			next = http.DefaultTransport
		}
		return stepTransport{next: next, fixed: stepID}
	}
}

type stepTransport struct {
	next  http.RoundTripper
	fixed string
}

func (t stepTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if t.fixed != "" && StepFromContext(r.Context()) == "" {
		r = withStepAgent(r.WithContext(WithStep(r.Context(), t.fixed)))
	}
	return t.next.RoundTrip(withStepAgent(r))
}

// HTTPDoer is the AWS SDK's HTTP client interface (aws.HTTPClient).
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

// StepDoer wraps an AWS SDK HTTP client the way StepUserAgent wraps a
// transport.
func StepDoer(next HTTPDoer) HTTPDoer { return stepDoer{next: next} }

type stepDoer struct{ next HTTPDoer }

func (d stepDoer) Do(r *http.Request) (*http.Response, error) { return d.next.Do(withStepAgent(r)) }

func withStepAgent(r *http.Request) *http.Request {
	id := StepFromContext(r.Context())
	if id == "" || StepFromUserAgent(r.Header.Get("User-Agent")) == id {
		return r
	}
	r = r.Clone(r.Context())
	ua := r.Header.Get("User-Agent")
	if ua != "" {
		ua += " "
	}
	r.Header.Set("User-Agent", ua+StepUserAgentPrefix+id)
	return r
}
