package vaultfake

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// AWSAuthConfig configures an aws auth mount.
type AWSAuthConfig struct {
	// STSEndpoint is where the stand-in sends the signed GetCallerIdentity
	// request (e.g. the awsfake URL) in place of the request URL's host.
	STSEndpoint string
	// IAMServerIDHeaderValue, when set, is required in a signed
	// X-Vault-AWS-IAM-Server-ID header, like auth/aws/config/client
	// iam_server_id_header_value.
	IAMServerIDHeaderValue string
}

// iamServerIDHeader is the header Vault binds a login request to.
const iamServerIDHeader = "X-Vault-AWS-IAM-Server-ID"

// awsRole is the part of the aws plugin's awsRoleEntry the fake models (IAM
// auth type only).
type awsRole struct {
	AuthType            string
	BoundIAMPrincipals  []string
	ResolveAWSUniqueIDs bool
	RoleID              string
	// token holds only the token_* fields (shared parsing with kubernetes roles).
	token kubeRole
}

var awsRoleSchema = withTokenFields(map[string]fieldType{
	"role":                    tString,
	"auth_type":               tString,
	"bound_iam_principal_arn": tCommaStringSlice,
	"resolve_aws_unique_ids":  tBool,
})

// EnableAWSAuth mounts an aws auth method at auth/<mount>/ (or reconfigures
// the one there). Another type there fails the test.
func (s *Server) EnableAWSAuth(mount string, c AWSAuthConfig) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	mp := normalizeMountPath(mount)
	m, ok := s.authMounts[mp]
	if !ok {
		if conflict := mountConflict(mp, s.authMountPaths()); conflict != "" {
			s.t.Fatalf("vaultfake: EnableAWSAuth(%q): path is already in use at %s", mount, conflict)
		}
		m = s.newAuthMount(mp, "aws", "")
		s.authMounts[mp] = m
	}
	if m.Type != "aws" {
		s.t.Fatalf("vaultfake: EnableAWSAuth(%q): a %s auth method is already mounted there", mount, m.Type)
	}
	cfg := c
	m.aws = &cfg
}

// PutAWSRole creates or updates auth/<mount>/role/<name> on an aws mount
// enabled with EnableAWSAuth. Fields are as in the API: auth_type ("iam",
// the only one modelled), bound_iam_principal_arn (list or comma string),
// token_policies, token_ttl, token_no_default_policy, ...
func (s *Server) PutAWSRole(mount, name string, fields map[string]any) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.authMounts[normalizeMountPath(mount)]
	if !ok || m.Type != "aws" {
		s.t.Fatalf("vaultfake: PutAWSRole(%q, %q): no aws auth method there; call EnableAWSAuth first", mount, name)
	}
	key := strings.ToLower(name)
	r, err := writeAWSRole(m.awsRoles[key], copyMap(fields))
	if err != nil {
		s.t.Fatalf("vaultfake: PutAWSRole(%q, %q): %v", mount, name, err)
	}
	m.awsRoles[key] = r
}

