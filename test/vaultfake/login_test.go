package vaultfake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	vault "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/vaultfake"
)

const readDrbotPolicy = `path "secret/data/drbot/*" { capabilities = ["read"] }`

// seedSecrets gives srv one secret the drbot-read policy covers and one it does not.
func seedSecrets(srv *vaultfake.Server) {
	srv.PutPolicy("drbot-read", readDrbotPolicy)
	srv.PutKV("secret", "drbot/slack", map[string]any{"bot_token": "xoxb-made-up"})
	srv.PutKV("secret", "other/db", map[string]any{"password": "made-up"})
}

// assertTokenScope checks that token reads what drbot-read allows and nothing else.
func assertTokenScope(t *testing.T, srv *vaultfake.Server, token string) {
	t.Helper()
	c := newClient(t, srv, token)
	sec, err := c.KVv2("secret").Get(context.Background(), "drbot/slack")
	if err != nil {
		t.Fatalf("reading secret/drbot/slack with the login token: %v", err)
	}
	if sec.Data["bot_token"] != "xoxb-made-up" {
		t.Errorf("secret/drbot/slack = %v", sec.Data)
	}
	if _, err := c.KVv2("secret").Get(context.Background(), "other/db"); err == nil || responseStatus(t, err) != http.StatusForbidden {
		t.Errorf("reading secret/other/db with the login token: %v, want 403", err)
	}
}

func loginErr(t *testing.T, c *vault.Client, path string, body map[string]any) (int, string) {
	t.Helper()
	sec, err := c.Logical().Write(path, body)
	if err == nil {
		t.Fatalf("login to %s succeeded (policies %v), want it refused", path, sec.Auth.Policies)
	}
	return responseStatus(t, err), err.Error()
}

