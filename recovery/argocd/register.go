package argocd

import (
	"context"
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	"github.com/drbot/drbot/recovery"
)

// ClusterConfig is the `config` JSON of an Argo CD cluster Secret for EKS
// (argo-cd docs/operator-manual/declarative-setup.md, EKS section).
type ClusterConfig struct {
	AWSAuthConfig   AWSAuthConfig   `json:"awsAuthConfig"`
	TLSClientConfig TLSClientConfig `json:"tlsClientConfig"`
}

// AWSAuthConfig makes Argo CD get an EKS token for ClusterName, as RoleARN when set.
type AWSAuthConfig struct {
	ClusterName string `json:"clusterName"`
	RoleARN     string `json:"roleARN,omitempty"`
}

// TLSClientConfig carries the cluster's CA, base64 as DescribeCluster gives it.
type TLSClientConfig struct {
	Insecure bool   `json:"insecure"`
	CAData   string `json:"caData"`
}

// Register is the argocd.register action: it creates or updates the DR
// cluster's Secret in Argo CD's namespace with server-side apply.
func (a *Argo) Register(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	t, err := a.target(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	endpoint, caB64, err := clusterAccess(sc)
	if err != nil {
		return recovery.Result{}, err
	}
	cluster := t.DR.ClusterName
	ns, name := a.namespace(), SecretName(cluster)
	raw, err := json.Marshal(ClusterConfig{
		AWSAuthConfig:   AWSAuthConfig{ClusterName: cluster, RoleARN: a.cfg.ArgoCD.RoleARN},
		TLSClientConfig: TLSClientConfig{CAData: caB64},
	})
	if err != nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("encoding cluster config: %w", err))
	}

	secrets := a.mgmt.CoreV1().Secrets(ns)
	// Argo CD resolves destinations by name; a second Secret with this name
	// would make every Application aimed at it fail.
	others, err := secrets.List(ctx, metav1.ListOptions{LabelSelector: SecretTypeLabel + "=cluster"})
	if err != nil {
		return recovery.Result{}, classify(fmt.Errorf("listing Argo CD cluster secrets in namespace %q: %w", ns, err))
	}
	var rvBefore string
	for _, s := range others.Items {
		if s.Name == name {
			rvBefore = s.ResourceVersion
			continue
		}
		if string(s.Data["name"]) == cluster {
			return recovery.Result{}, recovery.Permanent(fmt.Errorf(
				"cluster name %q is already registered in Argo CD by secret %s/%s (server %s): delete or rename it, then Retry",
				cluster, ns, s.Name, s.Data["server"]))
		}
	}

	apply := corev1ac.Secret(name, ns).
		WithLabels(map[string]string{SecretTypeLabel: "cluster", ManagedByLabel: FieldManager}).
		WithData(map[string][]byte{"name": []byte(cluster), "server": []byte(endpoint), "config": raw})
	got, err := secrets.Apply(ctx, apply, metav1.ApplyOptions{FieldManager: FieldManager, Force: true})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return recovery.Result{}, recovery.Permanent(fmt.Errorf(
				"applying Argo CD cluster secret %s/%s: %w (is Argo CD installed in namespace %q? set argocd.namespace)", ns, name, err, ns))
		}
		return recovery.Result{}, classify(fmt.Errorf("applying Argo CD cluster secret %s/%s: %w", ns, name, err))
	}
	verb := "updated"
	switch got.ResourceVersion {
	case rvBefore:
		verb = "unchanged"
	default:
		if rvBefore == "" {
			verb = "created"
		}
	}
	sc.Logger.Info("argo cd cluster secret", "secret", ns+"/"+name, "server", endpoint, "result", verb)
	sc.Progress("Argo CD cluster %s → %s: secret %s/%s %s", cluster, endpoint, ns, name, verb)
	return recovery.Result{Outputs: map[string]string{
		"secret":       ns + "/" + name,
		"cluster_name": cluster,
		"server":       endpoint,
	}}, nil
}
