// Package awsfake is a stateful wire-level stand-in for the AWS services drbot
// calls: EKS, STS, IAM and ELBv2 here, the readiness checks' read-only ECR,
// Service Quotas and EC2 calls (readiness_mount.go), and the edge services
// (Route 53, CloudFront, API Gateway) mounted from package edge. One httptest server
// answers every service; requests are routed by the service name in their
// SigV4 credential scope, exactly the way the real aws-sdk-go-v2 clients sign
// them, so tests exercise the same serialization, error decoding, retries,
// paginators and waiters as production.
//
// The server also plays the EKS authenticator: TokenWebhookURL serves the
// TokenReview webhook a real kube-apiserver calls to check the bearer tokens
// drbot builds from presigned STS GetCallerIdentity requests.
//
// Anything the stand-in does not understand is answered with an error and
// recorded in Unexpected(); unless Options.AllowUnexpected is set, a test
// with unexpected requests fails at cleanup.
//
// Typical use in an end-to-end test:
//
//	srv := awsfake.New(t, awsfake.Options{EKSCreateDelay: 2 * time.Second})
//	srv.AddIdentity("AKIDDRBOT", "made-up", "arn:aws:sts::123456789012:assumed-role/drbot/run")
//	kc := kubeenv.Start(t, kubeenv.WithTokenWebhook(srv.TokenWebhookURL("eu-west-1", "dr")))
//	srv.BackClusterWith("eu-west-1", "dr", kc) // DescribeCluster reports kc's endpoint and CA
//	cfg := srv.Config("eu-west-1", "AKIDDRBOT", "made-up") // or srv.Env(...) for a drbot binary
//	// ... run drbot with cfg; it creates "dr", its access entry, and talks to kc with an EKS token ...
//	if n := srv.CallsTo("eks", "CreateCluster"); n != 1 { t.Errorf(...) }
package awsfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/drbot/drbot/test/awsfake/edge"
)

// DefaultAccountID is the account every ARN uses unless Options.AccountID is set.
const DefaultAccountID = "123456789012"

// Signing names of the services the server answers itself.
const (
	ServiceEKS   = "eks"
	ServiceSTS   = "sts"
	ServiceIAM   = "iam"
	ServiceELBv2 = "elasticloadbalancing"
	// ServiceWebhook names the TokenReview webhook in the call log.
	ServiceWebhook = "eks-token-webhook"
)

// maxBody bounds request bodies; real AWS requests drbot makes are far smaller.
const maxBody = 8 << 20

// Options tune the server. The zero value is usable.
type Options struct {
	// Clock is the time source for timestamps, state transitions and token
	// expiry; nil means time.Now.
	Clock func() time.Time
	// AccountID is the account of every ARN; empty means DefaultAccountID.
	AccountID string

	// EKSCreateDelay is how long a cluster stays CREATING (zero: ACTIVE at the first read).
	EKSCreateDelay time.Duration
	// EKSDeleteDelay is how long a cluster stays DELETING before it is gone.
	EKSDeleteDelay time.Duration
	// NodegroupCreateDelay is how long a node group stays CREATING.
	NodegroupCreateDelay time.Duration
	// NodegroupDeleteDelay is how long a node group stays DELETING.
	NodegroupDeleteDelay time.Duration
	// AddonCreateDelay is how long an add-on stays CREATING.
	AddonCreateDelay time.Duration
	// EKSUpdateDelay is how long an EKS update (UpdateClusterConfig,
	// UpdateNodegroupConfig) stays InProgress and the resource UPDATING.
	EKSUpdateDelay time.Duration
	// LBProvisionDelay is how long a load balancer made by CreateLoadBalancer
	// stays "provisioning".
	LBProvisionDelay time.Duration

	// StrictAuth rejects access keys that were not registered with AddIdentity
	// (or issued by AssumeRole) on every service. Without it only STS and the
	// token webhook insist on a known key; the others accept any well-formed
	// signature from an unknown key and log an empty Principal.
	StrictAuth bool
	// Edge tunes the edge services (Route 53 change propagation, CloudFront
	// deployment); its Clock defaults to Clock.
	Edge edge.Options

	// AllowUnexpected keeps cleanup from failing the test when requests were
	// recorded in Unexpected(); set it in tests that send bad requests on purpose.
	AllowUnexpected bool
}

// Protocol is the wire protocol of a service; it decides the shape of the
// error responses the server writes on the service's behalf.
type Protocol int

