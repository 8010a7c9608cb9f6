package readiness

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"
	sqtypes "github.com/aws/aws-sdk-go-v2/service/servicequotas/types"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/argocd"
)

// Service Quotas codes the capacity check reads.
const (
	quotaEKSClusters = "L-1194D53C" // eks: clusters per region
	quotaEC2OnDemand = "L-1216C47A" // ec2: running On-Demand Standard instances, in vCPUs
)

// EKSCapacityAPI is what the capacity check asks EKS.
type EKSCapacityAPI interface {
	ListClusters(ctx context.Context, in *eks.ListClustersInput, optFns ...func(*eks.Options)) (*eks.ListClustersOutput, error)
	DescribeCluster(ctx context.Context, in *eks.DescribeClusterInput, optFns ...func(*eks.Options)) (*eks.DescribeClusterOutput, error)
	DescribeNodegroup(ctx context.Context, in *eks.DescribeNodegroupInput, optFns ...func(*eks.Options)) (*eks.DescribeNodegroupOutput, error)
}

// QuotasAPI reads applied and default quotas.
type QuotasAPI interface {
	GetServiceQuota(ctx context.Context, in *servicequotas.GetServiceQuotaInput, optFns ...func(*servicequotas.Options)) (*servicequotas.GetServiceQuotaOutput, error)
	GetAWSDefaultServiceQuota(ctx context.Context, in *servicequotas.GetAWSDefaultServiceQuotaInput, optFns ...func(*servicequotas.Options)) (*servicequotas.GetAWSDefaultServiceQuotaOutput, error)
}

// EC2API reads VPCs, subnets and instance sizes.
type EC2API interface {
	DescribeVpcs(ctx context.Context, in *ec2.DescribeVpcsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeVpcsOutput, error)
	DescribeSubnets(ctx context.Context, in *ec2.DescribeSubnetsInput, optFns ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeInstanceTypes(ctx context.Context, in *ec2.DescribeInstanceTypesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstanceTypesOutput, error)
}

// CapacityCheck proves that the DR region can hold the DR cluster, per
// target, in the DR region (dr.region):
//
//   - EKS clusters: the clusters there plus the one a recovery creates
//     (none for cluster.provider existing, whose cluster must exist)
//     stay within the "Clusters" quota (L-1194D53C);
//   - vCPUs: what the node group can reach (cluster.eks.node_group max ×
//     the largest instance type's vCPUs, or cluster.existing desired ×
//     the existing node group's) plus the Karpenter NodePool's
//     limits.cpu (addons.karpenter.node_pool) fit the On-Demand Standard
//     vCPU quota (L-1216C47A); instances already running there are not
//     counted;
//   - network: the subnets (cluster.eks.subnet_ids, the existing
//     cluster's, or cluster.terraform.vars.subnet_ids) and their VPC
//     exist, and, with addons.karpenter set, the EC2NodeClass's subnet
//     selector (default karpenter.sh/discovery=<dr.cluster_name>) finds
//     subnets.
type CapacityCheck struct {
	Config *config.Config
	AWS    AWSConfigFunc
}

// ID is the check's id.
func (c *CapacityCheck) ID() string { return CheckCapacity }

const capacityTitle = "the DR region has the quota, VPC and subnets the DR cluster needs"

const capacityFix = "raise the quota in Service Quotas (it can take days), or create/tag the subnets in the DR region; fix the names in the config if they are wrong"

// Run checks each target in its DR region.
func (c *CapacityCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	var out []Result
	for _, t := range targets {
		cfg, err := c.AWS(ctx, t.DR.Region)
		if err != nil {
			out = append(out, ErrorResult(CheckCapacity, t.Name, capacityTitle, err, "check drbot's AWS configuration"))
			continue
		}
		cl := capacityClients{eks: eks.NewFromConfig(cfg), quotas: servicequotas.NewFromConfig(cfg), ec2: ec2.NewFromConfig(cfg)}
		out = append(out, c.runTarget(ctx, t, cl))
	}
	return out
}

type capacityClients struct {
	eks    EKSCapacityAPI
	quotas QuotasAPI
	ec2    EC2API
}

func (c *CapacityCheck) runTarget(ctx context.Context, t *config.Target, cl capacityClients) Result {
	var f findings
	existing := c.clusters(ctx, t, cl, &f)
	c.vcpus(ctx, t, cl, existing, &f)
	c.network(ctx, t, cl, existing, &f)
	return f.result(CheckCapacity, t.Name, capacityTitle, capacityFix)
}

// clusters checks the EKS cluster quota and returns the existing DR
// cluster (provider existing), if found.
func (c *CapacityCheck) clusters(ctx context.Context, t *config.Target, cl capacityClients, f *findings) *eks.DescribeClusterOutput {
	var names []string
	pg := eks.NewListClustersPaginator(cl.eks, &eks.ListClustersInput{})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			f.fail("listing EKS clusters in %s: %s", t.DR.Region, shortErr(err))
			return nil
		}
		names = append(names, page.Clusters...)
	}
	exists := containsString(names, t.DR.ClusterName)
	need := len(names)
	var existing *eks.DescribeClusterOutput
	switch {
	case t.Cluster.Provider == config.ProviderExisting && !exists:
		f.fail("existing DR cluster %s is not in %s (clusters there: %s)", t.DR.ClusterName, t.DR.Region, orNone(names))
	case t.Cluster.Provider == config.ProviderExisting:
		out, err := cl.eks.DescribeCluster(ctx, &eks.DescribeClusterInput{Name: aws.String(t.DR.ClusterName)})
		if err != nil {
			f.fail("reading existing DR cluster %s: %s", t.DR.ClusterName, shortErr(err))
		} else {
			existing = out
		}
	case exists:
		f.warn("a cluster named %s already exists in %s: a recovery would adopt or collide with it", t.DR.ClusterName, t.DR.Region)
	default:
		need++
	}
	quota, src, err := getQuota(ctx, cl.quotas, "eks", quotaEKSClusters)
	if err != nil {
		f.fail("reading the EKS clusters quota (%s) in %s: %s", quotaEKSClusters, t.DR.Region, shortErr(err))
		return existing
	}
	if float64(need) > quota {
		f.fail("EKS clusters in %s: %d exist, a recovery needs %d, %s quota %s is %g", t.DR.Region, len(names), need, src, quotaEKSClusters, quota)
	} else {
		f.pass("EKS clusters in %s: %d of %g (%s quota %s) after the recovery", t.DR.Region, need, quota, src, quotaEKSClusters)
	}
	return existing
}

