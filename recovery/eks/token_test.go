package eks

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drbot/drbot/test/awsfake"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

func countingSource(c *clock) (*tokenSource, *int) {
	n := 0
	return &tokenSource{now: c.now, refresh: 12 * time.Minute, make: func(context.Context) (string, error) {
		n++
		return fmt.Sprintf("tok-%d", n), nil
	}}, &n
}

func TestTokenSourceReusesATokenUntilItIsTwelveMinutesOld(t *testing.T) {
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	src, made := countingSource(c)
	for i := 0; i < 5; i++ {
		if tok, _ := src.Token(context.Background()); tok != "tok-1" {
			t.Fatalf("token %d = %q", i, tok)
		}
		c.add(2 * time.Minute) // 0..8 minutes old
	}
	c.add(4 * time.Minute) // 14 minutes: past the refresh age, inside the 15 minutes EKS allows
	if tok, _ := src.Token(context.Background()); tok != "tok-2" || *made != 2 {
		t.Fatalf("token after 14 minutes = %q (%d made), want a new one", tok, *made)
	}
}

func TestBearerTransportRenewsTheTokenAfterUnauthorized(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.Header.Get("Authorization"))
		if len(seen) == 1 {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer srv.Close()
	c := &clock{t: time.Now()}
	src, _ := countingSource(c)
	client := &http.Client{Transport: &bearer{src: src, next: http.DefaultTransport}}
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("Authorization") != "" {
			t.Fatal("the caller's request was modified")
		}
	}
	want := []string{"Bearer tok-1", "Bearer tok-2", "Bearer tok-2"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("Authorization headers = %q, want %q", seen, want)
	}
}

func TestTokenIsAPresignedGetCallerIdentitySigningTheClusterName(t *testing.T) {
	srv := awsfake.New(t, awsfake.Options{})
	srv.AddIdentity("AKIDTOKENTEST0000001", "made-up-secret", "arn:aws:sts::123456789012:assumed-role/drbot/s")
	tok, err := Token(context.Background(), srv.Config("eu-west-1", "AKIDTOKENTEST0000001", "made-up-secret"), "dr")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "k8s-aws-v1."))
	if !strings.HasPrefix(tok, "k8s-aws-v1.") || err != nil {
		t.Fatalf("token %q does not have the EKS form (%v)", tok, err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if q.Get("Action") != "GetCallerIdentity" || !strings.Contains(q.Get("X-Amz-SignedHeaders"), "x-k8s-aws-id") || q.Get("X-Amz-Expires") != "60" ||
		!strings.Contains(q.Get("X-Amz-Credential"), "/eu-west-1/sts/aws4_request") {
		t.Fatalf("presigned URL query = %v", q)
	}
	if len(tok) > 4096 {
		t.Errorf("token is %d bytes; the authenticator refuses more than 4 KiB", len(tok))
	}
}

func TestElapsedTimesReadLikeTheRunbook(t *testing.T) {
	for d, want := range map[time.Duration]string{
		6*time.Minute + 12*time.Second: "6m12s",
		45 * time.Second:               "45s",
		62 * time.Minute:               "1h2m",
		9*time.Minute + 3*time.Second:  "9m03s",
	} {
		if got := since(d); got != want {
			t.Errorf("since(%s) = %q, want %q", d, got, want)
		}
	}
}
