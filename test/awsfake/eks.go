package awsfake

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Backing is a real Kubernetes API server standing behind an EKS cluster:
// DescribeCluster reports its endpoint and (base64 of) its CA PEM.
// test/kubeenv's *Cluster satisfies it.
type Backing interface {
	Endpoint() string
	CAData() []byte
}

type staticBacking struct {
	endpoint string
	ca       []byte
}

func (b staticBacking) Endpoint() string { return b.endpoint }
func (b staticBacking) CAData() []byte   { return b.ca }

// BackCluster makes the EKS cluster region/name (created by CreateCluster,
// now or later, or by AddCluster) report endpoint and caPEM once ACTIVE.
func (s *Server) BackCluster(region, name, endpoint string, caPEM []byte) {
	s.BackClusterWith(region, name, staticBacking{endpoint: endpoint, ca: append([]byte(nil), caPEM...)})
}

// BackClusterWith is BackCluster with a Backing (e.g. a *kubeenv.Cluster).
func (s *Server) BackClusterWith(region, name string, b Backing) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backing[region+"/"+name] = b
}

// ExistingCluster describes a cluster that already exists (a pilot-light DR
// cluster): AddCluster makes it ACTIVE at once.
type ExistingCluster struct {
	Name               string
	Version            string // default "1.34"
	AuthenticationMode string // default "API_AND_CONFIG_MAP"
	RoleArn            string // default a made-up cluster role
	Tags               map[string]string
	Backing            Backing // optional; same as BackClusterWith
}

// ExistingNodegroup describes a managed node group of an existing cluster.
type ExistingNodegroup struct {
	Name                          string
	MinSize, MaxSize, DesiredSize int32
	InstanceTypes                 []string // default ["m6i.large"]
	NodeRole                      string
	Labels                        map[string]string
}

