// Package lbcfake is a small stand-in for the AWS Load Balancer Controller: it gives every Service of type
// LoadBalancer a network load balancer, and every ALB Ingress (or Ingress group) an application load balancer,
// through the real ELBv2 API (in tests, aws-sdk-go-v2 against test/awsfake), tagged as the real controller tags
// them, and writes the load balancer's DNS name into the object's status.loadBalancer.ingress[0].hostname.
//
//	ctrl, err := lbcfake.Start(ctx, lbcfake.Options{
//		Cluster:     dr.AdminConfig(),
//		ClusterName: "dr-eks",
//		Region:      "eu-west-1",
//		LBs:         elasticloadbalancingv2.NewFromConfig(aws.Config(...)),
//	})
//	defer ctrl.Stop()
//
// Like the real controller it looks load balancers up by their tags before creating one, so a restarted
// controller adopts what it made before; it holds a finalizer on each object and deletes the load balancer
// when the object (or the last member of an Ingress group) goes away. It creates listeners but no target
// groups or security groups: nothing routes traffic.
package lbcfake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// LoadBalancers is the part of the ELBv2 API the controller calls; *elasticloadbalancingv2.Client has it.
type LoadBalancers interface {
	DescribeLoadBalancers(ctx context.Context, in *elbv2.DescribeLoadBalancersInput, optFns ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error)
	DescribeTags(ctx context.Context, in *elbv2.DescribeTagsInput, optFns ...func(*elbv2.Options)) (*elbv2.DescribeTagsOutput, error)
	CreateLoadBalancer(ctx context.Context, in *elbv2.CreateLoadBalancerInput, optFns ...func(*elbv2.Options)) (*elbv2.CreateLoadBalancerOutput, error)
	DeleteLoadBalancer(ctx context.Context, in *elbv2.DeleteLoadBalancerInput, optFns ...func(*elbv2.Options)) (*elbv2.DeleteLoadBalancerOutput, error)
	DescribeListeners(ctx context.Context, in *elbv2.DescribeListenersInput, optFns ...func(*elbv2.Options)) (*elbv2.DescribeListenersOutput, error)
	CreateListener(ctx context.Context, in *elbv2.CreateListenerInput, optFns ...func(*elbv2.Options)) (*elbv2.CreateListenerOutput, error)
}

// Options configure the controller.
type Options struct {
	// Cluster is the cluster whose Services and Ingresses it serves. Required.
	Cluster *rest.Config
	// ClusterName goes into the elbv2.k8s.aws/cluster tag and the load balancer names. Required.
	ClusterName string
	// Region, when set, is the region of every ELBv2 call (otherwise the client's own).
	Region string
	// LBs is the ELBv2 API. Required.
	LBs LoadBalancers
	// Poll is how often Services and Ingresses are listed; default 500ms.
	Poll time.Duration
	// Resync is how often load balancers are read back from AWS even when nothing changed (so one deleted
	// behind the controller's back is made again); default 30s.
	Resync time.Duration
	// Logger receives what the controller does; nil discards it.
	Logger *slog.Logger
}

// Controller is a running stand-in. Stop it with Stop or by cancelling the context given to Start.
type Controller struct {
	opts   Options
	log    *slog.Logger
	cs     kubernetes.Interface
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	lastErr error

	// Touched only by the run goroutine.
	lbs      map[string]*lbInfo // by stack key; nil until read from AWS
	loadedAt time.Time
}

// Start checks the options and starts the control loop; the first pass runs right away.
func Start(ctx context.Context, opts Options) (*Controller, error) {
	switch {
	case opts.Cluster == nil:
		return nil, errors.New("lbcfake: Options.Cluster is required")
	case opts.ClusterName == "":
		return nil, errors.New("lbcfake: Options.ClusterName is required")
	case opts.LBs == nil:
		return nil, errors.New("lbcfake: Options.LBs is required")
	}
	if opts.Poll <= 0 {
		opts.Poll = 500 * time.Millisecond
	}
	if opts.Resync <= 0 {
		opts.Resync = 30 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg := rest.CopyConfig(opts.Cluster)
	cfg.QPS, cfg.Burst = 100, 200
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building clientset: %w", err)
	}
	c := &Controller{
		opts: opts,
		log:  log.With("component", "lbcfake", "cluster", opts.ClusterName),
		cs:   cs,
		done: make(chan struct{}),
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

// Err is the error of the last pass, nil when it went through.
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

func (c *Controller) region(o *elbv2.Options) {
	if c.opts.Region != "" {
		o.Region = c.opts.Region
	}
}
