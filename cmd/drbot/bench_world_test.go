package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/gitops/gitopstest"
	"github.com/drbot/drbot/recovery/standard"
	"github.com/drbot/drbot/state"
	"github.com/drbot/drbot/test/slackfake"
	"github.com/drbot/drbot/test/world"
)

// `make bench`: one invocation, one table. Side by side on the same
// machine: the modelled time to recover against the critical-path bound
// and the hand process, drbot's own cost at 150 and 1,500 services, and
// the Socket Mode ack latency. The table goes to stdout and, as JSON, to
// .cache/bench/<UTC time>.json (git-ignored).

// benchSpeed is how many times faster than AWS the far ends answer in
// the modelled run: 12 minutes of EKS become 3.6 s.
const benchSpeed = 200

// The targets.
const (
	targetRatio     = 1.05
	targetCPU150    = 2 * time.Second
	targetCPU1500   = 10 * time.Second
	targetRSSMiB    = 200
	benchRunTimeout = 8 * time.Minute
)

// stepLatencies maps each step of the standard runbook to the far-end
// latency it waits on; steps absent wait on nothing but drbot and the
// stand-ins (zero). The mapping follows what each integration waits for:
//
//	cluster.create         CreateCluster → ACTIVE, then the node group and the
//	                       eks-pod-identity-agent add-on, asked for together
//	addons.lbc             Helm --wait: the controller's pods Ready
//	addons.karpenter       the Argo CD Application Healthy: Karpenter's pods Ready
//	addons.istio           base (CRDs, no pods), then istiod's pods
//	addons.istio-gateway   the gateway's pods
//	addons.vault-injector  Helm --wait: the injector's pods Ready
//	deploy.watch           every Application Healthy: the last service pod Ready,
//	                       AppsHealthySpread after the merge
//	endpoints.discover     the NLB active; it was created when the gateway chart
//	                       made its Service, one AddonPodsReady before
//	                       addons.istio-gateway ended, so only the rest is left
//	endpoints.verify       Route 53 INSYNC and CloudFront Deployed, both changes
//	                       submitted by endpoints.apply at once: the longer
//
// Gates are approved instantly; iam.roles finds the Pod Identity agent
// that cluster.create installed.
func stepLatencies(l world.Latencies) map[string]time.Duration {
	return map[string]time.Duration{
		standard.ClusterCreate:     l.EKSControlPlane + max(l.NodeGroup, l.EKSAddon),
		standard.AddonsLBC:         l.AddonPodsReady,
		standard.AddonsKarpenter:   l.AddonPodsReady,
		standard.AddonsIstio:       l.AddonPodsReady,
		standard.AddonsIstioGW:     l.AddonPodsReady,
		standard.AddonsVaultInject: l.AddonPodsReady,
		standard.DeployWatch:       l.AppsHealthySpread,
		standard.EndpointsDiscover: max(0, l.LoadBalancer-l.AddonPodsReady),
		standard.EndpointsVerify:   max(l.Route53InSync, l.CloudFrontDeploy),
	}
}

// productionPolls is the expected overshoot of drbot's production poll
// intervals past the moment a far end is ready (half an interval per
// wait), which the time-scaled run shrinks with the far ends: EKS every
// 15 s (the control plane, then the node group; the add-on, asked for with
// the node group, is ACTIVE by then, so its first look finds it), the load balancer and the
// cutover changes every 10 s and their HTTP checks every 5 s, Helm's
// readiness checks at most every 2 s, deploy.watch's evaluation every 2 s.
func productionPolls() map[string]time.Duration {
	half := func(d time.Duration, waits int) time.Duration { return d / 2 * time.Duration(waits) }
	return map[string]time.Duration{
		standard.ClusterCreate:     half(15*time.Second, 2),
		standard.AddonsLBC:         half(2*time.Second, 1),
		standard.AddonsKarpenter:   half(2*time.Second, 1),
		standard.AddonsIstio:       half(2*time.Second, 2),
		standard.AddonsIstioGW:     half(2*time.Second, 1),
		standard.AddonsVaultInject: half(2*time.Second, 1),
		standard.DeployWatch:       half(2*time.Second, 1),
		standard.EndpointsDiscover: half(10*time.Second, 1),
		standard.EndpointsVerify:   half(10*time.Second, 1) + half(5*time.Second, 1),
	}
}

