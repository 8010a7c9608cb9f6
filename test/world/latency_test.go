package world

import (
	"testing"
	"time"
)

// The realistic table divided by the bench's 200: EKS's 12 minutes
// become 3.6 s, and the pod delays reach KWOK as two stages that cover
// every namespace between them.
func TestRealisticScaledGivesTheAWSDelaysAndTwoPodStages(t *testing.T) {
	l := Realistic().Scaled(200)
	if l.EKSControlPlane != 3600*time.Millisecond || l.CloudFrontDeploy != 1500*time.Millisecond || l.AppsHealthySpread != 1800*time.Millisecond {
		t.Errorf("Realistic().Scaled(200) = %+v", l)
	}
	d := l.podReadyDelays([]string{"payments", "orders"})
	if len(d) != 2 {
		t.Fatalf("pod delays = %+v, want two stages", d)
	}
	apps, addons := d[0], d[1]
	if apps.Except || apps.Min != 0 || apps.Max != l.AppsHealthySpread || len(apps.Namespaces) != 2 {
		t.Errorf("services' stage = %+v, want Ready within %s in their namespaces", apps, l.AppsHealthySpread)
	}
	if !addons.Except || addons.Min != l.AddonPodsReady || addons.Max != l.AddonPodsReady {
		t.Errorf("add-ons' stage = %+v, want %s everywhere else", addons, l.AddonPodsReady)
	}
	if got := (Latencies{}).podReadyDelays([]string{"payments"}); got != nil {
		t.Errorf("zero latencies gave pod stages %+v, want none (KWOK's immediate stage)", got)
	}
}
