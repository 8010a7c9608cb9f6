package awsfake

import (
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/drbot/drbot/test/faultplan"
)

// FaultRate makes a share of calls fail the way AWS fails under load:
// throttling, 5xx and timeouts, chosen by a seeded generator so the same
// seed and the same call sequence fail the same calls.
type FaultRate struct {
	Rate float64 // 0..1: share of matching calls that fail
	Seed uint64
	// Faults are the failures to choose from, uniformly; empty means
	// DefaultRateFaults. A Fault with Latency and a Code is a timeout:
	// the answer comes late, and then as an error.
	Faults []Fault
	// Only, when set, picks the calls that may fail (service is the
	// signing name, userAgent the caller's), e.g. only drbot's and not a
	// controller's in the same test.
	Only func(service, operation, userAgent string) bool
}

// DefaultRateFaults: 400 ThrottlingException, 500 InternalFailure, 503
// ServiceUnavailable and a 2 s stall answered 504 RequestTimeout.
var DefaultRateFaults = []Fault{
	{Code: "ThrottlingException", Status: http.StatusBadRequest},
	{Code: "InternalFailure", Status: http.StatusInternalServerError},
	{Code: "ServiceUnavailable", Status: http.StatusServiceUnavailable},
	{Code: "RequestTimeout", Status: http.StatusGatewayTimeout, Latency: 2 * time.Second},
}

// RateFailure is one call FaultRate failed.
type RateFailure struct {
	Service, Operation, Code string
	Status                   int
	UserAgent                string
}

// ratePlans hold each server's FaultRate, beside the Server struct so
// the hook stays one call in applyFault.
var ratePlans faultplan.Plans[*Server, *request, Fault, RateFailure]

// InjectRate replaces the rate-based faults; a zero Rate stops them (the
// failures recorded so far stay in RateFailures).
func (s *Server) InjectRate(f FaultRate) {
	if len(f.Faults) == 0 {
		f.Faults = DefaultRateFaults
	}
	faults := slices.Clone(f.Faults)
	for i := range faults {
		if faults[i].Status == 0 {
			faults[i].Status = http.StatusBadRequest
		}
	}
	rule := faultplan.Rule[*request, Fault]{Rate: f.Rate, Seed: f.Seed, Stream: 0xa75fa17, Choices: faults}
	if only := f.Only; only != nil {
		rule.Only = func(q *request) bool { return only(q.service, q.op, q.r.UserAgent()) }
	}
	ratePlans.Of(s).Set(rule)
}

// RateFailures lists the calls InjectRate failed, in order.
func (s *Server) RateFailures() []RateFailure {
	return ratePlans.Of(s).Failed()
}

// rateFault decides whether q fails by the rate plan, and fails it.
func (s *Server) rateFault(q *request) *apiError {
	f, rate, fail := ratePlans.Of(s).Decide(q, func(f Fault) RateFailure {
		return RateFailure{Service: q.service, Operation: q.op, Code: f.Code, Status: f.Status, UserAgent: q.r.UserAgent()}
	})
	if !fail {
		return nil
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-q.r.Context().Done():
			t.Stop()
		}
	}
	msg := f.Message
	if msg == "" {
		msg = fmt.Sprintf("awsfake injected %s on %s:%s (rate %.2f)", f.Code, q.service, q.op, rate)
		if isThrottleCode(f.Code) {
			msg = "Rate exceeded (" + msg + ")"
		}
	}
	return &apiError{status: f.Status, code: f.Code, message: msg}
}
