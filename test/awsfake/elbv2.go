package awsfake

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const elbNS = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"

var elbOps = map[string]bool{
	"DescribeLoadBalancers": true, "CreateLoadBalancer": true, "DeleteLoadBalancer": true,
	"DescribeTags": true, "AddTags": true, "RemoveTags": true,
	"DescribeListeners": true, "CreateListener": true, "DeleteListener": true,
}

// LoadBalancer is an ELBv2 load balancer, as registered with AddLoadBalancer
// (input fields) and reported by LoadBalancers (all fields).
type LoadBalancer struct {
	Name   string
	Type   string // "application" (default) or "network"
	Scheme string // "internet-facing" (default) or "internal"
	VpcID  string // default "vpc-0awsfake0000000001"
	Tags   map[string]string
	State  string // "active" (default), "provisioning", "active_impaired", "failed"
	// Subnets are the subnet ids; default two made-up subnets.
	Subnets []string

	// Set by the server (an input DNSName is kept).
	ARN                   string
	DNSName               string
	CanonicalHostedZoneID string
	Region                string
	CreatedTime           time.Time
}

// Listener is an ELBv2 listener.
type Listener struct {
	ARN             string
	LoadBalancerARN string
	Port            int32
	Protocol        string // HTTP, HTTPS, TCP, TLS, UDP, TCP_UDP
	// TargetGroupARN is the forward target of the default action, if any.
	TargetGroupARN string
}

type elbRegion struct {
	lbs       map[string]*elbLB // by ARN
	order     []string
	listeners map[string]*elbListener // by ARN
}

type elbLB struct {
	LoadBalancer
	provisionedAt time.Time // state "provisioning" until then, when set
	listeners     []string
}

type elbListener struct {
	Listener
	tags map[string]string
}

// Canonical hosted zone ids of ELB DNS names, per region
// (https://docs.aws.amazon.com/general/latest/gr/elb.html).
var (
	albZoneIDs = map[string]string{
		"us-east-1": "Z35SXDOTRQ7X7K", "us-east-2": "Z3AADJGX6KTTL2", "us-west-1": "Z368ELLRRE2KJ0", "us-west-2": "Z1H1FL5HABSF5",
		"ca-central-1": "ZQSVJUPU6J1EY", "ap-east-1": "Z3DQVH9N71FHZ0", "ap-south-1": "ZP97RAFLXTNZK", "ap-northeast-1": "Z14GRHDCWA56QT",
		"ap-northeast-2": "ZWKZPGTI48KDX", "ap-northeast-3": "Z5LXEXXYW11ES", "ap-southeast-1": "Z1LMS91P8CMLE5", "ap-southeast-2": "Z1GM3OXH4ZPM65",
		"eu-central-1": "Z215JYRZR1TBD5", "eu-west-1": "Z32O12XQLNTSW2", "eu-west-2": "ZHURV8PSTC4K8", "eu-west-3": "Z3Q77PNBQS71R4",
		"eu-north-1": "Z23TAZ6LKFMNIO", "eu-south-1": "Z3ULH7SSC9OV64", "sa-east-1": "Z2P70J7HTTTPLU", "me-south-1": "ZS929ML54UICD",
		"af-south-1": "Z268VQBMOI5EKX",
	}
	nlbZoneIDs = map[string]string{
		"us-east-1": "Z26RNL4JYFTOTI", "us-east-2": "ZLMOA37VPKANP", "us-west-1": "Z24FKFUX50B4VW", "us-west-2": "Z18D5FSROUN65G",
		"ca-central-1": "Z2EPGBW3API2WT", "ap-east-1": "Z12Y7K3UBGUAD1", "ap-south-1": "ZVDDRBQ08TROA", "ap-northeast-1": "Z31USIVHYNEOWT",
		"ap-northeast-2": "ZIBE1TIR4HY56", "ap-southeast-1": "ZKVM4W9LS7TM", "ap-southeast-2": "ZCT6FZBF4DROD",
		"eu-central-1": "Z3F0SRJ5LGBH90", "eu-west-1": "Z2IFOLAFXWLO4F", "eu-west-2": "ZD4D7Y8KGAS4G", "eu-west-3": "Z1CMS0P5QUZ6D5",
		"eu-north-1": "Z1UDT6IFJ4EJM", "eu-south-1": "Z23146JA1KNAFP", "sa-east-1": "ZTK26PT1VY4CU", "me-south-1": "Z3QSRYVP46NYYV",
		"af-south-1": "Z203XCE67M25HM",
	}
)

