package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/permissions"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/world"
)

// callLog is what the far ends saw drbot do, each call attributed to the
// step named in its User-Agent ("" for calls outside any step).
type callLog struct {
	decl  permissions.Set
	vars  map[string]string
	byEnd map[string]map[string]int // far end → step → calls checked
	bad   []string
	seen  map[string]map[string]bool // step → far end
	acts  map[string]map[string]bool // step → AWS actions called
}

func newCallLog(cfg *config.Config, target string) *callLog {
	t, _ := cfg.Target(target)
	return &callLog{
		decl:  standard.Permissions(),
		vars:  standard.PermissionVars(cfg, t),
		byEnd: map[string]map[string]int{},
		seen:  map[string]map[string]bool{},
		acts:  map[string]map[string]bool{},
	}
}

// check records one call: allowed by the declaration of its step, or, for
// a call outside every step, by the declaration of some part of drbot.
func (l *callLog) check(end, step, what string, allowed func(names ...string) bool) {
	if l.byEnd[end] == nil {
		l.byEnd[end] = map[string]int{}
	}
	l.byEnd[end][step]++
	if l.seen[step] == nil {
		l.seen[step] = map[string]bool{}
	}
	l.seen[step][end] = true
	switch {
	case step == "" && !allowed():
		l.bad = append(l.bad, fmt.Sprintf("%s: %s outside any step, declared nowhere", end, what))
	case step != "" && !allowed(step):
		l.bad = append(l.bad, fmt.Sprintf("%s: step %s called %s, which its declaration does not list", end, step, what))
	}
}

func (l *callLog) aws(calls []awsfake.Call, principal string) {
	for _, c := range calls {
		if c.Principal != principal || c.Service == awsfake.ServiceWebhook {
			continue // the load balancer controller, the test's own checks, the API server's token reviews
		}
		act := permissions.IAMAction(c.Service, c.Operation)
		if c.Operation == "" {
			l.bad = append(l.bad, fmt.Sprintf("aws: a %s call the stand-in could not name", c.Service))
			continue
		}
		step := recovery.StepFromUserAgent(c.UserAgent)
		if l.acts[step] == nil {
			l.acts[step] = map[string]bool{}
		}
		l.acts[step][act] = true
		l.check("aws", step, act, func(n ...string) bool { return l.decl.AllowsAction(act, n...) })
	}
}

func (l *callLog) kube(c permissions.Cluster, events []kubeenv.AuditEvent) {
	for _, e := range events {
		if !isDrbot(e.UserAgent) || e.Resource == "" {
			continue // Argo CD, the controllers, the test; discovery (non-resource URLs every user may read)
		}
		ns := e.Namespace
		if e.Resource == "namespaces" {
			ns = "" // the audit log puts a Namespace's own name there; RBAC has namespaces cluster-scoped
		}
		res := e.Resource
		if e.Subresource != "" {
			res += "/" + e.Subresource
		}
		what := fmt.Sprintf("%s %s (%s) in %q", e.Verb, res, e.Group, ns)
		l.check("kube/"+string(c), recovery.StepFromUserAgent(e.UserAgent), what, func(n ...string) bool {
			return l.decl.AllowsKube(c, l.vars, e.Verb, e.Group, res, ns, n...)
		})
	}
}

// isDrbot: drbot's Kubernetes and GitLab clients say "drbot" (then the
// step); the stand-ins in this test binary send client-go's default
// "drbot.test/…" or "go-gitlab".
func isDrbot(ua string) bool { return ua == "drbot" || strings.HasPrefix(ua, "drbot ") }

func (l *callLog) report(t *testing.T) {
	t.Helper()
	for _, end := range slices.Sorted(maps.Keys(l.byEnd)) {
		var parts []string
		for _, s := range slices.Sorted(maps.Keys(l.byEnd[end])) {
			name := s
			if name == "" {
				name = "(outside steps)"
			}
			parts = append(parts, fmt.Sprintf("%s %d", name, l.byEnd[end][s]))
		}
		t.Logf("%s: %s", end, strings.Join(parts, ", "))
	}
	// Declared but not called in this run: other providers' and repair
	// paths' needs, or grants to drop. Shown, not failed.
	for _, st := range l.decl.Steps {
		if len(l.acts[st.ID]) == 0 {
			continue
		}
		var unused []string
		for _, a := range l.decl.AWSActions(st.ID) {
			if !l.acts[st.ID][a] {
				unused = append(unused, a)
			}
		}
		if len(unused) > 0 {
			t.Logf("%s declares, and this run did not call: %s", st.ID, strings.Join(unused, ", "))
		}
	}
	sort.Strings(l.bad)
	for _, b := range slices.Compact(l.bad) {
		t.Error(b)
	}
}

// TestWholeRecoveryCallsNothingItsStepsDoNotDeclare is issue #13's
// acceptance: a full recovery against the stand-ins, every AWS, Kubernetes
// (both clusters' audit logs), Vault and GitLab call attributed to its
// step by the User-Agent drbot sends, and checked against that step's
// declaration in recovery/standard/permissions.go: none undeclared.
func TestWholeRecoveryCallsNothingItsStepsDoNotDeclare(t *testing.T) {
	checkRunCalls(t, false)
}

