package helm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
)

// Step ids these actions implement (recovery/standard declares them).
const (
	StepLBC           = "addons.lbc"
	StepIstio         = "addons.istio"
	StepVaultInjector = "addons.vault-injector"
)

// Upstream outputs read by the steps.
const (
	upstreamCluster = "cluster.create" // cluster_name, region, vpc_id
	upstreamIAM     = "iam.roles"      // lbc_service_account ("namespace/name"), optional
)

// addon is how drbot installs one config add-on: its release name and the
// namespace and chart its config may leave out.
type addon struct {
	release, namespace, chart string
}

var addons = map[string]addon{
	config.AddonLoadBalancerController: {release: "aws-load-balancer-controller", namespace: "kube-system", chart: "aws-load-balancer-controller"},
	config.AddonIstioBase:              {release: "istio-base", namespace: "istio-system", chart: "base"},
	config.AddonIstiod:                 {release: "istiod", namespace: "istio-system", chart: "istiod"},
	// The gateway chart names its Deployment and Service after the release:
	// the cutover config refers to the Service istio-ingress/istio-gateway.
	config.AddonIstioGateway: {release: "istio-gateway", namespace: "istio-ingress", chart: "gateway"},
	// "vault" gives the injector the usual name, vault-agent-injector.
	config.AddonVaultInjector: {release: "vault", namespace: "vault", chart: "vault"},
}

// defaultLBCServiceAccount is the service account iam.roles binds the
// controller's role to with Pod Identity, unless it says otherwise.
const defaultLBCServiceAccount = "aws-load-balancer-controller"

// Options configure the add-on steps.
type Options struct {
	// Config gives addons.<name>.{chart,repo,version,namespace,values},
	// the target's DR cluster and vault.{address,target_mount}. Required.
	Config *config.Config
	// Kube reaches the DR cluster. Required.
	Kube kube.ConfigSource
	// IngressManifests are applied (server-side, field manager drbot)
	// after the Istio gateway: the Gateway, VirtualService, Ingress or
	// Service objects that create the public endpoints. Namespaced objects
	// without a namespace go to the gateway's namespace.
	IngressManifests []map[string]any
	// Timeout bounds each chart's rollout; default 5m.
	Timeout time.Duration
	// ProgressEvery is how often a long rollout reports; default 30s.
	ProgressEvery time.Duration
	// Installer installs the charts; nil uses a default one.
	Installer *Installer
}

// Steps holds the actions of addons.lbc, addons.istio and
// addons.vault-injector; the same value serves every run.
type Steps struct {
	opts Options
	in   *Installer
}