// CanonicalHostedZoneID returns the Route 53 zone id of ELB DNS names of
// lbType ("application" or "network") in region; for a region missing from
// the table it returns a made-up, stable id starting with "ZFAKE".
func CanonicalHostedZoneID(region, lbType string) string {
	table := albZoneIDs
	if lbType == "network" {
		table = nlbZoneIDs
	}
	if id, ok := table[region]; ok {
		return id
	}
	return "ZFAKE" + hashID(9, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", region, lbType)
}

func (s *Server) elbRegion(region string) *elbRegion {
	r := s.elb[region]
	if r == nil {
		r = &elbRegion{lbs: map[string]*elbLB{}, listeners: map[string]*elbListener{}}
		s.elb[region] = r
	}
	return r
}

// AddLoadBalancer registers a load balancer directly (what the AWS Load
// Balancer Controller stand-in does for a LoadBalancer Service or Ingress).
// It returns the ARN, DNS name and canonical hosted zone id. A second call
// with the same name replaces tags and state of the existing one.
func (s *Server) AddLoadBalancer(region string, lb LoadBalancer) (arn, dnsName, canonicalZoneID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.putLoadBalancerLocked(region, lb, s.now())
	return x.ARN, x.DNSName, x.CanonicalHostedZoneID
}

func (s *Server) putLoadBalancerLocked(region string, lb LoadBalancer, now time.Time) *elbLB {
	reg := s.elbRegion(region)
	for _, arn := range reg.order {
		if x := reg.lbs[arn]; x.Name == lb.Name {
			if lb.Tags != nil {
				x.Tags = copyMap(lb.Tags)
			}
			if lb.State != "" {
				x.State = lb.State
				x.provisionedAt = time.Time{}
			}
			return x
		}
	}
	if lb.Type == "" {
		lb.Type = "application"
	}
	if lb.Scheme == "" {
		lb.Scheme = "internet-facing"
	}
	if lb.VpcID == "" {
		lb.VpcID = "vpc-0awsfake0000000001"
	}
	if lb.State == "" {
		lb.State = "active"
	}
	if len(lb.Subnets) == 0 {
		lb.Subnets = []string{"subnet-0awsfake000000001", "subnet-0awsfake000000002"}
	}
	lb.Tags = copyMap(lb.Tags)
	seq := s.nextSeq()
	id := hashID(16, hexDigits, region, lb.Name, seq)
	kind := "app"
	if lb.Type == "network" {
		kind = "net"
	}
	lb.ARN = fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:loadbalancer/%s/%s/%s", region, s.opts.AccountID, kind, lb.Name, id)
	if lb.DNSName == "" {
		prefix := ""
		if lb.Scheme == "internal" {
			prefix = "internal-"
		}
		if lb.Type == "network" {
			lb.DNSName = fmt.Sprintf("%s%s-%s.elb.%s.amazonaws.com", prefix, lb.Name, id, region)
		} else {
			lb.DNSName = fmt.Sprintf("%s%s-%s.%s.elb.amazonaws.com", prefix, lb.Name, hashID(10, decDigits, region, lb.Name, seq), region)
		}
	}
	lb.CanonicalHostedZoneID = CanonicalHostedZoneID(region, lb.Type)
	lb.Region = region
	lb.CreatedTime = now
	x := &elbLB{LoadBalancer: lb}
	reg.lbs[lb.ARN] = x
	reg.order = append(reg.order, lb.ARN)
	return x
}

// SetLoadBalancerState changes a load balancer's state code; false if unknown.
func (s *Server) SetLoadBalancerState(region, arn, state string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	x := s.elbRegion(region).lbs[arn]
	if x == nil {
		return false
	}
	x.State, x.provisionedAt = state, time.Time{}
	return true
}

// RemoveLoadBalancer deletes a load balancer and its listeners; false if unknown.
func (s *Server) RemoveLoadBalancer(region, arn string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLBLocked(s.elbRegion(region), arn)
}

func (s *Server) removeLBLocked(reg *elbRegion, arn string) bool {
	x := reg.lbs[arn]
	if x == nil {
		return false
	}
	for _, l := range x.listeners {
		delete(reg.listeners, l)
	}
	delete(reg.lbs, arn)
	reg.order = removeString(reg.order, arn)
	return true
}

// LoadBalancers returns the load balancers of a region in creation order.
func (s *Server) LoadBalancers(region string) []LoadBalancer {
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.elbRegion(region)
	now := s.now()
	out := make([]LoadBalancer, 0, len(reg.order))
	for _, arn := range reg.order {
		lb := reg.lbs[arn].view(now)
		out = append(out, lb)
	}
	return out
}

func (x *elbLB) view(now time.Time) LoadBalancer {
	lb := x.LoadBalancer
	lb.Tags = copyMap(x.Tags)
	lb.Subnets = append([]string(nil), x.Subnets...)
	if !x.provisionedAt.IsZero() {
		if now.Before(x.provisionedAt) {
			lb.State = "provisioning"
		} else {
			lb.State = "active"
		}
	}
	return lb
}

// AddListener registers a listener on a load balancer and returns its ARN.
func (s *Server) AddListener(region string, l Listener) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, err := s.addListenerLocked(s.elbRegion(region), l)
	if err != nil {
		return "", err
	}
	return x.ARN, nil
}

