package edge_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"

	"github.com/drbot/drbot/test/awsfake/edge"
)

const albZoneID = "Z35SXDOTRQ7X7K" // us-east-1 ALB canonical hosted zone

func aliasUpsert(name, target string) types.Change {
	return types.Change{Action: types.ChangeActionUpsert, ResourceRecordSet: &types.ResourceRecordSet{
		Name: aws.String(name), Type: types.RRTypeA,
		AliasTarget: &types.AliasTarget{DNSName: aws.String(target), HostedZoneId: aws.String(albZoneID), EvaluateTargetHealth: true},
	}}
}

func TestRoute53UpsertAliasReachesInsyncThroughWaiterAndIsListed(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, edge.Options{Clock: clock.Now, Route53SyncDelay: time.Minute})
	zoneID := f.svc.AddHostedZone("example.com")
	f.svc.AddRecord(zoneID, edge.RecordSet{Name: "app.example.com", Type: "A",
		AliasTarget: &edge.AliasTarget{DNSName: "old-alb-1.us-west-2.elb.amazonaws.com", HostedZoneID: "Z1H1FL5HABSF5"}})
	c := f.route53()

	out, err := c.ChangeResourceRecordSets(ctx(t), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String("/hostedzone/" + zoneID),
		ChangeBatch: &types.ChangeBatch{Comment: aws.String("drbot cutover"),
			Changes: []types.Change{aliasUpsert("App.Example.com", "New-ALB-2.us-east-1.elb.amazonaws.com")}},
	})
	if err != nil {
		t.Fatalf("ChangeResourceRecordSets: %v", err)
	}
	if out.ChangeInfo.Status != types.ChangeStatusPending || !strings.HasPrefix(aws.ToString(out.ChangeInfo.Id), "/change/C") {
		t.Fatalf("ChangeInfo = %s %s, want PENDING /change/C...", out.ChangeInfo.Status, aws.ToString(out.ChangeInfo.Id))
	}

	w := route53.NewResourceRecordSetsChangedWaiter(c, func(o *route53.ResourceRecordSetsChangedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 40*time.Millisecond
	})
	// The first GetChange must see PENDING; the change syncs while the waiter polls.
	advanced := f.advanceAfterCalls(t, "route53:GetChange", 2, clock, time.Minute)
	if err := w.Wait(ctx(t), &route53.GetChangeInput{Id: out.ChangeInfo.Id}, 10*time.Second); err != nil {
		t.Fatalf("waiting for INSYNC: %v", err)
	}
	<-advanced
	if n := f.calls("route53:GetChange"); n < 2 {
		t.Errorf("waiter made %d GetChange calls; it should have polled through PENDING", n)
	}

	list, err := c.ListResourceRecordSets(ctx(t), &route53.ListResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID), StartRecordName: aws.String("app.example.com"), StartRecordType: types.RRTypeA, MaxItems: aws.Int32(1),
	})
	if err != nil {
		t.Fatalf("ListResourceRecordSets: %v", err)
	}
	if len(list.ResourceRecordSets) != 1 {
		t.Fatalf("got %d record sets, want 1", len(list.ResourceRecordSets))
	}
	got := list.ResourceRecordSets[0]
	if aws.ToString(got.Name) != "app.example.com." || got.AliasTarget == nil ||
		aws.ToString(got.AliasTarget.DNSName) != "new-alb-2.us-east-1.elb.amazonaws.com." ||
		aws.ToString(got.AliasTarget.HostedZoneId) != albZoneID || !got.AliasTarget.EvaluateTargetHealth || got.TTL != nil {
		t.Errorf("listed record = %s alias %+v ttl %v, want app.example.com. aliased to the new ALB without TTL",
			aws.ToString(got.Name), got.AliasTarget, got.TTL)
	}
	f.assertNoUnexpected(t)
}

