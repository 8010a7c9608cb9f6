package readiness

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	v2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/cutover"
)

// Read-only views of the services the cutover moves, and of ELBv2 to find
// the primary's load balancers.
type (
	CutoverELBAPI interface {
		DescribeLoadBalancers(ctx context.Context, in *elbv2.DescribeLoadBalancersInput, optFns ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error)
		DescribeTags(ctx context.Context, in *elbv2.DescribeTagsInput, optFns ...func(*elbv2.Options)) (*elbv2.DescribeTagsOutput, error)
	}
	CutoverRoute53API interface {
		ListResourceRecordSets(ctx context.Context, in *route53.ListResourceRecordSetsInput, optFns ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error)
	}
	CutoverCloudFrontAPI interface {
		GetDistributionConfig(ctx context.Context, in *cloudfront.GetDistributionConfigInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetDistributionConfigOutput, error)
	}
	CutoverRestAPI interface {
		GetIntegration(ctx context.Context, in *apigateway.GetIntegrationInput, optFns ...func(*apigateway.Options)) (*apigateway.GetIntegrationOutput, error)
	}
	CutoverHTTPAPI interface {
		GetIntegration(ctx context.Context, in *apigatewayv2.GetIntegrationInput, optFns ...func(*apigatewayv2.Options)) (*apigatewayv2.GetIntegrationOutput, error)
	}
)

// Tags the AWS Load Balancer Controller puts on its load balancers (the
// ones recovery/cutover discovers the DR endpoints by).
const (
	lbcTagCluster      = "elbv2.k8s.aws/cluster"
	lbcTagServiceStack = "service.k8s.aws/stack"
	lbcTagIngressStack = "ingress.k8s.aws/stack"
)

// CutoverCheck proves that every entry point the cutover would move
// (cfg.CutoverFor(target): Route 53 records, CloudFront origins, API
// Gateway integrations) exists and points where the primary is now.
//
// The config names no primary value: each entry names a backend
// (service or ingress "namespace/name"), and the cutover moves it to the
// load balancer the AWS Load Balancer Controller made for that backend in
// the DR cluster. So "where the primary is" is the load balancer the
// controller made for the same backend in the primary cluster: tagged
// elbv2.k8s.aws/cluster=<primary.cluster> and service.k8s.aws/stack (or
// ingress.k8s.aws/stack)=<backend>, in primary.region. A record or
// origin must name its DNS name, a REST/HTTP integration URL its host,
// and a VPC-link integration one of its listeners. When no such load
// balancer is found the entry is only checked to exist (a warning).
type CutoverCheck struct {
	Config *config.Config
	AWS    AWSConfigFunc
}

// ID is the check's id.
func (c *CutoverCheck) ID() string { return CheckCutover }

const cutoverTitle = "every cutover entry point exists and points at the primary's load balancer"

// cutoverClients are the clients of one target's check.
type cutoverClients struct {
	primaryELB CutoverELBAPI
	route53    CutoverRoute53API
	cloudfront CutoverCloudFrontAPI
	rest       CutoverRestAPI
	http       CutoverHTTPAPI
}

// Run checks each target's cutover config.
func (c *CutoverCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	var out []Result
	for _, t := range targets {
		cut := c.Config.CutoverFor(t)
		if len(cut.Route53)+len(cut.CloudFront)+len(cut.APIGateway) == 0 {
			out = append(out, Result{Check: CheckCutover, Target: t.Name, Title: cutoverTitle, Status: Warn,
				Evidence: []string{"the cutover config names no Route 53 record, CloudFront origin or API Gateway integration: a recovery would move no traffic"},
				Fix:      "list the public entry points under cutover (or the target's own cutover)"})
			continue
		}
		cl, err := c.clients(ctx, t, cut)
		if err != nil {
			out = append(out, ErrorResult(CheckCutover, t.Name, cutoverTitle, err, "check drbot's AWS configuration"))
			continue
		}
		out = append(out, c.runTarget(ctx, t, cut, cl))
	}
	return out
}

func (c *CutoverCheck) clients(ctx context.Context, t *config.Target, cut config.Cutover) (cutoverClients, error) {
	primary, err := c.AWS(ctx, t.Primary.Region)
	if err != nil {
		return cutoverClients{}, err
	}
	apiRegion := cut.APIGatewayRegion
	if apiRegion == "" {
		apiRegion = t.DR.Region
	}
	api, err := c.AWS(ctx, apiRegion)
	if err != nil {
		return cutoverClients{}, err
	}
	// Route 53 and CloudFront are global; any region resolves their endpoints.
	return cutoverClients{
		primaryELB: elbv2.NewFromConfig(primary),
		route53:    route53.NewFromConfig(primary),
		cloudfront: cloudfront.NewFromConfig(primary),
		rest:       apigateway.NewFromConfig(api),
		http:       apigatewayv2.NewFromConfig(api),
	}, nil
}

