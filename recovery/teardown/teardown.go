// Package teardown implements the teardown step of a drill: it removes
// what the drill made, part by part in a fixed order, each part observing
// before it acts (already gone counts as done) and journaling its result as
// the output removed.<part> the moment it finishes, so a re-run after a
// crash or a Retry skips the parts already done.
//
// The parts, in order, and why in that order:
//
//  1. cutover — the drill's Route 53 records, CloudFront origins and API
//     Gateway integrations put back to their values before endpoints.apply
//     (the rollback record endpoints.plan journaled), verified like
//     /dr rollback. First, because traffic must go back before the load
//     balancers it would hit are deleted. Nothing to do when
//     endpoints.apply never started.
//  2. gitlab — the drill's merge request closed (if still open) and its
//     branch deleted; if it was merged, one revert commit on the target
//     branch deletes the files the drill added under gitlab.dr_path (and
//     restores any it changed). Before the Argo CD part, so an app of apps
//     syncing dr_path does not re-create the Applications it deletes.
//  3. karpenter — the DR cluster's NodePools and EC2NodeClasses, while
//     Karpenter (itself an Argo CD Application) still runs to terminate the
//     instances it launched and delete their instance profiles.
//  4. argocd — every Application in Argo CD's namespace whose destination
//     is the DR cluster, waited on until gone (Argo CD's resources
//     finalizer deletes their resources in the DR cluster), then the
//     cluster Secret argocd.register wrote.
//  5. load-balancers — the DR cluster's remaining LoadBalancer Services and
//     Ingresses (the Istio gateway's), while the AWS Load Balancer
//     Controller still has its role to delete the load balancers.
//  6. vault — the DR cluster's Kubernetes auth mount.
//  7. iam — the roles iam.roles made for the cluster (policies detached,
//     inline policies deleted, removed from instance profiles, deleted) and
//     the per-cluster Karpenter controller policy; the account-shared Load
//     Balancer Controller policy stays.
//  8. cluster — terraform destroy, or the EKS node groups, add-ons and
//     cluster deleted and waited on, or a pilot light's node group scaled
//     back to its size before the drill.
//
// The karpenter and load-balancers parts run only for clusters teardown
// deletes (providers eks and terraform): a pilot light keeps its own.
//
// A part that fails does not stop the others, except the cutover: while
// the drill's endpoints still point at the DR cluster, every later part
// takes away something they serve through (the revert makes the app of
// apps prune the Applications; then the nodes, the workloads and the
// gateway's Service, the load balancers, the pods' Vault logins, the
// controllers' roles, the cluster), turning a failed rollback into an
// outage of those endpoints. So a failed cutover part holds every later
// part back until a Retry restores it. When any part failed, the step
// posts every leftover with what to do by hand and fails with the same
// list; it is never silent.
package teardown

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awseks "github.com/aws/aws-sdk-go-v2/service/eks"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/smithy-go"
	vault "github.com/hashicorp/vault/api"
	gitlab "gitlab.com/gitlab-org/api/client-go"
	"k8s.io/client-go/rest"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
	"github.com/drbot/drbot/state"
)

// StepID is the step this package implements.
const StepID = "teardown"

// Upstream steps whose outputs teardown reads.
const (
	stepClusterCreate   = "cluster.create"
	stepClusterAccess   = "cluster.access"
	stepIAMRoles        = "iam.roles"
	stepArgoCDRegister  = "argocd.register"
	stepAddonsKarpenter = "addons.karpenter"
	stepGitOpsMR        = "gitops.mr"
)

// Outputs cluster.create should journal (with SaveOutputs, before scaling)
// for a pilot light, so teardown can scale its node group back down.
const (
	OutputDesiredBefore = "nodegroup_desired_before"
	OutputMaxBefore     = "nodegroup_max_before"
	OutputMinBefore     = "nodegroup_min_before"
)

// Part names, in the order they run. Each is journaled as removed.<name>.
const (
	PartCutover       = "cutover"
	PartGitLab        = "gitlab"
	PartKarpenter     = "karpenter"
	PartArgoCD        = "argocd"
	PartLoadBalancers = "load-balancers"
	PartVault         = "vault"
	PartIAM           = "iam"
	PartCluster       = "cluster"
)

// Parts lists the part names in running order.
var Parts = []string{PartCutover, PartGitLab, PartKarpenter, PartArgoCD, PartLoadBalancers, PartVault, PartIAM, PartCluster}

// OutputKey is the journal output a finished part leaves.
func OutputKey(part string) string { return "removed." + part }

// Destroyer tears a Terraform-made cluster down; *eks.Provisioner is one.
type Destroyer interface {
	Destroy(ctx context.Context, sc *recovery.StepContext) error
}

