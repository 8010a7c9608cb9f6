package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/readiness"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/helm"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
)

// cmdCheck runs the read-only readiness checks once, prints the report,
// records it in the state when the file is free, and exits 1 when any
// check found something that would break a recovery.
func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("check", stderr)
	path := configFlag(fs)
	target := fs.String("target", "", "check only this target (default: readiness.targets, else every target)")
	timeout := fs.Duration("timeout", 5*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(*path)
	if err != nil {
		return err
	}
	targets := readiness.Targets(cfg)
	if *target != "" {
		t, ok := cfg.Target(*target)
		if !ok {
			return &exitError{code: 2, msg: fmt.Sprintf("no target %q in the config; targets are: %s", *target, targetNames(cfg))}
		}
		targets = []*config.Target{t}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep := newReadinessRunner(cfg, log).Run(ctx, targets, "cli")
	rep, note := recordReport(cfg.State.Path, rep)
	if err := readiness.WriteText(stdout, rep); err != nil {
		return err
	}
	fmt.Fprintln(stdout, note)
	if rep.Failed() {
		return &exitError{code: 1, msg: fmt.Sprintf("%d check(s) found something that would break a recovery", rep.Count(readiness.Fail))}
	}
	return nil
}

// recordReport saves the report when the state file can be opened; a
// running `drbot serve` holds it, and then the report is only printed.
func recordReport(path string, rep readiness.Report) (readiness.Report, string) {
	store, err := state.Open(path, state.Options{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		if errors.Is(err, state.ErrLocked) {
			return rep, "Not recorded: the state file is held by a running drbot (use /dr check to record a report)."
		}
		return rep, "Not recorded: " + err.Error()
	}
	defer store.Close()
	saved, err := readiness.Save(store, rep)
	if err != nil {
		return rep, "Not recorded: " + err.Error()
	}
	return saved, "Recorded in " + path + "."
}

// readinessRunner builds the checks from the config for each run; the
// clients it keeps (Vault's login) are made once.
type readinessRunner struct {
	cfg    *config.Config
	log    *slog.Logger
	vault  *vaultClients
	aws    *awsConfigs
	mu     sync.Mutex
	charts string
}

func newReadinessRunner(cfg *config.Config, log *slog.Logger) *readinessRunner {
	return &readinessRunner{cfg: cfg, log: log, vault: &vaultClients{cfg: cfg, log: log}, aws: &awsConfigs{}}
}

// Run is a readiness.RunFunc.
func (r *readinessRunner) Run(ctx context.Context, targets []*config.Target, trigger string) readiness.Report {
	return readiness.Run(ctx, r.Checks(ctx), targets, trigger)
}

// Checks are every readiness check, built against the far ends in the config.
func (r *readinessRunner) Checks(ctx context.Context) []readiness.Check {
	cfg := r.cfg
	var checks []readiness.Check

	declared := standard.Permissions()
	kc := &readiness.KubePermissions{Needs: readiness.KubeNeedsFrom(declared, cfg)}
	if rc, err := managementConfig(cfg); err != nil {
		kc.ClientErr = err
	} else if cs, err := kubernetes.NewForConfig(rc); err != nil {
		kc.ClientErr = fmt.Errorf("management cluster client: %w", err)
	} else {
		kc.Client = cs
	}
	checks = append(checks, kc)

	vc := &readiness.VaultCheck{Config: cfg, Roles: cfg.Readiness.VaultRoles, Needs: func(t *config.Target) []readiness.VaultNeed { return readiness.VaultNeedsFrom(declared, cfg, t) }}
	vc.Client, vc.ClientErr = r.vault.get(ctx)
	checks = append(checks, vc)

	gc := &readiness.GitLabCheck{Config: cfg}
	tc := &readiness.TemplatesCheck{Config: cfg}
	ic := &readiness.ImagesCheck{Config: cfg, AWS: r.aws.get}
	if tok, err := cfg.GitLab.Token.Resolve(); err != nil {
		gc.ClientErr = fmt.Errorf("gitlab.token: %w", err)
	} else if c, err := newGitLabClient(cfg.GitLab.URL, tok); err != nil {
		gc.ClientErr = fmt.Errorf("gitlab client for %s: %w", cfg.GitLab.URL, err)
	} else {
		gc.Client = c
		tc.GitOps = gitops.New(cfg, gitops.FromClient(c), gitops.Options{Waves: waves(cfg), NameSuffix: cfg.GitLab.DRNameSuffix})
		ic.GitOps = tc.GitOps // one reader and cache for both checks
	}
	tc.ClientErr, ic.ClientErr = gc.ClientErr, gc.ClientErr
	checks = append(checks, gc, tc, &readiness.TerraformCheck{}, ic,
		&readiness.CapacityCheck{Config: cfg, AWS: r.aws.get},
		&readiness.AWSPermissionsCheck{Config: cfg, AWS: r.aws.get, Statements: declared.AWSStatements()},
		&readiness.CutoverCheck{Config: cfg, AWS: r.aws.get})

	cc := &readiness.ChartsCheck{}
	cc.Steps, cc.StepsErr = helm.New(helm.Options{Config: cfg, Kube: kube.Static(nil), IngressManifests: cfg.Addons[config.AddonIstioGateway].IngressManifests,
		Installer: &helm.Installer{CacheDir: r.chartCache(), Logger: r.log}})
	checks = append(checks, cc)

	sc := &readiness.SlackCheck{Config: cfg, Scopes: &readiness.ScopeRecorder{}, Required: declared.SlackScopes()}
	if tok, err := cfg.Slack.BotToken.Resolve(); err != nil {
		checks = append(checks, failing(readiness.CheckSlack, "Slack", fmt.Errorf("slack.bot_token: %w", err), "set slack.bot_token"))
	} else {
		sc.API = slack.New(tok, slack.OptionAPIURL(cfg.Slack.APIURL), slack.OptionHTTPClient(&http.Client{Timeout: time.Minute, Transport: sc.Scopes}))
		checks = append(checks, sc)
	}
	return checks
}

// chartCache keeps located charts between runs, under the user's cache.
func (r *readinessRunner) chartCache() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.charts == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		r.charts = dir + "/drbot/helm"
	}
	return r.charts
}

