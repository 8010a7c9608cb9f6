package teardown

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/iam"
)

// Tags iam.roles puts on what it makes (recovery/iam).
const (
	tagCluster = "drbot/cluster"
	tagRun     = "drbot/run"
)

// iamWork is what the IAM part did, for its summary.
type iamWork struct {
	deleted, gone, kept []string
}

// removeIAM removes the roles iam.roles made for the DR cluster and the
// per-cluster Karpenter controller policy. A role counts as made for the
// drill when it carries drbot's cluster tag for this cluster; for a pilot
// light (which outlives the drill) only when this run made it. The Load
// Balancer Controller policy is shared by every cluster of the account
// (its name has no cluster in it) and is only detached.
func (x *attempt) removeIAM(ctx context.Context) (string, error) {
	names := iam.NamesFor(x.cluster)
	roles := []string{names.LBCRole, names.KarpenterRole, names.KarpenterNodeRole}
	for _, k := range []string{"lbc_role_arn", "karpenter_role_arn", "karpenter_node_role_arn"} {
		if n := nameFromARN(x.output(stepIAMRoles, k)); n != "" && !contains(roles, n) {
			roles = append(roles, n)
		}
	}
	ownPolicyPrefix := "KarpenterControllerPolicy-" + x.cluster + "-"
	var policies []string
	if arn := x.output(stepIAMRoles, "karpenter_policy_arn"); strings.HasPrefix(nameFromARN(arn), ownPolicyPrefix) {
		policies = append(policies, arn)
	}
	shared := x.output(stepIAMRoles, "lbc_policy_arn")
	if shared == "" {
		shared = names.LBCPolicy
	}

	api, err := x.iamc(ctx)
	if err != nil {
		return "", err
	}
	w := &iamWork{}
	for _, role := range roles {
		x.removeRole(ctx, api, role, ownPolicyPrefix, &policies, w)
	}
	for _, arn := range policies {
		x.removePolicy(ctx, api, arn, w)
	}

	var parts []string
	if len(w.deleted) > 0 {
		parts = append(parts, "deleted "+strings.Join(w.deleted, ", "))
	}
	if len(w.gone) > 0 {
		parts = append(parts, "already gone: "+strings.Join(w.gone, ", "))
	}
	if len(w.kept) > 0 {
		parts = append(parts, "kept "+strings.Join(w.kept, ", "))
	}
	parts = append(parts, "kept the account-shared policy "+nameFromARNOr(shared))
	summary := strings.Join(parts, "; ")
	if len(w.deleted) > 0 {
		x.sc.Progress("IAM: %s", summary)
	}
	return summary, nil
}

// removeRole deletes one role and everything that holds it; what stops it
// becomes a leftover.
func (x *attempt) removeRole(ctx context.Context, api IAMAPI, role, ownPolicyPrefix string, policies *[]string, w *iamWork) {
	what := "IAM role " + role
	got, err := api.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String(role)})
	if isNoSuchEntity(err) {
		w.gone = append(w.gone, "role "+role)
		return
	}
	if err != nil {
		x.leave(PartIAM, what, fmt.Errorf("reading it: %w", err), "delete it by hand once IAM answers (detach its policies, remove it from its instance profiles, then delete it)")
		return
	}
	tags := map[string]string{}
	for _, t := range got.Role.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	switch {
	case tags[tagCluster] != x.cluster:
		w.kept = append(w.kept, "role "+role+" (not made by drbot for "+x.cluster+")")
		return
	case !x.deletesCluster() && tags[tagRun] != x.sc.Run().ID:
		w.kept = append(w.kept, "role "+role+" (the pilot light had it before this drill)")
		return
	}
	arn := aws.ToString(got.Role.Arn)

	// Managed policies: detached; the cluster's own Karpenter policies are
	// deleted after the role.
	var attached []iamtypes.AttachedPolicy
	pages := awsiam.NewListAttachedRolePoliciesPaginator(api, &awsiam.ListAttachedRolePoliciesInput{RoleName: aws.String(role)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			x.leave(PartIAM, what, fmt.Errorf("listing its attached policies: %w", err), "detach its policies and delete it by hand")
			return
		}
		attached = append(attached, page.AttachedPolicies...)
	}
	for _, p := range attached {
		parn := aws.ToString(p.PolicyArn)
		if strings.HasPrefix(aws.ToString(p.PolicyName), ownPolicyPrefix) && !contains(*policies, parn) {
			*policies = append(*policies, parn)
		}
		_, err := api.DetachRolePolicy(ctx, &awsiam.DetachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(parn)})
		if err != nil && !isNoSuchEntity(err) {
			x.leave(PartIAM, what, fmt.Errorf("detaching %s: %w", parn, err), "detach the policy and delete the role by hand")
			return
		}
	}

	var inline []string
	ipages := awsiam.NewListRolePoliciesPaginator(api, &awsiam.ListRolePoliciesInput{RoleName: aws.String(role)})
	for ipages.HasMorePages() {
		page, err := ipages.NextPage(ctx)
		if err != nil {
			x.leave(PartIAM, what, fmt.Errorf("listing its inline policies: %w", err), "delete its inline policies and the role by hand")
			return
		}
		inline = append(inline, page.PolicyNames...)
	}
	for _, name := range inline {
		_, err := api.DeleteRolePolicy(ctx, &awsiam.DeleteRolePolicyInput{RoleName: aws.String(role), PolicyName: aws.String(name)})
		if err != nil && !isNoSuchEntity(err) {
			x.leave(PartIAM, what, fmt.Errorf("deleting inline policy %s: %w", name, err), "delete the inline policy and the role by hand")
			return
		}
	}

	profiles, ok := x.releaseInstanceProfiles(ctx, api, role)
	if !ok {
		return
	}

	if !x.deletesCluster() {
		// The pilot light outlives the drill: what points at the role there goes now.
		if !x.unlinkFromCluster(ctx, arn, what) {
			return
		}
	}

	_, err = api.DeleteRole(ctx, &awsiam.DeleteRoleInput{RoleName: aws.String(role)})
	switch {
	case err == nil:
		w.deleted = append(w.deleted, "role "+role)
	case isNoSuchEntity(err):
		w.gone = append(w.gone, "role "+role)
	case recovery.ErrorCode(err) == "DeleteConflict":
		fix := "something still uses it: run aws iam list-instance-profiles-for-role --role-name " + role +
			", remove it from each instance profile, detach its policies, then delete it"
		if len(profiles) > 0 {
			fix = "detach it from instance profile " + strings.Join(profiles, ", ") + " (or whatever else still holds it) and delete it"
		}
		x.leave(PartIAM, what, err, fix)
	default:
		x.leave(PartIAM, what, fmt.Errorf("deleting it: %w", err), "delete it by hand (aws iam delete-role --role-name "+role+")")
	}
}

