package teardown

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/drbot/drbot/recovery/argocd"
)

var (
	nodeClaimGVR = schema.GroupVersionResource{Group: "karpenter.sh", Version: "v1", Resource: "nodeclaims"}
	ingressGVR   = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}
	serviceGVR   = schema.GroupVersionResource{Version: "v1", Resource: "services"}
)

// drained is one kind of object the drain deletes in the DR cluster.
type drained struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
	keep       func(obj map[string]any) bool // true: not the drain's business
	fix        string                        // what to do when one stays
}

// drClient reaches the DR cluster for a drain part, or says why the part
// has nothing to do (teardown keeps a pilot light, or the cluster is gone),
// or records why it cannot reach it. A nil client ends the part.
func (x *attempt) drClient(ctx context.Context, part, what, fix string) (dynamic.Interface, string) {
	if !x.deletesCluster() {
		return nil, "the pilot light keeps its " + what
	}
	cl, err := x.describeCluster(ctx)
	if err != nil {
		x.leave(part, what+" of "+x.cluster, err, fix)
		return nil, ""
	}
	if cl == nil {
		return nil, "cluster " + x.cluster + " already gone"
	}
	if ok, why := x.ours(cl); !ok {
		return nil, "left alone: " + why // the cluster part lists the cluster itself
	}
	// A drill aborted early never got into its cluster: nothing can have
	// made nodes or load balancers there.
	switch {
	case cl.Status == ekstypes.ClusterStatusCreating:
		return nil, "none: cluster " + x.cluster + " is still being created"
	case cl.Tags[tagRunEKS] == x.sc.Run().ID && x.output(stepClusterAccess, "endpoint") == "":
		return nil, "none: " + stepClusterAccess + " never connected to cluster " + x.cluster + ", so nothing was installed in it"
	}
	if x.t.opts.DR == nil {
		x.leave(part, what+" of "+x.cluster, errors.New("teardown was built without access to the DR cluster (a wiring bug)"), fix)
		return nil, ""
	}
	rc, err := x.t.opts.DR.DRConfig(ctx, x.sc)
	if err != nil {
		x.leave(part, what+" of "+x.cluster, fmt.Errorf("reaching the DR cluster: %w", err), fix)
		return nil, ""
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		x.leave(part, what+" of "+x.cluster, fmt.Errorf("building the DR cluster client: %w", err), fix)
		return nil, ""
	}
	return dyn, ""
}

// removeKarpenter deletes the NodePools and EC2NodeClasses while Karpenter still
// runs: it terminates the instances it launched (EKS does not when the
// cluster goes, and they would block the VPC's deletion) and deletes the
// instance profiles it made for the node role.
func (x *attempt) removeKarpenter(ctx context.Context) (string, error) {
	fix := "terminate the EC2 instances tagged karpenter.sh/nodepool in " + x.region + " (tag kubernetes.io/cluster/" + x.cluster + ")"
	dyn, summary := x.drClient(ctx, PartKarpenter, "Karpenter nodes", fix)
	if dyn == nil {
		return summary, nil
	}
	return x.drain(ctx, dyn, PartKarpenter, "Karpenter", []drained{
		{gvr: argocd.NodePoolGVR, kind: "NodePool", fix: "Karpenter did not finish terminating its nodes; " + fix + ", then remove the NodePool's finalizers"},
		{gvr: argocd.EC2NodeClassGVR, kind: "EC2NodeClass", fix: "Karpenter did not finish; " + fix + ", delete the instance profiles it made for the node role, then remove the EC2NodeClass's finalizers"},
		{gvr: nodeClaimGVR, kind: "NodeClaim", fix: "Karpenter did not terminate the instance; " + fix},
	})
}

