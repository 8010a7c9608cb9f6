package gitlabfake

import (
	"fmt"
	"sort"
	"strings"
)

// fileDiff is one changed path between two trees, shaped like GitLab's diff
// entries.
type fileDiff struct {
	OldPath, NewPath         string
	AMode, BMode             string
	NewFile, Renamed, Delete bool
	Diff                     string
	Additions, Deletions     int
}

func (d fileDiff) json() map[string]any {
	return map[string]any{
		"old_path": d.OldPath, "new_path": d.NewPath,
		"a_mode": d.AMode, "b_mode": d.BMode,
		"new_file": d.NewFile, "renamed_file": d.Renamed, "deleted_file": d.Delete,
		"diff": d.Diff, "generated_file": false, "collapsed": false, "too_large": false,
	}
}

// treeDiff compares two snapshots, pairing exact-content renames like git.
func treeDiff(oldFiles, newFiles map[string]file) []fileDiff {
	var added, deleted []string
	var out []fileDiff
	for p, nf := range newFiles {
		of, ok := oldFiles[p]
		switch {
		case !ok:
			added = append(added, p)
		case of != nf:
			out = append(out, makeDiff(p, p, &of, &nf))
		}
	}
	for p := range oldFiles {
		if _, ok := newFiles[p]; !ok {
			deleted = append(deleted, p)
		}
	}
	sort.Strings(added)
	sort.Strings(deleted)
	renamedFrom := map[string]bool{}
	for _, a := range added {
		nf := newFiles[a]
		var from string
		for _, d := range deleted {
			if !renamedFrom[d] && oldFiles[d].content == nf.content {
				from = d
				break
			}
		}
		if from != "" {
			renamedFrom[from] = true
			of := oldFiles[from]
			out = append(out, makeDiff(from, a, &of, &nf))
			continue
		}
		out = append(out, makeDiff(a, a, nil, &nf))
	}
	for _, d := range deleted {
		if !renamedFrom[d] {
			of := oldFiles[d]
			out = append(out, makeDiff(d, d, &of, nil))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NewPath < out[j].NewPath })
	return out
}

func makeDiff(oldPath, newPath string, of, nf *file) fileDiff {
	d := fileDiff{OldPath: oldPath, NewPath: newPath, AMode: "0", BMode: "0"}
	var a, b string
	if of != nil {
		d.AMode, a = of.mode(), of.content
	}
	if nf != nil {
		d.BMode, b = nf.mode(), nf.content
	}
	d.NewFile = of == nil
	d.Delete = nf == nil
	d.Renamed = of != nil && nf != nil && oldPath != newPath
	d.Diff, d.Additions, d.Deletions = unifiedDiff(a, b)
	return d
}

// unifiedDiff renders the hunks (no ---/+++ header, as GitLab returns them)
// of a line diff with three lines of context.
func unifiedDiff(a, b string) (string, int, int) {
	if a == b {
		return "", 0, 0
	}
	al, bl := splitLines(a), splitLines(b)
	ops := diffLines(al, bl)

	const context = 3
	var out strings.Builder
	adds, dels := 0, 0
	i := 0
	for i < len(ops) {
		// Find the next change.
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(i-context, 0)
		end := i
		// Extend the hunk while changes are within 2*context of each other.
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			j := end
			for j < len(ops) && ops[j].kind == ' ' {
				j++
			}
			if j == len(ops) || j-end > 2*context {
				end = min(end+context, len(ops))
				break
			}
			end = j
		}
		hunk := ops[start:end]
		aStart, bStart := hunk[0].aLine, hunk[0].bLine
		aCount, bCount := 0, 0
		for _, op := range hunk {
			if op.kind != '+' {
				aCount++
			}
			if op.kind != '-' {
				bCount++
			}
		}
		if aCount == 0 {
			aStart--
		}
		if bCount == 0 {
			bStart--
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", hunkRange(aStart, aCount), hunkRange(bStart, bCount))
		for _, op := range hunk {
			out.WriteByte(op.kind)
			out.WriteString(strings.TrimSuffix(op.text, "\n"))
			out.WriteByte('\n')
			if !strings.HasSuffix(op.text, "\n") {
				out.WriteString("\\ No newline at end of file\n")
			}
			switch op.kind {
			case '+':
				adds++
			case '-':
				dels++
			}
		}
		i = end
	}
	return out.String(), adds, dels
}

func hunkRange(start, count int) string {
	if count == 1 {
		return fmt.Sprint(start)
	}
	return fmt.Sprintf("%d,%d", start, count)
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	lines := strings.SplitAfter(s, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	return lines
}

type lineOp struct {
	kind         byte // ' ', '-', '+'
	text         string
	aLine, bLine int // 1-based line numbers where this op sits
}

// diffLines is an LCS line diff; inputs in tests are small.
func diffLines(a, b []string) []lineOp {
	n, m := len(a), len(b)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []lineOp
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && a[i] == b[j]:
			ops = append(ops, lineOp{' ', a[i], i + 1, j + 1})
			i++
			j++
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, lineOp{'-', a[i], i + 1, j + 1})
			i++
		default:
			ops = append(ops, lineOp{'+', b[j], i + 1, j + 1})
			j++
		}
	}
	return ops
}
