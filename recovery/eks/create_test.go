package eks_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/eks"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
)

func TestEKSProviderCreatesClusterNodeGroupAndPodIdentityAgentOnceAcrossTwoRuns(t *testing.T) {
	srv := newServer(t, awsfake.Options{EKSCreateDelay: 300 * time.Millisecond, NodegroupCreateDelay: 100 * time.Millisecond, AddonCreateDelay: 50 * time.Millisecond})
	p := eks.NewProvisioner(options(srv, eksConfig()))

	res := steptest.Run(t, steptest.Options{}, createStep(p))
	mustSucceed(t, res)
	rec := res.Steps[eks.StepClusterCreate]
	out := rec.Outputs
	if out["cluster_name"] != clusterName || out["region"] != region || out["node_role_arn"] != nodeRole || out["vpc_id"] == "" ||
		out["cluster_arn"] != "arn:aws:eks:eu-west-1:123456789012:cluster/dr" {
		t.Fatalf("outputs = %v", out)
	}
	var subnets []string
	if err := json.Unmarshal([]byte(out["subnet_ids"]), &subnets); err != nil || !slices.Equal(subnets, []string{"subnet-0a", "subnet-0b"}) {
		t.Fatalf("subnet_ids = %q (%v)", out["subnet_ids"], err)
	}
	if rec.Handle != out["cluster_arn"] {
		t.Errorf("handle = %q, want the cluster ARN journaled", rec.Handle)
	}
	progress := res.Progress(eks.StepClusterCreate)
	creating := 0
	for _, l := range progress {
		if strings.HasPrefix(l, "control plane CREATING, ") {
			creating++
		}
	}
	if creating < 2 {
		t.Errorf("want progress lines like \"control plane CREATING, 0s\" during the wait; got %q", progress)
	}
	if !hasLine(progress, "node group drbot-system CREATING, ") || !hasLine(progress, "cluster dr ACTIVE with node group") {
		t.Errorf("progress = %q", progress)
	}

	desc, err := eksClient(t, srv).DescribeCluster(ctx(t), &awseks.DescribeClusterInput{Name: aws.String(clusterName)})
	if err != nil {
		t.Fatal(err)
	}
	if desc.Cluster.AccessConfig.AuthenticationMode != "API" || desc.Cluster.Tags[eks.TagRun] != res.Run.ID || desc.Cluster.Tags[eks.TagTarget] != "prod-eu" ||
		aws.ToString(desc.Cluster.Version) != "1.33" || !slices.Equal(desc.Cluster.ResourcesVpcConfig.SecurityGroupIds, []string{"sg-0dr"}) {
		t.Errorf("cluster = mode %s, tags %v, version %s, sgs %v", desc.Cluster.AccessConfig.AuthenticationMode, desc.Cluster.Tags,
			aws.ToString(desc.Cluster.Version), desc.Cluster.ResourcesVpcConfig.SecurityGroupIds)
	}
	min, max, desired, ok := srv.NodegroupScaling(region, clusterName, eks.DefaultNodegroup)
	if !ok || min != 2 || max != 4 || desired != 3 {
		t.Errorf("node group scaling = %d/%d/%d (found %v)", min, max, desired, ok)
	}

	second := steptest.Run(t, steptest.Options{}, createStep(p))
	mustSucceed(t, second)
	for _, op := range []string{"CreateCluster", "CreateNodegroup", "CreateAddon"} {
		if n := srv.CallsTo("eks", op); n != 1 {
			t.Errorf("%s called %d times over two runs, want 1", op, n)
		}
	}
	if got := clusters(t, srv); !slices.Equal(got, []string{clusterName}) {
		t.Errorf("clusters = %v", got)
	}
	if !hasLine(second.Progress(eks.StepClusterCreate), "found cluster dr (ACTIVE) already in eu-west-1; using it") {
		t.Errorf("second run progress = %q", second.Progress(eks.StepClusterCreate))
	}
	if second.Steps[eks.StepClusterCreate].Outputs["cluster_arn"] != out["cluster_arn"] {
		t.Errorf("second run outputs = %v", second.Steps[eks.StepClusterCreate].Outputs)
	}
}

func TestThrottledCreateClusterIsRetriedIntoOneCluster(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	// More throttles than the SDK's three attempts: the engine retries the step.
	srv.Inject("eks", "CreateCluster", awsfake.Fault{Code: "ThrottlingException", Status: 429, Times: 4})
	p := eks.NewProvisioner(options(srv, eksConfig()))

	res := steptest.Run(t, steptest.Options{}, createStep(p))
	mustSucceed(t, res)
	if a := res.Steps[eks.StepClusterCreate].Attempt; a != 2 {
		t.Errorf("step attempts = %d, want 2 (SDK retries exhausted once, then the engine retried)", a)
	}
	if n := srv.CallsTo("eks", "CreateCluster"); n != 5 {
		t.Errorf("CreateCluster calls = %d, want 4 throttled + 1", n)
	}
	if got := clusters(t, srv); !slices.Equal(got, []string{clusterName}) {
		t.Errorf("clusters = %v", got)
	}
}

