package eks

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// Provisioner implements cluster.create for the three providers of
// targets[].cluster.provider.
type Provisioner struct {
	o Options
}

// NewProvisioner returns the cluster.create action's owner.
func NewProvisioner(o Options) *Provisioner {
	o.defaults()
	return &Provisioner{o: o}
}

// Create is the cluster.create action. Outputs: cluster_name, cluster_arn,
// region, vpc_id, subnet_ids (a JSON list), node_role_arn and endpoint,
// where the provider knows them.
func (p *Provisioner) Create(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	t, err := target(p.o.Config, sc)
	if err != nil {
		return recovery.Result{}, err
	}
	switch t.Cluster.Provider {
	case config.ProviderEKS:
		return p.createEKS(ctx, sc, t)
	case config.ProviderExisting:
		return p.scaleExisting(ctx, sc, t)
	case config.ProviderTerraform:
		return p.applyTerraform(ctx, sc, t)
	}
	return recovery.Result{}, recovery.Permanent(fmt.Errorf("target %q: unknown cluster provider %q (want eks, existing or terraform)", t.Name, t.Cluster.Provider))
}

func (p *Provisioner) tags(sc *recovery.StepContext, t *config.Target) map[string]string {
	return map[string]string{TagRun: sc.Run().ID, TagTarget: t.Name}
}

func (p *Provisioner) createEKS(ctx context.Context, sc *recovery.StepContext, t *config.Target) (recovery.Result, error) {
	c := t.Cluster.EKS
	if c == nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("target %q uses provider eks but targets[].cluster.eks is missing", t.Name))
	}
	region, name := t.DR.Region, t.DR.ClusterName
	api, err := p.o.client(ctx, region)
	if err != nil {
		return recovery.Result{}, err
	}
	if err := p.ensureCluster(ctx, sc, api, t, c); err != nil {
		return recovery.Result{}, err
	}
	cl, err := p.waitClusterActive(ctx, sc, api, name)
	if err != nil {
		return recovery.Result{}, err
	}
	// The node group and the Pod Identity agent are created together: the
	// add-on does not need nodes to be created, and waiting for one before
	// asking for the other put a minute of EKS on every recovery's
	// critical path.
	if err := p.startNodegroup(ctx, sc, api, t, c); err != nil {
		return recovery.Result{}, err
	}
	if err := startAddon(ctx, sc, api, name, PodIdentityAddon, p.tags(sc, t)); err != nil {
		return recovery.Result{}, err
	}
	if err := p.waitNodegroup(ctx, sc, api, name); err != nil {
		return recovery.Result{}, err
	}
	if err := waitAddon(ctx, sc, &p.o, api, name, PodIdentityAddon); err != nil {
		return recovery.Result{}, err
	}
	out := clusterOutputs(region, cl)
	out["node_role_arn"] = c.NodeGroup.NodeRoleARN
	out["nodegroup"] = p.o.NodegroupName
	sc.Progress("cluster %s ACTIVE with node group %s and %s", name, p.o.NodegroupName, PodIdentityAddon)
	return recovery.Result{Outputs: out}, nil
}

// clusterOutputs are the outputs every provider reports from DescribeCluster.
func clusterOutputs(region string, cl *ekstypes.Cluster) map[string]string {
	out := map[string]string{
		"cluster_name": aws.ToString(cl.Name),
		"cluster_arn":  aws.ToString(cl.Arn),
		"region":       region,
	}
	if ep := aws.ToString(cl.Endpoint); ep != "" {
		out["endpoint"] = ep
	}
	if v := cl.ResourcesVpcConfig; v != nil {
		if id := aws.ToString(v.VpcId); id != "" {
			out["vpc_id"] = id
		}
		if len(v.SubnetIds) > 0 {
			b, _ := json.Marshal(v.SubnetIds)
			out["subnet_ids"] = string(b)
		}
	}
	return out
}