// failing is a check that could not even be built: it fails with why.
func failing(id, title string, err error, fix string) readiness.Check {
	return failedCheck{readiness.ErrorResult(id, "", title, err, fix)}
}

type failedCheck struct{ res readiness.Result }

func (f failedCheck) ID() string { return f.res.Check }
func (f failedCheck) Run(context.Context, []*config.Target) []readiness.Result {
	return []readiness.Result{f.res}
}

// startReadiness connects /dr check to the checks and starts the daily
// schedule (readiness.schedule; "off" disables it). Reports are saved and
// posted through the outbox; wake is called after each is enqueued.
// clock and tick are the drill scheduler's (tests move time); zero means
// time.Now and 30 s.
func startReadiness(ctx context.Context, cfg *config.Config, store *state.Store, b *bot.Bot, wake func(), log *slog.Logger, clock func() time.Time, tick time.Duration) (stop func(), err error) {
	runner := newReadinessRunner(cfg, log)
	b.SetReadiness(runner.Run)
	if tick <= 0 {
		tick = 30 * time.Second
	}
	sched, err := readiness.NewScheduler(cfg, store, runner.Run, readiness.ScheduleOptions{Logger: log, OnEnqueue: wake, Clock: clock})
	if err != nil {
		return nil, err
	}
	if sched == nil {
		log.Info("readiness schedule is off")
		return func() {}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); sched.Run(ctx, tick) }()
	log.Info("readiness checks scheduled", "schedule", cfg.Readiness.Schedule, "timezone", cfg.Readiness.Timezone, "next", sched.Next(time.Now()))
	return func() { cancel(); <-done }, nil
}
