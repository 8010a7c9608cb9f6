package edge

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

const cloudfrontNS = "http://cloudfront.amazonaws.com/doc/2020-05-31/"

// Origin is the part of a CloudFront origin a cutover changes.
type Origin struct {
	ID         string
	DomainName string
}

// DistributionState is a snapshot of one distribution.
type DistributionState struct {
	ID           string
	ARN          string
	DomainName   string // dxxxx.cloudfront.net
	Status       string // InProgress or Deployed
	ETag         string
	LastModified time.Time
	Origins      []Origin
	// ConfigXML is the stored DistributionConfig document, exactly what
	// GetDistributionConfig returns.
	ConfigXML string
}

type distribution struct {
	id, domain, etag string
	lastModified     time.Time
	// deployedAt is when the current config finishes deploying.
	deployedAt time.Time
	// config is the DistributionConfig's children, kept verbatim and in
	// order, so a read-modify-write keeps what the stand-in does not model.
	config []xmlNode
}

func (d *distribution) arn() string {
	return "arn:aws:cloudfront::" + accountID + ":distribution/" + d.id
}

func (s *Services) distStatus(d *distribution) string {
	if s.now().Before(d.deployedAt) {
		return "InProgress"
	}
	return "Deployed"
}

// ---- the parts of a config the stand-in reads ---------------------------------

type cfOrigins struct {
	Quantity int `xml:"Quantity"`
	Items    []struct {
		ID         string `xml:"Id"`
		DomainName string `xml:"DomainName"`
	} `xml:"Items>Origin"`
}

type cfOriginGroups struct {
	Items []struct {
		ID string `xml:"Id"`
	} `xml:"Items>OriginGroup"`
}

type cfCacheBehaviors struct {
	Quantity int `xml:"Quantity"`
	Items    []struct {
		TargetOriginID string `xml:"TargetOriginId"`
	} `xml:"Items>CacheBehavior"`
}

func child(config []xmlNode, local string) (xmlNode, bool) {
	for _, n := range config {
		if n.XMLName.Local == local {
			return n, true
		}
	}
	return xmlNode{}, false
}

// decodeChild decodes one top-level member of the config into v.
func decodeChild(config []xmlNode, local string, v any) (bool, error) {
	n, ok := child(config, local)
	if !ok {
		return false, nil
	}
	doc := append(append([]byte("<"+local+">"), n.Inner...), []byte("</"+local+">")...)
	if err := xml.Unmarshal(doc, v); err != nil {
		return true, fmt.Errorf("decoding %s: %w", local, err)
	}
	return true, nil
}

func childText(config []xmlNode, local string) (string, bool) {
	var s string
	ok, err := decodeChild(config, local, &s)
	if err != nil {
		return "", false
	}
	return s, ok
}

func configOrigins(config []xmlNode) []Origin {
	var o cfOrigins
	if _, err := decodeChild(config, "Origins", &o); err != nil {
		return nil
	}
	out := make([]Origin, 0, len(o.Items))
	for _, it := range o.Items {
		out = append(out, Origin{ID: it.ID, DomainName: it.DomainName})
	}
	return out
}

func configXML(config []xmlNode) []byte {
	body, _ := xml.Marshal(struct {
		XMLName xml.Name `xml:"DistributionConfig"`
		NS      string   `xml:"xmlns,attr"`
		Nodes   []xmlNode
	}{NS: cloudfrontNS, Nodes: config})
	return body
}

// ---- seeding and inspection -------------------------------------------------

