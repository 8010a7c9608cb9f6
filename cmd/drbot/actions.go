package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	gitlab "gitlab.com/gitlab-org/api/client-go"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/drills"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/argocd"
	"github.com/drbot/drbot/recovery/cutover"
	"github.com/drbot/drbot/recovery/eks"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/deploywatch"
	"github.com/drbot/drbot/recovery/helm"
	"github.com/drbot/drbot/recovery/iam"
	"github.com/drbot/drbot/recovery/namespaces"
	"github.com/drbot/drbot/recovery/postmortem"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/recovery/teardown"
	"github.com/drbot/drbot/recovery/vaultauth"
	"github.com/drbot/drbot/state"
)

// awsConfigs loads drbot's AWS configuration (the default chain: Pod
// Identity, IRSA, environment, AWS_ENDPOINT_URL_<SERVICE>) once per region.
type awsConfigs struct {
	mu   sync.Mutex
	byRg map[string]aws.Config
}

func (a *awsConfigs) get(ctx context.Context, region string) (aws.Config, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.byRg[region]; ok {
		return c, nil
	}
	c, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration for %s: %w", region, err)
	}
	// CloudTrail's userAgent names the step of every call.
	if c.HTTPClient == nil {
		c.HTTPClient = awshttp.NewBuildableClient()
	}
	c.HTTPClient = recovery.StepDoer(c.HTTPClient)
	if a.byRg == nil {
		a.byRg = map[string]aws.Config{}
	}
	a.byRg[region] = c
	return c, nil
}

