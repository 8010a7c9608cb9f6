package vaultfake

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
)

// FaultPlan makes a share of requests fail with a 5xx before they have
// any effect, chosen by a seeded generator (same seed, same request
// sequence, same failures).
type FaultPlan struct {
	Rate     float64 // 0..1
	Seed     uint64
	Statuses []int // chosen uniformly; empty means 500 and 503
	// Only, when set, picks the requests that may fail.
	Only func(*http.Request) bool
}

// Fault is one request a FaultPlan failed.
type Fault struct {
	Method, Path string
	Status       int
}

type faultState struct {
	mu     sync.Mutex
	plan   FaultPlan
	rng    *rand.Rand
	failed []Fault
}

var faultStates sync.Map // *Server → *faultState

// InjectFaults replaces the fault plan; a zero Rate stops injecting.
func (s *Server) InjectFaults(p FaultPlan) {
	v, _ := faultStates.LoadOrStore(s, &faultState{})
	st := v.(*faultState)
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(p.Statuses) == 0 {
		p.Statuses = []int{http.StatusInternalServerError, http.StatusServiceUnavailable}
	}
	p.Statuses = slices.Clone(p.Statuses)
	st.plan = p
	st.rng = rand.New(rand.NewPCG(p.Seed, 0x7a017))
}

// InjectedFaults lists the requests the fault plan failed, in order.
func (s *Server) InjectedFaults() []Fault {
	v, ok := faultStates.Load(s)
	if !ok {
		return nil
	}
	st := v.(*faultState)
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.failed)
}

// injectFault answers r with an injected failure when the plan says so.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	v, ok := faultStates.Load(s)
	if !ok {
		return false
	}
	st := v.(*faultState)
	st.mu.Lock()
	p := st.plan
	if p.Rate <= 0 || (p.Only != nil && !p.Only(r)) || st.rng.Float64() >= p.Rate {
		st.mu.Unlock()
		return false
	}
	status := p.Statuses[st.rng.IntN(len(p.Statuses))]
	st.failed = append(st.failed, Fault{Method: r.Method, Path: r.URL.Path, Status: status})
	st.mu.Unlock()
	writeJSON(w, status, errorBody(fmt.Sprintf("vaultfake injected %d on %s %s", status, r.Method, r.URL.Path)))
	return true
}
