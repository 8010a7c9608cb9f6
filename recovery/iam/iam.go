// Package iam implements the iam.roles step: the IAM roles and policies
// of the AWS Load Balancer Controller and the Karpenter controller, their
// EKS Pod Identity associations, and the Karpenter node role with its
// EC2_LINUX access entry. Role names derive from the DR cluster's name, so
// a re-run (or the next drill) finds and reuses them instead of making
// duplicates; policy documents ship with drbot under policies/.
package iam

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// StepID is the step this package implements.
const StepID = "iam.roles"

const (
	tagCluster       = "drbot/cluster"
	tagTarget        = "drbot/target"
	tagRun           = "drbot/run"
	podIdentityAddon = "eks-pod-identity-agent"
	maxRoleName      = 64
)

// NodeRoleManagedPolicies are the AWS managed policies of the Karpenter
// node role (Karpenter's getting-started set).
var NodeRoleManagedPolicies = []string{
	"AmazonEKSWorkerNodePolicy",
	"AmazonEKS_CNI_Policy",
	"AmazonEC2ContainerRegistryReadOnly",
	"AmazonSSMManagedInstanceCore",
}

// IAMAPI is the part of the IAM client the step uses.
type IAMAPI interface {
	GetRole(ctx context.Context, in *awsiam.GetRoleInput, optFns ...func(*awsiam.Options)) (*awsiam.GetRoleOutput, error)
	CreateRole(ctx context.Context, in *awsiam.CreateRoleInput, optFns ...func(*awsiam.Options)) (*awsiam.CreateRoleOutput, error)
	UpdateAssumeRolePolicy(ctx context.Context, in *awsiam.UpdateAssumeRolePolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.UpdateAssumeRolePolicyOutput, error)
	GetPolicy(ctx context.Context, in *awsiam.GetPolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.GetPolicyOutput, error)
	CreatePolicy(ctx context.Context, in *awsiam.CreatePolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.CreatePolicyOutput, error)
	ListAttachedRolePolicies(ctx context.Context, in *awsiam.ListAttachedRolePoliciesInput, optFns ...func(*awsiam.Options)) (*awsiam.ListAttachedRolePoliciesOutput, error)
	AttachRolePolicy(ctx context.Context, in *awsiam.AttachRolePolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.AttachRolePolicyOutput, error)
	DetachRolePolicy(ctx context.Context, in *awsiam.DetachRolePolicyInput, optFns ...func(*awsiam.Options)) (*awsiam.DetachRolePolicyOutput, error)
}

// EKSAPI is the part of the EKS client the step uses.
type EKSAPI interface {
	DescribeCluster(ctx context.Context, in *awseks.DescribeClusterInput, optFns ...func(*awseks.Options)) (*awseks.DescribeClusterOutput, error)
	DescribeAddon(ctx context.Context, in *awseks.DescribeAddonInput, optFns ...func(*awseks.Options)) (*awseks.DescribeAddonOutput, error)
	CreateAddon(ctx context.Context, in *awseks.CreateAddonInput, optFns ...func(*awseks.Options)) (*awseks.CreateAddonOutput, error)
	ListPodIdentityAssociations(ctx context.Context, in *awseks.ListPodIdentityAssociationsInput, optFns ...func(*awseks.Options)) (*awseks.ListPodIdentityAssociationsOutput, error)
	DescribePodIdentityAssociation(ctx context.Context, in *awseks.DescribePodIdentityAssociationInput, optFns ...func(*awseks.Options)) (*awseks.DescribePodIdentityAssociationOutput, error)
	CreatePodIdentityAssociation(ctx context.Context, in *awseks.CreatePodIdentityAssociationInput, optFns ...func(*awseks.Options)) (*awseks.CreatePodIdentityAssociationOutput, error)
	DescribeAccessEntry(ctx context.Context, in *awseks.DescribeAccessEntryInput, optFns ...func(*awseks.Options)) (*awseks.DescribeAccessEntryOutput, error)
	CreateAccessEntry(ctx context.Context, in *awseks.CreateAccessEntryInput, optFns ...func(*awseks.Options)) (*awseks.CreateAccessEntryOutput, error)
}

