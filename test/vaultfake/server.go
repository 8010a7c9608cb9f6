// Package vaultfake is a stateful stand-in for the part of the Vault HTTP API
// that drbot uses: auth mounts, the Kubernetes auth method (config, roles and
// login), the aws auth method's IAM login, ACL policies,
// sys/capabilities-self and KV v2 reads. It is driven by the real
// github.com/hashicorp/vault/api client in tests.
//
// Fidelity notes (where the fake knowingly differs from Vault):
//   - Every token is checked against its ACL policies on every request, using
//     Vault's path-matching priority rules. Writes are allowed with either
//     "create" or "update" (Vault picks one with an existence check). The
//     implicit "default" policy is not modelled, except that any valid token may
//     call sys/capabilities-self and auth/token/lookup-self, as "default" allows.
//   - Only the kubernetes and aws auth methods and KV version 2 engines have
//     endpoints; other mount types can be enabled but any request to them is
//     unexpected.
//   - auth/<mount>/login needs no token. Kubernetes login does a real
//     TokenReview against kubernetes_host (trusting kubernetes_ca_cert, as
//     token_reviewer_jwt or else the login JWT itself) with the role's audience,
//     then checks the reviewed user against the role's bound names and
//     namespaces (Vault checks the JWT's unverified claims before the review,
//     so a made-up JWT naming an unbound account gets "not authorized" there
//     and "permission denied" here). Namespace selectors, pem_keys and issuer
//     checks are not modelled.
//   - aws login is IAM only: the signed GetCallerIdentity request is checked
//     like the plugin (POST, body, X-Vault-AWS-IAM-Server-ID value and
//     signature) and forwarded to AWSAuthConfig.STSEndpoint with the original
//     Host. The caller ARN is canonicalised (assumed-role to role, IAM path
//     dropped) and matched against bound_iam_principal_arn exactly or by a
//     trailing "*" (Vault globs the full ARN with path, resolved through
//     iam:GetRole; unique-ID resolution is not modelled). The EC2 auth type,
//     role inference, auth/aws/config/* endpoints and allowed STS header
//     checks are not modelled.
//   - Login tokens carry the role's token_policies (plus "default" unless
//     token_no_default_policy) and expire after token_ttl (768h when unset);
//     an expired token is refused with 403. Renewal (auth/token/renew-self),
//     revocation, token_max_ttl, periods, num_uses, bound CIDRs, batch tokens,
//     entities and aliases, leases, wrapping and namespaces are not modelled.
//   - auth/<mount>/config is stricter than Vault: kubernetes_ca_cert, when set,
//     must hold a PEM certificate (catches a base64 DescribeCluster CA passed
//     as-is) and an invalid token_reviewer_jwt is a 400 (Vault answers 500).
//
// Any request the fake does not understand is answered 404/405 with a
// Vault-style error, recorded in Unexpected, and fails the test at cleanup
// unless AllowUnexpected was called.
package vaultfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
)

// Call is one request the fake received. Tokens and bodies are not kept.
type Call struct {
	Method string // HTTP method as sent (the api client sends LIST as GET ?list=true)
	Op     string // Vault operation: read, list, create/update ("write"), delete
	Path   string // path without the /v1/ prefix
	Query  string
	Status int
	// UserAgent names the drbot step making the call (recovery.StepFromUserAgent).
	UserAgent string
}

// Mount describes an enabled secrets engine or auth method.
type Mount struct {
	Path    string // with trailing slash, e.g. "k8s-dr/"
	Type    string
	Auth    bool // true for auth methods (sys/auth), false for secrets engines (sys/mounts)
	Options map[string]string
}

// Server is the Vault stand-in. All methods are safe for concurrent use.
type Server struct {
	t   testing.TB
	srv *httptest.Server

	mu              sync.Mutex
	rootToken       string
	tokens          map[string]*tokenEntry
	logins          []Login
	authMounts      map[string]*authMount
	secretMounts    map[string]*secretMount
	policies        map[string]string // name -> HCL text
	calls           []Call
	unexpected      []string
	allowUnexpected bool
}

