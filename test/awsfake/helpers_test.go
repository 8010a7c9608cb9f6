package awsfake_test

import (
	"context"
	"encoding/base64"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/drbot/drbot/test/awsfake"
)

const (
	region    = "us-east-1"
	drRegion  = "eu-west-1"
	account   = awsfake.DefaultAccountID
	adminKey  = "AKIDADMINEXAMPLE0001"
	adminSec  = "admin-secret-made-up-for-tests"
	adminArn  = "arn:aws:iam::123456789012:user/admin"
	drbotKey  = "AKIDDRBOTEXAMPLE0001"
	drbotSec  = "drbot-secret-made-up-for-tests"
	drbotArn  = "arn:aws:sts::123456789012:assumed-role/drbot/drbot-session"
	drbotRole = "arn:aws:iam::123456789012:role/drbot"
)

// newServer starts a stand-in with the admin user and drbot's role session registered.
func newServer(t *testing.T, opts awsfake.Options) *awsfake.Server {
	t.Helper()
	srv := awsfake.New(t, opts)
	srv.AddIdentity(adminKey, adminSec, adminArn)
	srv.AddIdentity(drbotKey, drbotSec, drbotArn)
	return srv
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// eksToken builds a bearer token exactly as tech-facts.md §3 describes.
func eksToken(t *testing.T, cfg aws.Config, clusterName string) string {
	t.Helper()
	pc := sts.NewPresignClient(sts.NewFromConfig(cfg))
	req, err := pc.PresignGetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{}, func(po *sts.PresignOptions) {
		po.ClientOptions = append(po.ClientOptions, func(o *sts.Options) {
			o.APIOptions = append(o.APIOptions,
				smithyhttp.SetHeaderValue("x-k8s-aws-id", clusterName),
				smithyhttp.SetHeaderValue("X-Amz-Expires", "60"))
		})
	})
	if err != nil {
		t.Fatalf("presigning GetCallerIdentity: %v", err)
	}
	return "k8s-aws-v1." + base64.RawURLEncoding.EncodeToString([]byte(req.URL))
}

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// offsetClock is a server clock that tests can move forward.
type offsetClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *offsetClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *offsetClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}
