// Package eks implements the provisioning steps of the runbook:
// cluster.create (through the EKS API, the user's Terraform module, or an
// existing pilot-light cluster that is scaled up) and cluster.access
// (endpoint and CA, access entries, and a REST config whose EKS bearer
// token, presigned from STS GetCallerIdentity, refreshes itself).
//
// Every action observes before it acts: a re-run after a crash finds the
// cluster, node group and add-on it created and waits for them instead of
// creating them again.
package eks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// Step ids this package implements (they match recovery/standard).
const (
	StepClusterCreate = "cluster.create"
	StepClusterAccess = "cluster.access"
)

// Names and tags drbot puts on what it creates.
const (
	TagRun              = "drbot/run"
	TagTarget           = "drbot/target"
	PodIdentityAddon    = "eks-pod-identity-agent"
	DefaultNodegroup    = "drbot-system"
	ClusterAdminPolicy  = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
	defaultPollInterval = 15 * time.Second
	defaultProgress     = 30 * time.Second
	defaultWaitTimeout  = 45 * time.Minute
)

// AWSConfigFunc returns drbot's AWS configuration for a region.
type AWSConfigFunc func(ctx context.Context, region string) (aws.Config, error)

// EKSAPI is the part of the EKS client these steps use.
type EKSAPI interface {
	DescribeCluster(ctx context.Context, in *awseks.DescribeClusterInput, optFns ...func(*awseks.Options)) (*awseks.DescribeClusterOutput, error)
	CreateCluster(ctx context.Context, in *awseks.CreateClusterInput, optFns ...func(*awseks.Options)) (*awseks.CreateClusterOutput, error)
	UpdateClusterConfig(ctx context.Context, in *awseks.UpdateClusterConfigInput, optFns ...func(*awseks.Options)) (*awseks.UpdateClusterConfigOutput, error)
	DescribeUpdate(ctx context.Context, in *awseks.DescribeUpdateInput, optFns ...func(*awseks.Options)) (*awseks.DescribeUpdateOutput, error)
	DescribeNodegroup(ctx context.Context, in *awseks.DescribeNodegroupInput, optFns ...func(*awseks.Options)) (*awseks.DescribeNodegroupOutput, error)
	CreateNodegroup(ctx context.Context, in *awseks.CreateNodegroupInput, optFns ...func(*awseks.Options)) (*awseks.CreateNodegroupOutput, error)
	UpdateNodegroupConfig(ctx context.Context, in *awseks.UpdateNodegroupConfigInput, optFns ...func(*awseks.Options)) (*awseks.UpdateNodegroupConfigOutput, error)
	DescribeAddon(ctx context.Context, in *awseks.DescribeAddonInput, optFns ...func(*awseks.Options)) (*awseks.DescribeAddonOutput, error)
	CreateAddon(ctx context.Context, in *awseks.CreateAddonInput, optFns ...func(*awseks.Options)) (*awseks.CreateAddonOutput, error)
	DescribeAccessEntry(ctx context.Context, in *awseks.DescribeAccessEntryInput, optFns ...func(*awseks.Options)) (*awseks.DescribeAccessEntryOutput, error)
	CreateAccessEntry(ctx context.Context, in *awseks.CreateAccessEntryInput, optFns ...func(*awseks.Options)) (*awseks.CreateAccessEntryOutput, error)
	ListAssociatedAccessPolicies(ctx context.Context, in *awseks.ListAssociatedAccessPoliciesInput, optFns ...func(*awseks.Options)) (*awseks.ListAssociatedAccessPoliciesOutput, error)
	AssociateAccessPolicy(ctx context.Context, in *awseks.AssociateAccessPolicyInput, optFns ...func(*awseks.Options)) (*awseks.AssociateAccessPolicyOutput, error)
}