// replayMTTR is the modelled time to recover with drbot's own time
// counted as it is: the run's schedule replayed on the DAG, where each
// step lasts its far-end latency at full scale plus what the step took
// beyond its scaled wait (drbot's work, the stand-ins' work, poll
// overshoot) in real seconds plus the production poll overshoot, and
// starts as long after its last dependency as it really did (scheduling,
// gate clicks). Multiplying the whole wall time by the speed instead
// (ModelMin) counts every real second of work — a Helm render, a bbolt
// commit — as speed seconds, which no production run pays.
func replayMTTR(book *recovery.Runbook, recs map[string]state.StepRecord, runStart time.Time, lat map[string]time.Duration, polls map[string]time.Duration, speed float64) (time.Duration, map[string][2]time.Duration) {
	ends := map[string]time.Duration{}
	out := map[string][2]time.Duration{}
	var visit func(id string) time.Duration
	visit = func(id string) time.Duration {
		if e, ok := ends[id]; ok {
			return e
		}
		st, _ := book.Step(id)
		rec := recs[id]
		realDepEnd := runStart
		var modelStart time.Duration
		for _, dep := range st.DependsOn {
			modelStart = max(modelStart, visit(dep))
			if recs[dep].FinishedAt.After(realDepEnd) {
				realDepEnd = recs[dep].FinishedAt
			}
		}
		gap := max(0, rec.StartedAt.Sub(realDepEnd))
		scaledWait := time.Duration(float64(lat[id]) / speed)
		own := max(0, rec.FinishedAt.Sub(rec.StartedAt)-scaledWait)
		start := modelStart + gap
		end := start + lat[id] + own + polls[id]
		ends[id], out[id] = end, [2]time.Duration{start, end}
		return end
	}
	var mttr time.Duration
	for _, s := range book.Steps() {
		if _, ran := recs[s.ID]; ran {
			mttr = max(mttr, visit(s.ID))
		}
	}
	return mttr, out
}

// handLatencies is the hand process: the same far ends, one after
// another — nothing overlaps, the node group before the add-on, the load
// balancer waited for whole and the DNS change before the CDN change.
func handLatencies(l world.Latencies) map[string]time.Duration {
	m := stepLatencies(l)
	m[standard.ClusterCreate] = l.EKSControlPlane + l.NodeGroup + l.EKSAddon
	m[standard.EndpointsDiscover] = l.LoadBalancer
	m[standard.EndpointsVerify] = l.Route53InSync + l.CloudFrontDeploy
	return m
}

// latencySchedule is the plan's schedule of book (recovery.Runbook.Schedule)
// with each step lasting d[step] instead of its estimate: its Total is the
// critical-path bound no scheduler can beat, its Sequential the same
// latencies one after another.
func latencySchedule(book *recovery.Runbook, d map[string]time.Duration) recovery.Schedule {
	steps := book.Steps()
	for i := range steps {
		steps[i].Estimate = d[steps[i].ID]
	}
	rb, err := recovery.NewRunbook(steps)
	if err != nil {
		panic(err) // the same steps book was validated with
	}
	return rb.Schedule()
}

type benchReport struct {
	Date    time.Time    `json:"date"`
	Machine benchMachine `json:"machine"`
	MTTR    *mttrResult  `json:"mttr,omitempty"`
	Cost    []costResult `json:"cost,omitempty"`
	Ack     *ackResult   `json:"ack,omitempty"`
	Wall    float64      `json:"bench_wall_seconds"`
}

type benchMachine struct {
	CPU       string `json:"cpu"`
	Cores     int    `json:"cores"`
	MemoryGiB int    `json:"memory_gib"`
	OS        string `json:"os"`
	Go        string `json:"go"`
	CGO       string `json:"cgo_enabled"` // drbot ships with 0
}

