package cutover

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	v2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	r53types "github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// recordVersion is bumped when Record's JSON changes incompatibly.
const recordVersion = 1

// Record is a cutover's change set: every row with its full current (old)
// value, read live before anything changed, and its new value. Apply moves
// rows to New; Rollback moves them back to Old.
type Record struct {
	Version   int    `json:"version"`
	RunID     string `json:"run_id"`
	Target    string `json:"target"`
	ELBRegion string `json:"elb_region"`
	APIRegion string `json:"api_region"`
	Rows      []Row  `json:"rows"`
}

// Kinds of rows.
const (
	KindRoute53    = "route53"
	KindCloudFront = "cloudfront"
	KindREST       = "apigateway-rest"
	KindHTTP       = "apigateway-http"
)

// Row is one resource moved by the cutover.
type Row struct {
	N        int    `json:"n"` // 1-based position; apply's journal key
	Kind     string `json:"kind"`
	Resource string `json:"resource"` // for people
	Backend  string `json:"backend"`
	Current  string `json:"current"` // the old value, for people
	New      string `json:"new"`     // the new value, for people
	// Unchanged says the resource already had the new value when planned.
	Unchanged bool   `json:"unchanged,omitempty"`
	Warning   string `json:"warning,omitempty"`

	Route53    *Route53Row    `json:"route53,omitempty"`
	CloudFront *CloudFrontRow `json:"cloudfront,omitempty"`
	REST       *RESTRow       `json:"rest,omitempty"`
	HTTP       *HTTPRow       `json:"http,omitempty"`
}

// Route53Row holds the full record set before and after.
type Route53Row struct {
	ZoneID string                     `json:"zone_id"`
	Old    r53types.ResourceRecordSet `json:"old"`
	New    r53types.ResourceRecordSet `json:"new"`
}

// CloudFrontRow is one origin's domain name before and after.
type CloudFrontRow struct {
	DistributionID string `json:"distribution_id"`
	OriginID       string `json:"origin_id"`
	Old            string `json:"old"`
	New            string `json:"new"`
}

// RESTRow is a REST API integration's uri before and after, and the stage
// that publishes it.
type RESTRow struct {
	APIID          string `json:"api_id"`
	ResourceID     string `json:"resource_id"`
	HTTPMethod     string `json:"http_method"`
	Stage          string `json:"stage"`
	ConnectionType string `json:"connection_type"`
	ConnectionID   string `json:"connection_id,omitempty"`
	Old            string `json:"old"`
	New            string `json:"new"`
}

// HTTPRow is an HTTP API integration's IntegrationUri before and after.
type HTTPRow struct {
	APIID          string `json:"api_id"`
	IntegrationID  string `json:"integration_id"`
	Stage          string `json:"stage,omitempty"`
	ConnectionType string `json:"connection_type"`
	ConnectionID   string `json:"connection_id,omitempty"`
	Old            string `json:"old"`
	New            string `json:"new"`
}

// ParseRecord decodes the rollback record endpoints.plan journaled.
func ParseRecord(raw string) (Record, error) {
	var r Record
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return Record{}, fmt.Errorf("decoding the cutover rollback record: %w", err)
	}
	if r.Version != recordVersion {
		return Record{}, fmt.Errorf("cutover rollback record has version %d, this drbot reads version %d", r.Version, recordVersion)
	}
	return r, nil
}

