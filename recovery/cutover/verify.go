package cutover

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/route53"

	"github.com/drbot/drbot/recovery"
)

// Verify is the endpoints.verify action.
func (c *Cutover) Verify(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	tc, err := c.resolve(sc.Run().Target)
	if err != nil {
		return recovery.Result{}, err
	}
	rec, err := planRecord(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	raw, ok := sc.Output(StepApply, OutState)
	if !ok {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("%s left no %q output; apply the cutover before verifying it", StepApply, OutState))
	}
	var st State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("decoding %s output %q: %w", StepApply, OutState, err))
	}
	st.init()
	cl, err := c.clients(ctx, rec.ELBRegion, rec.APIRegion)
	if err != nil {
		return recovery.Result{}, err
	}
	// Each row proven is journaled as it happens: the status board shows
	// the cutover's progress row by row.
	rows, verified := len(rec.Rows), 0
	say := func(format string, args ...any) {
		sc.Progress(format, args...)
		if strings.HasPrefix(format, "✓ %d.") {
			verified++
			_ = sc.SaveOutputs(map[string]string{OutRows: fmt.Sprint(rows), OutVerified: fmt.Sprint(min(verified, rows))})
		}
	}
	if err := c.verifyRecord(ctx, cl, rec, st, false, say); err != nil {
		return recovery.Result{}, err
	}
	if err := c.runChecks(ctx, tc.extra.Checks, sc.Progress); err != nil {
		return recovery.Result{}, err
	}
	summary := fmt.Sprintf("%d row(s) verified, %d HTTP check(s) passed", len(rec.Rows), len(tc.extra.Checks))
	return recovery.Result{Outputs: map[string]string{"summary": summary, OutRows: fmt.Sprint(rows), OutVerified: fmt.Sprint(rows)}}, nil
}

// verifyRecord proves the rows of rec hold their new (or, back, old) values
// where it counts: Route 53 changes INSYNC, distributions Deployed, stages
// serving the deployments made, every value read back.
func (c *Cutover) verifyRecord(ctx context.Context, cl Clients, rec Record, st State, back bool, say func(string, ...any)) error {
	// Route 53: wait for each zone's change, then read every record back.
	var zones []string
	seen := map[string]bool{}
	for _, r := range rec.Rows {
		if r.Kind == KindRoute53 && !seen[r.Route53.ZoneID] {
			seen[r.Route53.ZoneID] = true
			zones = append(zones, r.Route53.ZoneID)
		}
	}
	for _, zone := range zones {
		if id := st.Changes[zone]; id != "" {
			if err := c.waitChange(ctx, cl.Route53, zone, id, say); err != nil {
				return err
			}
		}
		for _, r := range rec.Rows {
			if r.Kind != KindRoute53 || r.Route53.ZoneID != zone {
				continue
			}
			old := r.Route53.Old
			live, err := readRecord(ctx, cl.Route53, zone, aws.ToString(old.Name), string(old.Type), aws.ToString(old.SetIdentifier))
			if err != nil {
				return err
			}
			ok := live != nil
			if ok && back {
				ok = sameRecord(*live, old)
			} else if ok {
				ok = sameTarget(*live, r.Route53.New)
			}
			if !ok {
				now := "absent"
				if live != nil {
					now = describeRecord(*live)
				}
				return recovery.Permanent(fmt.Errorf("%d. %s is %s, expected %s; it changed after the cutover wrote it: check who changed it, then Retry", r.N, r.Resource, now, wantOf(r, back)))
			}
			say("✓ %d. %s → %s", r.N, r.Resource, wantOf(r, back))
		}
	}

	// CloudFront: every distribution of the record Deployed with the origin wanted.
	var dists []string
	seen = map[string]bool{}
	for _, r := range rec.Rows {
		if r.Kind == KindCloudFront && !seen[r.CloudFront.DistributionID] {
			seen[r.CloudFront.DistributionID] = true
			dists = append(dists, r.CloudFront.DistributionID)
		}
	}
	for _, dist := range dists {
		out, err := c.waitDeployed(ctx, cl.CloudFront, dist, say)
		if err != nil {
			return err
		}
		for _, r := range rec.Rows {
			if r.Kind != KindCloudFront || r.CloudFront.DistributionID != dist {
				continue
			}
			var got string
			if out.Distribution != nil {
				if o := findOrigin(out.Distribution.DistributionConfig, r.CloudFront.OriginID); o != nil {
					got = aws.ToString(o.DomainName)
				}
			}
			want := r.CloudFront.New
			if back {
				want = r.CloudFront.Old
			}
			if !strings.EqualFold(got, want) {
				return recovery.Permanent(fmt.Errorf("%d. %s is %q, expected %q; it changed after the cutover wrote it: check who changed it, then Retry", r.N, r.Resource, got, want))
			}
			say("✓ %d. %s → %s (Deployed)", r.N, r.Resource, want)
		}
	}

	// API Gateway: stages serve the deployments made; integrations read back.
	for _, d := range st.Deployments {
		if err := verifyDeployment(ctx, cl, d); err != nil {
			return err
		}
		say("✓ %s API %s stage %s serves deployment %s", map[string]string{KindREST: "REST", KindHTTP: "HTTP"}[d.Kind], d.APIID, d.Stage, d.ID)
	}
	for _, r := range rec.Rows {
		var got, want string
		switch r.Kind {
		case KindREST:
			x := r.REST
			out, err := cl.REST.GetIntegration(ctx, &apigateway.GetIntegrationInput{RestApiId: aws.String(x.APIID), ResourceId: aws.String(x.ResourceID), HttpMethod: aws.String(x.HTTPMethod)})
			if err != nil {
				return fmt.Errorf("reading REST API %s integration %s %s: %w", x.APIID, x.HTTPMethod, x.ResourceID, err)
			}
			got, want = aws.ToString(out.Uri), x.New
			if back {
				want = x.Old
			}
		case KindHTTP:
			x := r.HTTP
			out, err := cl.HTTP.GetIntegration(ctx, &apigatewayv2.GetIntegrationInput{ApiId: aws.String(x.APIID), IntegrationId: aws.String(x.IntegrationID)})
			if err != nil {
				return fmt.Errorf("reading HTTP API %s integration %s: %w", x.APIID, x.IntegrationID, err)
			}
			got, want = aws.ToString(out.IntegrationUri), x.New
			if back {
				want = x.Old
			}
		default:
			continue
		}
		if got != want {
			return recovery.Permanent(fmt.Errorf("%d. %s is %q, expected %q; it changed after the cutover wrote it: check who changed it, then Retry", r.N, r.Resource, got, want))
		}
		say("✓ %d. %s → %s", r.N, r.Resource, want)
	}
	return nil
}

