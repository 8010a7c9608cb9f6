package awsfake_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"

	"github.com/drbot/drbot/test/awsfake"
)

// TestLoadBalancersAreFoundByTagAcrossPages walks every load balancer with
// the paginator and DescribeTags in batches of 20, the way endpoint
// discovery does, and finds the ones the LB controller tagged for the cluster.
func TestLoadBalancersAreFoundByTagAcrossPages(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	want := map[string]string{} // arn → stack
	for i := 0; i < 45; i++ {
		lb := awsfake.LoadBalancer{Name: fmt.Sprintf("k8s-other-%02d", i), Tags: map[string]string{"team": "x"}}
		if i%10 == 3 {
			stack := fmt.Sprintf("istio-ingress/gw-%d", i)
			lb = awsfake.LoadBalancer{
				Name: fmt.Sprintf("k8s-istio-gw-%02d", i), Type: "network",
				Tags: map[string]string{"elbv2.k8s.aws/cluster": "dr", "service.k8s.aws/stack": stack, "service.k8s.aws/resource": "LoadBalancer"},
			}
			arn, dns, zone := srv.AddLoadBalancer(drRegion, lb)
			want[arn] = stack
			if zone != "Z2IFOLAFXWLO4F" || !strings.HasSuffix(dns, ".elb.eu-west-1.amazonaws.com") || !strings.HasPrefix(arn, "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/") {
				t.Fatalf("NLB registered as %s %s %s", arn, dns, zone)
			}
			continue
		}
		srv.AddLoadBalancer(drRegion, lb)
	}
	srv.AddLoadBalancer(region, awsfake.LoadBalancer{Name: "primary", Tags: map[string]string{"elbv2.k8s.aws/cluster": "dr"}})

	c := elbv2.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))
	var arns []string
	byArn := map[string]elbtypes.LoadBalancer{}
	p := elbv2.NewDescribeLoadBalancersPaginator(c, &elbv2.DescribeLoadBalancersInput{PageSize: aws.Int32(20)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("DescribeLoadBalancers page: %v", err)
		}
		for _, lb := range page.LoadBalancers {
			arns = append(arns, aws.ToString(lb.LoadBalancerArn))
			byArn[aws.ToString(lb.LoadBalancerArn)] = lb
		}
	}
	if len(arns) != 45 {
		t.Fatalf("paginator saw %d load balancers, want the 45 in eu-west-1", len(arns))
	}
	if n := srv.CallsTo("elbv2", "DescribeLoadBalancers"); n != 3 {
		t.Errorf("DescribeLoadBalancers calls = %d, want 3 pages", n)
	}

	found := map[string]string{}
	for i := 0; i < len(arns); i += 20 {
		batch := arns[i:min(i+20, len(arns))]
		out, err := c.DescribeTags(ctx(t), &elbv2.DescribeTagsInput{ResourceArns: batch})
		if err != nil {
			t.Fatalf("DescribeTags: %v", err)
		}
		for _, d := range out.TagDescriptions {
			tags := map[string]string{}
			for _, tag := range d.Tags {
				tags[aws.ToString(tag.Key)] = aws.ToString(tag.Value)
			}
			if tags["elbv2.k8s.aws/cluster"] == "dr" {
				found[aws.ToString(d.ResourceArn)] = tags["service.k8s.aws/stack"]
			}
		}
	}
	if fmt.Sprint(found) != fmt.Sprint(want) {
		t.Fatalf("found by tag %v, want %v", found, want)
	}
	for arn := range found {
		lb := byArn[arn]
		if lb.Type != elbtypes.LoadBalancerTypeEnumNetwork || lb.State.Code != elbtypes.LoadBalancerStateEnumActive || aws.ToString(lb.CanonicalHostedZoneId) != "Z2IFOLAFXWLO4F" {
			t.Errorf("tagged LB %s described as %+v", arn, lb)
		}
	}

	_, err := c.DescribeTags(ctx(t), &elbv2.DescribeTagsInput{ResourceArns: arns[:21]})
	if errorCode(err) != "ValidationError" {
		t.Errorf("DescribeTags with 21 ARNs = %v, want ValidationError", err)
	}
}

