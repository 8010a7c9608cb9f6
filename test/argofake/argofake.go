// Package argofake is a small stand-in for the Argo CD application controller, doing what Argo CD does in
// drbot's flow against real Kubernetes API servers (test/kubeenv):
//
//   - it polls a GitLab branch (the real GitLab client) for Application manifests under an app-of-apps path and
//     applies them into the management cluster's Argo CD namespace, pruning the ones removed from Git;
//   - it reads the cluster Secrets (label argocd.argoproj.io/secret-type=cluster) to find destinations;
//   - for every Application it creates, in the destination cluster, a Deployment named after the Application
//     (image, replicas and resource requests from the Helm values), and keeps status.sync, status.health,
//     status.operationState and status.conditions true to that cluster, with Argo CD's wording.
//
// It does not render charts: one Deployment stands for whatever the chart would have made. See Options for what
// is faithful to Argo CD and what is simplified.
//
//	ctrl, err := argofake.Start(ctx, argofake.Options{
//		Management: mgmt.AdminConfig(),
//		GitLab:     argofake.GitLab{URL: gl.URL(), Token: "glpat-test", Project: "platform/apps", Branch: "main", AppOfAppsPath: "dr"},
//		DestinationConfig: func(secret, server string, cfg argofake.ClusterConfig) (*rest.Config, error) { return dr.AdminConfig(), nil },
//	})
//	defer ctrl.Stop()
package argofake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// ApplicationGVR is the resource of Argo CD Applications.
var ApplicationGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

const (
	// ManagedLabel marks Applications the controller applied from Git; only those are pruned.
	ManagedLabel = "argofake/managed"
	// RevisionAnnotation holds the Git commit an Application was applied from.
	RevisionAnnotation = "argofake/revision"
	// InstanceLabel is Argo CD's default tracking label, set on everything synced into a destination.
	InstanceLabel = "app.kubernetes.io/instance"
	// ResourcesFinalizer makes deleting an Application delete what it deployed, as in Argo CD.
	ResourcesFinalizer = "resources-finalizer.argocd.argoproj.io"
	// DefaultImage runs when the Helm values name no image.
	DefaultImage = "registry.k8s.io/pause:3.10"

	inClusterServer = "https://kubernetes.default.svc"
	inClusterName   = "in-cluster"
)

// GitLab is where the app-of-apps manifests live.
type GitLab struct {
	// URL is the GitLab base URL, with or without the /api/v4 suffix.
	URL   string
	Token string
	// Project is the project's id or its path ("group/name").
	Project string
	Branch  string
	// AppOfAppsPath is the directory whose *.yaml / *.yml files (recursively) hold the Applications; "" is the root.
	AppOfAppsPath string
}

// Options configure the controller.
type Options struct {
	// Management is the cluster that holds Argo CD: Applications and cluster Secrets. Required.
	Management *rest.Config
	// Namespace is Argo CD's namespace; default "argocd".
	Namespace string
	// GitLab is polled when GitLab.URL is set; without it only Applications created directly are reconciled.
	GitLab GitLab
	// Poll is how often Git is polled and Applications are reconciled; default 1s (Argo CD polls Git every 3 minutes).
	Poll time.Duration
	// ProgressDeadline is the progressDeadlineSeconds of the Deployments it creates; default 20s. A Deployment that
	// makes no progress for this long gets the ProgressDeadlineExceeded condition from the real deployment
	// controller, which Argo CD's health check reports as Degraded (unschedulable pods, for example).
	ProgressDeadline time.Duration
	// DestinationConfig builds the client config of a registered cluster whose Secret uses awsAuthConfig or
	// execProviderConfig. Real Argo CD runs `argocd-k8s-auth aws` (aws-iam-authenticator) there; a test maps the
	// Secret to a kubeenv cluster, and may check cfg.AWSAuthConfig and cfg.TLSClientConfig.CAData on the way.
	// Secrets with a bearer token (and TLS settings) are used directly.
	DestinationConfig func(secretName, server string, cfg ClusterConfig) (*rest.Config, error)
	// Logger receives what the controller does; nil discards it. Secrets are never logged.
	Logger *slog.Logger
}

// Controller is a running stand-in. Stop it with Stop or by cancelling the context given to Start.
type Controller struct {
	opts   Options
	log    *slog.Logger
	mgmt   kubernetes.Interface
	dyn    dynamic.Interface
	git    *gitlab.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	revision string // last Git commit applied
	lastErr  error

	// Touched only by the run goroutine.
	dests map[string]*destination // by cache key of the cluster Secret
}

// Start checks the options, builds the clients and starts the control loop; the first pass runs right away.
func Start(ctx context.Context, opts Options) (*Controller, error) {
	if opts.Management == nil {
		return nil, errors.New("argofake: Options.Management is required")
	}
	if opts.Namespace == "" {
		opts.Namespace = "argocd"
	}
	if opts.Poll <= 0 {
		opts.Poll = time.Second
	}
	if opts.ProgressDeadline <= 0 {
		opts.ProgressDeadline = 20 * time.Second
	}
	if opts.ProgressDeadline < time.Second {
		opts.ProgressDeadline = time.Second // progressDeadlineSeconds counts whole seconds
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := rest.CopyConfig(opts.Management)
	cfg.QPS, cfg.Burst = 100, 200
	// Argo CD's own finalizer name draws a "prefer a domain-qualified finalizer" warning on every write.
	cfg.WarningHandler = rest.NoWarnings{}
	mgmt, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building management clientset: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building management dynamic client: %w", err)
	}
	c := &Controller{
		opts:  opts,
		log:   log.With("component", "argofake"),
		mgmt:  mgmt,
		dyn:   dyn,
		done:  make(chan struct{}),
		dests: map[string]*destination{},
	}
	if opts.GitLab.URL != "" {
		if opts.GitLab.Project == "" || opts.GitLab.Branch == "" {
			return nil, errors.New("argofake: Options.GitLab needs Project and Branch with URL")
		}
		c.git, err = newGitLabClient(opts.GitLab)
		if err != nil {
			return nil, err
		}
	}
	ctx, c.cancel = context.WithCancel(ctx)
	go c.run(ctx)
	return c, nil
}

// Stop ends the control loop and waits for it. It is safe to call more than once.
func (c *Controller) Stop() {
	c.cancel()
	<-c.done
}

// Revision is the last Git commit whose Applications were applied ("" before the first).
func (c *Controller) Revision() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.revision
}

// Err is the error of the last pass, nil when it went through (per-Application sync failures are reported in
// the Applications' status, not here).
func (c *Controller) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *Controller) run(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(c.opts.Poll)
	defer tick.Stop()
	for {
		err := c.pass(ctx)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		// A failure that repeats every pass is logged once.
		if err != nil && (c.lastErr == nil || c.lastErr.Error() != err.Error()) {
			c.log.Warn("pass", "err", err)
		}
		c.lastErr = err
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// pass is one round: Git first, so Applications committed a moment ago are reconciled in the same round.
func (c *Controller) pass(ctx context.Context) error {
	var errs []error
	if c.git != nil {
		if err := c.syncGit(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.reconcileAll(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
