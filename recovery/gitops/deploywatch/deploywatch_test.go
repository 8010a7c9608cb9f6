package deploywatch_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	gitlab "gitlab.com/gitlab-org/api/client-go"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/gitops/deploywatch"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/steptest"
	"github.com/drbot/drbot/test/argofake"
	"github.com/drbot/drbot/test/gitlabfake"
	"github.com/drbot/drbot/test/kubeenv"
)

const (
	project   = "platform/argocd-apps"
	botToken  = "glpat-made-up-drbot"
	drCluster = "dr-eks"
	target    = "prod-eu"
)

// services is how many services the test deploys; DRBOT_WATCH_SERVICES
// lowers it on a machine that cannot take 150 (the default).
func services(t *testing.T) int {
	if v := os.Getenv("DRBOT_WATCH_SERVICES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 10 {
			t.Fatalf("DRBOT_WATCH_SERVICES=%q: want a number ≥ 10", v)
		}
		return n
	}
	return 150
}

// renewNodeLeases does the kubelet's node heartbeat for kubeenv's KWOK
// nodes: kubeenv runs kwok without --node-lease-duration-seconds, so no
// Lease is renewed and the node lifecycle controller marks the nodes
// NotReady about every 50 s, which marks every pod NotReady and sends
// healthy Deployments back to Progressing — a test-environment artefact
// that would hide what deploy.watch is tested for. (To be fixed in kubeenv.)
func renewNodeLeases(t *testing.T, c *kubeenv.Cluster) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	leases := c.Clientset().CoordinationV1().Leases(corev1.NamespaceNodeLease)
	renew := func() {
		nodes, err := c.Clientset().CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		for _, n := range nodes.Items {
			now := metav1.NewMicroTime(time.Now())
			l, err := leases.Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Namespace: corev1.NamespaceNodeLease},
					Spec: coordinationv1.LeaseSpec{HolderIdentity: &n.Name, LeaseDurationSeconds: ptr(int32(40)), RenewTime: &now}}
				_, _ = leases.Create(ctx, l, metav1.CreateOptions{})
				continue
			}
			l.Spec.RenewTime = &now
			_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
	}
	go func() {
		defer close(done)
		for {
			renew()
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Second):
			}
		}
	}()
}

func ptr[T any](v T) *T { return &v }

// sample is one journaled state of deploy.watch's counts.
type sample struct {
	healthy, degraded, progressing, total int
	at                                    time.Duration
}

