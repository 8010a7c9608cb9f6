package vaultfake

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// defaultTokenTTL is Vault's default max lease TTL (768h), the lease a login
// token gets when its role sets no token_ttl.
const defaultTokenTTL = 768 * time.Hour

// outboundTimeout bounds a login's TokenReview or STS call.
const outboundTimeout = 15 * time.Second

// Login is one successful login. The issued token is not kept here.
type Login struct {
	Mount     string // auth mount path without the trailing slash, e.g. "k8s-dr"
	Method    string // "kubernetes" or "aws"
	Role      string
	Principal string // "namespace/name" of the service account, or the canonical IAM ARN
	TTL       time.Duration
	Time      time.Time
}

// Logins returns every successful login so far, in order.
func (s *Server) Logins() []Login {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Login(nil), s.logins...)
}

// isLogin reports whether req is a login, which Vault serves without a token.
func isLogin(req *request) bool {
	return req.op == "write" && strings.HasPrefix(req.path, "auth/") && strings.HasSuffix(req.path, "/login")
}

// tokenParams are the role fields that shape an issued token.
type tokenParams struct {
	policies  []string
	ttl       int64 // seconds; 0 means defaultTokenTTL
	noDefault bool
}

// login serves auth/<mount>/login. It is called without s.mu held and takes
// it only around state access, never across the outbound call.
func (s *Server) login(req *request) *response {
	s.mu.Lock()
	m, rest := s.findAuthMount(strings.TrimPrefix(req.path, "auth/"))
	if m == nil || rest != "login" {
		s.mu.Unlock()
		return noRoute(req.path)
	}
	mount, typ := strings.TrimSuffix(m.Path, "/"), m.Type
	var prep func() *response // the outbound part, run unlocked
	var resp *response
	switch typ {
	case "kubernetes":
		prep, resp = s.prepareKubeLogin(m, mount, req.body)
	case "aws":
		prep, resp = s.prepareAWSLogin(m, mount, req.body)
	default:
		resp = s.unexpectedf(http.StatusNotFound, "%s /v1/%s: login to the %s auth method is not modelled", req.method, req.path, typ)
	}
	s.mu.Unlock()
	if resp != nil {
		return resp
	}
	return prep()
}

// issueToken registers a login token and answers like Vault's login.
func (s *Server) issueToken(l Login, p tokenParams, metadata map[string]string) *response {
	policies := append([]string(nil), p.policies...)
	if !p.noDefault {
		policies = append(policies, "default")
	}
	sort.Strings(policies)
	policies = slices.Compact(policies)
	ttl := defaultTokenTTL
	if p.ttl > 0 {
		ttl = time.Duration(p.ttl) * time.Second
	}
	now := time.Now()
	l.TTL, l.Time = ttl, now
	token := "hvs.fake-login-" + randomHex(16)

	rec := l
	s.mu.Lock()
	s.logins = append(s.logins, l)
	s.tokens[token] = &tokenEntry{policies: policies, expires: now.Add(ttl), login: &rec}
	s.mu.Unlock()

	body := envelope(nil, nil)
	body["auth"] = map[string]any{
		"client_token":    token,
		"accessor":        randomHex(12),
		"policies":        policies,
		"token_policies":  policies,
		"metadata":        metadata,
		"lease_duration":  int64(ttl / time.Second),
		"renewable":       true,
		"entity_id":       "",
		"token_type":      "service",
		"orphan":          true,
		"mfa_requirement": nil,
		"num_uses":        0,
	}
	return &response{http.StatusOK, body}
}

func loginError(status int, msg string) *response {
	return &response{status, errorBody(msg)}
}

