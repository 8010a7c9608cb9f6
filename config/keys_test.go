package config

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// allKeysDocument writes every key of Keys() into one YAML document (a list
// gets one item holding all its keys; a mapping entry is named by the first
// allowed key, or "k").
func allKeysDocument(t *testing.T) []byte {
	t.Helper()
	root := map[string]any{}
	allowed := map[string][]string{}
	for _, k := range Keys() {
		allowed[k.Path] = k.MapKeys
	}
	for _, k := range Keys() {
		node := root
		segs := strings.Split(k.Path, ".")
		prefix := ""
		for i, seg := range segs {
			list := strings.HasSuffix(seg, "[]")
			name := strings.TrimSuffix(seg, "[]")
			if name == MapKey {
				name = "k"
				if a := allowed[prefix]; len(a) > 0 {
					name = a[0]
				}
			}
			prefix = strings.Join(segs[:i+1], ".")
			last := i == len(segs)-1
			switch {
			case last:
				if _, ok := node[name]; !ok {
					node[name] = "x"
				}
			case list:
				items, ok := node[name].([]any)
				if !ok {
					items = []any{map[string]any{}}
					node[name] = items
				}
				node = items[0].(map[string]any)
			default:
				next, ok := node[name].(map[string]any)
				if !ok {
					next = map[string]any{}
					node[name] = next
				}
				node = next
			}
		}
	}
	out, err := yaml.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestEveryKeyInTheReferenceIsAcceptedByTheDecoder(t *testing.T) {
	doc := allKeysDocument(t)
	_, err := Parse(doc, "all.yaml")
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want problems (the values are placeholders), got %v", err)
	}
	for _, p := range errs.List {
		if strings.HasPrefix(p.Msg, "unknown key") {
			t.Errorf("the decoder rejects a key Keys() lists: %s: %s", p.Path, p.Msg)
		}
	}
	// The document really reached the deep keys: a placeholder under them is
	// reported by its path.
	for _, want := range []string{"targets[0].cluster.eks.node_group.max", "cutover.route53[0].type", "addons.aws-load-balancer-controller.values"} {
		if !slices.ContainsFunc(errs.List, func(p Problem) bool { return p.Path == want }) {
			t.Errorf("no problem reported at %s; the all-keys document did not reach it:\n%s", want, doc)
		}
	}
}

func TestKeysCoverSecretFileFormsInlinedFieldsAndMapEntries(t *testing.T) {
	byPath := map[string]KeyInfo{}
	for _, k := range Keys() {
		if _, dup := byPath[k.Path]; dup {
			t.Errorf("key %s listed twice", k.Path)
		}
		byPath[k.Path] = k
	}
	for path, check := range map[string]func(KeyInfo) bool{
		"slack.bot_token":                          func(k KeyInfo) bool { return k.Secret && k.Required },
		"slack.bot_token_file":                     func(k KeyInfo) bool { return k.SecretFile && k.Type == "absolute file path" },
		"cutover.route53[].service":                func(k KeyInfo) bool { return k.GoStruct == "Backend" && k.GoField == "Service" },
		"targets[].cutover.apigateway[].ingress":   func(k KeyInfo) bool { return k.GoStruct == "Backend" },
		"targets[].cluster.provider":               func(k KeyInfo) bool { return slices.Equal(k.Enum, []string{"terraform", "eks", "existing"}) },
		"targets[].cluster.terraform.vars":         func(k KeyInfo) bool { return k.FreeForm },
		"addons":                                   func(k KeyInfo) bool { return len(k.MapKeys) == len(Addons) },
		"addons.<key>.version":                     func(k KeyInfo) bool { return k.Required && k.GoStruct == "Addon" },
		"access.approvers.<key>":                   func(k KeyInfo) bool { return k.Type == "list of strings" },
		"drills[].announce":                        func(k KeyInfo) bool { return k.HasDef && k.Default == "[168h, 24h, 1h]" },
		"runbook.retry.initial_backoff":            func(k KeyInfo) bool { return k.Type == "duration" && k.Default == "2s" },
		"targets[].cluster.eks.node_group.min":     func(k KeyInfo) bool { return k.Type == "integer" && !k.Required },
		"targets[].cluster.eks.subnet_ids":         func(k KeyInfo) bool { return k.Type == "list of strings" && k.Required },
		"addons.<key>.ingress_manifests":           func(k KeyInfo) bool { return k.Type == "list of mappings (free-form)" },
		"gitlab.overrides.<key>":                   func(k KeyInfo) bool { return k.FreeForm },
		"argocd.waves[].selector.<key>":            func(k KeyInfo) bool { return k.Type == "string" },
		"state.backup.path_style":                  func(k KeyInfo) bool { return k.Type == "boolean" },
		"targets[].cluster.existing.node_group":    func(k KeyInfo) bool { return k.Required },
		"targets[].cluster.eks.node_group.max":     func(k KeyInfo) bool { return k.GoStruct == "NodeGroup" },
		"targets[].cluster.eks.node_group":         func(k KeyInfo) bool { return k.GoType == "NodeGroup" && k.Type == "mapping" },
		"vault.token_file":                         func(k KeyInfo) bool { return k.SecretFile && !k.Required },
		"cutover.apigateway[].kind":                func(k KeyInfo) bool { return slices.Equal(k.Enum, []string{"rest", "http"}) },
		"mttr.phases":                              func(k KeyInfo) bool { return slices.Equal(k.MapKeys, Phases) },
		"targets[].cutover.checks[].expect_status": func(k KeyInfo) bool { return k.Default == "200" },
	} {
		k, ok := byPath[path]
		if !ok {
			t.Errorf("Keys() lacks %s", path)
			continue
		}
		if !check(k) {
			t.Errorf("%s: unexpected %+v", path, k)
		}
	}
	for path := range byPath {
		if strings.HasPrefix(path, "targets[].cluster.terraform.vars.") {
			t.Errorf("Keys() descends into a free-form value: %s", path)
		}
	}
}

