package readiness

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/permissions"
	"github.com/drbot/drbot/recovery/standard"
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
// session when that is empty — may call every action a recovery makes,
// on the resources it makes it on. Each declared statement is simulated
// against its own ARN patterns, with the target's values filled in
// (${DR_CLUSTER}, ${ACCOUNT_ID}, ...) and its conditions' keys in the
// context, so the least-privilege policy drbot generates passes; against
// Resource "*", as IAM simulates by default, every scoped statement would
// show as denied.
type AWSPermissionsCheck struct {
	Config *config.Config
	AWS    AWSConfigFunc
	// Statements are the declared ones (recovery/standard.Permissions().
	// AWSStatements()), which the generated IAM policy is made from.
	Statements []permissions.AWS
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

// simulation is one SimulatePrincipalPolicy call: a statement's actions on
// its resources, with one value for each of its condition keys.
type simulation struct {
	actions   []string
	resources []string
	context   []iamtypes.ContextEntry
}

func (c *AWSPermissionsCheck) runTarget(ctx context.Context, t *config.Target, api IAMSimulateAPI, caller CallerAPI) Result {
	if len(c.Statements) == 0 {
		return Result{Check: CheckAWSPermissions, Target: t.Name, Title: permissionsTitle, Status: Warn,
			Evidence: []string{"no AWS statements were given to check"}, Fix: "pass the declared statements to the check"}
	}
	principal, from := t.DrbotRoleARN, "drbot_role_arn"
	if principal == "" {
		id, err := caller.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return ErrorResult(CheckAWSPermissions, t.Name, permissionsTitle, fmt.Errorf("finding drbot's identity: %s", shortErr(err)), "set drbot_role_arn on the target")
		}
		principal, from = roleOfSession(aws.ToString(id.Arn)), "the caller's session"
	}
	vars := standard.PermissionVars(c.Config, t)
	if _, ok := vars["ACCOUNT_ID"]; !ok {
		if parts := strings.SplitN(principal, ":", 6); len(parts) == 6 && parts[4] != "" {
			vars["ACCOUNT_ID"] = parts[4]
		}
	}
	sims, unused := simulations(c.Statements, vars)
	fix := fmt.Sprintf("grant %s the denied actions on those resources (manifests/iam/drbot-policy.json, from make generate, has them all)", principal)
	denied := map[string][]string{} // "action (decision[ with context])" → resources
	simulated, deniedActions := map[string]bool{}, map[string]bool{}
	for _, sim := range sims {
		in := &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(principal), ActionNames: sim.actions, ResourceArns: sim.resources, ContextEntries: sim.context}
		for pg := iam.NewSimulatePrincipalPolicyPaginator(api, in); pg.HasMorePages(); {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return ErrorResult(CheckAWSPermissions, t.Name, permissionsTitle,
					fmt.Errorf("simulating %d action(s) for %s (%s): %s", len(sim.actions), principal, from, shortErr(err)),
					"give drbot iam:SimulatePrincipalPolicy on its own role, and check drbot_role_arn")
			}
			for _, r := range page.EvaluationResults {
				action := aws.ToString(r.EvalActionName)
				simulated[action] = true
				if r.EvalDecision == iamtypes.PolicyEvaluationDecisionTypeAllowed {
					continue
				}
				deniedActions[action] = true
				key := fmt.Sprintf("%s (%s)", action, r.EvalDecision)
				if len(sim.context) > 0 {
					key = fmt.Sprintf("%s (%s with %s)", action, r.EvalDecision, contextText(sim.context))
				}
				if res := aws.ToString(r.EvalResourceName); res != "" && res != "*" && !slices.Contains(denied[key], res) {
					denied[key] = append(denied[key], res)
				} else if _, ok := denied[key]; !ok {
					denied[key] = nil
				}
			}
		}
	}
	var f findings
	if len(denied) > 0 {
		var list []string
		for _, key := range slices.Sorted(maps.Keys(denied)) {
			list = append(list, key+onResources(denied[key]))
		}
		f.fail("%s (%s) is denied %d action(s): %s", principal, from, len(deniedActions), strings.Join(list, "; "))
	}
	f.pass("%d of %d action(s) allowed for %s (%s) on the recovery's resources", len(simulated)-len(deniedActions), len(simulated), principal, from)
	if len(unused) > 0 {
		f.pass("not checked, this config does not use them: %s", strings.Join(unused, ", "))
	}
	return f.result(CheckAWSPermissions, t.Name, permissionsTitle, fix)
}

// simulations turns the declared statements into simulations for one
// target. A resource whose placeholder the config leaves unfilled (no
// state.backup, no EKS-API cluster role) belongs to a feature the target
// does not use: it is left out, and named in unused.
func simulations(statements []permissions.AWS, vars map[string]string) (sims []simulation, unused []string) {
	skipped := map[string]bool{}
	for _, st := range statements {
		var resources []string
		for _, r := range st.Resources {
			e := permissions.Expand(r, vars)
			if len(permissions.Placeholders(e)) > 0 {
				skipped[r] = true
				continue
			}
			resources = append(resources, e)
		}
		if len(st.Resources) > 0 && len(resources) == 0 {
			continue
		}
		// Each value of a condition is one case the recovery meets (the
		// roles it passes to two services, the policies it attaches):
		// each is simulated.
		contexts := [][]iamtypes.ContextEntry{nil}
		for _, cond := range st.Conditions {
			var next [][]iamtypes.ContextEntry
			for _, prev := range contexts {
				for _, v := range cond.Values {
					entry := iamtypes.ContextEntry{ContextKeyName: aws.String(cond.Key), ContextKeyType: iamtypes.ContextKeyTypeEnumString,
						ContextKeyValues: []string{permissions.Expand(v, vars)}}
					next = append(next, append(slices.Clone(prev), entry))
				}
			}
			contexts = next
		}
		for _, ctx := range contexts {
			sims = merge(sims, simulation{actions: st.Actions, resources: resources, context: ctx})
		}
	}
	return sims, slices.Sorted(maps.Keys(skipped))
}

// merge adds sim to sims, into the simulation with the same resources and
// context if there is one: steps declare the same resources over and over
// (every step describes the cluster), and one call can ask for them all.
func merge(sims []simulation, sim simulation) []simulation {
	for i, s := range sims {
		if slices.Equal(s.resources, sim.resources) && contextText(s.context) == contextText(sim.context) {
			for _, a := range sim.actions {
				if !slices.Contains(s.actions, a) {
					sims[i].actions = append(sims[i].actions, a)
				}
			}
			return sims
		}
	}
	return append(sims, simulation{actions: slices.Clone(sim.actions), resources: sim.resources, context: sim.context})
}

// onResources names up to three resources an action was denied on.
func onResources(res []string) string {
	switch {
	case len(res) == 0:
		return ""
	case len(res) > 3:
		return fmt.Sprintf(" on %s and %d more", strings.Join(res[:3], ", "), len(res)-3)
	}
	return " on " + strings.Join(res, ", ")
}

func contextText(entries []iamtypes.ContextEntry) string {
	var parts []string
	for _, e := range entries {
		parts = append(parts, aws.ToString(e.ContextKeyName)+"="+strings.Join(e.ContextKeyValues, ","))
	}
	return strings.Join(parts, " ")
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
