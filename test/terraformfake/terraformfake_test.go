package terraformfake_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/drbot/drbot/test/terraformfake"
)

func module() terraformfake.Module {
	return terraformfake.Module{
		Variables: []string{"region", "cluster_name"},
		Resources: []terraformfake.Resource{
			{Address: "module.vpc.aws_vpc.this", Attributes: map[string]string{"id": "vpc-0tf", "region": "${var.region}"}},
			{Address: "aws_eks_cluster.this", Attributes: map[string]string{"id": "${var.cluster_name}", "name": "${var.cluster_name}"}},
		},
		Outputs: map[string]any{
			"cluster_name": "${var.cluster_name}",
			"subnet_ids":   []any{"subnet-a", "subnet-b"},
		},
	}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestTerraformExecDrivesTheStandInFromInitToDestroy(t *testing.T) {
	bin := terraformfake.Build(t)
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, module())
	tf, err := tfexec.NewTerraform(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	if err := tf.Init(c); err != nil {
		t.Fatalf("init: %v", err)
	}
	if err := tf.WorkspaceSelect(c, "dr"); err == nil {
		t.Fatal("selecting a workspace that does not exist succeeded")
	}
	if err := tf.WorkspaceNew(c, "dr"); err != nil {
		t.Fatalf("workspace new: %v", err)
	}
	if ws, err := tf.WorkspaceShow(c); err != nil || ws != "dr" {
		t.Fatalf("workspace show = %q, %v", ws, err)
	}
	if list, cur, err := tf.WorkspaceList(c); err != nil || cur != "dr" || !slices.Equal(list, []string{"default", "dr"}) {
		t.Fatalf("workspace list = %v (current %q), %v", list, cur, err)
	}

	planPath := filepath.Join(t.TempDir(), "dr.tfplan")
	vars := []tfexec.PlanOption{tfexec.Var("region=eu-west-1"), tfexec.Var("cluster_name=dr-1"), tfexec.Out(planPath)}
	changed, err := tf.Plan(c, vars...)
	if err != nil || !changed {
		t.Fatalf("plan = %v, %v; want changes", changed, err)
	}
	plan, err := tf.ShowPlanFile(c, planPath)
	if err != nil {
		t.Fatalf("show plan: %v", err)
	}
	if len(plan.ResourceChanges) != 2 || !plan.ResourceChanges[0].Change.Actions.Create() || plan.ResourceChanges[1].Type != "aws_eks_cluster" {
		t.Fatalf("plan resource changes = %+v", plan.ResourceChanges)
	}
	var applyOut strings.Builder
	tf.SetStdout(&applyOut)
	if err := tf.Apply(c, tfexec.DirOrPlan(planPath)); err != nil {
		t.Fatalf("apply: %v", err)
	}
	tf.SetStdout(nil)
	if !strings.Contains(applyOut.String(), "Apply complete! Resources: 2 added, 0 changed, 0 destroyed.") {
		t.Errorf("apply output:\n%s", applyOut.String())
	}
	outs, err := tf.Output(c)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	var subnets []string
	_ = json.Unmarshal(outs["cluster_name"].Value, &name)
	_ = json.Unmarshal(outs["subnet_ids"].Value, &subnets)
	if name != "dr-1" || len(subnets) != 2 {
		t.Fatalf("outputs = %s, %s", outs["cluster_name"].Value, outs["subnet_ids"].Value)
	}

	if changed, err := tf.Plan(c, vars...); err != nil || changed {
		t.Fatalf("second plan = %v, %v; want no changes", changed, err)
	}
	if got := terraformfake.StateResources(t, dir, "dr"); len(got) != 2 {
		t.Fatalf("state of workspace dr = %v", got)
	}
	if got := terraformfake.StateResources(t, dir, "default"); len(got) != 0 {
		t.Fatalf("default workspace state touched: %v", got)
	}
	if err := tf.Destroy(c, tfexec.Var("region=eu-west-1"), tfexec.Var("cluster_name=dr-1")); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if got := terraformfake.StateResources(t, dir, "dr"); len(got) != 0 {
		t.Fatalf("state after destroy = %v", got)
	}

	invs := terraformfake.Invocations(t, dir)
	if terraformfake.Count(invs, "apply") != 1 || terraformfake.Count(invs, "plan") != 2 || terraformfake.Count(invs, "workspace new") != 1 {
		t.Fatalf("invocations: %+v", invs)
	}
	for _, inv := range invs {
		if inv.InAutomation != "1" {
			t.Errorf("%v ran without TF_IN_AUTOMATION=1 (terraform-exec always sets it)", inv.Args)
		}
	}
	if u := terraformfake.Unexpected(t, dir); len(u) != 0 {
		t.Fatalf("unexpected invocations: %v", u)
	}
}

func TestStandInRejectsStalePlansUndeclaredVariablesAndUnknownCommands(t *testing.T) {
	bin := terraformfake.Build(t)
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, module())
	tf, err := tfexec.NewTerraform(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	c := ctx(t)
	if err := tf.Init(c); err != nil {
		t.Fatal(err)
	}
	first, second := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
	for _, p := range []string{first, second} {
		if _, err := tf.Plan(c, tfexec.Var("region=r"), tfexec.Var("cluster_name=c"), tfexec.Out(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tf.Apply(c, tfexec.DirOrPlan(second)); err != nil {
		t.Fatal(err)
	}
	if err := tf.Apply(c, tfexec.DirOrPlan(first)); err == nil || !strings.Contains(err.Error(), "Saved plan is stale") {
		t.Fatalf("applying a stale plan: %v", err)
	}
	if _, err := tf.Plan(c, tfexec.Var("region=r"), tfexec.Var("cluster_name=c"), tfexec.Var("typo=1")); err == nil || !strings.Contains(err.Error(), "undeclared variable") {
		t.Fatalf("plan with an undeclared variable: %v", err)
	}
	if _, err := tf.Plan(c, tfexec.Var("region=r")); err == nil || !strings.Contains(err.Error(), "No value for required variable") {
		t.Fatalf("plan without a required variable: %v", err)
	}
	if err := tf.Refresh(c); err == nil {
		t.Fatal("refresh (not modelled) succeeded")
	}
	if u := terraformfake.Unexpected(t, dir); len(u) != 1 || !strings.HasPrefix(u[0], "refresh") {
		t.Fatalf("unexpected invocations = %v, want the refresh call", u)
	}
}

func TestCommandsBeforeInitFailLikeTerraform(t *testing.T) {
	bin := terraformfake.Build(t)
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, module())
	tf, err := tfexec.NewTerraform(dir, bin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tf.Output(ctx(t)); err == nil || !strings.Contains(err.Error(), "terraform init") {
		t.Fatalf("output before init: %v", err)
	}
}