// TestDrillWithTeardownCallsNothingItsStepsDoNotDeclare does the same for a
// drill, whose teardown removes what the run made.
func TestDrillWithTeardownCallsNothingItsStepsDoNotDeclare(t *testing.T) {
	checkRunCalls(t, true)
}

func checkRunCalls(t *testing.T, drill bool) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and a whole run")
	}
	w := world.Start(t, world.Options{Services: 4, KubeAudit: true, Drill: drill})
	cfg, err := w.Config(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if !drill {
		// The live plan first: read-only calls, declared as standard.PartPlan.
		tg, _ := cfg.Target(w.Opts.Target)
		if err := writeLivePlan(ctx, io.Discard, cfg, tg); err != nil {
			t.Fatal(err)
		}
	}
	start := "start " + w.Opts.Target
	if drill {
		start += " --drill"
	}
	// The rollback below reports its end here. recoverInWorld fails the
	// test on a run that did not succeed: the call log of a partial run
	// proves little.
	rolledBack := make(chan error, 1)
	d, run := recoverInWorld(ctx, t, w, cfg, worldRun{command: start, prepare: func(d *worldDriver) {
		inner := d.rollback
		d.rollback = func(ctx context.Context, runID, record string, progress func(string)) error {
			err := inner(ctx, runID, record, progress)
			rolledBack <- err
			return err
		}
	}})
	if !drill {
		// The cutover's rollback is not a step; its calls name it as standard.PartRollback.
		if err := d.slash(ctx, world.UserOncall, fmt.Sprintf(`rollback %s --reason "permission test"`, run.ID)); err != nil {
			t.Fatal(err)
		}
		var ts string
		if err := w.Slack.WaitFor(ctx, "the rollback request", func() bool {
			_ = d.srv.store.View(func(tx *state.Tx) error {
				refs, err := tx.MessageRefs(run.ID)
				ts = refs["rollback/1"]
				return err
			})
			return ts != ""
		}); err != nil {
			t.Fatal(err)
		}
		if err := d.click(ctx, world.UserLead, openGate{Run: run, Step: "rollback", Round: 1, TS: ts}, bot.ActionRollbackApprove); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-rolledBack:
			if err != nil {
				t.Fatalf("rollback: %v", err)
			}
		case <-ctx.Done():
			t.Fatal("the rollback did not finish")
		}
	}

	l := newCallLog(cfg, w.Opts.Target)
	l.aws(w.AWS.Calls(), "arn:aws:sts::"+world.Account+":assumed-role/drbot/drbot-world")
	for _, c := range []struct {
		cl   *kubeenv.Cluster
		name permissions.Cluster
	}{{w.Mgmt, permissions.Management}, {w.DR, permissions.DR}} {
		events, err := c.cl.AuditEvents()
		if err != nil {
			t.Fatal(err)
		}
		l.kube(c.name, events)
	}
	for _, c := range w.Vault.Calls() {
		caps := permissions.VaultCapability(c.Method, strings.Contains(c.Query, "list=true"))
		l.check("vault", recovery.StepFromUserAgent(c.UserAgent), c.Method+" "+c.Path, func(n ...string) bool {
			return l.decl.AllowsVault(l.vars, c.Path, caps, n...)
		})
	}
	for _, c := range w.GitLab.Calls() {
		if !isDrbot(c.UserAgent) {
			continue // the Argo CD stand-in reading Git
		}
		l.check("gitlab", recovery.StepFromUserAgent(c.UserAgent), c.Method+" "+c.Path, func(n ...string) bool {
			return l.decl.AllowsGitLab(c.Method, c.Path, n...)
		})
	}
	l.report(t)
	for end, bySteps := range l.byEnd {
		if n := bySteps[""]; n > 0 {
			t.Errorf("%s: %d calls during the run carry no step in their User-Agent", end, n)
		}
	}

	// The attribution itself works: each far end saw the steps that use it.
	expect := map[string][]string{
		standard.ClusterCreate:     {"aws"},
		standard.ClusterAccess:     {"aws", "kube/dr"},
		standard.IAMRoles:          {"aws"},
		standard.ArgoCDRegister:    {"kube/management"},
		standard.AddonsKarpenter:   {"kube/management", "kube/dr"},
		standard.VaultAuth:         {"vault", "kube/dr"},
		standard.Namespaces:        {"vault", "kube/dr"},
		standard.AddonsLBC:         {"kube/dr"},
		standard.TemplatesGenerate: {"gitlab"},
		standard.GitOpsMR:          {"gitlab"},
		standard.GitOpsMerge:       {"gitlab"},
		standard.DeployWatch:       {"kube/management"},
		standard.EndpointsDiscover: {"aws"},
		standard.EndpointsApply:    {"aws"},
	}
	if drill {
		expect[standard.Teardown] = []string{"aws", "kube/management", "kube/dr", "vault", "gitlab"}
	} else {
		expect[standard.PartRollback] = []string{"aws"}
		expect[standard.PartPlan] = []string{"aws", "gitlab", "vault", "kube/management"}
	}
	for step, ends := range expect {
		for _, end := range ends {
			if !l.seen[step][end] {
				t.Errorf("no %s call attributed to step %s: the User-Agent does not carry the step there", end, step)
			}
		}
	}
}
