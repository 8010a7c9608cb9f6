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
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/cutover"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/recovery/teardown"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
	"github.com/drbot/drbot/test/kubeenv"
)

// The real cutover implements what teardown calls.
var _ teardown.CutoverRollback = (*cutover.Cutover)(nil)

// The lost primary's load balancer, where the drill's endpoints point before the cutover.
const (
	oldLB     = "old-gateway-0123456789.eu-west-1.elb.amazonaws.com"
	oldLBZone = "Z2IFOLAFXWLO4F"
)

// edgeWorld is what a drill's cutover moves, as the AWS stand-in holds it:
// a Route 53 record, a CloudFront origin and a REST API integration, all at
// the old load balancer, and the DR cluster's gateway load balancer.
type edgeWorld struct {
	zone, dist, api, resource string
	newDNS                    string // the DR gateway load balancer's DNS name
}

// edgeState is every value the cutover may change, read back from the stand-in.
type edgeState struct {
	Record      edge.RecordSet
	Docs        edge.RecordSet // a record of the zone no row names
	Origins     []edge.Origin
	Integration string
	Served      string // what the REST stage serves
}

// seedCutover adds the drill's endpoints and the gateway load balancer, and
// configures the target's cutover over them.
func (w *world) seedCutover() edgeWorld {
	w.t.Helper()
	gw := "istio-ingress/" + w.cluster + "-gateway"
	_, dns, _ := w.aws.AddLoadBalancer(region, awsfake.LoadBalancer{Name: "k8s-istioing-" + w.cluster, Tags: map[string]string{
		"elbv2.k8s.aws/cluster": w.cluster, "service.k8s.aws/stack": gw, "service.k8s.aws/resource": "LoadBalancer"}})
	ed := w.aws.Edge()
	e := edgeWorld{newDNS: dns}
	e.zone = ed.AddHostedZone("drill.example.com")
	ed.AddRecord(e.zone, edge.RecordSet{Name: "api.drill.example.com", Type: "A", AliasTarget: &edge.AliasTarget{DNSName: oldLB, HostedZoneID: oldLBZone}})
	ed.AddRecord(e.zone, edge.RecordSet{Name: "docs.drill.example.com", Type: "CNAME", TTL: 300, Values: []string{oldLB}})
	e.dist = ed.AddDistribution([]edge.Origin{{ID: "web-origin", DomainName: oldLB}, {ID: "assets", DomainName: "assets.s3.eu-west-1.amazonaws.com"}})
	e.api = ed.AddRestAPI("partners")
	e.resource = ed.AddRestIntegration(e.api, "/orders", "GET", "https://"+oldLB+"/orders/{proxy}")
	ed.AddStage(e.api, "prod")

	backend := config.Backend{Service: gw}
	w.cfg.Targets[0].Cutover = &config.Cutover{
		Route53:    []config.Route53Record{{ZoneID: e.zone, Name: "api.drill.example.com", Type: "A", Backend: backend}},
		CloudFront: []config.CloudFrontOrigin{{DistributionID: e.dist, OriginID: "web-origin", Backend: backend}},
		APIGateway: []config.APIGatewayIntegration{{APIID: e.api, Kind: "rest", ResourceID: e.resource, HTTPMethod: "GET", Stage: "prod", Backend: backend}},
	}
	return e
}

func (w *world) edgeState(e edgeWorld) edgeState {
	w.t.Helper()
	ed := w.aws.Edge()
	var s edgeState
	s.Record, _ = ed.Record(e.zone, "api.drill.example.com", "A", "")
	s.Docs, _ = ed.Record(e.zone, "docs.drill.example.com", "CNAME", "")
	d, ok := ed.Distribution(e.dist)
	if !ok {
		w.t.Fatalf("distribution %s is gone", e.dist)
	}
	s.Origins = d.Origins
	in, _ := ed.RestIntegration(e.api, e.resource, "GET")
	s.Integration = in.URI
	served, _ := ed.StageIntegrations(e.api, "prod")
	s.Served = served["GET /orders"].URI
	return s
}

