package readiness

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/config"
)

// CheckKubePermissions is the id of the management-cluster permission check.
const CheckKubePermissions = "permissions.kube"

// KubePermissions asks the management cluster, with SelfSubjectAccessReview
// (the only thing it creates, and it stores nothing), whether drbot's own
// identity may do each of Needs.
type KubePermissions struct {
	// Client reaches the management cluster as drbot.
	Client kubernetes.Interface
	// Needs is what drbot does there: KubeNeedsFrom the declared
	// permissions, or DefaultKubeNeeds. Empty is a warning.
	Needs []authorizationv1.ResourceAttributes
	// ClientErr, when set, is why no client could be made; the check fails with it.
	ClientErr error
}

// DefaultKubeNeeds is what the runbook does in the management cluster: the
// Argo CD cluster Secret (argocd.register, server-side apply) and the
// Applications (Karpenter's, and reading the services' while they sync).
func DefaultKubeNeeds(cfg *config.Config) []authorizationv1.ResourceAttributes {
	ns := cfg.ArgoCD.Namespace
	if ns == "" {
		ns = "argocd"
	}
	var out []authorizationv1.ResourceAttributes
	for _, verb := range []string{"get", "list", "create", "update", "patch"} {
		out = append(out, authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: "secrets"})
	}
	for _, verb := range []string{"get", "list", "watch", "create", "update", "patch"} {
		out = append(out, authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: "argoproj.io", Resource: "applications"})
	}
	return out
}

// ID is the check's id.
func (k *KubePermissions) ID() string { return CheckKubePermissions }

// Run reviews every need; the management cluster is not about one target.
func (k *KubePermissions) Run(ctx context.Context, _ []*config.Target) []Result {
	const title = "drbot may manage the Argo CD cluster Secret and Applications in the management cluster"
	fix := "grant drbot's identity in the management cluster a Role in the Argo CD namespace with these verbs (see the RBAC in manifests/)"
	if k.ClientErr != nil {
		return []Result{ErrorResult(CheckKubePermissions, "", title, k.ClientErr, "set argocd.management_kubeconfig or run drbot inside the management cluster")}
	}
	if len(k.Needs) == 0 {
		return []Result{{Check: CheckKubePermissions, Title: title, Status: Warn, Evidence: []string{"no permissions to review were given"},
			Fix: "this is a wiring bug in drbot: report it"}}
	}
	var denied, checked []string
	for _, need := range k.Needs {
		attrs := need
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs}}
		got, err := k.Client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return []Result{ErrorResult(CheckKubePermissions, "", title, fmt.Errorf("asking the management cluster whether drbot may %s: %w", describeAttrs(need), err), fix)}
		}
		checked = append(checked, describeAttrs(need))
		if !got.Status.Allowed {
			why := ""
			if got.Status.Reason != "" {
				why = " (" + got.Status.Reason + ")"
			}
			if got.Status.EvaluationError != "" {
				why += " (" + got.Status.EvaluationError + ")"
			}
			denied = append(denied, "denied: "+describeAttrs(need)+why)
		}
	}
	if len(denied) > 0 {
		return []Result{{Check: CheckKubePermissions, Title: title, Status: Fail, Evidence: denied, Fix: fix}}
	}
	return []Result{{Check: CheckKubePermissions, Title: title, Status: Pass,
		Evidence: []string{fmt.Sprintf("allowed: %d of %d (%s)", len(checked), len(k.Needs), strings.Join(checked, "; "))}}}
}

// describeAttrs says "create secrets in namespace argocd" or
// "patch applications.argoproj.io in namespace argocd".
func describeAttrs(a authorizationv1.ResourceAttributes) string {
	res := a.Resource
	if a.Group != "" {
		res += "." + a.Group
	}
	if a.Subresource != "" {
		res += "/" + a.Subresource
	}
	if a.Name != "" {
		res += " " + a.Name
	}
	where := "cluster-wide"
	if a.Namespace != "" {
		where = "in namespace " + a.Namespace
	}
	return fmt.Sprintf("%s %s %s", a.Verb, res, where)
}
