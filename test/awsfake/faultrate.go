package awsfake

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"
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

type rateState struct {
	mu     sync.Mutex
	plan   FaultRate
	rng    *rand.Rand
	failed []RateFailure
}

// rateStates hold each server's FaultRate, beside the Server struct so
// the hook stays one call in applyFault.
var rateStates sync.Map // *Server → *rateState

// InjectRate replaces the rate-based faults; a zero Rate stops them (the
// failures recorded so far stay in RateFailures).
func (s *Server) InjectRate(f FaultRate) {
	st := s.rateState()
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(f.Faults) == 0 {
		f.Faults = DefaultRateFaults
	}
	f.Faults = slices.Clone(f.Faults)
	st.plan = f
	st.rng = rand.New(rand.NewPCG(f.Seed, 0xa75fa17))
}

// RateFailures lists the calls InjectRate failed, in order.
func (s *Server) RateFailures() []RateFailure {
	st := s.rateState()
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.failed)
}

func (s *Server) rateState() *rateState {
	v, _ := rateStates.LoadOrStore(s, &rateState{})
	return v.(*rateState)
}

// rateFault decides whether q fails by the rate plan, and fails it.
func (s *Server) rateFault(q *request) *apiError {
	v, ok := rateStates.Load(s)
	if !ok {
		return nil
	}
	st := v.(*rateState)
	st.mu.Lock()
	p := st.plan
	if p.Rate <= 0 || (p.Only != nil && !p.Only(q.service, q.op, q.r.UserAgent())) || st.rng.Float64() >= p.Rate {
		st.mu.Unlock()
		return nil
	}
	f := p.Faults[st.rng.IntN(len(p.Faults))]
	if f.Status == 0 {
		f.Status = http.StatusBadRequest
	}
	st.failed = append(st.failed, RateFailure{Service: q.service, Operation: q.op, Code: f.Code, Status: f.Status, UserAgent: q.r.UserAgent()})
	st.mu.Unlock()
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
		msg = fmt.Sprintf("awsfake injected %s on %s:%s (rate %.2f)", f.Code, q.service, q.op, p.Rate)
		if isThrottleCode(f.Code) {
			msg = "Rate exceeded (" + msg + ")"
		}
	}
	return &apiError{status: f.Status, code: f.Code, message: msg}
}
