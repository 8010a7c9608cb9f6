package cutover_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/cutover"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/lbcfake"
)

// The load balancers here are made the way production gets them: a
// LoadBalancer Service and an ALB Ingress in a real API server, turned into
// tagged, provisioning-then-active load balancers by the LBC stand-in.
func TestCutoverFindsTheLoadBalancersTheControllerMadeForServiceAndIngress(t *testing.T) {
	kc := kubeenv.Start(t, kubeenv.WithName("dr"))
	srv := awsfake.New(t, awsfake.Options{LBProvisionDelay: 700 * time.Millisecond})
	srv.AddIdentity(akid, secret, "arn:aws:sts::123456789012:assumed-role/drbot/cutover-test")
	ctx := ctxT(t)
	ctrl, err := lbcfake.Start(ctx, lbcfake.Options{
		Cluster: kc.AdminConfig(), ClusterName: clusterName, Region: drRegion,
		LBs: elbv2.NewFromConfig(srv.Config(drRegion, "AKIDLBCFAKE0000001", "made-up-lbc-secret")), Poll: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctrl.Stop)

	cs := kc.Clientset()
	for _, ns := range []string{"web", "shop"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cs.CoreV1().Services("web").Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "frontend", Annotations: map[string]string{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: map[string]string{"app": "frontend"},
			Ports: []corev1.ServicePort{{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	alb := "alb"
	if _, err := cs.NetworkingV1().Ingresses("shop").Create(ctx, &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Name: "api", Annotations: map[string]string{"alb.ingress.kubernetes.io/scheme": "internet-facing"}},
		Spec: networkingv1.IngressSpec{IngressClassName: &alb, DefaultBackend: &networkingv1.IngressBackend{
			Service: &networkingv1.IngressServiceBackend{Name: "api", Port: networkingv1.ServiceBackendPort{Number: 80}}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ed := srv.Edge()
	zone := ed.AddHostedZone("example.com")
	ed.AddRecord(zone, edge.RecordSet{Name: "www.example.com", Type: "A", AliasTarget: &edge.AliasTarget{DNSName: oldWeb, HostedZoneID: oldNLBZ}})
	dist := ed.AddDistribution([]edge.Origin{{ID: "api", DomainName: oldShop}})
	cfg := &config.Config{
		Targets: []config.Target{{Name: targetName, DR: config.DR{Region: drRegion, ClusterName: clusterName}}},
		Cutover: config.Cutover{
			Route53:    []config.Route53Record{{ZoneID: zone, Name: "www.example.com", Type: "A", Backend: config.Backend{Service: "web/frontend"}}},
			CloudFront: []config.CloudFrontOrigin{{DistributionID: dist, OriginID: "api", Backend: config.Backend{Ingress: "shop/api"}}},
		},
	}
	w := world{URL: srv.URL()}
	c, err := cutover.New(cfg, fastOptions(w, newHook()))
	if err != nil {
		t.Fatal(err)
	}
	res := runSteps(t, c, healthy)
	mustSucceed(t, res)

	svc, err := cs.CoreV1().Services("web").Get(ctx, "frontend", metav1.GetOptions{})
	if err != nil || len(svc.Status.LoadBalancer.Ingress) == 0 {
		t.Fatalf("service status: %v %+v", err, svc.Status)
	}
	ing, err := cs.NetworkingV1().Ingresses("shop").Get(ctx, "api", metav1.GetOptions{})
	if err != nil || len(ing.Status.LoadBalancer.Ingress) == 0 {
		t.Fatalf("ingress status: %v %+v", err, ing.Status)
	}
	svcHost, ingHost := svc.Status.LoadBalancer.Ingress[0].Hostname, ing.Status.LoadBalancer.Ingress[0].Hostname
	var eps map[string]cutover.Endpoint
	if err := json.Unmarshal([]byte(res.Steps[cutover.StepDiscover].Outputs[cutover.OutEndpoints]), &eps); err != nil {
		t.Fatal(err)
	}
	if eps[beWeb].DNSName != svcHost || eps[beWeb].Type != "network" || len(eps[beWeb].Listeners) != 1 || eps[beWeb].Listeners[0].Port != 443 {
		t.Errorf("service endpoint = %+v, want the NLB with hostname %s and its 443 listener", eps[beWeb], svcHost)
	}
	if eps[beShop].DNSName != ingHost || eps[beShop].Type != "application" {
		t.Errorf("ingress endpoint = %+v, want the ALB with hostname %s", eps[beShop], ingHost)
	}
	if r, _ := ed.Record(zone, "www.example.com", "A", ""); r.AliasTarget == nil || r.AliasTarget.DNSName != svcHost+"." || r.AliasTarget.HostedZoneID != eps[beWeb].CanonicalHostedZoneID {
		t.Errorf("www.example.com after cutover = %+v, want an alias to %s", r.AliasTarget, svcHost)
	}
	if d, _ := ed.Distribution(dist); d.Origins[0].DomainName != ingHost {
		t.Errorf("origin after cutover = %q, want %q", d.Origins[0].DomainName, ingHost)
	}
	// Discovery may start before the controller has made anything: it waits, saying so.
	p := res.Progress(cutover.StepDiscover)
	if !slices.ContainsFunc(p, func(l string) bool { return strings.HasPrefix(l, "waiting for ") }) {
		t.Errorf("discover progress shows no wait for the provisioning load balancers: %q", p)
	}
	for _, lb := range srv.LoadBalancers(drRegion) {
		if lb.State != "active" {
			t.Errorf("load balancer %s is %s after the cutover", lb.Name, lb.State)
		}
	}
}
