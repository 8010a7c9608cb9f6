package lbcfake_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/lbcfake"
)

const (
	region      = "eu-west-1"
	clusterName = "dr-eks"
)

// foundLB is a load balancer as drbot's endpoint discovery sees it: DescribeLoadBalancers + DescribeTags.
type foundLB struct {
	lb   types.LoadBalancer
	tags map[string]string
}

func TestController(t *testing.T) {
	kc := kubeenv.Start(t, kubeenv.WithName("dr"))
	cs := kc.Clientset()
	aw := awsfake.New(t, awsfake.Options{})
	api := elbv2.NewFromConfig(aw.Config(region, "AKIDLBCFAKE0000001", "made-up-secret"))
	start := func() *lbcfake.Controller {
		c, err := lbcfake.Start(context.Background(), lbcfake.Options{
			Cluster: kc.AdminConfig(), ClusterName: clusterName, Region: region, LBs: api,
			Poll: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		})
		if err != nil {
			t.Fatalf("starting controller: %v", err)
		}
		return c
	}
	ctrl := start()
	t.Cleanup(func() { ctrl.Stop() })

	ctx := testContext(t, 90*time.Second)
	for _, ns := range []string{"istio-ingress", "shop", "other"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	createService(ctx, t, cs, "istio-ingress", "gateway", map[string]string{"service.beta.kubernetes.io/aws-load-balancer-scheme": "internet-facing"}, nil)
	foreign := "example.com/other-lb"
	createService(ctx, t, cs, "other", "not-ours", nil, &foreign)
	alb := "alb"
	createIngress(ctx, t, cs, "shop", "web", &alb, map[string]string{"alb.ingress.kubernetes.io/scheme": "internet-facing"})
	// Two Ingresses in one explicit group share one ALB; one uses the legacy class annotation.
	createIngress(ctx, t, cs, "shop", "api", &alb, map[string]string{"alb.ingress.kubernetes.io/group.name": "public"})
	createIngress(ctx, t, cs, "other", "admin", nil, map[string]string{"alb.ingress.kubernetes.io/group.name": "public", "kubernetes.io/ingress.class": "alb"})
	nginx := "nginx"
	createIngress(ctx, t, cs, "other", "nginx", &nginx, nil)

	var gwHost, webHost, apiHost, adminHost string
	t.Run("LoadBalancerServiceGetsATaggedNLBAndItsHostname", func(t *testing.T) {
		gwHost = waitServiceHostname(ctx, t, cs, "istio-ingress", "gateway")
		lbs := discover(ctx, t, api)
		got := findByTags(lbs, map[string]string{
			"elbv2.k8s.aws/cluster": clusterName, "service.k8s.aws/stack": "istio-ingress/gateway", "service.k8s.aws/resource": "LoadBalancer",
		})
		if len(got) != 1 {
			t.Fatalf("load balancers tagged for istio-ingress/gateway = %d, want 1 (all: %v)", len(got), names(lbs))
		}
		lb := got[0].lb
		if aws.ToString(lb.DNSName) != gwHost {
			t.Errorf("service hostname %q, load balancer DNS name %q: want equal", gwHost, aws.ToString(lb.DNSName))
		}
		if lb.Type != types.LoadBalancerTypeEnumNetwork || lb.Scheme != types.LoadBalancerSchemeEnumInternetFacing {
			t.Errorf("type/scheme = %s/%s, want network/internet-facing", lb.Type, lb.Scheme)
		}
		if name := aws.ToString(lb.LoadBalancerName); !strings.HasPrefix(name, "k8s-istioing-gateway-") || len(name) != len("k8s-istioing-gateway-")+10 {
			t.Errorf("name = %q, want the controller's k8s-<ns:8>-<name:8>-<hash:10>", name)
		}
		ls, err := api.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: lb.LoadBalancerArn})
		if err != nil {
			t.Fatal(err)
		}
		var ports []int32
		for _, l := range ls.Listeners {
			ports = append(ports, aws.ToInt32(l.Port))
		}
		if len(ports) != 2 || ports[0] != 80 || ports[1] != 443 {
			t.Errorf("listener ports = %v, want [80 443] from the service ports", ports)
		}
		svc, err := cs.CoreV1().Services("istio-ingress").Get(ctx, "gateway", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !hasString(svc.Finalizers, lbcfake.ServiceFinalizer) {
			t.Errorf("finalizers = %v, want %s", svc.Finalizers, lbcfake.ServiceFinalizer)
		}
	})

	t.Run("ALBIngressAndIngressGroupGetTaggedALBs", func(t *testing.T) {
		webHost = waitIngressHostname(ctx, t, cs, "shop", "web")
		apiHost = waitIngressHostname(ctx, t, cs, "shop", "api")
		adminHost = waitIngressHostname(ctx, t, cs, "other", "admin")
		if apiHost != adminHost {
			t.Errorf("group members have hostnames %q and %q, want one shared ALB", apiHost, adminHost)
		}
		lbs := discover(ctx, t, api)
		for stack, host := range map[string]string{"shop/web": webHost, "public": apiHost} {
			got := findByTags(lbs, map[string]string{
				"elbv2.k8s.aws/cluster": clusterName, "ingress.k8s.aws/stack": stack, "ingress.k8s.aws/resource": "LoadBalancer",
			})
			if len(got) != 1 {
				t.Fatalf("load balancers tagged for ingress stack %q = %d, want 1 (all: %v)", stack, len(got), names(lbs))
			}
			if lb := got[0].lb; aws.ToString(lb.DNSName) != host || lb.Type != types.LoadBalancerTypeEnumApplication {
				t.Errorf("stack %q: %s load balancer %q, want application with the ingress hostname %q", stack, lb.Type, aws.ToString(lb.DNSName), host)
			}
		}
		if len(lbs) != 3 {
			t.Errorf("load balancers = %v, want 3 (the NLB, web and the public group)", names(lbs))
		}
		// Objects of other controllers are left alone.
		svc, err := cs.CoreV1().Services("other").Get(ctx, "not-ours", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(svc.Status.LoadBalancer.Ingress) != 0 || len(svc.Finalizers) != 0 {
			t.Errorf("service with loadBalancerClass %s: status %v finalizers %v, want untouched", foreign, svc.Status.LoadBalancer.Ingress, svc.Finalizers)
		}
		ing, err := cs.NetworkingV1().Ingresses("other").Get(ctx, "nginx", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ing.Status.LoadBalancer.Ingress) != 0 {
			t.Errorf("nginx ingress status = %v, want untouched", ing.Status.LoadBalancer.Ingress)
		}
	})

	t.Run("RestartedControllerFindsItsLoadBalancersByTags", func(t *testing.T) {
		creates := aw.CallsTo("elbv2", "CreateLoadBalancer")
		describes := aw.CallsTo("elbv2", "DescribeLoadBalancers")
		ctrl.Stop()
		// Lose the status, as after a restore: the new controller has to find the NLB again, not make one.
		svc, err := cs.CoreV1().Services("istio-ingress").Get(ctx, "gateway", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		svc.Status.LoadBalancer.Ingress = nil
		if _, err := cs.CoreV1().Services("istio-ingress").UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		ctrl = start()
		if got := waitServiceHostname(ctx, t, cs, "istio-ingress", "gateway"); got != gwHost {
			t.Errorf("hostname after restart = %q, want the same load balancer's %q", got, gwHost)
		}
		time.Sleep(time.Second) // a few more passes
		if n := aw.CallsTo("elbv2", "DescribeLoadBalancers"); n <= describes {
			t.Errorf("DescribeLoadBalancers calls %d → %d, want the new controller to look its load balancers up", describes, n)
		}
		if n := aw.CallsTo("elbv2", "CreateLoadBalancer"); n != creates {
			t.Errorf("CreateLoadBalancer calls %d → %d, want none after a restart", creates, n)
		}
		if lbs := aw.LoadBalancers(region); len(lbs) != 3 {
			t.Errorf("load balancers after restart = %d, want still 3", len(lbs))
		}
		if err := ctrl.Err(); err != nil {
			t.Errorf("controller error after restart: %v", err)
		}
	})

	t.Run("DeletingTheObjectsDeletesTheirLoadBalancers", func(t *testing.T) {
		if err := cs.CoreV1().Services("istio-ingress").Delete(ctx, "gateway", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := cs.NetworkingV1().Ingresses("shop").Delete(ctx, "api", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "service gateway and ingress api to be gone", func() bool {
			_, err1 := cs.CoreV1().Services("istio-ingress").Get(ctx, "gateway", metav1.GetOptions{})
			_, err2 := cs.NetworkingV1().Ingresses("shop").Get(ctx, "api", metav1.GetOptions{})
			return apierrors.IsNotFound(err1) && apierrors.IsNotFound(err2)
		})
		left := map[string]bool{}
		for _, lb := range aw.LoadBalancers(region) {
			left[lb.DNSName] = true
		}
		if left[gwHost] || !left[adminHost] || !left[webHost] || len(left) != 2 {
			t.Errorf("load balancers left = %v, want web's and the public group's (admin is still in it)", left)
		}
		if err := cs.NetworkingV1().Ingresses("other").Delete(ctx, "admin", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(ctx, t, "the public group's load balancer to go with its last member", func() bool {
			for _, lb := range aw.LoadBalancers(region) {
				if lb.DNSName == adminHost {
					return false
				}
			}
			return true
		})
	})
}

func discover(ctx context.Context, t *testing.T, api *elbv2.Client) []foundLB {
	t.Helper()
	var out []foundLB
	pager := elbv2.NewDescribeLoadBalancersPaginator(api, &elbv2.DescribeLoadBalancersInput{})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatalf("describing load balancers: %v", err)
		}
		for _, lb := range page.LoadBalancers {
			tags, err := api.DescribeTags(ctx, &elbv2.DescribeTagsInput{ResourceArns: []string{aws.ToString(lb.LoadBalancerArn)}})
			if err != nil {
				t.Fatalf("describing tags: %v", err)
			}
			m := map[string]string{}
			for _, td := range tags.TagDescriptions {
				for _, tag := range td.Tags {
					m[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
				}
			}
			out = append(out, foundLB{lb: lb, tags: m})
		}
	}
	return out
}

func findByTags(lbs []foundLB, want map[string]string) []foundLB {
	var out []foundLB
	for _, lb := range lbs {
		ok := true
		for k, v := range want {
			if lb.tags[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, lb)
		}
	}
	return out
}

func names(lbs []foundLB) []string {
	var out []string
	for _, lb := range lbs {
		out = append(out, aws.ToString(lb.lb.LoadBalancerName))
	}
	return out
}

func createService(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, ann map[string]string, class *string) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec: corev1.ServiceSpec{
			Type:              corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass: class,
			Selector:          map[string]string{"app": name},
			Ports: []corev1.ServicePort{
				{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP},
				{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP},
			},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating service %s/%s: %v", ns, name, err)
	}
}

func createIngress(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string, class *string, ann map[string]string) {
	t.Helper()
	ing := &networkingv1.Ingress{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: ann},
		Spec: networkingv1.IngressSpec{
			IngressClassName: class,
			DefaultBackend: &networkingv1.IngressBackend{
				Service: &networkingv1.IngressServiceBackend{Name: name, Port: networkingv1.ServiceBackendPort{Number: 80}},
			},
		},
	}
	if _, err := cs.NetworkingV1().Ingresses(ns).Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating ingress %s/%s: %v", ns, name, err)
	}
}

func waitServiceHostname(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	var host string
	waitFor(ctx, t, "hostname of service "+ns+"/"+name, func() bool {
		svc, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(svc.Status.LoadBalancer.Ingress) == 1 {
			host = svc.Status.LoadBalancer.Ingress[0].Hostname
		}
		return host != ""
	})
	return host
}

func waitIngressHostname(ctx context.Context, t *testing.T, cs kubernetes.Interface, ns, name string) string {
	t.Helper()
	var host string
	waitFor(ctx, t, "hostname of ingress "+ns+"/"+name, func() bool {
		ing, err := cs.NetworkingV1().Ingresses(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && len(ing.Status.LoadBalancer.Ingress) == 1 {
			host = ing.Status.LoadBalancer.Ingress[0].Hostname
		}
		return host != ""
	})
	return host
}

func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func hasString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func testContext(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// testWriter sends the controller's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
