package terraformfake

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// exitError ends a command with an exit code and a message for stderr.
type exitError struct {
	code       int
	msg        string
	unexpected bool // the stand-in did not understand the command
}

func (e *exitError) Error() string { return e.msg }

func fail(format string, args ...any) error {
	return &exitError{code: 1, msg: fmt.Sprintf(format, args...)}
}

func unexpected(format string, args ...any) error {
	return &exitError{code: 1, msg: "terraformfake: " + fmt.Sprintf(format, args...), unexpected: true}
}

// Main runs one command of the stand-in in dir (args without the program
// name, env as os.Environ) and returns the exit code.
func Main(args []string, dir string, env []string, stdout, stderr io.Writer) int {
	r := &runner{dir: dir, out: stdout, env: envMap(env)}
	inv := Invocation{Args: args, Dir: dir, InAutomation: r.env["TF_IN_AUTOMATION"], WorkspaceEnv: r.env["TF_WORKSPACE"]}
	inv.Workspace = r.currentWorkspace()
	code := 0
	if err := r.run(args); err != nil {
		var ee *exitError
		if !errors.As(err, &ee) {
			ee = &exitError{code: 1, msg: err.Error()}
		}
		code = ee.code
		if ee.msg != "" {
			fmt.Fprintln(stderr, ee.msg)
		}
		if ee.unexpected {
			inv.Unexpected = ee.msg
		}
	}
	inv.ExitCode = code
	inv.Changes = r.changes
	r.log(inv, stderr)
	return code
}

type runner struct {
	dir     string
	out     io.Writer
	env     map[string]string
	changes []string
}

func envMap(env []string) map[string]string {
	m := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

func (r *runner) log(inv Invocation, stderr io.Writer) {
	if err := os.MkdirAll(filepath.Join(r.dir, metaDir), 0o755); err != nil {
		fmt.Fprintln(stderr, "terraformfake: logging:", err)
		return
	}
	b, _ := json.Marshal(inv)
	f, err := os.OpenFile(filepath.Join(r.dir, metaDir, logFile), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(stderr, "terraformfake: logging:", err)
		return
	}
	defer f.Close()
	_, _ = f.Write(append(b, '\n'))
}

// flagSpec says which flags a command accepts: "name" for booleans and
// "name=" for flags with a value ("-out=x"); "-var" takes the next argument.
type flagSpec map[string]bool // name → takes a value

type parsed struct {
	flags      map[string][]string
	vars       map[string]string
	positional []string
}

func parseFlags(cmd string, args []string, spec flagSpec) (*parsed, error) {
	p := &parsed{flags: map[string][]string{}, vars: map[string]string{}}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			p.positional = append(p.positional, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if name == "var" && spec["var"] {
			if !hasVal {
				if i+1 >= len(args) {
					return nil, unexpected("%s: -var needs a value", cmd)
				}
				i++
				val = args[i]
			}
			k, v, ok := strings.Cut(val, "=")
			if !ok || k == "" {
				return nil, fail("Error: Invalid -var option\n\nThe given -var option %q is not correctly specified. It must be a variable name and value separated an equals sign, like -var=\"key=value\".", val)
			}
			p.vars[k] = v
			continue
		}
		takesValue, known := spec[name]
		if !known {
			return nil, unexpected("%s: flag %s is not supported by the stand-in", cmd, a)
		}
		if takesValue != hasVal && !(hasVal && !takesValue && (val == "true" || val == "false")) {
			return nil, unexpected("%s: flag %s used in a form the stand-in does not support", cmd, a)
		}
		p.flags[name] = append(p.flags[name], val)
	}
	return p, nil
}

var (
	initFlags  = flagSpec{"no-color": false, "input": true, "backend": true, "get": true, "upgrade": true, "force-copy": false, "reconfigure": false, "backend-config": true, "plugin-dir": true, "lock": true, "lock-timeout": true}
	planFlags  = flagSpec{"no-color": false, "input": true, "detailed-exitcode": false, "out": true, "lock": true, "lock-timeout": true, "parallelism": true, "refresh": true, "var": true}
	applyFlags = flagSpec{"no-color": false, "input": true, "auto-approve": false, "lock": true, "lock-timeout": true, "parallelism": true, "refresh": true, "var": true}
	wsFlags    = flagSpec{"no-color": false}
	showFlags  = flagSpec{"no-color": false, "json": false}
	outFlags   = flagSpec{"no-color": false, "json": false}
)

func (r *runner) run(args []string) error {
	if len(args) == 0 {
		return unexpected("no command")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version":
		return r.version(rest)
	case "init":
		return r.init(rest)
	}
	if _, err := os.Stat(r.dataDir()); err != nil {
		return fail("Error: Backend initialization required, please run \"terraform init\"")
	}
	switch cmd {
	case "workspace":
		return r.workspace(rest)
	case "plan":
		return r.plan(rest)
	case "show":
		return r.show(rest)
	case "apply":
		return r.apply(rest, false)
	case "destroy":
		return r.apply(rest, true)
	case "output":
		return r.output(rest)
	case "validate":
		return r.validate(rest)
	}
	return unexpected("command %q is not supported", cmd)
}

func (r *runner) version(args []string) error {
	if len(args) != 1 || args[0] != "-json" {
		return unexpected("version: only `version -json` is supported, got %q", args)
	}
	return writeJSON(r.out, map[string]any{
		"terraform_version": Version, "platform": "linux_amd64",
		"provider_selections": map[string]string{"registry.terraform.io/hashicorp/aws": "5.80.0"}, "terraform_outdated": false,
	})
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func (r *runner) module() (*Module, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, metaDir, moduleFile))
	if err != nil {
		return nil, fail("Error: No configuration files\n\nterraformfake: %s has no %s/%s (write it with terraformfake.WriteModule)", r.dir, metaDir, moduleFile)
	}
	var m Module
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fail("terraformfake: reading module: %v", err)
	}
	return &m, nil
}