// primaryLB is the primary cluster's load balancer of one backend.
type primaryLB struct {
	arn, dns string
}

func backendKeyOf(b config.Backend) string { return b.Kind() + "/" + b.Ref() }

func (c *CutoverCheck) runTarget(ctx context.Context, t *config.Target, cut config.Cutover, cl cutoverClients) Result {
	var f findings
	lbs, err := primaryLoadBalancers(ctx, cl.primaryELB, t.Primary.Cluster)
	if err != nil {
		f.warn("could not list the primary's load balancers in %s (%s): entry points are only checked to exist", t.Primary.Region, shortErr(err))
		lbs = map[string]primaryLB{}
	}
	// compare judges one entry point's current value against the primary.
	compare := func(what string, b config.Backend, current string, matches func(primaryLB) bool) {
		key := backendKeyOf(b)
		lb, ok := lbs[key]
		switch {
		case !ok:
			f.warn("%s points at %s; no load balancer tagged %s=%s for %s in %s, so it was not compared", what, current, lbcTagCluster, t.Primary.Cluster, key, t.Primary.Region)
		case matches(lb):
			f.pass("%s points at the primary's %s load balancer (%s)", what, key, lb.dns)
		default:
			f.fail("%s points at %s, not at the primary's %s load balancer %s", what, current, key, lb.dns)
		}
	}

	for _, r := range cut.Route53 {
		what := fmt.Sprintf("route53 %s %s%s (zone %s)", r.Name, r.Type, setSuffix(r.SetIdentifier), r.ZoneID)
		rec, err := findRecord(ctx, cl.route53, r)
		switch {
		case err != nil:
			f.fail("%s: %s", what, shortErr(err))
			continue
		case rec == nil:
			f.fail("%s does not exist", what)
			continue
		}
		targets := recordTargets(*rec)
		compare(what, r.Backend, strings.Join(targets, ", "), func(lb primaryLB) bool {
			for _, v := range targets {
				if sameDNS(v, lb.dns) {
					return true
				}
			}
			return false
		})
	}

	dists := map[string]*cloudfront.GetDistributionConfigOutput{}
	for _, o := range cut.CloudFront {
		what := fmt.Sprintf("cloudfront %s origin %s", o.DistributionID, o.OriginID)
		out, ok := dists[o.DistributionID]
		if !ok {
			var err error
			out, err = cl.cloudfront.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(o.DistributionID)})
			var nsd *cftypes.NoSuchDistribution
			switch {
			case errors.As(err, &nsd):
				f.fail("cloudfront distribution %s does not exist", o.DistributionID)
				dists[o.DistributionID] = nil
				continue
			case err != nil:
				f.fail("%s: %s", what, shortErr(err))
				continue
			}
			dists[o.DistributionID] = out
		}
		if out == nil {
			continue // already reported missing
		}
		domain, ok := cutover.OriginDomain(out, o.OriginID)
		if !ok {
			f.fail("%s does not exist", what)
			continue
		}
		compare(what, o.Backend, domain, func(lb primaryLB) bool { return sameDNS(domain, lb.dns) })
	}

	for _, a := range cut.APIGateway {
		if a.Kind == "rest" {
			what := fmt.Sprintf("apigateway rest %s %s %s", a.APIID, a.HTTPMethod, a.ResourceID)
			out, err := cl.rest.GetIntegration(ctx, &apigateway.GetIntegrationInput{
				RestApiId: aws.String(a.APIID), ResourceId: aws.String(a.ResourceID), HttpMethod: aws.String(a.HTTPMethod),
			})
			if err != nil {
				f.fail("%s: %s", what, shortErr(err))
				continue
			}
			uri := aws.ToString(out.Uri)
			compare(what, a.Backend, uri, func(lb primaryLB) bool { return sameDNS(hostOf(uri), lb.dns) })
			continue
		}
		what := fmt.Sprintf("apigateway http %s integration %s", a.APIID, a.IntegrationID)
		out, err := cl.http.GetIntegration(ctx, &apigatewayv2.GetIntegrationInput{ApiId: aws.String(a.APIID), IntegrationId: aws.String(a.IntegrationID)})
		if err != nil {
			f.fail("%s: %s", what, shortErr(err))
			continue
		}
		uri := aws.ToString(out.IntegrationUri)
		if out.ConnectionType == v2types.ConnectionTypeVpcLink {
			compare(what, a.Backend, uri, func(lb primaryLB) bool {
				return strings.HasPrefix(uri, strings.Replace(lb.arn, ":loadbalancer/", ":listener/", 1)+"/")
			})
			continue
		}
		compare(what, a.Backend, uri, func(lb primaryLB) bool { return sameDNS(hostOf(uri), lb.dns) })
	}
	fix := "fix the entry point or cutover config: a cutover moves only what exists, and rolls back to what it read; if an entry point was moved on purpose, update the config (and the primary's load balancer tags)"
	return f.result(CheckCutover, t.Name, cutoverTitle, fix)
}

