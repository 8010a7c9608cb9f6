package awsfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// policyDoc is a parsed identity-based policy document attached to a
// principal with AttachPolicyDocument.
type policyDoc struct {
	id         string // the document's Id, or document-N
	statements []policyStatement
}

type policyStatement struct {
	label       string // for errors: `statement 2 (Sid "Eks1")`
	deny        bool
	actions     []*regexp.Regexp
	notAction   bool
	resources   []*regexp.Regexp
	notResource bool
	conditions  []policyCondition
}

type policyCondition struct {
	op       string // base operator, e.g. StringLike
	set      string // "", "ForAnyValue" or "ForAllValues"
	ifExists bool
	key      string // as written (IAM matches key names case-insensitively)
	values   []string
	patterns []*regexp.Regexp // for *Like and Arn* operators
}

// conditionOps are the modelled condition operators (without IfExists and
// set prefixes); negated ones are true when the key is absent.
var conditionOps = map[string]struct{ negated, pattern, arn bool }{
	"StringEquals":              {},
	"StringNotEquals":           {negated: true},
	"StringEqualsIgnoreCase":    {},
	"StringNotEqualsIgnoreCase": {negated: true},
	"StringLike":                {pattern: true},
	"StringNotLike":             {negated: true, pattern: true},
	"ArnEquals":                 {pattern: true, arn: true},
	"ArnLike":                   {pattern: true, arn: true},
	"ArnNotEquals":              {negated: true, pattern: true, arn: true},
	"ArnNotLike":                {negated: true, pattern: true, arn: true},
	"Bool":                      {},
	"Null":                      {},
}

// AttachPolicyDocument attaches an identity-based policy document (JSON) to
// principalArn; SimulatePrincipalPolicy then evaluates the principal's
// documents as IAM does instead of allowing everything. A role's documents
// also apply to its assumed-role sessions. Several documents may be attached.
// Elements the stand-in does not model (Principal, policy variables,
// numeric/date/IP operators, ...) are refused with an error naming the
// statement.
func (s *Server) AttachPolicyDocument(principalArn, doc string) error {
	if principalArn == "" {
		return fmt.Errorf("attaching a policy document: empty principal ARN")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := parsePolicyDocument(doc, fmt.Sprintf("document-%d", len(s.iam.docs[principalArn])+1))
	if err != nil {
		return fmt.Errorf("attaching a policy document to %s: %w", principalArn, err)
	}
	s.iam.docs[principalArn] = append(s.iam.docs[principalArn], p)
	return nil
}

// docsFor returns the documents that apply to a policy source ARN: its own
// and, for an assumed-role session, its role's. Callers hold s.mu.
func (s *Server) docsFor(arn string) []*policyDoc {
	docs := s.iam.docs[arn]
	if c := canonicalPrincipal(arn); c != arn {
		docs = append(docs[:len(docs):len(docs)], s.iam.docs[c]...)
	}
	return docs
}

func parsePolicyDocument(doc, defaultID string) (*policyDoc, error) {
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.UseNumber()
	var top map[string]json.RawMessage
	if err := dec.Decode(&top); err != nil {
		return nil, fmt.Errorf("parsing policy JSON: %w", err)
	}
	p := &policyDoc{id: defaultID}
	var rawStatements json.RawMessage
	for k, v := range top {
		switch k {
		case "Version":
			var ver string
			if err := json.Unmarshal(v, &ver); err != nil || (ver != "2012-10-17" && ver != "2008-10-17") {
				return nil, fmt.Errorf("policy Version %s is not 2012-10-17 or 2008-10-17", v)
			}
		case "Id":
			if err := json.Unmarshal(v, &p.id); err != nil {
				return nil, fmt.Errorf("policy Id %s is not a string", v)
			}
		case "Statement":
			rawStatements = v
		default:
			return nil, fmt.Errorf("policy element %q is not modelled", k)
		}
	}
	if rawStatements == nil {
		return nil, fmt.Errorf("policy has no Statement")
	}
	var list []json.RawMessage
	if t := bytes.TrimSpace(rawStatements); len(t) > 0 && t[0] == '{' {
		list = []json.RawMessage{rawStatements}
	} else if err := json.Unmarshal(rawStatements, &list); err != nil {
		return nil, fmt.Errorf("policy Statement is neither an object nor a list: %w", err)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("policy Statement is empty")
	}
	for i, raw := range list {
		st, err := parseStatement(raw, i+1)
		if err != nil {
			return nil, err
		}
		p.statements = append(p.statements, st)
	}
	return p, nil
}

func parseStatement(raw json.RawMessage, n int) (policyStatement, error) {
	st := policyStatement{label: fmt.Sprintf("statement %d", n)}
	var m map[string]json.RawMessage
	if err := unmarshalNumbers(raw, &m); err != nil {
		return st, fmt.Errorf("%s is not an object: %w", st.label, err)
	}
	if v, ok := m["Sid"]; ok {
		var sid string
		if err := json.Unmarshal(v, &sid); err != nil {
			return st, fmt.Errorf("%s: Sid %s is not a string", st.label, v)
		}
		st.label = fmt.Sprintf("statement %d (Sid %q)", n, sid)
	}
	fail := func(format string, args ...any) (policyStatement, error) {
		return st, fmt.Errorf("%s: %s", st.label, fmt.Sprintf(format, args...))
	}
	for k := range m {
		switch k {
		case "Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition":
		case "Principal", "NotPrincipal":
			return fail("%s is not modelled (identity-based policies have none)", k)
		default:
			return fail("element %q is not modelled", k)
		}
	}
	var effect string
	if err := json.Unmarshal(m["Effect"], &effect); err != nil || (effect != "Allow" && effect != "Deny") {
		return fail("Effect %s is not \"Allow\" or \"Deny\"", m["Effect"])
	}
	st.deny = effect == "Deny"

	actionKey, ok, err := exactlyOne(m, "Action", "NotAction")
	if err != nil {
		return fail("%v", err)
	}
	st.notAction = actionKey == "NotAction"
	actions, err := stringOrList(ok)
	if err != nil {
		return fail("%s: %v", actionKey, err)
	}
	for _, a := range actions {
		if a != "*" && !strings.Contains(a, ":") {
			return fail("%s %q is not service:Action", actionKey, a)
		}
		st.actions = append(st.actions, globRE(a, false, true))
	}

	resourceKey, ok, err := exactlyOne(m, "Resource", "NotResource")
	if err != nil {
		return fail("%v", err)
	}
	st.notResource = resourceKey == "NotResource"
	resources, err := stringOrList(ok)
	if err != nil {
		return fail("%s: %v", resourceKey, err)
	}
	for _, r := range resources {
		if strings.Contains(r, "${") {
			return fail("%s %q: policy variables are not modelled", resourceKey, r)
		}
		if r != "*" && !strings.HasPrefix(r, "arn:") {
			return fail("%s %q is neither * nor an ARN", resourceKey, r)
		}
		st.resources = append(st.resources, globRE(r, true, false))
	}

	if raw, ok := m["Condition"]; ok {
		conds, err := parseConditions(raw)
		if err != nil {
			return fail("%v", err)
		}
		st.conditions = conds
	}
	return st, nil
}

func unmarshalNumbers(raw []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	return dec.Decode(v)
}

// exactlyOne returns which of two mutually exclusive elements is present.
func exactlyOne(m map[string]json.RawMessage, a, b string) (string, json.RawMessage, error) {
	va, okA := m[a]
	vb, okB := m[b]
	switch {
	case okA && okB:
		return "", nil, fmt.Errorf("both %s and %s are given", a, b)
	case okA:
		return a, va, nil
	case okB:
		return b, vb, nil
	}
	return "", nil, fmt.Errorf("neither %s nor %s is given", a, b)
}

// stringOrList reads a JSON string or a non-empty list of strings.
func stringOrList(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("%s is neither a string nor a list of strings", raw)
	}
	if len(list) == 0 {
		return nil, fmt.Errorf("empty list")
	}
	return list, nil
}

