package recovery

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Scheduled is one step placed on the timeline of an unhindered run.
type Scheduled struct {
	Step     Step
	Start    time.Duration // earliest start after the run begins
	Finish   time.Duration
	Critical bool // on the longest path: any delay here delays the recovery
}

// Schedule is the plan's estimate of a run.
type Schedule struct {
	Steps        []Scheduled // in runbook order
	CriticalPath []string
	Total        time.Duration // time to recover with independent steps in parallel
	Sequential   time.Duration // the same steps one after another, as by hand
}

// Schedule places every step at its earliest start given its dependencies
// and estimates, and finds the critical path. It assumes enough
// concurrency for every ready step, which DefaultConcurrency gives the
// standard runbook.
func (rb *Runbook) Schedule() Schedule {
	finish := map[string]time.Duration{}
	via := map[string]string{} // the dependency that finishes last
	var out Schedule
	var visit func(id string) time.Duration
	visit = func(id string) time.Duration {
		if f, ok := finish[id]; ok {
			return f
		}
		s, _ := rb.Step(id)
		var start time.Duration
		for _, d := range s.DependsOn {
			if f := visit(d); f >= start {
				start, via[id] = f, d
			}
		}
		finish[id] = start + s.Estimate
		return finish[id]
	}
	var last string
	for _, s := range rb.steps {
		if f := visit(s.ID); f > out.Total || last == "" {
			out.Total, last = f, s.ID
		}
		out.Sequential += s.Estimate
	}
	critical := map[string]bool{}
	for id := last; id != ""; id = via[id] {
		critical[id] = true
		out.CriticalPath = append([]string{id}, out.CriticalPath...)
	}
	for _, s := range rb.steps {
		out.Steps = append(out.Steps, Scheduled{Step: s, Start: finish[s.ID] - s.Estimate, Finish: finish[s.ID], Critical: critical[s.ID]})
	}
	return out
}

// WritePlan prints the schedule by phase, the critical path and the
// estimated time to recover against the budget.
func WritePlan(w io.Writer, header string, sched Schedule, budget time.Duration) error {
	var b strings.Builder
	if header != "" {
		fmt.Fprintln(&b, header)
		fmt.Fprintln(&b)
	}
	for _, p := range Phases {
		var rows []Scheduled
		for _, s := range sched.Steps {
			if s.Step.Phase == p {
				rows = append(rows, s)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s\n", strings.ToUpper(string(p)))
		for _, r := range rows {
			mark := " "
			if r.Critical {
				mark = "*"
			}
			gate := ""
			if r.Step.Gate != GateNone {
				gate = fmt.Sprintf(" [approval: %s gate]", r.Step.Gate)
			}
			deps := "—"
			if len(r.Step.DependsOn) > 0 {
				deps = strings.Join(r.Step.DependsOn, ", ")
			}
			fmt.Fprintf(&b, " %s %-22s %7s  at %7s  %s%s\n     after: %s\n", mark, r.Step.ID, ShortDuration(r.Step.Estimate), "+"+ShortDuration(r.Start), r.Step.Title, gate, deps)
		}
		fmt.Fprintln(&b)
	}
	fmt.Fprintf(&b, "Critical path (*): %s\n", strings.Join(sched.CriticalPath, " → "))
	fmt.Fprintf(&b, "Estimated time to recover: %s (steps in parallel)\n", ShortDuration(sched.Total))
	fmt.Fprintf(&b, "Sequential sum:            %s (one step after another, as by hand)\n", ShortDuration(sched.Sequential))
	if budget > 0 {
		verdict := "within"
		if sched.Total > budget {
			verdict = "OVER"
		}
		fmt.Fprintf(&b, "MTTR budget:               %s (%s budget, %.0f%% of it)\n", ShortDuration(budget), verdict, 100*float64(sched.Total)/float64(budget))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ShortDuration writes a duration for people: whole seconds, and "12m"
// rather than "12m0s".
func ShortDuration(d time.Duration) string {
	d = d.Round(time.Second)
	if d >= time.Minute && d%time.Minute == 0 {
		return strings.TrimSuffix(d.String(), "0s")
	}
	return d.String()
}
