package argocd

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"

	"github.com/drbot/drbot/recovery"
)

// AppState is what the wait reads from an Application's status.
type AppState struct {
	Health, Sync string
	// Operation is status.operationState.phase (Running, Succeeded, Failed, Error).
	Operation string
	// Stale: status.sync.comparedTo names another chart, version or
	// destination than the spec, so the status predates the last change.
	Stale bool
	// Problems are the reasons it is not healthy: error conditions, a failed
	// sync, resources that are not Healthy.
	Problems []string
}

// Ready is Synced and Healthy against the current spec.
func (s AppState) Ready() bool { return s.Health == "Healthy" && s.Sync == "Synced" && !s.Stale }

// Bad is a state that should not last: Degraded, a failed sync, or an error
// condition (for example an unknown destination).
func (s AppState) Bad() bool {
	if s.Health == "Degraded" || s.Operation == "Failed" || s.Operation == "Error" {
		return true
	}
	for _, p := range s.Problems {
		if strings.HasPrefix(p, "condition ") {
			return true
		}
	}
	return false
}

func (s AppState) String() string {
	health, sync := s.Health, s.Sync
	if health == "" {
		health = "no health yet"
	}
	if sync == "" {
		sync = "no sync status yet"
	}
	out := health + ", " + sync
	if s.Stale {
		out += " (status not yet compared with the new spec)"
	}
	if len(s.Problems) > 0 {
		out += ": " + strings.Join(s.Problems, "; ")
	}
	return out
}

// ReadAppState reads an Application's status (Argo CD's wording: status.health,
// status.sync, status.operationState, status.conditions, status.resources).
func ReadAppState(app *unstructured.Unstructured) AppState {
	var s AppState
	s.Health, _, _ = unstructured.NestedString(app.Object, "status", "health", "status")
	s.Sync, _, _ = unstructured.NestedString(app.Object, "status", "sync", "status")
	s.Operation, _, _ = unstructured.NestedString(app.Object, "status", "operationState", "phase")

	if cmp, ok, _ := unstructured.NestedMap(app.Object, "status", "sync", "comparedTo"); ok {
		for _, f := range [][]string{{"source", "repoURL"}, {"source", "chart"}, {"source", "targetRevision"}, {"destination", "name"}, {"destination", "server"}, {"destination", "namespace"}} {
			want, _, _ := unstructured.NestedString(app.Object, append([]string{"spec"}, f...)...)
			got, _, _ := unstructured.NestedString(cmp, f...)
			if want != got {
				s.Stale = true
			}
		}
	}
	conds, _, _ := unstructured.NestedSlice(app.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		typ, _ := m["type"].(string)
		msg, _ := m["message"].(string)
		if strings.HasSuffix(typ, "Error") {
			s.Problems = append(s.Problems, fmt.Sprintf("condition %s: %s", typ, msg))
		}
	}
	if s.Operation == "Failed" || s.Operation == "Error" {
		msg, _, _ := unstructured.NestedString(app.Object, "status", "operationState", "message")
		s.Problems = append(s.Problems, "sync "+strings.ToLower(s.Operation)+": "+msg)
	}
	res, _, _ := unstructured.NestedSlice(app.Object, "status", "resources")
	for _, r := range res {
		m, _ := r.(map[string]any)
		h, _, _ := unstructured.NestedString(m, "health", "status")
		if h == "" || h == "Healthy" {
			continue
		}
		kind, _ := m["kind"].(string)
		ns, _ := m["namespace"].(string)
		name, _ := m["name"].(string)
		msg, _, _ := unstructured.NestedString(m, "health", "message")
		line := fmt.Sprintf("%s %s/%s %s", kind, ns, name, h)
		if msg != "" {
			line += " (" + msg + ")"
		}
		s.Problems = append(s.Problems, line)
	}
	sort.Strings(s.Problems)
	return s
}