// New checks the options.
func New(opts Options) (*Steps, error) {
	if opts.Config == nil {
		return nil, errors.New("helm add-ons: Options.Config is required")
	}
	if opts.Kube == nil {
		return nil, errors.New("helm add-ons: Options.Kube is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 30 * time.Second
	}
	in := opts.Installer
	if in == nil {
		in = &Installer{}
	}
	return &Steps{opts: opts, in: in}, nil
}

// Actions maps the step ids to their actions, for Runbook.WithActions.
func (s *Steps) Actions() map[string]recovery.Action {
	return map[string]recovery.Action{StepLBC: s.LBC, StepIstio: s.Istio, StepVaultInjector: s.VaultInjector}
}

// LBC installs the AWS Load Balancer Controller with the DR cluster's
// name, region and VPC, and the service account Pod Identity binds.
func (s *Steps) LBC(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	t, err := s.target(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	name := config.AddonLoadBalancerController
	a, err := s.addon(name)
	if err != nil {
		return recovery.Result{}, err
	}
	ns := s.namespace(name, a)
	saName := defaultLBCServiceAccount
	if ref, ok := sc.Output(upstreamIAM, "lbc_service_account"); ok && ref != "" {
		saNS, n, found := strings.Cut(ref, "/")
		if !found || n == "" {
			return recovery.Result{}, recovery.Permanent(fmt.Errorf("iam.roles output lbc_service_account is %q: want namespace/name", ref))
		}
		if saNS != ns {
			return recovery.Result{}, recovery.Permanent(fmt.Errorf("iam.roles bound the controller's role to %s but addons.%s.namespace is %q; the controller would run without AWS credentials: make them agree",
				ref, name, ns))
		}
		saName = n
	}
	clusterName := s.upstream(sc, "cluster_name", t.DR.ClusterName)
	region := s.upstream(sc, "region", t.DR.Region)
	var vpc any
	if v, ok := sc.Output(upstreamCluster, "vpc_id"); ok && v != "" {
		vpc = v
	}
	vals, err := MergeValues("addons."+name+".values", a.Values, []Required{
		{Path: "clusterName", Value: clusterName, Why: "the DR cluster's name"},
		{Path: "region", Value: region, Why: "the DR region"},
		{Path: "vpcId", Value: vpc, Why: "the DR cluster's VPC from cluster.create output vpc_id"},
		{Path: "serviceAccount.create", Value: true, Why: "drbot creates the service account Pod Identity binds"},
		{Path: "serviceAccount.name", Value: saName, Why: "the service account iam.roles bound the controller's IAM role to"},
	})
	if err != nil {
		return recovery.Result{}, recovery.Permanent(err)
	}
	cfg, err := s.opts.Kube.DRConfig(ctx, sc)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("connecting to the DR cluster: %w", err)
	}
	out, err := s.install(ctx, sc, cfg, name, a, vals, nil)
	if err != nil {
		return recovery.Result{}, err
	}
	res := outputs(out)
	res["service_account"] = ns + "/" + saName
	return recovery.Result{Outputs: res}, nil
}

// Istio installs istio-base, then istiod, then the ingress gateway (in
// that order, each waited on: istiod must serve its webhook before the
// gateway's pods are injected), then applies the ingress manifests.
func (s *Steps) Istio(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	if _, err := s.target(sc); err != nil {
		return recovery.Result{}, err
	}
	names := []string{config.AddonIstioBase, config.AddonIstiod, config.AddonIstioGateway}
	type planned struct {
		name string
		a    config.Addon
		vals map[string]any
	}
	var plan []planned
	for _, name := range names {
		a, err := s.addon(name)
		if err != nil {
			return recovery.Result{}, err
		}
		vals, err := MergeValues("addons."+name+".values", a.Values, nil)
		if err != nil {
			return recovery.Result{}, recovery.Permanent(err)
		}
		plan = append(plan, planned{name, a, vals})
	}
	cfg, err := s.opts.Kube.DRConfig(ctx, sc)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("connecting to the DR cluster: %w", err)
	}
	var done []Outcome
	var gatewayNS string
	for _, p := range plan {
		var labels map[string]string
		if p.name == config.AddonIstioGateway {
			gatewayNS = s.namespace(p.name, p.a)
			labels = map[string]string{"istio-injection": "enabled"}
		}
		out, err := s.install(ctx, sc, cfg, p.name, p.a, p.vals, labels)
		if err != nil {
			return recovery.Result{}, err
		}
		done = append(done, out)
		// Journal what is in place, so the board shows it if a later chart fails.
		if err := sc.SaveOutputs(outputs(done...)); err != nil {
			return recovery.Result{}, err
		}
	}
	res := outputs(done...)
	res["gateway_service"] = gatewayNS + "/" + addons[config.AddonIstioGateway].release
	applied, err := applyManifests(ctx, cfg, gatewayNS, s.opts.IngressManifests)
	if err != nil {
		return recovery.Result{}, err
	}
	if len(applied) > 0 {
		sc.Progress("applied %d ingress objects: %s", len(applied), strings.Join(applied, ", "))
	}
	b, _ := json.Marshal(applied)
	res["ingress_objects"] = string(b)
	return recovery.Result{Outputs: res}, nil
}

// VaultInjector installs the Vault chart with only the agent injector,
// pointed at the external Vault and at the DR cluster's own auth mount.
func (s *Steps) VaultInjector(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	t, err := s.target(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	name := config.AddonVaultInjector
	a, err := s.addon(name)
	if err != nil {
		return recovery.Result{}, err
	}
	v := s.opts.Config.Vault
	mount := strings.Trim(v.TargetMountFor(t.Name), "/")
	if v.Address == "" || mount == "" {
		return recovery.Result{}, recovery.Permanent(errors.New("vault.address and vault.target_mount must be set for the Vault injector"))
	}
	vals, err := MergeValues("addons."+name+".values", a.Values, []Required{
		{Path: "global.externalVaultAddr", Value: v.Address, Why: "vault.address, the external Vault"},
		{Path: "injector.enabled", Value: true, Why: "drbot installs the injector"},
		{Path: "injector.authPath", Value: "auth/" + mount, Why: "the DR cluster's own Kubernetes auth mount (vault.target_mount)"},
		{Path: "server.enabled", Value: false, Why: "Vault runs outside the cluster"},
	})
	if err != nil {
		return recovery.Result{}, recovery.Permanent(err)
	}
	cfg, err := s.opts.Kube.DRConfig(ctx, sc)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("connecting to the DR cluster: %w", err)
	}
	out, err := s.install(ctx, sc, cfg, name, a, vals, nil)
	if err != nil {
		return recovery.Result{}, err
	}
	res := outputs(out)
	res["auth_path"] = "auth/" + mount
	return recovery.Result{Outputs: res}, nil
}

