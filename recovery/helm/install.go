// Package helm installs drbot's add-ons on the DR cluster with the Helm v3
// library (never the helm binary): a small install-or-upgrade that
// converges on re-runs, and the addons.lbc, addons.istio,
// addons.istio-gateway and addons.vault-injector steps built on it.
//
// Releases are stored as Helm stores them (Secrets in the release
// namespace), so `helm list -A` on the DR cluster shows what drbot did
// and a person can take over with the helm CLI.
package helm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/recovery"
)

// Release is one chart to install, or upgrade, into a namespace.
type Release struct {
	Name      string
	Namespace string
	Chart     ChartRef
	Values    map[string]any
	// Wait makes the install or upgrade wait until its Deployments,
	// StatefulSets, Services… are ready; a release that does not roll out
	// within Timeout is left failed and an error returned.
	Wait    bool
	Timeout time.Duration // default 5m
	// NamespaceLabels are set on the namespace, which is created if missing
	// (e.g. istio-injection=enabled for the gateway's namespace).
	NamespaceLabels map[string]string
	// Starting, when set, is called just before an install or upgrade
	// begins (not when the release is unchanged).
	Starting func(Start)
}

// Start describes an install or upgrade about to begin.
type Start struct {
	Action  Action
	Version string // the chart's
	Reason  string // as in Outcome
	// NotReady says what Helm's wait last found not ready ("Deployment is
	// not ready: ns/name. 0 out of 2 expected pods are ready"), or "".
	NotReady func() string
}

// Action is what InstallOrUpgrade did.
type Action string

const (
	Installed Action = "installed"
	Upgraded  Action = "upgraded"
	Unchanged Action = "unchanged"
	// Completed finishes a revision an interrupted attempt left pending
	// with the same chart and values: its manifest is applied again and
	// waited on, and the revision is marked deployed — no new revision.
	Completed Action = "completed"
)

// Outcome describes the release after InstallOrUpgrade.
type Outcome struct {
	Release   string `json:"release"`
	Namespace string `json:"namespace"`
	Chart     string `json:"chart"`
	Version   string `json:"version"`
	Revision  int    `json:"revision"`
	Action    Action `json:"action"`
	// Reason says why an install or upgrade is (or was) needed: "not
	// installed", "values changed: replicaCount", "chart istiod 1.27.0 → istiod 1.27.1".
	Reason string `json:"reason,omitempty"`
}

// Installer installs charts. The zero value works: charts are cached under
// the user's cache directory and logs are discarded.
type Installer struct {
	// CacheDir holds downloaded chart archives and repository indexes;
	// default <user cache dir>/drbot/helm, or under the temp dir.
	CacheDir string
	Logger   *slog.Logger
	// FetchTimeout bounds each chart repository request (default 1m).
	FetchTimeout time.Duration
	// PlainHTTPRegistries talks to OCI registries over plain http (tests).
	PlainHTTPRegistries bool

	fetchMu sync.Mutex
}

// InstallOrUpgrade installs rel with a default Installer.
func InstallOrUpgrade(ctx context.Context, cfg *rest.Config, rel Release) (Outcome, error) {
	var in Installer
	return in.InstallOrUpgrade(ctx, cfg, rel)
}