// saToken creates namespace/name (if missing) and returns a TokenRequest token for it.
func saToken(t *testing.T, cs kubernetes.Interface, ns, name string, audiences ...string) string {
	t.Helper()
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating service account %s/%s: %v", ns, name, err)
	}
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &exp, Audiences: audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("requesting a token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

func TestKubernetesLoginReviewsTheJWTWithTheAPIServerAndIssuesARoleScopedToken(t *testing.T) {
	kc := kubeenv.Start(t, kubeenv.WithName("vault-login"), kubeenv.WithCRDs(""))
	cs := kc.Clientset()
	ctx := context.Background()

	// The reviewer is allowed to create TokenReviews, as Vault's reviewer must be.
	reviewer := saToken(t, cs, "vault", "reviewer")
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "vault-reviewer"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "vault", Name: "reviewer"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("binding the reviewer: %v", err)
	}

	srv := vaultfake.New(t)
	seedSecrets(srv)
	srv.EnableKubernetesAuth("k8s-mgmt")
	srv.SetAuthConfig("k8s-mgmt", map[string]any{
		"kubernetes_host":    kc.Endpoint(),
		"kubernetes_ca_cert": string(kc.CAData()),
		"token_reviewer_jwt": reviewer,
	})
	srv.PutRole("k8s-mgmt", "drbot", map[string]any{
		"bound_service_account_names":      "drbot",
		"bound_service_account_namespaces": "drbot",
		"token_policies":                   "drbot-read",
		"token_ttl":                        "1h",
	})
	srv.PutRole("k8s-mgmt", "short", map[string]any{
		"bound_service_account_names":      "drbot*",
		"bound_service_account_namespaces": "*",
		"token_policies":                   "drbot-read",
		"token_ttl":                        "1s",
	})
	srv.PutRole("k8s-mgmt", "audience", map[string]any{
		"bound_service_account_names":      "drbot",
		"bound_service_account_namespaces": "drbot",
		"token_policies":                   "drbot-read",
		"audience":                         "vault",
	})

	anon := newClient(t, srv, "")
	login := func(role, jwt string) *vault.Secret {
		t.Helper()
		sec, err := anon.Logical().Write("auth/k8s-mgmt/login", map[string]any{"role": role, "jwt": jwt})
		if err != nil {
			t.Fatalf("logging in with role %s: %v", role, err)
		}
		return sec
	}

	drbotJWT := saToken(t, cs, "drbot", "drbot")
	sec := login("drbot", drbotJWT)
	if sec.Auth == nil || !strings.HasPrefix(sec.Auth.ClientToken, "hvs.") {
		t.Fatalf("login answer has no client token: %+v", sec.Auth)
	}
	if want := []string{"default", "drbot-read"}; !reflect.DeepEqual(sec.Auth.Policies, want) || !reflect.DeepEqual(sec.Auth.TokenPolicies, want) {
		t.Errorf("policies = %v, token_policies = %v, want %v", sec.Auth.Policies, sec.Auth.TokenPolicies, want)
	}
	if sec.Auth.LeaseDuration != 3600 || !sec.Auth.Renewable {
		t.Errorf("lease_duration = %d renewable = %v, want 3600 and true", sec.Auth.LeaseDuration, sec.Auth.Renewable)
	}
	md := sec.Auth.Metadata
	if md["role"] != "drbot" || md["service_account_name"] != "drbot" || md["service_account_namespace"] != "drbot" || md["service_account_uid"] == "" {
		t.Errorf("metadata = %v", md)
	}
	assertTokenScope(t, srv, sec.Auth.ClientToken)

	// The role's audience goes into the review: a token for the API server's
	// default audience is refused, one for "vault" accepted.
	if status, msg := loginErr(t, anon, "auth/k8s-mgmt/login", map[string]any{"role": "audience", "jwt": drbotJWT}); status != http.StatusForbidden {
		t.Errorf("login with the wrong audience: %d %s, want 403", status, msg)
	}
	login("audience", saToken(t, cs, "drbot", "drbot", "vault"))

	for _, tc := range []struct {
		name, role, jwt string
		status          int
		msg             string
	}{
		{"unbound service account", "drbot", saToken(t, cs, "drbot", "intruder"), http.StatusForbidden, "service account name not authorized"},
		{"unbound namespace", "drbot", saToken(t, cs, "elsewhere", "drbot"), http.StatusForbidden, "namespace not authorized"},
		{"made-up JWT", "drbot", madeUpJWT(), http.StatusForbidden, "permission denied"},
		{"unknown role", "nobody", drbotJWT, http.StatusBadRequest, `invalid role name "nobody"`},
		{"missing jwt", "drbot", "", http.StatusBadRequest, "missing jwt"},
	} {
		status, msg := loginErr(t, anon, "auth/k8s-mgmt/login", map[string]any{"role": tc.role, "jwt": tc.jwt})
		if status != tc.status || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, status, msg, tc.status, tc.msg)
		}
	}

	// Without token_reviewer_jwt the login JWT reviews itself, so only an
	// account allowed to create TokenReviews gets in.
	srv.EnableKubernetesAuth("k8s-self")
	srv.SetAuthConfig("k8s-self", map[string]any{"kubernetes_host": kc.Endpoint(), "kubernetes_ca_cert": string(kc.CAData())})
	srv.PutRole("k8s-self", "drbot", map[string]any{
		"bound_service_account_names":      "drbot,selfrev",
		"bound_service_account_namespaces": "drbot",
		"token_policies":                   "drbot-read",
	})
	selfJWT := saToken(t, cs, "drbot", "selfrev")
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "drbot-selfrev"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "drbot", Name: "selfrev"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("binding selfrev: %v", err)
	}
	if status, msg := loginErr(t, anon, "auth/k8s-self/login", map[string]any{"role": "drbot", "jwt": drbotJWT}); status != http.StatusForbidden || !strings.Contains(msg, "permission denied") {
		t.Errorf("self-review by an account without TokenReview rights: %d %q, want 403 permission denied", status, msg)
	}
	var self *vault.Secret
	// RBAC caches may take a moment to see the new binding.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var err error
		self, err = anon.Logical().Write("auth/k8s-self/login", map[string]any{"role": "drbot", "jwt": selfJWT})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("self-review by an auth-delegator account: %v", err)
		}
	}
	assertTokenScope(t, srv, self.Auth.ClientToken)

	short := login("short", drbotJWT)
	if short.Auth.LeaseDuration != 1 {
		t.Errorf("short role lease_duration = %d, want 1", short.Auth.LeaseDuration)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := newClient(t, srv, short.Auth.ClientToken).KVv2("secret").Get(ctx, "drbot/slack"); err == nil || responseStatus(t, err) != http.StatusForbidden {
		t.Errorf("reading with an expired login token: %v, want 403", err)
	}

	logins := srv.Logins()
	var got []string
	for _, l := range logins {
		got = append(got, l.Mount+" "+l.Method+" "+l.Role+" "+l.Principal+" "+l.TTL.String())
	}
	want := []string{
		"k8s-mgmt kubernetes drbot drbot/drbot 1h0m0s",
		"k8s-mgmt kubernetes audience drbot/drbot 768h0m0s",
		"k8s-self kubernetes drbot drbot/selfrev 768h0m0s",
		"k8s-mgmt kubernetes short drbot/drbot 1s",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Logins() =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for _, c := range srv.Calls() {
		if c.Path == "auth/k8s-mgmt/login" && c.Status == 0 {
			t.Errorf("login call recorded without a status: %+v", c)
		}
	}
}

const (
	drbotAKID   = "AKIDVAULTLOGIN000001"
	drbotSecret = "drbot-secret-made-up"
	drbotArn    = "arn:aws:sts::123456789012:assumed-role/drbot/drbot-session"
	otherAKID   = "AKIDVAULTLOGIN000002"
	otherSecret = "other-secret-made-up"
	serverID    = "vault.example.internal"
)

// iamLogin is the body of an aws IAM login: a SigV4-signed
// GetCallerIdentity, as drbot builds it.
type iamLogin struct {
	akid, secret string
	serverID     string // header value; "" leaves it out
	unsigned     bool   // add the server ID header after signing
	body         string
}

func (l iamLogin) data(t *testing.T, role string) map[string]any {
	t.Helper()
	body := l.body
	if body == "" {
		body = "Action=GetCallerIdentity&Version=2011-06-15"
	}
	req, err := http.NewRequest(http.MethodPost, "https://sts.amazonaws.com/", bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	if l.serverID != "" && !l.unsigned {
		req.Header.Set("X-Vault-AWS-IAM-Server-ID", l.serverID)
	}
	sum := sha256.Sum256([]byte(body))
	creds := aws.Credentials{AccessKeyID: l.akid, SecretAccessKey: l.secret}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "sts", "us-east-1", time.Now()); err != nil {
		t.Fatalf("signing: %v", err)
	}
	if l.serverID != "" && l.unsigned {
		req.Header.Set("X-Vault-AWS-IAM-Server-ID", l.serverID)
	}
	headers, err := json.Marshal(req.Header)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.StdEncoding.EncodeToString
	return map[string]any{
		"role":                    role,
		"iam_http_request_method": http.MethodPost,
		"iam_request_url":         enc([]byte(req.URL.String())),
		"iam_request_body":        enc([]byte(body)),
		"iam_request_headers":     enc(headers),
	}
}

func newAWSLoginServers(t *testing.T, id string) (*vaultfake.Server, *awsfake.Server) {
	t.Helper()
	sts := awsfake.New(t, awsfake.Options{})
	sts.AddIdentity(drbotAKID, drbotSecret, drbotArn)
	sts.AddIdentity(otherAKID, otherSecret, "arn:aws:iam::123456789012:user/ops/mallory")
	srv := vaultfake.New(t)
	seedSecrets(srv)
	srv.EnableAWSAuth("aws-dr", vaultfake.AWSAuthConfig{STSEndpoint: sts.URL(), IAMServerIDHeaderValue: id})
	srv.PutAWSRole("aws-dr", "drbot", map[string]any{
		"auth_type":               "iam",
		"bound_iam_principal_arn": []string{"arn:aws:iam::123456789012:role/drbot"},
		"token_policies":          "drbot-read",
		"token_ttl":               "30m",
	})
	return srv, sts
}

func TestAWSLoginForwardsTheSignedRequestToSTSAndIssuesATokenForTheBoundRole(t *testing.T) {
	srv, sts := newAWSLoginServers(t, serverID)
	anon := newClient(t, srv, "")

	sec, err := anon.Logical().Write("auth/aws-dr/login", iamLogin{akid: drbotAKID, secret: drbotSecret, serverID: serverID}.data(t, "drbot"))
	if err != nil {
		t.Fatalf("logging in: %v", err)
	}
	if want := []string{"default", "drbot-read"}; !reflect.DeepEqual(sec.Auth.Policies, want) {
		t.Errorf("policies = %v, want %v", sec.Auth.Policies, want)
	}
	if sec.Auth.LeaseDuration != 1800 {
		t.Errorf("lease_duration = %d, want 1800", sec.Auth.LeaseDuration)
	}
	md := sec.Auth.Metadata
	if md["canonical_arn"] != "arn:aws:iam::123456789012:role/drbot" || md["client_arn"] != drbotArn || md["account_id"] != "123456789012" || md["auth_type"] != "iam" {
		t.Errorf("metadata = %v", md)
	}
	assertTokenScope(t, srv, sec.Auth.ClientToken)
	if n := sts.CallsTo("sts", "GetCallerIdentity"); n != 1 {
		t.Errorf("STS saw %d GetCallerIdentity calls, want 1", n)
	}
	if got := srv.Logins(); len(got) != 1 || got[0].Principal != "arn:aws:iam::123456789012:role/drbot" || got[0].Method != "aws" || got[0].Role != "drbot" || got[0].TTL != 30*time.Minute {
		t.Errorf("Logins() = %+v", got)
	}

	root := newClient(t, srv, srv.RootToken())
	mounts, err := root.Sys().ListAuth()
	if err != nil {
		t.Fatal(err)
	}
	if m := mounts["aws-dr/"]; m == nil || m.Type != "aws" {
		t.Errorf("sys/auth aws-dr/ = %+v, want type aws", m)
	}
	role, err := root.Logical().Read("auth/aws-dr/role/drbot")
	if err != nil || role == nil {
		t.Fatalf("reading the role: %v", err)
	}
	if role.Data["auth_type"] != "iam" || !reflect.DeepEqual(role.Data["bound_iam_principal_arn"], []any{"arn:aws:iam::123456789012:role/drbot"}) {
		t.Errorf("role = %v", role.Data)
	}
}

func TestAWSLoginRefusesBadSignaturesUnboundPrincipalsMissingServerIDAndOtherActions(t *testing.T) {
	srv, sts := newAWSLoginServers(t, serverID)
	anon := newClient(t, srv, "")
	for _, tc := range []struct {
		name  string
		login iamLogin
		role  string
		msg   string
	}{
		{"wrong secret", iamLogin{akid: drbotAKID, secret: "not-the-secret", serverID: serverID}, "drbot", "error making upstream request: received error code 403 from STS"},
		{"unbound principal", iamLogin{akid: otherAKID, secret: otherSecret, serverID: serverID}, "drbot", `IAM Principal "arn:aws:iam::123456789012:user/ops/mallory" does not belong to the role "drbot"`},
		{"missing server ID", iamLogin{akid: drbotAKID, secret: drbotSecret}, "drbot", `missing header "X-Vault-AWS-IAM-Server-ID"`},
		{"wrong server ID", iamLogin{akid: drbotAKID, secret: drbotSecret, serverID: "other.example"}, "drbot", `expected "vault.example.internal" but got "other.example"`},
		{"unsigned server ID", iamLogin{akid: drbotAKID, secret: drbotSecret, serverID: serverID, unsigned: true}, "drbot", "vault header wasn't signed"},
		{"not GetCallerIdentity", iamLogin{akid: drbotAKID, secret: drbotSecret, serverID: serverID, body: "Action=AssumeRole&RoleArn=arn:aws:iam::123456789012:role/admin&RoleSessionName=x&Version=2011-06-15"}, "drbot", "iam request body is invalid"},
		{"unknown role", iamLogin{akid: drbotAKID, secret: drbotSecret, serverID: serverID}, "nobody", "entry for role nobody not found"},
	} {
		status, msg := loginErr(t, anon, "auth/aws-dr/login", tc.login.data(t, tc.role))
		if status != http.StatusBadRequest || !strings.Contains(msg, tc.msg) {
			t.Errorf("%s: %d %q, want 400 with %q", tc.name, status, msg, tc.msg)
		}
	}
	if got := srv.Logins(); len(got) != 0 {
		t.Errorf("Logins() = %+v, want none", got)
	}
	// Only the two requests that passed Vault's own checks reached STS.
	if n := sts.CallsTo("sts", "GetCallerIdentity"); n != 2 {
		t.Errorf("STS saw %d GetCallerIdentity calls, want 2 (the wrong secret's and the unbound principal's)", n)
	}
}

func TestAWSLoginWithoutServerIDConfiguredAcceptsAPlainSignedRequest(t *testing.T) {
	srv, _ := newAWSLoginServers(t, "")
	sec, err := newClient(t, srv, "").Logical().Write("auth/aws-dr/login", iamLogin{akid: drbotAKID, secret: drbotSecret}.data(t, "drbot"))
	if err != nil {
		t.Fatalf("logging in: %v", err)
	}
	assertTokenScope(t, srv, sec.Auth.ClientToken)
}

func TestAWSLoginMatchesCanonicalARNsAndTrailingGlobs(t *testing.T) {
	srv, _ := newAWSLoginServers(t, "")
	srv.PutAWSRole("aws-dr", "ops", map[string]any{
		// mallory's ARN has the path /ops/; the canonical ARN drops it.
		"bound_iam_principal_arn": "arn:aws:iam::123456789012:user/mallory,arn:aws:iam::123456789012:role/drb*",
		"token_policies":          "drbot-read",
	})
	anon := newClient(t, srv, "")
	for _, l := range []iamLogin{{akid: otherAKID, secret: otherSecret}, {akid: drbotAKID, secret: drbotSecret}} {
		if _, err := anon.Logical().Write("auth/aws-dr/login", l.data(t, "ops")); err != nil {
			t.Errorf("login as %s: %v", l.akid, err)
		}
	}
	var got []string
	for _, l := range srv.Logins() {
		got = append(got, l.Principal)
	}
	if want := []string{"arn:aws:iam::123456789012:user/mallory", "arn:aws:iam::123456789012:role/drbot"}; !reflect.DeepEqual(got, want) {
		t.Errorf("logged-in principals = %v, want %v", got, want)
	}
}

// TestLoginDoesNotHoldTheServerWhileCallingOut has the STS endpoint call
// back into Vault before answering: if login held the server's lock across
// the outbound call, that call would never be served.
func TestLoginDoesNotHoldTheServerWhileCallingOut(t *testing.T) {
	srv := vaultfake.New(t)
	seedSecrets(srv)
	root := newClient(t, srv, srv.RootToken())
	root.SetClientTimeout(5 * time.Second)
	callback := make(chan error, 1)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := root.KVv2("secret").Get(context.Background(), "drbot/slack")
		callback <- err
		http.Error(w, "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>", http.StatusForbidden)
	}))
	t.Cleanup(sts.Close)
	srv.EnableAWSAuth("aws-dr", vaultfake.AWSAuthConfig{STSEndpoint: sts.URL})
	srv.PutAWSRole("aws-dr", "drbot", map[string]any{"bound_iam_principal_arn": "arn:aws:iam::123456789012:role/drbot"})

	status, msg := loginErr(t, newClient(t, srv, ""), "auth/aws-dr/login", iamLogin{akid: drbotAKID, secret: drbotSecret}.data(t, "drbot"))
	select {
	case err := <-callback:
		if err != nil {
			t.Fatalf("reading from Vault while a login was calling out: %v", err)
		}
	default:
		t.Fatal("the login never called the STS endpoint")
	}
	if status != http.StatusBadRequest || !strings.Contains(msg, "received error code 403 from STS") {
		t.Errorf("login answered %d %q, want 400 with STS's 403", status, msg)
	}
}