type mttrResult struct {
	Services   int     `json:"services"`
	Speed      float64 `json:"speed"`
	Status     string  `json:"status"`
	WallSec    float64 `json:"wall_seconds"`
	ModelMin   float64 `json:"modelled_mttr_minutes"`
	BoundMin   float64 `json:"critical_path_minutes"`
	Ratio      float64 `json:"ratio"`
	HandSeqMin float64 `json:"hand_sequential_minutes"`
	HandEstMin float64 `json:"hand_estimates_minutes"`
	// ReplayMin is the modelled MTTR with drbot's own time counted 1:1
	// (replayMTTR); ReplayRatio is it over the bound. ModelMin and Ratio
	// count every wall second × speed.
	ReplayMin   float64 `json:"replayed_mttr_minutes"`
	ReplayRatio float64 `json:"replayed_ratio"`
	OwnSec      float64 `json:"drbot_and_standins_seconds_on_critical_path"`
	// Path is the critical path; Steps the modelled start and end of every
	// step (minutes from the run's start) beside the bound's.
	Path   []string              `json:"critical_path"`
	Steps  map[string][4]float64 `json:"steps_modelled_start_end_bound_start_end"`
	Errors []string              `json:"errors,omitempty"`
	// After the merge (wall seconds): the last service Deployment
	// created, the last service pod Ready, deploy.watch done.
	LastDeploymentSec float64 `json:"last_deployment_created_after_merge_s"`
	LastPodReadySec   float64 `json:"last_pod_ready_after_merge_s"`
	WatchSec          float64 `json:"deploy_watch_done_after_merge_s"`
}

type costResult struct {
	Services    int                    `json:"services"`
	Status      string                 `json:"status"`
	WallSec     float64                `json:"run_wall_seconds"`
	CPUSec      float64                `json:"drbot_cpu_seconds"`
	RSSMiB      float64                `json:"drbot_peak_rss_mib"`
	Slack       map[string]slackMethod `json:"slack"`
	WriteTx     uint64                 `json:"bbolt_write_tx"`
	StateBytes  int64                  `json:"state_file_bytes"`
	GrowthBytes int64                  `json:"state_growth_bytes"`
	Errors      []string               `json:"errors,omitempty"`
}

type slackMethod struct {
	Calls     int     `json:"calls"`
	MaxPerMin int     `json:"max_per_minute"` // most calls in any 60 s window
	MaxPerSec int     `json:"max_per_second"` // most calls in any 1 s window
	Tier      string  `json:"tier"`
	Limit     float64 `json:"limit_per_minute"` // 0: not checked
	OK        bool    `json:"within_tier"`
}

type ackResult struct {
	P50ms float64 `json:"p50_ms"`
	P99ms float64 `json:"p99_ms"`
	Acks  float64 `json:"acks"`
}

// slackTiers are the per-minute limits of the methods drbot calls (see
// /work/shared/notes/tech-facts.md and Slack's method pages). "special"
// chat.postMessage allows about one message per second per channel: it
// is checked per second against the poster's pacing instead.
var slackTiers = map[string]struct {
	tier  string
	limit float64
}{
	"apps.connections.open":        {"T1", 1},
	"conversations.create":         {"T2", 20},
	"conversations.setTopic":       {"T2", 20},
	"conversations.setPurpose":     {"T2", 20},
	"usergroups.users.list":        {"T2", 20},
	"conversations.invite":         {"T3", 50},
	"conversations.info":           {"T3", 50},
	"conversations.history":        {"T3", 50},
	"conversations.replies":        {"T3", 50},
	"pins.add":                     {"T2", 20},
	"chat.update":                  {"T3", 50},
	"users.info":                   {"T4", 100},
	"chat.postEphemeral":           {"T4", 100},
	"views.open":                   {"T4", 100},
	"files.getUploadURLExternal":   {"T4", 100},
	"files.completeUploadExternal": {"T4", 100},
	"chat.postMessage":             {"special", 0},
}

func slackUsage(calls []slackfake.Call) map[string]slackMethod {
	byMethod := map[string][]time.Time{}
	for _, c := range calls {
		byMethod[c.Method] = append(byMethod[c.Method], c.Time)
	}
	out := map[string]slackMethod{}
	for m, ts := range byMethod {
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		window := func(w time.Duration) int {
			most, lo := 0, 0
			for hi := range ts {
				for ts[hi].Sub(ts[lo]) >= w {
					lo++
				}
				most = max(most, hi-lo+1)
			}
			return most
		}
		r := slackMethod{Calls: len(ts), MaxPerMin: window(time.Minute), MaxPerSec: window(time.Second), Tier: "?", OK: true}
		if t, ok := slackTiers[m]; ok {
			r.Tier, r.Limit = t.tier, t.limit
		}
		switch {
		case r.Limit > 0:
			r.OK = float64(r.MaxPerMin) <= r.Limit
		}
		out[m] = r
	}
	return out
}

