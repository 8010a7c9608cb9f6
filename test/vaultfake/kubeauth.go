package vaultfake

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// kubeRole mirrors vault-plugin-auth-kubernetes' roleStorageEntry.
type kubeRole struct {
	SANames         []string
	SANamespaces    []string
	NSSelector      string
	Audience        string
	AliasNameSource string

	TokenPolicies        []string
	TokenBoundCIDRs      []string
	TokenTTL             int64
	TokenMaxTTL          int64
	TokenExplicitMaxTTL  int64
	TokenPeriod          int64
	TokenNumUses         int64
	TokenNoDefaultPolicy bool
	TokenType            string

	// Deprecated aliases; Vault echoes them on read only when they were used.
	Policies   []string
	BoundCIDRs []string
	TTL        int64
	MaxTTL     int64
	Period     int64
	NumUses    int64
}

// tokenFieldSchema is what every auth method's role takes for the tokens
// it issues (Vault's tokenutil fields and their deprecated aliases).
var tokenFieldSchema = map[string]fieldType{
	"policies":                tCommaStringSlice,
	"ttl":                     tDurationSecond,
	"max_ttl":                 tDurationSecond,
	"period":                  tDurationSecond,
	"token_bound_cidrs":       tCommaStringSlice,
	"token_explicit_max_ttl":  tDurationSecond,
	"token_max_ttl":           tDurationSecond,
	"token_no_default_policy": tBool,
	"token_period":            tDurationSecond,
	"token_policies":          tCommaStringSlice,
	"token_type":              tString,
	"token_ttl":               tDurationSecond,
	"token_num_uses":          tInt,
}

// withTokenFields is a role schema: the method's own fields and the token ones.
func withTokenFields(own map[string]fieldType) map[string]fieldType {
	maps.Copy(own, tokenFieldSchema)
	return own
}

var roleSchema = withTokenFields(map[string]fieldType{
	"name":                                     tString,
	"bound_service_account_names":              tCommaStringSlice,
	"bound_service_account_namespaces":         tCommaStringSlice,
	"bound_service_account_namespace_selector": tString,
	"audience":                                 tString,
	"alias_name_source":                        tString,
	"num_uses":                                 tInt,
	"bound_cidrs":                              tCommaStringSlice,
})

var configSchema = map[string]fieldType{
	"kubernetes_host":                   tString,
	"kubernetes_ca_cert":                tString,
	"token_reviewer_jwt":                tString,
	"pem_keys":                          tCommaStringSlice,
	"issuer":                            tString,
	"disable_iss_validation":            tBool,
	"disable_local_ca_jwt":              tBool,
	"use_annotations_as_alias_metadata": tBool,
}

// roleNameRE is framework.GenericNameRegex.
var roleNameRE = regexp.MustCompile(`^\w(([\w-.@]+)?\w)?$`)

const (
	aliasNameSourceUID  = "serviceaccount_uid"
	aliasNameSourceName = "serviceaccount_name"
)

// handleAuthPath serves auth/<mount>/... for kubernetes and aws auth mounts
// (logins are routed before the token check, in login.go).
func (s *Server) handleAuthPath(req *request) *response {
	m, rest := s.findAuthMount(strings.TrimPrefix(req.path, "auth/"))
	if m == nil {
		return noRoute(req.path)
	}
	if m.Type == "aws" {
		return s.handleAWSAuthPath(req, m, rest)
	}
	if m.Type != "kubernetes" {
		return s.unexpectedf(http.StatusNotFound, "%s /v1/%s: the %s auth method is not modelled", req.method, req.path, m.Type)
	}
	switch {
	case rest == "config":
		switch req.op {
		case "read":
			if m.config == nil {
				return notFound()
			}
			return okData(kubeConfigRead(m.config))
		case "write":
			return s.writeKubeConfig(m, req.body)
		}
	case rest == "role":
		if req.op == "list" {
			return listRoles(m.roles)
		}
	case strings.HasPrefix(rest, "role/"):
		name := strings.TrimPrefix(rest, "role/")
		if !roleNameRE.MatchString(name) {
			return &response{http.StatusNotFound, errorBody("1 error occurred:\n\t* unsupported path\n\n")}
		}
		key := strings.ToLower(name)
		switch req.op {
		case "read":
			r, ok := m.roles[key]
			if !ok {
				return notFound()
			}
			return okData(r.read())
		case "write":
			r, warnings, err := writeRole(m.roles[key], req.body)
			if err != nil {
				return badRequest("%v", err)
			}
			m.roles[key] = r
			if len(warnings) > 0 {
				return okWithWarnings(nil, warnings)
			}
			return noContent()
		case "delete":
			delete(m.roles, key)
			return noContent()
		}
	default:
		return s.unexpectedf(http.StatusNotFound, "%s /v1/%s: kubernetes auth path %q is not modelled", req.method, req.path, rest)
	}
	return s.unsupported(req)
}