// AddCluster registers an ACTIVE cluster in region and returns its ARN.
func (s *Server) AddCluster(region string, c ExistingCluster) (string, error) {
	if c.Version == "" {
		c.Version = "1.34"
	}
	if c.AuthenticationMode == "" {
		c.AuthenticationMode = "API_AND_CONFIG_MAP"
	}
	if c.RoleArn == "" {
		c.RoleArn = "arn:aws:iam::" + s.opts.AccountID + ":role/eks-cluster-role"
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	reg := s.eksRegion(region)
	if _, ok := reg.clusters[c.Name]; ok {
		return "", fmt.Errorf("eks cluster %q already exists in %s", c.Name, region)
	}
	cl := s.newClusterLocked(region, c.Name, c.Version, c.RoleArn, c.AuthenticationMode, c.Tags, now)
	cl.activeAt = now
	if c.Backing != nil {
		s.backing[region+"/"+c.Name] = c.Backing
	}
	return cl.arn, nil
}

// AddNodegroup registers an ACTIVE managed node group on an existing cluster.
func (s *Server) AddNodegroup(region, cluster string, ng ExistingNodegroup) error {
	if len(ng.InstanceTypes) == 0 {
		ng.InstanceTypes = []string{"m6i.large"}
	}
	if ng.NodeRole == "" {
		ng.NodeRole = "arn:aws:iam::" + s.opts.AccountID + ":role/eks-node-role"
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.eksRegion(region).clusters[cluster]
	if cl == nil {
		return fmt.Errorf("eks cluster %q not found in %s", cluster, region)
	}
	if _, ok := cl.nodegroups[ng.Name]; ok {
		return fmt.Errorf("node group %q already exists on %s", ng.Name, cluster)
	}
	cl.addNodegroup(&eksNodegroup{
		name: ng.Name, arn: cl.childArn("nodegroup", ng.Name, s.nextSeq()), created: now, activeAt: now,
		scaling:       scalingConfig{MinSize: &ng.MinSize, MaxSize: &ng.MaxSize, DesiredSize: &ng.DesiredSize},
		instanceTypes: ng.InstanceTypes, nodeRole: ng.NodeRole, labels: copyMap(ng.Labels),
		subnets: []string{"subnet-0awsfake000000001", "subnet-0awsfake000000002"}, tags: map[string]string{},
	})
	return nil
}

// AddAccessEntry gives principalArn (an IAM role or user ARN) a STANDARD
// access entry on an existing cluster, with the given access policy ARNs
// associated cluster-wide.
func (s *Server) AddAccessEntry(region, cluster, principalArn, username string, groups []string, policyArns ...string) error {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.eksRegion(region).clusters[cluster]
	if cl == nil {
		return fmt.Errorf("eks cluster %q not found in %s", cluster, region)
	}
	e := cl.putAccessEntry(principalArn, "STANDARD", username, groups, nil, now, s.nextSeq())
	for _, p := range policyArns {
		e.policies = append(e.policies, &eksAssociatedPolicy{policyArn: p, scopeType: "cluster", associated: now})
	}
	return nil
}

// NodegroupScaling reports a node group's scaling config.
func (s *Server) NodegroupScaling(region, cluster, nodegroup string) (min, max, desired int32, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.eksRegion(region).clusters[cluster]
	if cl == nil || cl.nodegroups[nodegroup] == nil {
		return 0, 0, 0, false
	}
	sc := cl.nodegroups[nodegroup].scaling
	return *sc.MinSize, *sc.MaxSize, *sc.DesiredSize, true
}

type eksRegion struct {
	clusters map[string]*eksCluster
	order    []string
	// created remembers each CreateCluster's clientRequestToken and its
	// answer: AWS answers a request repeated with the same token with the
	// original result and no other effect, even once that cluster is gone.
	created map[string]map[string]any
}

func (s *Server) eksRegion(region string) *eksRegion {
	r := s.eks[region]
	if r == nil {
		r = &eksRegion{clusters: map[string]*eksCluster{}}
		s.eks[region] = r
	}
	return r
}

type eksCluster struct {
	region, name, arn, id string
	version, roleArn      string
	account               string
	created, activeAt     time.Time
	deleteAt              time.Time // zero unless deleting
	updatingUntil         time.Time
	tags                  map[string]string
	authMode              string
	bootstrapAdmin        bool
	creator               string // canonical principal ARN of the creator
	token                 string // clientRequestToken of CreateCluster
	vpc                   vpcConfig
	logging               json.RawMessage
	nodegroups            map[string]*eksNodegroup
	ngOrder               []string
	addons                map[string]*eksAddon
	addonOrder            []string
	access                map[string]*eksAccessEntry // by principal ARN
	accessOrder           []string
	pods                  map[string]*eksPodIdentity // by association id
	podOrder              []string
	updates               map[string]*eksUpdate
}

type vpcConfig struct {
	SubnetIDs             []string `json:"subnetIds,omitempty"`
	SecurityGroupIDs      []string `json:"securityGroupIds,omitempty"`
	ClusterSecurityGroup  string   `json:"clusterSecurityGroupId,omitempty"`
	VpcID                 string   `json:"vpcId,omitempty"`
	EndpointPublicAccess  *bool    `json:"endpointPublicAccess,omitempty"`
	EndpointPrivateAccess *bool    `json:"endpointPrivateAccess,omitempty"`
	PublicAccessCidrs     []string `json:"publicAccessCidrs,omitempty"`
}

type eksNodegroup struct {
	name, arn          string
	created, activeAt  time.Time
	modified           time.Time
	deleteAt           time.Time
	updatingUntil      time.Time
	scaling            scalingConfig
	instanceTypes      []string
	subnets            []string
	nodeRole           string
	amiType            string
	capacityType       string
	diskSize           int32
	labels             map[string]string
	tags               map[string]string
	token              string
	version, releaseV  string
	launchTemplate     json.RawMessage
	taints             json.RawMessage
	updateConfigRaw    json.RawMessage
	remoteAccessConfig json.RawMessage
}

type scalingConfig struct {
	MinSize     *int32 `json:"minSize,omitempty"`
	MaxSize     *int32 `json:"maxSize,omitempty"`
	DesiredSize *int32 `json:"desiredSize,omitempty"`
}

type eksAddon struct {
	name, arn, version      string
	created, activeAt       time.Time
	serviceAccountRoleArn   string
	configurationValues     string
	tags                    map[string]string
	token                   string
	podIdentityAssociations []string
}

type eksAccessEntry struct {
	principal, arn, typ, username string
	groups                        []string
	tags                          map[string]string
	created, modified             time.Time
	policies                      []*eksAssociatedPolicy
}

type eksAssociatedPolicy struct {
	policyArn            string
	scopeType            string
	namespaces           []string
	associated, modified time.Time
}

type eksPodIdentity struct {
	id, arn, namespace, serviceAccount, roleArn string
	created, modified                           time.Time
	tags                                        map[string]string
	disableSessionTags                          bool
	token                                       string
}

type eksUpdate struct {
	id, typ   string
	params    []updateParam
	created   time.Time
	doneAt    time.Time
	nodegroup string
}

type updateParam struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func (s *Server) newClusterLocked(region, name, version, roleArn, authMode string, tags map[string]string, now time.Time) *eksCluster {
	seq := s.nextSeq()
	cl := &eksCluster{
		region: region, name: name, account: s.opts.AccountID,
		arn:     "arn:aws:eks:" + region + ":" + s.opts.AccountID + ":cluster/" + name,
		id:      hashID(32, "0123456789ABCDEF", region, name, seq),
		version: version, roleArn: roleArn, created: now, tags: copyMap(tags), authMode: authMode,
		nodegroups: map[string]*eksNodegroup{}, addons: map[string]*eksAddon{},
		access: map[string]*eksAccessEntry{}, pods: map[string]*eksPodIdentity{}, updates: map[string]*eksUpdate{},
		vpc: vpcConfig{
			SubnetIDs: []string{"subnet-0awsfake000000001", "subnet-0awsfake000000002"}, VpcID: "vpc-0awsfake0000000001",
		},
	}
	cl.vpc.ClusterSecurityGroup = "sg-0" + hashID(16, hexDigits, "clustersg", cl.id)
	reg := s.eksRegion(region)
	reg.clusters[name] = cl
	reg.order = append(reg.order, name)
	return cl
}

func (cl *eksCluster) status(now time.Time) string {
	switch {
	case !cl.deleteAt.IsZero():
		return "DELETING"
	case now.Before(cl.activeAt):
		return "CREATING"
	case now.Before(cl.updatingUntil):
		return "UPDATING"
	}
	return "ACTIVE"
}

func (ng *eksNodegroup) status(now time.Time) string {
	switch {
	case !ng.deleteAt.IsZero():
		return "DELETING"
	case now.Before(ng.activeAt):
		return "CREATING"
	case now.Before(ng.updatingUntil):
		return "UPDATING"
	}
	return "ACTIVE"
}

// childArn makes the ARN of a cluster sub-resource (nodegroup, addon, …).
func (cl *eksCluster) childArn(kind, name string, seq uint64) string {
	return fmt.Sprintf("arn:aws:eks:%s:%s:%s/%s/%s/%s", cl.region, cl.account, kind, cl.name, name, hashID(36, "0123456789abcdef-", cl.id, kind, name, seq))
}

func (cl *eksCluster) addNodegroup(ng *eksNodegroup) {
	if ng.modified.IsZero() {
		ng.modified = ng.created
	}
	if ng.amiType == "" {
		ng.amiType = "AL2023_x86_64_STANDARD"
	}
	if ng.capacityType == "" {
		ng.capacityType = "ON_DEMAND"
	}
	if ng.diskSize == 0 {
		ng.diskSize = 20
	}
	if ng.version == "" {
		ng.version = cl.version
	}
	ng.releaseV = ng.version + ".0-20261101"
	cl.nodegroups[ng.name] = ng
	cl.ngOrder = append(cl.ngOrder, ng.name)
}

// putAccessEntry creates or replaces the entry for principal.
func (cl *eksCluster) putAccessEntry(principal, typ, username string, groups []string, tags map[string]string, now time.Time, seq uint64) *eksAccessEntry {
	if username == "" {
		username = defaultAccessUsername(principal, typ)
	}
	e := &eksAccessEntry{
		principal: principal, typ: typ, username: username, groups: append([]string{}, groups...),
		tags: copyMap(tags), created: now, modified: now,
	}
	kind, rest := "user", ""
	if i := strings.Index(principal, ":role/"); i >= 0 {
		kind, rest = "role", principal[i+len(":role/"):]
	} else if i := strings.Index(principal, ":user/"); i >= 0 {
		rest = principal[i+len(":user/"):]
	}
	e.arn = fmt.Sprintf("arn:aws:eks:%s:%s:access-entry/%s/%s/%s/%s/%s", cl.region, cl.account, cl.name, kind, accountOf(principal), rest, hashID(36, "0123456789abcdef-", principal, seq))
	if _, ok := cl.access[principal]; !ok {
		cl.accessOrder = append(cl.accessOrder, principal)
	}
	cl.access[principal] = e
	return e
}

// defaultAccessUsername is the username EKS picks when none is given.
func defaultAccessUsername(principal, typ string) string {
	switch typ {
	case "EC2_LINUX", "EC2_WINDOWS", "EC2", "HYBRID_LINUX":
		return "system:node:{{EC2PrivateDNSName}}"
	case "FARGATE_LINUX":
		return "system:node:{{SessionName}}"
	}
	if i := strings.Index(principal, ":role/"); i >= 0 {
		name := principal[strings.LastIndex(principal, "/")+1:]
		return "arn:aws:sts::" + accountOf(principal) + ":assumed-role/" + name + "/{{SessionName}}"
	}
	return principal
}

// sweepEKS removes clusters and node groups whose deletion has finished.
// Callers hold s.mu.
func (s *Server) sweepEKS(now time.Time) {
	for _, reg := range s.eks {
		for _, name := range append([]string(nil), reg.order...) {
			cl := reg.clusters[name]
			if !cl.deleteAt.IsZero() && !now.Before(cl.deleteAt) {
				delete(reg.clusters, name)
				reg.order = removeString(reg.order, name)
				continue
			}
			for _, ngName := range append([]string(nil), cl.ngOrder...) {
				ng := cl.nodegroups[ngName]
				if !ng.deleteAt.IsZero() && !now.Before(ng.deleteAt) {
					delete(cl.nodegroups, ngName)
					cl.ngOrder = removeString(cl.ngOrder, ngName)
				}
			}
		}
	}
}

// EKS REST routes. Labels are single path segments (the SDK escapes "/" in
// ARNs), so a principal ARN is one segment.
type eksRoute struct {
	method  string
	pattern []string
	op      string
}

func route(method, path, op string) eksRoute {
	return eksRoute{method: method, pattern: strings.Split(strings.Trim(path, "/"), "/"), op: op}
}

var eksRoutes = []eksRoute{
	route("GET", "/clusters", "ListClusters"),
	route("POST", "/clusters", "CreateCluster"),
	route("GET", "/clusters/{name}", "DescribeCluster"),
	route("DELETE", "/clusters/{name}", "DeleteCluster"),
	route("POST", "/clusters/{name}/update-config", "UpdateClusterConfig"),
	route("GET", "/clusters/{name}/updates/{updateId}", "DescribeUpdate"),
	route("POST", "/clusters/{name}/node-groups", "CreateNodegroup"),
	route("GET", "/clusters/{name}/node-groups", "ListNodegroups"),
	route("GET", "/clusters/{name}/node-groups/{nodegroup}", "DescribeNodegroup"),
	route("DELETE", "/clusters/{name}/node-groups/{nodegroup}", "DeleteNodegroup"),
	route("POST", "/clusters/{name}/node-groups/{nodegroup}/update-config", "UpdateNodegroupConfig"),
	route("POST", "/clusters/{name}/addons", "CreateAddon"),
	route("GET", "/clusters/{name}/addons", "ListAddons"),
	route("GET", "/clusters/{name}/addons/{addon}", "DescribeAddon"),
	route("DELETE", "/clusters/{name}/addons/{addon}", "DeleteAddon"),
	route("POST", "/clusters/{name}/access-entries", "CreateAccessEntry"),
	route("GET", "/clusters/{name}/access-entries", "ListAccessEntries"),
	route("GET", "/clusters/{name}/access-entries/{principal}", "DescribeAccessEntry"),
	route("POST", "/clusters/{name}/access-entries/{principal}", "UpdateAccessEntry"),
	route("DELETE", "/clusters/{name}/access-entries/{principal}", "DeleteAccessEntry"),
	route("POST", "/clusters/{name}/access-entries/{principal}/access-policies", "AssociateAccessPolicy"),
	route("GET", "/clusters/{name}/access-entries/{principal}/access-policies", "ListAssociatedAccessPolicies"),
	route("DELETE", "/clusters/{name}/access-entries/{principal}/access-policies/{policy}", "DisassociateAccessPolicy"),
	route("POST", "/clusters/{name}/pod-identity-associations", "CreatePodIdentityAssociation"),
	route("GET", "/clusters/{name}/pod-identity-associations", "ListPodIdentityAssociations"),
	route("GET", "/clusters/{name}/pod-identity-associations/{association}", "DescribePodIdentityAssociation"),
	route("DELETE", "/clusters/{name}/pod-identity-associations/{association}", "DeletePodIdentityAssociation"),
}

// matchEKSRoute returns the operation and path labels of r ("" if none).
func matchEKSRoute(r *http.Request) (string, map[string]string) {
	segs := strings.Split(strings.Trim(r.URL.EscapedPath(), "/"), "/")
	for _, rt := range eksRoutes {
		if rt.method != r.Method || len(rt.pattern) != len(segs) {
			continue
		}
		params := map[string]string{}
		ok := true
		for i, p := range rt.pattern {
			if strings.HasPrefix(p, "{") {
				v, err := url.PathUnescape(segs[i])
				if err != nil || v == "" {
					ok = false
					break
				}
				params[strings.Trim(p, "{}")] = v
			} else if p != segs[i] {
				ok = false
				break
			}
		}
		if ok {
			return rt.op, params
		}
	}
	return "", nil
}

// decodeBody unmarshals a REST-JSON body strictly: a field the stand-in does
// not know is reported (and recorded) instead of silently ignored.
func decodeBody(q *request, v any) *apiError {
	if len(bytes.TrimSpace(q.body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(q.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if strings.Contains(err.Error(), "unknown field") {
			return unsupported("InvalidParameterException", "%s: %v", q.op, err)
		}
		return errorf(http.StatusBadRequest, "InvalidParameterException", "invalid request body: %v", err)
	}
	return nil
}

func clusterNotFound(name string) *apiError {
	return errorf(http.StatusNotFound, "ResourceNotFoundException", "No cluster found for name: %s.", name).with("clusterName", name)
}

func (s *Server) serveEKS(q *request) *apiError {
	op, p := matchEKSRoute(q.r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepEKS(q.now)
	reg := s.eksRegion(q.region)
	switch op {
	case "ListClusters":
		return s.eksListClusters(q, reg)
	case "CreateCluster":
		return s.eksCreateCluster(q, reg)
	}
	cl := reg.clusters[p["name"]]
	if cl == nil {
		return clusterNotFound(p["name"])
	}
	switch op {
	case "DescribeCluster":
		return writeJSON(q, http.StatusOK, map[string]any{"cluster": s.clusterJSON(cl, q.now)})
	case "DeleteCluster":
		return s.eksDeleteCluster(q, cl)
	case "UpdateClusterConfig":
		return s.eksUpdateClusterConfig(q, cl)
	case "DescribeUpdate":
		return s.eksDescribeUpdate(q, cl, p["updateId"])
	case "CreateNodegroup":
		return s.eksCreateNodegroup(q, cl)
	case "ListNodegroups":
		return eksList(q, "nodegroups", cl.ngOrder)
	case "DescribeNodegroup", "DeleteNodegroup", "UpdateNodegroupConfig":
		return s.eksNodegroupOp(q, cl, op, p["nodegroup"])
	case "CreateAddon":
		return s.eksCreateAddon(q, cl)
	case "ListAddons":
		return eksList(q, "addons", cl.addonOrder)
	case "DescribeAddon", "DeleteAddon":
		return s.eksAddonOp(q, cl, op, p["addon"])
	case "CreateAccessEntry":
		return s.eksCreateAccessEntry(q, cl)
	case "ListAccessEntries":
		return s.eksListAccessEntries(q, cl)
	case "DescribeAccessEntry", "UpdateAccessEntry", "DeleteAccessEntry", "AssociateAccessPolicy", "ListAssociatedAccessPolicies", "DisassociateAccessPolicy":
		return s.eksAccessEntryOp(q, cl, op, p["principal"], p["policy"])
	case "CreatePodIdentityAssociation":
		return s.eksCreatePodIdentity(q, cl)
	case "ListPodIdentityAssociations":
		return s.eksListPodIdentities(q, cl)
	case "DescribePodIdentityAssociation", "DeletePodIdentityAssociation":
		return s.eksPodIdentityOp(q, cl, op, p["association"])
	}
	return unsupported("InvalidRequestException", "eks operation %s is not modelled", op)
}

// eksMaxResults reads maxResults (1..100, default 100).
func eksMaxResults(q *request) (int, *apiError) {
	v := q.r.URL.Query().Get("maxResults")
	if v == "" {
		return 100, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100 {
		return 0, errorf(http.StatusBadRequest, "InvalidParameterException", "maxResults must be between 1 and 100")
	}
	return n, nil
}

func eksList(q *request, key string, items []string) *apiError {
	max, aerr := eksMaxResults(q)
	if aerr != nil {
		return aerr
	}
	page, next, ok := paginate(items, q.r.URL.Query().Get("nextToken"), max)
	if !ok {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "The nextToken provided is invalid")
	}
	out := map[string]any{key: append([]string{}, page...)}
	if next != "" {
		out["nextToken"] = next
	}
	return writeJSON(q, http.StatusOK, out)
}

func (s *Server) eksListClusters(q *request, reg *eksRegion) *apiError {
	return eksList(q, "clusters", reg.order)
}

var eksNameRE = regexp.MustCompile(`^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$`)

type createClusterInput struct {
	Name                       string            `json:"name"`
	Version                    string            `json:"version"`
	RoleArn                    string            `json:"roleArn"`
	ResourcesVpcConfig         *vpcConfig        `json:"resourcesVpcConfig"`
	Tags                       map[string]string `json:"tags"`
	ClientRequestToken         string            `json:"clientRequestToken"`
	Logging                    json.RawMessage   `json:"logging"`
	BootstrapSelfManagedAddons *bool             `json:"bootstrapSelfManagedAddons"`
	AccessConfig               *struct {
		AuthenticationMode                      string `json:"authenticationMode"`
		BootstrapClusterCreatorAdminPermissions *bool  `json:"bootstrapClusterCreatorAdminPermissions"`
	} `json:"accessConfig"`
	// Accepted but not modelled.
	KubernetesNetworkConfig     json.RawMessage `json:"kubernetesNetworkConfig"`
	EncryptionConfig            json.RawMessage `json:"encryptionConfig"`
	UpgradePolicy               json.RawMessage `json:"upgradePolicy"`
	ZonalShiftConfig            json.RawMessage `json:"zonalShiftConfig"`
	ComputeConfig               json.RawMessage `json:"computeConfig"`
	StorageConfig               json.RawMessage `json:"storageConfig"`
	RemoteNetworkConfig         json.RawMessage `json:"remoteNetworkConfig"`
	OutpostConfig               json.RawMessage `json:"outpostConfig"`
	DeletionProtection          json.RawMessage `json:"deletionProtection"`
	ControlPlaneScalingConfig   json.RawMessage `json:"controlPlaneScalingConfig"`
	KubeAPIServerConfig         json.RawMessage `json:"kubeApiServerConfig"`
	KubeControllerManagerConfig json.RawMessage `json:"kubeControllerManagerConfig"`
	KubeSchedulerConfig         json.RawMessage `json:"kubeSchedulerConfig"`
}

var authModes = map[string]bool{"API": true, "API_AND_CONFIG_MAP": true, "CONFIG_MAP": true}

func (s *Server) eksCreateCluster(q *request, reg *eksRegion) *apiError {
	var in createClusterInput
	if aerr := decodeBody(q, &in); aerr != nil {
		return aerr
	}
	if !eksNameRE.MatchString(in.Name) {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "The cluster name %q is invalid: it must start with an alphanumeric character and contain only alphanumerics, hyphens and underscores (at most 100)", in.Name)
	}
	if existing := reg.clusters[in.Name]; existing != nil {
		if in.ClientRequestToken != "" && existing.token == in.ClientRequestToken {
			return writeJSON(q, http.StatusOK, map[string]any{"cluster": s.clusterJSON(existing, q.now)})
		}
		return errorf(http.StatusConflict, "ResourceInUseException", "Cluster already exists with name: %s", in.Name).with("clusterName", in.Name)
	}
	if first, ok := reg.created[in.ClientRequestToken]; ok && in.ClientRequestToken != "" {
		return writeJSON(q, http.StatusOK, map[string]any{"cluster": first})
	}
	if !strings.HasPrefix(in.RoleArn, "arn:aws:iam::") || !strings.Contains(in.RoleArn, ":role/") {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "Role %s is not a valid IAM role ARN", in.RoleArn)
	}
	if in.ResourcesVpcConfig == nil || len(in.ResourcesVpcConfig.SubnetIDs) < 2 {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "Subnets specified must be in at least two different AZs")
	}
	mode, bootstrap := "CONFIG_MAP", true
	if in.AccessConfig != nil {
		if in.AccessConfig.AuthenticationMode != "" {
			mode = in.AccessConfig.AuthenticationMode
		}
		if in.AccessConfig.BootstrapClusterCreatorAdminPermissions != nil {
			bootstrap = *in.AccessConfig.BootstrapClusterCreatorAdminPermissions
		}
	}
	if !authModes[mode] {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "Unsupported authentication mode: %s", mode)
	}
	version := in.Version
	if version == "" {
		version = "1.34"
	}
	cl := s.newClusterLocked(q.region, in.Name, version, in.RoleArn, mode, in.Tags, q.now)
	cl.activeAt = q.now.Add(s.opts.EKSCreateDelay)
	cl.token = in.ClientRequestToken
	cl.bootstrapAdmin = bootstrap
	cl.logging = in.Logging
	vpc := *in.ResourcesVpcConfig
	vpc.VpcID, vpc.ClusterSecurityGroup = cl.vpc.VpcID, cl.vpc.ClusterSecurityGroup
	cl.vpc = vpc
	if q.caller != nil {
		cl.creator = canonicalPrincipal(q.caller.arn)
	}
	if bootstrap && mode != "CONFIG_MAP" && cl.creator != "" {
		s.bootstrapCreatorEntry(cl, q.now)
	}
	out := s.clusterJSON(cl, q.now)
	if in.ClientRequestToken != "" {
		if reg.created == nil {
			reg.created = map[string]map[string]any{}
		}
		reg.created[in.ClientRequestToken] = out
	}
	return writeJSON(q, http.StatusOK, map[string]any{"cluster": out})
}

// bootstrapCreatorEntry gives the cluster creator the admin access entry EKS
// makes when bootstrapClusterCreatorAdminPermissions is true.
func (s *Server) bootstrapCreatorEntry(cl *eksCluster, now time.Time) {
	if _, ok := cl.access[cl.creator]; ok {
		return
	}
	e := cl.putAccessEntry(cl.creator, "STANDARD", "", nil, nil, now, s.nextSeq())
	e.policies = append(e.policies, &eksAssociatedPolicy{
		policyArn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy", scopeType: "cluster", associated: now, modified: now,
	})
}

func (s *Server) clusterJSON(cl *eksCluster, now time.Time) map[string]any {
	status := cl.status(now)
	out := map[string]any{
		"name": cl.name, "arn": cl.arn, "createdAt": epoch(cl.created), "version": cl.version,
		"roleArn": cl.roleArn, "resourcesVpcConfig": cl.vpc, "status": status,
		"platformVersion":         "eks.1",
		"kubernetesNetworkConfig": map[string]string{"serviceIpv4Cidr": "172.20.0.0/16", "ipFamily": "ipv4"},
		"accessConfig":            map[string]any{"authenticationMode": cl.authMode},
		"health":                  map[string]any{"issues": []any{}},
		"certificateAuthority":    map[string]any{},
		"tags":                    cl.tags,
	}
	if cl.token != "" {
		out["clientRequestToken"] = cl.token
	}
	if len(cl.logging) > 0 {
		out["logging"] = cl.logging
	}
	if status != "CREATING" {
		endpoint, ca := s.clusterEndpoint(cl)
		out["endpoint"] = endpoint
		out["certificateAuthority"] = map[string]string{"data": base64.StdEncoding.EncodeToString(ca)}
		out["identity"] = map[string]any{"oidc": map[string]string{"issuer": "https://oidc.eks." + cl.region + ".amazonaws.com/id/" + cl.id}}
	}
	return out
}

// clusterEndpoint returns the backing API server's endpoint and CA PEM, or
// a made-up endpoint and CA when the cluster has no backing. Callers hold s.mu.
func (s *Server) clusterEndpoint(cl *eksCluster) (string, []byte) {
	if b := s.backing[cl.region+"/"+cl.name]; b != nil {
		return b.Endpoint(), b.CAData()
	}
	return "https://" + cl.id + ".gr7." + cl.region + ".eks.amazonaws.com", s.placeholderCA
}

func (s *Server) eksDeleteCluster(q *request, cl *eksCluster) *apiError {
	if len(cl.ngOrder) > 0 {
		return errorf(http.StatusConflict, "ResourceInUseException", "Cluster has nodegroups attached").with("clusterName", cl.name)
	}
	if cl.deleteAt.IsZero() {
		cl.deleteAt = q.now.Add(s.opts.EKSDeleteDelay)
	}
	return writeJSON(q, http.StatusOK, map[string]any{"cluster": s.clusterJSON(cl, q.now)})
}

func (s *Server) newUpdate(cl *eksCluster, typ, nodegroup string, params []updateParam, now time.Time) *eksUpdate {
	u := &eksUpdate{
		id:  newRequestID(s.nextSeq() + 1<<32),
		typ: typ, params: params, created: now, doneAt: now.Add(s.opts.EKSUpdateDelay), nodegroup: nodegroup,
	}
	cl.updates[u.id] = u
	return u
}

func (u *eksUpdate) json(now time.Time) map[string]any {
	status := "Successful"
	if now.Before(u.doneAt) {
		status = "InProgress"
	}
	return map[string]any{"id": u.id, "status": status, "type": u.typ, "params": u.params, "createdAt": epoch(u.created), "errors": []any{}}
}

type updateClusterConfigInput struct {
	ClientRequestToken string          `json:"clientRequestToken"`
	Logging            json.RawMessage `json:"logging"`
	ResourcesVpcConfig *vpcConfig      `json:"resourcesVpcConfig"`
	AccessConfig       *struct {
		AuthenticationMode string `json:"authenticationMode"`
	} `json:"accessConfig"`
	UpgradePolicy    json.RawMessage `json:"upgradePolicy"`
	ZonalShiftConfig json.RawMessage `json:"zonalShiftConfig"`
}

// authModeUpgrades lists the one-way authentication mode changes EKS allows.
var authModeUpgrades = map[string]map[string]bool{
	"CONFIG_MAP":         {"API_AND_CONFIG_MAP": true, "API": true},
	"API_AND_CONFIG_MAP": {"API": true},
}

func (s *Server) eksUpdateClusterConfig(q *request, cl *eksCluster) *apiError {
	var in updateClusterConfigInput
	if aerr := decodeBody(q, &in); aerr != nil {
		return aerr
	}
	if st := cl.status(q.now); st != "ACTIVE" {
		return errorf(http.StatusConflict, "ResourceInUseException", "Cluster is in %s state and cannot be updated", st).with("clusterName", cl.name)
	}
	var u *eksUpdate
	switch {
	case in.AccessConfig != nil && in.AccessConfig.AuthenticationMode != "":
		to := in.AccessConfig.AuthenticationMode
		if !authModeUpgrades[cl.authMode][to] {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "Unsupported authentication mode update from %s to %s", cl.authMode, to).with("clusterName", cl.name)
		}
		wasConfigMap := cl.authMode == "CONFIG_MAP"
		cl.authMode = to
		if wasConfigMap && cl.bootstrapAdmin && cl.creator != "" {
			s.bootstrapCreatorEntry(cl, q.now)
		}
		u = s.newUpdate(cl, "AccessConfigUpdate", "", []updateParam{{Type: "AuthenticationMode", Value: to}}, q.now)
	case len(in.Logging) > 0:
		cl.logging = in.Logging
		u = s.newUpdate(cl, "LoggingUpdate", "", []updateParam{{Type: "ClusterLogging", Value: string(in.Logging)}}, q.now)
	case in.ResourcesVpcConfig != nil:
		v := in.ResourcesVpcConfig
		var params []updateParam
		if v.EndpointPublicAccess != nil {
			cl.vpc.EndpointPublicAccess = v.EndpointPublicAccess
			params = append(params, updateParam{Type: "EndpointPublicAccess", Value: strconv.FormatBool(*v.EndpointPublicAccess)})
		}
		if v.EndpointPrivateAccess != nil {
			cl.vpc.EndpointPrivateAccess = v.EndpointPrivateAccess
			params = append(params, updateParam{Type: "EndpointPrivateAccess", Value: strconv.FormatBool(*v.EndpointPrivateAccess)})
		}
		if len(v.PublicAccessCidrs) > 0 {
			cl.vpc.PublicAccessCidrs = v.PublicAccessCidrs
			params = append(params, updateParam{Type: "PublicAccessCidrs", Value: strings.Join(v.PublicAccessCidrs, ",")})
		}
		if len(params) == 0 {
			return unsupported("InvalidParameterException", "only endpoint access changes of resourcesVpcConfig are modelled")
		}
		u = s.newUpdate(cl, "EndpointAccessUpdate", "", params, q.now)
	default:
		return errorf(http.StatusBadRequest, "InvalidParameterException", "No changes needed for the cluster config provided").with("clusterName", cl.name)
	}
	cl.updatingUntil = u.doneAt
	return writeJSON(q, http.StatusOK, map[string]any{"update": u.json(q.now)})
}

