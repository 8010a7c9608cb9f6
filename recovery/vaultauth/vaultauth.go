// Package vaultauth implements the vault.auth step: a Kubernetes auth
// mount for the DR cluster (auth/<target mount>), configured with the DR API
// server's host and CA and the JWT of a token-reviewer service account that
// drbot creates in the DR cluster (bound to system:auth-delegator), and every
// role of the primary cluster's mount copied to it.
//
// The Vault token drbot uses needs at least this policy (Vault globs are
// prefixes; the target mount defaults to k8s-dr-<target>, the source mount
// is vault.source_mount, here "kubernetes"):
//
//	path "sys/auth"                { capabilities = ["read"] }
//	path "sys/auth/k8s-dr-*"       { capabilities = ["create", "update", "sudo"] }
//	path "auth/k8s-dr-*"           { capabilities = ["read", "create", "update"] }
//	path "auth/kubernetes/role/*"  { capabilities = ["read", "list"] }
package vaultauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	vault "github.com/hashicorp/vault/api"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
)

const stepClusterAccess = "cluster.access"

// Options configure the step.
type Options struct {
	// DR reaches the DR cluster. Required.
	DR kube.ConfigSource
	// ReviewerNamespace and ReviewerName name the token-reviewer service
	// account (and its token Secret and ClusterRoleBinding); defaults
	// kube-system and drbot-token-reviewer.
	ReviewerNamespace string
	ReviewerName      string
	// TokenTimeout bounds the wait for the token controller to fill the
	// service account token Secret; default 2 minutes.
	TokenTimeout time.Duration
	// Concurrency is how many roles are copied at once; default 8.
	Concurrency int
	// ProgressEvery paces progress lines while copying; default 30s.
	ProgressEvery time.Duration
}

// Auth is the vault.auth action's state; one value serves every run.
type Auth struct {
	cfg  *config.Config
	vc   *vault.Client
	opts Options
}

// New checks the options. vc is a Vault client already carrying drbot's token.
func New(cfg *config.Config, vc *vault.Client, opts Options) (*Auth, error) {
	switch {
	case cfg == nil:
		return nil, errors.New("vaultauth: config is required")
	case vc == nil:
		return nil, errors.New("vaultauth: a Vault client is required")
	case opts.DR == nil:
		return nil, errors.New("vaultauth: Options.DR (the DR cluster's config source) is required")
	}
	if opts.ReviewerNamespace == "" {
		opts.ReviewerNamespace = "kube-system"
	}
	if opts.ReviewerName == "" {
		opts.ReviewerName = "drbot-token-reviewer"
	}
	if opts.TokenTimeout <= 0 {
		opts.TokenTimeout = 2 * time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 30 * time.Second
	}
	return &Auth{cfg: cfg, vc: vc, opts: opts}, nil
}

// Action is the vault.auth step.
func (a *Auth) Action(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	target := sc.Run().Target
	t, ok := a.cfg.Target(target)
	if !ok {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("target %q is not in the config: add it under targets", target))
	}
	mount := strings.Trim(a.cfg.Vault.TargetMountFor(target), "/")
	source := strings.Trim(a.cfg.Vault.SourceMount, "/")
	if mount == "" || source == "" {
		return recovery.Result{}, recovery.Permanent(errors.New("vault.source_mount and vault.target_mount must both be set"))
	}
	if mount == source {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("vault.target_mount resolves to %q, the primary cluster's own mount: give the DR cluster its own", mount))
	}
	endpoint, caPEM, err := clusterAccess(sc)
	if err != nil {
		return recovery.Result{}, err
	}

	enabled, err := a.ensureMount(ctx, mount, source, t.DR.ClusterName)
	if err != nil {
		return recovery.Result{}, err
	}
	if enabled {
		sc.Progress("enabled Kubernetes auth at auth/%s", mount)
	}

	jwt, err := a.reviewerToken(ctx, sc)
	if err != nil {
		return recovery.Result{}, err
	}
	err = a.write(ctx, "auth/"+mount+"/config", map[string]any{
		"kubernetes_host":    endpoint,
		"kubernetes_ca_cert": caPEM,
		"token_reviewer_jwt": jwt,
	})
	if err != nil {
		return recovery.Result{}, err
	}
	reviewer := a.opts.ReviewerNamespace + "/" + a.opts.ReviewerName
	sc.Progress("auth/%s checks tokens against %s as %s", mount, endpoint, reviewer)

	n, err := a.copyRoles(ctx, sc, source, mount)
	if err != nil {
		return recovery.Result{}, err
	}
	sc.Progress("copied %d %s, %d already present", n.copied, plural(n.copied, "role", "roles"), n.present)
	return recovery.Result{Outputs: map[string]string{
		"mount":         mount,
		"source_mount":  source,
		"roles_total":   fmt.Sprint(n.copied + n.present),
		"roles_copied":  fmt.Sprint(n.copied),
		"roles_present": fmt.Sprint(n.present),
		"reviewer":      reviewer,
	}}, nil
}

