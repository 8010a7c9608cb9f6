package cutover_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/cutover"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
)

const (
	drRegion    = "eu-west-1"
	clusterName = "dr-eks"
	targetName  = "prod-eu"
	akid        = "AKIDCUTOVERTEST0001"
	secret      = "made-up-secret-for-cutover-tests"

	// The lost primary's load balancers (eu-central-1), where everything points before the cutover.
	oldWeb    = "old-web-1234567890.eu-central-1.elb.amazonaws.com"
	oldShop   = "old-shop-api-1234567890.eu-central-1.elb.amazonaws.com"
	oldStatic = "old-static-1234567890.eu-central-1.elb.amazonaws.com"
	oldALBZ   = "Z215JYRZR1TBD5"
	oldNLBZ   = "Z3F0SRJ5LGBH90"

	beWeb    = "service/web/frontend"
	beShop   = "ingress/shop/api"
	beStatic = "ingress/web/static"

	oldListener = "arn:aws:elasticloadbalancing:eu-central-1:123456789012:listener/net/old-web/0123456789abcdef/fedcba9876543210"
	oldRESTURI  = "https://" + oldShop + "/orders/{proxy}"
)

// lbInfo is a load balancer the DR cluster's LBC made.
type lbInfo struct {
	ARN, DNS, Zone string
	Listeners      map[int32]string // port → ARN
}

// world is the seeded AWS side of a cutover: 3 hosted zones with 10
// configured records (alias A, AAAA, CNAME, weighted, failover, plain A)
// among records that must not change, 2 CloudFront distributions, a REST
// API and an HTTP API. It is JSON so a child process can rebuild clients.
type world struct {
	URL          string
	Zones        [3]string
	Dists        [2]string
	RestAPI      string
	RestResource string
	HTTPAPI      string
	HTTPInteg    string
	LBs          map[string]lbInfo // by backend key
}

func newServer(t *testing.T, eo edge.Options) *awsfake.Server {
	t.Helper()
	srv := awsfake.New(t, awsfake.Options{Edge: eo})
	srv.AddIdentity(akid, secret, "arn:aws:sts::123456789012:assumed-role/drbot/cutover-test")
	return srv
}