type authMount struct {
	Mount
	Description string
	Accessor    string
	UUID        string
	Local       bool
	SealWrap    bool

	config map[string]any // kubernetes config, nil until written
	roles  map[string]*kubeRole

	aws      *AWSAuthConfig // aws mounts: set by EnableAWSAuth
	awsRoles map[string]*awsRole
}

// tokenEntry is a non-root token: its policies and, for tokens issued by a
// login, when it stops working.
type tokenEntry struct {
	policies []string
	expires  time.Time // zero: never
	login    *Login    // the login that issued it, if any
}

type secretMount struct {
	Mount
	Description string
	Accessor    string
	UUID        string
	kv          map[string]*kvSecret
}

// New starts a Vault stand-in on loopback and closes it when the test ends.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		t:            t,
		rootToken:    "hvs.fake-root-" + randomHex(8),
		tokens:       map[string]*tokenEntry{},
		authMounts:   map[string]*authMount{},
		secretMounts: map[string]*secretMount{},
		policies:     map[string]string{"default": defaultPolicy},
	}
	s.authMounts["token/"] = s.newAuthMount("token/", "token", "token based credentials")
	for _, m := range []struct{ path, typ, desc string }{
		{"cubbyhole/", "cubbyhole", "per-token private secret storage"},
		{"identity/", "identity", "identity store"},
		{"sys/", "system", "system endpoints used for control, policy and debugging"},
	} {
		s.secretMounts[m.path] = s.newSecretMount(m.path, m.typ, m.desc, nil)
	}
	// Like a dev server: KV v2 at secret/.
	s.secretMounts["secret/"] = s.newSecretMount("secret/", "kv", "key/value secret storage", map[string]string{"version": "2"})

	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	t.Cleanup(func() {
		s.srv.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.unexpected) > 0 && !s.allowUnexpected {
			t.Errorf("vaultfake: %d unexpected request(s):\n  %s", len(s.unexpected), strings.Join(s.unexpected, "\n  "))
		}
	})
	return s
}

// URL is the address to give the api client (api.Config.Address).
func (s *Server) URL() string { return s.srv.URL }

// RootToken returns the made-up root token; it passes every ACL check.
func (s *Server) RootToken() string { return s.rootToken }

// AddToken registers a token carrying the given ACL policies. Policies need not
// exist yet; a missing policy grants nothing, as in Vault.
func (s *Server) AddToken(token string, policies ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[token] = &tokenEntry{policies: append([]string(nil), policies...)}
}

// Calls returns every request received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Unexpected lists the requests the fake did not understand.
func (s *Server) Unexpected() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.unexpected...)
}

// AllowUnexpected stops the fake from failing the test at cleanup because of
// unexpected requests; use it in tests that probe unsupported calls on purpose.
func (s *Server) AllowUnexpected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.allowUnexpected = true
}

// request is one decoded Vault API call.
type request struct {
	method string
	op     string // read, list, write, delete
	path   string // without /v1/ and without trailing slash
	query  url.Values
	body   map[string]any
	token  string
}

// response is what a handler returns; body nil means no content.
type response struct {
	status int
	body   any
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if s.injectFault(w, r) {
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody("reading request body: "+err.Error()))
		return
	}

	req := &request{method: r.Method, query: r.URL.Query(), token: r.Header.Get("X-Vault-Token")}
	if req.token == "" {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			req.token = v
		}
	}

	s.mu.Lock()
	resp := s.decode(req, r, raw)
	switch {
	case resp != nil:
	case isLogin(req):
		// Anyone may call login; it calls out (TokenReview, STS), so it
		// takes the lock itself around the parts that touch state.
		s.mu.Unlock()
		resp = s.login(req)
		s.mu.Lock()
	default:
		resp = s.handle(req)
	}
	s.calls = append(s.calls, Call{Method: r.Method, Op: req.op, Path: req.path, Query: r.URL.RawQuery, Status: resp.status, UserAgent: r.UserAgent()})
	s.mu.Unlock()
	if resp.body == nil {
		w.WriteHeader(resp.status)
		return
	}
	writeJSON(w, resp.status, resp.body)
}

