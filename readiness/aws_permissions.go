package readiness

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/drbot/drbot/config"
)

// IAMSimulateAPI is the IAM call the permissions check makes.
type IAMSimulateAPI interface {
	SimulatePrincipalPolicy(ctx context.Context, in *iam.SimulatePrincipalPolicyInput, optFns ...func(*iam.Options)) (*iam.SimulatePrincipalPolicyOutput, error)
}

// CallerAPI names the caller when a target has no drbot_role_arn.
type CallerAPI interface {
	GetCallerIdentity(ctx context.Context, in *sts.GetCallerIdentityInput, optFns ...func(*sts.Options)) (*sts.GetCallerIdentityOutput, error)
}

// AWSPermissionsCheck asks IAM (SimulatePrincipalPolicy) whether drbot's
// role — the target's drbot_role_arn, or the role of the caller's
// session when that is empty — may call every action a recovery makes.
// Resources are "*": a policy scoped to ARNs the simulation does not name
// shows as denied, so a denial here is worth a look, not always a bug.
type AWSPermissionsCheck struct {
	Config *config.Config
	AWS    AWSConfigFunc
	// Actions lists the IAM actions to simulate ("eks:CreateCluster", ...);
	// nil means DefaultAWSActions per target.
	Actions []string
}

// ID is the check's id.
func (c *AWSPermissionsCheck) ID() string { return CheckAWSPermissions }

const permissionsTitle = "drbot's IAM role may call every AWS action a recovery makes"

// DefaultAWSActions are the AWS actions drbot's code calls during a
// recovery of t (recovery/eks, recovery/iam, recovery/cutover and the
// state backup), from the SDK operations used there. A Terraform module's
// own calls are not known, so provider terraform adds none for the cluster.
func DefaultAWSActions(cfg *config.Config, t *config.Target) []string {
	acts := []string{
		"sts:GetCallerIdentity",
		// cluster.access, add-ons' Pod Identity and IAM roles
		"eks:DescribeCluster", "eks:DescribeAccessEntry", "eks:CreateAccessEntry",
		"eks:ListAssociatedAccessPolicies", "eks:AssociateAccessPolicy",
		"eks:DescribeAddon", "eks:CreateAddon",
		"eks:ListPodIdentityAssociations", "eks:DescribePodIdentityAssociation", "eks:CreatePodIdentityAssociation",
		"iam:GetRole", "iam:CreateRole", "iam:UpdateAssumeRolePolicy", "iam:GetPolicy", "iam:CreatePolicy",
		"iam:ListAttachedRolePolicies", "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:PassRole",
		// endpoints.discover
		"elasticloadbalancing:DescribeLoadBalancers", "elasticloadbalancing:DescribeTags", "elasticloadbalancing:DescribeListeners",
	}
	switch t.Cluster.Provider {
	case config.ProviderEKS:
		acts = append(acts, "eks:CreateCluster", "eks:UpdateClusterConfig", "eks:DescribeUpdate",
			"eks:CreateNodegroup", "eks:DescribeNodegroup", "eks:UpdateNodegroupConfig")
	case config.ProviderExisting:
		acts = append(acts, "eks:DescribeNodegroup", "eks:UpdateNodegroupConfig", "eks:DescribeUpdate")
	}
	cut := cfg.CutoverFor(t)
	if len(cut.Route53) > 0 {
		acts = append(acts, "route53:ListResourceRecordSets", "route53:ChangeResourceRecordSets", "route53:GetChange")
	}
	if len(cut.CloudFront) > 0 {
		acts = append(acts, "cloudfront:GetDistributionConfig", "cloudfront:UpdateDistribution", "cloudfront:GetDistribution")
	}
	if len(cut.APIGateway) > 0 {
		// API Gateway's management actions are HTTP verbs.
		acts = append(acts, "apigateway:GET", "apigateway:PATCH", "apigateway:POST")
	}
	if cfg.State.Backup != nil {
		acts = append(acts, "s3:PutObject", "s3:GetObject", "s3:DeleteObject")
	}
	return dedupe(acts)
}

func dedupe(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range list {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// Run simulates per target (each may name its own role).
func (c *AWSPermissionsCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	var out []Result
	for _, t := range targets {
		cfg, err := c.AWS(ctx, t.DR.Region)
		if err != nil {
			out = append(out, ErrorResult(CheckAWSPermissions, t.Name, permissionsTitle, err, "check drbot's AWS configuration"))
			continue
		}
		out = append(out, c.runTarget(ctx, t, iam.NewFromConfig(cfg), sts.NewFromConfig(cfg)))
	}
	return out
}

func (c *AWSPermissionsCheck) runTarget(ctx context.Context, t *config.Target, api IAMSimulateAPI, caller CallerAPI) Result {
	actions := c.Actions
	if actions == nil {
		actions = DefaultAWSActions(c.Config, t)
	}
	if len(actions) == 0 {
		return Result{Check: CheckAWSPermissions, Target: t.Name, Title: permissionsTitle, Status: Warn,
			Evidence: []string{"no AWS actions were given to check"}, Fix: "pass the declared action list to the check"}
	}
	principal, from := t.DrbotRoleARN, "drbot_role_arn"
	if principal == "" {
		id, err := caller.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return ErrorResult(CheckAWSPermissions, t.Name, permissionsTitle, fmt.Errorf("finding drbot's identity: %s", shortErr(err)), "set drbot_role_arn on the target")
		}
		principal, from = roleOfSession(aws.ToString(id.Arn)), "the caller's session"
	}
	fix := fmt.Sprintf("grant %s the denied actions (the policy drbot genperms writes has them), or scope them so the recovery's resources match", principal)
	var denied []string
	in := &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(principal), ActionNames: actions}
	pg := iam.NewSimulatePrincipalPolicyPaginator(api, in)
	allowed := 0
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return ErrorResult(CheckAWSPermissions, t.Name, permissionsTitle,
				fmt.Errorf("simulating %d action(s) for %s (%s): %s", len(actions), principal, from, shortErr(err)),
				"give drbot iam:SimulatePrincipalPolicy on its own role, and check drbot_role_arn")
		}
		for _, r := range page.EvaluationResults {
			if r.EvalDecision == iamtypes.PolicyEvaluationDecisionTypeAllowed {
				allowed++
				continue
			}
			denied = append(denied, fmt.Sprintf("%s (%s)", aws.ToString(r.EvalActionName), r.EvalDecision))
		}
	}
	var f findings
	if len(denied) > 0 {
		sort.Strings(denied)
		f.fail("%s (%s) is denied %d action(s): %s", principal, from, len(denied), strings.Join(denied, ", "))
	}
	f.pass("%d of %d action(s) allowed for %s (%s)", allowed, len(actions), principal, from)
	return f.result(CheckAWSPermissions, t.Name, permissionsTitle, fix)
}

// roleOfSession turns arn:aws:sts::ACCT:assumed-role/NAME/SESSION into
// arn:aws:iam::ACCT:role/NAME (a role path, if any, is not in the session
// ARN); other ARNs are returned as they are.
func roleOfSession(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "sts" || !strings.HasPrefix(parts[5], "assumed-role/") {
		return arn
	}
	rest := strings.TrimPrefix(parts[5], "assumed-role/")
	name, _, _ := strings.Cut(rest, "/")
	return "arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + name
}