func seedWorld(t *testing.T, srv *awsfake.Server) world {
	t.Helper()
	w := world{URL: srv.URL(), LBs: map[string]lbInfo{}}
	addLB := func(name, typ, backend string, tags map[string]string, ports map[int32]string) {
		arn, dns, zone := srv.AddLoadBalancer(drRegion, awsfake.LoadBalancer{Name: name, Type: typ, Tags: tags})
		info := lbInfo{ARN: arn, DNS: dns, Zone: zone, Listeners: map[int32]string{}}
		for port, proto := range ports {
			l, err := srv.AddListener(drRegion, awsfake.Listener{LoadBalancerARN: arn, Port: port, Protocol: proto})
			if err != nil {
				t.Fatal(err)
			}
			info.Listeners[port] = l
		}
		if backend != "" {
			w.LBs[backend] = info
		}
	}
	// Decoys first, more than one DescribeTags batch of them: other
	// clusters' load balancers for the same stacks, and unrelated ones.
	for i := range 25 {
		addLB(fmt.Sprintf("unrelated-%02d", i), "application", "", map[string]string{"team": "other"}, nil)
	}
	addLB("k8s-web-frontend-primary", "network", "", map[string]string{
		"elbv2.k8s.aws/cluster": "prod-eks", "service.k8s.aws/stack": "web/frontend", "service.k8s.aws/resource": "LoadBalancer"}, nil)
	addLB("k8s-web-frontend-0a1b2c3d4e", "network", beWeb, map[string]string{
		"elbv2.k8s.aws/cluster": clusterName, "service.k8s.aws/stack": "web/frontend", "service.k8s.aws/resource": "LoadBalancer"},
		map[int32]string{80: "TCP", 443: "TLS"})
	addLB("k8s-shop-api-5f6a7b8c9d", "application", beShop, map[string]string{
		"elbv2.k8s.aws/cluster": clusterName, "ingress.k8s.aws/stack": "shop/api", "ingress.k8s.aws/resource": "LoadBalancer"},
		map[int32]string{80: "HTTP", 443: "HTTPS"})
	addLB("k8s-web-static-0e1f2a3b4c", "application", beStatic, map[string]string{
		"elbv2.k8s.aws/cluster": clusterName, "ingress.k8s.aws/stack": "web/static", "ingress.k8s.aws/resource": "LoadBalancer"},
		map[int32]string{443: "HTTPS"})

	ed := srv.Edge()
	alias := func(dns, zone string, eth bool) *edge.AliasTarget {
		return &edge.AliasTarget{DNSName: dns, HostedZoneID: zone, EvaluateTargetHealth: eth}
	}
	w.Zones[0] = ed.AddHostedZone("example.com")
	w.Zones[1] = ed.AddHostedZone("shop.example.net")
	w.Zones[2] = ed.AddHostedZone("internal.example.org")
	z0, z1, z2 := w.Zones[0], w.Zones[1], w.Zones[2]
	ed.AddRecord(z0, edge.RecordSet{Name: "example.com", Type: "A", AliasTarget: alias(oldWeb, oldNLBZ, false)})
	ed.AddRecord(z0, edge.RecordSet{Name: "example.com", Type: "AAAA", AliasTarget: alias(oldWeb, oldNLBZ, false)})
	ed.AddRecord(z0, edge.RecordSet{Name: "www.example.com", Type: "CNAME", TTL: 300, Values: []string{oldWeb}})
	ed.AddRecord(z0, edge.RecordSet{Name: "api.example.com", Type: "A", SetIdentifier: "blue", Weight: aws.Int64(70), AliasTarget: alias(oldShop, oldALBZ, true)})
	ed.AddRecord(z0, edge.RecordSet{Name: "api.example.com", Type: "A", SetIdentifier: "green", Weight: aws.Int64(30), AliasTarget: alias("green.example.com", z0, false)})
	ed.AddRecord(z0, edge.RecordSet{Name: "example.com", Type: "MX", TTL: 3600, Values: []string{"10 mail.example.com."}})
	ed.AddRecord(z1, edge.RecordSet{Name: "shop.example.net", Type: "A", AliasTarget: alias(oldShop, oldALBZ, true)})
	ed.AddRecord(z1, edge.RecordSet{Name: "api.shop.example.net", Type: "A", SetIdentifier: "primary", Weight: aws.Int64(100), AliasTarget: alias(oldShop, oldALBZ, true)})
	ed.AddRecord(z1, edge.RecordSet{Name: "api.shop.example.net", Type: "A", SetIdentifier: "secondary", Weight: aws.Int64(0), AliasTarget: alias(oldShop, oldALBZ, false)})
	ed.AddRecord(z1, edge.RecordSet{Name: "cdn-origin.shop.example.net", Type: "CNAME", TTL: 60, Values: []string{oldStatic}})
	ed.AddRecord(z1, edge.RecordSet{Name: "shop.example.net", Type: "TXT", TTL: 300, Values: []string{`"v=spf1 -all"`}})
	ed.AddRecord(z2, edge.RecordSet{Name: "app.internal.example.org", Type: "A", SetIdentifier: "app-primary", Failover: "PRIMARY",
		HealthCheckID: "0f8a7b6c-1111-2222-3333-444455556666", AliasTarget: alias(oldWeb, oldNLBZ, true)})
	ed.AddRecord(z2, edge.RecordSet{Name: "app.internal.example.org", Type: "A", SetIdentifier: "app-secondary", Failover: "SECONDARY",
		AliasTarget: alias("maintenance.example.org", z2, false)})
	ed.AddRecord(z2, edge.RecordSet{Name: "legacy.internal.example.org", Type: "A", TTL: 60, Values: []string{"10.20.0.11", "10.20.0.12"}})

	w.Dists[0] = ed.AddDistribution([]edge.Origin{{ID: "static-alb", DomainName: oldStatic}, {ID: "assets-s3", DomainName: "assets.s3.eu-central-1.amazonaws.com"}})
	w.Dists[1] = ed.AddDistribution([]edge.Origin{{ID: "api-alb", DomainName: oldShop}})

	w.RestAPI = ed.AddRestAPI("shop")
	w.RestResource = ed.AddRestIntegration(w.RestAPI, "/orders", "GET", oldRESTURI)
	ed.AddStage(w.RestAPI, "prod")
	w.HTTPAPI = ed.AddHTTPAPI("web")
	w.HTTPInteg = ed.PutHTTPIntegration(w.HTTPAPI, edge.HTTPIntegration{URI: oldListener, ConnectionType: "VPC_LINK", ConnectionID: "vl-0old"})
	ed.AddHTTPStage(w.HTTPAPI, "live", false)
	return w
}