func (s edgeState) equal(o edgeState) bool {
	j1, _ := json.Marshal(s)
	j2, _ := json.Marshal(o)
	return string(j1) == string(j2)
}

func (s edgeState) String() string {
	j, _ := json.Marshal(s)
	return string(j)
}

// countingRollback is the real cutover, counting the rollbacks teardown asks for.
type countingRollback struct {
	*cutover.Cutover
	calls atomic.Int32
	after func() // runs after each rollback returns
}

func (c *countingRollback) Rollback(ctx context.Context, runID, record string, progress func(string)) (cutover.RollbackReport, error) {
	c.calls.Add(1)
	rep, err := c.Cutover.Rollback(ctx, runID, record, progress)
	if c.after != nil {
		c.after()
	}
	return rep, err
}

// newCutover is the real cutover against the stand-in; its requests name
// their step in the User-Agent, as drbot's do.
func (w *world) newCutover() *countingRollback {
	w.t.Helper()
	cfg, _ := w.awsConfig(context.Background(), region)
	cfg.HTTPClient = &http.Client{Transport: recovery.StepUserAgent(edge.WrapTransport(nil))}
	c, err := cutover.New(w.cfg, cutover.Options{
		Clients: cutover.FromAWSConfig(cfg), Poll: 10 * time.Millisecond, ProgressEvery: 100 * time.Millisecond,
		DiscoverTimeout: 10 * time.Second, Route53Timeout: 10 * time.Second, CloudFrontTimeout: 10 * time.Second,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	rb := &countingRollback{Cutover: c}
	w.cut = rb
	return rb
}

// cutoverSteps is the drill's cutover phase (deploy.watch stubbed), the
// apply behind the cutover gate when gated; then every step in after
// depends on the last of them.
func cutoverSteps(c *countingRollback, gated bool, verify bool) []recovery.Step {
	apply := recovery.Step{ID: cutover.StepApply, Phase: recovery.PhaseCutover, DependsOn: []string{cutover.StepPlan, cutover.StepDeployWatch}, Action: c.Apply}
	if gated {
		apply.Gate = recovery.GateCutover
	}
	steps := []recovery.Step{
		steptest.Stub(cutover.StepDeployWatch, recovery.PhaseDeploy, map[string]string{cutover.OutAppHealth: "{}"}),
		{ID: cutover.StepDiscover, Phase: recovery.PhaseCutover, Action: c.Discover},
		{ID: cutover.StepPlan, Phase: recovery.PhaseCutover, DependsOn: []string{cutover.StepDiscover}, Action: c.Plan},
		apply,
	}
	if verify {
		steps = append(steps, recovery.Step{ID: cutover.StepVerify, Phase: recovery.PhaseCutover, DependsOn: []string{cutover.StepApply}, Action: c.Verify})
	}
	return steps
}

// withCutover puts the cutover steps into a drill's runbook before
// teardown, which then waits for the last of them; between, the optional
// step runs (a fault injected after the cutover, for one).
func withCutover(steps []recovery.Step, cut []recovery.Step, between *recovery.Step) []recovery.Step {
	last := cut[len(cut)-1].ID
	var out []recovery.Step
	for _, s := range steps {
		if s.ID == teardown.StepID {
			out = append(out, cut...)
			if between != nil {
				b := *between
				b.DependsOn = []string{last}
				out = append(out, b)
				last = b.ID
			}
			s.DependsOn = append(slices.Clone(s.DependsOn), last)
		}
		out = append(out, s)
	}
	return out
}

// edgeCallsBy lists the Route 53, CloudFront and API Gateway calls a step
// made since the mark, as service:Operation.
func (w *world) edgeCallsBy(step string, from int) []string {
	var out []string
	for _, c := range w.aws.Calls()[from:] {
		switch c.Service {
		case "route53", "cloudfront", "apigateway":
		default:
			continue
		}
		if recovery.StepFromUserAgent(c.UserAgent) == step {
			out = append(out, c.Service+":"+c.Operation)
		}
	}
	return out
}

func testCutoverRestoredFirst(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-cut", eksProvider())
	e := w.seedCutover()
	before := w.edgeState(e)
	iid, _ := w.drillMR(true)
	w.vf.EnableKubernetesAuth(mount)
	w.drillObjects()
	rb := w.newCutover()
	td := w.teardown()
	res := w.run(withCutover(w.steps(td, nil, map[string]string{"mr_iid": strconv.FormatInt(iid, 10)}), cutoverSteps(rb, false, true), nil))
	mustSucceed(t, res)

	// The drill did cut over: apply moved all three rows to the gateway.
	if got := res.Steps[cutover.StepApply].Outputs["applied"]; got != "3" {
		t.Fatalf("endpoints.apply changed %q row(s), want 3; outputs %v", got, res.Steps[cutover.StepApply].Outputs)
	}
	// After the teardown every row has its old value, read back from the stand-in.
	if after := w.edgeState(e); !after.equal(before) {
		t.Errorf("after the teardown the drill's endpoints are\n %s\nwant them as before the drill\n %s", after, before)
	}
	out := res.Steps[teardown.StepID].Outputs
	if got, want := out[teardown.OutputKey(teardown.PartCutover)], "3 row(s) restored, 0 already had their old value"; got != want {
		t.Errorf("cutover part summary = %q, want %q", got, want)
	}
	if n := rb.calls.Load(); n != 1 {
		t.Errorf("teardown rolled the cutover back %d times, want once", n)
	}
	// The rollback's calls carry teardown's User-Agent, and every change
	// is made before the first deletion of the cluster the traffic would hit.
	firstDelete, lastRestore := -1, -1
	for i, c := range w.aws.Calls() {
		step := recovery.StepFromUserAgent(c.UserAgent)
		switch {
		case c.Service == "eks" && strings.HasPrefix(c.Operation, "Delete") && firstDelete < 0:
			firstDelete = i
		case step == teardown.StepID && (c.Operation == "ChangeResourceRecordSets" || c.Operation == "UpdateDistribution" || c.Service == "apigateway" && c.Operation != "" && !strings.HasPrefix(c.Operation, "Get")):
			lastRestore = i
		}
	}
	if lastRestore < 0 || firstDelete < 0 || lastRestore > firstDelete {
		t.Errorf("last restoring call #%d, first EKS deletion #%d: want the cutover put back before anything is deleted", lastRestore, firstDelete)
	}
	progress := res.Progress(teardown.StepID)
	if len(progress) == 0 || !strings.HasPrefix(progress[0], "rolling back the cutover of "+targetName) {
		t.Errorf("teardown's first progress line = %q, want the rollback's", progress)
	}
	if !hasPrefix(progress, "rollback of run "+res.Run.ID+" verified: 3 row(s) restored") {
		t.Errorf("no verified rollback in teardown's progress: %q", progress)
	}
	if slices.Contains(w.clusters(), "drill-cut") {
		t.Error("the cluster was not deleted after the cutover was restored")
	}
}

func testNoCutoverNoCalls(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-nocut", eksProvider())
	e := w.seedCutover()
	before := w.edgeState(e)
	rb := w.newCutover()
	td := w.teardown()
	steps := withCutover(onlyTeardown("drill-nocut", td), cutoverSteps(rb, true, false), nil)
	// The cutover gate is rejected and the apply skipped: plan journaled
	// its rollback record, apply never ran.
	res := drive(t, steps, func(eng *recovery.Engine, r steptest.Result) {
		rec := r.Steps[cutover.StepApply]
		switch rec.Status {
		case state.StepWaiting:
			_, _ = eng.Decide(recovery.DecisionRequest{RunID: r.Run.ID, StepID: cutover.StepApply, Kind: recovery.DecideReject, By: "U_OPS", Round: rec.GateRound})
		case state.StepFailed:
			_, _ = eng.Decide(recovery.DecisionRequest{RunID: r.Run.ID, StepID: cutover.StepApply, Kind: recovery.DecideSkip, By: "U_OPS", Round: rec.Failures})
		}
	})
	mustSucceed(t, res)
	if rec := res.Steps[cutover.StepApply]; rec.Status != state.StepSkipped || rec.Attempt != 0 || res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback] == "" {
		t.Fatalf("apply %s after %d attempt(s), plan record %d bytes: want a skipped apply that never ran after a journaled plan",
			rec.Status, rec.Attempt, len(res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback]))
	}
	if got, want := res.Steps[teardown.StepID].Outputs[teardown.OutputKey(teardown.PartCutover)], "nothing to restore: the drill did not cut over"; got != want {
		t.Errorf("cutover part summary = %q, want %q", got, want)
	}
	if n := rb.calls.Load(); n != 0 {
		t.Errorf("teardown asked for %d rollback(s) of a cutover that never happened", n)
	}
	if calls := w.edgeCallsBy(teardown.StepID, 0); len(calls) != 0 {
		t.Errorf("teardown called %v for a drill that did not cut over", calls)
	}
	if after := w.edgeState(e); !after.equal(before) {
		t.Errorf("endpoints changed: %s, want %s", after, before)
	}
}

