package awsfake_test

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/drbot/drbot/test/awsfake"
)

func createCluster(t *testing.T, c *eks.Client, name string, mode ekstypes.AuthenticationMode) *ekstypes.Cluster {
	t.Helper()
	in := &eks.CreateClusterInput{
		Name:               aws.String(name),
		RoleArn:            aws.String("arn:aws:iam::123456789012:role/eks-cluster"),
		Version:            aws.String("1.34"),
		ResourcesVpcConfig: &ekstypes.VpcConfigRequest{SubnetIds: []string{"subnet-a", "subnet-b"}},
		Tags:               map[string]string{"drbot/run": "r1"},
	}
	if mode != "" {
		in.AccessConfig = &ekstypes.CreateAccessConfigRequest{AuthenticationMode: mode}
	}
	out, err := c.CreateCluster(ctx(t), in)
	if err != nil {
		t.Fatalf("CreateCluster(%s): %v", name, err)
	}
	return out.Cluster
}

func fastActiveWaiter(o *eks.ClusterActiveWaiterOptions) {
	o.MinDelay, o.MaxDelay = 50*time.Millisecond, 200*time.Millisecond
}

func TestCreateClusterGoesActiveAndReportsBackingEndpointAndCA(t *testing.T) {
	srv := newServer(t, awsfake.Options{EKSCreateDelay: 300 * time.Millisecond})
	caPEM := []byte("-----BEGIN CERTIFICATE-----\nMIIBmadeup\n-----END CERTIFICATE-----\n")
	srv.BackCluster(drRegion, "dr", "https://127.0.0.1:6443", caPEM)
	c := eks.NewFromConfig(srv.Config(drRegion, adminKey, adminSec))

	created := createCluster(t, c, "dr", ekstypes.AuthenticationModeApi)
	if created.Status != ekstypes.ClusterStatusCreating {
		t.Fatalf("status right after CreateCluster = %s, want CREATING", created.Status)
	}
	if created.Endpoint != nil {
		t.Fatalf("a CREATING cluster reported endpoint %q", *created.Endpoint)
	}

	out, err := eks.NewClusterActiveWaiter(c, fastActiveWaiter).WaitForOutput(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")}, 10*time.Second)
	if err != nil {
		t.Fatalf("waiting for ACTIVE: %v", err)
	}
	cl := out.Cluster
	if cl.Status != ekstypes.ClusterStatusActive || aws.ToString(cl.Endpoint) != "https://127.0.0.1:6443" {
		t.Fatalf("cluster = %s at %q, want ACTIVE at the backing endpoint", cl.Status, aws.ToString(cl.Endpoint))
	}
	ca, err := base64.StdEncoding.DecodeString(aws.ToString(cl.CertificateAuthority.Data))
	if err != nil || string(ca) != string(caPEM) {
		t.Fatalf("CA data decodes to %q (%v), want the backing CA PEM", ca, err)
	}
	if cl.AccessConfig.AuthenticationMode != ekstypes.AuthenticationModeApi {
		t.Errorf("authentication mode = %s, want API", cl.AccessConfig.AuthenticationMode)
	}
	if cl.Arn == nil || *cl.Arn != "arn:aws:eks:eu-west-1:123456789012:cluster/dr" || cl.CreatedAt == nil {
		t.Errorf("arn %v createdAt %v", aws.ToString(cl.Arn), cl.CreatedAt)
	}
	if srv.CallsTo("eks", "DescribeCluster") < 1 {
		t.Errorf("call log has no DescribeCluster: %+v", srv.Calls())
	}
}

func TestDuplicateCreateClusterIsResourceInUseAndClustersAreRegional(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	c := eks.NewFromConfig(srv.Config(drRegion, adminKey, adminSec))
	createCluster(t, c, "dr", "")

	_, err := c.CreateCluster(ctx(t), &eks.CreateClusterInput{
		Name: aws.String("dr"), RoleArn: aws.String("arn:aws:iam::123456789012:role/eks-cluster"),
		ResourcesVpcConfig: &ekstypes.VpcConfigRequest{SubnetIds: []string{"subnet-a", "subnet-b"}},
	})
	var inUse *ekstypes.ResourceInUseException
	if !errors.As(err, &inUse) || aws.ToString(inUse.ClusterName) != "dr" {
		t.Fatalf("second CreateCluster error = %v, want ResourceInUseException naming the cluster", err)
	}

	other := eks.NewFromConfig(srv.Config(region, adminKey, adminSec))
	_, err = other.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")})
	var notFound *ekstypes.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("DescribeCluster from us-east-1 = %v, want ResourceNotFoundException", err)
	}
	list, err := other.ListClusters(ctx(t), &eks.ListClustersInput{})
	if err != nil || len(list.Clusters) != 0 {
		t.Fatalf("ListClusters in us-east-1 = %v, %v; want none", list, err)
	}
}