// BenchmarkRecovery is `make bench`: every figure of the table in one
// invocation (run it with -benchtime 1x).
func BenchmarkRecovery(b *testing.B) {
	began := time.Now()
	rep := benchReport{Date: began.UTC(), Machine: machineFacts()}
	b.Run("mttr", func(b *testing.B) {
		r := benchMTTR(b, 150)
		rep.MTTR = &r
		b.ReportMetric(r.ReplayMin, "modelled-min")
		b.ReportMetric(r.BoundMin, "bound-min")
		b.ReportMetric(r.ReplayRatio, "ratio")
		b.ReportMetric(r.Ratio, "naive-ratio")
	})
	for _, n := range []int{150, 1500} {
		b.Run(fmt.Sprintf("cost-%d", n), func(b *testing.B) {
			r := benchCost(b, n)
			rep.Cost = append(rep.Cost, r)
			b.ReportMetric(r.CPUSec, "cpu-s")
			b.ReportMetric(r.RSSMiB, "rss-MiB")
		})
	}
	b.Run("ack", func(b *testing.B) {
		p50, p99, n := measureAckLatency(b)
		rep.Ack = &ackResult{P50ms: p50, P99ms: p99, Acks: n}
		b.ReportMetric(p50, "p50-ms")
		b.ReportMetric(p99, "p99-ms")
	})
	rep.Wall = time.Since(began).Seconds()
	fmt.Print(renderBench(rep))
	if path, err := writeBench(rep); err != nil {
		b.Errorf("writing the bench JSON: %v", err)
	} else {
		fmt.Printf("written to %s\n", path)
	}
}