func wantOf(r Row, back bool) string {
	if back {
		return r.Current
	}
	return r.New
}

// waitChange waits for a Route 53 change to be INSYNC.
func (c *Cutover) waitChange(ctx context.Context, api Route53API, zone, id string, say func(string, ...any)) error {
	start := c.opts.Now()
	p := &pacer{every: c.opts.ProgressEvery, now: c.opts.Now, say: say}
	p.tick("waiting for route53 change %s (zone %s) to be INSYNC", id, zone)
	w := route53.NewResourceRecordSetsChangedWaiter(api, func(o *route53.ResourceRecordSetsChangedWaiterOptions) {
		o.MinDelay, o.MaxDelay = c.opts.Poll, 3*c.opts.Poll
		next := o.Retryable
		o.Retryable = func(ctx context.Context, in *route53.GetChangeInput, out *route53.GetChangeOutput, err error) (bool, error) {
			retry, rerr := next(ctx, in, out, err)
			if retry && rerr == nil && out != nil && out.ChangeInfo != nil {
				p.tick("route53 change %s still %s after %s", id, out.ChangeInfo.Status, c.opts.Now().Sub(start).Round(time.Second))
			}
			return retry, rerr
		}
	})
	if err := w.Wait(ctx, &route53.GetChangeInput{Id: aws.String(id)}, c.opts.Route53Timeout); err != nil {
		return recovery.Retryable(fmt.Errorf("waiting for route53 change %s in zone %s to be INSYNC: %w; Retry keeps waiting on the same change", id, zone, err))
	}
	say("route53 change %s (zone %s) INSYNC after %s", id, zone, c.opts.Now().Sub(start).Round(time.Second))
	return nil
}

// waitDeployed waits for a CloudFront distribution to be Deployed and
// returns it as last read.
func (c *Cutover) waitDeployed(ctx context.Context, api CloudFrontAPI, dist string, say func(string, ...any)) (*cloudfront.GetDistributionOutput, error) {
	start := c.opts.Now()
	p := &pacer{every: c.opts.ProgressEvery, now: c.opts.Now, say: say}
	w := cloudfront.NewDistributionDeployedWaiter(api, func(o *cloudfront.DistributionDeployedWaiterOptions) {
		o.MinDelay, o.MaxDelay = c.opts.Poll, 3*c.opts.Poll
		next := o.Retryable
		o.Retryable = func(ctx context.Context, in *cloudfront.GetDistributionInput, out *cloudfront.GetDistributionOutput, err error) (bool, error) {
			retry, rerr := next(ctx, in, out, err)
			if retry && rerr == nil && out != nil && out.Distribution != nil {
				p.tick("CloudFront distribution %s %s after %s", dist, aws.ToString(out.Distribution.Status), c.opts.Now().Sub(start).Round(time.Second))
			}
			return retry, rerr
		}
	})
	out, err := w.WaitForOutput(ctx, &cloudfront.GetDistributionInput{Id: aws.String(dist)}, c.opts.CloudFrontTimeout)
	if err != nil {
		return nil, recovery.Retryable(fmt.Errorf("waiting for CloudFront distribution %s to be Deployed: %w; Retry keeps waiting", dist, err))
	}
	say("CloudFront distribution %s Deployed after %s", dist, c.opts.Now().Sub(start).Round(time.Second))
	return out, nil
}

