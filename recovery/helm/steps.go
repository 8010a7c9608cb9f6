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
	StepIstioGateway  = "addons.istio-gateway"
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

// Steps holds the actions of addons.lbc, addons.istio,
// addons.istio-gateway and addons.vault-injector; the same value serves
// every run.
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
	return map[string]recovery.Action{StepLBC: s.LBC, StepIstio: s.Istio, StepIstioGateway: s.IstioGateway, StepVaultInjector: s.VaultInjector}
}

// Outputs reads an upstream step's output (StepContext.Output in a run).
type Outputs func(stepID, key string) (string, bool)

// stepPlan is what one step wants on the DR cluster.
type stepPlan struct {
	releases []Release
	outputs  map[string]string // besides the releases'
	ingress  string            // namespace for the ingress manifests (istio only)
}

// LBC installs the AWS Load Balancer Controller with the DR cluster's
// name, region and VPC, and the service account Pod Identity binds.
func (s *Steps) LBC(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	return s.run(ctx, sc, StepLBC)
}

// Istio installs istio-base, then istiod (waited on: the services' pods
// need its injection webhook). It needs no load balancer controller, so
// it runs beside addons.lbc instead of after it.
func (s *Steps) Istio(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	return s.run(ctx, sc, StepIstio)
}

// IstioGateway installs the ingress gateway, whose pods istiod injects
// and whose LoadBalancer Service the load balancer controller turns into
// an NLB, then applies the ingress manifests. Only the cutover needs it,
// so the deployment does not wait for it.
func (s *Steps) IstioGateway(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	return s.run(ctx, sc, StepIstioGateway)
}

// VaultInjector installs the Vault chart with only the agent injector,
// pointed at the external Vault and at the DR cluster's own auth mount.
func (s *Steps) VaultInjector(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	return s.run(ctx, sc, StepVaultInjector)
}

func (s *Steps) run(ctx context.Context, sc *recovery.StepContext, stepID string) (recovery.Result, error) {
	t, ok := s.opts.Config.Target(sc.Run().Target)
	if !ok {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("target %q is not in the config", sc.Run().Target))
	}
	p, err := s.plan(stepID, t, sc.Output, false)
	if err != nil {
		return recovery.Result{}, err
	}
	cfg, err := s.opts.Kube.DRConfig(ctx, sc)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("connecting to the DR cluster: %w", err)
	}
	var done []Outcome
	for _, rel := range p.releases {
		out, err := s.install(ctx, sc, cfg, rel)
		if err != nil {
			return recovery.Result{}, err
		}
		done = append(done, out)
		if len(p.releases) > 1 {
			// Journal what is in place, so the board shows it if a later chart fails.
			if err := sc.SaveOutputs(outputs(done...)); err != nil {
				return recovery.Result{}, err
			}
		}
	}
	res := outputs(done...)
	for k, v := range p.outputs {
		res[k] = v
	}
	if stepID == StepIstioGateway {
		applied, err := applyManifests(ctx, cfg, p.ingress, s.opts.IngressManifests)
		if err != nil {
			return recovery.Result{}, err
		}
		if len(applied) > 0 {
			sc.Progress("applied %d ingress objects: %s", len(applied), strings.Join(applied, ", "))
		}
		b, _ := json.Marshal(applied)
		res["ingress_objects"] = string(b)
	}
	return recovery.Result{Outputs: res}, nil
}

// Plan says, per step id, what the steps would do on the DR cluster now,
// without changing anything: one line per release ("istiod 1.27.1 in
// istio-system: upgrade from revision 1 (values changed: pilot.autoscaleMin)").
// cluster is nil when the DR cluster does not exist yet (every release
// would be installed). up gives upstream outputs when known (nil: none);
// a value drbot takes from them at run time shows as a placeholder.
func (s *Steps) Plan(ctx context.Context, target string, cluster *rest.Config, up Outputs) (map[string][]string, error) {
	t, ok := s.opts.Config.Target(target)
	if !ok {
		return nil, fmt.Errorf("target %q is not in the config", target)
	}
	if up == nil {
		up = func(string, string) (string, bool) { return "", false }
	}
	lines := map[string][]string{}
	for _, stepID := range []string{StepLBC, StepIstio, StepIstioGateway, StepVaultInjector} {
		p, err := s.plan(stepID, t, up, true)
		if err != nil {
			lines[stepID] = []string{"cannot run: " + err.Error()}
			continue
		}
		for _, rel := range p.releases {
			lines[stepID] = append(lines[stepID], s.planLine(ctx, cluster, rel))
		}
		if stepID == StepIstioGateway && len(s.opts.IngressManifests) > 0 {
			lines[stepID] = append(lines[stepID], fmt.Sprintf("apply %d ingress objects server-side in %s", len(s.opts.IngressManifests), p.ingress))
		}
	}
	return lines, nil
}

func (s *Steps) planLine(ctx context.Context, cluster *rest.Config, rel Release) string {
	head := fmt.Sprintf("%s %s in %s", rel.Name, rel.Chart.Version, rel.Namespace)
	if cluster == nil {
		if _, err := s.in.loadChart(rel.Chart); err != nil {
			return head + ": cannot install: " + err.Error()
		}
		return head + ": install (the DR cluster does not exist yet)"
	}
	out, err := s.in.Plan(ctx, cluster, rel)
	switch {
	case err != nil:
		return head + ": cannot tell: " + err.Error()
	case out.Action == Unchanged:
		return fmt.Sprintf("%s: unchanged at revision %d", head, out.Revision)
	case out.Action == Installed:
		return head + ": install"
	case out.Action == Completed:
		return fmt.Sprintf("%s: finish revision %d (%s)", head, out.Revision, out.Reason)
	}
	return fmt.Sprintf("%s: upgrade from revision %d (%s)", head, out.Revision, out.Reason)
}