func TestAccessEntriesNeedAPIAuthModeAndKeepAssociatedPolicies(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	c := eks.NewFromConfig(srv.Config(drRegion, adminKey, adminSec))
	createCluster(t, c, "dr", "") // CONFIG_MAP, the API default

	entry := &eks.CreateAccessEntryInput{ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotRole), KubernetesGroups: []string{"drbot"}}
	_, err := c.CreateAccessEntry(ctx(t), entry)
	var invalid *ekstypes.InvalidRequestException
	if !errors.As(err, &invalid) {
		t.Fatalf("CreateAccessEntry on a CONFIG_MAP cluster = %v, want InvalidRequestException", err)
	}

	upd, err := c.UpdateClusterConfig(ctx(t), &eks.UpdateClusterConfigInput{
		Name:         aws.String("dr"),
		AccessConfig: &ekstypes.UpdateAccessConfigRequest{AuthenticationMode: ekstypes.AuthenticationModeApiAndConfigMap},
	})
	if err != nil || upd.Update.Type != ekstypes.UpdateTypeAccessConfigUpdate {
		t.Fatalf("UpdateClusterConfig = %+v, %v", upd, err)
	}
	du, err := c.DescribeUpdate(ctx(t), &eks.DescribeUpdateInput{Name: aws.String("dr"), UpdateId: upd.Update.Id})
	if err != nil || du.Update.Status != ekstypes.UpdateStatusSuccessful {
		t.Fatalf("DescribeUpdate = %+v, %v; want Successful", du, err)
	}

	if _, err := c.CreateAccessEntry(ctx(t), entry); err != nil {
		t.Fatalf("CreateAccessEntry after the mode change: %v", err)
	}
	_, err = c.CreateAccessEntry(ctx(t), entry)
	var inUse *ekstypes.ResourceInUseException
	if !errors.As(err, &inUse) {
		t.Fatalf("duplicate CreateAccessEntry = %v, want ResourceInUseException", err)
	}
	_, err = c.CreateAccessEntry(ctx(t), &eks.CreateAccessEntryInput{ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotArn)})
	var badParam *ekstypes.InvalidParameterException
	if !errors.As(err, &badParam) {
		t.Fatalf("access entry for an STS session ARN = %v, want InvalidParameterException", err)
	}

	assoc, err := c.AssociateAccessPolicy(ctx(t), &eks.AssociateAccessPolicyInput{
		ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotRole),
		PolicyArn:   aws.String("arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"),
		AccessScope: &ekstypes.AccessScope{Type: ekstypes.AccessScopeTypeCluster},
	})
	if err != nil || assoc.AssociatedAccessPolicy.AccessScope.Type != ekstypes.AccessScopeTypeCluster {
		t.Fatalf("AssociateAccessPolicy = %+v, %v", assoc, err)
	}
	pols, err := c.ListAssociatedAccessPolicies(ctx(t), &eks.ListAssociatedAccessPoliciesInput{ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotRole)})
	if err != nil || len(pols.AssociatedAccessPolicies) != 1 || aws.ToString(pols.AssociatedAccessPolicies[0].PolicyArn) != "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy" {
		t.Fatalf("ListAssociatedAccessPolicies = %+v, %v", pols, err)
	}

	got, err := c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotRole)})
	if err != nil {
		t.Fatalf("DescribeAccessEntry: %v", err)
	}
	if u := aws.ToString(got.AccessEntry.Username); u != "arn:aws:sts::123456789012:assumed-role/drbot/{{SessionName}}" {
		t.Errorf("default username = %q, want EKS's assumed-role template", u)
	}

	// The creator (admin) got a bootstrap entry when the mode changed.
	list, err := c.ListAccessEntries(ctx(t), &eks.ListAccessEntriesInput{ClusterName: aws.String("dr")})
	if err != nil || len(list.AccessEntries) != 2 || list.AccessEntries[0] != adminArn || list.AccessEntries[1] != drbotRole {
		t.Fatalf("ListAccessEntries = %v, %v; want the creator then drbot", list, err)
	}

	if _, err := c.DeleteAccessEntry(ctx(t), &eks.DeleteAccessEntryInput{ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotRole)}); err != nil {
		t.Fatalf("DeleteAccessEntry: %v", err)
	}
	_, err = c.DescribeAccessEntry(ctx(t), &eks.DescribeAccessEntryInput{ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotRole)})
	var notFound *ekstypes.ResourceNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("DescribeAccessEntry after delete = %v, want ResourceNotFoundException", err)
	}
}