// Protocols of the AWS services.
const (
	ProtocolRESTJSON Protocol = iota + 1 // EKS, API Gateway
	ProtocolQuery                        // STS, IAM, ELBv2 (form in, XML out)
	ProtocolRESTXML                      // Route 53, CloudFront
	ProtocolEC2                          // EC2 (form in, XML out, <Response><Errors> errors)
)

// Handler serves one signing name mounted with Mount. Operation names the
// AWS operation a request invokes, "" when it matches none; the server uses
// it for the call log and fault injection and answers "" requests itself.
type Handler interface {
	http.Handler
	Operation(r *http.Request) string
}

// Call is one request in the call log. It holds no secrets.
type Call struct {
	Service   string // signing name, e.g. "eks", "elasticloadbalancing"
	Operation string // e.g. "CreateCluster"; "" when unknown
	Region    string // from the credential scope
	Status    int
	ErrorCode string // AWS error code when the server answered with an error it made itself
	Time      time.Time
	Principal string // caller ARN, "" for an unknown access key
	UserAgent string // drbot names the step making the call in it (recovery.StepFromUserAgent)
}

// Fault makes calls to one operation fail or slow down.
type Fault struct {
	// Code is the AWS error code, e.g. "ThrottlingException", "Throttling",
	// "ServiceUnavailable". Empty means only Latency applies.
	Code string
	// Message defaults to a short text naming the injected fault.
	Message string
	// Status defaults to 400.
	Status int
	// Times is how many calls are affected; zero or less means every call
	// until ClearFaults.
	Times int
	// Latency delays the response (before the error, if any).
	Latency time.Duration
}

type faultKey struct{ service, op string }

type mount struct {
	h     Handler
	proto Protocol
}

// Server is the stand-in. Create it with New.
type Server struct {
	t    testing.TB
	opts Options
	http *httptest.Server

	mu         sync.Mutex
	seq        uint64
	calls      []Call
	unexpected []string
	faults     map[faultKey]*Fault
	mounts     map[string]mount
	extraUnexp []func() []string

	identities map[string]*identity       // by access key id
	denied     map[string]map[string]bool // principal ARN → "svc:Action"

	eks     map[string]*eksRegion // by region
	backing map[string]Backing    // by region+"/"+cluster
	iam     *iamState
	elb     map[string]*elbRegion // by region

	placeholderCA []byte // PEM returned for clusters with no backing

	edge *edge.Services
	rd   *readinessState // ECR, Service Quotas, EC2 (readiness_mount.go)
}

// New starts a server on 127.0.0.1 and stops it when the test ends. Unless
// opts.AllowUnexpected is set, cleanup fails the test if any request was
// recorded in Unexpected().
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.AccountID == "" {
		opts.AccountID = DefaultAccountID
	}
	ca, err := selfSignedCAPEM()
	if err != nil {
		t.Fatalf("making the placeholder cluster CA: %v", err)
	}
	s := &Server{
		t:             t,
		opts:          opts,
		faults:        map[faultKey]*Fault{},
		mounts:        map[string]mount{},
		identities:    map[string]*identity{},
		denied:        map[string]map[string]bool{},
		eks:           map[string]*eksRegion{},
		backing:       map[string]Backing{},
		iam:           newIAMState(),
		elb:           map[string]*elbRegion{},
		placeholderCA: ca,
	}
	s.mountEdge()
	s.mountReadiness()
	s.http = httptest.NewServer(s)
	t.Cleanup(func() {
		s.http.Close()
		if !s.opts.AllowUnexpected {
			if u := s.Unexpected(); len(u) > 0 {
				t.Errorf("awsfake got %d unexpected request(s):\n  %s", len(u), strings.Join(u, "\n  "))
			}
		}
	})
	return s
}

// URL is the base URL of every service, e.g. "http://127.0.0.1:41234".
func (s *Server) URL() string { return s.http.URL }

// Config returns an aws.Config aimed at the server with static credentials.
// The retryer is left to the SDK default (standard, 3 attempts), so injected
// throttling is retried as it would be in production.
func (s *Server) Config(region, akid, secret string) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(akid, secret, ""),
		BaseEndpoint: aws.String(s.URL()),
	}
}

