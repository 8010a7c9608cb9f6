package cutover_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/cutover"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
)

// wantMutations is one full cutover (or rollback) of the world: one batch
// per hosted zone, one update per distribution, one per integration, one
// deployment per stage, and nothing else.
var wantMutations = map[string]int{
	"route53:ChangeResourceRecordSets": 3,
	"cloudfront:UpdateDistribution":    2,
	"apigateway:UpdateIntegration":     2,
	"apigateway:CreateDeployment":      2,
}

func TestCutoverPlansAppliesAndVerifiesExactlyTheConfiguredRows(t *testing.T) {
	// Long enough that verify starts while changes are still pending, even on a loaded machine.
	srv := newServer(t, edge.Options{Route53SyncDelay: 2 * time.Second, CloudFrontDeployDelay: 6 * time.Second})
	w := seedWorld(t, srv)
	before := take(srv, w)
	c := newCutover(t, w, fastOptions(w, newHook()))

	res := runSteps(t, c, healthy)
	mustSucceed(t, res)

	if got, want := planRows(t, res), w.expectedRows(); !slices.Equal(got, want) {
		t.Errorf("plan rows:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	table := res.Steps[cutover.StepPlan].Outputs[cutover.OutTable]
	if !strings.HasPrefix(table, "Cutover of prod-eu: 14 change(s), 0 already in place\n1. route53 example.com. A") ||
		!strings.Contains(table, "14. "+w.expectedRows()[13]) {
		t.Errorf("table =\n%s", table)
	}
	var gateTable string
	for _, ev := range res.Events {
		if ev.Kind == recovery.EventGateWaiting && ev.StepID == cutover.StepApply {
			gateTable = ev.Fields[cutover.StepPlan+"."+cutover.OutTable]
		}
	}
	if gateTable != table {
		t.Errorf("the cutover gate shows %q, want the plan's table", gateTable)
	}

	if got := mutations(srv.Calls()); !reflect.DeepEqual(got, wantMutations) {
		t.Errorf("change calls = %v, want %v", got, wantMutations)
	}
	after := take(srv, w)
	wantChanged := []string{
		"api.example.com. A blue", "api.shop.example.net. A primary", "api.shop.example.net. A secondary",
		"app.internal.example.org. A app-primary", "cdn-origin.shop.example.net. CNAME ", "example.com. A ", "example.com. AAAA ",
		"legacy.internal.example.org. A ", "shop.example.net. A ", "www.example.com. CNAME ",
	}
	if got := changedRecords(before, after); !slices.Equal(got, wantChanged) {
		t.Errorf("changed records = %q, want %q", got, wantChanged)
	}
	ed := srv.Edge()
	web, shop, static := w.LBs[beWeb], w.LBs[beShop], w.LBs[beStatic]
	if r, _ := ed.Record(w.Zones[0], "api.example.com", "A", "blue"); aws.ToInt64(r.Weight) != 70 || r.AliasTarget == nil ||
		r.AliasTarget.DNSName != shop.DNS+"." || r.AliasTarget.HostedZoneID != shop.Zone || !r.AliasTarget.EvaluateTargetHealth {
		t.Errorf("weighted record after cutover = %+v %+v, want weight 70 kept, alias to %s with target health kept", r, r.AliasTarget, shop.DNS)
	}
	if r, _ := ed.Record(w.Zones[2], "app.internal.example.org", "A", "app-primary"); r.Failover != "PRIMARY" || r.HealthCheckID == "" || r.AliasTarget.DNSName != web.DNS+"." {
		t.Errorf("failover record after cutover = %+v, want failover and health check kept", r)
	}
	if r, _ := ed.Record(w.Zones[2], "legacy.internal.example.org", "A", ""); r.AliasTarget == nil || r.TTL != 0 || len(r.Values) != 0 {
		t.Errorf("plain A record after cutover = %+v, want an alias", r)
	}
	for i, want := range [][]edge.Origin{
		{{ID: "static-alb", DomainName: static.DNS}, {ID: "assets-s3", DomainName: "assets.s3.eu-central-1.amazonaws.com"}},
		{{ID: "api-alb", DomainName: shop.DNS}},
	} {
		d, _ := ed.Distribution(w.Dists[i])
		if !reflect.DeepEqual(d.Origins, want) || d.Status != "Deployed" {
			t.Errorf("distribution %s = %s %+v, want Deployed %+v", d.ID, d.Status, d.Origins, want)
		}
	}
	served, _ := ed.StageIntegrations(w.RestAPI, "prod")
	if got := served["GET /orders"].URI; got != "https://"+shop.DNS+"/orders/{proxy}" {
		t.Errorf("REST stage prod serves %q, want the new uri deployed", got)
	}
	served, _ = ed.StageIntegrations(w.HTTPAPI, "live")
	if got := served[w.HTTPInteg]; got.URI != web.Listeners[443] || got.ConnectionID != "vl-0old" {
		t.Errorf("HTTP stage live serves %+v, want the 443 listener through the same VPC link", got)
	}

	// Verify waited: every change was PENDING and every distribution InProgress at first.
	if n := srv.CallsTo("route53", "GetChange"); n <= 3 {
		t.Errorf("GetChange calls = %d, want more than one per change (the changes were PENDING for 2s)", n)
	}
	if n := srv.CallsTo("cloudfront", "GetDistribution"); n <= 2 {
		t.Errorf("GetDistribution calls = %d, want more than one per distribution (InProgress for 6s)", n)
	}
	if out := res.Steps[cutover.StepVerify].Outputs; out[cutover.OutRows] != "14" || out[cutover.OutVerified] != "14" {
		t.Errorf("verify outputs rows/verified = %s/%s, want 14/14 for the board", out[cutover.OutRows], out[cutover.OutVerified])
	}
	progress := strings.Join(res.Progress(cutover.StepVerify), "\n")
	for _, want := range []string{"INSYNC after", "Deployed after", "✓ 1. route53 example.com. A", "✓ 14. apigateway http", "serves deployment"} {
		if !strings.Contains(progress, want) {
			t.Errorf("verify progress lacks %q:\n%s", want, progress)
		}
	}
}

func TestSecondApplyMakesNoChangeCalls(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	c := newCutover(t, w, fastOptions(w, newHook()))
	mustSucceed(t, runSteps(t, c, healthy))
	first := len(srv.Calls())

	res := runSteps(t, c, healthy)
	mustSucceed(t, res)
	if got := mutations(srv.Calls()[first:]); len(got) != 0 {
		t.Errorf("second cutover made change calls %v, want none", got)
	}
	out := res.Steps[cutover.StepApply].Outputs
	if out["applied"] != "0" || out["skipped"] != "14" {
		t.Errorf("second apply outputs applied=%s skipped=%s, want 0 and 14", out["applied"], out["skipped"])
	}
	if table := res.Steps[cutover.StepPlan].Outputs[cutover.OutTable]; !strings.HasPrefix(table, "Cutover of prod-eu: 0 change(s), 14 already in place") {
		t.Errorf("second plan table =\n%s", table)
	}
}

func TestRollbackRestoresEveryOriginalValueByteForByte(t *testing.T) {
	srv := newServer(t, edge.Options{Route53SyncDelay: 100 * time.Millisecond, CloudFrontDeployDelay: 100 * time.Millisecond})
	w := seedWorld(t, srv)
	before := take(srv, w)
	c := newCutover(t, w, fastOptions(w, newHook()))
	res := runSteps(t, c, healthy)
	mustSucceed(t, res)
	if changed := changedRecords(before, take(srv, w)); len(changed) != 10 {
		t.Fatalf("cutover changed %d records, want 10", len(changed))
	}
	mark := len(srv.Calls())

	var lines []string
	rep, err := c.Rollback(ctxT(t), res.Run.ID, res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback], func(l string) { lines = append(lines, l) })
	if err != nil {
		t.Fatalf("rollback: %v\n%s", err, strings.Join(lines, "\n"))
	}
	after := take(srv, w)
	if !reflect.DeepEqual(after.Records, before.Records) {
		t.Errorf("records after rollback differ: %v", changedRecords(before, after))
	}
	for id, cfg := range before.Configs {
		if !reflect.DeepEqual(after.Configs[id], cfg) {
			t.Errorf("distribution %s config after rollback:\n%+v\nwant:\n%+v", id, after.Configs[id], cfg)
		}
		if !reflect.DeepEqual(after.Origins[id], before.Origins[id]) {
			t.Errorf("distribution %s origins after rollback = %+v, want %+v", id, after.Origins[id], before.Origins[id])
		}
	}
	if after.REST != before.REST || after.HTTP != before.HTTP {
		t.Errorf("integrations after rollback = %+v / %+v, want %+v / %+v", after.REST, after.HTTP, before.REST, before.HTTP)
	}
	served, _ := srv.Edge().StageIntegrations(w.RestAPI, "prod")
	if served["GET /orders"].URI != oldRESTURI {
		t.Errorf("REST stage serves %q after rollback, want the old uri deployed", served["GET /orders"].URI)
	}
	if got := mutations(srv.Calls()[mark:]); !reflect.DeepEqual(got, wantMutations) {
		t.Errorf("rollback change calls = %v, want %v", got, wantMutations)
	}
	if rep.Restored != 14 || rep.Unchanged != 0 || len(rep.Route53Changes) != 3 {
		t.Errorf("report = %+v, want 14 restored in 3 zone changes", rep)
	}
	joined := strings.Join(lines, "\n")
	for _, want := range []string{"rolling back the cutover of prod-eu", "✓ 10. route53 legacy.internal.example.org. A", "A 10.20.0.11, 10.20.0.12 (TTL 60)", "verified: 14 row(s) restored"} {
		if !strings.Contains(joined, want) {
			t.Errorf("rollback progress lacks %q:\n%s", want, joined)
		}
	}

	mark = len(srv.Calls())
	rep, err = c.Rollback(ctxT(t), res.Run.ID, res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback], nil)
	if err != nil || rep.Unchanged != 14 {
		t.Errorf("second rollback = %+v, %v; want 14 unchanged", rep, err)
	}
	if got := mutations(srv.Calls()[mark:]); len(got) != 0 {
		t.Errorf("second rollback made change calls %v", got)
	}
	if _, err := c.Rollback(ctxT(t), "another-run", res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback], nil); err == nil ||
		!strings.Contains(err.Error(), "belongs to run "+res.Run.ID) {
		t.Errorf("rollback with another run's record: %v", err)
	}
}