func TestRoute53ChangeIsPendingUntilSyncDelayPasses(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, edge.Options{Clock: clock.Now, Route53SyncDelay: time.Minute})
	zoneID := f.svc.AddHostedZone("example.com.")
	c := f.route53()
	out, err := c.ChangeResourceRecordSets(ctx(t), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch:  &types.ChangeBatch{Changes: []types.Change{aliasUpsert("api.example.com", "alb.example.net")}},
	})
	if err != nil {
		t.Fatalf("ChangeResourceRecordSets: %v", err)
	}
	status := func() types.ChangeStatus {
		t.Helper()
		g, err := c.GetChange(ctx(t), &route53.GetChangeInput{Id: out.ChangeInfo.Id})
		if err != nil {
			t.Fatalf("GetChange: %v", err)
		}
		return g.ChangeInfo.Status
	}
	if s := status(); s != types.ChangeStatusPending {
		t.Errorf("status before the delay = %s, want PENDING", s)
	}
	clock.Advance(time.Minute)
	if s := status(); s != types.ChangeStatusInsync {
		t.Errorf("status after the delay = %s, want INSYNC", s)
	}
	_, err = c.GetChange(ctx(t), &route53.GetChangeInput{Id: aws.String("/change/CNOSUCHCHANGE")})
	var noChange *types.NoSuchChange
	if !errors.As(err, &noChange) {
		t.Errorf("GetChange of an unknown id: %v, want *types.NoSuchChange", err)
	}
}

func TestRoute53CreateOfExistingRecordFailsAndBatchIsAllOrNothing(t *testing.T) {
	f := newFixture(t, edge.Options{})
	zoneID := f.svc.AddHostedZone("example.com")
	f.svc.AddRecord(zoneID, edge.RecordSet{Name: "www.example.com.", Type: "CNAME", TTL: 300, Values: []string{"old.example.net"}})
	c := f.route53()

	_, err := c.ChangeResourceRecordSets(ctx(t), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{
			aliasUpsert("api.example.com", "alb.example.net"),
			{Action: types.ChangeActionCreate, ResourceRecordSet: &types.ResourceRecordSet{
				Name: aws.String("www.example.com"), Type: types.RRTypeCname, TTL: aws.Int64(60),
				ResourceRecords: []types.ResourceRecord{{Value: aws.String("new.example.net")}},
			}},
		}},
	})
	var icb *types.InvalidChangeBatch
	if !errors.As(err, &icb) {
		t.Fatalf("CREATE of an existing record: %v, want *types.InvalidChangeBatch", err)
	}
	if !strings.Contains(icb.ErrorMessage(), "Tried to create resource record set [name='www.example.com.', type='CNAME'] but it already exists") {
		t.Errorf("InvalidChangeBatch message = %q, want Route 53's 'already exists' wording", icb.ErrorMessage())
	}
	if _, ok := f.svc.Record(zoneID, "api.example.com", "A", ""); ok {
		t.Error("the valid UPSERT in the failed batch was applied; batches must be all-or-nothing")
	}
	if r, _ := f.svc.Record(zoneID, "www.example.com", "CNAME", ""); !slices.Equal(r.Values, []string{"old.example.net"}) || r.TTL != 300 {
		t.Errorf("existing CNAME changed by a failed batch: %+v", r)
	}
	f.assertNoUnexpected(t)
}

func TestRoute53DeleteMustMatchTheCurrentValuesExactly(t *testing.T) {
	f := newFixture(t, edge.Options{})
	zoneID := f.svc.AddHostedZone("example.com")
	f.svc.AddRecord(zoneID, edge.RecordSet{Name: "www.example.com", Type: "CNAME", TTL: 300, Values: []string{"old.example.net"}})
	c := f.route53()
	del := func(ttl int64) error {
		_, err := c.ChangeResourceRecordSets(ctx(t), &route53.ChangeResourceRecordSetsInput{
			HostedZoneId: aws.String(zoneID),
			ChangeBatch: &types.ChangeBatch{Changes: []types.Change{{Action: types.ChangeActionDelete, ResourceRecordSet: &types.ResourceRecordSet{
				Name: aws.String("www.example.com."), Type: types.RRTypeCname, TTL: aws.Int64(ttl),
				ResourceRecords: []types.ResourceRecord{{Value: aws.String("old.example.net")}},
			}}}},
		})
		return err
	}
	var icb *types.InvalidChangeBatch
	if err := del(60); !errors.As(err, &icb) || !strings.Contains(icb.ErrorMessage(), "do not match the current values") {
		t.Fatalf("DELETE with a different TTL: %v, want InvalidChangeBatch 'do not match'", err)
	}
	if err := del(300); err != nil {
		t.Fatalf("DELETE with the exact values: %v", err)
	}
	if _, ok := f.svc.Record(zoneID, "www.example.com", "CNAME", ""); ok {
		t.Error("record still present after an exact DELETE")
	}
	if err := del(300); !errors.As(err, &icb) || !strings.Contains(icb.ErrorMessage(), "but it was not found") {
		t.Errorf("DELETE of a missing record: %v, want InvalidChangeBatch 'not found'", err)
	}
}

