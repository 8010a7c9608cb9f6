package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/argocd"
	"github.com/drbot/drbot/recovery/iam"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/argofake"
	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
	"github.com/drbot/drbot/test/lbcfake"
	"github.com/drbot/drbot/test/vaultfake"
)

// Phases 1–2 end to end: the real integrations (wireActions) run by the
// real engine in a child process against the stand-ins — AWS (EKS, IAM,
// STS and the EKS token webhook), a real DR API server, Argo CD in a real
// management cluster, Vault, and the load balancer controller. The parent
// SIGKILLs the child while the control plane is CREATING and twice while a
// Helm release is being installed, starts it again each time, and then
// checks that nothing was made twice and that the New Relic licence key
// went nowhere but the DR cluster's Secrets.

const (
	p12Region   = "eu-central-1"
	p12Cluster  = "prod-eu-dr" // targets[prod-eu].dr.cluster_name in the example
	p12Target   = "prod-eu"
	p12Account  = "111122223333" // the example's drbot_role_arn account
	p12DrbotKey = "AKIDDRBOTPHASE120001"
	p12DrbotSec = "drbot-secret-made-up-for-phase12"
	p12AdminKey = "AKIDADMINPHASE120001"
	p12AdminSec = "admin-secret-made-up-for-phase12"
	p12LBCKey   = "AKIDLBCFAKEPHASE1201"
	p12LBCSec   = "lbc-secret-made-up-for-phase12"
	p12Source   = "kubernetes" // vault.source_mount in the example
	p12Mount    = "k8s-dr-prod-eu"
	p12Roles    = 150
	p12ChildEnv = "DRBOT_PHASE12_CHILD"
	p12TokenEnv = "DRBOT_PHASE12_VAULT_TOKEN"
)

// p12Releases are the Helm releases phases 1–2 install, as namespace/name.
var p12Releases = []string{
	"kube-system/aws-load-balancer-controller",
	"istio-system/istio-base",
	"istio-system/istiod",
	"istio-ingress/istio-gateway",
	"vault/vault",
}

// p12ChildConfig is what the parent tells a drbot child process.
type p12ChildConfig struct {
	StatePath      string
	LogPath        string
	ChartsDir      string
	VaultAddr      string
	MgmtKubeconfig string
}

