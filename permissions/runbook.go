package permissions

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// otherTitles say what each non-step part is, in the runbook reference.
var otherTitles = map[string]string{
	"serve":        "`drbot serve`: Slack (Socket Mode)",
	"state.backup": "State copies to S3 (`state.backup`)",
	"rollback":     "`/dr rollback` and `drbot run rollback` of a cutover",
	"plan":         "`/dr plan` and `drbot plan -live`: read-only",
	"check":        "Readiness checks (`/dr check`, `drbot check`): read-only",
}

// Runbook is docs/runbook.md: every step, what it does, what it reads and
// changes, how it is idempotent, its gate, and how to undo it by hand.
func Runbook(s Set) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- %s -->\n\n", Generated)
	b.WriteString("# Runbook reference\n\n")
	b.WriteString("Every step drbot runs, in table order (steps form a DAG: a step starts when those it depends on are done). ")
	b.WriteString("For each: what it does, what it reads and changes (the same declaration the IAM policy, the RBAC and the Vault policy ")
	b.WriteString("are generated from, and that a test holds the code to), how a repeat or a resume after a crash is safe, what its approval ")
	b.WriteString("gate shows, and how to undo it by hand if drbot itself is unavailable. `${NAMES}` are placeholders: see ")
	b.WriteString("[manifests/iam/README.md](../manifests/iam/README.md).\n\n")
	b.WriteString("| # | Step | Phase | Depends on | Gate |\n|---|---|---|---|---|\n")
	for i, st := range s.Steps {
		deps := "—"
		if len(st.DependsOn) > 0 {
			deps = "`" + strings.Join(st.DependsOn, "`, `") + "`"
		}
		gate := "—"
		if st.Gate != "" {
			gate = st.Gate
		}
		title := st.Title
		switch {
		case st.Drill && st.OnAbort:
			title += " (drills only; also after an abort)"
		case st.Drill:
			title += " (drills only)"
		case st.OnAbort:
			title += " (also after an abort)"
		}
		fmt.Fprintf(&b, "| %d | [`%s`](#%s) %s | %s | %s | %s |\n", i+1, st.ID, anchor(st.ID), title, st.Phase, deps, gate)
	}
	for _, st := range s.Steps {
		fmt.Fprintf(&b, "\n## %s\n\n", st.ID)
		fmt.Fprintf(&b, "**%s.** Phase %s", st.Title, st.Phase)
		if st.Drill {
			b.WriteString(", drills only")
		}
		if st.OnAbort {
			b.WriteString(", runs after an abort too")
		}
		b.WriteString(".\n\n")
		fmt.Fprintf(&b, "**What it does.** %s\n\n", st.Doc.Does)
		b.WriteString("**Reads and changes.**\n\n")
		writeNeed(&b, st.Need)
		fmt.Fprintf(&b, "\n**Idempotent.** %s\n\n", st.Doc.Idempotent)
		if st.Doc.Gate != "" {
			fmt.Fprintf(&b, "**Approval gate (%s).** %s\n\n", st.Gate, st.Doc.Gate)
		}
		fmt.Fprintf(&b, "**By hand, if drbot is unavailable.** %s\n", st.Doc.Rollback)
	}
	b.WriteString("\n## Outside the steps\n")
	for _, k := range slices.Sorted(maps.Keys(s.Other)) {
		title := otherTitles[k]
		if title == "" {
			title = "`" + k + "`"
		}
		fmt.Fprintf(&b, "\n### %s\n\n", title)
		writeNeed(&b, s.Other[k])
	}
	return []byte(b.String())
}

func anchor(id string) string {
	return strings.NewReplacer(".", "", " ", "-").Replace(strings.ToLower(id))
}

func writeNeed(b *strings.Builder, n Need) {
	empty := true
	for _, a := range n.AWS {
		empty = false
		res := "`*` (no resource-level permissions)"
		if len(a.Resources) > 0 {
			res = "`" + strings.Join(a.Resources, "`, `") + "`"
		}
		fmt.Fprintf(b, "- AWS: `%s` on %s", strings.Join(a.Actions, "`, `"), res)
		for _, c := range a.Conditions {
			fmt.Fprintf(b, " when %s `%s` is `%s`", c.Operator, c.Key, strings.Join(c.Values, "` or `"))
		}
		if a.Why != "" {
			fmt.Fprintf(b, ": %s", a.Why)
		}
		b.WriteString("\n")
	}
	for _, r := range n.Kube {
		empty = false
		group := r.APIGroup
		if group == "" {
			group = "core"
		}
		where := "cluster-scoped"
		switch r.Namespace {
		case "*":
			where = "any namespace"
		case "":
		default:
			where = "namespace `" + r.Namespace + "`"
		}
		fmt.Fprintf(b, "- Kubernetes (%s cluster): `%s` %s (%s), %s", r.Cluster, strings.Join(r.Verbs, "`, `"), strings.Join(r.Resources, ", "), group, where)
		if r.Why != "" {
			fmt.Fprintf(b, ": %s", r.Why)
		}
		b.WriteString("\n")
	}
	for _, v := range n.Vault {
		empty = false
		fmt.Fprintf(b, "- Vault: `%s` (%s)\n", v.Path, strings.Join(v.Capabilities, ", "))
	}
	seen := map[string]bool{}
	for _, g := range n.GitLab {
		line := fmt.Sprintf("- GitLab: `%s %s` (token scope %s, project role %s)\n", g.Method, g.Path, g.Scope, g.Role)
		if !seen[line] {
			empty = false
			seen[line] = true
			b.WriteString(line)
		}
	}
	if len(n.Slack) > 0 {
		empty = false
		fmt.Fprintf(b, "- Slack bot scopes: `%s`\n", strings.Join(n.Slack, "`, `"))
	}
	for _, o := range n.Outside {
		empty = false
		fmt.Fprintf(b, "- Beyond this declaration: %s\n", o)
	}
	if empty {
		b.WriteString("- Nothing outside drbot: it reads its own state and posts through the outbox.\n")
	}
}