// Env returns the environment for running a drbot binary against the server:
// AWS_ENDPOINT_URL (and the per-service variables, for tools that read only
// those), region and static credentials.
func (s *Server) Env(region, akid, secret string) []string {
	env := []string{
		"AWS_ENDPOINT_URL=" + s.URL(),
		"AWS_REGION=" + region,
		"AWS_ACCESS_KEY_ID=" + akid,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_EC2_METADATA_DISABLED=true",
	}
	for _, id := range []string{"EKS", "STS", "IAM", "ELASTIC_LOAD_BALANCING_V2", "ROUTE_53", "CLOUDFRONT", "API_GATEWAY", "APIGATEWAYV2", "ECR", "SERVICE_QUOTAS", "EC2"} {
		env = append(env, "AWS_ENDPOINT_URL_"+id+"="+s.URL())
	}
	return env
}

// Mount serves every request signed for signingName with h. Requests are
// authenticated, logged and subject to faults and DenyAction before h sees
// them; the body can be read again by h.
func (s *Server) Mount(signingName string, h Handler, protocol Protocol) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mounts[signingName] = mount{h: h, proto: protocol}
}

// AddUnexpectedSource merges another recorder's unexpected requests (a
// mounted handler's own list) into Unexpected().
func (s *Server) AddUnexpectedSource(f func() []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extraUnexp = append(s.extraUnexp, f)
}

// Calls returns a copy of the call log in arrival order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// CallsTo counts logged calls to one operation of one service (signing name,
// or an alias such as "elbv2").
func (s *Server) CallsTo(service, operation string) int {
	service = canonicalService(service)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Service == service && c.Operation == operation {
			n++
		}
	}
	return n
}

// Unexpected lists requests the server (or a mounted handler) did not
// understand, one line each.
func (s *Server) Unexpected() []string {
	s.mu.Lock()
	out := append([]string(nil), s.unexpected...)
	extra := append([]func() []string(nil), s.extraUnexp...)
	s.mu.Unlock()
	for _, f := range extra {
		out = append(out, f()...)
	}
	return out
}