// config is the drbot config naming every configured resource of w.
func (w world) config() *config.Config {
	web, shop, static := config.Backend{Service: "web/frontend"}, config.Backend{Ingress: "shop/api"}, config.Backend{Ingress: "web/static"}
	return &config.Config{
		Targets: []config.Target{{
			Name: targetName,
			DR:   config.DR{Region: drRegion, ClusterName: clusterName},
		}},
		Cutover: config.Cutover{
			Route53: []config.Route53Record{
				{ZoneID: w.Zones[0], Name: "example.com", Type: "A", Backend: web},
				{ZoneID: w.Zones[0], Name: "example.com.", Type: "AAAA", Backend: web},
				{ZoneID: w.Zones[0], Name: "WWW.example.com", Type: "CNAME", Backend: web},
				{ZoneID: w.Zones[0], Name: "api.example.com", Type: "A", SetIdentifier: "blue", Backend: shop},
				{ZoneID: w.Zones[1], Name: "shop.example.net", Type: "A", Backend: shop},
				{ZoneID: w.Zones[1], Name: "api.shop.example.net", Type: "A", SetIdentifier: "primary", Backend: shop},
				{ZoneID: w.Zones[1], Name: "api.shop.example.net", Type: "A", SetIdentifier: "secondary", Backend: shop},
				{ZoneID: w.Zones[1], Name: "cdn-origin.shop.example.net", Type: "CNAME", Backend: static},
				{ZoneID: w.Zones[2], Name: "app.internal.example.org", Type: "A", SetIdentifier: "app-primary", Backend: web},
				{ZoneID: w.Zones[2], Name: "legacy.internal.example.org", Type: "A", Backend: web},
			},
			CloudFront: []config.CloudFrontOrigin{
				{DistributionID: w.Dists[0], OriginID: "static-alb", Backend: static},
				{DistributionID: w.Dists[1], OriginID: "api-alb", Backend: shop},
			},
			APIGateway: []config.APIGatewayIntegration{
				{APIID: w.RestAPI, Kind: "rest", ResourceID: w.RestResource, HTTPMethod: "GET", Stage: "prod", Backend: shop},
				{APIID: w.HTTPAPI, Kind: "http", IntegrationID: w.HTTPInteg, Stage: "live", Backend: web},
			},
		},
	}
}

// expectedRows is the plan every test of w must see, in config order.
func (w world) expectedRows() []string {
	web, shop, static := w.LBs[beWeb], w.LBs[beShop], w.LBs[beStatic]
	al := func(dns, zone string) string { return fmt.Sprintf("ALIAS %s. (zone %s)", dns, zone) }
	return []string{
		fmt.Sprintf("route53 example.com. A (zone %s) · %s → %s", w.Zones[0], al(oldWeb, oldNLBZ), al(web.DNS, web.Zone)),
		fmt.Sprintf("route53 example.com. AAAA (zone %s) · %s → %s", w.Zones[0], al(oldWeb, oldNLBZ), al(web.DNS, web.Zone)),
		fmt.Sprintf("route53 www.example.com. CNAME (zone %s) · CNAME %s (TTL 300) → CNAME %s (TTL 300)", w.Zones[0], oldWeb, web.DNS),
		fmt.Sprintf("route53 api.example.com. A [set blue, weight 70] (zone %s) · %s → %s", w.Zones[0], al(oldShop, oldALBZ), al(shop.DNS, shop.Zone)),
		fmt.Sprintf("route53 shop.example.net. A (zone %s) · %s → %s", w.Zones[1], al(oldShop, oldALBZ), al(shop.DNS, shop.Zone)),
		fmt.Sprintf("route53 api.shop.example.net. A [set primary, weight 100] (zone %s) · %s → %s", w.Zones[1], al(oldShop, oldALBZ), al(shop.DNS, shop.Zone)),
		fmt.Sprintf("route53 api.shop.example.net. A [set secondary, weight 0] (zone %s) · %s → %s", w.Zones[1], al(oldShop, oldALBZ), al(shop.DNS, shop.Zone)),
		fmt.Sprintf("route53 cdn-origin.shop.example.net. CNAME (zone %s) · CNAME %s (TTL 60) → CNAME %s (TTL 60)", w.Zones[1], oldStatic, static.DNS),
		fmt.Sprintf("route53 app.internal.example.org. A [set app-primary, failover PRIMARY] (zone %s) · %s → %s", w.Zones[2], al(oldWeb, oldNLBZ), al(web.DNS, web.Zone)),
		fmt.Sprintf("route53 legacy.internal.example.org. A (zone %s) · A 10.20.0.11, 10.20.0.12 (TTL 60) → %s", w.Zones[2], al(web.DNS, web.Zone)),
		fmt.Sprintf("cloudfront %s origin static-alb · %s → %s", w.Dists[0], oldStatic, static.DNS),
		fmt.Sprintf("cloudfront %s origin api-alb · %s → %s", w.Dists[1], oldShop, shop.DNS),
		fmt.Sprintf("apigateway rest %s GET %s uri (stage prod) · %s → https://%s/orders/{proxy}", w.RestAPI, w.RestResource, oldRESTURI, shop.DNS),
		fmt.Sprintf("apigateway http %s integration %s (stage live) · %s → %s", w.HTTPAPI, w.HTTPInteg, oldListener, web.Listeners[443]),
	}
}