func TestCloudFrontETagRaceIsResolvedByRereading(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	other := cloudfront.NewFromConfig(w.awsConfig(newHook()))
	h := newHook()
	var raced atomic.Bool
	h.set(func(r *http.Request, send func() (*http.Response, error)) (*http.Response, error) {
		if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/distribution/"+w.Dists[0]+"/config") && raced.CompareAndSwap(false, true) {
			// Someone edits the distribution between drbot's read and its write.
			cur, err := other.GetDistributionConfig(r.Context(), &cloudfront.GetDistributionConfigInput{Id: aws.String(w.Dists[0])})
			if err != nil {
				return nil, err
			}
			cur.DistributionConfig.Comment = aws.String("edited by someone else")
			if _, err := other.UpdateDistribution(r.Context(), &cloudfront.UpdateDistributionInput{
				Id: aws.String(w.Dists[0]), IfMatch: cur.ETag, DistributionConfig: cur.DistributionConfig,
			}); err != nil {
				return nil, err
			}
		}
		return send()
	})
	c := newCutover(t, w, fastOptions(w, h))
	res := runSteps(t, c, healthy)
	mustSucceed(t, res)

	got := mutations(srv.Calls())
	want := map[string]int{
		"route53:ChangeResourceRecordSets": 3, "apigateway:UpdateIntegration": 2, "apigateway:CreateDeployment": 2,
		"cloudfront:UpdateDistribution":     3, // the other writer, drbot's write after re-reading, the second distribution
		"cloudfront:UpdateDistribution 412": 1, // drbot's write with the ETag it read before the other writer
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("change calls = %v, want %v", got, want)
	}
	d, _ := srv.Edge().Distribution(w.Dists[0])
	if d.Origins[0].DomainName != w.LBs[beStatic].DNS || !strings.Contains(d.ConfigXML, "<Comment>edited by someone else</Comment>") {
		t.Errorf("distribution after the race: origins %+v, config %s; want the new origin and the other writer's comment", d.Origins, d.ConfigXML)
	}
	if p := strings.Join(res.Progress(cutover.StepApply), "\n"); !strings.Contains(p, "changed since it was read") {
		t.Errorf("apply progress does not mention the re-read:\n%s", p)
	}
}