// Table renders the change set for people: one line per row,
// "resource · current → new".
func (r Record) Table() string {
	var b strings.Builder
	changes := 0
	for _, row := range r.Rows {
		if !row.Unchanged {
			changes++
		}
	}
	fmt.Fprintf(&b, "Cutover of %s: %d change(s), %d already in place\n", r.Target, changes, len(r.Rows)-changes)
	for _, row := range r.Rows {
		if row.Unchanged {
			fmt.Fprintf(&b, "%d. %s · %s (already in place)\n", row.N, row.Resource, row.New)
		} else {
			fmt.Fprintf(&b, "%d. %s · %s → %s\n", row.N, row.Resource, row.Current, row.New)
		}
		if row.Warning != "" {
			fmt.Fprintf(&b, "   ⚠ %s\n", row.Warning)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// Plan is the endpoints.plan action.
func (c *Cutover) Plan(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	tc, err := c.resolve(sc.Run().Target)
	if err != nil {
		return recovery.Result{}, err
	}
	// A record journaled by an earlier attempt was read before anything
	// changed; reading again could capture values apply already moved.
	if raw, ok := sc.Output(StepPlan, OutRollback); ok {
		if rec, err := ParseRecord(raw); err == nil && rec.RunID == sc.Run().ID {
			sc.Progress("keeping the change set journaled by an earlier attempt (%d rows)", len(rec.Rows))
			return recovery.Result{Outputs: planOutputs(rec, raw)}, nil
		}
	}
	eps, err := upstreamEndpoints(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	cl, err := c.clients(ctx, tc.target.DR.Region, tc.apiRegion())
	if err != nil {
		return recovery.Result{}, err
	}
	if err := checkTargets(ctx, cl.ELB, eps, usedBackends(tc.cut)); err != nil {
		return recovery.Result{}, err
	}
	extra := map[string]string{}
	if o, err := c.criticalCheck(ctx, sc, tc.extra.CriticalServices, false); err != nil {
		return recovery.Result{}, err
	} else if o != nil {
		extra[OutOverride] = o.By
	}
	rec, err := c.buildRecord(ctx, cl, tc, eps)
	if err != nil {
		return recovery.Result{}, err
	}
	rec.RunID = sc.Run().ID
	raw, err := json.Marshal(rec)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("encoding the change set: %w", err)
	}
	// The rollback record is journaled before anything can change.
	if err := sc.SaveOutputs(map[string]string{OutRollback: string(raw)}); err != nil {
		return recovery.Result{}, err
	}
	out := planOutputs(rec, string(raw))
	for k, v := range extra {
		out[k] = v
	}
	sc.Progress("planned %s", strings.SplitN(out[OutTable], "\n", 2)[0])
	return recovery.Result{Outputs: out}, nil
}

func planOutputs(rec Record, raw string) map[string]string {
	changes := 0
	for _, r := range rec.Rows {
		if !r.Unchanged {
			changes++
		}
	}
	return map[string]string{
		OutRollback: raw,
		OutTable:    rec.Table(),
		"rows":      fmt.Sprint(len(rec.Rows)),
		"changes":   fmt.Sprint(changes),
	}
}

func upstreamEndpoints(sc *recovery.StepContext) (map[string]Endpoint, error) {
	raw, ok := sc.Output(StepDiscover, OutEndpoints)
	if !ok {
		return nil, recovery.Permanent(fmt.Errorf("%s left no %q output; run it (or Retry it) before planning", StepDiscover, OutEndpoints))
	}
	eps := map[string]Endpoint{}
	if err := json.Unmarshal([]byte(raw), &eps); err != nil {
		return nil, recovery.Permanent(fmt.Errorf("decoding %s output %q: %w", StepDiscover, OutEndpoints, err))
	}
	return eps, nil
}

func usedBackends(cut config.Cutover) []string {
	var keys []string
	for _, b := range backends(cut) {
		keys = append(keys, backendKey(b))
	}
	return keys
}

// criticalCheck applies the rule that nothing is cut over while a critical
// service is not Healthy in deploy.watch. Strict (apply) treats a missing
// report as unhealthy; plan only checks a report that exists.
func (c *Cutover) criticalCheck(ctx context.Context, sc *recovery.StepContext, critical []string, strict bool) (*Override, error) {
	if len(critical) == 0 {
		return nil, nil
	}
	health := map[string]string{}
	raw, ok := sc.Output(StepDeployWatch, OutAppHealth)
	if !ok && !strict {
		sc.Progress("%s has not reported application health yet; %s checks the critical services again", StepDeployWatch, StepApply)
		return nil, nil
	}
	if ok {
		if err := json.Unmarshal([]byte(raw), &health); err != nil {
			return nil, recovery.Permanent(fmt.Errorf("decoding %s output %q: %w", StepDeployWatch, OutAppHealth, err))
		}
	}
	var bad []string
	for _, name := range critical {
		h, ok := health[name]
		switch {
		case !ok:
			bad = append(bad, name+" (no health reported)")
		case h != "Healthy":
			bad = append(bad, fmt.Sprintf("%s (%s)", name, h))
		}
	}
	if len(bad) == 0 {
		return nil, nil
	}
	if c.opts.Override != nil {
		if o, ok := c.opts.Override(ctx, sc.Run()); ok {
			sc.Progress("critical services not Healthy (%s); cutting over anyway: override approved by %s (%s)", strings.Join(bad, ", "), o.By, o.Reason)
			return &o, nil
		}
	}
	return nil, recovery.Permanent(fmt.Errorf("refusing to cut over: critical services not Healthy in %s: %s; make them Healthy and press Retry, or approve an override",
		StepDeployWatch, strings.Join(bad, ", ")))
}

// buildRecord reads every configured resource's current value and computes
// its new one.
func (c *Cutover) buildRecord(ctx context.Context, cl Clients, tc targetCtx, eps map[string]Endpoint) (Record, error) {
	rec := Record{Version: recordVersion, Target: tc.target.Name, ELBRegion: tc.target.DR.Region, APIRegion: tc.apiRegion()}
	add := func(r Row) {
		r.N = len(rec.Rows) + 1
		rec.Rows = append(rec.Rows, r)
	}
	for _, rc := range tc.cut.Route53 {
		row, err := c.planRoute53(ctx, cl.Route53, rc, eps[backendKey(rc.Backend)])
		if err != nil {
			return Record{}, err
		}
		add(row)
	}
	// Distributions are read once each, however many origins they have.
	cfConfigs := map[string]*cloudfront.GetDistributionConfigOutput{}
	for _, oc := range tc.cut.CloudFront {
		out, ok := cfConfigs[oc.DistributionID]
		if !ok {
			var err error
			out, err = cl.CloudFront.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(oc.DistributionID)})
			if err != nil {
				return Record{}, fmt.Errorf("reading CloudFront distribution %s: %w", oc.DistributionID, err)
			}
			cfConfigs[oc.DistributionID] = out
		}
		ep := eps[backendKey(oc.Backend)]
		old, ok := OriginDomain(out, oc.OriginID)
		if !ok {
			return Record{}, recovery.Permanent(fmt.Errorf("CloudFront distribution %s has no origin %q; fix cutover.cloudfront in the config", oc.DistributionID, oc.OriginID))
		}
		add(Row{
			Kind: KindCloudFront, Resource: fmt.Sprintf("cloudfront %s origin %s", oc.DistributionID, oc.OriginID), Backend: ep.Backend,
			Current: old, New: ep.DNSName, Unchanged: strings.EqualFold(old, ep.DNSName),
			CloudFront: &CloudFrontRow{DistributionID: oc.DistributionID, OriginID: oc.OriginID, Old: old, New: ep.DNSName},
		})
	}
	for _, ac := range tc.cut.APIGateway {
		ep := eps[backendKey(ac.Backend)]
		var row Row
		var err error
		if ac.Kind == "rest" {
			row, err = planREST(ctx, cl.REST, ac, ep)
		} else {
			row, err = planHTTP(ctx, cl.HTTP, ac, ep)
		}
		if err != nil {
			return Record{}, err
		}
		add(row)
	}
	return rec, nil
}

// OriginDomain is the domain name of the distribution's origin originID.
func OriginDomain(out *cloudfront.GetDistributionConfigOutput, originID string) (string, bool) {
	if out.DistributionConfig == nil || out.DistributionConfig.Origins == nil {
		return "", false
	}
	for _, o := range out.DistributionConfig.Origins.Items {
		if aws.ToString(o.Id) == originID {
			return aws.ToString(o.DomainName), true
		}
	}
	return "", false
}

func (c *Cutover) planRoute53(ctx context.Context, api Route53API, rc config.Route53Record, ep Endpoint) (Row, error) {
	cur, err := readRecord(ctx, api, rc.ZoneID, rc.Name, rc.Type, rc.SetIdentifier)
	if err != nil {
		return Row{}, err
	}
	if cur == nil {
		return Row{}, recovery.Permanent(fmt.Errorf("route53 zone %s has no %s record %s%s; create it by hand or fix cutover.route53 in the config",
			rc.ZoneID, rc.Type, rc.Name, setLabel(rc.SetIdentifier)))
	}
	next := retarget(*cur, ep)
	row := Row{
		Kind: KindRoute53, Backend: ep.Backend,
		Resource: fmt.Sprintf("route53 %s %s%s (zone %s)", aws.ToString(cur.Name), cur.Type, routingLabel(*cur), rc.ZoneID),
		Current:  describeRecord(*cur), New: describeRecord(next),
		Unchanged: sameTarget(*cur, next),
		Route53:   &Route53Row{ZoneID: rc.ZoneID, Old: *cur, New: next},
	}
	if rc.Type == "AAAA" && !strings.HasPrefix(ep.IPAddressType, "dualstack") {
		row.Warning = fmt.Sprintf("AAAA alias to %s, whose IP address type is %q: it answers no IPv6 addresses", ep.Name, ep.IPAddressType)
		if c.opts.AAAARequiresDualstack {
			return Row{}, recovery.Permanent(fmt.Errorf("%s: %s; make the load balancer dualstack or drop the AAAA record from the cutover", row.Resource, row.Warning))
		}
	}
	return row, nil
}

func setLabel(id string) string {
	if id == "" {
		return ""
	}
	return " (set " + id + ")"
}

func routingLabel(r r53types.ResourceRecordSet) string {
	var parts []string
	if r.SetIdentifier != nil {
		parts = append(parts, "set "+*r.SetIdentifier)
	}
	if r.Weight != nil {
		parts = append(parts, fmt.Sprintf("weight %d", *r.Weight))
	}
	if r.Failover != "" {
		parts = append(parts, "failover "+string(r.Failover))
	}
	if len(parts) == 0 {
		return ""
	}
	return " [" + strings.Join(parts, ", ") + "]"
}

// retarget points a record set at ep, keeping everything else (routing
// policy, health check, TTL of a CNAME).
func retarget(cur r53types.ResourceRecordSet, ep Endpoint) r53types.ResourceRecordSet {
	next := cloneRRSet(cur)
	if cur.Type == r53types.RRTypeCname {
		next.AliasTarget = nil
		next.ResourceRecords = []r53types.ResourceRecord{{Value: aws.String(ep.DNSName)}}
		if next.TTL == nil {
			next.TTL = aws.Int64(60)
		}
		return next
	}
	eth := false
	if cur.AliasTarget != nil {
		eth = cur.AliasTarget.EvaluateTargetHealth
	}
	next.AliasTarget = &r53types.AliasTarget{
		// Fully qualified, as Route 53 lists it.
		DNSName:      aws.String(normDNS(ep.DNSName) + "."),
		HostedZoneId: aws.String(ep.CanonicalHostedZoneID), EvaluateTargetHealth: eth,
	}
	next.TTL, next.ResourceRecords = nil, nil
	return next
}

func cloneRRSet(r r53types.ResourceRecordSet) r53types.ResourceRecordSet {
	raw, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("cloning a record set: %v", err))
	}
	var out r53types.ResourceRecordSet
	if err := json.Unmarshal(raw, &out); err != nil {
		panic(fmt.Sprintf("cloning a record set: %v", err))
	}
	return out
}