// Options configure the step. Config and AWS are required.
type Options struct {
	Config *config.Config
	// AWS gives drbot's AWS configuration for a region.
	AWS func(ctx context.Context, region string) (aws.Config, error)
	// IAM and EKS build the clients (defaults: the SDK constructors).
	IAM func(aws.Config) IAMAPI
	EKS func(aws.Config) EKSAPI
}

// Roles implements iam.roles.
type Roles struct {
	o Options
}

// New returns the iam.roles action's owner.
func New(o Options) *Roles {
	if o.IAM == nil {
		o.IAM = func(c aws.Config) IAMAPI { return awsiam.NewFromConfig(c) }
	}
	if o.EKS == nil {
		o.EKS = func(c aws.Config) EKSAPI { return awseks.NewFromConfig(c) }
	}
	return &Roles{o: o}
}

// Names are the IAM names iam.roles uses for a DR cluster.
type Names struct {
	LBCRole, LBCPolicy             string
	KarpenterRole, KarpenterPolicy string
	KarpenterNodeRole              string
}

// NamesFor derives the role and policy names for a cluster. Role names
// keep IAM's 64-character limit: a long cluster name is cut and a short
// hash of the whole name keeps them distinct.
func NamesFor(cluster string) Names {
	return Names{
		LBCRole:           roleName("AWSLoadBalancerControllerRole-", cluster),
		LBCPolicy:         "AWSLoadBalancerControllerIAMPolicy-" + LBCPolicyVersion,
		KarpenterRole:     roleName("KarpenterControllerRole-", cluster),
		KarpenterPolicy:   "KarpenterControllerPolicy-" + cluster + "-" + KarpenterPolicyVersion,
		KarpenterNodeRole: roleName("KarpenterNodeRole-", cluster),
	}
}

func roleName(prefix, cluster string) string {
	if len(prefix)+len(cluster) <= maxRoleName {
		return prefix + cluster
	}
	h := sha256.Sum256([]byte(cluster))
	keep := maxRoleName - len(prefix) - 9
	return prefix + cluster[:keep] + "-" + hex.EncodeToString(h[:4])
}

// serviceAccount is where an add-on's controller runs: the add-on's
// namespace and the chart's serviceAccount.name, from config when set.
func serviceAccount(cfg *config.Config, addon, defaultName string) (ns, name string) {
	ns, name = "kube-system", defaultName
	a, ok := cfg.Addons[addon]
	if !ok {
		return ns, name
	}
	if a.Namespace != "" {
		ns = a.Namespace
	}
	if sa, ok := a.Values["serviceAccount"].(map[string]any); ok {
		if n, ok := sa["name"].(string); ok && n != "" {
			name = n
		}
	}
	return ns, name
}

// run is the state of one attempt of the step.
type run struct {
	sc        *recovery.StepContext
	iam       IAMAPI
	eks       EKSAPI
	cluster   string
	partition string
	account   string
	region    string
	tags      []iamtypes.Tag
	created   []string // what this attempt made, for the summary
	reused    []string
}

