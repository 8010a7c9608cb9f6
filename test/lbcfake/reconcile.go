package lbcfake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// lbInfo is a load balancer the controller made (or found by its tags).
type lbInfo struct {
	arn, dns, name string
	listenersFor   string // the listener set last made sure of
}

// pass is one round over the cluster's Services and Ingresses.
type pass struct {
	refreshed bool
}

func (c *Controller) pass(ctx context.Context) error {
	svcs, err := c.cs.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing services: %w", err)
	}
	ings, err := c.cs.NetworkingV1().Ingresses("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing ingresses: %w", err)
	}
	icl, err := c.cs.NetworkingV1().IngressClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing ingress classes: %w", err)
	}
	classes := map[string]string{}
	for _, ic := range icl.Items {
		classes[ic.Name] = ic.Spec.Controller
	}

	p := &pass{}
	var errs []error
	if c.lbs == nil || time.Since(c.loadedAt) >= c.opts.Resync {
		if err := c.refresh(ctx, p); err != nil {
			return err
		}
	}

	stacks := map[string]*stack{}
	var leavingSvcs []*corev1.Service
	for i := range svcs.Items {
		svc := &svcs.Items[i]
		if svc.DeletionTimestamp == nil {
			if st := serviceStack(svc, c.opts.ClusterName); st != nil {
				stacks[st.key] = st
				continue
			}
		}
		if slices.Contains(svc.Finalizers, ServiceFinalizer) {
			leavingSvcs = append(leavingSvcs, svc)
		}
	}
	var albs []*networkingv1.Ingress
	var leavingIngs []*networkingv1.Ingress
	for i := range ings.Items {
		ing := &ings.Items[i]
		if ing.DeletionTimestamp == nil && isALB(ing, classes) {
			albs = append(albs, ing)
			continue
		}
		if _, fin, _ := ingressGroup(ing); slices.Contains(ing.Finalizers, fin) {
			leavingIngs = append(leavingIngs, ing)
		}
	}
	ingStacks, buildErrs := ingressStacks(albs, c.opts.ClusterName)
	errs = append(errs, buildErrs...)
	for k, st := range ingStacks {
		stacks[k] = st
	}

	for _, k := range sortedKeys(stacks) {
		if err := c.ensure(ctx, p, stacks[k]); err != nil {
			errs = append(errs, fmt.Errorf("reconciling %s: %w", k, err))
		}
	}
	for _, svc := range leavingSvcs {
		if err := c.releaseService(ctx, p, svc); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ing := range leavingIngs {
		if err := c.releaseIngress(ctx, p, ing, stacks); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ensure gives a stack its load balancer, listeners, finalizers and status hostnames.
func (c *Controller) ensure(ctx context.Context, p *pass, st *stack) error {
	info, err := c.lookup(ctx, p, st.key)
	if err != nil {
		return err
	}
	if info == nil {
		if info, err = c.create(ctx, st); err != nil {
			return err
		}
	}
	if want := fmt.Sprint(st.listeners); info.listenersFor != want {
		if err := c.ensureListeners(ctx, st, info); err != nil {
			return err
		}
		info.listenersFor = want
	}
	for _, svc := range st.services {
		if err := c.publishService(ctx, svc, st.finalizer, info.dns); err != nil {
			return err
		}
	}
	for _, ing := range st.ingresses {
		if err := c.publishIngress(ctx, ing, st.finalizer, info.dns); err != nil {
			return err
		}
	}
	return nil
}

// lookup finds a stack's load balancer: in the cache, or by its tags in AWS (read at most once per pass).
func (c *Controller) lookup(ctx context.Context, p *pass, key string) (*lbInfo, error) {
	if info := c.lbs[key]; info != nil {
		return info, nil
	}
	if p.refreshed {
		return nil, nil
	}
	if err := c.refresh(ctx, p); err != nil {
		return nil, err
	}
	return c.lbs[key], nil
}

// refresh reads this cluster's load balancers from AWS by their tags, as the real controller finds its stacks.
func (c *Controller) refresh(ctx context.Context, p *pass) error {
	var all []types.LoadBalancer
	pager := elbv2.NewDescribeLoadBalancersPaginator(c.opts.LBs, &elbv2.DescribeLoadBalancersInput{})
	for pager.HasMorePages() {
		out, err := pager.NextPage(ctx, c.region)
		if err != nil {
			return fmt.Errorf("describing load balancers: %w", err)
		}
		all = append(all, out.LoadBalancers...)
	}
	old := c.lbs
	lbs := map[string]*lbInfo{}
	for start := 0; start < len(all); start += 20 {
		chunk := all[start:min(start+20, len(all))]
		arns := make([]string, len(chunk))
		byARN := map[string]types.LoadBalancer{}
		for i, lb := range chunk {
			arns[i] = aws.ToString(lb.LoadBalancerArn)
			byARN[arns[i]] = lb
		}
		out, err := c.opts.LBs.DescribeTags(ctx, &elbv2.DescribeTagsInput{ResourceArns: arns}, c.region)
		if err != nil {
			return fmt.Errorf("describing tags of %d load balancers: %w", len(arns), err)
		}
		for _, td := range out.TagDescriptions {
			tags := map[string]string{}
			for _, t := range td.Tags {
				tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
			}
			if tags[TagCluster] != c.opts.ClusterName {
				continue
			}
			var key string
			switch {
			case tags[TagServiceRes] == ResourceLB && tags[TagServiceStack] != "":
				key = "service/" + tags[TagServiceStack]
			case tags[TagIngressRes] == ResourceLB && tags[TagIngressStack] != "":
				key = "ingress/" + tags[TagIngressStack]
			default:
				continue
			}
			lb := byARN[aws.ToString(td.ResourceArn)]
			if prev := lbs[key]; prev != nil {
				c.log.Warn("two load balancers carry the same stack tags; using the first", "stack", key, "first", prev.arn, "second", aws.ToString(lb.LoadBalancerArn))
				continue
			}
			info := &lbInfo{arn: aws.ToString(lb.LoadBalancerArn), dns: aws.ToString(lb.DNSName), name: aws.ToString(lb.LoadBalancerName)}
			if o := old[key]; o != nil && o.arn == info.arn {
				info.listenersFor = o.listenersFor
			}
			lbs[key] = info
		}
	}
	c.lbs, c.loadedAt, p.refreshed = lbs, time.Now(), true
	return nil
}

func (c *Controller) create(ctx context.Context, st *stack) (*lbInfo, error) {
	out, err := c.opts.LBs.CreateLoadBalancer(ctx, &elbv2.CreateLoadBalancerInput{
		Name:          ptr(st.name),
		Type:          st.lbType,
		Scheme:        st.scheme,
		IpAddressType: types.IpAddressTypeIpv4,
		Tags:          st.tags(c.opts.ClusterName),
	}, c.region)
	if err != nil {
		return nil, fmt.Errorf("creating load balancer %q: %w", st.name, err)
	}
	if len(out.LoadBalancers) != 1 {
		return nil, fmt.Errorf("creating load balancer %q: got %d load balancers back, want 1", st.name, len(out.LoadBalancers))
	}
	lb := out.LoadBalancers[0]
	info := &lbInfo{arn: aws.ToString(lb.LoadBalancerArn), dns: aws.ToString(lb.DNSName), name: st.name}
	c.lbs[st.key] = info
	c.log.Info("created load balancer", "stack", st.key, "name", st.name, "type", st.lbType, "dns", info.dns)
	return info, nil
}

// ensureListeners creates the listeners the stack wants that the load balancer lacks. ALB listeners answer
// 404 by default, as the controller's do when no rule matches; NLB listeners forward to the target group the
// controller would have made, by ARN only (the AWS stand-in models no target groups).
func (c *Controller) ensureListeners(ctx context.Context, st *stack, info *lbInfo) error {
	out, err := c.opts.LBs.DescribeListeners(ctx, &elbv2.DescribeListenersInput{LoadBalancerArn: ptr(info.arn)}, c.region)
	if err != nil {
		return fmt.Errorf("describing listeners of %q: %w", info.arn, err)
	}
	have := map[int32]bool{}
	for _, l := range out.Listeners {
		have[aws.ToInt32(l.Port)] = true
	}
	for _, l := range st.listeners {
		if have[l.port] {
			continue
		}
		in := &elbv2.CreateListenerInput{LoadBalancerArn: ptr(info.arn), Port: ptr(l.port), Protocol: l.protocol}
		if st.lbType == types.LoadBalancerTypeEnumApplication {
			in.DefaultActions = []types.Action{{
				Type:                types.ActionTypeEnumFixedResponse,
				FixedResponseConfig: &types.FixedResponseActionConfig{StatusCode: ptr("404"), ContentType: ptr("text/plain")},
			}}
		} else {
			in.DefaultActions = []types.Action{{Type: types.ActionTypeEnumForward, TargetGroupArn: ptr(targetGroupARN(info.arn, st, l))}}
		}
		if l.protocol == types.ProtocolEnumHttps && st.certARN != "" {
			in.Certificates = []types.Certificate{{CertificateArn: ptr(strings.Split(st.certARN, ",")[0])}}
		}
		if _, err := c.opts.LBs.CreateListener(ctx, in, c.region); err != nil {
			return fmt.Errorf("creating listener %s:%d on %q: %w", l.protocol, l.port, info.arn, err)
		}
	}
	return nil
}

func (c *Controller) deleteLB(ctx context.Context, p *pass, key string) error {
	info, err := c.lookup(ctx, p, key)
	if err != nil || info == nil {
		return err
	}
	if _, err := c.opts.LBs.DeleteLoadBalancer(ctx, &elbv2.DeleteLoadBalancerInput{LoadBalancerArn: ptr(info.arn)}, c.region); err != nil {
		return fmt.Errorf("deleting load balancer %q: %w", info.arn, err)
	}
	delete(c.lbs, key)
	c.log.Info("deleted load balancer", "stack", key, "name", info.name)
	return nil
}

func (c *Controller) publishService(ctx context.Context, svc *corev1.Service, finalizer, dns string) error {
	if !slices.Contains(svc.Finalizers, finalizer) {
		svc = svc.DeepCopy()
		svc.Finalizers = append(svc.Finalizers, finalizer)
		updated, err := c.cs.CoreV1().Services(svc.Namespace).Update(ctx, svc, metav1.UpdateOptions{})
		if err != nil {
			return ignoreConflict(fmt.Errorf("adding finalizer to service %s/%s: %w", svc.Namespace, svc.Name, err))
		}
		svc = updated
	}
	ing := svc.Status.LoadBalancer.Ingress
	if len(ing) == 1 && ing[0].Hostname == dns && ing[0].IP == "" {
		return nil
	}
	svc = svc.DeepCopy()
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{Hostname: dns}}
	if _, err := c.cs.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, svc, metav1.UpdateOptions{}); err != nil {
		return ignoreConflict(fmt.Errorf("updating status of service %s/%s: %w", svc.Namespace, svc.Name, err))
	}
	c.log.Info("service load balancer", "service", svc.Namespace+"/"+svc.Name, "hostname", dns)
	return nil
}

