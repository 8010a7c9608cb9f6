package helm

import (
	"context"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/kube"
	"k8s.io/client-go/kubernetes"
)

// quickWait replaces Helm's wait, which looks every 2 seconds: it looks
// after 100 ms, then half as long again each time, up to every 2 s. A
// chart whose pods are Ready in a second is noticed at once, and a world
// whose far ends answer 200 times faster (`make bench`) is not waited on
// in steps of 2 s.
type quickWait struct {
	kube.Interface
	cs  kubernetes.Interface
	log func(string, ...any)
}

const (
	quickWaitFirst = 100 * time.Millisecond
	quickWaitMax   = 2 * time.Second
)

func (q *quickWait) Wait(resources kube.ResourceList, timeout time.Duration) error {
	return q.wait(resources, timeout, false)
}

func (q *quickWait) WaitWithJobs(resources kube.ResourceList, timeout time.Duration) error {
	return q.wait(resources, timeout, true)
}

// wait checks every resource with Helm's own ReadyChecker until all are
// ready or timeout passes; errors reading a resource count as not ready
// yet, like Helm's retries, and the last one is returned at the timeout.
func (q *quickWait) wait(resources kube.ResourceList, timeout time.Duration, jobs bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	checker := kube.NewReadyChecker(q.cs, q.log, kube.PausedAsReady(true), kube.CheckJobs(jobs))
	pause := quickWaitFirst
	for {
		var last error
		ready := true
		for _, r := range resources {
			ok, err := checker.IsReady(ctx, r)
			if err != nil {
				last = err
			}
			if !ok {
				ready = false
				break
			}
		}
		if ready {
			return nil
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			if last != nil {
				return fmt.Errorf("resources not ready after %s: %w", timeout, last)
			}
			return fmt.Errorf("resources not ready after %s: %w", timeout, ctx.Err())
		case <-t.C:
		}
		pause = min(pause*3/2, quickWaitMax)
	}
}
