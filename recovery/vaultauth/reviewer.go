package vaultauth

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/recovery"
)

const managedByLabel = "app.kubernetes.io/managed-by"

// reviewerToken makes sure the DR cluster has the token-reviewer service
// account, its system:auth-delegator binding and a long-lived token Secret,
// and returns the token. The token is never logged.
func (a *Auth) reviewerToken(ctx context.Context, sc *recovery.StepContext) (string, error) {
	rc, err := a.opts.DR.DRConfig(ctx, sc)
	if err != nil {
		return "", fmt.Errorf("reaching the DR cluster: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", recovery.Permanent(fmt.Errorf("building DR cluster client: %w", err))
	}
	ns, name := a.opts.ReviewerNamespace, a.opts.ReviewerName
	labels := map[string]string{managedByLabel: "drbot"}

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", classifyKube(fmt.Errorf("creating service account %s/%s: %w", ns, name, err))
	}

	if err := ensureBinding(ctx, cs, ns, name, labels); err != nil {
		return "", err
	}

	secrets := cs.CoreV1().Secrets(ns)
	sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		sec, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: ns, Labels: labels,
				Annotations: map[string]string{corev1.ServiceAccountNameKey: name},
			},
			Type: corev1.SecretTypeServiceAccountToken,
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			sec, err = secrets.Get(ctx, name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return "", classifyKube(fmt.Errorf("getting token secret %s/%s: %w", ns, name, err))
	}
	if sec.Type != corev1.SecretTypeServiceAccountToken || sec.Annotations[corev1.ServiceAccountNameKey] != name {
		return "", recovery.Permanent(fmt.Errorf("secret %s/%s exists but is not a service account token of %q: delete it and Retry", ns, name, name))
	}

	// The token controller fills the Secret shortly after it is created.
	deadline := time.Now().Add(a.opts.TokenTimeout)
	for len(sec.Data[corev1.ServiceAccountTokenKey]) == 0 {
		if time.Now().After(deadline) {
			return "", recovery.Retryable(fmt.Errorf("token secret %s/%s still has no token after %s: is the token controller of kube-controller-manager running?", ns, name, a.opts.TokenTimeout))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if sec, err = secrets.Get(ctx, name, metav1.GetOptions{}); err != nil {
			return "", classifyKube(fmt.Errorf("getting token secret %s/%s: %w", ns, name, err))
		}
	}
	return string(sec.Data[corev1.ServiceAccountTokenKey]), nil
}

// ensureBinding binds the service account to system:auth-delegator, so
// Vault may call the TokenReview API with its token.
func ensureBinding(ctx context.Context, cs kubernetes.Interface, ns, name string, labels map[string]string) error {
	subject := rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}
	roleRef := rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:auth-delegator"}
	crbs := cs.RbacV1().ClusterRoleBindings()
	crb, err := crbs.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = crbs.Create(ctx, &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
			RoleRef:    roleRef,
			Subjects:   []rbacv1.Subject{subject},
		}, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
	}
	if err != nil {
		return classifyKube(fmt.Errorf("binding %s/%s to system:auth-delegator: %w", ns, name, err))
	}
	if crb.RoleRef != roleRef {
		return recovery.Permanent(fmt.Errorf("cluster role binding %q refers to %s %q, not system:auth-delegator: delete it and Retry", name, crb.RoleRef.Kind, crb.RoleRef.Name))
	}
	for _, s := range crb.Subjects {
		if s.Kind == subject.Kind && s.Name == subject.Name && s.Namespace == subject.Namespace {
			return nil
		}
	}
	crb.Subjects = append(crb.Subjects, subject)
	if _, err := crbs.Update(ctx, crb, metav1.UpdateOptions{}); err != nil {
		return classifyKube(fmt.Errorf("adding %s/%s to cluster role binding %q: %w", ns, name, name, err))
	}
	return nil
}
