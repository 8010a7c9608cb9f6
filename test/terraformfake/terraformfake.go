// Package terraformfake is a stand-in `terraform` executable for tests of
// code that drives Terraform through github.com/hashicorp/terraform-exec.
//
// A test describes the "module" (the resources it would create and the
// outputs it would report) with WriteModule, builds the binary with Build,
// and points tfexec.NewTerraform(dir, Build(t)) at it. The binary answers the
// commands terraform-exec sends — `version -json`, `init`, `workspace
// select|new|show|list`, `plan -out`, `show -json <planfile>`, `apply
// [<planfile>]`, `output -json`, `destroy` — in the shapes terraform-exec
// parses, and keeps its state in the module directory (per workspace, like
// the local backend), so a second apply of the same variables is a no-op.
//
// Every invocation is appended to a log the test reads with Invocations;
// anything the stand-in does not understand exits 1 with a message on stderr
// and is logged as unexpected (see Unexpected).
package terraformfake

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the Terraform version the stand-in reports.
const Version = "1.9.8"

// Module is what the fake module declares.
type Module struct {
	// Variables are the declared input variables; a -var for any other name
	// fails like real Terraform ("undeclared variable").
	Variables []string `json:"variables"`
	// Resources the module manages. Attribute values may use ${var.NAME}.
	Resources []Resource `json:"resources"`
	// Outputs by name. A string value may use ${var.NAME}; lists and maps
	// of strings are interpolated element by element.
	Outputs map[string]any `json:"outputs"`
	// ApplyProgressLines is how many "Still creating..." lines apply prints
	// for each created resource (to exercise output streaming).
	ApplyProgressLines int `json:"apply_progress_lines,omitempty"`
	// ApplyLineDelay is the pause between apply output lines.
	ApplyLineDelay time.Duration `json:"apply_line_delay,omitempty"`
	// FailApply, when set, makes apply print this error and exit 1 without
	// changing state.
	FailApply string `json:"fail_apply,omitempty"`
	// ValidateErrors, when set, make `validate -json` report the module
	// invalid with one error diagnostic each.
	ValidateErrors []string `json:"validate_errors,omitempty"`
}

// Resource is one managed resource of the fake module.
type Resource struct {
	Address    string            `json:"address"` // e.g. "aws_eks_cluster.this" or "module.vpc.aws_vpc.this"
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Invocation is one run of the binary, as logged.
type Invocation struct {
	Args         []string `json:"args"`
	Dir          string   `json:"dir"`
	Workspace    string   `json:"workspace"`               // selected workspace when the command ran
	InAutomation string   `json:"in_automation,omitempty"` // TF_IN_AUTOMATION
	WorkspaceEnv string   `json:"workspace_env,omitempty"` // TF_WORKSPACE (terraform-exec removes it)
	ExitCode     int      `json:"exit_code"`
	Unexpected   string   `json:"unexpected,omitempty"` // why the stand-in refused the command
	Changes      []string `json:"changes,omitempty"`    // "create aws_eks_cluster.this", for plan and apply
}

// Command is the first argument, with "workspace" commands joined ("workspace select").
func (i Invocation) Command() string {
	if len(i.Args) == 0 {
		return ""
	}
	if i.Args[0] == "workspace" && len(i.Args) > 1 {
		return "workspace " + i.Args[1]
	}
	return i.Args[0]
}

const (
	metaDir     = ".terraformfake"
	moduleFile  = "module.json"
	logFile     = "invocations.jsonl"
	envFile     = "environment" // inside .terraform, as real Terraform keeps the selected workspace
	stateFile   = "terraform.tfstate"
	stateDirEnv = "terraform.tfstate.d"
)

// WriteModule writes the module description (and a main.tf for people
// reading the directory) into dir.
func WriteModule(t testing.TB, dir string, m Module) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, metaDir), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, metaDir, moduleFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	var tf strings.Builder
	tf.WriteString("# Stand-in module for terraformfake; the binary reads .terraformfake/module.json.\n")
	for _, v := range m.Variables {
		fmt.Fprintf(&tf, "variable %q {}\n", v)
	}
	if err := os.WriteFile(filepath.Join(dir, "main.tf"), []byte(tf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildMu keeps parallel tests from running several `go build`s at once on a
// shared CPU; the second build is then a cache hit.
var buildMu sync.Mutex

// Build compiles the stand-in into a temporary directory of t and returns
// the executable's path. The Go build cache makes repeated builds cheap.
func Build(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	out := filepath.Join(t.TempDir(), "terraform")
	cmd := exec.Command("go", "build", "-o", out, "github.com/drbot/drbot/test/terraformfake/cmd/terraform")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the terraform stand-in: %v\n%s", err, b)
	}
	return out
}

// Invocations reads the log of every run of the binary in dir.
func Invocations(t testing.TB, dir string) []Invocation {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, metaDir, logFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []Invocation
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var inv Invocation
		if err := json.Unmarshal(sc.Bytes(), &inv); err != nil {
			t.Fatalf("reading invocation log: %v", err)
		}
		out = append(out, inv)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Count counts invocations of a command ("apply", "workspace new", …).
func Count(invs []Invocation, command string) int {
	n := 0
	for _, i := range invs {
		if i.Command() == command {
			n++
		}
	}
	return n
}

// Unexpected lists the invocations the stand-in refused as not understood.
func Unexpected(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	for _, i := range Invocations(t, dir) {
		if i.Unexpected != "" {
			out = append(out, strings.Join(i.Args, " ")+": "+i.Unexpected)
		}
	}
	return out
}

// StateResources lists the resource addresses in a workspace's state.
func StateResources(t testing.TB, dir, workspace string) []string {
	t.Helper()
	st, err := readState(dir, workspace)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range st.Resources {
		out = append(out, r.Address)
	}
	sort.Strings(out)
	return out
}
