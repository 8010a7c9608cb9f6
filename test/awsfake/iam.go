package awsfake

import (
	"encoding/json"
	"encoding/xml"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

const iamNS = "https://iam.amazonaws.com/doc/2010-05-08/"

var iamOps = map[string]bool{
	"CreateRole": true, "GetRole": true, "DeleteRole": true, "ListRoles": true,
	"UpdateAssumeRolePolicy": true, "TagRole": true, "UntagRole": true, "ListRoleTags": true,
	"CreatePolicy": true, "GetPolicy": true, "ListPolicies": true, "DeletePolicy": true,
	"AttachRolePolicy": true, "DetachRolePolicy": true, "ListAttachedRolePolicies": true,
	"PutRolePolicy": true, "GetRolePolicy": true, "DeleteRolePolicy": true, "ListRolePolicies": true,
	"SimulatePrincipalPolicy": true,
	"CreateInstanceProfile":   true, "GetInstanceProfile": true, "DeleteInstanceProfile": true, "AddRoleToInstanceProfile": true,
	"RemoveRoleFromInstanceProfile": true, "ListInstanceProfilesForRole": true, "ListInstanceProfiles": true,
}

// iamState is global (IAM is not regional).
type iamState struct {
	roles     map[string]*iamRole   // by name
	policies  map[string]*iamPolicy // by ARN (customer managed)
	roleOrder []string
	polOrder  []string

	profiles     map[string]*iamProfile // instance profiles by name
	profileOrder []string

	docs map[string][]*policyDoc // principal ARN → AttachPolicyDocument documents
}

type iamRole struct {
	name, path, arn, id string
	trust               string // assume-role policy document, as sent
	description         string
	maxSession          int
	created             time.Time
	tags                map[string]string
	attached            []string          // managed policy ARNs in attach order
	inline              map[string]string // name → document
}

type iamPolicy struct {
	name, path, arn, id string
	description         string
	document            string
	created             time.Time
	tags                map[string]string
}

func newIAMState() *iamState {
	return &iamState{roles: map[string]*iamRole{}, policies: map[string]*iamPolicy{}, docs: map[string][]*policyDoc{}}
}

// roleByArn finds a role by ARN, ignoring the path the way STS does.
func (st *iamState) roleByArn(arn string) *iamRole {
	i := strings.LastIndex(arn, "/")
	if i < 0 || !strings.Contains(arn, ":role/") {
		return nil
	}
	r := st.roles[arn[i+1:]]
	if r == nil || accountOf(r.arn) != accountOf(arn) {
		return nil
	}
	return r
}

// attachmentCount counts roles with policyArn attached. Callers hold s.mu.
func (st *iamState) attachmentCount(policyArn string) int {
	n := 0
	for _, r := range st.roles {
		for _, a := range r.attached {
			if a == policyArn {
				n++
			}
		}
	}
	return n
}

// IAM names: [\w+=,.@-]+ (roles up to 64, policies up to 128).
var iamNameRE = regexp.MustCompile(`^[\w+=,.@-]+$`)

func (s *Server) serveIAM(q *request) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch q.op {
	case "CreateRole":
		return s.iamCreateRole(q)
	case "GetRole":
		return s.iamGetRole(q)
	case "DeleteRole":
		return s.iamDeleteRole(q)
	case "ListRoles":
		return s.iamListRoles(q)
	case "UpdateAssumeRolePolicy":
		return s.iamUpdateAssumeRolePolicy(q)
	case "TagRole", "UntagRole", "ListRoleTags":
		return s.iamRoleTags(q)
	case "CreatePolicy":
		return s.iamCreatePolicy(q)
	case "GetPolicy":
		return s.iamGetPolicy(q)
	case "ListPolicies":
		return s.iamListPolicies(q)
	case "DeletePolicy":
		return s.iamDeletePolicy(q)
	case "AttachRolePolicy", "DetachRolePolicy":
		return s.iamAttachDetach(q)
	case "ListAttachedRolePolicies":
		return s.iamListAttached(q)
	case "PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy", "ListRolePolicies":
		return s.iamInline(q)
	case "SimulatePrincipalPolicy":
		return s.iamSimulate(q)
	case "CreateInstanceProfile", "GetInstanceProfile", "DeleteInstanceProfile", "AddRoleToInstanceProfile",
		"RemoveRoleFromInstanceProfile", "ListInstanceProfilesForRole", "ListInstanceProfiles":
		return s.serveIAMProfiles(q)
	}
	return unsupported("InvalidAction", "iam operation %s is not modelled", q.op)
}