// hook lets a test act on a request before (or instead of) sending it.
type hook struct {
	base http.RoundTripper
	mu   sync.Mutex
	fn   func(r *http.Request, send func() (*http.Response, error)) (*http.Response, error)
}

func (h *hook) RoundTrip(r *http.Request) (*http.Response, error) {
	h.mu.Lock()
	fn := h.fn
	h.mu.Unlock()
	send := func() (*http.Response, error) { return h.base.RoundTrip(r) }
	if fn == nil {
		return send()
	}
	return fn(r, send)
}

func (h *hook) set(fn func(r *http.Request, send func() (*http.Response, error)) (*http.Response, error)) {
	h.mu.Lock()
	h.fn = fn
	h.mu.Unlock()
}

// awsConfig aims the real SDK at the stand-in through h.
func (w world) awsConfig(h *hook) aws.Config {
	return aws.Config{
		Region:       drRegion,
		Credentials:  credentials.NewStaticCredentialsProvider(akid, secret, ""),
		BaseEndpoint: aws.String(w.URL),
		HTTPClient:   &http.Client{Transport: edge.WrapTransport(h)},
	}
}

func newHook() *hook { return &hook{base: http.DefaultTransport.(*http.Transport).Clone()} }

// fastOptions wait in milliseconds where production waits in seconds.
func fastOptions(w world, h *hook) cutover.Options {
	return cutover.Options{
		Clients:         cutover.FromAWSConfig(w.awsConfig(h)),
		Poll:            20 * time.Millisecond,
		ProgressEvery:   200 * time.Millisecond,
		DiscoverTimeout: 10 * time.Second,
		Route53Timeout:  10 * time.Second,
		CheckTimeout:    2 * time.Second,
		CheckInterval:   20 * time.Millisecond,
	}
}