func (s *Server) eksDescribeUpdate(q *request, cl *eksCluster, id string) *apiError {
	u := cl.updates[id]
	if u == nil || u.nodegroup != q.r.URL.Query().Get("nodegroupName") {
		return errorf(http.StatusNotFound, "ResourceNotFoundException", "No update found for ID: %s", id).with("clusterName", cl.name)
	}
	return writeJSON(q, http.StatusOK, map[string]any{"update": u.json(q.now)})
}

type createNodegroupInput struct {
	NodegroupName      string            `json:"nodegroupName"`
	ScalingConfig      *scalingConfig    `json:"scalingConfig"`
	DiskSize           int32             `json:"diskSize"`
	Subnets            []string          `json:"subnets"`
	InstanceTypes      []string          `json:"instanceTypes"`
	AmiType            string            `json:"amiType"`
	NodeRole           string            `json:"nodeRole"`
	Labels             map[string]string `json:"labels"`
	Tags               map[string]string `json:"tags"`
	ClientRequestToken string            `json:"clientRequestToken"`
	CapacityType       string            `json:"capacityType"`
	Version            string            `json:"version"`
	ReleaseVersion     string            `json:"releaseVersion"`
	LaunchTemplate     json.RawMessage   `json:"launchTemplate"`
	Taints             json.RawMessage   `json:"taints"`
	UpdateConfig       json.RawMessage   `json:"updateConfig"`
	RemoteAccess       json.RawMessage   `json:"remoteAccess"`
	NodeRepairConfig   json.RawMessage   `json:"nodeRepairConfig"`
	WarmPoolConfig     json.RawMessage   `json:"warmPoolConfig"`
}

