package bot

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

func TestDecidedLineNamesTheBreakGlassOperatorBeforeTheReason(t *testing.T) {
	at := time.Date(2026, 11, 25, 14, 5, 0, 0, time.UTC)
	op := Operator{Name: "alice", UserID: "U01ALICE"}
	cases := []struct {
		reason string
		want   string
	}{
		{op.mark(""), "Approved by <@U01ALICE> via break-glass CLI (alice) at 14:05 UTC"},
		{op.mark("MR reviewed by two"), "Approved by <@U01ALICE> via break-glass CLI (alice) at 14:05 UTC — MR reviewed by two"},
		{"MR reviewed by two", "Approved by <@U01ALICE> at 14:05 UTC — MR reviewed by two"},
		{"via break-glass CLI without a name", "Approved by <@U01ALICE> at 14:05 UTC — via break-glass CLI without a name"},
	}
	for _, c := range cases {
		got := decidedLine(state.Decision{Kind: "approve", By: "U01ALICE", Reason: c.reason, DecidedAt: at})
		if got != c.want {
			t.Errorf("reason %q:\n got %q\nwant %q", c.reason, got, c.want)
		}
	}
}

func TestOperatorMapsANameToItsSlackUserAndListsTheNamesWhenUnknown(t *testing.T) {
	b := &Bot{cfg: &config.Config{Access: config.Access{BreakGlass: map[string]string{"bob": "U02BOB", "alice": "U01ALICE"}}}}
	op, err := b.Operator("alice")
	if err != nil || op != (Operator{Name: "alice", UserID: "U01ALICE"}) {
		t.Fatalf("alice = %+v, %v", op, err)
	}
	for _, name := range []string{"mallory", ""} {
		_, err := b.Operator(name)
		if !errors.Is(err, ErrUnknownOperator) || !strings.Contains(err.Error(), "access.break_glass lists: alice, bob") {
			t.Errorf("%q: err = %v", name, err)
		}
	}
	none := &Bot{cfg: &config.Config{}}
	if _, err := none.Operator("alice"); !errors.Is(err, ErrUnknownOperator) || !strings.Contains(err.Error(), "lists no operators") {
		t.Errorf("without break_glass: err = %v", err)
	}
}

// flakyGroups answers once, then fails as Slack does when it is down.
type flakyGroups struct {
	mu    sync.Mutex
	calls int
}

func (g *flakyGroups) GroupMembers(context.Context, string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.calls++
	if g.calls == 1 {
		return []string{"U_SRE1"}, nil
	}
	return nil, errors.New("slack server error: 503 Service Unavailable")
}

func TestPolicyKeepsTheLastGroupMembershipSeenWhileSlackIsUnreachable(t *testing.T) {
	groups := &flakyGroups{}
	p := NewPolicy(config.Access{Starters: []string{"S_SRE"}}, groups)
	p.ttl = 0 // every check asks Slack again
	ctx := context.Background()
	if err := p.CanStart(ctx, "U_SRE1"); err != nil {
		t.Fatalf("with Slack up: %v", err)
	}
	if err := p.CanStart(ctx, "U_SRE1"); err != nil {
		t.Errorf("with Slack down, the member seen before is refused: %v", err)
	}
	if err := p.CanStart(ctx, "U_RANDOM"); err == nil {
		t.Error("with Slack down, a non-member may start")
	}
	if groups.calls < 3 {
		t.Errorf("the group was asked %d times; the stale answer should only stand in when Slack fails", groups.calls)
	}

	cold := NewPolicy(config.Access{Starters: []string{"S_SRE"}}, &flakyGroups{calls: 1})
	if err := cold.CanStart(ctx, "U_SRE1"); err == nil || !strings.Contains(err.Error(), "expanding user group S_SRE") {
		t.Errorf("never seen and Slack down: err = %v, want the expansion error", err)
	}
}

func TestKeepWarmPrimesGroupMembersSoTheyCanActWhenSlackIsDownLater(t *testing.T) {
	groups := &flakyGroups{}
	p := NewPolicy(config.Access{Approvers: map[string][]string{"merge": {"S_SRE", "U_LEAD"}}}, groups)
	p.ttl = 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.KeepWarm(ctx, time.Hour) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		groups.mu.Lock()
		n := groups.calls
		groups.mu.Unlock()
		if n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("KeepWarm did not expand the group")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	// Nobody used the policy before Slack went down; the warm-up suffices.
	if err := p.CanDecide(context.Background(), state.Run{}, recovery.Step{ID: "gitops.merge", Gate: recovery.GateMerge}, recovery.DecideApprove, "U_SRE1"); err != nil {
		t.Errorf("a group member is refused with Slack down after the warm-up: %v", err)
	}
}