// Ensure is the iam.roles action. Outputs: lbc_role_arn, lbc_policy_arn,
// lbc_service_account, karpenter_role_arn, karpenter_policy_arn,
// karpenter_service_account, karpenter_node_role_arn,
// karpenter_node_role_name.
func (r *Roles) Ensure(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	if r.o.Config == nil || r.o.AWS == nil {
		return recovery.Result{}, recovery.Permanent(errors.New("iam.roles was built without a config or AWS credentials"))
	}
	t, ok := r.o.Config.Target(sc.Run().Target)
	if !ok {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("target %q is not in the config; check targets[].name", sc.Run().Target))
	}
	region, cluster := t.DR.Region, t.DR.ClusterName
	if v, ok := sc.Output("cluster.create", "region"); ok && v != "" {
		region = v
	}
	if v, ok := sc.Output("cluster.create", "cluster_name"); ok && v != "" {
		cluster = v
	}
	cfg, err := r.o.AWS(ctx, region)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("loading AWS config for %s: %w", region, err)
	}
	x := &run{sc: sc, iam: r.o.IAM(cfg), eks: r.o.EKS(cfg), cluster: cluster, region: region, tags: []iamtypes.Tag{
		{Key: aws.String(tagCluster), Value: aws.String(cluster)},
		{Key: aws.String(tagTarget), Value: aws.String(t.Name)},
		{Key: aws.String(tagRun), Value: aws.String(sc.Run().ID)},
	}}
	desc, err := x.eks.DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: aws.String(cluster)})
	if err != nil {
		if recovery.ErrorCode(err) == "ResourceNotFoundException" {
			return recovery.Result{}, recovery.Permanent(fmt.Errorf("cluster %q not found in %s; iam.roles needs cluster.create's cluster", cluster, region))
		}
		return recovery.Result{}, fmt.Errorf("describing cluster %q in %s: %w", cluster, region, err)
	}
	// arn:<partition>:eks:<region>:<account>:cluster/<name>
	parts := strings.SplitN(aws.ToString(desc.Cluster.Arn), ":", 6)
	if len(parts) < 6 {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("cluster %q has an unexpected ARN %q", cluster, aws.ToString(desc.Cluster.Arn)))
	}
	x.partition, x.account = parts[1], parts[4]

	names := NamesFor(cluster)
	lbcNS, lbcSA := serviceAccount(r.o.Config, config.AddonLoadBalancerController, "aws-load-balancer-controller")
	kNS, kSA := serviceAccount(r.o.Config, config.AddonKarpenter, "karpenter")

	if err := x.ensurePodIdentityAgent(ctx); err != nil {
		return recovery.Result{}, err
	}

	// The node role first: the Karpenter controller policy names it.
	nodeRole, err := x.ensureRole(ctx, names.KarpenterNodeRole, ec2Trust, "Nodes Karpenter launches for EKS cluster "+cluster)
	if err != nil {
		return recovery.Result{}, err
	}
	var managed []string
	for _, p := range NodeRoleManagedPolicies {
		managed = append(managed, "arn:"+x.partition+":iam::aws:policy/"+p)
	}
	if err := x.attach(ctx, names.KarpenterNodeRole, managed, ""); err != nil {
		return recovery.Result{}, err
	}

	vars := policyVars{Partition: x.partition, Region: region, AccountID: x.account, ClusterName: cluster, NodeRoleName: names.KarpenterNodeRole}
	lbcPolicy, err := x.ensurePolicy(ctx, names.LBCPolicy, lbcPolicyFile, vars, "AWS Load Balancer Controller "+LBCPolicyVersion+" (shipped with drbot)")
	if err != nil {
		return recovery.Result{}, err
	}
	lbcRole, err := x.ensureRole(ctx, names.LBCRole, podIdentityTrust, "AWS Load Balancer Controller of EKS cluster "+cluster)
	if err != nil {
		return recovery.Result{}, err
	}
	if err := x.attach(ctx, names.LBCRole, []string{lbcPolicy}, "AWSLoadBalancerControllerIAMPolicy-"); err != nil {
		return recovery.Result{}, err
	}

	kPolicy, err := x.ensurePolicy(ctx, names.KarpenterPolicy, karpenterPolicyFile, vars, "Karpenter controller "+KarpenterPolicyVersion+" for EKS cluster "+cluster+" (shipped with drbot)")
	if err != nil {
		return recovery.Result{}, err
	}
	kRole, err := x.ensureRole(ctx, names.KarpenterRole, podIdentityTrust, "Karpenter controller of EKS cluster "+cluster)
	if err != nil {
		return recovery.Result{}, err
	}
	if err := x.attach(ctx, names.KarpenterRole, []string{kPolicy}, "KarpenterControllerPolicy-"+cluster+"-"); err != nil {
		return recovery.Result{}, err
	}

	if err := x.ensureAssociation(ctx, lbcNS, lbcSA, lbcRole); err != nil {
		return recovery.Result{}, err
	}
	if err := x.ensureAssociation(ctx, kNS, kSA, kRole); err != nil {
		return recovery.Result{}, err
	}
	if err := x.ensureNodeAccessEntry(ctx, nodeRole); err != nil {
		return recovery.Result{}, err
	}

	summary := "nothing new: every role, policy and association already in place"
	if len(x.created) > 0 {
		summary = "created " + strings.Join(x.created, ", ")
		if len(x.reused) > 0 {
			summary += fmt.Sprintf("; reused %d", len(x.reused))
		}
	}
	sc.Progress("IAM for %s: %s", cluster, summary)
	return recovery.Result{Outputs: map[string]string{
		"lbc_role_arn":              lbcRole,
		"lbc_policy_arn":            lbcPolicy,
		"lbc_service_account":       lbcNS + "/" + lbcSA,
		"karpenter_role_arn":        kRole,
		"karpenter_policy_arn":      kPolicy,
		"karpenter_service_account": kNS + "/" + kSA,
		"karpenter_node_role_arn":   nodeRole,
		"karpenter_node_role_name":  names.KarpenterNodeRole,
	}}, nil
}