func TestApplyFailingOnSecondZoneThenRetriedChangesEachRowOnce(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	before := take(srv, w)
	h := newHook()
	var changes atomic.Int32
	h.set(func(r *http.Request, send func() (*http.Response, error)) (*http.Response, error) {
		resp, err := send()
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/rrset") && changes.Add(1) == 1 {
			// The next batch (the second zone's) fails for good.
			srv.Inject("route53", "ChangeResourceRecordSets", awsfake.Fault{Code: "InvalidChangeBatch", Status: 400, Times: 1,
				Message: "awsfake injected: second zone refused"})
		}
		return resp, err
	})
	c := newCutover(t, w, fastOptions(w, h))
	store, err := state.Open(filepath.Join(t.TempDir(), "drbot.db"), state.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	hn := newHarness(t, store, steps(c, healthy))
	runID := hn.start()
	res := hn.settle(runID)
	apply := res.Steps[cutover.StepApply]
	if res.Run.Status != state.RunBlocked || apply.Status != state.StepFailed || !strings.Contains(apply.Error, "second zone refused") {
		t.Fatalf("run %s, apply %s %q; want blocked on apply failing at the second zone", res.Run.Status, apply.Status, apply.Error)
	}
	rollback := res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback]
	mid := take(srv, w)
	if got := changedRecords(before, mid); len(got) != 4 {
		t.Fatalf("after the failure %d records changed (%v), want the first zone's 4", len(got), got)
	}

	hn.retry(runID, cutover.StepApply, apply.Failures)
	res = hn.settle(runID)
	mustSucceed(t, res)
	got := mutations(srv.Calls())
	want := map[string]int{
		"route53:ChangeResourceRecordSets": 3, "route53:ChangeResourceRecordSets InvalidChangeBatch": 1,
		"cloudfront:UpdateDistribution": 2, "apigateway:UpdateIntegration": 2, "apigateway:CreateDeployment": 2,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("change calls = %v, want %v (each zone changed once)", got, want)
	}
	if res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback] != rollback {
		t.Error("the rollback record changed after the failed apply")
	}
	rec, err := cutover.ParseRecord(rollback)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rec.Rows {
		if r.Kind == cutover.KindRoute53 && !strings.Contains(r.Current, "eu-central-1") && !strings.Contains(r.Current, "10.20.0.11") {
			t.Errorf("rollback record row %d holds %q, want the original value", r.N, r.Current)
		}
	}
	if p := strings.Join(res.Progress(cutover.StepApply), "\n"); !strings.Contains(p, "resuming the cutover: 4 of 14 rows") {
		t.Errorf("apply progress does not say it resumed:\n%s", p)
	}
}

