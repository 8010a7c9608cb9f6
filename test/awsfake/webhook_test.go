package awsfake_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	authnv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/drbot/drbot/test/awsfake"
)

const (
	otherKey = "AKIDOTHEREXAMPLE0001"
	otherSec = "other-secret-made-up-for-tests"
	otherArn = "arn:aws:sts::123456789012:assumed-role/other/someone"
)

// drCluster creates cluster "dr" in API mode with drbot's role given the
// cluster admin access policy and a group of its own.
func drCluster(t *testing.T, srv *awsfake.Server) {
	t.Helper()
	c := eks.NewFromConfig(srv.Config(drRegion, adminKey, adminSec))
	createCluster(t, c, "dr", ekstypes.AuthenticationModeApi)
	if _, err := c.CreateAccessEntry(ctx(t), &eks.CreateAccessEntryInput{
		ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotRole), KubernetesGroups: []string{"drbot-ops"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.AssociateAccessPolicy(ctx(t), &eks.AssociateAccessPolicyInput{
		ClusterName: aws.String("dr"), PrincipalArn: aws.String(drbotRole),
		PolicyArn:   aws.String("arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"),
		AccessScope: &ekstypes.AccessScope{Type: ekstypes.AccessScopeTypeCluster},
	}); err != nil {
		t.Fatal(err)
	}
}

func review(t *testing.T, url, token string) authnv1.TokenReviewStatus {
	t.Helper()
	body, _ := json.Marshal(authnv1.TokenReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview"},
		Spec:     authnv1.TokenReviewSpec{Token: token},
	})
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("posting TokenReview: %v", err)
	}
	defer resp.Body.Close()
	var out authnv1.TokenReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("TokenReview response %d: %v", resp.StatusCode, err)
	}
	if out.Kind != "TokenReview" || out.APIVersion != "authentication.k8s.io/v1" {
		t.Fatalf("response type %s/%s", out.APIVersion, out.Kind)
	}
	return out.Status
}

func TestTokenWebhookAuthenticatesMappedRoleWithGroups(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	drCluster(t, srv)
	token := eksToken(t, srv.Config(drRegion, drbotKey, drbotSec), "dr")

	st := review(t, srv.TokenWebhookURL(drRegion, "dr"), token)
	if !st.Authenticated {
		t.Fatalf("drbot's token not authenticated: %s", st.Error)
	}
	if st.User.Username != "arn:aws:sts::123456789012:assumed-role/drbot/drbot-session" {
		t.Errorf("username = %q", st.User.Username)
	}
	if !slices.Contains(st.User.Groups, "drbot-ops") || !slices.Contains(st.User.Groups, "system:masters") {
		t.Errorf("groups = %v, want drbot-ops and system:masters", st.User.Groups)
	}
	if got := st.User.Extra["canonicalArn"]; len(got) != 1 || got[0] != drbotRole {
		t.Errorf("canonicalArn extra = %v", got)
	}
	if n := srv.CallsTo(awsfake.ServiceWebhook, "TokenReview"); n != 1 {
		t.Errorf("webhook calls = %d", n)
	}
}

func TestTokenWebhookRejectsUnmappedForeignAndExpiredTokens(t *testing.T) {
	clock := &offsetClock{}
	srv := newServer(t, awsfake.Options{Clock: clock.Now})
	srv.AddIdentity(otherKey, otherSec, otherArn)
	drCluster(t, srv)
	webhook := srv.TokenWebhookURL(drRegion, "dr")

	if st := review(t, webhook, eksToken(t, srv.Config(drRegion, otherKey, otherSec), "dr")); st.Authenticated || !strings.Contains(st.Error, "no access entry") {
		t.Errorf("role without an access entry: %+v", st)
	}
	if st := review(t, webhook, eksToken(t, srv.Config(drRegion, drbotKey, drbotSec), "prod")); st.Authenticated || !strings.Contains(st.Error, "SignatureDoesNotMatch") {
		t.Errorf("token minted for cluster prod accepted by dr: %+v", st)
	}
	if st := review(t, webhook, "k8s-aws-v1.bm90IGEgdXJs"); st.Authenticated {
		t.Errorf("garbage token accepted: %+v", st)
	}
	unknown := srv.Config(drRegion, "AKIDUNKNOWN000000000", "x")
	if st := review(t, webhook, eksToken(t, unknown, "dr")); st.Authenticated || !strings.Contains(st.Error, "InvalidClientTokenId") {
		t.Errorf("token of an unknown key: %+v", st)
	}

	fresh := eksToken(t, srv.Config(drRegion, drbotKey, drbotSec), "dr")
	if st := review(t, webhook, fresh); !st.Authenticated {
		t.Fatalf("fresh token refused: %s", st.Error)
	}
	clock.Advance(16 * time.Minute)
	if st := review(t, webhook, fresh); st.Authenticated || !strings.Contains(st.Error, "expired") {
		t.Errorf("16-minute-old token: %+v", st)
	}
	if st := review(t, srv.TokenWebhookURL(region, "dr"), eksToken(t, srv.Config(drRegion, drbotKey, drbotSec), "dr")); st.Authenticated {
		t.Errorf("token accepted by a same-named cluster in another region: %+v", st)
	}
}

