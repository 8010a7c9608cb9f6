package kubeenv_test

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drbot/drbot/test/kubeenv"
)

// KWOK really holds the pods: a pod in the delayed namespace stays
// unready for the delay while one elsewhere is Ready at once.
func TestPodReadyDelaysHoldPodsInTheirNamespacesOnly(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	const delay = 4 * time.Second
	c := kubeenv.Start(t, kubeenv.WithName("stages"), kubeenv.WithCRDs(""), kubeenv.WithPodReadyDelays(
		kubeenv.PodReadyDelay{Namespaces: []string{"slow"}, Min: delay, Max: delay},
		kubeenv.PodReadyDelay{Namespaces: []string{"slow"}, Except: true},
	))
	cs := c.Clientset()
	ctx := testContext(t, 2*time.Minute)
	createNamespace(ctx, t, cs, "slow")
	createNamespace(ctx, t, cs, "fast")
	began := time.Now()
	createDeployment(ctx, t, cs, "slow", "web", 1, nil)
	createDeployment(ctx, t, cs, "fast", "web", 1, nil)

	readyAt := map[string]time.Duration{}
	waitUntil(ctx, t, "both pods Ready", func() (bool, error) {
		for _, ns := range []string{"slow", "fast"} {
			if _, ok := readyAt[ns]; ok {
				continue
			}
			pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
			if err != nil {
				return false, err
			}
			for _, p := range pods.Items {
				for _, cond := range p.Status.Conditions {
					if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
						readyAt[ns] = time.Since(began)
					}
				}
			}
		}
		return len(readyAt) == 2, nil
	})
	t.Logf("ready after: %v", readyAt)
	if readyAt["slow"] < delay {
		t.Errorf("the pod in slow was Ready after %s, want at least %s", readyAt["slow"], delay)
	}
	if readyAt["fast"] >= readyAt["slow"] {
		t.Errorf("the pod in fast was Ready after %s, not before the delayed one (%s)", readyAt["fast"], readyAt["slow"])
	}
}