func noSuchRole(name string) *apiError {
	return errorf(http.StatusNotFound, "NoSuchEntity", "The role with name %s cannot be found.", name)
}

func (s *Server) role(q *request) (*iamRole, *apiError) {
	name := q.form.Get("RoleName")
	r := s.iam.roles[name]
	if r == nil {
		return nil, noSuchRole(name)
	}
	return r, nil
}

// iamPath validates a Path parameter ("/" by default).
func iamPath(p string) (string, *apiError) {
	if p == "" {
		return "/", nil
	}
	if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || len(p) > 512 {
		return "", errorf(http.StatusBadRequest, "ValidationError", "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters.")
	}
	return p, nil
}

func validPolicyJSON(doc string) *apiError {
	var v map[string]any
	if err := json.Unmarshal([]byte(doc), &v); err != nil {
		return errorf(http.StatusBadRequest, "MalformedPolicyDocument", "This policy contains invalid Json")
	}
	if _, ok := v["Statement"]; !ok {
		return errorf(http.StatusBadRequest, "MalformedPolicyDocument", "Policy document should have a Statement")
	}
	return nil
}

type xmlRole struct {
	Path                     string   `xml:"Path"`
	RoleName                 string   `xml:"RoleName"`
	RoleID                   string   `xml:"RoleId"`
	Arn                      string   `xml:"Arn"`
	CreateDate               string   `xml:"CreateDate"`
	AssumeRolePolicyDocument string   `xml:"AssumeRolePolicyDocument,omitempty"`
	Description              string   `xml:"Description,omitempty"`
	MaxSessionDuration       int      `xml:"MaxSessionDuration"`
	Tags                     []xmlTag `xml:"Tags>member,omitempty"`
}

// xmlRoleOf renders a role. IAM returns policy documents URL-encoded; so
// does the stand-in, so callers must url.QueryUnescape as with real AWS.
func xmlRoleOf(r *iamRole, withTags bool) xmlRole {
	x := xmlRole{
		Path: r.path, RoleName: r.name, RoleID: r.id, Arn: r.arn, CreateDate: isoTime(r.created),
		AssumeRolePolicyDocument: url.QueryEscape(r.trust), Description: r.description, MaxSessionDuration: r.maxSession,
	}
	if withTags {
		x.Tags = xmlTags(r.tags)
	}
	return x
}

type roleResult struct {
	XMLName xml.Name
	Role    xmlRole `xml:"Role"`
}

