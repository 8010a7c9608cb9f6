package awsfake_test

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/servicequotas"

	"github.com/drbot/drbot/test/awsfake"
)

func TestECRDescribeImagesFindsImagesByTagAndDigestPerRegion(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	digest := srv.AddImage(drRegion, "team/api", "", "1.2.3", "latest")
	srv.AddImage(region, "team/api", "", "1.2.4")
	c := ecr.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))

	out, err := c.DescribeImages(ctx(t), &ecr.DescribeImagesInput{
		RepositoryName: aws.String("team/api"),
		ImageIds:       []ecrtypes.ImageIdentifier{{ImageTag: aws.String("1.2.3")}, {ImageDigest: aws.String(digest)}},
	})
	if err != nil {
		t.Fatalf("DescribeImages: %v", err)
	}
	if len(out.ImageDetails) != 2 || aws.ToString(out.ImageDetails[0].ImageDigest) != digest || len(out.ImageDetails[1].ImageTags) != 2 {
		t.Fatalf("image details = %+v, want the image twice with tags 1.2.3 and latest", out.ImageDetails)
	}

	// 1.2.4 was pushed only in the primary region: the DR region lacks it.
	_, err = c.DescribeImages(ctx(t), &ecr.DescribeImagesInput{
		RepositoryName: aws.String("team/api"), ImageIds: []ecrtypes.ImageIdentifier{{ImageTag: aws.String("1.2.4")}},
	})
	var inf *ecrtypes.ImageNotFoundException
	if !errors.As(err, &inf) {
		t.Fatalf("DescribeImages of a tag missing in the DR region: err = %v, want ImageNotFoundException", err)
	}
	_, err = c.DescribeImages(ctx(t), &ecr.DescribeImagesInput{RepositoryName: aws.String("team/none")})
	var rnf *ecrtypes.RepositoryNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("DescribeImages of a missing repository: err = %v, want RepositoryNotFoundException", err)
	}

	pg := ecr.NewDescribeImagesPaginator(c, &ecr.DescribeImagesInput{RepositoryName: aws.String("team/api"), MaxResults: aws.Int32(1)})
	n := 0
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("listing images: %v", err)
		}
		n += len(page.ImageDetails)
	}
	if n != 1 {
		t.Errorf("listed %d images in the DR repository, want 1", n)
	}
	repos, err := c.DescribeRepositories(ctx(t), &ecr.DescribeRepositoriesInput{})
	if err != nil || len(repos.Repositories) != 1 || aws.ToString(repos.Repositories[0].RepositoryUri) != srv.RegistryHost(drRegion)+"/team/api" {
		t.Fatalf("DescribeRepositories = %+v, %v; want team/api in the DR registry", repos, err)
	}
	if srv.CallsTo("ecr", "DescribeImages") != 4 {
		t.Errorf("call log has %d DescribeImages, want 4", srv.CallsTo("ecr", "DescribeImages"))
	}
}

func TestServiceQuotasAnswerDefaultsUntilSet(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	c := servicequotas.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))
	get := func(svc, code string) float64 {
		t.Helper()
		out, err := c.GetServiceQuota(ctx(t), &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String(svc), QuotaCode: aws.String(code)})
		if err != nil {
			t.Fatalf("GetServiceQuota %s %s: %v", svc, code, err)
		}
		return aws.ToFloat64(out.Quota.Value)
	}
	if v := get("eks", awsfake.QuotaEKSClusters); v != 100 {
		t.Errorf("default EKS clusters quota = %v, want 100", v)
	}
	srv.SetServiceQuota(drRegion, "ec2", awsfake.QuotaEC2OnDemand, 64)
	srv.SetServiceQuota(region, "ec2", awsfake.QuotaEC2OnDemand, 1024)
	if v := get("ec2", awsfake.QuotaEC2OnDemand); v != 64 {
		t.Errorf("vCPU quota in the DR region = %v, want the 64 set there", v)
	}
	def, err := c.GetAWSDefaultServiceQuota(ctx(t), &servicequotas.GetAWSDefaultServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String(awsfake.QuotaEC2OnDemand)})
	if err != nil || aws.ToFloat64(def.Quota.Value) != 5 {
		t.Errorf("AWS default vCPU quota = %+v, %v; want 5", def, err)
	}
	_, err = c.GetServiceQuota(ctx(t), &servicequotas.GetServiceQuotaInput{ServiceCode: aws.String("ec2"), QuotaCode: aws.String("L-NOPE")})
	if errorCode(err) != "NoSuchResourceException" {
		t.Errorf("unknown quota: err = %v, want NoSuchResourceException", err)
	}
}