func (s *Server) writeKubeConfig(m *authMount, body map[string]any) *response {
	fs, err := parseFields(configSchema, body)
	if err != nil {
		return badRequest("%v", err)
	}
	host := fs.str("kubernetes_host")
	if host == "" {
		return badRequest("no host provided")
	}
	if ca := fs.str("kubernetes_ca_cert"); ca != "" {
		if block, _ := pem.Decode([]byte(ca)); block == nil || block.Type != "CERTIFICATE" {
			return badRequest("kubernetes_ca_cert does not contain a PEM encoded certificate")
		}
	}
	if jwt := fs.str("token_reviewer_jwt"); jwt != "" {
		if err := checkJWTShape(jwt); err != nil {
			return badRequest("token_reviewer_jwt: %v", err)
		}
	}
	disableIss := true
	if fs.has("disable_iss_validation") {
		disableIss = fs.bool("disable_iss_validation")
	}
	pemKeys := fs.strs("pem_keys")
	if pemKeys == nil {
		pemKeys = []string{}
	}
	// A write replaces the whole config, as in the plugin.
	m.config = map[string]any{
		"kubernetes_host":                   host,
		"kubernetes_ca_cert":                fs.str("kubernetes_ca_cert"),
		"token_reviewer_jwt":                fs.str("token_reviewer_jwt"),
		"pem_keys":                          pemKeys,
		"issuer":                            fs.str("issuer"),
		"disable_iss_validation":            disableIss,
		"disable_local_ca_jwt":              fs.bool("disable_local_ca_jwt"),
		"use_annotations_as_alias_metadata": fs.bool("use_annotations_as_alias_metadata"),
	}
	if w := fs.warnings(); len(w) > 0 {
		return okWithWarnings(nil, w)
	}
	return noContent()
}

// kubeConfigRead is what Vault returns on read: never the reviewer JWT.
func kubeConfigRead(cfg map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range cfg {
		if k != "token_reviewer_jwt" {
			out[k] = v
		}
	}
	return out
}

// checkJWTShape checks that s looks like a compact JWS, without verifying it,
// as the plugin does with ParseUnverified.
func checkJWTShape(s string) error {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return fmt.Errorf("token contains an invalid number of segments")
	}
	header, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil {
		return fmt.Errorf("decoding token header: %w", err)
	}
	var h map[string]any
	if err := json.Unmarshal(header, &h); err != nil {
		return fmt.Errorf("token header is not JSON: %w", err)
	}
	return nil
}

