package edge_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/drbot/drbot/test/awsfake/edge"
)

func TestCloudFrontUpdateNeedsCurrentETagAndChangesOnlyTheOrigin(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, edge.Options{Clock: clock.Now, CloudFrontDeployDelay: 5 * time.Minute})
	id := f.svc.AddDistribution([]edge.Origin{
		{ID: "app", DomainName: "old-alb.us-west-2.elb.amazonaws.com"},
		{ID: "static", DomainName: "assets.s3.amazonaws.com"},
	})
	c := f.cloudfront()

	cur, err := c.GetDistributionConfig(ctx(t), &cloudfront.GetDistributionConfigInput{Id: aws.String(id)})
	if err != nil {
		t.Fatalf("GetDistributionConfig: %v", err)
	}
	if aws.ToString(cur.ETag) == "" {
		t.Fatal("GetDistributionConfig returned no ETag")
	}
	cfg := cur.DistributionConfig
	cfg.Origins.Items[0].DomainName = aws.String("new-alb.us-east-1.elb.amazonaws.com")

	_, err = c.UpdateDistribution(ctx(t), &cloudfront.UpdateDistributionInput{Id: aws.String(id), IfMatch: aws.String("E2STALEETAG000"), DistributionConfig: cfg})
	var pf *types.PreconditionFailed
	if !errors.As(err, &pf) {
		t.Fatalf("update with a stale ETag: %v, want *types.PreconditionFailed", err)
	}
	_, err = c.UpdateDistribution(ctx(t), &cloudfront.UpdateDistributionInput{Id: aws.String(id), DistributionConfig: cfg})
	var badIfMatch *types.InvalidIfMatchVersion
	if !errors.As(err, &badIfMatch) {
		t.Fatalf("update without If-Match: %v, want *types.InvalidIfMatchVersion", err)
	}
	if d, _ := f.svc.Distribution(id); d.Origins[0].DomainName != "old-alb.us-west-2.elb.amazonaws.com" {
		t.Fatalf("a rejected update changed the origin to %q", d.Origins[0].DomainName)
	}

	upd, err := c.UpdateDistribution(ctx(t), &cloudfront.UpdateDistributionInput{Id: aws.String(id), IfMatch: cur.ETag, DistributionConfig: cfg})
	if err != nil {
		t.Fatalf("update with the current ETag: %v", err)
	}
	if aws.ToString(upd.ETag) == "" || aws.ToString(upd.ETag) == aws.ToString(cur.ETag) {
		t.Errorf("ETag after update = %q, want a new one (was %q)", aws.ToString(upd.ETag), aws.ToString(cur.ETag))
	}
	if s := aws.ToString(upd.Distribution.Status); s != "InProgress" {
		t.Errorf("status right after the update = %q, want InProgress", s)
	}

	after, err := c.GetDistributionConfig(ctx(t), &cloudfront.GetDistributionConfigInput{Id: aws.String(id)})
	if err != nil {
		t.Fatalf("GetDistributionConfig after update: %v", err)
	}
	if aws.ToString(after.ETag) != aws.ToString(upd.ETag) {
		t.Errorf("GetDistributionConfig ETag = %q, want the update's %q", aws.ToString(after.ETag), aws.ToString(upd.ETag))
	}
	if !reflect.DeepEqual(after.DistributionConfig, cfg) {
		t.Errorf("stored config differs from what was sent:\n got %+v\nwant %+v", after.DistributionConfig, cfg)
	}
	if aws.ToString(after.DistributionConfig.DefaultCacheBehavior.CachePolicyId) == "" ||
		aws.ToString(after.DistributionConfig.Origins.Items[1].DomainName) != "assets.s3.amazonaws.com" {
		t.Error("members the update did not touch were lost")
	}
	d, _ := f.svc.Distribution(id)
	if d.Status != "InProgress" || d.Origins[0].DomainName != "new-alb.us-east-1.elb.amazonaws.com" {
		t.Errorf("Distribution() = %s %+v, want InProgress with the new origin", d.Status, d.Origins)
	}
	clock.Advance(5 * time.Minute)
	if d, _ := f.svc.Distribution(id); d.Status != "Deployed" {
		t.Errorf("status after the deploy delay = %s, want Deployed", d.Status)
	}
	f.assertNoUnexpected(t)
}