func validScaling(sc scalingConfig) *apiError {
	min, max, desired := *sc.MinSize, *sc.MaxSize, *sc.DesiredSize
	switch {
	case max < 1:
		return errorf(http.StatusBadRequest, "InvalidParameterException", "Maxsize must be greater than or equal to 1")
	case min < 0 || desired < 0:
		return errorf(http.StatusBadRequest, "InvalidParameterException", "Minsize and desiredSize must be greater than or equal to 0")
	case desired > max:
		return errorf(http.StatusBadRequest, "InvalidParameterException", "desired capacity %d can't be greater than max size %d", desired, max)
	case min > desired:
		return errorf(http.StatusBadRequest, "InvalidParameterException", "Minimum capacity %d can't be greater than desired size %d", min, desired)
	}
	return nil
}

func int32p(v int32) *int32 { return &v }

func (s *Server) eksCreateNodegroup(q *request, cl *eksCluster) *apiError {
	var in createNodegroupInput
	if aerr := decodeBody(q, &in); aerr != nil {
		return aerr
	}
	if existing := cl.nodegroups[in.NodegroupName]; existing != nil {
		if in.ClientRequestToken != "" && existing.token == in.ClientRequestToken {
			return writeJSON(q, http.StatusOK, map[string]any{"nodegroup": s.nodegroupJSON(cl, existing, q.now)})
		}
		return errorf(http.StatusConflict, "ResourceInUseException", "NodeGroup already exists with name %s and cluster name %s", in.NodegroupName, cl.name).
			with("clusterName", cl.name).with("nodegroupName", in.NodegroupName)
	}
	if st := cl.status(q.now); st != "ACTIVE" {
		return errorf(http.StatusBadRequest, "InvalidRequestException", "Cluster '%s' is not in ACTIVE status", cl.name).with("clusterName", cl.name)
	}
	if !eksNameRE.MatchString(in.NodegroupName) || len(in.NodegroupName) > 63 {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "Nodegroup name %q is invalid", in.NodegroupName)
	}
	sc := scalingConfig{MinSize: int32p(1), MaxSize: int32p(2), DesiredSize: int32p(2)}
	if in.ScalingConfig != nil {
		if in.ScalingConfig.MinSize != nil {
			sc.MinSize = in.ScalingConfig.MinSize
		}
		if in.ScalingConfig.MaxSize != nil {
			sc.MaxSize = in.ScalingConfig.MaxSize
		}
		if in.ScalingConfig.DesiredSize != nil {
			sc.DesiredSize = in.ScalingConfig.DesiredSize
		}
	}
	if aerr := validScaling(sc); aerr != nil {
		return aerr.with("clusterName", cl.name).with("nodegroupName", in.NodegroupName)
	}
	if len(in.Subnets) == 0 {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "Subnets are required")
	}
	instanceTypes := in.InstanceTypes
	if len(instanceTypes) == 0 {
		instanceTypes = []string{"t3.medium"}
	}
	ng := &eksNodegroup{
		name: in.NodegroupName, arn: cl.childArn("nodegroup", in.NodegroupName, s.nextSeq()),
		created: q.now, activeAt: q.now.Add(s.opts.NodegroupCreateDelay), scaling: sc,
		instanceTypes: instanceTypes, subnets: in.Subnets, nodeRole: in.NodeRole, amiType: in.AmiType,
		capacityType: in.CapacityType, diskSize: in.DiskSize, labels: copyMap(in.Labels), tags: copyMap(in.Tags),
		token: in.ClientRequestToken, version: in.Version, launchTemplate: in.LaunchTemplate, taints: in.Taints,
		updateConfigRaw: in.UpdateConfig, remoteAccessConfig: in.RemoteAccess,
	}
	cl.addNodegroup(ng)
	return writeJSON(q, http.StatusOK, map[string]any{"nodegroup": s.nodegroupJSON(cl, ng, q.now)})
}

