package config

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// The key reference: every key the walker accepts, read from the same tags by
// the same parser (fieldsOf), so docs/config.md (hack/gendocs) cannot list a
// key the decoder rejects or miss one it accepts.

// MapKey stands for any key of a mapping in a key path:
// addons.<key>.version, runbook.estimates.<key>.
const MapKey = "<key>"

// KeyInfo is one configuration key as the decoder reads it.
type KeyInfo struct {
	// Path is the key's place in the file: lists add "[]", mapping entries
	// MapKey, e.g. targets[].cluster.eks.node_group.instance_types.
	Path     string
	Type     string   // what the value is, in words: "string", "list of strings", "duration", …
	Required bool     // the key must be written and not be empty
	Default  string   // YAML applied when the key is absent (HasDefault)
	HasDef   bool     // Default is set
	Enum     []string // the only values a string may take
	MapKeys  []string // the only keys a mapping may use (Path+"."+MapKey lists its values)
	// Secret marks a secret reference ("${VAR}"); SecretFile its <key>_file
	// sibling. One of the two is written, never both.
	Secret     bool
	SecretFile bool
	FreeForm   bool // decoded as written; its inner keys are not checked
	// GoStruct and GoField name the Go declaration (types.go) the key comes
	// from; empty for MapKey entries. GoType is the named struct type of the
	// value (or of its list or map elements), for its doc comment.
	GoStruct, GoField, GoType string
}

// Keys lists every key the decoder accepts, depth first in declaration order.
func Keys() []KeyInfo {
	var out []KeyInfo
	structKeys(reflect.TypeFor[Config](), "", &out)
	return out
}

func structKeys(t reflect.Type, path string, out *[]KeyInfo) {
	for _, f := range fieldsOf(t) {
		owner := t
		if len(f.index) > 1 { // an inlined struct's field
			owner = t.FieldByIndex(f.index[:len(f.index)-1]).Type
		}
		sf := t.FieldByIndex(f.index)
		k := KeyInfo{
			Path: joinKey(path, f.key), Type: typeWords(sf.Type), Required: f.required,
			Default: f.def, HasDef: f.hasDef, Enum: f.enum, MapKeys: f.keys,
			Secret: f.secret, FreeForm: isFreeForm(sf.Type),
			GoStruct: owner.Name(), GoField: sf.Name, GoType: structName(sf.Type),
		}
		*out = append(*out, k)
		if f.secret {
			file := k
			file.Path, file.Type, file.Secret, file.SecretFile = joinKey(path, f.key+"_file"), "absolute file path", false, true
			*out = append(*out, file)
			continue
		}
		valueKeys(sf.Type, k.Path, out)
	}
}

func valueKeys(t reflect.Type, path string, out *[]KeyInfo) {
	if t == durationType || t == secretType || isFreeForm(t) {
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		valueKeys(t.Elem(), path, out)
	case reflect.Struct:
		structKeys(t, path, out)
	case reflect.Slice:
		valueKeys(t.Elem(), path+"[]", out)
	case reflect.Map:
		p := path + "." + MapKey
		*out = append(*out, KeyInfo{Path: p, Type: typeWords(t.Elem()), FreeForm: isFreeForm(t.Elem()), GoType: structName(t.Elem())})
		valueKeys(t.Elem(), p, out)
	}
}

func structName(t reflect.Type) string {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && t != durationType && t != secretType {
		return t.Name()
	}
	return ""
}

// typeWords names a field's type for people.
func typeWords(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == secretType:
		return "secret reference"
	case t.Kind() == reflect.Interface:
		return "any (free-form)"
	case isFreeForm(t):
		return "mapping (free-form)"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeWords(t.Elem())
	case reflect.Struct:
		return "mapping"
	case reflect.Slice:
		return "list of " + plural(typeWords(t.Elem()))
	case reflect.Map:
		return "mapping → " + typeWords(t.Elem())
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "integer"
	}
	return t.String()
}

func plural(w string) string {
	head, tail, _ := strings.Cut(w, " ")
	if tail != "" {
		tail = " " + tail
	}
	switch {
	case strings.HasPrefix(w, "list of "):
		return "lists of " + strings.TrimPrefix(w, "list of ")
	case strings.HasPrefix(w, "mapping → "):
		return "mappings → " + strings.TrimPrefix(w, "mapping → ")
	case head == "any":
		return "values" + tail
	}
	return head + "s" + tail
}

// KeyUse is one key written in a config file, with its path in Keys() form.
type KeyUse struct {
	Path  string
	Known bool       // Path is one of Keys()
	Line  int        // where the key was written
	Value *yaml.Node // what was written for it (aliases resolved)
}

// KeysUsed lists the keys written in a config file, in file order, naming each
// by its Keys() path (list indexes become "[]", mapping entries MapKey). It
// does not descend into free-form values. Only YAML syntax errors are
// returned; an unknown key is a KeyUse with Known false.
func KeysUsed(data []byte) ([]KeyUse, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	var out []KeyUse
	if len(doc.Content) == 1 {
		usedIn(resolve(doc.Content[0]), reflect.TypeFor[Config](), "", nil, &out)
	}
	return out, nil
}

// allowed is the keys= list of the field holding n, if any.
func usedIn(n *yaml.Node, t reflect.Type, path string, allowed []string, out *[]KeyUse) {
	n = resolve(n)
	if t == durationType || t == secretType || isFreeForm(t) {
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		usedIn(n, t.Elem(), path, allowed, out)
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for _, item := range n.Content {
				usedIn(item, t.Elem(), path+"[]", nil, out)
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for _, e := range newDecoder().entries(n, path) {
			p := path + "." + MapKey
			known := allowed == nil || contains(allowed, e.name)
			*out = append(*out, KeyUse{Path: p, Known: known, Line: e.key.Line, Value: resolve(e.value)})
			usedIn(e.value, t.Elem(), p, nil, out)
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		byKey := map[string]field{}
		for _, f := range fieldsOf(t) {
			byKey[f.key] = f
			if f.secret {
				byKey[f.key+"_file"] = f
			}
		}
		for _, e := range newDecoder().entries(n, path) {
			p := joinKey(path, e.name)
			f, known := byKey[e.name]
			*out = append(*out, KeyUse{Path: p, Known: known, Line: e.key.Line, Value: resolve(e.value)})
			if known && !f.secret {
				usedIn(e.value, t.FieldByIndex(f.index).Type, p, f.keys, out)
			}
		}
	}
}

// AddonDefault is the chart, repository and namespace an add-on's name
// implies when its entry leaves them out.
func AddonDefault(name string) (chart, repo, namespace string, ok bool) {
	a, ok := addonDefaults[name]
	return a.Chart, a.Repo, a.Namespace, ok
}