func TestVerifyRunsHTTPChecksThroughTheNewEndpoint(t *testing.T) {
	var mu sync.Mutex
	hits := map[string]int{}
	hosts := map[string]string{}
	lb := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		n := hits[r.URL.Path]
		hosts[r.URL.Path] = r.Host
		mu.Unlock()
		switch {
		case r.URL.Path == "/healthz" && n >= 3: // the first two answers are from a cold start
			_, _ = fmt.Fprint(rw, "status: ok")
		case r.URL.Path == "/healthz":
			rw.WriteHeader(http.StatusBadGateway)
		case r.URL.Path == "/created":
			rw.WriteHeader(http.StatusCreated)
		default:
			rw.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(lb.Close)

	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	opts := fastOptions(w, newHook())
	opts.CheckTimeout = 500 * time.Millisecond
	opts.Targets = map[string]cutover.TargetOptions{targetName: {Checks: []cutover.HTTPCheck{
		{URL: lb.URL + "/healthz", Host: "www.example.com", BodyContains: "ok"},
		{URL: lb.URL + "/created", ExpectStatus: http.StatusCreated},
	}}}
	res := runSteps(t, newCutover(t, w, opts), healthy)
	mustSucceed(t, res)
	mu.Lock()
	if hits["/healthz"] != 3 || hosts["/healthz"] != "www.example.com" || hits["/created"] != 1 {
		t.Errorf("hits = %v, hosts = %v; want /healthz retried until it passed (3) with Host www.example.com, /created once", hits, hosts)
	}
	mu.Unlock()
	if p := strings.Join(res.Progress(cutover.StepVerify), "\n"); !strings.Contains(p, "✓ check 1/2 GET "+lb.URL+"/healthz (Host www.example.com) → 200") {
		t.Errorf("verify progress:\n%s", p)
	}

	t.Run("HTTPSCheckPresentsThePublicNameToTheLoadBalancer", func(t *testing.T) {
		var sni, host string
		tlsLB := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			mu.Lock()
			sni, host = r.TLS.ServerName, r.Host
			mu.Unlock()
		}))
		t.Cleanup(tlsLB.Close)
		o := opts
		o.HTTPClient = tlsLB.Client() // trusts the test certificate, issued for example.com
		o.Targets = map[string]cutover.TargetOptions{"": {Checks: []cutover.HTTPCheck{{URL: tlsLB.URL + "/", Host: "example.com"}}}}
		mustSucceed(t, runSteps(t, newCutover(t, w, o), healthy))
		mu.Lock()
		defer mu.Unlock()
		if sni != "example.com" || host != "example.com" {
			t.Errorf("the load balancer saw SNI %q and Host %q, want example.com for both", sni, host)
		}
	})

	t.Run("FailingCheckNamesURLStatusSeenAndExpected", func(t *testing.T) {
		opts.Targets = map[string]cutover.TargetOptions{"": {Checks: []cutover.HTTPCheck{{URL: lb.URL + "/broken"}}}}
		res := runSteps(t, newCutover(t, w, opts), healthy)
		v := res.Steps[cutover.StepVerify]
		want := fmt.Sprintf("http check GET %s/broken: got status 503, expected 200 (still failing after 500ms); fix the service behind it and press Retry, or Skip to accept", lb.URL)
		if res.Run.Status != state.RunBlocked || v.Status != state.StepFailed || v.Error != want {
			t.Errorf("run %s, verify %s with error\n%q\nwant failed with\n%q", res.Run.Status, v.Status, v.Error, want)
		}
		if v.Attempt != 1 {
			t.Errorf("verify attempts = %d, want 1: the deadline already covered the retries", v.Attempt)
		}
		mu.Lock()
		if hits["/broken"] < 3 {
			t.Errorf("/broken was tried %d times, want retries until the deadline", hits["/broken"])
		}
		mu.Unlock()
	})
}