func (s *Server) nodegroupJSON(cl *eksCluster, ng *eksNodegroup, now time.Time) map[string]any {
	out := map[string]any{
		"nodegroupName": ng.name, "nodegroupArn": ng.arn, "clusterName": cl.name, "version": ng.version,
		"releaseVersion": ng.releaseV, "createdAt": epoch(ng.created), "modifiedAt": epoch(ng.modified),
		"status": ng.status(now), "capacityType": ng.capacityType, "scalingConfig": ng.scaling,
		"instanceTypes": ng.instanceTypes, "subnets": ng.subnets, "amiType": ng.amiType, "nodeRole": ng.nodeRole,
		"labels": ng.labels, "diskSize": ng.diskSize, "health": map[string]any{"issues": []any{}},
		"resources": map[string]any{"autoScalingGroups": []map[string]string{{"name": "eks-" + ng.name + "-" + hashID(36, "0123456789abcdef-", ng.arn)}}},
		"tags":      ng.tags,
	}
	if len(ng.launchTemplate) > 0 {
		out["launchTemplate"] = ng.launchTemplate
	}
	if len(ng.taints) > 0 {
		out["taints"] = ng.taints
	}
	if len(ng.updateConfigRaw) > 0 {
		out["updateConfig"] = ng.updateConfigRaw
	}
	if len(ng.remoteAccessConfig) > 0 {
		out["remoteAccess"] = ng.remoteAccessConfig
	}
	return out
}

