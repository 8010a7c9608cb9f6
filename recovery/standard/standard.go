// Package standard declares drbot's EKS recovery runbook: every step of
// DESIGN §1 in one table — id, title, phase, dependencies, gate, action and
// duration estimate. Adding a step touches this table only.
package standard

import (
	"context"
	"fmt"
	"time"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Step ids. They are journal keys: never rename one that has shipped.
const (
	ClusterCreate     = "cluster.create"
	ClusterAccess     = "cluster.access"
	IAMRoles          = "iam.roles"
	AddonsLBC         = "addons.lbc"
	ArgoCDRegister    = "argocd.register"
	AddonsKarpenter   = "addons.karpenter"
	AddonsIstio       = "addons.istio"
	AddonsIstioGW     = "addons.istio-gateway"
	AddonsVaultInject = "addons.vault-injector"
	VaultAuth         = "vault.auth"
	Namespaces        = "namespaces"
	TemplatesGenerate = "templates.generate"
	GitOpsMR          = "gitops.mr"
	GitOpsMerge       = "gitops.merge"
	DeployWatch       = "deploy.watch"
	EndpointsDiscover = "endpoints.discover"
	EndpointsPlan     = "endpoints.plan"
	EndpointsApply    = "endpoints.apply"
	EndpointsVerify   = "endpoints.verify"
	Postmortem        = "postmortem"
	Teardown          = "teardown"
	issueProvision    = 5
	issueDeploy       = 6
	issueCutover      = 7
	issueClose        = 8
)

// Steps is the table. Template generation and the merge request need only
// the DR cluster's name, so they start at once, in parallel with the
// cluster's creation; the merge gate then waits for the cluster to be
// ready for applications.
func Steps() []recovery.Step {
	return []recovery.Step{
		// 1. Provision
		{ID: ClusterCreate, Title: "Create the DR EKS cluster", Phase: recovery.PhaseProvision,
			Estimate: 15 * time.Minute, Action: notBuilt(ClusterCreate, "EKS/Terraform provisioning", issueProvision)},
		{ID: ClusterAccess, Title: "Connect to the cluster (endpoint, CA, token, access entry)", Phase: recovery.PhaseProvision,
			DependsOn: []string{ClusterCreate}, Estimate: time.Minute, Action: notBuilt(ClusterAccess, "EKS access", issueProvision)},

		// 2. Bootstrap
		{ID: IAMRoles, Title: "IAM roles and Pod Identity for LBC and Karpenter", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{ClusterCreate}, Estimate: time.Minute, Action: notBuilt(IAMRoles, "IAM and Pod Identity", issueProvision)},
		{ID: AddonsLBC, Title: "Install the AWS Load Balancer Controller", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{ClusterAccess, IAMRoles}, Estimate: 2 * time.Minute, Action: notBuilt(AddonsLBC, "Helm add-ons", issueProvision)},
		{ID: ArgoCDRegister, Title: "Register the cluster in Argo CD", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{ClusterAccess}, Estimate: 30 * time.Second, Action: notBuilt(ArgoCDRegister, "Argo CD registration", issueProvision)},
		{ID: AddonsKarpenter, Title: "Karpenter, NodePool and EC2NodeClass", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{ArgoCDRegister, IAMRoles}, Estimate: 3 * time.Minute, Action: notBuilt(AddonsKarpenter, "Karpenter", issueProvision)},
		// Istio is two steps: the services need istiod (their sidecars), only
		// the cutover needs the gateway, and only the gateway's load balancer
		// needs the controller. One step after addons.lbc kept the whole
		// deployment waiting on both charts in a row.
		{ID: AddonsIstio, Title: "Istio base and istiod", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{ClusterAccess}, Estimate: 2 * time.Minute, Action: notBuilt(AddonsIstio, "Istio", issueProvision)},
		{ID: AddonsIstioGW, Title: "Istio ingress gateway and the ingress objects", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{AddonsLBC, AddonsIstio}, Estimate: 2 * time.Minute, Action: notBuilt(AddonsIstioGW, "Istio", issueProvision)},
		{ID: AddonsVaultInject, Title: "Vault agent injector", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{ClusterAccess}, Estimate: 2 * time.Minute, Action: notBuilt(AddonsVaultInject, "Vault injector", issueProvision)},
		{ID: VaultAuth, Title: "Vault Kubernetes auth mount and roles", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{ClusterAccess}, Estimate: time.Minute, Action: notBuilt(VaultAuth, "Vault auth", issueProvision)},
		{ID: Namespaces, Title: "Namespaces and the New Relic licence Secret", Phase: recovery.PhaseBootstrap,
			DependsOn: []string{ClusterAccess}, Estimate: time.Minute, Action: notBuilt(Namespaces, "namespaces and secrets", issueProvision)},

		// 3. Deploy
		{ID: TemplatesGenerate, Title: "Generate the DR Argo CD Application templates", Phase: recovery.PhaseDeploy,
			Estimate: time.Minute, Action: notBuilt(TemplatesGenerate, "template generation", issueDeploy)},
		{ID: GitOpsMR, Title: "Open the GitLab merge request", Phase: recovery.PhaseDeploy,
			DependsOn: []string{TemplatesGenerate}, Estimate: time.Minute, Action: notBuilt(GitOpsMR, "the GitLab merge request", issueDeploy)},
		{ID: GitOpsMerge, Title: "Merge the merge request", Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge,
			// The load balancer controller: its webhooks must answer before
			// the services create their Services and pods.
			DependsOn: []string{GitOpsMR, ArgoCDRegister, Namespaces, VaultAuth, AddonsVaultInject, AddonsKarpenter, AddonsIstio, AddonsLBC},
			Estimate:  5 * time.Minute, Action: notBuilt(GitOpsMerge, "the merge", issueDeploy)},
		{ID: DeployWatch, Title: "Watch every Application until Synced and Healthy", Phase: recovery.PhaseDeploy,
			DependsOn: []string{GitOpsMerge}, Estimate: 12 * time.Minute, Action: notBuilt(DeployWatch, "the deployment watch", issueDeploy)},

		// 4. Cutover
		{ID: EndpointsDiscover, Title: "Discover the new load balancers", Phase: recovery.PhaseCutover,
			DependsOn: []string{AddonsIstioGW}, Estimate: 2 * time.Minute, Action: notBuilt(EndpointsDiscover, "endpoint discovery", issueCutover)},
		{ID: EndpointsPlan, Title: "Plan the Route 53, CloudFront and API Gateway changes", Phase: recovery.PhaseCutover,
			DependsOn: []string{EndpointsDiscover}, Estimate: time.Minute, Action: notBuilt(EndpointsPlan, "the cutover plan", issueCutover)},
		{ID: EndpointsApply, Title: "Apply the cutover", Phase: recovery.PhaseCutover, Gate: recovery.GateCutover,
			DependsOn: []string{EndpointsPlan, DeployWatch}, Estimate: 3 * time.Minute, Action: notBuilt(EndpointsApply, "the cutover", issueCutover)},
		{ID: EndpointsVerify, Title: "Verify DNS, CDN and HTTP through the new endpoints", Phase: recovery.PhaseCutover,
			DependsOn: []string{EndpointsApply}, Estimate: 4 * time.Minute, Action: notBuilt(EndpointsVerify, "cutover verification", issueCutover)},

		// 5. Close. Both also run after an abort: an aborted run is when
		// people most need the post-mortem, and an aborted drill must not
		// leave its cluster, load balancers and moved DNS behind.
		{ID: Postmortem, Title: "Write the post-mortem", Phase: recovery.PhaseClose, OnAbort: true,
			DependsOn: []string{EndpointsVerify}, Estimate: 30 * time.Second, Action: notBuilt(Postmortem, "the post-mortem", issueClose)},
		{ID: Teardown, Title: "Tear the drill down", Phase: recovery.PhaseClose, Modes: recovery.Modes{state.ModeDrill}, OnAbort: true,
			DependsOn: []string{Postmortem}, Estimate: 10 * time.Minute, Action: notBuilt(Teardown, "drill teardown", issueClose)},
	}
}

// Runbook returns the validated standard runbook.
func Runbook() (*recovery.Runbook, error) { return recovery.NewRunbook(Steps()) }

// notBuilt is the action of a step whose integration has not landed yet. It
// fails permanently with words an operator can act on, so a run against
// this build parks at the step instead of pretending.
func notBuilt(step, what string, issue int) recovery.Action {
	return func(context.Context, *recovery.StepContext) (recovery.Result, error) {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf(
			"%s is not built yet: %s lands with issue #%d; do this step by hand and press Skip, or Abort", step, what, issue))
	}
}
