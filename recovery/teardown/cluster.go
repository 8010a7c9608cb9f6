package teardown

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// tagRunEKS is the tag cluster.create puts on what it makes (recovery/eks.TagRun).
const tagRunEKS = "drbot/run"

// removeCluster removes (or, for a pilot light, scales back) the DR cluster.
func (x *attempt) removeCluster(ctx context.Context) (string, error) {
	switch x.provider() {
	case config.ProviderTerraform:
		return x.destroyTerraform(ctx)
	case config.ProviderEKS:
		return x.deleteEKS(ctx)
	case config.ProviderExisting:
		return x.scaleBack(ctx)
	}
	return "", recovery.Permanent(fmt.Errorf("target %q: unknown cluster provider %q", x.target.Name, x.provider()))
}

// describeCluster returns the DR cluster, nil when EKS has none.
func (x *attempt) describeCluster(ctx context.Context) (*ekstypes.Cluster, error) {
	api, err := x.eks(ctx)
	if err != nil {
		return nil, err
	}
	out, err := api.DescribeCluster(ctx, &awseks.DescribeClusterInput{Name: aws.String(x.cluster)})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describing cluster %q in %s: %w", x.cluster, x.region, err)
	}
	return out.Cluster, nil
}

func (x *attempt) destroyTerraform(ctx context.Context) (string, error) {
	what := "Terraform-made cluster " + x.cluster
	tc := x.target.Cluster.Terraform
	where := "the module"
	if tc != nil {
		where = tc.Dir
		if tc.Workspace != "" {
			where += " (workspace " + tc.Workspace + ")"
		}
	}
	fix := "run terraform destroy in " + where + " by hand, with region=" + x.region + " and cluster_name=" + x.cluster
	if x.t.opts.Provisioner == nil {
		x.leave(PartCluster, what, errors.New("teardown was built without the Terraform provisioner (a wiring bug)"), fix)
		return "", nil
	}
	x.sc.Progress("running terraform destroy in %s", where)
	if err := x.t.opts.Provisioner.Destroy(ctx, x.sc); err != nil {
		x.leave(PartCluster, what, fmt.Errorf("terraform destroy: %w", err), fix)
		return "", nil
	}
	// Terraform says it is done; EKS has the last word.
	cl, err := x.describeCluster(ctx)
	if err != nil {
		x.leave(PartCluster, what, err, "check in the EKS console that cluster "+x.cluster+" is gone")
		return "", nil
	}
	if cl != nil && cl.Status != ekstypes.ClusterStatusDeleting {
		x.leave(PartCluster, what, fmt.Errorf("terraform destroy finished but EKS still has cluster %q (%s)", x.cluster, cl.Status),
			"the module may not manage the cluster under this name; delete it in the EKS console")
		return "", nil
	}
	if cl != nil {
		if err := x.waitClusterGone(ctx); err != nil {
			x.leave(PartCluster, what, err, "check in the EKS console that cluster "+x.cluster+" finishes deleting")
			return "", nil
		}
	}
	return "terraform destroy done in " + where, nil
}