type updateNodegroupConfigInput struct {
	ClientRequestToken string         `json:"clientRequestToken"`
	ScalingConfig      *scalingConfig `json:"scalingConfig"`
	Labels             *struct {
		AddOrUpdateLabels map[string]string `json:"addOrUpdateLabels"`
		RemoveLabels      []string          `json:"removeLabels"`
	} `json:"labels"`
	Taints           json.RawMessage `json:"taints"`
	UpdateConfig     json.RawMessage `json:"updateConfig"`
	NodeRepairConfig json.RawMessage `json:"nodeRepairConfig"`
	WarmPoolConfig   json.RawMessage `json:"warmPoolConfig"`
}

func (s *Server) eksNodegroupOp(q *request, cl *eksCluster, op, name string) *apiError {
	ng := cl.nodegroups[name]
	if ng == nil {
		return errorf(http.StatusNotFound, "ResourceNotFoundException", "No node group found for name: %s.", name).with("clusterName", cl.name).with("nodegroupName", name)
	}
	switch op {
	case "DeleteNodegroup":
		if ng.deleteAt.IsZero() {
			ng.deleteAt = q.now.Add(s.opts.NodegroupDeleteDelay)
		}
		return writeJSON(q, http.StatusOK, map[string]any{"nodegroup": s.nodegroupJSON(cl, ng, q.now)})
	case "UpdateNodegroupConfig":
		var in updateNodegroupConfigInput
		if aerr := decodeBody(q, &in); aerr != nil {
			return aerr
		}
		if st := ng.status(q.now); st != "ACTIVE" {
			return errorf(http.StatusConflict, "ResourceInUseException", "Nodegroup cannot be updated as it is currently in %s state", st).with("clusterName", cl.name).with("nodegroupName", name)
		}
		var params []updateParam
		next := ng.scaling
		if sc := in.ScalingConfig; sc != nil {
			if sc.MinSize != nil {
				next.MinSize = sc.MinSize
				params = append(params, updateParam{Type: "MinSize", Value: strconv.Itoa(int(*sc.MinSize))})
			}
			if sc.MaxSize != nil {
				next.MaxSize = sc.MaxSize
				params = append(params, updateParam{Type: "MaxSize", Value: strconv.Itoa(int(*sc.MaxSize))})
			}
			if sc.DesiredSize != nil {
				next.DesiredSize = sc.DesiredSize
				params = append(params, updateParam{Type: "DesiredSize", Value: strconv.Itoa(int(*sc.DesiredSize))})
			}
			if aerr := validScaling(next); aerr != nil {
				return aerr.with("clusterName", cl.name).with("nodegroupName", name)
			}
		}
		if l := in.Labels; l != nil {
			if len(l.AddOrUpdateLabels) > 0 {
				b, _ := json.Marshal(l.AddOrUpdateLabels)
				params = append(params, updateParam{Type: "LabelsToAdd", Value: string(b)})
			}
			if len(l.RemoveLabels) > 0 {
				b, _ := json.Marshal(l.RemoveLabels)
				params = append(params, updateParam{Type: "LabelsToRemove", Value: string(b)})
			}
		}
		if len(in.Taints) > 0 || len(in.UpdateConfig) > 0 || len(in.NodeRepairConfig) > 0 || len(in.WarmPoolConfig) > 0 {
			return unsupported("InvalidParameterException", "only scalingConfig and labels updates of a node group are modelled")
		}
		if len(params) == 0 {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "No changes needed").with("clusterName", cl.name).with("nodegroupName", name)
		}
		ng.scaling = next
		if l := in.Labels; l != nil {
			if ng.labels == nil {
				ng.labels = map[string]string{}
			}
			for k, v := range l.AddOrUpdateLabels {
				ng.labels[k] = v
			}
			for _, k := range l.RemoveLabels {
				delete(ng.labels, k)
			}
		}
		ng.modified = q.now
		u := s.newUpdate(cl, "ConfigUpdate", name, params, q.now)
		ng.updatingUntil = u.doneAt
		return writeJSON(q, http.StatusOK, map[string]any{"update": u.json(q.now)})
	}
	return writeJSON(q, http.StatusOK, map[string]any{"nodegroup": s.nodegroupJSON(cl, ng, q.now)})
}

type createAddonInput struct {
	AddonName               string            `json:"addonName"`
	AddonVersion            string            `json:"addonVersion"`
	ServiceAccountRoleArn   string            `json:"serviceAccountRoleArn"`
	ResolveConflicts        string            `json:"resolveConflicts"`
	ClientRequestToken      string            `json:"clientRequestToken"`
	Tags                    map[string]string `json:"tags"`
	ConfigurationValues     string            `json:"configurationValues"`
	PodIdentityAssociations []struct {
		ServiceAccount string `json:"serviceAccount"`
		RoleArn        string `json:"roleArn"`
	} `json:"podIdentityAssociations"`
	NamespaceConfig json.RawMessage `json:"namespaceConfig"`
}

func (s *Server) eksCreateAddon(q *request, cl *eksCluster) *apiError {
	var in createAddonInput
	if aerr := decodeBody(q, &in); aerr != nil {
		return aerr
	}
	if existing := cl.addons[in.AddonName]; existing != nil {
		if in.ClientRequestToken != "" && existing.token == in.ClientRequestToken {
			return writeJSON(q, http.StatusOK, map[string]any{"addon": addonJSON(cl, existing, q.now)})
		}
		return errorf(http.StatusConflict, "ResourceInUseException", "Addon already exists.").with("clusterName", cl.name).with("addonName", in.AddonName)
	}
	if st := cl.status(q.now); st != "ACTIVE" {
		return errorf(http.StatusBadRequest, "InvalidRequestException", "Cluster '%s' is not in ACTIVE status", cl.name).with("clusterName", cl.name)
	}
	if in.AddonName == "" {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "addonName is required")
	}
	version := in.AddonVersion
	if version == "" {
		version = "v1.0.0-eksbuild.1"
	}
	a := &eksAddon{
		name: in.AddonName, arn: cl.childArn("addon", in.AddonName, s.nextSeq()), version: version,
		created: q.now, activeAt: q.now.Add(s.opts.AddonCreateDelay), serviceAccountRoleArn: in.ServiceAccountRoleArn,
		configurationValues: in.ConfigurationValues, tags: copyMap(in.Tags), token: in.ClientRequestToken,
	}
	for _, pia := range in.PodIdentityAssociations {
		p, aerr := s.createPodIdentityLocked(cl, "kube-system", pia.ServiceAccount, pia.RoleArn, nil, false, "", q.now)
		if aerr != nil {
			return aerr
		}
		a.podIdentityAssociations = append(a.podIdentityAssociations, p.arn)
	}
	cl.addons[a.name] = a
	cl.addonOrder = append(cl.addonOrder, a.name)
	return writeJSON(q, http.StatusOK, map[string]any{"addon": addonJSON(cl, a, q.now)})
}