func (s *Server) addListenerLocked(reg *elbRegion, l Listener) (*elbListener, *apiError) {
	lb := reg.lbs[l.LoadBalancerARN]
	if lb == nil {
		return nil, errorf(http.StatusBadRequest, "LoadBalancerNotFound", "Load balancer '%s' not found", l.LoadBalancerARN)
	}
	for _, arn := range lb.listeners {
		if reg.listeners[arn].Port == l.Port {
			return nil, errorf(http.StatusBadRequest, "DuplicateListener", "A listener already exists on this port for this load balancer '%s'", l.LoadBalancerARN)
		}
	}
	// listener/app/NAME/LBID/LISTENERID
	lbPart := strings.SplitN(l.LoadBalancerARN, ":loadbalancer/", 2)
	l.ARN = lbPart[0] + ":listener/" + lbPart[1] + "/" + hashID(16, hexDigits, l.LoadBalancerARN, l.Port, s.nextSeq())
	x := &elbListener{Listener: l, tags: map[string]string{}}
	reg.listeners[l.ARN] = x
	lb.listeners = append(lb.listeners, l.ARN)
	return x, nil
}

func (s *Server) serveELB(q *request) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.elbRegion(q.region)
	switch q.op {
	case "DescribeLoadBalancers":
		return s.elbDescribeLBs(q, reg)
	case "CreateLoadBalancer":
		return s.elbCreateLB(q, reg)
	case "DeleteLoadBalancer":
		s.removeLBLocked(reg, q.form.Get("LoadBalancerArn"))
		return writeQuery(q, elbNS, nil)
	case "DescribeTags":
		return s.elbDescribeTags(q, reg)
	case "AddTags", "RemoveTags":
		return s.elbChangeTags(q, reg)
	case "DescribeListeners":
		return s.elbDescribeListeners(q, reg)
	case "CreateListener":
		return s.elbCreateListener(q, reg)
	case "DeleteListener":
		arn := q.form.Get("ListenerArn")
		l := reg.listeners[arn]
		if l == nil {
			return errorf(http.StatusBadRequest, "ListenerNotFound", "Listener '%s' not found", arn)
		}
		delete(reg.listeners, arn)
		if lb := reg.lbs[l.LoadBalancerARN]; lb != nil {
			lb.listeners = removeString(lb.listeners, arn)
		}
		return writeQuery(q, elbNS, nil)
	}
	return unsupported("InvalidAction", "elbv2 operation %s is not modelled", q.op)
}

type xmlAZ struct {
	ZoneName string `xml:"ZoneName"`
	SubnetID string `xml:"SubnetId"`
}

type xmlLB struct {
	LoadBalancerArn       string   `xml:"LoadBalancerArn"`
	DNSName               string   `xml:"DNSName"`
	CanonicalHostedZoneID string   `xml:"CanonicalHostedZoneId"`
	CreatedTime           string   `xml:"CreatedTime"`
	LoadBalancerName      string   `xml:"LoadBalancerName"`
	Scheme                string   `xml:"Scheme"`
	VpcID                 string   `xml:"VpcId"`
	StateCode             string   `xml:"State>Code"`
	Type                  string   `xml:"Type"`
	AvailabilityZones     []xmlAZ  `xml:"AvailabilityZones>member"`
	SecurityGroups        []string `xml:"SecurityGroups>member,omitempty"`
	IPAddressType         string   `xml:"IpAddressType"`
}