// deleteEKS deletes the node groups and add-ons, waits for the node
// groups, then deletes the cluster and waits until EKS no longer knows it.
func (x *attempt) deleteEKS(ctx context.Context) (string, error) {
	what := "EKS cluster " + x.cluster
	fix := "delete its node groups, then the cluster, in the EKS console (" + x.region + ")"
	cl, err := x.describeCluster(ctx)
	if err != nil {
		x.leave(PartCluster, what, err, fix)
		return "", nil
	}
	if cl == nil {
		return "cluster " + x.cluster + " already gone", nil
	}
	if ok, why := x.ours(cl); !ok {
		x.leave(PartCluster, what, errors.New(why), "drbot deletes only clusters its drills made; if this one is the drill's, delete it in the EKS console")
		return "", nil
	}
	api, _ := x.eks(ctx)
	arn := aws.ToString(cl.Arn)

	if cl.Status != ekstypes.ClusterStatusDeleting {
		ngs, err := x.listNodegroups(ctx, api)
		if err != nil {
			x.leave(PartCluster, what, err, fix)
			return "", nil
		}
		// A node group EKS is still creating or updating may refuse to be
		// deleted (ResourceInUseException): it is asked again while waiting.
		refused := map[string]bool{}
		deleteNodegroup := func(ctx context.Context, ng string) error {
			_, err := api.DeleteNodegroup(ctx, &awseks.DeleteNodegroupInput{ClusterName: aws.String(x.cluster), NodegroupName: aws.String(ng)})
			refused[ng] = recovery.ErrorCode(err) == "ResourceInUseException"
			if err != nil && !isNotFound(err) && !refused[ng] {
				return err
			}
			return nil
		}
		for _, ng := range ngs {
			if err := deleteNodegroup(ctx, ng); err != nil {
				x.leave(PartCluster, "EKS node group "+ng+" of "+x.cluster, fmt.Errorf("deleting it: %w", err), fix)
				return "", nil
			}
		}
		if len(ngs) > 0 {
			x.sc.Progress("deleting node group(s) %s of %s", strings.Join(ngs, ", "), x.cluster)
		}
		addons, err := x.listAddons(ctx, api)
		if err != nil {
			x.leave(PartCluster, what, err, fix)
			return "", nil
		}
		for _, a := range addons {
			_, err := api.DeleteAddon(ctx, &awseks.DeleteAddonInput{ClusterName: aws.String(x.cluster), AddonName: aws.String(a)})
			if err != nil && !isNotFound(err) && recovery.ErrorCode(err) != "ResourceInUseException" {
				x.leave(PartCluster, "EKS add-on "+a+" of "+x.cluster, fmt.Errorf("deleting it: %w", err), fix)
				return "", nil
			}
		}
		err = x.waitFor(ctx, "node group(s) of "+x.cluster, func(ctx context.Context) (bool, string, error) {
			left, err := x.listNodegroups(ctx, api)
			if err != nil {
				return false, "", err
			}
			for _, ng := range left {
				if refused[ng] {
					if err := deleteNodegroup(ctx, ng); err != nil {
						return false, "", fmt.Errorf("deleting node group %s: %w", ng, err)
					}
				}
			}
			return len(left) == 0, "DELETING (" + strings.Join(left, ", ") + ")", nil
		})
		if err != nil {
			x.leave(PartCluster, what, fmt.Errorf("waiting for its node groups: %w", err), fix)
			return "", nil
		}

		// Journal the cluster before deleting it: a re-run waits for this deletion.
		if err := x.sc.SaveHandle(arn); err != nil {
			return "", err
		}
		// EKS refuses while an update (an add-on's deletion) is in
		// progress: ask again until it accepts.
		err = x.waitFor(ctx, "deletion of cluster "+x.cluster, func(ctx context.Context) (bool, string, error) {
			_, err := api.DeleteCluster(ctx, &awseks.DeleteClusterInput{Name: aws.String(x.cluster)})
			if recovery.ErrorCode(err) == "ResourceInUseException" {
				return false, "refused (ResourceInUseException)", nil
			}
			return err == nil || isNotFound(err), "", err
		})
		if err != nil {
			x.leave(PartCluster, what, fmt.Errorf("deleting it: %w", err), fix)
			return "", nil
		}
		x.sc.Progress("deleting cluster %s (node groups %d, add-ons %d removed)", x.cluster, len(ngs), len(addons))
	}
	if err := x.waitClusterGone(ctx); err != nil {
		x.leave(PartCluster, what, err, "check in the EKS console that it finishes deleting")
		return "", nil
	}
	return "deleted cluster " + x.cluster + " (" + arn + ")", nil
}

func (x *attempt) waitClusterGone(ctx context.Context) error {
	return x.waitFor(ctx, "cluster "+x.cluster, func(ctx context.Context) (bool, string, error) {
		cl, err := x.describeCluster(ctx)
		if err != nil {
			return false, "", err
		}
		if cl == nil {
			return true, "", nil
		}
		return false, string(cl.Status), nil
	})
}

// ours says whether teardown may empty and delete the cluster. A
// Terraform module's cluster is the drill workspace's; an EKS-made one
// must have been made by a drill.
func (x *attempt) ours(cl *ekstypes.Cluster) (bool, string) {
	if x.provider() == config.ProviderTerraform {
		return true, ""
	}
	return x.madeByDrill(cl)
}

