package readiness

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/slack-go/slack"

	"github.com/drbot/drbot/config"
)

// CheckSlack is the id of the Slack check.
const CheckSlack = "slack"

// SlackAPI is the part of slack-go the Slack check reads with.
type SlackAPI interface {
	AuthTestContext(ctx context.Context) (*slack.AuthTestResponse, error)
	GetConversationInfoContext(ctx context.Context, input *slack.GetConversationInfoInput) (*slack.Channel, error)
	GetConversationsContext(ctx context.Context, params *slack.GetConversationsParameters) ([]slack.Channel, string, error)
	GetUserInfoContext(ctx context.Context, user string, options ...slack.GetUserInfoOption) (*slack.User, error)
	GetUserGroupsContext(ctx context.Context, options ...slack.GetUserGroupsOption) ([]slack.UserGroup, error)
}

// ScopeRecorder is an http.RoundTripper that remembers the X-OAuth-Scopes
// header of Slack's last answer: the scopes of the token used.
type ScopeRecorder struct {
	Next http.RoundTripper // nil: http.DefaultTransport

	mu     sync.Mutex
	scopes []string
	seen   bool
}

// RoundTrip passes the request on and records the header.
func (s *ScopeRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	next := s.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	if err == nil {
		if h, ok := resp.Header["X-Oauth-Scopes"]; ok {
			var scopes []string
			for _, part := range strings.Split(strings.Join(h, ","), ",") {
				if p := strings.TrimSpace(part); p != "" {
					scopes = append(scopes, p)
				}
			}
			s.mu.Lock()
			s.scopes, s.seen = scopes, true
			s.mu.Unlock()
		}
	}
	return resp, err
}

// Scopes are the scopes last reported, and whether any answer reported them.
func (s *ScopeRecorder) Scopes() ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.scopes), s.seen
}

// RequiredSlackScopes are the bot scopes drbot uses (manifests/slack-app.yaml);
// drbot passes the declared ones (permissions.Set.SlackScopes).
var RequiredSlackScopes = []string{"commands", "chat:write", "channels:manage", "channels:read", "channels:history",
	"groups:read", "groups:write", "groups:history", "pins:write", "usergroups:read", "users:read", "files:write"}

// SlackCheck reads, and never writes: the announce (and readiness)
// channel exists, every user and user group named in access,
// slack.invite and readiness.owners resolves (groups to at least one
// user), and the bot token can create channels.
type SlackCheck struct {
	Config *config.Config
	API    SlackAPI
	// Scopes reads the token's scopes off Slack's answers (nil: not checked).
	Scopes *ScopeRecorder
	// Required are the scopes the token must have (RequiredSlackScopes when empty).
	Required []string
}

// ID is the check's id.
func (c *SlackCheck) ID() string { return CheckSlack }

