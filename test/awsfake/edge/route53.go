package edge

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

const route53NS = "https://route53.amazonaws.com/doc/2013-04-01/"

// AliasTarget points an alias record at an AWS resource (a load balancer, a
// CloudFront distribution, another record).
type AliasTarget struct {
	DNSName              string
	HostedZoneID         string
	EvaluateTargetHealth bool
}

// RecordSet is one Route 53 resource record set. Names are stored the way
// Route 53 returns them: lower case, fully qualified, '*' as \052.
// An alias record has AliasTarget and no TTL or Values; any other record has
// TTL and Values.
type RecordSet struct {
	Name          string
	Type          string
	SetIdentifier string // weighted, failover, latency, ... routing
	Weight        *int64
	Region        string
	Failover      string // PRIMARY or SECONDARY
	// MultiValueAnswer is set for multivalue answer routing.
	MultiValueAnswer *bool
	TTL              int64
	Values           []string
	AliasTarget      *AliasTarget
	HealthCheckID    string

	// extra holds members the stand-in does not model (GeoLocation,
	// CidrRoutingConfig, ...) verbatim.
	extra []xmlNode
}

type rrKey struct{ name, typ, setID string }

func (r RecordSet) key() rrKey { return rrKey{r.Name, r.Type, r.SetIdentifier} }

func (r RecordSet) clone() RecordSet {
	c := r
	if r.Weight != nil {
		w := *r.Weight
		c.Weight = &w
	}
	if r.MultiValueAnswer != nil {
		m := *r.MultiValueAnswer
		c.MultiValueAnswer = &m
	}
	c.Values = slices.Clone(r.Values)
	if r.AliasTarget != nil {
		a := *r.AliasTarget
		c.AliasTarget = &a
	}
	c.extra = stripNS(r.extra)
	return c
}

type hostedZone struct {
	id          string
	name        string
	callerRef   string
	nameServers []string
	records     map[rrKey]RecordSet
}

type change struct {
	id        string
	submitted time.Time
	comment   string
}

// normName canonicalises a DNS name the way Route 53 echoes it back.
func normName(n string) string {
	n = strings.ToLower(strings.TrimSpace(n))
	n = strings.ReplaceAll(n, "*", `\052`)
	if !strings.HasSuffix(n, ".") {
		n += "."
	}
	return n
}

// reversedLabels is Route 53's listing order: by label from the root down.
func reversedLabels(name string) []string {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	slices.Reverse(labels)
	return labels
}

func compareNames(a, b string) int {
	return slices.Compare(reversedLabels(a), reversedLabels(b))
}

func compareKeys(a, b rrKey) int {
	if c := compareNames(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.typ, b.typ); c != 0 {
		return c
	}
	return strings.Compare(a.setID, b.setID)
}

func inZone(name, zone string) bool {
	return name == zone || strings.HasSuffix(name, "."+zone)
}

var rrTypes = map[string]bool{
	"A": true, "AAAA": true, "CAA": true, "CNAME": true, "DS": true, "HTTPS": true, "MX": true,
	"NAPTR": true, "NS": true, "PTR": true, "SOA": true, "SPF": true, "SRV": true, "SSHFP": true,
	"SVCB": true, "TLSA": true, "TXT": true,
}

// ---- seeding and inspection -------------------------------------------------

// AddHostedZone creates a public hosted zone with the SOA and NS records
// Route 53 creates, and returns its id (without the /hostedzone/ prefix).
func (s *Services) AddHostedZone(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.next()
	z := &hostedZone{
		id:        "Z0" + makeID(n, 19, idAlphabetUpper),
		name:      normName(name),
		callerRef: fmt.Sprintf("awsfake-%d", n),
		records:   map[rrKey]RecordSet{},
	}
	k := int(n % 2000)
	z.nameServers = []string{
		fmt.Sprintf("ns-%d.awsdns-%02d.com.", k, k%64),
		fmt.Sprintf("ns-%d.awsdns-%02d.net.", k+512, (k+16)%64),
		fmt.Sprintf("ns-%d.awsdns-%02d.org.", k+1024, (k+32)%64),
		fmt.Sprintf("ns-%d.awsdns-%02d.co.uk.", k+1536, (k+48)%64),
	}
	ns := RecordSet{Name: z.name, Type: "NS", TTL: 172800, Values: slices.Clone(z.nameServers)}
	soa := RecordSet{Name: z.name, Type: "SOA", TTL: 900,
		Values: []string{z.nameServers[0] + " awsdns-hostmaster.amazon.com. 1 7200 900 1209600 86400"}}
	z.records[ns.key()] = ns
	z.records[soa.key()] = soa
	s.zones[z.id] = z
	s.zoneOrder = append(s.zoneOrder, z.id)
	return z.id
}

