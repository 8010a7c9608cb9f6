// Package edge holds stateful wire-level stand-ins for the AWS edge services
// drbot's cutover touches: Route 53, CloudFront and API Gateway (v1 and v2).
// The real aws-sdk-go-v2 clients talk to them over HTTP, so what a test
// exercises is the same serialization, error decoding, paging and waiting as
// in production. Anything a handler does not understand is answered with an
// error and recorded, so a test can assert that Unexpected() is empty.
//
// Seed state with the Add* helpers, serve the handlers (each under its SigV4
// signing name, see the awsfake package), point the SDK at the server and
// read the outcome back with the getters:
//
//	svc := edge.New(edge.Options{Route53SyncDelay: 100 * time.Millisecond})
//	zone := svc.AddHostedZone("example.com")
//	svc.AddRecord(zone, edge.RecordSet{Name: "app.example.com", Type: "A",
//		AliasTarget: &edge.AliasTarget{DNSName: "old-alb.elb.amazonaws.com", HostedZoneID: "Z35SXDOTRQ7X7K"}})
//	// ... run the cutover with route53.NewFromConfig(cfg) against the server ...
//	rec, _ := svc.Record(zone, "app.example.com", "A", "")
//	if len(svc.Unexpected()) != 0 { ... }
package edge

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Handler serves one AWS signing name.
type Handler interface {
	http.Handler
	// Operation names the AWS operation r would invoke, for the call log and
	// fault injection; "" when the request matches no known operation.
	Operation(r *http.Request) string
}

// Options tune the asynchronous parts of the services.
type Options struct {
	// Clock is the time source for timestamps and state transitions; nil means time.Now.
	Clock func() time.Time
	// Route53SyncDelay is how long a change stays PENDING; zero means INSYNC at the first GetChange.
	Route53SyncDelay time.Duration
	// CloudFrontDeployDelay is how long a distribution stays InProgress after an update.
	CloudFrontDeployDelay time.Duration
}

// accountID is the made-up account every ARN and error message uses.
const accountID = "123456789012"

// maxBody bounds request bodies; the largest legitimate one is a
// DistributionConfig, well under this.
const maxBody = 8 << 20

// Requests above bodyRaceThreshold bytes are answered bodyRaceDelay late; see WrapTransport.
const (
	bodyRaceThreshold = 3 << 10
	bodyRaceDelay     = 20 * time.Millisecond
)

// Services is the shared state behind the three handlers.
type Services struct {
	mu    sync.Mutex
	opts  Options
	seq   uint64
	unexp []string

	// Route 53
	zones     map[string]*hostedZone
	zoneOrder []string
	changes   map[string]*change

	// CloudFront
	dists     map[string]*distribution
	distOrder []string

	// API Gateway v1 and v2 share one id space, as they do in AWS.
	restAPIs     map[string]*restAPI
	restAPIOrder []string
	httpAPIs     map[string]*httpAPI
	httpAPIOrder []string

	route53, cloudfront, apigateway *service
}

// New returns empty services.
func New(opts Options) *Services {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	s := &Services{
		opts:     opts,
		zones:    map[string]*hostedZone{},
		changes:  map[string]*change{},
		dists:    map[string]*distribution{},
		restAPIs: map[string]*restAPI{},
		httpAPIs: map[string]*httpAPI{},
	}
	s.route53 = &service{s: s, name: "route53", proto: protoXML, xmlNS: route53NS, routes: s.route53Routes()}
	s.cloudfront = &service{s: s, name: "cloudfront", proto: protoXML, xmlNS: cloudfrontNS, routes: s.cloudfrontRoutes()}
	s.apigateway = &service{s: s, name: "apigateway", proto: protoJSON, routes: append(s.apigatewayRoutes(), s.apigatewayV2Routes()...)}
	return s
}

// Route53 serves signing name "route53" (REST-XML).
func (s *Services) Route53() Handler { return s.route53 }

// CloudFront serves signing name "cloudfront" (REST-XML).
func (s *Services) CloudFront() Handler { return s.cloudfront }

