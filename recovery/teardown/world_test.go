package teardown_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/smithy-go"
	vault "github.com/hashicorp/vault/api"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/argocd"
	"github.com/drbot/drbot/recovery/eks"
	"github.com/drbot/drbot/recovery/iam"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/recovery/teardown"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/vaultfake"
)

// The eks provisioner runs terraform destroy for teardown.
var _ teardown.Destroyer = (*eks.Provisioner)(nil)

var ingressGVR = schema.GroupVersionResource{Group: "networking.k8s.io", Version: "v1", Resource: "ingresses"}

const (
	region     = "eu-west-1"
	account    = "123456789012"
	awsKey     = "AKIDDRBOTEXAMPLE0001"
	awsSecret  = "drbot-secret-made-up-for-tests"
	drbotARN   = "arn:aws:sts::123456789012:assumed-role/drbot/drbot-session"
	nodeRole   = "arn:aws:iam::123456789012:role/dr-nodes"
	glToken    = "glpat-made-up-for-teardown"
	project    = "platform/apps"
	targetName = "prod-eu"
	mount      = "k8s-dr-prod-eu"
)

// world is one drill's surroundings: fresh AWS, Vault and GitLab
// stand-ins, and the shared Kubernetes cluster playing both the management
// cluster (Argo CD) and the DR cluster (NodePools, load balancers).
type world struct {
	t       *testing.T
	kc      *kubeenv.Cluster
	cluster string // DR cluster name, unique per subtest (the kube cluster is shared)
	cfg     *config.Config

	aws *awsfake.Server
	vf  *vaultfake.Server
	vc  *vault.Client
	gl  *gitlabfake.Server
	glc *gitlab.Client

	profiles   *profileStore
	kubeWrites atomic.Int64 // requests that change something in the kube cluster, made by teardown
	destroyer  teardown.Destroyer
	cut        *countingRollback // the cutover teardown restores; nil: not wired
	opts       func(*teardown.Options)
}

func newWorld(t *testing.T, kc *kubeenv.Cluster, cluster string, c config.Cluster, awsOpts ...awsfake.Options) *world {
	t.Helper()
	w := &world{t: t, kc: kc, cluster: cluster, profiles: &profileStore{profiles: map[string]*profile{}}}
	var ao awsfake.Options
	if len(awsOpts) > 0 {
		ao = awsOpts[0]
	}
	w.aws = awsfake.New(t, ao)
	w.aws.AddIdentity(awsKey, awsSecret, drbotARN)

	w.vf = vaultfake.New(t)
	vc, err := vault.NewClient(&vault.Config{Address: w.vf.URL()})
	if err != nil {
		t.Fatal(err)
	}
	vc.SetToken(w.vf.RootToken())
	w.vc = vc
	w.vf.EnableKubernetesAuth("kubernetes")
	w.vf.PutRole("kubernetes", "orders", map[string]any{"bound_service_account_names": []any{"orders"}, "bound_service_account_namespaces": []any{"orders"}})

	w.gl = gitlabfake.New(t)
	w.gl.AddUser(glToken, "drbot")
	w.gl.AddProject(project, "main")
	w.gl.CommitFiles(project, "main", map[string]string{
		"apps/orders/api.yaml": "kind: Application\nmetadata: {name: orders-api}\n",
		"dr/existing.yaml":     "kind: Application\nmetadata: {name: existing}\n# before the drill\n",
		"dr/README.md":         "DR Applications\n",
	}, "seed")
	glc, err := gitlab.NewClient(glToken, gitlab.WithBaseURL(w.gl.URL()+"/api/v4"), gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	w.glc = glc

	w.cfg = &config.Config{
		Targets: []config.Target{{
			Name: targetName, Primary: config.Primary{Region: "us-east-1", Cluster: "prod"},
			DR: config.DR{Region: region, ClusterName: cluster}, Cluster: c,
			DrbotRoleARN: "arn:aws:iam::123456789012:role/drbot",
		}},
		ArgoCD: config.ArgoCD{Namespace: "argocd", Project: "default", DestinationBy: "name"},
		GitLab: config.GitLab{Project: project, DefaultBranch: "main", TemplatesPath: "apps", DRPath: "dr", BranchPrefix: "drbot/"},
		Vault:  config.Vault{SourceMount: "kubernetes", TargetMount: "k8s-dr-{target}"},
	}
	return w
}

func eksProvider() config.Cluster {
	return config.Cluster{Provider: config.ProviderEKS, EKS: &config.EKSCluster{
		Version: "1.33", RoleARN: "arn:aws:iam::123456789012:role/dr-cluster", SubnetIDs: []string{"subnet-0a", "subnet-0b"},
		NodeGroup: config.NodeGroup{InstanceTypes: []string{"m6i.large"}, Min: 1, Max: 4, Desired: 3, NodeRoleARN: nodeRole},
	}}
}

func (w *world) awsConfig(_ context.Context, r string) (aws.Config, error) {
	c := w.aws.Config(r, awsKey, awsSecret)
	c.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 5 * time.Millisecond, nil })
		})
	}
	return c, nil
}

