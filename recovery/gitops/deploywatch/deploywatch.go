// Package deploywatch implements deploy.watch: it watches the Argo CD
// Applications in the management cluster (one informer, not a poll per
// Application) until every Application bound for the DR cluster is Synced
// and Healthy, journaling the counts for the status board as they change,
// posting each degraded Application once, and failing at a timeout with
// the names of the stragglers.
package deploywatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/gitops"
)

// StepID is the step this package implements.
const StepID = "deploy.watch"

// ApplicationGVR is Argo CD's Application resource.
var ApplicationGVR = schema.GroupVersionResource{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}

const syncWaveKey = "argocd.argoproj.io/sync-wave"

// Expected names the Applications the merge brings (gitops.GitOps
// implements it), so the watch waits for those Argo CD has not created yet.
type Expected interface {
	ExpectedApps(ctx context.Context, sc *recovery.StepContext) ([]string, error)
}

// Options tune the watch. Config keys that should feed them (not in
// config.Config yet): argocd.management_kubeconfig → Management,
// argocd.deploy_timeout → Timeout, argocd.waves → Waves.
type Options struct {
	// Management is the cluster running Argo CD. Required.
	Management *rest.Config
	// Namespace holding the Applications; default cfg.ArgoCD.Namespace, else "argocd".
	Namespace string
	// Timeout ends the watch with the stragglers named; default 30 minutes.
	Timeout time.Duration
	// SaveEvery is the least time between two journaled counts (the board
	// reads them); default 2 s.
	SaveEvery time.Duration
	// ProgressEvery is the least time between two count lines in the
	// thread; default 30 s.
	ProgressEvery time.Duration
	// Expected, when set, lists the Applications to wait for.
	Expected Expected
	// Waves, when set, adds per-wave counts to the count lines; it must be
	// the list templates.generate annotated the Applications with.
	Waves []gitops.Wave
}

// Watcher serves deploy.watch for every run.
type Watcher struct {
	cfg  *config.Config
	opts Options
}

// New builds the action.
func New(cfg *config.Config, opts Options) *Watcher {
	if opts.Namespace == "" {
		opts.Namespace = cfg.ArgoCD.Namespace
	}
	if opts.Namespace == "" {
		opts.Namespace = "argocd"
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Minute
	}
	if opts.SaveEvery <= 0 {
		opts.SaveEvery = 2 * time.Second
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 30 * time.Second
	}
	return &Watcher{cfg: cfg, opts: opts}
}

// appState is what the watch keeps of an Application.
type appState struct {
	name     string
	bound    bool // destination is the DR cluster
	sync     string
	health   string
	phase    string // operationState.phase
	message  string // why it is degraded
	syncWave string
}

func (a appState) healthy() bool { return a.sync == "Synced" && a.health == "Healthy" }

func (a appState) degraded() bool {
	return a.health == "Degraded" || a.phase == "Failed" || a.phase == "Error"
}

// Counts are what the board shows.
type Counts struct {
	Healthy, Degraded, Progressing, Total int
}

func (c Counts) String() string {
	return fmt.Sprintf("%d/%d healthy · %d degraded · %d progressing", c.Healthy, c.Total, c.Degraded, c.Progressing)
}

func (c Counts) outputs() map[string]string {
	return map[string]string{
		"healthy": strconv.Itoa(c.Healthy), "total": strconv.Itoa(c.Total),
		"degraded": strconv.Itoa(c.Degraded), "progressing": strconv.Itoa(c.Progressing),
	}
}

// OutAppHealth is the output the cutover reads to hold back while a
// critical service is not Healthy: a JSON object, application → health.
const OutAppHealth = "app_health"

// outputs are the counts plus every tracked application's health.
func (v view) outputs() map[string]string {
	out := v.counts.outputs()
	health := map[string]string{}
	for _, a := range v.tracked {
		h := a.health
		if h == "" {
			h = "Unknown"
		}
		if a.health == "Healthy" && a.sync != "Synced" {
			h = "OutOfSync"
		}
		health[a.name] = h
	}
	raw, _ := json.Marshal(health)
	out[OutAppHealth] = string(raw)
	return out
}