// writeAWSRole applies a create (existing == nil) or update of an IAM role.
func writeAWSRole(existing *awsRole, body map[string]any) (*awsRole, error) {
	fs, err := parseFields(awsRoleSchema, body)
	if err != nil {
		return nil, err
	}
	r := &awsRole{AuthType: "iam", ResolveAWSUniqueIDs: true, RoleID: randomUUID()}
	if existing != nil {
		cp := *existing
		r = &cp
	}
	if fs.has("auth_type") {
		r.AuthType = fs.str("auth_type")
	}
	if r.AuthType != "iam" {
		return nil, fmt.Errorf("vaultfake: auth_type %q is not modelled (only iam)", r.AuthType)
	}
	if fs.has("bound_iam_principal_arn") {
		r.BoundIAMPrincipals = fs.strs("bound_iam_principal_arn")
	}
	if len(r.BoundIAMPrincipals) == 0 {
		// The plugin allows it; a role anyone can use is never what a test means.
		return nil, fmt.Errorf("vaultfake: bound_iam_principal_arn is required")
	}
	if fs.has("resolve_aws_unique_ids") {
		r.ResolveAWSUniqueIDs = fs.bool("resolve_aws_unique_ids")
	}
	if err := r.token.parseTokenParams(fs); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *awsRole) read() map[string]any {
	d := r.token.read()
	for _, k := range []string{"bound_service_account_names", "bound_service_account_namespaces",
		"bound_service_account_namespace_selector", "alias_name_source"} {
		delete(d, k)
	}
	d["auth_type"] = r.AuthType
	d["bound_iam_principal_arn"] = nonNil(r.BoundIAMPrincipals)
	d["resolve_aws_unique_ids"] = r.ResolveAWSUniqueIDs
	d["role_id"] = r.RoleID
	for _, k := range []string{"bound_ami_id", "bound_account_id", "bound_ec2_instance_id", "bound_iam_instance_profile_arn",
		"bound_iam_role_arn", "bound_region", "bound_subnet_id", "bound_vpc_id"} {
		d[k] = []string{}
	}
	return d
}

// handleAWSAuthPath serves auth/<aws mount>/role and role/<name>; login is
// routed before the token check (login.go).
func (s *Server) handleAWSAuthPath(req *request, m *authMount, rest string) *response {
	switch {
	case rest == "role" || rest == "roles":
		if req.op == "list" {
			return listRoles(m.awsRoles)
		}
	case strings.HasPrefix(rest, "role/"):
		key := strings.ToLower(strings.TrimPrefix(rest, "role/"))
		switch req.op {
		case "read":
			r, ok := m.awsRoles[key]
			if !ok {
				return notFound()
			}
			return okData(r.read())
		case "write":
			r, err := writeAWSRole(m.awsRoles[key], req.body)
			if err != nil {
				return badRequest("%v", err)
			}
			m.awsRoles[key] = r
			return noContent()
		case "delete":
			delete(m.awsRoles, key)
			return noContent()
		}
	default:
		return s.unexpectedf(http.StatusNotFound, "%s /v1/%s: aws auth path %q is not modelled", req.method, req.path, rest)
	}
	return s.unsupported(req)
}

// awsLogin is a decoded IAM login request.
type awsLogin struct {
	url     *url.URL
	body    []byte
	headers http.Header
}

// prepareAWSLogin checks an IAM login under s.mu and returns the STS step to
// run without it. Messages are the aws plugin's (pathLoginUpdateIam).
func (s *Server) prepareAWSLogin(m *authMount, mount string, body map[string]any) (func() *response, *response) {
	roleName := stringField(body, "role")
	if roleName == "" {
		return nil, badRequest("vaultfake: a login without role (the plugin would infer it from the ARN) is not modelled")
	}
	if m.aws == nil || m.aws.STSEndpoint == "" {
		return nil, s.unexpectedf(http.StatusInternalServerError, "auth/%s: aws login on a mount without an STS endpoint (use EnableAWSAuth)", m.Path)
	}
	cfg := *m.aws
	in, resp := decodeAWSLogin(body)
	if resp != nil {
		return nil, resp
	}
	r, ok := m.awsRoles[strings.ToLower(roleName)]
	if !ok {
		return nil, badRequest("entry for role %s not found", roleName)
	}
	role := *r
	if cfg.IAMServerIDHeaderValue != "" {
		if err := checkServerIDHeader(in.headers, cfg.IAMServerIDHeaderValue); err != nil {
			return nil, badRequest("error validating %s header: %v", iamServerIDHeader, err)
		}
	}
	return func() *response {
		caller, err := submitCallerIdentity(cfg.STSEndpoint, in)
		if err != nil {
			return badRequest("error making upstream request: %v", err)
		}
		canonical, account, err := canonicalIAMArn(caller.Arn)
		if err != nil {
			return badRequest("error parsing arn %q: %v", caller.Arn, err)
		}
		if !slices.Contains(role.BoundIAMPrincipals, canonical) {
			matched := false
			for _, b := range role.BoundIAMPrincipals {
				if strings.HasSuffix(b, "*") && globMatch(b, canonical) {
					matched = true
					break
				}
			}
			if !matched {
				return badRequest("IAM Principal %q does not belong to the role %q", caller.Arn, roleName)
			}
		}
		return s.issueToken(Login{Mount: mount, Method: "aws", Role: roleName, Principal: canonical},
			tokenParams{policies: role.token.TokenPolicies, ttl: role.token.TokenTTL, noDefault: role.token.TokenNoDefaultPolicy},
			map[string]string{
				"role":                 roleName,
				"role_id":              role.RoleID,
				"auth_type":            "iam",
				"client_arn":           caller.Arn,
				"canonical_arn":        canonical,
				"client_user_id":       caller.UserID,
				"account_id":           account,
				"inferred_entity_type": "",
				"inferred_entity_id":   "",
				"inferred_aws_region":  "",
			})
	}, nil
}

