package awsfake

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// EC2 (the EC2 query protocol): DescribeVpcs, DescribeSubnets and
// DescribeInstanceTypes, over VPCs and subnets a test adds with AddVPC and
// AddSubnet. Filters: vpc-id, subnet-id, state, tag-key and tag:<key>;
// any other filter is answered with an error and recorded as unexpected.

const ec2NS = "http://ec2.amazonaws.com/doc/2016-11-15/"

var ec2Ops = map[string]bool{"DescribeVpcs": true, "DescribeSubnets": true, "DescribeInstanceTypes": true}

// VPC is a VPC of the EC2 stand-in.
type VPC struct {
	ID   string // e.g. "vpc-0a1b2c3d4e5f60001"
	CIDR string // default "10.0.0.0/16"
	Tags map[string]string
}

// Subnet is a subnet of the EC2 stand-in.
type Subnet struct {
	ID    string
	VpcID string
	AZ    string // default region + "a"
	CIDR  string // default "10.0.N.0/24"
	Tags  map[string]string
}

type ec2Region struct {
	vpcs    map[string]*VPC
	subnets map[string]*Subnet
}

func (s *Server) ec2RegionLocked(region string) *ec2Region {
	r := s.rd.ec2[region]
	if r == nil {
		r = &ec2Region{vpcs: map[string]*VPC{}, subnets: map[string]*Subnet{}}
		s.rd.ec2[region] = r
	}
	return r
}

// AddVPC adds (or replaces) a VPC in region.
func (s *Server) AddVPC(region string, v VPC) {
	if v.CIDR == "" {
		v.CIDR = "10.0.0.0/16"
	}
	v.Tags = copyMap(v.Tags)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ec2RegionLocked(region).vpcs[v.ID] = &v
}

// AddSubnet adds (or replaces) a subnet in region; its VPC need not exist
// (a test can break that on purpose).
func (s *Server) AddSubnet(region string, sn Subnet) {
	if sn.AZ == "" {
		sn.AZ = region + "a"
	}
	sn.Tags = copyMap(sn.Tags)
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.ec2RegionLocked(region)
	if sn.CIDR == "" {
		sn.CIDR = fmt.Sprintf("10.0.%d.0/24", len(reg.subnets))
	}
	reg.subnets[sn.ID] = &sn
}

// SetSubnetTag sets (value != "") or removes (value == "") one tag of a
// subnet; it reports whether the subnet exists.
func (s *Server) SetSubnetTag(region, subnetID, key, value string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	sn := s.ec2RegionLocked(region).subnets[subnetID]
	if sn == nil {
		return false
	}
	if sn.Tags == nil {
		sn.Tags = map[string]string{}
	}
	if value == "" {
		delete(sn.Tags, key)
	} else {
		sn.Tags[key] = value
	}
	return true
}

// RemoveSubnet deletes a subnet; it reports whether there was one.
func (s *Server) RemoveSubnet(region, subnetID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.ec2RegionLocked(region)
	_, ok := reg.subnets[subnetID]
	delete(reg.subnets, subnetID)
	return ok
}

// instanceVCPUs are the default vCPUs of the instance types the stand-in
// knows; DescribeInstanceTypes rejects others as AWS rejects unknown types.
var instanceVCPUs = map[string]int{
	"t3.medium": 2, "t3.large": 2, "t3.xlarge": 4,
	"m5.large": 2, "m5.xlarge": 4, "m5.2xlarge": 8, "m5.4xlarge": 16,
	"m6i.large": 2, "m6i.xlarge": 4, "m6i.2xlarge": 8, "m6i.4xlarge": 16, "m6i.8xlarge": 32,
	"m7i.large": 2, "m7i.xlarge": 4, "m7i.2xlarge": 8,
	"c6i.large": 2, "c6i.xlarge": 4, "c6i.2xlarge": 8, "c6i.4xlarge": 16,
	"r6i.large": 2, "r6i.xlarge": 4, "r6i.2xlarge": 8,
}

// ec2Service serves signing name "ec2".
type ec2Service struct{ s *Server }

func (h *ec2Service) form(r *http.Request) url.Values {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	f, err := queryForm(r, body)
	if err != nil {
		return nil
	}
	return f
}

func (h *ec2Service) Operation(r *http.Request) string {
	if r.URL.Path != "/" && r.URL.Path != "" {
		return ""
	}
	f := h.form(r)
	if f == nil || !ec2Ops[f.Get("Action")] {
		return ""
	}
	return f.Get("Action")
}