// releaseInstanceProfiles takes role out of every instance profile that
// holds it, and deletes the profiles Karpenter made for this cluster
// (normally Karpenter deletes them itself with the EC2NodeClass). It
// returns the profiles it found and false when it left something behind.
func (x *attempt) releaseInstanceProfiles(ctx context.Context, api IAMAPI, role string) ([]string, bool) {
	what := "IAM role " + role
	var profiles []iamtypes.InstanceProfile
	pages := awsiam.NewListInstanceProfilesForRolePaginator(api, &awsiam.ListInstanceProfilesForRoleInput{RoleName: aws.String(role)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if isNoSuchEntity(err) {
			return nil, true
		}
		if err != nil {
			x.leave(PartIAM, what, fmt.Errorf("listing its instance profiles: %w", err), "remove it from its instance profiles and delete it by hand")
			return nil, false
		}
		profiles = append(profiles, page.InstanceProfiles...)
	}
	var names []string
	for _, p := range profiles {
		name := aws.ToString(p.InstanceProfileName)
		names = append(names, name)
		_, err := api.RemoveRoleFromInstanceProfile(ctx, &awsiam.RemoveRoleFromInstanceProfileInput{InstanceProfileName: aws.String(name), RoleName: aws.String(role)})
		if err != nil && !isNoSuchEntity(err) {
			x.leave(PartIAM, what, fmt.Errorf("removing it from instance profile %s: %w", name, err),
				"detach it from instance profile "+name+" and delete it")
			return names, false
		}
		if len(p.Roles) > 1 || !x.karpenterOwned(ctx, api, name) {
			continue // not ours to delete: only emptied of the drill's role
		}
		_, err = api.DeleteInstanceProfile(ctx, &awsiam.DeleteInstanceProfileInput{InstanceProfileName: aws.String(name)})
		if err != nil && !isNoSuchEntity(err) {
			x.leave(PartIAM, "IAM instance profile "+name, fmt.Errorf("deleting it: %w", err),
				"delete it by hand (aws iam delete-instance-profile --instance-profile-name "+name+")")
		}
	}
	return names, true
}

// karpenterOwned says whether Karpenter made the instance profile for this
// cluster (Karpenter tags its profiles kubernetes.io/cluster/<name>=owned).
func (x *attempt) karpenterOwned(ctx context.Context, api IAMAPI, profile string) bool {
	out, err := api.ListInstanceProfileTags(ctx, &awsiam.ListInstanceProfileTagsInput{InstanceProfileName: aws.String(profile)})
	if err != nil {
		return false
	}
	for _, t := range out.Tags {
		k, v := aws.ToString(t.Key), aws.ToString(t.Value)
		if (k == "kubernetes.io/cluster/"+x.cluster && v == "owned") || (k == "karpenter.sh/managed-by" && v == x.cluster) {
			return true
		}
	}
	return false
}

// unlinkFromCluster deletes the pilot light's Pod Identity associations
// and access entry that name roleArn. It reports false when it left
// something behind.
func (x *attempt) unlinkFromCluster(ctx context.Context, roleArn, what string) bool {
	api, err := x.eks(ctx)
	if err != nil {
		x.leave(PartIAM, what, err, "delete its Pod Identity associations and access entry on "+x.cluster+", then the role, by hand")
		return false
	}
	pages := awseks.NewListPodIdentityAssociationsPaginator(api, &awseks.ListPodIdentityAssociationsInput{ClusterName: aws.String(x.cluster)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if isNotFound(err) {
			return true // no cluster, nothing links to the role
		}
		if err != nil {
			x.leave(PartIAM, what, fmt.Errorf("listing Pod Identity associations of %s: %w", x.cluster, err), "delete the associations that use it, then the role, by hand")
			return false
		}
		for _, a := range page.Associations {
			id := aws.ToString(a.AssociationId)
			d, err := api.DescribePodIdentityAssociation(ctx, &awseks.DescribePodIdentityAssociationInput{ClusterName: aws.String(x.cluster), AssociationId: aws.String(id)})
			if isNotFound(err) {
				continue
			}
			if err != nil {
				x.leave(PartIAM, what, fmt.Errorf("reading Pod Identity association %s: %w", id, err), "delete the associations that use it, then the role, by hand")
				return false
			}
			if aws.ToString(d.Association.RoleArn) != roleArn {
				continue
			}
			if _, err := api.DeletePodIdentityAssociation(ctx, &awseks.DeletePodIdentityAssociationInput{ClusterName: aws.String(x.cluster), AssociationId: aws.String(id)}); err != nil && !isNotFound(err) {
				x.leave(PartIAM, what, fmt.Errorf("deleting Pod Identity association %s (%s/%s): %w", id, aws.ToString(a.Namespace), aws.ToString(a.ServiceAccount), err),
					"delete the association, then the role, by hand")
				return false
			}
		}
	}
	_, err = api.DeleteAccessEntry(ctx, &awseks.DeleteAccessEntryInput{ClusterName: aws.String(x.cluster), PrincipalArn: aws.String(roleArn)})
	if err != nil && !isNotFound(err) {
		x.leave(PartIAM, what, fmt.Errorf("deleting its access entry on %s: %w", x.cluster, err), "delete the access entry, then the role, by hand")
		return false
	}
	return true
}

// removePolicy deletes a per-cluster customer managed policy drbot made.
func (x *attempt) removePolicy(ctx context.Context, api IAMAPI, arn string, w *iamWork) {
	name := nameFromARN(arn)
	what := "IAM policy " + name
	got, err := api.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String(arn)})
	if isNoSuchEntity(err) {
		w.gone = append(w.gone, "policy "+name)
		return
	}
	if err != nil {
		x.leave(PartIAM, what, fmt.Errorf("reading it: %w", err), "delete it by hand (aws iam delete-policy --policy-arn "+arn+")")
		return
	}
	tags := map[string]string{}
	for _, t := range got.Policy.Tags {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	switch {
	case tags[tagCluster] != x.cluster:
		w.kept = append(w.kept, "policy "+name+" (not made by drbot for "+x.cluster+")")
		return
	case !x.deletesCluster() && tags[tagRun] != x.sc.Run().ID:
		w.kept = append(w.kept, "policy "+name+" (the pilot light had it before this drill)")
		return
	}
	_, err = api.DeletePolicy(ctx, &awsiam.DeletePolicyInput{PolicyArn: aws.String(arn)})
	switch {
	case err == nil:
		w.deleted = append(w.deleted, "policy "+name)
	case isNoSuchEntity(err):
		w.gone = append(w.gone, "policy "+name)
	case recovery.ErrorCode(err) == "DeleteConflict":
		x.leave(PartIAM, what, err, "something still uses it: aws iam list-entities-for-policy --policy-arn "+arn+
			" shows what; detach it there, delete its non-default versions, then delete it")
	default:
		x.leave(PartIAM, what, fmt.Errorf("deleting it: %w", err), "delete it by hand (aws iam delete-policy --policy-arn "+arn+")")
	}
}

// nameFromARN is the last path segment of an IAM ARN (a role or policy name).
func nameFromARN(arn string) string {
	if arn == "" {
		return ""
	}
	return arn[strings.LastIndex(arn, "/")+1:]
}

func nameFromARNOr(s string) string {
	if n := nameFromARN(s); n != "" {
		return n
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