func TestPilotLightNodegroupScalesUpThroughUpdateNodegroupConfig(t *testing.T) {
	srv := newServer(t, awsfake.Options{EKSUpdateDelay: 200 * time.Millisecond})
	if _, err := srv.AddCluster(drRegion, awsfake.ExistingCluster{Name: "pilot"}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddNodegroup(drRegion, "pilot", awsfake.ExistingNodegroup{Name: "general", MinSize: 0, MaxSize: 1, DesiredSize: 0}); err != nil {
		t.Fatal(err)
	}
	c := eks.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))

	_, err := c.UpdateNodegroupConfig(ctx(t), &eks.UpdateNodegroupConfigInput{
		ClusterName: aws.String("pilot"), NodegroupName: aws.String("general"),
		ScalingConfig: &ekstypes.NodegroupScalingConfig{DesiredSize: aws.Int32(3)},
	})
	var badParam *ekstypes.InvalidParameterException
	if !errors.As(err, &badParam) {
		t.Fatalf("desired 3 > max 1 = %v, want InvalidParameterException", err)
	}

	upd, err := c.UpdateNodegroupConfig(ctx(t), &eks.UpdateNodegroupConfigInput{
		ClusterName: aws.String("pilot"), NodegroupName: aws.String("general"),
		ScalingConfig: &ekstypes.NodegroupScalingConfig{MinSize: aws.Int32(2), MaxSize: aws.Int32(10), DesiredSize: aws.Int32(3)},
	})
	if err != nil || upd.Update.Status != ekstypes.UpdateStatusInProgress {
		t.Fatalf("UpdateNodegroupConfig = %+v, %v; want InProgress", upd, err)
	}
	ng, err := c.DescribeNodegroup(ctx(t), &eks.DescribeNodegroupInput{ClusterName: aws.String("pilot"), NodegroupName: aws.String("general")})
	if err != nil || ng.Nodegroup.Status != ekstypes.NodegroupStatusUpdating {
		t.Fatalf("DescribeNodegroup during update = %v, %v; want UPDATING", ng, err)
	}
	waited, err := eks.NewNodegroupActiveWaiter(c, func(o *eks.NodegroupActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
	}).WaitForOutput(ctx(t), &eks.DescribeNodegroupInput{ClusterName: aws.String("pilot"), NodegroupName: aws.String("general")}, 5*time.Second)
	if err != nil {
		t.Fatalf("waiting for the node group: %v", err)
	}
	if sc := waited.Nodegroup.ScalingConfig; aws.ToInt32(sc.DesiredSize) != 3 || aws.ToInt32(sc.MinSize) != 2 || aws.ToInt32(sc.MaxSize) != 10 {
		t.Fatalf("scaling after update = %+v", sc)
	}
	du, err := c.DescribeUpdate(ctx(t), &eks.DescribeUpdateInput{Name: aws.String("pilot"), NodegroupName: aws.String("general"), UpdateId: upd.Update.Id})
	if err != nil || du.Update.Status != ekstypes.UpdateStatusSuccessful {
		t.Fatalf("DescribeUpdate = %+v, %v", du, err)
	}
	if min, max, desired, ok := srv.NodegroupScaling(drRegion, "pilot", "general"); !ok || min != 2 || max != 10 || desired != 3 {
		t.Fatalf("NodegroupScaling = %d/%d/%d %v", min, max, desired, ok)
	}
	names, err := c.ListNodegroups(ctx(t), &eks.ListNodegroupsInput{ClusterName: aws.String("pilot")})
	if err != nil || len(names.Nodegroups) != 1 || names.Nodegroups[0] != "general" {
		t.Fatalf("ListNodegroups = %v, %v", names, err)
	}
}