func (s *Server) iamCreateRole(q *request) *apiError {
	if bad := unknownParams(q.form, "RoleName", "AssumeRolePolicyDocument", "Path", "Description", "MaxSessionDuration", "Tags.", "PermissionsBoundary"); len(bad) > 0 {
		return unsupported("ValidationError", "CreateRole parameters %v are not modelled", bad)
	}
	name := q.form.Get("RoleName")
	if len(name) > 64 || !iamNameRE.MatchString(name) {
		return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", name)
	}
	path, aerr := iamPath(q.form.Get("Path"))
	if aerr != nil {
		return aerr
	}
	trust := q.form.Get("AssumeRolePolicyDocument")
	if aerr := validPolicyJSON(trust); aerr != nil {
		return aerr
	}
	maxSession := 3600
	if v := q.form.Get("MaxSessionDuration"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 3600 || n > 43200 {
			return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'maxSessionDuration' failed to satisfy constraint: Member must have value between 3600 and 43200", v)
		}
		maxSession = n
	}
	if _, ok := s.iam.roles[name]; ok {
		return errorf(http.StatusConflict, "EntityAlreadyExists", "Role with name %s already exists.", name)
	}
	r := &iamRole{
		name: name, path: path, arn: "arn:aws:iam::" + s.opts.AccountID + ":role" + path + name,
		id: "AROA" + hashID(17, alphaUpperNum, "role", name, s.nextSeq()), trust: trust,
		description: q.form.Get("Description"), maxSession: maxSession, created: q.now,
		tags: formTags(q.form), inline: map[string]string{},
	}
	s.iam.roles[name] = r
	s.iam.roleOrder = append(s.iam.roleOrder, name)
	return writeQuery(q, iamNS, roleResult{XMLName: xml.Name{Local: "CreateRoleResult"}, Role: xmlRoleOf(r, true)})
}

func (s *Server) iamGetRole(q *request) *apiError {
	r, aerr := s.role(q)
	if aerr != nil {
		return aerr
	}
	return writeQuery(q, iamNS, roleResult{XMLName: xml.Name{Local: "GetRoleResult"}, Role: xmlRoleOf(r, true)})
}

func (s *Server) iamDeleteRole(q *request) *apiError {
	r, aerr := s.role(q)
	if aerr != nil {
		return aerr
	}
	if len(r.attached) > 0 {
		return errorf(http.StatusConflict, "DeleteConflict", "Cannot delete entity, must detach all policies first.")
	}
	if len(r.inline) > 0 {
		return errorf(http.StatusConflict, "DeleteConflict", "Cannot delete entity, must delete policies first.")
	}
	if s.iam.inProfile(r.name) {
		return errorf(http.StatusConflict, "DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.")
	}
	delete(s.iam.roles, r.name)
	s.iam.roleOrder = removeString(s.iam.roleOrder, r.name)
	return writeQuery(q, iamNS, nil)
}

// iamPage applies Marker/MaxItems (default 100) to n items.
func iamPage[T any](q *request, items []T) ([]T, string, *apiError) {
	max := 100
	if v := q.form.Get("MaxItems"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return nil, "", errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000", v)
		}
		max = n
	}
	page, next, ok := paginate(items, q.form.Get("Marker"), max)
	if !ok {
		return nil, "", errorf(http.StatusBadRequest, "ValidationError", "Invalid Marker.")
	}
	return page, next, nil
}

type listRolesResult struct {
	XMLName     xml.Name  `xml:"ListRolesResult"`
	Roles       []xmlRole `xml:"Roles>member"`
	IsTruncated bool      `xml:"IsTruncated"`
	Marker      string    `xml:"Marker,omitempty"`
}

func (s *Server) iamListRoles(q *request) *apiError {
	prefix := q.form.Get("PathPrefix")
	var all []xmlRole
	for _, name := range s.iam.roleOrder {
		r := s.iam.roles[name]
		if strings.HasPrefix(r.path, prefix) {
			all = append(all, xmlRoleOf(r, false))
		}
	}
	page, next, aerr := iamPage(q, all)
	if aerr != nil {
		return aerr
	}
	return writeQuery(q, iamNS, listRolesResult{Roles: page, IsTruncated: next != "", Marker: next})
}

func (s *Server) iamUpdateAssumeRolePolicy(q *request) *apiError {
	r, aerr := s.role(q)
	if aerr != nil {
		return aerr
	}
	doc := q.form.Get("PolicyDocument")
	if aerr := validPolicyJSON(doc); aerr != nil {
		return aerr
	}
	r.trust = doc
	return writeQuery(q, iamNS, nil)
}

