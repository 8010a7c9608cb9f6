package faultplan_test

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/drbot/drbot/test/faultplan"
)

type plan = faultplan.Plan[int, string, string]

func decideAll(p *plan, calls int) []string {
	var got []string
	for c := range calls {
		if choice, _, fail := p.Decide(c, func(ch string) string { return ch }); fail {
			got = append(got, choice)
		} else {
			got = append(got, "-")
		}
	}
	return got
}

func TestZeroPlanFailsNothingAndRecordsNothing(t *testing.T) {
	var p plan
	if got := decideAll(&p, 50); slices.ContainsFunc(got, func(s string) bool { return s != "-" }) {
		t.Errorf("zero plan failed calls: %v", got)
	}
	if f := p.Failed(); f != nil {
		t.Errorf("Failed = %v, want nil", f)
	}
}

func TestSameSeedFailsTheSameCallsWithTheSameChoices(t *testing.T) {
	rule := faultplan.Rule[int, string]{Rate: 0.5, Seed: 7, Stream: 1, Choices: []string{"a", "b", "c"}}
	var p1, p2 plan
	p1.Set(rule)
	p2.Set(rule)
	a, b := decideAll(&p1, 200), decideAll(&p2, 200)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed decided differently:\n%v\n%v", a, b)
	}
	fails := 200 - len(slices.DeleteFunc(slices.Clone(a), func(s string) bool { return s != "-" }))
	if fails < 60 || fails > 140 {
		t.Errorf("rate 0.5 failed %d of 200 calls", fails)
	}
	want := slices.DeleteFunc(a, func(s string) bool { return s == "-" })
	if got := p1.Failed(); !slices.Equal(got, want) {
		t.Errorf("Failed = %v, want the failures in decision order %v", got, want)
	}
	p1.Set(faultplan.Rule[int, string]{Rate: 0.5, Seed: 8, Stream: 1, Choices: []string{"a", "b", "c"}})
	if c := decideAll(&p1, 200); slices.Equal(c, b) {
		t.Error("another seed decided exactly the same")
	}
}

func TestOnlyFiltersCallsAndZeroRateStopsButKeepsRecords(t *testing.T) {
	var p plan
	p.Set(faultplan.Rule[int, string]{Rate: 1, Only: func(c int) bool { return c%2 == 0 }, Choices: []string{"x"}})
	got := decideAll(&p, 4)
	if want := []string{"x", "-", "x", "-"}; !slices.Equal(got, want) {
		t.Errorf("decisions = %v, want %v", got, want)
	}
	p.Set(faultplan.Rule[int, string]{})
	if got := decideAll(&p, 4); slices.Contains(got, "x") {
		t.Errorf("zero rate still failed: %v", got)
	}
	if f := p.Failed(); len(f) != 2 {
		t.Errorf("Failed = %v, want the 2 earlier failures kept", f)
	}
}

func TestPlansGivesEachKeyItsOwnPlan(t *testing.T) {
	var ps faultplan.Plans[string, int, string, string]
	ps.Of("a").Set(faultplan.Rule[int, string]{Rate: 1, Choices: []string{"boom"}})
	if first, again := ps.Of("a"), ps.Of("a"); first != again {
		t.Fatal("Of returned different plans for one key")
	}
	if _, _, fail := ps.Of("b").Decide(1, func(s string) string { return s }); fail {
		t.Error("key b failed under key a's rule")
	}
	if _, _, fail := ps.Of("a").Decide(1, func(s string) string { return s }); !fail {
		t.Error("key a did not fail at rate 1")
	}
}

func TestHTTPUsesTheStandInsDefaultStatusesAndRecordsMethodAndPath(t *testing.T) {
	h := faultplan.HTTP{Stream: 9, Statuses: []int{http.StatusBadGateway}}
	server := new(int)
	h.Set(server, faultplan.HTTPRule{Rate: 1, Only: func(r *http.Request) bool { return r.Method == http.MethodPost }})
	get := httptest.NewRequest(http.MethodGet, "/v1/a", nil)
	post := httptest.NewRequest(http.MethodPost, "/v1/b", nil)
	if _, fail := h.Fail(server, get); fail {
		t.Error("a GET failed although Only picks POSTs")
	}
	if status, fail := h.Fail(server, post); !fail || status != http.StatusBadGateway {
		t.Errorf("POST: fail %v with %d, want the default 502", fail, status)
	}
	if _, fail := h.Fail(new(int), post); fail {
		t.Error("another server failed under this server's rule")
	}
	want := []faultplan.Request{{Method: http.MethodPost, Path: "/v1/b", Status: http.StatusBadGateway}}
	if got := h.Failed(server); !slices.Equal(got, want) {
		t.Errorf("Failed = %+v, want %+v", got, want)
	}
}
