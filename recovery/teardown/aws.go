package teardown

import (
	"context"
	"errors"
	"fmt"

	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/drbot/drbot/recovery"
)

// EKSAPI is the part of the EKS client teardown uses.
type EKSAPI interface {
	DescribeCluster(ctx context.Context, in *awseks.DescribeClusterInput, optFns ...func(*awseks.Options)) (*awseks.DescribeClusterOutput, error)
	DeleteCluster(ctx context.Context, in *awseks.DeleteClusterInput, optFns ...func(*awseks.Options)) (*awseks.DeleteClusterOutput, error)
	ListNodegroups(ctx context.Context, in *awseks.ListNodegroupsInput, optFns ...func(*awseks.Options)) (*awseks.ListNodegroupsOutput, error)
	DescribeNodegroup(ctx context.Context, in *awseks.DescribeNodegroupInput, optFns ...func(*awseks.Options)) (*awseks.DescribeNodegroupOutput, error)
	DeleteNodegroup(ctx context.Context, in *awseks.DeleteNodegroupInput, optFns ...func(*awseks.Options)) (*awseks.DeleteNodegroupOutput, error)
	UpdateNodegroupConfig(ctx context.Context, in *awseks.UpdateNodegroupConfigInput, optFns ...func(*awseks.Options)) (*awseks.UpdateNodegroupConfigOutput, error)
	DescribeUpdate(ctx context.Context, in *awseks.DescribeUpdateInput, optFns ...func(*awseks.Options)) (*awseks.DescribeUpdateOutput, error)
	ListAddons(ctx context.Context, in *awseks.ListAddonsInput, optFns ...func(*awseks.Options)) (*awseks.ListAddonsOutput, error)
	DeleteAddon(ctx context.Context, in *awseks.DeleteAddonInput, optFns ...func(*awseks.Options)) (*awseks.DeleteAddonOutput, error)
	ListPodIdentityAssociations(ctx context.Context, in *awseks.ListPodIdentityAssociationsInput, optFns ...func(*awseks.Options)) (*awseks.ListPodIdentityAssociationsOutput, error)
	DescribePodIdentityAssociation(ctx context.Context, in *awseks.DescribePodIdentityAssociationInput, optFns ...func(*awseks.Options)) (*awseks.DescribePodIdentityAssociationOutput, error)
	DeletePodIdentityAssociation(ctx context.Context, in *awseks.DeletePodIdentityAssociationInput, optFns ...func(*awseks.Options)) (*awseks.DeletePodIdentityAssociationOutput, error)
	DeleteAccessEntry(ctx context.Context, in *awseks.DeleteAccessEntryInput, optFns ...func(*awseks.Options)) (*awseks.DeleteAccessEntryOutput, error)
}

// IAMAPI is the part of the IAM client teardown uses.
type IAMAPI interface {
	GetRole(ctx context.Context, in *awsiam.GetRoleInput, optFns ...func(*awsiam.Options)) (*awsiam.GetRoleOutput, error)
	DeleteRole(ctx context.Context, in *awsiam.DeleteRoleInput, optFns ...func(*awsiam.Options)) (*awsiam.DeleteRoleOutput, error)
	ListAttachedRolePolicies(ctx context.Context, in *awsiam.ListAttachedRolePoliciesInput, optFns ...func(*awsiam.Options)) (*awsiam.ListAttachedRolePoliciesOutput, error)
	DetachRolePolicy(ctx context.Context, in *awsiam.DetachRolePolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.DetachRolePolicyOutput, error)
	ListRolePolicies(ctx context.Context, in *awsiam.ListRolePoliciesInput, optFns ...func(*awsiam.Options)) (*awsiam.ListRolePoliciesOutput, error)
	DeleteRolePolicy(ctx context.Context, in *awsiam.DeleteRolePolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.DeleteRolePolicyOutput, error)
	ListInstanceProfilesForRole(ctx context.Context, in *awsiam.ListInstanceProfilesForRoleInput, optFns ...func(*awsiam.Options)) (*awsiam.ListInstanceProfilesForRoleOutput, error)
	ListInstanceProfileTags(ctx context.Context, in *awsiam.ListInstanceProfileTagsInput, optFns ...func(*awsiam.Options)) (*awsiam.ListInstanceProfileTagsOutput, error)
	RemoveRoleFromInstanceProfile(ctx context.Context, in *awsiam.RemoveRoleFromInstanceProfileInput, optFns ...func(*awsiam.Options)) (*awsiam.RemoveRoleFromInstanceProfileOutput, error)
	DeleteInstanceProfile(ctx context.Context, in *awsiam.DeleteInstanceProfileInput, optFns ...func(*awsiam.Options)) (*awsiam.DeleteInstanceProfileOutput, error)
	GetPolicy(ctx context.Context, in *awsiam.GetPolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.GetPolicyOutput, error)
	DeletePolicy(ctx context.Context, in *awsiam.DeletePolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.DeletePolicyOutput, error)
}

// eks returns the EKS client of the DR region, built once per attempt.
func (x *attempt) eks(ctx context.Context) (EKSAPI, error) {
	if x.eksClient != nil {
		return x.eksClient, nil
	}
	if x.t.opts.AWS == nil {
		return nil, recovery.Permanent(errors.New("teardown was built without AWS credentials (a wiring bug)"))
	}
	cfg, err := x.t.opts.AWS(ctx, x.region)
	if err != nil {
		return nil, fmt.Errorf("loading AWS config for %s: %w", x.region, err)
	}
	x.eksClient = x.t.opts.EKS(cfg)
	return x.eksClient, nil
}

// iamc returns the IAM client, built once per attempt.
func (x *attempt) iamc(ctx context.Context) (IAMAPI, error) {
	if x.iamClient != nil {
		return x.iamClient, nil
	}
	if x.t.opts.AWS == nil {
		return nil, recovery.Permanent(errors.New("teardown was built without AWS credentials (a wiring bug)"))
	}
	cfg, err := x.t.opts.AWS(ctx, x.region)
	if err != nil {
		return nil, fmt.Errorf("loading AWS config for %s: %w", x.region, err)
	}
	x.iamClient = x.t.opts.IAM(cfg)
	return x.iamClient, nil
}

func isNotFound(err error) bool     { return recovery.ErrorCode(err) == "ResourceNotFoundException" }
func isNoSuchEntity(err error) bool { return recovery.ErrorCode(err) == "NoSuchEntity" }
