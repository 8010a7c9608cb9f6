package eks_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/eks"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
)

func accessStep(a *eks.Access, deps ...string) recovery.Step {
	return recovery.Step{ID: eks.StepClusterAccess, Phase: recovery.PhaseProvision, DependsOn: deps, Action: a.Connect}
}

// listNamespaces is a later step using the DR cluster the way the
// bootstrap steps will: through the ConfigSource.
func listNamespaces(src interface {
	DRConfig(context.Context, *recovery.StepContext) (*rest.Config, error)
}, id string, times int) recovery.Step {
	return recovery.Step{ID: id, Phase: recovery.PhaseBootstrap, DependsOn: []string{eks.StepClusterAccess},
		Action: func(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
			cfg, err := src.DRConfig(ctx, sc)
			if err != nil {
				return recovery.Result{}, err
			}
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				return recovery.Result{}, err
			}
			var names []string
			for i := 0; i < times; i++ {
				if times > 1 {
					// Presigned URLs carry their time in seconds: a new second, a new token.
					time.Sleep(1100 * time.Millisecond)
				}
				list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
				if err != nil {
					return recovery.Result{}, recovery.Permanent(fmt.Errorf("listing namespaces: %w", err))
				}
				names = names[:0]
				for _, n := range list.Items {
					names = append(names, n.Name)
				}
			}
			return recovery.Result{Outputs: map[string]string{"namespaces": strings.Join(names, ",")}}, nil
		}}
}