// ensureRole returns the ARN of role name, creating it with the shipped
// trust policy when missing and restoring that trust policy when it drifted.
func (x *run) ensureRole(ctx context.Context, name, trustFile, description string) (string, error) {
	trust, err := render(trustFile, policyVars{})
	if err != nil {
		return "", recovery.Permanent(err)
	}
	got, err := x.iam.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String(name)})
	if err == nil {
		current, _ := url.QueryUnescape(aws.ToString(got.Role.AssumeRolePolicyDocument))
		if !sameDocument(current, trust) {
			if _, err := x.iam.UpdateAssumeRolePolicy(ctx, &awsiam.UpdateAssumeRolePolicyInput{RoleName: aws.String(name), PolicyDocument: aws.String(trust)}); err != nil {
				return "", fmt.Errorf("restoring the trust policy of role %s: %w", name, err)
			}
			x.sc.Progress("role %s trusted someone else; trust policy restored", name)
		}
		x.reused = append(x.reused, "role "+name)
		return aws.ToString(got.Role.Arn), nil
	}
	if recovery.ErrorCode(err) != "NoSuchEntity" {
		return "", fmt.Errorf("reading role %s: %w", name, err)
	}
	created, err := x.iam.CreateRole(ctx, &awsiam.CreateRoleInput{
		RoleName:                 aws.String(name),
		AssumeRolePolicyDocument: aws.String(trust),
		Description:              aws.String(description),
		Tags:                     x.tags,
	})
	if recovery.ErrorCode(err) == "EntityAlreadyExists" {
		return x.ensureRole(ctx, name, trustFile, description) // made meanwhile: look it up
	}
	if err != nil {
		return "", fmt.Errorf("creating role %s: %w", name, err)
	}
	x.created = append(x.created, "role "+name)
	return aws.ToString(created.Role.Arn), nil
}