// prepareKubeLogin checks the request against the mount under s.mu and
// returns the TokenReview step to run without it.
func (s *Server) prepareKubeLogin(m *authMount, mount string, body map[string]any) (func() *response, *response) {
	roleName := stringField(body, "role")
	if roleName == "" {
		return nil, badRequest("missing role")
	}
	jwt := stringField(body, "jwt")
	if jwt == "" {
		return nil, badRequest("missing jwt")
	}
	r, ok := m.roles[strings.ToLower(roleName)]
	if !ok {
		return nil, badRequest("invalid role name %q", roleName)
	}
	if m.config == nil {
		// The plugin returns this as a plain error, which Vault answers 500.
		return nil, &response{http.StatusInternalServerError, errorBody("could not load backend configuration")}
	}
	role := *r
	host, _ := m.config["kubernetes_host"].(string)
	ca, _ := m.config["kubernetes_ca_cert"].(string)
	reviewer, _ := m.config["token_reviewer_jwt"].(string)
	if reviewer == "" {
		// As Vault without a local service account token: the client's own
		// JWT authenticates the review.
		reviewer = jwt
	}
	return func() *response {
		user, err := tokenReview(host, ca, reviewer, jwt, role.Audience)
		if err != nil {
			return err
		}
		ns, name, ok := splitSAUsername(user.Username)
		if !ok {
			return permissionDenied()
		}
		if !(len(role.SANames) == 1 && role.SANames[0] == "*") && !globListContains(role.SANames, name) {
			return loginError(http.StatusForbidden, "service account name not authorized")
		}
		if !(len(role.SANamespaces) == 1 && role.SANamespaces[0] == "*") && !globListContains(role.SANamespaces, ns) {
			return loginError(http.StatusForbidden, "namespace not authorized")
		}
		return s.issueToken(Login{Mount: mount, Method: "kubernetes", Role: roleName, Principal: ns + "/" + name},
			tokenParams{policies: role.TokenPolicies, ttl: role.TokenTTL, noDefault: role.TokenNoDefaultPolicy},
			map[string]string{
				"role":                        roleName,
				"service_account_name":        name,
				"service_account_namespace":   ns,
				"service_account_uid":         user.UID,
				"service_account_secret_name": "",
			})
	}, nil
}

// tokenReview asks the API server at host who jwt belongs to, authenticated
// as reviewer, trusting caPEM.
func tokenReview(host, caPEM, reviewer, jwt, audience string) (authenticationv1.UserInfo, *response) {
	cfg := &rest.Config{Host: host, BearerToken: reviewer, Timeout: outboundTimeout}
	if caPEM != "" {
		cfg.TLSClientConfig.CAData = []byte(caPEM)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return authenticationv1.UserInfo{}, &response{http.StatusInternalServerError, errorBody(fmt.Sprintf("building the token review client: %v", err))}
	}
	tr := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: jwt}}
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	ctx, cancel := context.WithTimeout(context.Background(), outboundTimeout)
	defer cancel()
	got, err := cs.AuthenticationV1().TokenReviews().Create(ctx, tr, metav1.CreateOptions{})
	if err != nil || got.Status.Error != "" || !got.Status.Authenticated {
		// The plugin answers every failed lookup (reviewer refused or
		// without rights, API server unreachable, JWT not valid) with
		// permission denied and keeps the cause for its debug log.
		return authenticationv1.UserInfo{}, permissionDenied()
	}
	return got.Status.User, nil
}

// splitSAUsername splits system:serviceaccount:<ns>:<name>.
func splitSAUsername(u string) (ns, name string, ok bool) {
	parts := strings.Split(u, ":")
	if len(parts) != 4 || parts[0] != "system" || parts[1] != "serviceaccount" || parts[2] == "" || parts[3] == "" {
		return "", "", false
	}
	return parts[2], parts[3], true
}

// globListContains is strutil.StrListContainsGlob: an item may start and/or
// end with "*".
func globListContains(list []string, v string) bool {
	for _, item := range list {
		if globMatch(item, v) {
			return true
		}
	}
	return false
}

// globMatch is strutil.GlobbedStringsMatch.
func globMatch(item, v string) bool {
	if !strings.Contains(item, "*") {
		return item == v
	}
	if item == "*" {
		return true
	}
	prefix := strings.HasPrefix(item, "*")
	suffix := strings.HasSuffix(item, "*")
	core := strings.Trim(item, "*")
	switch {
	case prefix && suffix:
		return strings.Contains(v, core)
	case prefix:
		return strings.HasSuffix(v, core)
	case suffix:
		return strings.HasPrefix(v, core)
	}
	return item == v
}