func testApplyFailedHalfWay(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-half", eksProvider())
	e := w.seedCutover()
	before := w.edgeState(e)
	rb := w.newCutover()
	td := w.teardown()
	steps := withCutover(onlyTeardown("drill-half", td), cutoverSteps(rb, false, false), nil)
	// CloudFront refuses the apply's update: the Route 53 row has moved,
	// the others have not. The operator skips the failed apply.
	w.aws.Inject("cloudfront", "UpdateDistribution", awsfake.Fault{Code: "AccessDenied", Message: "not allowed (injected)", Status: http.StatusForbidden})
	skipped := false
	res := drive(t, steps, func(eng *recovery.Engine, r steptest.Result) {
		if rec := r.Steps[cutover.StepApply]; rec.Status == state.StepFailed && !skipped {
			if rec, ok := w.aws.Edge().Record(e.zone, "api.drill.example.com", "A", ""); !ok || rec.AliasTarget == nil || !strings.Contains(rec.AliasTarget.DNSName, e.newDNS) {
				t.Errorf("after the failed apply api.drill.example.com = %+v, want it moved to %s", rec, e.newDNS)
			}
			w.aws.ClearFaults()
			skipped = true
			_, _ = eng.Decide(recovery.DecisionRequest{RunID: r.Run.ID, StepID: cutover.StepApply, Kind: recovery.DecideSkip, By: "U_OPS", Round: rec.Failures})
		}
	})
	mustSucceed(t, res)
	if !skipped {
		t.Fatal("the apply did not fail on the injected fault")
	}
	if after := w.edgeState(e); !after.equal(before) {
		t.Errorf("after the teardown the drill's endpoints are\n %s\nwant them as before the drill\n %s", after, before)
	}
	if got, want := res.Steps[teardown.StepID].Outputs[teardown.OutputKey(teardown.PartCutover)], "1 row(s) restored, 2 already had their old value"; got != want {
		t.Errorf("cutover part summary = %q, want %q", got, want)
	}
}