func TestRoute53RejectsCNAMEBesideOtherRecordsAndUnknownZones(t *testing.T) {
	f := newFixture(t, edge.Options{})
	zoneID := f.svc.AddHostedZone("example.com")
	f.svc.AddRecord(zoneID, edge.RecordSet{Name: "api.example.com", Type: "A", AliasTarget: &edge.AliasTarget{DNSName: "alb.example.net", HostedZoneID: albZoneID}})
	c := f.route53()
	_, err := c.ChangeResourceRecordSets(ctx(t), &route53.ChangeResourceRecordSetsInput{
		HostedZoneId: aws.String(zoneID),
		ChangeBatch: &types.ChangeBatch{Changes: []types.Change{{Action: types.ChangeActionUpsert, ResourceRecordSet: &types.ResourceRecordSet{
			Name: aws.String("api.example.com"), Type: types.RRTypeCname, TTL: aws.Int64(60),
			ResourceRecords: []types.ResourceRecord{{Value: aws.String("alb.example.net")}},
		}}}},
	})
	var icb *types.InvalidChangeBatch
	if !errors.As(err, &icb) || !strings.Contains(icb.ErrorMessage(), "conflicts with other records") {
		t.Errorf("CNAME beside an A record: %v, want InvalidChangeBatch about the conflict", err)
	}
	_, err = c.ListResourceRecordSets(ctx(t), &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String("ZNOSUCHZONE")})
	var noZone *types.NoSuchHostedZone
	if !errors.As(err, &noZone) {
		t.Errorf("listing an unknown zone: %v, want *types.NoSuchHostedZone", err)
	}
}

func TestRoute53ListResourceRecordSetsPagesInRoute53Order(t *testing.T) {
	f := newFixture(t, edge.Options{})
	zoneID := f.svc.AddHostedZone("example.com")
	for _, id := range []string{"blue", "green"} {
		f.svc.AddRecord(zoneID, edge.RecordSet{Name: "app.example.com", Type: "A", SetIdentifier: id, Weight: aws.Int64(50),
			AliasTarget: &edge.AliasTarget{DNSName: id + ".elb.amazonaws.com", HostedZoneID: albZoneID}})
	}
	f.svc.AddRecord(zoneID, edge.RecordSet{Name: "api.example.com", Type: "A", SetIdentifier: "primary", Failover: "PRIMARY",
		HealthCheckID: "hc-1", AliasTarget: &edge.AliasTarget{DNSName: "primary.elb.amazonaws.com", HostedZoneID: albZoneID, EvaluateTargetHealth: true}})
	f.svc.AddRecord(zoneID, edge.RecordSet{Name: "*.example.com", Type: "CNAME", TTL: 60, Values: []string{"catchall.example.net"}})
	f.svc.AddRecord(zoneID, edge.RecordSet{Name: "a.b.example.com", Type: "TXT", TTL: 60, Values: []string{`"v=1"`}})

	var got []string
	in := &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID), MaxItems: aws.Int32(2)}
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging did not terminate")
		}
		out, err := f.route53().ListResourceRecordSets(ctx(t), in)
		if err != nil {
			t.Fatalf("ListResourceRecordSets: %v", err)
		}
		for _, r := range out.ResourceRecordSets {
			got = append(got, fmt.Sprintf("%s %s %s", aws.ToString(r.Name), r.Type, aws.ToString(r.SetIdentifier)))
		}
		if !out.IsTruncated {
			break
		}
		in.StartRecordName, in.StartRecordType, in.StartRecordIdentifier = out.NextRecordName, out.NextRecordType, out.NextRecordIdentifier
	}
	// Route 53 orders by labels from the root down: \052 sorts before letters,
	// and a.b.example.com comes after app.example.com.
	want := []string{
		"example.com. NS ", "example.com. SOA ",
		`\052.example.com. CNAME `,
		"api.example.com. A primary",
		"app.example.com. A blue",
		"app.example.com. A green",
		"a.b.example.com. TXT ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged listing =\n%q\nwant\n%q", got, want)
	}
	r, ok := f.svc.Record(zoneID, "api.example.com", "A", "primary")
	if !ok || r.Failover != "PRIMARY" || r.HealthCheckID != "hc-1" {
		t.Errorf("failover record = %+v, want PRIMARY with its health check", r)
	}
	f.assertNoUnexpected(t)
}