// Run checks once: Slack is not about one target.
func (c *SlackCheck) Run(ctx context.Context, _ []*config.Target) []Result {
	const title = "Slack: channels, people and groups resolve; the bot can create channels"
	res := Result{Check: CheckSlack, Title: title, Status: Pass}
	var fixes []string
	fail := func(evidence, fix string) {
		res.Status = Fail
		res.Evidence = append(res.Evidence, evidence)
		if !slices.Contains(fixes, fix) {
			fixes = append(fixes, fix)
		}
	}
	done := func() []Result {
		res.Fix = strings.Join(fixes, "; ")
		return []Result{res}
	}

	auth, err := c.API.AuthTestContext(ctx)
	if err != nil {
		fail("auth.test with the bot token: "+firstLine(err.Error()), "check slack.bot_token")
		return done()
	}
	res.Evidence = append(res.Evidence, fmt.Sprintf("bot token is valid: %s in %s", auth.User, auth.Team))
	if c.Scopes != nil {
		scopes, seen := c.Scopes.Scopes()
		var missing []string
		required := c.Required
		if len(required) == 0 {
			required = RequiredSlackScopes
		}
		for _, want := range required {
			if !slices.Contains(scopes, want) {
				missing = append(missing, want)
			}
		}
		switch {
		case !seen:
			if res.Status == Pass {
				res.Status = Warn
			}
			res.Evidence = append(res.Evidence, "Slack did not report the token's scopes (no X-OAuth-Scopes header): channel creation not verified")
			fixes = append(fixes, "compare the app's scopes with manifests/slack-app.yaml")
		case slices.Contains(missing, "channels:manage"):
			fail(fmt.Sprintf("the bot token lacks channels:manage: drbot cannot create incident channels (missing: %s)", strings.Join(missing, ", ")),
				"add the missing scopes to the Slack app (manifests/slack-app.yaml) and reinstall it")
		case len(missing) > 0:
			fail("the bot token lacks scopes: "+strings.Join(missing, ", "), "add the missing scopes to the Slack app (manifests/slack-app.yaml) and reinstall it")
		default:
			res.Evidence = append(res.Evidence, "the bot token has every scope drbot uses, channels:manage included")
		}
	}

	channels := []struct{ key, name string }{{"slack.announce_channel", c.Config.Slack.AnnounceChannel}}
	if ch := c.Config.Readiness.Channel; ch != "" && ch != c.Config.Slack.AnnounceChannel {
		channels = append(channels, struct{ key, name string }{"readiness.channel", ch})
	}
	for _, ch := range channels {
		if ch.name == "" {
			continue
		}
		found, err := c.findChannel(ctx, ch.name)
		switch {
		case err != nil:
			fail(fmt.Sprintf("%s %s: %s", ch.key, ch.name, firstLine(err.Error())), "create the channel and invite drbot, or fix "+ch.key)
		case found == nil:
			fail(fmt.Sprintf("%s %s does not exist or drbot cannot see it", ch.key, ch.name), "create the channel and invite drbot, or fix "+ch.key)
		case found.IsArchived:
			fail(fmt.Sprintf("%s %s (%s) is archived", ch.key, ch.name, found.ID), "unarchive it or name another channel in "+ch.key)
		default:
			res.Evidence = append(res.Evidence, fmt.Sprintf("%s %s exists (%s)", ch.key, ch.name, found.ID))
		}
	}

	groups, gerr := c.API.GetUserGroupsContext(ctx, slack.GetUserGroupsOptionIncludeUsers(true))
	byKey := map[string]slack.UserGroup{}
	for _, g := range groups {
		byKey[g.ID] = g
		byKey["@"+g.Handle] = g
	}
	users := map[string]string{} // id → "" when it resolves, else why not
	people := c.people()
	resolved := 0
	for _, ref := range sortedKeys(people) {
		where := strings.Join(people[ref], ", ")
		switch {
		case strings.HasPrefix(ref, "S") || strings.HasPrefix(ref, "@"):
			if gerr != nil {
				fail(fmt.Sprintf("cannot list user groups (needed for %s): %s", ref, firstLine(gerr.Error())), "give the Slack app the usergroups:read scope")
				continue
			}
			g, ok := byKey[ref]
			switch {
			case !ok:
				fail(fmt.Sprintf("user group %s (in %s) does not exist", ref, where), "fix the user group id or handle in the config")
			case g.DateDelete != 0:
				fail(fmt.Sprintf("user group %s (in %s) is disabled", ref, where), "enable the group or name another")
			case len(g.Users) == 0 && g.UserCount == 0:
				fail(fmt.Sprintf("user group %s (in %s) has no members", ref, where), "add people to the group")
			default:
				resolved++
			}
		default:
			why, seen := users[ref]
			if !seen {
				u, err := c.API.GetUserInfoContext(ctx, ref)
				switch {
				case err != nil:
					why = firstLine(err.Error())
				case u.Deleted:
					why = "deactivated"
				}
				users[ref] = why
			}
			if why != "" {
				fail(fmt.Sprintf("user %s (in %s): %s", ref, where, why), "fix the user id in the config")
				continue
			}
			resolved++
		}
	}
	if resolved > 0 {
		res.Evidence = append(res.Evidence, fmt.Sprintf("%d user(s) and group(s) named in the config resolve", resolved))
	}
	return done()
}

// people maps every user or group reference in the config to where it is named.
func (c *SlackCheck) people() map[string][]string {
	out := map[string][]string{}
	add := func(where string, refs []string) {
		for _, r := range refs {
			r = strings.TrimSpace(r)
			if r != "" && !slices.Contains(out[r], where) {
				out[r] = append(out[r], where)
			}
		}
	}
	a := c.Config.Access
	add("access.starters", a.Starters)
	gates := make([]string, 0, len(a.Approvers))
	for g := range a.Approvers {
		gates = append(gates, g)
	}
	sort.Strings(gates)
	for _, g := range gates {
		add("access.approvers."+g, a.Approvers[g])
	}
	add("access.admins", a.Admins)
	add("slack.invite", c.Config.Slack.Invite)
	add("readiness.owners", c.Config.Readiness.Owners)
	return out
}

// findChannel looks a channel up by id (conversations.info) or #name
// (conversations.list).
func (c *SlackCheck) findChannel(ctx context.Context, ref string) (*slack.Channel, error) {
	name, isName := strings.CutPrefix(ref, "#")
	if !isName {
		ch, err := c.API.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: ref})
		if err != nil && strings.Contains(err.Error(), "channel_not_found") {
			return nil, nil
		}
		return ch, err
	}
	cursor := ""
	for {
		chans, next, err := c.API.GetConversationsContext(ctx, &slack.GetConversationsParameters{Cursor: cursor, Limit: 200, Types: []string{"public_channel", "private_channel"}})
		if err != nil {
			return nil, err
		}
		for i := range chans {
			if chans[i].Name == name {
				return &chans[i], nil
			}
		}
		if next == "" {
			return nil, nil
		}
		cursor = next
	}
}
