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
	// Actions lists the IAM actions to simulate ("eks:CreateCluster", ...):
	// the declared ones (recovery/standard.Permissions().AWSActions()), the
	// same list the generated IAM policy grants.
	Actions []string
}

// ID is the check's id.
func (c *AWSPermissionsCheck) ID() string { return CheckAWSPermissions }

const permissionsTitle = "drbot's IAM role may call every AWS action a recovery makes"

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