// madeByDrill says whether drbot made the cluster in a drill, so deleting
// it is teardown's business: its drbot/run tag names this run or another
// drill run drbot remembers. A cluster without the tag (a person's, or a
// Terraform module's) or made by a recovery is never deleted.
func (x *attempt) madeByDrill(cl *ekstypes.Cluster) (bool, string) {
	id := cl.Tags[tagRunEKS]
	switch {
	case id == "":
		return false, fmt.Sprintf("cluster %q has no %s tag: drbot did not make it", x.cluster, tagRunEKS)
	case id == x.sc.Run().ID:
		return true, ""
	}
	var run state.Run
	var ok bool
	err := x.sc.Store().View(func(tx *state.Tx) (err error) { run, ok, err = tx.Run(id); return })
	switch {
	case err != nil:
		return false, fmt.Sprintf("reading run %s, which made cluster %q: %v", id, x.cluster, err)
	case !ok:
		return false, fmt.Sprintf("cluster %q was made by drbot run %s, which drbot has no record of", x.cluster, id)
	case run.Mode != state.ModeDrill:
		return false, fmt.Sprintf("cluster %q was made by %s run %s, not a drill", x.cluster, run.Mode, id)
	}
	return true, ""
}

func (x *attempt) listNodegroups(ctx context.Context, api EKSAPI) ([]string, error) {
	var out []string
	pages := awseks.NewListNodegroupsPaginator(api, &awseks.ListNodegroupsInput{ClusterName: aws.String(x.cluster)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing node groups of %q: %w", x.cluster, err)
		}
		out = append(out, page.Nodegroups...)
	}
	sort.Strings(out)
	return out, nil
}

func (x *attempt) listAddons(ctx context.Context, api EKSAPI) ([]string, error) {
	var out []string
	pages := awseks.NewListAddonsPaginator(api, &awseks.ListAddonsInput{ClusterName: aws.String(x.cluster)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if isNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing add-ons of %q: %w", x.cluster, err)
		}
		out = append(out, page.Addons...)
	}
	sort.Strings(out)
	return out, nil
}

// scaleBack returns a pilot light's node group to the size cluster.create
// journaled before scaling it up.
func (x *attempt) scaleBack(ctx context.Context) (string, error) {
	ng := x.output(stepClusterCreate, "nodegroup")
	if ng == "" && x.target.Cluster.Existing != nil {
		ng = x.target.Cluster.Existing.NodeGroup
	}
	what := "node group " + ng + " of pilot-light cluster " + x.cluster
	before := x.output(stepClusterCreate, OutputDesiredBefore)
	if before == "" {
		x.leave(PartCluster, what, fmt.Errorf("%s journaled no size from before the drill (output %s)", stepClusterCreate, OutputDesiredBefore),
			"check its size and scale it back to its usual one by hand: aws eks update-nodegroup-config --region "+x.region+
				" --cluster-name "+x.cluster+" --nodegroup-name "+ng+" --scaling-config desiredSize=<usual>")
		return "", nil
	}
	want, err := scaling(before, x.output(stepClusterCreate, OutputMinBefore), x.output(stepClusterCreate, OutputMaxBefore))
	if err != nil {
		x.leave(PartCluster, what, err, "scale it back by hand")
		return "", nil
	}
	fix := fmt.Sprintf("scale it back by hand: aws eks update-nodegroup-config --region %s --cluster-name %s --nodegroup-name %s --scaling-config %s",
		x.region, x.cluster, ng, want)
	api, err := x.eks(ctx)
	if err != nil {
		x.leave(PartCluster, what, err, fix)
		return "", nil
	}

	var cur *ekstypes.Nodegroup
	err = x.waitFor(ctx, "node group "+ng, func(ctx context.Context) (bool, string, error) {
		out, err := api.DescribeNodegroup(ctx, &awseks.DescribeNodegroupInput{ClusterName: aws.String(x.cluster), NodegroupName: aws.String(ng)})
		if err != nil {
			return false, "", err
		}
		cur = out.Nodegroup
		// An update in flight (the scale-up, a person's) finishes first.
		return cur.Status != ekstypes.NodegroupStatusUpdating, string(cur.Status), nil
	})
	if isNotFound(err) {
		return "node group " + ng + " no longer exists on " + x.cluster, nil
	}
	if err != nil {
		x.leave(PartCluster, what, fmt.Errorf("reading it: %w", err), fix)
		return "", nil
	}
	have := cur.ScalingConfig
	if want.matches(have) {
		return fmt.Sprintf("node group %s already at %s", ng, want), nil
	}
	in := &awseks.UpdateNodegroupConfigInput{
		ClusterName: aws.String(x.cluster), NodegroupName: aws.String(ng),
		ScalingConfig:      want.config(have),
		ClientRequestToken: aws.String(x.sc.IdempotencyToken("scale-back/" + x.cluster + "/" + ng)),
	}
	out, err := api.UpdateNodegroupConfig(ctx, in)
	if err != nil {
		x.leave(PartCluster, what, fmt.Errorf("scaling it to %s: %w", want, err), fix)
		return "", nil
	}
	id := aws.ToString(out.Update.Id)
	if err := x.sc.SaveOutputs(map[string]string{"scale_back_update": id}); err != nil {
		return "", err
	}
	x.sc.Progress("scaling node group %s of %s back from %d to %d nodes (update %s)", ng, x.cluster, aws.ToInt32(have.DesiredSize), want.desired, id)
	err = x.waitFor(ctx, "node group "+ng+" scale-back", func(ctx context.Context) (bool, string, error) {
		u, err := api.DescribeUpdate(ctx, &awseks.DescribeUpdateInput{Name: aws.String(x.cluster), NodegroupName: aws.String(ng), UpdateId: aws.String(id)})
		if err != nil {
			return false, "", err
		}
		switch u.Update.Status {
		case ekstypes.UpdateStatusSuccessful:
			return true, "", nil
		case ekstypes.UpdateStatusFailed, ekstypes.UpdateStatusCancelled:
			var msgs []string
			for _, e := range u.Update.Errors {
				msgs = append(msgs, fmt.Sprintf("%s: %s", e.ErrorCode, aws.ToString(e.ErrorMessage)))
			}
			return false, "", recovery.Permanent(fmt.Errorf("update %s %s (%s)", id, strings.ToLower(string(u.Update.Status)), strings.Join(msgs, "; ")))
		}
		return false, string(u.Update.Status), nil
	})
	if err != nil {
		x.leave(PartCluster, what, err, fix)
		return "", nil
	}
	return fmt.Sprintf("node group %s scaled back to %s", ng, want), nil
}

