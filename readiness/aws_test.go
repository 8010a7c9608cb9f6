package readiness_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/permissions"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
	"github.com/drbot/drbot/test/gitlabfake"
)

// Made-up identities and names of the AWS world.
const (
	awsAccount      = awsfake.DefaultAccountID
	awsPrimaryRg    = "us-east-1"
	awsDRRg         = "eu-west-1"
	awsDrbotKey     = "AKIDREADINESS0000001"
	awsDrbotSecret  = "made-up-secret-for-readiness-tests"
	awsDrbotSession = "arn:aws:sts::123456789012:assumed-role/drbot/readiness"
	awsDrbotRole    = "arn:aws:iam::123456789012:role/drbot"
	awsGLToken      = "glpat-made-up-readiness"
	awsGLProject    = "platform/apps"
	awsGatewaySvc   = "istio-ingress/gateway"
	awsSidecarSHA   = "sha256:5f2b0c1e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c"
)

var (
	awsPrimaryECR = awsAccount + ".dkr.ecr." + awsPrimaryRg + ".amazonaws.com"
	awsDRECR      = awsAccount + ".dkr.ecr." + awsDRRg + ".amazonaws.com"
)

// awsTemplates are the primary's Application awsTemplates: images in a
// valuesObject map, a values string, a digest, a parameter that overrides
// a tag, and a plain-manifest Application with no Helm values.
func awsTemplates() map[string]string {
	return map[string]string{
		"apps/primary/payments/api.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: api, namespace: argocd}
spec:
  project: default
  destination: {name: primary-eks, namespace: payments}
  source:
    repoURL: https://charts.example.com
    chart: api
    targetRevision: 1.0.0
    helm:
      valuesObject:
        replicaCount: 3
        image:
          repository: ` + awsPrimaryECR + `/team/api
          tag: "1.2.3"
          pullPolicy: IfNotPresent
`,
		"apps/primary/web/web.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: web, namespace: argocd}
spec:
  project: default
  destination: {name: primary-eks, namespace: web}
  source:
    repoURL: https://gitlab.example.com/platform/web.git
    path: chart
    targetRevision: main
    helm:
      values: |
        image: ` + awsDRECR + `/team/web:2.0.0
`,
		"apps/primary/payments/worker.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: worker, namespace: argocd}
spec:
  project: default
  destination: {name: primary-eks, namespace: payments}
  source:
    repoURL: https://charts.example.com
    chart: worker
    targetRevision: 2.1.0
    helm:
      parameters:
        - {name: image.tag, value: "1.0"}
      valuesObject:
        image: {repository: ` + awsPrimaryECR + `/team/worker, tag: "0.9"}
        sidecar:
          image: ` + awsDRECR + `/team/sidecar@` + awsSidecarSHA + `
`,
		"apps/primary/docs/docs.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: docs, namespace: argocd}
spec:
  project: default
  destination: {name: primary-eks, namespace: docs}
  source: {repoURL: https://gitlab.example.com/platform/docs.git, path: deploy, targetRevision: main}
`,
	}
}

// awsWorld is a DR setup where a recovery would work: images replicated,
// quotas and subnets in place, every entry point on the primary's load
// balancer.
type awsWorld struct {
	t        *testing.T
	aws      *awsfake.Server
	gl       *gitlabfake.Server
	cfg      *config.Config
	zone     string
	primary  string // DNS name of the primary's gateway load balancer
	lbARN    string // its ARN
	checks   []readiness.Check
	gitlabAP gitops.GitLabAPI
}