func addonJSON(cl *eksCluster, a *eksAddon, now time.Time) map[string]any {
	status := "ACTIVE"
	if now.Before(a.activeAt) {
		status = "CREATING"
	}
	out := map[string]any{
		"addonName": a.name, "clusterName": cl.name, "status": status, "addonVersion": a.version,
		"health": map[string]any{"issues": []any{}}, "addonArn": a.arn, "createdAt": epoch(a.created),
		"modifiedAt": epoch(a.created), "tags": a.tags,
	}
	if a.serviceAccountRoleArn != "" {
		out["serviceAccountRoleArn"] = a.serviceAccountRoleArn
	}
	if a.configurationValues != "" {
		out["configurationValues"] = a.configurationValues
	}
	if len(a.podIdentityAssociations) > 0 {
		out["podIdentityAssociations"] = a.podIdentityAssociations
	}
	return out
}

func (s *Server) eksAddonOp(q *request, cl *eksCluster, op, name string) *apiError {
	a := cl.addons[name]
	if a == nil {
		return errorf(http.StatusNotFound, "ResourceNotFoundException", "No addon: %s found in cluster: %s", name, cl.name).with("clusterName", cl.name).with("addonName", name)
	}
	out := addonJSON(cl, a, q.now)
	if op == "DeleteAddon" {
		out["status"] = "DELETING"
		delete(cl.addons, name)
		cl.addonOrder = removeString(cl.addonOrder, name)
	}
	return writeJSON(q, http.StatusOK, map[string]any{"addon": out})
}

// access entries