func newCutover(t testing.TB, w world, opts cutover.Options) *cutover.Cutover {
	t.Helper()
	c, err := cutover.New(w.config(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// steps is the cutover phase of the runbook with deploy.watch stubbed.
func steps(c *cutover.Cutover, health map[string]string) []recovery.Step {
	raw, _ := json.Marshal(health)
	return []recovery.Step{
		steptest.Stub(cutover.StepDeployWatch, recovery.PhaseDeploy, map[string]string{cutover.OutAppHealth: string(raw)}),
		{ID: cutover.StepDiscover, Phase: recovery.PhaseCutover, Action: c.Discover},
		{ID: cutover.StepPlan, Phase: recovery.PhaseCutover, DependsOn: []string{cutover.StepDiscover}, Action: c.Plan},
		{ID: cutover.StepApply, Phase: recovery.PhaseCutover, Gate: recovery.GateCutover,
			DependsOn: []string{cutover.StepPlan, cutover.StepDeployWatch}, Action: c.Apply},
		{ID: cutover.StepVerify, Phase: recovery.PhaseCutover, DependsOn: []string{cutover.StepApply}, Action: c.Verify},
	}
}

var healthy = map[string]string{"frontend": "Healthy", "shop-api": "Healthy"}

// mutations counts the calls of the log that change something, by
// "service:Operation" and HTTP status class ("ok" or the error code).
func mutations(calls []awsfake.Call) map[string]int {
	out := map[string]int{}
	for _, c := range calls {
		op := c.Operation
		if !(strings.HasPrefix(op, "Change") || strings.HasPrefix(op, "Update") || strings.HasPrefix(op, "Create") ||
			strings.HasPrefix(op, "Delete") || strings.HasPrefix(op, "Put") || strings.HasPrefix(op, "Add") || strings.HasPrefix(op, "Remove")) {
			continue
		}
		key := c.Service + ":" + op
		if c.Status >= 300 {
			key += " " + c.ErrorCode
			if c.ErrorCode == "" {
				key += fmt.Sprint(c.Status)
			}
		}
		out[key]++
	}
	return out
}

// snapshot is everything a cutover may touch, as the stand-in holds it.
// Distribution configs are compared as the SDK decodes them: the SDK
// writes members in its own order, so the stored XML is reordered by the
// first update whatever the values.
type snapshot struct {
	Records map[string][]edge.RecordSet
	Origins map[string][]edge.Origin
	Configs map[string]*cftypes.DistributionConfig
	REST    edge.RestIntegration
	HTTP    edge.HTTPIntegration
}

func take(srv *awsfake.Server, w world) snapshot {
	ed := srv.Edge()
	s := snapshot{Records: map[string][]edge.RecordSet{}, Origins: map[string][]edge.Origin{}, Configs: map[string]*cftypes.DistributionConfig{}}
	for _, z := range w.Zones {
		s.Records[z] = ed.Records(z)
	}
	cf := cloudfront.NewFromConfig(w.awsConfig(newHook()))
	for _, d := range w.Dists {
		st, _ := ed.Distribution(d)
		s.Origins[d] = st.Origins
		out, err := cf.GetDistributionConfig(context.Background(), &cloudfront.GetDistributionConfigInput{Id: aws.String(d)})
		if err != nil {
			panic(fmt.Sprintf("reading distribution %s: %v", d, err))
		}
		s.Configs[d] = out.DistributionConfig
	}
	s.REST, _ = ed.RestIntegration(w.RestAPI, w.RestResource, "GET")
	s.HTTP, _ = ed.HTTPIntegration(w.HTTPAPI, w.HTTPInteg)
	return s
}

// changedRecords lists "zone name type set" of the records that differ between a and b.
func changedRecords(a, b snapshot) []string {
	var out []string
	for z, recs := range a.Records {
		after := map[string]edge.RecordSet{}
		for _, r := range b.Records[z] {
			after[r.Name+" "+r.Type+" "+r.SetIdentifier] = r
		}
		for _, r := range recs {
			k := r.Name + " " + r.Type + " " + r.SetIdentifier
			if x, ok := after[k]; !ok || !reflect.DeepEqual(x, r) {
				out = append(out, k)
			}
			delete(after, k)
		}
		for k := range after {
			out = append(out, k+" (new)")
		}
	}
	sort.Strings(out)
	return out
}

func runSteps(t *testing.T, c *cutover.Cutover, health map[string]string) steptest.Result {
	t.Helper()
	return steptest.Run(t, steptest.Options{AutoApprove: true, Target: targetName, Timeout: time.Minute}, steps(c, health)...)
}

func planRows(t *testing.T, res steptest.Result) []string {
	t.Helper()
	rec, err := cutover.ParseRecord(res.Steps[cutover.StepPlan].Outputs[cutover.OutRollback])
	if err != nil {
		t.Fatalf("plan outputs: %v", err)
	}
	var out []string
	for _, r := range rec.Rows {
		out = append(out, fmt.Sprintf("%s · %s → %s", r.Resource, r.Current, r.New))
	}
	return out
}

func stepErrors(res steptest.Result) string {
	var b strings.Builder
	for id, s := range res.Steps {
		if s.Error != "" {
			fmt.Fprintf(&b, "%s: %s\n", id, s.Error)
		}
	}
	return b.String()
}

func mustSucceed(t *testing.T, res steptest.Result) {
	t.Helper()
	if res.Run.Status != state.RunSucceeded {
		t.Fatalf("run %s, want succeeded; errors:\n%s", res.Run.Status, stepErrors(res))
	}
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func cfgHTTP(api, integ, stage string) config.APIGatewayIntegration {
	return config.APIGatewayIntegration{APIID: api, Kind: "http", IntegrationID: integ, Stage: stage, Backend: config.Backend{Service: "web/frontend"}}
}