func TestPlanRefusesALoadBalancerThatNoLongerResolves(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	c := newCutover(t, w, fastOptions(w, newHook()))
	book := steps(c, healthy)
	// The ALB of shop/api goes away between discovery and the plan.
	book = append(book, recovery.Step{ID: "sabotage", Phase: recovery.PhaseCutover, DependsOn: []string{cutover.StepDiscover},
		Action: func(context.Context, *recovery.StepContext) (recovery.Result, error) {
			srv.RemoveLoadBalancer(drRegion, w.LBs[beShop].ARN)
			return recovery.Result{}, nil
		}})
	book[2].DependsOn = append(book[2].DependsOn, "sabotage")
	res := steptest.Run(t, steptest.Options{AutoApprove: true, Target: targetName}, book...)
	p := res.Steps[cutover.StepPlan]
	if p.Status != state.StepFailed || !strings.Contains(p.Error, w.LBs[beShop].ARN) || !strings.Contains(p.Error, "re-run endpoints.discover") {
		t.Errorf("plan %s: %q; want failed naming the vanished load balancer", p.Status, p.Error)
	}
	if _, ok := p.Outputs[cutover.OutRollback]; ok {
		t.Error("a refused plan journaled a change set")
	}
	if got := mutations(srv.Calls()); len(got) != 0 {
		t.Errorf("change calls = %v, want none", got)
	}
}

