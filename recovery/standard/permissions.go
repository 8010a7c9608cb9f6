package standard

import (
	"strings"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/permissions"
)

// What each step touches, declared next to the table it belongs to. The
// IAM policy, the RBAC, the Vault policy and docs/runbook.md are generated
// from it (hack/genperms), the readiness checks ask the far ends about it,
// and a test runs a whole recovery against the stand-ins and fails on any
// call a step makes that its declaration does not list. When a step starts
// calling something new, add it here.

// ARN patterns, scoped to the DR cluster's name or to the names drbot
// gives what it makes.
const (
	arnEKS           = "arn:aws:eks:${DR_REGION}:${ACCOUNT_ID}:"
	eksCluster       = arnEKS + "cluster/${DR_CLUSTER}"
	eksNodegroups    = arnEKS + "nodegroup/${DR_CLUSTER}/*"
	eksAddons        = arnEKS + "addon/${DR_CLUSTER}/*"
	eksAccessEntries = arnEKS + "access-entry/${DR_CLUSTER}/*"
	eksPodIdentities = arnEKS + "podidentityassociation/${DR_CLUSTER}/*"

	arnIAM              = "arn:aws:iam::${ACCOUNT_ID}:"
	roleLBC             = arnIAM + "role/AWSLoadBalancerControllerRole-*"
	roleKarpenter       = arnIAM + "role/KarpenterControllerRole-*"
	roleKarpenterNode   = arnIAM + "role/KarpenterNodeRole-*"
	policyLBC           = arnIAM + "policy/AWSLoadBalancerControllerIAMPolicy-*"
	policyKarpenter     = arnIAM + "policy/KarpenterControllerPolicy-*"
	instanceProfiles    = arnIAM + "instance-profile/*" // Karpenter names them <cluster>_<hash>; teardown checks their tags first
	serviceLinkedRoles  = arnIAM + "role/aws-service-role/*"
	roleEKSCluster      = arnIAM + "role/${EKS_CLUSTER_ROLE_NAME}"
	roleEKSNode         = arnIAM + "role/${EKS_NODE_ROLE_NAME}"
	roleDrbot           = arnIAM + "role/${DRBOT_ROLE_NAME}"
	hostedZones         = "arn:aws:route53:::hostedzone/*" // narrow to the zones in cutover: if you like
	route53Changes      = "arn:aws:route53:::change/*"
	distributions       = "arn:aws:cloudfront::${ACCOUNT_ID}:distribution/*"
	restAPIs            = "arn:aws:apigateway:${API_REGION}::/restapis/*"
	httpAPIs            = "arn:aws:apigateway:${API_REGION}::/apis/*"
	ecrRepositories     = "arn:aws:ecr:${DR_REGION}:${ACCOUNT_ID}:repository/*"
	stateBucket         = "arn:aws:s3:::${STATE_BUCKET}"
	stateObjects        = "arn:aws:s3:::${STATE_BUCKET}/*"
	clusterAdminPolicy  = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
	argoNS              = "${ARGOCD_NAMESPACE}"
	anyNS               = "*"
	clusterScoped       = ""
	reviewerNS          = "kube-system"
	karpenterGroup      = "karpenter.sh"
	karpenterAWSGroup   = "karpenter.k8s.aws"
	argoGroup           = "argoproj.io"
	vaultTargetMount    = "${VAULT_TARGET_MOUNT}"
	vaultSourceMount    = "${VAULT_SOURCE_MOUNT}"
	gitlabProject       = "/projects/:id"
	gitlabBranch        = gitlabProject + "/repository/branches/:branch"
	gitlabMR            = gitlabProject + "/merge_requests/:iid"
	gitlabMRs           = gitlabProject + "/merge_requests"
	apiGatewayReadWhy   = "read integrations, stages and deployments"
	apiGatewayWriteWhy  = "point integrations at the DR load balancers and deploy the stages"
	cutoverReadWhy      = "read the records, origins and integrations the cutover moves"
	elbDescribeWhy      = "find the DR load balancers by their AWS Load Balancer Controller tags"
	readEKSWhy          = "read the DR cluster"
	eksAccessEntriesWhy = "give drbot's and Argo CD's roles cluster-admin access entries"
)

var (
	eksClusterFamily = []string{eksCluster, eksNodegroups, eksAddons, eksAccessEntries, eksPodIdentities}
	addonRoles       = []string{roleLBC, roleKarpenter, roleKarpenterNode}
	addonPolicies    = []string{policyLBC, policyKarpenter}
)

func aws(why string, resources []string, actions ...string) permissions.AWS {
	return permissions.AWS{Actions: actions, Resources: resources, Why: why}
}