// install runs one chart with progress lines: one when an install or
// upgrade starts, one every ProgressEvery while it waits, one at the end
// ("istiod 1.24.2 installed, revision 1").
func (s *Steps) install(ctx context.Context, sc *recovery.StepContext, cfg *rest.Config, name string, a config.Addon, vals map[string]any, nsLabels map[string]string) (Outcome, error) {
	def := addons[name]
	rel := Release{
		Name:            def.release,
		Namespace:       s.namespace(name, a),
		Chart:           ChartRef{Repo: a.Repo, Name: a.Chart, Version: a.Version},
		Values:          vals,
		Wait:            true,
		Timeout:         s.opts.Timeout,
		NamespaceLabels: nsLabels,
	}
	if rel.Chart.Name == "" {
		rel.Chart.Name = def.chart
	}
	var stop func()
	rel.Starting = func(st Start) {
		verb := "installing"
		if st.Action == Upgraded {
			verb = "upgrading"
		}
		sc.Progress("%s %s %s in %s, waiting up to %s for it to roll out", verb, rel.Name, st.Version, rel.Namespace, rel.Timeout)
		stop = s.ticker(sc, rel.Name, st)
	}
	out, err := s.in.InstallOrUpgrade(ctx, cfg, rel)
	if stop != nil {
		stop()
	}
	if err != nil {
		return out, err
	}
	sc.Progress("%s %s %s, revision %d", out.Release, out.Version, out.Action, out.Revision)
	return out, nil
}

// ticker reports a long rollout every ProgressEvery until stopped; stop
// returns only after its last line, so lines never interleave.
func (s *Steps) ticker(sc *recovery.StepContext, release string, st Start) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.opts.ProgressEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				line := fmt.Sprintf("%s %s still rolling out, %s", release, st.Version, time.Since(start).Round(time.Second))
				if n := st.NotReady(); n != "" {
					line += ": " + n
				}
				sc.Progress("%s", line)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (s *Steps) target(sc *recovery.StepContext) (*config.Target, error) {
	t, ok := s.opts.Config.Target(sc.Run().Target)
	if !ok {
		return nil, recovery.Permanent(fmt.Errorf("target %q is not in the config", sc.Run().Target))
	}
	return t, nil
}

func (s *Steps) addon(name string) (config.Addon, error) {
	a, ok := s.opts.Config.Addons[name]
	if !ok {
		return a, recovery.Permanent(fmt.Errorf("addons.%s is not configured: add it with a pinned version, or Skip this step", name))
	}
	if a.Version == "" {
		return a, recovery.Permanent(fmt.Errorf("addons.%s.version is not set: pin the chart version production runs", name))
	}
	return a, nil
}

func (s *Steps) namespace(name string, a config.Addon) string {
	if a.Namespace != "" {
		return a.Namespace
	}
	return addons[name].namespace
}

// upstream reads an output of cluster.create, falling back to the config.
func (s *Steps) upstream(sc *recovery.StepContext, key, fallback string) string {
	if v, ok := sc.Output(upstreamCluster, key); ok && v != "" {
		return v
	}
	return fallback
}

// outputs are the releases as JSON plus "<release>_revision" per release,
// and release/namespace/revision/version when there is one.
func outputs(outs ...Outcome) map[string]string {
	res := map[string]string{}
	b, _ := json.Marshal(outs)
	res["releases"] = string(b)
	for _, o := range outs {
		res[o.Release+"_revision"] = strconv.Itoa(o.Revision)
	}
	if len(outs) == 1 {
		o := outs[0]
		res["release"], res["namespace"], res["revision"], res["version"] = o.Release, o.Namespace, strconv.Itoa(o.Revision), o.Version
	}
	return res
}
