package terraform

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/test/terraformfake"
)

type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, sprintf(format, args...))
}

func (l *lines) get() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.l...)
}

func sprintf(format string, args ...any) string {
	return strings.TrimSpace(fmt.Sprintf(format, args...))
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func eksModule() terraformfake.Module {
	return terraformfake.Module{
		Variables: []string{"region", "cluster_name", "azs"},
		Resources: []terraformfake.Resource{
			{Address: "module.vpc.aws_vpc.this", Attributes: map[string]string{"id": "vpc-0tf"}},
			{Address: "module.eks.aws_eks_cluster.this", Attributes: map[string]string{"id": "${var.cluster_name}", "region": "${var.region}"}},
		},
		Outputs:            map[string]any{"cluster_name": "${var.cluster_name}", "azs": "${var.azs}", "subnet_ids": []any{"subnet-a", "subnet-b"}},
		ApplyProgressLines: 30, ApplyLineDelay: 3 * time.Millisecond,
	}
}

func newRunner(t *testing.T, dir string, p *lines) *Runner {
	return &Runner{
		ExecPath: terraformfake.Build(t), Dir: dir, Workspace: "dr-prod-eu",
		Vars:     map[string]any{"region": "eu-west-1", "cluster_name": "dr", "azs": []string{"a", "b"}},
		Progress: p.add, StreamEvery: 40 * time.Millisecond,
	}
}

func TestApplyPostsThePlanSummaryBeforeApplyingAndCoalescesApplyOutput(t *testing.T) {
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, eksModule())
	var p lines
	r := newRunner(t, dir, &p)
	var appliesAtPlanTime = -1
	r.OnPlan = func(s PlanSummary) error {
		appliesAtPlanTime = terraformfake.Count(terraformfake.Invocations(t, dir), "apply")
		return nil
	}
	res, err := r.Apply(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Applied || res.Plan.Add != 2 || res.Plan.Change != 0 || res.Plan.Destroy != 0 {
		t.Fatalf("result = %+v", res)
	}
	if appliesAtPlanTime != 0 {
		t.Fatalf("OnPlan saw %d applies; the summary must come before apply", appliesAtPlanTime)
	}
	got := p.get()
	if len(got) < 3 || got[0] != "terraform plan: 2 to add, 0 to change, 0 to destroy" {
		t.Fatalf("progress = %q", got)
	}
	// 2 resources × 32 lines + the summary: ~70 lines of output in ~200 ms,
	// posted at most every 40 ms plus the first and the last.
	if n := len(got) - 1; n > 12 {
		t.Errorf("%d apply lines posted; want them coalesced: %q", n, got)
	}
	if last := got[len(got)-1]; !strings.Contains(last, "Apply complete! Resources: 2 added") {
		t.Errorf("last progress line = %q, want the apply summary", last)
	}
	if res.Outputs["cluster_name"].String() != "dr" || res.Outputs["azs"].String() != `["a","b"]` || res.Outputs["subnet_ids"].String() != `["subnet-a","subnet-b"]` {
		t.Errorf("outputs = %v", res.Outputs)
	}
	invs := terraformfake.Invocations(t, dir)
	if terraformfake.Count(invs, "workspace new") != 1 {
		t.Errorf("workspace dr-prod-eu not created: %+v", invs)
	}
	if u := terraformfake.Unexpected(t, dir); len(u) > 0 {
		t.Fatalf("unexpected terraform invocations: %v", u)
	}
}

func TestSecondApplyPlansNoChangesAndDoesNotApply(t *testing.T) {
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, eksModule())
	var p lines
	r := newRunner(t, dir, &p)
	if _, err := r.Apply(ctx(t)); err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied || res.Plan.HasChanges() || res.Outputs["cluster_name"].String() != "dr" {
		t.Fatalf("second apply = %+v", res)
	}
	invs := terraformfake.Invocations(t, dir)
	if n := terraformfake.Count(invs, "apply"); n != 1 {
		t.Fatalf("terraform apply ran %d times, want 1", n)
	}
	if n := terraformfake.Count(invs, "workspace new"); n != 1 {
		t.Fatalf("workspace created %d times, want 1 (then selected)", n)
	}
}

func TestPlanThatDestroysIsRefusedUnlessAllowed(t *testing.T) {
	dir := t.TempDir()
	m := eksModule()
	terraformfake.WriteModule(t, dir, m)
	var p lines
	r := newRunner(t, dir, &p)
	if _, err := r.Apply(ctx(t)); err != nil {
		t.Fatal(err)
	}
	m.Resources = m.Resources[1:]
	terraformfake.WriteModule(t, dir, m)
	_, err := r.Apply(ctx(t))
	if err == nil || recovery.IsRetryable(err) || !strings.Contains(err.Error(), "module.vpc.aws_vpc.this") {
		t.Fatalf("apply of a destroying plan: %v", err)
	}
	if n := terraformfake.Count(terraformfake.Invocations(t, dir), "apply"); n != 1 {
		t.Fatalf("apply ran %d times; the destroying plan must not be applied", n)
	}
	r.AllowDestroy = true
	res, err := r.Apply(ctx(t))
	if err != nil || res.Plan.Destroy != 1 || !res.Applied {
		t.Fatalf("allowed destroying apply = %+v, %v", res, err)
	}
}

func TestApplyFailuresAreRetryableOnlyWhenThrottled(t *testing.T) {
	for _, tc := range []struct {
		msg       string
		retryable bool
	}{
		{"creating EKS Cluster (dr): operation error EKS: CreateCluster, ThrottlingException: Rate exceeded", true},
		{"Invalid value for variable: subnet ids must be in two AZs", false},
	} {
		dir := t.TempDir()
		m := eksModule()
		m.FailApply = tc.msg
		terraformfake.WriteModule(t, dir, m)
		var p lines
		_, err := newRunner(t, dir, &p).Apply(ctx(t))
		if err == nil || recovery.IsRetryable(err) != tc.retryable || !strings.Contains(err.Error(), "Error: "+tc.msg) {
			t.Errorf("apply failing with %q: err %v, retryable %v", tc.msg, err, recovery.IsRetryable(err))
		}
	}
}

func TestDestroyEmptiesTheWorkspace(t *testing.T) {
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, eksModule())
	var p lines
	r := newRunner(t, dir, &p)
	if _, err := r.Apply(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if err := r.Destroy(ctx(t)); err != nil {
		t.Fatal(err)
	}
	if got := terraformfake.StateResources(t, dir, "dr-prod-eu"); len(got) != 0 {
		t.Fatalf("state after destroy = %v", got)
	}
	if got := p.get(); !strings.Contains(got[len(got)-1], "Destroy complete! Resources: 2 destroyed.") {
		t.Fatalf("progress = %q", got)
	}
}

func TestCoalescerPostsFirstAndLastLineWithinOneInterval(t *testing.T) {
	var posted []string
	c := newCoalescer(time.Hour, func(l string) { posted = append(posted, l) })
	for i := 0; i < 100; i++ {
		_, _ = fmt.Fprintf(c, "line %d\n", i)
	}
	_, _ = c.Write([]byte("Apply complete! Resources: 1 added, 0 changed, 0 destroyed.\n\nOutputs:\n\nname = \"dr\"\n"))
	_, _ = c.Write([]byte("partial without newline"))
	c.Close()
	if len(posted) != 2 || posted[0] != "line 0" || !strings.HasPrefix(posted[1], "Apply complete!") {
		t.Fatalf("posted = %q; want the first line and the summary, not the outputs", posted)
	}
}
