package edge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// RestIntegration is the integration behind one method of a REST API (v1).
type RestIntegration struct {
	Type            string // HTTP_PROXY, HTTP, AWS_PROXY, AWS, MOCK
	HTTPMethod      string // the method used toward the backend
	URI             string
	ConnectionType  string // INTERNET or VPC_LINK
	ConnectionID    string // the VPC link id when ConnectionType is VPC_LINK
	TimeoutInMillis int
}

// IntegrationTarget is what one integration of a deployment points at.
type IntegrationTarget struct {
	URI            string
	ConnectionType string
	ConnectionID   string
}

// Deployment is a published snapshot of an API. Integrations records what it
// serves: for a REST API keyed "METHOD /path", for an HTTP API by integration id.
type Deployment struct {
	ID           string
	Description  string
	StageName    string // the stage named in CreateDeployment, if any
	Created      time.Time
	AutoDeployed bool
	Integrations map[string]IntegrationTarget
}

// StageState is a stage of a REST or HTTP API.
type StageState struct {
	Name         string
	DeploymentID string
	AutoDeploy   bool // HTTP APIs only
}

type restMethod struct {
	httpMethod  string
	integration *RestIntegration
}

type restResource struct {
	id, parentID, pathPart, path string
	methods                      map[string]*restMethod
}

type stage struct {
	name, deploymentID string
	autoDeploy         bool
	created, updated   time.Time
}

type restAPI struct {
	id, name    string
	created     time.Time
	rootID      string
	resources   map[string]*restResource
	resOrder    []string
	stages      map[string]*stage
	deployments []Deployment
}

func (a *restAPI) resourceByPath(path string) *restResource {
	for _, id := range a.resOrder {
		if a.resources[id].path == path {
			return a.resources[id]
		}
	}
	return nil
}

// snapshot is what a deployment made now would serve.
func (a *restAPI) snapshot() map[string]IntegrationTarget {
	out := map[string]IntegrationTarget{}
	for _, res := range a.resources {
		for m, meth := range res.methods {
			if in := meth.integration; in != nil {
				out[m+" "+res.path] = IntegrationTarget{URI: in.URI, ConnectionType: in.ConnectionType, ConnectionID: in.ConnectionID}
			}
		}
	}
	return out
}

// ---- seeding and inspection -------------------------------------------------

// AddRestAPI creates a REST API (v1) with its root resource and returns its id.
func (s *Services) AddRestAPI(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &restAPI{
		id: makeID(s.next(), 10, idAlphabetLower), name: name, created: s.now(),
		resources: map[string]*restResource{}, stages: map[string]*stage{},
	}
	root := &restResource{id: makeID(s.next(), 10, idAlphabetLower), path: "/", methods: map[string]*restMethod{}}
	a.rootID = root.id
	a.resources[root.id] = root
	a.resOrder = append(a.resOrder, root.id)
	s.restAPIs[a.id] = a
	s.restAPIOrder = append(s.restAPIOrder, a.id)
	return a.id
}

// AddRestIntegration gives method httpMethod of a resource an HTTP_PROXY
// integration over the internet to uri, and returns the resource id. The
// resource is a path ("/orders/{id}", created with its parents as needed) or
// an existing resource id.
func (s *Services) AddRestIntegration(apiID, resource, httpMethod, uri string) string {
	return s.PutRestIntegration(apiID, resource, httpMethod, RestIntegration{Type: "HTTP_PROXY", URI: uri})
}

// PutRestIntegration is AddRestIntegration with every field chosen by the
// caller; empty Type, HTTPMethod and ConnectionType default to HTTP_PROXY,
// the method itself and INTERNET.
func (s *Services) PutRestIntegration(apiID, resource, httpMethod string, in RestIntegration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.restAPIs[apiID]
	if !ok {
		panic(fmt.Sprintf("awsfake/edge: no REST API %q", apiID))
	}
	res := s.ensureResource(a, resource)
	httpMethod = strings.ToUpper(httpMethod)
	if in.Type == "" {
		in.Type = "HTTP_PROXY"
	}
	if in.HTTPMethod == "" {
		in.HTTPMethod = httpMethod
	}
	if in.ConnectionType == "" {
		in.ConnectionType = "INTERNET"
	}
	if in.TimeoutInMillis == 0 {
		in.TimeoutInMillis = 29000
	}
	res.methods[httpMethod] = &restMethod{httpMethod: httpMethod, integration: &in}
	return res.id
}