func benchMTTR(b *testing.B, services int) mttrResult {
	lat := world.Realistic()
	std, err := standard.Runbook()
	if err != nil {
		b.Fatal(err)
	}
	book := std.ForMode(state.ModeRecovery)
	sched := latencySchedule(book, stepLatencies(lat))
	bound := sched.Total
	r := mttrResult{Services: services, Speed: benchSpeed, Path: sched.CriticalPath,
		BoundMin:   bound.Minutes(),
		HandSeqMin: latencySchedule(book, handLatencies(lat)).Sequential.Minutes(),
		HandEstMin: book.Schedule().Sequential.Minutes(), // the runbook's estimates: DESIGN §1's 60 minutes
	}

	// Argo CD refreshes on GitLab's push webhook within seconds: 50 ms here.
	w := world.Start(b, world.Options{Services: services, Latency: lat.Scaled(benchSpeed), ArgoPoll: 50 * time.Millisecond})
	cfg, err := w.Config(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	d, err := newWorldDriver(w, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), withPollScale(benchSpeed))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), benchRunTimeout)
	defer cancel()
	// Slack's pace, time-scaled like the far ends: one post a second per
	// channel after a burst of 4, the board every 2 s.
	pace := bot.PosterOptions{PostsPerSecond: benchSpeed, Burst: 4, BoardInterval: 2 * time.Second / benchSpeed}
	if err := d.serve(ctx, serveOptions{poster: pace}); err != nil {
		b.Fatal(err)
	}
	defer func() {
		if err := d.stop(); err != nil {
			b.Error(err)
		}
	}()
	b.ResetTimer()
	if err := d.slash(ctx, world.UserOncall, "start "+w.Opts.Target); err != nil {
		b.Fatal(err)
	}
	go d.approveGates(ctx, 0, nil)
	run, err := d.waitRun(ctx)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	r.Status = string(run.Status)
	wall := run.FinishedAt.Sub(run.StartedAt)
	r.WallSec = wall.Seconds()
	r.ModelMin = (wall * benchSpeed).Minutes()
	r.Ratio = r.ModelMin / r.BoundMin

	var recs map[string]state.StepRecord
	_ = d.srv.store.View(func(tx *state.Tx) (err error) { recs, err = tx.Steps(run.ID); return })
	replayed, _ := replayMTTR(book, recs, run.StartedAt, stepLatencies(lat), productionPolls(), benchSpeed)
	r.ReplayMin = replayed.Minutes()
	r.ReplayRatio = r.ReplayMin / r.BoundMin
	r.OwnSec = (replayed - bound).Seconds()
	r.Steps = map[string][4]float64{}
	planned := map[string]recovery.Scheduled{}
	for _, s := range sched.Steps {
		planned[s.Step.ID] = s
	}
	for id, rec := range recs {
		if rec.Status != state.StepSucceeded {
			r.Errors = append(r.Errors, fmt.Sprintf("step %s: %s %s", id, rec.Status, rec.Error))
		}
		m := func(t time.Time) float64 { return (t.Sub(run.StartedAt) * benchSpeed).Minutes() }
		r.Steps[id] = [4]float64{m(rec.StartedAt), m(rec.FinishedAt), planned[id].Start.Minutes(), planned[id].Finish.Minutes()}
	}
	sort.Strings(r.Errors)

	// Where deploy.watch's time went: when the stand-in Argo CD created
	// the services' Deployments and when their last pod became Ready
	// (whole seconds, as Kubernetes keeps them), against the merge.
	merged := recs[standard.GitOpsMerge].FinishedAt
	lctx, lcancel := context.WithTimeout(context.Background(), time.Minute)
	defer lcancel()
	if deps, err := w.DR.Clientset().AppsV1().Deployments("").List(lctx, metav1.ListOptions{}); err == nil {
		for _, dep := range deps.Items {
			if slices.Contains(gitopstest.Namespaces, dep.Namespace) {
				r.LastDeploymentSec = max(r.LastDeploymentSec, dep.CreationTimestamp.Sub(merged).Seconds())
			}
		}
	}
	if pods, err := w.DR.Clientset().CoreV1().Pods("").List(lctx, metav1.ListOptions{}); err == nil {
		for _, p := range pods.Items {
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && slices.Contains(gitopstest.Namespaces, p.Namespace) {
					r.LastPodReadySec = max(r.LastPodReadySec, c.LastTransitionTime.Sub(merged).Seconds())
				}
			}
		}
	}
	r.WatchSec = recs[standard.DeployWatch].FinishedAt.Sub(merged).Seconds()
	return r
}

