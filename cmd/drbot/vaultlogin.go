package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	vault "github.com/hashicorp/vault/api"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
)

// serviceAccountTokenPath is where Kubernetes mounts the pod's token.
const serviceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// getCallerIdentity is the STS call Vault's aws auth method replays to learn
// who signed it.
const getCallerIdentity = "Action=GetCallerIdentity&Version=2011-06-15"

// vaultClients makes one Vault client per process. With auth.method
// kubernetes or aws it logs in, and logs in again at half the token's TTL,
// so a recovery hours into an outage never meets an expired token.
type vaultClients struct {
	cfg *config.Config
	log *slog.Logger
	// minRefresh is the shortest wait between two logins (default a minute).
	minRefresh time.Duration

	mu     sync.Mutex
	client *vault.Client
	stop   chan struct{}
}

func (v *vaultClients) get(ctx context.Context) (*vault.Client, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.client != nil {
		return v.client, nil
	}
	vc := vault.DefaultConfig()
	vc.Address = v.cfg.Vault.Address
	vc.HttpClient.Transport = recovery.StepUserAgent(vc.HttpClient.Transport) // Vault's log names the step
	c, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault client for %s: %w", v.cfg.Vault.Address, err)
	}
	if v.cfg.Vault.Auth == nil || v.cfg.Vault.Auth.Method == "token" {
		tok, err := v.cfg.Vault.Token.Resolve()
		if err != nil {
			return nil, fmt.Errorf("vault.token: %w", err)
		}
		c.SetToken(tok)
		v.client = c
		return c, nil
	}
	ttl, err := v.login(ctx, c)
	if err != nil {
		return nil, err
	}
	v.stop = make(chan struct{})
	go v.refresh(c, ttl, v.stop)
	v.client = c
	return c, nil
}

// close stops the refreshing logins.
func (v *vaultClients) close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.stop != nil {
		close(v.stop)
		v.stop = nil
	}
}

// login logs c in with the configured method and returns the token's TTL.
func (v *vaultClients) login(ctx context.Context, c *vault.Client) (time.Duration, error) {
	a := v.cfg.Vault.Auth // config.Load defaults Mount to the method and STSRegion to us-east-1
	mount := strings.Trim(a.Mount, "/")
	var data map[string]any
	var err error
	switch a.Method {
	case "kubernetes":
		data, err = kubernetesLoginData(a)
	case "aws":
		data, err = awsLoginData(ctx, a)
	default:
		return 0, fmt.Errorf("vault.auth.method %q is not supported: use token, kubernetes or aws", a.Method)
	}
	if err != nil {
		return 0, err
	}
	data["role"] = a.Role
	secret, err := c.Logical().WriteWithContext(ctx, "auth/"+mount+"/login", data)
	if err != nil {
		return 0, fmt.Errorf("vault %s login at auth/%s with role %q (vault.auth): %w", a.Method, mount, a.Role, err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return 0, fmt.Errorf("vault %s login at auth/%s returned no token", a.Method, mount)
	}
	c.SetToken(secret.Auth.ClientToken)
	return time.Duration(secret.Auth.LeaseDuration) * time.Second, nil
}

// kubernetesLoginData is the pod's service-account JWT, which Vault checks
// with a TokenReview against the cluster drbot runs in.
func kubernetesLoginData(a *config.VaultAuth) (map[string]any, error) {
	path := a.TokenPath
	if path == "" {
		path = serviceAccountTokenPath
	}
	jwt, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("vault kubernetes login needs drbot's service-account token (vault.auth.token_path): %w", err)
	}
	return map[string]any{"jwt": strings.TrimSpace(string(jwt))}, nil
}

// awsLoginData is an STS GetCallerIdentity request signed with drbot's AWS
// credentials and not sent: Vault sends it to STS and learns drbot's
// IAM identity from the answer. The signature is for the STS endpoint of
// vault.auth.sts_region, which must be the one Vault's mount uses.
func awsLoginData(ctx context.Context, a *config.VaultAuth) (map[string]any, error) {
	region := a.STSRegion
	endpoint := "https://sts.amazonaws.com/"
	if region != "us-east-1" {
		endpoint = "https://sts." + region + ".amazonaws.com/"
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(region))
	if err != nil {
		return nil, fmt.Errorf("loading AWS credentials for the vault aws login: %w", err)
	}
	if ac.Credentials == nil {
		return nil, errors.New("vault aws login: no AWS credentials found (the default chain: environment, IRSA, Pod Identity, instance role)")
	}
	cr, err := ac.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, fmt.Errorf("retrieving AWS credentials for the vault aws login: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader([]byte(getCallerIdentity)))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if a.IAMServerID != "" {
		req.Header.Set("X-Vault-AWS-IAM-Server-ID", a.IAMServerID)
	}
	sum := sha256.Sum256([]byte(getCallerIdentity))
	if err := v4.NewSigner().SignHTTP(ctx, cr, req, hex.EncodeToString(sum[:]), "sts", region, time.Now()); err != nil {
		return nil, fmt.Errorf("signing the vault aws login: %w", err)
	}
	// Go keeps Host out of Header; Vault's client libraries send it along.
	h := req.Header.Clone()
	h.Set("Host", req.URL.Host)
	headers, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	b64 := base64.StdEncoding.EncodeToString
	return map[string]any{
		"iam_http_request_method": http.MethodPost,
		"iam_request_url":         b64([]byte(endpoint)),
		"iam_request_body":        b64([]byte(getCallerIdentity)),
		"iam_request_headers":     b64(headers),
	}, nil
}

// refresh logs in again at half each token's TTL until stop is closed. A
// failed login is retried sooner; the old token serves until it expires.
func (v *vaultClients) refresh(c *vault.Client, ttl time.Duration, stop <-chan struct{}) {
	floor := v.minRefresh
	if floor <= 0 {
		floor = time.Minute
	}
	for {
		select {
		case <-stop:
			return
		case <-time.After(max(ttl/2, floor)):
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		next, err := v.login(ctx, c)
		cancel()
		if err != nil {
			v.log.Error("renewing the vault login; trying again", "method", v.cfg.Vault.Auth.Method, "err", err)
			ttl = 2 * floor
			continue
		}
		ttl = next
	}
}