func (s *Services) ensureResource(a *restAPI, resource string) *restResource {
	if !strings.HasPrefix(resource, "/") {
		res, ok := a.resources[resource]
		if !ok {
			panic(fmt.Sprintf("awsfake/edge: REST API %s has no resource %q", a.id, resource))
		}
		return res
	}
	parent := a.resources[a.rootID]
	path := ""
	for _, part := range strings.Split(strings.Trim(resource, "/"), "/") {
		if part == "" {
			continue
		}
		path += "/" + part
		res := a.resourceByPath(path)
		if res == nil {
			res = &restResource{id: makeID(s.next(), 6, idAlphabetLower), parentID: parent.id, pathPart: part, path: path,
				methods: map[string]*restMethod{}}
			a.resources[res.id] = res
			a.resOrder = append(a.resOrder, res.id)
		}
		parent = res
	}
	return parent
}

// AddStage creates a stage on a REST or HTTP API, pointing at a fresh
// deployment of the API as it is now (that deployment shows in Deployments).
func (s *Services) AddStage(apiID, stageName string) {
	s.addStage(apiID, stageName, false)
}

func (s *Services) addStage(apiID, stageName string, autoDeploy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	st := &stage{name: stageName, autoDeploy: autoDeploy, created: now, updated: now}
	switch {
	case s.restAPIs[apiID] != nil:
		a := s.restAPIs[apiID]
		st.deploymentID = s.deployRest(a, "", stageName)
		a.stages[stageName] = st
	case s.httpAPIs[apiID] != nil:
		a := s.httpAPIs[apiID]
		st.deploymentID = s.deployHTTP(a, "", stageName, autoDeploy)
		a.stages[stageName] = st
	default:
		panic(fmt.Sprintf("awsfake/edge: AddStage: no API %q", apiID))
	}
}

func (s *Services) deployRest(a *restAPI, description, stageName string) string {
	d := Deployment{ID: makeID(s.next(), 6, idAlphabetLower), Description: description, StageName: stageName,
		Created: s.now(), Integrations: a.snapshot()}
	a.deployments = append(a.deployments, d)
	return d.ID
}

// RestIntegration returns the integration of a method; resource is a path or a resource id.
func (s *Services) RestIntegration(apiID, resource, httpMethod string) (RestIntegration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.restAPIs[apiID]
	if !ok {
		return RestIntegration{}, false
	}
	res := a.resources[resource]
	if strings.HasPrefix(resource, "/") {
		res = a.resourceByPath("/" + strings.Trim(resource, "/"))
	}
	if res == nil {
		return RestIntegration{}, false
	}
	m, ok := res.methods[strings.ToUpper(httpMethod)]
	if !ok || m.integration == nil {
		return RestIntegration{}, false
	}
	return *m.integration, true
}

// Stage returns a stage of a REST or HTTP API.
func (s *Services) Stage(apiID, stageName string) (StageState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st *stage
	if a, ok := s.restAPIs[apiID]; ok {
		st = a.stages[stageName]
	} else if a, ok := s.httpAPIs[apiID]; ok {
		st = a.stages[stageName]
	}
	if st == nil {
		return StageState{}, false
	}
	return StageState{Name: st.name, DeploymentID: st.deploymentID, AutoDeploy: st.autoDeploy}, true
}

// Deployments lists the deployments of a REST or HTTP API, oldest first.
func (s *Services) Deployments(apiID string) []Deployment {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ds []Deployment
	if a, ok := s.restAPIs[apiID]; ok {
		ds = a.deployments
	} else if a, ok := s.httpAPIs[apiID]; ok {
		ds = a.deployments
	}
	out := make([]Deployment, len(ds))
	for i, d := range ds {
		d.Integrations = maps.Clone(d.Integrations)
		out[i] = d
	}
	return out
}