func TestCloudFrontDeployedWaiterSeesUpdateFinish(t *testing.T) {
	clock := newFakeClock()
	f := newFixture(t, edge.Options{Clock: clock.Now, CloudFrontDeployDelay: 10 * time.Minute})
	id := f.svc.AddDistribution([]edge.Origin{{ID: "app", DomainName: "old.example.net"}})
	c := f.cloudfront()
	cur, err := c.GetDistributionConfig(ctx(t), &cloudfront.GetDistributionConfigInput{Id: aws.String(id)})
	if err != nil {
		t.Fatalf("GetDistributionConfig: %v", err)
	}
	cur.DistributionConfig.Origins.Items[0].DomainName = aws.String("new.example.net")
	if _, err := c.UpdateDistribution(ctx(t), &cloudfront.UpdateDistributionInput{Id: aws.String(id), IfMatch: cur.ETag, DistributionConfig: cur.DistributionConfig}); err != nil {
		t.Fatalf("UpdateDistribution: %v", err)
	}
	w := cloudfront.NewDistributionDeployedWaiter(c, func(o *cloudfront.DistributionDeployedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 20*time.Millisecond, 40*time.Millisecond
	})
	// The first GetDistribution must see InProgress; the deploy finishes while the waiter polls.
	advanced := f.advanceAfterCalls(t, "cloudfront:GetDistribution", 2, clock, 10*time.Minute)
	if err := w.Wait(ctx(t), &cloudfront.GetDistributionInput{Id: aws.String(id)}, 10*time.Second); err != nil {
		t.Fatalf("waiting for Deployed: %v", err)
	}
	<-advanced
	if n := f.calls("cloudfront:GetDistribution"); n < 2 {
		t.Errorf("waiter made %d GetDistribution calls; it should have polled through InProgress", n)
	}
	f.assertNoUnexpected(t)
}

func TestCloudFrontRejectsDanglingOriginAndUnknownDistribution(t *testing.T) {
	f := newFixture(t, edge.Options{})
	id := f.svc.AddDistribution([]edge.Origin{{ID: "app", DomainName: "old.example.net"}})
	c := f.cloudfront()
	cur, err := c.GetDistributionConfig(ctx(t), &cloudfront.GetDistributionConfigInput{Id: aws.String(id)})
	if err != nil {
		t.Fatalf("GetDistributionConfig: %v", err)
	}
	// Renaming the origin without retargeting the default cache behaviour is a
	// real mistake CloudFront refuses.
	cur.DistributionConfig.Origins.Items[0].Id = aws.String("app-dr")
	_, err = c.UpdateDistribution(ctx(t), &cloudfront.UpdateDistributionInput{Id: aws.String(id), IfMatch: cur.ETag, DistributionConfig: cur.DistributionConfig})
	var noOrigin *types.NoSuchOrigin
	if !errors.As(err, &noOrigin) {
		t.Errorf("update leaving the default cache behaviour dangling: %v, want *types.NoSuchOrigin", err)
	}
	_, err = c.GetDistribution(ctx(t), &cloudfront.GetDistributionInput{Id: aws.String("ENOSUCHDIST")})
	var noDist *types.NoSuchDistribution
	if !errors.As(err, &noDist) {
		t.Errorf("GetDistribution of an unknown id: %v, want *types.NoSuchDistribution", err)
	}
}

func TestCloudFrontListDistributionsPagesWithSummaries(t *testing.T) {
	f := newFixture(t, edge.Options{})
	first := f.svc.AddDistribution([]edge.Origin{{ID: "a", DomainName: "a.example.net"}})
	second := f.svc.AddDistribution([]edge.Origin{{ID: "b", DomainName: "b.example.net"}})
	var ids, origins []string
	p := cloudfront.NewListDistributionsPaginator(f.cloudfront(), &cloudfront.ListDistributionsInput{MaxItems: aws.Int32(1)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("ListDistributions: %v", err)
		}
		for _, s := range out.DistributionList.Items {
			ids = append(ids, aws.ToString(s.Id))
			origins = append(origins, aws.ToString(s.Origins.Items[0].DomainName))
			if aws.ToString(s.Status) != "Deployed" || aws.ToString(s.DomainName) == "" {
				t.Errorf("summary %s: status %q domain %q, want Deployed with a domain", aws.ToString(s.Id), aws.ToString(s.Status), aws.ToString(s.DomainName))
			}
		}
	}
	if !reflect.DeepEqual(ids, []string{first, second}) || !reflect.DeepEqual(origins, []string{"a.example.net", "b.example.net"}) {
		t.Errorf("listed %q with origins %q, want both distributions in order", ids, origins)
	}
	f.assertNoUnexpected(t)
}
