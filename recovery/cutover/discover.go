package cutover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	elbtypes "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	"github.com/aws/smithy-go"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// Tags the AWS Load Balancer Controller puts on what it creates.
const (
	tagCluster      = "elbv2.k8s.aws/cluster"
	tagServiceStack = "service.k8s.aws/stack"
	tagIngressStack = "ingress.k8s.aws/stack"
)

// describeTagsMax is DescribeTags' limit of ARNs per call.
const describeTagsMax = 20

// Endpoint is a backend's load balancer in the DR cluster.
type Endpoint struct {
	Backend               string     `json:"backend"` // "service/ns/name", "ingress/ns/name"
	ARN                   string     `json:"arn"`
	Name                  string     `json:"name"`
	Type                  string     `json:"type"`            // application or network
	Scheme                string     `json:"scheme"`          // internet-facing or internal
	IPAddressType         string     `json:"ip_address_type"` // ipv4, dualstack, ...
	DNSName               string     `json:"dns_name"`
	CanonicalHostedZoneID string     `json:"canonical_hosted_zone_id"`
	Listeners             []Listener `json:"listeners"`
}

// Listener is one listener of an Endpoint.
type Listener struct {
	ARN      string `json:"arn"`
	Port     int32  `json:"port"`
	Protocol string `json:"protocol"`
}

// lbView is one load balancer as a discovery pass saw it.
type lbView struct {
	lb   elbtypes.LoadBalancer
	tags map[string]string
}

func (v lbView) state() string {
	if v.lb.State == nil {
		return ""
	}
	return string(v.lb.State.Code)
}

// Discover is the endpoints.discover action.
func (c *Cutover) Discover(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	tc, err := c.resolve(sc.Run().Target)
	if err != nil {
		return recovery.Result{}, err
	}
	want := backends(tc.cut)
	if len(want) == 0 {
		sc.Progress("the cutover config of %s names no backends; nothing to discover", tc.target.Name)
		return recovery.Result{Outputs: map[string]string{OutEndpoints: "{}"}}, nil
	}
	cl, err := c.clients(ctx, tc.target.DR.Region, tc.apiRegion())
	if err != nil {
		return recovery.Result{}, err
	}
	eps, err := c.discover(ctx, cl.ELB, tc.target.DR.ClusterName, want, sc.Progress)
	if err != nil {
		return recovery.Result{}, err
	}
	raw, err := json.Marshal(eps)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("encoding endpoints: %w", err)
	}
	var lines []string
	for _, b := range want {
		ep := eps[backendKey(b)]
		lines = append(lines, fmt.Sprintf("%s → %s (%s, %d listener(s))", ep.Backend, ep.DNSName, ep.Type, len(ep.Listeners)))
	}
	return recovery.Result{Outputs: map[string]string{
		OutEndpoints: string(raw),
		"summary":    strings.Join(lines, "\n"),
	}}, nil
}

// discover polls until every wanted backend has an active load balancer
// tagged for clusterName, then reads their listeners.
func (c *Cutover) discover(ctx context.Context, api ELBv2API, clusterName string, want []config.Backend, say func(string, ...any)) (map[string]Endpoint, error) {
	deadline := c.opts.Now().Add(c.opts.DiscoverTimeout)
	tagCache := map[string]map[string]string{}
	p := &pacer{every: c.opts.ProgressEvery, now: c.opts.Now, say: say}
	reported := map[string]string{}
	for {
		byStack, err := scanLoadBalancers(ctx, api, clusterName, tagCache)
		if err != nil {
			return nil, err
		}
		found := map[string]lbView{}
		var waiting []string
		for _, b := range want {
			key := backendKey(b)
			v, ok := pick(byStack[key])
			st := "not found"
			if ok {
				st = v.state()
				found[key] = v
			}
			if reported[key] != st {
				reported[key] = st
				if ok {
					say("%s: load balancer %s is %s", key, aws.ToString(v.lb.LoadBalancerName), st)
				}
			}
			switch {
			case st == string(elbtypes.LoadBalancerStateEnumFailed):
				reason := ""
				if v.lb.State != nil && v.lb.State.Reason != nil {
					reason = ": " + *v.lb.State.Reason
				}
				return nil, recovery.Permanent(fmt.Errorf("load balancer %s of %s is failed%s; fix it in the AWS Load Balancer Controller and press Retry",
					aws.ToString(v.lb.LoadBalancerArn), key, reason))
			case st != string(elbtypes.LoadBalancerStateEnumActive):
				waiting = append(waiting, key+" ("+st+")")
			case aws.ToString(v.lb.DNSName) == "":
				waiting = append(waiting, key+" (no DNS name yet)")
			}
		}
		if len(waiting) == 0 {
			return describeEndpoints(ctx, api, want, found)
		}
		if !c.opts.Now().Before(deadline) {
			return nil, recovery.Permanent(fmt.Errorf("load balancers not active after %s: %s; check that the AWS Load Balancer Controller runs in cluster %s and that the Services/Ingresses exist, then press Retry",
				c.opts.DiscoverTimeout, strings.Join(waiting, ", "), clusterName))
		}
		p.tick("waiting for %d of %d load balancer(s): %s", len(waiting), len(want), strings.Join(waiting, ", "))
		if err := sleep(ctx, c.opts.Poll); err != nil {
			return nil, err
		}
	}
}