// plan works out a step's releases and their values. With planning, a
// value drbot would take from an upstream output not yet known is shown
// as a placeholder instead of refusing.
func (s *Steps) plan(stepID string, t *config.Target, up Outputs, planning bool) (stepPlan, error) {
	var p stepPlan
	upstream := func(key, fallback string) string {
		if v, ok := up(upstreamCluster, key); ok && v != "" {
			return v
		}
		return fallback
	}
	switch stepID {
	case StepLBC:
		name := config.AddonLoadBalancerController
		a, err := s.addon(name)
		if err != nil {
			return p, err
		}
		ns := s.namespace(name, a)
		saName := defaultLBCServiceAccount
		if ref, ok := up(upstreamIAM, "lbc_service_account"); ok && ref != "" {
			saNS, n, found := strings.Cut(ref, "/")
			if !found || n == "" {
				return p, recovery.Permanent(fmt.Errorf("iam.roles output lbc_service_account is %q: want namespace/name", ref))
			}
			if saNS != ns {
				return p, recovery.Permanent(fmt.Errorf("iam.roles bound the controller's role to %s but addons.%s.namespace is %q; the controller would run without AWS credentials: make them agree",
					ref, name, ns))
			}
			saName = n
		}
		var vpc any
		if v := upstream("vpc_id", ""); v != "" {
			vpc = v
		} else if _, set, _ := lookup(a.Values, "vpcId"); planning && !set {
			vpc = "(cluster.create's vpc_id)"
		}
		rel, err := s.release(name, a, []Required{
			{Path: "clusterName", Value: upstream("cluster_name", t.DR.ClusterName), Why: "the DR cluster's name"},
			{Path: "region", Value: upstream("region", t.DR.Region), Why: "the DR region"},
			{Path: "vpcId", Value: vpc, Why: "the DR cluster's VPC from cluster.create output vpc_id"},
			{Path: "serviceAccount.create", Value: true, Why: "drbot creates the service account Pod Identity binds"},
			{Path: "serviceAccount.name", Value: saName, Why: "the service account iam.roles bound the controller's IAM role to"},
		}, nil)
		if err != nil {
			return p, err
		}
		p.releases = []Release{rel}
		p.outputs = map[string]string{"service_account": ns + "/" + saName}

	case StepIstio:
		for _, name := range []string{config.AddonIstioBase, config.AddonIstiod} {
			a, err := s.addon(name)
			if err != nil {
				return p, err
			}
			rel, err := s.release(name, a, nil, nil)
			if err != nil {
				return p, err
			}
			p.releases = append(p.releases, rel)
		}

	case StepIstioGateway:
		name := config.AddonIstioGateway
		a, err := s.addon(name)
		if err != nil {
			return p, err
		}
		p.ingress = s.namespace(name, a)
		rel, err := s.release(name, a, nil, map[string]string{"istio-injection": "enabled"})
		if err != nil {
			return p, err
		}
		p.releases = []Release{rel}
		p.outputs = map[string]string{"gateway_service": p.ingress + "/" + addons[config.AddonIstioGateway].release}

	case StepVaultInjector:
		name := config.AddonVaultInjector
		a, err := s.addon(name)
		if err != nil {
			return p, err
		}
		v := s.opts.Config.Vault
		mount := strings.Trim(v.TargetMountFor(t.Name), "/")
		if v.Address == "" || mount == "" {
			return p, recovery.Permanent(errors.New("vault.address and vault.target_mount must be set for the Vault injector"))
		}
		rel, err := s.release(name, a, []Required{
			{Path: "global.externalVaultAddr", Value: v.Address, Why: "vault.address, the external Vault"},
			{Path: "injector.enabled", Value: true, Why: "drbot installs the injector"},
			{Path: "injector.authPath", Value: "auth/" + mount, Why: "the DR cluster's own Kubernetes auth mount (vault.target_mount)"},
			{Path: "server.enabled", Value: false, Why: "Vault runs outside the cluster"},
		}, nil)
		if err != nil {
			return p, err
		}
		p.releases = []Release{rel}
		p.outputs = map[string]string{"auth_path": "auth/" + mount}

	default:
		return p, fmt.Errorf("no Helm add-on step %q", stepID)
	}
	return p, nil
}

// release is the Release of one config add-on, with the required values
// merged over its config values.
func (s *Steps) release(name string, a config.Addon, required []Required, nsLabels map[string]string) (Release, error) {
	vals, err := MergeValues("addons."+name+".values", a.Values, required)
	if err != nil {
		return Release{}, recovery.Permanent(err)
	}
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
	return rel, nil
}

// install runs one chart with progress lines: one when an install or
// upgrade starts, one every ProgressEvery while it waits, one at the end
// ("istiod 1.24.2 installed, revision 1").
func (s *Steps) install(ctx context.Context, sc *recovery.StepContext, cfg *rest.Config, rel Release) (Outcome, error) {
	var stop func()
	rel.Starting = func(st Start) {
		verb := "installing"
		if st.Action == Upgraded {
			verb = "upgrading"
		}
		why := ""
		if st.Action == Upgraded && st.Reason != "" {
			why = " (" + st.Reason + ")"
		}
		sc.Progress("%s %s %s in %s%s, waiting up to %s for it to roll out", verb, rel.Name, st.Version, rel.Namespace, why, rel.Timeout)
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
