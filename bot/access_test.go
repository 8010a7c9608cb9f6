package bot

import (
	"context"
	"strings"
	"testing"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

type staticGroups map[string][]string

func (g staticGroups) GroupMembers(_ context.Context, id string) ([]string, error) { return g[id], nil }

func testPolicy() *Policy {
	return NewPolicy(config.Access{
		Starters:      []string{"U_ONCALL", "S_SRE"},
		Approvers:     map[string][]string{"merge": {"U_LEAD", "S_SRE"}, "cutover": {"U_LEAD", "U_ONCALL"}},
		TwoPersonRule: true,
		Admins:        []string{"U_ADMIN"},
	}, staticGroups{"S_SRE": {"U_SRE1"}})
}

func TestPolicyStartersIncludeGroupMembersAndAdmins(t *testing.T) {
	p := testPolicy()
	ctx := context.Background()
	for _, u := range []string{"U_ONCALL", "U_SRE1", "U_ADMIN"} {
		if err := p.CanStart(ctx, u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	if err := p.CanStart(ctx, "U_RANDOM"); err == nil || !strings.Contains(err.Error(), "access.starters") {
		t.Errorf("U_RANDOM may start: %v", err)
	}
}

func TestPolicyGatesFollowApproversAndTheTwoPersonRule(t *testing.T) {
	p := testPolicy()
	ctx := context.Background()
	run := state.Run{Initiator: "U_ONCALL"}
	merge := recovery.Step{ID: "gitops.merge", Gate: recovery.GateMerge}
	cutover := recovery.Step{ID: "endpoints.apply", Gate: recovery.GateCutover}
	cases := []struct {
		step  recovery.Step
		kind  recovery.DecisionKind
		user  string
		allow bool
	}{
		{merge, recovery.DecideApprove, "U_SRE1", true},
		{merge, recovery.DecideApprove, "U_ONCALL", false}, // not a merge approver
		{cutover, recovery.DecideApprove, "U_LEAD", true},
		{cutover, recovery.DecideApprove, "U_ONCALL", false}, // the initiator: two-person rule
		{cutover, recovery.DecideReject, "U_ONCALL", true},   // rejecting needs no second person
		{cutover, recovery.DecideApprove, "U_SRE1", false},
		{merge, recovery.DecideRetry, "U_SRE1", true},
		{merge, recovery.DecideAbort, "U_RANDOM", false},
	}
	for _, c := range cases {
		err := p.CanDecide(ctx, run, c.step, c.kind, c.user)
		if (err == nil) != c.allow {
			t.Errorf("%s %s by %s: err=%v, want allow=%v", c.kind, c.step.ID, c.user, err, c.allow)
		}
	}
}