// Inject makes calls to service/operation fail with f (see Fault). service is
// a signing name or alias ("elbv2"); operation "*" matches every operation of
// the service. A later Inject for the same pair replaces the earlier one.
func (s *Server) Inject(service, operation string, f Fault) {
	if f.Status == 0 {
		f.Status = http.StatusBadRequest
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[faultKey{canonicalService(service), operation}] = &f
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[faultKey]*Fault{}
}

// DenyAction makes principalArn's calls to action (IAM form, e.g.
// "eks:CreateCluster", "iam:CreateRole", "elasticloadbalancing:DescribeTags")
// fail with AccessDenied, and SimulatePrincipalPolicy report "explicitDeny".
// principalArn is a user or role ARN; a role denies its assumed-role sessions.
func (s *Server) DenyAction(principalArn, action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.denied[principalArn] == nil {
		s.denied[principalArn] = map[string]bool{}
	}
	s.denied[principalArn][action] = true
}

func canonicalService(name string) string {
	switch strings.ToLower(name) {
	case "elbv2", "elasticloadbalancingv2", "elastic-load-balancing-v2":
		return ServiceELBv2
	case "apigatewayv2":
		return "apigateway"
	}
	return name
}

// iamPrefix is the service prefix of IAM action names for a signing name.
func iamPrefix(service string) string {
	return service // the signing names drbot uses coincide with the IAM prefixes
}

// now must not be called with s.mu held if Clock might call back into s.
func (s *Server) now() time.Time { return s.opts.Clock().UTC() }

// nextSeq returns a fresh counter value; callers hold s.mu.
func (s *Server) nextSeq() uint64 {
	s.seq++
	return s.seq
}

// request is one signed AWS request being served.
type request struct {
	w         *statusWriter
	r         *http.Request
	body      []byte
	form      url.Values // query protocol parameters (body, or URL query for GET)
	service   string
	region    string
	op        string
	proto     Protocol
	caller    *identity // nil for an unknown key
	principal string
	reqID     string
	now       time.Time
}

// statusWriter remembers the status and the error code the server wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
	code   string
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ServeHTTP routes a request by the service in its SigV4 credential scope.
func (s *Server) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, webhookPathPrefix) {
		s.serveWebhook(rw, r)
		return
	}
	w := &statusWriter{ResponseWriter: rw}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		s.recordUnexpected(r, "", "unreadable or oversized body")
		http.Error(w, "awsfake: unreadable or oversized body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	sig, err := parseSignature(r)
	if err != nil {
		s.recordUnexpected(r, "", err.Error())
		writeError(w, ProtocolQuery, "", http.StatusForbidden, "MissingAuthenticationToken", "awsfake: "+err.Error())
		return
	}
	q := &request{w: w, r: r, body: body, service: sig.service, region: sig.region, now: s.now()}
	s.mu.Lock()
	q.reqID = newRequestID(s.nextSeq())
	m, mounted := s.mounts[sig.service]
	s.mu.Unlock()

	switch {
	case mounted:
		q.proto = m.proto
		q.op = m.h.Operation(r)
		r.Body = io.NopCloser(bytes.NewReader(body))
	case sig.service == ServiceEKS:
		q.proto = ProtocolRESTJSON
		q.op, _ = matchEKSRoute(r)
	case sig.service == ServiceSTS || sig.service == ServiceIAM || sig.service == ServiceELBv2:
		q.proto = ProtocolQuery
		q.form, err = queryForm(r, body)
		if err != nil {
			s.recordUnexpected(r, sig.service, "unparseable form: "+err.Error())
			s.finish(q, errorf(http.StatusBadRequest, "MalformedQueryString", "awsfake: %v", err))
			return
		}
		q.op = q.form.Get("Action")
		if !knownQueryAction(sig.service, q.op) {
			q.op = ""
		}
	default:
		s.recordUnexpected(r, sig.service, "no stand-in for this service")
		q.proto = ProtocolRESTJSON
		s.finish(q, errorf(http.StatusNotFound, "UnknownOperationException", "awsfake: no stand-in for service %q", sig.service))
		return
	}
	if q.op == "" {
		what := r.Method + " " + r.URL.EscapedPath()
		if q.form != nil {
			what = fmt.Sprintf("Action=%q", q.form.Get("Action"))
		}
		s.recordUnexpected(r, sig.service, "unknown operation")
		status := http.StatusNotFound
		if q.proto == ProtocolQuery {
			status = http.StatusBadRequest
		}
		s.finish(q, errorf(status, "UnknownOperationException", "awsfake: %s has no operation for %s", sig.service, what))
		return
	}

	if aerr := s.authenticate(q, sig); aerr != nil {
		s.finish(q, aerr)
		return
	}
	if aerr := s.applyFault(q); aerr != nil {
		s.finish(q, aerr)
		return
	}
	if aerr := s.checkDenied(q); aerr != nil {
		s.finish(q, aerr)
		return
	}

	if mounted {
		m.h.ServeHTTP(w, r)
		s.logCall(q)
		return
	}
	var aerr *apiError
	switch q.service {
	case ServiceEKS:
		aerr = s.serveEKS(q)
	case ServiceSTS:
		aerr = s.serveSTS(q)
	case ServiceIAM:
		aerr = s.serveIAM(q)
	case ServiceELBv2:
		aerr = s.serveELB(q)
	}
	s.finish(q, aerr)
}

// finish writes aerr (if any) and logs the call.
func (s *Server) finish(q *request, aerr *apiError) {
	if aerr != nil {
		if aerr.unexpected {
			s.recordUnexpected(q.r, q.service, aerr.message)
		}
		writeAPIError(q.w, q.proto, q.reqID, aerr)
		q.w.code = aerr.code
	}
	s.logCall(q)
}

func (s *Server) logCall(q *request) {
	status := q.w.status
	if status == 0 {
		status = http.StatusOK
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, Call{
		Service: q.service, Operation: q.op, Region: q.region, Status: status,
		ErrorCode: q.w.code, Time: q.now, Principal: q.principal, UserAgent: q.r.UserAgent(),
	})
}