// APIGateway serves signing name "apigateway": v1 under /restapis and v2 under /v2 (REST-JSON).
func (s *Services) APIGateway() Handler { return s.apigateway }

// Unexpected lists the requests no handler understood, as "METHOD /path",
// with ": reason" appended when the route was known but the content was not.
func (s *Services) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexp...)
}

func (s *Services) recordUnexpected(r *http.Request, reason string) {
	entry := r.Method + " " + r.URL.Path
	if reason != "" {
		entry += ": " + reason
	}
	s.mu.Lock()
	s.unexp = append(s.unexp, entry)
	s.mu.Unlock()
}

// now must be called with s.mu held (Clock may be a test's fake).
func (s *Services) now() time.Time { return s.opts.Clock().UTC() }

// next returns a fresh counter value; callers hold s.mu.
func (s *Services) next() uint64 {
	s.seq++
	return s.seq
}

// Ids look like AWS's without being random, so failures reproduce.
const (
	idAlphabetUpper = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	idAlphabetLower = "0123456789abcdefghijklmnopqrstuvwxyz"
)

// makeID renders n in width characters of alphabet: hashed filler first so
// ids do not look alike, then n itself in the last four characters so ids
// never collide (up to len(alphabet)^4 of them).
func makeID(n uint64, width int, alphabet string) string {
	base := uint64(len(alphabet))
	b := make([]byte, width)
	x := n * 0x9E3779B97F4A7C15
	for i := 0; i < width-4; i++ {
		x ^= x >> 29
		b[i] = alphabet[x%base]
		x = x*0xBF58476D1CE4E5B9 + 1
	}
	for i := width - 1; i >= width-4 && i >= 0; i-- {
		b[i] = alphabet[n%base]
		n /= base
	}
	return string(b)
}

func (s *Services) requestID() string {
	s.mu.Lock()
	n := s.next()
	s.mu.Unlock()
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", uint32(n*2654435761), n&0xffff, n&0xfff, (n>>12)&0xfff, n)
}

type protocol int

const (
	protoXML protocol = iota
	protoJSON
)

// params are the {name} segments of a matched route.
type params map[string]string

// reply is a successful response; body is marshalled by the service's protocol
// unless it is []byte, which is written as is.
type reply struct {
	status int
	header http.Header
	body   any
}

type handlerFunc func(r *http.Request, p params) (reply, error)

type route struct {
	method  string
	pattern []string // path segments; "{x}" binds a segment
	op      string
	handle  handlerFunc
}

func newRoute(method, path, op string, h handlerFunc) route {
	return route{method: method, pattern: strings.Split(strings.Trim(path, "/"), "/"), op: op, handle: h}
}

type service struct {
	s      *Services
	name   string
	proto  protocol
	xmlNS  string
	routes []route
}

func (v *service) match(r *http.Request) (*route, params) {
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	for i := range v.routes {
		rt := &v.routes[i]
		if rt.method != r.Method || len(rt.pattern) != len(segs) {
			continue
		}
		p := params{}
		ok := true
		for j, pat := range rt.pattern {
			seg, err := url.PathUnescape(segs[j])
			if err != nil {
				ok = false
				break
			}
			if strings.HasPrefix(pat, "{") {
				if seg == "" {
					ok = false
					break
				}
				p[strings.Trim(pat, "{}")] = seg
			} else if pat != seg {
				ok = false
				break
			}
		}
		if ok {
			return rt, p
		}
	}
	return nil, nil
}

func (v *service) Operation(r *http.Request) string {
	if rt, _ := v.match(r); rt != nil {
		return rt.op
	}
	return ""
}