// ensurePolicy returns the ARN of customer managed policy name, creating
// it from a shipped document when missing.
func (x *run) ensurePolicy(ctx context.Context, name, file string, vars policyVars, description string) (string, error) {
	arn := "arn:" + x.partition + ":iam::" + x.account + ":policy/" + name
	if _, err := x.iam.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String(arn)}); err == nil {
		x.reused = append(x.reused, "policy "+name)
		return arn, nil
	} else if recovery.ErrorCode(err) != "NoSuchEntity" {
		return "", fmt.Errorf("reading policy %s: %w", name, err)
	}
	doc, err := render(file, vars)
	if err != nil {
		return "", recovery.Permanent(err)
	}
	created, err := x.iam.CreatePolicy(ctx, &awsiam.CreatePolicyInput{
		PolicyName:     aws.String(name),
		PolicyDocument: aws.String(doc),
		Description:    aws.String(description),
		Tags:           x.tags,
	})
	switch {
	case recovery.ErrorCode(err) == "EntityAlreadyExists":
		x.reused = append(x.reused, "policy "+name)
		return arn, nil
	case err != nil:
		return "", fmt.Errorf("creating policy %s: %w", name, err)
	}
	x.created = append(x.created, "policy "+name)
	return aws.ToString(created.Policy.Arn), nil
}