func kube(c permissions.Cluster, ns, group string, resources []string, verbs ...string) permissions.KubeRule {
	return permissions.KubeRule{Cluster: c, Namespace: ns, APIGroup: group, Resources: resources, Verbs: verbs}
}

func vault(path string, caps ...string) permissions.VaultPath {
	return permissions.VaultPath{Path: path, Capabilities: caps}
}

func gl(method, path string, role permissions.Role) permissions.GitLabCall {
	scope := "api"
	if method == "GET" {
		scope = "read_api"
	}
	return permissions.GitLabCall{Method: method, Path: path, Scope: scope, Role: role}
}

// gitlabReads are the reads of the primary's templates (templates.generate,
// and every step that regenerates them after a restart).
var gitlabReads = []permissions.GitLabCall{
	gl("GET", gitlabBranch, permissions.Reporter),
	gl("GET", gitlabProject+"/repository/tree", permissions.Reporter),
	gl("GET", gitlabProject+"/repository/files/:file/raw", permissions.Reporter),
}

// gitlabMRReads find and read drbot's merge request.
var gitlabMRReads = []permissions.GitLabCall{
	gl("GET", gitlabMRs, permissions.Reporter),
	gl("GET", gitlabMR, permissions.Reporter),
	gl("GET", gitlabMR+"/approvals", permissions.Reporter),
	gl("GET", gitlabMR+"/diffs", permissions.Reporter),
}

// cutoverReads are what endpoints.plan, apply, verify and rollback read.
var cutoverReads = []permissions.AWS{
	aws(elbDescribeWhy, nil, "elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeListeners"),
	aws(cutoverReadWhy, []string{hostedZones}, "route53:ListResourceRecordSets"),
	aws(cutoverReadWhy, []string{distributions}, "cloudfront:GetDistributionConfig", "cloudfront:GetDistribution"),
	aws(apiGatewayReadWhy, []string{restAPIs, httpAPIs}, "apigateway:GET"),
}

// cutoverWrites are what endpoints.apply and a rollback change.
var cutoverWrites = []permissions.AWS{
	aws("upsert the records to the DR load balancers (and back on rollback)", []string{hostedZones}, "route53:ChangeResourceRecordSets"),
	aws("wait for record changes to be INSYNC", []string{route53Changes}, "route53:GetChange"),
	aws("point origins at the DR load balancers", []string{distributions}, "cloudfront:UpdateDistribution"),
	aws(apiGatewayWriteWhy, []string{restAPIs, httpAPIs}, "apigateway:PATCH", "apigateway:POST"),
}

// Permissions is the declaration of every step of Steps() and of drbot's
// other parts: "serve" (Slack), "state.backup" (S3 copies of the state),
// "rollback" (/dr rollback of a cutover), "plan" (/dr plan's live reads)
// and "check" (the readiness checks' reads).
func Permissions() permissions.Set {
	var steps []permissions.Step
	for _, s := range Steps() {
		d := declarations[s.ID]
		d.ID, d.Title, d.Phase = s.ID, s.Title, string(s.Phase)
		d.Drill, d.OnAbort = len(s.Modes) > 0, s.OnAbort
		d.DependsOn, d.Gate = s.DependsOn, string(s.Gate)
		steps = append(steps, d)
	}
	return permissions.Set{Steps: steps, Other: other}
}

