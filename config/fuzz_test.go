package config_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/drbot/drbot/config"
)

// fuzzSecrets are the values behind the example's ${VAR} references; no
// message or printout may contain them.
var fuzzSecrets = map[string]string{
	"SLACK_APP_TOKEN": "xapp-fuzz-0000-made-up-app-token",
	"SLACK_BOT_TOKEN": "xoxb-fuzz-0000-made-up-bot-token",
	"GITLAB_TOKEN":    "glpat-fuzz-made-up-gitlab-token",
	"T_VAULT":         "hvs.fuzz-made-up-vault-token",
}

// problemLine is one line of *config.Errors: file:line[:col]: message.
var problemLine = regexp.MustCompile(`^fuzz\.yaml:[1-9][0-9]*(:[1-9][0-9]*)?: .`)

func FuzzLoadConfig(f *testing.F) {
	for k, v := range fuzzSecrets {
		f.Setenv(k, v)
	}
	example, err := os.ReadFile("../examples/drbot.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(example)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, "fuzz.yaml") // must never panic
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v; want exactly one", cfg != nil, err)
		}
		_, err2 := config.Parse(data, "fuzz.yaml")
		if fmt.Sprint(err) != fmt.Sprint(err2) {
			t.Fatalf("Parse is not deterministic:\n%v\n---\n%v", err, err2)
		}
		var texts []string
		if err != nil {
			var ce *config.Errors
			if !errors.As(err, &ce) || len(ce.List) == 0 {
				t.Fatalf("Parse returned %T without problems: %v", err, err)
			}
			for _, p := range ce.List {
				if p.Line < 1 || p.Column < 0 || p.Msg == "" {
					t.Fatalf("problem without a line or message: %+v", p)
				}
			}
			for _, l := range strings.Split(err.Error(), "\n") {
				if !problemLine.MatchString(l) {
					t.Fatalf("error line %q is not file:line: message", l)
				}
			}
			texts = append(texts, err.Error())
		} else {
			texts = append(texts, cfg.Warnings()...)
			texts = append(texts, fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg))
			// Reading *_file secrets from a device could block; env
			// references and ordinary paths are what the check is about.
			if !bytes.Contains(data, []byte("/dev")) && !bytes.Contains(data, []byte("/proc")) && !bytes.Contains(data, []byte("/sys")) {
				if err := cfg.CheckSecrets(); err != nil {
					texts = append(texts, err.Error())
				}
			}
		}
		for name, secret := range fuzzSecrets {
			if bytes.Contains(data, []byte(secret)) {
				continue // written into the file itself: echoing the file is not a leak
			}
			for _, text := range texts {
				if strings.Contains(text, secret) {
					t.Fatalf("the value of %s leaked into: %s", name, text)
				}
			}
		}
	})
}

// Found by FuzzLoadConfig: a mapping that merged itself recursed until the
// stack overflowed, which no recover can catch.
func TestMappingThatMergesItselfIsAProblemNotACrash(t *testing.T) {
	_, err := config.Parse([]byte("slack: &s\n  <<: [*s, *s]\n"), "drbot.yaml")
	if err == nil || !strings.Contains(err.Error(), "drbot.yaml:2:7: slack: << merges a mapping into itself") {
		t.Fatalf("err = %v; want the self-merge reported on line 2", err)
	}
}

func TestNestedMergesAreCappedInsteadOfGrowingExponentially(t *testing.T) {
	var b strings.Builder
	b.WriteString("a0: &a0 {x: 1}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "a%d: &a%d {<<: [*a%d, *a%d]}\n", i, i, i-1, i-1)
	}
	b.WriteString("slack: {<<: [*a40, *a40]}\n")
	_, err := config.Parse([]byte(b.String()), "drbot.yaml") // 2^41 expansions without the cap
	if err == nil || !strings.Contains(err.Error(), "more than 10000 << merges") {
		t.Fatalf("err = %v; want the merge cap reported", err)
	}
}
