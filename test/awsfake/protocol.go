package awsfake

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// apiError is an AWS error response; the service's protocol decides its shape.
type apiError struct {
	status  int
	code    string
	message string
	// fields are extra members of a REST-JSON error body (EKS puts
	// clusterName, nodegroupName, addonName there).
	fields map[string]string
	// unexpected marks a request the stand-in does not model, so it is also
	// recorded in Unexpected().
	unexpected bool
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

// unsupported answers a known operation whose parameters the stand-in does not model.
func unsupported(code, format string, args ...any) *apiError {
	e := errorf(http.StatusBadRequest, code, "awsfake: "+format, args...)
	e.unexpected = true
	return e
}

func (e *apiError) with(k, v string) *apiError {
	if e.fields == nil {
		e.fields = map[string]string{}
	}
	e.fields[k] = v
	return e
}

type xmlErrorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// writeError writes an error without a request id (for requests that never
// got far enough to have one).
func writeError(w http.ResponseWriter, proto Protocol, reqID string, status int, code, message string) {
	writeAPIError(w, proto, reqID, &apiError{status: status, code: code, message: message})
}

// writeAPIError writes e in the shape the real service uses:
// REST-JSON: X-Amzn-Errortype header + {"__type", "message"};
// query and REST-XML: <ErrorResponse><Error><Type>Sender</Type><Code>…
func writeAPIError(w http.ResponseWriter, proto Protocol, reqID string, e *apiError) {
	if reqID != "" {
		w.Header().Set("X-Amzn-Requestid", reqID)
	}
	if proto == ProtocolRESTJSON {
		payload := map[string]string{"__type": e.code, "message": e.message}
		for k, v := range e.fields {
			payload[k] = v
		}
		body, _ := json.Marshal(payload)
		w.Header().Set("X-Amzn-Errortype", e.code)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(e.status)
		_, _ = w.Write(body)
		return
	}
	if proto == ProtocolEC2 {
		writeEC2Error(w, reqID, e)
		return
	}
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	body, _ := xml.Marshal(xmlErrorResponse{Type: typ, Code: e.code, Message: e.message, RequestID: reqID})
	body = append([]byte(xml.Header), body...)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

// writeJSON writes a REST-JSON success response.
func writeJSON(q *request, status int, v any) *apiError {
	body, err := json.Marshal(v)
	if err != nil {
		return errorf(http.StatusInternalServerError, "InternalFailure", "awsfake: encoding response: %v", err)
	}
	h := q.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("X-Amzn-Requestid", q.reqID)
	q.w.WriteHeader(status)
	_, _ = q.w.Write(body)
	return nil
}

// writeQuery writes a query-protocol success response:
// <OpResponse xmlns=…><OpResult>…</OpResult><ResponseMetadata>…
// result is a struct whose XMLName is "<Op>Result" (nil for empty results).
func writeQuery(q *request, xmlns string, result any) *apiError {
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	fmt.Fprintf(&buf, `<%sResponse xmlns="%s">`, q.op, xmlns)
	if result == nil {
		fmt.Fprintf(&buf, "<%sResult></%sResult>", q.op, q.op)
	} else {
		b, err := xml.Marshal(result)
		if err != nil {
			return errorf(http.StatusInternalServerError, "InternalFailure", "awsfake: encoding response: %v", err)
		}
		buf.Write(b)
	}
	fmt.Fprintf(&buf, "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>", q.reqID, q.op)
	h := q.w.Header()
	h.Set("Content-Type", "text/xml")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Set("X-Amzn-Requestid", q.reqID)
	q.w.WriteHeader(http.StatusOK)
	_, _ = q.w.Write(buf.Bytes())
	return nil
}

// epoch is a REST-JSON timestamp: epoch seconds with millisecond fraction.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	return []byte(strconv.FormatFloat(float64(time.Time(t).UnixMilli())/1000, 'f', 3, 64)), nil
}

// isoTime is a query/XML timestamp (ISO 8601, UTC, milliseconds).
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// formList collects prefix.1, prefix.2, … in order (query protocol lists).
func formList(form url.Values, prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[prefix+"."+strconv.Itoa(i)]
		if !ok {
			return out
		}
		out = append(out, v[0])
	}
}

// formStructs collects prefix.N.field values for N = 1, 2, … until a member
// has none of fields.
func formStructs(form url.Values, prefix string, fields ...string) []map[string]string {
	var out []map[string]string
	for i := 1; ; i++ {
		m := map[string]string{}
		for _, f := range fields {
			if v, ok := form[prefix+"."+strconv.Itoa(i)+"."+f]; ok {
				m[f] = v[0]
			}
		}
		if len(m) == 0 {
			return out
		}
		out = append(out, m)
	}
}

// formTags reads Tags.member.N.Key/Value.
func formTags(form url.Values) map[string]string {
	tags := map[string]string{}
	for _, m := range formStructs(form, "Tags.member", "Key", "Value") {
		tags[m["Key"]] = m["Value"]
	}
	return tags
}

// unknownParams reports form keys outside allowed (prefixes end with ".").
func unknownParams(form url.Values, allowed ...string) []string {
	var bad []string
next:
	for k := range form {
		if k == "Action" || k == "Version" || strings.HasPrefix(k, "X-Amz-") {
			continue
		}
		for _, a := range allowed {
			if k == a || (strings.HasSuffix(a, ".") && strings.HasPrefix(k, a)) {
				continue next
			}
		}
		bad = append(bad, k)
	}
	return bad
}

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

func xmlTags(m map[string]string) []xmlTag {
	out := make([]xmlTag, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, xmlTag{Key: k, Value: m[k]})
	}
	return out
}
