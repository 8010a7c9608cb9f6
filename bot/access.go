package bot

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// GroupMembers expands a Slack user group (S…) into user ids.
type GroupMembers interface {
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
}

// Policy is who may do what, from config.access. It is checked on every
// command and every click.
type Policy struct {
	access config.Access
	groups GroupMembers
	ttl    time.Duration

	mu    sync.Mutex
	cache map[string]cachedGroup
}

type cachedGroup struct {
	members []string
	at      time.Time
}

// NewPolicy builds the policy; groups may be nil when config names users only.
func NewPolicy(a config.Access, groups GroupMembers) *Policy {
	return &Policy{access: a, groups: groups, ttl: 5 * time.Minute, cache: map[string]cachedGroup{}}
}

// member reports whether user is listed directly or through a user group.
func (p *Policy) member(ctx context.Context, user string, list []string) (bool, error) {
	for _, id := range list {
		if id == user {
			return true, nil
		}
	}
	for _, id := range list {
		if !strings.HasPrefix(id, "S") || p.groups == nil {
			continue
		}
		members, err := p.groupMembers(ctx, id)
		if err != nil {
			return false, err
		}
		if slices.Contains(members, user) {
			return true, nil
		}
	}
	return false, nil
}

func (p *Policy) groupMembers(ctx context.Context, id string) ([]string, error) {
	p.mu.Lock()
	c, ok := p.cache[id]
	p.mu.Unlock()
	if ok && time.Since(c.at) < p.ttl {
		return c.members, nil
	}
	members, err := p.groups.GroupMembers(ctx, id)
	if err != nil {
		if ok {
			// Slack is unreachable (the break-glass case): the last
			// membership seen decides rather than nobody in the group.
			return c.members, nil
		}
		return nil, fmt.Errorf("expanding user group %s: %w", id, err)
	}
	p.mu.Lock()
	p.cache[id] = cachedGroup{members: members, at: time.Now()}
	p.mu.Unlock()
	return members, nil
}

func (p *Policy) isAdmin(ctx context.Context, user string) bool {
	ok, _ := p.member(ctx, user, p.access.Admins)
	return ok
}

// CanStart says whether user may start a run.
func (p *Policy) CanStart(ctx context.Context, user string) error {
	ok, err := p.member(ctx, user, p.access.Starters)
	if err != nil {
		return err
	}
	if !ok && !p.isAdmin(ctx, user) {
		return fmt.Errorf("<@%s> is not in access.starters", user)
	}
	return nil
}

// CanDecide says whether user may take a decision on a run.
func (p *Policy) CanDecide(ctx context.Context, run state.Run, step recovery.Step, kind recovery.DecisionKind, user string) error {
	switch kind {
	case recovery.DecideApprove, recovery.DecideReject:
		gate := string(step.Gate)
		ok, err := p.member(ctx, user, p.access.Approvers[gate])
		if err != nil {
			return err
		}
		if !ok && !p.isAdmin(ctx, user) {
			return fmt.Errorf("<@%s> may not decide the %s gate (access.approvers.%s)", user, gate, gate)
		}
		if kind == recovery.DecideApprove && step.Gate == recovery.GateCutover && p.access.TwoPersonRule && user == run.Initiator {
			return fmt.Errorf("two-person rule: <@%s> started this run and may not approve its cutover", user)
		}
		return nil
	default: // retry, skip, abort: the people who may start or approve
		lists := [][]string{p.access.Starters, p.access.Admins}
		for _, l := range p.access.Approvers {
			lists = append(lists, l)
		}
		for _, l := range lists {
			if ok, err := p.member(ctx, user, l); err != nil {
				return err
			} else if ok {
				return nil
			}
		}
		return fmt.Errorf("<@%s> may not %s runs (not a starter, approver or admin)", user, kind)
	}
}

// Authorizer adapts the policy to the engine's hook, so decisions that do
// not come through Slack are checked the same way.
func (p *Policy) Authorizer() recovery.Authorizer {
	return func(run state.Run, step recovery.Step, kind recovery.DecisionKind, user string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return p.CanDecide(ctx, run, step, kind, user)
	}
}
