package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/helm"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/standard"
)

// writeLivePlan reads the current state of the far ends (read-only calls
// only) and says, per step, what a run would create or change now. A part
// that cannot be read says why instead of failing the plan.
func writeLivePlan(ctx context.Context, w io.Writer, cfg *config.Config, t *config.Target) error {
	lines := map[string][]string{}
	add := func(step string, l ...string) { lines[step] = append(lines[step], l...) }

	// The DR cluster.
	aws := &awsConfigs{}
	if ac, err := aws.get(ctx, t.DR.Region); err != nil {
		add(standard.ClusterCreate, "cannot read EKS: "+err.Error())
	} else {
		out, err := awseks.NewFromConfig(ac).DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: &t.DR.ClusterName})
		var nf *ekstypes.ResourceNotFoundException
		switch {
		case errors.As(err, &nf):
			add(standard.ClusterCreate, fmt.Sprintf("would create EKS cluster %s in %s (provider %s)", t.DR.ClusterName, t.DR.Region, t.Cluster.Provider))
		case err != nil:
			add(standard.ClusterCreate, "cannot read EKS: "+firstLine(err.Error()))
		default:
			add(standard.ClusterCreate, fmt.Sprintf("EKS cluster %s exists (%s): would reuse it", t.DR.ClusterName, out.Cluster.Status))
		}
	}

	// Helm add-ons, as if the cluster were new (nothing is installed yet).
	if steps, err := helm.New(helm.Options{Config: cfg, Kube: kube.Static(nil), IngressManifests: cfg.Addons[config.AddonIstioGateway].IngressManifests}); err == nil {
		byStep, err := steps.Plan(ctx, t.Name, nil, nil)
		if err != nil {
			add(standard.AddonsLBC, "cannot plan the add-ons: "+err.Error())
		}
		for id, l := range byStep {
			add(id, l...)
		}
	}

	// The merge request.
	var mr strings.Builder
	if tok, err := cfg.GitLab.Token.Resolve(); err != nil {
		add(standard.GitOpsMR, "cannot read GitLab: gitlab.token: "+err.Error())
	} else if c, err := gitlab.NewClient(tok, gitlab.WithBaseURL(cfg.GitLab.URL+"/api/v4")); err != nil {
		add(standard.GitOpsMR, "cannot read GitLab: "+err.Error())
	} else if rep, err := gitops.New(cfg, gitops.FromClient(c), gitops.Options{}).Plan(ctx, t.Name); err != nil {
		add(standard.GitOpsMR, "cannot read GitLab: "+firstLine(err.Error()))
	} else if err := gitops.WritePlan(&mr, rep, cfg.GitLab.BranchPrefix); err == nil {
		add(standard.GitOpsMR, strings.Split(strings.TrimRight(mr.String(), "\n"), "\n")...)
	}

	fmt.Fprintln(w, "\nWhat the steps would do now (read live; nothing is changed):")
	book, _ := standard.Runbook()
	ids := make([]string, 0, len(lines))
	order := map[string]int{}
	for i, s := range book.Steps() {
		order[s.ID] = i
	}
	for id := range lines {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return order[ids[i]] < order[ids[j]] })
	for _, id := range ids {
		fmt.Fprintf(w, "  %s\n", id)
		for _, l := range lines[id] {
			fmt.Fprintf(w, "    %s\n", l)
		}
	}
	return nil
}