// decode fills req from the HTTP request, or returns an error response.
func (s *Server) decode(req *request, r *http.Request, raw []byte) *response {
	p, ok := strings.CutPrefix(r.URL.Path, "/v1/")
	if !ok {
		return s.unexpectedf(http.StatusNotFound, "%s %s: not under /v1/", r.Method, r.URL.Path)
	}
	req.path = strings.TrimSuffix(p, "/")

	switch {
	case r.Method == "LIST", r.Method == http.MethodGet && req.query.Get("list") == "true":
		req.op = "list"
	case r.Method == http.MethodGet:
		req.op = "read"
	case r.Method == http.MethodPut, r.Method == http.MethodPost:
		req.op = "write"
	case r.Method == http.MethodDelete:
		req.op = "delete"
	default:
		return s.unexpectedf(http.StatusMethodNotAllowed, "%s /v1/%s: unsupported HTTP method", r.Method, req.path)
	}

	if len(strings.TrimSpace(string(raw))) > 0 && req.op == "write" {
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.UseNumber()
		if err := dec.Decode(&req.body); err != nil {
			return &response{http.StatusBadRequest, errorBody("failed to parse JSON input: " + err.Error())}
		}
	}
	if req.body == nil {
		req.body = map[string]any{}
	}
	return nil
}

// unexpectedf records a request the fake does not understand and answers it
// with a Vault-shaped error.
func (s *Server) unexpectedf(status int, format string, args ...any) *response {
	msg := fmt.Sprintf(format, args...)
	s.unexpected = append(s.unexpected, msg)
	return &response{status, errorBody("vaultfake: unexpected request: " + msg)}
}

func (s *Server) handle(req *request) *response {
	if req.path == "sys/health" && req.op == "read" {
		return &response{http.StatusOK, map[string]any{
			"initialized": true, "sealed": false, "standby": false,
			"version": "1.19.0-vaultfake", "cluster_name": "vaultfake",
		}}
	}

	policies, root, known := s.lookupToken(req.token)
	if !known {
		return permissionDenied()
	}
	if !root && !s.allowed(policies, req) {
		return permissionDenied()
	}

	switch {
	case req.path == "sys/auth" || strings.HasPrefix(req.path, "sys/auth/"):
		return s.handleSysAuth(req)
	case req.path == "sys/mounts" || strings.HasPrefix(req.path, "sys/mounts/"):
		return s.handleSysMounts(req)
	case req.path == "sys/policies/acl" || strings.HasPrefix(req.path, "sys/policies/acl/"):
		return s.handleSysPolicies(req)
	case req.path == "sys/capabilities-self" || req.path == "sys/capabilities":
		return s.handleCapabilities(req)
	case req.path == "auth/token/lookup-self":
		return s.handleLookupSelf(req, policies, root)
	case strings.HasPrefix(req.path, "auth/"):
		return s.handleAuthPath(req)
	}
	if m, rest := s.findSecretMount(req.path); m != nil {
		return s.handleSecretPath(req, m, rest)
	}
	return noRoute(req.path)
}

// noRoute is Vault's answer for a path under no mount. It is modelled
// behaviour (drbot may probe for a mount), so it is not recorded as unexpected.
func noRoute(path string) *response {
	return &response{http.StatusNotFound, errorBody(fmt.Sprintf("no handler for route %q. route entry not found.", path))}
}

func (s *Server) lookupToken(token string) (policies []string, root, known bool) {
	if token == "" {
		return nil, false, false
	}
	if token == s.rootToken {
		return []string{"root"}, true, true
	}
	e, ok := s.tokens[token]
	if !ok {
		return nil, false, false
	}
	if !e.expires.IsZero() && !time.Now().Before(e.expires) {
		return nil, false, false
	}
	p := e.policies
	for _, name := range p {
		if name == "root" {
			return p, true, true
		}
	}
	return p, false, true
}