// Options configure the step. Every client is optional at construction; a
// part whose client is missing fails with a leftover saying what to remove
// by hand, so a wiring gap is never silent.
type Options struct {
	// Management is the cluster running Argo CD.
	Management *rest.Config
	// DR reaches the DR cluster (the karpenter and load-balancers parts).
	DR kube.ConfigSource
	// GitLab holds the drill's branch and merge request.
	GitLab *gitlab.Client
	// Vault holds the DR cluster's auth mount.
	Vault *vault.Client
	// AWS gives drbot's AWS configuration for a region.
	AWS func(ctx context.Context, region string) (aws.Config, error)
	// Provisioner runs terraform destroy for provider terraform.
	Provisioner Destroyer
	// Cutover restores the drill's cutover (the *cutover.Cutover the
	// endpoints steps use).
	Cutover CutoverRollback

	// IAM and EKS build the AWS clients (default the SDK constructors).
	IAM func(aws.Config) IAMAPI
	EKS func(aws.Config) EKSAPI

	// PollInterval is the pause between two reads of something being
	// deleted (default 15s).
	PollInterval time.Duration
	// ProgressEvery is the least time between two progress lines of a long
	// wait (default 30s).
	ProgressEvery time.Duration
	// WaitTimeout bounds one wait (a cluster's deletion, Applications'
	// finalizers); past it the part is a leftover and Retry waits again
	// (default 30m).
	WaitTimeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Teardown is the teardown step's owner; one value serves every run.
type Teardown struct {
	cfg  *config.Config
	opts Options
}

// New checks the config and fills in defaults.
func New(cfg *config.Config, opts Options) (*Teardown, error) {
	if cfg == nil {
		return nil, errors.New("teardown: config is required")
	}
	if opts.IAM == nil {
		opts.IAM = func(c aws.Config) IAMAPI { return awsiam.NewFromConfig(c) }
	}
	if opts.EKS == nil {
		opts.EKS = func(c aws.Config) EKSAPI { return awseks.NewFromConfig(c) }
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 15 * time.Second
	}
	if opts.ProgressEvery <= 0 {
		opts.ProgressEvery = 30 * time.Second
	}
	if opts.WaitTimeout <= 0 {
		opts.WaitTimeout = 30 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Teardown{cfg: cfg, opts: opts}, nil
}

// Leftover is something teardown could not remove, with what to do by hand.
type Leftover struct {
	Part    string `json:"part"`
	What    string `json:"what"`    // "IAM role KarpenterNodeRole-dr"
	Problem string `json:"problem"` // what went wrong
	Fix     string `json:"fix"`     // what a person should do
	// Retryable says the problem may pass on its own (throttling, a wait
	// that ran out): Retry may finish the job.
	Retryable bool `json:"retryable,omitempty"`
}

func (l Leftover) String() string {
	s := l.What + ": " + l.Problem
	if l.Fix != "" {
		s += " — " + l.Fix
	}
	return s
}

// part is one removal, run in order.
type part struct {
	name string
	run  func(x *attempt, ctx context.Context) (summary string, err error)
	// holdsBack: when this part fails, the parts after it do not run.
	holdsBack bool
}

func (t *Teardown) parts() []part {
	return []part{
		{PartCutover, (*attempt).removeCutover, true},
		{PartGitLab, (*attempt).removeGitLab, false},
		{PartKarpenter, (*attempt).removeKarpenter, false},
		{PartArgoCD, (*attempt).removeArgoCD, false},
		{PartLoadBalancers, (*attempt).removeLoadBalancers, false},
		{PartVault, (*attempt).removeVault, false},
		{PartIAM, (*attempt).removeIAM, false},
		{PartCluster, (*attempt).removeCluster, false},
	}
}

// attempt is one run of the action.
type attempt struct {
	t         *Teardown
	sc        *recovery.StepContext
	target    *config.Target
	region    string
	cluster   string
	leftovers []Leftover

	eksClient EKSAPI
	iamClient IAMAPI
}

// leave records a leftover of the running part.
func (x *attempt) leave(part, what string, err error, fix string) {
	x.leftovers = append(x.leftovers, Leftover{Part: part, What: what, Problem: problem(err), Fix: fix, Retryable: recovery.IsRetryable(err)})
}

// problem is an error's text for people: an AWS SDK error's wrapping
// ("operation error IAM: DeleteRole, https response error StatusCode: 409,
// RequestID: …, ") is cut down to the error code and message.
func problem(err error) string {
	text := err.Error()
	var oe *smithy.OperationError
	var ae smithy.APIError
	if errors.As(err, &oe) && errors.As(err, &ae) {
		text = strings.Replace(text, oe.Error(), ae.ErrorCode()+": "+ae.ErrorMessage(), 1)
	}
	return text
}

// Action is the teardown step.
func (t *Teardown) Action(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	if sc.Run().Mode != state.ModeDrill {
		// The runbook limits teardown to drills; this guards a wiring mistake
		// from ever deleting a recovery's cluster.
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("teardown runs only in drills; this run is a %s", sc.Run().Mode))
	}
	tg, ok := t.cfg.Target(sc.Run().Target)
	if !ok {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("target %q is not in the config; check targets[].name", sc.Run().Target))
	}
	x := &attempt{t: t, sc: sc, target: tg, region: tg.DR.Region, cluster: tg.DR.ClusterName}
	if v, ok := sc.Output(stepClusterCreate, "region"); ok && v != "" {
		x.region = v
	}
	if v, ok := sc.Output(stepClusterCreate, "cluster_name"); ok && v != "" {
		x.cluster = v
	}

	var done, failed, heldBack []string
	holder := ""
	summaries := map[string]string{}
	for _, p := range t.parts() {
		key := OutputKey(p.name)
		if v, ok := sc.Output(sc.StepID(), key); ok && v != "" {
			summaries[p.name] = v
			done = append(done, p.name)
			continue
		}
		if holder != "" {
			heldBack = append(heldBack, p.name)
			continue
		}
		before := len(x.leftovers)
		summary, err := p.run(x, ctx)
		if ctx.Err() != nil {
			// drbot is stopping: the engine re-runs the step, which resumes here.
			return recovery.Result{}, ctx.Err()
		}
		if err != nil {
			x.leave(p.name, "the "+p.name+" part", err, "fix the cause and press Retry, or remove what this part covers by hand and press Skip")
		}
		if len(x.leftovers) > before {
			failed = append(failed, p.name)
			sc.Logger.Warn("teardown part left things behind", "part", p.name, "leftovers", len(x.leftovers)-before)
			if p.holdsBack {
				holder = p.name
			}
			continue
		}
		if summary == "" {
			summary = "nothing to remove"
		}
		if err := sc.SaveOutputs(map[string]string{key: summary}); err != nil {
			return recovery.Result{}, err
		}
		summaries[p.name] = summary
		done = append(done, p.name)
	}

	if len(x.leftovers) == 0 {
		var lines []string
		for _, p := range Parts {
			lines = append(lines, p+": "+summaries[p])
		}
		sc.Progress("teardown complete: %s", strings.Join(lines, "; "))
		return recovery.Result{Outputs: map[string]string{"leftovers": ""}}, nil
	}

	raw, _ := json.Marshal(x.leftovers)
	if err := sc.SaveOutputs(map[string]string{"leftovers": string(raw)}); err != nil {
		return recovery.Result{}, err
	}
	list := formatLeftovers(x.leftovers)
	if len(heldBack) > 0 {
		// Only the cutover holds parts back (see the package comment).
		list += fmt.Sprintf("\nnot run until the %s part succeeds: %s — the drill's endpoints still point at what they would delete",
			holder, strings.Join(heldBack, ", "))
	}
	sc.Progress("teardown left %d thing(s) behind (parts %s failed; %s done):\n%s",
		len(x.leftovers), strings.Join(failed, ", "), doneList(done), list)
	advice := "remove them by hand and press Skip, or fix the cause and press Retry (finished parts are not redone)"
	if len(heldBack) > 0 {
		// Skip would leave the held-back parts' resources for good.
		advice = "fix the cause and press Retry, which also runs the parts held back (finished parts are not redone)"
	}
	err := fmt.Errorf("teardown left %d thing(s) behind; %s:\n%s", len(x.leftovers), advice, list)
	for _, l := range x.leftovers {
		if !l.Retryable {
			return recovery.Result{}, recovery.Permanent(err)
		}
	}
	return recovery.Result{}, recovery.Retryable(err)
}