// ensureCluster finds the cluster or creates it, and journals its ARN.
func (p *Provisioner) ensureCluster(ctx context.Context, sc *recovery.StepContext, api EKSAPI, t *config.Target, c *config.EKSCluster) error {
	name := t.DR.ClusterName
	for {
		out, err := api.DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: aws.String(name)})
		switch {
		case err == nil:
			cl := out.Cluster
			switch cl.Status {
			case ekstypes.ClusterStatusDeleting:
				// A leftover (a drill's cluster being torn down): wait for
				// it to go, then create ours.
				if err := p.o.wait(ctx, sc, "old cluster "+name, func(ctx context.Context) (bool, string, time.Time, error) {
					_, err := api.DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: aws.String(name)})
					if isNotFound(err) {
						return true, "", time.Time{}, nil
					}
					return false, "DELETING", time.Time{}, err
				}); err != nil {
					return err
				}
				continue
			case ekstypes.ClusterStatusFailed:
				return recovery.Permanent(fmt.Errorf("cluster %q in %s is FAILED (%s); delete it and press Retry",
					name, t.DR.Region, formatIssues(healthIssues(cl), clusterIssue)))
			}
			if cl.Tags[TagRun] != sc.Run().ID {
				sc.Progress("found cluster %s (%s) already in %s; using it", name, cl.Status, t.DR.Region)
			}
			return sc.SaveHandle(aws.ToString(cl.Arn))
		case isNotFound(err):
		default:
			return fmt.Errorf("describing cluster %q in %s: %w", name, t.DR.Region, err)
		}

		in := &awseks.CreateClusterInput{
			Name:    aws.String(name),
			Version: aws.String(c.Version),
			RoleArn: aws.String(c.RoleARN),
			ResourcesVpcConfig: &ekstypes.VpcConfigRequest{
				SubnetIds:        c.SubnetIDs,
				SecurityGroupIds: c.SecurityGroupIDs,
			},
			AccessConfig:       &ekstypes.CreateAccessConfigRequest{AuthenticationMode: ekstypes.AuthenticationModeApi},
			Tags:               p.tags(sc, t),
			ClientRequestToken: aws.String(sc.IdempotencyToken("cluster/" + name)),
		}
		created, err := api.CreateCluster(ctx, in)
		if isInUse(err) {
			continue // made meanwhile (by a previous attempt or a person): adopt it
		}
		if err != nil {
			err = fmt.Errorf("creating cluster %q in %s: %w", name, t.DR.Region, err)
			if recovery.ErrorCode(err) == "InvalidParameterException" {
				err = recovery.Permanent(fmt.Errorf("%w; check targets[].cluster.eks (version, role_arn, subnet_ids in two AZs)", err))
			}
			return err
		}
		sc.Progress("creating cluster %s (Kubernetes %s) in %s", name, c.Version, t.DR.Region)
		return sc.SaveHandle(aws.ToString(created.Cluster.Arn))
	}
}

func healthIssues(cl *ekstypes.Cluster) []ekstypes.ClusterIssue {
	if cl.Health == nil {
		return nil
	}
	return cl.Health.Issues
}

func clusterIssue(i ekstypes.ClusterIssue) (string, *string) { return string(i.Code), i.Message }
func nodegroupIssue(i ekstypes.Issue) (string, *string)      { return string(i.Code), i.Message }
func addonIssue(i ekstypes.AddonIssue) (string, *string)     { return string(i.Code), i.Message }

// waitClusterActive polls until the control plane is ACTIVE.
func (p *Provisioner) waitClusterActive(ctx context.Context, sc *recovery.StepContext, api EKSAPI, name string) (*ekstypes.Cluster, error) {
	return waitClusterActive(ctx, sc, &p.o, api, name)
}

func waitClusterActive(ctx context.Context, sc *recovery.StepContext, o *Options, api EKSAPI, name string) (*ekstypes.Cluster, error) {
	var cl *ekstypes.Cluster
	err := o.wait(ctx, sc, "control plane", func(ctx context.Context) (bool, string, time.Time, error) {
		out, err := api.DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: aws.String(name)})
		if err != nil {
			return false, "", time.Time{}, fmt.Errorf("describing cluster %q: %w", name, err)
		}
		cl = out.Cluster
		switch cl.Status {
		case ekstypes.ClusterStatusActive:
			return true, "", time.Time{}, nil
		case ekstypes.ClusterStatusFailed, ekstypes.ClusterStatusDeleting:
			return false, "", time.Time{}, recovery.Permanent(fmt.Errorf("cluster %q went %s while drbot waited for it (%s); look in the EKS console, delete it and press Retry",
				name, cl.Status, formatIssues(healthIssues(cl), clusterIssue)))
		}
		return false, string(cl.Status), aws.ToTime(cl.CreatedAt), nil
	})
	return cl, err
}

// startNodegroup creates the managed node group if it is missing.
func (p *Provisioner) startNodegroup(ctx context.Context, sc *recovery.StepContext, api EKSAPI, t *config.Target, c *config.EKSCluster) error {
	cluster, ng := t.DR.ClusterName, p.o.NodegroupName
	_, err := api.DescribeNodegroup(ctx, &awseks.DescribeNodegroupInput{ClusterName: aws.String(cluster), NodegroupName: aws.String(ng)})
	switch {
	case isNotFound(err):
		_, err := api.CreateNodegroup(ctx, &awseks.CreateNodegroupInput{
			ClusterName:   aws.String(cluster),
			NodegroupName: aws.String(ng),
			NodeRole:      aws.String(c.NodeGroup.NodeRoleARN),
			Subnets:       c.SubnetIDs,
			InstanceTypes: c.NodeGroup.InstanceTypes,
			ScalingConfig: &ekstypes.NodegroupScalingConfig{
				MinSize:     aws.Int32(int32(c.NodeGroup.Min)),
				MaxSize:     aws.Int32(int32(c.NodeGroup.Max)),
				DesiredSize: aws.Int32(int32(c.NodeGroup.Desired)),
			},
			Tags:               p.tags(sc, t),
			ClientRequestToken: aws.String(sc.IdempotencyToken("nodegroup/" + cluster + "/" + ng)),
		})
		if err != nil && !isInUse(err) {
			err = fmt.Errorf("creating node group %q on %q: %w", ng, cluster, err)
			if recovery.ErrorCode(err) == "InvalidParameterException" {
				err = recovery.Permanent(fmt.Errorf("%w; check targets[].cluster.eks.node_group", err))
			}
			return err
		}
		sc.Progress("creating node group %s (%d × %v)", ng, c.NodeGroup.Desired, c.NodeGroup.InstanceTypes)
	case err != nil:
		return fmt.Errorf("describing node group %q on %q: %w", ng, cluster, err)
	}
	return nil
}

