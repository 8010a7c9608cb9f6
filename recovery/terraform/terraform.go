// Package terraform runs the user's own Terraform module for drbot through
// github.com/hashicorp/terraform-exec: init, workspace select (or new), a
// saved plan whose summary people see before anything changes, apply of
// exactly that plan with its output streamed at a readable pace, and the
// module's outputs. Destroy serves drill teardown.
//
// A re-run (after a crash or a Retry) plans again: a module already applied
// plans no changes and apply is skipped, so the step converges.
package terraform

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"
	tfjson "github.com/hashicorp/terraform-json"

	"github.com/drbot/drbot/recovery"
)

// Runner drives one module directory in one workspace.
type Runner struct {
	// ExecPath is the terraform executable; "" looks "terraform" up in PATH.
	ExecPath string
	// Dir is the module directory (config targets[].cluster.terraform.dir).
	Dir string
	// Workspace is selected, or created when missing; "" keeps "default".
	Workspace string
	// Vars are passed as -var; strings as they are, other values as JSON
	// (which Terraform reads as HCL lists, maps, numbers and booleans).
	Vars map[string]any
	// Env replaces the environment of terraform; nil inherits drbot's.
	Env map[string]string
	// Progress receives lines for people (the plan summary, coalesced
	// apply output). Nil discards them.
	Progress func(format string, args ...any)
	// StreamEvery is the least time between two apply output lines posted
	// (default 30s); lines in between are coalesced into the latest.
	StreamEvery time.Duration
	// AllowDestroy lets apply go ahead when the plan destroys resources.
	// Off by default: a recovery that would delete infrastructure is
	// stopped for a person to look at the plan.
	AllowDestroy bool
	// OnPlan is called with the plan summary after it is posted and before
	// apply (e.g. to journal it).
	OnPlan func(PlanSummary) error
}

// PlanSummary counts a plan's resource changes the way `terraform plan`
// prints them (a replacement is one add and one destroy).
type PlanSummary struct {
	Add, Change, Destroy int
	// Destroyed lists the addresses the plan destroys.
	Destroyed []string
}

// HasChanges reports whether applying the plan would change anything.
func (p PlanSummary) HasChanges() bool { return p.Add+p.Change+p.Destroy > 0 }

func (p PlanSummary) String() string {
	return fmt.Sprintf("%d to add, %d to change, %d to destroy", p.Add, p.Change, p.Destroy)
}

// Output is one module output.
type Output struct {
	Sensitive bool
	Value     json.RawMessage
}

// String returns a string output unquoted, anything else as compact JSON.
func (o Output) String() string {
	var s string
	if json.Unmarshal(o.Value, &s) == nil {
		return s
	}
	var b bytes.Buffer
	if json.Compact(&b, o.Value) == nil {
		return b.String()
	}
	return string(o.Value)
}

// Result is what Apply did and what the module reports.
type Result struct {
	Plan    PlanSummary
	Applied bool
	Outputs map[string]Output
}

func (r *Runner) progress(format string, args ...any) {
	if r.Progress != nil {
		r.Progress(format, args...)
	}
}

func (r *Runner) streamEvery() time.Duration {
	if r.StreamEvery > 0 {
		return r.StreamEvery
	}
	return 30 * time.Second
}

// prepare returns a terraform-exec handle on Dir, initialised and in the
// right workspace.
func (r *Runner) prepare(ctx context.Context) (*tfexec.Terraform, error) {
	execPath := r.ExecPath
	if execPath == "" {
		p, err := exec.LookPath("terraform")
		if err != nil {
			return nil, recovery.Permanent(fmt.Errorf("finding the terraform executable: %w; install terraform in drbot's image or set its path", err))
		}
		execPath = p
	}
	tf, err := tfexec.NewTerraform(r.Dir, execPath)
	if err != nil {
		return nil, recovery.Permanent(fmt.Errorf("opening terraform module %q: %w", r.Dir, err))
	}
	if r.Env != nil {
		if err := tf.SetEnv(r.Env); err != nil {
			return nil, recovery.Permanent(fmt.Errorf("setting terraform environment: %w", err))
		}
	}
	if err := tf.Init(ctx); err != nil {
		return nil, failure(fmt.Sprintf("terraform init in %q", r.Dir), err)
	}
	if err := r.selectWorkspace(ctx, tf); err != nil {
		return nil, err
	}
	return tf, nil
}