// counted is the kube cluster's admin config, counting the requests that
// change something.
func (w *world) counted() *rest.Config {
	rc := w.kc.AdminConfig()
	rc.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripper(func(r *http.Request) (*http.Response, error) {
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.kubeWrites.Add(1)
			}
			return rt.RoundTrip(r)
		})
	}
	return rc
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func (w *world) teardown() *teardown.Teardown {
	w.t.Helper()
	o := teardown.Options{
		Management:    w.counted(),
		DR:            kube.Static(w.counted()),
		GitLab:        w.glc,
		Vault:         w.vc,
		AWS:           w.awsConfig,
		Provisioner:   w.destroyer,
		IAM:           func(c aws.Config) teardown.IAMAPI { return &profileIAM{Client: awsiam.NewFromConfig(c), s: w.profiles} },
		PollInterval:  10 * time.Millisecond,
		ProgressEvery: 50 * time.Millisecond,
		WaitTimeout:   20 * time.Second,
	}
	if w.cut != nil {
		o.Cutover = w.cut
	}
	if w.opts != nil {
		w.opts(&o)
	}
	td, err := teardown.New(w.cfg, o)
	if err != nil {
		w.t.Fatal(err)
	}
	return td
}

func (w *world) ctx() context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	w.t.Cleanup(cancel)
	return c
}

// drillMR opens the drill's merge request: two new Applications under dr/
// and a change to one that was there before; merged when asked.
func (w *world) drillMR(merge bool) (iid int64, branch string) {
	w.t.Helper()
	branch = "drbot/drill-" + w.cluster
	w.gl.CommitFiles(project, branch, map[string]string{
		"dr/orders-api.yaml":   "kind: Application\nmetadata: {name: orders-api}\nspec: {destination: {name: " + w.cluster + "}}\n",
		"dr/payments-web.yaml": "kind: Application\nmetadata: {name: payments-web}\nspec: {destination: {name: " + w.cluster + "}}\n",
		"dr/existing.yaml":     "kind: Application\nmetadata: {name: existing}\nspec: {destination: {name: " + w.cluster + "}}\n",
	}, "DR drill: Applications for "+w.cluster)
	mr, _, err := w.glc.MergeRequests.CreateMergeRequest(project, &gitlab.CreateMergeRequestOptions{
		Title: gitlab.Ptr("DR " + targetName + ": drill"), SourceBranch: gitlab.Ptr(branch), TargetBranch: gitlab.Ptr("main"),
	})
	if err != nil {
		w.t.Fatal(err)
	}
	if merge {
		if _, _, err := w.glc.MergeRequests.AcceptMergeRequest(project, mr.IID, &gitlab.AcceptMergeRequestOptions{}); err != nil {
			w.t.Fatal(err)
		}
	}
	return mr.IID, branch
}

// argoApps writes what Argo CD would hold for the drill: Applications
// bound for the DR cluster by name and by server, and one bound elsewhere.
func (w *world) argoApps() {
	w.t.Helper()
	ctx := w.ctx()
	apps := w.kc.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd")
	for name, dest := range map[string]map[string]any{
		w.cluster + "-orders-api":   {"name": w.cluster, "namespace": "orders"},
		w.cluster + "-payments-web": {"server": w.kc.Endpoint(), "namespace": "payments"},
		w.cluster + "-prod-only":    {"name": "prod", "namespace": "orders"},
	} {
		app := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
			"metadata": map[string]any{"name": name, "namespace": "argocd"},
			"spec":     map[string]any{"project": "default", "destination": dest, "source": map[string]any{"repoURL": "https://gitlab.example/platform/apps.git", "path": "dr"}},
		}}
		if _, err := apps.Create(ctx, app, metav1.CreateOptions{}); err != nil {
			w.t.Fatal(err)
		}
	}
}

