package eks

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
)

// Access implements cluster.access and is the kube.ConfigSource of the DR
// cluster: REST configs built from cluster.access's outputs, with an EKS
// token made from drbot's own AWS credentials and renewed before it
// expires. No kubeconfig file and no aws CLI are involved.
type Access struct {
	o Options

	mu      sync.Mutex
	sources map[string]*tokenSource // by region/cluster
}

// NewAccess returns the cluster.access action's owner.
func NewAccess(o Options) *Access {
	o.defaults()
	return &Access{o: o, sources: map[string]*tokenSource{}}
}

// Connect is the cluster.access action: it makes sure the cluster accepts
// access entries, gives drbot's role (targets[].drbot_role_arn) and the
// Argo CD role (argocd.role_arn, when set) cluster-admin access entries,
// and checks the API server accepts drbot's token. Outputs: endpoint,
// ca_data (base64, as EKS gives it), cluster_name, region.
func (a *Access) Connect(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	t, err := target(a.o.Config, sc)
	if err != nil {
		return recovery.Result{}, err
	}
	region, name := drCluster(sc, t)
	api, err := a.o.client(ctx, region)
	if err != nil {
		return recovery.Result{}, err
	}
	cl, err := waitClusterActive(ctx, sc, &a.o, api, name)
	if isNotFound(err) {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("cluster %q not found in %s; cluster.create should have made it: check its outputs", name, region))
	}
	if err != nil {
		return recovery.Result{}, err
	}
	if err := a.enableAccessEntries(ctx, sc, api, cl); err != nil {
		return recovery.Result{}, err
	}
	principals := []string{t.DrbotRoleARN}
	if r := a.o.Config.ArgoCD.RoleARN; r != "" && r != t.DrbotRoleARN {
		principals = append(principals, r)
	}
	for _, p := range principals {
		if err := ensureAdminEntry(ctx, sc, api, name, p); err != nil {
			return recovery.Result{}, err
		}
	}
	out := map[string]string{
		"endpoint":     aws.ToString(cl.Endpoint),
		"cluster_name": name,
		"region":       region,
	}
	if cl.CertificateAuthority != nil {
		out["ca_data"] = aws.ToString(cl.CertificateAuthority.Data)
	}
	if out["endpoint"] == "" || out["ca_data"] == "" {
		return recovery.Result{}, recovery.Retryable(fmt.Errorf("cluster %q reports no endpoint or CA yet", name))
	}
	if !a.o.SkipVerify {
		if err := a.verify(ctx, sc, region, name, out["endpoint"], out["ca_data"], t.DrbotRoleARN); err != nil {
			return recovery.Result{}, err
		}
	}
	return recovery.Result{Outputs: out}, nil
}

// enableAccessEntries moves a CONFIG_MAP-only cluster (an older pilot
// light, a module that did not set it) to API_AND_CONFIG_MAP, which keeps
// aws-auth working and adds access entries. The update id is journaled.
func (a *Access) enableAccessEntries(ctx context.Context, sc *recovery.StepContext, api EKSAPI, cl *ekstypes.Cluster) error {
	name := aws.ToString(cl.Name)
	id := sc.Handle()
	if id == "" {
		if cl.AccessConfig == nil || cl.AccessConfig.AuthenticationMode != ekstypes.AuthenticationModeConfigMap {
			return nil
		}
		out, err := api.UpdateClusterConfig(ctx, &awseks.UpdateClusterConfigInput{
			Name:               aws.String(name),
			AccessConfig:       &ekstypes.UpdateAccessConfigRequest{AuthenticationMode: ekstypes.AuthenticationModeApiAndConfigMap},
			ClientRequestToken: aws.String(sc.IdempotencyToken("access-config/" + name)),
		})
		if err != nil {
			return fmt.Errorf("enabling access entries on cluster %q (authentication mode API_AND_CONFIG_MAP): %w", name, err)
		}
		id = aws.ToString(out.Update.Id)
		if err := sc.SaveHandle(id); err != nil {
			return err
		}
		sc.Progress("cluster %s used aws-auth only; enabling access entries (authentication mode API_AND_CONFIG_MAP)", name)
	}
	return a.o.wait(ctx, sc, "authentication mode update", func(ctx context.Context) (bool, string, time.Time, error) {
		out, err := api.DescribeUpdate(ctx, &awseks.DescribeUpdateInput{Name: aws.String(name), UpdateId: aws.String(id)})
		if err != nil {
			return false, "", time.Time{}, fmt.Errorf("describing update %s of cluster %q: %w", id, name, err)
		}
		switch out.Update.Status {
		case ekstypes.UpdateStatusSuccessful:
			return true, "", time.Time{}, nil
		case ekstypes.UpdateStatusFailed, ekstypes.UpdateStatusCancelled:
			return false, "", time.Time{}, recovery.Permanent(fmt.Errorf("authentication mode update %s of cluster %q %s; set it to API_AND_CONFIG_MAP by hand and press Retry",
				id, name, strings.ToLower(string(out.Update.Status))))
		}
		return false, string(out.Update.Status), aws.ToTime(out.Update.CreatedAt), nil
	})
}

