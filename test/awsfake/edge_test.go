package awsfake_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/awsfake/edge"
)

// TestEdgeServicesAreMountedBehindTheSameURL runs a cutover-shaped sequence
// through the one server: the DR load balancer's alias goes into Route 53
// (with throttling on the way), and CloudFront and API Gateway answer too.
func TestEdgeServicesAreMountedBehindTheSameURL(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	_, dns, zoneID := srv.AddLoadBalancer(drRegion, awsfake.LoadBalancer{Name: "istio-gw", Type: "network"})
	hz := srv.Edge().AddHostedZone("example.com")
	dist := srv.Edge().AddDistribution([]edge.Origin{{ID: "primary", DomainName: "old.us-east-1.elb.amazonaws.com"}})
	api := srv.Edge().AddHTTPAPI("public")
	cfg := srv.Config(region, drbotKey, drbotSec)

	srv.Inject("route53", "ChangeResourceRecordSets", awsfake.Fault{Code: "Throttling", Status: 400, Times: 1})
	_, err := route53.NewFromConfig(cfg).ChangeResourceRecordSets(ctx(t), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(hz),
		ChangeBatch: &r53types.ChangeBatch{Changes: []r53types.Change{{
			Action: r53types.ChangeActionUpsert,
			ResourceRecordSet: &r53types.ResourceRecordSet{
				Name: aws.String("api.example.com"), Type: r53types.RRTypeA,
				AliasTarget: &r53types.AliasTarget{DNSName: aws.String(dns), HostedZoneId: aws.String(zoneID)},
			},
		}}},
	})
	if err != nil {
		t.Fatalf("ChangeResourceRecordSets through the mounted Route 53: %v", err)
	}
	rec, ok := srv.Edge().Record(hz, "api.example.com", "A", "")
	if !ok || rec.AliasTarget == nil || !strings.HasPrefix(rec.AliasTarget.DNSName, strings.ToLower(dns)) || rec.AliasTarget.HostedZoneID != zoneID {
		t.Fatalf("record = %+v, %v; want an alias to %s in %s", rec, ok, dns, zoneID)
	}
	if n := srv.CallsTo("route53", "ChangeResourceRecordSets"); n != 2 {
		t.Errorf("ChangeResourceRecordSets calls = %d, want 2 (one throttled)", n)
	}

	got, err := cloudfront.NewFromConfig(cfg).GetDistributionConfig(ctx(t), &cloudfront.GetDistributionConfigInput{Id: aws.String(dist)})
	if err != nil || aws.ToString(got.DistributionConfig.Origins.Items[0].DomainName) != "old.us-east-1.elb.amazonaws.com" {
		t.Fatalf("GetDistributionConfig = %+v, %v", got, err)
	}
	apis, err := apigatewayv2.NewFromConfig(cfg).GetApi(ctx(t), &apigatewayv2.GetApiInput{ApiId: aws.String(api)})
	if err != nil || aws.ToString(apis.Name) != "public" {
		t.Fatalf("GetApi = %+v, %v", apis, err)
	}
	for _, c := range srv.Calls() {
		if c.Principal != drbotArn {
			t.Errorf("call %+v not attributed to drbot", c)
		}
	}
}