func TestCriticalServicesMustBeHealthyUnlessOverridden(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	opts := fastOptions(w, newHook())
	opts.Targets = map[string]cutover.TargetOptions{targetName: {CriticalServices: []string{"frontend", "shop-api", "payments"}}}
	degraded := map[string]string{"frontend": "Healthy", "shop-api": "Degraded"}

	res := runSteps(t, newCutover(t, w, opts), degraded)
	p := res.Steps[cutover.StepPlan]
	want := "refusing to cut over: critical services not Healthy in deploy.watch: shop-api (Degraded), payments (no health reported); make them Healthy and press Retry, or approve an override"
	if p.Status != state.StepFailed || p.Error != want {
		t.Errorf("plan %s: %q\nwant failed: %q", p.Status, p.Error, want)
	}
	if got := mutations(srv.Calls()); len(got) != 0 {
		t.Errorf("change calls = %v, want none", got)
	}

	// deploy.watch has not reported health when the plan runs (the plan does
	// not wait for it): the plan goes ahead, apply refuses before any change.
	book := steps(newCutover(t, w, opts), nil)
	book[0] = steptest.Stub(cutover.StepDeployWatch, recovery.PhaseDeploy, nil)
	res = steptest.Run(t, steptest.Options{AutoApprove: true, Target: targetName}, book...)
	a := res.Steps[cutover.StepApply]
	if res.Steps[cutover.StepPlan].Status != state.StepSucceeded || a.Status != state.StepFailed ||
		!strings.Contains(a.Error, "frontend (no health reported), shop-api (no health reported), payments (no health reported)") {
		t.Errorf("plan %s, apply %s %q; want the plan through and apply refusing", res.Steps[cutover.StepPlan].Status, a.Status, a.Error)
	}
	if got := mutations(srv.Calls()); len(got) != 0 {
		t.Errorf("change calls = %v, want none", got)
	}

	opts.Override = func(_ context.Context, run state.Run) (cutover.Override, bool) {
		return cutover.Override{By: "U_LEAD", Reason: "payments is not user-facing"}, run.Target == targetName
	}
	res = runSteps(t, newCutover(t, w, opts), degraded)
	mustSucceed(t, res)
	if by := res.Steps[cutover.StepApply].Outputs[cutover.OutOverride]; by != "U_LEAD" {
		t.Errorf("apply output %s = %q, want the approver", cutover.OutOverride, by)
	}
	if p := strings.Join(res.Progress(cutover.StepApply), "\n"); !strings.Contains(p, "override approved by U_LEAD (payments is not user-facing)") {
		t.Errorf("apply progress does not record the override:\n%s", p)
	}
}

func TestDiscoverWaitsUntilEveryLoadBalancerIsActive(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	srv.SetLoadBalancerState(drRegion, w.LBs[beWeb].ARN, "provisioning")
	timer := time.AfterFunc(300*time.Millisecond, func() { srv.SetLoadBalancerState(drRegion, w.LBs[beWeb].ARN, "active") })
	t.Cleanup(func() { timer.Stop() })
	c := newCutover(t, w, fastOptions(w, newHook()))
	res := steptest.Run(t, steptest.Options{Target: targetName}, recovery.Step{ID: cutover.StepDiscover, Phase: recovery.PhaseCutover, Action: c.Discover})
	mustSucceed(t, res)
	var eps map[string]cutover.Endpoint
	if err := json.Unmarshal([]byte(res.Steps[cutover.StepDiscover].Outputs[cutover.OutEndpoints]), &eps); err != nil {
		t.Fatal(err)
	}
	if len(eps) != 3 {
		t.Fatalf("endpoints = %v, want 3", eps)
	}
	for key, lb := range w.LBs {
		ep := eps[key]
		var ls []string
		for _, l := range ep.Listeners {
			ls = append(ls, fmt.Sprintf("%d=%s", l.Port, l.ARN))
		}
		var want []string
		for _, port := range []int32{80, 443} {
			if arn, ok := lb.Listeners[port]; ok {
				want = append(want, fmt.Sprintf("%d=%s", port, arn))
			}
		}
		if ep.ARN != lb.ARN || ep.DNSName != lb.DNS || ep.CanonicalHostedZoneID != lb.Zone || !slices.Equal(ls, want) {
			t.Errorf("endpoint %s = %+v, want ARN %s DNS %s zone %s listeners %v (not the primary cluster's decoy)", key, ep, lb.ARN, lb.DNS, lb.Zone, want)
		}
	}
	p := res.Progress(cutover.StepDiscover)
	if len(p) == 0 || !slices.ContainsFunc(p, func(l string) bool {
		return l == "waiting for 1 of 3 load balancer(s): service/web/frontend (provisioning)"
	}) || !slices.Contains(p, "service/web/frontend: load balancer k8s-web-frontend-0a1b2c3d4e is active") {
		t.Errorf("discover progress = %q", p)
	}
	if n := srv.CallsTo("elbv2", "DescribeTags"); n != 2 {
		t.Errorf("DescribeTags calls = %d, want 2 (30 load balancers, 20 per call, each read once)", n)
	}
}