func newAWSWorld(t *testing.T) *awsWorld {
	t.Helper()
	w := &awsWorld{t: t, aws: awsfake.New(t, awsfake.Options{StrictAuth: true}), gl: gitlabfake.New(t)}
	w.aws.AddIdentity(awsDrbotKey, awsDrbotSecret, awsDrbotSession)

	// ECR: the primary region's images replicated into the DR region.
	for _, rg := range []string{awsPrimaryRg, awsDRRg} {
		w.aws.AddImage(rg, "team/api", "", "1.2.3")
		w.aws.AddImage(rg, "team/worker", "", "1.0")
	}
	w.aws.AddImage(awsDRRg, "team/web", "", "2.0.0")
	w.aws.AddImage(awsDRRg, "team/sidecar", awsSidecarSHA, "v1")

	// Capacity: 10 × m6i.xlarge (40 vCPU) + NodePool limit 200 fit 512.
	w.aws.SetServiceQuota(awsDRRg, "ec2", awsfake.QuotaEC2OnDemand, 512)
	w.aws.AddVPC(awsDRRg, awsfake.VPC{ID: "vpc-0dr"})
	for _, id := range []string{"subnet-dr-a", "subnet-dr-b"} {
		w.aws.AddSubnet(awsDRRg, awsfake.Subnet{ID: id, VpcID: "vpc-0dr", Tags: map[string]string{"karpenter.sh/discovery": "prod-dr"}})
	}

	// The primary's gateway load balancer and the entry points on it.
	arn, dns, zoneID := w.aws.AddLoadBalancer(awsPrimaryRg, awsfake.LoadBalancer{
		Name: "k8s-istioing-gateway-0a1b2c", Type: "network",
		Tags: map[string]string{"elbv2.k8s.aws/cluster": "prod", "service.k8s.aws/stack": awsGatewaySvc, "service.k8s.aws/resource": "LoadBalancer"},
	})
	w.primary, w.lbARN = dns, arn
	e := w.aws.Edge()
	w.zone = e.AddHostedZone("example.com")
	e.AddRecord(w.zone, edge.RecordSet{Name: "app.example.com", Type: "A", AliasTarget: &edge.AliasTarget{DNSName: "dualstack." + dns + ".", HostedZoneID: zoneID}})
	dist := e.AddDistribution([]edge.Origin{{ID: "gateway", DomainName: dns}})
	api := e.AddRestAPI("public")
	res := e.AddRestIntegration(api, "/orders", "GET", "http://"+dns+"/orders")

	// GitLab: the primary's awsTemplates.
	w.gl.AddToken(awsGLToken)
	w.gl.AddProject(awsGLProject, "main")
	w.gl.CommitFiles(awsGLProject, "main", awsTemplates(), "primary awsTemplates")
	glc, err := gitlab.NewClient(awsGLToken, gitlab.WithBaseURL(w.gl.URL()+"/api/v4"))
	if err != nil {
		t.Fatalf("gitlab client: %v", err)
	}
	w.gitlabAP = gitops.FromClient(glc)

	gateway := config.Backend{Service: awsGatewaySvc}
	w.cfg = &config.Config{
		GitLab: config.GitLab{URL: w.gl.URL(), Project: awsGLProject, DefaultBranch: "main", TemplatesPath: "apps/primary", DRPath: "apps/dr"},
		Addons: map[string]config.Addon{config.AddonKarpenter: {Version: "1.6.2",
			NodePool:     map[string]any{"limits": map[string]any{"cpu": "200"}},
			EC2NodeClass: map[string]any{"subnetSelectorTerms": []any{map[string]any{"tags": map[string]any{"karpenter.sh/discovery": "${CLUSTER_NAME}"}}}},
		}},
		Targets: []config.Target{{
			Name:    "prod",
			Primary: config.Primary{Region: awsPrimaryRg, Cluster: "prod"},
			DR:      config.DR{Region: awsDRRg, ClusterName: "prod-dr"},
			Cluster: config.Cluster{Provider: config.ProviderEKS, EKS: &config.EKSCluster{
				Version: "1.31", RoleARN: "arn:aws:iam::123456789012:role/eks-cluster", SubnetIDs: []string{"subnet-dr-a", "subnet-dr-b"},
				NodeGroup: config.NodeGroup{InstanceTypes: []string{"m6i.large", "m6i.xlarge"}, Max: 10, Desired: 3, NodeRoleARN: "arn:aws:iam::123456789012:role/eks-node"},
			}},
			DrbotRoleARN: awsDrbotRole,
		}},
		Cutover: config.Cutover{
			Route53:    []config.Route53Record{{ZoneID: w.zone, Name: "app.example.com", Type: "A", Backend: gateway}},
			CloudFront: []config.CloudFrontOrigin{{DistributionID: dist, OriginID: "gateway", Backend: gateway}},
			APIGateway: []config.APIGatewayIntegration{{APIID: api, Kind: "rest", ResourceID: res, HTTPMethod: "GET", Stage: "prod", Backend: gateway}},
		},
	}
	awsFor := func(_ context.Context, region string) (aws.Config, error) {
		return w.aws.Config(region, awsDrbotKey, awsDrbotSecret), nil
	}
	w.checks = []readiness.Check{
		&readiness.ImagesCheck{Config: w.cfg, GitOps: gitops.New(w.cfg, w.gitlabAP, gitops.Options{}), AWS: awsFor},
		&readiness.CapacityCheck{Config: w.cfg, AWS: awsFor},
		&readiness.AWSPermissionsCheck{Config: w.cfg, AWS: awsFor, Statements: standard.Permissions().AWSStatements()},
		&readiness.CutoverCheck{Config: w.cfg, AWS: awsFor},
	}
	return w
}

