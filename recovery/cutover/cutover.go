// Package cutover moves a target's public entry points — Route 53 records,
// CloudFront origins and API Gateway integrations — to the load balancers the
// AWS Load Balancer Controller made in the DR cluster, proves the move took
// effect, and can put every old value back.
//
// Four step actions share one Cutover:
//
//	endpoints.discover  finds each configured backend's load balancer by its
//	                    LBC tags, waits until it is active, records DNS name,
//	                    canonical zone, ARN and listeners (output "endpoints")
//	endpoints.plan      reads every current value live and journals the
//	                    change set as the rollback record (output "rollback")
//	                    before anything changes, with a table for the gate
//	endpoints.apply     applies each row idempotently, journaling per row
//	endpoints.verify    waits for INSYNC / Deployed, checks deployments and
//	                    runs the HTTP checks through the new endpoints
//
// Rollback restores a journaled rollback record outside the runbook (the
// /dr rollback command) with the same mechanics, then verifies it.
package cutover

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// Step ids this package implements, and the one whose outputs it reads for
// the critical-service rule. They are the runbook's journal keys.
const (
	StepDiscover    = "endpoints.discover"
	StepPlan        = "endpoints.plan"
	StepApply       = "endpoints.apply"
	StepVerify      = "endpoints.verify"
	StepDeployWatch = "deploy.watch"
)

// Output keys.
const (
	// OutEndpoints (discover) is a JSON object: backend key → Endpoint.
	OutEndpoints = "endpoints"
	// OutRollback (plan) is the JSON Record: every row with its full old
	// and new value. It is the rollback record and apply's input.
	OutRollback = "rollback"
	// OutTable (plan) is the change set as text for the cutover gate.
	OutTable = "table"
	// OutAppHealth is what plan and apply read from deploy.watch: a JSON
	// object of Argo CD Application name → health status ("Healthy", ...).
	OutAppHealth = "app_health"
	// OutOverride (plan, apply) names who overrode the critical-service rule.
	OutOverride = "critical_override"
	// OutRows and OutVerified (verify) count the change set's rows and those
	// proven so far, for the status board.
	OutRows     = "rows"
	OutVerified = "verified"
)

// HTTPCheck is one request verify sends through the new endpoints.
type HTTPCheck struct {
	// URL is absolute (http or https): a public name once DNS follows, or
	// the new load balancer's own DNS name with Host set.
	URL string
	// Host, when set, is the Host header and the TLS server name.
	Host string
	// ExpectStatus is the status the check wants; zero means 200.
	ExpectStatus int
	// BodyContains, when set, must appear in the response body.
	BodyContains string
}

func (h HTTPCheck) expect() int {
	if h.ExpectStatus == 0 {
		return http.StatusOK
	}
	return h.ExpectStatus
}

// TargetOptions are the per-target settings config does not hold yet
// (proposed keys: cutover.checks, cutover.critical_services,
// cutover.apigateway_region).
type TargetOptions struct {
	Checks []HTTPCheck
	// CriticalServices are Argo CD Application names that must be Healthy
	// in deploy.watch's app_health before anything is cut over.
	CriticalServices []string
	// APIGatewayRegion is where the configured APIs live; empty means the
	// target's DR region.
	APIGatewayRegion string
}

// Override is an explicit, audited decision to cut over although a
// critical service is not Healthy.
type Override struct {
	By     string
	Reason string
}