// waitNodegroup waits for the node group to be ACTIVE.
func (p *Provisioner) waitNodegroup(ctx context.Context, sc *recovery.StepContext, api EKSAPI, cluster string) error {
	ng := p.o.NodegroupName
	return p.o.wait(ctx, sc, "node group "+ng, func(ctx context.Context) (bool, string, time.Time, error) {
		out, err := api.DescribeNodegroup(ctx, &awseks.DescribeNodegroupInput{ClusterName: aws.String(cluster), NodegroupName: aws.String(ng)})
		if err != nil {
			return false, "", time.Time{}, fmt.Errorf("describing node group %q on %q: %w", ng, cluster, err)
		}
		n := out.Nodegroup
		switch n.Status {
		case ekstypes.NodegroupStatusActive:
			return true, "", time.Time{}, nil
		case ekstypes.NodegroupStatusCreateFailed, ekstypes.NodegroupStatusDegraded, ekstypes.NodegroupStatusDeleting, ekstypes.NodegroupStatusDeleteFailed:
			var iss []ekstypes.Issue
			if n.Health != nil {
				iss = n.Health.Issues
			}
			return false, "", time.Time{}, recovery.Permanent(fmt.Errorf("node group %q on %q is %s (%s); fix it in the EKS console (or delete it so drbot makes it again) and press Retry",
				ng, cluster, n.Status, formatIssues(iss, nodegroupIssue)))
		}
		return false, string(n.Status), aws.ToTime(n.CreatedAt), nil
	})
}

// startAddon installs an EKS add-on if it is missing.
func startAddon(ctx context.Context, sc *recovery.StepContext, api EKSAPI, cluster, addon string, tags map[string]string) error {
	_, err := api.DescribeAddon(ctx, &awseks.DescribeAddonInput{ClusterName: aws.String(cluster), AddonName: aws.String(addon)})
	switch {
	case isNotFound(err):
		_, err := api.CreateAddon(ctx, &awseks.CreateAddonInput{
			ClusterName:        aws.String(cluster),
			AddonName:          aws.String(addon),
			ResolveConflicts:   ekstypes.ResolveConflictsOverwrite,
			Tags:               tags,
			ClientRequestToken: aws.String(sc.IdempotencyToken("addon/" + cluster + "/" + addon)),
		})
		if err != nil && !isInUse(err) {
			return fmt.Errorf("creating add-on %q on %q: %w", addon, cluster, err)
		}
		sc.Progress("installing add-on %s", addon)
	case err != nil:
		return fmt.Errorf("describing add-on %q on %q: %w", addon, cluster, err)
	}
	return nil
}

// waitAddon waits for an EKS add-on to be ACTIVE.
func waitAddon(ctx context.Context, sc *recovery.StepContext, o *Options, api EKSAPI, cluster, addon string) error {
	return o.wait(ctx, sc, "add-on "+addon, func(ctx context.Context) (bool, string, time.Time, error) {
		out, err := api.DescribeAddon(ctx, &awseks.DescribeAddonInput{ClusterName: aws.String(cluster), AddonName: aws.String(addon)})
		if err != nil {
			return false, "", time.Time{}, fmt.Errorf("describing add-on %q on %q: %w", addon, cluster, err)
		}
		a := out.Addon
		switch a.Status {
		case ekstypes.AddonStatusActive:
			return true, "", time.Time{}, nil
		case ekstypes.AddonStatusCreateFailed, ekstypes.AddonStatusDegraded, ekstypes.AddonStatusDeleting, ekstypes.AddonStatusDeleteFailed, ekstypes.AddonStatusUpdateFailed:
			var iss []ekstypes.AddonIssue
			if a.Health != nil {
				iss = a.Health.Issues
			}
			return false, "", time.Time{}, recovery.Permanent(fmt.Errorf("add-on %q on %q is %s (%s); fix it in the EKS console and press Retry",
				addon, cluster, a.Status, formatIssues(iss, addonIssue)))
		}
		return false, string(a.Status), aws.ToTime(a.CreatedAt), nil
	})
}
