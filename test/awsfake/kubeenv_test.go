package awsfake_test

import (
	"encoding/base64"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
)

// TestRealAPIServerAuthenticatesEKSTokensThroughTheWebhook points a real
// kube-apiserver's token webhook at the stand-in: access entries decide who
// gets in (authentication), RBAC what they may do (authorization).
func TestRealAPIServerAuthenticatesEKSTokensThroughTheWebhook(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	srv.AddIdentity(otherKey, otherSec, otherArn)
	const viewerKey, viewerSec = "AKIDVIEWEREXAMPLE001", "viewer-secret-made-up"
	srv.AddIdentity(viewerKey, viewerSec, "arn:aws:sts::123456789012:assumed-role/viewer/v")

	kc := kubeenv.Start(t, kubeenv.WithName("dr"), kubeenv.WithCRDs(""), kubeenv.WithTokenWebhook(srv.TokenWebhookURL(drRegion, "dr")))
	srv.BackClusterWith(drRegion, "dr", kc)
	drCluster(t, srv)
	if _, err := eks.NewFromConfig(srv.Config(drRegion, adminKey, adminSec)).CreateAccessEntry(ctx(t), &eks.CreateAccessEntryInput{
		ClusterName: aws.String("dr"), PrincipalArn: aws.String("arn:aws:iam::123456789012:role/viewer"), KubernetesGroups: []string{"no-bindings"},
	}); err != nil {
		t.Fatal(err)
	}

	desc, err := eks.NewFromConfig(srv.Config(drRegion, drbotKey, drbotSec)).DescribeCluster(ctx(t), &eks.DescribeClusterInput{Name: aws.String("dr")})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := base64.StdEncoding.DecodeString(aws.ToString(desc.Cluster.CertificateAuthority.Data))
	if err != nil {
		t.Fatal(err)
	}
	client := func(key, secret string) kubernetes.Interface {
		cs, err := kubernetes.NewForConfig(&rest.Config{
			Host:            aws.ToString(desc.Cluster.Endpoint),
			TLSClientConfig: rest.TLSClientConfig{CAData: ca},
			BearerToken:     eksToken(t, srv.Config(drRegion, key, secret), "dr"),
		})
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}

	if _, err := client(drbotKey, drbotSec).CoreV1().Namespaces().List(ctx(t), metav1.ListOptions{}); err != nil {
		t.Fatalf("drbot (cluster admin access policy) listing namespaces: %v", err)
	}
	if _, err := client(viewerKey, viewerSec).CoreV1().Namespaces().List(ctx(t), metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("viewer (access entry, no RBAC) listing namespaces: %v, want Forbidden", err)
	}
	if _, err := client(otherKey, otherSec).CoreV1().Namespaces().List(ctx(t), metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Fatalf("role without an access entry listing namespaces: %v, want Unauthorized", err)
	}
	if srv.CallsTo(awsfake.ServiceWebhook, "TokenReview") < 3 {
		t.Fatalf("the API server did not consult the webhook: %+v", srv.Calls())
	}
}
