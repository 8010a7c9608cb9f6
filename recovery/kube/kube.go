// Package kube is how integration steps reach Kubernetes clusters: the DR
// cluster through whatever cluster.access established (an EKS token that
// refreshes itself in production, an admin config in tests), the
// management cluster through a fixed config.
package kube

import (
	"context"

	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/recovery"
)

// ConfigSource gives a REST config for the DR cluster of a step's run.
// Implementations must return a config whose credentials stay valid for
// the whole step (EKS tokens expire after 15 minutes: refresh them).
type ConfigSource interface {
	DRConfig(ctx context.Context, sc *recovery.StepContext) (*rest.Config, error)
}

// ConfigFunc adapts a function to ConfigSource.
type ConfigFunc func(ctx context.Context, sc *recovery.StepContext) (*rest.Config, error)

// DRConfig calls f.
func (f ConfigFunc) DRConfig(ctx context.Context, sc *recovery.StepContext) (*rest.Config, error) {
	return f(ctx, sc)
}

// Static returns the same config for every run (tests, and a DR cluster
// reached through a kubeconfig).
func Static(cfg *rest.Config) ConfigSource {
	return ConfigFunc(func(context.Context, *recovery.StepContext) (*rest.Config, error) { return rest.CopyConfig(cfg), nil })
}
