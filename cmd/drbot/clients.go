package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	gitlab "gitlab.com/gitlab-org/api/client-go"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// Clients are built from config here and nowhere else, lazily: drbot
// starts (and answers in Slack) even when a far end is not reachable yet,
// and a step that needs it fails with what to fix.

// lazyAction builds an integration's action on first use; a build error
// fails the step permanently (Retry builds again), naming what to fix.
func lazyAction(what string, build func(ctx context.Context) (recovery.Action, error)) recovery.Action {
	var mu sync.Mutex
	var act recovery.Action
	return func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
		mu.Lock()
		if act == nil {
			a, err := build(ctx)
			if err != nil {
				mu.Unlock()
				return recovery.Result{}, recovery.Permanent(fmt.Errorf("setting up %s: %w", what, err))
			}
			act = a
		}
		a := act
		mu.Unlock()
		return a(ctx, sc)
	}
}

// managementConfig is the management cluster (where Argo CD runs): a
// kubeconfig file from config, or the in-cluster service account.
func managementConfig(cfg *config.Config) (*rest.Config, error) {
	if path := cfg.ArgoCD.ManagementKubeconfig; path != "" {
		c, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			return nil, fmt.Errorf("reading argocd.management_kubeconfig %q: %w", path, err)
		}
		c.UserAgent = "drbot"
		c.Wrap(recovery.StepUserAgent)
		return c, nil
	}
	c, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("argocd.management_kubeconfig is empty and drbot is not running inside a cluster (%v): set the kubeconfig path", err)
	}
	c.UserAgent = "drbot"
	c.Wrap(recovery.StepUserAgent) // the audit log names the step of every call
	return c, nil
}

// newGitLabClient is drbot's GitLab client: its User-Agent says drbot and
// the step making the call, so GitLab's log attributes it.
func newGitLabClient(url, token string) (*gitlab.Client, error) {
	c, err := gitlab.NewClient(token, gitlab.WithBaseURL(url+"/api/v4"),
		gitlab.WithHTTPClient(&http.Client{Transport: recovery.StepUserAgent(http.DefaultTransport)}))
	if err != nil {
		return nil, err
	}
	c.UserAgent = "drbot"
	return c, nil
}
