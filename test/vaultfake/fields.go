package vaultfake

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// fieldType mirrors the Vault framework field types the fake needs.
type fieldType int

const (
	tString fieldType = iota
	tBool
	tInt
	tDurationSecond
	tCommaStringSlice
)

// coerce converts a JSON value to the Go type of t the way Vault's framework
// does (weakly: "1h" or 3600 for durations, "a,b" or ["a","b"] for lists).
func coerce(name string, t fieldType, v any) (any, error) {
	out, err := coerceValue(t, v)
	if err != nil {
		return nil, fmt.Errorf("error converting input %v for field %q: %v", v, name, err)
	}
	return out, nil
}

func coerceValue(t fieldType, v any) (any, error) {
	switch t {
	case tString:
		switch x := v.(type) {
		case string:
			return x, nil
		case json.Number, bool:
			return fmt.Sprint(x), nil
		case nil:
			return "", nil
		}
	case tBool:
		switch x := v.(type) {
		case bool:
			return x, nil
		case string:
			if x == "" {
				return false, nil
			}
			return strconv.ParseBool(x)
		case json.Number:
			f, err := x.Float64()
			return f != 0, err
		case nil:
			return false, nil
		}
	case tInt:
		switch x := v.(type) {
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return nil, err
			}
			return int64(f), nil
		case string:
			if x == "" {
				return int64(0), nil
			}
			return strconv.ParseInt(x, 10, 64)
		case nil:
			return int64(0), nil
		}
	case tDurationSecond:
		switch x := v.(type) {
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return nil, err
			}
			return int64(math.Trunc(f)), nil
		case string:
			return parseDurationSecond(x)
		case nil:
			return int64(0), nil
		}
	case tCommaStringSlice:
		switch x := v.(type) {
		case string:
			if x == "" {
				return []string{}, nil
			}
			parts := strings.Split(x, ",")
			for i := range parts {
				parts[i] = strings.TrimSpace(parts[i])
			}
			return parts, nil
		case []any:
			out := make([]string, 0, len(x))
			for _, e := range x {
				switch e := e.(type) {
				case string:
					out = append(out, strings.TrimSpace(e))
				case json.Number, bool:
					out = append(out, fmt.Sprint(e))
				default:
					return nil, fmt.Errorf("list element %v is not a string", e)
				}
			}
			return out, nil
		case nil:
			return []string{}, nil
		}
	}
	return nil, fmt.Errorf("unexpected type %T", v)
}

// parseDurationSecond parses "3600", "1h", "90m" or "2d" into seconds, like
// Vault's parseutil.ParseDurationSecond.
func parseDurationSecond(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil {
			return 0, err
		}
		return n * 86400, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	return int64(d / time.Second), nil
}

// fieldSet is the parsed body of a write against a schema.
type fieldSet struct {
	values  map[string]any
	ignored []string
}

func (f fieldSet) has(name string) bool {
	_, ok := f.values[name]
	return ok
}

func (f fieldSet) str(name string) string {
	v, _ := f.values[name].(string)
	return v
}

func (f fieldSet) strs(name string) []string {
	v, _ := f.values[name].([]string)
	return v
}

func (f fieldSet) int(name string) int64 {
	v, _ := f.values[name].(int64)
	return v
}

func (f fieldSet) bool(name string) bool {
	v, _ := f.values[name].(bool)
	return v
}

// parseFields coerces body against schema. Unknown keys are ignored with a
// warning, as Vault does.
func parseFields(schema map[string]fieldType, body map[string]any) (fieldSet, error) {
	fs := fieldSet{values: map[string]any{}}
	for k, v := range body {
		t, ok := schema[k]
		if !ok {
			fs.ignored = append(fs.ignored, k)
			continue
		}
		c, err := coerce(k, t, v)
		if err != nil {
			return fs, err
		}
		fs.values[k] = c
	}
	return fs, nil
}

func (f fieldSet) warnings() []string {
	if len(f.ignored) == 0 {
		return nil
	}
	return []string{fmt.Sprintf("Endpoint ignored these unrecognized parameters: %v", sortedCopy(f.ignored))}
}
