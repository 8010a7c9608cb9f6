package eks_test

import (
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/eks"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
)

func existingConfig() *config.Config {
	return &config.Config{Targets: []config.Target{targetWith(config.Cluster{
		Provider: config.ProviderExisting, Existing: &config.ExistingCluster{NodeGroup: "pilot", Desired: 6},
	})}}
}

func addPilotLight(t *testing.T, srv *awsfake.Server) {
	t.Helper()
	if _, err := srv.AddCluster(region, awsfake.ExistingCluster{Name: clusterName}); err != nil {
		t.Fatal(err)
	}
	if err := srv.AddNodegroup(region, clusterName, awsfake.ExistingNodegroup{Name: "pilot", MinSize: 1, MaxSize: 3, DesiredSize: 1, NodeRole: nodeRole}); err != nil {
		t.Fatal(err)
	}
}

func TestExistingProviderWaitsOutAnUpdateThenScalesTheNodeGroupUpOnce(t *testing.T) {
	srv := newServer(t, awsfake.Options{EKSUpdateDelay: 200 * time.Millisecond})
	addPilotLight(t, srv)
	// The pilot light is in the middle of an unrelated update.
	if _, err := eksClient(t, srv).UpdateClusterConfig(ctx(t), &awseks.UpdateClusterConfigInput{Name: aws.String(clusterName),
		Logging: &ekstypes.Logging{ClusterLogging: []ekstypes.LogSetup{{Enabled: aws.Bool(true), Types: []ekstypes.LogType{ekstypes.LogTypeApi}}}}}); err != nil {
		t.Fatal(err)
	}
	p := eks.NewProvisioner(options(srv, existingConfig()))

	res := steptest.Run(t, steptest.Options{}, createStep(p))
	mustSucceed(t, res)
	rec := res.Steps[eks.StepClusterCreate]
	if rec.Handle == "" {
		t.Errorf("the node group update id was not journaled as the handle")
	}
	if _, max, desired, _ := srv.NodegroupScaling(region, clusterName, "pilot"); desired != 6 || max != 6 {
		t.Errorf("node group desired/max = %d/%d, want 6/6", desired, max)
	}
	if rec.Outputs["node_role_arn"] != nodeRole || rec.Outputs["cluster_name"] != clusterName || rec.Outputs["vpc_id"] == "" {
		t.Errorf("outputs = %v", rec.Outputs)
	}
	// The size before the scale-up is journaled for a drill's teardown.
	if rec.Outputs["nodegroup_desired_before"] != "1" || rec.Outputs["nodegroup_max_before"] == "" || rec.Outputs["nodegroup_min_before"] == "" {
		t.Errorf("pre-drill size not journaled: %v", rec.Outputs)
	}
	progress := res.Progress(eks.StepClusterCreate)
	if !hasLine(progress, "control plane UPDATING, ") || !hasLine(progress, "scaling node group pilot from 1 to 6 nodes (update "+rec.Handle+")") ||
		!hasLine(progress, "node group pilot scale-up to 6 InProgress, ") {
		t.Errorf("progress = %q", progress)
	}

	second := steptest.Run(t, steptest.Options{}, createStep(p))
	mustSucceed(t, second)
	if n := srv.CallsTo("eks", "UpdateNodegroupConfig"); n != 1 {
		t.Errorf("UpdateNodegroupConfig called %d times over two runs, want 1", n)
	}
	if !hasLine(second.Progress(eks.StepClusterCreate), "node group pilot already has 6 nodes desired (want 6)") {
		t.Errorf("second run progress = %q", second.Progress(eks.StepClusterCreate))
	}
}

func TestExistingProviderFailsPermanentlyWhenThePilotLightIsNotUsable(t *testing.T) {
	srv := newServer(t, awsfake.Options{EKSDeleteDelay: time.Hour})
	p := eks.NewProvisioner(options(srv, existingConfig()))

	res := steptest.Run(t, steptest.Options{}, createStep(p))
	rec := res.Steps[eks.StepClusterCreate]
	if res.Run.Status == state.RunSucceeded || rec.Retryable || !strings.Contains(rec.Error, `pilot-light cluster "dr" not found in eu-west-1`) {
		t.Fatalf("missing cluster: run %s, error %q (retryable %v)", res.Run.Status, rec.Error, rec.Retryable)
	}

	if _, err := srv.AddCluster(region, awsfake.ExistingCluster{Name: clusterName}); err != nil {
		t.Fatal(err)
	}
	if _, err := eksClient(t, srv).DeleteCluster(ctx(t), &awseks.DeleteClusterInput{Name: aws.String(clusterName)}); err != nil {
		t.Fatal(err)
	}
	res = steptest.Run(t, steptest.Options{}, createStep(p))
	rec = res.Steps[eks.StepClusterCreate]
	if rec.Retryable || !strings.Contains(rec.Error, "is DELETING, not ACTIVE") || rec.Attempt != 1 {
		t.Fatalf("deleting cluster: error %q (retryable %v, attempts %d)", rec.Error, rec.Retryable, rec.Attempt)
	}
	if n := srv.CallsTo("eks", "UpdateNodegroupConfig"); n != 0 {
		t.Errorf("scaled a node group of an unusable cluster")
	}
}
