// Command gendocs writes docs/config.md, the configuration reference, from
// the config package itself: the keys, types, defaults and required flags from
// config.Keys() (the decoder's own tag parser), the descriptions from the Go
// doc and line comments in config/*.go, the examples from examples/drbot.yaml.
// The output is deterministic; `make generate` runs it and CI diffs the result.
//
//	go run ./hack/gendocs            # rewrite docs/config.md
//	go run ./hack/gendocs -check     # exit 1 if docs/config.md is stale
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/drbot/drbot/config"
)

const (
	outFile     = "docs/config.md"
	exampleFile = "examples/drbot.yaml"
)

func main() {
	root := flag.String("root", "", "repository root (default: the directory holding go.mod, searched upward)")
	check := flag.Bool("check", false, "do not write; exit 1 if "+outFile+" is not what would be written")
	flag.Parse()
	if err := run(*root, *check); err != nil {
		fmt.Fprintln(os.Stderr, "gendocs:", err)
		os.Exit(1)
	}
}

func run(root string, check bool) error {
	if root == "" {
		var err error
		if root, err = moduleRoot(); err != nil {
			return err
		}
	}
	out, err := render(root)
	if err != nil {
		return err
	}
	path := filepath.Join(root, outFile)
	if check {
		have, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("reading %s: %w", outFile, err)
		}
		if !bytes.Equal(have, out) {
			return fmt.Errorf("%s is stale; run make generate", outFile)
		}
		return nil
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", outFile, err)
	}
	return nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; pass -root")
		}
		dir = parent
	}
}

// comments holds the Go comments of the config package's declarations.
type comments struct {
	types  map[string]string      // type name → doc comment
	fields map[[2]string]fieldDoc // {type, field} → its comments
}

type fieldDoc struct{ doc, line string }

func readComments(dir string) (comments, error) {
	c := comments{types: map[string]string{}, fields: map[[2]string]fieldDoc{}}
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return c, err
	}
	slices.Sort(files)
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			return c, fmt.Errorf("parsing %s: %w", name, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				c.types[ts.Name.Name] = sentence(ts.Name.Name, doc.Text())
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fl := range st.Fields.List {
					for _, n := range fl.Names {
						c.fields[[2]string{ts.Name.Name, n.Name}] = fieldDoc{sentence(n.Name, fl.Doc.Text()), lineComment(fl.Comment.Text())}
					}
				}
			}
		}
	}
	return c, nil
}

var (
	goRef  = regexp.MustCompile(`;? ?\(?see (Config\.)?[A-Za-z]+[A-Z][A-Za-z]*\)?`)
	spaces = regexp.MustCompile(`\s+`)
)

// sentence turns "Name is the thing…" into "The thing…" and "Name does…"
// into "Does…"; a parenthesis right after the name moves to the end.
func sentence(name, text string) string {
	text = tidy(text)
	if text == "" {
		return ""
	}
	rest, ok := strings.CutPrefix(text, name+" ")
	if !ok {
		return period(text)
	}
	paren := ""
	if strings.HasPrefix(rest, "(") {
		if i := strings.Index(rest, ") "); i > 0 {
			paren, rest = rest[:i+1], rest[i+2:]
		}
	}
	for _, verb := range []string{"is ", "are "} {
		rest = strings.TrimPrefix(rest, verb)
	}
	rest = strings.TrimSuffix(capitalize(rest), ".")
	if paren != "" {
		rest += " " + paren
	}
	return period(rest)
}

