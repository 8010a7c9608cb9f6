package gitlabfake

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/drbot/drbot/test/faultplan"
)

// FaultPlan makes a share of API requests fail with a 5xx before they
// have any effect, chosen by a seeded generator (same seed, same request
// sequence, same failures).
type FaultPlan struct {
	Rate     float64 // 0..1
	Seed     uint64
	Statuses []int // chosen uniformly; empty means 500, 502 and 503
	// Only, when set, picks the requests that may fail (e.g. drbot's, not
	// the Argo CD stand-in's).
	Only func(*http.Request) bool
}

// Fault is one request a FaultPlan failed.
type Fault struct {
	Method, Path string
	Status       int
}

var faultPlans faultplan.Plans[*Server, *http.Request, int, Fault]

// InjectFaults replaces the fault plan; a zero Rate stops injecting.
func (s *Server) InjectFaults(p FaultPlan) {
	if len(p.Statuses) == 0 {
		p.Statuses = []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}
	}
	faultPlans.Of(s).Set(faultplan.Rule[*http.Request, int]{Rate: p.Rate, Seed: p.Seed, Stream: 0x6171ab, Only: p.Only, Choices: p.Statuses})
}

// InjectedFaults lists the requests the fault plan failed, in order.
func (s *Server) InjectedFaults() []Fault {
	return faultPlans.Of(s).Failed()
}

// injectFault answers r with an injected failure when the plan says so.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	status, _, fail := faultPlans.Of(s).Decide(r, func(status int) Fault {
		return Fault{Method: r.Method, Path: r.URL.Path, Status: status}
	})
	if !fail {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": fmt.Sprintf("%d gitlabfake injected failure on %s %s", status, r.Method, r.URL.Path)})
	return true
}