// run runs the four AWS checks against the awsWorld's one target.
func (w *awsWorld) run() readiness.Report {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := readiness.Run(ctx, w.checks, []*config.Target{&w.cfg.Targets[0]}, "test")
	if len(rep.Results) != len(w.checks) {
		w.t.Fatalf("report has %d results, want one per check (%d): %+v", len(rep.Results), len(w.checks), rep.Results)
	}
	w.assertReadOnly()
	return rep
}

// assertReadOnly proves no check wrote anything: every AWS call is a
// Describe/List/Get/Simulate and every GitLab call a GET.
func (w *awsWorld) assertReadOnly() {
	w.t.Helper()
	for _, c := range w.aws.Calls() {
		ok := false
		for _, p := range []string{"Describe", "List", "Get", "Simulate"} {
			ok = ok || strings.HasPrefix(c.Operation, p)
		}
		if !ok {
			w.t.Errorf("a readiness check called %s:%s, which is not read-only", c.Service, c.Operation)
		}
	}
	for _, c := range w.gl.Calls() {
		if c.Method != "GET" {
			w.t.Errorf("a readiness check sent %s %s to GitLab", c.Method, c.Path)
		}
	}
}

func awsResult(t *testing.T, rep readiness.Report, check string) readiness.Result {
	t.Helper()
	for _, r := range rep.Results {
		if r.Check == check {
			return r
		}
	}
	t.Fatalf("no %s result in %+v", check, rep.Results)
	return readiness.Result{}
}

// awsOnlyFailing asserts that check fails and every other check passes, and
// returns the failing result.
func awsOnlyFailing(t *testing.T, rep readiness.Report, check string) readiness.Result {
	t.Helper()
	for _, r := range rep.Results {
		want := readiness.Pass
		if r.Check == check {
			want = readiness.Fail
		}
		if r.Status != want {
			t.Errorf("%s is %s, want %s; evidence:\n  %s", r.Label(), r.Status, want, strings.Join(r.Evidence, "\n  "))
		}
	}
	return awsResult(t, rep, check)
}

func awsEvidenceHas(t *testing.T, r readiness.Result, parts ...string) {
	t.Helper()
	all := strings.Join(r.Evidence, "\n")
	for _, p := range parts {
		if !strings.Contains(all, p) {
			t.Errorf("%s evidence lacks %q:\n  %s", r.Label(), p, strings.Join(r.Evidence, "\n  "))
		}
	}
}

func TestAWSChecksAllPassWhenTheDRRegionIsReady(t *testing.T) {
	w := newAWSWorld(t)
	rep := w.run()
	for _, r := range rep.Results {
		t.Logf("%s %s:\n  %s", r.Status.Emoji(), r.Label(), strings.Join(r.Evidence, "\n  "))
	}
	for _, r := range rep.Results {
		if r.Status != readiness.Pass {
			t.Errorf("%s is %s in a ready awsWorld; evidence:\n  %s", r.Label(), r.Status, strings.Join(r.Evidence, "\n  "))
		}
		if r.Target != "prod" {
			t.Errorf("%s has target %q, want prod", r.Check, r.Target)
		}
	}
	awsEvidenceHas(t, awsResult(t, rep, readiness.CheckImages), "4 of 4 ECR image(s)", "2 service(s) name images of the primary region's registry", "docs")
	awsEvidenceHas(t, awsResult(t, rep, readiness.CheckCapacity), "need 240 (node group 10 × 4 vCPU", "NodePool limit 200 vCPU", "of 512", "finds subnet-dr-a, subnet-dr-b")
	awsEvidenceHas(t, awsResult(t, rep, readiness.CheckCutover), "route53 app.example.com A", "cloudfront", "apigateway rest")
	if n := w.aws.CallsTo("ecr", "DescribeImages"); n != 4 {
		t.Errorf("DescribeImages was called %d times, want once per distinct image (4)", n)
	}
	// One call per distinct set of resources and condition values, not one
	// per declared statement (steps declare the same resources many times).
	if n, most := w.aws.CallsTo("iam", "SimulatePrincipalPolicy"), len(standard.Permissions().AWSStatements()); n == 0 || n >= most/2 {
		t.Errorf("SimulatePrincipalPolicy was called %d times for %d declared statements", n, most)
	}
}