// drillObjects writes what the drill left in the DR cluster: a NodePool and
// EC2NodeClass, a LoadBalancer Service and an Ingress, and a ClusterIP
// Service that is none of the drain's business.
func (w *world) drillObjects() {
	w.t.Helper()
	ctx := w.ctx()
	dyn := w.kc.Dynamic()
	np := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "karpenter.sh/v1", "kind": "NodePool",
		"metadata": map[string]any{"name": w.cluster + "-default"}, "spec": map[string]any{"template": map[string]any{"spec": map[string]any{}}}}}
	if _, err := dyn.Resource(argocd.NodePoolGVR).Create(ctx, np, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	nc := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "karpenter.k8s.aws/v1", "kind": "EC2NodeClass",
		"metadata": map[string]any{"name": w.cluster + "-default"}, "spec": map[string]any{"role": "KarpenterNodeRole-" + w.cluster}}}
	if _, err := dyn.Resource(argocd.EC2NodeClassGVR).Create(ctx, nc, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	cs := w.kc.Clientset()
	for _, ns := range []string{"istio-ingress", "orders"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			w.t.Fatal(err)
		}
	}
	port := []corev1.ServicePort{{Name: "http", Port: 80}}
	for _, s := range []*corev1.Service{
		{ObjectMeta: metav1.ObjectMeta{Name: w.cluster + "-gateway", Namespace: "istio-ingress"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: port}},
		{ObjectMeta: metav1.ObjectMeta{Name: w.cluster + "-internal", Namespace: "orders"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Ports: port}},
	} {
		if _, err := cs.CoreV1().Services(s.Namespace).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			w.t.Fatal(err)
		}
	}
	ing := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
		"metadata": map[string]any{"name": w.cluster + "-web", "namespace": "orders"},
		"spec":     map[string]any{"defaultBackend": map[string]any{"service": map[string]any{"name": w.cluster + "-internal", "port": map[string]any{"number": 80}}}}}}
	if _, err := dyn.Resource(ingressGVR).Namespace("orders").Create(ctx, ing, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// steps is the drill's runbook up to teardown: the real cluster.create
// (eks provider) or a stub, a stub cluster.access, the real iam.roles and
// argocd.register, stubs for vault.auth, gitops.mr and gitops.merge.
func (w *world) steps(td *teardown.Teardown, created map[string]string, mrOut map[string]string) []recovery.Step {
	w.t.Helper()
	var create recovery.Step
	if created == nil {
		p := eks.NewProvisioner(eks.Options{Config: w.cfg, AWS: w.awsConfig, PollInterval: 10 * time.Millisecond, ProgressEvery: time.Second, WaitTimeout: time.Minute})
		create = recovery.Step{ID: "cluster.create", Phase: recovery.PhaseProvision, Action: p.Create}
	} else {
		create = steptest.Stub("cluster.create", recovery.PhaseProvision, created)
	}
	argo, err := argocd.New(w.cfg, argocd.Options{Management: w.kc.AdminConfig()})
	if err != nil {
		w.t.Fatal(err)
	}
	roles := iam.New(iam.Options{Config: w.cfg, AWS: w.awsConfig})
	access := steptest.Stub("cluster.access", recovery.PhaseProvision, map[string]string{
		"endpoint": w.kc.Endpoint(), "ca_data": base64.StdEncoding.EncodeToString(w.kc.CAData()), "cluster_name": w.cluster,
	})
	access.DependsOn = []string{"cluster.create"}
	return []recovery.Step{
		create,
		access,
		{ID: "iam.roles", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.create"}, Action: roles.Ensure},
		{ID: "argocd.register", Phase: recovery.PhaseBootstrap, DependsOn: []string{"cluster.access"}, Action: argo.Register},
		steptest.Stub("vault.auth", recovery.PhaseBootstrap, map[string]string{"mount": mount}),
		steptest.Stub("gitops.mr", recovery.PhaseDeploy, mrOut),
		{ID: teardown.StepID, Phase: recovery.PhaseClose, DependsOn: []string{"iam.roles", "argocd.register", "vault.auth", "gitops.mr"}, Action: td.Action},
	}
}

// teardownOnly runs teardown alone with the outputs a finished drill left
// (a second drill run over the same leftovers, or none).
func (w *world) teardownOnly(td *teardown.Teardown, prev steptest.Result) steptest.Result {
	w.t.Helper()
	var steps []recovery.Step
	var deps []string
	for _, id := range []string{"cluster.create", "cluster.access", "iam.roles", "argocd.register", "vault.auth", "gitops.mr"} {
		steps = append(steps, steptest.Stub(id, recovery.PhaseBootstrap, prev.Steps[id].Outputs))
		deps = append(deps, id)
	}
	steps = append(steps, recovery.Step{ID: teardown.StepID, Phase: recovery.PhaseClose, DependsOn: deps, Action: td.Action})
	return steptest.Run(w.t, steptest.Options{Target: targetName, Mode: state.ModeDrill}, steps...)
}

func (w *world) run(steps []recovery.Step) steptest.Result {
	w.t.Helper()
	return steptest.Run(w.t, steptest.Options{Target: targetName, Mode: state.ModeDrill}, steps...)
}

// mutatingAWSCalls counts calls since the mark that change something.
func (w *world) mutatingAWSCalls(from int) []string {
	var out []string
	for _, c := range w.aws.Calls()[from:] {
		if isMutating(c.Operation) {
			out = append(out, c.Service+":"+c.Operation)
		}
	}
	return out
}

func isMutating(op string) bool {
	for _, p := range []string{"Delete", "Detach", "Remove", "Disassociate", "Update", "Create", "Put", "Attach"} {
		if strings.HasPrefix(op, p) {
			return true
		}
	}
	return false
}

func (w *world) mutatingGitLabCalls(from int) []string {
	var out []string
	for _, c := range w.gl.Calls()[from:] {
		if c.Method != http.MethodGet && c.Method != http.MethodHead {
			out = append(out, c.Method+" "+c.Path)
		}
	}
	return out
}

func (w *world) mutatingVaultCalls(from int) []string {
	var out []string
	for _, c := range w.vf.Calls()[from:] {
		if c.Op != "read" && c.Op != "list" {
			out = append(out, c.Op+" "+c.Path)
		}
	}
	return out
}

func (w *world) roleExists(name string) bool {
	w.t.Helper()
	cfg, _ := w.awsConfig(context.Background(), region)
	_, err := awsiam.NewFromConfig(cfg).GetRole(w.ctx(), &awsiam.GetRoleInput{RoleName: aws.String(name)})
	return exists(w.t, err, "NoSuchEntity")
}

func (w *world) policyExists(arn string) bool {
	w.t.Helper()
	cfg, _ := w.awsConfig(context.Background(), region)
	_, err := awsiam.NewFromConfig(cfg).GetPolicy(w.ctx(), &awsiam.GetPolicyInput{PolicyArn: aws.String(arn)})
	return exists(w.t, err, "NoSuchEntity")
}

func (w *world) clusters() []string {
	w.t.Helper()
	cfg, _ := w.awsConfig(context.Background(), region)
	out, err := awseks.NewFromConfig(cfg).ListClusters(w.ctx(), &awseks.ListClustersInput{})
	if err != nil {
		w.t.Fatal(err)
	}
	return out.Clusters
}

func exists(t *testing.T, err error, notFound string) bool {
	t.Helper()
	var ae smithy.APIError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ae) && ae.ErrorCode() == notFound:
		return false
	}
	t.Fatal(err)
	return false
}

