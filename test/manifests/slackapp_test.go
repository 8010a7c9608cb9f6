package manifests

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"sigs.k8s.io/yaml"

	"github.com/drbot/drbot/recovery/standard"
)

// slackMethodScopes maps each slack-go Client method drbot may call to the bot scopes Slack requires for
// it, for both public and private channels where the method takes either (drbot finds its announce
// channel and an existing incident channel among public and private ones).
var slackMethodScopes = map[string][]string{
	"PostMessageContext":               {"chat:write"},                         // chat.postMessage
	"UpdateMessageContext":             {"chat:write"},                         // chat.update
	"PostEphemeralContext":             {"chat:write"},                         // chat.postEphemeral
	"CreateConversationContext":        {"channels:manage"},                    // conversations.create (public channels only)
	"SetTopicOfConversationContext":    {"channels:manage", "groups:write"},    // conversations.setTopic
	"SetPurposeOfConversationContext":  {"channels:manage", "groups:write"},    // conversations.setPurpose
	"InviteUsersToConversationContext": {"channels:manage", "groups:write"},    // conversations.invite
	"GetConversationsContext":          {"channels:read", "groups:read"},       // conversations.list public_channel,private_channel
	"GetConversationHistoryContext":    {"channels:history", "groups:history"}, // conversations.history
	"GetConversationRepliesContext":    {"channels:history", "groups:history"}, // conversations.replies
	"AddPinContext":                    {"pins:write"},                         // pins.add
	"UploadFileContext":                {"files:write"},                        // files.getUploadURLExternal + files.completeUploadExternal
	"GetUserGroupMembersContext":       {"usergroups:read"},                    // usergroups.users.list
	"GetUserGroupsContext":             {"usergroups:read"},                    // usergroups.list (invites by @handle)
	"OpenViewContext":                  nil,                                    // views.open: needs only the trigger_id
	"GetConversationInfoContext":       {"channels:read", "groups:read"},       // conversations.info (readiness: the announce channel)
	"GetUserInfoContext":               {"users:read"},                         // users.info (readiness: approvers exist)
	"AuthTestContext":                  nil,                                    // auth.test: any token
}

// slackCalls finds every call of a slack.Client Web API method in drbot's non-test Go code (test stand-ins
// and tools excluded), with where it is called.
func slackCalls(t *testing.T, root string) map[string][]string {
	t.Helper()
	methods := map[string]string{} // method name → its Context form
	ct := reflect.TypeOf(&slack.Client{})
	for i := 0; i < ct.NumMethod(); i++ {
		name := ct.Method(i).Name
		if base, ok := strings.CutSuffix(name, "Context"); ok {
			methods[name] = name
			if _, ok := ct.MethodByName(base); ok {
				methods[base] = name
			}
		}
	}
	calls := map[string][]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel == "test" || rel == "tools" || strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if !strings.Contains(string(src), "github.com/slack-go/slack") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, src, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); ok && id.Name == "slack" {
				return true // package functions (PostWebhookContext answers through a response_url, no scope)
			}
			if m, ok := methods[sel.Sel.Name]; ok {
				pos := fset.Position(call.Pos())
				where, _ := filepath.Rel(root, pos.Filename)
				calls[m] = append(calls[m], where+":"+strconv.Itoa(pos.Line))
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatalf("scanning the code for Slack calls: %v", err)
	}
	return calls
}

type slackManifest struct {
	Features struct {
		BotUser *struct {
			DisplayName string `json:"display_name"`
		} `json:"bot_user"`
		SlashCommands []struct {
			Command     string `json:"command"`
			Description string `json:"description"`
			URL         string `json:"url"`
		} `json:"slash_commands"`
	} `json:"features"`
	OAuthConfig struct {
		Scopes struct {
			Bot  []string `json:"bot"`
			User []string `json:"user"`
		} `json:"scopes"`
	} `json:"oauth_config"`
	Settings struct {
		Interactivity struct {
			IsEnabled  bool   `json:"is_enabled"`
			RequestURL string `json:"request_url"`
		} `json:"interactivity"`
		EventSubscriptions *struct{} `json:"event_subscriptions"`
		SocketModeEnabled  bool      `json:"socket_mode_enabled"`
	} `json:"settings"`
}

