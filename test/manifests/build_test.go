package manifests

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBinaryBuiltWithTheDockerfilesFlagsPrintsTheStampedVersion runs the Dockerfile's own `go build` line
// (its environment, flags and package, with the build args filled in) for this machine's platform, and
// checks that `drbot version` prints what was stamped: the image gets exactly this binary.
func TestBinaryBuiltWithTheDockerfilesFlagsPrintsTheStampedVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/drbot from scratch with -trimpath (minutes on a loaded machine)")
	}
	root := repoRoot(t)
	d := loadDockerfile(t)
	st, run := buildLine(t, d)

	args := map[string]string{}
	for k, v := range d.globalArgs {
		args[k] = v
	}
	for k, v := range st.args() {
		args[k] = v
	}
	const (
		version = "v9.8.7-test.1"
		commit  = "0123456789abcdef0123456789abcdef01234567"
		date    = "2026-11-25T22:00:00Z"
	)
	args["VERSION"], args["COMMIT"], args["DATE"] = version, commit, date
	args["TARGETOS"], args["TARGETARCH"] = runtime.GOOS, runtime.GOARCH

	line, err := expand(run.args, args)
	if err != nil {
		t.Fatalf("Dockerfile line %d: %v", run.line, err)
	}
	words, err := shellWords(line)
	if err != nil {
		t.Fatalf("Dockerfile line %d: %v", run.line, err)
	}
	var env []string
	for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		t.Fatalf("Dockerfile line %d: want `[VAR=value…] go build …`, got %q", run.line, line)
	}
	bin := filepath.Join(t.TempDir(), "drbot")
	outSet := false
	for i := range words {
		if words[i] == "-o" && i+1 < len(words) {
			words[i+1] = bin
			outSet = true
		}
	}
	if !outSet {
		t.Fatalf("Dockerfile line %d: the build has no -o", run.line)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("finding the go command: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, words[1:]...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	t.Logf("running (in %s): %s go %s", root, strings.Join(env, " "), strings.Join(words[1:], " "))
	began := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build with the Dockerfile's flags: %v\n%s", err, out)
	}
	t.Logf("built in %s", time.Since(began).Round(time.Second))

	out, err := exec.CommandContext(ctx, bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version: %v\n%s", bin, err, out)
	}
	for _, want := range []string{version, commit, date} {
		if !strings.Contains(string(out), want) {
			t.Errorf("`drbot version` printed %q, missing the stamped %q", out, want)
		}
	}

	// CGO_ENABLED=0 must give a static binary: distroless/static has no libc to link against.
	if runtime.GOOS == "linux" {
		if interp := elfInterpreter(t, bin); interp != "" {
			t.Errorf("the binary asks for the dynamic loader %s; distroless/static cannot run it", interp)
		}
	}
}