// TestPhase12Child is not a test on its own: the phases 1–2 crash test
// runs the test binary as drbot with DRBOT_PHASE12_CHILD set. It starts
// the run (or resumes it after a kill) and exits once the run succeeded.
func TestPhase12Child(t *testing.T) {
	raw := os.Getenv(p12ChildEnv)
	if raw == "" {
		t.Skip("child process of TestPhases12SurviveSIGKILLAndCreateNothingTwice only")
	}
	var cc p12ChildConfig
	if err := json.Unmarshal([]byte(raw), &cc); err != nil {
		t.Fatal(err)
	}
	logf, err := os.OpenFile(cc.LogPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	log := slog.New(slog.NewJSONHandler(logf, &slog.HandlerOptions{Level: slog.LevelDebug}))

	cfg := p12Config(t, cc)
	std, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	wired, _, err := wireActions(cfg, std, log, func() *state.Store { return nil })
	if err != nil {
		t.Fatal(err)
	}
	book := phases12(t, wired)

	store, err := state.Open(cc.StatePath, state.Options{LockTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := cfg.Runbook.Retry
	eng := recovery.New(ctx, store, book, recovery.Options{
		Concurrency: cfg.Runbook.Concurrency,
		Retry:       recovery.RetryPolicy{MaxAttempts: r.MaxAttempts, InitialBackoff: r.InitialBackoff.Std(), MaxBackoff: r.MaxBackoff.Std()},
		Logger:      log,
	})
	resumed, err := eng.Resume()
	if err != nil {
		t.Fatal(err)
	}
	var runs []state.Run
	if err := store.View(func(tx *state.Tx) (err error) { runs, err = tx.Runs(); return }); err != nil {
		t.Fatal(err)
	}
	var runID string
	switch {
	case len(resumed) == 0 && len(runs) > 0:
		t.Fatalf("the state holds %d finished run(s) and nothing to resume; a second run would hide duplicates", len(runs))
	case len(resumed) == 0:
		run, err := eng.Start(recovery.StartRequest{Target: p12Target, Initiator: userOncall, Reason: "phases 1–2 crash test"})
		if err != nil {
			t.Fatal(err)
		}
		runID = run.ID
	case len(resumed) == 1:
		runID = resumed[0].ID
	default:
		t.Fatalf("resumed %d runs, want 1", len(resumed))
	}

	// The run ends (succeeded) or blocks on a failed step; a blocked run
	// waits for a person, so the child reports it and stops.
	deadline := time.Now().Add(12 * time.Minute)
	for ; time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var run state.Run
		var steps map[string]state.StepRecord
		if err := store.View(func(tx *state.Tx) error {
			var err error
			if run, _, err = tx.Run(runID); err != nil {
				return err
			}
			steps, err = tx.Steps(runID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		switch run.Status {
		case state.RunSucceeded:
			cancel()
			eng.Wait()
			return
		case state.RunBlocked, state.RunFailed, state.RunAborted:
			cancel()
			eng.Wait()
			for id, s := range steps {
				if s.Status == state.StepFailed {
					t.Errorf("step %s failed: %s", id, s.Error)
				}
			}
			t.Fatalf("run %s is %s", runID, run.Status)
		}
	}
	t.Fatalf("run %s did not end in time", runID)
}

// p12Config is the example config aimed at the stand-ins: prod-eu built
// through the EKS API (the drill twin's eks block: version, role, subnets,
// node group), Vault by token, Argo CD's cluster from a kubeconfig file and
// the Helm add-ons from the test charts.
func p12Config(t *testing.T, cc p12ChildConfig) *config.Config {
	t.Helper()
	cfg, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	target, ok := cfg.Target(p12Target)
	drill, ok2 := cfg.Target("drill-eu")
	if !ok || !ok2 || drill.Cluster.EKS == nil {
		t.Fatal("the example config lacks prod-eu or drill-eu's eks block")
	}
	eksCluster := *drill.Cluster.EKS
	target.Cluster = config.Cluster{Provider: config.ProviderEKS, EKS: &eksCluster}
	cfg.State.Path = cc.StatePath
	cfg.State.Backup = nil
	cfg.Vault.Address = cc.VaultAddr
	cfg.Vault.Auth = nil
	cfg.Vault.Token = config.EnvSecret(p12TokenEnv)
	cfg.ArgoCD.ManagementKubeconfig = cc.MgmtKubeconfig
	for _, name := range []string{config.AddonLoadBalancerController, config.AddonIstioBase, config.AddonIstiod, config.AddonIstioGateway, config.AddonVaultInjector} {
		a, ok := cfg.Addons[name]
		if !ok {
			t.Fatalf("the example config lacks addons.%s", name)
		}
		a.Repo = "file://" + cc.ChartsDir
		cfg.Addons[name] = a
	}
	return cfg
}

// phases12 keeps the provision and bootstrap steps of the wired runbook.
func phases12(t *testing.T, book *recovery.Runbook) *recovery.Runbook {
	t.Helper()
	var steps []recovery.Step
	keep := map[string]bool{}
	for _, s := range book.Steps() {
		if s.Phase == recovery.PhaseProvision || s.Phase == recovery.PhaseBootstrap {
			keep[s.ID] = true
			steps = append(steps, s)
		}
	}
	for i := range steps {
		var deps []string
		for _, d := range steps[i].DependsOn {
			if keep[d] {
				deps = append(deps, d)
			}
		}
		steps[i].DependsOn = deps
	}
	out, err := recovery.NewRunbook(steps)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// p12Env is the parent's stand-ins.
type p12Env struct {
	aws      *awsfake.Server
	mgmt, dr *kubeenv.Cluster
	vault    *vaultfake.Server
	licence  string
	dir      string
	child    p12ChildConfig
}

func TestPhases12SurviveSIGKILLAndCreateNothingTwice(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two Kubernetes control planes and four drbot processes (about a minute)")
	}
	began := time.Now()
	e := p12Start(t)

	// Kill 1: cluster.create has created the control plane and waits for it
	// to leave CREATING.
	child := e.spawn(t)
	e.waitFor(t, child, "CreateCluster", 2*time.Minute, func() (bool, error) {
		return e.succeeded(awsfake.ServiceEKS, "CreateCluster") > 0, nil
	})
	child.kill(t)
	if st := e.clusterStatus(t); st != "CREATING" {
		t.Fatalf("the control plane is %s at the first kill, want CREATING: the kill did not land mid-wait", st)
	}
	if n := e.succeeded(awsfake.ServiceEKS, "CreateNodegroup"); n != 0 {
		t.Fatalf("CreateNodegroup already called %d times at the first kill", n)
	}

	// Kill 2: the first Helm install in flight (a release pending).
	child = e.spawn(t)
	var first []string
	e.waitFor(t, child, "a Helm release being installed", 6*time.Minute, func() (bool, error) {
		var err error
		first, err = e.pendingReleases()
		return len(first) > 0, err
	})
	child.kill(t)
	t.Logf("second kill with %v pending", first)

	// Kill 3: Istio mid-way: istio-base done, istiod (addons.istio) or the
	// gateway (addons.istio-gateway) being installed.
	child = e.spawn(t)
	var second []string
	e.waitFor(t, child, "istiod or the Istio gateway being installed", 6*time.Minute, func() (bool, error) {
		p, err := e.pendingReleases()
		second = nil
		for _, r := range p {
			if r == "istio-system/istiod" || r == "istio-ingress/istio-gateway" {
				second = append(second, r)
			}
		}
		return len(second) > 0, err
	})
	child.kill(t)
	t.Logf("third kill with %v pending", second)

	child = e.spawn(t)
	child.wait(t, 10*time.Minute)
	t.Logf("phases 1–2 with three kills took %s (stand-ins included)", time.Since(began).Round(time.Second))

	e.checkJournal(t)
	e.checkAWS(t)
	e.checkHelm(t)
	e.checkArgoCD(t)
	e.checkVault(t)
	e.checkNamespaces(t)
	e.checkLicenceNowhereElse(t)
}

// p12Start starts every stand-in the two phases talk to.
func p12Start(t *testing.T) *p12Env {
	t.Helper()
	e := &p12Env{dir: t.TempDir(), licence: "NRAK-phase12-made-up-" + fmt.Sprint(time.Now().UnixNano())}
	e.aws = awsfake.New(t, awsfake.Options{AccountID: p12Account, EKSCreateDelay: 12 * time.Second})
	e.aws.AddIdentity(p12DrbotKey, p12DrbotSec, "arn:aws:sts::"+p12Account+":assumed-role/drbot/drbot-phase12")
	e.aws.AddIdentity(p12AdminKey, p12AdminSec, "arn:aws:iam::"+p12Account+":user/test-admin")
	e.aws.AddIdentity(p12LBCKey, p12LBCSec, "arn:aws:sts::"+p12Account+":assumed-role/lbc/lbcfake")

	e.mgmt = kubeenv.Start(t, kubeenv.WithName("management"))
	// The DR API server trusts EKS tokens through the stand-in's webhook, and
	// the cluster drbot creates is this API server.
	e.dr = kubeenv.Start(t, kubeenv.WithName("dr"), kubeenv.WithTokenWebhook(e.aws.TokenWebhookURL(p12Region, p12Cluster)))
	e.aws.BackClusterWith(p12Region, p12Cluster, e.dr)

	e.vault = vaultfake.New(t)
	for i := range p12Roles {
		e.vault.PutRole(p12Source, fmt.Sprintf("svc-%03d", i), map[string]any{
			"bound_service_account_names":      []any{fmt.Sprintf("app-%d", i)},
			"bound_service_account_namespaces": []any{fmt.Sprintf("team-%d", i%7)},
			"token_policies":                   []any{fmt.Sprintf("svc-%d-read", i)},
			"token_ttl":                        "1h",
		})
	}
	e.vault.PutKV("secret", "observability/newrelic", map[string]any{"license_key": e.licence})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := e.mgmt.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	argo, err := argofake.Start(context.Background(), argofake.Options{
		Management: e.mgmt.AdminConfig(),
		Poll:       250 * time.Millisecond,
		// Real Argo CD gets an EKS token for awsAuthConfig.clusterName; the
		// stand-in hands out the DR cluster once the Secret names it right.
		DestinationConfig: func(secret, server string, cfg argofake.ClusterConfig) (*rest.Config, error) {
			if cfg.AWSAuthConfig == nil || cfg.AWSAuthConfig.ClusterName != p12Cluster || server != e.dr.Endpoint() ||
				!bytes.Equal(cfg.TLSClientConfig.CAData, e.dr.CAData()) {
				return nil, fmt.Errorf("cluster secret %s does not describe the DR cluster", secret)
			}
			return e.dr.AdminConfig(), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(argo.Stop)
	lbc, err := lbcfake.Start(context.Background(), lbcfake.Options{
		Cluster: e.dr.AdminConfig(), ClusterName: p12Cluster, Region: p12Region,
		LBs:  elbv2.NewFromConfig(e.aws.Config(p12Region, p12LBCKey, p12LBCSec)),
		Poll: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lbc.Stop)

	charts, err := filepath.Abs(filepath.Join("..", "..", "test", "testdata", "charts"))
	if err != nil {
		t.Fatal(err)
	}
	e.child = p12ChildConfig{
		StatePath:      filepath.Join(e.dir, "drbot.db"),
		LogPath:        filepath.Join(e.dir, "drbot.log"),
		ChartsDir:      charts,
		VaultAddr:      e.vault.URL(),
		MgmtKubeconfig: e.mgmt.Kubeconfig(),
	}
	return e
}

// p12Child is one drbot process.
type p12Child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (e *p12Env) spawn(t *testing.T) *p12Child {
	t.Helper()
	cc, err := json.Marshal(e.child)
	if err != nil {
		t.Fatal(err)
	}
	out, err := os.OpenFile(e.child.LogPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(os.Args[0], "-test.run=^TestPhase12Child$", "-test.count=1", "-test.timeout=15m", "-test.v")
	cmd.Env = append(os.Environ(), p12ChildEnv+"="+string(cc), p12TokenEnv+"="+e.vault.RootToken())
	cmd.Env = append(cmd.Env, e.aws.Env(p12Region, p12DrbotKey, p12DrbotSec)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &p12Child{cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.done
	})
	return c
}

func (c *p12Child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *p12Child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("killing drbot: %v", err)
	}
	<-c.done
}

// wait waits for the child to exit by itself, successfully.
func (c *p12Child) wait(t *testing.T, timeout time.Duration) {
	t.Helper()
	select {
	case <-c.done:
		if c.err != nil {
			t.Fatalf("the last drbot process failed: %v", c.err)
		}
	case <-time.After(timeout):
		t.Fatalf("the run did not finish within %s", timeout)
	}
}

// waitFor polls cond until it holds; the child exiting first is a failure
// (its log says why).
func (e *p12Env) waitFor(t *testing.T, c *p12Child, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		if c.exited() {
			e.logTail(t)
			t.Fatalf("drbot exited (%v) before %s", c.err, what)
		}
		ok, err := cond()
		if ok {
			return
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	e.logTail(t)
	t.Fatalf("waiting for %s: timed out after %s (last error: %v)", what, timeout, lastErr)
}

func (e *p12Env) logTail(t *testing.T) {
	t.Helper()
	b, _ := os.ReadFile(e.child.LogPath)
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	t.Logf("drbot log tail:\n%s", b)
}

// succeeded counts the calls to an operation the stand-in answered with success.
func (e *p12Env) succeeded(service, op string) int {
	n := 0
	for _, c := range e.aws.Calls() {
		if c.Service == service && c.Operation == op && c.Status == 200 && c.ErrorCode == "" {
			n++
		}
	}
	return n
}

func (e *p12Env) eks() *awseks.Client {
	return awseks.NewFromConfig(e.aws.Config(p12Region, p12AdminKey, p12AdminSec))
}

func (e *p12Env) clusterStatus(t *testing.T) string {
	t.Helper()
	out, err := e.eks().DescribeCluster(p12Ctx(t), &awseks.DescribeClusterInput{Name: aws.String(p12Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	return string(out.Cluster.Status)
}

// pendingReleases lists the Helm releases whose last revision is being
// installed or upgraded, from Helm's release Secrets in the DR cluster.
func (e *p12Env) pendingReleases() ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := e.dr.Clientset().CoreV1().Secrets("").List(ctx, metav1.ListOptions{
		LabelSelector: "owner=helm,status in (pending-install,pending-upgrade,pending-rollback)",
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, s := range list.Items {
		out = append(out, s.Namespace+"/"+s.Labels["name"])
	}
	sort.Strings(out)
	return out, nil
}

func p12Ctx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// checkJournal: one run, succeeded, resumed three times, every step
// succeeded once, and the kills interrupted cluster.create and Helm steps.
func (e *p12Env) checkJournal(t *testing.T) {
	t.Helper()
	store, err := state.Open(e.child.StatePath, state.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var runs []state.Run
	var steps map[string]state.StepRecord
	if err := store.View(func(tx *state.Tx) error {
		var err error
		if runs, err = tx.Runs(); err != nil || len(runs) != 1 {
			return err
		}
		steps, err = tx.Steps(runs[0].ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(runs) != 1 || runs[0].Status != state.RunSucceeded || runs[0].Resumes != 3 {
		t.Fatalf("runs = %+v, want one succeeded run resumed three times", runs)
	}
	want := []string{standard.ClusterCreate, standard.ClusterAccess, standard.IAMRoles, standard.AddonsLBC, standard.ArgoCDRegister,
		standard.AddonsKarpenter, standard.AddonsIstio, standard.AddonsIstioGW, standard.AddonsVaultInject, standard.VaultAuth, standard.Namespaces}
	interrupted := map[string]bool{}
	for _, id := range want {
		rec, ok := steps[id]
		if !ok {
			t.Errorf("step %s is not in the journal", id)
			continue
		}
		wins := 0
		for _, h := range rec.History {
			switch h.Outcome {
			case "succeeded":
				wins++
			case "interrupted":
				interrupted[id] = true
			}
		}
		if rec.Status != state.StepSucceeded || wins != 1 {
			t.Errorf("step %s: status %s with %d successful attempts (history %+v), want one success", id, rec.Status, wins, rec.History)
		}
	}
	if len(steps) != len(want) {
		t.Errorf("journal has %d steps, want the %d of phases 1–2", len(steps), len(want))
	}
	if !interrupted[standard.ClusterCreate] || (!interrupted[standard.AddonsIstio] && !interrupted[standard.AddonsIstioGW]) {
		t.Errorf("interrupted steps = %v; the kills should have interrupted cluster.create and addons.istio or addons.istio-gateway", interrupted)
	}
	if !interrupted[standard.AddonsLBC] && !interrupted[standard.AddonsVaultInject] {
		t.Errorf("interrupted steps = %v; the second kill should have interrupted a Helm step", interrupted)
	}
}

// checkAWS: one cluster, node group and add-on; each IAM role and policy
// created once; one Pod Identity association per service account; one
// access entry per principal.
func (e *p12Env) checkAWS(t *testing.T) {
	t.Helper()
	ctx := p12Ctx(t)
	api := e.eks()
	for _, c := range []struct {
		service, op string
		want        int
	}{
		{awsfake.ServiceEKS, "CreateCluster", 1},
		{awsfake.ServiceEKS, "CreateNodegroup", 1},
		{awsfake.ServiceEKS, "CreateAddon", 1},
		{awsfake.ServiceEKS, "CreatePodIdentityAssociation", 2},
		// drbot's own role got its entry when it created the cluster.
		{awsfake.ServiceEKS, "CreateAccessEntry", 2},
		{awsfake.ServiceIAM, "CreateRole", 3},
		{awsfake.ServiceIAM, "CreatePolicy", 2},
	} {
		if n := e.succeeded(c.service, c.op); n != c.want {
			t.Errorf("%s:%s succeeded %d times, want %d", c.service, c.op, n, c.want)
		}
	}

	clusters, err := api.ListClusters(ctx, &awseks.ListClustersInput{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(clusters.Clusters, []string{p12Cluster}) {
		t.Errorf("clusters = %v, want [%s]", clusters.Clusters, p12Cluster)
	}
	ngs, err := api.ListNodegroups(ctx, &awseks.ListNodegroupsInput{ClusterName: aws.String(p12Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	if len(ngs.Nodegroups) != 1 {
		t.Errorf("node groups = %v, want one", ngs.Nodegroups)
	}
	addons, err := api.ListAddons(ctx, &awseks.ListAddonsInput{ClusterName: aws.String(p12Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(addons.Addons, []string{"eks-pod-identity-agent"}) {
		t.Errorf("add-ons = %v, want [eks-pod-identity-agent]", addons.Addons)
	}
	pias, err := api.ListPodIdentityAssociations(ctx, &awseks.ListPodIdentityAssociationsInput{ClusterName: aws.String(p12Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	var sas []string
	for _, a := range pias.Associations {
		sas = append(sas, aws.ToString(a.Namespace)+"/"+aws.ToString(a.ServiceAccount))
	}
	sort.Strings(sas)
	if !slices.Equal(sas, []string{"kube-system/aws-load-balancer-controller", "kube-system/karpenter"}) {
		t.Errorf("pod identity associations = %v, want one each for the LBC and Karpenter", sas)
	}
	entries, err := api.ListAccessEntries(ctx, &awseks.ListAccessEntriesInput{ClusterName: aws.String(p12Cluster)})
	if err != nil {
		t.Fatal(err)
	}
	names := iam.NamesFor(p12Cluster)
	wantEntries := []string{
		"arn:aws:iam::" + p12Account + ":role/" + names.KarpenterNodeRole,
		"arn:aws:iam::" + p12Account + ":role/argocd-manager",
		"arn:aws:iam::" + p12Account + ":role/drbot",
	}
	got := append([]string(nil), entries.AccessEntries...)
	sort.Strings(got)
	if !slices.Equal(got, wantEntries) {
		t.Errorf("access entries = %v, want %v", got, wantEntries)
	}

	iamAPI := awsiam.NewFromConfig(e.aws.Config(p12Region, p12AdminKey, p12AdminSec))
	roles := map[string]int{}
	for p := awsiam.NewListRolesPaginator(iamAPI, &awsiam.ListRolesInput{}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Roles {
			roles[aws.ToString(r.RoleName)]++
		}
	}
	wantRoles := map[string]int{names.LBCRole: 1, names.KarpenterRole: 1, names.KarpenterNodeRole: 1}
	if !maps.Equal(roles, wantRoles) {
		t.Errorf("IAM roles = %v, want %v", roles, wantRoles)
	}
	policies := map[string]int{}
	for p := awsiam.NewListPoliciesPaginator(iamAPI, &awsiam.ListPoliciesInput{Scope: iamtypes.PolicyScopeTypeLocal}); p.HasMorePages(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, pol := range page.Policies {
			policies[aws.ToString(pol.PolicyName)]++
		}
	}
	wantPolicies := map[string]int{names.LBCPolicy: 1, names.KarpenterPolicy: 1}
	if !maps.Equal(policies, wantPolicies) {
		t.Errorf("IAM policies = %v, want %v", policies, wantPolicies)
	}
}

// checkHelm: each release has exactly one stored revision, 1, deployed —
// values never changed, so no re-run may have made a second one.
func (e *p12Env) checkHelm(t *testing.T) {
	t.Helper()
	ctx := p12Ctx(t)
	for _, ref := range p12Releases {
		ns, name, _ := strings.Cut(ref, "/")
		list, err := e.dr.Clientset().CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm,name=" + name})
		if err != nil {
			t.Fatal(err)
		}
		var revs []string
		for _, s := range list.Items {
			revs = append(revs, s.Name+" ("+s.Labels["status"]+")")
		}
		want := []string{"sh.helm.release.v1." + name + ".v1 (deployed)"}
		if !slices.Equal(revs, want) {
			t.Errorf("release %s: stored revisions %v, want %v", ref, revs, want)
		}
	}
}

// checkArgoCD: one cluster Secret for the DR cluster, and the Karpenter
// Application Healthy with its NodePool and EC2NodeClass applied once.
func (e *p12Env) checkArgoCD(t *testing.T) {
	t.Helper()
	ctx := p12Ctx(t)
	secrets, err := e.mgmt.Clientset().CoreV1().Secrets("argocd").List(ctx, metav1.ListOptions{LabelSelector: argocd.SecretTypeLabel + "=cluster"})
	if err != nil {
		t.Fatal(err)
	}
	if len(secrets.Items) != 1 || secrets.Items[0].Name != argocd.SecretName(p12Cluster) || string(secrets.Items[0].Data["server"]) != e.dr.Endpoint() {
		var names []string
		for _, s := range secrets.Items {
			names = append(names, s.Name)
		}
		t.Errorf("Argo CD cluster secrets = %v, want only %s for %s", names, argocd.SecretName(p12Cluster), e.dr.Endpoint())
	}
	apps, err := e.mgmt.Dynamic().Resource(argocd.ApplicationGVR).Namespace("argocd").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(apps.Items) != 1 || apps.Items[0].GetName() != argocd.ApplicationName(p12Cluster) {
		t.Fatalf("Argo CD applications = %d, want only %s", len(apps.Items), argocd.ApplicationName(p12Cluster))
	}
	if h, _, _ := unstructured.NestedString(apps.Items[0].Object, "status", "health", "status"); h != "Healthy" {
		t.Errorf("application %s health = %q, want Healthy", apps.Items[0].GetName(), h)
	}
	for _, gvr := range []schema.GroupVersionResource{argocd.NodePoolGVR, argocd.EC2NodeClassGVR} {
		list, err := e.dr.Dynamic().Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 {
			t.Errorf("%s in the DR cluster: %d, want 1", gvr.Resource, len(list.Items))
		}
	}
}

// checkVault: the DR auth mount enabled once, configured for the DR API
// server, with every role of the primary's mount.
func (e *p12Env) checkVault(t *testing.T) {
	t.Helper()
	mounts := 0
	for _, m := range e.vault.Mounts() {
		if m.Auth && m.Path == p12Mount+"/" {
			mounts++
			if m.Type != "kubernetes" {
				t.Errorf("auth/%s is %s, want kubernetes", p12Mount, m.Type)
			}
		}
	}
	enables := 0
	for _, c := range e.vault.Calls() {
		if c.Path == "sys/auth/"+p12Mount && (c.Method == "POST" || c.Method == "PUT") && c.Status < 300 {
			enables++
		}
	}
	if mounts != 1 || enables != 1 {
		t.Errorf("auth/%s: %d mounts, enabled %d times; want one, enabled once", p12Mount, mounts, enables)
	}
	if cfg, ok := e.vault.AuthConfig(p12Mount); !ok || cfg["kubernetes_host"] != e.dr.Endpoint() {
		t.Errorf("auth/%s/config = %v, want kubernetes_host %s", p12Mount, cfg["kubernetes_host"], e.dr.Endpoint())
	}
	src, dst := e.vault.Roles(p12Source), e.vault.Roles(p12Mount)
	if len(src) != p12Roles || !slices.Equal(src, dst) {
		t.Errorf("auth/%s has %d roles, auth/%s %d; want all %d copied", p12Mount, len(dst), p12Source, len(src), p12Roles)
	}
}

// checkNamespaces: every configured namespace holds the licence Secret.
func (e *p12Env) checkNamespaces(t *testing.T) {
	t.Helper()
	cfg, err := config.Load(example)
	if err != nil {
		t.Fatal(err)
	}
	ctx := p12Ctx(t)
	for _, ns := range cfg.Vault.Namespaces {
		s, err := e.dr.Clientset().CoreV1().Secrets(ns).Get(ctx, cfg.Vault.NewRelicSecretName, metav1.GetOptions{})
		if err != nil {
			t.Errorf("namespace %s: %v", ns, err)
			continue
		}
		if string(s.Data[cfg.Vault.NewRelicKeyField]) != e.licence {
			t.Errorf("namespace %s: Secret %s does not hold the licence key", ns, s.Name)
		}
	}
}

// checkLicenceNowhereElse: the licence key (and drbot's Vault token) is in
// neither the bbolt file — journal, outputs, progress lines and the outbox
// of messages to post — nor drbot's logs, in clear or base64.
func (e *p12Env) checkLicenceNowhereElse(t *testing.T) {
	t.Helper()
	for _, path := range []string{e.child.StatePath, e.child.LogPath} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatalf("%s is empty: nothing was checked", filepath.Base(path))
		}
		for what, secret := range map[string]string{"the licence key": e.licence, "drbot's Vault token": e.vault.RootToken()} {
			for _, form := range []string{secret, base64.StdEncoding.EncodeToString([]byte(secret))} {
				if bytes.Contains(b, []byte(form)) {
					t.Errorf("%s holds %s", filepath.Base(path), what)
				}
			}
		}
	}
}
