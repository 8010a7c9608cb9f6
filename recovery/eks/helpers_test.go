package eks_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/eks"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
)

const (
	region      = "eu-west-1"
	clusterName = "dr"
	drbotKey    = "AKIDDRBOTEXAMPLE0001"
	drbotSecret = "drbot-secret-made-up-for-tests"
	drbotARN    = "arn:aws:sts::123456789012:assumed-role/drbot/drbot-session"
	drbotRole   = "arn:aws:iam::123456789012:role/drbot"
	argoRole    = "arn:aws:iam::123456789012:role/argocd-manager"
	nodeRole    = "arn:aws:iam::123456789012:role/dr-nodes"
)

func newServer(t *testing.T, opts awsfake.Options) *awsfake.Server {
	t.Helper()
	srv := awsfake.New(t, opts)
	srv.AddIdentity(drbotKey, drbotSecret, drbotARN)
	return srv
}

// options aims the steps at srv with fast polling; the SDK retryer keeps
// its attempts but backs off briefly.
func options(srv *awsfake.Server, cfg *config.Config) eks.Options {
	return eks.Options{
		Config: cfg,
		AWS: func(_ context.Context, region string) (aws.Config, error) {
			c := srv.Config(region, drbotKey, drbotSecret)
			c.Retryer = func() aws.Retryer {
				return retry.NewStandard(func(o *retry.StandardOptions) {
					o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 5 * time.Millisecond, nil })
				})
			}
			return c, nil
		},
		PollInterval:  10 * time.Millisecond,
		ProgressEvery: 40 * time.Millisecond,
		WaitTimeout:   time.Minute,
	}
}

func targetWith(c config.Cluster) config.Target {
	return config.Target{
		Name:         "prod-eu",
		Primary:      config.Primary{Region: "us-east-1", Cluster: "prod"},
		DR:           config.DR{Region: region, ClusterName: clusterName},
		Cluster:      c,
		DrbotRoleARN: drbotRole,
	}
}

func eksConfig() *config.Config {
	return &config.Config{
		Targets: []config.Target{targetWith(config.Cluster{Provider: config.ProviderEKS, EKS: &config.EKSCluster{
			Version: "1.33", RoleARN: "arn:aws:iam::123456789012:role/dr-cluster",
			SubnetIDs: []string{"subnet-0a", "subnet-0b"}, SecurityGroupIDs: []string{"sg-0dr"},
			NodeGroup: config.NodeGroup{InstanceTypes: []string{"m6i.large"}, Min: 2, Max: 4, Desired: 3, NodeRoleARN: nodeRole},
		}})},
		ArgoCD: config.ArgoCD{RoleARN: argoRole},
	}
}

func createStep(p *eks.Provisioner) recovery.Step {
	return recovery.Step{ID: eks.StepClusterCreate, Phase: recovery.PhaseProvision, Action: p.Create}
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func eksClient(t *testing.T, srv *awsfake.Server) *awseks.Client {
	return awseks.NewFromConfig(srv.Config(region, drbotKey, drbotSecret))
}

func mustSucceed(t *testing.T, res steptest.Result) {
	t.Helper()
	if res.Run.Status != state.RunSucceeded {
		var errs []string
		for id, s := range res.Steps {
			if s.Error != "" {
				errs = append(errs, id+": "+s.Error)
			}
		}
		t.Fatalf("run %s: %s", res.Run.Status, strings.Join(errs, "; "))
	}
}

func clusters(t *testing.T, srv *awsfake.Server) []string {
	out, err := eksClient(t, srv).ListClusters(ctx(t), &awseks.ListClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	return out.Clusters
}

func hasLine(lines []string, prefix string) bool {
	return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) })
}
