package lbcfake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"

	"github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2/types"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// Tags, annotations and finalizers of the real controller (kubernetes-sigs/aws-load-balancer-controller).
const (
	TagCluster       = "elbv2.k8s.aws/cluster"
	TagServiceStack  = "service.k8s.aws/stack"
	TagServiceRes    = "service.k8s.aws/resource"
	TagIngressStack  = "ingress.k8s.aws/stack"
	TagIngressRes    = "ingress.k8s.aws/resource"
	ResourceLB       = "LoadBalancer"
	ServiceFinalizer = "service.k8s.aws/resources"
	IngressFinalizer = "ingress.k8s.aws/resources"
	// GroupFinalizerPrefix + group name is the finalizer of an Ingress in an explicit group.
	GroupFinalizerPrefix = "group.ingress.k8s.aws/"

	// NLBClass is the spec.loadBalancerClass the controller serves (its webhook sets it on new Services).
	NLBClass = "service.k8s.aws/nlb"
	// ALBController is the spec.controller of an IngressClass the controller serves.
	ALBController = "ingress.k8s.aws/alb"

	annSvcScheme      = "service.beta.kubernetes.io/aws-load-balancer-scheme"
	annSvcInternal    = "service.beta.kubernetes.io/aws-load-balancer-internal"
	annIngressClass   = "kubernetes.io/ingress.class"
	annIngScheme      = "alb.ingress.kubernetes.io/scheme"
	annIngGroup       = "alb.ingress.kubernetes.io/group.name"
	annIngListenPorts = "alb.ingress.kubernetes.io/listen-ports"
	annIngCertARN     = "alb.ingress.kubernetes.io/certificate-arn"
)

var invalidNameChars = regexp.MustCompile("[[:^alnum:]]")

// stack is one load balancer the cluster wants: a Service, or an Ingress group.
type stack struct {
	key       string // "service/<ns>/<name>" or "ingress/<group id>"
	stackTag  string // value of the stack tag
	lbType    types.LoadBalancerTypeEnum
	scheme    types.LoadBalancerSchemeEnum
	name      string
	listeners []listener
	certARN   string
	finalizer string
	services  []*corev1.Service
	ingresses []*networkingv1.Ingress
}

type listener struct {
	port     int32
	protocol types.ProtocolEnum
}

func (st *stack) tags(cluster string) []types.Tag {
	m := map[string]string{TagCluster: cluster}
	if st.lbType == types.LoadBalancerTypeEnumNetwork {
		m[TagServiceStack], m[TagServiceRes] = st.stackTag, ResourceLB
	} else {
		m[TagIngressStack], m[TagIngressRes] = st.stackTag, ResourceLB
	}
	var out []types.Tag
	for _, k := range sortedKeys(m) {
		out = append(out, types.Tag{Key: ptr(k), Value: ptr(m[k])})
	}
	return out
}

// serviceStack returns the stack of a Service the controller serves, or nil.
func serviceStack(svc *corev1.Service, cluster string) *stack {
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return nil
	}
	if cls := svc.Spec.LoadBalancerClass; cls != nil && *cls != NLBClass {
		return nil
	}
	scheme := types.LoadBalancerSchemeEnumInternal // the controller's default
	switch {
	case svc.Annotations[annSvcScheme] == string(types.LoadBalancerSchemeEnumInternetFacing):
		scheme = types.LoadBalancerSchemeEnumInternetFacing
	case svc.Annotations[annSvcScheme] == "" && svc.Annotations[annSvcInternal] == "false":
		scheme = types.LoadBalancerSchemeEnumInternetFacing
	}
	byPort := map[int32]types.ProtocolEnum{}
	for _, p := range svc.Spec.Ports {
		proto := types.ProtocolEnumTcp
		switch p.Protocol {
		case corev1.ProtocolUDP:
			proto = types.ProtocolEnumUdp
		case corev1.ProtocolSCTP:
			continue
		}
		if prev, ok := byPort[p.Port]; ok && prev != proto {
			proto = types.ProtocolEnumTcpUdp
		}
		byPort[p.Port] = proto
	}
	st := &stack{
		key:       "service/" + svc.Namespace + "/" + svc.Name,
		stackTag:  svc.Namespace + "/" + svc.Name,
		lbType:    types.LoadBalancerTypeEnumNetwork,
		scheme:    scheme,
		finalizer: ServiceFinalizer,
		services:  []*corev1.Service{svc},
	}
	for port, proto := range byPort {
		st.listeners = append(st.listeners, listener{port, proto})
	}
	sortListeners(st.listeners)
	st.name = lbName(cluster, string(svc.UID), scheme, svc.Namespace, svc.Name, false)
	return st
}