func testRollbackFailureHoldsBack(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-held", eksProvider())
	e := w.seedCutover()
	before := w.edgeState(e)
	iid, _ := w.drillMR(true)
	w.vf.EnableKubernetesAuth(mount)
	w.drillObjects()
	rb := w.newCutover()
	td := w.teardown()
	// Once the cutover is verified, Route 53 starts refusing drbot's changes.
	fault := recovery.Step{ID: "fault", Phase: recovery.PhaseClose, Action: func(context.Context, *recovery.StepContext) (recovery.Result, error) {
		w.aws.Inject("route53", "ChangeResourceRecordSets", awsfake.Fault{Code: "AccessDenied", Message: "not allowed (injected)", Status: http.StatusForbidden})
		return recovery.Result{}, nil
	}}
	steps := withCutover(w.steps(td, nil, map[string]string{"mr_iid": strconv.FormatInt(iid, 10)}), cutoverSteps(rb, false, true), &fault)
	res := w.run(steps)
	rec := res.Steps[teardown.StepID]
	if res.Run.Status != state.RunBlocked || rec.Status != state.StepFailed {
		t.Fatalf("run %s, teardown %s (%s); want blocked on a failed teardown", res.Run.Status, rec.Status, rec.Error)
	}
	t.Logf("teardown's error:\n%s", rec.Error)
	for _, want := range []string{"teardown left 1 thing(s) behind; fix the cause and press Retry, which also runs the parts held back", "1. [cutover] the cutover of " + targetName + " (3 row(s)", "AccessDenied",
		"run /dr rollback " + res.Run.ID + ` --reason "…" or restore the rows in the rollback record`,
		"not run until the cutover part succeeds: gitlab, karpenter, argocd, load-balancers, vault, iam, cluster"} {
		if !strings.Contains(rec.Error, want) {
			t.Errorf("error lacks %q:\n%s", want, rec.Error)
		}
	}
	if rec.Retryable {
		t.Error("an AccessDenied rollback was marked retryable")
	}
	var left []teardown.Leftover
	if err := json.Unmarshal([]byte(rec.Outputs["leftovers"]), &left); err != nil || len(left) != 1 || left[0].Part != teardown.PartCutover {
		t.Errorf("journaled leftovers = %s (%v)", rec.Outputs["leftovers"], err)
	}
	for _, p := range teardown.Parts {
		if v, ok := rec.Outputs[teardown.OutputKey(p)]; ok {
			t.Errorf("part %s ran (%q) although the cutover was not restored", p, v)
		}
	}
	// What the drill's endpoints serve through is all still there.
	ctx := w.ctx()
	if _, err := kc.Clientset().CoreV1().Services("istio-ingress").Get(ctx, "drill-held-gateway", metav1.GetOptions{}); err != nil {
		t.Errorf("the gateway's LoadBalancer Service was deleted while traffic points at it: %v", err)
	}
	if !slices.Contains(w.clusters(), "drill-held") {
		t.Error("the cluster was deleted while traffic points at it")
	}
	if len(w.aws.LoadBalancers(region)) != 1 {
		t.Errorf("load balancers = %d, want the gateway's", len(w.aws.LoadBalancers(region)))
	}
	if !w.mountExists(mount) || !w.roleExists("AWSLoadBalancerControllerRole-drill-held") || !w.secretExists("cluster-drill-held") {
		t.Error("a part after the cutover removed something although the cutover was not restored")
	}
	if n := w.aws.CallsTo("eks", "DeleteNodegroup") + w.aws.CallsTo("eks", "DeleteCluster") + w.aws.CallsTo("iam", "DeleteRole"); n != 0 {
		t.Errorf("%d EKS or IAM deletions were made", n)
	}

	// The cause goes away; Retry restores the cutover, then does the rest.
	w.aws.ClearFaults()
	retried := pressRetry(t, res, steps, teardown.StepID)
	mustSucceed(t, retried)
	if after := w.edgeState(e); !after.equal(before) {
		t.Errorf("after Retry the drill's endpoints are\n %s\nwant\n %s", after, before)
	}
	if slices.Contains(w.clusters(), "drill-held") || w.mountExists(mount) {
		t.Error("Retry did not finish the teardown")
	}
	if _, err := kc.Clientset().CoreV1().Services("istio-ingress").Get(ctx, "drill-held-gateway", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the gateway's LoadBalancer Service is still there after Retry (err %v)", err)
	}
}