// scanLoadBalancers lists the region's load balancers and groups the ones
// tagged for clusterName by "service/<stack>" or "ingress/<stack>". Tags
// are read once per ARN (they are set at creation).
func scanLoadBalancers(ctx context.Context, api ELBv2API, clusterName string, tagCache map[string]map[string]string) (map[string][]lbView, error) {
	var lbs []elbtypes.LoadBalancer
	pg := elbv2.NewDescribeLoadBalancersPaginator(api, &elbv2.DescribeLoadBalancersInput{})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing load balancers: %w", err)
		}
		lbs = append(lbs, out.LoadBalancers...)
	}
	var unknown []string
	for _, lb := range lbs {
		if _, ok := tagCache[aws.ToString(lb.LoadBalancerArn)]; !ok {
			unknown = append(unknown, aws.ToString(lb.LoadBalancerArn))
		}
	}
	for len(unknown) > 0 {
		n := min(len(unknown), describeTagsMax)
		batch := unknown[:n]
		unknown = unknown[n:]
		out, err := api.DescribeTags(ctx, &elbv2.DescribeTagsInput{ResourceArns: batch})
		var nf *elbtypes.LoadBalancerNotFoundException
		if errors.As(err, &nf) {
			// One was deleted since the listing; the next pass sees the rest.
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading load balancer tags: %w", err)
		}
		for _, td := range out.TagDescriptions {
			tags := map[string]string{}
			for _, t := range td.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			tagCache[aws.ToString(td.ResourceArn)] = tags
		}
	}
	byStack := map[string][]lbView{}
	for _, lb := range lbs {
		tags, ok := tagCache[aws.ToString(lb.LoadBalancerArn)]
		if !ok || tags[tagCluster] != clusterName {
			continue
		}
		if s := tags[tagServiceStack]; s != "" {
			byStack["service/"+s] = append(byStack["service/"+s], lbView{lb: lb, tags: tags})
		}
		if s := tags[tagIngressStack]; s != "" {
			byStack["ingress/"+s] = append(byStack["ingress/"+s], lbView{lb: lb, tags: tags})
		}
	}
	return byStack, nil
}

// pick chooses among load balancers of one stack (normally one): an active
// one before others, then the newest.
func pick(vs []lbView) (lbView, bool) {
	if len(vs) == 0 {
		return lbView{}, false
	}
	sort.SliceStable(vs, func(i, j int) bool {
		ai, aj := vs[i].state() == "active", vs[j].state() == "active"
		if ai != aj {
			return ai
		}
		return aws.ToTime(vs[i].lb.CreatedTime).After(aws.ToTime(vs[j].lb.CreatedTime))
	})
	return vs[0], true
}

func describeEndpoints(ctx context.Context, api ELBv2API, want []config.Backend, found map[string]lbView) (map[string]Endpoint, error) {
	out := map[string]Endpoint{}
	for _, b := range want {
		key := backendKey(b)
		lb := found[key].lb
		ep := Endpoint{
			Backend: key, ARN: aws.ToString(lb.LoadBalancerArn), Name: aws.ToString(lb.LoadBalancerName),
			Type: string(lb.Type), Scheme: string(lb.Scheme), IPAddressType: string(lb.IpAddressType),
			DNSName: aws.ToString(lb.DNSName), CanonicalHostedZoneID: aws.ToString(lb.CanonicalHostedZoneId),
			Listeners: []Listener{},
		}
		pg := elbv2.NewDescribeListenersPaginator(api, &elbv2.DescribeListenersInput{LoadBalancerArn: lb.LoadBalancerArn})
		for pg.HasMorePages() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("listing listeners of %s (%s): %w", ep.ARN, key, err)
			}
			for _, l := range page.Listeners {
				ep.Listeners = append(ep.Listeners, Listener{ARN: aws.ToString(l.ListenerArn), Port: aws.ToInt32(l.Port), Protocol: string(l.Protocol)})
			}
		}
		sort.Slice(ep.Listeners, func(i, j int) bool { return ep.Listeners[i].Port < ep.Listeners[j].Port })
		out[key] = ep
	}
	return out, nil
}

// checkTargets re-reads the discovered load balancers: each must still
// exist, be active and have a DNS name, so no record is pointed at nothing.
func checkTargets(ctx context.Context, api ELBv2API, eps map[string]Endpoint, used []string) error {
	arns := make([]string, 0, len(used))
	byARN := map[string]string{}
	for _, key := range used {
		ep, ok := eps[key]
		if !ok {
			return recovery.Permanent(fmt.Errorf("%s has no discovered load balancer; re-run endpoints.discover", key))
		}
		if _, dup := byARN[ep.ARN]; !dup {
			arns = append(arns, ep.ARN)
		}
		byARN[ep.ARN] = key
	}
	for len(arns) > 0 {
		n := min(len(arns), describeTagsMax)
		batch := arns[:n]
		arns = arns[n:]
		out, err := api.DescribeLoadBalancers(ctx, &elbv2.DescribeLoadBalancersInput{LoadBalancerArns: batch})
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "LoadBalancerNotFound" {
			return recovery.Permanent(fmt.Errorf("a discovered load balancer is gone (%s); nothing may point at it: re-run endpoints.discover", ae.ErrorMessage()))
		}
		if err != nil {
			return fmt.Errorf("re-reading load balancers: %w", err)
		}
		seen := map[string]bool{}
		for _, lb := range out.LoadBalancers {
			arn := aws.ToString(lb.LoadBalancerArn)
			seen[arn] = true
			st := ""
			if lb.State != nil {
				st = string(lb.State.Code)
			}
			if st != string(elbtypes.LoadBalancerStateEnumActive) || aws.ToString(lb.DNSName) == "" {
				return recovery.Permanent(fmt.Errorf("load balancer %s of %s is %q with DNS name %q; nothing may point at it until it is active: press Retry once it is",
					arn, byARN[arn], st, aws.ToString(lb.DNSName)))
			}
		}
		for _, arn := range batch {
			if !seen[arn] {
				return recovery.Permanent(fmt.Errorf("load balancer %s of %s is gone; re-run endpoints.discover", arn, byARN[arn]))
			}
		}
	}
	return nil
}