func TestImagesCheckFailsNamingTheServiceWhoseImageWasNotReplicated(t *testing.T) {
	w := newAWSWorld(t)
	if !w.aws.RemoveImage(awsDRRg, "team/api", "1.2.3") {
		t.Fatal("the awsWorld has no team/api:1.2.3 in the DR region")
	}
	r := awsOnlyFailing(t, w.run(), readiness.CheckImages)
	awsEvidenceHas(t, r, "api: missing "+awsPrimaryECR+"/team/api:1.2.3 has no replica in "+awsDRRg, "repository team/api has no tag 1.2.3")
	if strings.Contains(strings.Join(r.Evidence, "\n"), "worker: missing") {
		t.Errorf("worker's images are all there, yet its name is in the evidence: %v", r.Evidence)
	}
	if r.Fix == "" {
		t.Error("a failing images awsResult has no fix")
	}
}

func TestImagesCheckUsesTheTagAParameterSets(t *testing.T) {
	w := newAWSWorld(t)
	// The values say 0.9 but the parameter says 1.0; only 1.0 matters.
	w.aws.RemoveImage(awsDRRg, "team/worker", "1.0")
	w.aws.AddImage(awsDRRg, "team/worker", "", "0.9")
	r := awsOnlyFailing(t, w.run(), readiness.CheckImages)
	awsEvidenceHas(t, r, "worker: missing "+awsPrimaryECR+"/team/worker:1.0")
}

func TestImagesCheckWarnsAboutImagesOutsideECR(t *testing.T) {
	w := newAWSWorld(t)
	w.gl.CommitFiles(awsGLProject, "main", map[string]string{"apps/primary/cache/redis.yaml": `apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: redis}
spec:
  destination: {name: primary-eks, namespace: cache}
  source: {repoURL: https://charts.bitnami.com/bitnami, chart: redis, targetRevision: 19.0.0, helm: {valuesObject: {image: {registry: docker.io, repository: bitnami/redis, tag: "7.2"}}}}
`}, "redis")
	r := awsResult(t, w.run(), readiness.CheckImages)
	if r.Status != readiness.Warn {
		t.Fatalf("images is %s with a docker.io image, want warn; evidence: %v", r.Status, r.Evidence)
	}
	awsEvidenceHas(t, r, "redis: docker.io/bitnami/redis:7.2 not in ECR")
}

func TestCapacityCheckFailsWhenTheVCPUQuotaIsBelowWhatTheClusterCanNeed(t *testing.T) {
	w := newAWSWorld(t)
	w.aws.SetServiceQuota(awsDRRg, "ec2", awsfake.QuotaEC2OnDemand, 128)
	r := awsOnlyFailing(t, w.run(), readiness.CheckCapacity)
	awsEvidenceHas(t, r, "can need 240", "applied quota L-1216C47A is 128")
}