// InstallOrUpgrade converges the cluster on rel: it installs when no
// release of that name exists, upgrades when the chart (name or version)
// or the values differ from the deployed release or the last attempt
// failed, and otherwise does nothing — no new revision — beyond checking
// (with Wait) that the release's resources are still ready.
//
// Errors are classified for the engine: a chart that cannot be found or
// rendered, and a rollout that does not finish in time, are permanent (a
// person must fix the cause, then Retry); API throttling and server errors
// are retryable.
func (in *Installer) InstallOrUpgrade(ctx context.Context, cfg *rest.Config, rel Release) (Outcome, error) {
	p, err := in.prepare(ctx, cfg, &rel, true)
	if err != nil {
		return p.out, err
	}
	out, last, ac, what := p.out, p.last, p.ac, p.what

	if out.Action == Completed {
		out.Revision = last.Version
		return out, in.complete(ctx, p, rel)
	}
	if last != nil && last.Info.Status.IsPending() {
		// drbot is the only one installing these releases and runs one
		// attempt of a step at a time, so a pending release is what a
		// crashed attempt left behind; Helm would refuse to upgrade it.
		p.log.Warn("marking a release left pending by an interrupted attempt as failed", "revision", last.Version, "status", last.Info.Status)
		last.SetStatus(release.StatusFailed, "interrupted: drbot restarted during "+string(last.Info.Status))
		if err := ac.Releases.Update(last); err != nil {
			return out, classifyKube(fmt.Errorf("%s: clearing pending revision %d: %w", what, last.Version, err))
		}
	}

	if out.Action == Unchanged {
		out.Revision = last.Version
		if rel.Wait {
			if err := waitReady(ac, last, rel.Timeout); err != nil {
				return out, recovery.Permanent(fmt.Errorf("%s revision %d is deployed but not ready after %s: %w; check its pods (kubectl -n %s get pods), then Retry",
					what, last.Version, rel.Timeout, err, rel.Namespace))
			}
		}
		return out, nil
	}
	var res *release.Release
	if rel.Starting != nil {
		rel.Starting(Start{Action: out.Action, Version: out.Version, Reason: out.Reason, NotReady: p.notes.last})
	}
	if out.Action == Installed {
		inst := action.NewInstall(ac)
		inst.ReleaseName, inst.Namespace = rel.Name, rel.Namespace
		inst.Wait, inst.Timeout = rel.Wait, rel.Timeout
		inst.Replace = last != nil // only an uninstalled release's name
		res, err = inst.RunWithContext(ctx, p.chart, copyValues(p.vals))
	} else {
		up := action.NewUpgrade(ac)
		up.Namespace = rel.Namespace
		up.Wait, up.Timeout = rel.Wait, rel.Timeout
		up.ResetValues = true // the values are exactly ours, never the previous revision's
		up.MaxHistory = 10
		res, err = up.RunWithContext(ctx, rel.Name, p.chart, copyValues(p.vals))
	}
	if res != nil {
		out.Revision = res.Version
	}
	if err != nil {
		verb := "installing"
		if out.Action == Upgraded {
			verb = "upgrading"
		}
		err = fmt.Errorf("%s %s %s as %s: %w", verb, out.Chart, out.Version, what, err)
		switch {
		case ctx.Err() != nil:
			return out, err
		case errors.Is(err, context.DeadlineExceeded):
			last := ""
			if n := p.notes.last(); n != "" {
				last = " (last seen: " + n + ")"
			}
			return out, recovery.Permanent(fmt.Errorf("%w: it did not roll out within %s%s and is left failed; check its pods (kubectl -n %s get pods,events), fix the cause, then Retry",
				err, rel.Timeout, last, rel.Namespace))
		}
		return out, classifyKube(err)
	}
	return out, nil
}

// complete finishes the pending revision left by a crashed attempt: the
// same manifest is applied again (creating what the crash left out), the
// resources are waited on, and the revision becomes the deployed one.
func (in *Installer) complete(ctx context.Context, p prepared, rel Release) error {
	last, ac, what := p.last, p.ac, p.what
	p.log.Info("completing a revision an interrupted attempt left pending", "revision", last.Version, "status", last.Info.Status)
	resources, err := ac.KubeClient.Build(bytes.NewBufferString(last.Manifest), false)
	if err != nil {
		return recovery.Permanent(fmt.Errorf("%s: reading the manifest of pending revision %d: %w", what, last.Version, err))
	}
	if _, err := ac.KubeClient.Update(resources, resources, false); err != nil {
		return classifyKube(fmt.Errorf("%s: applying pending revision %d again: %w", what, last.Version, err))
	}
	if rel.Wait {
		if err := waitReady(ac, last, rel.Timeout); err != nil {
			if ctx.Err() != nil {
				return err
			}
			return recovery.Permanent(fmt.Errorf("%s revision %d did not roll out within %s: %w; check its pods (kubectl -n %s get pods,events), fix the cause, then Retry",
				what, last.Version, rel.Timeout, err, rel.Namespace))
		}
	}
	if last.Info.Status == release.StatusPendingUpgrade {
		// The revision before it stays deployed until this one is: supersede it now.
		if hist, err := ac.Releases.History(rel.Name); err == nil {
			for _, r := range hist {
				if r.Version < last.Version && r.Info.Status == release.StatusDeployed {
					r.SetStatus(release.StatusSuperseded, "superseded by the completed revision")
					if err := ac.Releases.Update(r); err != nil {
						return classifyKube(fmt.Errorf("%s: superseding revision %d: %w", what, r.Version, err))
					}
				}
			}
		}
	}
	last.SetStatus(release.StatusDeployed, "completed after drbot restarted during "+string(last.Info.Status))
	if err := ac.Releases.Update(last); err != nil {
		return classifyKube(fmt.Errorf("%s: marking revision %d deployed: %w", what, last.Version, err))
	}
	return nil
}

// waitNotes keeps the last thing Helm's wait reported as not ready.
type waitNotes struct {
	mu  sync.Mutex
	msg string
}

