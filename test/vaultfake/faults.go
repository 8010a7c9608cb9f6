package vaultfake

import (
	"fmt"
	"net/http"

	"github.com/drbot/drbot/test/faultplan"
)

// FaultPlan makes a share of requests fail with a 5xx before they have
// any effect, chosen by a seeded generator (same seed, same request
// sequence, same failures). Empty Statuses means 500 and 503.
type FaultPlan = faultplan.HTTPRule

// Fault is one request a FaultPlan failed.
type Fault = faultplan.Request

var faults = faultplan.HTTP{Stream: 0x7a017, Statuses: []int{http.StatusInternalServerError, http.StatusServiceUnavailable}}

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
	writeJSON(w, status, errorBody(fmt.Sprintf("vaultfake injected %d on %s %s", status, r.Method, r.URL.Path)))
	return true
}