// conditionValues reads a condition's values: a scalar (string, boolean,
// number) or a list of them, as strings.
func conditionValues(raw json.RawMessage) ([]string, error) {
	var v any
	if err := unmarshalNumbers(raw, &v); err != nil {
		return nil, err
	}
	items, isList := v.([]any)
	if !isList {
		items = []any{v}
	}
	var out []string
	for _, it := range items {
		switch x := it.(type) {
		case string:
			out = append(out, x)
		case bool:
			out = append(out, fmt.Sprint(x))
		case json.Number:
			out = append(out, x.String())
		default:
			return nil, fmt.Errorf("value %s is not a string, boolean or number", raw)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no values")
	}
	return out, nil
}

func parseConditions(raw json.RawMessage) ([]policyCondition, error) {
	var ops map[string]map[string]json.RawMessage
	if err := unmarshalNumbers(raw, &ops); err != nil {
		return nil, fmt.Errorf("the Condition is not {operator: {key: value(s)}}: %w", err)
	}
	var out []policyCondition
	for _, opName := range sortedKeys(ops) {
		c := policyCondition{}
		base := opName
		if rest, ok := strings.CutPrefix(base, "ForAnyValue:"); ok {
			c.set, base = "ForAnyValue", rest
		} else if rest, ok := strings.CutPrefix(base, "ForAllValues:"); ok {
			c.set, base = "ForAllValues", rest
		}
		if rest, ok := strings.CutSuffix(base, "IfExists"); ok && rest != "" {
			c.ifExists, base = true, rest
		}
		info, known := conditionOps[base]
		if !known {
			return nil, fmt.Errorf("condition operator %q is not modelled", opName)
		}
		if base == "Null" && (c.ifExists || c.set != "") {
			return nil, fmt.Errorf("condition operator %q is not valid", opName)
		}
		c.op = base
		if len(ops[opName]) == 0 {
			return nil, fmt.Errorf("condition operator %q has no keys", opName)
		}
		for _, key := range sortedKeys(ops[opName]) {
			kc := c
			kc.key = key
			vals, err := conditionValues(ops[opName][key])
			if err != nil {
				return nil, fmt.Errorf("condition %s on %s: %w", opName, key, err)
			}
			for _, v := range vals {
				if strings.Contains(v, "${") {
					return nil, fmt.Errorf("condition %s on %s: policy variables are not modelled (%q)", opName, key, v)
				}
				if (base == "Bool" || base == "Null") && !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
					return nil, fmt.Errorf("condition %s on %s: %q is not true or false", opName, key, v)
				}
				if info.pattern {
					kc.patterns = append(kc.patterns, globRE(v, info.arn, false))
				}
			}
			kc.values = vals
			out = append(out, kc)
		}
	}
	return out, nil
}