// ensureMount enables the kubernetes auth method at mount unless it is
// there, and checks that the source mount exists. It reports whether it
// enabled the mount.
func (a *Auth) ensureMount(ctx context.Context, mount, source, cluster string) (bool, error) {
	mounts, err := a.vc.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return false, classifyVault(fmt.Errorf("listing Vault auth mounts: %w", err))
	}
	if _, ok := mounts[source+"/"]; !ok {
		return false, recovery.Permanent(fmt.Errorf("vault has no auth mount %q to copy roles from: check vault.source_mount", source))
	}
	if m, ok := mounts[mount+"/"]; ok {
		if m.Type != "kubernetes" {
			return false, recovery.Permanent(fmt.Errorf("auth/%s is a %s auth method, not kubernetes: choose another vault.target_mount or disable it", mount, m.Type))
		}
		return false, nil
	}
	err = a.vc.Sys().EnableAuthWithOptionsWithContext(ctx, mount, &vault.EnableAuthOptions{
		Type:        "kubernetes",
		Description: "DR cluster " + cluster + " (drbot)",
	})
	if err != nil {
		return false, classifyVault(fmt.Errorf("enabling kubernetes auth at auth/%s: %w", mount, err))
	}
	return true, nil
}

// write writes path. Errors name the path only: data may hold a token.
func (a *Auth) write(ctx context.Context, path string, data map[string]any) error {
	if _, err := a.vc.Logical().WriteWithContext(ctx, path, data); err != nil {
		return classifyVault(fmt.Errorf("writing %s: %w", path, err))
	}
	return nil
}

// clusterAccess reads the endpoint and the CA (base64 as DescribeCluster
// gives it, or PEM) and returns the CA as newline-terminated PEM.
func clusterAccess(sc *recovery.StepContext) (endpoint, caPEM string, err error) {
	endpoint, ok := sc.Output(stepClusterAccess, "endpoint")
	if !ok || endpoint == "" {
		return "", "", recovery.Permanent(fmt.Errorf("%s left no endpoint output: run it again", stepClusterAccess))
	}
	ca, _ := sc.Output(stepClusterAccess, "ca_data")
	ca = strings.TrimSpace(ca)
	if ca == "" {
		return "", "", recovery.Permanent(fmt.Errorf("%s left no ca_data output: run it again", stepClusterAccess))
	}
	if !strings.HasPrefix(ca, "-----BEGIN") {
		raw, err := base64.StdEncoding.DecodeString(ca)
		if err != nil {
			return "", "", recovery.Permanent(fmt.Errorf("%s output ca_data is neither base64 nor PEM: %w", stepClusterAccess, err))
		}
		ca = strings.TrimSpace(string(raw))
	}
	return endpoint, ca + "\n", nil
}

// classifyVault marks Vault errors: throttling and server errors (and an
// unreachable Vault) are retryable, other answers permanent.
func classifyVault(err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		switch {
		case re.StatusCode == 429 || re.StatusCode >= 500:
			return recovery.Retryable(err)
		case re.StatusCode == 403:
			return recovery.Permanent(fmt.Errorf("%w (drbot's Vault token lacks a capability: see the policy in package vaultauth's documentation)", err))
		}
		return recovery.Permanent(err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return recovery.Retryable(err)
	}
	return err
}

// classifyKube marks Kubernetes API errors with their retry class.
func classifyKube(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsConflict(err),
		apierrors.IsUnexpectedServerError(err), apierrors.IsUnauthorized(err):
		return recovery.Retryable(err)
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsNotFound(err):
		return recovery.Permanent(err)
	}
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
