// Package faultplan is the rate-based fault logic the stand-ins share: a
// seeded generator decides which calls fail (same seed, same call
// sequence, same failures), an optional filter picks the calls that may
// fail, and every failure is recorded in order.
package faultplan

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
)

// Rule is what a Plan follows; Call is what a stand-in sees of a request,
// Choice one way of failing it.
type Rule[Call, Choice any] struct {
	Rate float64 // 0..1: share of matching calls that fail; 0 stops failing
	Seed uint64
	// Stream is the generator's second word, one per stand-in so equal
	// seeds in different stand-ins do not fail in lockstep.
	Stream uint64
	// Only, when set, picks the calls that may fail.
	Only func(Call) bool
	// Choices are the failures to choose from, uniformly; must not be
	// empty while Rate > 0.
	Choices []Choice
}

// Plan holds one stand-in's Rule and the failures it caused. The zero
// Plan fails nothing.
type Plan[Call, Choice, Record any] struct {
	mu     sync.Mutex
	rule   Rule[Call, Choice]
	rng    *rand.Rand
	failed []Record
}

// Set replaces the rule and restarts the generator from its seed; the
// failures recorded so far stay.
func (p *Plan[Call, Choice, Record]) Set(r Rule[Call, Choice]) {
	r.Choices = slices.Clone(r.Choices)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = r
	p.rng = rand.New(rand.NewPCG(r.Seed, r.Stream))
}

// Decide reports whether call fails and how; when it does, record(choice)
// is appended to Failed under the same lock, so the records keep the
// order of the decisions. rate is the Rule's, for messages.
func (p *Plan[Call, Choice, Record]) Decide(call Call, record func(Choice) Record) (choice Choice, rate float64, fail bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.rule
	if r.Rate <= 0 || (r.Only != nil && !r.Only(call)) || p.rng.Float64() >= r.Rate {
		return choice, r.Rate, false
	}
	choice = r.Choices[p.rng.IntN(len(r.Choices))]
	p.failed = append(p.failed, record(choice))
	return choice, r.Rate, true
}

// Failed lists the recorded failures, in order.
func (p *Plan[Call, Choice, Record]) Failed() []Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.failed)
}

// Plans keeps one Plan per key (a stand-in's *Server), so a stand-in can
// hold its plan beside its Server struct instead of in it.
type Plans[K comparable, Call, Choice, Record any] struct {
	m sync.Map // K → *Plan
}

// Of returns k's Plan, made (failing nothing) on first use.
func (ps *Plans[K, Call, Choice, Record]) Of(k K) *Plan[Call, Choice, Record] {
	if v, ok := ps.m.Load(k); ok {
		return v.(*Plan[Call, Choice, Record])
	}
	v, _ := ps.m.LoadOrStore(k, new(Plan[Call, Choice, Record]))
	return v.(*Plan[Call, Choice, Record])
}

// HTTPRule fails a share of an HTTP stand-in's requests with a 5xx before
// they have any effect.
type HTTPRule struct {
	Rate     float64 // 0..1
	Seed     uint64
	Statuses []int // chosen uniformly; empty means the stand-in's default
	// Only, when set, picks the requests that may fail (e.g. drbot's, not
	// the Argo CD stand-in's).
	Only func(*http.Request) bool
}

// Request is one request an HTTPRule failed.
type Request struct {
	Method, Path string
	Status       int
}

// HTTP holds an HTTP stand-in's rules, one per server.
type HTTP struct {
	Stream   uint64 // the stand-in's generator stream (see Rule.Stream)
	Statuses []int  // the statuses an HTTPRule without any picks from
	plans    Plans[any, *http.Request, int, Request]
}

// Set replaces server's rule; a zero Rate stops failing.
func (h *HTTP) Set(server any, r HTTPRule) {
	if len(r.Statuses) == 0 {
		r.Statuses = h.Statuses
	}
	h.plans.Of(server).Set(Rule[*http.Request, int]{Rate: r.Rate, Seed: r.Seed, Stream: h.Stream, Only: r.Only, Choices: r.Statuses})
}

// Fail reports whether server's rule fails r, and with which status.
func (h *HTTP) Fail(server any, r *http.Request) (status int, fail bool) {
	status, _, fail = h.plans.Of(server).Decide(r, func(status int) Request {
		return Request{Method: r.Method, Path: r.URL.Path, Status: status}
	})
	return status, fail
}

// Failed lists the requests server's rules failed, in order.
func (h *HTTP) Failed(server any) []Request { return h.plans.Of(server).Failed() }