var principalRE = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:(role|user)/.+`)

func requireAccessEntries(cl *eksCluster) *apiError {
	if cl.authMode == "CONFIG_MAP" {
		return errorf(http.StatusBadRequest, "InvalidRequestException", "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.").with("clusterName", cl.name)
	}
	return nil
}

var reservedUsernamePrefixes = []string{"system:", "eks:", "aws:", "amazon:", "iam:"}

type createAccessEntryInput struct {
	PrincipalArn       string            `json:"principalArn"`
	KubernetesGroups   []string          `json:"kubernetesGroups"`
	Tags               map[string]string `json:"tags"`
	ClientRequestToken string            `json:"clientRequestToken"`
	Username           string            `json:"username"`
	Type               string            `json:"type"`
}

func (s *Server) eksCreateAccessEntry(q *request, cl *eksCluster) *apiError {
	var in createAccessEntryInput
	if aerr := decodeBody(q, &in); aerr != nil {
		return aerr
	}
	if aerr := requireAccessEntries(cl); aerr != nil {
		return aerr
	}
	if !principalRE.MatchString(in.PrincipalArn) {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "The specified principalArn is invalid: invalid principal type").with("clusterName", cl.name)
	}
	if _, ok := cl.access[in.PrincipalArn]; ok {
		return errorf(http.StatusConflict, "ResourceInUseException", "The specified access entry resource is already in use on this cluster.").with("clusterName", cl.name)
	}
	typ := in.Type
	if typ == "" {
		typ = "STANDARD"
	}
	switch typ {
	case "STANDARD":
	case "EC2_LINUX", "EC2_WINDOWS", "FARGATE_LINUX", "EC2", "HYBRID_LINUX":
		if !strings.Contains(in.PrincipalArn, ":role/") {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "The principalArn of a %s access entry must be an IAM role", typ)
		}
		if len(in.KubernetesGroups) > 0 || in.Username != "" {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "Kubernetes groups and username can't be specified for access entries of type %s", typ)
		}
	default:
		return errorf(http.StatusBadRequest, "InvalidParameterException", "The access entry type %s is not supported", typ)
	}
	for _, p := range reservedUsernamePrefixes {
		if strings.HasPrefix(in.Username, p) {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "The username can't start with %s", p)
		}
	}
	e := cl.putAccessEntry(in.PrincipalArn, typ, in.Username, in.KubernetesGroups, in.Tags, q.now, s.nextSeq())
	return writeJSON(q, http.StatusOK, map[string]any{"accessEntry": accessEntryJSON(cl, e)})
}

func accessEntryJSON(cl *eksCluster, e *eksAccessEntry) map[string]any {
	return map[string]any{
		"clusterName": cl.name, "principalArn": e.principal, "kubernetesGroups": e.groups,
		"accessEntryArn": e.arn, "createdAt": epoch(e.created), "modifiedAt": epoch(e.modified),
		"tags": e.tags, "username": e.username, "type": e.typ,
	}
}

func (s *Server) eksListAccessEntries(q *request, cl *eksCluster) *apiError {
	if aerr := requireAccessEntries(cl); aerr != nil {
		return aerr
	}
	want := q.r.URL.Query().Get("associatedPolicyArn")
	var arns []string
	for _, p := range cl.accessOrder {
		if want == "" || cl.access[p].policy(want) != nil {
			arns = append(arns, p)
		}
	}
	return eksList(q, "accessEntries", arns)
}

func (e *eksAccessEntry) policy(arn string) *eksAssociatedPolicy {
	for _, p := range e.policies {
		if p.policyArn == arn {
			return p
		}
	}
	return nil
}

// eksAccessPolicies are the access policy names EKS offers.
var eksAccessPolicies = map[string]bool{
	"AmazonEKSClusterAdminPolicy": true, "AmazonEKSAdminPolicy": true, "AmazonEKSEditPolicy": true,
	"AmazonEKSViewPolicy": true, "AmazonEKSAdminViewPolicy": true, "AmazonEKSAutoNodePolicy": true,
	"AmazonEKSBlockStoragePolicy": true, "AmazonEKSLoadBalancingPolicy": true, "AmazonEKSNetworkingPolicy": true,
	"AmazonEKSComputePolicy": true,
}

const accessPolicyPrefix = "arn:aws:eks::aws:cluster-access-policy/"

type associateAccessPolicyInput struct {
	PolicyArn   string `json:"policyArn"`
	AccessScope *struct {
		Type       string   `json:"type"`
		Namespaces []string `json:"namespaces"`
	} `json:"accessScope"`
}

type updateAccessEntryInput struct {
	KubernetesGroups   []string `json:"kubernetesGroups"`
	ClientRequestToken string   `json:"clientRequestToken"`
	Username           string   `json:"username"`
}

func policyJSON(p *eksAssociatedPolicy) map[string]any {
	scope := map[string]any{"type": p.scopeType}
	if len(p.namespaces) > 0 {
		scope["namespaces"] = p.namespaces
	}
	modified := p.modified
	if modified.IsZero() {
		modified = p.associated
	}
	return map[string]any{"policyArn": p.policyArn, "accessScope": scope, "associatedAt": epoch(p.associated), "modifiedAt": epoch(modified)}
}

func (s *Server) eksAccessEntryOp(q *request, cl *eksCluster, op, principal, policyArn string) *apiError {
	if aerr := requireAccessEntries(cl); aerr != nil {
		return aerr
	}
	e := cl.access[principal]
	if e == nil {
		return errorf(http.StatusNotFound, "ResourceNotFoundException", "The specified principalArn could not be found. You can view your available access entries with 'list-access-entries'.").with("clusterName", cl.name)
	}
	switch op {
	case "DescribeAccessEntry":
		return writeJSON(q, http.StatusOK, map[string]any{"accessEntry": accessEntryJSON(cl, e)})
	case "UpdateAccessEntry":
		var in updateAccessEntryInput
		if aerr := decodeBody(q, &in); aerr != nil {
			return aerr
		}
		if in.KubernetesGroups != nil {
			e.groups = in.KubernetesGroups
		}
		if in.Username != "" {
			e.username = in.Username
		}
		e.modified = q.now
		return writeJSON(q, http.StatusOK, map[string]any{"accessEntry": accessEntryJSON(cl, e)})
	case "DeleteAccessEntry":
		delete(cl.access, principal)
		cl.accessOrder = removeString(cl.accessOrder, principal)
		return writeJSON(q, http.StatusOK, map[string]any{})
	case "AssociateAccessPolicy":
		var in associateAccessPolicyInput
		if aerr := decodeBody(q, &in); aerr != nil {
			return aerr
		}
		name, ok := strings.CutPrefix(in.PolicyArn, accessPolicyPrefix)
		if !ok || !eksAccessPolicies[name] {
			return errorf(http.StatusNotFound, "ResourceNotFoundException", "The specified policyArn %s could not be found.", in.PolicyArn).with("clusterName", cl.name)
		}
		if e.typ != "STANDARD" {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "Access policies can't be associated with access entries of type %s", e.typ)
		}
		if in.AccessScope == nil || (in.AccessScope.Type != "cluster" && in.AccessScope.Type != "namespace") {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "accessScope.type must be cluster or namespace")
		}
		if in.AccessScope.Type == "namespace" && len(in.AccessScope.Namespaces) == 0 {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "Namespaces must be specified for the namespace access scope type")
		}
		p := e.policy(in.PolicyArn)
		if p == nil {
			p = &eksAssociatedPolicy{policyArn: in.PolicyArn, associated: q.now}
			e.policies = append(e.policies, p)
		}
		p.scopeType, p.namespaces, p.modified = in.AccessScope.Type, in.AccessScope.Namespaces, q.now
		return writeJSON(q, http.StatusOK, map[string]any{"clusterName": cl.name, "principalArn": principal, "associatedAccessPolicy": policyJSON(p)})
	case "ListAssociatedAccessPolicies":
		max, aerr := eksMaxResults(q)
		if aerr != nil {
			return aerr
		}
		page, next, ok := paginate(e.policies, q.r.URL.Query().Get("nextToken"), max)
		if !ok {
			return errorf(http.StatusBadRequest, "InvalidParameterException", "The nextToken provided is invalid")
		}
		list := []map[string]any{}
		for _, p := range page {
			list = append(list, policyJSON(p))
		}
		out := map[string]any{"clusterName": cl.name, "principalArn": principal, "associatedAccessPolicies": list}
		if next != "" {
			out["nextToken"] = next
		}
		return writeJSON(q, http.StatusOK, out)
	case "DisassociateAccessPolicy":
		if e.policy(policyArn) == nil {
			return errorf(http.StatusNotFound, "ResourceNotFoundException", "The specified policyArn %s is not associated with the access entry.", policyArn).with("clusterName", cl.name)
		}
		var keep []*eksAssociatedPolicy
		for _, p := range e.policies {
			if p.policyArn != policyArn {
				keep = append(keep, p)
			}
		}
		e.policies = keep
		return writeJSON(q, http.StatusOK, map[string]any{})
	}
	return unsupported("InvalidRequestException", "eks operation %s is not modelled", op)
}

// pod identity associations

type createPodIdentityInput struct {
	Namespace          string            `json:"namespace"`
	ServiceAccount     string            `json:"serviceAccount"`
	RoleArn            string            `json:"roleArn"`
	ClientRequestToken string            `json:"clientRequestToken"`
	Tags               map[string]string `json:"tags"`
	DisableSessionTags *bool             `json:"disableSessionTags"`
	Policy             string            `json:"policy"`
	TargetRoleArn      string            `json:"targetRoleArn"`
}

func (s *Server) eksCreatePodIdentity(q *request, cl *eksCluster) *apiError {
	var in createPodIdentityInput
	if aerr := decodeBody(q, &in); aerr != nil {
		return aerr
	}
	if in.Policy != "" || in.TargetRoleArn != "" {
		return unsupported("InvalidParameterException", "pod identity session policies and target roles are not modelled")
	}
	for _, id := range cl.podOrder {
		p := cl.pods[id]
		if p.namespace == in.Namespace && p.serviceAccount == in.ServiceAccount && in.ClientRequestToken != "" && p.token == in.ClientRequestToken {
			return writeJSON(q, http.StatusOK, map[string]any{"association": podIdentityJSON(cl, p)})
		}
	}
	p, aerr := s.createPodIdentityLocked(cl, in.Namespace, in.ServiceAccount, in.RoleArn, in.Tags, in.DisableSessionTags != nil && *in.DisableSessionTags, in.ClientRequestToken, q.now)
	if aerr != nil {
		return aerr
	}
	return writeJSON(q, http.StatusOK, map[string]any{"association": podIdentityJSON(cl, p)})
}

func (s *Server) createPodIdentityLocked(cl *eksCluster, ns, sa, roleArn string, tags map[string]string, disableTags bool, token string, now time.Time) (*eksPodIdentity, *apiError) {
	if ns == "" || sa == "" {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "namespace and serviceAccount are required").with("clusterName", cl.name)
	}
	if !strings.HasPrefix(roleArn, "arn:aws:iam::") || !strings.Contains(roleArn, ":role/") {
		return nil, errorf(http.StatusBadRequest, "InvalidParameterException", "Role %s is not a valid IAM role ARN", roleArn).with("clusterName", cl.name)
	}
	for _, id := range cl.podOrder {
		if p := cl.pods[id]; p.namespace == ns && p.serviceAccount == sa {
			return nil, errorf(http.StatusConflict, "ResourceInUseException", "Association already exists: %s", p.id).with("clusterName", cl.name)
		}
	}
	id := "a-" + hashID(17, "abcdefghijklmnopqrstuvwxyz0123456789", cl.id, ns, sa, s.nextSeq())
	p := &eksPodIdentity{
		id: id, arn: "arn:aws:eks:" + cl.region + ":" + cl.account + ":podidentityassociation/" + cl.name + "/" + id,
		namespace: ns, serviceAccount: sa, roleArn: roleArn, created: now, modified: now,
		tags: copyMap(tags), disableSessionTags: disableTags, token: token,
	}
	cl.pods[id] = p
	cl.podOrder = append(cl.podOrder, id)
	return p, nil
}

func podIdentityJSON(cl *eksCluster, p *eksPodIdentity) map[string]any {
	return map[string]any{
		"clusterName": cl.name, "namespace": p.namespace, "serviceAccount": p.serviceAccount, "roleArn": p.roleArn,
		"associationArn": p.arn, "associationId": p.id, "tags": p.tags, "createdAt": epoch(p.created),
		"modifiedAt": epoch(p.modified), "disableSessionTags": p.disableSessionTags,
	}
}

func (s *Server) eksListPodIdentities(q *request, cl *eksCluster) *apiError {
	max, aerr := eksMaxResults(q)
	if aerr != nil {
		return aerr
	}
	ns, sa := q.r.URL.Query().Get("namespace"), q.r.URL.Query().Get("serviceAccount")
	var picked []*eksPodIdentity
	for _, id := range cl.podOrder {
		p := cl.pods[id]
		if (ns == "" || p.namespace == ns) && (sa == "" || p.serviceAccount == sa) {
			picked = append(picked, p)
		}
	}
	page, next, ok := paginate(picked, q.r.URL.Query().Get("nextToken"), max)
	if !ok {
		return errorf(http.StatusBadRequest, "InvalidParameterException", "The nextToken provided is invalid")
	}
	list := []map[string]any{}
	for _, p := range page {
		list = append(list, map[string]any{
			"clusterName": cl.name, "namespace": p.namespace, "serviceAccount": p.serviceAccount,
			"associationArn": p.arn, "associationId": p.id,
		})
	}
	out := map[string]any{"associations": list}
	if next != "" {
		out["nextToken"] = next
	}
	return writeJSON(q, http.StatusOK, out)
}

func (s *Server) eksPodIdentityOp(q *request, cl *eksCluster, op, id string) *apiError {
	p := cl.pods[id]
	if p == nil {
		return errorf(http.StatusNotFound, "ResourceNotFoundException", "Association %s not found in cluster %s", id, cl.name).with("clusterName", cl.name)
	}
	if op == "DeletePodIdentityAssociation" {
		delete(cl.pods, id)
		cl.podOrder = removeString(cl.podOrder, id)
	}
	return writeJSON(q, http.StatusOK, map[string]any{"association": podIdentityJSON(cl, p)})
}

// selfSignedCAPEM makes the placeholder CA of clusters with no backing, so
// DescribeCluster returns a parseable certificate.
func selfSignedCAPEM() ([]byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kubernetes"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