func (w *world) mountExists(path string) bool {
	for _, m := range w.vf.Mounts() {
		if m.Auth && m.Path == path+"/" {
			return true
		}
	}
	return false
}

func (w *world) appNames() []string {
	w.t.Helper()
	l, err := w.kc.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd").List(w.ctx(), metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	var out []string
	for _, a := range l.Items {
		if strings.HasPrefix(a.GetName(), w.cluster+"-") {
			out = append(out, a.GetName())
		}
	}
	slices.Sort(out)
	return out
}

func (w *world) secretExists(name string) bool {
	w.t.Helper()
	_, err := w.kc.Clientset().CoreV1().Secrets("argocd").Get(w.ctx(), name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return true
}

// profileStore stands in for IAM instance profiles, which the AWS stand-in
// does not model: a hand-written layer over the real IAM client that
// keeps them in memory and, like IAM, refuses to delete a role still in
// one.
type profileStore struct {
	mu       sync.Mutex
	profiles map[string]*profile
	calls    []string
}

type profile struct {
	roles []string
	tags  map[string]string
}

func (s *profileStore) add(name string, tags map[string]string, roles ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.profiles[name] = &profile{roles: roles, tags: tags}
}

func (s *profileStore) names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for n, p := range s.profiles {
		out = append(out, fmt.Sprintf("%s%v", n, p.roles))
	}
	slices.Sort(out)
	return out
}