// Options configure the provisioning steps. Config and AWS are required.
type Options struct {
	Config *config.Config
	// AWS gives drbot's AWS configuration for the DR region.
	AWS AWSConfigFunc
	// EKS builds the EKS client from that configuration (default
	// eks.NewFromConfig).
	EKS func(aws.Config) EKSAPI

	// PollInterval is the pause between two status reads (default 15s).
	PollInterval time.Duration
	// ProgressEvery is the least time between two progress lines of a long
	// wait (default 30s).
	ProgressEvery time.Duration
	// WaitTimeout bounds one wait for a cluster, node group, add-on or
	// update (default 45m); the step then fails retryably and waits again.
	WaitTimeout time.Duration

	// NodegroupName is the managed node group of the eks provider
	// (default "drbot-system").
	NodegroupName string

	// TerraformPath is the terraform executable ("" looks it up in PATH).
	TerraformPath string
	// TerraformStreamEvery is the least time between two posted lines of
	// terraform apply output (default 30s).
	TerraformStreamEvery time.Duration
	// TerraformAllowDestroy lets an apply go ahead when the plan destroys
	// resources (off: the step stops for a person).
	TerraformAllowDestroy bool
	// TerraformEnv replaces terraform's environment (nil inherits drbot's).
	TerraformEnv map[string]string

	// TokenRefresh is the age at which a cached EKS token is replaced
	// (default 12m; tokens are accepted for 15 minutes).
	TokenRefresh time.Duration
	// SkipVerify leaves out cluster.access's final check that the API
	// server accepts drbot's token (for tests without a real API server).
	SkipVerify bool
	// VerifyTimeout bounds how long cluster.access waits for the access
	// entry to take effect (default 5m).
	VerifyTimeout time.Duration

	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (o *Options) defaults() {
	if o.EKS == nil {
		o.EKS = func(c aws.Config) EKSAPI { return awseks.NewFromConfig(c) }
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultPollInterval
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = defaultProgress
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = defaultWaitTimeout
	}
	if o.NodegroupName == "" {
		o.NodegroupName = DefaultNodegroup
	}
	if o.TokenRefresh <= 0 {
		o.TokenRefresh = 12 * time.Minute
	}
	if o.VerifyTimeout <= 0 {
		o.VerifyTimeout = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// target resolves the run's target.
func target(cfg *config.Config, sc *recovery.StepContext) (*config.Target, error) {
	if cfg == nil {
		return nil, recovery.Permanent(errors.New("eks steps were built without a config"))
	}
	t, ok := cfg.Target(sc.Run().Target)
	if !ok {
		return nil, recovery.Permanent(fmt.Errorf("target %q is not in the config; check targets[].name", sc.Run().Target))
	}
	return t, nil
}

// drCluster is the DR cluster's region and name: cluster.create's outputs
// when it reported them (a Terraform module may name the cluster itself),
// else the target's config.
func drCluster(sc *recovery.StepContext, t *config.Target) (region, name string) {
	region, name = t.DR.Region, t.DR.ClusterName
	if v, ok := sc.Output(StepClusterCreate, "region"); ok && v != "" {
		region = v
	}
	if v, ok := sc.Output(StepClusterCreate, "cluster_name"); ok && v != "" {
		name = v
	}
	return region, name
}

func (o *Options) client(ctx context.Context, region string) (EKSAPI, error) {
	if o.AWS == nil {
		return nil, recovery.Permanent(errors.New("eks steps were built without AWS credentials"))
	}
	cfg, err := o.AWS(ctx, region)
	if err != nil {
		return nil, fmt.Errorf("loading AWS config for %s: %w", region, err)
	}
	return o.EKS(cfg), nil
}

func isNotFound(err error) bool { return recovery.ErrorCode(err) == "ResourceNotFoundException" }
func isInUse(err error) bool    { return recovery.ErrorCode(err) == "ResourceInUseException" }

// since formats an elapsed time the way people read it: 6m12s, 45s, 1h2m.
func since(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	case d >= time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%ds", int(d.Seconds()))
}

// poll is one status read of a wait: done when the resource is ready,
// status for the progress line, started for the elapsed time (the
// resource's own creation time, so a resumed wait reports the true age).
type poll func(ctx context.Context) (done bool, status string, started time.Time, err error)

// wait polls until done, posting "<what> <status>, <elapsed>" at most every
// ProgressEvery.
func (o *Options) wait(ctx context.Context, sc *recovery.StepContext, what string, p poll) error {
	deadline := o.Now().Add(o.WaitTimeout)
	var lastPost time.Time
	for {
		done, status, started, err := p(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		now := o.Now()
		if started.IsZero() {
			started = now
		}
		if now.Sub(lastPost) >= o.ProgressEvery {
			sc.Progress("%s %s, %s", what, status, since(now.Sub(started)))
			lastPost = now
		}
		if now.After(deadline) {
			return recovery.Retryable(fmt.Errorf("%s still %s after %s; drbot will keep waiting on retry", what, status, since(o.WaitTimeout)))
		}
		t := time.NewTimer(o.PollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// formatIssues renders EKS health issues (cluster, node group and add-on
// issues are different types with the same shape) for an error message.
func formatIssues[I any](list []I, f func(I) (code string, msg *string)) string {
	var out []string
	for _, i := range list {
		code, msg := f(i)
		out = append(out, code+": "+aws.ToString(msg))
	}
	if len(out) == 0 {
		return "no health issues reported"
	}
	return strings.Join(out, "; ")
}