func describeRecord(r r53types.ResourceRecordSet) string {
	if a := r.AliasTarget; a != nil {
		return fmt.Sprintf("ALIAS %s (zone %s)", aws.ToString(a.DNSName), aws.ToString(a.HostedZoneId))
	}
	vals := make([]string, 0, len(r.ResourceRecords))
	for _, v := range r.ResourceRecords {
		vals = append(vals, aws.ToString(v.Value))
	}
	return fmt.Sprintf("%s %s (TTL %d)", r.Type, strings.Join(vals, ", "), aws.ToInt64(r.TTL))
}

// normDNS compares DNS names as Route 53 does: case-insensitive, with or
// without the final dot.
func normDNS(s string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".")
}

// normRecordName is a record name as Route 53 lists it.
func normRecordName(s string) string {
	return strings.ReplaceAll(normDNS(s), "*", `\052`) + "."
}

// sameTarget reports whether a and b point at the same place: alias target
// or values and TTL.
func sameTarget(a, b r53types.ResourceRecordSet) bool {
	if (a.AliasTarget == nil) != (b.AliasTarget == nil) {
		return false
	}
	if a.AliasTarget != nil {
		return normDNS(aws.ToString(a.AliasTarget.DNSName)) == normDNS(aws.ToString(b.AliasTarget.DNSName)) &&
			aws.ToString(a.AliasTarget.HostedZoneId) == aws.ToString(b.AliasTarget.HostedZoneId) &&
			a.AliasTarget.EvaluateTargetHealth == b.AliasTarget.EvaluateTargetHealth
	}
	return aws.ToInt64(a.TTL) == aws.ToInt64(b.TTL) && strings.Join(sortedValues(a), "\n") == strings.Join(sortedValues(b), "\n")
}