// capitalize upper-cases a leading plain lowercase word ("the", "gets"), not
// a name or token written in lowercase ("xapp-…", "bbolt", "e.g.").
func capitalize(s string) string {
	word, _, _ := strings.Cut(s, " ")
	word = strings.TrimRight(word, ",;:")
	if word == "" || word == "bbolt" || strings.ContainsFunc(word, func(r rune) bool { return r < 'a' || r > 'z' }) {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

func lineComment(text string) string {
	return period(capitalize(tidy(text)))
}

func tidy(text string) string {
	text = spaces.ReplaceAllString(strings.TrimSpace(text), " ")
	return strings.TrimSpace(goRef.ReplaceAllString(text, ""))
}

func period(s string) string {
	if s == "" || strings.HasSuffix(s, ".") || strings.HasSuffix(s, ")") && strings.HasSuffix(strings.TrimSuffix(s, ")"), ".") {
		return s
	}
	return s + "."
}

// example is what examples/drbot.yaml writes for a key, first occurrence.
type example struct {
	line    int
	value   *yaml.Node
	comment string
}

func readExamples(root string) (map[string]example, error) {
	data, err := os.ReadFile(filepath.Join(root, exampleFile))
	if err != nil {
		return nil, err
	}
	used, err := config.KeysUsed(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", exampleFile, err)
	}
	// The key nodes' comments: KeysUsed gives value nodes, so find the
	// trailing comment on the same line from the raw text.
	lines := strings.Split(string(data), "\n")
	out := map[string]example{}
	for _, u := range used {
		if !u.Known {
			return nil, fmt.Errorf("%s:%d: %s is not a configuration key", exampleFile, u.Line, u.Path)
		}
		if _, seen := out[u.Path]; seen {
			continue
		}
		out[u.Path] = example{line: u.Line, value: u.Value, comment: trailingComment(lines[u.Line-1])}
	}
	return out, nil
}

var trailing = regexp.MustCompile(`\s#\s?(.*)$`)

// trailingComment is the "# …" after a key line's value, if the line has one
// outside quotes.
func trailingComment(line string) string {
	inSingle, inDouble := false, false
	for i, r := range line {
		switch {
		case r == '\'' && !inDouble:
			inSingle = !inSingle
		case r == '"' && !inSingle:
			inDouble = !inDouble
		case r == '#' && !inSingle && !inDouble && i > 0 && (line[i-1] == ' ' || line[i-1] == '\t'):
			if m := trailing.FindStringSubmatch(line[i-1:]); m != nil {
				return strings.TrimSpace(m[1])
			}
		}
	}
	return ""
}

// exampleNote keeps what an example's comment says beyond the default and
// the allowed values (the table has its own columns for those).
func exampleNote(c string) string {
	var keep []string
	for _, clause := range strings.Split(c, "; ") {
		if strings.HasPrefix(clause, "default") || strings.Contains(clause, " | ") {
			if _, after, ok := strings.Cut(clause, ": "); ok {
				keep = append(keep, after)
			}
			continue
		}
		keep = append(keep, clause)
	}
	return capitalize(strings.TrimSpace(strings.Join(keep, "; ")))
}

// inline is a value in one-line YAML (flow style, comments dropped).
func inline(n *yaml.Node) string {
	flat := stripComments(n)
	if flat.Kind == yaml.MappingNode || flat.Kind == yaml.SequenceNode {
		flat.Style = yaml.FlowStyle // the encoder keeps everything inside a flow node flow too
	}
	out, err := yaml.Marshal(flat)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func stripComments(n *yaml.Node) *yaml.Node {
	cp := *n
	cp.HeadComment, cp.LineComment, cp.FootComment = "", "", ""
	cp.Content = nil
	for _, c := range n.Content {
		cp.Content = append(cp.Content, stripComments(c))
	}
	return &cp
}

func render(root string) ([]byte, error) {
	docs, err := readComments(filepath.Join(root, "config"))
	if err != nil {
		return nil, err
	}
	examples, err := readExamples(root)
	if err != nil {
		return nil, err
	}
	keys := config.Keys()
	names := newYAMLNames(keys)

	var sections []string
	bySection := map[string][]config.KeyInfo{}
	for _, k := range keys {
		top, _, _ := strings.Cut(strings.SplitN(k.Path, "[", 2)[0], ".")
		if _, ok := bySection[top]; !ok {
			sections = append(sections, top)
		}
		bySection[top] = append(bySection[top], k)
	}

	var b strings.Builder
	b.WriteString(header)
	for _, s := range sections {
		fmt.Fprintf(&b, "- [`%s`](#%s)\n", s, anchor(s))
	}
	for _, s := range sections {
		top := bySection[s][0]
		fmt.Fprintf(&b, "\n## %s\n\n", s)
		if d := describe(top, docs, names); d != "" {
			b.WriteString(escapeCell(d) + "\n\n")
		}
		if s == "addons" {
			b.WriteString(addonTable())
		}
		b.WriteString("| Key | Type | Required | Default | Description | Example |\n")
		b.WriteString("|---|---|---|---|---|---|\n")
		for _, k := range bySection[s] {
			ex, hasEx := examples[k.Path]
			desc := describe(k, docs, names)
			if desc == "" && hasEx && k.GoField != "" && len(k.Enum) == 0 {
				desc = period(exampleNote(ex.comment))
			}
			cells := []string{
				"`" + k.Path + "`",
				typeCell(k),
				requiredCell(k),
				defaultCell(k),
				desc,
				exampleCell(ex, hasEx),
			}
			for i := range cells {
				cells[i] = escapeCell(cells[i])
			}
			b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
		}
	}
	return []byte(b.String()), nil
}

const header = `# Configuration reference

<!-- Generated by hack/gendocs from the config package (make generate). Do not edit. -->

drbot reads one YAML file (` + "`-config FILE`, default `$DRBOT_CONFIG`" + `), strictly: an unknown key,
a wrong type, a missing required key or a bad value is an error naming its line and key path, and
` + "`drbot validate -config FILE`" + ` lists every problem at once. This page lists every key the
decoder accepts; it is generated from the same struct tags the decoder reads, and a test fails if the
two disagree. [` + "`examples/drbot.yaml`" + `](../examples/drbot.yaml) is a complete, commented
example that validates; the Example column quotes it.

How to read the key paths:

- ` + "`targets[].name`" + `: ` + "`name`" + ` in every item of the list ` + "`targets`" + `.
- ` + "`addons.<key>.version`" + `: ` + "`version`" + ` under any key of the mapping ` + "`addons`" + `
  (where the keys are restricted, the parent row lists them).
- *free-form* values are taken as written (Helm values, Terraform variables, Kubernetes specs);
  their inner keys are not checked.

Value types:

- **duration**: ` + "`90s`, `45m`, `1h30m`, `7d` (whole days), `1d12h`" + `; a bare number is an error.
- **secret reference**: never the secret itself. Write ` + "`key: \"${VAR}\"`" + ` (read from the
  environment when used) or ` + "`key_file: /absolute/path`" + ` (read from the file when used, a
  trailing newline trimmed), exactly one of the two. A literal value is rejected without being echoed.
- **Required**: the key must be written and must not be empty (a list needs at least one item).
  *Default* is what an absent key means.

Sections:

`

var anchorDrop = regexp.MustCompile(`[^a-z0-9 _-]`)

// anchor is GitHub's heading id for a heading text.
func anchor(h string) string {
	return strings.ReplaceAll(anchorDrop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
}

// yamlNames maps Go names to key names, so that doc comments written about
// the structs ("Version is required") read as the YAML ("`version` is required").
type yamlNames struct {
	fields map[string]map[string]string // struct → Go field → key
	types  map[string]string            // struct type → the key holding it
}

func newYAMLNames(keys []config.KeyInfo) yamlNames {
	n := yamlNames{fields: map[string]map[string]string{}, types: map[string]string{}}
	for _, k := range keys {
		if k.GoField == "" || k.SecretFile {
			continue
		}
		if n.fields[k.GoStruct] == nil {
			n.fields[k.GoStruct] = map[string]string{}
		}
		n.fields[k.GoStruct][k.GoField] = leaf(k.Path)
		if _, seen := n.types[k.GoType]; k.GoType != "" && !seen {
			n.types[k.GoType] = leaf(k.Path)
		}
	}
	return n
}

var goName = regexp.MustCompile(`\b([A-Z][A-Za-z0-9]*)(\.([A-Z][A-Za-z0-9]*))?\b`)

// rewrite replaces the Go names of owner's fields (and Type.Field) in a doc comment.
func (n yamlNames) rewrite(owner, doc string) string {
	return goName.ReplaceAllStringFunc(doc, func(m string) string {
		typ, field, qualified := strings.Cut(m, ".")
		if qualified {
			if parent, ok := n.types[typ]; ok {
				if key, ok := n.fields[typ][field]; ok {
					return "`" + parent + "." + key + "`"
				}
			}
			return m
		}
		if key, ok := n.fields[owner][m]; ok {
			return "`" + key + "`"
		}
		return m
	})
}

func describe(k config.KeyInfo, docs comments, names yamlNames) string {
	var parts []string
	typeDoc := names.rewrite(k.GoType, docs.types[k.GoType])
	switch {
	case k.SecretFile:
		secret := strings.TrimSuffix(leaf(k.Path), "_file")
		parts = append(parts, fmt.Sprintf("The file holding `%s`, instead of `%s` itself.", secret, secret))
	case k.GoField != "":
		fd := docs.fields[[2]string{k.GoStruct, k.GoField}]
		_, inlined := names.types[k.GoStruct]
		inlined = !inlined && k.GoStruct != "Config"
		switch {
		case fd.doc != "":
			parts = append(parts, names.rewrite(k.GoStruct, fd.doc))
		case typeDoc != "":
			parts = append(parts, typeDoc)
		case fd.line == "" && inlined: // e.g. Backend's fields, written in their parent
			parts = append(parts, names.rewrite(k.GoStruct, docs.types[k.GoStruct]))
		}
		if fd.line != "" {
			parts = append(parts, fd.line)
		}
	default: // a MapKey row
		if typeDoc != "" {
			parts = append(parts, typeDoc)
		}
	}
	if len(k.MapKeys) > 0 {
		parts = append(parts, "Keys: "+codeList(k.MapKeys, ", ")+".")
	}
	if k.FreeForm {
		parts = append(parts, "Free-form.")
	}
	return strings.Join(parts, " ")
}

func codeList(vs []string, sep string) string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = "`" + v + "`"
	}
	return strings.Join(out, sep)
}

func typeCell(k config.KeyInfo) string {
	if len(k.Enum) > 0 {
		return "one of " + codeList(k.Enum, ", ")
	}
	return k.Type
}

func requiredCell(k config.KeyInfo) string {
	if !k.Required {
		return ""
	}
	switch {
	case k.Secret:
		return "yes (or `" + leaf(k.Path) + "_file`)"
	case k.SecretFile:
		return "yes (or `" + strings.TrimSuffix(leaf(k.Path), "_file") + "`)"
	}
	return "yes"
}

func leaf(path string) string { return path[strings.LastIndexAny(path, ".]")+1:] }

func defaultCell(k config.KeyInfo) string {
	if !k.HasDef {
		return ""
	}
	return "`" + k.Default + "`"
}

const maxInline = 60

func exampleCell(ex example, ok bool) string {
	if !ok {
		return ""
	}
	link := fmt.Sprintf("[line %d](../%s#L%d)", ex.line, exampleFile, ex.line)
	v := inline(ex.value)
	if v == "" || strings.Contains(v, "\n") || len(v) > maxInline {
		return link
	}
	return "`" + v + "`"
}

// escapeCell keeps a table cell one cell (pipes escaped, no line breaks)
// and keeps <words> outside code spans from being read as HTML.
func escapeCell(s string) string {
	parts := strings.Split(s, "`")
	for i := 0; i < len(parts); i += 2 {
		parts[i] = strings.NewReplacer("<", "&lt;", ">", "&gt;").Replace(parts[i])
	}
	s = strings.Join(parts, "`")
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

func addonTable() string {
	var b strings.Builder
	b.WriteString("Defaults for the keys an add-on's name implies:\n\n")
	b.WriteString("| Add-on | `chart` | `repo` | `namespace` |\n|---|---|---|---|\n")
	for _, name := range config.Addons {
		chart, repo, ns, ok := config.AddonDefault(name)
		if !ok {
			continue
		}
		fmt.Fprintf(&b, "| `%s` | `%s` | `%s` | `%s` |\n", name, chart, repo, ns)
	}
	b.WriteString("\n")
	return b.String()
}