// globRE compiles an IAM wildcard pattern: * is any run of characters and
// ? one character. In ARNs a wildcard stays inside its colon-separated
// segment, except a * that ends a segment, which IAM lets run past colons.
// A requested value is matched literally, so "*" in it matches only * or a
// wildcard of the pattern.
func globRE(pattern string, arn, fold bool) *regexp.Regexp {
	var b strings.Builder
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for i, r := range pattern {
		switch r {
		case '*':
			if arn && i+1 < len(pattern) && pattern[i+1] != ':' {
				b.WriteString("[^:]*")
			} else {
				b.WriteString(".*")
			}
		case '?':
			if arn {
				b.WriteString("[^:]")
			} else {
				b.WriteString(".")
			}
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func anyMatch(res []*regexp.Regexp, v string) bool {
	for _, re := range res {
		if re.MatchString(v) {
			return true
		}
	}
	return false
}

// simContext is a simulation's request context: key (lowercased) → values.
type simContext map[string][]string

// appliesTo reports whether the statement covers action on resource,
// before conditions.
func (st *policyStatement) appliesTo(action, resource string) bool {
	return anyMatch(st.actions, action) != st.notAction && anyMatch(st.resources, resource) != st.notResource
}

// conditionsHold ANDs the statement's conditions, adding to missing the
// keys it tests that the context lacks.
func (st *policyStatement) conditionsHold(ctx simContext, missing map[string]bool) bool {
	ok := true
	for i := range st.conditions {
		c := &st.conditions[i]
		if _, present := ctx[strings.ToLower(c.key)]; !present && c.op != "Null" {
			missing[c.key] = true
		}
		ok = c.holds(ctx) && ok
	}
	return ok
}

func (c *policyCondition) holds(ctx simContext) bool {
	vals := ctx[strings.ToLower(c.key)]
	present := len(vals) > 0
	info := conditionOps[c.op]
	if c.op == "Null" {
		// Null: true means "the key is absent".
		for _, v := range c.values {
			if strings.EqualFold(v, "true") != present {
				return true
			}
		}
		return false
	}
	if !present {
		switch {
		case c.ifExists, c.set == "ForAllValues":
			return true
		case c.set == "ForAnyValue":
			return false
		}
		return info.negated
	}
	// one is the operator on a single request value: a positive operator
	// ORs the policy's values, a negated one NORs them.
	one := func(r string) bool {
		hit := false
		for i, v := range c.values {
			switch {
			case info.pattern:
				hit = c.patterns[i].MatchString(r)
			case strings.HasSuffix(c.op, "IgnoreCase"), c.op == "Bool":
				hit = strings.EqualFold(r, v)
			default:
				hit = r == v
			}
			if hit {
				break
			}
		}
		return hit != info.negated
	}
	all, some := true, false
	for _, r := range vals {
		if one(r) {
			some = true
		} else {
			all = false
		}
	}
	switch {
	case c.set == "ForAllValues":
		return all
	case c.set == "ForAnyValue":
		return some
	case info.negated:
		return all // no request value matches any policy value
	}
	return some
}

// policyEval is one simulated decision from attached documents.
type policyEval struct {
	decision string
	matched  []string // ids of the documents whose statements decided
	missing  []string
}

// evaluatePolicies decides action on resource as IAM does for
// identity-based policies: an explicit Deny wins, then any Allow, else an
// implicit deny.
func evaluatePolicies(docs []*policyDoc, action, resource string, ctx simContext) policyEval {
	missing := map[string]bool{}
	var allows, denies []string
	for _, d := range docs {
		for i := range d.statements {
			st := &d.statements[i]
			if !st.appliesTo(action, resource) || !st.conditionsHold(ctx, missing) {
				continue
			}
			if st.deny {
				denies = append(denies, d.id)
			} else {
				allows = append(allows, d.id)
			}
		}
	}
	ev := policyEval{decision: "implicitDeny"}
	switch {
	case len(denies) > 0:
		ev.decision, ev.matched = "explicitDeny", denies
	case len(allows) > 0:
		ev.decision, ev.matched = "allowed", allows
	}
	for k := range missing {
		ev.missing = append(ev.missing, k)
	}
	sort.Strings(ev.missing)
	return ev
}