func TestLoadBalancerListenerAndTagLifecycle(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	c := elbv2.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))

	created, err := c.CreateLoadBalancer(ctx(t), &elbv2.CreateLoadBalancerInput{
		Name: aws.String("dr-alb"), Subnets: []string{"subnet-a", "subnet-b"}, Scheme: elbtypes.LoadBalancerSchemeEnumInternal,
		Tags: []elbtypes.Tag{{Key: aws.String("env"), Value: aws.String("dr")}},
	})
	if err != nil {
		t.Fatalf("CreateLoadBalancer: %v", err)
	}
	lb := created.LoadBalancers[0]
	if dns := aws.ToString(lb.DNSName); !strings.HasPrefix(dns, "internal-dr-alb-") || !strings.HasSuffix(dns, ".eu-west-1.elb.amazonaws.com") {
		t.Errorf("internal ALB DNS name = %s", dns)
	}
	if aws.ToString(lb.CanonicalHostedZoneId) != "Z32O12XQLNTSW2" {
		t.Errorf("ALB zone = %s, want eu-west-1's Z32O12XQLNTSW2", aws.ToString(lb.CanonicalHostedZoneId))
	}

	l, err := c.CreateListener(ctx(t), &elbv2.CreateListenerInput{
		LoadBalancerArn: lb.LoadBalancerArn, Port: aws.Int32(443), Protocol: elbtypes.ProtocolEnumHttps,
		DefaultActions: []elbtypes.Action{{Type: elbtypes.ActionTypeEnumForward, TargetGroupArn: aws.String("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg/1")}},
	})
	if err != nil {
		t.Fatalf("CreateListener: %v", err)
	}
	ls, err := c.DescribeListeners(ctx(t), &elbv2.DescribeListenersInput{LoadBalancerArn: lb.LoadBalancerArn})
	if err != nil || len(ls.Listeners) != 1 || aws.ToString(ls.Listeners[0].ListenerArn) != aws.ToString(l.Listeners[0].ListenerArn) || aws.ToInt32(ls.Listeners[0].Port) != 443 {
		t.Fatalf("DescribeListeners = %+v, %v", ls, err)
	}

	if _, err := c.AddTags(ctx(t), &elbv2.AddTagsInput{ResourceArns: []string{*lb.LoadBalancerArn}, Tags: []elbtypes.Tag{{Key: aws.String("owner"), Value: aws.String("drbot")}}}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.DescribeTags(ctx(t), &elbv2.DescribeTagsInput{ResourceArns: []string{*lb.LoadBalancerArn}})
	if err != nil || len(tags.TagDescriptions[0].Tags) != 2 {
		t.Fatalf("DescribeTags after AddTags = %+v, %v", tags, err)
	}

	byName, err := c.DescribeLoadBalancers(ctx(t), &elbv2.DescribeLoadBalancersInput{Names: []string{"dr-alb"}})
	if err != nil || len(byName.LoadBalancers) != 1 {
		t.Fatalf("DescribeLoadBalancers by name = %+v, %v", byName, err)
	}
	if _, err := c.DeleteLoadBalancer(ctx(t), &elbv2.DeleteLoadBalancerInput{LoadBalancerArn: lb.LoadBalancerArn}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeLoadBalancers(ctx(t), &elbv2.DescribeLoadBalancersInput{Names: []string{"dr-alb"}})
	var notFound *elbtypes.LoadBalancerNotFoundException
	if !errors.As(err, &notFound) {
		t.Fatalf("DescribeLoadBalancers after delete = %v, want LoadBalancerNotFoundException", err)
	}
	if got := srv.LoadBalancers(drRegion); len(got) != 0 {
		t.Errorf("LoadBalancers after delete = %+v", got)
	}
}

func TestLoadBalancerAvailableWaiterSeesProvisioningThenActive(t *testing.T) {
	srv := newServer(t, awsfake.Options{LBProvisionDelay: 200 * time.Millisecond})
	c := elbv2.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec))
	out, err := c.CreateLoadBalancer(ctx(t), &elbv2.CreateLoadBalancerInput{Name: aws.String("dr-nlb"), Type: elbtypes.LoadBalancerTypeEnumNetwork, Subnets: []string{"subnet-a"}})
	if err != nil {
		t.Fatal(err)
	}
	if st := out.LoadBalancers[0].State.Code; st != elbtypes.LoadBalancerStateEnumProvisioning {
		t.Fatalf("state right after create = %s, want provisioning", st)
	}
	if err := elbv2.NewLoadBalancerAvailableWaiter(c, func(o *elbv2.LoadBalancerAvailableWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, 100*time.Millisecond
	}).Wait(ctx(t), &elbv2.DescribeLoadBalancersInput{Names: []string{"dr-nlb"}}, 5*time.Second); err != nil {
		t.Fatalf("LoadBalancerAvailable waiter: %v", err)
	}
}
