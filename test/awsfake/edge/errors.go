package edge

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
)

// apiError is an AWS error response. The service's protocol decides its wire
// shape: REST-XML <ErrorResponse> or REST-JSON X-Amzn-Errortype + {"message"}.
type apiError struct {
	status  int
	code    string
	message string
	// resourceType is the extra member of API Gateway v2's NotFoundException.
	resourceType string
	// unexpected marks a request that matched a route but carried content the
	// stand-in does not model, so it is also recorded in Unexpected().
	unexpected bool
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

type xmlErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	NS        string   `xml:"xmlns,attr,omitempty"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func (v *service) writeError(w http.ResponseWriter, reqID string, e *apiError) {
	if v.proto == protoXML {
		typ := "Sender"
		if e.status >= 500 {
			typ = "Receiver"
		}
		body, _ := xml.Marshal(xmlErrorResponse{NS: v.xmlNS, Type: typ, Code: e.code, Message: e.message, RequestID: reqID})
		body = append([]byte(xml.Header), body...)
		w.Header().Set("Content-Type", "text/xml")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(e.status)
		_, _ = w.Write(body)
		return
	}
	payload := map[string]string{"message": e.message}
	if e.resourceType != "" {
		payload["resourceType"] = e.resourceType
	}
	body, _ := json.Marshal(payload)
	// API Gateway appends a Coral namespace after a colon; the SDK strips it.
	w.Header().Set("X-Amzn-Errortype", e.code+":http://internal.amazon.com/coral/com.amazonaws.backplane.controlplane/")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}
