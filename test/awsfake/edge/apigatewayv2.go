package edge

import (
	"bytes"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HTTPIntegration is an integration of an HTTP API (API Gateway v2).
type HTTPIntegration struct {
	ID                   string
	Type                 string // HTTP_PROXY or AWS_PROXY
	Method               string // integration method, ANY by default
	URI                  string // URL, or for VPC_LINK a load balancer listener / Cloud Map service ARN
	ConnectionType       string // INTERNET or VPC_LINK
	ConnectionID         string // the VPC link id when ConnectionType is VPC_LINK
	PayloadFormatVersion string
	TimeoutInMillis      int
	Description          string
}

type httpAPI struct {
	id, name     string
	created      time.Time
	integrations map[string]*HTTPIntegration
	intOrder     []string
	stages       map[string]*stage
	deployments  []Deployment
}

func (a *httpAPI) snapshot() map[string]IntegrationTarget {
	out := map[string]IntegrationTarget{}
	for id, in := range a.integrations {
		out[id] = IntegrationTarget{URI: in.URI, ConnectionType: in.ConnectionType, ConnectionID: in.ConnectionID}
	}
	return out
}

// ---- seeding and inspection -------------------------------------------------

// AddHTTPAPI creates an HTTP API (v2) and returns its id.
func (s *Services) AddHTTPAPI(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := &httpAPI{id: makeID(s.next(), 10, idAlphabetLower), name: name, created: s.now(),
		integrations: map[string]*HTTPIntegration{}, stages: map[string]*stage{}}
	s.httpAPIs[a.id] = a
	s.httpAPIOrder = append(s.httpAPIOrder, a.id)
	return a.id
}

// AddHTTPIntegration adds an HTTP_PROXY integration and returns its id.
// connectionType is INTERNET (uri a URL) or VPC_LINK (uri a listener ARN);
// use PutHTTPIntegration to also set the VPC link id.
func (s *Services) AddHTTPIntegration(apiID, uri, connectionType string) string {
	return s.PutHTTPIntegration(apiID, HTTPIntegration{URI: uri, ConnectionType: connectionType})
}

// PutHTTPIntegration adds or replaces (by ID) an integration with every field
// chosen by the caller; empty fields get API Gateway's defaults.
func (s *Services) PutHTTPIntegration(apiID string, in HTTPIntegration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.httpAPIs[apiID]
	if !ok {
		panic(fmt.Sprintf("awsfake/edge: no HTTP API %q", apiID))
	}
	if in.ID == "" {
		in.ID = makeID(s.next(), 7, idAlphabetLower)
	}
	if in.Type == "" {
		in.Type = "HTTP_PROXY"
	}
	if in.Method == "" && in.Type == "HTTP_PROXY" {
		in.Method = "ANY"
	}
	if in.ConnectionType == "" {
		in.ConnectionType = "INTERNET"
	}
	if in.PayloadFormatVersion == "" {
		in.PayloadFormatVersion = map[bool]string{true: "2.0", false: "1.0"}[in.Type == "AWS_PROXY"]
	}
	if in.TimeoutInMillis == 0 {
		in.TimeoutInMillis = 30000
	}
	if _, exists := a.integrations[in.ID]; !exists {
		a.intOrder = append(a.intOrder, in.ID)
	}
	a.integrations[in.ID] = &in
	return in.ID
}

// AddHTTPStage creates a stage on an HTTP API, deployed from the API as it is
// now; with autoDeploy every later integration change deploys on its own.
func (s *Services) AddHTTPStage(apiID, stageName string, autoDeploy bool) {
	s.addStage(apiID, stageName, autoDeploy)
}

// HTTPIntegration returns one integration of an HTTP API.
func (s *Services) HTTPIntegration(apiID, integrationID string) (HTTPIntegration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.httpAPIs[apiID]
	if !ok {
		return HTTPIntegration{}, false
	}
	in, ok := a.integrations[integrationID]
	if !ok {
		return HTTPIntegration{}, false
	}
	return *in, true
}

func (s *Services) deployHTTP(a *httpAPI, description, stageName string, auto bool) string {
	d := Deployment{ID: makeID(s.next(), 6, idAlphabetLower), Description: description, StageName: stageName,
		Created: s.now(), AutoDeployed: auto, Integrations: a.snapshot()}
	a.deployments = append(a.deployments, d)
	return d.ID
}

// ---- wire shapes ------------------------------------------------------------

func httpAPIWire(a *httpAPI) map[string]any {
	return map[string]any{
		"apiId": a.id, "name": a.name, "protocolType": "HTTP", "createdDate": isoTime(a.created),
		"apiEndpoint":               "https://" + a.id + ".execute-api.us-east-1.amazonaws.com",
		"apiKeySelectionExpression": "$request.header.x-api-key", "routeSelectionExpression": "$request.method $request.path",
		"disableExecuteApiEndpoint": false, "ipAddressType": "ipv4", "tags": map[string]string{},
	}
}

func httpIntegrationWire(in *HTTPIntegration) map[string]any {
	out := map[string]any{
		"integrationId": in.ID, "integrationType": in.Type, "integrationUri": in.URI, "connectionType": in.ConnectionType,
		"payloadFormatVersion": in.PayloadFormatVersion, "timeoutInMillis": in.TimeoutInMillis,
	}
	if in.Method != "" {
		out["integrationMethod"] = in.Method
	}
	if in.ConnectionID != "" {
		out["connectionId"] = in.ConnectionID
	}
	if in.Description != "" {
		out["description"] = in.Description
	}
	return out
}

func httpStageWire(st *stage) map[string]any {
	out := map[string]any{
		"stageName": st.name, "autoDeploy": st.autoDeploy, "createdDate": isoTime(st.created),
		"lastUpdatedDate": isoTime(st.updated), "defaultRouteSettings": map[string]any{"detailedMetricsEnabled": false},
		"routeSettings": map[string]any{}, "stageVariables": map[string]any{}, "tags": map[string]any{},
	}
	if st.deploymentID != "" {
		out["deploymentId"] = st.deploymentID
	}
	if st.autoDeploy {
		out["lastDeploymentStatusMessage"] = "Successfully deployed stage with deployment ID '" + st.deploymentID + "'"
	}
	return out
}

func httpDeploymentWire(d Deployment) map[string]any {
	out := map[string]any{"deploymentId": d.ID, "deploymentStatus": "DEPLOYED", "createdDate": isoTime(d.Created),
		"autoDeployed": d.AutoDeployed}
	if d.Description != "" {
		out["description"] = d.Description
	}
	return out
}

// ---- routes -----------------------------------------------------------------

func (s *Services) apigatewayV2Routes() []route {
	return []route{
		newRoute("GET", "/v2/apis", "GetApis", s.getApis),
		newRoute("GET", "/v2/apis/{apiId}", "GetApi", s.getAPI),
		newRoute("GET", "/v2/apis/{apiId}/integrations", "GetIntegrations", s.getHTTPIntegrations),
		newRoute("GET", "/v2/apis/{apiId}/integrations/{integrationId}", "GetIntegration", s.getHTTPIntegration),
		newRoute("PATCH", "/v2/apis/{apiId}/integrations/{integrationId}", "UpdateIntegration", s.updateHTTPIntegration),
		newRoute("POST", "/v2/apis/{apiId}/deployments", "CreateDeployment", s.createHTTPDeployment),
		newRoute("GET", "/v2/apis/{apiId}/deployments", "GetDeployments", s.getHTTPDeployments),
		newRoute("GET", "/v2/apis/{apiId}/stages", "GetStages", s.getHTTPStages),
		newRoute("GET", "/v2/apis/{apiId}/stages/{stageName}", "GetStage", s.getHTTPStage),
	}
}

func notFoundV2(resourceType, format string, args ...any) *apiError {
	e := notFound(format, args...)
	e.resourceType = resourceType
	return e
}

func (s *Services) httpAPI(id string) (*httpAPI, error) {
	a, ok := s.httpAPIs[id]
	if !ok {
		return nil, notFoundV2("Api", "Invalid API identifier specified %s:%s", accountID, id)
	}
	return a, nil
}

// tokenWindow applies API Gateway v2's maxResults/nextToken paging to n items.
func tokenWindow(r *http.Request, n int) (lo, hi int, nextToken string, err error) {
	q := r.URL.Query()
	limit := 100
	if v := q.Get("maxResults"); v != "" {
		limit, err = strconv.Atoi(v)
		if err != nil || limit <= 0 {
			return 0, 0, "", badRequest("Invalid maxResults: %s", v)
		}
	}
	start := 0
	if tok := q.Get("nextToken"); tok != "" {
		start, err = strconv.Atoi(tok)
		if err != nil || start < 0 || start > n {
			return 0, 0, "", badRequest("Invalid nextToken: %s", tok)
		}
	}
	lo, hi, next := page(n, start, limit)
	if next >= 0 {
		nextToken = strconv.Itoa(next)
	}
	return lo, hi, nextToken, nil
}

func itemsPage(items any, nextToken string) map[string]any {
	out := map[string]any{"items": items}
	if nextToken != "" {
		out["nextToken"] = nextToken
	}
	return out
}

func (s *Services) getApis(r *http.Request, _ params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lo, hi, tok, err := tokenWindow(r, len(s.httpAPIOrder))
	if err != nil {
		return reply{}, err
	}
	items := []map[string]any{}
	for _, id := range s.httpAPIOrder[lo:hi] {
		items = append(items, httpAPIWire(s.httpAPIs[id]))
	}
	return reply{body: itemsPage(items, tok)}, nil
}

func (s *Services) getAPI(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.httpAPI(p["apiId"])
	if err != nil {
		return reply{}, err
	}
	return reply{body: httpAPIWire(a)}, nil
}

func (s *Services) getHTTPIntegrations(r *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.httpAPI(p["apiId"])
	if err != nil {
		return reply{}, err
	}
	lo, hi, tok, err := tokenWindow(r, len(a.intOrder))
	if err != nil {
		return reply{}, err
	}
	items := []map[string]any{}
	for _, id := range a.intOrder[lo:hi] {
		items = append(items, httpIntegrationWire(a.integrations[id]))
	}
	return reply{body: itemsPage(items, tok)}, nil
}

func (s *Services) httpIntegration(p params) (*httpAPI, *HTTPIntegration, error) {
	a, err := s.httpAPI(p["apiId"])
	if err != nil {
		return nil, nil, err
	}
	in, ok := a.integrations[p["integrationId"]]
	if !ok {
		return nil, nil, notFoundV2("Integration", "Invalid Integration identifier specified")
	}
	return a, in, nil
}

func (s *Services) getHTTPIntegration(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, in, err := s.httpIntegration(p)
	if err != nil {
		return reply{}, err
	}
	return reply{body: httpIntegrationWire(in)}, nil
}

func (s *Services) updateHTTPIntegration(r *http.Request, p params) (reply, error) {
	body, err := readBody(r)
	if err != nil {
		return reply{}, badRequest("%v", err)
	}
	var req struct {
		IntegrationURI       *string `json:"integrationUri"`
		ConnectionID         *string `json:"connectionId"`
		ConnectionType       *string `json:"connectionType"`
		IntegrationType      *string `json:"integrationType"`
		IntegrationMethod    *string `json:"integrationMethod"`
		PayloadFormatVersion *string `json:"payloadFormatVersion"`
		TimeoutInMillis      *int    `json:"timeoutInMillis"`
		Description          *string `json:"description"`
	}
	if err := decodeJSON(body, &req); err != nil {
		return reply{}, unsupportedJSON("decoding UpdateIntegration body: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, in, err := s.httpIntegration(p)
	if err != nil {
		return reply{}, err
	}
	next := *in
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&next.URI, req.IntegrationURI)
	set(&next.ConnectionID, req.ConnectionID)
	set(&next.ConnectionType, req.ConnectionType)
	set(&next.Type, req.IntegrationType)
	set(&next.Method, req.IntegrationMethod)
	set(&next.PayloadFormatVersion, req.PayloadFormatVersion)
	set(&next.Description, req.Description)
	if req.TimeoutInMillis != nil {
		next.TimeoutInMillis = *req.TimeoutInMillis
	}
	if err := validateHTTPIntegration(next); err != nil {
		return reply{}, err
	}
	*in = next
	// Stages with auto-deploy publish every change on their own.
	now := s.now()
	for _, name := range slices.Sorted(maps.Keys(a.stages)) {
		if st := a.stages[name]; st.autoDeploy {
			st.deploymentID = s.deployHTTP(a, "Automatic deployment triggered by changes to the Api configuration", "", true)
			st.updated = now
		}
	}
	return reply{body: httpIntegrationWire(in)}, nil
}

func validateHTTPIntegration(in HTTPIntegration) error {
	switch in.ConnectionType {
	case "INTERNET", "VPC_LINK":
	default:
		return badRequest("Invalid connection type: %s. Must be one of: [INTERNET, VPC_LINK]", in.ConnectionType)
	}
	switch in.Type {
	case "HTTP_PROXY":
		if in.ConnectionType == "VPC_LINK" {
			if in.ConnectionID == "" {
				return badRequest("ConnectionId must be provided for VPC_LINK integrations")
			}
			if !strings.HasPrefix(in.URI, "arn:") {
				return badRequest("For VPC_LINK integrations, IntegrationUri must be the ARN of a load balancer listener or a Cloud Map service")
			}
			return nil
		}
		u, err := url.Parse(in.URI)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badRequest("Invalid HTTP endpoint specified for URI")
		}
	case "AWS_PROXY":
		if !strings.HasPrefix(in.URI, "arn:") {
			return badRequest("Invalid integration URI specified")
		}
	default:
		return unsupportedJSON("integration type %s is not modelled by the stand-in", in.Type)
	}
	return nil
}

func (s *Services) createHTTPDeployment(r *http.Request, p params) (reply, error) {
	body, err := readBody(r)
	if err != nil {
		return reply{}, badRequest("%v", err)
	}
	var req struct {
		StageName   string `json:"stageName"`
		Description string `json:"description"`
	}
	if len(bytes.TrimSpace(body)) > 0 {
		if err := decodeJSON(body, &req); err != nil {
			return reply{}, unsupportedJSON("decoding CreateDeployment body: %v", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.httpAPI(p["apiId"])
	if err != nil {
		return reply{}, err
	}
	var st *stage
	if req.StageName != "" {
		st = a.stages[req.StageName]
		if st == nil {
			return reply{}, notFoundV2("Stage", "Invalid stage identifier specified")
		}
		if st.autoDeploy {
			return reply{}, badRequest("Stage %s has AutoDeploy enabled; deployments to it are created automatically", st.name)
		}
	}
	id := s.deployHTTP(a, req.Description, req.StageName, false)
	if st != nil {
		st.deploymentID = id
		st.updated = s.now()
	}
	return reply{status: http.StatusCreated, body: httpDeploymentWire(a.deployments[len(a.deployments)-1])}, nil
}

func (s *Services) getHTTPDeployments(r *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.httpAPI(p["apiId"])
	if err != nil {
		return reply{}, err
	}
	lo, hi, tok, err := tokenWindow(r, len(a.deployments))
	if err != nil {
		return reply{}, err
	}
	items := []map[string]any{}
	for _, d := range a.deployments[lo:hi] {
		items = append(items, httpDeploymentWire(d))
	}
	return reply{body: itemsPage(items, tok)}, nil
}

func (s *Services) getHTTPStages(r *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.httpAPI(p["apiId"])
	if err != nil {
		return reply{}, err
	}
	names := slices.Sorted(maps.Keys(a.stages))
	lo, hi, tok, err := tokenWindow(r, len(names))
	if err != nil {
		return reply{}, err
	}
	items := []map[string]any{}
	for _, name := range names[lo:hi] {
		items = append(items, httpStageWire(a.stages[name]))
	}
	return reply{body: itemsPage(items, tok)}, nil
}

func (s *Services) getHTTPStage(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, err := s.httpAPI(p["apiId"])
	if err != nil {
		return reply{}, err
	}
	st, ok := a.stages[p["stageName"]]
	if !ok {
		return reply{}, notFoundV2("Stage", "Invalid stage identifier specified")
	}
	return reply{body: httpStageWire(st)}, nil
}
