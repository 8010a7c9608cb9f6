package bot

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCommandAcceptsEveryDocumentedForm(t *testing.T) {
	cases := map[string]Command{
		"":              {Name: "help"},
		"help":          {Name: "help"},
		"start":         {Name: "start"},
		"start prod-eu": {Name: "start", Target: "prod-eu"},
		`start prod-eu --drill --reason "game day"`: {Name: "start", Target: "prod-eu", Drill: true, Reason: "game day"},
		"start --reason=outage prod-eu":             {Name: "start", Target: "prod-eu", Reason: "outage"},
		"start prod-eu —drill":                      {Name: "start", Target: "prod-eu", Drill: true},
		"START prod-eu --reason “curly quotes”":     {Name: "start", Target: "prod-eu", Reason: "curly quotes"},
		"status":                           {Name: "status"},
		"status prod-eu-20261125-1042-abc": {Name: "status", RunID: "prod-eu-20261125-1042-abc"},
		"plan prod-eu --drill":             {Name: "plan", Target: "prod-eu", Drill: true},
		`abort --reason "primary is back"`: {Name: "abort", Reason: "primary is back"},
		`abort r1 --reason x`:              {Name: "abort", RunID: "r1", Reason: "x"},
		"resume r1":                        {Name: "resume", RunID: "r1"},
		"history":                          {Name: "history"},
		"postmortem r1":                    {Name: "postmortem", RunID: "r1"},
	}
	for text, want := range cases {
		got, err := ParseCommand(text)
		if err != nil || got != want {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v", text, got, err, want)
		}
	}
}

func TestParseCommandExplainsMistakesWithTheCorrectForm(t *testing.T) {
	cases := map[string]string{
		"strat prod-eu":            `unknown command "strat"`,
		"start --force":            "/dr start has no flag --force",
		"start --reason":           "--reason needs a value",
		"start a b":                `unexpected argument "b"`,
		"history now":              `unexpected argument "now"`,
		"abort r1":                 "/dr abort needs --reason",
		`start --reason "unclosed`: "a quote is not closed",
		"plan --drill=yes":         "--drill takes no value",
	}
	for text, want := range cases {
		_, err := ParseCommand(text)
		var ue *UsageError
		if !errors.As(err, &ue) || !strings.Contains(ue.Error(), want) || !strings.Contains(ue.Error(), "Usage: /dr") {
			t.Errorf("ParseCommand(%q) error = %v; want it to contain %q and a usage line", text, err, want)
		}
	}
}

func TestHelpListsEveryCommandWithAnExample(t *testing.T) {
	h := HelpText()
	for _, s := range commandSpecs {
		if !strings.Contains(h, s.usage) || !strings.Contains(h, s.example) {
			t.Errorf("help lacks %s or its example", s.name)
		}
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, seed := range []string{"", "start prod-eu --drill --reason \"x y\"", "abort --reason=", "—", "\"", "plan --drill=1", "status \u00a0 r1", "check prod-eu", "override r1 —reason=“x”"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, text string) {
		cmd, err := ParseCommand(text) // must never panic
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) || ue.Usage == "" {
				t.Fatalf("ParseCommand(%q) returned %T without a usage: %v", text, err, err)
			}
			if utf8.ValidString(text) && !utf8.ValidString(ue.Msg) {
				t.Fatalf("error message is not valid UTF-8: %q", ue.Msg)
			}
			return
		}
		if _, ok := specFor(cmd.Name); !ok {
			t.Fatalf("ParseCommand(%q) = unknown command %q", text, cmd.Name)
		}
		if spec, _ := specFor(cmd.Name); spec.needReason && cmd.Reason == "" {
			t.Fatalf("%s without a reason accepted: %q", cmd.Name, text)
		}
		// The canonical form of what was understood means the same thing.
		again, err := ParseCommand(formatCommand(cmd))
		if err != nil || again != cmd {
			t.Fatalf("ParseCommand(%q) = %+v, but its canonical form %q parses to %+v, %v", text, cmd, formatCommand(cmd), again, err)
		}
	})
}

// formatCommand writes a Command the way a person would type it.
func formatCommand(c Command) string {
	parts := []string{c.Name}
	spec, _ := specFor(c.Name)
	switch {
	case spec.arg == "target" && c.Target != "":
		parts = append(parts, `"`+c.Target+`"`)
	case spec.arg == "run" && c.RunID != "":
		parts = append(parts, `"`+c.RunID+`"`)
	}
	if c.Drill {
		parts = append(parts, "--drill")
	}
	if c.Reason != "" {
		parts = append(parts, `--reason "`+c.Reason+`"`)
	}
	return strings.Join(parts, " ")
}
