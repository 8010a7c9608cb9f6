package edge_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/smithy-go"

	"github.com/drbot/drbot/test/awsfake/edge"
)

// signingName pulls the service out of a SigV4 Authorization header:
// Credential=AKID/<date>/<region>/<service>/aws4_request.
var signingName = regexp.MustCompile(`Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request`)

// fixture is the test-only stand-in for the parent package's server: it
// routes by signing name and logs the operation of every call.
type fixture struct {
	svc *edge.Services
	cfg aws.Config

	mu  sync.Mutex
	ops []string
}

func newFixture(t *testing.T, opts edge.Options) *fixture {
	t.Helper()
	f := &fixture{svc: edge.New(opts)}
	handlers := map[string]edge.Handler{
		"route53":    f.svc.Route53(),
		"cloudfront": f.svc.CloudFront(),
		"apigateway": f.svc.APIGateway(),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := signingName.FindStringSubmatch(r.Header.Get("Authorization"))
		if m == nil || handlers[m[1]] == nil {
			t.Errorf("got request for unknown signing name at %s %q", r.Method, r.RequestURI)
			http.Error(w, "unknown signing name", http.StatusBadRequest)
			return
		}
		h := handlers[m[1]]
		f.mu.Lock()
		f.ops = append(f.ops, m[1]+":"+h.Operation(r))
		f.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.cfg = aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAKEEDGE", "fake-secret", ""),
		BaseEndpoint: aws.String(srv.URL),
		Retryer:      func() aws.Retryer { return aws.NopRetryer{} },
		HTTPClient:   &http.Client{Transport: edge.WrapTransport(nil)},
	}
	return f
}

func (f *fixture) route53() *route53.Client       { return route53.NewFromConfig(f.cfg) }
func (f *fixture) cloudfront() *cloudfront.Client { return cloudfront.NewFromConfig(f.cfg) }
func (f *fixture) apigateway() *apigateway.Client { return apigateway.NewFromConfig(f.cfg) }
func (f *fixture) apigatewayv2() *apigatewayv2.Client {
	return apigatewayv2.NewFromConfig(f.cfg)
}

// calls counts logged calls of one "service:Operation".
func (f *fixture) calls(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, o := range f.ops {
		if o == op {
			n++
		}
	}
	return n
}

func (f *fixture) assertNoUnexpected(t *testing.T) {
	t.Helper()
	if u := f.svc.Unexpected(); len(u) != 0 {
		t.Errorf("stand-in saw requests it did not understand: %q", u)
	}
}

// fakeClock is a settable clock for deterministic status transitions.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// advanceAfterCalls moves clock on by d once op has been called n times, so a
// waiter is known to have seen the in-flight status before it flips; the
// returned channel closes when that has happened.
func (f *fixture) advanceAfterCalls(t *testing.T, op string, n int, clock *fakeClock, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.Now().Add(10 * time.Second)
		for f.calls(op) < n {
			if time.Now().After(deadline) {
				t.Errorf("%s was called fewer than %d times", op, n)
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
		clock.Advance(d)
	}()
	return done
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestRequestNobodyUnderstandsIsRecordedAndFails(t *testing.T) {
	f := newFixture(t, edge.Options{})
	_, err := f.route53().GetHealthCheck(ctx(t), &route53.GetHealthCheckInput{HealthCheckId: aws.String("hc-1")})
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "UnknownOperationException" {
		t.Fatalf("GetHealthCheck error = %v, want UnknownOperationException", err)
	}
	if !strings.Contains(apiErr.ErrorMessage(), "does not implement GET /2013-04-01/healthcheck/hc-1") {
		t.Errorf("error message %q does not say which request was not understood", apiErr.ErrorMessage())
	}
	_, err = f.apigatewayv2().GetVpcLinks(ctx(t), &apigatewayv2.GetVpcLinksInput{})
	if err == nil {
		t.Fatal("GetVpcLinks succeeded against a stand-in that does not implement it")
	}
	want := []string{"GET /2013-04-01/healthcheck/hc-1", "GET /v2/vpclinks"}
	if got := f.svc.Unexpected(); !slices.Equal(got, want) {
		t.Errorf("Unexpected() = %q, want %q", got, want)
	}
	if n := f.calls("route53:"); n != 1 {
		t.Errorf("%d route53 calls logged with an empty operation, want 1: Operation() must return \"\" for the unknown call", n)
	}
}

func TestOperationNamesTheAWSOperation(t *testing.T) {
	s := edge.New(edge.Options{})
	cases := []struct {
		h      edge.Handler
		method string
		path   string
		want   string
	}{
		{s.Route53(), "POST", "/2013-04-01/hostedzone/Z1/rrset", "ChangeResourceRecordSets"},
		{s.Route53(), "GET", "/2013-04-01/change/C1", "GetChange"},
		{s.CloudFront(), "PUT", "/2020-05-31/distribution/E1/config", "UpdateDistribution"},
		{s.CloudFront(), "GET", "/2020-05-31/distribution/E1", "GetDistribution"},
		{s.APIGateway(), "PATCH", "/restapis/a/resources/b/methods/GET/integration", "UpdateIntegration"},
		{s.APIGateway(), "PATCH", "/v2/apis/a/integrations/b", "UpdateIntegration"},
		{s.APIGateway(), "GET", "/v2/apis/a/stages/%24default", "GetStage"},
		{s.APIGateway(), "DELETE", "/restapis/a", ""},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://127.0.0.1"+c.path, nil)
		if got := c.h.Operation(r); got != c.want {
			t.Errorf("Operation(%s %s) = %q, want %q", c.method, c.path, got, c.want)
		}
	}
}