// StageIntegrations is what a stage serves right now: the integrations of
// the deployment it points at (not the API's unpublished edits).
func (s *Services) StageIntegrations(apiID, stageName string) (map[string]IntegrationTarget, bool) {
	st, ok := s.Stage(apiID, stageName)
	if !ok {
		return nil, false
	}
	for _, d := range s.Deployments(apiID) {
		if d.ID == st.DeploymentID {
			return d.Integrations, true
		}
	}
	return nil, false
}

// ---- wire shapes ------------------------------------------------------------

type restIntegrationJSON struct {
	Type                string   `json:"type"`
	HTTPMethod          string   `json:"httpMethod,omitempty"`
	URI                 string   `json:"uri,omitempty"`
	ConnectionType      string   `json:"connectionType"`
	ConnectionID        string   `json:"connectionId,omitempty"`
	PassthroughBehavior string   `json:"passthroughBehavior"`
	TimeoutInMillis     int      `json:"timeoutInMillis"`
	CacheNamespace      string   `json:"cacheNamespace"`
	CacheKeyParameters  []string `json:"cacheKeyParameters"`
}

func restIntegrationWire(res *restResource, in *RestIntegration) restIntegrationJSON {
	return restIntegrationJSON{
		Type: in.Type, HTTPMethod: in.HTTPMethod, URI: in.URI, ConnectionType: in.ConnectionType, ConnectionID: in.ConnectionID,
		PassthroughBehavior: "WHEN_NO_MATCH", TimeoutInMillis: in.TimeoutInMillis, CacheNamespace: res.id, CacheKeyParameters: []string{},
	}
}

type restMethodJSON struct {
	HTTPMethod        string               `json:"httpMethod"`
	AuthorizationType string               `json:"authorizationType"`
	APIKeyRequired    bool                 `json:"apiKeyRequired"`
	MethodIntegration *restIntegrationJSON `json:"methodIntegration,omitempty"`
}

func restMethodWire(res *restResource, m *restMethod) restMethodJSON {
	out := restMethodJSON{HTTPMethod: m.httpMethod, AuthorizationType: "NONE"}
	if m.integration != nil {
		in := restIntegrationWire(res, m.integration)
		out.MethodIntegration = &in
	}
	return out
}

// resourceWire renders a resource; API Gateway lists only the method names
// unless asked to embed the methods.
func resourceWire(res *restResource, embed bool) map[string]any {
	out := map[string]any{"id": res.id, "path": res.path}
	if res.parentID != "" {
		out["parentId"] = res.parentID
		out["pathPart"] = res.pathPart
	}
	if len(res.methods) > 0 {
		methods := map[string]any{}
		for name, m := range res.methods {
			if embed {
				methods[name] = restMethodWire(res, m)
			} else {
				methods[name] = struct{}{}
			}
		}
		out["resourceMethods"] = methods
	}
	return out
}

func restAPIWire(a *restAPI) map[string]any {
	return map[string]any{
		"id": a.id, "name": a.name, "createdDate": a.created.Unix(), "apiKeySource": "HEADER",
		"endpointConfiguration":     map[string]any{"types": []string{"REGIONAL"}},
		"disableExecuteApiEndpoint": false, "rootResourceId": a.rootID,
	}
}

func restStageWire(st *stage) map[string]any {
	return map[string]any{
		"stageName": st.name, "deploymentId": st.deploymentID, "createdDate": st.created.Unix(),
		"lastUpdatedDate": st.updated.Unix(), "cacheClusterEnabled": false, "cacheClusterStatus": "NOT_AVAILABLE",
		"methodSettings": map[string]any{}, "tracingEnabled": false,
	}
}

func restDeploymentWire(d Deployment) map[string]any {
	out := map[string]any{"id": d.ID, "createdDate": d.Created.Unix()}
	if d.Description != "" {
		out["description"] = d.Description
	}
	return out
}