func (r *runner) init(args []string) error {
	p, err := parseFlags("init", args, initFlags)
	if err != nil {
		return err
	}
	if len(p.positional) > 0 {
		return unexpected("init: a directory argument is not supported")
	}
	if _, err := r.module(); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(r.dataDir(), "providers"), 0o755); err != nil {
		return err
	}
	fmt.Fprint(r.out, "\nInitializing the backend...\n\nInitializing provider plugins...\n- Using previously-installed hashicorp/aws v5.80.0\n\nTerraform has been successfully initialized!\n")
	return nil
}

// workspaces

func (r *runner) currentWorkspace() string {
	b, err := os.ReadFile(filepath.Join(r.dir, ".terraform", envFile))
	if err != nil || strings.TrimSpace(string(b)) == "" {
		return "default"
	}
	return strings.TrimSpace(string(b))
}

func (r *runner) workspaceExists(ws string) bool {
	if ws == "default" {
		return true
	}
	st, err := os.Stat(filepath.Join(r.dir, stateDirEnv, ws))
	return err == nil && st.IsDir()
}

func (r *runner) selectWorkspace(ws string) error {
	return os.WriteFile(filepath.Join(r.dir, ".terraform", envFile), []byte(ws), 0o644)
}

var workspaceNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (r *runner) workspace(args []string) error {
	if len(args) == 0 {
		return unexpected("workspace: missing subcommand")
	}
	sub := args[0]
	p, err := parseFlags("workspace "+sub, args[1:], wsFlags)
	if err != nil {
		return err
	}
	switch sub {
	case "show":
		if len(p.positional) != 0 {
			return unexpected("workspace show takes no arguments")
		}
		fmt.Fprintln(r.out, r.currentWorkspace())
		return nil
	case "list":
		names := []string{"default"}
		entries, _ := os.ReadDir(filepath.Join(r.dir, stateDirEnv))
		for _, e := range entries {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names[1:])
		cur := r.currentWorkspace()
		for _, n := range names {
			mark := "  "
			if n == cur {
				mark = "* "
			}
			fmt.Fprintln(r.out, mark+n)
		}
		return nil
	case "select", "new":
		if len(p.positional) != 1 {
			return unexpected("workspace %s needs exactly one name", sub)
		}
		ws := p.positional[0]
		if !workspaceNameRE.MatchString(ws) {
			return fail("Error: %q is not a valid workspace name", ws)
		}
		exists := r.workspaceExists(ws)
		if sub == "select" {
			if !exists {
				return fail("\nWorkspace %q doesn't exist.\n\nYou can create this workspace with the \"new\" subcommand\nor include the \"-or-create\" flag with the \"select\" subcommand.", ws)
			}
			if err := r.selectWorkspace(ws); err != nil {
				return err
			}
			fmt.Fprintf(r.out, "Switched to workspace %q.\n", ws)
			return nil
		}
		if exists {
			return fail("Workspace %q already exists", ws)
		}
		if err := os.MkdirAll(filepath.Join(r.dir, stateDirEnv, ws), 0o755); err != nil {
			return err
		}
		if err := r.selectWorkspace(ws); err != nil {
			return err
		}
		fmt.Fprintf(r.out, "Created and switched to workspace %q!\n", ws)
		return nil
	}
	return unexpected("workspace %s is not supported", sub)
}

