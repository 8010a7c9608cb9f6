package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/argocd"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/helm"
	"github.com/drbot/drbot/recovery/iam"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/standard"
)

// writeLivePlan reads the current state of the far ends (read-only calls
// only) and says, per step, what a run would create or change now. A part
// that cannot be read says why instead of failing the plan.
func writeLivePlan(ctx context.Context, w io.Writer, cfg *config.Config, t *config.Target) error {
	lines := map[string][]string{}
	add := func(step string, l ...string) { lines[step] = append(lines[step], l...) }
	ctx = recovery.WithStep(ctx, standard.PartPlan) // its calls are named (and declared) as the plan's

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

	// Access to the new cluster: entries for drbot's role and Argo CD's.
	access := "would create EKS access entries (cluster admin) for " + t.DrbotRoleARN
	if cfg.ArgoCD.RoleARN != "" {
		access += " and " + cfg.ArgoCD.RoleARN
	}
	add(standard.ClusterAccess, access)

	// IAM roles and policies.
	if ac, err := aws.get(ctx, t.DR.Region); err == nil {
		names := iam.NamesFor(t.DR.ClusterName)
		client := awsiam.NewFromConfig(ac)
		for _, role := range []string{names.LBCRole, names.KarpenterRole, names.KarpenterNodeRole} {
			_, err := client.GetRole(ctx, &awsiam.GetRoleInput{RoleName: &role})
			var nse *iamtypes.NoSuchEntityException
			switch {
			case errors.As(err, &nse):
				add(standard.IAMRoles, "would create IAM role "+role)
			case err != nil:
				add(standard.IAMRoles, "cannot read IAM role "+role+": "+firstLine(err.Error()))
			default:
				add(standard.IAMRoles, "IAM role "+role+" exists: would reuse it")
			}
		}
	}

	// Argo CD registration and Karpenter, in the management cluster.
	if mgmt, err := managementConfig(cfg); err != nil {
		add(standard.ArgoCDRegister, "cannot read the management cluster: "+err.Error())
	} else if cs, err := kubernetes.NewForConfig(mgmt); err == nil {
		name := argocd.SecretName(t.DR.ClusterName)
		if _, err := cs.CoreV1().Secrets(cfg.ArgoCD.Namespace).Get(ctx, name, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			add(standard.ArgoCDRegister, fmt.Sprintf("would create the cluster Secret %s/%s", cfg.ArgoCD.Namespace, name))
		} else if err != nil {
			add(standard.ArgoCDRegister, "cannot read the cluster Secret: "+firstLine(err.Error()))
		} else {
			add(standard.ArgoCDRegister, fmt.Sprintf("cluster Secret %s/%s exists: would update it", cfg.ArgoCD.Namespace, name))
		}
		add(standard.AddonsKarpenter, fmt.Sprintf("would apply the Application %s/%s, then the NodePool and EC2NodeClass", cfg.ArgoCD.Namespace, argocd.ApplicationName(t.DR.ClusterName)))
	}

	// Vault: the DR auth mount, the roles to copy, the licence key.
	mount := cfg.Vault.TargetMountFor(t.Name)
	if vc, err := (&vaultClients{cfg: cfg, log: slog.New(slog.DiscardHandler)}).get(ctx); err != nil {
		add(standard.VaultAuth, "cannot read Vault: "+err.Error())
	} else {
		auths, err := vc.Sys().ListAuthWithContext(ctx)
		switch {
		case err != nil:
			add(standard.VaultAuth, "cannot read Vault auth mounts: "+firstLine(err.Error()))
		case auths[mount+"/"] != nil:
			add(standard.VaultAuth, "auth mount "+mount+" exists: would reconfigure it for the DR cluster")
		default:
			add(standard.VaultAuth, "would enable the kubernetes auth mount "+mount)
		}
		if roles, err := vc.Logical().ListWithContext(ctx, "auth/"+cfg.Vault.SourceMount+"/role"); err == nil && roles != nil {
			if keys, ok := roles.Data["keys"].([]any); ok {
				add(standard.VaultAuth, fmt.Sprintf("would copy %d role(s) from auth/%s", len(keys), cfg.Vault.SourceMount))
			}
		}
	}
	add(standard.Namespaces, fmt.Sprintf("would create or label %d namespace(s), each with the Secret %s: %s",
		len(cfg.Vault.Namespaces), cfg.Vault.NewRelicSecretName, strings.Join(cfg.Vault.Namespaces, ", ")))

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
	} else if c, err := newGitLabClient(cfg.GitLab.URL, tok); err != nil {
		add(standard.GitOpsMR, "cannot read GitLab: "+err.Error())
	} else if rep, err := gitops.New(cfg, gitops.FromClient(c), gitops.Options{Waves: waves(cfg), NameSuffix: cfg.GitLab.DRNameSuffix}).Plan(ctx, t.Name); err != nil {
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