// getQuota reads the applied quota, falling back to AWS's default for a
// quota never changed in the account.
func getQuota(ctx context.Context, api QuotasAPI, service, code string) (float64, string, error) {
	out, err := api.GetServiceQuota(ctx, &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String(service), QuotaCode: aws.String(code)})
	var nsr *sqtypes.NoSuchResourceException
	if errors.As(err, &nsr) {
		def, derr := api.GetAWSDefaultServiceQuota(ctx, &servicequotas.GetAWSDefaultServiceQuotaInput{ServiceCode: aws.String(service), QuotaCode: aws.String(code)})
		if derr != nil {
			return 0, "", derr
		}
		if def.Quota == nil || def.Quota.Value == nil {
			return 0, "", fmt.Errorf("quota %s/%s has no value", service, code)
		}
		return *def.Quota.Value, "default", nil
	}
	if err != nil {
		return 0, "", err
	}
	if out.Quota == nil || out.Quota.Value == nil {
		return 0, "", fmt.Errorf("quota %s/%s has no value", service, code)
	}
	return *out.Quota.Value, "applied", nil
}

// vcpus compares what the cluster's nodes can reach with the vCPU quota.
func (c *CapacityCheck) vcpus(ctx context.Context, t *config.Target, cl capacityClients, existing *eks.DescribeClusterOutput, f *findings) {
	need := 0
	var parts []string
	var types []string
	nodes := 0
	switch t.Cluster.Provider {
	case config.ProviderEKS:
		if e := t.Cluster.EKS; e != nil {
			types, nodes = e.NodeGroup.InstanceTypes, e.NodeGroup.Max
		}
	case config.ProviderExisting:
		if e := t.Cluster.Existing; e != nil && existing != nil {
			ng, err := cl.eks.DescribeNodegroup(ctx, &eks.DescribeNodegroupInput{ClusterName: aws.String(t.DR.ClusterName), NodegroupName: aws.String(e.NodeGroup)})
			if err != nil {
				f.fail("reading node group %s of %s: %s", e.NodeGroup, t.DR.ClusterName, shortErr(err))
				return
			}
			types, nodes = ng.Nodegroup.InstanceTypes, e.Desired
		}
	default:
		f.pass("node groups of provider %s are in its Terraform module: their vCPUs are not counted", t.Cluster.Provider)
	}
	if len(types) > 0 && nodes > 0 {
		per, err := largestVCPUs(ctx, cl.ec2, types)
		if err != nil {
			f.fail("reading the vCPUs of instance types %s: %s", strings.Join(types, ", "), shortErr(err))
			return
		}
		need += nodes * per
		parts = append(parts, fmt.Sprintf("node group %d × %d vCPU (%s)", nodes, per, strings.Join(types, "/")))
	}
	if addon, ok := c.Config.Addons[config.AddonKarpenter]; ok {
		_, pool, err := argocd.RenderNodeObjects(addon, argocd.KarpenterVars{ClusterName: t.DR.ClusterName, Region: t.DR.Region})
		if err != nil {
			f.fail("addons.karpenter: %v", err)
			return
		}
		raw, found := nestedString(pool.Object, "spec", "limits", "cpu")
		if !found {
			f.warn("the Karpenter NodePool has no limits.cpu: what it may launch is unbounded, so the vCPU quota cannot be compared; set addons.karpenter.node_pool.limits.cpu")
		} else {
			q, err := resource.ParseQuantity(raw)
			if err != nil {
				f.fail("addons.karpenter.node_pool limits.cpu %q: %v", raw, err)
				return
			}
			n := int(math.Ceil(q.AsApproximateFloat64()))
			need += n
			parts = append(parts, fmt.Sprintf("NodePool limit %d vCPU", n))
		}
	}
	if need == 0 {
		return
	}
	quota, src, err := getQuota(ctx, cl.quotas, "ec2", quotaEC2OnDemand)
	if err != nil {
		f.fail("reading the On-Demand vCPU quota (%s) in %s: %s", quotaEC2OnDemand, t.DR.Region, shortErr(err))
		return
	}
	if float64(need) > quota {
		f.fail("On-Demand Standard vCPUs in %s: the DR cluster can need %d (%s), %s quota %s is %g", t.DR.Region, need, strings.Join(parts, " + "), src, quotaEC2OnDemand, quota)
		return
	}
	f.pass("On-Demand Standard vCPUs in %s: the DR cluster can need %d (%s) of %g (%s quota %s; instances already running there not counted)",
		t.DR.Region, need, strings.Join(parts, " + "), quota, src, quotaEC2OnDemand)
}