type listRoleTagsResult struct {
	XMLName     xml.Name `xml:"ListRoleTagsResult"`
	Tags        []xmlTag `xml:"Tags>member"`
	IsTruncated bool     `xml:"IsTruncated"`
}

func (s *Server) iamRoleTags(q *request) *apiError {
	r, aerr := s.role(q)
	if aerr != nil {
		return aerr
	}
	switch q.op {
	case "TagRole":
		for k, v := range formTags(q.form) {
			r.tags[k] = v
		}
		if len(r.tags) > 50 {
			return errorf(http.StatusBadRequest, "LimitExceeded", "Cannot exceed quota for TagsPerRole: 50.")
		}
	case "UntagRole":
		for _, k := range formList(q.form, "TagKeys.member") {
			delete(r.tags, k)
		}
	case "ListRoleTags":
		return writeQuery(q, iamNS, listRoleTagsResult{Tags: xmlTags(r.tags)})
	}
	return writeQuery(q, iamNS, nil)
}

type xmlPolicy struct {
	PolicyName       string   `xml:"PolicyName"`
	PolicyID         string   `xml:"PolicyId"`
	Arn              string   `xml:"Arn"`
	Path             string   `xml:"Path"`
	DefaultVersionID string   `xml:"DefaultVersionId"`
	AttachmentCount  int      `xml:"AttachmentCount"`
	IsAttachable     bool     `xml:"IsAttachable"`
	Description      string   `xml:"Description,omitempty"`
	CreateDate       string   `xml:"CreateDate"`
	UpdateDate       string   `xml:"UpdateDate"`
	Tags             []xmlTag `xml:"Tags>member,omitempty"`
}

type policyResult struct {
	XMLName xml.Name
	Policy  xmlPolicy `xml:"Policy"`
}

func (s *Server) xmlPolicyOf(p *iamPolicy, withTags bool) xmlPolicy {
	x := xmlPolicy{
		PolicyName: p.name, PolicyID: p.id, Arn: p.arn, Path: p.path, DefaultVersionID: "v1",
		AttachmentCount: s.iam.attachmentCount(p.arn), IsAttachable: true, Description: p.description,
		CreateDate: isoTime(p.created), UpdateDate: isoTime(p.created),
	}
	if withTags {
		x.Tags = xmlTags(p.tags)
	}
	return x
}

// awsManagedPolicy makes the record of an AWS managed policy
// (arn:aws:iam::aws:policy/…); any such ARN is accepted as existing.
func awsManagedPolicy(arn string) *iamPolicy {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::aws:policy/")
	if !ok || rest == "" {
		return nil
	}
	i := strings.LastIndex(rest, "/")
	return &iamPolicy{
		name: rest[i+1:], path: "/" + rest[:i+1], arn: arn,
		id: "ANPA" + hashID(17, alphaUpperNum, "awspolicy", arn), created: time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC),
	}
}

func (s *Server) policy(arn string) *iamPolicy {
	if p := s.iam.policies[arn]; p != nil {
		return p
	}
	return awsManagedPolicy(arn)
}

func (s *Server) iamCreatePolicy(q *request) *apiError {
	if bad := unknownParams(q.form, "PolicyName", "PolicyDocument", "Path", "Description", "Tags."); len(bad) > 0 {
		return unsupported("ValidationError", "CreatePolicy parameters %v are not modelled", bad)
	}
	name := q.form.Get("PolicyName")
	if len(name) > 128 || !iamNameRE.MatchString(name) {
		return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'policyName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", name)
	}
	path, aerr := iamPath(q.form.Get("Path"))
	if aerr != nil {
		return aerr
	}
	doc := q.form.Get("PolicyDocument")
	if aerr := validPolicyJSON(doc); aerr != nil {
		return aerr
	}
	arn := "arn:aws:iam::" + s.opts.AccountID + ":policy" + path + name
	for _, p := range s.iam.policies {
		if p.name == name {
			return errorf(http.StatusConflict, "EntityAlreadyExists", "A policy called %s already exists. Duplicate names are not allowed.", name)
		}
	}
	p := &iamPolicy{
		name: name, path: path, arn: arn, id: "ANPA" + hashID(17, alphaUpperNum, "policy", name, s.nextSeq()),
		description: q.form.Get("Description"), document: doc, created: q.now, tags: formTags(q.form),
	}
	s.iam.policies[arn] = p
	s.iam.polOrder = append(s.iam.polOrder, arn)
	return writeQuery(q, iamNS, policyResult{XMLName: xml.Name{Local: "CreatePolicyResult"}, Policy: s.xmlPolicyOf(p, true)})
}