func TestCapacityCheckFailsWhenTheEKSClusterQuotaIsUsedUp(t *testing.T) {
	w := newAWSWorld(t)
	w.aws.SetServiceQuota(awsDRRg, "eks", awsfake.QuotaEKSClusters, 1)
	if _, err := w.aws.AddCluster(awsDRRg, awsfake.ExistingCluster{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	r := awsOnlyFailing(t, w.run(), readiness.CheckCapacity)
	awsEvidenceHas(t, r, "1 exist, a recovery needs 2", "quota L-1194D53C is 1")
}

func TestCapacityCheckFailsWhenNoSubnetCarriesKarpentersDiscoveryTag(t *testing.T) {
	w := newAWSWorld(t)
	for _, id := range []string{"subnet-dr-a", "subnet-dr-b"} {
		w.aws.SetSubnetTag(awsDRRg, id, "karpenter.sh/discovery", "")
	}
	r := awsOnlyFailing(t, w.run(), readiness.CheckCapacity)
	awsEvidenceHas(t, r, "tags karpenter.sh/discovery=prod-dr", "no subnet in eu-west-1 matches", "subnet-dr-a")
}

func TestCapacityCheckFailsNamingAConfiguredSubnetThatIsGone(t *testing.T) {
	w := newAWSWorld(t)
	w.aws.RemoveSubnet(awsDRRg, "subnet-dr-b")
	r := awsOnlyFailing(t, w.run(), readiness.CheckCapacity)
	awsEvidenceHas(t, r, "subnet(s) subnet-dr-b from cluster.eks.subnet_ids do not exist in eu-west-1")
}

func TestPermissionsCheckListsTheDeniedActions(t *testing.T) {
	w := newAWSWorld(t)
	w.aws.DenyAction(awsDrbotRole, "eks:CreateCluster")
	w.aws.DenyAction(awsDrbotRole, "route53:ChangeResourceRecordSets")
	r := awsOnlyFailing(t, w.run(), readiness.CheckAWSPermissions)
	awsEvidenceHas(t, r, awsDrbotRole, "denied 2 action(s)", "eks:CreateCluster (explicitDeny)", "route53:ChangeResourceRecordSets (explicitDeny)")
}

func TestPermissionsCheckSimulatesTheActionsItIsGiven(t *testing.T) {
	w := newAWSWorld(t)
	w.aws.DenyAction(awsDrbotRole, "s3:PutObject")
	w.checks[2] = &readiness.AWSPermissionsCheck{Config: w.cfg, Statements: []permissions.AWS{
		{Actions: []string{"s3:PutObject"}, Resources: []string{"arn:aws:s3:::drbot-state/*"}},
		{Actions: []string{"eks:DescribeCluster"}, Resources: []string{"arn:aws:eks:${DR_REGION}:${ACCOUNT_ID}:cluster/${DR_CLUSTER}"}},
	},
		AWS: func(_ context.Context, region string) (aws.Config, error) {
			return w.aws.Config(region, awsDrbotKey, awsDrbotSecret), nil
		}}
	r := awsOnlyFailing(t, w.run(), readiness.CheckAWSPermissions)
	awsEvidenceHas(t, r, "denied 1 action(s): s3:PutObject", "1 of 2 action(s) allowed")
}

func TestCutoverCheckFailsWhenADNSRecordWasMovedOffThePrimary(t *testing.T) {
	w := newAWSWorld(t)
	w.aws.Edge().AddRecord(w.zone, edge.RecordSet{Name: "app.example.com", Type: "A",
		AliasTarget: &edge.AliasTarget{DNSName: "someone-elses-lb-123.us-east-1.elb.amazonaws.com.", HostedZoneID: "Z26RNL4JYFTOTI"}})
	r := awsOnlyFailing(t, w.run(), readiness.CheckCutover)
	awsEvidenceHas(t, r, "route53 app.example.com A (zone "+w.zone+") points at someone-elses-lb-123", "not at the primary's service/"+awsGatewaySvc+" load balancer "+w.primary)
}

func TestCutoverCheckFailsForAnEntryPointThatDoesNotExist(t *testing.T) {
	w := newAWSWorld(t)
	w.cfg.Cutover.CloudFront[0].OriginID = "renamed"
	w.cfg.Cutover.Route53 = append(w.cfg.Cutover.Route53, config.Route53Record{ZoneID: w.zone, Name: "api.example.com", Type: "CNAME", Backend: config.Backend{Service: awsGatewaySvc}})
	r := awsOnlyFailing(t, w.run(), readiness.CheckCutover)
	awsEvidenceHas(t, r, "cloudfront "+w.cfg.Cutover.CloudFront[0].DistributionID+" origin renamed does not exist", "route53 api.example.com CNAME (zone "+w.zone+") does not exist")
}

func TestCutoverCheckWarnsWhenThePrimaryLoadBalancerCannotBeFound(t *testing.T) {
	w := newAWSWorld(t)
	w.cfg.Targets[0].Primary.Cluster = "renamed-primary"
	r := awsResult(t, w.run(), readiness.CheckCutover)
	if r.Status != readiness.Warn {
		t.Fatalf("cutover is %s without a primary load balancer to compare to, want warn; evidence: %v", r.Status, r.Evidence)
	}
	awsEvidenceHas(t, r, "no load balancer tagged elbv2.k8s.aws/cluster=renamed-primary for service/"+awsGatewaySvc)
}

func TestCapacityCheckReadsAnExistingClustersNodeGroupAndSubnets(t *testing.T) {
	w := newAWSWorld(t)
	w.cfg.Targets[0].Cluster = config.Cluster{Provider: config.ProviderExisting, Existing: &config.ExistingCluster{NodeGroup: "standby", Desired: 6}}
	if _, err := w.aws.AddCluster(awsDRRg, awsfake.ExistingCluster{Name: "prod-dr"}); err != nil {
		t.Fatal(err)
	}
	if err := w.aws.AddNodegroup(awsDRRg, "prod-dr", awsfake.ExistingNodegroup{Name: "standby", MinSize: 0, MaxSize: 6, DesiredSize: 0, InstanceTypes: []string{"m6i.2xlarge"}}); err != nil {
		t.Fatal(err)
	}
	// The stand-in's clusters sit in these made-up subnets.
	w.aws.AddVPC(awsDRRg, awsfake.VPC{ID: "vpc-0awsfake0000000001"})
	for _, id := range []string{"subnet-0awsfake000000001", "subnet-0awsfake000000002"} {
		w.aws.AddSubnet(awsDRRg, awsfake.Subnet{ID: id, VpcID: "vpc-0awsfake0000000001", Tags: map[string]string{"karpenter.sh/discovery": "prod-dr"}})
	}
	r := awsResult(t, w.run(), readiness.CheckCapacity)
	if r.Status != readiness.Pass {
		t.Fatalf("capacity is %s for a ready existing cluster; evidence: %v", r.Status, r.Evidence)
	}
	awsEvidenceHas(t, r, "EKS clusters in eu-west-1: 1 of 100", "can need 248 (node group 6 × 8 vCPU (m6i.2xlarge)", "(the subnets of existing cluster prod-dr) exist in VPC vpc-0awsfake0000000001")

	w.cfg.Targets[0].Cluster.Existing.NodeGroup = "gone"
	r = awsResult(t, w.run(), readiness.CheckCapacity)
	if r.Status != readiness.Fail {
		t.Fatalf("capacity is %s with a missing node group, want fail; evidence: %v", r.Status, r.Evidence)
	}
	awsEvidenceHas(t, r, "reading node group gone of prod-dr")
}

func TestCutoverCheckComparesAVPCLinkIntegrationByTheListenersLoadBalancer(t *testing.T) {
	w := newAWSWorld(t)
	e := w.aws.Edge()
	api := e.AddHTTPAPI("internal")
	primaryListener, err := w.aws.AddListener(awsPrimaryRg, awsfake.Listener{LoadBalancerARN: w.lbARN, Port: 443, Protocol: "TLS"})
	if err != nil {
		t.Fatal(err)
	}
	integ := e.PutHTTPIntegration(api, edge.HTTPIntegration{URI: primaryListener, ConnectionType: "VPC_LINK", ConnectionID: "vl-0primary"})
	w.cfg.Cutover.APIGateway = append(w.cfg.Cutover.APIGateway, config.APIGatewayIntegration{APIID: api, Kind: "http", IntegrationID: integ, Backend: config.Backend{Service: awsGatewaySvc}})
	r := awsResult(t, w.run(), readiness.CheckCutover)
	if r.Status != readiness.Pass {
		t.Fatalf("cutover is %s with a VPC link to the primary's listener; evidence: %v", r.Status, r.Evidence)
	}
	awsEvidenceHas(t, r, "apigateway http "+api+" integration "+integ+" points at the primary's")

	otherARN, _, _ := w.aws.AddLoadBalancer(awsPrimaryRg, awsfake.LoadBalancer{Name: "hand-made", Type: "network"})
	otherListener, err := w.aws.AddListener(awsPrimaryRg, awsfake.Listener{LoadBalancerARN: otherARN, Port: 443, Protocol: "TLS"})
	if err != nil {
		t.Fatal(err)
	}
	e.PutHTTPIntegration(api, edge.HTTPIntegration{ID: integ, URI: otherListener, ConnectionType: "VPC_LINK", ConnectionID: "vl-0primary"})
	r = awsOnlyFailing(t, w.run(), readiness.CheckCutover)
	awsEvidenceHas(t, r, "apigateway http "+api+" integration "+integ+" points at "+otherListener)
}

// generatedPolicy is the IAM policy make generate writes for drbot's
// role, its placeholders filled for w's target with the cluster named.
func generatedPolicy(t *testing.T, w *awsWorld, cluster string) string {
	t.Helper()
	doc, err := permissions.IAMPolicy(standard.Permissions())
	if err != nil {
		t.Fatal(err)
	}
	vars := standard.PermissionVars(w.cfg, &w.cfg.Targets[0])
	vars["DR_CLUSTER"] = cluster
	return permissions.Expand(string(doc), vars)
}

// The least-privilege policy drbot generates passes: every statement is
// simulated on the recovery's own ARNs with its conditions' keys. IAM
// simulates Resource "*" by default, on which each scoped statement is
// implicitly denied.
func TestPermissionsCheckPassesWithTheGeneratedLeastPrivilegePolicy(t *testing.T) {
	w := newAWSWorld(t)
	w.cfg.State.Backup = &config.StateBackup{Bucket: "drbot-state", Region: awsPrimaryRg} // so every statement applies
	if err := w.aws.AttachPolicyDocument(awsDrbotRole, generatedPolicy(t, w, "prod-dr")); err != nil {
		t.Fatal(err)
	}
	r := awsResult(t, w.run(), readiness.CheckAWSPermissions)
	if r.Status != readiness.Pass {
		t.Fatalf("permissions.aws with the generated policy is %s:\n  %s", r.Status, strings.Join(r.Evidence, "\n  "))
	}
	n := len(standard.Permissions().AWSActions())
	awsEvidenceHas(t, r, fmt.Sprintf("%d of %d action(s) allowed", n, n))
}

// A policy generated for another cluster name allows nothing on this
// target's cluster: the check names the action, the decision and the ARN.
func TestPermissionsCheckNamesTheResourcesAPolicyForAnotherClusterDenies(t *testing.T) {
	w := newAWSWorld(t)
	w.cfg.State.Backup = &config.StateBackup{Bucket: "drbot-state", Region: awsPrimaryRg}
	if err := w.aws.AttachPolicyDocument(awsDrbotRole, generatedPolicy(t, w, "staging-dr")); err != nil {
		t.Fatal(err)
	}
	r := awsOnlyFailing(t, w.run(), readiness.CheckAWSPermissions)
	awsEvidenceHas(t, r, "eks:CreateCluster (implicitDeny) on arn:aws:eks:"+awsDRRg+":123456789012:cluster/prod-dr")
	if strings.Contains(strings.Join(r.Evidence, "\n"), "route53:") {
		t.Errorf("actions not scoped to the cluster are reported denied:\n  %s", strings.Join(r.Evidence, "\n  "))
	}
}

func TestPermissionsCheckSimulatesTheCallersRoleWhenTheTargetNamesNone(t *testing.T) {
	w := newAWSWorld(t)
	w.cfg.Targets[0].DrbotRoleARN = ""
	w.aws.DenyAction(awsDrbotRole, "iam:CreateRole")
	r := awsOnlyFailing(t, w.run(), readiness.CheckAWSPermissions)
	awsEvidenceHas(t, r, awsDrbotRole+" (the caller's session) is denied 1 action(s): iam:CreateRole")
	if n := w.aws.CallsTo("sts", "GetCallerIdentity"); n != 1 {
		t.Errorf("GetCallerIdentity was called %d times, want 1", n)
	}
}

func TestImagesCheckFailsWithTheGitLabErrorWhenTemplatesCannotBeRead(t *testing.T) {
	w := newAWSWorld(t)
	w.cfg.GitLab.TemplatesPath = "apps/nowhere"
	r := awsOnlyFailing(t, w.run(), readiness.CheckImages)
	awsEvidenceHas(t, r, `no YAML templates under "apps/nowhere"`)
	if n := w.aws.CallsTo("ecr", "DescribeImages"); n != 0 {
		t.Errorf("DescribeImages was called %d times without templates, want 0", n)
	}
}
