package iam_test

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/iam"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
)

const (
	region   = "eu-west-1"
	cluster  = "dr"
	key      = "AKIDDRBOTEXAMPLE0001"
	secret   = "drbot-secret-made-up-for-tests"
	account  = "123456789012"
	rolePath = "arn:aws:iam::123456789012:role/"
)

func setup(t *testing.T, addons map[string]config.Addon) (*awsfake.Server, *iam.Roles) {
	t.Helper()
	srv := awsfake.New(t, awsfake.Options{})
	srv.AddIdentity(key, secret, "arn:aws:sts::123456789012:assumed-role/drbot/drbot-session")
	if _, err := srv.AddCluster(region, awsfake.ExistingCluster{Name: cluster}); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{
		Targets: []config.Target{{Name: "prod-eu", DR: config.DR{Region: region, ClusterName: "configured-name"}, DrbotRoleARN: rolePath + "drbot"}},
		Addons:  addons,
	}
	return srv, iam.New(iam.Options{Config: cfg, AWS: func(_ context.Context, r string) (aws.Config, error) { return srv.Config(r, key, secret), nil }})
}

func run(t *testing.T, r *iam.Roles) steptest.Result {
	t.Helper()
	// cluster.create reports the cluster's name; iam.roles must use it.
	created := steptest.Stub("cluster.create", recovery.PhaseProvision, map[string]string{"cluster_name": cluster, "region": region})
	return steptest.Run(t, steptest.Options{}, created,
		recovery.Step{ID: iam.StepID, Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: r.Ensure})
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func clients(srv *awsfake.Server) (*awsiam.Client, *awseks.Client) {
	cfg := srv.Config(region, key, secret)
	return awsiam.NewFromConfig(cfg), awseks.NewFromConfig(cfg)
}

func trustOf(t *testing.T, c *awsiam.Client, role string) string {
	t.Helper()
	got, err := c.GetRole(ctx(t), &awsiam.GetRoleInput{RoleName: aws.String(role)})
	if err != nil {
		t.Fatalf("role %s: %v", role, err)
	}
	doc, _ := url.QueryUnescape(aws.ToString(got.Role.AssumeRolePolicyDocument))
	return doc
}

func attached(t *testing.T, c *awsiam.Client, role string) []string {
	t.Helper()
	out, err := c.ListAttachedRolePolicies(ctx(t), &awsiam.ListAttachedRolePoliciesInput{RoleName: aws.String(role)})
	if err != nil {
		t.Fatal(err)
	}
	var arns []string
	for _, p := range out.AttachedPolicies {
		arns = append(arns, aws.ToString(p.PolicyArn))
	}
	return arns
}

func associations(t *testing.T, c *awseks.Client) map[string]string {
	t.Helper()
	out, err := c.ListPodIdentityAssociations(ctx(t), &awseks.ListPodIdentityAssociationsInput{ClusterName: aws.String(cluster)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, a := range out.Associations {
		d, err := c.DescribePodIdentityAssociation(ctx(t), &awseks.DescribePodIdentityAssociationInput{ClusterName: aws.String(cluster), AssociationId: a.AssociationId})
		if err != nil {
			t.Fatal(err)
		}
		got[aws.ToString(a.Namespace)+"/"+aws.ToString(a.ServiceAccount)] = aws.ToString(d.Association.RoleArn)
	}
	return got
}

func TestRolesPoliciesAndPodIdentityAreMadeOnceThenReused(t *testing.T) {
	srv, r := setup(t, nil)
	res := run(t, r)
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s: %s", res.Run.Status, res.Steps[iam.StepID].Error)
	}
	out := res.Steps[iam.StepID].Outputs
	want := map[string]string{
		"lbc_role_arn":              rolePath + "AWSLoadBalancerControllerRole-dr",
		"lbc_policy_arn":            "arn:aws:iam::123456789012:policy/AWSLoadBalancerControllerIAMPolicy-v2.13",
		"lbc_service_account":       "kube-system/aws-load-balancer-controller",
		"karpenter_role_arn":        rolePath + "KarpenterControllerRole-dr",
		"karpenter_policy_arn":      "arn:aws:iam::123456789012:policy/KarpenterControllerPolicy-dr-v1.6",
		"karpenter_service_account": "kube-system/karpenter",
		"karpenter_node_role_arn":   rolePath + "KarpenterNodeRole-dr",
		"karpenter_node_role_name":  "KarpenterNodeRole-dr",
	}
	for k, v := range want {
		if out[k] != v {
			t.Errorf("output %s = %q, want %q", k, out[k], v)
		}
	}

	ic, ec := clients(srv)
	for _, role := range []string{"AWSLoadBalancerControllerRole-dr", "KarpenterControllerRole-dr"} {
		if tr := trustOf(t, ic, role); !strings.Contains(tr, `"pods.eks.amazonaws.com"`) || !strings.Contains(tr, "sts:TagSession") || !strings.Contains(tr, "sts:AssumeRole") {
			t.Errorf("trust of %s = %s", role, tr)
		}
	}
	if tr := trustOf(t, ic, "KarpenterNodeRole-dr"); !strings.Contains(tr, `"ec2.amazonaws.com"`) {
		t.Errorf("node role trust = %s", tr)
	}
	if got := attached(t, ic, "AWSLoadBalancerControllerRole-dr"); !slices.Equal(got, []string{want["lbc_policy_arn"]}) {
		t.Errorf("LBC role policies = %v", got)
	}
	if got := attached(t, ic, "KarpenterControllerRole-dr"); !slices.Equal(got, []string{want["karpenter_policy_arn"]}) {
		t.Errorf("Karpenter role policies = %v", got)
	}
	if got := attached(t, ic, "KarpenterNodeRole-dr"); len(got) != 4 || !slices.Contains(got, "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy") {
		t.Errorf("node role policies = %v", got)
	}
	if got := associations(t, ec); len(got) != 2 || got["kube-system/aws-load-balancer-controller"] != want["lbc_role_arn"] || got["kube-system/karpenter"] != want["karpenter_role_arn"] {
		t.Errorf("pod identity associations = %v", got)
	}
	entry, err := ec.DescribeAccessEntry(ctx(t), &awseks.DescribeAccessEntryInput{ClusterName: aws.String(cluster), PrincipalArn: aws.String(want["karpenter_node_role_arn"])})
	if err != nil || aws.ToString(entry.AccessEntry.Type) != "EC2_LINUX" {
		t.Fatalf("node access entry = %+v, %v", entry, err)
	}
	if _, err := ec.DescribeAddon(ctx(t), &awseks.DescribeAddonInput{ClusterName: aws.String(cluster), AddonName: aws.String("eks-pod-identity-agent")}); err != nil {
		t.Errorf("the pod identity agent was not installed on a cluster lacking it: %v", err)
	}

	second := run(t, r)
	if second.Run.Status != state.RunSucceeded {
		t.Fatalf("second run %s: %s", second.Run.Status, second.Steps[iam.StepID].Error)
	}
	for op, n := range map[string]int{"CreateRole": 3, "CreatePolicy": 2, "AttachRolePolicy": 6} {
		if got := srv.CallsTo("iam", op); got != n {
			t.Errorf("%s called %d times over two runs, want %d", op, got, n)
		}
	}
	for op, n := range map[string]int{"CreatePodIdentityAssociation": 2, "CreateAccessEntry": 1, "CreateAddon": 1} {
		if got := srv.CallsTo("eks", op); got != n {
			t.Errorf("%s called %d times over two runs, want %d", op, got, n)
		}
	}
	if p := second.Progress(iam.StepID); len(p) != 1 || !strings.Contains(p[0], "nothing new") {
		t.Errorf("second run progress = %q", p)
	}
}

func TestExistingRoleIsReusedWithItsTrustRestoredAndAnOlderPolicyVersionDetached(t *testing.T) {
	srv, r := setup(t, map[string]config.Addon{
		config.AddonKarpenter: {Namespace: "karpenter", Values: map[string]any{"serviceAccount": map[string]any{"name": "karpenter-controller"}}},
	})
	ic, ec := clients(srv)
	if _, err := ic.CreateRole(ctx(t), &awsiam.CreateRoleInput{RoleName: aws.String("AWSLoadBalancerControllerRole-dr"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ec2.amazonaws.com"},"Action":"sts:AssumeRole"}]}`)}); err != nil {
		t.Fatal(err)
	}
	old, err := ic.CreatePolicy(ctx(t), &awsiam.CreatePolicyInput{PolicyName: aws.String("AWSLoadBalancerControllerIAMPolicy-v2.12"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ic.AttachRolePolicy(ctx(t), &awsiam.AttachRolePolicyInput{RoleName: aws.String("AWSLoadBalancerControllerRole-dr"), PolicyArn: old.Policy.Arn}); err != nil {
		t.Fatal(err)
	}

	res := run(t, r)
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s: %s", res.Run.Status, res.Steps[iam.StepID].Error)
	}
	if n := srv.CallsTo("iam", "CreateRole"); n != 3 { // the test's own + the two missing ones
		t.Errorf("CreateRole calls = %d, want the existing LBC role reused", n)
	}
	if tr := trustOf(t, ic, "AWSLoadBalancerControllerRole-dr"); !strings.Contains(tr, "pods.eks.amazonaws.com") {
		t.Errorf("trust not restored: %s", tr)
	}
	if got := attached(t, ic, "AWSLoadBalancerControllerRole-dr"); !slices.Equal(got, []string{"arn:aws:iam::123456789012:policy/AWSLoadBalancerControllerIAMPolicy-v2.13"}) {
		t.Errorf("LBC role policies = %v, want only the shipped version", got)
	}
	if got := associations(t, ec); got["karpenter/karpenter-controller"] != rolePath+"KarpenterControllerRole-dr" {
		t.Errorf("associations = %v, want Karpenter's service account from config", got)
	}
	if out := res.Steps[iam.StepID].Outputs["karpenter_service_account"]; out != "karpenter/karpenter-controller" {
		t.Errorf("karpenter_service_account = %q", out)
	}
}

func TestAssociationPointingAtAnotherRoleStopsTheStep(t *testing.T) {
	srv, r := setup(t, nil)
	_, ec := clients(srv)
	if _, err := ec.CreatePodIdentityAssociation(ctx(t), &awseks.CreatePodIdentityAssociationInput{ClusterName: aws.String(cluster),
		Namespace: aws.String("kube-system"), ServiceAccount: aws.String("karpenter"), RoleArn: aws.String(rolePath + "someone-elses")}); err != nil {
		t.Fatal(err)
	}
	res := run(t, r)
	rec := res.Steps[iam.StepID]
	if res.Run.Status == state.RunSucceeded || rec.Retryable || !strings.Contains(rec.Error, "gives kube-system/karpenter role "+rolePath+"someone-elses") {
		t.Fatalf("run %s, error %q (retryable %v)", res.Run.Status, rec.Error, rec.Retryable)
	}
	if n := srv.CallsTo("eks", "CreatePodIdentityAssociation"); n != 2 { // the test's own + LBC's
		t.Errorf("CreatePodIdentityAssociation calls = %d", n)
	}
}

func TestRoleNamesStayWithinIAMLimitsForLongClusterNames(t *testing.T) {
	long := strings.Repeat("disaster-recovery-", 5) + "a"
	other := strings.Repeat("disaster-recovery-", 5) + "b"
	a, b := iam.NamesFor(long), iam.NamesFor(other)
	for _, n := range []string{a.LBCRole, a.KarpenterRole, a.KarpenterNodeRole} {
		if len(n) > 64 {
			t.Errorf("role name %q is %d characters", n, len(n))
		}
	}
	if a.LBCRole == b.LBCRole || a.KarpenterNodeRole == b.KarpenterNodeRole {
		t.Errorf("clusters %q and %q share role names %q", long, other, a.LBCRole)
	}
	if n := iam.NamesFor("dr"); n.KarpenterNodeRole != "KarpenterNodeRole-dr" {
		t.Errorf("short names must be the documented ones, got %q", n.KarpenterNodeRole)
	}
}