// writeRole applies a create (existing == nil) or update to a role the way
// the plugin's pathRoleCreateUpdate does, returning the new role and warnings.
func writeRole(existing *kubeRole, body map[string]any) (*kubeRole, []string, error) {
	fs, err := parseFields(roleSchema, body)
	if err != nil {
		return nil, nil, err
	}
	create := existing == nil
	r := &kubeRole{}
	if !create {
		cp := *existing
		r = &cp
	}
	warnings := fs.warnings()

	if err := r.parseTokenParams(fs); err != nil {
		return nil, nil, err
	}
	upgradeStrings(fs, "bound_cidrs", "token_bound_cidrs", &r.BoundCIDRs, &r.TokenBoundCIDRs)
	upgradeInt(fs, "num_uses", "token_num_uses", &r.NumUses, &r.TokenNumUses)
	if r.TokenMaxTTL > 0 && r.TokenTTL > r.TokenMaxTTL {
		return nil, nil, fmt.Errorf("token ttl should not be greater than token max ttl")
	}

	if fs.has("bound_service_account_names") || create {
		r.SANames = fs.strs("bound_service_account_names")
	}
	if len(r.SANames) == 0 {
		return nil, nil, fmt.Errorf("%q can not be empty", "bound_service_account_names")
	}
	if len(r.SANames) > 1 && slices.Contains(r.SANames, "*") {
		return nil, nil, fmt.Errorf("can not mix %q with values", "*")
	}
	if fs.has("bound_service_account_namespaces") {
		r.SANamespaces = fs.strs("bound_service_account_namespaces")
	}
	// The plugin reads the selector with data.Get, so an update without it clears it.
	r.NSSelector = fs.str("bound_service_account_namespace_selector")
	if len(r.SANamespaces) == 0 && r.NSSelector == "" {
		return nil, nil, fmt.Errorf("%q can not be empty if %q is not set",
			"bound_service_account_namespaces", "bound_service_account_namespace_selector")
	}
	if r.NSSelector != "" {
		var sel map[string]any
		if err := yaml.Unmarshal([]byte(r.NSSelector), &sel); err != nil || sel == nil {
			return nil, nil, fmt.Errorf("invalid %q configured", "bound_service_account_namespace_selector")
		}
	}
	if len(r.SANamespaces) > 1 && slices.Contains(r.SANamespaces, "*") {
		return nil, nil, fmt.Errorf("can not mix %q with values", "*")
	}

	if fs.has("audience") {
		r.Audience = fs.str("audience")
	}
	if strings.TrimSpace(r.Audience) == "" {
		warnings = append(warnings, "This role does not specify an audience. In a future version of Vault, specifying an audience will be required.")
	}

	if fs.has("alias_name_source") && fs.str("alias_name_source") != "" {
		r.AliasNameSource = fs.str("alias_name_source")
	} else if r.AliasNameSource == "" {
		r.AliasNameSource = aliasNameSourceUID
	}
	if r.AliasNameSource != aliasNameSourceUID && r.AliasNameSource != aliasNameSourceName {
		return nil, nil, fmt.Errorf("invalid alias_name_source %q, must be one of %q or %q",
			r.AliasNameSource, aliasNameSourceUID, aliasNameSourceName)
	}
	return r, warnings, nil
}

// parseTokenFields mirrors tokenutil.TokenParams.ParseTokenFields.
// parseTokenParams reads the token fields every role has, with their
// deprecated aliases: the token_* field wins; the old one alone sets both.
func (r *kubeRole) parseTokenParams(fs fieldSet) error {
	if err := r.parseTokenFields(fs); err != nil {
		return err
	}
	upgradeStrings(fs, "policies", "token_policies", &r.Policies, &r.TokenPolicies)
	upgradeInt(fs, "ttl", "token_ttl", &r.TTL, &r.TokenTTL)
	upgradeInt(fs, "max_ttl", "token_max_ttl", &r.MaxTTL, &r.TokenMaxTTL)
	upgradeInt(fs, "period", "token_period", &r.Period, &r.TokenPeriod)
	return nil
}

