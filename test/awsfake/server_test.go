package awsfake_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/drbot/drbot/test/awsfake"
)

func TestInjectedThrottlingIsRetriedByTheStandardRetryer(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	if _, err := srv.AddCluster(drRegion, awsfake.ExistingCluster{Name: "dr"}); err != nil {
		t.Fatal(err)
	}
	srv.Inject("eks", "DescribeCluster", awsfake.Fault{Code: "ThrottlingException", Status: 400, Times: 2})

	out, err := eks.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec)).DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")})
	if err != nil {
		t.Fatalf("DescribeCluster after two throttles: %v", err)
	}
	if aws.ToString(out.Cluster.Name) != "dr" {
		t.Fatalf("cluster = %+v", out.Cluster)
	}
	if n := srv.CallsTo("eks", "DescribeCluster"); n != 3 {
		t.Fatalf("DescribeCluster calls = %d, want 3 (two throttled, one retried successfully)", n)
	}
	var statuses []int
	for _, c := range srv.Calls() {
		statuses = append(statuses, c.Status)
		if c.Principal != drbotArn || c.Region != drRegion {
			t.Errorf("call %+v: want principal %s in %s", c, drbotArn, drRegion)
		}
	}
	if len(statuses) != 3 || statuses[0] != 400 || statuses[1] != 400 || statuses[2] != 200 {
		t.Fatalf("statuses = %v, want [400 400 200]", statuses)
	}
	if c := srv.Calls()[0]; c.ErrorCode != "ThrottlingException" {
		t.Errorf("first call error code = %q", c.ErrorCode)
	}
}

func TestInjectedQueryProtocolFaultKeepsItsErrorCode(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	srv.Inject("iam", "GetRole", awsfake.Fault{Code: "ServiceFailure", Status: 500, Times: 1})
	c := iam.NewFromConfig(srv.Config(region, adminKey, adminSec), func(o *iam.Options) { o.RetryMaxAttempts = 1 })
	_, err := c.GetRole(ctx(t), &iam.GetRoleInput{RoleName: aws.String("x")})
	if code := errorCode(err); code != "ServiceFailure" {
		t.Fatalf("GetRole with an injected 500 = %v (code %q), want ServiceFailure", err, code)
	}
	_, err = c.GetRole(ctx(t), &iam.GetRoleInput{RoleName: aws.String("x")})
	if code := errorCode(err); code != "NoSuchEntity" {
		t.Fatalf("GetRole after the one-shot fault = %v (code %q), want NoSuchEntity", err, code)
	}
}

func TestInjectedLatencyDelaysTheResponse(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	srv.Inject("eks", "ListClusters", awsfake.Fault{Latency: 200 * time.Millisecond, Times: 1})
	c := eks.NewFromConfig(srv.Config(region, drbotKey, drbotSec))
	start := time.Now()
	if _, err := c.ListClusters(ctx(t), &eks.ListClustersInput{}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("ListClusters took %v, want at least the injected 200ms", d)
	}
}

func TestUnknownOperationsFailLoudlyAndAreRecorded(t *testing.T) {
	srv := newServer(t, awsfake.Options{AllowUnexpected: true})
	_, err := eks.NewFromConfig(srv.Config(region, drbotKey, drbotSec)).ListUpdates(ctx(t), &eks.ListUpdatesInput{Name: aws.String("dr")})
	if code := errorCode(err); code != "UnknownOperationException" {
		t.Fatalf("unmodelled EKS operation = %v (code %q), want UnknownOperationException", err, code)
	}
	_, err = iam.NewFromConfig(srv.Config(region, adminKey, adminSec)).ListUsers(ctx(t), &iam.ListUsersInput{})
	if code := errorCode(err); code != "UnknownOperationException" {
		t.Fatalf("unmodelled IAM action = %v (code %q), want UnknownOperationException", err, code)
	}
	resp, err := http.Get(srv.URL() + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("unsigned request status = %d, want 403", resp.StatusCode)
	}

	u := srv.Unexpected()
	if len(u) != 3 || !strings.Contains(u[0], "GET /clusters/dr/updates") || !strings.Contains(u[1], "[iam]") || !strings.Contains(u[2], "not SigV4-signed") {
		t.Fatalf("Unexpected() = %q", u)
	}
	calls := srv.Calls()
	if len(calls) != 2 || calls[0].Operation != "" || calls[0].Status != http.StatusNotFound || calls[1].Status != http.StatusBadRequest {
		t.Fatalf("calls = %+v", calls)
	}
}

// TestUnexpectedRequestsFailTheTestAtCleanup runs a stand-in inside a
// subtest-like recorder to check that cleanup reports unexpected requests.
func TestUnexpectedRequestsFailTheTestAtCleanup(t *testing.T) {
	rec := &recordingTB{TB: t}
	func() {
		defer rec.runCleanups()
		srv := awsfake.New(rec, awsfake.Options{})
		_, _ = eks.NewFromConfig(srv.Config(region, "AKIDX", "s")).ListUpdates(ctx(t), &eks.ListUpdatesInput{Name: aws.String("dr")})
	}()
	if len(rec.errors) != 1 || !strings.Contains(rec.errors[0], "1 unexpected request") {
		t.Fatalf("cleanup errors = %q, want one report of the unexpected request", rec.errors)
	}
}

type recordingTB struct {
	testing.TB
	errors   []string
	cleanups []func()
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.errors = append(r.errors, strings.TrimSpace(strings.ReplaceAll(fmt.Sprintf(format, args...), "\n", " ")))
}
func (r *recordingTB) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recordingTB) runCleanups() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

// TestEndpointEnvironmentReachesTheStandIn configures a client the way a
// black-box drbot binary would: only environment variables.
func TestEndpointEnvironmentReachesTheStandIn(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	if _, err := srv.AddCluster(drRegion, awsfake.ExistingCluster{Name: "dr"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	for _, kv := range srv.Env(drRegion, drbotKey, drbotSec) {
		k, v, _ := strings.Cut(kv, "=")
		if k == "AWS_ENDPOINT_URL" {
			continue // prove the per-service variable is enough on its own
		}
		t.Setenv(k, v)
	}
	cfg, err := config.LoadDefaultConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out, err := eks.NewFromConfig(cfg).ListClusters(ctx(t), &eks.ListClustersInput{})
	if err != nil || len(out.Clusters) != 1 || out.Clusters[0] != "dr" {
		t.Fatalf("ListClusters through AWS_ENDPOINT_URL = %v, %v", out, err)
	}
	if c := srv.Calls(); len(c) != 1 || c[0].Principal != drbotArn {
		t.Fatalf("calls = %+v", c)
	}
}
