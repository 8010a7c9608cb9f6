package config

import (
	"fmt"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// The walker: decodes a yaml.Node tree into the Go structs by reflection,
// collecting every problem instead of stopping at the first. It knows the tag
// rules documented in types.go and nothing about drbot's semantics
// (validate.go does those).

type position struct{ line, col int }

type decoder struct {
	problems []Problem
	pos      map[string]position // dotted path → where it was written
	bad      map[string]bool     // paths that already have a problem
	secrets  []secretRef
	// merging holds the mappings whose << keys are being expanded: a
	// mapping that merges itself (slack: &s {<<: *s}) would recurse until
	// the stack overflows. merges counts expansions, so that nested
	// <<: [*a, *a] cannot grow exponentially.
	merging map[*yaml.Node]bool
	merges  int
}

// maxMerges bounds << expansions in one file; real configs use a handful.
const maxMerges = 10000

type secretRef struct {
	path   string
	at     position
	secret Secret
}

func newDecoder() *decoder {
	return &decoder{pos: map[string]position{}, bad: map[string]bool{}, merging: map[*yaml.Node]bool{}}
}

func posOf(n *yaml.Node) position { return position{n.Line, n.Column} }

func (d *decoder) add(at position, path, format string, args ...any) {
	d.problems = append(d.problems, Problem{Line: at.line, Column: at.col, Path: path, Msg: fmt.Sprintf(format, args...)})
	d.bad[path] = true
}

func (d *decoder) errAt(n *yaml.Node, path, format string, args ...any) {
	d.add(posOf(n), path, format, args...)
}

// at is where path was written, or failing that its nearest written ancestor
// (a missing key is reported on its parent's line).
func (d *decoder) at(path string) position {
	for {
		if p, ok := d.pos[path]; ok {
			return p
		}
		if path == "" {
			return position{1, 1}
		}
		path = parentPath(path)
	}
}

// failed reports whether path or one of its ancestors already has a problem,
// so that validation does not pile consequences on top of a decode error.
func (d *decoder) failed(path string) bool {
	for ; path != ""; path = parentPath(path) {
		if d.bad[path] {
			return true
		}
	}
	return false
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func joinKey(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

func parentPath(p string) string {
	if strings.HasSuffix(p, `"]`) {
		if i := strings.LastIndex(p, `["`); i >= 0 {
			return p[:i]
		}
	}
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// field is one struct field as the walker sees it.
type field struct {
	index    []int
	key      string
	required bool
	enum     []string
	keys     []string
	def      string
	hasDef   bool
	secret   bool
}

var (
	durationType = reflect.TypeFor[Duration]()
	secretType   = reflect.TypeFor[Secret]()
	fieldCache   sync.Map // reflect.Type → []field
)

// fieldsOf reads a struct's yaml and drbot tags once. Bad tags are programming
// errors and panic (the tests load every struct).
func fieldsOf(t reflect.Type) []field {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.([]field)
	}
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if opts == "inline" {
			for _, inner := range fieldsOf(sf.Type) {
				inner.index = append([]int{i}, inner.index...)
				fs = append(fs, inner)
			}
			continue
		}
		if name == "" || name == "-" {
			panic(fmt.Sprintf("config: field %s.%s has no yaml key", t.Name(), sf.Name))
		}
		f := field{index: []int{i}, key: name, secret: sf.Type == secretType}
		tag := sf.Tag.Get("drbot")
		for tag != "" {
			var opt string
			if strings.HasPrefix(tag, "default=") {
				f.def, f.hasDef, tag = strings.TrimPrefix(tag, "default="), true, ""
				continue
			}
			opt, tag, _ = strings.Cut(tag, ",")
			switch k, v, _ := strings.Cut(opt, "="); k {
			case "required":
				f.required = true
			case "enum":
				if sf.Type.Kind() != reflect.String {
					panic(fmt.Sprintf("config: enum= on non-string field %s.%s", t.Name(), sf.Name))
				}
				f.enum = strings.Split(v, "|")
			case "keys":
				if sf.Type.Kind() != reflect.Map {
					panic(fmt.Sprintf("config: keys= on non-map field %s.%s", t.Name(), sf.Name))
				}
				f.keys = strings.Split(v, "|")
			default:
				panic(fmt.Sprintf("config: unknown drbot tag option %q on %s.%s", opt, t.Name(), sf.Name))
			}
		}
		fs = append(fs, f)
	}
	fieldCache.Store(t, fs)
	return fs
}

func isFreeForm(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface:
		return true
	case reflect.Map:
		return t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Interface
	}
	return false
}

func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe says what was written, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return "nothing"
		}
		v := n.Value
		if len(v) > 60 {
			v = v[:57] + "..."
		}
		return strconv.Quote(v)
	}
	return "something else"
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = resolve(n)
	t := v.Type()
	switch {
	case t == secretType:
		if s, ok := d.secretRef(n, path, "", ""); ok {
			v.Set(reflect.ValueOf(s))
		}
		return
	case t == durationType:
		d.duration(n, v, path)
		return
	case isFreeForm(t):
		d.freeForm(n, v, path)
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		e := reflect.New(t.Elem())
		d.decode(n, e.Elem(), path)
		v.Set(e)
	case reflect.Struct:
		d.structure(n, v, path)
	case reflect.Slice:
		d.list(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path, nil)
	case reflect.String:
		if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!bool" || n.ShortTag() == "!!null" {
			d.errAt(n, path, "want a string, got %s", describe(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			d.errAt(n, path, "want true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&i) != nil || v.OverflowInt(i) {
			d.errAt(n, path, "want an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	default:
		panic(fmt.Sprintf("config: unsupported type %s at %s", t, path))
	}
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && n.ShortTag() != "!!null" && n.ShortTag() != "!!bool" {
		if dur, err := ParseDuration(n.Value); err == nil {
			v.Set(reflect.ValueOf(dur))
			return
		}
	}
	hint := ""
	if n.ShortTag() == "!!int" || n.ShortTag() == "!!float" {
		hint = " (add a unit: s, m, h or d)"
	}
	d.errAt(n, path, `want a duration like "24h", got %s%s`, describe(n), hint)
}

var yamlLine = regexp.MustCompile(`^line (\d+): (.*)$`)

func (d *decoder) freeForm(n *yaml.Node, v reflect.Value, path string) {
	if v.Kind() == reflect.Map && n.Kind != yaml.MappingNode {
		d.errAt(n, path, "want a mapping, got %s", describe(n))
		return
	}
	err := n.Decode(v.Addr().Interface())
	if err == nil {
		return
	}
	// yaml.v3 reports e.g. duplicate keys as "line 7: mapping key "x" already defined at line 5".
	te, ok := err.(*yaml.TypeError)
	if !ok {
		d.errAt(n, path, "%v", err)
		return
	}
	for _, msg := range te.Errors {
		at := posOf(n)
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			at.line, _ = strconv.Atoi(m[1])
			at.col = 0
			msg = m[2]
		}
		d.add(at, path, "%s", msg)
	}
}

func (d *decoder) list(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.errAt(n, path, "want a list, got %s", describe(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		p := fmt.Sprintf("%s[%d]", path, i)
		d.pos[p] = posOf(item)
		d.decode(item, s.Index(i), p)
	}
	v.Set(s)
}

// entry is one key: value pair of a mapping.
type entry struct {
	name       string
	key, value *yaml.Node
}

// entries lists a mapping's pairs in order, reporting duplicate and non-scalar
// keys. Merge keys (<<: *anchor) contribute the keys not written explicitly.
func (d *decoder) entries(n *yaml.Node, path string) []entry {
	var out []entry
	seen := map[string]*yaml.Node{}
	var merges []*yaml.Node
	d.merging[n] = true
	defer delete(d.merging, n)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			merges = append(merges, val)
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errAt(k, path, "want a plain key, got %s", describe(k))
			continue
		}
		p := joinKey(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errAt(k, p, "duplicate key (first written on line %d)", first.Line)
			continue
		}
		seen[k.Value] = k
		out = append(out, entry{k.Value, k, val})
	}
	for _, m := range merges {
		m = resolve(m)
		var sources []*yaml.Node
		switch m.Kind {
		case yaml.MappingNode:
			sources = []*yaml.Node{m}
		case yaml.SequenceNode:
			for _, s := range m.Content {
				sources = append(sources, resolve(s))
			}
		}
		for _, src := range sources {
			if src.Kind != yaml.MappingNode {
				d.errAt(m, path, "<< merges a mapping, got %s", describe(src))
				continue
			}
			if d.merging[src] {
				d.errAt(m, path, "<< merges a mapping into itself")
				continue
			}
			if d.merges++; d.merges > maxMerges {
				d.errAt(m, path, "more than %d << merges", maxMerges)
				return out
			}
			for _, e := range d.entries(src, path) {
				if _, ok := seen[e.name]; !ok {
					seen[e.name] = e.key
					out = append(out, e)
				}
			}
		}
	}
	return out
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string, allowed []string) {
	if n.Kind != yaml.MappingNode {
		d.errAt(n, path, "want a mapping, got %s", describe(n))
		return
	}
	t := v.Type()
	m := reflect.MakeMap(t)
	for _, e := range d.entries(n, path) {
		p := joinKey(path, e.name)
		d.pos[p] = posOf(e.key)
		if allowed != nil && !contains(allowed, e.name) {
			d.errAt(e.key, p, "unknown key (want one of %s%s)", strings.Join(allowed, ", "), suggest(e.name, allowed, "; "))
			continue
		}
		ev := reflect.New(t.Elem()).Elem()
		d.decode(e.value, ev, p)
		m.SetMapIndex(reflect.ValueOf(e.name).Convert(t.Key()), ev)
	}
	v.Set(m)
}

func (d *decoder) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.errAt(n, path, "want a mapping, got %s", describe(n))
		return
	}
	fields := fieldsOf(v.Type())
	var known []string
	for _, f := range fields {
		known = append(known, f.key)
		if f.secret {
			known = append(known, f.key+"_file")
		}
	}
	byName := map[string]entry{}
	for _, e := range d.entries(n, path) {
		byName[e.name] = e
		if !contains(known, e.name) {
			d.errAt(e.key, joinKey(path, e.name), "unknown key%s", suggest(e.name, known, " "))
		}
	}
	for _, f := range fields {
		p := joinKey(path, f.key)
		fv := v.FieldByIndex(f.index)
		if f.secret {
			d.secretField(byName, f, fv, p)
			continue
		}
		e, present := byName[f.key]
		if present {
			d.pos[p] = posOf(e.key)
		}
		if present && !isNull(e.value) {
			switch {
			case f.keys != nil:
				d.mapping(resolve(e.value), fv, p, f.keys)
			default:
				d.decode(e.value, fv, p)
			}
			if f.required && !d.bad[p] && isEmpty(fv) {
				d.errAt(e.key, p, "must not be empty")
			}
			if f.enum != nil && !d.bad[p] && !contains(f.enum, fv.String()) {
				d.errAt(resolve(e.value), p, "want one of %s; got %q%s", strings.Join(f.enum, ", "), fv.String(), suggest(fv.String(), f.enum, " "))
			}
			continue
		}
		switch {
		case f.required && present:
			d.errAt(e.key, p, "must not be empty")
		case f.required:
			d.add(d.at(path), p, "missing required key")
		default:
			d.setDefault(f, fv, p)
		}
	}
}