// Action is deploy.watch.
func (w *Watcher) Action(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	if w.opts.Management == nil {
		return recovery.Result{}, recovery.Permanent(errors.New("deploy.watch has no management cluster config: set argocd.management_kubeconfig or run drbot in the management cluster"))
	}
	t, ok := w.cfg.Target(sc.Run().Target)
	if !ok {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("target %q is not in the config", sc.Run().Target))
	}
	endpoint, _ := sc.Output("cluster.access", "endpoint")
	endpoint = strings.TrimSuffix(endpoint, "/")
	clusterName := t.DR.ClusterName

	var expected []string
	if w.opts.Expected != nil {
		var err error
		if expected, err = w.opts.Expected.ExpectedApps(ctx, sc); err != nil {
			return recovery.Result{}, fmt.Errorf("listing the Applications the merge brings: %w", err)
		}
	}

	rc := rest.CopyConfig(w.opts.Management)
	rc.Wrap(recovery.StepUserAgentFor(sc.StepID())) // the informer's requests carry no step context
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("building management cluster client: %w", err))
	}
	st := &tracker{apps: map[string]appState{}, dirty: make(chan struct{}, 1)}
	bound := func(u *unstructured.Unstructured) bool {
		name, _, _ := unstructured.NestedString(u.Object, "spec", "destination", "name")
		server, _, _ := unstructured.NestedString(u.Object, "spec", "destination", "server")
		return (name != "" && name == clusterName) || (server != "" && endpoint != "" && strings.TrimSuffix(server, "/") == endpoint)
	}
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, w.opts.Namespace, nil)
	informer := factory.ForResource(ApplicationGVR).Informer()
	if err := informer.SetTransform(slim); err != nil {
		return recovery.Result{}, fmt.Errorf("watching applications: %w", err)
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { st.upsert(obj, bound) },
		UpdateFunc: func(_, obj any) { st.upsert(obj, bound) },
		DeleteFunc: st.remove,
	}); err != nil {
		return recovery.Result{}, fmt.Errorf("watching applications: %w", err)
	}
	stop := make(chan struct{})
	defer func() { close(stop); factory.Shutdown() }()
	factory.Start(stop)
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	synced := cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced)
	cancelSync()
	if !synced {
		if ctx.Err() != nil {
			return recovery.Result{}, ctx.Err()
		}
		return recovery.Result{}, recovery.Retryable(fmt.Errorf("listing applications in namespace %q of the management cluster did not complete within a minute", w.opts.Namespace))
	}

	dst := "cluster " + clusterName
	if endpoint != "" {
		dst += " (" + endpoint + ")"
	}
	sc.Progress("watching the Argo CD Applications in %q bound for %s; %d expected from Git; timeout %s", w.opts.Namespace, dst, len(expected), w.opts.Timeout)

	deadline := time.NewTimer(w.opts.Timeout)
	defer deadline.Stop()
	throttle := time.NewTimer(0)
	defer throttle.Stop()
	var (
		lastSaved    *Counts
		lastLine     time.Time
		lastLineText string
		announced    = map[string]bool{}
		pending      = true // something changed since the last evaluation
	)
	for {
		select {
		case <-ctx.Done():
			return recovery.Result{}, ctx.Err()
		case <-deadline.C:
			v := st.view(expected)
			if lastSaved == nil || *lastSaved != v.counts {
				_ = sc.SaveOutputs(v.outputs())
			}
			return recovery.Result{}, recovery.Permanent(v.timeoutError(w.opts.Timeout, w.opts.Namespace, dst))
		case <-st.dirty:
			pending = true
			continue // evaluate when the throttle allows
		case <-throttle.C:
		}
		throttle.Reset(w.opts.SaveEvery)
		if !pending {
			continue
		}
		pending = false
		v := st.view(expected)
		if lastSaved == nil || *lastSaved != v.counts {
			if err := sc.SaveOutputs(v.outputs()); err != nil {
				return recovery.Result{}, err
			}
			c := v.counts
			lastSaved = &c
		}
		var fresh []string
		for _, a := range v.degraded {
			if !announced[a.name] {
				announced[a.name] = true
				fresh = append(fresh, describe(a))
			}
		}
		if len(fresh) > 0 {
			sc.Progress("degraded: %s", capJoin(fresh, 10, "; "))
		}
		if v.done() {
			sc.Progress("all %d Applications Synced and Healthy", v.counts.Total)
			return recovery.Result{Outputs: v.outputs()}, nil
		}
		line := v.counts.String() + w.waveLine(v)
		if line != lastLineText {
			if time.Since(lastLine) >= w.opts.ProgressEvery {
				sc.Progress("%s", line)
				lastLine, lastLineText = time.Now(), line
			} else {
				pending = true // owed: look again at the next tick
			}
		}
	}
}

