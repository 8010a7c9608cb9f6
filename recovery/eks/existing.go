package eks

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// scaleExisting checks a pilot-light cluster is ACTIVE and scales its node
// group up to the configured size. It never scales down: a node group
// already larger (an autoscaler, a person) is left as it is.
func (p *Provisioner) scaleExisting(ctx context.Context, sc *recovery.StepContext, t *config.Target) (recovery.Result, error) {
	ex := t.Cluster.Existing
	if ex == nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("target %q uses provider existing but targets[].cluster.existing is missing", t.Name))
	}
	region, name := t.DR.Region, t.DR.ClusterName
	api, err := p.o.client(ctx, region)
	if err != nil {
		return recovery.Result{}, err
	}
	out, err := api.DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: aws.String(name)})
	if isNotFound(err) {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("pilot-light cluster %q not found in %s; check targets[].dr.cluster_name and region", name, region))
	}
	if err != nil {
		return recovery.Result{}, fmt.Errorf("describing cluster %q in %s: %w", name, region, err)
	}
	cl := out.Cluster
	switch cl.Status {
	case ekstypes.ClusterStatusActive:
	case ekstypes.ClusterStatusUpdating, ekstypes.ClusterStatusCreating:
		// Passing states (a version upgrade, say): wait rather than park.
		if cl, err = waitClusterActive(ctx, sc, &p.o, api, name); err != nil {
			return recovery.Result{}, err
		}
	default:
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("pilot-light cluster %q in %s is %s, not ACTIVE; bring it back (or switch the target to provider eks) and press Retry",
			name, region, cl.Status))
	}

	if id := sc.Handle(); id != "" {
		// A previous attempt started the scale-up: follow it.
		if err := p.waitNodegroupUpdate(ctx, sc, api, name, ex.NodeGroup, id, ex.Desired); err != nil {
			return recovery.Result{}, err
		}
	} else if err := p.scaleUp(ctx, sc, api, name, ex); err != nil {
		return recovery.Result{}, err
	}

	ng, err := api.DescribeNodegroup(ctx, &awseks.DescribeNodegroupInput{ClusterName: aws.String(name), NodegroupName: aws.String(ex.NodeGroup)})
	if err != nil {
		return recovery.Result{}, fmt.Errorf("describing node group %q on %q: %w", ex.NodeGroup, name, err)
	}
	res := clusterOutputs(region, cl)
	res["node_role_arn"] = aws.ToString(ng.Nodegroup.NodeRole)
	res["nodegroup"] = ex.NodeGroup
	return recovery.Result{Outputs: res}, nil
}

func (p *Provisioner) scaleUp(ctx context.Context, sc *recovery.StepContext, api EKSAPI, cluster string, ex *config.ExistingCluster) error {
	var ng *ekstypes.Nodegroup
	// Observe: a node group busy with another update must finish first.
	err := p.o.wait(ctx, sc, "node group "+ex.NodeGroup, func(ctx context.Context) (bool, string, time.Time, error) {
		out, err := api.DescribeNodegroup(ctx, &awseks.DescribeNodegroupInput{ClusterName: aws.String(cluster), NodegroupName: aws.String(ex.NodeGroup)})
		if isNotFound(err) {
			return false, "", time.Time{}, recovery.Permanent(fmt.Errorf("node group %q not found on pilot-light cluster %q; check targets[].cluster.existing.node_group", ex.NodeGroup, cluster))
		}
		if err != nil {
			return false, "", time.Time{}, fmt.Errorf("describing node group %q on %q: %w", ex.NodeGroup, cluster, err)
		}
		ng = out.Nodegroup
		switch ng.Status {
		case ekstypes.NodegroupStatusActive, ekstypes.NodegroupStatusDegraded:
			return true, "", time.Time{}, nil
		case ekstypes.NodegroupStatusUpdating, ekstypes.NodegroupStatusCreating:
			return false, string(ng.Status), aws.ToTime(ng.ModifiedAt), nil
		}
		return false, "", time.Time{}, recovery.Permanent(fmt.Errorf("node group %q on %q is %s; fix it and press Retry", ex.NodeGroup, cluster, ng.Status))
	})
	if err != nil {
		return err
	}
	want := int32(ex.Desired)
	var have, max int32
	if c := ng.ScalingConfig; c != nil {
		have, max = aws.ToInt32(c.DesiredSize), aws.ToInt32(c.MaxSize)
	}
	if have >= want {
		sc.Progress("node group %s already has %d nodes desired (want %d)", ex.NodeGroup, have, want)
		return nil
	}
	// Journal the size before the scale-up, so a drill's teardown can put
	// the pilot light back exactly as it was.
	if c := ng.ScalingConfig; c != nil {
		if err := sc.SaveOutputs(map[string]string{
			"nodegroup_desired_before": strconv.Itoa(int(aws.ToInt32(c.DesiredSize))),
			"nodegroup_min_before":     strconv.Itoa(int(aws.ToInt32(c.MinSize))),
			"nodegroup_max_before":     strconv.Itoa(int(aws.ToInt32(c.MaxSize))),
		}); err != nil {
			return err
		}
	}
	scaling := &ekstypes.NodegroupScalingConfig{DesiredSize: aws.Int32(want)}
	if max < want {
		scaling.MaxSize = aws.Int32(want)
	}
	out, err := api.UpdateNodegroupConfig(ctx, &awseks.UpdateNodegroupConfigInput{
		ClusterName:        aws.String(cluster),
		NodegroupName:      aws.String(ex.NodeGroup),
		ScalingConfig:      scaling,
		ClientRequestToken: aws.String(sc.IdempotencyToken("scale/" + cluster + "/" + ex.NodeGroup)),
	})
	if err != nil {
		return fmt.Errorf("scaling node group %q on %q to %d: %w", ex.NodeGroup, cluster, want, err)
	}
	id := aws.ToString(out.Update.Id)
	if err := sc.SaveHandle(id); err != nil {
		return err
	}
	sc.Progress("scaling node group %s from %d to %d nodes (update %s)", ex.NodeGroup, have, want, id)
	return p.waitNodegroupUpdate(ctx, sc, api, cluster, ex.NodeGroup, id, ex.Desired)
}

func (p *Provisioner) waitNodegroupUpdate(ctx context.Context, sc *recovery.StepContext, api EKSAPI, cluster, ng, id string, desired int) error {
	return p.o.wait(ctx, sc, fmt.Sprintf("node group %s scale-up to %d", ng, desired), func(ctx context.Context) (bool, string, time.Time, error) {
		out, err := api.DescribeUpdate(ctx, &awseks.DescribeUpdateInput{Name: aws.String(cluster), NodegroupName: aws.String(ng), UpdateId: aws.String(id)})
		if err != nil {
			return false, "", time.Time{}, fmt.Errorf("describing update %s of node group %q: %w", id, ng, err)
		}
		u := out.Update
		switch u.Status {
		case ekstypes.UpdateStatusSuccessful:
			return true, "", time.Time{}, nil
		case ekstypes.UpdateStatusFailed, ekstypes.UpdateStatusCancelled:
			var msgs []string
			for _, e := range u.Errors {
				msgs = append(msgs, fmt.Sprintf("%s: %s", e.ErrorCode, aws.ToString(e.ErrorMessage)))
			}
			return false, "", time.Time{}, recovery.Permanent(fmt.Errorf("scale-up %s of node group %q on %q %s (%s); check the node group's capacity and press Retry",
				id, ng, cluster, strings.ToLower(string(u.Status)), strings.Join(msgs, "; ")))
		}
		return false, string(u.Status), aws.ToTime(u.CreatedAt), nil
	})
}