func (h *ec2Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s := h.s
	s.mu.Lock()
	reqID := newRequestID(s.nextSeq())
	s.mu.Unlock()
	form := h.form(r)
	region := ""
	if sig, err := parseSignature(r); err == nil {
		region = sig.region
	}
	var out any
	var aerr *apiError
	switch op := form.Get("Action"); op {
	case "DescribeVpcs":
		out, aerr = s.ec2DescribeVpcs(region, form)
	case "DescribeSubnets":
		out, aerr = s.ec2DescribeSubnets(region, form)
	case "DescribeInstanceTypes":
		out, aerr = s.ec2DescribeInstanceTypes(form)
	}
	if aerr != nil {
		if aerr.unexpected {
			s.recordUnexpected(r, ServiceEC2, aerr.message)
		}
		writeEC2Error(w, reqID, aerr)
		return
	}
	b, err := xml.Marshal(out)
	if err != nil {
		writeEC2Error(w, reqID, errorf(http.StatusInternalServerError, "InternalError", "awsfake: encoding response: %v", err))
		return
	}
	// The request id goes first, as EC2 writes it.
	b = bytes.Replace(b, []byte("<requestId></requestId>"), []byte("<requestId>"+reqID+"</requestId>"), 1)
	b = append([]byte(xml.Header), b...)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

type ec2Tag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func ec2Tags(m map[string]string) []ec2Tag {
	out := make([]ec2Tag, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, ec2Tag{Key: k, Value: m[k]})
	}
	return out
}

type ec2VpcXML struct {
	VpcID     string   `xml:"vpcId"`
	State     string   `xml:"state"`
	CidrBlock string   `xml:"cidrBlock"`
	OwnerID   string   `xml:"ownerId"`
	IsDefault bool     `xml:"isDefault"`
	Tags      []ec2Tag `xml:"tagSet>item"`
}

type ec2SubnetXML struct {
	SubnetID                string   `xml:"subnetId"`
	SubnetArn               string   `xml:"subnetArn"`
	VpcID                   string   `xml:"vpcId"`
	State                   string   `xml:"state"`
	AvailabilityZone        string   `xml:"availabilityZone"`
	CidrBlock               string   `xml:"cidrBlock"`
	AvailableIPAddressCount int      `xml:"availableIpAddressCount"`
	OwnerID                 string   `xml:"ownerId"`
	Tags                    []ec2Tag `xml:"tagSet>item"`
}

type ec2Filter struct {
	name   string
	values []string
}

// ec2Filters reads Filter.N.Name / Filter.N.Value.M.
func ec2Filters(form url.Values) []ec2Filter {
	var out []ec2Filter
	for i := 1; ; i++ {
		name, ok := form["Filter."+strconv.Itoa(i)+".Name"]
		if !ok {
			return out
		}
		out = append(out, ec2Filter{name: name[0], values: formFlat(form, "Filter."+strconv.Itoa(i)+".Value")})
	}
}

// formFlat reads an EC2 flat list: prefix.1, prefix.2, …
func formFlat(form url.Values, prefix string) []string { return formList(form, prefix) }

// matches applies one filter to a resource's attributes and tags; ok is
// false for a filter the stand-in does not model.
func (f ec2Filter) matches(attrs, tags map[string]string) (match, ok bool) {
	var have []string
	switch {
	case strings.HasPrefix(f.name, "tag:"):
		if v, ok := tags[strings.TrimPrefix(f.name, "tag:")]; ok {
			have = []string{v}
		}
	case f.name == "tag-key":
		have = sortedKeys(tags)
	default:
		v, ok := attrs[f.name]
		if !ok {
			return false, false
		}
		have = []string{v}
	}
	for _, h := range have {
		for _, want := range f.values {
			if ec2Glob(want, h) {
				return true, true
			}
		}
	}
	return false, true
}