// sameRecord reports whether a and b are the same record set in every member.
func sameRecord(a, b r53types.ResourceRecordSet) bool {
	if !sameTarget(a, b) {
		return false
	}
	strip := func(r r53types.ResourceRecordSet) string {
		r = cloneRRSet(r)
		r.AliasTarget, r.ResourceRecords, r.TTL = nil, nil, nil
		r.Name = aws.String(normRecordName(aws.ToString(r.Name)))
		raw, _ := json.Marshal(r)
		return string(raw)
	}
	return strip(a) == strip(b)
}

func sortedValues(r r53types.ResourceRecordSet) []string {
	vals := make([]string, 0, len(r.ResourceRecords))
	for _, v := range r.ResourceRecords {
		vals = append(vals, aws.ToString(v.Value))
	}
	sort.Strings(vals)
	return vals
}

// readRecord finds one record set by name, type and set identifier; nil
// when the zone has none.
func readRecord(ctx context.Context, api Route53API, zoneID, name, typ, setID string) (*r53types.ResourceRecordSet, error) {
	want := normRecordName(name)
	in := &route53.ListResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID), StartRecordName: aws.String(want), StartRecordType: r53types.RRType(typ),
	}
	if setID != "" {
		in.StartRecordIdentifier = aws.String(setID)
	}
	for {
		out, err := api.ListResourceRecordSets(ctx, in)
		if err != nil {
			return nil, fmt.Errorf("reading %s record %s in route53 zone %s: %w", typ, name, zoneID, err)
		}
		for _, r := range out.ResourceRecordSets {
			if normRecordName(aws.ToString(r.Name)) != want || string(r.Type) != typ {
				// Listing is sorted: past the name and type means absent.
				return nil, nil
			}
			if aws.ToString(r.SetIdentifier) == setID {
				r := r
				return &r, nil
			}
		}
		if !out.IsTruncated {
			return nil, nil
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = out.NextRecordName, out.NextRecordType, out.NextRecordIdentifier
	}
}