func (w *waitNotes) observe(msg string) {
	if !strings.Contains(msg, " is not ready: ") && !strings.Contains(msg, " does not have ") &&
		!strings.Contains(msg, " is not bound: ") && !strings.Contains(msg, "Job is ") {
		return
	}
	w.mu.Lock()
	w.msg = msg
	w.mu.Unlock()
}

func (w *waitNotes) last() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.msg
}

// Plan says what InstallOrUpgrade would do now (Outcome.Action and
// Reason; Revision is the current one, 0 when not installed) without
// changing anything. It fetches the chart, so a version missing from the
// repository shows up here.
func (in *Installer) Plan(ctx context.Context, cfg *rest.Config, rel Release) (Outcome, error) {
	p, err := in.prepare(ctx, cfg, &rel, false)
	if p.last != nil {
		p.out.Revision = p.last.Version
	}
	return p.out, err
}

type prepared struct {
	out   Outcome
	what  string
	chart *chart.Chart
	vals  map[string]any
	last  *release.Release // nil when never installed
	ac    *action.Configuration
	log   *slog.Logger
	notes *waitNotes
}

// prepare loads the chart, reads the release's last revision and decides
// what to do (out.Action, out.Reason). With act it first makes the
// namespace, as the install needs it.
func (in *Installer) prepare(ctx context.Context, cfg *rest.Config, rel *Release, act bool) (prepared, error) {
	var p prepared
	if rel.Name == "" || rel.Namespace == "" {
		return p, recovery.Permanent(fmt.Errorf("installing chart %s: release name and namespace are required", rel.Chart))
	}
	if rel.Timeout <= 0 {
		rel.Timeout = 5 * time.Minute
	}
	p.what = fmt.Sprintf("release %s/%s", rel.Namespace, rel.Name)
	ch, err := in.loadChart(rel.Chart)
	if err != nil {
		if errors.Is(err, errChart) {
			return p, recovery.Permanent(fmt.Errorf("%s: %w", p.what, err))
		}
		return p, fmt.Errorf("%s: %w", p.what, err)
	}
	p.chart = ch
	p.out = Outcome{Release: rel.Name, Namespace: rel.Namespace, Chart: ch.Metadata.Name, Version: ch.Metadata.Version}

	getter := newRESTGetter(cfg, rel.Namespace)
	if act {
		restCfg, _ := getter.ToRESTConfig()
		cs, err := kubernetes.NewForConfig(restCfg)
		if err != nil {
			return p, recovery.Permanent(fmt.Errorf("%s: building a Kubernetes client: %w", p.what, err))
		}
		if err := ensureNamespace(ctx, cs, rel.Namespace, rel.NamespaceLabels); err != nil {
			return p, classifyKube(fmt.Errorf("%s: %w", p.what, err))
		}
	}

	p.log = in.logger().With("release", rel.Name, "namespace", rel.Namespace)
	p.notes = &waitNotes{}
	debug := func(format string, v ...any) {
		msg := fmt.Sprintf(format, v...)
		p.notes.observe(msg)
		p.log.Debug(msg)
	}
	p.ac = new(action.Configuration)
	if err := p.ac.Init(getter, rel.Namespace, "secret", debug); err != nil {
		return p, recovery.Permanent(fmt.Errorf("%s: setting up Helm: %w", p.what, err))
	}
	if restCfg, err := getter.ToRESTConfig(); err == nil {
		if cs, err := kubernetes.NewForConfig(restCfg); err == nil {
			p.ac.KubeClient = &quickWait{Interface: p.ac.KubeClient, cs: cs, log: debug}
		}
	}
	if p.vals, err = normalize(rel.Values); err != nil {
		return p, recovery.Permanent(fmt.Errorf("%s: values: %w", p.what, err))
	}
	p.last, err = p.ac.Releases.Last(rel.Name)
	switch {
	case errors.Is(err, driver.ErrReleaseNotFound):
		p.last = nil
	case err != nil:
		return p, classifyKube(fmt.Errorf("%s: reading release history: %w", p.what, err))
	}
	p.out.Action, p.out.Reason, err = decide(p.last, ch, p.vals)
	if err != nil {
		return p, recovery.Permanent(fmt.Errorf("%s: %w", p.what, err))
	}
	return p, nil
}

