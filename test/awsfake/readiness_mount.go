package awsfake

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Signing names of the services drbot's readiness checks read.
const (
	ServiceECR           = "ecr"
	ServiceServiceQuotas = "servicequotas"
	ServiceEC2           = "ec2"
)

// readinessState is the state of ECR, Service Quotas and EC2; guarded by s.mu.
type readinessState struct {
	ecr    map[string]*ecrRegion // by region
	quotas map[string]float64    // region/service/quota → applied value
	ec2    map[string]*ec2Region // by region
}

// mountReadiness mounts ECR and Service Quotas (JSON 1.1) and EC2 (EC2
// query): the read-only calls of the readiness checks.
func (s *Server) mountReadiness() {
	s.rd = &readinessState{ecr: map[string]*ecrRegion{}, quotas: map[string]float64{}, ec2: map[string]*ec2Region{}}
	s.Mount(ServiceECR, &jsonRPCService{s: s, name: ServiceECR, prefix: "AmazonEC2ContainerRegistry_V20150921.", ops: s.ecrOps()}, ProtocolRESTJSON)
	s.Mount(ServiceServiceQuotas, &jsonRPCService{s: s, name: ServiceServiceQuotas, prefix: "ServiceQuotasV20190624.", ops: s.quotaOps()}, ProtocolRESTJSON)
	s.Mount(ServiceEC2, &ec2Service{s: s}, ProtocolEC2)
}

// jsonOp serves one JSON 1.1 operation: region from the credential scope,
// the request body, and the response document (or an error).
type jsonOp func(region string, body []byte) (any, *apiError)

// jsonRPCService serves an AWS JSON 1.1 protocol service: POST / with
// X-Amz-Target "<prefix><Operation>".
type jsonRPCService struct {
	s      *Server
	name   string
	prefix string
	ops    map[string]jsonOp
}

func (h *jsonRPCService) Operation(r *http.Request) string {
	t := r.Header.Get("X-Amz-Target")
	if r.Method != http.MethodPost || (r.URL.Path != "/" && r.URL.Path != "") || !strings.HasPrefix(t, h.prefix) {
		return ""
	}
	op := strings.TrimPrefix(t, h.prefix)
	if _, ok := h.ops[op]; !ok {
		return ""
	}
	return op
}

func (h *jsonRPCService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.s.mu.Lock()
	reqID := newRequestID(h.s.nextSeq())
	h.s.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	region := ""
	if sig, err := parseSignature(r); err == nil {
		region = sig.region
	}
	out, aerr := h.ops[h.Operation(r)](region, body)
	if aerr != nil {
		if aerr.unexpected {
			h.s.recordUnexpected(r, h.name, aerr.message)
		}
		writeAPIError(w, ProtocolRESTJSON, reqID, aerr)
		return
	}
	raw, err := json.Marshal(out)
	if err != nil {
		writeAPIError(w, ProtocolRESTJSON, reqID, errorf(http.StatusInternalServerError, "InternalFailure", "awsfake: encoding response: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
	w.Header().Set("X-Amzn-Requestid", reqID)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(raw)
}

// decodeStrict decodes a JSON request body into v, refusing members the
// stand-in does not model (they are recorded as unexpected).
func decodeStrict(body []byte, v any) *apiError {
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return unsupported("SerializationException", "request body: %v", err)
	}
	return nil
}

type ec2ErrorResponse struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

// writeEC2Error writes the EC2 query error shape:
// <Response><Errors><Error><Code>…</Code><Message>…</Message></Error></Errors><RequestID>…
func writeEC2Error(w http.ResponseWriter, reqID string, e *apiError) {
	body, _ := xml.Marshal(ec2ErrorResponse{Code: e.code, Message: e.message, RequestID: reqID})
	body = append([]byte(xml.Header), body...)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}