// TestClusterAccessGivesDrbotAndArgoCDAdminAndItsConfigReachesTheRealAPIServer
// runs cluster.create and cluster.access against the AWS stand-in, whose
// token webhook authenticates a real kube-apiserver: the REST config built
// from cluster.access's outputs, with a presigned-STS token and no
// kubeconfig, lists the cluster's namespaces.
func TestClusterAccessGivesDrbotAndArgoCDAdminAndItsConfigReachesTheRealAPIServer(t *testing.T) {
	srv := newServer(t, awsfake.Options{EKSCreateDelay: 100 * time.Millisecond})
	kc := kubeenv.Start(t, kubeenv.WithName(clusterName), kubeenv.WithCRDs(""), kubeenv.WithTokenWebhook(srv.TokenWebhookURL(region, clusterName)))
	srv.BackClusterWith(region, clusterName, kc)

	o := options(srv, eksConfig())
	p, a := eks.NewProvisioner(o), eks.NewAccess(o)
	// A source that makes a new token for every request, to prove the
	// refresh path against the real API server.
	fresh := o
	fresh.TokenRefresh = time.Nanosecond
	always := eks.NewAccess(fresh)

	res := steptest.Run(t, steptest.Options{}, createStep(p), accessStep(a, eks.StepClusterCreate),
		listNamespaces(a, "probe", 1))
	mustSucceed(t, res)
	out := res.Steps[eks.StepClusterAccess].Outputs
	ca, err := base64.StdEncoding.DecodeString(out["ca_data"])
	if err != nil || !bytes.Equal(ca, kc.CAData()) || out["endpoint"] != kc.Endpoint() || out["cluster_name"] != clusterName || out["region"] != region {
		t.Fatalf("cluster.access outputs = %v (CA decodes: %v)", out, err)
	}
	if ns := strings.Split(res.Steps["probe"].Outputs["namespaces"], ","); !slices.Contains(ns, "kube-system") {
		t.Fatalf("namespaces seen through DRConfig = %v", ns)
	}
	if !hasLine(res.Progress(eks.StepClusterAccess), "connected to dr (Kubernetes v") {
		t.Errorf("progress = %q", res.Progress(eks.StepClusterAccess))
	}

	c := eksClient(t, srv)
	entries, err := c.ListAccessEntries(ctx(t), &awseks.ListAccessEntriesInput{ClusterName: aws.String(clusterName)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(entries.AccessEntries, drbotRole) || !slices.Contains(entries.AccessEntries, argoRole) {
		t.Fatalf("access entries = %v", entries.AccessEntries)
	}
	for _, principal := range []string{drbotRole, argoRole} {
		pols, err := c.ListAssociatedAccessPolicies(ctx(t), &awseks.ListAssociatedAccessPoliciesInput{ClusterName: aws.String(clusterName), PrincipalArn: aws.String(principal)})
		if err != nil {
			t.Fatal(err)
		}
		if len(pols.AssociatedAccessPolicies) != 1 || aws.ToString(pols.AssociatedAccessPolicies[0].PolicyArn) != eks.ClusterAdminPolicy ||
			pols.AssociatedAccessPolicies[0].AccessScope.Type != "cluster" {
			t.Errorf("access policies of %s = %+v", principal, pols.AssociatedAccessPolicies)
		}
	}

	reviews := srv.CallsTo(awsfake.ServiceWebhook, "TokenReview")
	if reviews == 0 {
		t.Fatalf("the API server never asked the EKS authenticator; calls: %+v", srv.Calls())
	}
	second := steptest.Run(t, steptest.Options{}, createStep(p), accessStep(a, eks.StepClusterCreate),
		listNamespaces(always, "probe-fresh-tokens", 2))
	mustSucceed(t, second)
	// The creator's entry (drbot) came with the cluster; Argo CD's was made once.
	if n := srv.CallsTo("eks", "CreateAccessEntry"); n != 1 {
		t.Errorf("CreateAccessEntry called %d times over two runs, want 1", n)
	}
	if n := srv.CallsTo("eks", "AssociateAccessPolicy"); n != 1 {
		t.Errorf("AssociateAccessPolicy called %d times over two runs, want 1", n)
	}
	if n := srv.CallsTo(awsfake.ServiceWebhook, "TokenReview") - reviews; n < 2 {
		t.Errorf("%d token reviews for two requests a second apart with a fresh token each; the API server caches reviews per token, so each new token costs one", n)
	}
}

func TestClusterAccessEnablesAccessEntriesOnAConfigMapOnlyClusterOnce(t *testing.T) {
	srv := newServer(t, awsfake.Options{EKSUpdateDelay: 100 * time.Millisecond})
	if _, err := srv.AddCluster(region, awsfake.ExistingCluster{Name: clusterName, AuthenticationMode: "CONFIG_MAP"}); err != nil {
		t.Fatal(err)
	}
	o := options(srv, existingConfig())
	o.Config.ArgoCD.RoleARN = argoRole
	o.SkipVerify = true // no API server behind this cluster
	a := eks.NewAccess(o)
	created := steptest.Stub(eks.StepClusterCreate, recovery.PhaseProvision, map[string]string{"cluster_name": clusterName, "region": region})

	res := steptest.Run(t, steptest.Options{}, created, accessStep(a, eks.StepClusterCreate))
	mustSucceed(t, res)
	if res.Steps[eks.StepClusterAccess].Handle == "" {
		t.Error("the authentication mode update id was not journaled")
	}
	desc, err := eksClient(t, srv).DescribeCluster(ctx(t), &awseks.DescribeClusterInput{Name: aws.String(clusterName)})
	if err != nil {
		t.Fatal(err)
	}
	if m := desc.Cluster.AccessConfig.AuthenticationMode; m != "API_AND_CONFIG_MAP" {
		t.Errorf("authentication mode = %s, want API_AND_CONFIG_MAP (aws-auth keeps working)", m)
	}
	second := steptest.Run(t, steptest.Options{}, created, accessStep(a, eks.StepClusterCreate))
	mustSucceed(t, second)
	if n := srv.CallsTo("eks", "UpdateClusterConfig"); n != 1 {
		t.Errorf("UpdateClusterConfig called %d times over two runs, want 1", n)
	}
	if n := srv.CallsTo("eks", "CreateAccessEntry"); n != 2 {
		t.Errorf("CreateAccessEntry called %d times over two runs, want 2 (drbot and Argo CD, once each)", n)
	}
}

func TestDRConfigBeforeClusterAccessFailsPermanently(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	a := eks.NewAccess(options(srv, eksConfig()))
	early := listNamespaces(a, "early", 1)
	res := steptest.Run(t, steptest.Options{}, steptest.Stub(eks.StepClusterAccess, recovery.PhaseProvision, nil), early)
	rec := res.Steps["early"]
	if rec.Retryable || !strings.Contains(rec.Error, "cluster.access has not finished") {
		t.Fatalf("error %q (retryable %v)", rec.Error, rec.Retryable)
	}
}