func (s *profileStore) record(op string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, op)
}

func (s *profileStore) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

type profileIAM struct {
	*awsiam.Client
	s *profileStore
}

func apiError(code, msg string) error { return &smithy.GenericAPIError{Code: code, Message: msg} }

func (p *profileIAM) ListInstanceProfilesForRole(_ context.Context, in *awsiam.ListInstanceProfilesForRoleInput, _ ...func(*awsiam.Options)) (*awsiam.ListInstanceProfilesForRoleOutput, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	out := &awsiam.ListInstanceProfilesForRoleOutput{}
	for name, pr := range p.s.profiles {
		if slices.Contains(pr.roles, aws.ToString(in.RoleName)) {
			var roles []iamtypes.Role
			for _, r := range pr.roles {
				roles = append(roles, iamtypes.Role{RoleName: aws.String(r)})
			}
			out.InstanceProfiles = append(out.InstanceProfiles, iamtypes.InstanceProfile{InstanceProfileName: aws.String(name), Roles: roles})
		}
	}
	return out, nil
}

func (p *profileIAM) ListInstanceProfileTags(_ context.Context, in *awsiam.ListInstanceProfileTagsInput, _ ...func(*awsiam.Options)) (*awsiam.ListInstanceProfileTagsOutput, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	pr, ok := p.s.profiles[aws.ToString(in.InstanceProfileName)]
	if !ok {
		return nil, apiError("NoSuchEntity", "Instance Profile "+aws.ToString(in.InstanceProfileName)+" cannot be found.")
	}
	out := &awsiam.ListInstanceProfileTagsOutput{}
	for k, v := range pr.tags {
		out.Tags = append(out.Tags, iamtypes.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out, nil
}

func (p *profileIAM) RemoveRoleFromInstanceProfile(_ context.Context, in *awsiam.RemoveRoleFromInstanceProfileInput, _ ...func(*awsiam.Options)) (*awsiam.RemoveRoleFromInstanceProfileOutput, error) {
	p.s.record("RemoveRoleFromInstanceProfile")
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	pr, ok := p.s.profiles[aws.ToString(in.InstanceProfileName)]
	if !ok || !slices.Contains(pr.roles, aws.ToString(in.RoleName)) {
		return nil, apiError("NoSuchEntity", "not in the instance profile")
	}
	pr.roles = slices.DeleteFunc(pr.roles, func(r string) bool { return r == aws.ToString(in.RoleName) })
	return &awsiam.RemoveRoleFromInstanceProfileOutput{}, nil
}

func (p *profileIAM) DeleteInstanceProfile(_ context.Context, in *awsiam.DeleteInstanceProfileInput, _ ...func(*awsiam.Options)) (*awsiam.DeleteInstanceProfileOutput, error) {
	p.s.record("DeleteInstanceProfile")
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	name := aws.ToString(in.InstanceProfileName)
	pr, ok := p.s.profiles[name]
	switch {
	case !ok:
		return nil, apiError("NoSuchEntity", "Instance Profile "+name+" cannot be found.")
	case len(pr.roles) > 0:
		return nil, apiError("DeleteConflict", "Cannot delete entity, must remove roles from instance profile first.")
	}
	delete(p.s.profiles, name)
	return &awsiam.DeleteInstanceProfileOutput{}, nil
}

func (p *profileIAM) DeleteRole(ctx context.Context, in *awsiam.DeleteRoleInput, optFns ...func(*awsiam.Options)) (*awsiam.DeleteRoleOutput, error) {
	p.s.mu.Lock()
	for name, pr := range p.s.profiles {
		if slices.Contains(pr.roles, aws.ToString(in.RoleName)) {
			p.s.mu.Unlock()
			return nil, apiError("DeleteConflict", "Cannot delete entity, must remove roles from instance profile "+name+" first.")
		}
	}
	p.s.mu.Unlock()
	return p.Client.DeleteRole(ctx, in, optFns...)
}