// ---- routes -----------------------------------------------------------------

const restMethodPath = "/restapis/{restapi_id}/resources/{resource_id}/methods/{http_method}"

func (s *Services) apigatewayRoutes() []route {
	return []route{
		newRoute("GET", "/restapis", "GetRestApis", s.getRestApis),
		newRoute("GET", "/restapis/{restapi_id}", "GetRestApi", s.getRestAPI),
		newRoute("GET", "/restapis/{restapi_id}/resources", "GetResources", s.getResources),
		newRoute("GET", "/restapis/{restapi_id}/resources/{resource_id}", "GetResource", s.getResource),
		newRoute("GET", restMethodPath, "GetMethod", s.getMethod),
		newRoute("GET", restMethodPath+"/integration", "GetIntegration", s.getRestIntegration),
		newRoute("PATCH", restMethodPath+"/integration", "UpdateIntegration", s.updateRestIntegration),
		newRoute("POST", "/restapis/{restapi_id}/deployments", "CreateDeployment", s.createRestDeployment),
		newRoute("GET", "/restapis/{restapi_id}/deployments", "GetDeployments", s.getRestDeployments),
		newRoute("GET", "/restapis/{restapi_id}/deployments/{deployment_id}", "GetDeployment", s.getRestDeployment),
		newRoute("GET", "/restapis/{restapi_id}/stages", "GetStages", s.getRestStages),
		newRoute("GET", "/restapis/{restapi_id}/stages/{stage_name}", "GetStage", s.getRestStage),
	}
}

func badRequest(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "BadRequestException", format, args...)
}

func notFound(format string, args ...any) *apiError {
	return errf(http.StatusNotFound, "NotFoundException", format, args...)
}

// unsupportedJSON answers a known API Gateway operation whose content the
// stand-in does not model.
func unsupportedJSON(format string, args ...any) *apiError {
	e := badRequest(format, args...)
	e.unexpected = true
	return e
}

func (s *Services) restAPI(id string) (*restAPI, error) {
	a, ok := s.restAPIs[id]
	if !ok {
		return nil, notFound("Invalid API identifier specified %s:%s", accountID, id)
	}
	return a, nil
}

func (s *Services) restMethod(p params) (*restAPI, *restResource, *restMethod, error) {
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return nil, nil, nil, err
	}
	res, ok := a.resources[p["resource_id"]]
	if !ok {
		return nil, nil, nil, notFound("Invalid Resource identifier specified")
	}
	m, ok := res.methods[p["http_method"]]
	if !ok {
		return nil, nil, nil, notFound("Invalid Method identifier specified")
	}
	return a, res, m, nil
}

// listWindow applies API Gateway v1's limit/position paging to n items.
func listWindow(r *http.Request, n int) (lo, hi int, position string, err error) {
	limit, ok := queryInt(r, "limit", 25)
	if !ok || limit > 500 {
		return 0, 0, "", badRequest("Invalid limit specified: %s", r.URL.Query().Get("limit"))
	}
	if limit == 0 {
		limit = 25
	}
	start := 0
	if pos := r.URL.Query().Get("position"); pos != "" {
		start, err = strconv.Atoi(pos)
		if err != nil || start < 0 || start > n {
			return 0, 0, "", badRequest("Invalid position parameter specified: %s", pos)
		}
	}
	lo, hi, next := page(n, start, limit)
	if next >= 0 {
		position = strconv.Itoa(next)
	}
	return lo, hi, position, nil
}

func itemPage(items any, position string) map[string]any {
	out := map[string]any{"item": items}
	if position != "" {
		out["position"] = position
	}
	return out
}

func (s *Services) getRestApis(r *http.Request, _ params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi, pos, err := listWindow(r, len(s.restAPIOrder))
	if err != nil {
		return reply{}, err
	}
	items := []map[string]any{}
	for _, id := range s.restAPIOrder[lo:hi] {
		items = append(items, restAPIWire(s.restAPIs[id]))
	}
	return reply{body: itemPage(items, pos)}, nil
}

