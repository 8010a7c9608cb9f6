package awsfake_test

import (
	"errors"
	"net/http"
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/smithy-go"

	"github.com/drbot/drbot/test/awsfake"
)

func TestInjectRateFailsTheShareOfCallsTheSeedPicksAndOnlyMatchingOnes(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	c := eks.NewFromConfig(srv.Config(region, drbotKey, drbotSec), func(o *eks.Options) { o.RetryMaxAttempts = 1 })

	srv.InjectRate(awsfake.FaultRate{Rate: 1, Faults: []awsfake.Fault{{Code: "ThrottlingException"}}})
	_, err := c.ListClusters(ctx(t), &eks.ListClustersInput{})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ThrottlingException" {
		t.Fatalf("ListClusters at rate 1: err = %v, want ThrottlingException", err)
	}
	if f := srv.RateFailures(); len(f) != 1 || f[0].Operation != "ListClusters" || f[0].Status != http.StatusBadRequest {
		t.Errorf("RateFailures = %+v, want the one throttled ListClusters", f)
	}

	srv.InjectRate(awsfake.FaultRate{Rate: 1, Only: func(service, op, _ string) bool { return op == "CreateCluster" }})
	if _, err := c.ListClusters(ctx(t), &eks.ListClustersInput{}); err != nil {
		t.Errorf("ListClusters outside Only failed: %v", err)
	}

	pattern := func(seed uint64) []bool {
		srv.InjectRate(awsfake.FaultRate{Rate: 0.5, Seed: seed})
		var out []bool
		for range 16 {
			_, err := c.ListClusters(ctx(t), &eks.ListClustersInput{})
			out = append(out, err != nil)
		}
		return out
	}
	a, b := pattern(7), pattern(7)
	if !slices.Equal(a, b) || !slices.Contains(a, true) || !slices.Contains(a, false) {
		t.Errorf("seed 7 failed %v then %v; want the same mix of failures both times", a, b)
	}
	srv.InjectRate(awsfake.FaultRate{})
	if _, err := c.ListClusters(ctx(t), &eks.ListClustersInput{}); err != nil {
		t.Errorf("ListClusters after the rate was cleared: %v", err)
	}
}