// setDefault fills an absent field from its default tag; an absent plain
// struct gets its own fields' defaults, so `runbook:` may be left out entirely.
func (d *decoder) setDefault(f field, v reflect.Value, path string) {
	if f.hasDef {
		if v.Kind() == reflect.String {
			v.SetString(f.def)
			return
		}
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(f.def), &n); err != nil || len(n.Content) != 1 {
			panic(fmt.Sprintf("config: bad default %q for %s: %v", f.def, path, err))
		}
		scratch := newDecoder()
		if scratch.decode(n.Content[0], v, path); len(scratch.problems) > 0 {
			panic(fmt.Sprintf("config: bad default %q for %s: %v", f.def, path, scratch.problems))
		}
		return
	}
	if v.Kind() == reflect.Struct && v.Type() != durationType && v.Type() != secretType {
		for _, inner := range fieldsOf(v.Type()) {
			d.setDefault(inner, v.FieldByIndex(inner.index), joinKey(path, inner.key))
		}
	}
}

var envRef = regexp.MustCompile(`^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$`)

// secretField reads a Secret written as `key: "${VAR}"` or `key_file: /path`.
func (d *decoder) secretField(byName map[string]entry, f field, v reflect.Value, path string) {
	fileKey := f.key + "_file"
	filePath := joinKey(parentPath(path), fileKey)
	ev, hasEnv := byName[f.key]
	fv, hasFile := byName[fileKey]
	hasEnv = hasEnv && !isNull(ev.value)
	hasFile = hasFile && !isNull(fv.value)
	if hasEnv {
		d.pos[path] = posOf(ev.key)
	}
	if hasFile {
		d.pos[filePath] = posOf(fv.key)
	}
	var s Secret
	var ok bool
	switch {
	case hasEnv && hasFile:
		later, p := ev, path
		if fv.key.Line > ev.key.Line || (fv.key.Line == ev.key.Line && fv.key.Column > ev.key.Column) {
			later, p = fv, filePath
		}
		d.errAt(later.key, p, "give either %s or %s, not both", f.key, fileKey)
		return
	case hasEnv:
		s, ok = d.secretRef(resolve(ev.value), path, f.key, "")
	case hasFile:
		s, ok = d.secretRef(resolve(fv.value), filePath, f.key, "file")
	case f.required:
		d.add(d.at(parentPath(path)), path, `missing required key (write %s: "${VAR}" or %s: /path)`, f.key, fileKey)
		return
	default:
		return
	}
	if !ok {
		return
	}
	at := d.pos[path]
	if hasFile {
		at = d.pos[filePath]
	}
	d.secrets = append(d.secrets, secretRef{path: path, at: at, secret: s})
	v.Set(reflect.ValueOf(s))
}

