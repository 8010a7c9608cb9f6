// Package argocd implements two bootstrap steps that go through the
// surviving Argo CD in the management cluster:
//
//   - argocd.register (Argo.Register): the DR cluster's cluster Secret in
//     Argo CD's namespace (label argocd.argoproj.io/secret-type=cluster,
//     name, server and an EKS config with awsAuthConfig and caData);
//   - addons.karpenter (Argo.Karpenter): an Argo CD Application for the
//     Karpenter chart with the DR cluster as destination, watched until
//     Synced and Healthy, then the NodePool and EC2NodeClass from the config
//     templates, server-side applied to the DR cluster.
//
// Both observe before acting and use server-side apply with the field
// manager "drbot", so a re-run converges without duplicates.
package argocd

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
)

const (
	// FieldManager owns what drbot applies.
	FieldManager = "drbot"
	// SecretTypeLabel selects Argo CD's cluster Secrets (value "cluster").
	SecretTypeLabel = "argocd.argoproj.io/secret-type"
	// ManagedByLabel marks objects drbot created.
	ManagedByLabel = "app.kubernetes.io/managed-by"

	// Upstream steps whose outputs are read.
	stepClusterAccess = "cluster.access"
	stepIAMRoles      = "iam.roles"
)

// ApplicationGVR is the resource of Argo CD Applications.
var ApplicationGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

// Options configure the steps.
type Options struct {
	// Management is the cluster running Argo CD (cluster Secrets and
	// Applications). Required.
	Management *rest.Config
	// DR reaches the DR cluster, for the NodePool and EC2NodeClass. Required
	// by Karpenter.
	DR kube.ConfigSource
	// WaitTimeout bounds the wait for the Karpenter Application to be
	// Synced and Healthy; default 10 minutes.
	WaitTimeout time.Duration
	// DegradedTimeout is how long the Application may stay Degraded (or its
	// sync Failed, or carry an error condition) before the step fails;
	// default 3 minutes. Argo CD retries syncs and pods restart, so a short
	// bad spell is waited out.
	DegradedTimeout time.Duration
	// ProgressEvery paces the progress lines while waiting; default 30s.
	ProgressEvery time.Duration
}

// Argo holds the management cluster clients; one value serves every run.
type Argo struct {
	cfg  *config.Config
	opts Options
	mgmt kubernetes.Interface
	dyn  dynamic.Interface
}

// New builds the management cluster clients.
func New(cfg *config.Config, opts Options) (*Argo, error) {
	if cfg == nil {
		return nil, errors.New("argocd: config is required")
	}
	if opts.Management == nil {
		return nil, errors.New("argocd: Options.Management (the Argo CD cluster's REST config) is required")
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 10 * time.Minute
	}
	if opts.DegradedTimeout <= 0 {
		opts.DegradedTimeout = 3 * time.Minute
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 30 * time.Second
	}
	rc := rest.CopyConfig(opts.Management)
	mgmt, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building management cluster client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("building management cluster dynamic client: %w", err)
	}
	return &Argo{cfg: cfg, opts: opts, mgmt: mgmt, dyn: dyn}, nil
}

// SecretName is the name of the cluster Secret of a DR cluster.
func SecretName(cluster string) string { return "cluster-" + cluster }

// ApplicationName is the name of the Karpenter Application of a DR cluster.
func ApplicationName(cluster string) string { return "karpenter-" + cluster }

func (a *Argo) namespace() string {
	if a.cfg.ArgoCD.Namespace == "" {
		return "argocd"
	}
	return a.cfg.ArgoCD.Namespace
}

func (a *Argo) target(sc *recovery.StepContext) (*config.Target, error) {
	name := sc.Run().Target
	t, ok := a.cfg.Target(name)
	if !ok {
		return nil, recovery.Permanent(fmt.Errorf("target %q is not in the config: add it under targets", name))
	}
	return t, nil
}

// clusterAccess reads the endpoint and the base64 CA that cluster.access
// journaled. A PEM CA is accepted too and base64-encoded.
func clusterAccess(sc *recovery.StepContext) (endpoint, caB64 string, err error) {
	endpoint, ok := sc.Output(stepClusterAccess, "endpoint")
	if !ok || endpoint == "" {
		return "", "", recovery.Permanent(fmt.Errorf("%s left no endpoint output: run it again", stepClusterAccess))
	}
	ca, ok := sc.Output(stepClusterAccess, "ca_data")
	if !ok || strings.TrimSpace(ca) == "" {
		return "", "", recovery.Permanent(fmt.Errorf("%s left no ca_data output: run it again", stepClusterAccess))
	}
	ca = strings.TrimSpace(ca)
	if strings.HasPrefix(ca, "-----BEGIN") {
		return endpoint, base64.StdEncoding.EncodeToString([]byte(ca + "\n")), nil
	}
	if _, err := base64.StdEncoding.DecodeString(ca); err != nil {
		return "", "", recovery.Permanent(fmt.Errorf("%s output ca_data is neither base64 nor PEM: %w", stepClusterAccess, err))
	}
	return endpoint, ca, nil
}

// classify marks Kubernetes API errors with their retry class. Errors it
// cannot place (network errors) are left to recovery.IsRetryable.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsConflict(err),
		apierrors.IsUnexpectedServerError(err),
		// EKS access entries take a few seconds to reach the API server.
		apierrors.IsUnauthorized(err):
		return recovery.Retryable(err)
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err),
		apierrors.IsNotFound(err), apierrors.IsMethodNotSupported(err):
		return recovery.Permanent(err)
	}
	return err
}