func testCutoverJournaledIsSkipped(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-resume", eksProvider())
	e := w.seedCutover()
	before := w.edgeState(e)
	w.vf.EnableKubernetesAuth(mount)
	rb := w.newCutover()
	td := w.teardown()
	// The cutover part finishes; a later one (IAM) fails.
	w.aws.Inject("iam", "DeleteRole", awsfake.Fault{Code: "DeleteConflict", Message: "Cannot delete entity (injected).", Status: http.StatusConflict})
	steps := withCutover(w.steps(td, nil, map[string]string{}), cutoverSteps(rb, false, true), nil)
	res := w.run(steps)
	rec := res.Steps[teardown.StepID]
	if rec.Status != state.StepFailed || !strings.Contains(rec.Error, "[iam]") || strings.Contains(rec.Error, "[cutover]") {
		t.Fatalf("teardown %s: %s\nwant only the IAM part failed", rec.Status, rec.Error)
	}
	if rec.Outputs[teardown.OutputKey(teardown.PartCutover)] == "" || rb.calls.Load() != 1 {
		t.Fatalf("cutover part journaled %q after %d rollback(s)", rec.Outputs[teardown.OutputKey(teardown.PartCutover)], rb.calls.Load())
	}
	if after := w.edgeState(e); !after.equal(before) {
		t.Errorf("endpoints after the first attempt = %s, want %s", after, before)
	}

	// A restart and Retry over the same journal: the cutover part is not redone.
	w.aws.ClearFaults()
	mark := len(w.aws.Calls())
	retried := pressRetry(t, res, steps, teardown.StepID)
	mustSucceed(t, retried)
	if n := rb.calls.Load(); n != 1 {
		t.Errorf("rollbacks = %d after Retry, want the first attempt's one", n)
	}
	if calls := w.edgeCallsBy(teardown.StepID, mark); len(calls) != 0 {
		t.Errorf("Retry called %v: the journaled cutover part was redone", calls)
	}
	if got := retried.Steps[teardown.StepID].Outputs[teardown.OutputKey(teardown.PartCutover)]; got != "3 row(s) restored, 0 already had their old value" {
		t.Errorf("cutover part summary after Retry = %q", got)
	}
}