func largestVCPUs(ctx context.Context, api EC2API, types []string) (int, error) {
	in := &ec2.DescribeInstanceTypesInput{}
	for _, t := range types {
		in.InstanceTypes = append(in.InstanceTypes, ec2types.InstanceType(t))
	}
	out, err := api.DescribeInstanceTypes(ctx, in)
	if err != nil {
		return 0, err
	}
	max := 0
	for _, it := range out.InstanceTypes {
		if it.VCpuInfo != nil && int(aws.ToInt32(it.VCpuInfo.DefaultVCpus)) > max {
			max = int(aws.ToInt32(it.VCpuInfo.DefaultVCpus))
		}
	}
	if max == 0 {
		return 0, fmt.Errorf("no vCPU count for %s", strings.Join(types, ", "))
	}
	return max, nil
}

func nestedString(m map[string]any, path ...string) (string, bool) {
	var cur any = m
	for _, p := range path {
		mm, ok := cur.(map[string]any)
		if !ok {
			return "", false
		}
		if cur, ok = mm[p]; !ok {
			return "", false
		}
	}
	switch v := cur.(type) {
	case string:
		return v, v != ""
	case int64, float64, int:
		return fmt.Sprint(v), true
	}
	return "", false
}

// subnetsOf is where the target's subnets are named.
func subnetsOf(t *config.Target, existing *eks.DescribeClusterOutput) ([]string, string) {
	switch t.Cluster.Provider {
	case config.ProviderEKS:
		if t.Cluster.EKS != nil {
			return t.Cluster.EKS.SubnetIDs, "cluster.eks.subnet_ids"
		}
	case config.ProviderExisting:
		if existing != nil && existing.Cluster != nil && existing.Cluster.ResourcesVpcConfig != nil {
			return existing.Cluster.ResourcesVpcConfig.SubnetIds, "the subnets of existing cluster " + t.DR.ClusterName
		}
	case config.ProviderTerraform:
		if t.Cluster.Terraform != nil {
			if list, ok := t.Cluster.Terraform.Vars["subnet_ids"].([]any); ok {
				var ids []string
				for _, v := range list {
					if s, ok := v.(string); ok {
						ids = append(ids, s)
					}
				}
				return ids, "cluster.terraform.vars.subnet_ids"
			}
		}
	}
	return nil, ""
}