func (v *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := v.s.requestID()
	w.Header().Set("X-Amzn-Requestid", reqID)
	rt, p := v.match(r)
	if rt == nil {
		v.s.recordUnexpected(r, "")
		v.writeError(w, reqID, &apiError{
			status:  http.StatusNotFound,
			code:    "UnknownOperationException",
			message: fmt.Sprintf("awsfake/edge: %s stand-in does not implement %s %s", v.name, r.Method, r.URL.Path),
		})
		return
	}
	rep, err := rt.handle(r, p)
	if r.ContentLength > bodyRaceThreshold {
		// Best effort for clients without WrapTransport: let the client's
		// transport finish with a large request body before it sees the answer.
		time.Sleep(bodyRaceDelay)
	}
	if err != nil {
		ae, ok := err.(*apiError)
		if !ok {
			ae = &apiError{status: http.StatusInternalServerError, code: "InternalFailure", message: err.Error()}
		}
		if ae.unexpected {
			v.s.recordUnexpected(r, ae.message)
		}
		v.writeError(w, reqID, ae)
		return
	}
	for k, vals := range rep.header {
		for _, val := range vals {
			w.Header().Add(k, val)
		}
	}
	status := rep.status
	if status == 0 {
		status = http.StatusOK
	}
	var body []byte
	switch b := rep.body.(type) {
	case nil:
	case []byte:
		body = b
	default:
		var merr error
		if v.proto == protoXML {
			body, merr = xml.Marshal(b)
			body = append([]byte(xml.Header), body...)
		} else {
			body, merr = json.Marshal(b)
		}
		if merr != nil {
			v.writeError(w, reqID, &apiError{status: http.StatusInternalServerError, code: "InternalFailure",
				message: fmt.Sprintf("awsfake/edge: encoding %s response: %v", rt.op, merr)})
			return
		}
	}
	if body != nil {
		if v.proto == protoXML {
			w.Header().Set("Content-Type", "text/xml")
		} else {
			w.Header().Set("Content-Type", "application/json")
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// readBody reads a request body, bounded.
func readBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading request body: %w", err)
	}
	if len(b) > maxBody {
		return nil, fmt.Errorf("request body larger than %d bytes", maxBody)
	}
	return b, nil
}

// queryInt parses an optional integer query parameter.
func queryInt(r *http.Request, name string, def int) (int, bool) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, true
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// page returns the slice window [start, start+limit) of n items and the next
// start, or -1 when nothing follows.
func page(n, start, limit int) (lo, hi, next int) {
	if start > n {
		start = n
	}
	hi = start + limit
	if hi >= n {
		return start, n, -1
	}
	return start, hi, hi
}

// xmlNode keeps an XML element verbatim, so members the stand-in does not
// model survive a read-modify-write cycle.
type xmlNode struct {
	XMLName xml.Name
	Inner   []byte `xml:",innerxml"`
}

// stripNS drops the namespace inherited from the request's root so the node
// re-encodes without a redundant xmlns attribute.
func stripNS(nodes []xmlNode) []xmlNode {
	out := make([]xmlNode, len(nodes))
	for i, n := range nodes {
		out[i] = xmlNode{XMLName: xml.Name{Local: n.XMLName.Local}, Inner: append([]byte(nil), n.Inner...)}
	}
	return out
}

// isoTime is the timestamp format of the REST-XML services and API Gateway v2.
func isoTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// WrapTransport returns a RoundTripper for SDK clients that talk to these
// stand-ins (base nil means a clone of http.DefaultTransport).
//
// It works around a client-side race that only a loopback server is fast
// enough to hit: smithy-go closes a request body as soon as the response
// arrives, and a closed body's WriteTo returns io.EOF. When the request is
// larger than net/http's 4 KiB write buffer (an UpdateDistribution with two
// origins is), the server can answer before the transport's final EOF probe
// of the body; the transport takes that io.EOF for a write error and closes
// the connection under the response being read ("use of closed network
// connection"). Hiding WriterTo makes the probe a Read, whose io.EOF is benign.
func WrapTransport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport).Clone()
	}
	return bodyRaceFix{base}
}

type bodyRaceFix struct{ base http.RoundTripper }

// readOnlyBody exposes only Read and Close of a request body.
type readOnlyBody struct{ io.ReadCloser }

func (t bodyRaceFix) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return t.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	r2.Body = readOnlyBody{r.Body}
	return t.base.RoundTrip(r2)
}