func (w *Watcher) waveLine(v view) string {
	if len(w.opts.Waves) == 0 {
		return ""
	}
	n := len(w.opts.Waves)
	healthy, total := make([]int, n), make([]int, n)
	for _, a := range v.tracked {
		wave, err := strconv.Atoi(a.syncWave)
		if err != nil || wave >= 0 || wave < -n {
			continue
		}
		i := wave + n
		total[i]++
		if a.healthy() {
			healthy[i]++
		}
	}
	var parts []string
	for i, wv := range w.opts.Waves {
		parts = append(parts, fmt.Sprintf("%s %d/%d", wv.Name, healthy[i], total[i]))
	}
	return " · " + strings.Join(parts, " · ")
}

func describe(a appState) string {
	if a.message == "" {
		return a.name
	}
	msg := a.message
	if len(msg) > 160 {
		msg = msg[:157] + "..."
	}
	return fmt.Sprintf("%s (%s)", a.name, msg)
}

// slim is the informer's transform: it keeps of an Application only what
// the watch reads, so the cache does not hold every Application's full
// status (its resource tree and history: ~25 KiB decoded each, 38 MiB of
// live heap at 1,500 Applications). It is idempotent, as client-go asks.
func slim(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	meta := map[string]any{}
	full, _ := u.Object["metadata"].(map[string]any)
	for _, k := range []string{"name", "namespace", "uid", "resourceVersion"} {
		if v, ok := full[k].(string); ok {
			meta[k] = v
		}
	}
	if w, ok := u.GetAnnotations()[syncWaveKey]; ok {
		meta["annotations"] = map[string]any{syncWaveKey: w}
	}
	out := map[string]any{"apiVersion": u.GetAPIVersion(), "kind": u.GetKind(), "metadata": meta}
	keep := func(path ...string) {
		if v, ok, _ := unstructured.NestedString(u.Object, path...); ok {
			_ = unstructured.SetNestedField(out, v, path...)
		}
	}
	keep("spec", "destination", "name")
	keep("spec", "destination", "server")
	keep("status", "sync", "status")
	keep("status", "health", "status")
	keep("status", "health", "message")
	keep("status", "operationState", "phase")
	keep("status", "operationState", "message")
	// Of the resources, only the first degraded one with a message:
	// degradedMessage reads no more.
	res, _, _ := unstructured.NestedFieldNoCopy(u.Object, "status", "resources")
	list, _ := res.([]any)
	for _, r := range list {
		rm, _ := r.(map[string]any)
		s, _, _ := unstructured.NestedString(rm, "health", "status")
		m, _, _ := unstructured.NestedString(rm, "health", "message")
		if s == "Degraded" && m != "" {
			_ = unstructured.SetNestedSlice(out, []any{map[string]any{"health": map[string]any{"status": s, "message": m}}}, "status", "resources")
			break
		}
	}
	return &unstructured.Unstructured{Object: out}, nil
}

// tracker holds the informer's view; handlers run on the informer's goroutine.
type tracker struct {
	mu    sync.Mutex
	apps  map[string]appState
	dirty chan struct{}
}

func (t *tracker) upsert(obj any, bound func(*unstructured.Unstructured) bool) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	a := appState{name: u.GetName(), bound: bound(u), syncWave: u.GetAnnotations()[syncWaveKey]}
	a.sync, _, _ = unstructured.NestedString(u.Object, "status", "sync", "status")
	a.health, _, _ = unstructured.NestedString(u.Object, "status", "health", "status")
	a.phase, _, _ = unstructured.NestedString(u.Object, "status", "operationState", "phase")
	if a.degraded() {
		a.message = degradedMessage(u)
	}
	t.mu.Lock()
	t.apps[a.name] = a
	t.mu.Unlock()
	t.poke()
}