// removeLoadBalancers deletes the LoadBalancer Services and the Ingresses left
// in the DR cluster (the Istio gateway's) while the AWS Load Balancer
// Controller still runs to delete their load balancers.
func (x *attempt) removeLoadBalancers(ctx context.Context) (string, error) {
	fix := "delete the load balancers tagged elbv2.k8s.aws/cluster=" + x.cluster + " in " + x.region + " (and their target groups and security groups)"
	dyn, summary := x.drClient(ctx, PartLoadBalancers, "load balancers", fix)
	if dyn == nil {
		return summary, nil
	}
	notLB := func(obj map[string]any) bool {
		spec, _ := obj["spec"].(map[string]any)
		t, _ := spec["type"].(string)
		return t != string(corev1.ServiceTypeLoadBalancer)
	}
	return x.drain(ctx, dyn, PartLoadBalancers, "load balancer", []drained{
		{gvr: serviceGVR, kind: "Service", namespaced: true, keep: notLB, fix: "the AWS Load Balancer Controller did not remove its load balancer; " + fix + ", then remove the Service's finalizers"},
		{gvr: ingressGVR, kind: "Ingress", namespaced: true, fix: "the AWS Load Balancer Controller did not remove its load balancer; " + fix + ", then remove the Ingress's finalizers"},
	})
}

// drain deletes every object of the kinds, then waits until they are gone
// (their controllers' finalizers release the cloud resources). A kind the
// cluster does not serve has nothing to drain.
func (x *attempt) drain(ctx context.Context, dyn dynamic.Interface, part, label string, kinds []drained) (string, error) {
	type ref struct {
		k        drained
		ns, name string
	}
	list := func(ctx context.Context) ([]ref, error) {
		var out []ref
		for _, k := range kinds {
			l, err := dyn.Resource(k.gvr).List(ctx, metav1.ListOptions{})
			if apierrors.IsNotFound(err) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("listing %ss in %s: %w", k.kind, x.cluster, err)
			}
			for _, o := range l.Items {
				if k.keep != nil && k.keep(o.Object) {
					continue
				}
				out = append(out, ref{k: k, ns: o.GetNamespace(), name: o.GetName()})
			}
		}
		return out, nil
	}
	label2 := func(r ref) string {
		if r.ns != "" {
			return r.k.kind + " " + r.ns + "/" + r.name
		}
		return r.k.kind + " " + r.name
	}
	found, err := list(ctx)
	if err != nil {
		x.leave(part, label+" objects of "+x.cluster, err, kinds[0].fix)
		return "", nil
	}
	if len(found) == 0 {
		return "no " + label + " objects in " + x.cluster, nil
	}
	var names []string
	for _, r := range found {
		res := dyn.Resource(r.k.gvr)
		var err error
		if r.k.namespaced {
			err = res.Namespace(r.ns).Delete(ctx, r.name, metav1.DeleteOptions{})
		} else {
			err = res.Delete(ctx, r.name, metav1.DeleteOptions{})
		}
		if err != nil && !apierrors.IsNotFound(err) {
			x.leave(part, label2(r)+" in "+x.cluster, fmt.Errorf("deleting it: %w", err), r.k.fix)
			return "", nil
		}
		names = append(names, label2(r))
	}
	sort.Strings(names)
	x.sc.Progress("deleting %s in %s so their cloud resources go with them", capList(names, 10), x.cluster)
	var left []ref
	err = x.waitFor(ctx, label+" objects of "+x.cluster, func(ctx context.Context) (bool, string, error) {
		l, err := list(ctx)
		if err != nil {
			return false, "", err
		}
		left = l
		return len(l) == 0, fmt.Sprintf("%d still deleting", len(l)), nil
	})
	if err != nil {
		for _, r := range left {
			x.leave(part, label2(r)+" in "+x.cluster, err, r.k.fix)
		}
		if len(left) == 0 {
			x.leave(part, label+" objects of "+x.cluster, err, kinds[0].fix)
		}
		return "", nil
	}
	return "deleted " + strings.Join(names, ", "), nil
}