// network checks the subnets, their VPC and Karpenter's subnet discovery.
func (c *CapacityCheck) network(ctx context.Context, t *config.Target, cl capacityClients, existing *eks.DescribeClusterOutput, f *findings) {
	ids, from := subnetsOf(t, existing)
	var subnets []ec2types.Subnet
	if len(ids) == 0 {
		if t.Cluster.Provider != config.ProviderExisting || existing != nil {
			f.pass("no subnets named in the config (%s provider): not checked", t.Cluster.Provider)
		}
	} else {
		var missing []string
		subnets, missing = describeSubnets(ctx, cl.ec2, ids, f)
		if len(missing) > 0 {
			f.fail("subnet(s) %s from %s do not exist in %s", strings.Join(missing, ", "), from, t.DR.Region)
		}
		vpcs := map[string]bool{}
		for _, s := range subnets {
			vpcs[aws.ToString(s.VpcId)] = true
		}
		vpcIDs := sortedKeys(vpcs)
		switch {
		case len(vpcIDs) > 1:
			f.fail("subnets %s span VPCs %s: an EKS cluster's subnets must share one VPC", strings.Join(ids, ", "), strings.Join(vpcIDs, ", "))
		case len(vpcIDs) == 1:
			_, err := cl.ec2.DescribeVpcs(ctx, &ec2.DescribeVpcsInput{VpcIds: vpcIDs})
			if err != nil {
				f.fail("VPC %s of the subnets: %s", vpcIDs[0], shortErr(err))
			} else if len(missing) == 0 {
				f.pass("subnets %s (%s) exist in VPC %s", strings.Join(ids, ", "), from, vpcIDs[0])
			}
		}
	}
	addon, ok := c.Config.Addons[config.AddonKarpenter]
	if !ok {
		return
	}
	nodeClass, _, err := argocd.RenderNodeObjects(addon, argocd.KarpenterVars{ClusterName: t.DR.ClusterName, Region: t.DR.Region})
	if err != nil {
		f.fail("addons.karpenter: %v", err)
		return
	}
	spec, _ := nodeClass.Object["spec"].(map[string]any)
	terms, _ := spec["subnetSelectorTerms"].([]any)
	matched := map[string]bool{}
	var described []string
	for _, term := range terms {
		tm, _ := term.(map[string]any)
		in := &ec2.DescribeSubnetsInput{}
		if id, ok := tm["id"].(string); ok && id != "" {
			in.SubnetIds = []string{id}
			described = append(described, "id "+id)
		}
		if tags, ok := tm["tags"].(map[string]any); ok {
			var pairs []string
			for _, k := range sortedKeys(tags) {
				v := fmt.Sprint(tags[k])
				if v == "*" {
					in.Filters = append(in.Filters, ec2types.Filter{Name: aws.String("tag-key"), Values: []string{k}})
				} else {
					in.Filters = append(in.Filters, ec2types.Filter{Name: aws.String("tag:" + k), Values: []string{v}})
				}
				pairs = append(pairs, k+"="+v)
			}
			described = append(described, "tags "+strings.Join(pairs, ","))
		}
		if len(in.SubnetIds) == 0 && len(in.Filters) == 0 {
			continue
		}
		out, err := cl.ec2.DescribeSubnets(ctx, in)
		if err != nil && recovery.ErrorCode(err) != "InvalidSubnetID.NotFound" {
			f.fail("finding Karpenter's subnets (%s): %s", strings.Join(described, "; "), shortErr(err))
			return
		}
		if out != nil {
			for _, s := range out.Subnets {
				matched[aws.ToString(s.SubnetId)] = true
			}
		}
	}
	sel := strings.Join(described, "; ")
	if len(matched) == 0 {
		f.fail("Karpenter's EC2NodeClass selects subnets by %s, and no subnet in %s matches: Karpenter could launch no nodes (tag the subnets %s)",
			sel, t.DR.Region, strings.Join(ids, ", "))
		return
	}
	var untagged []string
	for _, s := range subnets {
		if !matched[aws.ToString(s.SubnetId)] {
			untagged = append(untagged, aws.ToString(s.SubnetId))
		}
	}
	sort.Strings(untagged)
	if len(untagged) > 0 {
		f.warn("subnet(s) %s lack Karpenter's discovery selector (%s): Karpenter launches nodes only in %s", strings.Join(untagged, ", "), sel, strings.Join(sortedKeys(matched), ", "))
		return
	}
	f.pass("Karpenter's subnet selector (%s) finds %s", sel, strings.Join(sortedKeys(matched), ", "))
}

// describeSubnets reads subnets by id; when some are missing it asks one
// by one so every missing id is named.
func describeSubnets(ctx context.Context, api EC2API, ids []string, f *findings) ([]ec2types.Subnet, []string) {
	out, err := api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: ids})
	if err == nil {
		return out.Subnets, nil
	}
	if recovery.ErrorCode(err) != "InvalidSubnetID.NotFound" {
		f.fail("reading subnets %s: %s", strings.Join(ids, ", "), shortErr(err))
		return nil, nil
	}
	var found []ec2types.Subnet
	var missing []string
	for _, id := range ids {
		one, err := api.DescribeSubnets(ctx, &ec2.DescribeSubnetsInput{SubnetIds: []string{id}})
		switch {
		case recovery.ErrorCode(err) == "InvalidSubnetID.NotFound":
			missing = append(missing, id)
		case err != nil:
			f.fail("reading subnet %s: %s", id, shortErr(err))
		default:
			found = append(found, one.Subnets...)
		}
	}
	return found, missing
}