func (c *Controller) publishIngress(ctx context.Context, ing *networkingv1.Ingress, finalizer, dns string) error {
	if !slices.Contains(ing.Finalizers, finalizer) {
		ing = ing.DeepCopy()
		ing.Finalizers = append(ing.Finalizers, finalizer)
		updated, err := c.cs.NetworkingV1().Ingresses(ing.Namespace).Update(ctx, ing, metav1.UpdateOptions{})
		if err != nil {
			return ignoreConflict(fmt.Errorf("adding finalizer to ingress %s/%s: %w", ing.Namespace, ing.Name, err))
		}
		ing = updated
	}
	lbi := ing.Status.LoadBalancer.Ingress
	if len(lbi) == 1 && lbi[0].Hostname == dns && lbi[0].IP == "" {
		return nil
	}
	ing = ing.DeepCopy()
	ing.Status.LoadBalancer.Ingress = []networkingv1.IngressLoadBalancerIngress{{Hostname: dns}}
	if _, err := c.cs.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, ing, metav1.UpdateOptions{}); err != nil {
		return ignoreConflict(fmt.Errorf("updating status of ingress %s/%s: %w", ing.Namespace, ing.Name, err))
	}
	c.log.Info("ingress load balancer", "ingress", ing.Namespace+"/"+ing.Name, "hostname", dns)
	return nil
}