func xmlLBOf(lb LoadBalancer) xmlLB {
	x := xmlLB{
		LoadBalancerArn: lb.ARN, DNSName: lb.DNSName, CanonicalHostedZoneID: lb.CanonicalHostedZoneID,
		CreatedTime: isoTime(lb.CreatedTime), LoadBalancerName: lb.Name, Scheme: lb.Scheme, VpcID: lb.VpcID,
		StateCode: lb.State, Type: lb.Type, IPAddressType: "ipv4",
	}
	for i, sn := range lb.Subnets {
		x.AvailabilityZones = append(x.AvailabilityZones, xmlAZ{ZoneName: lb.Region + string(rune('a'+i%6)), SubnetID: sn})
	}
	if lb.Type == "application" {
		x.SecurityGroups = []string{"sg-0awsfake" + hashID(8, hexDigits, lb.ARN)}
	}
	return x
}

type describeLBsResult struct {
	XMLName       xml.Name `xml:"DescribeLoadBalancersResult"`
	LoadBalancers []xmlLB  `xml:"LoadBalancers>member"`
	NextMarker    string   `xml:"NextMarker,omitempty"`
}

func pageSize(q *request, max int) (int, *apiError) {
	v := q.form.Get("PageSize")
	if v == "" {
		return max, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'pageSize' failed to satisfy constraint: Member must have value between 1 and %d", v, max)
	}
	return n, nil
}

func (s *Server) elbDescribeLBs(q *request, reg *elbRegion) *apiError {
	if bad := unknownParams(q.form, "LoadBalancerArns.", "Names.", "Marker", "PageSize"); len(bad) > 0 {
		return unsupported("ValidationError", "DescribeLoadBalancers parameters %v are not modelled", bad)
	}
	size, aerr := pageSize(q, 400)
	if aerr != nil {
		return aerr
	}
	arns := formList(q.form, "LoadBalancerArns.member")
	names := formList(q.form, "Names.member")
	if len(arns) > 0 && len(names) > 0 {
		return errorf(http.StatusBadRequest, "ValidationError", "Load balancer names and load balancer ARNs cannot be specified at the same time")
	}
	var picked []*elbLB
	switch {
	case len(arns) > 0:
		for _, a := range arns {
			x := reg.lbs[a]
			if x == nil {
				return errorf(http.StatusBadRequest, "LoadBalancerNotFound", "Load balancers '[%s]' not found", a)
			}
			picked = append(picked, x)
		}
	case len(names) > 0:
		for _, n := range names {
			var found *elbLB
			for _, a := range reg.order {
				if reg.lbs[a].Name == n {
					found = reg.lbs[a]
				}
			}
			if found == nil {
				return errorf(http.StatusBadRequest, "LoadBalancerNotFound", "Load balancers '[%s]' not found", n)
			}
			picked = append(picked, found)
		}
	default:
		for _, a := range reg.order {
			picked = append(picked, reg.lbs[a])
		}
	}
	page, next, ok := paginate(picked, q.form.Get("Marker"), size)
	if !ok {
		return errorf(http.StatusBadRequest, "ValidationError", "Invalid marker")
	}
	res := describeLBsResult{NextMarker: next}
	for _, x := range page {
		res.LoadBalancers = append(res.LoadBalancers, xmlLBOf(x.view(q.now)))
	}
	return writeQuery(q, elbNS, res)
}

type createLBResult struct {
	XMLName       xml.Name `xml:"CreateLoadBalancerResult"`
	LoadBalancers []xmlLB  `xml:"LoadBalancers>member"`
}