// secretRef parses one secret reference. It never echoes what was written:
// a mistake here may be a real token pasted into the file.
func (d *decoder) secretRef(n *yaml.Node, path, key, form string) (Secret, bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		d.errAt(n, path, `want "${VAR}" or a file path, got %s`, kindOf(n))
		return Secret{}, false
	}
	if form == "file" {
		if !filepath.IsAbs(n.Value) {
			d.errAt(n, path, "want an absolute path to the secret file")
			return Secret{}, false
		}
		return Secret{file: filepath.Clean(n.Value)}, true
	}
	if m := envRef.FindStringSubmatch(n.Value); m != nil {
		return Secret{env: m[1]}, true
	}
	if key == "" {
		key = "<key>"
	}
	d.errAt(n, path, `secrets may not be written in the file; use "${VAR}" or %s_file`, key)
	return Secret{}, false
}

// isEmpty is what "required" rejects even when the key is written: "", [] and {}.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Map:
		return v.Len() == 0
	}
	return false
}

func kindOf(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.ShortTag() == "!!null" {
		return "nothing"
	}
	return "a value"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// suggest returns ` (did you mean "x"?)`-style text for the known word nearest to
// s by edit distance, or "" when nothing is close. sep joins it to the message.
func suggest(s string, known []string, sep string) string {
	best, bestDist := "", 1<<30
	norm := func(x string) string { return strings.NewReplacer("_", "", "-", "").Replace(strings.ToLower(x)) }
	for _, k := range known {
		if norm(k) == norm(s) {
			best, bestDist = k, 0
			break
		}
		if dist := editDistance(s, k); dist < bestDist || (dist == bestDist && k < best) {
			best, bestDist = k, dist
		}
	}
	limit := max(1, len(s)/3)
	if best == "" || bestDist > limit {
		return ""
	}
	if sep == " " {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return fmt.Sprintf("%sdid you mean %q?", sep, best)
}

// editDistance is the optimal-string-alignment distance by runes: Levenshtein
// plus adjacent transpositions, the commonest typo ("prdo" for "prod").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Column != b.Column {
			return a.Column < b.Column
		}
		return a.Path < b.Path
	})
}