func loadSlackManifest(t *testing.T) slackManifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot(t), "manifests", "slack-app.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m slackManifest
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("slack-app.yaml: %v", err)
	}
	return m
}

func TestSlackAppUsesSocketModeWithTheDrCommandAndInteractivity(t *testing.T) {
	m := loadSlackManifest(t)
	if !m.Settings.SocketModeEnabled {
		t.Error("socket_mode_enabled is not true: drbot connects over Socket Mode and has no public URL")
	}
	if !m.Settings.Interactivity.IsEnabled {
		t.Error("interactivity is off: the approval buttons and the reject modal need it")
	}
	if m.Settings.Interactivity.RequestURL != "" {
		t.Errorf("interactivity.request_url %q: Socket Mode needs none", m.Settings.Interactivity.RequestURL)
	}
	if m.Settings.EventSubscriptions != nil {
		t.Error("event_subscriptions is set, but drbot handles no Events API events")
	}
	if m.Features.BotUser == nil {
		t.Error("no bot_user: the xoxb token needs one")
	}
	if len(m.Features.SlashCommands) != 1 || m.Features.SlashCommands[0].Command != "/dr" || m.Features.SlashCommands[0].URL != "" {
		t.Errorf("slash_commands = %+v, want exactly /dr without a url", m.Features.SlashCommands)
	}
	if len(m.OAuthConfig.Scopes.User) > 0 {
		t.Errorf("user scopes %q: drbot acts only as its bot", m.OAuthConfig.Scopes.User)
	}
}

// TestSlackAppScopesAreExactlyWhatTheCodeCalls derives the bot scopes from the Slack methods the code
// calls: a new call without its scope fails here, and so does a scope nothing uses any more.
func TestSlackAppScopesAreExactlyWhatTheCodeCalls(t *testing.T) {
	calls := slackCalls(t, repoRoot(t))
	for _, m := range []string{"PostMessageContext", "CreateConversationContext", "GetUserGroupMembersContext"} {
		if len(calls[m]) == 0 {
			t.Fatalf("the scan found no call of %s, which bot/ and cmd/drbot/ make: the scan is broken (found %v)", m, calls)
		}
	}
	want := map[string]bool{"commands": true} // the /dr slash command
	for m, where := range calls {
		scopes, known := slackMethodScopes[m]
		if !known {
			t.Errorf("slack.Client.%s is called (%s) but slackMethodScopes does not say which scope it needs; add it and the scope to manifests/slack-app.yaml",
				m, strings.Join(where, ", "))
			continue
		}
		for _, s := range scopes {
			want[s] = true
		}
	}
	var wantList []string
	for s := range want {
		wantList = append(wantList, s)
	}
	sort.Strings(wantList)
	got := slices.Clone(loadSlackManifest(t).OAuthConfig.Scopes.Bot)
	sort.Strings(got)
	if !slices.Equal(got, wantList) {
		t.Errorf("bot scopes in slack-app.yaml:\n  %q\nwant exactly (from the calls in the code):\n  %q", got, wantList)
	}
	for m := range slackMethodScopes {
		if _, called := calls[m]; !called {
			t.Logf("note: slackMethodScopes lists %s, which nothing calls now", m)
		}
	}
}

// TestDeclaredSlackScopesAreTheAppManifests keeps the permission declaration (which the runbook reference
// and the readiness checks read) on the scopes the Slack app really asks for.
func TestDeclaredSlackScopesAreTheAppManifests(t *testing.T) {
	want := slices.Clone(loadSlackManifest(t).OAuthConfig.Scopes.Bot)
	sort.Strings(want)
	if got := standard.Permissions().SlackScopes(); !slices.Equal(got, want) {
		t.Errorf("recovery/standard/permissions.go declares Slack scopes %q; manifests/slack-app.yaml asks for %q", got, want)
	}
}