func TestEKSProviderWaitsForAClusterBeingDeletedInsteadOfCreatingASecond(t *testing.T) {
	srv := newServer(t, awsfake.Options{EKSDeleteDelay: time.Hour})
	if _, err := srv.AddCluster(region, awsfake.ExistingCluster{Name: clusterName}); err != nil {
		t.Fatal(err)
	}
	// A cluster stuck DELETING is waited out; one that never goes makes
	// the wait time out retryably, not create a second cluster.
	if _, err := eksClient(t, srv).DeleteCluster(ctx(t), &awseks.DeleteClusterInput{Name: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	o := options(srv, eksConfig())
	o.WaitTimeout = 100 * time.Millisecond
	res := steptest.Run(t, steptest.Options{}, createStep(eks.NewProvisioner(o)))
	rec := res.Steps[eks.StepClusterCreate]
	if res.Run.Status == state.RunSucceeded || !strings.Contains(rec.Error, "old cluster dr still DELETING") || !rec.Retryable {
		t.Fatalf("run %s, step error %q (retryable %v)", res.Run.Status, rec.Error, rec.Retryable)
	}
	if n := srv.CallsTo("eks", "CreateCluster"); n != 0 {
		t.Errorf("CreateCluster called %d times while the old cluster was still deleting", n)
	}
	if !hasLine(res.Progress(eks.StepClusterCreate), "old cluster dr DELETING, ") {
		t.Errorf("progress = %q", res.Progress(eks.StepClusterCreate))
	}
}

func TestEKSProviderAsksForThePodIdentityAgentWhileTheNodeGroupIsStillCreating(t *testing.T) {
	srv := newServer(t, awsfake.Options{NodegroupCreateDelay: 300 * time.Millisecond, AddonCreateDelay: 300 * time.Millisecond})
	p := eks.NewProvisioner(options(srv, eksConfig()))

	mustSucceed(t, steptest.Run(t, steptest.Options{}, createStep(p)))
	// The add-on must be requested before drbot starts waiting on the node
	// group: sequential waits put its minute on the critical path.
	var ops []string
	for _, c := range srv.Calls() {
		if c.Service == "eks" && (c.Operation == "CreateNodegroup" || c.Operation == "CreateAddon" || c.Operation == "DescribeNodegroup") {
			ops = append(ops, c.Operation)
		}
	}
	create := slices.Index(ops, "CreateNodegroup")
	addon := slices.Index(ops, "CreateAddon")
	if create < 0 || addon < 0 {
		t.Fatalf("eks calls = %v, want CreateNodegroup and CreateAddon", ops)
	}
	if waits := slices.Index(ops[create+1:], "DescribeNodegroup"); waits >= 0 && create+1+waits < addon {
		t.Errorf("eks calls = %v: the add-on was requested only after drbot began waiting on the node group", ops)
	}
}

// A cluster that went FAILED is deleted by a person, who presses Retry:
// the next attempt creates the cluster again. (AWS answers a repeated
// idempotency token with the first result even once that cluster is gone,
// so the token changes with the attempt.)
func TestRetryAfterTheClusterWasDeletedCreatesItAgain(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	p := eks.NewProvisioner(options(srv, eksConfig()))
	step := createStep(p)
	create := step.Action
	step.Action = func(c context.Context, sc *recovery.StepContext) (recovery.Result, error) {
		res, err := create(c, sc)
		if err != nil || sc.Attempt() > 1 {
			return res, err
		}
		// Attempt 1 made the cluster; it is deleted before the step ends.
		api := eksClient(t, srv)
		for _, del := range []func() error{
			func() error {
				_, err := api.DeleteNodegroup(c, &awseks.DeleteNodegroupInput{ClusterName: aws.String(clusterName), NodegroupName: aws.String(res.Outputs["nodegroup"])})
				return err
			},
			func() error {
				_, err := api.DeleteCluster(c, &awseks.DeleteClusterInput{Name: aws.String(clusterName)})
				return err
			},
		} {
			if err := del(); err != nil {
				t.Fatalf("deleting the first cluster: %v", err)
			}
		}
		return recovery.Result{}, recovery.Retryable(errors.New("the cluster went FAILED and was deleted"))
	}

	res := steptest.Run(t, steptest.Options{}, step)
	mustSucceed(t, res)
	if a := res.Steps[eks.StepClusterCreate].Attempt; a != 2 {
		t.Errorf("attempts = %d, want 2", a)
	}
	if got := clusters(t, srv); !slices.Equal(got, []string{clusterName}) {
		t.Errorf("clusters after the retry = %v, want %s made again", got, clusterName)
	}
	if n := srv.CallsTo("eks", "CreateCluster"); n != 2 {
		t.Errorf("CreateCluster called %d times, want once per attempt", n)
	}
}
