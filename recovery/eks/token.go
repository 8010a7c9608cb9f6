package eks

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// tokenPrefix marks an EKS bearer token (aws-iam-authenticator's format).
const tokenPrefix = "k8s-aws-v1."

// Token returns an EKS bearer token for cluster: a presigned STS
// GetCallerIdentity URL, signed with the x-k8s-aws-id header naming the
// cluster, base64url-encoded behind "k8s-aws-v1.". EKS accepts it for 15
// minutes from its signing time, whatever X-Amz-Expires says.
func Token(ctx context.Context, cfg aws.Config, cluster string) (string, error) {
	pc := sts.NewPresignClient(sts.NewFromConfig(cfg))
	req, err := pc.PresignGetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}, func(po *sts.PresignOptions) {
		po.ClientOptions = append(po.ClientOptions, func(o *sts.Options) {
			o.APIOptions = append(o.APIOptions,
				smithyhttp.SetHeaderValue("x-k8s-aws-id", cluster),
				smithyhttp.SetHeaderValue("X-Amz-Expires", "60"))
		})
	})
	if err != nil {
		return "", fmt.Errorf("presigning STS GetCallerIdentity for cluster %q: %w", cluster, err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(req.URL)), nil
}

// tokenSource caches one cluster's token and makes a new one once the
// cached one is older than refresh (well inside its 15 minutes), or after
// the API server turned it down.
type tokenSource struct {
	make    func(ctx context.Context) (string, error)
	now     func() time.Time
	refresh time.Duration

	mu    sync.Mutex
	token string
	made  time.Time
}

func (s *tokenSource) Token(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && s.now().Sub(s.made) < s.refresh {
		return s.token, nil
	}
	now := s.now()
	tok, err := s.make(ctx)
	if err != nil {
		return "", err
	}
	s.token, s.made = tok, now
	return tok, nil
}

// invalidate drops a token the API server refused.
func (s *tokenSource) invalidate(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == tok {
		s.token = ""
	}
}

// bearer sets the Authorization header of every request from a
// tokenSource, so a long-lived client keeps working past 15 minutes.
type bearer struct {
	src  *tokenSource
	next http.RoundTripper
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	tok, err := b.src.Token(req.Context())
	if err != nil {
		return nil, fmt.Errorf("making an EKS token: %w", err)
	}
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	resp, err := b.next.RoundTrip(r)
	if err == nil && resp.StatusCode == http.StatusUnauthorized {
		b.src.invalidate(tok)
	}
	return resp, err
}