// state

type state struct {
	Version          int                    `json:"version"`
	TerraformVersion string                 `json:"terraform_version"`
	Serial           int                    `json:"serial"`
	Lineage          string                 `json:"lineage"`
	Outputs          map[string]stateOutput `json:"outputs"`
	Resources        []stateResource        `json:"resources"`
}

type stateOutput struct {
	Value any `json:"value"`
	Type  any `json:"type"`
}

type stateResource struct {
	Address    string            `json:"address"`
	Attributes map[string]string `json:"attributes"`
}

func statePath(dir, ws string) string {
	if ws == "default" {
		return filepath.Join(dir, stateFile)
	}
	return filepath.Join(dir, stateDirEnv, ws, stateFile)
}

func readState(dir, ws string) (*state, error) {
	b, err := os.ReadFile(statePath(dir, ws))
	if errors.Is(err, os.ErrNotExist) {
		return &state{Version: 4, TerraformVersion: Version, Lineage: "terraformfake-" + ws, Outputs: map[string]stateOutput{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("reading state: %w", err)
	}
	if st.Outputs == nil {
		st.Outputs = map[string]stateOutput{}
	}
	return &st, nil
}

func writeState(dir, ws string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(statePath(dir, ws), b, 0o644)
}

// planning

type change struct {
	Address string            `json:"address"`
	Actions []string          `json:"actions"`
	Before  map[string]string `json:"before,omitempty"`
	After   map[string]string `json:"after,omitempty"`
}

type planFile struct {
	Kind      string            `json:"terraformfake_plan"`
	Workspace string            `json:"workspace"`
	Serial    int               `json:"serial"`
	Vars      map[string]string `json:"vars"`
	Changes   []change          `json:"changes"`
	Destroy   bool              `json:"destroy"`
}

var varRef = regexp.MustCompile(`\$\{var\.([A-Za-z0-9_-]+)\}`)

func interpolate(s string, vars map[string]string) string {
	return varRef.ReplaceAllStringFunc(s, func(m string) string { return vars[varRef.FindStringSubmatch(m)[1]] })
}

func interpolateAny(v any, vars map[string]string) any {
	switch x := v.(type) {
	case string:
		return interpolate(x, vars)
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = interpolateAny(x[i], vars)
		}
		return out
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = interpolateAny(e, vars)
		}
		return out
	}
	return v
}

func outputType(v any) any {
	switch x := v.(type) {
	case string:
		return "string"
	case bool:
		return "bool"
	case float64:
		return "number"
	case []any:
		if len(x) > 0 {
			return []any{"list", outputType(x[0])}
		}
		return []any{"list", "string"}
	case map[string]any:
		return []any{"map", "string"}
	}
	return "string"
}

func (r *runner) checkVars(m *Module, vars map[string]string) error {
	declared := map[string]bool{}
	for _, v := range m.Variables {
		declared[v] = true
	}
	for k := range vars {
		if !declared[k] {
			return fail("Error: Value for undeclared variable\n\nA variable named %q was assigned on the command line, but the root module does not declare a variable of that name.", k)
		}
	}
	for _, v := range m.Variables {
		if _, ok := vars[v]; !ok {
			return fail("Error: No value for required variable\n\nThe root module input variable %q is not set, and has no default value. Use a -var or -var-file command line argument to provide a value for this variable.", v)
		}
	}
	return nil
}

func diff(m *Module, vars map[string]string, st *state, destroy bool) []change {
	have := map[string]stateResource{}
	for _, r := range st.Resources {
		have[r.Address] = r
	}
	var out []change
	want := map[string]bool{}
	if !destroy {
		for _, res := range m.Resources {
			want[res.Address] = true
			after := map[string]string{}
			for k, v := range res.Attributes {
				after[k] = interpolate(v, vars)
			}
			cur, ok := have[res.Address]
			switch {
			case !ok:
				out = append(out, change{Address: res.Address, Actions: []string{"create"}, After: after})
			case !sameAttrs(cur.Attributes, after):
				out = append(out, change{Address: res.Address, Actions: []string{"update"}, Before: cur.Attributes, After: after})
			}
		}
	}
	for _, res := range st.Resources {
		if !want[res.Address] {
			out = append(out, change{Address: res.Address, Actions: []string{"delete"}, Before: res.Attributes})
		}
	}
	return out
}