func TestTokenFromAssumedRoleCredentialsAuthenticates(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	drCluster(t, srv)
	admin := srv.Config(drRegion, adminKey, adminSec)
	if _, err := iam.NewFromConfig(admin).CreateRole(ctx(t), &iam.CreateRoleInput{RoleName: aws.String("drbot"), AssumeRolePolicyDocument: aws.String(trustPolicy)}); err != nil {
		t.Fatal(err)
	}
	out, err := sts.NewFromConfig(admin).AssumeRole(ctx(t), &sts.AssumeRoleInput{RoleArn: aws.String(drbotRole), RoleSessionName: aws.String("run@42")})
	if err != nil {
		t.Fatal(err)
	}
	temp := admin.Copy()
	temp.Credentials = credentials.NewStaticCredentialsProvider(*out.Credentials.AccessKeyId, *out.Credentials.SecretAccessKey, *out.Credentials.SessionToken)
	st := review(t, srv.TokenWebhookURL(drRegion, "dr"), eksToken(t, temp, "dr"))
	if !st.Authenticated || st.User.Username != "arn:aws:sts::123456789012:assumed-role/drbot/run-42" {
		t.Fatalf("assumed-role token: %+v (EKS replaces @ in {{SessionName}})", st)
	}
}

func TestClusterCreatorIsAdminOnConfigMapCluster(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	createCluster(t, eks.NewFromConfig(srv.Config(drRegion, adminKey, adminSec)), "legacy", "")
	st := review(t, srv.TokenWebhookURL(drRegion, "legacy"), eksToken(t, srv.Config(drRegion, adminKey, adminSec), "legacy"))
	if !st.Authenticated || !slices.Contains(st.User.Groups, "system:masters") {
		t.Fatalf("creator on a CONFIG_MAP cluster: %+v", st)
	}
	if st := review(t, srv.TokenWebhookURL(drRegion, "legacy"), eksToken(t, srv.Config(drRegion, drbotKey, drbotSec), "legacy")); st.Authenticated {
		t.Fatalf("non-creator on a CONFIG_MAP cluster authenticated: %+v", st)
	}
}

// fakeAPIServer is a TLS server that authenticates bearer tokens through the
// webhook kubeconfig, as kube-apiserver does, and answers a namespace list
// naming the authenticated user.
func fakeAPIServer(t *testing.T, webhookKubeconfig string) *httptest.Server {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", webhookKubeconfig)
	if err != nil {
		t.Fatalf("loading webhook kubeconfig: %v", err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatalf("webhook HTTP client: %v", err)
	}
	return httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		body, _ := json.Marshal(authnv1.TokenReview{
			TypeMeta: metav1.TypeMeta{APIVersion: "authentication.k8s.io/v1", Kind: "TokenReview"},
			Spec:     authnv1.TokenReviewSpec{Token: token},
		})
		resp, err := hc.Post(cfg.Host, "application/json", bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		var rv authnv1.TokenReview
		err = json.NewDecoder(resp.Body).Decode(&rv)
		resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		if err != nil || !rv.Status.Authenticated {
			w.WriteHeader(http.StatusUnauthorized)
			_ = json.NewEncoder(w).Encode(metav1.Status{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
				Status:   metav1.StatusFailure, Reason: metav1.StatusReasonUnauthorized, Code: http.StatusUnauthorized, Message: "Unauthorized",
			})
			return
		}
		if r.URL.Path != "/api/v1/namespaces" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte(`{"kind":"NamespaceList","apiVersion":"v1","metadata":{},"items":[{"metadata":{"name":"default","annotations":{"user":` +
			jsonString(rv.Status.User.Username) + `,"groups":` + jsonString(strings.Join(rv.Status.User.Groups, ",")) + `}}}]}`))
	}))
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestClientGoReachesBackedClusterWithEKSToken is the whole chain drbot
// relies on: DescribeCluster gives the backing API server's endpoint and CA,
// a presigned-STS bearer token authenticates through the webhook, and
// client-go talks TLS to the API server with only those three things.
func TestClientGoReachesBackedClusterWithEKSToken(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	kubeconfig, err := srv.WebhookKubeconfig(t.TempDir(), drRegion, "dr")
	if err != nil {
		t.Fatal(err)
	}
	api := fakeAPIServer(t, kubeconfig)
	defer api.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})
	srv.BackCluster(drRegion, "dr", api.URL, caPEM)
	drCluster(t, srv)

	drbot := srv.Config(drRegion, drbotKey, drbotSec)
	desc, err := eks.NewFromConfig(drbot).DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := base64.StdEncoding.DecodeString(aws.ToString(desc.Cluster.CertificateAuthority.Data))
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kubernetes.NewForConfig(&rest.Config{
		Host:            aws.ToString(desc.Cluster.Endpoint),
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		BearerToken:     eksToken(t, drbot, "dr"),
	})
	if err != nil {
		t.Fatal(err)
	}
	nss, err := kc.CoreV1().Namespaces().List(ctx(t), metav1.ListOptions{})
	if err != nil {
		t.Fatalf("listing namespaces with the EKS token: %v", err)
	}
	ann := nss.Items[0].Annotations
	if ann["user"] != "arn:aws:sts::123456789012:assumed-role/drbot/drbot-session" || !strings.Contains(ann["groups"], "system:masters") {
		t.Fatalf("API server saw user %q groups %q", ann["user"], ann["groups"])
	}

	bad, err := kubernetes.NewForConfig(&rest.Config{
		Host:            aws.ToString(desc.Cluster.Endpoint),
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		BearerToken:     eksToken(t, drbot, "some-other-cluster"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.CoreV1().Namespaces().List(ctx(t), metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Fatalf("token for another cluster: %v, want Unauthorized", err)
	}
}