// wireActions puts the built integrations into the standard table; steps
// whose integration has not landed keep their "not built yet" action.
// Clients are built lazily (see lazyAction), so a far end that is not
// reachable fails its step, not drbot's start.
func wireActions(cfg *config.Config, book *recovery.Runbook, log *slog.Logger, store func() *state.Store, opts ...wireOption) (*recovery.Runbook, bot.RollbackFunc, error) {
	var wo wireOptions
	for _, o := range opts {
		o(&wo)
	}
	aws := &awsConfigs{}
	vaults := &vaultClients{cfg: cfg, log: log}
	eo := eks.Options{Config: cfg, AWS: aws.get, PollInterval: wo.every(15 * time.Second)}
	provisioner := eks.NewProvisioner(eo)
	access := eks.NewAccess(eo) // the DR cluster, for every step after cluster.access
	roles := iam.New(iam.Options{Config: cfg, AWS: aws.get})

	argo := func(ctx context.Context) (*argocd.Argo, error) {
		mgmt, err := managementConfig(cfg)
		if err != nil {
			return nil, err
		}
		return argocd.New(cfg, argocd.Options{Management: mgmt, DR: access})
	}
	cut, err := cutover.New(cfg, cutover.Options{
		Poll: wo.every(10 * time.Second), CheckInterval: wo.every(5 * time.Second),
		Clients: cutover.ClientFunc(func(ctx context.Context, elbRegion, apiRegion string) (cutover.Clients, error) {
			c, err := aws.get(ctx, elbRegion)
			if err != nil {
				return cutover.Clients{}, err
			}
			return cutover.FromAWSConfig(c).Clients(ctx, elbRegion, apiRegion)
		}),
		Targets: cutoverTargets(cfg),
		// The critical-service rule yields only to /dr override, audited.
		Override: func(_ context.Context, run state.Run) (cutover.Override, bool) {
			s := store()
			if s == nil {
				return cutover.Override{}, false
			}
			d, ok := bot.CriticalOverride(s, run.ID)
			return cutover.Override{By: d.By, Reason: d.Reason}, ok
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("cutover: %w", err)
	}

	addons, err := helm.New(helm.Options{Config: cfg, Kube: access, IngressManifests: cfg.Addons[config.AddonIstioGateway].IngressManifests})
	if err != nil {
		return nil, nil, fmt.Errorf("helm add-ons: %w", err)
	}

	gitlabClient := func() (*gitlab.Client, error) {
		tok, err := cfg.GitLab.Token.Resolve()
		if err != nil {
			return nil, fmt.Errorf("gitlab.token: %w", err)
		}
		return newGitLabClient(cfg.GitLab.URL, tok)
	}
	gitOps := func() (*gitops.GitOps, error) {
		c, err := gitlabClient()
		if err != nil {
			return nil, err
		}
		return gitops.New(cfg, gitops.FromClient(c), gitops.Options{Waves: waves(cfg), NameSuffix: cfg.GitLab.DRNameSuffix}), nil
	}

	pm := postmortemOptions(cfg, book)
	pm.Regressions = func(s *state.Store, runID string) []string { return drillRegressions(s, book, runID) }

	actions := map[string]recovery.Action{
		standard.ClusterCreate: provisioner.Create,
		standard.ClusterAccess: access.Connect,
		standard.IAMRoles:      roles.Ensure,
		standard.ArgoCDRegister: lazyAction("Argo CD registration", func(ctx context.Context) (recovery.Action, error) {
			a, err := argo(ctx)
			if err != nil {
				return nil, err
			}
			return a.Register, nil
		}),
		standard.AddonsKarpenter: lazyAction("Karpenter", func(ctx context.Context) (recovery.Action, error) {
			a, err := argo(ctx)
			if err != nil {
				return nil, err
			}
			return a.Karpenter, nil
		}),
		standard.VaultAuth: lazyAction("Vault auth", func(ctx context.Context) (recovery.Action, error) {
			vc, err := vaults.get(ctx)
			if err != nil {
				return nil, err
			}
			v, err := vaultauth.New(cfg, vc, vaultauth.Options{DR: access})
			if err != nil {
				return nil, err
			}
			return v.Action, nil
		}),
		standard.Namespaces: lazyAction("namespaces", func(ctx context.Context) (recovery.Action, error) {
			vc, err := vaults.get(ctx)
			if err != nil {
				return nil, err
			}
			n, err := namespaces.New(cfg, vc, namespaces.Options{DR: access})
			if err != nil {
				return nil, err
			}
			return n.Action, nil
		}),
		standard.Postmortem: postmortem.Action(pm),
		standard.Teardown: lazyAction("the drill teardown", func(ctx context.Context) (recovery.Action, error) {
			// Every client is optional here: a missing one leaves its part
			// listed as a leftover instead of stopping the rest.
			// Cutover: the part that puts the drill's cutover back runs in the
			// teardown step's ctx, so its calls carry teardown's User-Agent.
			opts := teardown.Options{DR: access, AWS: aws.get, Provisioner: provisioner, Cutover: cut}
			if mgmt, err := managementConfig(cfg); err == nil {
				opts.Management = mgmt
			} else {
				log.Warn("drill teardown without the management cluster", "err", err)
			}
			if c, err := gitlabClient(); err == nil {
				opts.GitLab = c
			} else {
				log.Warn("drill teardown without GitLab", "err", err)
			}
			if vc, err := vaults.get(ctx); err == nil {
				opts.Vault = vc
			} else {
				log.Warn("drill teardown without Vault", "err", err)
			}
			td, err := teardown.New(cfg, opts)
			if err != nil {
				return nil, err
			}
			return keepWhenConfigured(cfg, td.Action), nil
		}),
		standard.DeployWatch: lazyAction("the deployment watch", func(ctx context.Context) (recovery.Action, error) {
			mgmt, err := managementConfig(cfg)
			if err != nil {
				return nil, err
			}
			g, err := gitOps()
			if err != nil {
				return nil, err
			}
			return deploywatch.New(cfg, deploywatch.Options{Management: mgmt, Expected: g, Timeout: cfg.ArgoCD.DeployTimeout.Std(), Waves: waves(cfg), SaveEvery: wo.every(2 * time.Second)}).Action, nil
		}),
	}
	for _, id := range []string{standard.TemplatesGenerate, standard.GitOpsMR, standard.GitOpsMerge} {
		actions[id] = lazyAction("GitLab", func(ctx context.Context) (recovery.Action, error) {
			g, err := gitOps()
			if err != nil {
				return nil, err
			}
			return g.Actions()[id], nil
		})
	}
	for _, more := range []map[string]recovery.Action{cut.Actions(), addons.Actions()} {
		for id, a := range more {
			actions[id] = a
		}
	}
	rollback := func(ctx context.Context, runID, record string, progress func(string)) error {
		// Not a step, but its calls are named like one (and declared as standard.PartRollback).
		_, err := cut.Rollback(recovery.WithStep(ctx, standard.PartRollback), runID, record, progress)
		return err
	}
	wired, err := book.WithActions(actions)
	if err != nil {
		return nil, nil, err
	}
	// The merge gate also passes when a person merges the MR in GitLab.
	wired, err = wired.WithGateChecks(map[string]recovery.GateCheck{
		standard.GitOpsMerge: func(ctx context.Context, sc *recovery.StepContext) (string, bool, error) {
			g, err := gitOps()
			if err != nil {
				return "", false, err
			}
			return g.MergedElsewhere(ctx, sc)
		},
	})
	return wired, rollback, err
}

// wireOption adjusts wireActions for a time-scaled world of stand-ins.
type wireOption func(*wireOptions)

type wireOptions struct {
	pollScale float64
}

// withPollScale divides drbot's polling intervals (EKS 15 s, cutover 10 s
// and 5 s, the deploy watch's 2 s) by speed, for far ends that answer speed times faster than
// AWS: `make bench` models a real recovery only if drbot looks as often,
// relative to the waits, as it does against AWS.
func withPollScale(speed float64) wireOption {
	return func(o *wireOptions) { o.pollScale = speed }
}

// every is d scaled, or zero (the integration's default) when unscaled.
func (o wireOptions) every(d time.Duration) time.Duration {
	if o.pollScale <= 1 {
		return 0
	}
	return time.Duration(float64(d) / o.pollScale)
}

// cutoverTargets maps each target's cutover checks and critical services.
func cutoverTargets(cfg *config.Config) map[string]cutover.TargetOptions {
	out := map[string]cutover.TargetOptions{}
	for i := range cfg.Targets {
		t := &cfg.Targets[i]
		c := cfg.CutoverFor(t)
		opts := cutover.TargetOptions{CriticalServices: c.CriticalServices, APIGatewayRegion: c.APIGatewayRegion}
		for _, ch := range c.Checks {
			opts.Checks = append(opts.Checks, cutover.HTTPCheck{URL: ch.URL, Host: ch.Host, ExpectStatus: ch.ExpectStatus, BodyContains: ch.BodyContains})
		}
		out[t.Name] = opts
	}
	return out
}

func postmortemOptions(cfg *config.Config, book *recovery.Runbook) postmortem.Options {
	phases := map[string]time.Duration{}
	for p, d := range cfg.MTTR.Phases {
		phases[p] = d.Std()
	}
	return postmortem.Options{
		Book:         book,
		Budget:       cfg.MTTR.Budget.Std(),
		PhaseBudgets: phases,
		Describe: func(target string) string {
			t, ok := cfg.Target(target)
			if !ok {
				return ""
			}
			return fmt.Sprintf("primary %s/%s → DR cluster %s in %s (%s)", t.Primary.Region, t.Primary.Cluster, t.DR.ClusterName, t.DR.Region, t.Cluster.Provider)
		},
	}
}

// drillRegressions compares a drill that is closing with the drills before it.
func drillRegressions(s *state.Store, book *recovery.Runbook, runID string) []string {
	scores, err := drills.Scores(s, book)
	if err != nil {
		return nil
	}
	var run state.Run
	var recs map[string]state.StepRecord
	_ = s.View(func(tx *state.Tx) error {
		var err error
		if run, _, err = tx.Run(runID); err != nil {
			return err
		}
		recs, err = tx.Steps(runID)
		return err
	})
	if run.Mode != state.ModeDrill {
		return nil
	}
	current := drills.Score{Run: run, Phases: recovery.PhaseDurations(book.ForMode(run.Mode), recs)}
	return drills.Regressions(scores, current)
}

// waves maps argocd.waves to the gitops tiers.
func waves(cfg *config.Config) []gitops.Wave {
	var out []gitops.Wave
	for _, w := range cfg.ArgoCD.Waves {
		out = append(out, gitops.Wave{Name: w.Name, Selector: w.Selector, Apps: w.Apps})
	}
	return out
}

// keepWhenConfigured honours drills[].teardown: false (keep the drill's
// cluster, e.g. for an afternoon of exercises): the step says so and
// removes nothing.
func keepWhenConfigured(cfg *config.Config, teardown recovery.Action) recovery.Action {
	return func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
		for _, d := range cfg.Drills {
			if d.Name == sc.Run().Drill && !d.Teardown {
				sc.Progress("drill %s has teardown: false: everything it made is kept; tear it down by hand when done", d.Name)
				return recovery.Result{Outputs: map[string]string{"kept": "drills[].teardown is false"}}, nil
			}
		}
		return teardown(ctx, sc)
	}
}