var declarations = map[string]permissions.Step{
	ClusterCreate: {
		Need: permissions.Need{
			AWS: []permissions.AWS{
				aws("create (provider eks) or scale up (provider existing) the DR cluster, its node group and add-ons", eksClusterFamily,
					"eks:DescribeCluster", "eks:CreateCluster", "eks:DescribeNodegroup", "eks:CreateNodegroup", "eks:UpdateNodegroupConfig",
					"eks:DescribeAddon", "eks:CreateAddon", "eks:DescribeUpdate", "eks:TagResource"),
				{Actions: []string{"iam:PassRole"}, Resources: []string{roleEKSCluster, roleEKSNode},
					Conditions: []permissions.Condition{{Operator: "StringEquals", Key: "iam:PassedToService", Values: []string{"eks.amazonaws.com"}}},
					Why:        "hand the configured cluster and node roles to EKS"},
				{Actions: []string{"iam:CreateServiceLinkedRole"}, Resources: []string{serviceLinkedRoles},
					Conditions: []permissions.Condition{{Operator: "StringEquals", Key: "iam:AWSServiceName", Values: []string{"eks.amazonaws.com", "eks-nodegroup.amazonaws.com"}}},
					Why:        "EKS's service-linked roles, the first time an account creates a cluster"},
			},
			Outside: []string{"provider terraform: the user's module runs with drbot's credentials and needs whatever it creates; grant those separately (not in drbot-policy.json)"},
		},
		Doc: permissions.Doc{
			Does: "Makes the DR cluster exist and have nodes. Provider `eks`: CreateCluster with the configured version, role, subnets and security groups, " +
				"a managed node group and the EKS add-ons, waiting for each to become ACTIVE. Provider `existing`: scales the pilot-light node group up to `desired`. " +
				"Provider `terraform`: `terraform init` and `apply` of the user's module in its workspace, with the configured vars.",
			Idempotent: "Observes first: an existing cluster, node group or add-on is reused (ACTIVE) or waited for (CREATING); the EKS client request token is derived from the run id, " +
				"so a resumed step never creates a second cluster. Terraform's apply converges by nature.",
			Rollback: "`aws eks delete-nodegroup` then `aws eks delete-cluster --name <dr cluster>` (provider eks), `aws eks update-nodegroup-config --scaling-config desiredSize=<before>` (existing), " +
				"`terraform destroy` in the module (terraform). Only after traffic is back on the primary.",
		},
	},
	ClusterAccess: {
		Need: permissions.Need{
			AWS: []permissions.AWS{
				aws(eksAccessEntriesWhy, []string{eksCluster, eksAccessEntries},
					"eks:DescribeCluster", "eks:UpdateClusterConfig", "eks:DescribeUpdate", "eks:DescribeAccessEntry", "eks:CreateAccessEntry", "eks:ListAssociatedAccessPolicies"),
				{Actions: []string{"eks:AssociateAccessPolicy"}, Resources: []string{eksAccessEntries},
					Conditions: []permissions.Condition{{Operator: "ArnEquals", Key: "eks:policyArn", Values: []string{clusterAdminPolicy}}},
					Why:        "AmazonEKSClusterAdminPolicy, and no other access policy"},
				aws("sign the presigned GetCallerIdentity that is drbot's EKS bearer token", nil, "sts:GetCallerIdentity"),
			},
			Kube: []permissions.KubeRule{kube(permissions.DR, clusterScoped, "", []string{"namespaces"}, "list")},
		},
		Doc: permissions.Doc{
			Does: "Reads the endpoint and CA of the DR cluster (DescribeCluster), switches a CONFIG_MAP-only cluster to API_AND_CONFIG_MAP, gives drbot's role and Argo CD's role " +
				"STANDARD access entries with the cluster-scoped AmazonEKSClusterAdminPolicy, and waits until the API server accepts drbot's token (a presigned STS GetCallerIdentity).",
			Idempotent: "Existing access entries and policy associations are left alone; the authentication-mode update id is journaled and polled again on resume.",
			Rollback:   "`aws eks delete-access-entry --cluster-name <dr cluster> --principal-arn <role>` for each role (the cluster is torn down anyway in a drill).",
		},
	},
	IAMRoles: {
		Need: permissions.Need{
			AWS: []permissions.AWS{
				aws("create or repair the roles of the Load Balancer Controller and Karpenter", addonRoles,
					"iam:GetRole", "iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:TagRole", "iam:ListAttachedRolePolicies"),
				aws("create their policies from the documents shipped with drbot", addonPolicies, "iam:GetPolicy", "iam:CreatePolicy", "iam:TagPolicy"),
				{Actions: []string{"iam:AttachRolePolicy", "iam:DetachRolePolicy"}, Resources: addonRoles,
					Conditions: []permissions.Condition{{Operator: "ArnLike", Key: "iam:PolicyARN", Values: append(slicesClone(addonPolicies),
						"arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy", "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
						"arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly", "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")}},
					Why: "attach only drbot's policies and the AWS managed node policies"},
				{Actions: []string{"iam:PassRole"}, Resources: addonRoles,
					Conditions: []permissions.Condition{{Operator: "StringEquals", Key: "iam:PassedToService", Values: []string{"pods.eks.amazonaws.com"}}},
					Why:        "bind the controller roles to service accounts (Pod Identity)"},
				aws("Pod Identity agent, associations and the Karpenter node role's EC2_LINUX access entry", eksClusterFamily,
					"eks:DescribeCluster", "eks:DescribeAddon", "eks:CreateAddon", "eks:ListPodIdentityAssociations", "eks:DescribePodIdentityAssociation",
					"eks:CreatePodIdentityAssociation", "eks:DescribeAccessEntry", "eks:CreateAccessEntry", "eks:TagResource"),
			},
		},
		Doc: permissions.Doc{
			Does: "Creates the IAM roles and policies of the AWS Load Balancer Controller and Karpenter (controller and node role), installs the eks-pod-identity-agent add-on, " +
				"associates the controller roles with their service accounts (EKS Pod Identity) and gives the Karpenter node role an EC2_LINUX access entry.",
			Idempotent: "Every role, policy, attachment and association is looked up first and reused; a role whose trust policy drifted is repaired; policy names carry a version, so a new " +
				"version is attached and the stale one detached.",
			Rollback: "`aws eks delete-pod-identity-association`, then detach the policies and delete the roles `AWSLoadBalancerControllerRole-<cluster>`, " +
				"`KarpenterControllerRole-<cluster>`, `KarpenterNodeRole-<cluster>` (drill teardown does exactly this).",
		},
	},
	AddonsLBC: {
		Need: permissions.Need{
			Kube:    helmRules(),
			Outside: []string{"the chart's own objects, created with drbot's cluster-admin access entry on the DR cluster"},
		},
		Doc: permissions.Doc{
			Does:       "Installs (or upgrades) the AWS Load Balancer Controller chart with Helm into the DR cluster, with the cluster name, region, VPC and the service account iam.roles bound.",
			Idempotent: "A deployed release with the same chart version and values is left alone; a release a crash left pending is completed instead of installed again.",
			Rollback:   "`helm uninstall aws-load-balancer-controller -n kube-system` against the DR cluster (delete its load balancers first: Services/Ingresses of the gateway).",
		},
	},
	ArgoCDRegister: {
		Need: permissions.Need{
			Kube: []permissions.KubeRule{
				kube(permissions.Management, argoNS, "", []string{"secrets"}, "list", "get", "create", "patch"),
			},
		},
		Doc: permissions.Doc{
			Does: "Creates the Argo CD cluster Secret for the DR cluster in the Argo CD namespace (label argocd.argoproj.io/secret-type=cluster, server, " +
				"awsAuthConfig with argocd.role_arn, the CA), so the surviving Argo CD can deploy to it.",
			Idempotent: "Server-side apply with a fixed field manager: a repeat writes the same object; another Secret for the same server is reported, not overwritten.",
			Rollback:   "`kubectl -n argocd delete secret <secret name from the step output>` on the management cluster.",
		},
	},
	AddonsKarpenter: {
		Need: permissions.Need{
			Kube: []permissions.KubeRule{
				kube(permissions.Management, argoNS, argoGroup, []string{"applications"}, "get", "list", "watch", "create", "patch"),
				kube(permissions.DR, clusterScoped, karpenterGroup, []string{"nodepools"}, "get", "create", "patch"),
				kube(permissions.DR, clusterScoped, karpenterAWSGroup, []string{"ec2nodeclasses"}, "get", "create", "patch"),
				kube(permissions.DR, "kube-system", "apps", []string{"deployments"}, "get"),
			},
		},
		Doc: permissions.Doc{
			Does: "Creates the Karpenter Argo CD Application (the chart, pointed at the DR cluster), waits until it is Synced and Healthy, then applies the configured " +
				"EC2NodeClass and NodePool in the DR cluster.",
			Idempotent: "Server-side apply of the Application and of both objects; the wait resumes on an Application already there.",
			Rollback:   "`kubectl -n argocd delete application <karpenter app>` on the management cluster; `kubectl delete nodepool,ec2nodeclass --all` on the DR cluster.",
		},
	},
	AddonsIstio: {
		Need: permissions.Need{
			Kube:    helmRules(),
			Outside: []string{"the charts' own objects, created with drbot's cluster-admin access entry on the DR cluster"},
		},
		Doc: permissions.Doc{
			Does: "Installs Istio base, then istiod, with Helm, and waits for istiod: the services' pods need its sidecar injection. " +
				"It runs beside addons.lbc, not after it.",
			Idempotent: "Each release is skipped when deployed with the same version and values.",
			Rollback:   "`helm uninstall istiod -n istio-system`, then `helm uninstall istio-base -n istio-system` against the DR cluster (after addons.istio-gateway's rollback).",
		},
	},
	AddonsIstioGW: {
		Need: permissions.Need{
			Kube:    helmRules(),
			Outside: []string{"the chart's own objects and the ingress manifests, created with drbot's cluster-admin access entry on the DR cluster"},
		},
		Doc: permissions.Doc{
			Does: "Installs the Istio ingress gateway with Helm (its namespace labelled for injection; the Load Balancer Controller makes its NLB), then applies the configured ingress manifests " +
				"(Gateway, VirtualServices, the LoadBalancer Service) that make the public endpoints. Only the cutover waits for it.",
			Idempotent: "The release is skipped when deployed with the same version and values; the manifests are server-side applied.",
			Rollback:   "`helm uninstall istio-gateway -n istio-ingress` against the DR cluster (the Load Balancer Controller removes the load balancer with the gateway's Service).",
		},
	},
	AddonsVaultInject: {
		Need: permissions.Need{
			Kube:    helmRules(),
			Outside: []string{"the chart's own objects, created with drbot's cluster-admin access entry on the DR cluster"},
		},
		Doc: permissions.Doc{
			Does:       "Installs the Vault agent injector with Helm, pointed at the external Vault (global.externalVaultAddr) and at the DR cluster's auth mount.",
			Idempotent: "A deployed release with the same version and values is left alone.",
			Rollback:   "`helm uninstall vault -n vault` against the DR cluster.",
		},
	},
	VaultAuth: {
		Need: permissions.Need{
			Kube: []permissions.KubeRule{
				kube(permissions.DR, reviewerNS, "", []string{"serviceaccounts"}, "get", "create"),
				kube(permissions.DR, reviewerNS, "", []string{"secrets"}, "get", "create"),
				kube(permissions.DR, clusterScoped, "rbac.authorization.k8s.io", []string{"clusterrolebindings"}, "get", "create", "update"),
				kube(permissions.DR, clusterScoped, "authentication.k8s.io", []string{"tokenreviews"}, "create"),
			},
			Vault: []permissions.VaultPath{
				vault("sys/auth", "read"),
				vault("sys/auth/"+vaultTargetMount, "create", "update", "sudo"),
				vault("auth/"+vaultTargetMount+"/config", "create", "read", "update"),
				vault("auth/"+vaultTargetMount+"/role/*", "create", "read", "update"),
				vault("auth/"+vaultSourceMount+"/role/*", "read", "list"),
			},
		},
		Doc: permissions.Doc{
			Does: "Creates a token-reviewer service account in the DR cluster (bound to system:auth-delegator), enables a Kubernetes auth mount for the DR cluster in Vault " +
				"(vault.target_mount), configures it with the DR API server's host, CA and the reviewer's token, and copies every role of the primary's mount (vault.source_mount).",
			Idempotent: "The mount, its config and each role are read first and written only when they differ; the service account and binding are created once.",
			Rollback:   "`vault auth disable <target mount>` (takes its config and roles with it); `kubectl -n kube-system delete sa drbot-token-reviewer` on the DR cluster.",
		},
	},
	Namespaces: {
		Need: permissions.Need{
			Kube: []permissions.KubeRule{
				kube(permissions.DR, clusterScoped, "", []string{"namespaces"}, "get", "create", "patch"),
				kube(permissions.DR, anyNS, "", []string{"secrets"}, "get", "create", "update"),
			},
			Vault: []permissions.VaultPath{vault("${NEWRELIC_KV_MOUNT}/data/${NEWRELIC_KV_PATH}", "read")},
		},
		Doc: permissions.Doc{
			Does:       "Creates every namespace the services need (vault.namespaces and those of the templates) and the New Relic licence Secret in each, read from Vault KV v2.",
			Idempotent: "Existing namespaces get only the missing labels; a Secret is updated only when its value differs. The licence value never leaves the step.",
			Rollback:   "`kubectl delete namespace <ns>` on the DR cluster (after the services are gone).",
		},
	},
	TemplatesGenerate: {
		Need: permissions.Need{GitLab: gitlabReads},
		Doc: permissions.Doc{
			Does: "Reads the primary's Argo CD Application templates from GitLab and derives the DR set: destination = the DR cluster, images, Git config URLs and Helm chart " +
				"details kept, sync waves by tier. Malformed templates are listed, not guessed.",
			Idempotent: "Pure: reads only, and the same templates give byte-identical output.",
			Rollback:   "Nothing to undo.",
		},
	},
	GitOpsMR: {
		Need: permissions.Need{GitLab: concat(gitlabReads, gitlabMRReads, []permissions.GitLabCall{
			gl("POST", gitlabProject+"/repository/commits", permissions.Developer),
			gl("POST", gitlabMRs, permissions.Developer),
			gl("PUT", gitlabMR, permissions.Developer),
		})},
		Doc: permissions.Doc{
			Does:       "Creates the branch and one commit with the DR templates, and opens a merge request (its description lists every Application and the diff summary).",
			Idempotent: "An open MR for the branch is reused; a branch already holding the same content gets no new commit.",
			Rollback:   "Close the merge request and delete the branch in GitLab.",
		},
	},
	GitOpsMerge: {
		Need: permissions.Need{GitLab: concat(gitlabReads, gitlabMRReads, []permissions.GitLabCall{
			gl("PUT", gitlabMR+"/merge", permissions.Developer),
		})},
		Doc: permissions.Doc{
			Does:       "After the approval, merges the merge request at the SHA that was approved. A person merging it in GitLab passes the gate too (recorded on their behalf).",
			Idempotent: "An MR already merged counts as done; if the branch moved after the approval the gate asks again instead of merging something else.",
			Gate:       "The merge request link, its diff summary (Applications added/changed), GitLab's approval state and who may approve (approvals.merge).",
			Rollback:   "Revert the merge commit in GitLab (Argo CD then removes the DR Applications, or delete them with `kubectl -n argocd delete application -l <dr label>`).",
		},
	},
	DeployWatch: {
		Need: permissions.Need{
			Kube:   []permissions.KubeRule{kube(permissions.Management, argoNS, argoGroup, []string{"applications"}, "get", "list", "watch")},
			GitLab: gitlabReads,
		},
		Doc: permissions.Doc{
			Does:       "Watches every DR Application in Argo CD until Synced and Healthy, wave by wave, with a live count in the thread; names the ones that are stuck.",
			Idempotent: "Read-only; a resumed watch starts from the Applications' current state.",
			Rollback:   "Nothing to undo.",
		},
	},
	EndpointsDiscover: {
		Need: permissions.Need{AWS: cutoverReads[:1]},
		Doc: permissions.Doc{
			Does:       "Finds the DR load balancers by the tags the AWS Load Balancer Controller puts on them (elbv2.k8s.aws/cluster, service.k8s.aws/stack, ingress.k8s.aws/stack).",
			Idempotent: "Read-only.",
			Rollback:   "Nothing to undo.",
		},
	},
	EndpointsPlan: {
		Need: permissions.Need{AWS: cutoverReads},
		Doc: permissions.Doc{
			Does:       "Computes the change set: every Route 53 record, CloudFront origin and API Gateway integration, old value → new value; refuses a change set that misses a critical service.",
			Idempotent: "Read-only; the plan is journaled and the apply uses that exact plan.",
			Rollback:   "Nothing to undo.",
		},
	},
	EndpointsApply: {
		Need: permissions.Need{AWS: concat(cutoverReads, cutoverWrites)},
		Doc: permissions.Doc{
			Does:       "Applies the approved change set: Route 53 UPSERTs, CloudFront origin updates (with the ETag read just before) and API Gateway integration updates plus a deployment.",
			Idempotent: "Each change is compared with the live value first and skipped when already applied; the old values are journaled before any write, for rollback.",
			Gate:       "The change set (every record, origin and integration, old → new), critical services covered, and the two-person rule: the initiator cannot approve.",
			Rollback:   "`/dr rollback` (or `drbot run rollback`) writes the journaled old values back. By hand: the old values are in the step's outputs and the post-mortem; UPSERT them with `aws route53 change-resource-record-sets`, restore the origin in CloudFront, and `aws apigateway update-integration` + `create-deployment`.",
		},
	},
	EndpointsVerify: {
		Need: permissions.Need{AWS: concat(cutoverReads, cutoverWrites[1:2])},
		Doc: permissions.Doc{
			Does:       "Waits for the Route 53 changes to be INSYNC and the distributions Deployed, re-reads every changed value and runs the configured HTTP checks through the new endpoints.",
			Idempotent: "Read-only (plus HTTP GETs).",
			Rollback:   "Nothing to undo; if a check fails, roll the cutover back (see endpoints.apply).",
		},
	},
	Postmortem: {
		Doc: permissions.Doc{
			Does: "Writes the post-mortem from the run's journal: timeline, approvals, failures and retries, per-phase durations against the MTTR budget; posted in a thread and as a Markdown file. " +
				"Runs after an abort too (once the cancelled steps have returned, whatever became of its dependencies): the document then says who aborted, when, why and at which steps.",
			Idempotent: "Derived from the journal only; a repeat posts the same document once (the outbox deduplicates).",
			Rollback:   "Nothing to undo.",
		},
	},
	Teardown: {
		Need: permissions.Need{
			// The cutover part is a /dr rollback of the drill's cutover: the same calls.
			AWS: concat(cutoverReads, cutoverWrites, []permissions.AWS{
				aws("delete the drill's cluster, node groups, add-ons, associations and access entries", eksClusterFamily,
					"eks:DescribeCluster", "eks:DeleteCluster", "eks:ListNodegroups", "eks:DescribeNodegroup", "eks:DeleteNodegroup", "eks:UpdateNodegroupConfig",
					"eks:DescribeUpdate", "eks:ListAddons", "eks:DeleteAddon", "eks:ListPodIdentityAssociations", "eks:DescribePodIdentityAssociation",
					"eks:DeletePodIdentityAssociation", "eks:DeleteAccessEntry"),
				aws("delete the roles iam.roles made", addonRoles,
					"iam:GetRole", "iam:DeleteRole", "iam:ListAttachedRolePolicies", "iam:DetachRolePolicy", "iam:ListRolePolicies", "iam:DeleteRolePolicy",
					"iam:ListInstanceProfilesForRole", "iam:RemoveRoleFromInstanceProfile"),
				aws("delete the instance profiles Karpenter made for the drill's nodes (checked by tag first)", []string{instanceProfiles},
					"iam:ListInstanceProfileTags", "iam:RemoveRoleFromInstanceProfile", "iam:DeleteInstanceProfile"),
				aws("delete the per-cluster Karpenter policy", addonPolicies, "iam:GetPolicy", "iam:DeletePolicy"),
			}),
			Kube: []permissions.KubeRule{
				kube(permissions.Management, argoNS, argoGroup, []string{"applications"}, "list", "delete"),
				kube(permissions.Management, argoNS, "", []string{"secrets"}, "get", "delete"),
				kube(permissions.DR, anyNS, "", []string{"services"}, "list", "delete"),
				kube(permissions.DR, anyNS, "networking.k8s.io", []string{"ingresses"}, "list", "delete"),
				kube(permissions.DR, clusterScoped, karpenterGroup, []string{"nodeclaims", "nodepools"}, "list", "delete"),
				kube(permissions.DR, clusterScoped, karpenterAWSGroup, []string{"ec2nodeclasses"}, "list", "delete"),
			},
			Vault: []permissions.VaultPath{
				vault("sys/auth", "read"),
				vault("sys/auth/"+vaultTargetMount, "delete", "sudo"),
			},
			GitLab: concat(gitlabReads, gitlabMRReads, []permissions.GitLabCall{
				gl("PUT", gitlabMR, permissions.Developer),
				gl("DELETE", gitlabBranch, permissions.Developer),
				gl("POST", gitlabProject+"/repository/commits", permissions.Developer),
			}),
			Outside: []string{"provider terraform: `terraform destroy` of the user's module"},
		},
		Doc: permissions.Doc{
			Does: "Drills only: first puts the drill's cutover back (the journaled old values of every Route 53 record, CloudFront origin and API Gateway integration, verified, as `/dr rollback` does), " +
				"then drains the DR cluster's load balancers (Services, Ingresses) and Karpenter nodes, deletes the drill's Argo CD Applications and cluster Secret, " +
				"the Vault auth mount, the DR templates from Git (a commit), the cluster (or scales the pilot light back, or terraform destroy) and the IAM roles. " +
				"What it cannot remove is listed as a leftover with the command to remove it; if the cutover cannot be put back, nothing else is removed, so the drill's endpoints keep working load balancers. " +
				"Runs after an abort too, after the post-mortem, so an aborted drill leaves nothing behind (unless `drills[].teardown: false`); if it then fails, the run still ends aborted and the failure names what to remove by hand. " +
				"A drill aborted while EKS still creates its cluster has nothing to drain: the cluster and its node group are deleted as they are (EKS is asked again while it refuses).",
			Idempotent: "Everything already gone counts as removed, and a cutover row that already has its old value is skipped; only objects tagged or labelled with the drill's cluster are touched.",
			Rollback:   "Not applicable: re-run a drill to rebuild. If the cutover part failed, `/dr rollback <run> --reason \"…\"` (or the old values in endpoints.plan's rollback record, by hand), then Retry.",
		},
	},
}