func TestHTTPAPIOnAnAutoDeployStageIsNotDeployedByHand(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	ed := srv.Edge()
	api := ed.AddHTTPAPI("public")
	integ := ed.AddHTTPIntegration(api, "https://"+oldWeb+"/v1", "INTERNET")
	ed.AddHTTPStage(api, "$default", true)
	cfg := w.config()
	cfg.Cutover.Route53, cfg.Cutover.CloudFront = nil, nil
	cfg.Cutover.APIGateway = cfg.Cutover.APIGateway[:0]
	cfg.Cutover.APIGateway = append(cfg.Cutover.APIGateway, cfgHTTP(api, integ, "$default"))
	c, err := cutover.New(cfg, fastOptions(w, newHook()))
	if err != nil {
		t.Fatal(err)
	}
	res := runSteps(t, c, healthy)
	mustSucceed(t, res)
	if got, want := mutations(srv.Calls()), map[string]int{"apigateway:UpdateIntegration": 1}; !reflect.DeepEqual(got, want) {
		t.Errorf("change calls = %v, want %v", got, want)
	}
	served, _ := ed.StageIntegrations(api, "$default")
	if got := served[integ].URI; got != "https://"+w.LBs[beWeb].DNS+"/v1" {
		t.Errorf("auto-deployed stage serves %q, want the new URL", got)
	}
}

func TestPlanRerunKeepsTheRollbackRecordItJournaledFirst(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	c := newCutover(t, w, fastOptions(w, newHook()))
	book := steps(c, healthy)
	attempts := 0
	book[2].Action = func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
		res, err := c.Plan(ctx, sc)
		if attempts++; attempts == 1 {
			// The first attempt dies after journaling; meanwhile the apex record moves.
			srv.Edge().AddRecord(w.Zones[0], edge.RecordSet{Name: "example.com", Type: "A",
				AliasTarget: &edge.AliasTarget{DNSName: "intermediate.example.net", HostedZoneID: oldALBZ}})
			return recovery.Result{}, recovery.Retryable(errors.New("interrupted after planning"))
		}
		return res, err
	}
	res := steptest.Run(t, steptest.Options{Target: targetName}, book[:3]...)
	mustSucceed(t, res)
	if attempts != 2 {
		t.Fatalf("plan ran %d times, want 2", attempts)
	}
	rows := planRows(t, res)
	if rows[0] != w.expectedRows()[0] {
		t.Errorf("row 1 after the re-run = %q, want the value read before anything moved: %q", rows[0], w.expectedRows()[0])
	}
	if p := strings.Join(res.Progress(cutover.StepPlan), "\n"); !strings.Contains(p, "keeping the change set journaled by an earlier attempt (14 rows)") {
		t.Errorf("plan progress:\n%s", p)
	}
}

func TestAAAAAliasToAnIPv4LoadBalancerIsFlagged(t *testing.T) {
	srv := newServer(t, edge.Options{})
	w := seedWorld(t, srv)
	opts := fastOptions(w, newHook())
	c := newCutover(t, w, opts)
	res := steptest.Run(t, steptest.Options{Target: targetName}, steps(c, healthy)[:3]...)
	mustSucceed(t, res)
	warn := `⚠ AAAA alias to k8s-web-frontend-0a1b2c3d4e, whose IP address type is "ipv4": it answers no IPv6 addresses`
	if table := res.Steps[cutover.StepPlan].Outputs[cutover.OutTable]; !strings.Contains(table, "2. route53 example.com. AAAA") || !strings.Contains(table, warn) {
		t.Errorf("table lacks the AAAA warning:\n%s", table)
	}

	opts.AAAARequiresDualstack = true
	res = steptest.Run(t, steptest.Options{Target: targetName}, steps(newCutover(t, w, opts), healthy)[:3]...)
	if p := res.Steps[cutover.StepPlan]; p.Status != state.StepFailed || !strings.Contains(p.Error, "make the load balancer dualstack or drop the AAAA record") {
		t.Errorf("strict plan %s: %q, want refused", p.Status, p.Error)
	}
}
