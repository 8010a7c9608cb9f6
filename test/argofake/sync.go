package argofake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Status values, as Argo CD writes them.
const (
	SyncSynced    = "Synced"
	SyncOutOfSync = "OutOfSync"
	SyncUnknown   = "Unknown"

	HealthHealthy     = "Healthy"
	HealthProgressing = "Progressing"
	HealthDegraded    = "Degraded"
	HealthSuspended   = "Suspended"
	HealthMissing     = "Missing"
	HealthUnknown     = "Unknown"

	PhaseSucceeded = "Succeeded"
	PhaseFailed    = "Failed"

	ConditionInvalidSpec = "InvalidSpecError"
	ConditionComparison  = "ComparisonError"
)

// round caches what one pass reads from the clusters.
type round struct {
	clusters []*cluster
	mu       sync.Mutex          // Applications are reconciled in parallel
	live     map[string]*liveSet // by cluster key
}

type liveSet struct {
	deployments map[string]*appsv1.Deployment // by namespace/name
	err         error
}

// liveDeployments lists, once per pass and destination, the Deployments the stand-in tracks.
func (r *round) liveDeployments(ctx context.Context, cl *cluster, d *destination) (*liveSet, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ls, ok := r.live[cl.key]; ok {
		return ls, ls.err
	}
	ls := &liveSet{deployments: map[string]*appsv1.Deployment{}}
	list, err := d.cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{LabelSelector: InstanceLabel})
	if err != nil {
		ls.err = fmt.Errorf("listing deployments in cluster %q: %w", cl.server, err)
	} else {
		for i := range list.Items {
			dep := &list.Items[i]
			ls.deployments[dep.Namespace+"/"+dep.Name] = dep
		}
	}
	r.live[cl.key] = ls
	return ls, ls.err
}