func TestNodegroupAddonAndPodIdentityLifecycle(t *testing.T) {
	srv := newServer(t, awsfake.Options{NodegroupCreateDelay: 100 * time.Millisecond})
	c := eks.NewFromConfig(srv.Config(drRegion, adminKey, adminSec))
	createCluster(t, c, "dr", ekstypes.AuthenticationModeApi)

	ng, err := c.CreateNodegroup(ctx(t), &eks.CreateNodegroupInput{
		ClusterName: aws.String("dr"), NodegroupName: aws.String("system"),
		NodeRole: aws.String("arn:aws:iam::123456789012:role/node"), Subnets: []string{"subnet-a"},
		ScalingConfig: &ekstypes.NodegroupScalingConfig{MinSize: aws.Int32(1), MaxSize: aws.Int32(3), DesiredSize: aws.Int32(2)},
	})
	if err != nil || ng.Nodegroup.Status != ekstypes.NodegroupStatusCreating {
		t.Fatalf("CreateNodegroup = %v, %v", ng, err)
	}
	if _, err := eks.NewNodegroupActiveWaiter(c, func(o *eks.NodegroupActiveWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
	}).WaitForOutput(ctx(t), &eks.DescribeNodegroupInput{ClusterName: aws.String("dr"), NodegroupName: aws.String("system")}, 5*time.Second); err != nil {
		t.Fatalf("node group never ACTIVE: %v", err)
	}

	add, err := c.CreateAddon(ctx(t), &eks.CreateAddonInput{ClusterName: aws.String("dr"), AddonName: aws.String("eks-pod-identity-agent")})
	if err != nil || add.Addon.Status != ekstypes.AddonStatusActive {
		t.Fatalf("CreateAddon = %v, %v", add, err)
	}
	if _, err := c.CreateAddon(ctx(t), &eks.CreateAddonInput{ClusterName: aws.String("dr"), AddonName: aws.String("eks-pod-identity-agent")}); errorCode(err) != "ResourceInUseException" {
		t.Fatalf("duplicate CreateAddon = %v", err)
	}
	addons, err := c.ListAddons(ctx(t), &eks.ListAddonsInput{ClusterName: aws.String("dr")})
	if err != nil || len(addons.Addons) != 1 {
		t.Fatalf("ListAddons = %v, %v", addons, err)
	}

	pia, err := c.CreatePodIdentityAssociation(ctx(t), &eks.CreatePodIdentityAssociationInput{
		ClusterName: aws.String("dr"), Namespace: aws.String("kube-system"), ServiceAccount: aws.String("karpenter"),
		RoleArn: aws.String("arn:aws:iam::123456789012:role/karpenter"),
	})
	if err != nil {
		t.Fatalf("CreatePodIdentityAssociation: %v", err)
	}
	got, err := c.DescribePodIdentityAssociation(ctx(t), &eks.DescribePodIdentityAssociationInput{ClusterName: aws.String("dr"), AssociationId: pia.Association.AssociationId})
	if err != nil || aws.ToString(got.Association.RoleArn) != "arn:aws:iam::123456789012:role/karpenter" {
		t.Fatalf("DescribePodIdentityAssociation = %v, %v", got, err)
	}
	list, err := c.ListPodIdentityAssociations(ctx(t), &eks.ListPodIdentityAssociationsInput{ClusterName: aws.String("dr"), Namespace: aws.String("kube-system")})
	if err != nil || len(list.Associations) != 1 || aws.ToString(list.Associations[0].ServiceAccount) != "karpenter" {
		t.Fatalf("ListPodIdentityAssociations = %v, %v", list, err)
	}
	if _, err := c.CreatePodIdentityAssociation(ctx(t), &eks.CreatePodIdentityAssociationInput{
		ClusterName: aws.String("dr"), Namespace: aws.String("kube-system"), ServiceAccount: aws.String("karpenter"),
		RoleArn: aws.String("arn:aws:iam::123456789012:role/other"),
	}); errorCode(err) != "ResourceInUseException" {
		t.Fatalf("second association for the same service account = %v, want ResourceInUseException", err)
	}

	_, err = c.DeleteCluster(ctx(t), &eks.DeleteClusterInput{Name: aws.String("dr")})
	if errorCode(err) != "ResourceInUseException" {
		t.Fatalf("DeleteCluster with a node group = %v, want ResourceInUseException", err)
	}
	if _, err := c.DeleteNodegroup(ctx(t), &eks.DeleteNodegroupInput{ClusterName: aws.String("dr"), NodegroupName: aws.String("system")}); err != nil {
		t.Fatalf("DeleteNodegroup: %v", err)
	}
	if _, err := c.DeleteCluster(ctx(t), &eks.DeleteClusterInput{Name: aws.String("dr")}); err != nil {
		t.Fatalf("DeleteCluster: %v", err)
	}
	if err := eks.NewClusterDeletedWaiter(c, func(o *eks.ClusterDeletedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
	}).Wait(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")}, 5*time.Second); err != nil {
		t.Fatalf("ClusterDeleted waiter: %v", err)
	}
}