func noSuchPolicy(arn string) *apiError {
	return errorf(http.StatusNotFound, "NoSuchEntity", "Policy %s does not exist or is not attachable.", arn)
}

func (s *Server) iamGetPolicy(q *request) *apiError {
	arn := q.form.Get("PolicyArn")
	p := s.policy(arn)
	if p == nil {
		return noSuchPolicy(arn)
	}
	return writeQuery(q, iamNS, policyResult{XMLName: xml.Name{Local: "GetPolicyResult"}, Policy: s.xmlPolicyOf(p, true)})
}

type listPoliciesResult struct {
	XMLName     xml.Name    `xml:"ListPoliciesResult"`
	Policies    []xmlPolicy `xml:"Policies>member"`
	IsTruncated bool        `xml:"IsTruncated"`
	Marker      string      `xml:"Marker,omitempty"`
}

// iamListPolicies lists customer managed policies; AWS managed policies are
// not enumerated (Scope=AWS returns only those attached somewhere).
func (s *Server) iamListPolicies(q *request) *apiError {
	scope := q.form.Get("Scope")
	onlyAttached := q.form.Get("OnlyAttached") == "true"
	prefix := q.form.Get("PathPrefix")
	var arns []string
	if scope != "AWS" {
		arns = append(arns, s.iam.polOrder...)
	}
	if scope != "Local" {
		seen := map[string]bool{}
		for _, name := range s.iam.roleOrder {
			for _, a := range s.iam.roles[name].attached {
				if !seen[a] && awsManagedPolicy(a) != nil {
					seen[a] = true
					arns = append(arns, a)
				}
			}
		}
	}
	var all []xmlPolicy
	for _, arn := range arns {
		p := s.policy(arn)
		if !strings.HasPrefix(p.path, prefix) || (onlyAttached && s.iam.attachmentCount(arn) == 0) {
			continue
		}
		all = append(all, s.xmlPolicyOf(p, false))
	}
	page, next, aerr := iamPage(q, all)
	if aerr != nil {
		return aerr
	}
	return writeQuery(q, iamNS, listPoliciesResult{Policies: page, IsTruncated: next != "", Marker: next})
}

func (s *Server) iamDeletePolicy(q *request) *apiError {
	arn := q.form.Get("PolicyArn")
	p := s.iam.policies[arn]
	if p == nil {
		return noSuchPolicy(arn)
	}
	if s.iam.attachmentCount(arn) > 0 {
		return errorf(http.StatusConflict, "DeleteConflict", "Cannot delete a policy attached to entities.")
	}
	delete(s.iam.policies, arn)
	s.iam.polOrder = removeString(s.iam.polOrder, arn)
	return writeQuery(q, iamNS, nil)
}

func (s *Server) iamAttachDetach(q *request) *apiError {
	r, aerr := s.role(q)
	if aerr != nil {
		return aerr
	}
	arn := q.form.Get("PolicyArn")
	attached := false
	for _, a := range r.attached {
		attached = attached || a == arn
	}
	if q.op == "DetachRolePolicy" {
		if !attached {
			return errorf(http.StatusNotFound, "NoSuchEntity", "Policy %s was not found.", arn)
		}
		r.attached = removeString(r.attached, arn)
		return writeQuery(q, iamNS, nil)
	}
	if s.policy(arn) == nil {
		return noSuchPolicy(arn)
	}
	if !attached {
		if len(r.attached) >= 10 {
			return errorf(http.StatusConflict, "LimitExceeded", "Cannot exceed quota for PoliciesPerRole: 10")
		}
		r.attached = append(r.attached, arn)
	}
	return writeQuery(q, iamNS, nil)
}

