package helm

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Required is a value drbot sets itself because it must be right for the
// DR cluster (its name, region, VPC, the service account Pod Identity is
// bound to, the Vault auth mount).
type Required struct {
	Path string // dotted: "serviceAccount.name"
	// Value is what drbot sets; nil when drbot could not work it out, in
	// which case the config must supply it.
	Value any
	Why   string // where the value comes from, for error messages: "the DR cluster's name"
}

// MergeValues lays the required values over a copy of the config's values.
// A config value at a required path is accepted only when it equals what
// drbot sets; otherwise the error names the key (keyPrefix + "." + path),
// so the operator knows which line of the config to remove.
func MergeValues(keyPrefix string, config map[string]any, required []Required) (map[string]any, error) {
	merged, err := normalize(config)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPrefix, err)
	}
	var problems []string
	for _, r := range required {
		key := keyPrefix + "." + r.Path
		have, present, blocked := lookup(merged, r.Path)
		if blocked != "" {
			problems = append(problems, fmt.Sprintf("%s.%s is not a map, but drbot must set %s (%s)", keyPrefix, blocked, key, r.Why))
			continue
		}
		if r.Value == nil {
			if !present {
				problems = append(problems, fmt.Sprintf("%s is not set and drbot cannot work it out (%s); set it in the config", key, r.Why))
			}
			continue
		}
		want, err := normalizeScalar(r.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
		if present && !reflect.DeepEqual(have, want) {
			problems = append(problems, fmt.Sprintf("%s is %s but drbot sets it to %s (%s); remove it from the config", key, show(have), show(want), r.Why))
			continue
		}
		set(merged, r.Path, want)
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("conflicting add-on values: %s", strings.Join(problems, "; "))
	}
	return merged, nil
}

// lookup finds a dotted path. blocked names the prefix that holds a
// non-map where the path needs a map.
func lookup(m map[string]any, path string) (v any, present bool, blocked string) {
	parts := strings.Split(path, ".")
	cur := m
	for i, p := range parts {
		v, ok := cur[p]
		if !ok {
			return nil, false, ""
		}
		if i == len(parts)-1 {
			return v, true, ""
		}
		next, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				return nil, false, ""
			}
			return nil, false, strings.Join(parts[:i+1], ".")
		}
		cur = next
	}
	return nil, false, ""
}

func set(m map[string]any, path string, v any) {
	parts := strings.Split(path, ".")
	cur := m
	for _, p := range parts[:len(parts)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}
		cur = next
	}
	cur[parts[len(parts)-1]] = v
}

func normalizeScalar(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	return string(b)
}