// helmRules: Helm installs whatever the chart holds, so drbot uses its
// cluster-admin access entry on the DR cluster (that is the access policy
// cluster.access associates). The management cluster is never touched.
func helmRules() []permissions.KubeRule {
	return []permissions.KubeRule{{Cluster: permissions.DR, Namespace: anyNS, APIGroup: "*", Resources: []string{"*"}, Verbs: []string{"*"},
		Why: "Helm releases: the chart's objects and the release records (Secrets)"}}
}

// The parts of drbot that are not steps, as Permissions().Other names them.
// A part's calls carry its name where a step's would carry the step's id.
const (
	PartServe       = "serve"
	PartStateBackup = "state.backup"
	PartRollback    = "rollback"
	PartPlan        = "plan"
	PartCheck       = "check"
)

var other = map[string]permissions.Need{
	PartServe: {
		// The bot scopes of manifests/slack-app.yaml; test/manifests keeps
		// them equal to the Slack methods the code calls.
		Slack: []string{"commands", "chat:write", "channels:manage", "channels:read", "channels:history",
			"groups:read", "groups:write", "groups:history", "pins:write", "usergroups:read", "users:read", "files:write"},
	},
	PartStateBackup: {
		AWS: []permissions.AWS{
			aws("copy the state file to S3 after every change, prune old copies, restore one", []string{stateObjects}, "s3:PutObject", "s3:GetObject", "s3:DeleteObject"),
			aws("list the copies", []string{stateBucket}, "s3:ListBucket"),
		},
	},
	PartRollback: {AWS: concat(cutoverReads, cutoverWrites)},
	PartPlan: {
		AWS: []permissions.AWS{
			aws(readEKSWhy, []string{eksCluster}, "eks:DescribeCluster"),
			aws("say which roles a run would create", addonRoles, "iam:GetRole"),
		},
		Kube:   []permissions.KubeRule{kube(permissions.Management, argoNS, "", []string{"secrets"}, "get")},
		Vault:  []permissions.VaultPath{vault("sys/auth", "read"), vault("auth/"+vaultSourceMount+"/role/*", "read", "list")},
		GitLab: concat(gitlabReads, gitlabMRReads),
	},
	PartCheck: {
		AWS: concat(cutoverReads, []permissions.AWS{
			aws("simulate drbot's own role against this declaration", []string{roleDrbot}, "iam:SimulatePrincipalPolicy"),
			aws("images exist in the DR region's ECR", []string{ecrRepositories}, "ecr:DescribeImages"),
			aws("quotas, VPC, subnets and instance types of the DR region; who drbot is", nil,
				"servicequotas:GetServiceQuota", "servicequotas:GetAWSDefaultServiceQuota", "ec2:DescribeVpcs", "ec2:DescribeSubnets",
				"ec2:DescribeInstanceTypes", "eks:ListClusters", "sts:GetCallerIdentity"),
			aws(readEKSWhy+" and its node groups (pilot light)", []string{eksCluster, eksNodegroups}, "eks:DescribeCluster", "eks:DescribeNodegroup"),
		}),
		Kube: []permissions.KubeRule{
			kube(permissions.Management, clusterScoped, "authorization.k8s.io", []string{"selfsubjectaccessreviews"}, "create"),
		},
		Vault: []permissions.VaultPath{
			vault("sys/capabilities-self", "update"),
			vault("auth/"+vaultSourceMount+"/role/*", "read", "list"),
			vault("${NEWRELIC_KV_MOUNT}/data/${NEWRELIC_KV_PATH}", "read"),
		},
		GitLab: concat(gitlabReads, []permissions.GitLabCall{
			gl("GET", "/personal_access_tokens/self", permissions.Guest),
			gl("GET", gitlabProject, permissions.Reporter),
		}),
	},
}