// benchCost recovers services at zero added latency with drbot as a
// child process and measures that process.
func benchCost(b *testing.B, services int) costResult {
	r := costResult{Services: services}
	// An empty state file's size, for the growth.
	empty, err := emptyStateBytes(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	w := world.Start(b, world.Options{Services: services})
	dir := b.TempDir()
	// Posts paced fast so the gate messages do not queue behind a minute
	// of step lines (see docs/benchmarks.md); the board at its production
	// interval, so chat.update runs at its real rate.
	// DRBOT_BENCH_CHILD_LOG keeps the child's log (with GODEBUG=gctrace=1,
	// its GC trace) past the test; DRBOT_CHILD_PROFILE (worldchild_test.go)
	// adds its heap profile at the RSS peak.
	c := startWorldChild(b, w, dir, worldChildOptions{
		Poster: bot.PosterOptions{PostsPerSecond: 200, Burst: 50, BoardInterval: 2 * time.Second},
		Log:    os.Getenv("DRBOT_BENCH_CHILD_LOG"),
	})
	ctx, cancel := context.WithTimeout(context.Background(), benchRunTimeout)
	defer cancel()
	b.ResetTimer()
	if err := slashAsChild(ctx, w, world.UserOncall, "start "+w.Opts.Target); err != nil {
		b.Fatal(err)
	}
	a := &slackApprover{Slack: w.Slack, User: world.UserLead}
	actx, acancel := context.WithCancel(ctx)
	defer acancel()
	go a.Run(actx)
	run, err := c.WaitRun(ctx)
	acancel()
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	r.Status = string(run.Status)
	// Let the poster finish what the run left in the outbox.
	quiet(ctx, w.Slack, 3*time.Second, time.Minute)
	if err := c.Stop(); err != nil {
		b.Fatal(err)
	}
	ru, err := c.Wait()
	if err != nil {
		b.Fatal(err)
	}
	r.CPUSec = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	r.RSSMiB = float64(ru.Maxrss) / 1024
	r.Slack = slackUsage(w.Slack.Calls())

	s, err := state.Open(c.StatePath, state.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var runs []state.Run
	_ = s.View(func(tx *state.Tx) (err error) { runs, err = tx.Runs(); return })
	if len(runs) > 0 {
		last := runs[len(runs)-1]
		r.WallSec = last.FinishedAt.Sub(last.StartedAt).Seconds()
	}
	st, err := s.Stats()
	if err != nil {
		b.Fatal(err)
	}
	r.WriteTx, r.StateBytes, r.GrowthBytes = st.WriteTx, st.FileBytes, st.FileBytes-empty
	if p := c.PanicLines(); len(p) > 0 {
		r.Errors = append(r.Errors, p...)
	}
	return r
}

func emptyStateBytes(dir string) (int64, error) {
	s, err := state.Open(filepath.Join(dir, "empty.db"), state.Options{})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	st, err := s.Stats()
	return st.FileBytes, err
}

// quiet waits until the Slack stand-in has had no call for idle, at most
// limit.
func quiet(ctx context.Context, s *slackfake.Server, idle, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, lastAt := len(s.Calls()), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(200 * time.Millisecond)
		if n := len(s.Calls()); n != last {
			last, lastAt = n, time.Now()
		}
		if time.Since(lastAt) >= idle {
			return
		}
	}
}

func machineFacts() benchMachine {
	m := benchMachine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(), CGO: "?"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, kv := range bi.Settings {
			if kv.Key == "CGO_ENABLED" {
				m.CGO = kv.Value
			}
		}
	}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		_ = f.Close()
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb int
		if _, err := fmt.Sscanf(string(data), "MemTotal: %d kB", &kb); err == nil {
			m.MemoryGiB = (kb + 1<<19) >> 20
		}
	}
	return m
}

func verdict(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISS"
}

