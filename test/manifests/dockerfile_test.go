// Package manifests tests what deploys drbot: the Dockerfile (linted here, since no Docker engine runs in
// CI, and its exact Go build line run for real), the kustomize base in manifests/ (rendered with the
// kustomize API and dry-run against a real kube-apiserver) and the Slack app manifest (its scopes checked
// against the Slack methods the code calls).
package manifests

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ARG…
	args string
	line int
}

type dockerfile struct {
	globalArgs map[string]string // ARGs before the first FROM, with their defaults
	stages     []stage
}

type stage struct {
	from         string // the image or stage as written
	platform     string
	name         string // AS name
	instructions []instruction
}

func parseDockerfile(t *testing.T, path string) *dockerfile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("opening %s: %v", path, err)
	}
	defer f.Close()
	var insts []instruction
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // comments inside a continued instruction are dropped, as Docker does
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(body + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		insts = append(insts, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	if cur.Len() > 0 {
		t.Fatalf("%s ends inside a continued instruction (line %d)", path, start)
	}

	d := &dockerfile{globalArgs: map[string]string{}}
	for _, in := range insts {
		switch {
		case in.cmd == "FROM":
			s := stage{}
			fields := strings.Fields(in.args)
			for len(fields) > 0 && strings.HasPrefix(fields[0], "--") {
				if p, ok := strings.CutPrefix(fields[0], "--platform="); ok {
					s.platform = p
				}
				fields = fields[1:]
			}
			if len(fields) == 0 {
				t.Fatalf("line %d: FROM without an image", in.line)
			}
			s.from = fields[0]
			if len(fields) == 3 && strings.EqualFold(fields[1], "AS") {
				s.name = fields[2]
			} else if len(fields) != 1 {
				t.Fatalf("line %d: cannot read FROM %s", in.line, in.args)
			}
			d.stages = append(d.stages, s)
		case len(d.stages) == 0:
			if in.cmd != "ARG" {
				t.Fatalf("line %d: only ARG may come before the first FROM, got %s", in.line, in.cmd)
			}
			k, v, _ := strings.Cut(in.args, "=")
			d.globalArgs[k] = v
		default:
			last := &d.stages[len(d.stages)-1]
			last.instructions = append(last.instructions, in)
		}
	}
	if len(d.stages) == 0 {
		t.Fatalf("%s has no FROM", path)
	}
	return d
}

// final is the stage the image is made of.
func (d *dockerfile) final() stage { return d.stages[len(d.stages)-1] }

// stageArgs are the ARG defaults declared inside a stage.
func (s stage) args() map[string]string {
	m := map[string]string{}
	for _, in := range s.instructions {
		if in.cmd == "ARG" {
			for _, a := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(a, "=")
				m[k] = v
			}
		}
	}
	return m
}

var varRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// expand substitutes ${VAR}, ${VAR:-word}, ${VAR:+word} and $VAR as Dockerfile instructions do; an unset
// variable is an error so a test never checks a half-expanded string.
func expand(s string, vars map[string]string) (string, error) {
	var missing []string
	out := varRef.ReplaceAllStringFunc(s, func(m string) string {
		g := varRef.FindStringSubmatch(m)
		name := g[1]
		if name == "" {
			name = g[4]
		}
		v, ok := vars[name]
		switch g[2] {
		case "-":
			if v == "" {
				return g[3]
			}
			return v
		case "+":
			if v != "" {
				return g[3]
			}
			return ""
		}
		if !ok {
			missing = append(missing, name)
		}
		return v
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("undefined build args %v in %q", missing, s)
	}
	return out, nil
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

func loadDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	return parseDockerfile(t, filepath.Join(repoRoot(t), "Dockerfile"))
}

func TestDockerfileFinalStageRunsAsNonRootUser(t *testing.T) {
	d := loadDockerfile(t)
	var user string
	for _, in := range d.final().instructions {
		if in.cmd == "USER" {
			user = in.args
		}
	}
	if user == "" {
		t.Fatal("the final stage sets no USER: the image would run as root")
	}
	name, group, _ := strings.Cut(user, ":")
	for _, id := range []string{name, group} {
		if id == "0" || id == "root" {
			t.Fatalf("USER %s runs as root", user)
		}
	}
	if !regexp.MustCompile(`^[1-9][0-9]*(:[1-9][0-9]*)?$`).MatchString(user) {
		// runAsNonRoot in the pod can only be verified by the kubelet for a numeric user.
		t.Fatalf("USER %s: want a numeric uid:gid so Kubernetes' runAsNonRoot can verify it", user)
	}
}

var (
	digestRef  = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
	versionTag = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+)*([-.][0-9A-Za-z.-]+)?$`)
)

// unpinnedBases lists every FROM that, with the build args' defaults and with the optional terraform stage
// switched on, names neither scratch, an earlier stage, a digest nor a version tag (latest never counts).
func unpinnedBases(t *testing.T, d *dockerfile) []string {
	t.Helper()
	var bad []string
	for _, tfVersion := range []string{"", "1.9.8"} {
		args := map[string]string{}
		for k, v := range d.globalArgs {
			args[k] = v
		}
		if tfVersion != "" {
			args["TERRAFORM_VERSION"] = tfVersion
		}
		stages := map[string]bool{}
		for _, s := range d.stages {
			ref, err := expand(s.from, args)
			if err != nil {
				t.Fatalf("FROM %s: %v", s.from, err)
			}
			switch {
			case ref == "scratch", stages[ref]:
			case strings.Contains(ref, "latest"):
				bad = append(bad, fmt.Sprintf("FROM %s (TERRAFORM_VERSION=%q) → %s uses latest", s.from, tfVersion, ref))
			case digestRef.MatchString(ref):
			default:
				image := ref
				if i := strings.LastIndex(image, "/"); i >= 0 {
					image = image[i+1:]
				}
				if _, tag, ok := strings.Cut(image, ":"); !ok || !versionTag.MatchString(tag) {
					bad = append(bad, fmt.Sprintf("FROM %s (TERRAFORM_VERSION=%q) → %s is pinned neither by a version tag nor by a digest", s.from, tfVersion, ref))
				}
			}
			if s.name != "" {
				stages[s.name] = true
			}
		}
	}
	return bad
}

func TestDockerfileBaseImagesArePinned(t *testing.T) {
	d := loadDockerfile(t)
	for _, b := range unpinnedBases(t, d) {
		t.Error(b)
	}
	if final := d.final().from; !strings.Contains(final, "distroless") {
		t.Errorf("final image %s: want distroless (CA certificates, no shell)", final)
	}
}

func TestPinCheckRejectsLatestFloatingAndUntaggedBases(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Dockerfile")
	src := "ARG TAG=latest\nFROM golang:1.26.8 AS build\nFROM build\nFROM alpine\nFROM debian:${TAG}\nFROM gcr.io/distroless/static:nonroot\n" +
		"FROM gcr.io/distroless/static@sha256:" + strings.Repeat("ab", 32) + "\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := unpinnedBases(t, parseDockerfile(t, path))
	// Three unpinned bases, each reported once per terraform setting.
	if len(bad) != 6 {
		t.Fatalf("want alpine, debian:latest and distroless:nonroot reported (twice each), got %d:\n%s", len(bad), strings.Join(bad, "\n"))
	}
	for _, want := range []string{"alpine", "debian:latest", "static:nonroot"} {
		if !slices.ContainsFunc(bad, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("%s was not reported: %q", want, bad)
		}
	}
}

// buildLine is the RUN instruction that runs `go build`.
func buildLine(t *testing.T, d *dockerfile) (stage, instruction) {
	t.Helper()
	var found []instruction
	var in stage
	for _, s := range d.stages {
		for _, i := range s.instructions {
			if i.cmd == "RUN" && strings.Contains(i.args, "go build") {
				found = append(found, i)
				in = s
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one RUN with go build in the Dockerfile, found %d", len(found))
	}
	return in, found[0]
}

func TestDockerfileBuildIsStaticTrimmedAndStamped(t *testing.T) {
	_, run := buildLine(t, loadDockerfile(t))
	words, err := shellWords(run.args)
	if err != nil {
		t.Fatalf("line %d: %v", run.line, err)
	}
	has := func(w string) bool {
		for _, x := range words {
			if x == w {
				return true
			}
		}
		return false
	}
	if !has("CGO_ENABLED=0") {
		t.Errorf("line %d: the build does not set CGO_ENABLED=0 (a static binary for distroless/static): %s", run.line, run.args)
	}
	if !has("-trimpath") {
		t.Errorf("line %d: the build lacks -trimpath: %s", run.line, run.args)
	}
	ldflags := ""
	for i, w := range words {
		if w == "-ldflags" && i+1 < len(words) {
			ldflags = words[i+1]
		} else if v, ok := strings.CutPrefix(w, "-ldflags="); ok {
			ldflags = v
		}
	}
	for _, v := range []string{"main.version", "main.commit", "main.date"} {
		if !regexp.MustCompile(`-X ` + regexp.QuoteMeta(v) + `=\S+`).MatchString(ldflags) {
			t.Errorf("line %d: -ldflags %q does not stamp %s", run.line, ldflags, v)
		}
	}
	if !strings.HasSuffix(strings.Join(words, " "), "./cmd/drbot") {
		t.Errorf("line %d: the build does not end with the package ./cmd/drbot: %s", run.line, run.args)
	}
}

func TestDockerfileFinalImageHasOCILabelsAndStateVolume(t *testing.T) {
	final := loadDockerfile(t).final()
	labels := map[string]string{}
	var volumes, entrypoint string
	for _, in := range final.instructions {
		switch in.cmd {
		case "LABEL":
			words, err := shellWords(in.args)
			if err != nil {
				t.Fatalf("line %d: %v", in.line, err)
			}
			for _, w := range words {
				k, v, ok := strings.Cut(w, "=")
				if !ok {
					t.Fatalf("line %d: LABEL %q is not key=value", in.line, w)
				}
				labels[k] = v
			}
		case "VOLUME":
			volumes += in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		}
	}
	for _, k := range []string{"title", "description", "source", "version", "revision", "created"} {
		if labels["org.opencontainers.image."+k] == "" {
			t.Errorf("the final image lacks the OCI label org.opencontainers.image.%s", k)
		}
	}
	if labels["org.opencontainers.image.version"] != "${VERSION}" || labels["org.opencontainers.image.revision"] != "${COMMIT}" {
		t.Errorf("the version and revision labels should carry the stamped build args, got %q and %q",
			labels["org.opencontainers.image.version"], labels["org.opencontainers.image.revision"])
	}
	if !strings.Contains(volumes, "/var/lib/drbot") {
		t.Errorf("no VOLUME for /var/lib/drbot: the state must live outside the read-only root (VOLUME %s)", volumes)
	}
	if !strings.Contains(entrypoint, "drbot") {
		t.Errorf("ENTRYPOINT %s does not run drbot", entrypoint)
	}
}

// shellWords splits a command line as sh would for the quoting the Dockerfile uses: double and single
// quotes, backslash escapes; operators (&&, ;, |) end the command.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.ContainsRune(`"\$`, rune(s[i+1])) {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf(`unterminated " in %q`, s)
			}
			inWord = true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == ';' || c == '|' || c == '&':
			return nil, fmt.Errorf("the build line must be one command (found %q) so the test runs exactly what the image runs: %q", c, s)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func TestShellWordsKeepsQuotedLdflagsTogether(t *testing.T) {
	got, err := shellWords(`CGO_ENABLED=0 go build -ldflags "-s -X main.version=${VERSION}" -o '/out/a b' ./cmd/drbot`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"CGO_ENABLED=0", "go", "build", "-ldflags", "-s -X main.version=${VERSION}", "-o", "/out/a b", "./cmd/drbot"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("shellWords = %q, want %q", got, want)
	}
	if _, err := shellWords("go build && rm -rf /"); err == nil {
		t.Fatal("a compound command was accepted")
	}
}

func TestExpandFollowsDockerfileModifiers(t *testing.T) {
	vars := map[string]string{"SET": "1.9.8", "EMPTY": ""}
	for in, want := range map[string]string{
		"terraform${SET:+-image}":   "terraform-image",
		"terraform${EMPTY:+-image}": "terraform",
		"tf:${EMPTY:-1.0.0}":        "tf:1.0.0",
		"tf:${SET:-1.0.0}":          "tf:1.9.8",
		"$SET/${SET}":               "1.9.8/1.9.8",
	} {
		got, err := expand(in, vars)
		if err != nil || got != want {
			t.Errorf("expand(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := expand("${NOPE}", vars); err == nil {
		t.Error("an undefined variable expanded silently")
	}
}