// ec2Glob matches EC2 filter values, where * and ? are wildcards.
func ec2Glob(pattern, s string) bool {
	if pattern == "" {
		return s == ""
	}
	switch pattern[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if ec2Glob(pattern[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && ec2Glob(pattern[1:], s[1:])
	}
	return s != "" && s[0] == pattern[0] && ec2Glob(pattern[1:], s[1:])
}

func applyFilters(filters []ec2Filter, attrs, tags map[string]string) (bool, *apiError) {
	for _, f := range filters {
		m, ok := f.matches(attrs, tags)
		if !ok {
			return false, unsupported("InvalidParameterValue", "filter %q is not modelled", f.name)
		}
		if !m {
			return false, nil
		}
	}
	return true, nil
}

// checkFilters refuses filters outside the modelled attribute names (and
// tag-key, tag:<key>) even when there is nothing to filter.
func checkFilters(filters []ec2Filter, attrs ...string) *apiError {
	probe := map[string]string{}
	for _, a := range attrs {
		probe[a] = ""
	}
	for _, f := range filters {
		if _, ok := f.matches(probe, nil); !ok {
			return unsupported("InvalidParameterValue", "filter %q is not modelled", f.name)
		}
	}
	return nil
}

func ec2Paged(form url.Values) *apiError {
	if form.Get("NextToken") != "" {
		return unsupported("InvalidNextToken", "pagination is not modelled (every result fits one page)")
	}
	return nil
}

func (s *Server) ec2DescribeVpcs(region string, form url.Values) (any, *apiError) {
	if bad := unknownParams(form, "VpcId.", "Filter.", "MaxResults", "NextToken", "DryRun"); len(bad) > 0 {
		return nil, unsupported("InvalidParameterValue", "unmodelled parameters %v", bad)
	}
	if aerr := ec2Paged(form); aerr != nil {
		return nil, aerr
	}
	ids := formFlat(form, "VpcId")
	filters := ec2Filters(form)
	if aerr := checkFilters(filters, "vpc-id", "state", "cidr", "cidr-block"); aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.ec2RegionLocked(region)
	for _, id := range ids {
		if reg.vpcs[id] == nil {
			return nil, errorf(http.StatusBadRequest, "InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
		}
	}
	res := struct {
		XMLName   xml.Name    `xml:"DescribeVpcsResponse"`
		NS        string      `xml:"xmlns,attr"`
		RequestID string      `xml:"requestId"`
		Vpcs      []ec2VpcXML `xml:"vpcSet>item"`
	}{NS: ec2NS}
	for _, id := range sortedKeys(reg.vpcs) {
		v := reg.vpcs[id]
		if len(ids) > 0 && !containsString(ids, id) {
			continue
		}
		ok, aerr := applyFilters(filters, map[string]string{"vpc-id": v.ID, "state": "available", "cidr": v.CIDR, "cidr-block": v.CIDR}, v.Tags)
		if aerr != nil {
			return nil, aerr
		}
		if ok {
			res.Vpcs = append(res.Vpcs, ec2VpcXML{VpcID: v.ID, State: "available", CidrBlock: v.CIDR, OwnerID: s.opts.AccountID, Tags: ec2Tags(v.Tags)})
		}
	}
	return res, nil
}

func (s *Server) ec2DescribeSubnets(region string, form url.Values) (any, *apiError) {
	if bad := unknownParams(form, "SubnetId.", "Filter.", "MaxResults", "NextToken", "DryRun"); len(bad) > 0 {
		return nil, unsupported("InvalidParameterValue", "unmodelled parameters %v", bad)
	}
	if aerr := ec2Paged(form); aerr != nil {
		return nil, aerr
	}
	ids := formFlat(form, "SubnetId")
	filters := ec2Filters(form)
	if aerr := checkFilters(filters, "subnet-id", "vpc-id", "state", "availability-zone", "cidr-block"); aerr != nil {
		return nil, aerr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.ec2RegionLocked(region)
	for _, id := range ids {
		if reg.subnets[id] == nil {
			return nil, errorf(http.StatusBadRequest, "InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	res := struct {
		XMLName   xml.Name       `xml:"DescribeSubnetsResponse"`
		NS        string         `xml:"xmlns,attr"`
		RequestID string         `xml:"requestId"`
		Subnets   []ec2SubnetXML `xml:"subnetSet>item"`
	}{NS: ec2NS}
	for _, id := range sortedKeys(reg.subnets) {
		sn := reg.subnets[id]
		if len(ids) > 0 && !containsString(ids, id) {
			continue
		}
		attrs := map[string]string{"subnet-id": sn.ID, "vpc-id": sn.VpcID, "state": "available", "availability-zone": sn.AZ, "cidr-block": sn.CIDR}
		ok, aerr := applyFilters(filters, attrs, sn.Tags)
		if aerr != nil {
			return nil, aerr
		}
		if ok {
			res.Subnets = append(res.Subnets, ec2SubnetXML{
				SubnetID: sn.ID, SubnetArn: "arn:aws:ec2:" + region + ":" + s.opts.AccountID + ":subnet/" + sn.ID,
				VpcID: sn.VpcID, State: "available", AvailabilityZone: sn.AZ, CidrBlock: sn.CIDR,
				AvailableIPAddressCount: 251, OwnerID: s.opts.AccountID, Tags: ec2Tags(sn.Tags),
			})
		}
	}
	return res, nil
}

type ec2InstanceTypeXML struct {
	InstanceType string `xml:"instanceType"`
	VCPUs        int    `xml:"vCpuInfo>defaultVCpus"`
	Memory       int    `xml:"memoryInfo>sizeInMiB"`
}

func (s *Server) ec2DescribeInstanceTypes(form url.Values) (any, *apiError) {
	if bad := unknownParams(form, "InstanceType.", "MaxResults", "NextToken", "DryRun"); len(bad) > 0 {
		return nil, unsupported("InvalidParameterValue", "unmodelled parameters %v", bad)
	}
	if aerr := ec2Paged(form); aerr != nil {
		return nil, aerr
	}
	types := formFlat(form, "InstanceType")
	if len(types) == 0 {
		return nil, unsupported("InvalidParameterValue", "listing every instance type is not modelled; name them with InstanceType.N")
	}
	var bad []string
	for _, t := range types {
		if _, ok := instanceVCPUs[t]; !ok {
			bad = append(bad, t)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return nil, errorf(http.StatusBadRequest, "InvalidInstanceType", "The following supplied instance types do not exist: [%s]", strings.Join(bad, ", "))
	}
	res := struct {
		XMLName   xml.Name             `xml:"DescribeInstanceTypesResponse"`
		NS        string               `xml:"xmlns,attr"`
		RequestID string               `xml:"requestId"`
		Types     []ec2InstanceTypeXML `xml:"instanceTypeSet>item"`
	}{NS: ec2NS}
	for _, t := range types {
		res.Types = append(res.Types, ec2InstanceTypeXML{InstanceType: t, VCPUs: instanceVCPUs[t], Memory: instanceVCPUs[t] * 4096})
	}
	return res, nil
}