func TestDeployWatchFollowsArgoCDThroughRealRollouts(t *testing.T) {
	n := services(t)
	huge := map[string]bool{"svc-0003": true, "svc-0004": true, "svc-0099": true} // a chart, a values string, a chart
	mgmt := kubeenv.Start(t, kubeenv.WithName("management"))
	// Two nodes of 16 CPUs and 110 pods: room for every service but the ones asking for 64 CPUs.
	dr := kubeenv.Start(t, kubeenv.WithName("dr"), kubeenv.WithNodes(2, "16", "64Gi", 110))
	renewNodeLeases(t, dr)

	gl := gitlabfake.New(t)
	gl.AddProject(project, "main")
	gl.AddUser(botToken, "drbot")
	gl.CommitFiles(project, "main", gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: n, Huge: huge}), "primary templates")
	client, err := gitlab.NewClient(botToken, gitlab.WithBaseURL(gl.URL()+"/api/v4"), gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := mgmt.Clientset().CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "argocd"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	admin := dr.AdminConfig()
	secretCfg, _ := json.Marshal(map[string]any{
		"bearerToken":     admin.BearerToken,
		"tlsClientConfig": map[string]any{"caData": base64.StdEncoding.EncodeToString(dr.CAData())},
	})
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "cluster-dr-eks", Namespace: "argocd", Labels: map[string]string{argofake.SecretTypeLabel: "cluster"}},
		StringData: map[string]string{"name": drCluster, "server": dr.Endpoint(), "config": string(secretCfg)},
	}
	if _, err := mgmt.Clientset().CoreV1().Secrets("argocd").Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ctrl, err := argofake.Start(ctx, argofake.Options{
		Management:       mgmt.AdminConfig(),
		GitLab:           argofake.GitLab{URL: gl.URL(), Token: botToken, Project: project, Branch: "main", AppOfAppsPath: "apps/dr"},
		Poll:             500 * time.Millisecond,
		ProgressDeadline: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ctrl.Stop)

	cfg := &config.Config{
		Targets: []config.Target{{Name: target, DR: config.DR{Region: "eu-west-1", ClusterName: drCluster}}},
		ArgoCD:  config.ArgoCD{Namespace: "argocd", DestinationBy: "name"},
		GitLab: config.GitLab{Project: project, DefaultBranch: "main", TemplatesPath: "apps/primary", DRPath: "apps/dr",
			BranchPrefix: "drbot/", FailOnUnparseable: true},
	}
	g := gitops.New(cfg, gitops.FromClient(client), gitops.Options{})
	run := func(t *testing.T, runID string, timeout time.Duration) (steptest.Result, []sample) {
		w := deploywatch.New(cfg, deploywatch.Options{Management: mgmt.AdminConfig(), Timeout: timeout, ProgressEvery: 5 * time.Second, Expected: g})
		h := gitopstest.Start(t, target, runID,
			recovery.Step{ID: gitops.StepGenerate, Phase: recovery.PhaseDeploy, Action: g.Generate},
			recovery.Step{ID: gitops.StepMR, Phase: recovery.PhaseDeploy, DependsOn: []string{gitops.StepGenerate}, Action: g.MergeRequest},
			recovery.Step{ID: gitops.StepMerge, Phase: recovery.PhaseDeploy, Gate: recovery.GateMerge, DependsOn: []string{gitops.StepMR}, Action: g.Merge},
			recovery.Step{ID: deploywatch.StepID, Phase: recovery.PhaseDeploy, DependsOn: []string{gitops.StepMerge}, Action: w.Action},
		)
		var samples []sample
		began := time.Now()
		h.OnPoll = func(r steptest.Result) {
			o := r.Steps[deploywatch.StepID].Outputs
			if o["total"] == "" {
				return
			}
			s := sample{at: time.Since(began).Round(100 * time.Millisecond)}
			s.healthy, _ = strconv.Atoi(o["healthy"])
			s.degraded, _ = strconv.Atoi(o["degraded"])
			s.progressing, _ = strconv.Atoi(o["progressing"])
			s.total, _ = strconv.Atoi(o["total"])
			if len(samples) == 0 || samples[len(samples)-1].healthy != s.healthy || samples[len(samples)-1].degraded != s.degraded ||
				samples[len(samples)-1].total != s.total {
				samples = append(samples, s)
			}
		}
		res := h.Settle(true, timeout+3*time.Minute)
		t.Logf("%d services: counts journaled %v", n, samples)
		t.Logf("progress lines: %q", res.Progress(deploywatch.StepID))
		return res, samples
	}

	t.Run("UnschedulableServicesEndDegradedAndTheTimeoutNamesThem", func(t *testing.T) {
		res, samples := run(t, "prod-eu-20260101-0000-000001", 90*time.Second)
		rec := res.Steps[deploywatch.StepID]
		if rec.Status != "failed" || rec.Retryable {
			t.Fatalf("deploy.watch %s (retryable %v): %s", rec.Status, rec.Retryable, rec.Error)
		}
		want := fmt.Sprintf("3 of %d Applications not Synced and Healthy after 1m30s — degraded: ", n)
		if !strings.Contains(rec.Error, want) {
			t.Errorf("error = %q, want it to contain %q", rec.Error, want)
		}
		for name := range huge {
			if !strings.Contains(rec.Error, name+" (") {
				t.Errorf("error does not name %s: %s", name, rec.Error)
			}
		}
		if strings.Contains(rec.Error, "not ready:") || strings.Contains(rec.Error, "not created") {
			t.Errorf("error names stragglers beyond the degraded three: %s", rec.Error)
		}
		// Counts followed the rollout: several states journaled, healthy never went down, ending at n-3 + 3 degraded.
		if len(samples) < 3 {
			t.Errorf("only %d distinct count states journaled: %v", len(samples), samples)
		}
		for i := 1; i < len(samples); i++ {
			if samples[i].healthy < samples[i-1].healthy {
				t.Errorf("healthy went down: %v", samples)
			}
		}
		out := rec.Outputs
		if out["healthy"] != strconv.Itoa(n-3) || out["degraded"] != "3" || out["progressing"] != "0" || out["total"] != strconv.Itoa(n) {
			t.Errorf("final outputs = %v", out)
		}
		// The cutover reads each application's health from app_health.
		var health map[string]string
		if err := json.Unmarshal([]byte(out[deploywatch.OutAppHealth]), &health); err != nil || len(health) != n {
			t.Fatalf("app_health = %q (%v), want %d entries", out[deploywatch.OutAppHealth], err, n)
		}
		for name := range huge {
			if health[name] != "Degraded" {
				t.Errorf("app_health[%s] = %q, want Degraded", name, health[name])
			}
		}
		// Each degraded Application posted once, with Argo CD's reason.
		posted := map[string]int{}
		for _, line := range res.Progress(deploywatch.StepID) {
			if rest, ok := strings.CutPrefix(line, "degraded: "); ok {
				for name := range huge {
					posted[name] += strings.Count(rest, name+" ")
				}
				if !strings.Contains(rest, "exceeded its progress deadline") {
					t.Errorf("degraded line without Argo CD's reason: %q", line)
				}
			}
		}
		for name := range huge {
			if posted[name] != 1 {
				t.Errorf("%s posted %d times as degraded, want once; progress: %v", name, posted[name], res.Progress(deploywatch.StepID))
			}
		}
	})

	t.Run("AllHealthyCompletes", func(t *testing.T) {
		// The primary's templates are fixed: the three ask for what the nodes have.
		fixed := map[string]string{}
		for path, content := range gitopstest.Templates(gitopstest.Options{Dir: "apps/primary", Services: n}) {
			for name := range huge {
				if strings.Contains(path, name) {
					fixed[path] = content
				}
			}
		}
		gl.CommitFiles(project, "main", fixed, "right-size the three")
		res, samples := run(t, "prod-eu-20260101-0000-000002", 4*time.Minute)
		rec := res.Steps[deploywatch.StepID]
		if res.Run.Status != "succeeded" {
			t.Fatalf("run %s; deploy.watch %s: %s", res.Run.Status, rec.Status, rec.Error)
		}
		if mr := res.Steps[gitops.StepMR].Outputs; !strings.Contains(mr["summary"], "0 new, 3 changed, 0 removed") {
			t.Errorf("second MR summary = %q, want only the three changed", mr["summary"])
		}
		out := rec.Outputs
		if out["healthy"] != strconv.Itoa(n) || out["total"] != strconv.Itoa(n) || out["degraded"] != "0" {
			t.Errorf("final outputs = %v", out)
		}
		if len(samples) == 0 || samples[len(samples)-1].healthy != n {
			t.Errorf("samples = %v", samples)
		}
		p := res.Progress(deploywatch.StepID)
		if len(p) == 0 || p[len(p)-1] != fmt.Sprintf("all %d Applications Synced and Healthy", n) {
			t.Errorf("progress = %v", p)
		}
	})
}