// ensureAdminEntry gives principal a STANDARD access entry with the
// cluster-scoped AmazonEKSClusterAdminPolicy.
func ensureAdminEntry(ctx context.Context, sc *recovery.StepContext, api EKSAPI, cluster, principal string) error {
	_, err := api.DescribeAccessEntry(ctx, &awseks.DescribeAccessEntryInput{ClusterName: aws.String(cluster), PrincipalArn: aws.String(principal)})
	switch {
	case isNotFound(err):
		_, err := api.CreateAccessEntry(ctx, &awseks.CreateAccessEntryInput{
			ClusterName:  aws.String(cluster),
			PrincipalArn: aws.String(principal),
			Type:         aws.String("STANDARD"),
		})
		if err != nil && !isInUse(err) {
			err = fmt.Errorf("creating access entry for %s on %q: %w", principal, cluster, err)
			if recovery.ErrorCode(err) == "InvalidParameterException" {
				err = recovery.Permanent(fmt.Errorf("%w; the principal must be an IAM role ARN (arn:aws:iam::<account>:role/<name>), not an STS session", err))
			}
			return err
		}
		sc.Progress("access entry for %s created on %s", principal, cluster)
	case err != nil:
		return fmt.Errorf("describing access entry of %s on %q: %w", principal, cluster, err)
	}
	pages := awseks.NewListAssociatedAccessPoliciesPaginator(api, &awseks.ListAssociatedAccessPoliciesInput{
		ClusterName: aws.String(cluster), PrincipalArn: aws.String(principal),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing access policies of %s on %q: %w", principal, cluster, err)
		}
		for _, p := range page.AssociatedAccessPolicies {
			if aws.ToString(p.PolicyArn) == ClusterAdminPolicy && p.AccessScope != nil && p.AccessScope.Type == ekstypes.AccessScopeTypeCluster {
				return nil
			}
		}
	}
	if _, err := api.AssociateAccessPolicy(ctx, &awseks.AssociateAccessPolicyInput{
		ClusterName:  aws.String(cluster),
		PrincipalArn: aws.String(principal),
		PolicyArn:    aws.String(ClusterAdminPolicy),
		AccessScope:  &ekstypes.AccessScope{Type: ekstypes.AccessScopeTypeCluster},
	}); err != nil {
		return fmt.Errorf("associating AmazonEKSClusterAdminPolicy with %s on %q: %w", principal, cluster, err)
	}
	sc.Progress("cluster admin access for %s on %s", principal, cluster)
	return nil
}