// primaryLoadBalancers finds the load balancers the Load Balancer
// Controller made for cluster, by backend key ("service/ns/name",
// "ingress/ns/name"); the newest wins when a backend has several.
func primaryLoadBalancers(ctx context.Context, api CutoverELBAPI, cluster string) (map[string]primaryLB, error) {
	var lbs []elbtypes.LoadBalancer
	pg := elbv2.NewDescribeLoadBalancersPaginator(api, &elbv2.DescribeLoadBalancersInput{})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		lbs = append(lbs, page.LoadBalancers...)
	}
	byARN := map[string]elbtypes.LoadBalancer{}
	var arns []string
	for _, lb := range lbs {
		byARN[aws.ToString(lb.LoadBalancerArn)] = lb
		arns = append(arns, aws.ToString(lb.LoadBalancerArn))
	}
	out := map[string]primaryLB{}
	newest := map[string]elbtypes.LoadBalancer{}
	for len(arns) > 0 {
		n := min(len(arns), 20) // DescribeTags takes at most 20 ARNs
		tags, err := api.DescribeTags(ctx, &elbv2.DescribeTagsInput{ResourceArns: arns[:n]})
		arns = arns[n:]
		if err != nil {
			return nil, err
		}
		for _, td := range tags.TagDescriptions {
			m := map[string]string{}
			for _, tg := range td.Tags {
				m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			if m[lbcTagCluster] != cluster {
				continue
			}
			lb := byARN[aws.ToString(td.ResourceArn)]
			for _, key := range []string{"service/" + m[lbcTagServiceStack], "ingress/" + m[lbcTagIngressStack]} {
				if strings.HasSuffix(key, "/") {
					continue
				}
				if prev, ok := newest[key]; ok && aws.ToTime(prev.CreatedTime).After(aws.ToTime(lb.CreatedTime)) {
					continue
				}
				newest[key] = lb
				out[key] = primaryLB{arn: aws.ToString(lb.LoadBalancerArn), dns: aws.ToString(lb.DNSName)}
			}
		}
	}
	return out, nil
}

func setSuffix(id string) string {
	if id == "" {
		return ""
	}
	return " set " + id
}

// recordName is a record name as Route 53 lists it: lower case, final
// dot, "*" escaped.
func recordName(s string) string {
	return strings.ReplaceAll(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), "."), "*", `\052`) + "."
}

// findRecord finds one record set by name, type and set identifier; nil
// when the zone has none.
func findRecord(ctx context.Context, api CutoverRoute53API, r config.Route53Record) (*r53types.ResourceRecordSet, error) {
	want := recordName(r.Name)
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(r.ZoneID), StartRecordName: aws.String(want), StartRecordType: r53types.RRType(r.Type)}
	if r.SetIdentifier != "" {
		in.StartRecordIdentifier = aws.String(r.SetIdentifier)
	}
	for {
		out, err := api.ListResourceRecordSets(ctx, in)
		if err != nil {
			return nil, err
		}
		for _, rr := range out.ResourceRecordSets {
			if recordName(aws.ToString(rr.Name)) != want || string(rr.Type) != r.Type {
				return nil, nil // the listing is sorted: past the name and type means absent
			}
			if aws.ToString(rr.SetIdentifier) == r.SetIdentifier {
				return &rr, nil
			}
		}
		if !out.IsTruncated {
			return nil, nil
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = out.NextRecordName, out.NextRecordType, out.NextRecordIdentifier
	}
}

// recordTargets are the names a record points at: its alias target or
// its values.
func recordTargets(rr r53types.ResourceRecordSet) []string {
	if rr.AliasTarget != nil {
		return []string{aws.ToString(rr.AliasTarget.DNSName)}
	}
	var out []string
	for _, v := range rr.ResourceRecords {
		out = append(out, aws.ToString(v.Value))
	}
	return out
}

// sameDNS compares DNS names case-insensitively, with or without the
// final dot and the "dualstack." prefix Route 53 aliases to ELB may carry.
func sameDNS(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
		return strings.TrimPrefix(s, "dualstack.")
	}
	return a != "" && norm(a) == norm(b)
}

func hostOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Hostname()
}
