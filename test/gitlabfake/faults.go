package gitlabfake

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/drbot/drbot/test/faultplan"
)

// FaultPlan makes a share of API requests fail with a 5xx before they
// have any effect, chosen by a seeded generator (same seed, same request
// sequence, same failures). Empty Statuses means 500, 502 and 503.
type FaultPlan = faultplan.HTTPRule

// Fault is one request a FaultPlan failed.
type Fault = faultplan.Request

var faults = faultplan.HTTP{Stream: 0x6171ab, Statuses: []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable}}

// InjectFaults replaces the fault plan; a zero Rate stops injecting.
func (s *Server) InjectFaults(p FaultPlan) { faults.Set(s, p) }

// InjectedFaults lists the requests the fault plan failed, in order.
func (s *Server) InjectedFaults() []Fault { return faults.Failed(s) }

// injectFault answers r with an injected failure when the plan says so.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	status, fail := faults.Fail(s, r)
	if !fail {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": fmt.Sprintf("%d gitlabfake injected failure on %s %s", status, r.Method, r.URL.Path)})
	return true
}
