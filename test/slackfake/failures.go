package slackfake

import (
	"math/rand/v2"
	"net/http"
	"slices"
)

// FailureKind is a kind of injected Web API failure.
type FailureKind int

const (
	// RateLimited answers HTTP 429 with Retry-After: 1 and {"ok":false,"error":"ratelimited"},
	// which slack-go turns into *slack.RateLimitedError{RetryAfter: time.Second}.
	RateLimited FailureKind = iota + 1
	// ServerError answers HTTP 500 or 503 (chosen by the same generator).
	ServerError
)

// FailurePlan makes a share of Web API calls fail before they have any effect.
type FailurePlan struct {
	Rate    float64       // 0..1: share of matching calls that fail
	Methods []string      // methods to fail, e.g. "chat.postMessage"; empty means every Web API method, apps.connections.open included
	Kinds   []FailureKind // empty means RateLimited
	Seed    int64         // same seed and same call sequence give the same failures
}

type failureState struct {
	plan FailurePlan
	rng  *rand.Rand
}

// InjectFailures replaces the failure plan. A zero plan (or Rate 0) stops
// injecting. Failed calls are recorded in Calls with Injected set.
func (s *Server) InjectFailures(f FailurePlan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Rate <= 0 {
		s.failures = nil
		return
	}
	if len(f.Kinds) == 0 {
		f.Kinds = []FailureKind{RateLimited}
	}
	f.Methods = slices.Clone(f.Methods)
	f.Kinds = slices.Clone(f.Kinds)
	s.failures = &failureState{plan: f, rng: rand.New(rand.NewPCG(uint64(f.Seed), 0x5eed51ac))}
}

// injectedFailure decides whether this call fails and how: it returns the
// HTTP status (0 for no failure). Callers hold s.mu.
func (s *Server) injectedFailure(method string) int {
	f := s.failures
	if f == nil {
		return 0
	}
	if len(f.plan.Methods) > 0 && !slices.Contains(f.plan.Methods, method) {
		return 0
	}
	if f.rng.Float64() >= f.plan.Rate {
		return 0
	}
	switch f.plan.Kinds[f.rng.IntN(len(f.plan.Kinds))] {
	case ServerError:
		if f.rng.IntN(2) == 0 {
			return http.StatusInternalServerError
		}
		return http.StatusServiceUnavailable
	default:
		return http.StatusTooManyRequests
	}
}

func writeInjected(w http.ResponseWriter, status int) {
	if status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "1")
		writeJSON(w, status, map[string]any{"ok": false, "error": "ratelimited"})
		return
	}
	// Slack sends an HTML page with 5xx; slack-go does not read it.
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	_, _ = w.Write([]byte("<html><body>slackfake: injected server error</body></html>"))
}
