package world

import (
	"time"

	"github.com/drbot/drbot/test/awsfake"
)

// Latencies are how long the far ends take to do what drbot asks, before
// any time scaling. The zero value is "instantly".
type Latencies struct {
	EKSControlPlane  time.Duration // CreateCluster → ACTIVE
	NodeGroup        time.Duration // CreateNodegroup → ACTIVE
	EKSAddon         time.Duration // CreateAddon → ACTIVE
	LoadBalancer     time.Duration // CreateLoadBalancer → active
	Route53InSync    time.Duration // ChangeResourceRecordSets → INSYNC
	CloudFrontDeploy time.Duration // UpdateDistribution → Deployed
	// AddonPodsReady is how long an add-on's pods take to become Ready
	// after Helm creates them; AppsHealthySpread spreads the services'
	// pods becoming Ready over that long (Argo CD apps turning Healthy).
	AddonPodsReady    time.Duration
	AppsHealthySpread time.Duration
}

// Scaled divides every latency by speed (speed 200: 12 minutes become 3.6 s).
func (l Latencies) Scaled(speed float64) Latencies {
	if speed <= 0 {
		return l
	}
	s := func(d time.Duration) time.Duration { return time.Duration(float64(d) / speed) }
	return Latencies{
		EKSControlPlane: s(l.EKSControlPlane), NodeGroup: s(l.NodeGroup), EKSAddon: s(l.EKSAddon), LoadBalancer: s(l.LoadBalancer),
		Route53InSync: s(l.Route53InSync), CloudFrontDeploy: s(l.CloudFrontDeploy),
		AddonPodsReady: s(l.AddonPodsReady), AppsHealthySpread: s(l.AppsHealthySpread),
	}
}

// applyAWS sets the AWS stand-in's delays from l where the options leave
// them zero.
func (l Latencies) applyAWS(o *awsfake.Options) {
	set := func(dst *time.Duration, v time.Duration) {
		if *dst == 0 {
			*dst = v
		}
	}
	set(&o.EKSCreateDelay, l.EKSControlPlane)
	set(&o.NodegroupCreateDelay, l.NodeGroup)
	set(&o.AddonCreateDelay, l.EKSAddon)
	set(&o.LBProvisionDelay, l.LoadBalancer)
	set(&o.Edge.Route53SyncDelay, l.Route53InSync)
	set(&o.Edge.CloudFrontDeployDelay, l.CloudFrontDeploy)
}