func TestEC2DescribesVPCsSubnetsAndInstanceTypesWithFilters(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	srv.AddVPC(drRegion, awsfake.VPC{ID: "vpc-0dr", Tags: map[string]string{"Name": "dr"}})
	srv.AddSubnet(drRegion, awsfake.Subnet{ID: "subnet-a", VpcID: "vpc-0dr", Tags: map[string]string{"karpenter.sh/discovery": "dr"}})
	srv.AddSubnet(drRegion, awsfake.Subnet{ID: "subnet-b", VpcID: "vpc-0dr"})
	srv.AddSubnet(region, awsfake.Subnet{ID: "subnet-p", VpcID: "vpc-0p"})
	c := ec2.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))

	vpcs, err := c.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-0dr"}})
	if err != nil || len(vpcs.Vpcs) != 1 || len(vpcs.Vpcs[0].Tags) != 1 || vpcs.Vpcs[0].State != ec2types.VpcStateAvailable {
		t.Fatalf("DescribeVpcs = %+v, %v; want vpc-0dr, available, one tag", vpcs, err)
	}
	subs, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-a", "subnet-b"}})
	if err != nil || len(subs.Subnets) != 2 || aws.ToString(subs.Subnets[0].VpcId) != "vpc-0dr" {
		t.Fatalf("DescribeSubnets by id = %+v, %v; want subnet-a and subnet-b in vpc-0dr", subs, err)
	}
	tagged, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{
		{Name: aws.String("vpc-id"), Values: []string{"vpc-0dr"}},
		{Name: aws.String("tag:karpenter.sh/discovery"), Values: []string{"dr"}},
	}})
	if err != nil || len(tagged.Subnets) != 1 || aws.ToString(tagged.Subnets[0].SubnetId) != "subnet-a" {
		t.Fatalf("DescribeSubnets by discovery tag = %+v, %v; want only subnet-a", tagged, err)
	}
	_, err = c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{SubnetIds: []string{"subnet-p"}})
	if errorCode(err) != "InvalidSubnetID.NotFound" {
		t.Fatalf("a subnet of another region: err = %v, want InvalidSubnetID.NotFound", err)
	}
	_, err = c.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{VpcIds: []string{"vpc-gone"}})
	if errorCode(err) != "InvalidVpcID.NotFound" {
		t.Fatalf("a missing VPC: err = %v, want InvalidVpcID.NotFound", err)
	}
	it, err := c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"m6i.xlarge"}})
	if err != nil || len(it.InstanceTypes) != 1 || aws.ToInt32(it.InstanceTypes[0].VCpuInfo.DefaultVCpus) != 4 {
		t.Fatalf("DescribeInstanceTypes = %+v, %v; want m6i.xlarge with 4 vCPUs", it, err)
	}
	_, err = c.DescribeInstanceTypes(ctx(t), &ec2.DescribeInstanceTypesInput{InstanceTypes: []ec2types.InstanceType{"x9.huge"}})
	if errorCode(err) != "InvalidInstanceType" {
		t.Fatalf("an unknown instance type: err = %v, want InvalidInstanceType", err)
	}
}

func TestEC2ErrorsWrittenByTheServerDecodeInTheEC2Shape(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	srv.Inject("ec2", "DescribeVpcs", awsfake.Fault{Code: "UnauthorizedOperation", Status: 403, Times: 1})
	c := ec2.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))
	_, err := c.DescribeVpcs(ctx(t), &ec2.DescribeVpcsInput{})
	if errorCode(err) != "UnauthorizedOperation" {
		t.Fatalf("injected fault: err = %v, want code UnauthorizedOperation decoded by the EC2 client", err)
	}
}

func TestReadinessServicesRecordUnmodelledRequests(t *testing.T) {
	srv := newServer(t, awsfake.Options{AllowUnexpected: true})
	c := ec2.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))
	_, err := c.DescribeSubnets(ctx(t), &ec2.DescribeSubnetsInput{Filters: []ec2types.Filter{{Name: aws.String("ipv6-native"), Values: []string{"true"}}}})
	if err == nil {
		t.Fatal("an unmodelled filter was answered, want an error")
	}
	_, err = c.DescribeInstances(ctx(t), &ec2.DescribeInstancesInput{})
	if err == nil {
		t.Fatal("an unmodelled EC2 action was answered, want an error")
	}
	if n := len(srv.Unexpected()); n != 2 {
		t.Errorf("Unexpected() has %d entries, want 2: %v", n, srv.Unexpected())
	}
}

func TestSimulatePrincipalPolicyPagesItsResultsForThePaginator(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	srv.DenyAction(drbotRole, "ecr:DescribeImages")
	c := iam.NewFromConfig(srv.Config(region, drbotKey, drbotSec))
	pg := iam.NewSimulatePrincipalPolicyPaginator(c, &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(drbotRole),
		ActionNames:     []string{"eks:ListClusters", "ec2:DescribeVpcs", "ecr:DescribeImages", "servicequotas:GetServiceQuota", "ec2:DescribeSubnets"},
		MaxItems:        aws.Int32(2),
	})
	var denied []string
	n := 0
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("simulating: %v", err)
		}
		for _, r := range page.EvaluationResults {
			n++
			if r.EvalDecision != iamtypes.PolicyEvaluationDecisionTypeAllowed {
				denied = append(denied, aws.ToString(r.EvalActionName))
			}
		}
	}
	if n != 5 || len(denied) != 1 || denied[0] != "ecr:DescribeImages" {
		t.Errorf("over pages: %d results, denied %v; want 5 results with only ecr:DescribeImages denied", n, denied)
	}
	if calls := srv.CallsTo("iam", "SimulatePrincipalPolicy"); calls != 3 {
		t.Errorf("SimulatePrincipalPolicy was called %d times, want 3 pages of at most 2", calls)
	}
}