// AddRecord creates or replaces a record set, as an UPSERT would, without
// the checks a ChangeResourceRecordSets call gets. It panics on an unknown
// zone: that is a broken test, not a scenario.
func (s *Services) AddRecord(zoneID string, rrset RecordSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, ok := s.zones[trimZoneID(zoneID)]
	if !ok {
		panic(fmt.Sprintf("awsfake/edge: AddRecord: no hosted zone %q", zoneID))
	}
	r := normRecord(rrset.clone())
	z.records[r.key()] = r
}

// Record returns one record set, looked up by its identity.
func (s *Services) Record(zoneID, name, typ, setIdentifier string) (RecordSet, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, ok := s.zones[trimZoneID(zoneID)]
	if !ok {
		return RecordSet{}, false
	}
	r, ok := z.records[rrKey{normName(name), strings.ToUpper(typ), setIdentifier}]
	if !ok {
		return RecordSet{}, false
	}
	return r.clone(), true
}

// Records returns every record set of a zone in Route 53's listing order.
func (s *Services) Records(zoneID string) []RecordSet {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, ok := s.zones[trimZoneID(zoneID)]
	if !ok {
		return nil
	}
	out := make([]RecordSet, 0, len(z.records))
	for _, r := range sortedRecords(z.records) {
		out = append(out, r.clone())
	}
	return out
}

// ChangeStatus reports a change's status (PENDING or INSYNC) as GetChange would.
func (s *Services) ChangeStatus(changeID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.changes[strings.TrimPrefix(changeID, "/change/")]
	if !ok {
		return "", false
	}
	return s.changeStatus(c), true
}

func (s *Services) changeStatus(c *change) string {
	if s.now().Before(c.submitted.Add(s.opts.Route53SyncDelay)) {
		return "PENDING"
	}
	return "INSYNC"
}

func trimZoneID(id string) string { return strings.TrimPrefix(id, "/hostedzone/") }

func normRecord(r RecordSet) RecordSet {
	r.Name = normName(r.Name)
	r.Type = strings.ToUpper(r.Type)
	if r.AliasTarget != nil {
		r.AliasTarget.DNSName = normName(r.AliasTarget.DNSName)
		r.TTL = 0
		r.Values = nil
	}
	return r
}

func sortedRecords(m map[rrKey]RecordSet) []RecordSet {
	out := make([]RecordSet, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b RecordSet) int { return compareKeys(a.key(), b.key()) })
	return out
}

// ---- wire shapes ------------------------------------------------------------

type wireAlias struct {
	HostedZoneID         string `xml:"HostedZoneId"`
	DNSName              string `xml:"DNSName"`
	EvaluateTargetHealth bool   `xml:"EvaluateTargetHealth"`
}

type wireRR struct {
	Value string `xml:"Value"`
}

type wireRRs struct {
	Records []wireRR `xml:"ResourceRecord"`
}

func (w *wireRRs) values() []string {
	out := make([]string, 0, len(w.Records))
	for _, r := range w.Records {
		out = append(out, r.Value)
	}
	return out
}

type wireRRSet struct {
	Name             string     `xml:"Name"`
	Type             string     `xml:"Type"`
	SetIdentifier    string     `xml:"SetIdentifier,omitempty"`
	Weight           *int64     `xml:"Weight,omitempty"`
	Region           string     `xml:"Region,omitempty"`
	Failover         string     `xml:"Failover,omitempty"`
	MultiValueAnswer *bool      `xml:"MultiValueAnswer,omitempty"`
	TTL              *int64     `xml:"TTL,omitempty"`
	ResourceRecords  *wireRRs   `xml:"ResourceRecords,omitempty"`
	AliasTarget      *wireAlias `xml:"AliasTarget,omitempty"`
	HealthCheckID    string     `xml:"HealthCheckId,omitempty"`
	Extra            []xmlNode  `xml:",any"`
}