func (t *tracker) remove(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return
	}
	t.mu.Lock()
	delete(t.apps, u.GetName())
	t.mu.Unlock()
	t.poke()
}

func (t *tracker) poke() {
	select {
	case t.dirty <- struct{}{}:
	default:
	}
}

// degradedMessage is Argo CD's reason: the app's health message, else the
// first degraded resource's, else the failed operation's.
func degradedMessage(u *unstructured.Unstructured) string {
	if m, _, _ := unstructured.NestedString(u.Object, "status", "health", "message"); m != "" {
		return m
	}
	res, _, _ := unstructured.NestedSlice(u.Object, "status", "resources")
	for _, r := range res {
		rm, _ := r.(map[string]any)
		if s, _, _ := unstructured.NestedString(rm, "health", "status"); s == "Degraded" {
			if m, _, _ := unstructured.NestedString(rm, "health", "message"); m != "" {
				return m
			}
		}
	}
	m, _, _ := unstructured.NestedString(u.Object, "status", "operationState", "message")
	return m
}

// view is one evaluation of the tracked Applications.
type view struct {
	counts   Counts
	tracked  []appState // bound for the DR cluster, by name
	degraded []appState
	missing  []string // expected but not (yet) bound for the DR cluster
}

func (t *tracker) view(expected []string) view {
	t.mu.Lock()
	defer t.mu.Unlock()
	var v view
	for _, a := range t.apps {
		if a.bound {
			v.tracked = append(v.tracked, a)
		}
	}
	sort.Slice(v.tracked, func(i, j int) bool { return v.tracked[i].name < v.tracked[j].name })
	for _, name := range expected {
		if a, ok := t.apps[name]; !ok || !a.bound {
			v.missing = append(v.missing, name)
		}
	}
	sort.Strings(v.missing)
	for _, a := range v.tracked {
		switch {
		case a.healthy():
			v.counts.Healthy++
		case a.degraded():
			v.counts.Degraded++
			v.degraded = append(v.degraded, a)
		default:
			v.counts.Progressing++
		}
	}
	v.counts.Progressing += len(v.missing) // not created yet: still on its way
	v.counts.Total = len(v.tracked) + len(v.missing)
	return v
}

func (v view) done() bool {
	return v.counts.Total > 0 && v.counts.Healthy == v.counts.Total
}

func (v view) timeoutError(timeout time.Duration, ns, dst string) error {
	if v.counts.Total == 0 {
		return fmt.Errorf("no Argo CD Application in namespace %q is bound for %s after %s: check that the app of apps syncs the DR directory, then Retry", ns, dst, timeout)
	}
	var degraded, progressing []string
	for _, a := range v.tracked {
		switch {
		case a.healthy():
		case a.degraded():
			degraded = append(degraded, describe(a))
		default:
			progressing = append(progressing, fmt.Sprintf("%s (%s/%s)", a.name, orUnknown(a.sync), orUnknown(a.health)))
		}
	}
	var parts []string
	if len(degraded) > 0 {
		parts = append(parts, fmt.Sprintf("degraded: %s", capJoin(degraded, 20, "; ")))
	}
	if len(progressing) > 0 {
		parts = append(parts, fmt.Sprintf("not ready: %s", capJoin(progressing, 20, ", ")))
	}
	if len(v.missing) > 0 {
		parts = append(parts, fmt.Sprintf("not created by Argo CD yet: %s", capJoin(v.missing, 20, ", ")))
	}
	return fmt.Errorf("%d of %d Applications not Synced and Healthy after %s — %s. Fix them in Argo CD, then Retry to keep watching, or Skip",
		v.counts.Total-v.counts.Healthy, v.counts.Total, timeout, strings.Join(parts, " · "))
}

func orUnknown(s string) string {
	if s == "" {
		return "Unknown"
	}
	return s
}

func capJoin(items []string, max int, sep string) string {
	if len(items) <= max {
		return strings.Join(items, sep)
	}
	return strings.Join(items[:max], sep) + fmt.Sprintf("%sand %d more", sep, len(items)-max)
}