// testCrashAfterRollback: drbot stops right after the rollback, before
// the part is journaled; the resumed step rolls back again and changes
// nothing, every row already having its old value.
func testCrashAfterRollback(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-crash", eksProvider())
	e := w.seedCutover()
	before := w.edgeState(e)
	rb := w.newCutover()
	ctx, crash := context.WithCancel(context.Background())
	defer crash()
	rb.after = crash
	td := w.teardown()
	steps := withCutover(onlyTeardown("drill-crash", td), cutoverSteps(rb, false, true), nil)
	store, runID := crashRun(t, ctx, steps)
	first := steptest.Load(t, store, runID)
	if rec := first.Steps[teardown.StepID]; rec.Status != state.StepRunning || rec.Outputs[teardown.OutputKey(teardown.PartCutover)] != "" {
		t.Fatalf("after the crash teardown is %s with outputs %v; want it running with the cutover part not journaled", rec.Status, rec.Outputs)
	}
	if after := w.edgeState(e); !after.equal(before) {
		t.Fatalf("the crashed rollback did not restore the endpoints: %s", after)
	}

	rb.after = nil
	mark := len(w.aws.Calls())
	res := resume(t, store, steps, runID)
	mustSucceed(t, res)
	if got, want := res.Steps[teardown.StepID].Outputs[teardown.OutputKey(teardown.PartCutover)], "0 row(s) restored, 3 already had their old value"; got != want {
		t.Errorf("resumed cutover part = %q, want %q", got, want)
	}
	for _, c := range w.edgeCallsBy(teardown.StepID, mark) {
		if strings.HasPrefix(c, "route53:Change") || strings.HasPrefix(c, "cloudfront:Update") || c == "apigateway:UpdateIntegration" || c == "apigateway:CreateDeployment" {
			t.Errorf("the resumed rollback changed something (%s) already restored", c)
		}
	}
	if after := w.edgeState(e); !after.equal(before) {
		t.Errorf("endpoints after the resume = %s, want %s", after, before)
	}
}