func toWire(r RecordSet) wireRRSet {
	w := wireRRSet{
		Name: r.Name, Type: r.Type, SetIdentifier: r.SetIdentifier, Weight: r.Weight, Region: r.Region,
		Failover: r.Failover, MultiValueAnswer: r.MultiValueAnswer, HealthCheckID: r.HealthCheckID, Extra: r.extra,
	}
	if r.AliasTarget != nil {
		w.AliasTarget = &wireAlias{HostedZoneID: r.AliasTarget.HostedZoneID, DNSName: r.AliasTarget.DNSName,
			EvaluateTargetHealth: r.AliasTarget.EvaluateTargetHealth}
	} else if !r.hasExtra("TrafficPolicyInstanceId") {
		ttl := r.TTL
		w.TTL = &ttl
		w.ResourceRecords = &wireRRs{}
		for _, v := range r.Values {
			w.ResourceRecords.Records = append(w.ResourceRecords.Records, wireRR{Value: v})
		}
	}
	return w
}

func fromWire(w wireRRSet) RecordSet {
	r := RecordSet{
		Name: w.Name, Type: w.Type, SetIdentifier: w.SetIdentifier, Weight: w.Weight, Region: w.Region,
		Failover: w.Failover, MultiValueAnswer: w.MultiValueAnswer, HealthCheckID: w.HealthCheckID, extra: stripNS(w.Extra),
	}
	if w.TTL != nil {
		r.TTL = *w.TTL
	}
	if w.ResourceRecords != nil {
		r.Values = w.ResourceRecords.values()
	}
	if w.AliasTarget != nil {
		r.AliasTarget = &AliasTarget{DNSName: w.AliasTarget.DNSName, HostedZoneID: w.AliasTarget.HostedZoneID,
			EvaluateTargetHealth: w.AliasTarget.EvaluateTargetHealth}
	}
	return r
}

func (r RecordSet) hasExtra(local string) bool {
	for _, n := range r.extra {
		if n.XMLName.Local == local {
			return true
		}
	}
	return false
}

type wireZoneConfig struct {
	Comment     string `xml:"Comment,omitempty"`
	PrivateZone bool   `xml:"PrivateZone"`
}

type wireZone struct {
	ID                     string         `xml:"Id"`
	Name                   string         `xml:"Name"`
	CallerReference        string         `xml:"CallerReference"`
	Config                 wireZoneConfig `xml:"Config"`
	ResourceRecordSetCount int            `xml:"ResourceRecordSetCount"`
}

func (z *hostedZone) wire() wireZone {
	return wireZone{ID: "/hostedzone/" + z.id, Name: z.name, CallerReference: z.callerRef, ResourceRecordSetCount: len(z.records)}
}

type wireChangeInfo struct {
	ID          string `xml:"Id"`
	Status      string `xml:"Status"`
	SubmittedAt string `xml:"SubmittedAt"`
	Comment     string `xml:"Comment,omitempty"`
}

type changeResponse struct {
	XMLName    xml.Name
	NS         string         `xml:"xmlns,attr"`
	ChangeInfo wireChangeInfo `xml:"ChangeInfo"`
}

// ---- routes -----------------------------------------------------------------

func (s *Services) route53Routes() []route {
	return []route{
		newRoute("GET", "/2013-04-01/hostedzone", "ListHostedZones", s.listHostedZones),
		newRoute("GET", "/2013-04-01/hostedzone/{Id}", "GetHostedZone", s.getHostedZone),
		newRoute("GET", "/2013-04-01/hostedzonesbyname", "ListHostedZonesByName", s.listHostedZonesByName),
		newRoute("GET", "/2013-04-01/hostedzone/{Id}/rrset", "ListResourceRecordSets", s.listResourceRecordSets),
		newRoute("POST", "/2013-04-01/hostedzone/{Id}/rrset", "ChangeResourceRecordSets", s.changeResourceRecordSets),
		newRoute("GET", "/2013-04-01/change/{Id}", "GetChange", s.getChange),
	}
}