func TestRoute53HostedZoneLookups(t *testing.T) {
	f := newFixture(t, edge.Options{})
	other := f.svc.AddHostedZone("other.org")
	zoneID := f.svc.AddHostedZone("example.com")
	c := f.route53()
	byName, err := c.ListHostedZonesByName(ctx(t), &route53.ListHostedZonesByNameInput{DNSName: aws.String("example.com"), MaxItems: aws.Int32(1)})
	if err != nil {
		t.Fatalf("ListHostedZonesByName: %v", err)
	}
	if len(byName.HostedZones) != 1 || aws.ToString(byName.HostedZones[0].Id) != "/hostedzone/"+zoneID ||
		aws.ToString(byName.HostedZones[0].Name) != "example.com." {
		t.Fatalf("ListHostedZonesByName(example.com) = %+v, want the example.com zone first", byName.HostedZones)
	}
	if !byName.IsTruncated || aws.ToString(byName.NextHostedZoneId) != other {
		t.Errorf("ListHostedZonesByName next = %v %s, want truncated with other.org next", byName.IsTruncated, aws.ToString(byName.NextHostedZoneId))
	}
	var ids []string
	p := route53.NewListHostedZonesPaginator(c, &route53.ListHostedZonesInput{MaxItems: aws.Int32(1)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("ListHostedZones: %v", err)
		}
		for _, z := range out.HostedZones {
			ids = append(ids, strings.TrimPrefix(aws.ToString(z.Id), "/hostedzone/"))
		}
	}
	if !slices.Equal(ids, []string{other, zoneID}) {
		t.Errorf("ListHostedZones pages = %q, want %q", ids, []string{other, zoneID})
	}
	hz, err := c.GetHostedZone(ctx(t), &route53.GetHostedZoneInput{Id: aws.String(zoneID)})
	if err != nil {
		t.Fatalf("GetHostedZone: %v", err)
	}
	if aws.ToInt64(hz.HostedZone.ResourceRecordSetCount) != 2 || hz.DelegationSet == nil || len(hz.DelegationSet.NameServers) != 4 {
		t.Errorf("GetHostedZone = %+v / %+v, want the NS+SOA count and four name servers", hz.HostedZone, hz.DelegationSet)
	}
	rrs, err := c.ListResourceRecordSets(ctx(t), &route53.ListResourceRecordSetsInput{HostedZoneId: aws.String(zoneID)})
	if err != nil {
		t.Fatalf("ListResourceRecordSets: %v", err)
	}
	if ns := rrs.ResourceRecordSets[0]; ns.Type != types.RRTypeNs || len(ns.ResourceRecords) != 4 ||
		aws.ToString(ns.ResourceRecords[3].Value) != hz.DelegationSet.NameServers[3] {
		t.Errorf("apex NS record = %s with %d values, want the zone's four name servers", ns.Type, len(ns.ResourceRecords))
	}
	f.assertNoUnexpected(t)
}

func TestRoute53ConcurrentChangesAllLand(t *testing.T) {
	f := newFixture(t, edge.Options{})
	zoneID := f.svc.AddHostedZone("example.com")
	c := f.route53()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.ChangeResourceRecordSets(ctx(t), &route53.ChangeResourceRecordSetsInput{
				HostedZoneId: aws.String(zoneID),
				ChangeBatch:  &types.ChangeBatch{Changes: []types.Change{aliasUpsert(fmt.Sprintf("svc%d.example.com", i), "alb.example.net")}},
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent UPSERT: %v", err)
		}
	}
	if n := len(f.svc.Records(zoneID)); n != 2+8 {
		t.Errorf("zone has %d records, want NS+SOA+8", n)
	}
}
