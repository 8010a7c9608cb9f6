package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The guides and the README link to files in the repository; these tests
// keep every such link pointing at something that exists.

var (
	mdLink   = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	codeSpan = regexp.MustCompile("`[^`]*`")
	lineRef  = regexp.MustCompile(`^L(\d+)$`)
	heading  = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*$`)
)

// brokenLinks lists the relative links of a Markdown file that do not
// resolve: a missing file, a #L<line> past its end, or a #heading that a
// Markdown file under checkAnchorsIn does not have.
func brokenLinks(file, checkAnchorsIn string) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var broken []string
	inFence := false
	for i, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			path, anchor, _ := strings.Cut(target, "#")
			resolved := file
			if path != "" {
				resolved = filepath.Join(filepath.Dir(file), path)
			}
			if why := checkTarget(resolved, anchor, checkAnchorsIn); why != "" {
				broken = append(broken, fmt.Sprintf("%s:%d: %s: %s", file, i+1, target, why))
			}
		}
	}
	return broken, nil
}

func checkTarget(path, anchor, checkAnchorsIn string) string {
	info, err := os.Stat(path)
	if err != nil {
		return "no such file"
	}
	if anchor == "" || info.IsDir() {
		return ""
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if m := lineRef.FindStringSubmatch(anchor); m != nil {
		n, _ := strconv.Atoi(m[1])
		if lines := strings.Count(string(data), "\n"); n < 1 || n > lines {
			return fmt.Sprintf("the file has %d lines", lines)
		}
		return ""
	}
	abs, _ := filepath.Abs(path)
	dir, _ := filepath.Abs(checkAnchorsIn)
	if !strings.HasSuffix(path, ".md") || !strings.HasPrefix(abs, dir+string(filepath.Separator)) {
		return "" // headings of files others own may move; only the guides' anchors are checked
	}
	for _, a := range anchors(string(data)) {
		if a == anchor {
			return ""
		}
	}
	return "no such heading"
}

// anchors are GitHub's ids for a Markdown file's headings.
func anchors(doc string) []string {
	var out []string
	inFence := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if m := heading.FindStringSubmatch(line); m != nil && !inFence {
			out = append(out, anchor(strings.ReplaceAll(m[1], "`", "")))
		}
	}
	return out
}

func TestDocsAndREADMELinksPointAtFilesThatExist(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(repoRoot, "README.md"))
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	docs := filepath.Join(repoRoot, "docs")
	for _, f := range files {
		broken, err := brokenLinks(f, docs)
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range broken {
			t.Error(b)
		}
	}
}

func TestLinkCheckFindsMissingFilesLinesAndHeadings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("other.md", "# Title\n\n## When Slack is down\n")
	write("code.yaml", "a: 1\nb: 2\n")
	write("guide.md", "# Guide\n"+
		"[ok](other.md#when-slack-is-down) [ok](code.yaml#L2) [ok](#guide) [web](https://example.com/x)\n"+
		"`[not a link](missing-in-code.md)`\n"+
		"```\n[not a link](missing-in-fence.md)\n```\n"+
		"[gone](missing.md) [past the end](code.yaml#L3) [no heading](other.md#nope) [self](#nope)\n")
	broken, err := brokenLinks(filepath.Join(dir, "guide.md"), dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"missing.md: no such file", "code.yaml#L3: the file has 2 lines", "other.md#nope: no such heading", "#nope: no such heading"}
	if len(broken) != len(want) {
		t.Fatalf("broken = %q, want %d entries like %q", broken, len(want), want)
	}
	for i, w := range want {
		if !strings.HasSuffix(broken[i], w) {
			t.Errorf("broken[%d] = %q, want it to end with %q", i, broken[i], w)
		}
	}
}