func decodeAWSLogin(body map[string]any) (*awsLogin, *response) {
	method := stringField(body, "iam_http_request_method")
	if method == "" {
		return nil, badRequest("missing iam_http_request_method")
	}
	if method != http.MethodPost {
		return nil, badRequest("invalid iam_http_request_method; currently only 'POST' is supported")
	}
	rawURL := stringField(body, "iam_request_url")
	if rawURL == "" {
		return nil, badRequest("missing iam_request_url")
	}
	urlBytes, err := base64.StdEncoding.DecodeString(rawURL)
	if err != nil {
		return nil, badRequest("failed to base64 decode iam_request_url")
	}
	u, err := url.Parse(string(urlBytes))
	if err != nil || u.Host == "" {
		return nil, badRequest("error parsing iam_request_url")
	}
	if u.RawQuery != "" {
		return nil, badRequest("error parsing iam_request_url")
	}
	rawBody := stringField(body, "iam_request_body")
	if rawBody == "" {
		return nil, badRequest("missing iam_request_body")
	}
	reqBody, err := base64.StdEncoding.DecodeString(rawBody)
	if err != nil {
		return nil, badRequest("failed to base64 decode iam_request_body")
	}
	if err := checkGetCallerIdentityBody(string(reqBody)); err != nil {
		return nil, badRequest("%v", err)
	}
	rawHeaders, ok := body["iam_request_headers"]
	if !ok || rawHeaders == nil || rawHeaders == "" {
		return nil, badRequest("missing iam_request_headers")
	}
	headers, err := parseIAMHeaders(rawHeaders)
	if err != nil {
		return nil, badRequest("Error parsing iam_request_headers: %v", err)
	}
	return &awsLogin{url: u, body: reqBody, headers: headers}, nil
}

// checkGetCallerIdentityBody is the plugin's validateLoginIamRequestBody:
// only Action=GetCallerIdentity and Version may appear. The fake also
// requires Action, which the plugin leaves to STS.
func checkGetCallerIdentityBody(body string) error {
	qs, err := url.ParseQuery(body)
	if err != nil {
		return err
	}
	for k, v := range qs {
		switch k {
		case "Action":
			if len(v) != 1 || v[0] != "GetCallerIdentity" {
				return fmt.Errorf("iam request body is invalid")
			}
		case "Version":
		default:
			return fmt.Errorf("iam request body is invalid")
		}
	}
	if qs.Get("Action") == "" {
		return fmt.Errorf("iam request body is invalid")
	}
	return nil
}