// elbCreateLB is idempotent for the same name and type, as AWS is.
func (s *Server) elbCreateLB(q *request, reg *elbRegion) *apiError {
	if bad := unknownParams(q.form, "Name", "Type", "Scheme", "Subnets.", "SubnetMappings.", "SecurityGroups.", "Tags.", "IpAddressType"); len(bad) > 0 {
		return unsupported("ValidationError", "CreateLoadBalancer parameters %v are not modelled", bad)
	}
	name := q.form.Get("Name")
	if name == "" || len(name) > 32 || strings.HasPrefix(name, "internal-") || strings.HasPrefix(name, "-") || strings.HasSuffix(name, "-") {
		return errorf(http.StatusBadRequest, "ValidationError", "The load balancer name '%s' is not valid", name)
	}
	typ := q.form.Get("Type")
	if typ == "" {
		typ = "application"
	}
	if typ != "application" && typ != "network" {
		return unsupported("ValidationError", "load balancer type %q is not modelled", typ)
	}
	subnets := formList(q.form, "Subnets.member")
	for _, m := range formStructs(q.form, "SubnetMappings.member", "SubnetId") {
		subnets = append(subnets, m["SubnetId"])
	}
	for _, a := range reg.order {
		if x := reg.lbs[a]; x.Name == name {
			if x.Type != typ {
				return errorf(http.StatusBadRequest, "DuplicateLoadBalancerName", "A load balancer with the same name '%s' exists, but with different settings", name)
			}
			return writeQuery(q, elbNS, createLBResult{LoadBalancers: []xmlLB{xmlLBOf(x.view(q.now))}})
		}
	}
	x := s.putLoadBalancerLocked(q.region, LoadBalancer{
		Name: name, Type: typ, Scheme: q.form.Get("Scheme"), Subnets: subnets, Tags: formTags(q.form),
	}, q.now)
	x.provisionedAt = q.now.Add(s.opts.LBProvisionDelay)
	if s.opts.LBProvisionDelay == 0 {
		x.provisionedAt = time.Time{}
	}
	v := x.view(q.now)
	if s.opts.LBProvisionDelay > 0 {
		v.State = "provisioning"
	}
	return writeQuery(q, elbNS, createLBResult{LoadBalancers: []xmlLB{xmlLBOf(v)}})
}

type xmlTagDescription struct {
	ResourceArn string   `xml:"ResourceArn"`
	Tags        []xmlTag `xml:"Tags>member"`
}

type describeTagsResult struct {
	XMLName         xml.Name            `xml:"DescribeTagsResult"`
	TagDescriptions []xmlTagDescription `xml:"TagDescriptions>member"`
}

// tagsOf returns the tag map of a load balancer or listener ARN.
func (reg *elbRegion) tagsOf(arn string) (map[string]string, *apiError) {
	if x := reg.lbs[arn]; x != nil {
		return x.Tags, nil
	}
	if l := reg.listeners[arn]; l != nil {
		return l.tags, nil
	}
	if strings.Contains(arn, ":listener/") {
		return nil, errorf(http.StatusBadRequest, "ListenerNotFound", "Listener '%s' not found", arn)
	}
	return nil, errorf(http.StatusBadRequest, "LoadBalancerNotFound", "Load balancer '%s' not found", arn)
}

func (s *Server) elbDescribeTags(q *request, reg *elbRegion) *apiError {
	arns := formList(q.form, "ResourceArns.member")
	if len(arns) == 0 || len(arns) > 20 {
		return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'resourceArns' failed to satisfy constraint: Member must have length less than or equal to 20 and greater than or equal to 1 (got %d)", len(arns))
	}
	var res describeTagsResult
	for _, a := range arns {
		tags, aerr := reg.tagsOf(a)
		if aerr != nil {
			return aerr
		}
		res.TagDescriptions = append(res.TagDescriptions, xmlTagDescription{ResourceArn: a, Tags: xmlTags(tags)})
	}
	return writeQuery(q, elbNS, res)
}

func (s *Server) elbChangeTags(q *request, reg *elbRegion) *apiError {
	arns := formList(q.form, "ResourceArns.member")
	if len(arns) == 0 || len(arns) > 20 {
		return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'resourceArns' failed to satisfy constraint: Member must have length less than or equal to 20 and greater than or equal to 1")
	}
	add := formTags(q.form)
	remove := formList(q.form, "TagKeys.member")
	for _, a := range arns {
		tags, aerr := reg.tagsOf(a)
		if aerr != nil {
			return aerr
		}
		if q.op == "AddTags" {
			n := len(tags)
			for k := range add {
				if _, ok := tags[k]; !ok {
					n++
				}
			}
			if n > 50 {
				return errorf(http.StatusBadRequest, "TooManyTags", "You've reached the limit on the number of tags for this resource")
			}
		}
	}
	for _, a := range arns {
		tags, _ := reg.tagsOf(a)
		for k, v := range add {
			tags[k] = v
		}
		for _, k := range remove {
			delete(tags, k)
		}
	}
	return writeQuery(q, elbNS, nil)
}

