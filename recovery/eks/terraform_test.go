package eks_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/eks"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/terraformfake"
)

func terraformConfig(dir string) *config.Config {
	return &config.Config{Targets: []config.Target{targetWith(config.Cluster{
		Provider:  config.ProviderTerraform,
		Terraform: &config.TerraformCluster{Dir: dir, Workspace: "dr-prod-eu", Vars: map[string]any{"node_count": 3, "azs": []any{"eu-west-1a", "eu-west-1b"}}},
	})}}
}

func TestTerraformProviderPostsThePlanBeforeApplyingAndJournalsTheModuleOutputs(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	// What the module's aws_eks_cluster would have made.
	if _, err := srv.AddCluster(region, awsfake.ExistingCluster{Name: clusterName}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	terraformfake.WriteModule(t, dir, terraformfake.Module{
		Variables: []string{"region", "cluster_name", "node_count", "azs"},
		Resources: []terraformfake.Resource{
			{Address: "module.vpc.aws_vpc.this", Attributes: map[string]string{"id": "vpc-0tf"}},
			{Address: "module.eks.aws_eks_cluster.this", Attributes: map[string]string{"id": "${var.cluster_name}", "region": "${var.region}"}},
			{Address: "module.eks.aws_eks_node_group.this", Attributes: map[string]string{"size": "${var.node_count}", "azs": "${var.azs}"}},
		},
		Outputs: map[string]any{
			"cluster_name":  "${var.cluster_name}",
			"endpoint":      "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
			"vpc_id":        "vpc-0tf",
			"subnet_ids":    []any{"subnet-tf-a", "subnet-tf-b"},
			"node_role_arn": nodeRole,
		},
		ApplyProgressLines: 20, ApplyLineDelay: 2 * time.Millisecond,
	})
	o := options(srv, terraformConfig(dir))
	o.TerraformPath = terraformfake.Build(t)
	o.TerraformStreamEvery = 30 * time.Millisecond
	p := eks.NewProvisioner(o)

	res := steptest.Run(t, steptest.Options{}, createStep(p))
	mustSucceed(t, res)
	out := res.Steps[eks.StepClusterCreate].Outputs
	want := map[string]string{
		"cluster_name": clusterName, "region": region, "endpoint": "https://ABC.gr7.eu-west-1.eks.amazonaws.com", "vpc_id": "vpc-0tf",
		"subnet_ids": `["subnet-tf-a","subnet-tf-b"]`, "node_role_arn": nodeRole,
		"cluster_arn":  "arn:aws:eks:eu-west-1:123456789012:cluster/dr", // filled in from DescribeCluster
		"plan_summary": "3 to add, 0 to change, 0 to destroy",
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("output %s = %q, want %q", k, out[k], v)
		}
	}
	progress := res.Progress(eks.StepClusterCreate)
	planAt := slices.Index(progress, "terraform plan: 3 to add, 0 to change, 0 to destroy")
	firstApply := slices.IndexFunc(progress, func(l string) bool { return strings.HasPrefix(l, "terraform: ") })
	if planAt < 0 || firstApply < 0 || planAt > firstApply {
		t.Fatalf("want the plan summary posted before apply output; progress = %q", progress)
	}
	if n := len(progress) - planAt - 1; n > 10 {
		t.Errorf("%d apply lines posted for ~65 lines of output; want them coalesced: %q", n, progress)
	}
	if !hasLine(progress, "terraform: Apply complete! Resources: 3 added, 0 changed, 0 destroyed.") {
		t.Errorf("the apply summary was not posted: %q", progress)
	}

	invs := terraformfake.Invocations(t, dir)
	var plan terraformfake.Invocation
	for _, i := range invs {
		if i.Command() == "plan" {
			plan = i
		}
	}
	args := strings.Join(plan.Args, " ")
	for _, v := range []string{"-var azs=[\"eu-west-1a\",\"eu-west-1b\"]", "-var cluster_name=dr", "-var node_count=3", "-var region=eu-west-1", "-out="} {
		if !strings.Contains(args, v) {
			t.Errorf("plan args %q lack %q", args, v)
		}
	}
	if plan.Workspace != "dr-prod-eu" {
		t.Errorf("planned in workspace %q", plan.Workspace)
	}

	second := steptest.Run(t, steptest.Options{}, createStep(p))
	mustSucceed(t, second)
	invs = terraformfake.Invocations(t, dir)
	if n := terraformfake.Count(invs, "apply"); n != 1 {
		t.Errorf("terraform apply ran %d times over two runs, want 1 (the second plan has no changes)", n)
	}
	if got := second.Steps[eks.StepClusterCreate].Outputs["plan_summary"]; got != "0 to add, 0 to change, 0 to destroy" {
		t.Errorf("second plan summary = %q", got)
	}
	if u := terraformfake.Unexpected(t, dir); len(u) > 0 {
		t.Fatalf("terraform invocations the stand-in did not understand: %v", u)
	}

	// Drill teardown destroys what the module made, in the same workspace.
	td := steptest.Run(t, steptest.Options{Mode: state.ModeDrill}, recovery.Step{ID: "teardown", Phase: recovery.PhaseClose,
		Action: func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
			return recovery.Result{}, p.Destroy(ctx, sc)
		}})
	mustSucceed(t, td)
	if got := terraformfake.StateResources(t, dir, "dr-prod-eu"); len(got) != 0 {
		t.Errorf("resources left after destroy: %v", got)
	}
}