func TestKeysUsedNamesKeysByReferencePathAndFlagsUnknownOnes(t *testing.T) {
	doc := minimal + `addons:
  karpenter: {version: 1.0.0, node_pool: {limits: {cpu: "8"}}}
  grafana: {version: 1.0.0}
state: {pathh: /x}
`
	used, err := KeysUsed([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, u := range used {
		got[u.Path] = u.Known
	}
	for path, known := range map[string]bool{
		"targets[].cluster.existing.desired": true,
		"slack.bot_token":                    true,
		"addons.<key>.node_pool":             true,
		"state.pathh":                        false,
	} {
		if k, ok := got[path]; !ok || k != known {
			t.Errorf("%s: present %v known %v, want known %v", path, ok, k, known)
		}
	}
	var grafana *KeyUse
	for i := range used {
		if used[i].Path == "addons.<key>" && !used[i].Known {
			grafana = &used[i]
		}
	}
	if grafana == nil || grafana.Line != lineOf(t, doc, "grafana") {
		t.Errorf("add-on grafana (not in keys=) not flagged unknown at its line: %+v", grafana)
	}
	if _, ok := got["addons.<key>.node_pool.limits"]; ok {
		t.Error("KeysUsed descended into a free-form value")
	}
}

// The shipped configs use only documented keys (the decoder would reject
// anything else, but this also proves KeysUsed and Keys agree on paths).
func TestShippedConfigsUseOnlyKeysOfTheReference(t *testing.T) {
	known := map[string]bool{}
	for _, k := range Keys() {
		known[k.Path] = true
	}
	for _, file := range []string{"../examples/drbot.yaml", "../manifests/drbot.yaml"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		used, err := KeysUsed(data)
		if err != nil {
			t.Fatal(err)
		}
		if len(used) < 50 {
			t.Errorf("%s: only %d keys found", file, len(used))
		}
		for _, u := range used {
			if !u.Known || !known[u.Path] {
				t.Errorf("%s:%d: %s is not in the key reference", file, u.Line, u.Path)
			}
		}
	}
}

// docs/config.md is generated from Keys() by hack/gendocs; this compares the
// keys it documents with the decoder's, both ways.
func TestConfigReferenceDocumentsExactlyTheKeysTheDecoderAccepts(t *testing.T) {
	data, err := os.ReadFile("../docs/config.md")
	if err != nil {
		t.Fatalf("%v (run make generate)", err)
	}
	documented := map[string]bool{}
	inKeys := false
	for _, line := range strings.Split(string(data), "\n") {
		// Rows of the key tables: | Key | Type | … then | `path` | type | …
		switch {
		case strings.HasPrefix(line, "| Key | Type |"):
			inKeys = true
		case !strings.HasPrefix(line, "|"):
			inKeys = false
		}
		if rest, ok := strings.CutPrefix(line, "| `"); ok && inKeys {
			if path, _, ok := strings.Cut(rest, "`"); ok {
				documented[path] = true
			}
		}
	}
	accepted := map[string]bool{}
	for _, k := range Keys() {
		accepted[k.Path] = true
		if !documented[k.Path] {
			t.Errorf("docs/config.md does not document %s (run make generate)", k.Path)
		}
	}
	for path := range documented {
		if !accepted[path] {
			t.Errorf("docs/config.md documents %s, which the decoder does not accept (run make generate)", path)
		}
	}
}