// attach attaches the policies to role; policies whose name starts with
// stalePrefix but that are not wanted (an older shipped version) are
// detached.
func (x *run) attach(ctx context.Context, role string, want []string, stalePrefix string) error {
	attached := map[string]bool{}
	var stale []string
	pages := awsiam.NewListAttachedRolePoliciesPaginator(x.iam, &awsiam.ListAttachedRolePoliciesInput{RoleName: aws.String(role)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing policies attached to role %s: %w", role, err)
		}
		for _, p := range page.AttachedPolicies {
			arn := aws.ToString(p.PolicyArn)
			attached[arn] = true
			if stalePrefix != "" && strings.HasPrefix(aws.ToString(p.PolicyName), stalePrefix) && !contains(want, arn) {
				stale = append(stale, arn)
			}
		}
	}
	for _, arn := range want {
		if attached[arn] {
			continue
		}
		if _, err := x.iam.AttachRolePolicy(ctx, &awsiam.AttachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(arn)}); err != nil {
			return fmt.Errorf("attaching %s to role %s: %w", arn, role, err)
		}
	}
	for _, arn := range stale {
		if _, err := x.iam.DetachRolePolicy(ctx, &awsiam.DetachRolePolicyInput{RoleName: aws.String(role), PolicyArn: aws.String(arn)}); err != nil {
			return fmt.Errorf("detaching the older %s from role %s: %w", arn, role, err)
		}
		x.sc.Progress("detached the older %s from role %s", arn, role)
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// ensurePodIdentityAgent installs the add-on Pod Identity needs when the
// cluster lacks it (a pilot light, a module that did not add it).
func (x *run) ensurePodIdentityAgent(ctx context.Context) error {
	_, err := x.eks.DescribeAddon(ctx, &awseks.DescribeAddonInput{ClusterName: aws.String(x.cluster), AddonName: aws.String(podIdentityAddon)})
	if err == nil {
		return nil
	}
	if recovery.ErrorCode(err) != "ResourceNotFoundException" {
		return fmt.Errorf("describing add-on %s on %q: %w", podIdentityAddon, x.cluster, err)
	}
	_, err = x.eks.CreateAddon(ctx, &awseks.CreateAddonInput{
		ClusterName: aws.String(x.cluster), AddonName: aws.String(podIdentityAddon),
		ResolveConflicts: ekstypes.ResolveConflictsOverwrite,
	})
	if err != nil && recovery.ErrorCode(err) != "ResourceInUseException" {
		return fmt.Errorf("installing add-on %s on %q: %w", podIdentityAddon, x.cluster, err)
	}
	x.created = append(x.created, "add-on "+podIdentityAddon)
	return nil
}

// ensureAssociation links namespace/serviceAccount to roleArn with a Pod
// Identity association, listing before creating.
func (x *run) ensureAssociation(ctx context.Context, namespace, serviceAccount, roleArn string) error {
	sa := namespace + "/" + serviceAccount
	id, err := x.findAssociation(ctx, namespace, serviceAccount)
	if err != nil {
		return err
	}
	if id == "" {
		_, err := x.eks.CreatePodIdentityAssociation(ctx, &awseks.CreatePodIdentityAssociationInput{
			ClusterName: aws.String(x.cluster), Namespace: aws.String(namespace), ServiceAccount: aws.String(serviceAccount),
			RoleArn: aws.String(roleArn), Tags: map[string]string{tagCluster: x.cluster, tagRun: x.sc.Run().ID},
		})
		switch {
		case err == nil:
			x.created = append(x.created, "pod identity "+sa)
			return nil
		case recovery.ErrorCode(err) == "ResourceInUseException":
			if id, err = x.findAssociation(ctx, namespace, serviceAccount); err != nil {
				return err
			}
		case recovery.ErrorCode(err) == "InvalidParameterException" && len(x.created) > 0:
			// A role made seconds ago may not be visible to EKS yet.
			return recovery.Retryable(fmt.Errorf("creating pod identity association for %s: %w (IAM is eventually consistent; retrying)", sa, err))
		default:
			return fmt.Errorf("creating pod identity association for %s: %w", sa, err)
		}
	}
	got, err := x.eks.DescribePodIdentityAssociation(ctx, &awseks.DescribePodIdentityAssociationInput{ClusterName: aws.String(x.cluster), AssociationId: aws.String(id)})
	if err != nil {
		return fmt.Errorf("describing pod identity association %s for %s: %w", id, sa, err)
	}
	if have := aws.ToString(got.Association.RoleArn); have != roleArn {
		return recovery.Permanent(fmt.Errorf("pod identity association %s gives %s role %s, not %s; delete the association (or point it at %s) and press Retry",
			id, sa, have, roleArn, roleArn))
	}
	x.reused = append(x.reused, "pod identity "+sa)
	return nil
}

func (x *run) findAssociation(ctx context.Context, namespace, serviceAccount string) (string, error) {
	pages := awseks.NewListPodIdentityAssociationsPaginator(x.eks, &awseks.ListPodIdentityAssociationsInput{
		ClusterName: aws.String(x.cluster), Namespace: aws.String(namespace), ServiceAccount: aws.String(serviceAccount),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("listing pod identity associations of %s/%s on %q: %w", namespace, serviceAccount, x.cluster, err)
		}
		for _, a := range page.Associations {
			if aws.ToString(a.Namespace) == namespace && aws.ToString(a.ServiceAccount) == serviceAccount {
				return aws.ToString(a.AssociationId), nil
			}
		}
	}
	return "", nil
}

// ensureNodeAccessEntry lets nodes with the Karpenter node role join the
// cluster (an EC2_LINUX access entry: no groups, no policies).
func (x *run) ensureNodeAccessEntry(ctx context.Context, roleArn string) error {
	_, err := x.eks.DescribeAccessEntry(ctx, &awseks.DescribeAccessEntryInput{ClusterName: aws.String(x.cluster), PrincipalArn: aws.String(roleArn)})
	if err == nil {
		x.reused = append(x.reused, "node access entry")
		return nil
	}
	if recovery.ErrorCode(err) != "ResourceNotFoundException" {
		return fmt.Errorf("describing the access entry of %s on %q: %w", roleArn, x.cluster, err)
	}
	_, err = x.eks.CreateAccessEntry(ctx, &awseks.CreateAccessEntryInput{
		ClusterName: aws.String(x.cluster), PrincipalArn: aws.String(roleArn), Type: aws.String("EC2_LINUX"),
		Tags: map[string]string{tagCluster: x.cluster, tagRun: x.sc.Run().ID},
	})
	switch {
	case err == nil:
		x.created = append(x.created, "EC2_LINUX access entry")
	case recovery.ErrorCode(err) == "ResourceInUseException":
	case recovery.ErrorCode(err) == "InvalidParameterException" && len(x.created) > 0:
		return recovery.Retryable(fmt.Errorf("creating the EC2_LINUX access entry for %s: %w (IAM is eventually consistent; retrying)", roleArn, err))
	default:
		return fmt.Errorf("creating the EC2_LINUX access entry for %s on %q: %w", roleArn, x.cluster, err)
	}
	return nil
}
