// Package config reads drbot's one YAML configuration file, strictly: every
// unknown key, wrong type, missing or bad value is reported at once, each with
// its dotted key path and line. Secrets are never written in the file; they are
// references to environment variables or files (see Secret).
//
// Files: types.go (the structs and value types), decode.go (the generic
// reflection walker over yaml.Node), validate.go (the cross-field rules).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	_ "time/tzdata" // drill time zones validate even in images without /usr/share/zoneinfo

	"gopkg.in/yaml.v3"
)

// Problem is one thing wrong with the file.
type Problem struct {
	Line, Column int
	Path         string // dotted key path, e.g. targets[0].cluster.provider
	Msg          string
}

// Errors is every problem found in one file, sorted by line.
type Errors struct {
	File string
	List []Problem
}

// Error prints one problem per line as file:line:col: path: msg.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, p := range e.List {
		lines[i] = formatProblem(e.File, p)
	}
	return strings.Join(lines, "\n")
}

func formatProblem(file string, p Problem) string {
	var b strings.Builder
	if file != "" {
		b.WriteString(file + ":")
	}
	b.WriteString(strconv.Itoa(p.Line))
	if p.Column > 0 {
		b.WriteString(":" + strconv.Itoa(p.Column))
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Load reads and parses the config file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	return Parse(data, path)
}

var yamlSyntax = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse decodes and validates a config. filename is used in messages only.
// On any problem it returns nil and an *Errors listing all of them.
func Parse(data []byte, filename string) (*Config, error) {
	fail := func(line int, msg string) error {
		return &Errors{File: filename, List: []Problem{{Line: line, Msg: msg}}}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fail(1, "the config file is empty")
		}
		if m := yamlSyntax.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, fail(line, "invalid YAML: "+m[2])
		}
		return nil, fail(1, "invalid YAML: "+strings.TrimPrefix(err.Error(), "yaml: "))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if line == 0 {
			line = 1
		}
		return nil, fail(line, "more than one YAML document; drbot reads exactly one")
	}
	root := resolve(doc.Content[0])
	if isNull(root) {
		return nil, fail(1, "the config file is empty")
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Errors{File: filename, List: []Problem{{Line: root.Line, Column: root.Column,
			Msg: "want a mapping of sections (slack:, targets:, …) at the top level, got " + describe(root)}}}
	}

	d := newDecoder()
	d.pos[""] = posOf(root)
	c := &Config{}
	d.decode(root, reflect.ValueOf(c).Elem(), "")
	warnings := validate(c, d)

	problems := dedupe(d.problems)
	if len(problems) > 0 {
		sortProblems(problems)
		return nil, &Errors{File: filename, List: problems}
	}
	sortProblems(warnings)
	c.meta = &loadInfo{file: filename, warnings: warnings, secrets: d.secrets}
	return c, nil
}

func dedupe(ps []Problem) []Problem {
	seen := map[Problem]bool{}
	out := ps[:0:0]
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

// Warnings are things that load but look wrong (e.g. a drill against a
// target that is not drill_only), formatted like errors.
func (c *Config) Warnings() []string {
	if c.meta == nil {
		return nil
	}
	out := make([]string, len(c.meta.warnings))
	for i, w := range c.meta.warnings {
		out[i] = formatProblem(c.meta.file, w)
	}
	return out
}

// CheckSecrets resolves every configured secret now and reports the ones that
// cannot be read (for `drbot validate`). Messages never contain values.
func (c *Config) CheckSecrets() error {
	if c.meta == nil {
		return nil
	}
	var list []Problem
	for _, r := range c.meta.secrets {
		if _, err := r.secret.Resolve(); err != nil {
			list = append(list, Problem{Line: r.at.line, Column: r.at.col, Path: r.path, Msg: err.Error()})
		}
	}
	if len(list) == 0 {
		return nil
	}
	return &Errors{File: c.meta.file, List: list}
}