// waitHealthy watches the Application until it is Synced and Healthy,
// posting a progress line every ProgressEvery. It fails when the
// Application stays bad for DegradedTimeout or is not ready within
// WaitTimeout.
func (a *Argo) waitHealthy(ctx context.Context, sc *recovery.StepContext, apps dynamic.ResourceInterface, name string) error {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, a.opts.WaitTimeout)
	defer cancel()
	tick := time.NewTicker(a.opts.ProgressEvery)
	defer tick.Stop()

	ns := a.namespace()
	var (
		state    AppState
		badSince time.Time
		badTimer *time.Timer
		badC     <-chan time.Time
	)
	defer func() {
		if badTimer != nil {
			badTimer.Stop()
		}
	}()
	// observe reports whether the wait is over.
	observe := func(app *unstructured.Unstructured) bool {
		state = ReadAppState(app)
		switch {
		case state.Bad() && badSince.IsZero():
			badSince = time.Now()
			badTimer = time.NewTimer(a.opts.DegradedTimeout)
			badC = badTimer.C
			sc.Logger.Warn("argo cd application unhealthy", "application", ns+"/"+name, "state", state.String())
		case !state.Bad() && !badSince.IsZero():
			badSince = time.Time{}
			badTimer.Stop()
			badC = nil
		}
		return state.Ready()
	}
	timeout := func() error {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return ctx.Err() // the run is stopping
		}
		return recovery.Permanent(fmt.Errorf(
			"argo cd application %s/%s is not Synced and Healthy after %s (%s): look at it in Argo CD, then Retry",
			ns, name, a.opts.WaitTimeout, state))
	}

	for {
		app, err := apps.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			if ctx.Err() != nil {
				return timeout()
			}
			if apierrors.IsNotFound(err) {
				return recovery.Retryable(fmt.Errorf("argo cd application %s/%s disappeared while drbot waited for it", ns, name))
			}
			return classify(fmt.Errorf("reading argo cd application %s/%s: %w", ns, name, err))
		}
		if observe(app) {
			break
		}
		w, err := apps.Watch(ctx, metav1.ListOptions{
			FieldSelector:   fields.OneTermEqualSelector("metadata.name", name).String(),
			ResourceVersion: app.GetResourceVersion(),
		})
		if err != nil {
			if ctx.Err() != nil {
				return timeout()
			}
			return classify(fmt.Errorf("watching argo cd application %s/%s: %w", ns, name, err))
		}
		done, fired := drain(ctx, w, tick.C, func() <-chan time.Time { return badC }, observe, func() {
			sc.Progress("%s: %s, %s", name, state, time.Since(began).Round(time.Second))
		})
		w.Stop()
		if done {
			break
		}
		if ctx.Err() != nil {
			return timeout()
		}
		if fired {
			return recovery.Permanent(fmt.Errorf(
				"argo cd application %s/%s has been unhealthy for %s: %s; fix the cause in Argo CD or the chart values (addons.karpenter), then Retry",
				ns, name, time.Since(badSince).Round(time.Second), state))
		}
		// The watch ended (server timeout, compaction): read again and
		// resume, after a pause so a failing watch cannot spin.
		select {
		case <-ctx.Done():
			return timeout()
		case <-time.After(200 * time.Millisecond):
		}
	}
	sc.Progress("%s Synced and Healthy after %s", name, time.Since(began).Round(time.Second))
	return nil
}

// drain reads watch events until the Application is ready (done), the
// bad-state timer fires (fired), the watch ends or ctx ends. A deletion or a
// watch error ends the watch too: the caller reads the Application again.
func drain(ctx context.Context, w watch.Interface, tick <-chan time.Time, badC func() <-chan time.Time,
	observe func(*unstructured.Unstructured) bool, progress func()) (done, fired bool) {
	for {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Deleted || ev.Type == watch.Error {
				return false, false
			}
			if app, ok := ev.Object.(*unstructured.Unstructured); ok && observe(app) {
				return true, false
			}
		case <-tick:
			progress()
		case <-badC():
			return false, true
		case <-ctx.Done():
			return false, false
		}
	}
}