type xmlAttachedPolicy struct {
	PolicyName string `xml:"PolicyName"`
	PolicyArn  string `xml:"PolicyArn"`
}

type listAttachedResult struct {
	XMLName          xml.Name            `xml:"ListAttachedRolePoliciesResult"`
	AttachedPolicies []xmlAttachedPolicy `xml:"AttachedPolicies>member"`
	IsTruncated      bool                `xml:"IsTruncated"`
	Marker           string              `xml:"Marker,omitempty"`
}

func (s *Server) iamListAttached(q *request) *apiError {
	r, aerr := s.role(q)
	if aerr != nil {
		return aerr
	}
	var all []xmlAttachedPolicy
	for _, a := range r.attached {
		all = append(all, xmlAttachedPolicy{PolicyName: s.policy(a).name, PolicyArn: a})
	}
	page, next, aerr := iamPage(q, all)
	if aerr != nil {
		return aerr
	}
	return writeQuery(q, iamNS, listAttachedResult{AttachedPolicies: page, IsTruncated: next != "", Marker: next})
}

type getRolePolicyResult struct {
	XMLName        xml.Name `xml:"GetRolePolicyResult"`
	RoleName       string   `xml:"RoleName"`
	PolicyName     string   `xml:"PolicyName"`
	PolicyDocument string   `xml:"PolicyDocument"`
}

type listRolePoliciesResult struct {
	XMLName     xml.Name `xml:"ListRolePoliciesResult"`
	PolicyNames []string `xml:"PolicyNames>member"`
	IsTruncated bool     `xml:"IsTruncated"`
	Marker      string   `xml:"Marker,omitempty"`
}

func (s *Server) iamInline(q *request) *apiError {
	r, aerr := s.role(q)
	if aerr != nil {
		return aerr
	}
	name := q.form.Get("PolicyName")
	switch q.op {
	case "PutRolePolicy":
		if len(name) > 128 || !iamNameRE.MatchString(name) {
			return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'policyName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+", name)
		}
		doc := q.form.Get("PolicyDocument")
		if aerr := validPolicyJSON(doc); aerr != nil {
			return aerr
		}
		r.inline[name] = doc
	case "GetRolePolicy":
		doc, ok := r.inline[name]
		if !ok {
			return errorf(http.StatusNotFound, "NoSuchEntity", "The role policy with name %s cannot be found.", name)
		}
		return writeQuery(q, iamNS, getRolePolicyResult{RoleName: r.name, PolicyName: name, PolicyDocument: url.QueryEscape(doc)})
	case "DeleteRolePolicy":
		if _, ok := r.inline[name]; !ok {
			return errorf(http.StatusNotFound, "NoSuchEntity", "The role policy with name %s cannot be found.", name)
		}
		delete(r.inline, name)
	case "ListRolePolicies":
		page, next, aerr := iamPage(q, sortedKeys(r.inline))
		if aerr != nil {
			return aerr
		}
		return writeQuery(q, iamNS, listRolePoliciesResult{PolicyNames: page, IsTruncated: next != "", Marker: next})
	}
	return writeQuery(q, iamNS, nil)
}

type xmlEvalResult struct {
	EvalActionName       string         `xml:"EvalActionName"`
	EvalResourceName     string         `xml:"EvalResourceName"`
	EvalDecision         string         `xml:"EvalDecision"`
	MatchedStatements    []xmlStatement `xml:"MatchedStatements>member,omitempty"`
	MissingContextValues []string       `xml:"MissingContextValues>member,omitempty"`
}