// AddDistribution creates a deployed distribution with custom (HTTPS) origins,
// the first being the default cache behaviour's target, and returns its id.
func (s *Services) AddDistribution(origins []Origin) string {
	if len(origins) == 0 {
		panic("awsfake/edge: AddDistribution needs at least one origin")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "<Origins><Quantity>%d</Quantity><Items>", len(origins))
	for _, o := range origins {
		fmt.Fprintf(&b, `<Origin><Id>%s</Id><DomainName>%s</DomainName><OriginPath></OriginPath>`+
			`<CustomHeaders><Quantity>0</Quantity></CustomHeaders>`+
			`<CustomOriginConfig><HTTPPort>80</HTTPPort><HTTPSPort>443</HTTPSPort><OriginProtocolPolicy>https-only</OriginProtocolPolicy>`+
			`<OriginSslProtocols><Quantity>1</Quantity><Items><SslProtocol>TLSv1.2</SslProtocol></Items></OriginSslProtocols>`+
			`<OriginReadTimeout>30</OriginReadTimeout><OriginKeepaliveTimeout>5</OriginKeepaliveTimeout></CustomOriginConfig>`+
			`<ConnectionAttempts>3</ConnectionAttempts><ConnectionTimeout>10</ConnectionTimeout>`+
			`<OriginShield><Enabled>false</Enabled></OriginShield><OriginAccessControlId></OriginAccessControlId></Origin>`,
			xmlEscape(o.ID), xmlEscape(o.DomainName))
	}
	b.WriteString("</Items></Origins>")
	s.mu.Lock()
	ref := fmt.Sprintf("awsfake-%d", s.next())
	s.mu.Unlock()
	cfg := `<DistributionConfig xmlns="` + cloudfrontNS + `">` +
		`<CallerReference>` + ref + `</CallerReference>` +
		`<Aliases><Quantity>0</Quantity></Aliases>` +
		`<DefaultRootObject></DefaultRootObject>` +
		b.String() +
		`<OriginGroups><Quantity>0</Quantity></OriginGroups>` +
		`<DefaultCacheBehavior><TargetOriginId>` + xmlEscape(origins[0].ID) + `</TargetOriginId>` +
		`<TrustedSigners><Enabled>false</Enabled><Quantity>0</Quantity></TrustedSigners>` +
		`<TrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></TrustedKeyGroups>` +
		`<ViewerProtocolPolicy>redirect-to-https</ViewerProtocolPolicy>` +
		`<AllowedMethods><Quantity>7</Quantity><Items><Method>HEAD</Method><Method>DELETE</Method><Method>POST</Method><Method>GET</Method><Method>OPTIONS</Method><Method>PUT</Method><Method>PATCH</Method></Items>` +
		`<CachedMethods><Quantity>2</Quantity><Items><Method>HEAD</Method><Method>GET</Method></Items></CachedMethods></AllowedMethods>` +
		`<SmoothStreaming>false</SmoothStreaming><Compress>true</Compress>` +
		`<LambdaFunctionAssociations><Quantity>0</Quantity></LambdaFunctionAssociations>` +
		`<FunctionAssociations><Quantity>0</Quantity></FunctionAssociations>` +
		`<FieldLevelEncryptionId></FieldLevelEncryptionId>` +
		`<CachePolicyId>4135ea2d-6df8-44a3-9df3-4b5a84be39ad</CachePolicyId>` +
		`<OriginRequestPolicyId>216adef6-5c7f-47e4-b989-5492eafa07d3</OriginRequestPolicyId></DefaultCacheBehavior>` +
		`<CacheBehaviors><Quantity>0</Quantity></CacheBehaviors>` +
		`<CustomErrorResponses><Quantity>0</Quantity></CustomErrorResponses>` +
		`<Comment></Comment>` +
		`<Logging><Enabled>false</Enabled><IncludeCookies>false</IncludeCookies><Bucket></Bucket><Prefix></Prefix></Logging>` +
		`<PriceClass>PriceClass_All</PriceClass><Enabled>true</Enabled>` +
		`<ViewerCertificate><CloudFrontDefaultCertificate>true</CloudFrontDefaultCertificate><SSLSupportMethod>vip</SSLSupportMethod>` +
		`<MinimumProtocolVersion>TLSv1</MinimumProtocolVersion><CertificateSource>cloudfront</CertificateSource></ViewerCertificate>` +
		`<Restrictions><GeoRestriction><RestrictionType>none</RestrictionType><Quantity>0</Quantity></GeoRestriction></Restrictions>` +
		`<WebACLId></WebACLId><HttpVersion>http2</HttpVersion><IsIPV6Enabled>true</IsIPV6Enabled>` +
		`<ContinuousDeploymentPolicyId></ContinuousDeploymentPolicyId><Staging>false</Staging>` +
		`</DistributionConfig>`
	id, err := s.AddDistributionConfig(cfg)
	if err != nil {
		panic(fmt.Sprintf("awsfake/edge: built-in distribution config rejected: %v", err))
	}
	return id
}