// parseIAMHeaders accepts what the plugin does: a JSON object, or a base64
// string of one, mapping a header to a string or a list of strings.
func parseIAMHeaders(raw any) (http.Header, error) {
	obj, ok := raw.(map[string]any)
	if !ok {
		str, isStr := raw.(string)
		if !isStr {
			return nil, fmt.Errorf("headers are neither an object nor a string")
		}
		b, err := base64.StdEncoding.DecodeString(str)
		if err != nil {
			b = []byte(str) // the plugin also accepts plain JSON
		}
		if err := json.Unmarshal(b, &obj); err != nil {
			return nil, fmt.Errorf("decoding headers JSON: %w", err)
		}
	}
	h := http.Header{}
	for k, v := range obj {
		switch x := v.(type) {
		case string:
			h.Add(k, x)
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("header %q has a non-string value", k)
				}
				h.Add(k, s)
			}
		default:
			return nil, fmt.Errorf("header %q has a value of type %T", k, v)
		}
	}
	return h, nil
}

var signedHeadersRE = regexp.MustCompile(`.*SignedHeaders=([^,]+)`)

// checkServerIDHeader is the plugin's validateVaultHeaderValue.
func checkServerIDHeader(h http.Header, want string) error {
	got := ""
	for k, v := range h {
		if strings.EqualFold(k, iamServerIDHeader) {
			got = strings.Join(v, ",")
			break
		}
	}
	if got == "" {
		return fmt.Errorf("missing header %q", iamServerIDHeader)
	}
	if got != want {
		return fmt.Errorf("expected %q but got %q", want, got)
	}
	authz := h.Values("Authorization")
	if len(authz) == 0 {
		return fmt.Errorf("missing Authorization header")
	}
	m := signedHeadersRE.FindStringSubmatch(strings.Join(authz, ","))
	if len(m) < 2 {
		return fmt.Errorf("vault header wasn't signed")
	}
	if !slices.Contains(strings.Split(m[1], ";"), strings.ToLower(iamServerIDHeader)) {
		return fmt.Errorf("vault header wasn't signed")
	}
	return nil
}

type callerIdentity struct {
	Arn     string `xml:"GetCallerIdentityResult>Arn"`
	UserID  string `xml:"GetCallerIdentityResult>UserId"`
	Account string `xml:"GetCallerIdentityResult>Account"`
}

// submitCallerIdentity forwards the signed request as Vault does, but to
// endpoint: same path, body and headers, Host kept as the original URL's.
func submitCallerIdentity(endpoint string, in *awsLogin) (*callerIdentity, error) {
	target := strings.TrimSuffix(endpoint, "/") + in.url.EscapedPath()
	ctx, cancel := context.WithTimeout(context.Background(), outboundTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(in.body))
	if err != nil {
		return nil, fmt.Errorf("building the STS request: %w", err)
	}
	req.Host = in.url.Host
	for k, vs := range in.headers {
		if strings.EqualFold(k, "Content-Length") || strings.EqualFold(k, "Host") {
			continue
		}
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the STS response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("received error code %d from STS: %s", resp.StatusCode, b)
	}
	var out callerIdentity
	if err := xml.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decoding the STS response: %w", err)
	}
	if out.Arn == "" {
		return nil, fmt.Errorf("STS response has no Arn: %s", b)
	}
	return &out, nil
}

// canonicalIAMArn is the plugin's parseIamArn + canonicalArn: an assumed-role
// session becomes its role, and any IAM path is dropped.
func canonicalIAMArn(arn string) (canonical, account string, err error) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return "", "", fmt.Errorf("not an ARN")
	}
	partition, service, account, resource := parts[1], parts[2], parts[4], parts[5]
	typ, rest, ok := strings.Cut(resource, "/")
	if !ok {
		return "", "", fmt.Errorf("no resource type")
	}
	segs := strings.Split(rest, "/")
	var name string
	switch {
	case service == "sts" && typ == "assumed-role":
		if len(segs) < 2 {
			return "", "", fmt.Errorf("assumed role ARN without a session name")
		}
		typ, name = "role", segs[len(segs)-2]
	case service == "iam" && (typ == "user" || typ == "role"):
		name = segs[len(segs)-1]
	default:
		return "", "", fmt.Errorf("unrecognized principal type %s:%s", service, typ)
	}
	return fmt.Sprintf("arn:%s:iam::%s:%s/%s", partition, account, typ, name), account, nil
}