func (s *Server) handleLookupSelf(req *request, policies []string, root bool) *response {
	if req.op != "read" && req.op != "write" {
		return unsupportedOperation()
	}
	p := append([]string(nil), policies...)
	sort.Strings(p)
	data := map[string]any{
		"id": req.token, "policies": p, "display_name": "token", "ttl": 0,
		"renewable": false, "orphan": root, "type": "service", "path": "auth/token/create",
	}
	if e := s.tokens[req.token]; e != nil && !e.expires.IsZero() {
		data["ttl"] = int64(time.Until(e.expires).Round(time.Second) / time.Second)
		data["renewable"] = true
		data["orphan"] = true
		data["expire_time"] = e.expires.UTC().Format(time.RFC3339Nano)
		if l := e.login; l != nil {
			data["path"] = "auth/" + l.Mount + "/login"
			data["display_name"] = l.Mount + "-" + l.Principal
		}
	}
	if root {
		data["path"] = "auth/token/root"
	}
	return okData(data)
}

// findSecretMount returns the secrets engine with the longest path prefix of p.
func (s *Server) findSecretMount(p string) (*secretMount, string) {
	var best *secretMount
	for mp, m := range s.secretMounts {
		if strings.HasPrefix(p+"/", mp) && (best == nil || len(mp) > len(best.Path)) {
			best = m
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, strings.TrimSuffix(strings.TrimPrefix(p+"/", best.Path), "/")
}

// findAuthMount returns the auth method whose path is the longest prefix of p
// (p is relative to auth/).
func (s *Server) findAuthMount(p string) (*authMount, string) {
	var best *authMount
	for mp, m := range s.authMounts {
		if strings.HasPrefix(p+"/", mp) && (best == nil || len(mp) > len(best.Path)) {
			best = m
		}
	}
	if best == nil {
		return nil, ""
	}
	return best, strings.TrimSuffix(strings.TrimPrefix(p+"/", best.Path), "/")
}

func (s *Server) newAuthMount(path, typ, desc string) *authMount {
	return &authMount{
		Mount:       Mount{Path: path, Type: typ, Auth: true, Options: map[string]string{}},
		Description: desc,
		Accessor:    "auth_" + typ + "_" + randomHex(4),
		UUID:        randomUUID(),
		roles:       map[string]*kubeRole{},
		awsRoles:    map[string]*awsRole{},
	}
}

func (s *Server) newSecretMount(path, typ, desc string, options map[string]string) *secretMount {
	if options == nil {
		options = map[string]string{}
	}
	return &secretMount{
		Mount:       Mount{Path: path, Type: typ, Options: options},
		Description: desc,
		Accessor:    typ + "_" + randomHex(4),
		UUID:        randomUUID(),
		kv:          map[string]*kvSecret{},
	}
}

// okData wraps data in Vault's standard response envelope.
func okData(data map[string]any) *response {
	return &response{http.StatusOK, envelope(data, nil)}
}

func okWithWarnings(data map[string]any, warnings []string) *response {
	return &response{http.StatusOK, envelope(data, warnings)}
}

func envelope(data map[string]any, warnings []string) map[string]any {
	var d any
	if data != nil {
		d = data
	}
	var w any
	if len(warnings) > 0 {
		w = warnings
	}
	return map[string]any{
		"request_id":     randomUUID(),
		"lease_id":       "",
		"renewable":      false,
		"lease_duration": 0,
		"data":           d,
		"wrap_info":      nil,
		"warnings":       w,
		"auth":           nil,
		"mount_type":     "",
	}
}

// noContent is Vault's answer to a write or delete that returns nothing.
func noContent() *response { return &response{status: http.StatusNoContent} }

// notFound is Vault's answer to a read of something missing: 404 {"errors":[]}.
func notFound() *response {
	return &response{http.StatusNotFound, map[string]any{"errors": []string{}}}
}

func badRequest(format string, args ...any) *response {
	return &response{http.StatusBadRequest, errorBody(fmt.Sprintf(format, args...))}
}

func permissionDenied() *response {
	return &response{http.StatusForbidden, errorBody("permission denied")}
}

func unsupportedOperation() *response {
	return &response{http.StatusMethodNotAllowed, errorBody("1 error occurred:\n\t* unsupported operation\n\n")}
}

func errorBody(msgs ...string) map[string]any {
	return map[string]any{"errors": msgs}
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func randomUUID() string {
	h := randomHex(16)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
