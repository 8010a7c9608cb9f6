package teardown_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/argocd"
	"github.com/drbot/drbot/recovery/eks"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/recovery/teardown"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/terraformfake"
)

// One Kubernetes cluster serves every subtest as both the management
// cluster and the DR cluster; each subtest has its own DR cluster name.
func TestTeardown(t *testing.T) {
	kc := kubeenv.Start(t, kubeenv.WithName("management"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := kc.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Argo CD's own registration of another cluster: never teardown's business.
	other := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-prod", Namespace: "argocd", Labels: map[string]string{argocd.SecretTypeLabel: "cluster"}},
		Data:       map[string][]byte{"name": []byte("prod"), "server": []byte("https://prod.example")},
	}
	if _, err := kc.Clientset().CoreV1().Secrets("argocd").Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	t.Run("MergedEKSDrillLeavesNothingBehindAndASecondRunChangesNothing", func(t *testing.T) { testMergedEKSDrill(t, kc) })
	t.Run("OpenMergeRequestIsClosedAndThePilotLightScaledBack", func(t *testing.T) { testPilotLight(t, kc) })
	t.Run("AFailingPartLeavesTheOthersDoneListsTheLeftoverAndRetryRedoesOnlyIt", func(t *testing.T) { testFailingPart(t, kc) })
	t.Run("AnApplicationArgoCDCannotDeleteKeepsTheClusterSecretAndSaysHowToFreeIt", func(t *testing.T) { testStuckApplication(t, kc) })
	t.Run("AClusterNoDrillMadeIsNeitherDrainedNorDeleted", func(t *testing.T) { testForeignCluster(t, kc) })
	t.Run("PilotLightWithoutAJournaledSizeIsListedToCheck", func(t *testing.T) { testPilotLightUnknownSize(t, kc) })
	t.Run("TerraformProviderDestroysTheWorkspace", func(t *testing.T) { testTerraform(t, kc) })
	t.Run("TheRevertLeavesAFileChangedSinceTheMergeAndSaysSo", func(t *testing.T) { testRevertAfterLaterChange(t, kc) })
	t.Run("ADrillThatCutOverHasEveryRowBackBeforeAnythingIsDeleted", func(t *testing.T) { testCutoverRestoredFirst(t, kc) })
	t.Run("ADrillWhoseApplyNeverRanMakesNoCutoverCalls", func(t *testing.T) { testNoCutoverNoCalls(t, kc) })
	t.Run("AnApplyThatFailedHalfWayHasItsMovedRowRestored", func(t *testing.T) { testApplyFailedHalfWay(t, kc) })
	t.Run("AFailedRollbackHoldsBackEveryOtherPartAndRetryFinishesTheJob", func(t *testing.T) { testRollbackFailureHoldsBack(t, kc) })
	t.Run("AJournaledCutoverPartIsNotRedoneOnRetry", func(t *testing.T) { testCutoverJournaledIsSkipped(t, kc) })
	t.Run("ACrashAfterTheRollbackRollsBackAgainChangingNothing", func(t *testing.T) { testCrashAfterRollback(t, kc) })
	t.Run("AnUnwiredRollbackIsALeftoverAndHoldsTheRestBack", func(t *testing.T) { testRollbackNotWired(t, kc) })
	t.Run("ANodeGroupOrClusterEKSRefusesToDeleteAtFirstIsAskedAgain", func(t *testing.T) { testNodegroupDeleteRefused(t, kc) })

	if got := kc.Clientset(); got != nil {
		if _, err := got.CoreV1().Secrets("argocd").Get(ctx, "cluster-prod", metav1.GetOptions{}); err != nil {
			t.Errorf("another cluster's Argo CD Secret is gone after the teardowns: %v", err)
		}
	}
}

func testMergedEKSDrill(t *testing.T, kc *kubeenv.Cluster) {
	// Deletions take a while, as in EKS, so the waits post progress.
	w := newWorld(t, kc, "drill-merged", eksProvider(), awsfake.Options{NodegroupDeleteDelay: 200 * time.Millisecond, EKSDeleteDelay: 400 * time.Millisecond})
	mainBefore := w.gl.Files(project, "main")
	iid, branch := w.drillMR(true)
	w.vf.EnableKubernetesAuth(mount)
	w.vf.PutRole(mount, "orders", map[string]any{"bound_service_account_names": []any{"orders"}, "bound_service_account_namespaces": []any{"orders"}})
	w.argoApps()
	w.drillObjects()
	nodeRoleName := "KarpenterNodeRole-drill-merged"
	// Karpenter made an instance profile for the node role; a person added it to another.
	w.profiles.add("drill-merged_1234567890", map[string]string{"kubernetes.io/cluster/drill-merged": "owned", "karpenter.k8s.aws/ec2nodeclass": "default"}, nodeRoleName)
	w.profiles.add("hand-made", nil, nodeRoleName)

	td := w.teardown()
	res := w.run(w.steps(td, nil, map[string]string{"mr_iid": strconv.FormatInt(iid, 10)}))
	mustSucceed(t, res)
	iamOut := res.Steps["iam.roles"].Outputs

	// EKS: the cluster, with its node group and add-on, is gone.
	if slices.Contains(w.clusters(), "drill-merged") {
		t.Errorf("EKS cluster drill-merged still exists: %v", w.clusters())
	}
	for _, op := range []string{"DeleteNodegroup", "DeleteAddon", "DeleteCluster"} {
		if n := w.aws.CallsTo("eks", op); n != 1 {
			t.Errorf("eks %s called %d times, want 1", op, n)
		}
	}
	// IAM: the three roles and the cluster's Karpenter policy; the shared LBC policy stays.
	for _, r := range []string{"AWSLoadBalancerControllerRole-drill-merged", "KarpenterControllerRole-drill-merged", nodeRoleName} {
		if w.roleExists(r) {
			t.Errorf("IAM role %s still exists", r)
		}
	}
	if w.policyExists(iamOut["karpenter_policy_arn"]) {
		t.Errorf("the cluster's Karpenter policy %s still exists", iamOut["karpenter_policy_arn"])
	}
	if !w.policyExists(iamOut["lbc_policy_arn"]) {
		t.Errorf("the account-shared LBC policy %s was deleted", iamOut["lbc_policy_arn"])
	}
	if got, want := w.profiles.names(), []string{"hand-made[]"}; !slices.Equal(got, want) {
		t.Errorf("instance profiles = %v, want %v (Karpenter's deleted, the hand-made one emptied of the drill's role)", got, want)
	}
	// Vault: the DR mount is disabled, the primary's stays.
	if w.mountExists(mount) || !w.mountExists("kubernetes") {
		t.Errorf("vault mounts after teardown: %+v", w.vf.Mounts())
	}
	// GitLab: branch deleted, the merge reverted in one commit.
	if _, ok := w.gl.Branch(project, branch); ok {
		t.Errorf("branch %s still exists", branch)
	}
	mainAfter := w.gl.Files(project, "main")
	for _, p := range []string{"dr/orders-api.yaml", "dr/payments-web.yaml"} {
		if _, ok := mainAfter[p]; ok {
			t.Errorf("%s, added by the drill, is still on main", p)
		}
	}
	for p, c := range mainBefore {
		if mainAfter[p] != c {
			t.Errorf("%s on main = %q, want it as before the drill %q", p, mainAfter[p], c)
		}
	}
	if len(mainAfter) != len(mainBefore) {
		t.Errorf("main holds %d files, want the %d from before the drill", len(mainAfter), len(mainBefore))
	}
	if n := countCalls(w.gl.Calls(), "POST", "/repository/commits"); n != 1 {
		t.Errorf("%d commits made, want one revert commit", n)
	}
	if mr, _ := w.gl.MergeRequest(project, iid); mr.State != "merged" {
		t.Errorf("merge request state %q, want it left merged", mr.State)
	}
	// Argo CD: the drill's Applications and cluster Secret; the one bound elsewhere stays.
	if got := w.appNames(); !slices.Equal(got, []string{"drill-merged-prod-only"}) {
		t.Errorf("Applications left = %v, want only the one bound for prod", got)
	}
	if w.secretExists("cluster-drill-merged") {
		t.Error("the drill's Argo CD cluster Secret still exists")
	}
	// DR cluster: NodePools, EC2NodeClasses, LoadBalancer Services, Ingresses; a ClusterIP Service stays.
	dyn := kc.Dynamic()
	for _, g := range []struct {
		res interface {
			Get(context.Context, string, metav1.GetOptions, ...string) (*unstructured.Unstructured, error)
		}
		name string
	}{
		{dyn.Resource(argocd.NodePoolGVR), "drill-merged-default"},
		{dyn.Resource(argocd.EC2NodeClassGVR), "drill-merged-default"},
		{dyn.Resource(ingressGVR).Namespace("orders"), "drill-merged-web"},
	} {
		if _, err := g.res.Get(w.ctx(), g.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s still in the DR cluster (err %v)", g.name, err)
		}
	}
	if _, err := kc.Clientset().CoreV1().Services("istio-ingress").Get(w.ctx(), "drill-merged-gateway", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the LoadBalancer Service is still in the DR cluster (err %v)", err)
	}
	if _, err := kc.Clientset().CoreV1().Services("orders").Get(w.ctx(), "drill-merged-internal", metav1.GetOptions{}); err != nil {
		t.Errorf("the ClusterIP Service was deleted: %v", err)
	}
	// Journal: every part, and a closing line.
	out := res.Steps[teardown.StepID].Outputs
	for _, p := range teardown.Parts {
		if out[teardown.OutputKey(p)] == "" {
			t.Errorf("output %s missing; outputs %v", teardown.OutputKey(p), out)
		}
	}
	if !strings.Contains(out[teardown.OutputKey(teardown.PartGitLab)], "reverted merge request") {
		t.Errorf("gitlab part summary = %q", out[teardown.OutputKey(teardown.PartGitLab)])
	}
	progress := res.Progress(teardown.StepID)
	t.Logf("teardown's progress lines:\n%s", strings.Join(progress, "\n"))
	if !hasPrefix(progress, "teardown complete:") {
		t.Errorf("no closing progress line: %q", progress)
	}
	// ProgressEvery is 50ms here (30s in production): a 400ms deletion gets a few lines, not one per poll.
	waiting := 0
	for _, l := range progress {
		if strings.HasPrefix(l, "cluster drill-merged DELETING, ") {
			waiting++
		}
	}
	if waiting < 1 || waiting > 12 {
		t.Errorf("%d progress lines while the cluster was deleting, want a few: %q", waiting, progress)
	}

	// A second drill run over the same journal finds everything gone.
	awsMark, glMark, vaultMark, profMark := len(w.aws.Calls()), len(w.gl.Calls()), len(w.vf.Calls()), w.profiles.callCount()
	w.kubeWrites.Store(0)
	second := w.teardownOnly(w.teardown(), res)
	mustSucceed(t, second)
	if got := w.mutatingAWSCalls(awsMark); len(got) > 0 {
		t.Errorf("second run changed AWS: %v", got)
	}
	if got := w.mutatingGitLabCalls(glMark); len(got) > 0 {
		t.Errorf("second run changed GitLab: %v", got)
	}
	if got := w.mutatingVaultCalls(vaultMark); len(got) > 0 {
		t.Errorf("second run changed Vault: %v", got)
	}
	if n := w.kubeWrites.Load(); n != 0 {
		t.Errorf("second run sent %d changing requests to Kubernetes", n)
	}
	if w.profiles.callCount() != profMark {
		t.Error("second run changed instance profiles")
	}
	if got := second.Steps[teardown.StepID].Outputs[teardown.OutputKey(teardown.PartCluster)]; got != "cluster drill-merged already gone" {
		t.Errorf("second run's cluster part = %q", got)
	}
}

func testPilotLight(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-pilot", config.Cluster{Provider: config.ProviderExisting, Existing: &config.ExistingCluster{NodeGroup: "pilot-ng", Desired: 5}})
	ctx := w.ctx()
	if _, err := w.aws.AddCluster(region, awsfake.ExistingCluster{Name: "drill-pilot"}); err != nil {
		t.Fatal(err)
	}
	if err := w.aws.AddNodegroup(region, "drill-pilot", awsfake.ExistingNodegroup{Name: "pilot-ng", MinSize: 1, MaxSize: 2, DesiredSize: 1}); err != nil {
		t.Fatal(err)
	}
	cfg, _ := w.awsConfig(ctx, region)
	eksc, iamc := awseks.NewFromConfig(cfg), awsiam.NewFromConfig(cfg)
	// What cluster.create did for the drill: scale up to 5.
	if _, err := eksc.UpdateNodegroupConfig(ctx, &awseks.UpdateNodegroupConfigInput{ClusterName: aws.String("drill-pilot"), NodegroupName: aws.String("pilot-ng"),
		ScalingConfig: &ekstypes.NodegroupScalingConfig{DesiredSize: aws.Int32(5), MaxSize: aws.Int32(5)}}); err != nil {
		t.Fatal(err)
	}
	// The pilot light had its LBC role before the drill (an earlier run made it).
	lbcRole := "AWSLoadBalancerControllerRole-drill-pilot"
	if _, err := iamc.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String(lbcRole),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}`),
		Tags:                     []iamtypes.Tag{{Key: aws.String("drbot/cluster"), Value: aws.String("drill-pilot")}, {Key: aws.String("drbot/run"), Value: aws.String("r-earlier")}}}); err != nil {
		t.Fatal(err)
	}
	iid, branch := w.drillMR(false)
	mainHead, _ := w.gl.Branch(project, "main")
	w.vf.EnableKubernetesAuth(mount)
	// The pilot light's own NodePool: a pilot light keeps it.
	np := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
		"metadata": map[string]any{"name": "drill-pilot-default"}, "spec": map[string]any{"template": map[string]any{"spec": map[string]any{}}}}}
	if _, err := kc.Dynamic().Resource(argocd.NodePoolGVR).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kc.Dynamic().Resource(argocd.NodePoolGVR).Delete(context.Background(), "drill-pilot-default", metav1.DeleteOptions{})
	})

	created := map[string]string{"cluster_name": "drill-pilot", "region": region, "nodegroup": "pilot-ng",
		teardown.OutputDesiredBefore: "1", teardown.OutputMaxBefore: "2", teardown.OutputMinBefore: "1"}
	res := w.run(w.steps(w.teardown(), created, map[string]string{"mr_iid": strconv.FormatInt(iid, 10)}))
	mustSucceed(t, res)

	if min, max, desired, _ := w.aws.NodegroupScaling(region, "drill-pilot", "pilot-ng"); min != 1 || max != 2 || desired != 1 {
		t.Errorf("node group scaling = min %d max %d desired %d, want 1/2/1 as before the drill", min, max, desired)
	}
	if !slices.Contains(w.clusters(), "drill-pilot") {
		t.Error("the pilot-light cluster was deleted")
	}
	mr, _ := w.gl.MergeRequest(project, iid)
	if mr.State != "closed" {
		t.Errorf("merge request state %q, want closed", mr.State)
	}
	if _, ok := w.gl.Branch(project, branch); ok {
		t.Errorf("branch %s still exists", branch)
	}
	if head, _ := w.gl.Branch(project, "main"); head != mainHead {
		t.Error("main moved: an unmerged drill needs no revert commit")
	}
	// IAM: roles this drill made go, with their Pod Identity associations and access entry on
	// the surviving cluster; the role the pilot light already had stays, with its association.
	for _, r := range []string{"KarpenterControllerRole-drill-pilot", "KarpenterNodeRole-drill-pilot"} {
		if w.roleExists(r) {
			t.Errorf("IAM role %s, made by this drill, still exists", r)
		}
	}
	if !w.roleExists(lbcRole) {
		t.Errorf("IAM role %s, which the pilot light had before the drill, was deleted", lbcRole)
	}
	assoc, err := eksc.ListPodIdentityAssociations(ctx, &awseks.ListPodIdentityAssociationsInput{ClusterName: aws.String("drill-pilot")})
	if err != nil {
		t.Fatal(err)
	}
	var sas []string
	for _, a := range assoc.Associations {
		sas = append(sas, aws.ToString(a.Namespace)+"/"+aws.ToString(a.ServiceAccount))
	}
	if want := []string{"kube-system/aws-load-balancer-controller"}; !slices.Equal(sas, want) {
		t.Errorf("pod identity associations left = %v, want %v", sas, want)
	}
	nodeArn := res.Steps["iam.roles"].Outputs["karpenter_node_role_arn"]
	if _, err := eksc.DescribeAccessEntry(ctx, &awseks.DescribeAccessEntryInput{ClusterName: aws.String("drill-pilot"), PrincipalArn: aws.String(nodeArn)}); err == nil {
		t.Error("the Karpenter node role's access entry is still on the pilot light")
	}
	if w.mountExists(mount) {
		t.Error("the DR Vault mount is still enabled")
	}
	if _, err := kc.Dynamic().Resource(argocd.NodePoolGVR).Get(ctx, "drill-pilot-default", metav1.GetOptions{}); err != nil {
		t.Errorf("the pilot light's NodePool was deleted: %v", err)
	}
}

func testFailingPart(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-fail", eksProvider())
	iid, _ := w.drillMR(true)
	w.vf.EnableKubernetesAuth(mount)
	w.aws.Inject("iam", "DeleteRole", awsfake.Fault{Code: "DeleteConflict", Message: "Cannot delete entity, must detach all policies first.", Status: 409, Times: 100})

	steps := w.steps(w.teardown(), nil, map[string]string{"mr_iid": strconv.FormatInt(iid, 10)})
	res := w.run(steps)
	rec := res.Steps[teardown.StepID]
	if res.Run.Status != state.RunBlocked || rec.Status != state.StepFailed {
		t.Fatalf("run %s, teardown %s (%s); want blocked on a failed teardown", res.Run.Status, rec.Status, rec.Error)
	}
	t.Logf("teardown's error:\n%s", rec.Error)
	if rec.Retryable {
		t.Error("a DeleteConflict leftover was marked retryable")
	}
	for _, want := range []string{"teardown left 3 thing(s) behind", "IAM role KarpenterNodeRole-drill-fail: ", "DeleteConflict",
		"IAM role KarpenterControllerRole-drill-fail", "IAM role AWSLoadBalancerControllerRole-drill-fail", "remove it from each instance profile"} {
		if !strings.Contains(rec.Error, want) {
			t.Errorf("error lacks %q:\n%s", want, rec.Error)
		}
	}
	if !hasPrefix(res.Progress(teardown.StepID), "teardown left 3 thing(s) behind") {
		t.Errorf("no leftover list in the channel: %q", res.Progress(teardown.StepID))
	}
	var left []teardown.Leftover
	if err := json.Unmarshal([]byte(rec.Outputs["leftovers"]), &left); err != nil || len(left) != 3 || left[0].Part != teardown.PartIAM {
		t.Errorf("journaled leftovers = %s (%v)", rec.Outputs["leftovers"], err)
	}
	// Every other part went ahead.
	for _, p := range teardown.Parts {
		_, done := rec.Outputs[teardown.OutputKey(p)]
		if done == (p == teardown.PartIAM) {
			t.Errorf("part %s journaled done = %v", p, done)
		}
	}
	if slices.Contains(w.clusters(), "drill-fail") || w.mountExists(mount) || w.secretExists("cluster-drill-fail") {
		t.Error("parts other than IAM left their resources")
	}
	if w.policyExists(res.Steps["iam.roles"].Outputs["karpenter_policy_arn"]) {
		t.Error("the Karpenter policy, detached before the role failed, was not deleted")
	}

	// The cause goes away; Retry redoes the IAM part only.
	w.aws.ClearFaults()
	awsMark, glMark, vaultMark := len(w.aws.Calls()), len(w.gl.Calls()), len(w.vf.Calls())
	retried := pressRetry(t, res, steps, teardown.StepID)
	mustSucceed(t, retried)
	if got := w.mutatingAWSCalls(awsMark); !slices.Equal(got, []string{"iam:DeleteRole", "iam:DeleteRole", "iam:DeleteRole"}) {
		t.Errorf("Retry changed %v in AWS, want only the three role deletions", got)
	}
	for _, c := range w.aws.Calls()[awsMark:] {
		if c.Service == "eks" {
			t.Errorf("Retry called eks %s: the finished cluster part was redone", c.Operation)
		}
	}
	if len(w.gl.Calls()) != glMark || len(w.vf.Calls()) != vaultMark {
		t.Error("Retry called GitLab or Vault again: finished parts were redone")
	}
	for _, r := range []string{"AWSLoadBalancerControllerRole-drill-fail", "KarpenterControllerRole-drill-fail", "KarpenterNodeRole-drill-fail"} {
		if w.roleExists(r) {
			t.Errorf("IAM role %s still exists after Retry", r)
		}
	}
}

func testStuckApplication(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-stuck", eksProvider())
	w.opts = func(o *teardown.Options) { o.WaitTimeout = 300 * time.Millisecond }
	ctx := w.ctx()
	apps := kc.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd")
	app := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
		"metadata": map[string]any{"name": "drill-stuck-orders", "namespace": "argocd", "finalizers": []any{"resources-finalizer.argocd.argoproj.io"}},
		"spec":     map[string]any{"project": "default", "destination": map[string]any{"name": "drill-stuck", "namespace": "orders"}}}}
	if _, err := apps.Create(ctx, app, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = apps.Patch(context.Background(), "drill-stuck-orders", types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
	})
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-drill-stuck", Namespace: "argocd", Labels: map[string]string{argocd.SecretTypeLabel: "cluster"}},
		Data:       map[string][]byte{"name": []byte("drill-stuck"), "server": []byte("https://drill-stuck.example")},
	}
	if _, err := kc.Clientset().CoreV1().Secrets("argocd").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// No Argo CD controller runs the finalizer: the Application stays.
	res := w.teardownOnly(w.teardown(), steptest.Result{Steps: map[string]state.StepRecord{
		"cluster.create":  {Outputs: map[string]string{"cluster_name": "drill-stuck", "region": region}},
		"argocd.register": {Outputs: map[string]string{"secret": "argocd/cluster-drill-stuck"}},
	}})
	rec := res.Steps[teardown.StepID]
	if rec.Status != state.StepFailed {
		t.Fatalf("teardown %s; want failed on the stuck Application", rec.Status)
	}
	for _, want := range []string{"Argo CD Application argocd/drill-stuck-orders", "resources-finalizer.argocd.argoproj.io",
		`kubectl -n argocd patch application drill-stuck-orders --type merge -p '{"metadata":{"finalizers":null}}'`,
		"Argo CD cluster Secret argocd/cluster-drill-stuck: kept while Applications bound for the cluster remain"} {
		if !strings.Contains(rec.Error, want) {
			t.Errorf("error lacks %q:\n%s", want, rec.Error)
		}
	}
	if rec.Retryable {
		t.Error("a stuck finalizer needs a person; the step should park, not retry on its own")
	}
	if !w.secretExists("cluster-drill-stuck") {
		t.Error("the cluster Secret was deleted while Argo CD still needs it")
	}
	_ = kc.Clientset().CoreV1().Secrets("argocd").Delete(ctx, "cluster-drill-stuck", metav1.DeleteOptions{})
}

func testForeignCluster(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-foreign", eksProvider())
	ctx := w.ctx()
	// Someone's cluster under the drill's name, adopted by cluster.create.
	if _, err := w.aws.AddCluster(region, awsfake.ExistingCluster{Name: "drill-foreign", Tags: map[string]string{"team": "payments"}}); err != nil {
		t.Fatal(err)
	}
	lb := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "drill-foreign-lb", Namespace: "orders"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}}}
	if _, err := kc.Clientset().CoreV1().Services("orders").Create(ctx, lb, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = kc.Clientset().CoreV1().Services("orders").Delete(context.Background(), "drill-foreign-lb", metav1.DeleteOptions{})
	})

	res := w.teardownOnly(w.teardown(), steptest.Result{Steps: map[string]state.StepRecord{
		"cluster.create": {Outputs: map[string]string{"cluster_name": "drill-foreign", "region": region}},
	}})
	rec := res.Steps[teardown.StepID]
	if rec.Status != state.StepFailed || !strings.Contains(rec.Error, `EKS cluster drill-foreign: cluster "drill-foreign" has no drbot/run tag`) {
		t.Fatalf("teardown %s: %s; want it to refuse the cluster", rec.Status, rec.Error)
	}
	if !slices.Contains(w.clusters(), "drill-foreign") || w.aws.CallsTo("eks", "DeleteNodegroup")+w.aws.CallsTo("eks", "DeleteCluster") > 0 {
		t.Error("a cluster no drill made was deleted")
	}
	if _, err := kc.Clientset().CoreV1().Services("orders").Get(ctx, "drill-foreign-lb", metav1.GetOptions{}); err != nil {
		t.Errorf("a LoadBalancer Service of a cluster no drill made was deleted: %v", err)
	}
}

func testPilotLightUnknownSize(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-unknown", config.Cluster{Provider: config.ProviderExisting, Existing: &config.ExistingCluster{NodeGroup: "pilot-ng", Desired: 5}})
	res := w.teardownOnly(w.teardown(), steptest.Result{Steps: map[string]state.StepRecord{
		"cluster.create": {Outputs: map[string]string{"cluster_name": "drill-unknown", "region": region, "nodegroup": "pilot-ng"}},
	}})
	rec := res.Steps[teardown.StepID]
	want := "node group pilot-ng of pilot-light cluster drill-unknown: cluster.create journaled no size from before the drill"
	if rec.Status != state.StepFailed || !strings.Contains(rec.Error, want) || !strings.Contains(rec.Error, "aws eks update-nodegroup-config --region eu-west-1 --cluster-name drill-unknown --nodegroup-name pilot-ng") {
		t.Fatalf("teardown %s: %s\nwant the node group listed to check", rec.Status, rec.Error)
	}
	if w.aws.CallsTo("eks", "UpdateNodegroupConfig") != 0 {
		t.Error("the node group was scaled without knowing its size before the drill")
	}
}

func testTerraform(t *testing.T, kc *kubeenv.Cluster) {
	dir := t.TempDir()
	w := newWorld(t, kc, "drill-tf", config.Cluster{Provider: config.ProviderTerraform, Terraform: &config.TerraformCluster{Dir: dir, Workspace: "drill"}})
	terraformfake.WriteModule(t, dir, terraformfake.Module{
		Variables: []string{"region", "cluster_name"},
		Resources: []terraformfake.Resource{
			{Address: "module.vpc.aws_vpc.this", Attributes: map[string]string{"id": "vpc-0tf"}},
			{Address: "module.eks.aws_eks_cluster.this", Attributes: map[string]string{"id": "${var.cluster_name}"}},
		},
		Outputs: map[string]any{"cluster_name": "${var.cluster_name}"},
	})
	// What the module's aws_eks_cluster makes.
	if _, err := w.aws.AddCluster(region, awsfake.ExistingCluster{Name: "drill-tf"}); err != nil {
		t.Fatal(err)
	}
	p := eks.NewProvisioner(eks.Options{Config: w.cfg, AWS: w.awsConfig, TerraformPath: terraformfake.Build(t), PollInterval: 10 * time.Millisecond, WaitTimeout: time.Minute})
	// terraform destroy through the real provisioner; the stand-in's state
	// is not the AWS stand-in's, so the module's cluster is deleted here.
	w.destroyer = destroyFunc(func(ctx context.Context, sc *recovery.StepContext) error {
		if err := p.Destroy(ctx, sc); err != nil {
			return err
		}
		cfg, _ := w.awsConfig(ctx, region)
		_, err := awseks.NewFromConfig(cfg).DeleteCluster(ctx, &awseks.DeleteClusterInput{Name: aws.String("drill-tf")})
		return err
	})
	steps := []recovery.Step{
		{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: p.Create},
		{ID: teardown.StepID, Phase: recovery.PhaseClose, DependsOn: []string{"cluster.create"}, Action: w.teardown().Action},
	}
	res := w.run(steps)
	mustSucceed(t, res)
	if got := terraformfake.StateResources(t, dir, "drill"); len(got) != 0 {
		t.Errorf("resources left in the workspace: %v", got)
	}
	if slices.Contains(w.clusters(), "drill-tf") {
		t.Error("EKS still has the cluster")
	}
	if got := res.Steps[teardown.StepID].Outputs[teardown.OutputKey(teardown.PartCluster)]; !strings.Contains(got, "terraform destroy done in "+dir+" (workspace drill)") {
		t.Errorf("cluster part = %q", got)
	}
}

func testRevertAfterLaterChange(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-later", eksProvider())
	iid, _ := w.drillMR(true)
	// After the merge someone edits a file the drill changed.
	edited := "kind: Application\nmetadata: {name: existing}\n# edited by a person after the drill\n"
	w.gl.CommitFiles(project, "main", map[string]string{"dr/existing.yaml": edited}, "hand edit")

	res := w.teardownOnly(w.teardown(), steptest.Result{Steps: map[string]state.StepRecord{
		"cluster.create": {Outputs: map[string]string{"cluster_name": "drill-later", "region": region}},
		"gitops.mr":      {Outputs: map[string]string{"mr_iid": strconv.FormatInt(iid, 10)}},
	}})
	rec := res.Steps[teardown.StepID]
	if rec.Status != state.StepFailed || !strings.Contains(rec.Error, "dr on main: dr/existing.yaml: changed since merge request !1 was merged") {
		t.Fatalf("teardown %s: %s\nwant the edited file listed", rec.Status, rec.Error)
	}
	files := w.gl.Files(project, "main")
	if files["dr/existing.yaml"] != edited {
		t.Errorf("the person's edit was overwritten: %q", files["dr/existing.yaml"])
	}
	for _, p := range []string{"dr/orders-api.yaml", "dr/payments-web.yaml"} {
		if _, ok := files[p]; ok {
			t.Errorf("%s, added by the drill, is still on main", p)
		}
	}
	if rec.Outputs["revert_commit"] == "" {
		t.Error("the revert commit was not journaled")
	}
}

func TestTeardownRefusesARecoveryRun(t *testing.T) {
	td, err := teardown.New(&config.Config{Targets: []config.Target{{Name: targetName}}}, teardown.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := steptest.Run(t, steptest.Options{Target: targetName, Mode: state.ModeRecovery},
		recovery.Step{ID: teardown.StepID, Phase: recovery.PhaseClose, Action: td.Action})
	if rec := res.Steps[teardown.StepID]; rec.Status != state.StepFailed || !strings.Contains(rec.Error, "teardown runs only in drills") {
		t.Fatalf("teardown in a recovery: %s %q", rec.Status, rec.Error)
	}
}

func TestTeardownWithoutClientsListsEveryPartInsteadOfSkipping(t *testing.T) {
	cfg := &config.Config{
		Targets: []config.Target{{Name: targetName, DR: config.DR{Region: region, ClusterName: "dr"}, Cluster: eksProvider()}},
		GitLab:  config.GitLab{Project: project, BranchPrefix: "drbot/", DefaultBranch: "main", DRPath: "dr"},
		Vault:   config.Vault{SourceMount: "kubernetes", TargetMount: "k8s-dr-{target}"},
	}
	td, err := teardown.New(cfg, teardown.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := steptest.Run(t, steptest.Options{Target: targetName, Mode: state.ModeDrill},
		recovery.Step{ID: teardown.StepID, Phase: recovery.PhaseClose, Action: td.Action})
	rec := res.Steps[teardown.StepID]
	if rec.Status != state.StepFailed {
		t.Fatalf("teardown %s, want failed", rec.Status)
	}
	for _, want := range []string{"[gitlab] GitLab branch drbot/", "[karpenter] ", "[argocd] Argo CD Applications bound for dr", "[load-balancers] ",
		"[vault] Vault auth mount auth/k8s-dr-prod-eu", "[iam] ", "[cluster] EKS cluster dr", "wiring bug"} {
		if !strings.Contains(rec.Error, want) {
			t.Errorf("error lacks %q:\n%s", want, rec.Error)
		}
	}
}

type destroyFunc func(ctx context.Context, sc *recovery.StepContext) error

func (f destroyFunc) Destroy(ctx context.Context, sc *recovery.StepContext) error { return f(ctx, sc) }

// pressRetry answers the failed step's Retry button on a fresh engine over the
// run's state, as after a restart, and waits for the run to end or block.
func pressRetry(t *testing.T, res steptest.Result, steps []recovery.Step, stepID string) steptest.Result {
	t.Helper()
	book, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	eng := recovery.New(ctx, res.Store, book, recovery.Options{
		Retry:  recovery.RetryPolicy{MaxAttempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if _, err := eng.Resume(); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Decide(recovery.DecisionRequest{RunID: res.Run.ID, StepID: stepID, Kind: recovery.DecideRetry, By: "U_OPS"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	var out steptest.Result
	for {
		out = steptest.Load(t, res.Store, res.Run.ID)
		if out.Run.Status.Finished() || (out.Run.Status == state.RunBlocked && out.Steps[stepID].Status == state.StepFailed && out.Steps[stepID].Attempt > res.Steps[stepID].Attempt) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after Retry", res.Run.ID, out.Run.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	eng.Wait()
	return steptest.Load(t, res.Store, res.Run.ID)
}

func mustSucceed(t *testing.T, res steptest.Result) {
	t.Helper()
	if res.Run.Status != state.RunSucceeded {
		var why []string
		for id, s := range res.Steps {
			if s.Status != state.StepSucceeded {
				why = append(why, id+" "+string(s.Status)+": "+s.Error)
			}
		}
		slices.Sort(why)
		t.Fatalf("run %s:\n%s\nprogress: %q", res.Run.Status, strings.Join(why, "\n"), res.Progress(teardown.StepID))
	}
}

func hasPrefix(lines []string, prefix string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
}

func countCalls(calls []gitlabfake.Call, method, suffix string) int {
	n := 0
	for _, c := range calls {
		if c.Method == method && strings.HasSuffix(c.Path, suffix) {
			n++
		}
	}
	return n
}

// EKS may refuse to delete a node group it is still creating (a drill
// aborted during cluster.create), or the cluster while an add-on's
// deletion is under way: teardown asks again while it waits.
func testNodegroupDeleteRefused(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-refused", eksProvider())
	w.aws.Inject("eks", "DeleteNodegroup", awsfake.Fault{Code: "ResourceInUseException", Status: http.StatusConflict,
		Message: "Nodegroup drill-refused-ng cannot be deleted while it is CREATING", Times: 2})
	w.aws.Inject("eks", "DeleteCluster", awsfake.Fault{Code: "ResourceInUseException", Status: http.StatusConflict,
		Message: "Cannot delete because cluster drill-refused currently has an update in progress", Times: 2})
	res := w.run(w.steps(w.teardown(), nil, nil))
	mustSucceed(t, res)
	if slices.Contains(w.clusters(), "drill-refused") {
		t.Errorf("EKS cluster drill-refused still exists: %v", w.clusters())
	}
	if n := w.aws.CallsTo("eks", "DeleteNodegroup"); n != 3 {
		t.Errorf("DeleteNodegroup called %d times, want 3 (refused twice, then accepted)", n)
	}
	if n := w.aws.CallsTo("eks", "DeleteCluster"); n != 3 {
		t.Errorf("DeleteCluster called %d times, want 3 (refused twice, then accepted)", n)
	}
}