func doneList(done []string) string {
	if len(done) == 0 {
		return "none"
	}
	return strings.Join(done, ", ")
}

func formatLeftovers(ls []Leftover) string {
	var b strings.Builder
	for i, l := range ls {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%d. [%s] %s", i+1, l.Part, l)
	}
	return b.String()
}

// waitFor polls check until it reports done, posting "<what> <status>,
// <elapsed>" at most every ProgressEvery, and gives up after WaitTimeout
// with a retryable error.
func (x *attempt) waitFor(ctx context.Context, what string, check func(ctx context.Context) (done bool, status string, err error)) error {
	o := x.t.opts
	start := o.Now()
	var lastPost time.Time
	for {
		done, status, err := check(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		now := o.Now()
		if now.Sub(lastPost) >= o.ProgressEvery {
			if !lastPost.IsZero() {
				x.sc.Progress("%s %s, %s", what, status, now.Sub(start).Round(time.Second))
			}
			lastPost = now
		}
		if now.Sub(start) > o.WaitTimeout {
			return recovery.Retryable(fmt.Errorf("%s still %s after %s", what, status, o.WaitTimeout))
		}
		tm := time.NewTimer(o.PollInterval)
		select {
		case <-ctx.Done():
			tm.Stop()
			return ctx.Err()
		case <-tm.C:
		}
	}
}

// provider is the target's cluster provider.
func (x *attempt) provider() string { return x.target.Cluster.Provider }

// deletesCluster says whether teardown deletes the DR cluster itself.
func (x *attempt) deletesCluster() bool {
	return x.provider() == config.ProviderEKS || x.provider() == config.ProviderTerraform
}

// output reads an upstream output, "" when absent.
func (x *attempt) output(step, key string) string {
	v, _ := x.sc.Output(step, key)
	return v
}
