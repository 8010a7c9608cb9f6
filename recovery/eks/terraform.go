package eks

import (
	"context"
	"fmt"
	"maps"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/terraform"
)

// terraformOutputs maps the module outputs drbot reads to step outputs.
var terraformOutputs = []string{"cluster_name", "cluster_arn", "endpoint", "vpc_id", "subnet_ids", "node_role_arn"}

func (p *Provisioner) runner(sc *recovery.StepContext, t *config.Target) (*terraform.Runner, error) {
	tc := t.Cluster.Terraform
	if tc == nil {
		return nil, recovery.Permanent(fmt.Errorf("target %q uses provider terraform but targets[].cluster.terraform is missing", t.Name))
	}
	vars := map[string]any{}
	maps.Copy(vars, tc.Vars)
	// drbot's own inputs win: the DR region and cluster name are the run's.
	vars["region"] = t.DR.Region
	vars["cluster_name"] = t.DR.ClusterName
	return &terraform.Runner{
		ExecPath:     p.o.TerraformPath,
		Dir:          tc.Dir,
		Workspace:    tc.Workspace,
		Vars:         vars,
		Env:          p.o.TerraformEnv,
		Progress:     sc.Progress,
		StreamEvery:  p.o.TerraformStreamEvery,
		AllowDestroy: p.o.TerraformAllowDestroy,
		OnPlan: func(s terraform.PlanSummary) error {
			return sc.SaveOutputs(map[string]string{"plan_summary": s.String()})
		},
	}, nil
}

// applyTerraform runs the user's module, then checks with EKS that the
// cluster it reports exists and is ACTIVE, filling in what the module's
// outputs leave out.
func (p *Provisioner) applyTerraform(ctx context.Context, sc *recovery.StepContext, t *config.Target) (recovery.Result, error) {
	r, err := p.runner(sc, t)
	if err != nil {
		return recovery.Result{}, err
	}
	res, err := r.Apply(ctx)
	if err != nil {
		return recovery.Result{}, err
	}
	out := map[string]string{"region": t.DR.Region, "plan_summary": res.Plan.String()}
	for _, k := range terraformOutputs {
		if o, ok := res.Outputs[k]; ok && !o.Sensitive {
			out[k] = o.String()
		}
	}
	if out["cluster_name"] == "" {
		out["cluster_name"] = t.DR.ClusterName
	}
	// Journal what terraform reported before asking EKS about it.
	if err := sc.SaveOutputs(out); err != nil {
		return recovery.Result{}, err
	}
	api, err := p.o.client(ctx, t.DR.Region)
	if err != nil {
		return recovery.Result{}, err
	}
	cl, err := waitClusterActive(ctx, sc, &p.o, api, out["cluster_name"])
	if isNotFound(err) {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("terraform applied but EKS has no cluster %q in %s; check the module's cluster_name output and region variable", out["cluster_name"], t.DR.Region))
	}
	if err != nil {
		return recovery.Result{}, err
	}
	for k, v := range clusterOutputs(t.DR.Region, cl) {
		if out[k] == "" {
			out[k] = v
		}
	}
	return recovery.Result{Outputs: out}, nil
}

// Destroy tears a drill's Terraform-made cluster down (terraform destroy
// in the same workspace with the same variables). Other providers have
// nothing of drbot's to destroy here.
func (p *Provisioner) Destroy(ctx context.Context, sc *recovery.StepContext) error {
	t, err := target(p.o.Config, sc)
	if err != nil {
		return err
	}
	if t.Cluster.Provider != config.ProviderTerraform {
		return recovery.Permanent(fmt.Errorf("target %q: destroy is only built for provider terraform (this target uses %s)", t.Name, t.Cluster.Provider))
	}
	r, err := p.runner(sc, t)
	if err != nil {
		return err
	}
	r.OnPlan = nil
	return r.Destroy(ctx)
}