// renderBench is the one table.
func renderBench(r benchReport) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\ndrbot bench — %s, %s, %d cores, %d GiB, %s, CGO_ENABLED=%s\n\n", r.Date.Format(time.RFC3339), r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryGiB, r.Machine.Go, r.Machine.CGO)
	if r.Machine.CGO != "0" {
		// drbot ships built with CGO_ENABLED=0 (Dockerfile). With cgo, the
		// plugin package (linked through Helm's kustomize) makes the linker
		// export every symbol: 27 MiB more of mapped binary in the RSS.
		fmt.Fprintf(&sb, "note: not the shipped build (CGO_ENABLED=0); the peak RSS below counts 40-60 MiB more of mapped binary — run make bench\n\n")
	}
	fmt.Fprintf(&sb, "%-58s %14s %14s %6s\n", "figure", "value", "target", "")
	row := func(name, value, target string, ok bool) {
		fmt.Fprintf(&sb, "%-58s %14s %14s %6s\n", name, value, target, verdict(ok))
	}
	info := func(name, value string) { fmt.Fprintf(&sb, "%-58s %14s\n", name, value) }
	if m := r.MTTR; m != nil {
		info(fmt.Sprintf("modelled run: %d services, far ends %gx faster, wall", m.Services, m.Speed), fmt.Sprintf("%.2f s", m.WallSec))
		info("  run status", m.Status)
		info("critical-path lower bound", fmt.Sprintf("%.1f min", m.BoundMin))
		info("modelled MTTR (replayed: own time 1:1, production polls)", fmt.Sprintf("%.1f min", m.ReplayMin))
		info("  of which beyond the bound (drbot, stand-ins, polls)", fmt.Sprintf("%.0f s", m.OwnSec))
		row("MTTR / bound", fmt.Sprintf("%.3f", m.ReplayRatio), fmt.Sprintf("≤ %.2f", targetRatio), m.ReplayRatio <= targetRatio && m.Status == string(state.RunSucceeded))
		info("naive MTTR: whole wall × speed (own time × speed)", fmt.Sprintf("%.1f min", m.ModelMin))
		info("  naive MTTR / bound", fmt.Sprintf("%.3f", m.Ratio))
		row("hand process, same latencies one after another", fmt.Sprintf("%.1f min", m.HandSeqMin), fmt.Sprintf("MTTR ≤ %.1f", m.HandSeqMin/2), m.ReplayMin <= m.HandSeqMin/2)
		info(fmt.Sprintf("  its own bound is %.0f %% of it: half is out of any scheduler's reach", 100*m.BoundMin/m.HandSeqMin), "")
		row("hand process as people run it (runbook estimates)", fmt.Sprintf("%.1f min", m.HandEstMin), fmt.Sprintf("MTTR ≤ %.1f", m.HandEstMin/2), m.ReplayMin <= m.HandEstMin/2)
	}
	for _, c := range r.Cost {
		cpuTarget := targetCPU150
		if c.Services > 150 {
			cpuTarget = targetCPU1500
		}
		info(fmt.Sprintf("cost: %d services, zero latency, run wall (%s)", c.Services, c.Status), fmt.Sprintf("%.2f s", c.WallSec))
		row("  drbot CPU (user+sys)", fmt.Sprintf("%.2f s", c.CPUSec), fmt.Sprintf("< %s", cpuTarget), time.Duration(c.CPUSec*float64(time.Second)) < cpuTarget)
		row("  drbot peak RSS", fmt.Sprintf("%.0f MiB", c.RSSMiB), fmt.Sprintf("< %d MiB", targetRSSMiB), c.RSSMiB < targetRSSMiB)
		info("  bbolt write transactions", fmt.Sprint(c.WriteTx))
		info("  state file (growth over an empty one)", fmt.Sprintf("%d KiB (+%d)", c.StateBytes>>10, c.GrowthBytes>>10))
		methods := make([]string, 0, len(c.Slack))
		for m := range c.Slack {
			methods = append(methods, m)
		}
		sort.Strings(methods)
		for _, m := range methods {
			s := c.Slack[m]
			target := s.Tier
			switch {
			case s.Limit > 0:
				target = fmt.Sprintf("%s ≤ %g/min", s.Tier, s.Limit)
			case m == "chat.postMessage":
				target = "paced by bot"
			}
			row(fmt.Sprintf("  slack %s: calls, max/min, max/s", m), fmt.Sprintf("%d, %d, %d", s.Calls, s.MaxPerMin, s.MaxPerSec), target, s.OK)
		}
	}
	if a := r.Ack; a != nil {
		row("Socket Mode ack p50 / p99 (400 envelopes, a run active)", fmt.Sprintf("%.1f / %.1f ms", a.P50ms, a.P99ms), "p99 < 100 ms", a.P99ms < 100)
	}
	info("bench wall time", fmt.Sprintf("%.0f s", r.Wall))
	return sb.String()
}

func writeBench(r benchReport) (string, error) {
	root, err := world.ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, ".cache", "bench")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, r.Date.Format("2006-01-02T150405Z")+".json")
	return path, os.WriteFile(path, append(data, '\n'), 0o644)
}