// AddDistributionConfig creates a deployed distribution from a full
// <DistributionConfig> document, for tests that need aliases, origin groups
// or cache behaviours.
func (s *Services) AddDistributionConfig(configXML string) (string, error) {
	config, err := parseDistributionConfig([]byte(configXML))
	if err != nil {
		return "", err
	}
	if e := validateDistributionConfig(config, ""); e != nil {
		return "", e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.next()
	now := s.now()
	d := &distribution{
		id:           "E" + makeID(n, 13, idAlphabetUpper),
		domain:       "d" + makeID(n, 13, idAlphabetLower) + ".cloudfront.net",
		etag:         "E" + makeID(s.next(), 13, idAlphabetUpper),
		lastModified: now,
		deployedAt:   now,
		config:       config,
	}
	s.dists[d.id] = d
	s.distOrder = append(s.distOrder, d.id)
	return d.id, nil
}

// Distribution returns a snapshot of one distribution.
func (s *Services) Distribution(id string) (DistributionState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dists[id]
	if !ok {
		return DistributionState{}, false
	}
	return DistributionState{
		ID: d.id, ARN: d.arn(), DomainName: d.domain, Status: s.distStatus(d), ETag: d.etag,
		LastModified: d.lastModified, Origins: configOrigins(d.config), ConfigXML: string(configXML(d.config)),
	}, true
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func parseDistributionConfig(body []byte) ([]xmlNode, error) {
	var doc struct {
		XMLName xml.Name
		Nodes   []xmlNode `xml:",any"`
	}
	if err := xml.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("parsing DistributionConfig: %w", err)
	}
	if doc.XMLName.Local != "DistributionConfig" {
		return nil, fmt.Errorf("parsing DistributionConfig: root element is %q", doc.XMLName.Local)
	}
	return stripNS(doc.Nodes), nil
}

// validateDistributionConfig applies the server-side checks CloudFront makes
// that a cutover could trip over. callerRef, when set, must stay unchanged.
func validateDistributionConfig(config []xmlNode, callerRef string) *apiError {
	for _, req := range []string{"CallerReference", "Origins", "DefaultCacheBehavior", "Comment", "Enabled"} {
		if _, ok := child(config, req); !ok {
			return errf(http.StatusBadRequest, "MalformedInput", "1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", req)
		}
	}
	if ref, _ := childText(config, "CallerReference"); callerRef != "" && ref != callerRef {
		return errf(http.StatusBadRequest, "IllegalUpdate", "Origin and CallerReference cannot be updated.")
	}
	var origins cfOrigins
	if _, err := decodeChild(config, "Origins", &origins); err != nil {
		return errf(http.StatusBadRequest, "MalformedInput", "%v", err)
	}
	if origins.Quantity != len(origins.Items) {
		return errf(http.StatusBadRequest, "InconsistentQuantities", "The value of Quantity and the size of Items don't match.")
	}
	if len(origins.Items) == 0 {
		return errf(http.StatusBadRequest, "InvalidArgument", "The parameter Origins must contain at least one origin.")
	}
	targets := map[string]bool{}
	for _, o := range origins.Items {
		if o.ID == "" || o.DomainName == "" {
			return errf(http.StatusBadRequest, "InvalidArgument", "The parameter origin Id and DomainName must not be empty.")
		}
		if targets[o.ID] {
			return errf(http.StatusBadRequest, "InvalidArgument", "The parameter Origin Id must be unique.")
		}
		targets[o.ID] = true
	}
	var groups cfOriginGroups
	if _, err := decodeChild(config, "OriginGroups", &groups); err != nil {
		return errf(http.StatusBadRequest, "MalformedInput", "%v", err)
	}
	for _, g := range groups.Items {
		targets[g.ID] = true
	}
	var dcb struct {
		TargetOriginID string `xml:"TargetOriginId"`
	}
	if _, err := decodeChild(config, "DefaultCacheBehavior", &dcb); err != nil {
		return errf(http.StatusBadRequest, "MalformedInput", "%v", err)
	}
	noSuchOrigin := errf(http.StatusNotFound, "NoSuchOrigin", "One or more of your origins or origin groups do not exist.")
	if !targets[dcb.TargetOriginID] {
		return noSuchOrigin
	}
	var cbs cfCacheBehaviors
	if _, err := decodeChild(config, "CacheBehaviors", &cbs); err != nil {
		return errf(http.StatusBadRequest, "MalformedInput", "%v", err)
	}
	if cbs.Quantity != len(cbs.Items) {
		return errf(http.StatusBadRequest, "InconsistentQuantities", "The value of Quantity and the size of Items don't match.")
	}
	for _, cb := range cbs.Items {
		if !targets[cb.TargetOriginID] {
			return noSuchOrigin
		}
	}
	return nil
}

// ---- routes -----------------------------------------------------------------

func (s *Services) cloudfrontRoutes() []route {
	return []route{
		newRoute("GET", "/2020-05-31/distribution", "ListDistributions", s.listDistributions),
		newRoute("GET", "/2020-05-31/distribution/{Id}", "GetDistribution", s.getDistribution),
		newRoute("GET", "/2020-05-31/distribution/{Id}/config", "GetDistributionConfig", s.getDistributionConfig),
		newRoute("PUT", "/2020-05-31/distribution/{Id}/config", "UpdateDistribution", s.updateDistribution),
	}
}

func noSuchDistribution() *apiError {
	return errf(http.StatusNotFound, "NoSuchDistribution", "The specified distribution does not exist.")
}

// distributionXML renders a full <Distribution> element.
func (s *Services) distributionXML(d *distribution, status string) []byte {
	var b bytes.Buffer
	b.WriteString(`<Distribution xmlns="` + cloudfrontNS + `">`)
	fmt.Fprintf(&b, "<Id>%s</Id><ARN>%s</ARN><Status>%s</Status><LastModifiedTime>%s</LastModifiedTime>"+
		"<InProgressInvalidationBatches>0</InProgressInvalidationBatches><DomainName>%s</DomainName>"+
		"<ActiveTrustedSigners><Enabled>false</Enabled><Quantity>0</Quantity></ActiveTrustedSigners>"+
		"<ActiveTrustedKeyGroups><Enabled>false</Enabled><Quantity>0</Quantity></ActiveTrustedKeyGroups>",
		d.id, d.arn(), status, isoTime(d.lastModified), d.domain)
	b.Write(configXML(d.config))
	b.WriteString("</Distribution>")
	return append([]byte(xml.Header), b.Bytes()...)
}

func etagHeader(etag string) http.Header { return http.Header{"Etag": {etag}} }

func (s *Services) getDistribution(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dists[p["Id"]]
	if !ok {
		return reply{}, noSuchDistribution()
	}
	return reply{header: etagHeader(d.etag), body: s.distributionXML(d, s.distStatus(d))}, nil
}

func (s *Services) getDistributionConfig(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dists[p["Id"]]
	if !ok {
		return reply{}, noSuchDistribution()
	}
	return reply{header: etagHeader(d.etag), body: append([]byte(xml.Header), configXML(d.config)...)}, nil
}

func (s *Services) updateDistribution(r *http.Request, p params) (reply, error) {
	body, err := readBody(r)
	if err != nil {
		return reply{}, errf(http.StatusBadRequest, "MalformedInput", "%v", err)
	}
	ifMatch := r.Header.Get("If-Match")
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.dists[p["Id"]]
	if !ok {
		return reply{}, noSuchDistribution()
	}
	if ifMatch == "" {
		return reply{}, errf(http.StatusBadRequest, "InvalidIfMatchVersion", "The If-Match version is missing or not valid for the resource.")
	}
	if ifMatch != d.etag {
		return reply{}, errf(http.StatusPreconditionFailed, "PreconditionFailed", "The request failed because it didn't meet the preconditions in one or more request-header fields.")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return reply{}, errf(http.StatusBadRequest, "MissingBody", "This operation requires a body. Ensure that the body is present and the Content-Type header is set.")
	}
	config, err := parseDistributionConfig(body)
	if err != nil {
		e := errf(http.StatusBadRequest, "MalformedInput", "%v", err)
		e.unexpected = true
		return reply{}, e
	}
	ref, _ := childText(d.config, "CallerReference")
	if e := validateDistributionConfig(config, ref); e != nil {
		return reply{}, e
	}
	now := s.now()
	d.config = config
	d.etag = "E" + makeID(s.next(), 13, idAlphabetUpper)
	d.lastModified = now
	// An update is InProgress in its own response, as in CloudFront, even
	// when the deploy delay is zero.
	d.deployedAt = now.Add(s.opts.CloudFrontDeployDelay)
	return reply{header: etagHeader(d.etag), body: s.distributionXML(d, "InProgress")}, nil
}

// summaryMembers are the config members CloudFront repeats in a DistributionSummary.
var summaryMembers = []string{
	"Aliases", "Origins", "OriginGroups", "DefaultCacheBehavior", "CacheBehaviors", "CustomErrorResponses",
	"Comment", "PriceClass", "Enabled", "ViewerCertificate", "Restrictions", "WebACLId", "HttpVersion",
	"IsIPV6Enabled", "Staging", "ConnectionMode", "AnycastIpListId",
}

func (s *Services) listDistributions(r *http.Request, _ params) (reply, error) {
	limit, ok := queryInt(r, "MaxItems", 100)
	if !ok {
		return reply{}, errf(http.StatusBadRequest, "InvalidArgument", "Invalid value for MaxItems: %s", r.URL.Query().Get("MaxItems"))
	}
	if limit == 0 || limit > 1000 {
		limit = 100
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	marker := r.URL.Query().Get("Marker")
	start := 0
	if marker != "" {
		// The marker is the last id of the previous page.
		i := slices.Index(s.distOrder, marker)
		if i < 0 {
			return reply{}, errf(http.StatusBadRequest, "InvalidArgument", "Invalid marker: %s", marker)
		}
		start = i + 1
	}
	lo, hi, next := page(len(s.distOrder), start, limit)
	var b bytes.Buffer
	b.WriteString(xml.Header + `<DistributionList xmlns="` + cloudfrontNS + `">`)
	fmt.Fprintf(&b, "<Marker>%s</Marker>", xmlEscape(marker))
	if next >= 0 {
		fmt.Fprintf(&b, "<NextMarker>%s</NextMarker>", s.distOrder[hi-1])
	}
	fmt.Fprintf(&b, "<MaxItems>%d</MaxItems><IsTruncated>%t</IsTruncated><Quantity>%d</Quantity>", limit, next >= 0, hi-lo)
	if hi > lo {
		b.WriteString("<Items>")
		for _, id := range s.distOrder[lo:hi] {
			d := s.dists[id]
			fmt.Fprintf(&b, "<DistributionSummary><Id>%s</Id><ARN>%s</ARN><ETag>%s</ETag><Status>%s</Status>"+
				"<LastModifiedTime>%s</LastModifiedTime><DomainName>%s</DomainName>",
				d.id, d.arn(), d.etag, s.distStatus(d), isoTime(d.lastModified), d.domain)
			for _, m := range summaryMembers {
				if n, ok := child(d.config, m); ok {
					fmt.Fprintf(&b, "<%s>%s</%s>", m, n.Inner, m)
				}
			}
			b.WriteString("</DistributionSummary>")
		}
		b.WriteString("</Items>")
	}
	b.WriteString("</DistributionList>")
	return reply{body: b.Bytes()}, nil
}