type xmlStatement struct {
	SourcePolicyID   string `xml:"SourcePolicyId"`
	SourcePolicyType string `xml:"SourcePolicyType"`
}

type simulateResult struct {
	XMLName           xml.Name        `xml:"SimulatePrincipalPolicyResult"`
	EvaluationResults []xmlEvalResult `xml:"EvaluationResults>member"`
	IsTruncated       bool            `xml:"IsTruncated"`
	Marker            string          `xml:"Marker,omitempty"`
}

// contextKeyTypes are IAM's ContextKeyTypeEnum; values are compared as
// strings whatever the type.
var contextKeyTypes = map[string]bool{
	"string": true, "stringList": true, "numeric": true, "numericList": true, "boolean": true, "booleanList": true,
	"ip": true, "ipList": true, "binary": true, "binaryList": true, "date": true, "dateList": true,
}

// iamSimulate evaluates the documents attached to the policy source with
// AttachPolicyDocument (its role's too, for a session). A source without
// documents is allowed every action. DenyAction denies explicitly either way.
func (s *Server) iamSimulate(q *request) *apiError {
	if bad := unknownParams(q.form, "PolicySourceArn", "ActionNames.", "ResourceArns.", "ContextEntries.", "MaxItems", "Marker"); len(bad) > 0 {
		return unsupported("ValidationError", "SimulatePrincipalPolicy parameters %v are not modelled", bad)
	}
	source := q.form.Get("PolicySourceArn")
	actions := formList(q.form, "ActionNames.member")
	if len(actions) == 0 {
		return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'actionNames' failed to satisfy constraint: Member must not be null")
	}
	resources := formList(q.form, "ResourceArns.member")
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	ctx := simContext{}
	for i, e := range formStructs(q.form, "ContextEntries.member", "ContextKeyName", "ContextKeyType") {
		name, typ := e["ContextKeyName"], e["ContextKeyType"]
		if name == "" {
			return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'contextEntries.%d.member.contextKeyName' failed to satisfy constraint: Member must not be null", i+1)
		}
		if typ != "" && !contextKeyTypes[typ] {
			return errorf(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value '%s' at 'contextEntries.%d.member.contextKeyType' failed to satisfy constraint: Member must satisfy enum value set: %v", typ, i+1, sortedKeys(contextKeyTypes))
		}
		key := strings.ToLower(name)
		ctx[key] = append(ctx[key], formList(q.form, "ContextEntries.member."+strconv.Itoa(i+1)+".ContextKeyValues.member")...)
	}
	docs := s.docsFor(source)
	sourceType := "user"
	if strings.Contains(source, ":role/") || strings.Contains(source, ":assumed-role/") {
		sourceType = "role"
	}
	var res simulateResult
	for _, a := range actions {
		for _, r := range resources {
			x := xmlEvalResult{EvalActionName: a, EvalResourceName: r, EvalDecision: "allowed"}
			switch {
			case s.isDeniedLocked(source, a):
				x.EvalDecision = "explicitDeny"
			case len(docs) > 0:
				ev := evaluatePolicies(docs, a, r, ctx)
				x.EvalDecision, x.MissingContextValues = ev.decision, ev.missing
				for _, id := range ev.matched {
					x.MatchedStatements = append(x.MatchedStatements, xmlStatement{SourcePolicyID: id, SourcePolicyType: sourceType})
				}
			}
			res.EvaluationResults = append(res.EvaluationResults, x)
		}
	}
	page, next, aerr := iamPage(q, res.EvaluationResults)
	if aerr != nil {
		return aerr
	}
	res.EvaluationResults, res.IsTruncated, res.Marker = page, next != "", next
	return writeQuery(q, iamNS, res)
}

func removeString(list []string, v string) []string {
	out := list[:0]
	for _, x := range list {
		if x != v {
			out = append(out, x)
		}
	}
	return out
}
