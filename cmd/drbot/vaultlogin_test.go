package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/vaultfake"
)

// vaultReadPolicy lets a token read the New Relic key and nothing else.
const vaultReadPolicy = `path "secret/data/observability/*" { capabilities = ["read"] }`

func newVaultForLogin(t *testing.T) *vaultfake.Server {
	t.Helper()
	vf := vaultfake.New(t)
	vf.PutPolicy("drbot", vaultReadPolicy)
	vf.PutKV("secret", "observability/newrelic", map[string]any{"license_key": "NRAK-made-up"})
	return vf
}

// readKey reads the New Relic key with drbot's Vault client.
func readKey(ctx context.Context, v *vaultClients) error {
	c, err := v.get(ctx)
	if err != nil {
		return err
	}
	_, err = c.KVv2("secret").Get(ctx, "observability/newrelic")
	return err
}

// drbot in a Kubernetes pod: its service-account token, checked by Vault
// with a real TokenReview against the cluster, gets the role's policy; the
// login is repeated before the token expires.
func TestVaultKubernetesLoginWithTheServiceAccountTokenIsRenewedBeforeItExpires(t *testing.T) {
	kc := kubeenv.Start(t, kubeenv.WithName("management"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := kc.Clientset()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "drbot"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, sa := range []string{"drbot", "intruder"} {
		if _, err := cs.CoreV1().ServiceAccounts("drbot").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Vault reviews the login token with the token itself, as it does
	// without a token_reviewer_jwt: the account may create TokenReviews.
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "drbot-auth-delegator"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "drbot", Namespace: "drbot"}, {Kind: "ServiceAccount", Name: "intruder", Namespace: "drbot"}}}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tokenFile := func(sa string) string {
		tr, err := cs.CoreV1().ServiceAccounts("drbot").CreateToken(ctx, sa, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(t.TempDir(), sa+"-token")
		if err := os.WriteFile(p, []byte(tr.Status.Token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	vf := newVaultForLogin(t)
	vf.EnableKubernetesAuth("kubernetes")
	vf.SetAuthConfig("kubernetes", map[string]any{"kubernetes_host": kc.Endpoint(), "kubernetes_ca_cert": string(kc.CAData())})
	vf.PutRole("kubernetes", "drbot", map[string]any{"bound_service_account_names": []any{"drbot"}, "bound_service_account_namespaces": []any{"drbot"},
		"token_policies": []any{"drbot"}, "token_ttl": "2s"})
	login := func(sa string) *vaultClients {
		v := &vaultClients{cfg: &config.Config{Vault: config.Vault{Address: vf.URL(),
			Auth: &config.VaultAuth{Method: "kubernetes", Role: "drbot", Mount: "kubernetes", TokenPath: tokenFile(sa)}}},
			log: slog.New(slog.NewTextHandler(io.Discard, nil)), minRefresh: 100 * time.Millisecond}
		t.Cleanup(v.close)
		return v
	}

	v := login("drbot")
	start := time.Now()
	if err := readKey(ctx, v); err != nil {
		t.Fatalf("reading the key after the kubernetes login: %v", err)
	}
	// The token lives 2 s: reads 3 s later still work because drbot logged in again.
	for time.Since(start) < 3*time.Second {
		if err := readKey(ctx, v); err != nil {
			t.Fatalf("reading the key %s after the login: %v", time.Since(start).Round(time.Millisecond), err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	logins := vf.Logins()
	if len(logins) < 3 {
		t.Fatalf("%d logins in 3 s with a 2 s token, want it renewed at half its TTL: %+v", len(logins), logins)
	}
	for _, l := range logins {
		if l.Mount != "kubernetes" || l.Role != "drbot" || l.Principal != "drbot/drbot" {
			t.Errorf("login %+v, want drbot/drbot with role drbot at auth/kubernetes", l)
		}
	}

	// Another service account of the namespace is not bound to the role.
	err := readKey(ctx, login("intruder"))
	if err == nil || !strings.Contains(err.Error(), `vault kubernetes login at auth/kubernetes with role "drbot" (vault.auth)`) {
		t.Errorf("login as drbot/intruder: %v, want a refusal naming vault.auth", err)
	}
}

// drbot outside Kubernetes: an STS GetCallerIdentity request signed with
// its AWS credentials, which Vault replays to STS (here the AWS stand-in,
// which checks the signature) to learn drbot's IAM role.
func TestVaultAWSLoginSignsGetCallerIdentityWithDrbotsCredentials(t *testing.T) {
	const roleARN = "arn:aws:iam::123456789012:role/drbot"
	aw := awsfake.New(t, awsfake.Options{})
	aw.AddIdentity("AKIAVAULTLOGIN000001", "made-up-secret-for-the-vault-login", roleARN)
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAVAULTLOGIN000001")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "made-up-secret-for-the-vault-login")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")

	vf := newVaultForLogin(t)
	vf.EnableAWSAuth("aws", vaultfake.AWSAuthConfig{STSEndpoint: aw.URL(), IAMServerIDHeaderValue: "vault.example.com"})
	vf.PutAWSRole("aws", "drbot", map[string]any{"auth_type": "iam", "bound_iam_principal_arn": []any{roleARN}, "token_policies": []any{"drbot"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login := func(serverID string) *vaultClients {
		v := &vaultClients{cfg: &config.Config{Vault: config.Vault{Address: vf.URL(),
			Auth: &config.VaultAuth{Method: "aws", Role: "drbot", Mount: "aws", IAMServerID: serverID, STSRegion: "us-east-1"}}},
			log: slog.New(slog.NewTextHandler(io.Discard, nil))}
		t.Cleanup(v.close)
		return v
	}

	if err := readKey(ctx, login("vault.example.com")); err != nil {
		t.Fatalf("reading the key after the aws login: %v", err)
	}
	if l := vf.Logins(); len(l) != 1 || l[0].Mount != "aws" || l[0].Principal != roleARN {
		t.Errorf("logins = %+v, want one at auth/aws as %s", l, roleARN)
	}
	// Without the server id the mount requires, the login is refused and
	// the error says where to look.
	err := readKey(ctx, login(""))
	if err == nil || !strings.Contains(err.Error(), `vault aws login at auth/aws with role "drbot" (vault.auth)`) {
		t.Errorf("login without iam_server_id: %v, want a refusal naming vault.auth", err)
	}
}