func (r *kubeRole) parseTokenFields(fs fieldSet) error {
	if fs.has("token_bound_cidrs") {
		for _, c := range fs.strs("token_bound_cidrs") {
			if _, _, err := net.ParseCIDR(c); err != nil && net.ParseIP(c) == nil {
				return fmt.Errorf("invalid address %q in token_bound_cidrs", c)
			}
		}
		r.TokenBoundCIDRs = fs.strs("token_bound_cidrs")
	}
	if fs.has("token_explicit_max_ttl") {
		r.TokenExplicitMaxTTL = fs.int("token_explicit_max_ttl")
	}
	if fs.has("token_max_ttl") {
		r.TokenMaxTTL = fs.int("token_max_ttl")
	}
	if r.TokenMaxTTL < 0 {
		return fmt.Errorf("'token_max_ttl' cannot be negative")
	}
	if fs.has("token_no_default_policy") {
		r.TokenNoDefaultPolicy = fs.bool("token_no_default_policy")
	}
	if fs.has("token_period") {
		r.TokenPeriod = fs.int("token_period")
	}
	if r.TokenPeriod < 0 {
		return fmt.Errorf("'token_period' cannot be negative")
	}
	if fs.has("token_policies") {
		r.TokenPolicies = fs.strs("token_policies")
	}
	if fs.has("token_type") {
		switch t := fs.str("token_type"); t {
		case "service", "batch", "default-batch":
			r.TokenType = t
		case "", "default", "default-service":
			r.TokenType = "default-service"
		default:
			return fmt.Errorf("invalid 'token_type' value %q", t)
		}
	}
	if r.TokenType == "batch" || r.TokenType == "default-batch" {
		if r.TokenPeriod != 0 {
			return fmt.Errorf("'token_type' cannot be 'batch' or 'default_batch' when set to generate periodic tokens")
		}
		if r.TokenNumUses != 0 {
			return fmt.Errorf("'token_type' cannot be 'batch' or 'default_batch' when set to generate tokens with limited use count")
		}
	}
	if fs.has("token_ttl") {
		r.TokenTTL = fs.int("token_ttl")
	}
	if r.TokenTTL < 0 {
		return fmt.Errorf("'token_ttl' cannot be negative")
	}
	if r.TokenTTL > 0 && r.TokenMaxTTL > 0 && r.TokenTTL > r.TokenMaxTTL {
		return fmt.Errorf("'token_ttl' cannot be greater than 'token_max_ttl'")
	}
	if fs.has("token_num_uses") {
		r.TokenNumUses = fs.int("token_num_uses")
	}
	if r.TokenNumUses < 0 {
		return fmt.Errorf("'token_num_uses' cannot be negative")
	}
	return nil
}

func upgradeStrings(fs fieldSet, oldKey, newKey string, oldVal, newVal *[]string) {
	switch {
	case fs.has(newKey):
		*oldVal = nil
	case fs.has(oldKey):
		*oldVal = fs.strs(oldKey)
		*newVal = fs.strs(oldKey)
	}
}

func upgradeInt(fs fieldSet, oldKey, newKey string, oldVal, newVal *int64) {
	switch {
	case fs.has(newKey):
		*oldVal = 0
	case fs.has(oldKey):
		*oldVal = fs.int(oldKey)
		*newVal = fs.int(oldKey)
	}
}

// read renders the role like pathRoleRead (durations in seconds).
func (r *kubeRole) read() map[string]any {
	names := nonNil(r.SANames)
	namespaces := nonNil(r.SANamespaces)
	d := map[string]any{
		"bound_service_account_names":              names,
		"bound_service_account_namespaces":         namespaces,
		"bound_service_account_namespace_selector": r.NSSelector,
		"token_bound_cidrs":                        nonNil(r.TokenBoundCIDRs),
		"token_explicit_max_ttl":                   r.TokenExplicitMaxTTL,
		"token_max_ttl":                            r.TokenMaxTTL,
		"token_no_default_policy":                  r.TokenNoDefaultPolicy,
		"token_period":                             r.TokenPeriod,
		"token_policies":                           nonNil(r.TokenPolicies),
		"token_type":                               r.tokenTypeString(),
		"token_ttl":                                r.TokenTTL,
		"token_num_uses":                           r.TokenNumUses,
		"alias_name_source":                        r.AliasNameSource,
	}
	if r.Audience != "" {
		d["audience"] = r.Audience
	}
	if len(r.Policies) > 0 {
		d["policies"] = d["token_policies"]
	}
	if len(r.BoundCIDRs) > 0 {
		d["bound_cidrs"] = d["token_bound_cidrs"]
	}
	if r.TTL > 0 {
		d["ttl"] = r.TTL
	}
	if r.MaxTTL > 0 {
		d["max_ttl"] = r.MaxTTL
	}
	if r.Period > 0 {
		d["period"] = r.Period
	}
	if r.NumUses > 0 {
		d["num_uses"] = r.NumUses
	}
	return d
}

func (r *kubeRole) tokenTypeString() string {
	if r.TokenType == "" {
		return "default"
	}
	return r.TokenType
}

func nonNil(s []string) []string {
	return append([]string{}, s...)
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}

// listRoles answers a LIST of an auth mount's roles as Vault does: 404
// when there are none.
func listRoles[R any](roles map[string]R) *response {
	if len(roles) == 0 {
		return notFound()
	}
	return okData(map[string]any{"keys": slices.Sorted(maps.Keys(roles))})
}