func (s *Services) getRestAPI(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return reply{}, err
	}
	return reply{body: restAPIWire(a)}, nil
}

func embedsMethods(r *http.Request) (bool, error) {
	embed := false
	for _, e := range r.URL.Query()["embed"] {
		if e != "methods" {
			return false, unsupportedJSON("embed=%s is not modelled by the stand-in", e)
		}
		embed = true
	}
	return embed, nil
}

func (s *Services) getResources(r *http.Request, p params) (reply, error) {
	embed, err := embedsMethods(r)
	if err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return reply{}, err
	}
	lo, hi, pos, err := listWindow(r, len(a.resOrder))
	if err != nil {
		return reply{}, err
	}
	items := []map[string]any{}
	for _, id := range a.resOrder[lo:hi] {
		items = append(items, resourceWire(a.resources[id], embed))
	}
	return reply{body: itemPage(items, pos)}, nil
}

func (s *Services) getResource(r *http.Request, p params) (reply, error) {
	embed, err := embedsMethods(r)
	if err != nil {
		return reply{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return reply{}, err
	}
	res, ok := a.resources[p["resource_id"]]
	if !ok {
		return reply{}, notFound("Invalid Resource identifier specified")
	}
	return reply{body: resourceWire(res, embed)}, nil
}

func (s *Services) getMethod(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, res, m, err := s.restMethod(p)
	if err != nil {
		return reply{}, err
	}
	return reply{body: restMethodWire(res, m)}, nil
}

func (s *Services) getRestIntegration(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, res, m, err := s.restMethod(p)
	if err != nil {
		return reply{}, err
	}
	if m.integration == nil {
		return reply{}, notFound("Invalid Integration identifier specified")
	}
	return reply{body: restIntegrationWire(res, m.integration)}, nil
}

type patchOperation struct {
	Op    string  `json:"op"`
	Path  string  `json:"path"`
	Value *string `json:"value"`
	From  *string `json:"from"`
}

// realIntegrationPatchPaths are paths API Gateway accepts on an integration
// that the stand-in does not model: using one is recorded as unexpected
// rather than passed off as a client error.
var realIntegrationPatchPaths = []string{
	"/httpMethod", "/timeoutInMillis", "/passthroughBehavior", "/contentHandling", "/credentials",
	"/cacheNamespace", "/cacheKeyParameters", "/requestParameters/", "/requestTemplates/", "/tlsConfig/",
	"/integrationTarget", "/responseTransferMode",
}

func decodeJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

func (s *Services) updateRestIntegration(r *http.Request, p params) (reply, error) {
	body, err := readBody(r)
	if err != nil {
		return reply{}, badRequest("%v", err)
	}
	var req struct {
		PatchOperations []patchOperation `json:"patchOperations"`
	}
	if err := decodeJSON(body, &req); err != nil {
		return reply{}, unsupportedJSON("decoding UpdateIntegration body: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, res, m, err := s.restMethod(p)
	if err != nil {
		return reply{}, err
	}
	if m.integration == nil {
		return reply{}, notFound("Invalid Integration identifier specified")
	}
	next := *m.integration
	for _, op := range req.PatchOperations {
		var target *string
		switch op.Path {
		case "/uri":
			target = &next.URI
		case "/connectionId":
			target = &next.ConnectionID
		case "/connectionType":
			target = &next.ConnectionType
		default:
			for _, known := range realIntegrationPatchPaths {
				if op.Path == known || (strings.HasSuffix(known, "/") && strings.HasPrefix(op.Path, known)) {
					return reply{}, unsupportedJSON("patch path %s is valid in API Gateway but not modelled by the stand-in", op.Path)
				}
			}
			return reply{}, badRequest("Invalid patch path '%s' specified for op '%s'. Must be one of: [/uri, /connectionId, /connectionType, /httpMethod, /timeoutInMillis, /passthroughBehavior, /contentHandling, /credentials, /cacheNamespace, /cacheKeyParameters, /requestParameters/*, /requestTemplates/*, /tlsConfig/*]", op.Path, op.Op)
		}
		if op.Op != "replace" {
			return reply{}, badRequest("Invalid patch operation specified. Must be 'replace' when modifying path '%s'", op.Path)
		}
		if op.Value == nil {
			return reply{}, badRequest("Invalid patch operation: value is required for op 'replace' on path '%s'", op.Path)
		}
		*target = *op.Value
	}
	if err := validateRestIntegration(next); err != nil {
		return reply{}, err
	}
	m.integration = &next
	return reply{body: restIntegrationWire(res, m.integration)}, nil
}

func validateRestIntegration(in RestIntegration) error {
	switch in.ConnectionType {
	case "INTERNET":
	case "VPC_LINK":
		if in.ConnectionID == "" {
			return badRequest("ConnectionId is required for integrations with connectionType VPC_LINK")
		}
	default:
		return badRequest("Invalid connection type: %s. Must be one of: [INTERNET, VPC_LINK]", in.ConnectionType)
	}
	if in.Type == "HTTP" || in.Type == "HTTP_PROXY" {
		u, err := url.Parse(in.URI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badRequest("Invalid HTTP endpoint specified for URI")
		}
	}
	return nil
}

func (s *Services) createRestDeployment(r *http.Request, p params) (reply, error) {
	body, err := readBody(r)
	if err != nil {
		return reply{}, badRequest("%v", err)
	}
	var req struct {
		StageName           string `json:"stageName"`
		Description         string `json:"description"`
		StageDescription    string `json:"stageDescription"`
		TracingEnabled      *bool  `json:"tracingEnabled"`
		CacheClusterEnabled *bool  `json:"cacheClusterEnabled"`
		CacheClusterSize    string `json:"cacheClusterSize"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return reply{}, unsupportedJSON("decoding CreateDeployment body: %v", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return reply{}, err
	}
	hasMethods := false
	for _, res := range a.resources {
		hasMethods = hasMethods || len(res.methods) > 0
	}
	if !hasMethods {
		return reply{}, badRequest("The REST API doesn't contain any methods")
	}
	id := s.deployRest(a, req.Description, req.StageName)
	if req.StageName != "" {
		// A deployment to a stage that does not exist yet creates it.
		now := s.now()
		st, ok := a.stages[req.StageName]
		if !ok {
			st = &stage{name: req.StageName, created: now}
			a.stages[req.StageName] = st
		}
		st.deploymentID = id
		st.updated = now
	}
	return reply{status: http.StatusCreated, body: restDeploymentWire(a.deployments[len(a.deployments)-1])}, nil
}

func (s *Services) getRestDeployments(r *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return reply{}, err
	}
	lo, hi, pos, err := listWindow(r, len(a.deployments))
	if err != nil {
		return reply{}, err
	}
	items := []map[string]any{}
	for _, d := range a.deployments[lo:hi] {
		items = append(items, restDeploymentWire(d))
	}
	return reply{body: itemPage(items, pos)}, nil
}

func (s *Services) getRestDeployment(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return reply{}, err
	}
	for _, d := range a.deployments {
		if d.ID == p["deployment_id"] {
			return reply{body: restDeploymentWire(d)}, nil
		}
	}
	return reply{}, notFound("Invalid Deployment identifier specified")
}

func (s *Services) getRestStages(r *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return reply{}, err
	}
	filter := r.URL.Query().Get("deploymentId")
	items := []map[string]any{}
	for _, name := range slices.Sorted(maps.Keys(a.stages)) {
		st := a.stages[name]
		if filter == "" || st.deploymentID == filter {
			items = append(items, restStageWire(st))
		}
	}
	return reply{body: map[string]any{"item": items}}, nil
}

func (s *Services) getRestStage(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.restAPI(p["restapi_id"])
	if err != nil {
		return reply{}, err
	}
	st, ok := a.stages[p["stage_name"]]
	if !ok {
		return reply{}, notFound("Invalid Stage identifier specified")
	}
	return reply{body: restStageWire(st)}, nil
}
