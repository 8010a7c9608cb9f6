// Package bot is drbot's face in Slack: the Socket Mode loop, /dr command
// parsing, interactions, authorisation, Block Kit rendering and the poster
// that drains the outbox at Slack's pace. The engine never imports it.
package bot

import (
	"fmt"
	"strings"
	"unicode"
)

// Command is a parsed `/dr …` invocation.
type Command struct {
	Name   string // help, start, status, plan, abort, resume, history, rollback, postmortem
	Target string // start, plan
	RunID  string // status, abort, resume, rollback, postmortem
	Drill  bool   // start, plan
	Reason string // start (optional), abort and rollback (required)
}

// commandSpec says what each subcommand takes; help text comes from it.
type commandSpec struct {
	name    string
	usage   string
	summary string
	example string
	arg     string // "target", "run" or ""
	flags   map[string]bool
	// needReason makes --reason mandatory.
	needReason bool
}

var commandSpecs = []commandSpec{
	{name: "start", usage: `/dr start [target] [--drill] [--reason "…"]`, summary: "start a recovery (or a drill) of a target in a new incident channel",
		example: `/dr start prod-eu --reason "eu-west-1 control plane unreachable"`, arg: "target", flags: map[string]bool{"drill": false, "reason": true}},
	{name: "status", usage: "/dr status [run]", summary: "show where a run is (default: the active runs)", example: "/dr status", arg: "run"},
	{name: "plan", usage: "/dr plan [target] [--drill]", summary: "show what a run would do and how long it should take, without doing it",
		example: "/dr plan prod-eu", arg: "target", flags: map[string]bool{"drill": false}},
	{name: "abort", usage: `/dr abort [run] --reason "…"`, summary: "stop a run: running steps are cancelled", example: `/dr abort --reason "primary came back"`,
		arg: "run", flags: map[string]bool{"reason": true}, needReason: true},
	{name: "resume", usage: "/dr resume [run]", summary: "pick up a run that drbot is not driving (it resumes by itself after a restart)", example: "/dr resume", arg: "run"},
	{name: "history", usage: "/dr history", summary: "the last runs and drills, with their time to recover", example: "/dr history"},
	{name: "rollback", usage: `/dr rollback [run] --reason "…"`, summary: "put Route 53, CloudFront and API Gateway back to their values before the cutover (asks a cutover approver)",
		example: `/dr rollback --reason "primary region is healthy again"`, arg: "run", flags: map[string]bool{"reason": true}, needReason: true},
	{name: "override", usage: `/dr override [run] --reason "…"`, summary: "let the cutover go ahead although a critical service is not Healthy (a cutover approver other than the initiator; audited), then Retry",
		example: `/dr override --reason "payments is degraded in both regions"`, arg: "run", flags: map[string]bool{"reason": true}, needReason: true},
	{name: "check", usage: "/dr check [target]", summary: "run the read-only readiness checks now (default: every target) and show the report to you",
		example: "/dr check prod-eu", arg: "target"},
	{name: "postmortem", usage: "/dr postmortem [run]", summary: "post the post-mortem of a run (default: the latest)", example: "/dr postmortem", arg: "run"},
	{name: "help", usage: "/dr help", summary: "this list", example: "/dr help"},
}

func specFor(name string) (commandSpec, bool) {
	for _, s := range commandSpecs {
		if s.name == name {
			return s, true
		}
	}
	return commandSpec{}, false
}

// UsageError is a mistake in a command; Usage is the correct form.
type UsageError struct {
	Msg   string
	Usage string
}

func (e *UsageError) Error() string {
	if e.Usage == "" {
		return e.Msg
	}
	return e.Msg + "\nUsage: " + e.Usage
}

// ParseCommand parses the text after `/dr`. Empty text is help.
func ParseCommand(text string) (Command, error) {
	words, err := splitWords(text)
	if err != nil {
		return Command{}, &UsageError{Msg: err.Error(), Usage: "/dr help"}
	}
	if len(words) == 0 {
		return Command{Name: "help"}, nil
	}
	name := strings.ToLower(words[0])
	spec, ok := specFor(name)
	if !ok {
		return Command{}, &UsageError{Msg: fmt.Sprintf("unknown command %q; try one of: %s", clip(words[0]), commandNames()), Usage: "/dr help"}
	}
	cmd := Command{Name: name}
	var positional []string
	for i := 1; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") && !strings.HasPrefix(w, "—") {
			positional = append(positional, w)
			continue
		}
		flag := strings.TrimPrefix(strings.TrimPrefix(w, "—"), "--") // Slack turns "--" into an em dash on some clients
		value, hasValue := "", false
		if k, v, found := strings.Cut(flag, "="); found {
			flag, value, hasValue = k, v, true
		}
		takesValue, known := spec.flags[flag]
		if !known {
			return Command{}, &UsageError{Msg: fmt.Sprintf("/dr %s has no flag --%s", name, clip(flag)), Usage: spec.usage}
		}
		if takesValue && !hasValue {
			if i+1 >= len(words) {
				return Command{}, &UsageError{Msg: fmt.Sprintf("--%s needs a value", flag), Usage: spec.usage}
			}
			i++
			value = words[i]
		}
		if !takesValue && hasValue {
			return Command{}, &UsageError{Msg: fmt.Sprintf("--%s takes no value", flag), Usage: spec.usage}
		}
		switch flag {
		case "drill":
			cmd.Drill = true
		case "reason":
			cmd.Reason = strings.TrimSpace(value)
		}
	}
	switch {
	case len(positional) > 1 || (len(positional) == 1 && spec.arg == ""):
		return Command{}, &UsageError{Msg: fmt.Sprintf("unexpected argument %q", clip(positional[len(positional)-1])), Usage: spec.usage}
	case len(positional) == 1 && spec.arg == "target":
		cmd.Target = positional[0]
	case len(positional) == 1 && spec.arg == "run":
		cmd.RunID = positional[0]
	}
	if spec.needReason && cmd.Reason == "" {
		return Command{}, &UsageError{Msg: fmt.Sprintf("/dr %s needs --reason \"…\" (it goes into the audit log and the post-mortem)", name), Usage: spec.usage}
	}
	if len(cmd.Reason) > 500 {
		return Command{}, &UsageError{Msg: "--reason is longer than 500 characters", Usage: spec.usage}
	}
	return cmd, nil
}

// splitWords splits on spaces, keeping "double-quoted" (or “curly”) text
// together.
func splitWords(text string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inQuote, started := false, false
	for _, r := range text {
		switch {
		case r == '"' || r == '“' || r == '”':
			inQuote = !inQuote
			started = true
		case unicode.IsSpace(r) && !inQuote:
			if started {
				words = append(words, cur.String())
				cur.Reset()
				started = false
			}
		default:
			cur.WriteRune(r)
			started = true
		}
	}
	if inQuote {
		return nil, fmt.Errorf("a quote is not closed")
	}
	if started {
		words = append(words, cur.String())
	}
	return words, nil
}

func commandNames() string {
	names := make([]string, len(commandSpecs))
	for i, s := range commandSpecs {
		names[i] = s.name
	}
	return strings.Join(names, ", ")
}

// HelpText lists every command with an example.
func HelpText() string {
	var b strings.Builder
	b.WriteString("*drbot* — disaster recovery for EKS\n")
	for _, s := range commandSpecs {
		fmt.Fprintf(&b, "• `%s` — %s\n    e.g. `%s`\n", s.usage, s.summary, s.example)
	}
	return b.String()
}

// clip keeps echoed user input short in error messages.
func clip(s string) string {
	r := []rune(s)
	if len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}