// releaseService deletes the load balancer of a Service that is being deleted or no longer of type
// LoadBalancer, then lets go of the Service.
func (c *Controller) releaseService(ctx context.Context, p *pass, svc *corev1.Service) error {
	if err := c.deleteLB(ctx, p, "service/"+svc.Namespace+"/"+svc.Name); err != nil {
		return err
	}
	svc = svc.DeepCopy()
	svc.Finalizers = slices.DeleteFunc(svc.Finalizers, func(f string) bool { return f == ServiceFinalizer })
	updated, err := c.cs.CoreV1().Services(svc.Namespace).Update(ctx, svc, metav1.UpdateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return ignoreConflict(fmt.Errorf("removing finalizer of service %s/%s: %w", svc.Namespace, svc.Name, err))
	}
	if updated.DeletionTimestamp == nil && len(updated.Status.LoadBalancer.Ingress) > 0 {
		updated.Status.LoadBalancer.Ingress = nil
		if _, err := c.cs.CoreV1().Services(svc.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return ignoreConflict(fmt.Errorf("clearing status of service %s/%s: %w", svc.Namespace, svc.Name, err))
		}
	}
	return nil
}

// releaseIngress lets go of an Ingress leaving its group; the group's load balancer goes with its last member.
func (c *Controller) releaseIngress(ctx context.Context, p *pass, ing *networkingv1.Ingress, active map[string]*stack) error {
	id, fin, _ := ingressGroup(ing)
	key := "ingress/" + id
	if active[key] == nil {
		if err := c.deleteLB(ctx, p, key); err != nil {
			return err
		}
	}
	ing = ing.DeepCopy()
	ing.Finalizers = slices.DeleteFunc(ing.Finalizers, func(f string) bool { return f == fin })
	updated, err := c.cs.NetworkingV1().Ingresses(ing.Namespace).Update(ctx, ing, metav1.UpdateOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return ignoreConflict(fmt.Errorf("removing finalizer of ingress %s/%s: %w", ing.Namespace, ing.Name, err))
	}
	if updated.DeletionTimestamp == nil && len(updated.Status.LoadBalancer.Ingress) > 0 {
		updated.Status.LoadBalancer.Ingress = nil
		if _, err := c.cs.NetworkingV1().Ingresses(ing.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return ignoreConflict(fmt.Errorf("clearing status of ingress %s/%s: %w", ing.Namespace, ing.Name, err))
		}
	}
	return nil
}

// ignoreConflict drops optimistic-concurrency conflicts: the next pass works from a fresh list.
func ignoreConflict(err error) error {
	if apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// targetGroupARN names the target group the real controller would make for an NLB listener
// (k8s-<ns:8>-<name:8>-<hash:10>), in the load balancer's region and account.
func targetGroupARN(lbARN string, st *stack, l listener) string {
	parts := strings.SplitN(lbARN, ":", 6) // arn:aws:elasticloadbalancing:REGION:ACCOUNT:loadbalancer/...
	if len(parts) < 6 {
		return ""
	}
	ns, name, _ := strings.Cut(st.stackTag, "/")
	h := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%s", lbARN, l.port, l.protocol)))
	sum := hex.EncodeToString(h[:])
	tg := fmt.Sprintf("k8s-%.8s-%.8s-%.10s", invalidNameChars.ReplaceAllString(ns, ""), invalidNameChars.ReplaceAllString(name, ""), sum)
	return fmt.Sprintf("%s:%s:%s:%s:%s:targetgroup/%s/%s", parts[0], parts[1], parts[2], parts[3], parts[4], tg, sum[10:26])
}