// size is a node group's scaling config from before the drill; min and max
// are 0 when not journaled (then left as they are).
type size struct{ desired, min, max int32 }

func scaling(desired, min, max string) (size, error) {
	var s size
	for _, f := range []struct {
		v   string
		dst *int32
		key string
	}{{desired, &s.desired, OutputDesiredBefore}, {min, &s.min, OutputMinBefore}, {max, &s.max, OutputMaxBefore}} {
		if f.v == "" {
			continue
		}
		n, err := strconv.ParseInt(f.v, 10, 32)
		if err != nil || n < 0 {
			return size{}, fmt.Errorf("%s output %s is %q, not a size", stepClusterCreate, f.key, f.v)
		}
		*f.dst = int32(n)
	}
	return s, nil
}

func (s size) String() string {
	out := fmt.Sprintf("desiredSize=%d", s.desired)
	if s.min > 0 {
		out += fmt.Sprintf(",minSize=%d", s.min)
	}
	if s.max > 0 {
		out += fmt.Sprintf(",maxSize=%d", s.max)
	}
	return out
}

func (s size) matches(have *ekstypes.NodegroupScalingConfig) bool {
	if have == nil {
		return false
	}
	return aws.ToInt32(have.DesiredSize) == s.desired &&
		(s.min == 0 || aws.ToInt32(have.MinSize) == s.min) &&
		(s.max == 0 || aws.ToInt32(have.MaxSize) == s.max)
}

// config is the update: the journaled sizes, and a lower minimum when the
// current one would forbid the old desired size.
func (s size) config(have *ekstypes.NodegroupScalingConfig) *ekstypes.NodegroupScalingConfig {
	c := &ekstypes.NodegroupScalingConfig{DesiredSize: aws.Int32(s.desired)}
	if s.max > 0 {
		c.MaxSize = aws.Int32(s.max)
	}
	switch {
	case s.min > 0:
		c.MinSize = aws.Int32(s.min)
	case have != nil && aws.ToInt32(have.MinSize) > s.desired:
		c.MinSize = aws.Int32(s.desired)
	}
	return c
}