func sameAttrs(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func counts(changes []change) (add, chg, del int) {
	for _, c := range changes {
		switch c.Actions[0] {
		case "create":
			add++
		case "update":
			chg++
		case "delete":
			del++
		}
	}
	return
}

func (r *runner) plan(args []string) error {
	p, err := parseFlags("plan", args, planFlags)
	if err != nil {
		return err
	}
	if len(p.positional) > 0 {
		return unexpected("plan: a directory argument is not supported")
	}
	m, err := r.module()
	if err != nil {
		return err
	}
	if err := r.checkVars(m, p.vars); err != nil {
		return err
	}
	ws := r.currentWorkspace()
	st, err := readState(r.dir, ws)
	if err != nil {
		return err
	}
	changes := diff(m, p.vars, st, false)
	for _, c := range changes {
		r.changes = append(r.changes, c.Actions[0]+" "+c.Address)
	}
	if out := p.flags["out"]; len(out) > 0 {
		pf := planFile{Kind: "v1", Workspace: ws, Serial: st.Serial, Vars: p.vars, Changes: changes}
		b, _ := json.Marshal(pf)
		path := out[0]
		if !filepath.IsAbs(path) {
			path = filepath.Join(r.dir, path)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return fail("Error: Failed to write plan file: %v", err)
		}
	}
	if len(changes) == 0 {
		fmt.Fprint(r.out, "\nNo changes. Your infrastructure matches the configuration.\n\nTerraform has compared your real infrastructure against your configuration\nand found no differences, so no changes are needed.\n")
		return nil
	}
	fmt.Fprint(r.out, "\nTerraform used the selected providers to generate the following execution\nplan. Resource actions are indicated with the following symbols:\n  + create\n  ~ update in-place\n  - destroy\n\nTerraform will perform the following actions:\n\n")
	for _, c := range changes {
		verb := map[string]string{"create": "created", "update": "updated in-place", "delete": "destroyed"}[c.Actions[0]]
		fmt.Fprintf(r.out, "  # %s will be %s\n", c.Address, verb)
	}
	add, chg, del := counts(changes)
	fmt.Fprintf(r.out, "\nPlan: %d to add, %d to change, %d to destroy.\n", add, chg, del)
	if _, detailed := p.flags["detailed-exitcode"]; detailed {
		return &exitError{code: 2}
	}
	return nil
}

func splitAddress(addr string) (typ, name string) {
	parts := strings.Split(addr, ".")
	if len(parts) < 2 {
		return addr, ""
	}
	return parts[len(parts)-2], parts[len(parts)-1]
}

func (r *runner) readPlan(path string) (*planFile, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(r.dir, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fail("Error: Failed to load %q as a plan file: %v", path, err)
	}
	var pf planFile
	if err := json.Unmarshal(b, &pf); err != nil || pf.Kind == "" {
		return nil, fail("Error: Failed to read the given file as a state or plan file")
	}
	return &pf, nil
}

func (r *runner) show(args []string) error {
	p, err := parseFlags("show", args, showFlags)
	if err != nil {
		return err
	}
	if _, ok := p.flags["json"]; !ok || len(p.positional) != 1 {
		return unexpected("show: only `show -json <planfile>` is supported")
	}
	pf, err := r.readPlan(p.positional[0])
	if err != nil {
		return err
	}
	vars := map[string]any{}
	for k, v := range pf.Vars {
		vars[k] = map[string]any{"value": v}
	}
	rcs := []any{}
	for _, c := range pf.Changes {
		typ, name := splitAddress(c.Address)
		ch := map[string]any{"actions": c.Actions, "before": nil, "after": nil}
		if c.Before != nil {
			ch["before"] = c.Before
		}
		if c.After != nil {
			ch["after"] = c.After
		}
		rcs = append(rcs, map[string]any{
			"address": c.Address, "mode": "managed", "type": typ, "name": name,
			"provider_name": "registry.terraform.io/hashicorp/aws", "change": ch,
		})
	}
	return writeJSON(r.out, map[string]any{
		"format_version": "1.2", "terraform_version": Version, "variables": vars,
		"resource_changes": rcs, "applyable": len(pf.Changes) > 0, "complete": true, "errored": false,
	})
}

func (r *runner) apply(args []string, destroy bool) error {
	cmd := "apply"
	if destroy {
		cmd = "destroy"
	}
	p, err := parseFlags(cmd, args, applyFlags)
	if err != nil {
		return err
	}
	if _, ok := p.flags["auto-approve"]; !ok {
		return unexpected("%s without -auto-approve would wait for input", cmd)
	}
	m, err := r.module()
	if err != nil {
		return err
	}
	ws := r.currentWorkspace()
	st, err := readState(r.dir, ws)
	if err != nil {
		return err
	}
	var changes []change
	var vars map[string]string
	switch {
	case len(p.positional) > 1:
		return unexpected("%s: more than one positional argument", cmd)
	case len(p.positional) == 1 && !destroy:
		if len(p.vars) > 0 {
			return fail("Error: Can't set variables when applying a saved plan\n\nThe -var and -var-file options cannot be used when applying a saved plan file, because a saved plan includes the variable values that were set when it was created.")
		}
		pf, err := r.readPlan(p.positional[0])
		if err != nil {
			return err
		}
		if pf.Workspace != ws || pf.Serial != st.Serial {
			return fail("Error: Saved plan is stale\n\nThe given plan file can no longer be applied because the state was changed by another operation after the plan was created.")
		}
		changes, vars = pf.Changes, pf.Vars
	case len(p.positional) == 1:
		return unexpected("destroy: a directory argument is not supported")
	default:
		if err := r.checkVars(m, p.vars); err != nil {
			return err
		}
		vars = p.vars
		changes = diff(m, vars, st, destroy)
	}
	for _, c := range changes {
		r.changes = append(r.changes, c.Actions[0]+" "+c.Address)
	}
	if m.FailApply != "" {
		return fail("\nError: %s\n", m.FailApply)
	}
	line := func(format string, args ...any) {
		fmt.Fprintf(r.out, format+"\n", args...)
		if m.ApplyLineDelay > 0 {
			time.Sleep(m.ApplyLineDelay)
		}
	}
	byAddr := map[string]int{}
	for i, res := range st.Resources {
		byAddr[res.Address] = i
	}
	var kept []stateResource
	deleted := map[string]bool{}
	for _, c := range changes {
		switch c.Actions[0] {
		case "create":
			line("%s: Creating...", c.Address)
			for i := 1; i <= m.ApplyProgressLines; i++ {
				line("%s: Still creating... [%ds elapsed]", c.Address, i*10)
			}
			line("%s: Creation complete after %ds [id=%s]", c.Address, (m.ApplyProgressLines+1)*10, c.After["id"])
			st.Resources = append(st.Resources, stateResource{Address: c.Address, Attributes: c.After})
		case "update":
			line("%s: Modifying...", c.Address)
			line("%s: Modifications complete after 1s", c.Address)
			st.Resources[byAddr[c.Address]].Attributes = c.After
		case "delete":
			line("%s: Destroying...", c.Address)
			line("%s: Destruction complete after 1s", c.Address)
			deleted[c.Address] = true
		}
	}
	for _, res := range st.Resources {
		if !deleted[res.Address] {
			kept = append(kept, res)
		}
	}
	st.Resources = kept
	if len(changes) > 0 {
		st.Serial++
	}
	st.Outputs = map[string]stateOutput{}
	if !destroy {
		for name, v := range m.Outputs {
			val := interpolateAny(v, vars)
			st.Outputs[name] = stateOutput{Value: val, Type: outputType(val)}
		}
	}
	if err := writeState(r.dir, ws, st); err != nil {
		return fail("Error: writing state: %v", err)
	}
	add, chg, del := counts(changes)
	if destroy {
		fmt.Fprintf(r.out, "\nDestroy complete! Resources: %d destroyed.\n", del)
		return nil
	}
	fmt.Fprintf(r.out, "\nApply complete! Resources: %d added, %d changed, %d destroyed.\n", add, chg, del)
	if len(st.Outputs) > 0 {
		fmt.Fprint(r.out, "\nOutputs:\n\n")
		for _, k := range sortedKeys(st.Outputs) {
			b, _ := json.Marshal(st.Outputs[k].Value)
			fmt.Fprintf(r.out, "%s = %s\n", k, b)
		}
	}
	return nil
}

func (r *runner) output(args []string) error {
	p, err := parseFlags("output", args, outFlags)
	if err != nil {
		return err
	}
	if _, ok := p.flags["json"]; !ok || len(p.positional) > 0 {
		return unexpected("output: only `output -json` is supported")
	}
	st, err := readState(r.dir, r.currentWorkspace())
	if err != nil {
		return err
	}
	out := map[string]any{}
	for k, o := range st.Outputs {
		out[k] = map[string]any{"sensitive": false, "type": o.Type, "value": o.Value}
	}
	return writeJSON(r.out, out)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