func planREST(ctx context.Context, api RestAPI, ac config.APIGatewayIntegration, ep Endpoint) (Row, error) {
	out, err := api.GetIntegration(ctx, &apigateway.GetIntegrationInput{
		RestApiId: aws.String(ac.APIID), ResourceId: aws.String(ac.ResourceID), HttpMethod: aws.String(ac.HTTPMethod),
	})
	if err != nil {
		return Row{}, fmt.Errorf("reading REST API %s integration %s %s: %w", ac.APIID, ac.HTTPMethod, ac.ResourceID, err)
	}
	old := aws.ToString(out.Uri)
	next, err := withHost(old, ep.DNSName)
	if err != nil {
		return Row{}, recovery.Permanent(fmt.Errorf("REST API %s integration %s %s: %w", ac.APIID, ac.HTTPMethod, ac.ResourceID, err))
	}
	return Row{
		Kind: KindREST, Backend: ep.Backend,
		Resource: fmt.Sprintf("apigateway rest %s %s %s uri (stage %s)", ac.APIID, ac.HTTPMethod, ac.ResourceID, ac.Stage),
		Current:  old, New: next, Unchanged: old == next,
		REST: &RESTRow{APIID: ac.APIID, ResourceID: ac.ResourceID, HTTPMethod: ac.HTTPMethod, Stage: ac.Stage,
			ConnectionType: string(out.ConnectionType), ConnectionID: aws.ToString(out.ConnectionId), Old: old, New: next},
	}, nil
}