// verify waits until the API server accepts drbot's token; access entries
// take a little while to reach the authenticator.
func (a *Access) verify(ctx context.Context, sc *recovery.StepContext, region, cluster, endpoint, caData, principal string) error {
	cfg, err := a.RESTConfig(region, cluster, endpoint, caData)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return recovery.Permanent(fmt.Errorf("building a client for %s: %w", endpoint, err))
	}
	vo := a.o
	vo.WaitTimeout = a.o.VerifyTimeout
	started := a.o.Now()
	err = vo.wait(ctx, sc, "API server "+endpoint, func(ctx context.Context) (bool, string, time.Time, error) {
		_, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{Limit: 1})
		switch {
		case err == nil:
			return true, "", time.Time{}, nil
		case apierrors.IsUnauthorized(err):
			return false, "refuses drbot's token (access entry not effective yet)", started, nil
		case apierrors.IsForbidden(err):
			return false, "forbids drbot to list namespaces (access policy not effective yet)", started, nil
		}
		return false, "unreachable (" + shortErr(err) + ")", started, nil
	})
	if err != nil {
		return err
	}
	if v, err := cs.Discovery().ServerVersion(); err == nil {
		sc.Progress("connected to %s (Kubernetes %s) as %s", cluster, v.GitVersion, principal)
	}
	return nil
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// DRConfig implements kube.ConfigSource: a REST config for the run's DR
// cluster from cluster.access's outputs.
func (a *Access) DRConfig(ctx context.Context, sc *recovery.StepContext) (*rest.Config, error) {
	endpoint, ok1 := sc.Output(StepClusterAccess, "endpoint")
	caData, ok2 := sc.Output(StepClusterAccess, "ca_data")
	cluster, ok3 := sc.Output(StepClusterAccess, "cluster_name")
	if !ok1 || !ok2 || !ok3 {
		return nil, recovery.Permanent(fmt.Errorf("cluster.access has not finished in run %s, so the DR cluster's endpoint is unknown; this step must depend on cluster.access", sc.Run().ID))
	}
	region, ok := sc.Output(StepClusterAccess, "region")
	if !ok {
		t, err := target(a.o.Config, sc)
		if err != nil {
			return nil, err
		}
		region, _ = drCluster(sc, t)
	}
	c, err := a.RESTConfig(region, cluster, endpoint, caData)
	if err != nil {
		return nil, err
	}
	c.Wrap(recovery.StepUserAgentFor(sc.StepID())) // Helm's and informers' requests carry no step context
	return c, nil
}

// RESTConfig builds a config for an EKS cluster's API server: endpoint, CA
// (base64 of the PEM, as DescribeCluster returns it) and a transport that
// puts a fresh EKS token on every request. Tokens are shared by every
// config of the same cluster.
func (a *Access) RESTConfig(region, cluster, endpoint, caData string) (*rest.Config, error) {
	ca, err := base64.StdEncoding.DecodeString(caData)
	if err != nil {
		return nil, recovery.Permanent(fmt.Errorf("decoding the CA of cluster %q: %w", cluster, err))
	}
	src := a.source(region, cluster)
	return &rest.Config{
		Host:            endpoint,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
		UserAgent:       "drbot",
		// client-go's default of 5 requests a second made the namespaces
		// step of 150 services take minutes; Argo CD's controller uses
		// the same 50/100 against the same API servers.
		QPS:   50,
		Burst: 100,
		// The step's id goes into the User-Agent, so the audit log names it.
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			return recovery.StepUserAgent(&bearer{src: src, next: rt})
		},
	}, nil
}

func (a *Access) source(region, cluster string) *tokenSource {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := region + "/" + cluster
	if s := a.sources[key]; s != nil {
		return s
	}
	s := &tokenSource{now: a.o.Now, refresh: a.o.TokenRefresh, make: func(ctx context.Context) (string, error) {
		if a.o.AWS == nil {
			return "", recovery.Permanent(fmt.Errorf("eks access was built without AWS credentials"))
		}
		cfg, err := a.o.AWS(ctx, region)
		if err != nil {
			return "", fmt.Errorf("loading AWS config for %s: %w", region, err)
		}
		return Token(ctx, cfg, cluster)
	}}
	a.sources[key] = s
	return s
}

var _ kube.ConfigSource = (*Access)(nil)