func testRollbackNotWired(t *testing.T, kc *kubeenv.Cluster) {
	w := newWorld(t, kc, "drill-unwired", eksProvider())
	w.seedCutover()
	rb := w.newCutover()
	w.cut = nil // the cutover steps have it, teardown does not
	td := w.teardown()
	steps := withCutover(onlyTeardown("drill-unwired", td), cutoverSteps(rb, false, true), nil)
	res := w.run(steps)
	rec := res.Steps[teardown.StepID]
	if rec.Status != state.StepFailed || !strings.Contains(rec.Error, "[cutover] the cutover of "+targetName) || !strings.Contains(rec.Error, "without the cutover rollback (a wiring bug)") ||
		!strings.Contains(rec.Error, "not run until the cutover part succeeds") {
		t.Fatalf("teardown %s: %s\nwant the unwired rollback listed and the rest held back", rec.Status, rec.Error)
	}
	if n := w.aws.CallsTo("eks", "DeleteCluster") + w.aws.CallsTo("eks", "DescribeCluster"); n != 0 {
		t.Errorf("the cluster part ran (%d EKS calls) with the cutover still in place", n)
	}
}

// drive runs steps on an engine, letting decide act on each look at the
// journal, until the run ends or blocks with nothing more decided.
func drive(t *testing.T, steps []recovery.Step, decide func(*recovery.Engine, steptest.Result)) steptest.Result {
	t.Helper()
	store := openStore(t)
	eng, stop := newEngine(t, context.Background(), store, steps)
	defer stop()
	run, err := eng.Start(recovery.StartRequest{Target: targetName, Mode: state.ModeDrill, Initiator: "U_TEST"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	quiet := 0
	for {
		res := steptest.Load(t, store, run.ID)
		if res.Run.Status.Finished() {
			return res
		}
		decide(eng, res)
		if res.Run.Status == state.RunBlocked {
			// Blocked with no decision taken for a while: done.
			if quiet++; quiet > 50 {
				return res
			}
		} else {
			quiet = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after a minute", run.ID, res.Run.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crashRun starts a drill and waits until ctx is cancelled (drbot
// stopping), then stops the engine; the journal stays as the crash left it.
func crashRun(t *testing.T, ctx context.Context, steps []recovery.Step) (*state.Store, string) {
	t.Helper()
	store := openStore(t)
	eng, stop := newEngine(t, ctx, store, steps)
	run, err := eng.Start(recovery.StartRequest{Target: targetName, Mode: state.ModeDrill, Initiator: "U_TEST"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(time.Minute):
		t.Fatal("the run never reached the crash")
	}
	stop()
	return store, run.ID
}

// resume runs a fresh engine over the store, as after a restart.
func resume(t *testing.T, store *state.Store, steps []recovery.Step, runID string) steptest.Result {
	t.Helper()
	eng, stop := newEngine(t, context.Background(), store, steps)
	defer stop()
	if _, err := eng.Resume(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		res := steptest.Load(t, store, runID)
		if res.Run.Status.Finished() || res.Run.Status == state.RunBlocked {
			return res
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s still %s after a minute", runID, res.Run.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func openStore(t *testing.T) *state.Store {
	t.Helper()
	store, err := state.Open(t.TempDir()+"/drbot.db", state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func newEngine(t *testing.T, ctx context.Context, store *state.Store, steps []recovery.Step) (*recovery.Engine, func()) {
	t.Helper()
	book, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(ctx)
	eng := recovery.New(ctx, store, book, recovery.Options{
		Retry:  recovery.RetryPolicy{MaxAttempts: 3, InitialBackoff: 50 * time.Millisecond, MaxBackoff: time.Second},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	return eng, func() { cancel(); eng.Wait() }
}

// onlyTeardown is a drill's runbook cut down to a finished cluster.create
// (of cluster) and the teardown, for the cutover steps to join.
func onlyTeardown(cluster string, td *teardown.Teardown) []recovery.Step {
	return []recovery.Step{
		steptest.Stub("cluster.create", recovery.PhaseProvision, map[string]string{"cluster_name": cluster, "region": region}),
		{ID: teardown.StepID, Phase: recovery.PhaseClose, DependsOn: []string{"cluster.create"}, Action: td.Action},
	}
}
