package world

import (
	"time"

	"github.com/drbot/drbot/test/awsfake"
	"github.com/drbot/drbot/test/kubeenv"
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

// Realistic is how long the far ends take in AWS, from the sources below;
// `make bench` runs the recovery against Realistic().Scaled(200).
//
//	far end                            latency    source
//	EKS control plane (CreateCluster → 12 min     AWS: "creation takes several minutes"; measured 13–16 min
//	  ACTIVE)                                     per region (easontechtalk.com/unofficial-eks-cluster-creation-
//	                                              performance-across-aws-regions, 21 regions, eu-central-1 15:16)
//	managed node group (CreateNodegroup 4 min     EC2 launch + bootstrap + node Ready; the usual eksctl figure
//	  → ACTIVE)                                   (estimate, no AWS statement)
//	EKS add-on (CreateAddon → ACTIVE,  1 min      estimate: one DaemonSet rolling out on the new nodes
//	  eks-pod-identity-agent)
//	Helm add-on pods Ready             90 s       "1–2 min" per chart: image pull + readiness probes
//	  (AddonPodsReady, every pod                  (estimate from the hand runbook, DESIGN §1)
//	  outside the services' namespaces)
//	Argo CD apps Healthy               0–6 min    each service's pods Ready at a uniformly random time
//	  (AppsHealthySpread)                         within 6 minutes of their creation (hand runbook)
//	NLB (CreateLoadBalancer → active)  3 min      Elastic Load Balancing user guide, "provisioning" state;
//	                                              2–5 min is the commonly observed range (estimate)
//	Route 53 (ChangeResourceRecordSets 60 s       Route 53 developer guide: "Changes generally propagate
//	  → INSYNC)                                   to all Route 53 name servers within 60 seconds"
//	CloudFront (UpdateDistribution →   5 min      AWS Networking & Content Delivery blog, "Slashing
//	  Deployed)                                   CloudFront change propagation times in 2020": "reliably
//	                                              pushing these changes within 5 minutes"
//
// The pod latencies are KWOK Stage delays on the DR cluster (see
// podReadyDelays); the others are the AWS stand-in's delays.
func Realistic() Latencies {
	return Latencies{
		EKSControlPlane:   12 * time.Minute,
		NodeGroup:         4 * time.Minute,
		EKSAddon:          time.Minute,
		LoadBalancer:      3 * time.Minute,
		Route53InSync:     time.Minute,
		CloudFrontDeploy:  5 * time.Minute,
		AddonPodsReady:    90 * time.Second,
		AppsHealthySpread: 6 * time.Minute,
	}
}

// podReadyDelays are the KWOK pod-ready stages of the DR cluster: the
// services' pods (in appNamespaces) Ready at a random time within
// AppsHealthySpread, every other pod (the add-ons') after AddonPodsReady.
// Nil when both are zero, so KWOK keeps its immediate stage.
func (l Latencies) podReadyDelays(appNamespaces []string) []kubeenv.PodReadyDelay {
	if l.AddonPodsReady == 0 && l.AppsHealthySpread == 0 {
		return nil
	}
	return []kubeenv.PodReadyDelay{
		{Namespaces: appNamespaces, Max: l.AppsHealthySpread},
		{Namespaces: appNamespaces, Except: true, Min: l.AddonPodsReady, Max: l.AddonPodsReady},
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