// The bound is the DAG's longest path: on the standard runbook with the
// realistic table it runs cluster → one add-on (istiod, the LBC, the
// injector and Karpenter take as long, side by side) → merge → deploy
// watch → cutover → verify; the gateway and its load balancer are off it,
// and the hand process is longer.
func TestCriticalPathOfTheStandardRunbookFollowsTheClusterAndTheDeployWatch(t *testing.T) {
	std, err := standard.Runbook()
	if err != nil {
		t.Fatal(err)
	}
	book := std.ForMode(state.ModeRecovery)
	lat := world.Realistic()
	sched := latencySchedule(book, stepLatencies(lat))
	bound, path := sched.Total, sched.CriticalPath
	want := lat.EKSControlPlane + max(lat.NodeGroup, lat.EKSAddon) + lat.AddonPodsReady + lat.AppsHealthySpread + lat.CloudFrontDeploy
	if bound != want {
		t.Errorf("bound = %s, want %s (path %v)", bound, want, path)
	}
	if slices.Contains(path, standard.AddonsIstioGW) || slices.Contains(path, standard.EndpointsDiscover) {
		t.Errorf("critical path %v runs through the gateway; only the cutover should wait for it", path)
	}
	for _, id := range []string{standard.ClusterCreate, standard.GitOpsMerge, standard.DeployWatch, standard.EndpointsApply, standard.EndpointsVerify} {
		if !slices.Contains(path, id) {
			t.Errorf("critical path %v lacks %s", path, id)
		}
	}
	// Schedule's path stops at the first step to finish last; the
	// post-mortem, taking no time, finishes with it and lies on a longest
	// path too.
	for _, s := range sched.Steps {
		if s.Step.ID == standard.Postmortem && (s.Finish != bound || s.Step.DependsOn[0] != path[len(path)-1]) {
			t.Errorf("the post-mortem finishes at %s after %v, want at the bound %s after %s", s.Finish, s.Step.DependsOn, bound, path[len(path)-1])
		}
	}
	if hand := latencySchedule(book, handLatencies(lat)).Sequential; hand <= bound {
		t.Errorf("hand process %s is not longer than the bound %s", hand, bound)
	}
	if est := book.Schedule().Sequential; est < 55*time.Minute || est > 65*time.Minute {
		t.Errorf("the runbook's estimates add up to %s, want about the 60 minutes of the hand process", est)
	}
}

// The busiest minute and second are sliding windows, and a method over
// its tier is flagged: 51 chat.update calls in 50 s break T3's 50 a minute.
func TestSlackUsageFlagsAMethodOverItsTierInAnySlidingMinute(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	var calls []slackfake.Call
	for i := range 51 {
		calls = append(calls, slackfake.Call{Method: "chat.update", Time: t0.Add(30*time.Second + time.Duration(i)*time.Second)})
	}
	calls = append(calls,
		slackfake.Call{Method: "conversations.create", Time: t0},
		slackfake.Call{Method: "conversations.create", Time: t0.Add(61 * time.Second)})
	u := slackUsage(calls)
	if got := u["chat.update"]; got.Calls != 51 || got.MaxPerMin != 51 || got.MaxPerSec != 1 || got.OK {
		t.Errorf("chat.update = %+v, want 51 calls in one minute, flagged over T3", got)
	}
	if got := u["conversations.create"]; got.MaxPerMin != 1 || !got.OK {
		t.Errorf("conversations.create = %+v, want at most 1 in any minute, within T2", got)
	}
}

// The replay keeps the far ends' full latency, counts what a step took
// beyond its scaled wait and the gaps between steps in real seconds, and
// adds the production poll overshoot: a → b with a waiting 10 min at 100×
// (6 s) that really took 6.5 s, b starting 0.2 s after a and taking 1 s.
func TestReplayCountsOwnTimeOnceAndFarEndsAtFullScale(t *testing.T) {
	noop := func(context.Context, *recovery.StepContext) (recovery.Result, error) { return recovery.Result{}, nil }
	book, err := recovery.NewRunbook([]recovery.Step{
		{ID: "a", Title: "a", Phase: recovery.PhaseProvision, Action: noop},
		{ID: "b", Title: "b", Phase: recovery.PhaseDeploy, DependsOn: []string{"a"}, Action: noop},
	})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	recs := map[string]state.StepRecord{
		"a": {StartedAt: at(100), FinishedAt: at(6600)},
		"b": {StartedAt: at(6800), FinishedAt: at(7800)},
	}
	lat := map[string]time.Duration{"a": 10 * time.Minute}
	polls := map[string]time.Duration{"a": 7 * time.Second}
	got, steps := replayMTTR(book, recs, t0, lat, polls, 100)
	// a: starts 0.1 s in, 10 min + 0.5 s own + 7 s poll; b: 0.2 s later, 1 s.
	want := 100*time.Millisecond + 10*time.Minute + 500*time.Millisecond + 7*time.Second + 200*time.Millisecond + time.Second
	if got != want {
		t.Errorf("replayed MTTR = %s, want %s (steps %v)", got, want, steps)
	}
	if naive := recs["b"].FinishedAt.Sub(t0) * 100; naive <= got {
		t.Errorf("the naive model (%s) should exceed the replay (%s): it multiplies own time by the speed", naive, got)
	}
}
