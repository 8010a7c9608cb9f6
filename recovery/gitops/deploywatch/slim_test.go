package deploywatch

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// fullApplication is an Application as Argo CD stores it: a resource tree,
// history and managed fields the watch never reads.
func fullApplication(health string) *unstructured.Unstructured {
	var res []any
	for i := 0; i < 40; i++ {
		h := map[string]any{"status": "Healthy"}
		if i == 7 && health == "Degraded" {
			h = map[string]any{"status": "Degraded", "message": "Deployment svc-7 exceeded its progress deadline"}
		}
		res = append(res, map[string]any{"kind": "Deployment", "name": fmt.Sprintf("svc-%d", i), "namespace": "svc", "version": "v1", "group": "apps", "health": h, "status": "Synced"})
	}
	var history []any
	for i := 0; i < 10; i++ {
		history = append(history, map[string]any{"id": int64(i), "revision": fmt.Sprintf("%040d", i), "deployedAt": "2026-11-26T00:00:00Z"})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "argoproj.io/v1alpha1",
		"kind":       "Application",
		"metadata": map[string]any{
			"name": "svc-1", "namespace": "argocd", "uid": "0b9c1d2e", "resourceVersion": "4711",
			"annotations":   map[string]any{syncWaveKey: "2", "kubectl.kubernetes.io/last-applied-configuration": string(make([]byte, 2048))},
			"managedFields": []any{map[string]any{"manager": "argocd-application-controller", "fieldsV1": map[string]any{"f:status": map[string]any{}}}},
		},
		"spec": map[string]any{
			"destination": map[string]any{"name": "prod-eu-dr", "server": "https://dr.example", "namespace": "svc"},
			"source":      map[string]any{"repoURL": "https://gitlab.example/ops/apps.git", "path": "svc-1", "targetRevision": "main"},
		},
		"status": map[string]any{
			"sync":           map[string]any{"status": "Synced", "revision": "abc"},
			"health":         map[string]any{"status": health},
			"operationState": map[string]any{"phase": "Succeeded", "message": "successfully synced", "syncResult": map[string]any{"resources": res}},
			"resources":      res,
			"history":        history,
		},
	}}
}

func TestSlimKeepsWhatTheWatchReadsAndDropsTheRest(t *testing.T) {
	bound := func(u *unstructured.Unstructured) bool {
		n, _, _ := unstructured.NestedString(u.Object, "spec", "destination", "name")
		return n == "prod-eu-dr"
	}
	for _, health := range []string{"Healthy", "Progressing", "Degraded"} {
		full := fullApplication(health)
		raw, _ := json.Marshal(full.Object)
		out, err := slim(full.DeepCopy())
		if err != nil {
			t.Fatal(err)
		}
		small := out.(*unstructured.Unstructured)

		// The tracker sees the same Application through either.
		a, b := &tracker{apps: map[string]appState{}, dirty: make(chan struct{}, 1)}, &tracker{apps: map[string]appState{}, dirty: make(chan struct{}, 1)}
		a.upsert(full, bound)
		b.upsert(small, bound)
		if !reflect.DeepEqual(a.apps, b.apps) {
			t.Errorf("%s: the watch reads %+v from the slim object, %+v from the full one", health, b.apps, a.apps)
		}
		if health == "Degraded" && b.apps["svc-1"].message == "" {
			t.Errorf("%s: the degraded resource's message was dropped", health)
		}
		if small.GetResourceVersion() != "4711" || small.GetUID() != "0b9c1d2e" || small.GetNamespace() != "argocd" {
			t.Errorf("%s: the slim object lost metadata the informer needs: %v", health, small.Object["metadata"])
		}
		slimRaw, _ := json.Marshal(small.Object)
		if len(slimRaw)*10 > len(raw) {
			t.Errorf("%s: slim object is %d bytes of JSON, the full one %d: want it under a tenth", health, len(slimRaw), len(raw))
		}
		// client-go may transform an object twice.
		again, _ := slim(small.DeepCopy())
		if !reflect.DeepEqual(again.(*unstructured.Unstructured).Object, small.Object) {
			t.Errorf("%s: slim is not idempotent:\n%v\n%v", health, again, small)
		}
	}
}

func TestSlimPassesThroughWhatIsNotAnApplication(t *testing.T) {
	in := "tombstone"
	if out, err := slim(in); err != nil || out != in {
		t.Errorf("slim(%q) = %v, %v; want it unchanged", in, out, err)
	}
}