// Options configure a Cutover. Zero durations take the defaults noted.
type Options struct {
	// Clients makes the AWS clients. Required.
	Clients ClientSource
	// Targets holds TargetOptions by target name; the entry "" applies to
	// targets without their own.
	Targets map[string]TargetOptions
	// Override, when set, is asked whether an operator approved cutting
	// over despite unhealthy critical services; nil means never.
	Override func(ctx context.Context, run state.Run) (Override, bool)
	// AAAARequiresDualstack fails the plan for an AAAA alias to a load
	// balancer without IPv6; otherwise the table carries a warning.
	AAAARequiresDualstack bool

	DiscoverTimeout   time.Duration // load balancers active; 15m
	Poll              time.Duration // LB state, Route 53 change, CloudFront status; 10s
	ProgressEvery     time.Duration // pace of progress lines while waiting; 30s
	Route53Timeout    time.Duration // a change INSYNC; 10m
	CloudFrontTimeout time.Duration // a distribution Deployed; 30m
	CheckTimeout      time.Duration // HTTP checks passing; 5m
	CheckInterval     time.Duration // between HTTP check attempts; 5s
	// HTTPClient sends the HTTP checks; nil means one with a 10s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Cutover implements the cutover steps and rollback for every target of a config.
type Cutover struct {
	cfg  *config.Config
	opts Options
}

// New checks the options and fills in defaults.
func New(cfg *config.Config, opts Options) (*Cutover, error) {
	if cfg == nil {
		return nil, errors.New("cutover: config is required")
	}
	if opts.Clients == nil {
		return nil, errors.New("cutover: Options.Clients is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.DiscoverTimeout, 15*time.Minute)
	def(&opts.Poll, 10*time.Second)
	def(&opts.ProgressEvery, 30*time.Second)
	def(&opts.Route53Timeout, 10*time.Minute)
	def(&opts.CloudFrontTimeout, 30*time.Minute)
	def(&opts.CheckTimeout, 5*time.Minute)
	def(&opts.CheckInterval, 5*time.Second)
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cutover{cfg: cfg, opts: opts}, nil
}

// Actions maps the step ids to this cutover's actions, for
// Runbook.WithActions.
func (c *Cutover) Actions() map[string]recovery.Action {
	return map[string]recovery.Action{
		StepDiscover: c.Discover,
		StepPlan:     c.Plan,
		StepApply:    c.Apply,
		StepVerify:   c.Verify,
	}
}

// targetCtx is what a step knows about its run's target.
type targetCtx struct {
	target *config.Target
	cut    config.Cutover
	extra  TargetOptions
}

func (t targetCtx) apiRegion() string {
	if t.extra.APIGatewayRegion != "" {
		return t.extra.APIGatewayRegion
	}
	return t.target.DR.Region
}

func (c *Cutover) resolve(name string) (targetCtx, error) {
	t, ok := c.cfg.Target(name)
	if !ok {
		return targetCtx{}, recovery.Permanent(fmt.Errorf("target %q is not in the config; add it or start the run against a configured target", name))
	}
	extra, ok := c.opts.Targets[name]
	if !ok {
		extra = c.opts.Targets[""]
	}
	tc := targetCtx{target: t, cut: c.cfg.CutoverFor(t), extra: extra}
	if err := validateCutover(tc.cut); err != nil {
		return targetCtx{}, recovery.Permanent(fmt.Errorf("cutover config of target %q: %w", name, err))
	}
	return tc, nil
}

func (c *Cutover) clients(ctx context.Context, elbRegion, apiRegion string) (Clients, error) {
	cl, err := c.opts.Clients.Clients(ctx, elbRegion, apiRegion)
	if err != nil {
		return Clients{}, fmt.Errorf("making AWS clients (ELBv2 %s, API Gateway %s): %w", elbRegion, apiRegion, err)
	}
	return cl, nil
}

// backendKey names a backend the way the outputs do: "service/ns/name" or
// "ingress/ns/name" (or "ingress/<group>" for an Ingress group).
func backendKey(b config.Backend) string { return b.Kind() + "/" + b.Ref() }

func validBackend(b config.Backend) error {
	switch {
	case b.Service != "" && b.Ingress != "":
		return fmt.Errorf("names both service %q and ingress %q; keep one", b.Service, b.Ingress)
	case b.Service == "" && b.Ingress == "":
		return errors.New("names no backend; set service or ingress to \"namespace/name\"")
	case b.Service != "" && strings.Count(b.Service, "/") != 1:
		return fmt.Errorf("service %q is not \"namespace/name\"", b.Service)
	case b.Ingress != "" && strings.Count(b.Ingress, "/") > 1:
		return fmt.Errorf("ingress %q is not \"namespace/name\" or a group name", b.Ingress)
	}
	return nil
}

func validateCutover(cut config.Cutover) error {
	var problems []string
	for i, r := range cut.Route53 {
		if err := validBackend(r.Backend); err != nil {
			problems = append(problems, fmt.Sprintf("route53[%d] %s: %v", i, r.Name, err))
		}
	}
	for i, o := range cut.CloudFront {
		if err := validBackend(o.Backend); err != nil {
			problems = append(problems, fmt.Sprintf("cloudfront[%d] %s/%s: %v", i, o.DistributionID, o.OriginID, err))
		}
	}
	for i, a := range cut.APIGateway {
		if err := validBackend(a.Backend); err != nil {
			problems = append(problems, fmt.Sprintf("apigateway[%d] %s: %v", i, a.APIID, err))
		}
		switch a.Kind {
		case "rest":
			if a.ResourceID == "" || a.HTTPMethod == "" || a.Stage == "" {
				problems = append(problems, fmt.Sprintf("apigateway[%d] %s: kind rest needs resource_id, http_method and stage", i, a.APIID))
			}
		case "http":
			if a.IntegrationID == "" {
				problems = append(problems, fmt.Sprintf("apigateway[%d] %s: kind http needs integration_id", i, a.APIID))
			}
		default:
			problems = append(problems, fmt.Sprintf("apigateway[%d] %s: kind %q is not rest or http", i, a.APIID, a.Kind))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// backends lists the distinct backends a cutover names, sorted.
func backends(cut config.Cutover) []config.Backend {
	seen := map[string]config.Backend{}
	for _, r := range cut.Route53 {
		seen[backendKey(r.Backend)] = r.Backend
	}
	for _, o := range cut.CloudFront {
		seen[backendKey(o.Backend)] = o.Backend
	}
	for _, a := range cut.APIGateway {
		seen[backendKey(a.Backend)] = a.Backend
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]config.Backend, 0, len(keys))
	for _, k := range keys {
		out = append(out, seen[k])
	}
	return out
}

// pacer spaces progress lines while waiting: the first line at once, then
// at most one per interval.
type pacer struct {
	every time.Duration
	now   func() time.Time
	last  time.Time
	say   func(format string, args ...any)
}

func (p *pacer) tick(format string, args ...any) {
	now := p.now()
	if !p.last.IsZero() && now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	p.say(format, args...)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