func verifyDeployment(ctx context.Context, cl Clients, d Deployment) error {
	switch d.Kind {
	case KindREST:
		st, err := cl.REST.GetStage(ctx, &apigateway.GetStageInput{RestApiId: aws.String(d.APIID), StageName: aws.String(d.Stage)})
		if err != nil {
			return fmt.Errorf("reading REST API %s stage %s: %w", d.APIID, d.Stage, err)
		}
		if got := aws.ToString(st.DeploymentId); got != d.ID {
			return recovery.Permanent(fmt.Errorf("REST API %s stage %s serves deployment %q, not the cutover's %q; someone redeployed it: check, then Retry", d.APIID, d.Stage, got, d.ID))
		}
		if _, err := cl.REST.GetDeployment(ctx, &apigateway.GetDeploymentInput{RestApiId: aws.String(d.APIID), DeploymentId: aws.String(d.ID)}); err != nil {
			return fmt.Errorf("reading REST API %s deployment %s: %w", d.APIID, d.ID, err)
		}
	case KindHTTP:
		st, err := cl.HTTP.GetStage(ctx, &apigatewayv2.GetStageInput{ApiId: aws.String(d.APIID), StageName: aws.String(d.Stage)})
		if err != nil {
			return fmt.Errorf("reading HTTP API %s stage %s: %w", d.APIID, d.Stage, err)
		}
		got := aws.ToString(st.DeploymentId)
		// An auto-deploying stage may have moved on to a later deployment.
		if got == "" || (!d.Auto && got != d.ID) {
			return recovery.Permanent(fmt.Errorf("HTTP API %s stage %s serves deployment %q, not the cutover's %q; someone redeployed it: check, then Retry", d.APIID, d.Stage, got, d.ID))
		}
	}
	return nil
}

// runChecks sends each HTTP check until it passes or the deadline passes.
func (c *Cutover) runChecks(ctx context.Context, checks []HTTPCheck, say func(string, ...any)) error {
	if len(checks) == 0 {
		return nil
	}
	deadline := c.opts.Now().Add(c.opts.CheckTimeout)
	for i, chk := range checks {
		p := &pacer{every: c.opts.ProgressEvery, now: c.opts.Now, say: say}
		for {
			status, err := c.checkOnce(ctx, chk)
			if err == nil {
				say("✓ check %d/%d %s → %d", i+1, len(checks), checkLabel(chk), status)
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !c.opts.Now().Before(deadline) {
				return recovery.Permanent(fmt.Errorf("%w (still failing after %s); fix the service behind it and press Retry, or Skip to accept", err, c.opts.CheckTimeout))
			}
			p.tick("check %d/%d: %v; retrying until %s", i+1, len(checks), err, deadline.UTC().Format("15:04:05"))
			if err := sleep(ctx, c.opts.CheckInterval); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkLabel(chk HTTPCheck) string {
	s := "GET " + chk.URL
	if chk.Host != "" {
		s += " (Host " + chk.Host + ")"
	}
	return s
}

// checkOnce sends one check; the error names the URL, the status seen and
// the status expected.
func (c *Cutover) checkOnce(ctx context.Context, chk HTTPCheck) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, chk.URL, nil)
	if err != nil {
		return 0, recovery.Permanent(fmt.Errorf("http check %s: %w", checkLabel(chk), err))
	}
	client := c.opts.HTTPClient
	if chk.Host != "" {
		req.Host = chk.Host
		if strings.HasPrefix(chk.URL, "https:") {
			client = withServerName(client, chk.Host)
			if tr, ok := client.Transport.(*http.Transport); ok && client != c.opts.HTTPClient {
				defer tr.CloseIdleConnections()
			}
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("http check %s: no response (%v), expected status %d", checkLabel(chk), err, chk.expect())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != chk.expect() {
		return resp.StatusCode, fmt.Errorf("http check %s: got status %d, expected %d", checkLabel(chk), resp.StatusCode, chk.expect())
	}
	if err != nil {
		return resp.StatusCode, fmt.Errorf("http check %s: reading the body: %v", checkLabel(chk), err)
	}
	if chk.BodyContains != "" && !strings.Contains(string(body), chk.BodyContains) {
		return resp.StatusCode, fmt.Errorf("http check %s: got status %d as expected, but the body does not contain %q", checkLabel(chk), resp.StatusCode, chk.BodyContains)
	}
	return resp.StatusCode, nil
}

// withServerName copies client so TLS presents host (the public name) to
// a load balancer addressed by its own DNS name.
func withServerName(client *http.Client, host string) *http.Client {
	base, ok := client.Transport.(*http.Transport)
	if client.Transport == nil {
		base, ok = http.DefaultTransport.(*http.Transport), true
	}
	if !ok {
		return client
	}
	tr := base.Clone()
	if tr.TLSClientConfig == nil {
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tr.TLSClientConfig.ServerName = strings.Split(host, ":")[0]
	cp := *client
	cp.Transport = tr
	return &cp
}