func noSuchZone(id string) *apiError {
	return errf(http.StatusNotFound, "NoSuchHostedZone", "No hosted zone found with ID: %s", id)
}

func (s *Services) zone(id string) (*hostedZone, error) {
	z, ok := s.zones[trimZoneID(id)]
	if !ok {
		return nil, noSuchZone(trimZoneID(id))
	}
	return z, nil
}

func maxItems(r *http.Request, def int) (int, error) {
	n, ok := queryInt(r, "maxitems", def)
	if !ok {
		return 0, errf(http.StatusBadRequest, "InvalidInput", "1 validation error detected: Value '%s' at 'maxItems' failed to satisfy constraint", r.URL.Query().Get("maxitems"))
	}
	if n == 0 || n > def {
		n = def
	}
	return n, nil
}

func (s *Services) listHostedZones(r *http.Request, _ params) (reply, error) {
	limit, err := maxItems(r, 100)
	if err != nil {
		return reply{}, err
	}
	for _, filter := range []string{"delegationsetid", "hostedzonetype"} {
		if r.URL.Query().Get(filter) != "" {
			e := errf(http.StatusBadRequest, "InvalidInput", "ListHostedZones filter %s is not modelled by the stand-in", filter)
			e.unexpected = true
			return reply{}, e
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	marker := r.URL.Query().Get("marker")
	start := 0
	if marker != "" {
		start = slices.Index(s.zoneOrder, trimZoneID(marker))
		if start < 0 {
			return reply{}, errf(http.StatusBadRequest, "InvalidInput", "Invalid marker: %s", marker)
		}
	}
	lo, hi, next := page(len(s.zoneOrder), start, limit)
	resp := struct {
		XMLName     xml.Name   `xml:"ListHostedZonesResponse"`
		NS          string     `xml:"xmlns,attr"`
		HostedZones []wireZone `xml:"HostedZones>HostedZone"`
		Marker      string     `xml:"Marker"`
		IsTruncated bool       `xml:"IsTruncated"`
		NextMarker  string     `xml:"NextMarker,omitempty"`
		MaxItems    int        `xml:"MaxItems"`
	}{NS: route53NS, Marker: marker, MaxItems: limit, HostedZones: []wireZone{}}
	for _, id := range s.zoneOrder[lo:hi] {
		resp.HostedZones = append(resp.HostedZones, s.zones[id].wire())
	}
	if next >= 0 {
		resp.IsTruncated = true
		resp.NextMarker = s.zoneOrder[next]
	}
	return reply{body: resp}, nil
}

func (s *Services) getHostedZone(_ *http.Request, p params) (reply, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, err := s.zone(p["Id"])
	if err != nil {
		return reply{}, err
	}
	return reply{body: struct {
		XMLName     xml.Name `xml:"GetHostedZoneResponse"`
		NS          string   `xml:"xmlns,attr"`
		HostedZone  wireZone `xml:"HostedZone"`
		NameServers []string `xml:"DelegationSet>NameServers>NameServer"`
	}{NS: route53NS, HostedZone: z.wire(), NameServers: z.nameServers}}, nil
}

func (s *Services) listHostedZonesByName(r *http.Request, _ params) (reply, error) {
	limit, err := maxItems(r, 100)
	if err != nil {
		return reply{}, err
	}
	q := r.URL.Query()
	dnsName, zoneID := q.Get("dnsname"), trimZoneID(q.Get("hostedzoneid"))
	if zoneID != "" && dnsName == "" {
		return reply{}, errf(http.StatusBadRequest, "InvalidInput", "The input is not valid: hostedzoneid requires dnsname")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	zones := make([]*hostedZone, 0, len(s.zones))
	for _, id := range s.zoneOrder {
		zones = append(zones, s.zones[id])
	}
	cmp := func(name, id string, z *hostedZone) int {
		if c := compareNames(z.name, name); c != 0 {
			return c
		}
		return strings.Compare(z.id, id)
	}
	slices.SortFunc(zones, func(a, b *hostedZone) int { return cmp(b.name, b.id, a) })
	start := len(zones)
	if dnsName == "" {
		start = 0
	} else {
		for i, z := range zones {
			if cmp(normName(dnsName), zoneID, z) >= 0 {
				start = i
				break
			}
		}
	}
	lo, hi, next := page(len(zones), start, limit)
	resp := struct {
		XMLName          xml.Name   `xml:"ListHostedZonesByNameResponse"`
		NS               string     `xml:"xmlns,attr"`
		HostedZones      []wireZone `xml:"HostedZones>HostedZone"`
		DNSName          string     `xml:"DNSName,omitempty"`
		HostedZoneID     string     `xml:"HostedZoneId,omitempty"`
		IsTruncated      bool       `xml:"IsTruncated"`
		NextDNSName      string     `xml:"NextDNSName,omitempty"`
		NextHostedZoneID string     `xml:"NextHostedZoneId,omitempty"`
		MaxItems         int        `xml:"MaxItems"`
	}{NS: route53NS, DNSName: q.Get("dnsname"), HostedZoneID: q.Get("hostedzoneid"), MaxItems: limit, HostedZones: []wireZone{}}
	for _, z := range zones[lo:hi] {
		resp.HostedZones = append(resp.HostedZones, z.wire())
	}
	if next >= 0 {
		resp.IsTruncated = true
		resp.NextDNSName = zones[next].name
		resp.NextHostedZoneID = zones[next].id
	}
	return reply{body: resp}, nil
}

func (s *Services) listResourceRecordSets(r *http.Request, p params) (reply, error) {
	limit, err := maxItems(r, 300)
	if err != nil {
		return reply{}, err
	}
	q := r.URL.Query()
	startName, startType, startID := q.Get("name"), strings.ToUpper(q.Get("type")), q.Get("identifier")
	if startType != "" && startName == "" {
		return reply{}, errf(http.StatusBadRequest, "InvalidInput", "The input is not valid: a type requires a name")
	}
	if startID != "" && startType == "" {
		return reply{}, errf(http.StatusBadRequest, "InvalidInput", "The input is not valid: an identifier requires a name and a type")
	}
	if startType != "" && !rrTypes[startType] {
		return reply{}, errf(http.StatusBadRequest, "InvalidInput", "Invalid type: %s", startType)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	z, err := s.zone(p["Id"])
	if err != nil {
		return reply{}, err
	}
	recs := sortedRecords(z.records)
	start := 0
	if startName != "" {
		from := rrKey{normName(startName), startType, startID}
		start = len(recs)
		for i, rec := range recs {
			if compareKeys(rec.key(), from) >= 0 {
				start = i
				break
			}
		}
	}
	lo, hi, next := page(len(recs), start, limit)
	resp := struct {
		XMLName              xml.Name    `xml:"ListResourceRecordSetsResponse"`
		NS                   string      `xml:"xmlns,attr"`
		ResourceRecordSets   []wireRRSet `xml:"ResourceRecordSets>ResourceRecordSet"`
		IsTruncated          bool        `xml:"IsTruncated"`
		NextRecordName       string      `xml:"NextRecordName,omitempty"`
		NextRecordType       string      `xml:"NextRecordType,omitempty"`
		NextRecordIdentifier string      `xml:"NextRecordIdentifier,omitempty"`
		MaxItems             int         `xml:"MaxItems"`
	}{NS: route53NS, MaxItems: limit, ResourceRecordSets: []wireRRSet{}}
	for _, rec := range recs[lo:hi] {
		resp.ResourceRecordSets = append(resp.ResourceRecordSets, toWire(rec))
	}
	if next >= 0 {
		resp.IsTruncated = true
		resp.NextRecordName = recs[next].Name
		resp.NextRecordType = recs[next].Type
		resp.NextRecordIdentifier = recs[next].SetIdentifier
	}
	return reply{body: resp}, nil
}

type changeBatchRequest struct {
	Comment string `xml:"ChangeBatch>Comment"`
	Changes []struct {
		Action string     `xml:"Action"`
		RRSet  *wireRRSet `xml:"ResourceRecordSet"`
	} `xml:"ChangeBatch>Changes>Change"`
}

func rrLabel(r RecordSet) string {
	if r.SetIdentifier != "" {
		return fmt.Sprintf("[name='%s', type='%s', set-identifier='%s']", r.Name, r.Type, r.SetIdentifier)
	}
	return fmt.Sprintf("[name='%s', type='%s']", r.Name, r.Type)
}

func (s *Services) changeResourceRecordSets(r *http.Request, p params) (reply, error) {
	body, err := readBody(r)
	if err != nil {
		return reply{}, errf(http.StatusBadRequest, "InvalidInput", "%v", err)
	}
	var req changeBatchRequest
	if err := xml.Unmarshal(body, &req); err != nil {
		e := errf(http.StatusBadRequest, "InvalidInput", "Invalid XML ; %v", err)
		e.unexpected = true
		return reply{}, e
	}
	if len(req.Changes) == 0 {
		return reply{}, errf(http.StatusBadRequest, "InvalidInput", "Invalid request: the change batch has no changes")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	z, err := s.zone(p["Id"])
	if err != nil {
		return reply{}, err
	}
	// Work on a copy so the batch is all-or-nothing; each change sees the
	// ones before it, as in Route 53 (DELETE then CREATE is how one renames).
	work := make(map[rrKey]RecordSet, len(z.records))
	for k, v := range z.records {
		work[k] = v
	}
	var problems []string
	for _, c := range req.Changes {
		if c.RRSet == nil || c.RRSet.Name == "" || c.RRSet.Type == "" {
			return reply{}, errf(http.StatusBadRequest, "InvalidInput", "Invalid request: a change needs a ResourceRecordSet with Name and Type")
		}
		rec := normRecord(fromWire(*c.RRSet))
		if !rrTypes[rec.Type] {
			return reply{}, errf(http.StatusBadRequest, "InvalidInput", "Invalid XML ; value '%s' is not a valid record type", rec.Type)
		}
		hasRRs := c.RRSet.TTL != nil && c.RRSet.ResourceRecords != nil && len(c.RRSet.ResourceRecords.Records) > 0
		if (rec.AliasTarget != nil) == hasRRs && !rec.hasExtra("TrafficPolicyInstanceId") {
			return reply{}, errf(http.StatusBadRequest, "InvalidInput",
				"Invalid request: Expected exactly one of [AliasTarget, all of [TTL, and ResourceRecords], or TrafficPolicyInstanceId], but found %s in Change with [Action=%s, Name=%s, Type=%s, SetIdentifier=%s]",
				map[bool]string{true: "more than one of them", false: "none of them"}[hasRRs], c.Action, rec.Name, rec.Type, orNull(rec.SetIdentifier))
		}
		if !inZone(rec.Name, z.name) {
			problems = append(problems, fmt.Sprintf("RRSet with DNS name %s is not permitted in zone %s", rec.Name, z.name))
			continue
		}
		existing, exists := work[rec.key()]
		switch c.Action {
		case "CREATE", "UPSERT":
			if c.Action == "CREATE" && exists {
				problems = append(problems, fmt.Sprintf("Tried to create resource record set %s but it already exists", rrLabel(rec)))
				continue
			}
			if msg := conflicts(work, rec, z.name); msg != "" {
				problems = append(problems, msg)
				continue
			}
			work[rec.key()] = rec
		case "DELETE":
			switch {
			case !exists:
				problems = append(problems, fmt.Sprintf("Tried to delete resource record set %s but it was not found", rrLabel(rec)))
			case !sameRecord(existing, rec):
				problems = append(problems, fmt.Sprintf("Tried to delete resource record set %s but the values provided do not match the current values", rrLabel(rec)))
			case rec.Name == z.name && rec.Type == "SOA":
				problems = append(problems, "A HostedZone must contain exactly one SOA record.")
			case rec.Name == z.name && rec.Type == "NS":
				problems = append(problems, "A HostedZone must contain at least one NS record for the zone itself.")
			default:
				delete(work, rec.key())
			}
		default:
			return reply{}, errf(http.StatusBadRequest, "InvalidInput", "Invalid XML ; value '%s' is not a valid change action", c.Action)
		}
	}
	if len(problems) > 0 {
		return reply{}, errf(http.StatusBadRequest, "InvalidChangeBatch", "[%s]", strings.Join(problems, ", "))
	}
	z.records = work
	ch := &change{id: "C" + makeID(s.next(), 13, idAlphabetUpper), submitted: s.now(), comment: req.Comment}
	s.changes[ch.id] = ch
	return reply{body: changeResponse{
		XMLName: xml.Name{Local: "ChangeResourceRecordSetsResponse"}, NS: route53NS,
		// Route 53 always answers a change as PENDING; GetChange moves it on.
		ChangeInfo: wireChangeInfo{ID: "/change/" + ch.id, Status: "PENDING", SubmittedAt: isoTime(ch.submitted), Comment: ch.comment},
	}}, nil
}

func orNull(s string) string {
	if s == "" {
		return "null"
	}
	return s
}

// conflicts reports why rec may not sit beside the records already in work.
func conflicts(work map[rrKey]RecordSet, rec RecordSet, zoneName string) string {
	if rec.Type == "CNAME" && rec.Name == zoneName {
		return fmt.Sprintf("RRSet of type CNAME with DNS name %s is not permitted at apex in zone %s", rec.Name, zoneName)
	}
	for k, other := range work {
		if k.name != rec.Name || k == rec.key() {
			continue
		}
		if rec.Type == "CNAME" && k.typ != "CNAME" {
			return fmt.Sprintf("RRSet of type CNAME with DNS name %s is not permitted as it conflicts with other records with the same DNS name in zone %s", rec.Name, zoneName)
		}
		if rec.Type != "CNAME" && k.typ == "CNAME" {
			return fmt.Sprintf("RRSet of type %s with DNS name %s is not permitted because a conflicting RRSet of type CNAME with the same DNS name already exists in zone %s", rec.Type, rec.Name, zoneName)
		}
		if k.typ == rec.Type && (other.SetIdentifier == "") != (rec.SetIdentifier == "") {
			if rec.SetIdentifier == "" {
				return fmt.Sprintf("RRSet with DNS name %s and type %s cannot be created as other RRSets exist with the same name and type.", rec.Name, rec.Type)
			}
			return fmt.Sprintf("RRSet with DNS name %s, type %s, SetIdentifier %s cannot be created as a non-weighted set exists with the same name and type.", rec.Name, rec.Type, rec.SetIdentifier)
		}
	}
	return ""
}

// sameRecord is the exact match Route 53 demands of a DELETE.
func sameRecord(a, b RecordSet) bool {
	if a.key() != b.key() || a.Region != b.Region || a.Failover != b.Failover || a.HealthCheckID != b.HealthCheckID {
		return false
	}
	if !eqPtr(a.Weight, b.Weight) || !eqPtr(a.MultiValueAnswer, b.MultiValueAnswer) {
		return false
	}
	if (a.AliasTarget == nil) != (b.AliasTarget == nil) {
		return false
	}
	if a.AliasTarget != nil {
		if *a.AliasTarget != *b.AliasTarget {
			return false
		}
	} else {
		av, bv := slices.Clone(a.Values), slices.Clone(b.Values)
		slices.Sort(av)
		slices.Sort(bv)
		if a.TTL != b.TTL || !slices.Equal(av, bv) {
			return false
		}
	}
	return slices.EqualFunc(a.extra, b.extra, func(x, y xmlNode) bool {
		return x.XMLName.Local == y.XMLName.Local && string(x.Inner) == string(y.Inner)
	})
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func (s *Services) getChange(_ *http.Request, p params) (reply, error) {
	id := strings.TrimPrefix(p["Id"], "/change/")
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.changes[id]
	if !ok {
		return reply{}, errf(http.StatusNotFound, "NoSuchChange", "Could not find resource with ID: %s", id)
	}
	return reply{body: changeResponse{
		XMLName: xml.Name{Local: "GetChangeResponse"}, NS: route53NS,
		ChangeInfo: wireChangeInfo{ID: "/change/" + c.id, Status: s.changeStatus(c), SubmittedAt: isoTime(c.submitted), Comment: c.comment},
	}}, nil
}
