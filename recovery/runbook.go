// Package recovery is drbot's engine: the runbook DAG, the runner that
// journals every transition before and after acting, gates that wait for
// people, retries with backoff, and resumption after a crash. It emits
// neutral events; it never imports Slack.
//
// An abort (a person's decision, never drbot's) cancels the running steps
// and starts no normal step again. Once they have returned, the steps
// marked OnAbort that apply to the run's mode (the post-mortem, a drill's
// teardown) run: one at a time, in the DAG's order among themselves, each
// once, whatever became of their dependencies. They are journaled like any
// step, so a restart during this clean-up runs only what is not done and
// still ends the run aborted. A clean-up step that fails for good is
// reported and recorded in the run's error; it does not wait for anyone.
// Then the run ends aborted. While a run is aborted, no other decision is
// taken (a second abort is a no-op).
package recovery

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/drbot/drbot/state"
)

// Phase groups steps for reporting and the MTTR budget.
type Phase string

const (
	PhaseProvision Phase = "provision"
	PhaseBootstrap Phase = "bootstrap"
	PhaseDeploy    Phase = "deploy"
	PhaseCutover   Phase = "cutover"
	PhaseClose     Phase = "close"
)

// Phases in runbook order.
var Phases = []Phase{PhaseProvision, PhaseBootstrap, PhaseDeploy, PhaseCutover, PhaseClose}

// Gate names a point where people must approve before a step acts.
type Gate string

const (
	GateNone    Gate = ""
	GateMerge   Gate = "merge"
	GateCutover Gate = "cutover"
)

// Action does one step's work. It must be idempotent: observe first, act
// only if needed, and treat "already exists" as done. A resumed step runs
// its action again, so an action with an async handle (an EKS update id, a
// Route 53 change id, an MR iid) saves it with StepContext.SaveHandle
// before polling and polls it on the next run instead of creating twice.
type Action func(ctx context.Context, sc *StepContext) (Result, error)

// Result is what a successful action leaves for later steps.
type Result struct {
	Outputs map[string]string
}

// Modes limits a step to some run modes; nil means every mode.
type Modes []state.Mode

func (m Modes) has(mode state.Mode) bool {
	if len(m) == 0 {
		return true
	}
	for _, x := range m {
		if x == mode {
			return true
		}
	}
	return false
}

// Step is one row of the runbook table.
type Step struct {
	ID        string
	Title     string
	Phase     Phase
	DependsOn []string
	Gate      Gate
	Action    Action
	// Estimate is the expected duration, used by plan until drill history
	// supplies a better one.
	Estimate time.Duration
	// Modes restricts the step (teardown runs in drills only).
	Modes Modes
	// GateCheck, on a gated step, is asked while the gate waits whether the
	// approval already happened elsewhere (the MR merged by a person in
	// GitLab); by names who, for the audit log.
	GateCheck GateCheck
	// OnAbort makes the step run even when the run is aborted: it runs in
	// its place in the DAG like any step, and after an abort, once the
	// cancelled steps have returned, it runs if it has not succeeded or
	// been skipped, ignoring the dependencies the abort left unfinished
	// (the post-mortem, which then says the run was aborted, and a drill's
	// teardown). OnAbort steps keep their order among themselves and run
	// one at a time, each once, with the usual retries of retryable errors;
	// one that still fails is reported and the run ends aborted anyway.
	// An abort does not cancel an OnAbort step already running: it would
	// run again at once. Its action must cope with the outputs of steps
	// that never ran. An OnAbort step cannot be gated: once people decided
	// to stop, nobody is asked again.
	OnAbort bool
}

// GateCheck reports an approval given outside Slack.
type GateCheck func(ctx context.Context, sc *StepContext) (by string, approved bool, err error)

// Runbook is a validated DAG of steps.
type Runbook struct {
	steps []Step
	index map[string]int
}

// NewRunbook validates the table: ids unique and non-empty, known phases,
// dependencies that exist, no cycles, an action on every step.
func NewRunbook(steps []Step) (*Runbook, error) {
	rb := &Runbook{steps: append([]Step(nil), steps...), index: map[string]int{}}
	var problems []string
	knownPhase := map[Phase]bool{}
	for _, p := range Phases {
		knownPhase[p] = true
	}
	for i, s := range rb.steps {
		switch {
		case s.ID == "":
			problems = append(problems, fmt.Sprintf("step %d has no id", i))
			continue
		}
		if _, dup := rb.index[s.ID]; dup {
			problems = append(problems, fmt.Sprintf("step %q is declared twice", s.ID))
		}
		rb.index[s.ID] = i
		if !knownPhase[s.Phase] {
			problems = append(problems, fmt.Sprintf("step %q has unknown phase %q", s.ID, s.Phase))
		}
		if s.Action == nil {
			problems = append(problems, fmt.Sprintf("step %q has no action", s.ID))
		}
		if s.OnAbort && s.Gate != GateNone {
			problems = append(problems, fmt.Sprintf("step %q runs after an abort and cannot have the %s gate: nobody is asked once a run is aborted", s.ID, s.Gate))
		}
	}
	for _, s := range rb.steps {
		for _, d := range s.DependsOn {
			if _, ok := rb.index[d]; !ok {
				problems = append(problems, fmt.Sprintf("step %q depends on unknown step %q", s.ID, d))
			}
		}
	}
	if len(problems) == 0 {
		if cycle := rb.findCycle(); cycle != nil {
			problems = append(problems, "dependency cycle: "+strings.Join(cycle, " → "))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid runbook: %s", strings.Join(problems, "; "))
	}
	return rb, nil
}

func (rb *Runbook) findCycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var cycle []string
	var visit func(id string) bool
	visit = func(id string) bool {
		color[id] = grey
		stack = append(stack, id)
		for _, d := range rb.steps[rb.index[id]].DependsOn {
			if color[d] == grey {
				for i, s := range stack {
					if s == d {
						cycle = append(append([]string{}, stack[i:]...), d)
					}
				}
				return true
			}
			if color[d] == white && visit(d) {
				return true
			}
		}
		stack = stack[:len(stack)-1]
		color[id] = black
		return false
	}
	for _, s := range rb.steps {
		if color[s.ID] == white && visit(s.ID) {
			return cycle
		}
	}
	return nil
}

