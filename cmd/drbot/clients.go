package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
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

// serviceAccountTokenPath is where Kubernetes mounts the pod's token.
const serviceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// vaultClients makes one Vault client per process and keeps its token
// fresh: a kubernetes login is repeated at half its TTL.
type vaultClients struct {
	cfg *config.Config
	log *slog.Logger

	mu     sync.Mutex
	client *vault.Client
}

func (v *vaultClients) get(ctx context.Context) (*vault.Client, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.client != nil {
		return v.client, nil
	}
	vc := vault.DefaultConfig()
	vc.Address = v.cfg.Vault.Address
	vc.HttpClient.Transport = recovery.StepUserAgent(vc.HttpClient.Transport) // Vault's log names the step
	c, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", v.cfg.Vault.Address, err)
	}
	method := "token"
	if v.cfg.Vault.Auth != nil {
		method = v.cfg.Vault.Auth.Method
	}
	switch method {
	case "token":
		tok, err := v.cfg.Vault.Token.Resolve()
		if err != nil {
			return nil, fmt.Errorf("vault.token: %w", err)
		}
		c.SetToken(tok)
	case "kubernetes":
		ttl, err := v.kubernetesLogin(ctx, c)
		if err != nil {
			return nil, err
		}
		go v.refresh(c, ttl)
	default:
		return nil, fmt.Errorf("vault.auth.method %q is not supported yet: use token or kubernetes", method)
	}
	v.client = c
	return c, nil
}

func (v *vaultClients) kubernetesLogin(ctx context.Context, c *vault.Client) (time.Duration, error) {
	jwt, err := os.ReadFile(serviceAccountTokenPath)
	if err != nil {
		return 0, fmt.Errorf("vault kubernetes login needs the pod's service account token at %s: %w", serviceAccountTokenPath, err)
	}
	mount := v.cfg.Vault.Auth.Mount
	if mount == "" {
		mount = "kubernetes"
	}
	secret, err := c.Logical().WriteWithContext(ctx, "auth/"+strings.Trim(mount, "/")+"/login", map[string]any{"role": v.cfg.Vault.Auth.Role, "jwt": strings.TrimSpace(string(jwt))})
	if err != nil {
		return 0, fmt.Errorf("vault login at auth/%s with role %q: %w", mount, v.cfg.Vault.Auth.Role, err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return 0, errors.New("vault login returned no token")
	}
	c.SetToken(secret.Auth.ClientToken)
	return time.Duration(secret.Auth.LeaseDuration) * time.Second, nil
}

func (v *vaultClients) refresh(c *vault.Client, ttl time.Duration) {
	for {
		wait := max(ttl/2, time.Minute)
		time.Sleep(wait)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		next, err := v.kubernetesLogin(ctx, c)
		cancel()
		if err != nil {
			v.log.Error("renewing the vault login; retrying in a minute", "err", err)
			ttl = 2 * time.Minute
			continue
		}
		ttl = next
	}
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