func (r *Runner) selectWorkspace(ctx context.Context, tf *tfexec.Terraform) error {
	ws := r.Workspace
	if ws == "" {
		ws = "default"
	}
	list, current, err := tf.WorkspaceList(ctx)
	if err != nil {
		return failure("listing terraform workspaces", err)
	}
	switch {
	case current == ws:
		return nil
	case contains(list, ws):
		if err := tf.WorkspaceSelect(ctx, ws); err != nil {
			return failure(fmt.Sprintf("selecting terraform workspace %q", ws), err)
		}
	default:
		if err := tf.WorkspaceNew(ctx, ws); err != nil {
			return failure(fmt.Sprintf("creating terraform workspace %q", ws), err)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// varArgs renders Vars as -var values in a stable order.
func (r *Runner) varArgs() ([]string, error) {
	keys := make([]string, 0, len(r.Vars))
	for k := range r.Vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		switch v := r.Vars[k].(type) {
		case string:
			out = append(out, k+"="+v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, recovery.Permanent(fmt.Errorf("encoding terraform variable %q: %w", k, err))
			}
			out = append(out, k+"="+string(b))
		}
	}
	return out, nil
}

// Apply plans into a temporary plan file, posts the summary, applies that
// plan when it changes anything, and reads the outputs.
func (r *Runner) Apply(ctx context.Context) (Result, error) {
	tf, err := r.prepare(ctx)
	if err != nil {
		return Result{}, err
	}
	vars, err := r.varArgs()
	if err != nil {
		return Result{}, err
	}
	tmp, err := os.MkdirTemp("", "drbot-tfplan-")
	if err != nil {
		return Result{}, fmt.Errorf("making a directory for the plan file: %w", err)
	}
	defer os.RemoveAll(tmp)
	planPath := filepath.Join(tmp, "drbot.tfplan")

	opts := []tfexec.PlanOption{tfexec.Out(planPath)}
	for _, v := range vars {
		opts = append(opts, tfexec.Var(v))
	}
	changed, err := tf.Plan(ctx, opts...)
	if err != nil {
		return Result{}, failure(fmt.Sprintf("terraform plan in %q", r.Dir), err)
	}
	res := Result{}
	if changed {
		plan, err := tf.ShowPlanFile(ctx, planPath)
		if err != nil {
			return Result{}, failure("reading the terraform plan", err)
		}
		res.Plan = Summarize(plan)
	}
	r.progress("terraform plan: %s", res.Plan)
	if r.OnPlan != nil {
		if err := r.OnPlan(res.Plan); err != nil {
			return Result{}, err
		}
	}
	if res.Plan.Destroy > 0 && !r.AllowDestroy {
		return Result{}, recovery.Permanent(fmt.Errorf(
			"terraform plan for %q would destroy %d resource(s) (%s); drbot does not destroy infrastructure during a recovery: check the module and workspace %q, apply by hand and press Skip, or Abort",
			r.Dir, res.Plan.Destroy, strings.Join(firstN(res.Plan.Destroyed, 5), ", "), r.workspaceName()))
	}
	if res.Plan.HasChanges() {
		stream := newCoalescer(r.streamEvery(), func(line string) { r.progress("terraform: %s", line) })
		tf.SetStdout(stream)
		err := tf.Apply(ctx, tfexec.DirOrPlan(planPath))
		tf.SetStdout(nil)
		stream.Close()
		if err != nil {
			return Result{}, failure(fmt.Sprintf("terraform apply in %q", r.Dir), err)
		}
		res.Applied = true
	}
	res.Outputs, err = r.outputs(ctx, tf)
	return res, err
}

func (r *Runner) workspaceName() string {
	if r.Workspace == "" {
		return "default"
	}
	return r.Workspace
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return append(append([]string(nil), s[:n]...), fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// Summarize counts a plan's changes.
func Summarize(plan *tfjson.Plan) PlanSummary {
	var s PlanSummary
	for _, rc := range plan.ResourceChanges {
		if rc.Change == nil {
			continue
		}
		a := rc.Change.Actions
		switch {
		case a.Replace():
			s.Add++
			s.Destroy++
			s.Destroyed = append(s.Destroyed, rc.Address)
		case a.Create():
			s.Add++
		case a.Update():
			s.Change++
		case a.Delete():
			s.Destroy++
			s.Destroyed = append(s.Destroyed, rc.Address)
		}
	}
	return s
}

// Outputs reads the module's outputs without planning or applying.
func (r *Runner) Outputs(ctx context.Context) (map[string]Output, error) {
	tf, err := r.prepare(ctx)
	if err != nil {
		return nil, err
	}
	return r.outputs(ctx, tf)
}

func (r *Runner) outputs(ctx context.Context, tf *tfexec.Terraform) (map[string]Output, error) {
	raw, err := tf.Output(ctx)
	if err != nil {
		return nil, failure(fmt.Sprintf("terraform output in %q", r.Dir), err)
	}
	out := make(map[string]Output, len(raw))
	for k, v := range raw {
		out[k] = Output{Sensitive: v.Sensitive, Value: v.Value}
	}
	return out, nil
}

// Destroy destroys everything the module manages in the workspace (drill
// teardown only), streaming output like Apply.
func (r *Runner) Destroy(ctx context.Context) error {
	tf, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	vars, err := r.varArgs()
	if err != nil {
		return err
	}
	var opts []tfexec.DestroyOption
	for _, v := range vars {
		opts = append(opts, tfexec.Var(v))
	}
	stream := newCoalescer(r.streamEvery(), func(line string) { r.progress("terraform: %s", line) })
	tf.SetStdout(stream)
	err = tf.Destroy(ctx, opts...)
	tf.SetStdout(nil)
	stream.Close()
	if err != nil {
		return failure(fmt.Sprintf("terraform destroy in %q", r.Dir), err)
	}
	return nil
}

// failure wraps a failed terraform command: throttling reported by a
// provider is worth retrying (a re-run plans again and converges);
// anything else needs a person, so it is permanent. The message keeps
// terraform's "Error:" lines and drops the rest of a long stderr.
func failure(what string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	msg := err.Error()
	wrapped := fmt.Errorf("%s: %s", what, compact(msg))
	for _, s := range []string{"Throttling", "Rate exceeded", "RequestLimitExceeded", "TooManyRequests", "SlowDown"} {
		if strings.Contains(msg, s) {
			return recovery.Retryable(wrapped)
		}
	}
	return recovery.Permanent(fmt.Errorf("%w; fix the module or its inputs and press Retry", wrapped))
}

// compact keeps the first line of a terraform error and its "Error:" lines,
// at most 600 characters.
func compact(msg string) string {
	lines := strings.Split(msg, "\n")
	keep := []string{strings.TrimSpace(lines[0])}
	for _, l := range lines[1:] {
		l = strings.TrimSpace(l)
		if strings.HasPrefix(l, "Error:") || strings.HasPrefix(l, "│ Error:") {
			keep = append(keep, strings.TrimPrefix(l, "│ "))
		}
	}
	out := strings.Join(keep, "; ")
	if len(out) > 600 {
		out = out[:600] + "…"
	}
	return out
}