func planHTTP(ctx context.Context, api HTTPAPI, ac config.APIGatewayIntegration, ep Endpoint) (Row, error) {
	out, err := api.GetIntegration(ctx, &apigatewayv2.GetIntegrationInput{ApiId: aws.String(ac.APIID), IntegrationId: aws.String(ac.IntegrationID)})
	if err != nil {
		return Row{}, fmt.Errorf("reading HTTP API %s integration %s: %w", ac.APIID, ac.IntegrationID, err)
	}
	old := aws.ToString(out.IntegrationUri)
	var next string
	if out.ConnectionType == v2types.ConnectionTypeVpcLink {
		// A private integration names a listener of the load balancer.
		l, ok := pickListener(ep.Listeners)
		if !ok {
			return Row{}, recovery.Permanent(fmt.Errorf("HTTP API %s integration %s is private (VPC link) but load balancer %s of %s has no listener; add one and re-run endpoints.discover",
				ac.APIID, ac.IntegrationID, ep.ARN, ep.Backend))
		}
		next = l.ARN
	} else {
		next, err = withHost(old, ep.DNSName)
		if err != nil {
			return Row{}, recovery.Permanent(fmt.Errorf("HTTP API %s integration %s: %w", ac.APIID, ac.IntegrationID, err))
		}
	}
	res := fmt.Sprintf("apigateway http %s integration %s", ac.APIID, ac.IntegrationID)
	if ac.Stage != "" {
		res += " (stage " + ac.Stage + ")"
	}
	return Row{
		Kind: KindHTTP, Backend: ep.Backend, Resource: res, Current: old, New: next, Unchanged: old == next,
		HTTP: &HTTPRow{APIID: ac.APIID, IntegrationID: ac.IntegrationID, Stage: ac.Stage,
			ConnectionType: string(out.ConnectionType), ConnectionID: aws.ToString(out.ConnectionId), Old: old, New: next},
	}, nil
}

// pickListener prefers HTTPS on 443, then HTTP on 80, then the lowest port.
func pickListener(ls []Listener) (Listener, bool) {
	if len(ls) == 0 {
		return Listener{}, false
	}
	for _, port := range []int32{443, 80} {
		for _, l := range ls {
			if l.Port == port {
				return l, true
			}
		}
	}
	return ls[0], true
}

// withHost replaces the host of an integration URL, keeping scheme, port,
// path and query byte for byte (url.URL.String would escape "{proxy}").
func withHost(raw, host string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil {
		return "", fmt.Errorf("integration uri %q is not an http(s) URL drbot can repoint; change it by hand and drop it from cutover.apigateway", raw)
	}
	start := len(u.Scheme) + len("://")
	end := len(raw)
	if i := strings.IndexAny(raw[start:], "/?#"); i >= 0 {
		end = start + i
	}
	if p := u.Port(); p != "" {
		host += ":" + p
	}
	return raw[:start] + host + raw[end:], nil
}
