package teardown

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/recovery/argocd"
)

// argoNamespace is where Argo CD keeps cluster Secrets and Applications.
func (x *attempt) argoNamespace() string {
	if ns := x.t.cfg.ArgoCD.Namespace; ns != "" {
		return ns
	}
	return "argocd"
}

// removeArgoCD deletes the Applications bound for the DR cluster, waits until
// Argo CD has deleted their resources and them, then deletes the cluster
// Secret. The Secret goes last: Argo CD needs it to reach the cluster
// while it cleans up.
func (x *attempt) removeArgoCD(ctx context.Context) (string, error) {
	ns := x.argoNamespace()
	secretNS, secretName := ns, argocd.SecretName(x.cluster)
	if v := x.output(stepArgoCDRegister, "secret"); v != "" {
		if a, b, ok := strings.Cut(v, "/"); ok {
			secretNS, secretName = a, b
		}
	}
	secretWhat := "Argo CD cluster Secret " + secretNS + "/" + secretName
	if x.t.opts.Management == nil {
		x.leave(PartArgoCD, "Argo CD Applications bound for "+x.cluster+" and "+secretWhat,
			errors.New("teardown was built without the management cluster's config (a wiring bug)"),
			"delete them by hand (argocd app delete, then kubectl -n "+secretNS+" delete secret "+secretName+")")
		return "", nil
	}
	rc := rest.CopyConfig(x.t.opts.Management)
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return "", fmt.Errorf("building management cluster client: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return "", fmt.Errorf("building management cluster client: %w", err)
	}

	endpoints := map[string]bool{}
	for _, v := range []string{x.output(stepClusterAccess, "endpoint"), x.output(stepArgoCDRegister, "server")} {
		if v = strings.TrimSuffix(v, "/"); v != "" {
			endpoints[v] = true
		}
	}
	bound := func(u *unstructured.Unstructured) bool {
		name, _, _ := unstructured.NestedString(u.Object, "spec", "destination", "name")
		server, _, _ := unstructured.NestedString(u.Object, "spec", "destination", "server")
		return (name != "" && name == x.cluster) || endpoints[strings.TrimSuffix(server, "/")]
	}
	apps := dyn.Resource(argocd.ApplicationGVR).Namespace(ns)
	listBound := func(ctx context.Context) ([]*unstructured.Unstructured, error) {
		list, err := apps.List(ctx, metav1.ListOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil // Argo CD's CRD is not served: no Applications
		}
		if err != nil {
			return nil, fmt.Errorf("listing Argo CD Applications in %q: %w", ns, err)
		}
		var out []*unstructured.Unstructured
		for i := range list.Items {
			if bound(&list.Items[i]) {
				out = append(out, &list.Items[i])
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
		return out, nil
	}

	found, err := listBound(ctx)
	if err != nil {
		x.leave(PartArgoCD, "Argo CD Applications bound for "+x.cluster, err, "delete them by hand (argocd app delete)")
		return "", nil
	}
	keepSecret := func() {
		x.leave(PartArgoCD, secretWhat, errors.New("kept while Applications bound for the cluster remain (Argo CD needs it to delete their resources)"),
			"delete it once they are gone: kubectl -n "+secretNS+" delete secret "+secretName)
	}
	var deleted []string
	failed := false
	for _, a := range found {
		if a.GetDeletionTimestamp() != nil {
			continue // already going: wait below
		}
		err := apps.Delete(ctx, a.GetName(), metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			x.leave(PartArgoCD, "Argo CD Application "+ns+"/"+a.GetName(), fmt.Errorf("deleting it: %w", err), "delete it by hand (argocd app delete "+a.GetName()+")")
			failed = true
			continue
		}
		deleted = append(deleted, a.GetName())
	}
	if len(deleted) > 0 {
		x.sc.Progress("deleting %d Argo CD Application(s) bound for %s: %s", len(deleted), x.cluster, capList(deleted, 20))
	}
	if failed {
		keepSecret()
		return "", nil
	}
	var stuck []*unstructured.Unstructured
	if len(found) > 0 {
		err = x.waitFor(ctx, "Argo CD Applications of "+x.cluster, func(ctx context.Context) (bool, string, error) {
			left, err := listBound(ctx)
			if err != nil {
				return false, "", err
			}
			stuck = left
			return len(left) == 0, fmt.Sprintf("%d still deleting", len(left)), nil
		})
		if err != nil {
			for _, a := range stuck {
				x.leave(PartArgoCD, "Argo CD Application "+ns+"/"+a.GetName(), fmt.Errorf("still there (finalizers %v): %w", a.GetFinalizers(), err),
					"Argo CD could not delete its resources in "+x.cluster+"; if the cluster is gone anyway, drop the finalizer: kubectl -n "+ns+
						" patch application "+a.GetName()+" --type merge -p '{\"metadata\":{\"finalizers\":null}}'")
			}
			if len(stuck) == 0 {
				x.leave(PartArgoCD, "Argo CD Applications bound for "+x.cluster, err, "check them in Argo CD and delete what is left")
			}
			keepSecret()
			return "", nil
		}
	}

	secretSummary, ok := x.deleteClusterSecret(ctx, cs, secretNS, secretName, secretWhat)
	if !ok {
		return "", nil
	}
	summary := "no Application bound for " + x.cluster
	if len(found) > 0 {
		summary = fmt.Sprintf("deleted %d Application(s) bound for %s", len(found), x.cluster)
	}
	return summary + "; " + secretSummary, nil
}

// deleteClusterSecret deletes the cluster Secret if it is the one
// argocd.register wrote for this cluster.
func (x *attempt) deleteClusterSecret(ctx context.Context, cs kubernetes.Interface, ns, name, what string) (string, bool) {
	fix := "delete it by hand: kubectl -n " + ns + " delete secret " + name
	s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "cluster Secret " + ns + "/" + name + " already gone", true
	}
	if err != nil {
		x.leave(PartArgoCD, what, fmt.Errorf("reading it: %w", err), fix)
		return "", false
	}
	if s.Labels[argocd.SecretTypeLabel] != "cluster" || string(s.Data["name"]) != x.cluster {
		x.leave(PartArgoCD, what, fmt.Errorf("it is not the Argo CD cluster Secret of %q (label %s=%q, name %q)",
			x.cluster, argocd.SecretTypeLabel, s.Labels[argocd.SecretTypeLabel], s.Data["name"]), "drbot leaves it alone; check it by hand")
		return "", false
	}
	err = cs.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &s.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		x.leave(PartArgoCD, what, fmt.Errorf("deleting it: %w", err), fix)
		return "", false
	}
	x.sc.Progress("deleted Argo CD cluster Secret %s/%s", ns, name)
	return "deleted cluster Secret " + ns + "/" + name, true
}

func capList(items []string, max int) string {
	if len(items) <= max {
		return strings.Join(items, ", ")
	}
	return strings.Join(items[:max], ", ") + fmt.Sprintf(", and %d more", len(items)-max)
}