// AbortSteps returns the OnAbort steps in the order they run after an
// abort: an order of the DAG (a step after every step it depends on,
// directly or not), declaration order otherwise.
func (rb *Runbook) AbortSteps() []Step {
	placed := map[string]bool{}
	var order []Step
	for len(placed) < len(rb.steps) {
		for _, s := range rb.steps {
			if placed[s.ID] {
				continue
			}
			ready := true
			for _, d := range s.DependsOn {
				if !placed[d] {
					ready = false
					break
				}
			}
			if !ready {
				continue
			}
			placed[s.ID] = true
			if s.OnAbort {
				order = append(order, s)
			}
			break // rescan from the top: declaration order among ready steps
		}
	}
	return order
}

// Steps returns the table in declaration order.
func (rb *Runbook) Steps() []Step { return append([]Step(nil), rb.steps...) }

// Step looks a step up by id.
func (rb *Runbook) Step(id string) (Step, bool) {
	i, ok := rb.index[id]
	if !ok {
		return Step{}, false
	}
	return rb.steps[i], true
}

// ForMode returns the runbook as it runs in mode: steps limited to other
// modes are dropped, and so are dependencies on them.
func (rb *Runbook) ForMode(mode state.Mode) *Runbook {
	var kept []Step
	keep := map[string]bool{}
	for _, s := range rb.steps {
		if s.Modes.has(mode) {
			keep[s.ID] = true
		}
	}
	for _, s := range rb.steps {
		if !keep[s.ID] {
			continue
		}
		s.DependsOn = filter(s.DependsOn, func(d string) bool { return keep[d] })
		kept = append(kept, s)
	}
	out, err := NewRunbook(kept)
	if err != nil {
		panic(fmt.Sprintf("filtering a valid runbook made it invalid: %v", err))
	}
	return out
}

// WithEstimates returns a copy whose estimates are overridden by est.
// Unknown step ids are reported, so a typo in config does not pass silently.
func (rb *Runbook) WithEstimates(est map[string]time.Duration) (*Runbook, error) {
	steps := rb.Steps()
	var unknown []string
	for id := range est {
		if _, ok := rb.index[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("estimates name unknown steps: %s", strings.Join(unknown, ", "))
	}
	for i := range steps {
		if d, ok := est[steps[i].ID]; ok {
			steps[i].Estimate = d
		}
	}
	return NewRunbook(steps)
}

// WithActions returns a copy with the actions of the named steps replaced.
// Integrations use it to plug their real actions into the standard table.
func (rb *Runbook) WithActions(actions map[string]Action) (*Runbook, error) {
	steps := rb.Steps()
	for id := range actions {
		if _, ok := rb.index[id]; !ok {
			return nil, fmt.Errorf("replacing action of unknown step %q", id)
		}
	}
	for i := range steps {
		if a, ok := actions[steps[i].ID]; ok {
			steps[i].Action = a
		}
	}
	return NewRunbook(steps)
}

// WithGateChecks returns a copy with the gate checks of the named steps set.
func (rb *Runbook) WithGateChecks(checks map[string]GateCheck) (*Runbook, error) {
	steps := rb.Steps()
	for id := range checks {
		s, ok := rb.Step(id)
		if !ok || s.Gate == GateNone {
			return nil, fmt.Errorf("setting the gate check of %q: no such gated step", id)
		}
	}
	for i := range steps {
		if c, ok := checks[steps[i].ID]; ok {
			steps[i].GateCheck = c
		}
	}
	return NewRunbook(steps)
}

// Dependents lists the steps that depend directly on id.
func (rb *Runbook) Dependents(id string) []string {
	var out []string
	for _, s := range rb.steps {
		for _, d := range s.DependsOn {
			if d == id {
				out = append(out, s.ID)
			}
		}
	}
	return out
}

func filter(in []string, keep func(string) bool) []string {
	var out []string
	for _, s := range in {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}