// decide compares the last revision with the chart and values wanted.
func decide(last *release.Release, ch *chart.Chart, vals map[string]any) (Action, string, error) {
	switch {
	case last == nil:
		return Installed, "not installed", nil
	case last.Info.Status == release.StatusUninstalled:
		// Uninstalled with its history kept: Helm upgrades refuse it; an
		// install may take the name again.
		return Installed, fmt.Sprintf("revision %d was uninstalled", last.Version), nil
	case last.Info.Status.IsPending():
		if (last.Info.Status == release.StatusPendingInstall || last.Info.Status == release.StatusPendingUpgrade) && sameChart(last.Chart, ch) {
			if cfg, err := normalize(last.Config); err == nil && len(diffKeys("", cfg, vals)) == 0 {
				return Completed, fmt.Sprintf("revision %d was left %s by an interrupted attempt", last.Version, last.Info.Status), nil
			}
		}
		return Upgraded, fmt.Sprintf("revision %d was left %s by an interrupted attempt", last.Version, last.Info.Status), nil
	case last.Info.Status != release.StatusDeployed:
		return Upgraded, fmt.Sprintf("revision %d is %s", last.Version, last.Info.Status), nil
	case !sameChart(last.Chart, ch):
		from := "unknown chart"
		if last.Chart != nil && last.Chart.Metadata != nil {
			from = last.Chart.Metadata.Name + " " + last.Chart.Metadata.Version
		}
		return Upgraded, fmt.Sprintf("chart %s → %s %s", from, ch.Metadata.Name, ch.Metadata.Version), nil
	}
	deployed, err := normalize(last.Config)
	if err != nil {
		return "", "", fmt.Errorf("reading deployed values: %w", err)
	}
	if changed := diffKeys("", deployed, vals); len(changed) > 0 {
		return Upgraded, "values changed: " + strings.Join(changed, ", "), nil
	}
	return Unchanged, "", nil
}

// diffKeys lists the dotted keys whose values differ (names only: values
// may hold things not meant for a chat thread).
func diffKeys(prefix string, a, b map[string]any) []string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var out []string
	for k := range keys {
		am, aIsMap := a[k].(map[string]any)
		bm, bIsMap := b[k].(map[string]any)
		switch {
		case aIsMap && bIsMap:
			out = append(out, diffKeys(prefix+k+".", am, bm)...)
		case !reflect.DeepEqual(a[k], b[k]):
			out = append(out, prefix+k)
		}
	}
	sort.Strings(out)
	return out
}

func (in *Installer) logger() *slog.Logger {
	if in.Logger != nil {
		return in.Logger
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func (in *Installer) cacheDir() string {
	if in.CacheDir != "" {
		return in.CacheDir
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "drbot", "helm")
	}
	return filepath.Join(os.TempDir(), "drbot-helm")
}

func sameChart(deployed, want *chart.Chart) bool {
	return deployed != nil && deployed.Metadata != nil &&
		deployed.Metadata.Name == want.Metadata.Name && deployed.Metadata.Version == want.Metadata.Version
}

// waitReady waits for the resources of a deployed release, as Helm's own
// wait would after an install.
func waitReady(ac *action.Configuration, rel *release.Release, timeout time.Duration) error {
	resources, err := ac.KubeClient.Build(bytes.NewBufferString(rel.Manifest), false)
	if err != nil {
		return fmt.Errorf("reading the release manifest: %w", err)
	}
	return ac.KubeClient.Wait(resources, timeout)
}

// ensureNamespace creates the namespace, or adds missing labels to it.
func ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string, labels map[string]string) error {
	ns, err := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{})
		if err == nil || !apierrors.IsAlreadyExists(err) {
			if err != nil {
				return fmt.Errorf("creating namespace %q: %w", name, err)
			}
			return nil
		}
		ns, err = cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("reading namespace %q: %w", name, err)
	}
	missing := map[string]string{}
	for k, v := range labels {
		if ns.Labels[k] != v {
			missing[k] = v
		}
	}
	if len(missing) == 0 {
		return nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": missing}})
	if _, err := cs.CoreV1().Namespaces().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: fieldManager}); err != nil {
		return fmt.Errorf("labelling namespace %q: %w", name, err)
	}
	return nil
}

// classifyKube marks Kubernetes API errors worth retrying (throttling,
// server errors, timeouts); the engine's own rules decide the rest.
func classifyKube(err error) error {
	switch {
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err):
		return recovery.Retryable(err)
	}
	return err
}

// normalize gives values the shape Helm stores them in (JSON: numbers are
// float64, maps are map[string]any), so config values compare equal to a
// deployed release's.
func normalize(v map[string]any) (map[string]any, error) {
	if v == nil {
		return map[string]any{}, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// copyValues hands Helm its own copy: it may add to the map while
// processing dependencies.
func copyValues(v map[string]any) map[string]any {
	out, err := normalize(v)
	if err != nil {
		return map[string]any{}
	}
	return out
}