func TestCreateClusterRetriedWithSameClientRequestTokenIsIdempotent(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	c := eks.NewFromConfig(srv.Config(drRegion, adminKey, adminSec))
	in := &eks.CreateClusterInput{
		Name: aws.String("dr"), RoleArn: aws.String("arn:aws:iam::123456789012:role/eks-cluster"),
		ResourcesVpcConfig: &ekstypes.VpcConfigRequest{SubnetIds: []string{"subnet-a", "subnet-b"}},
		ClientRequestToken: aws.String("run-1-cluster-create"),
	}
	if _, err := c.CreateCluster(ctx(t), in); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateCluster(ctx(t), in); err != nil {
		t.Fatalf("CreateCluster repeated with its clientRequestToken = %v, want success", err)
	}
	// Once that cluster is gone, the same token still answers with the
	// original result and creates nothing, as AWS's idempotency does.
	if _, err := c.DeleteCluster(ctx(t), &eks.DeleteClusterInput{Name: aws.String("dr")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")}); err == nil {
		t.Fatal("the deleted cluster is still described")
	}
	again, err := c.CreateCluster(ctx(t), in)
	if err != nil || again.Cluster == nil || aws.ToString(again.Cluster.Name) != "dr" {
		t.Fatalf("CreateCluster with the token of a deleted cluster = %+v, %v; want the original answer", again, err)
	}
	if _, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")}); err == nil {
		t.Error("a request repeating an old token created a cluster")
	}
	in.ClientRequestToken = aws.String("run-1-cluster-create-2")
	if _, err := c.CreateCluster(ctx(t), in); err != nil {
		t.Fatalf("CreateCluster with a new token = %v", err)
	}
	if _, err := c.DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")}); err != nil {
		t.Errorf("a new token did not create the cluster: %v", err)
	}
}

func TestDeniedActionIsAccessDenied(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	srv.DenyAction(drbotRole, "eks:CreateCluster")
	c := eks.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))
	_, err := c.CreateCluster(ctx(t), &eks.CreateClusterInput{
		Name: aws.String("dr"), RoleArn: aws.String("arn:aws:iam::123456789012:role/eks-cluster"),
		ResourcesVpcConfig: &ekstypes.VpcConfigRequest{SubnetIds: []string{"subnet-a", "subnet-b"}},
	})
	var denied *ekstypes.AccessDeniedException
	if !errors.As(err, &denied) {
		t.Fatalf("CreateCluster by a denied role = %v, want AccessDeniedException", err)
	}
	if _, err := c.ListClusters(ctx(t), &eks.ListClustersInput{}); err != nil {
		t.Fatalf("an action that was not denied failed: %v", err)
	}
}