func concat[T any](parts ...[]T) []T {
	var out []T
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// PermissionVars are the values of the declaration's placeholders for one
// target of cfg: what the readiness checks expand ARNs and paths with. A
// value config does not give (the account, when the role ARNs lack it)
// is left out, so its placeholder stays. With t nil only the placeholders
// that are not about a target are filled (the management cluster's).
func PermissionVars(cfg *config.Config, t *config.Target) map[string]string {
	vars := map[string]string{
		"ARGOCD_NAMESPACE":   cfg.ArgoCD.Namespace,
		"DRBOT_NAMESPACE":    "drbot",
		"VAULT_SOURCE_MOUNT": strings.Trim(cfg.Vault.SourceMount, "/"),
	}
	if m, p := cfg.Vault.NewRelicKV(); m != "" {
		vars["NEWRELIC_KV_MOUNT"], vars["NEWRELIC_KV_PATH"] = m, p
	}
	if cfg.State.Backup != nil {
		vars["STATE_BUCKET"] = cfg.State.Backup.Bucket
	}
	if t == nil {
		return vars
	}
	vars["DR_REGION"], vars["DR_CLUSTER"], vars["API_REGION"] = t.DR.Region, t.DR.ClusterName, t.DR.Region
	vars["VAULT_TARGET_MOUNT"] = strings.Trim(cfg.Vault.TargetMountFor(t.Name), "/")
	if r := cfg.CutoverFor(t).APIGatewayRegion; r != "" {
		vars["API_REGION"] = r
	}
	if account, name, ok := roleARN(t.DrbotRoleARN); ok {
		vars["ACCOUNT_ID"], vars["DRBOT_ROLE_NAME"] = account, name
	}
	if e := t.Cluster.EKS; e != nil {
		if _, name, ok := roleARN(e.RoleARN); ok {
			vars["EKS_CLUSTER_ROLE_NAME"] = name
		}
		if _, name, ok := roleARN(e.NodeGroup.NodeRoleARN); ok {
			vars["EKS_NODE_ROLE_NAME"] = name
		}
	}
	return vars
}

// roleARN splits arn:aws:iam::<account>:role/<path/>name.
func roleARN(arn string) (account, name string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "iam" || !strings.HasPrefix(parts[5], "role/") {
		return "", "", false
	}
	name = parts[5][strings.LastIndex(parts[5], "/")+1:]
	return parts[4], name, parts[4] != "" && name != ""
}