func (c *Controller) reconcileAll(ctx context.Context) error {
	ns := c.opts.Namespace
	apps, err := c.dyn.Resource(ApplicationGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing applications in %q: %w", ns, err)
	}
	clusters, err := c.listClusters(ctx)
	if err != nil {
		return err
	}
	r := &round{clusters: clusters, live: map[string]*liveSet{}}
	// Like Argo CD's controller (10 operation processors), several
	// Applications at a time: one by one, 150 of them took a pass of
	// seconds and the stand-in, not drbot, set the pace of a deploy.
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	work := make(chan *unstructured.Unstructured)
	for range reconcileWorkers {
		wg.Go(func() {
			for app := range work {
				if err := c.reconcileApp(ctx, app, r); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := range apps.Items {
		if ctx.Err() != nil {
			break
		}
		work <- &apps.Items[i]
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.Join(errs...)
}

// reconcileWorkers is how many Applications a pass reconciles at once.
const reconcileWorkers = 10

func (r *round) deployment(ls *liveSet, key string) *appsv1.Deployment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ls.deployments[key]
}

func (r *round) setDeployment(ls *liveSet, key string, d *appsv1.Deployment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ls.deployments[key] = d
}

// outcome is what one reconciliation found out about an Application.
type outcome struct {
	sync       string
	health     string
	conditions []condition
	spec       *appSpec
	cluster    *cluster
	live       *appsv1.Deployment
	desired    *appsv1.Deployment
	healthMsg  string
	op         *operation // nil: keep the previous operationState
}

type condition struct{ typ, message string }

type operation struct {
	phase, message string
	verb           string // created, configured, unchanged
	fresh          bool   // a new operation, not the previous one repeated
}

func (c *Controller) reconcileApp(ctx context.Context, app *unstructured.Unstructured, r *round) error {
	spec, specErr := parseSpec(app)
	if app.GetDeletionTimestamp() != nil {
		return c.finalize(ctx, app, spec, r)
	}
	o := c.evaluate(ctx, app, spec, specErr, r)
	return c.writeStatus(ctx, app, o)
}

func (c *Controller) evaluate(ctx context.Context, app *unstructured.Unstructured, spec *appSpec, specErr error, r *round) *outcome {
	o := &outcome{sync: SyncUnknown, health: HealthUnknown, spec: spec}
	if specErr != nil {
		o.conditions = []condition{{ConditionInvalidSpec, specErr.Error()}}
		return o
	}
	cl, err := resolve(r.clusters, spec.destName, spec.destServer)
	if err != nil {
		o.conditions = []condition{{ConditionInvalidSpec, err.Error()}}
		return o
	}
	o.cluster = cl
	dest, err := c.connect(cl)
	if err != nil {
		o.conditions = []condition{{ConditionComparison, err.Error()}}
		return o
	}
	live, err := r.liveDeployments(ctx, cl, dest)
	if err != nil {
		o.conditions = []condition{{ConditionComparison, err.Error()}}
		return o
	}
	desired, err := desiredDeployment(app.GetName(), spec, int32(c.opts.ProgressDeadline/time.Second))
	if err != nil {
		o.conditions = []condition{{ConditionComparison, "Failed to load target state: " + err.Error()}}
		return o
	}
	o.desired = desired
	key := desired.Namespace + "/" + desired.Name
	o.live = r.deployment(live, key)

	if spec.automated {
		obj, verb, err := c.apply(ctx, dest, spec, desired, o.live)
		if err != nil {
			o.op = &operation{phase: PhaseFailed, message: "one or more objects failed to apply, reason: " + err.Error()}
			c.log.Warn("sync failed", "application", app.GetName(), "err", err)
		} else {
			o.op = &operation{phase: PhaseSucceeded, message: "successfully synced (all tasks run)", verb: verb, fresh: verb != "unchanged"}
			o.live = obj
			r.setDeployment(live, key, obj)
		}
	}

	if o.live != nil && !drifted(desired, o.live) {
		o.sync = SyncSynced
	} else {
		o.sync = SyncOutOfSync
	}
	if o.live == nil {
		o.health = HealthMissing
	} else {
		o.health, o.healthMsg = deploymentHealth(o.live)
	}
	return o
}

// apply makes the destination match: the namespace when CreateNamespace=true, then the Deployment.
// It returns the Deployment as it now is and Argo CD's verb for the result.
func (c *Controller) apply(ctx context.Context, d *destination, spec *appSpec, desired, live *appsv1.Deployment) (*appsv1.Deployment, string, error) {
	if live != nil && !drifted(desired, live) {
		return live, "unchanged", nil
	}
	if live == nil && spec.createNamespace {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: desired.Namespace}}
		if _, err := d.cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, "", fmt.Errorf("creating namespace %q: %w", desired.Namespace, err)
		}
	}
	deps := d.cs.AppsV1().Deployments(desired.Namespace)
	if live == nil {
		obj, err := deps.Create(ctx, desired, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Made by someone else, or by us in a pass whose list did not see it yet: adopt and compare.
			obj, err = deps.Get(ctx, desired.Name, metav1.GetOptions{})
			if err != nil {
				return nil, "", err
			}
			return c.apply(ctx, d, spec, desired, obj)
		}
		if err != nil {
			// The API server's own message, e.g. `namespaces "payments" not found` without CreateNamespace=true.
			return nil, "", err
		}
		return obj, "created", nil
	}
	upd := live.DeepCopy()
	for k, v := range desired.Labels {
		if upd.Labels == nil {
			upd.Labels = map[string]string{}
		}
		upd.Labels[k] = v
	}
	for k, v := range desired.Annotations {
		if upd.Annotations == nil {
			upd.Annotations = map[string]string{}
		}
		upd.Annotations[k] = v
	}
	upd.Spec.Replicas = desired.Spec.Replicas
	upd.Spec.ProgressDeadlineSeconds = desired.Spec.ProgressDeadlineSeconds
	upd.Spec.Template.Spec.Containers = desired.Spec.Template.Spec.Containers
	obj, err := deps.Update(ctx, upd, metav1.UpdateOptions{})
	if err != nil {
		return nil, "", err
	}
	return obj, "configured", nil
}

// drifted reports whether the live Deployment differs from the desired one in what the stand-in manages.
func drifted(desired, live *appsv1.Deployment) bool {
	if live.Labels[InstanceLabel] != desired.Labels[InstanceLabel] {
		return true
	}
	if *desired.Spec.Replicas != ptrValue(live.Spec.Replicas, 1) ||
		*desired.Spec.ProgressDeadlineSeconds != ptrValue(live.Spec.ProgressDeadlineSeconds, 600) {
		return true
	}
	dc, lc := desired.Spec.Template.Spec.Containers, live.Spec.Template.Spec.Containers
	if len(dc) != len(lc) {
		return true
	}
	for i := range dc {
		if dc[i].Name != lc[i].Name || dc[i].Image != lc[i].Image ||
			!equality.Semantic.DeepEqual(dc[i].Resources.Requests, lc[i].Resources.Requests) ||
			!equality.Semantic.DeepEqual(dc[i].Resources.Limits, lc[i].Resources.Limits) {
			return true
		}
	}
	return false
}

func ptrValue[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// deploymentHealth is Argo CD's Deployment health check (gitops-engine pkg/health/health_deployment.go, after
// kubectl rollout status).
func deploymentHealth(d *appsv1.Deployment) (string, string) {
	if d.Spec.Paused {
		return HealthSuspended, "Deployment is paused"
	}
	if d.Generation > d.Status.ObservedGeneration {
		return HealthProgressing, "Waiting for rollout to finish: observed deployment generation less than desired generation"
	}
	for _, cond := range d.Status.Conditions {
		if cond.Type == appsv1.DeploymentProgressing && cond.Reason == "ProgressDeadlineExceeded" {
			return HealthDegraded, fmt.Sprintf("Deployment %q exceeded its progress deadline", d.Name)
		}
	}
	st := d.Status
	switch {
	case d.Spec.Replicas != nil && st.UpdatedReplicas < *d.Spec.Replicas:
		return HealthProgressing, fmt.Sprintf("Waiting for rollout to finish: %d out of %d new replicas have been updated...", st.UpdatedReplicas, *d.Spec.Replicas)
	case st.Replicas > st.UpdatedReplicas:
		return HealthProgressing, fmt.Sprintf("Waiting for rollout to finish: %d old replicas are pending termination...", st.Replicas-st.UpdatedReplicas)
	case st.AvailableReplicas < st.UpdatedReplicas:
		return HealthProgressing, fmt.Sprintf("Waiting for rollout to finish: %d of %d updated replicas are available...", st.AvailableReplicas, st.UpdatedReplicas)
	}
	return HealthHealthy, ""
}

// finalize handles a deleted Application: with Argo CD's resources finalizer it deletes what was deployed
// and then lets the Application go.
func (c *Controller) finalize(ctx context.Context, app *unstructured.Unstructured, spec *appSpec, r *round) error {
	var keep []string
	found := false
	for _, f := range app.GetFinalizers() {
		if f == ResourcesFinalizer || strings.HasPrefix(f, ResourcesFinalizer+"/") {
			found = true
			continue
		}
		keep = append(keep, f)
	}
	if !found {
		return nil
	}
	if spec != nil {
		// An unknown destination leaves nothing to delete, as in Argo CD.
		if cl, err := resolve(r.clusters, spec.destName, spec.destServer); err == nil {
			d, err := c.connect(cl)
			if err != nil {
				return fmt.Errorf("deleting resources of application %q: %w", app.GetName(), err)
			}
			err = d.cs.AppsV1().Deployments(spec.namespace).Delete(ctx, app.GetName(), metav1.DeleteOptions{})
			if err != nil && !apierrors.IsNotFound(err) {
				return fmt.Errorf("deleting deployment %s/%s of application %q: %w", spec.namespace, app.GetName(), app.GetName(), err)
			}
		}
	}
	app = app.DeepCopy()
	app.SetFinalizers(keep)
	if _, err := c.dyn.Resource(ApplicationGVR).Namespace(app.GetNamespace()).Update(ctx, app, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing finalizer of application %q: %w", app.GetName(), err)
	}
	c.log.Info("deleted application resources", "application", app.GetName())
	return nil
}

// writeStatus writes the status subresource when something other than timestamps changed.
func (c *Controller) writeStatus(ctx context.Context, app *unstructured.Unstructured, o *outcome) error {
	old, _, _ := unstructured.NestedMap(app.Object, "status")
	if old == nil {
		old = map[string]any{}
	}
	now := time.Now().UTC().Format(time.RFC3339)
	revision := app.GetAnnotations()[RevisionAnnotation]
	if revision == "" && o.spec != nil {
		// Not from the app of apps: Argo CD would resolve targetRevision; for a chart that is the version.
		revision = o.spec.targetRevision
	}

	st := map[string]any{}
	syncSt := map[string]any{"status": o.sync}
	if o.sync != SyncUnknown && revision != "" {
		syncSt["revision"] = revision
	}
	if cmp := comparedTo(app); cmp != nil && o.sync != SyncUnknown {
		syncSt["comparedTo"] = cmp
	}
	st["sync"] = syncSt
	st["health"] = map[string]any{"status": o.health}
	if o.spec != nil && o.spec.sourceType != "" {
		st["sourceType"] = o.spec.sourceType
	}
	if len(o.conditions) > 0 {
		oldConds, _ := old["conditions"].([]any)
		var conds []any
		for _, cond := range o.conditions {
			ts := now
			for _, oc := range oldConds {
				m, _ := oc.(map[string]any)
				if m["type"] == cond.typ && m["message"] == cond.message {
					if t, ok := m["lastTransitionTime"].(string); ok {
						ts = t
					}
				}
			}
			conds = append(conds, map[string]any{"type": cond.typ, "message": cond.message, "lastTransitionTime": ts})
		}
		st["conditions"] = conds
	}
	if o.desired != nil {
		res := map[string]any{
			"group": "apps", "version": "v1", "kind": "Deployment",
			"namespace": o.desired.Namespace, "name": o.desired.Name,
			"status": o.sync,
		}
		h := map[string]any{"status": o.health}
		if o.healthMsg != "" {
			h["message"] = o.healthMsg
		}
		res["health"] = h
		st["resources"] = []any{res}
		st["summary"] = map[string]any{"images": []any{o.desired.Spec.Template.Spec.Containers[0].Image}}
	}

	if op := c.operationState(old, o, revision, now); op != nil {
		st["operationState"] = op
	}
	if v, ok := old["reconciledAt"]; ok {
		st["reconciledAt"] = v
	}
	if equality.Semantic.DeepEqual(old, st) {
		return nil
	}
	st["reconciledAt"] = now
	upd := app.DeepCopy()
	upd.Object["status"] = st
	if _, err := c.dyn.Resource(ApplicationGVR).Namespace(app.GetNamespace()).UpdateStatus(ctx, upd, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			return nil // changed or gone since the list; the next pass sees it again
		}
		return fmt.Errorf("updating status of application %q: %w", app.GetName(), err)
	}
	c.log.Info("application status", "application", app.GetName(), "sync", o.sync, "health", o.health, "revision", revision)
	return nil
}

// operationState keeps the previous operation unless this pass ran a different one.
func (c *Controller) operationState(old map[string]any, o *outcome, revision, now string) map[string]any {
	prev, _ := old["operationState"].(map[string]any)
	if o.op == nil {
		return prev
	}
	if prev != nil && !o.op.fresh {
		prevRev, _, _ := unstructured.NestedString(prev, "operation", "sync", "revision")
		prevPhase, _ := prev["phase"].(string)
		prevMsg, _ := prev["message"].(string)
		if prevRev == revision && prevPhase == o.op.phase && prevMsg == o.op.message {
			return prev
		}
	}
	op := map[string]any{
		"operation": map[string]any{
			"sync":        map[string]any{"revision": revision},
			"initiatedBy": map[string]any{"automated": true},
			"retry":       map[string]any{},
		},
		"phase":      o.op.phase,
		"message":    o.op.message,
		"startedAt":  now,
		"finishedAt": now,
	}
	if o.op.phase == PhaseSucceeded && o.desired != nil {
		result := map[string]any{
			"revision": revision,
			"resources": []any{map[string]any{
				"group": "apps", "version": "v1", "kind": "Deployment",
				"namespace": o.desired.Namespace, "name": o.desired.Name,
				"status": "Synced", "message": "deployment.apps/" + o.desired.Name + " " + o.op.verb,
				"hookPhase": "Running", "syncPhase": "Sync",
			}},
		}
		op["syncResult"] = result
	}
	return op
}

func comparedTo(app *unstructured.Unstructured) map[string]any {
	out := map[string]any{}
	if dst, ok, _ := unstructured.NestedMap(app.Object, "spec", "destination"); ok {
		out["destination"] = dst
	}
	if src, ok, _ := unstructured.NestedMap(app.Object, "spec", "source"); ok {
		out["source"] = src
	} else if srcs, ok, _ := unstructured.NestedSlice(app.Object, "spec", "sources"); ok {
		out["sources"] = srcs
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