// isALB reports whether the controller serves an Ingress: class "alb", an IngressClass whose controller is
// ingress.k8s.aws/alb, or the legacy kubernetes.io/ingress.class annotation.
func isALB(ing *networkingv1.Ingress, classes map[string]string) bool {
	if name := ing.Spec.IngressClassName; name != nil {
		return *name == "alb" || classes[*name] == ALBController
	}
	return ing.Annotations[annIngressClass] == "alb"
}

// ingressGroup is the group id (stack tag value) and finalizer of an Ingress.
func ingressGroup(ing *networkingv1.Ingress) (id, finalizer string, explicit bool) {
	if g := ing.Annotations[annIngGroup]; g != "" {
		return g, GroupFinalizerPrefix + g, true
	}
	return ing.Namespace + "/" + ing.Name, IngressFinalizer, false
}

// ingressStacks groups ALB Ingresses into stacks.
func ingressStacks(ings []*networkingv1.Ingress, cluster string) (map[string]*stack, []error) {
	stacks := map[string]*stack{}
	var errs []error
	for _, ing := range ings {
		id, fin, _ := ingressGroup(ing)
		key := "ingress/" + id
		st := stacks[key]
		if st == nil {
			st = &stack{key: key, stackTag: id, lbType: types.LoadBalancerTypeEnumApplication,
				scheme: types.LoadBalancerSchemeEnumInternal, finalizer: fin}
			stacks[key] = st
		}
		st.ingresses = append(st.ingresses, ing)
		if s := ing.Annotations[annIngScheme]; s == string(types.LoadBalancerSchemeEnumInternetFacing) {
			st.scheme = types.LoadBalancerSchemeEnumInternetFacing
		}
		if arn := ing.Annotations[annIngCertARN]; arn != "" && st.certARN == "" {
			st.certARN = arn
		}
		ls, err := listenPorts(ing)
		if err != nil {
			errs = append(errs, fmt.Errorf("ingress %s/%s: %w", ing.Namespace, ing.Name, err))
			continue
		}
		for _, l := range ls {
			if !slices.Contains(st.listeners, l) {
				st.listeners = append(st.listeners, l)
			}
		}
	}
	for _, st := range stacks {
		sortListeners(st.listeners)
		ns, name := "", st.stackTag
		_, _, explicit := ingressGroup(st.ingresses[0])
		if !explicit {
			ns, name = st.ingresses[0].Namespace, st.ingresses[0].Name
		}
		st.name = lbName(cluster, st.stackTag, st.scheme, ns, name, explicit)
	}
	return stacks, errs
}

// listenPorts reads alb.ingress.kubernetes.io/listen-ports, e.g. [{"HTTP": 80}, {"HTTPS": 443}]; the default
// is HTTP:80, or HTTPS:443 with a certificate.
func listenPorts(ing *networkingv1.Ingress) ([]listener, error) {
	raw := ing.Annotations[annIngListenPorts]
	if raw == "" {
		if ing.Annotations[annIngCertARN] != "" {
			return []listener{{443, types.ProtocolEnumHttps}}, nil
		}
		return []listener{{80, types.ProtocolEnumHttp}}, nil
	}
	var entries []map[string]int32
	if err := json.Unmarshal([]byte(raw), &entries); err != nil {
		return nil, fmt.Errorf("annotation %s %q: %w", annIngListenPorts, raw, err)
	}
	var out []listener
	for _, e := range entries {
		for proto, port := range e {
			switch proto {
			case "HTTP":
				out = append(out, listener{port, types.ProtocolEnumHttp})
			case "HTTPS":
				out = append(out, listener{port, types.ProtocolEnumHttps})
			default:
				return nil, fmt.Errorf("annotation %s: protocol %q is not HTTP or HTTPS", annIngListenPorts, proto)
			}
		}
	}
	return out, nil
}

// lbName is the real controller's load balancer name: k8s-<namespace:8>-<name:8>-<hash:10>, or
// k8s-<group:17>-<hash:10> for an explicit Ingress group.
func lbName(cluster, id string, scheme types.LoadBalancerSchemeEnum, ns, name string, explicit bool) string {
	h := sha256.New()
	h.Write([]byte(cluster))
	h.Write([]byte(id))
	h.Write([]byte(scheme))
	sum := hex.EncodeToString(h.Sum(nil))
	if explicit {
		return fmt.Sprintf("k8s-%.17s-%.10s", invalidNameChars.ReplaceAllString(name, ""), sum)
	}
	return fmt.Sprintf("k8s-%.8s-%.8s-%.10s", invalidNameChars.ReplaceAllString(ns, ""), invalidNameChars.ReplaceAllString(name, ""), sum)
}

func sortListeners(ls []listener) {
	sort.Slice(ls, func(i, j int) bool { return ls[i].port < ls[j].port })
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func ptr[T any](v T) *T { return &v }
