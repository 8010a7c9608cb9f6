package awsfake

import (
	"net/http"
)

// Service Quotas: GetServiceQuota (the applied value) and
// GetAWSDefaultServiceQuota (AWS's default), per region. A quota a test
// never set answers its default; quotas the stand-in has no default for
// answer NoSuchResourceException, as unknown codes do in AWS.

// Quota codes drbot's readiness checks read.
const (
	QuotaEKSClusters = "L-1194D53C" // service "eks": Clusters per region
	QuotaEC2OnDemand = "L-1216C47A" // service "ec2": Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances, vCPUs
)

type quotaDefault struct {
	service, name, unit string
	value               float64
}

// quotaDefaults are AWS's documented defaults for the quotas drbot reads.
var quotaDefaults = map[string]quotaDefault{
	"eks/" + QuotaEKSClusters: {service: "Amazon Elastic Kubernetes Service (Amazon EKS)", name: "Clusters", unit: "None", value: 100},
	"ec2/" + QuotaEC2OnDemand: {service: "Amazon Elastic Compute Cloud (Amazon EC2)", name: "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances", unit: "None", value: 5},
}

// SetServiceQuota sets the applied value of a quota in region, e.g.
// SetServiceQuota("eu-west-1", "ec2", awsfake.QuotaEC2OnDemand, 256).
func (s *Server) SetServiceQuota(region, serviceCode, quotaCode string, value float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rd.quotas[region+"/"+serviceCode+"/"+quotaCode] = value
}

func (s *Server) quotaOps() map[string]jsonOp {
	return map[string]jsonOp{
		"GetServiceQuota":           func(region string, body []byte) (any, *apiError) { return s.getQuota(region, body, true) },
		"GetAWSDefaultServiceQuota": func(region string, body []byte) (any, *apiError) { return s.getQuota(region, body, false) },
	}
}

type serviceQuota struct {
	ServiceCode string  `json:"ServiceCode"`
	ServiceName string  `json:"ServiceName"`
	QuotaArn    string  `json:"QuotaArn"`
	QuotaCode   string  `json:"QuotaCode"`
	QuotaName   string  `json:"QuotaName"`
	Value       float64 `json:"Value"`
	Unit        string  `json:"Unit"`
	Adjustable  bool    `json:"Adjustable"`
	GlobalQuota bool    `json:"GlobalQuota"`
}

func (s *Server) getQuota(region string, body []byte, applied bool) (any, *apiError) {
	var in struct {
		ServiceCode string `json:"ServiceCode"`
		QuotaCode   string `json:"QuotaCode"`
		ContextID   string `json:"ContextId"`
	}
	if aerr := decodeStrict(body, &in); aerr != nil {
		return nil, aerr
	}
	if in.ServiceCode == "" || in.QuotaCode == "" {
		return nil, errorf(http.StatusBadRequest, "IllegalArgumentException", "ServiceCode and QuotaCode are required")
	}
	if in.ContextID != "" {
		return nil, unsupported("IllegalArgumentException", "ContextId is not modelled")
	}
	key := in.ServiceCode + "/" + in.QuotaCode
	def, known := quotaDefaults[key]
	s.mu.Lock()
	v, set := s.rd.quotas[region+"/"+key]
	s.mu.Unlock()
	if !known && !set {
		return nil, errorf(http.StatusBadRequest, "NoSuchResourceException", "The request failed because the specified service or quota does not exist: %s %s", in.ServiceCode, in.QuotaCode)
	}
	value := def.value
	if applied && set {
		value = v
	}
	name := def.name
	if name == "" {
		name = in.QuotaCode
	}
	return map[string]any{"Quota": serviceQuota{
		ServiceCode: in.ServiceCode, ServiceName: def.service, QuotaCode: in.QuotaCode, QuotaName: name,
		QuotaArn: "arn:aws:servicequotas:" + region + ":" + s.opts.AccountID + ":" + in.ServiceCode + "/" + in.QuotaCode,
		Value:    value, Unit: def.unit, Adjustable: true,
	}}, nil
}