type xmlAction struct {
	Type           string `xml:"Type"`
	TargetGroupArn string `xml:"TargetGroupArn,omitempty"`
}

type xmlListener struct {
	ListenerArn     string      `xml:"ListenerArn"`
	LoadBalancerArn string      `xml:"LoadBalancerArn"`
	Port            int32       `xml:"Port"`
	Protocol        string      `xml:"Protocol"`
	DefaultActions  []xmlAction `xml:"DefaultActions>member"`
}

func xmlListenerOf(l *elbListener) xmlListener {
	x := xmlListener{ListenerArn: l.ARN, LoadBalancerArn: l.LoadBalancerARN, Port: l.Port, Protocol: l.Protocol}
	if l.TargetGroupARN != "" {
		x.DefaultActions = []xmlAction{{Type: "forward", TargetGroupArn: l.TargetGroupARN}}
	}
	return x
}

type describeListenersResult struct {
	XMLName    xml.Name      `xml:"DescribeListenersResult"`
	Listeners  []xmlListener `xml:"Listeners>member"`
	NextMarker string        `xml:"NextMarker,omitempty"`
}

func (s *Server) elbDescribeListeners(q *request, reg *elbRegion) *apiError {
	size, aerr := pageSize(q, 400)
	if aerr != nil {
		return aerr
	}
	lbArn := q.form.Get("LoadBalancerArn")
	arns := formList(q.form, "ListenerArns.member")
	if lbArn == "" && len(arns) == 0 {
		return errorf(http.StatusBadRequest, "ValidationError", "You must specify either listener ARNs or a load balancer ARN")
	}
	var picked []*elbListener
	if lbArn != "" {
		lb := reg.lbs[lbArn]
		if lb == nil {
			return errorf(http.StatusBadRequest, "LoadBalancerNotFound", "Load balancer '%s' not found", lbArn)
		}
		for _, a := range lb.listeners {
			picked = append(picked, reg.listeners[a])
		}
	} else {
		for _, a := range arns {
			l := reg.listeners[a]
			if l == nil {
				return errorf(http.StatusBadRequest, "ListenerNotFound", "One or more listeners not found")
			}
			picked = append(picked, l)
		}
	}
	page, next, ok := paginate(picked, q.form.Get("Marker"), size)
	if !ok {
		return errorf(http.StatusBadRequest, "ValidationError", "Invalid marker")
	}
	res := describeListenersResult{NextMarker: next}
	for _, l := range page {
		res.Listeners = append(res.Listeners, xmlListenerOf(l))
	}
	return writeQuery(q, elbNS, res)
}

type createListenerResult struct {
	XMLName   xml.Name      `xml:"CreateListenerResult"`
	Listeners []xmlListener `xml:"Listeners>member"`
}

func (s *Server) elbCreateListener(q *request, reg *elbRegion) *apiError {
	if bad := unknownParams(q.form, "LoadBalancerArn", "Port", "Protocol", "DefaultActions.", "Certificates.", "SslPolicy", "Tags."); len(bad) > 0 {
		return unsupported("ValidationError", "CreateListener parameters %v are not modelled", bad)
	}
	port, err := strconv.Atoi(q.form.Get("Port"))
	if err != nil || port < 1 || port > 65535 {
		return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'port' failed to satisfy constraint: Member must have value between 1 and 65535", q.form.Get("Port"))
	}
	l := Listener{LoadBalancerARN: q.form.Get("LoadBalancerArn"), Port: int32(port), Protocol: q.form.Get("Protocol")}
	for _, a := range formStructs(q.form, "DefaultActions.member", "Type", "TargetGroupArn") {
		if a["Type"] == "forward" {
			l.TargetGroupARN = a["TargetGroupArn"]
		}
	}
	x, aerr := s.addListenerLocked(reg, l)
	if aerr != nil {
		return aerr
	}
	for k, v := range formTags(q.form) {
		x.tags[k] = v
	}
	return writeQuery(q, elbNS, createListenerResult{Listeners: []xmlListener{xmlListenerOf(x)}})
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