func (s *Server) recordUnexpected(r *http.Request, service, reason string) {
	line := r.Method + " " + redactedURI(r.URL)
	if len(line) > 300 {
		line = line[:300] + "…"
	}
	if service != "" {
		line += " [" + service + "]"
	}
	if reason != "" {
		line += ": " + reason
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.unexpected = append(s.unexpected, line)
}

// redactedURI is the request URI with signing material in the query
// (signature, credential, session token) elided.
func redactedURI(u *url.URL) string {
	if u.RawQuery == "" {
		return u.EscapedPath()
	}
	q := u.Query()
	for _, k := range []string{"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token"} {
		if q.Has(k) {
			q.Set(k, "redacted")
		}
	}
	return u.EscapedPath() + "?" + q.Encode()
}

// applyFault sleeps and/or fails per the injected fault for q's operation.
func (s *Server) applyFault(q *request) *apiError {
	if aerr := s.rateFault(q); aerr != nil {
		return aerr
	}
	s.mu.Lock()
	f, ok := s.faults[faultKey{q.service, q.op}]
	if !ok {
		f, ok = s.faults[faultKey{q.service, "*"}]
	}
	var fault Fault
	if ok {
		fault = *f
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				for k, v := range s.faults {
					if v == f {
						delete(s.faults, k)
					}
				}
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return nil
	}
	if fault.Latency > 0 {
		t := time.NewTimer(fault.Latency)
		select {
		case <-t.C:
		case <-q.r.Context().Done():
			t.Stop()
		}
	}
	if fault.Code == "" {
		return nil
	}
	msg := fault.Message
	if msg == "" {
		msg = fmt.Sprintf("Rate exceeded (awsfake injected %s on %s:%s)", fault.Code, q.service, q.op)
		if !isThrottleCode(fault.Code) {
			msg = fmt.Sprintf("awsfake injected %s on %s:%s", fault.Code, q.service, q.op)
		}
	}
	return &apiError{status: fault.Status, code: fault.Code, message: msg}
}

func isThrottleCode(code string) bool {
	switch code {
	case "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
		"TooManyRequestsException", "RequestLimitExceeded", "RequestThrottled", "PriorRequestNotComplete":
		return true
	}
	return false
}

// checkDenied applies DenyAction to the caller.
func (s *Server) checkDenied(q *request) *apiError {
	if q.caller == nil {
		return nil
	}
	action := iamPrefix(q.service) + ":" + q.op
	s.mu.Lock()
	denied := s.isDeniedLocked(q.caller.arn, action)
	s.mu.Unlock()
	if !denied {
		return nil
	}
	code := "AccessDenied"
	if q.proto == ProtocolRESTJSON {
		code = "AccessDeniedException"
	}
	return errorf(http.StatusForbidden, code, "User: %s is not authorized to perform: %s because no identity-based policy allows the %s action", q.caller.arn, action, action)
}

// isDeniedLocked reports whether arn (or the role behind an assumed-role
// ARN) was denied action. Callers hold s.mu.
func (s *Server) isDeniedLocked(arn, action string) bool {
	for _, p := range []string{arn, canonicalPrincipal(arn)} {
		if s.denied[p][action] || s.denied[p]["*"] {
			return true
		}
	}
	return false
}

// queryForm returns the parameters of a query-protocol request: the form body
// of a POST, or the URL query of a (presigned) GET.
func queryForm(r *http.Request, body []byte) (url.Values, error) {
	if r.Method == http.MethodGet {
		return r.URL.Query(), nil
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, fmt.Errorf("content type %q is not a form", ct)
	}
	return url.ParseQuery(string(body))
}

func knownQueryAction(service, action string) bool {
	var ops map[string]bool
	switch service {
	case ServiceSTS:
		ops = stsOps
	case ServiceIAM:
		ops = iamOps
	case ServiceELBv2:
		ops = elbOps
	}
	return ops[action]
}

func newRequestID(n uint64) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("awsfake-%d", n)))
	x := hex.EncodeToString(h[:16])
	return x[0:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:32]
}

// hashID derives a stable identifier of width characters from alphabet.
func hashID(width int, alphabet string, parts ...any) string {
	h := sha256.Sum256([]byte(fmt.Sprint(parts...)))
	out := make([]byte, width)
	for i := range out {
		out[i] = alphabet[int(h[i%len(h)]+byte(i/len(h)))%len(alphabet)]
	}
	return string(out)
}

const (
	alphaUpperNum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	alphaLowerNum = "abcdefghijklmnopqrstuvwxyz0123456789"
	hexDigits     = "0123456789abcdef"
	decDigits     = "0123456789"
)

// paginate returns the page of items starting at the position token encodes,
// and the token of the next page ("" on the last page).
func paginate[T any](items []T, token string, max int) ([]T, string, bool) {
	start := 0
	if token != "" {
		n, ok := decodeToken(token)
		if !ok || n > len(items) {
			return nil, "", false
		}
		start = n
	}
	end := start + max
	if max <= 0 || end > len(items) {
		end = len(items)
	}
	next := ""
	if end < len(items) {
		next = encodeToken(end)
	}
	return items[start:end], next, true
}

func encodeToken(n int) string { return fmt.Sprintf("awsfake-page-%d", n) }

func decodeToken(t string) (int, bool) {
	var n int
	if _, err := fmt.Sscanf(t, "awsfake-page-%d", &n); err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
