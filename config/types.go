package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Struct tags understood by the walker (decode.go), besides `yaml:"key"`:
//
//	drbot:"required"          the key must be present and not empty (a list: at least one item;
//	                          a Secret: the key or its <key>_file sibling)
//	drbot:"enum=a|b|c"        a string field must be one of the listed values
//	drbot:"keys=a|b|c"        a map field may only use the listed keys
//	drbot:"default=VALUE"     applied when the key is absent; VALUE is YAML (so "[168h, 24h]" works)
//	                          and must come last in the tag because it may contain commas
//
// Options are comma-separated: drbot:"required,enum=A|AAAA|CNAME".
// Fields of type map[string]any (or any) are free-form and decoded as-is.

// Names the walker and the engine agree on.
const (
	ProviderTerraform = "terraform"
	ProviderEKS       = "eks"
	ProviderExisting  = "existing"

	GateMerge   = "merge"
	GateCutover = "cutover"

	AddonLoadBalancerController = "aws-load-balancer-controller"
	AddonKarpenter              = "karpenter"
	AddonIstioBase              = "istio-base"
	AddonIstiod                 = "istiod"
	AddonIstioGateway           = "istio-gateway"
	AddonVaultInjector          = "vault-injector"
)

var (
	// Gates are the approval gates, in runbook order.
	Gates = []string{GateMerge, GateCutover}
	// Phases are the runbook phases, in order.
	Phases = []string{"provision", "bootstrap", "deploy", "cutover", "close"}
	// Addons are the add-ons drbot knows how to install, in install order.
	Addons = []string{AddonLoadBalancerController, AddonKarpenter, AddonIstioBase, AddonIstiod, AddonIstioGateway, AddonVaultInjector}
)

// Config is drbot's whole configuration, read from one YAML file. It holds no
// secret values (only Secret references), so printing it is safe.
type Config struct {
	State   State            `yaml:"state"`
	Slack   Slack            `yaml:"slack" drbot:"required"`
	Access  Access           `yaml:"access" drbot:"required"`
	Targets []Target         `yaml:"targets" drbot:"required"`
	Addons  map[string]Addon `yaml:"addons" drbot:"keys=aws-load-balancer-controller|karpenter|istio-base|istiod|istio-gateway|vault-injector"`
	ArgoCD  ArgoCD           `yaml:"argocd"`
	GitLab  GitLab           `yaml:"gitlab" drbot:"required"`
	Vault   Vault            `yaml:"vault" drbot:"required"`
	Cutover Cutover          `yaml:"cutover"`
	Drills  []Drill          `yaml:"drills"`
	MTTR    MTTR             `yaml:"mttr"`
	Runbook Runbook          `yaml:"runbook"`
	// Readiness is the scheduled read-only check that a recovery would
	// work right now (`drbot check`, `/dr check`).
	Readiness Readiness `yaml:"readiness"`

	meta *loadInfo // behind a pointer so %+v of a Config stays short
}

// loadInfo is what Parse learned besides the values.
type loadInfo struct {
	file     string
	warnings []Problem
	secrets  []secretRef
}

// State is where drbot keeps its bbolt database.
type State struct {
	Path string `yaml:"path" drbot:"default=/var/lib/drbot/drbot.db"`
	// Backup copies the state to S3 in another region (optional).
	Backup *StateBackup `yaml:"backup"`
}

// StateBackup is where the state is copied: after every change (at most
// every 10 s), hourly when idle, keeping the newest copies.
type StateBackup struct {
	Bucket string `yaml:"bucket" drbot:"required"`
	Prefix string `yaml:"prefix" drbot:"default=drbot"`
	Region string `yaml:"region" drbot:"required"` // another region than the one drbot runs in
	Keep   int    `yaml:"keep" drbot:"default=48"`
	// PathStyle addresses the bucket in the path (S3-compatible stores
	// such as MinIO; AWS_ENDPOINT_URL_S3 points drbot at them).
	PathStyle bool `yaml:"path_style"`
}

// Slack is the Slack app drbot runs as (Socket Mode).
type Slack struct {
	APIURL                string   `yaml:"api_url" drbot:"default=https://slack.com/api/"` // always ends with "/"
	AppToken              Secret   `yaml:"app_token" drbot:"required"`                     // xapp-…, Socket Mode
	BotToken              Secret   `yaml:"bot_token" drbot:"required"`                     // xoxb-…, Web API
	AnnounceChannel       string   `yaml:"announce_channel" drbot:"required"`              // channel id (C…) or #name
	IncidentChannelPrefix string   `yaml:"incident_channel_prefix" drbot:"default=dr"`
	Invite                []string `yaml:"invite"` // user ids (U…/W…), user-group ids (S…) or @handles
}

// Access says who may do what; checked by the bot on every action.
type Access struct {
	Starters      []string            `yaml:"starters" drbot:"required"`                     // user or user-group ids
	Approvers     map[string][]string `yaml:"approvers" drbot:"required,keys=merge|cutover"` // gate → user or user-group ids
	TwoPersonRule bool                `yaml:"two_person_rule" drbot:"default=true"`          // the initiator may not approve the cutover
	Admins        []string            `yaml:"admins"`
	// BreakGlass maps an operator name, given as `drbot run … -as NAME`
	// when Slack is unreachable, to the Slack user whose permissions the
	// CLI applies; every CLI action is audited under both.
	BreakGlass map[string]string `yaml:"break_glass"`
}

// Target is one cluster drbot can recover (or rehearse recovering).
type Target struct {
	Name         string   `yaml:"name" drbot:"required"` // slug [a-z0-9-]+, unique
	DrillOnly    bool     `yaml:"drill_only"`            // only drills may run against it
	Primary      Primary  `yaml:"primary" drbot:"required"`
	DR           DR       `yaml:"dr" drbot:"required"`
	Cluster      Cluster  `yaml:"cluster" drbot:"required"`
	DrbotRoleARN string   `yaml:"drbot_role_arn" drbot:"required"` // gets the EKS access entry on the new cluster
	Cutover      *Cutover `yaml:"cutover"`                         // replaces the top-level cutover when set; see Config.CutoverFor
}

// Primary is the cluster that was lost (its templates are the source of truth).
type Primary struct {
	Region  string `yaml:"region" drbot:"required"`
	Cluster string `yaml:"cluster" drbot:"required"`
}

// DR is where the replacement cluster is built.
type DR struct {
	Region      string `yaml:"region" drbot:"required"`
	ClusterName string `yaml:"cluster_name" drbot:"required"`
}

// Cluster says how the DR cluster comes to exist. Exactly the block named by
// Provider is set; the other two are nil.
type Cluster struct {
	Provider  string            `yaml:"provider" drbot:"required,enum=terraform|eks|existing"`
	Terraform *TerraformCluster `yaml:"terraform"`
	EKS       *EKSCluster       `yaml:"eks"`
	Existing  *ExistingCluster  `yaml:"existing"`
}

// TerraformCluster runs the user's own Terraform module.
type TerraformCluster struct {
	Dir       string         `yaml:"dir" drbot:"required"`
	Workspace string         `yaml:"workspace"`
	Vars      map[string]any `yaml:"vars"`
}

// EKSCluster creates the cluster and a managed node group through the EKS API.
type EKSCluster struct {
	Version          string    `yaml:"version" drbot:"required"` // e.g. "1.31"
	RoleARN          string    `yaml:"role_arn" drbot:"required"`
	SubnetIDs        []string  `yaml:"subnet_ids" drbot:"required"`
	SecurityGroupIDs []string  `yaml:"security_group_ids"`
	NodeGroup        NodeGroup `yaml:"node_group" drbot:"required"`
}

// NodeGroup is the managed node group that runs the add-ons until Karpenter takes over.
type NodeGroup struct {
	InstanceTypes []string `yaml:"instance_types" drbot:"required"`
	Min           int      `yaml:"min"`
	Max           int      `yaml:"max" drbot:"required"`
	Desired       int      `yaml:"desired" drbot:"required"`
	NodeRoleARN   string   `yaml:"node_role_arn" drbot:"required"`
}

// ExistingCluster is a pilot-light cluster (named by DR.ClusterName) that is only scaled up.
type ExistingCluster struct {
	NodeGroup string `yaml:"node_group" drbot:"required"`
	Desired   int    `yaml:"desired" drbot:"required"`
}

// Addon is one Helm chart drbot installs on the DR cluster. Chart, Repo and
// Namespace default per add-on name (see addonDefaults); Version is required.
type Addon struct {
	Chart        string         `yaml:"chart"`
	Repo         string         `yaml:"repo"`
	Version      string         `yaml:"version" drbot:"required"`
	Namespace    string         `yaml:"namespace"`
	Values       map[string]any `yaml:"values"`
	NodePool     map[string]any `yaml:"node_pool"`      // karpenter only: NodePool spec
	EC2NodeClass map[string]any `yaml:"ec2_node_class"` // karpenter only: EC2NodeClass spec
	// IngressManifests (istio-gateway only) are applied after the gateway:
	// the Gateway, VirtualServices and Services that create the public endpoints.
	IngressManifests []map[string]any `yaml:"ingress_manifests"`
}

// ArgoCD is the surviving Argo CD instance that deploys the services.
type ArgoCD struct {
	Namespace            string `yaml:"namespace" drbot:"default=argocd"`
	Project              string `yaml:"project" drbot:"default=default"`
	ManagementKubeconfig string `yaml:"management_kubeconfig"` // empty: drbot runs in the management cluster
	RoleARN              string `yaml:"role_arn"`              // awsAuthConfig.roleARN of the cluster Secret
	DestinationBy        string `yaml:"destination_by" drbot:"enum=name|server,default=name"`
	// DeployTimeout bounds deploy.watch (default 30m).
	DeployTimeout Duration `yaml:"deploy_timeout" drbot:"default=30m"`
	// Waves order services in tiers (tier-0 first) with Argo CD sync waves.
	Waves []Wave `yaml:"waves"`
}

// Wave is one tier of services: Applications matching the selector or
// named in apps sync before the next wave's.
type Wave struct {
	Name     string            `yaml:"name" drbot:"required"`
	Selector map[string]string `yaml:"selector"` // Application metadata.labels, every pair must match
	Apps     []string          `yaml:"apps"`     // Application names (the primary's)
}

// GitLab holds the Argo CD Application templates.
type GitLab struct {
	URL               string                    `yaml:"url" drbot:"required"` // base URL, without /api/v4
	Token             Secret                    `yaml:"token" drbot:"required"`
	Project           string                    `yaml:"project" drbot:"required"` // "group/repo" or numeric id
	DefaultBranch     string                    `yaml:"default_branch" drbot:"default=main"`
	TemplatesPath     string                    `yaml:"templates_path" drbot:"required"` // the primary's templates
	DRPath            string                    `yaml:"dr_path" drbot:"required"`        // where DR templates are written
	AppOfAppsPath     string                    `yaml:"app_of_apps_path"`
	BranchPrefix      string                    `yaml:"branch_prefix" drbot:"default=drbot/"`
	DRNameSuffix      string                    `yaml:"dr_name_suffix"` // renames DR Applications (e.g. "-dr") so they never collide with the primary's
	Overrides         map[string]map[string]any `yaml:"overrides"`      // service → free-form override
	FailOnUnparseable bool                      `yaml:"fail_on_unparseable" drbot:"default=true"`
}

// Vault is the external Vault the DR cluster authenticates to.
type Vault struct {
	Address            string     `yaml:"address" drbot:"required"`
	Token              Secret     `yaml:"token"` // required unless auth.method is kubernetes or aws
	Auth               *VaultAuth `yaml:"auth"`
	SourceMount        string     `yaml:"source_mount" drbot:"required"`                // the primary cluster's kubernetes auth mount
	TargetMount        string     `yaml:"target_mount" drbot:"default=k8s-dr-{target}"` // see TargetMountFor
	NewRelicKeyPath    string     `yaml:"newrelic_key_path" drbot:"required"`           // KV v2 "<mount>/<path>", as `vault kv get` takes it
	NewRelicKeyField   string     `yaml:"newrelic_key_field" drbot:"default=license_key"`
	NewRelicSecretName string     `yaml:"newrelic_secret_name" drbot:"default=newrelic-license"`
	Namespaces         []string   `yaml:"namespaces" drbot:"required"` // namespaces to create, each with the licence Secret
}

// VaultAuth is how drbot itself logs in to Vault.
type VaultAuth struct {
	Method      string `yaml:"method" drbot:"required,enum=token|kubernetes|aws"`
	Role        string `yaml:"role"`
	Mount       string `yaml:"mount"`                                // defaults to the method name
	TokenPath   string `yaml:"token_path"`                           // with auth.method kubernetes: the service-account JWT file drbot logs in with (default /var/run/secrets/kubernetes.io/serviceaccount/token; set it for a projected token with Vault's audience)
	IAMServerID string `yaml:"iam_server_id"`                        // with auth.method aws: the X-Vault-AWS-IAM-Server-ID value the mount requires (its iam_server_id_header_value)
	STSRegion   string `yaml:"sts_region" drbot:"default=us-east-1"` // with auth.method aws: the region of the STS endpoint the mount sends logins to (us-east-1: the global sts.amazonaws.com)
}

// Cutover lists the public entry points moved to the DR cluster's load balancers.
type Cutover struct {
	Route53    []Route53Record         `yaml:"route53"`
	CloudFront []CloudFrontOrigin      `yaml:"cloudfront"`
	APIGateway []APIGatewayIntegration `yaml:"apigateway"`
	// Checks are HTTP requests through the new endpoints that must pass
	// before the cutover counts as verified.
	Checks []HTTPCheck `yaml:"checks"`
	// CriticalServices must be Healthy in deploy.watch before the cutover.
	CriticalServices []string `yaml:"critical_services"`
	// APIGatewayRegion is where the APIs live (default: the DR region).
	APIGatewayRegion string `yaml:"apigateway_region"`
}

// HTTPCheck is one verification request.
type HTTPCheck struct {
	URL          string `yaml:"url" drbot:"required"`
	Host         string `yaml:"host"` // Host header (and TLS server name) when the URL names the load balancer
	ExpectStatus int    `yaml:"expect_status" drbot:"default=200"`
	BodyContains string `yaml:"body_contains"`
}

// Backend names the Kubernetes object whose load balancer an entry point moves to:
// exactly one of Service or Ingress, each "namespace/name".
type Backend struct {
	Service string `yaml:"service"`
	Ingress string `yaml:"ingress"`
}

// Route53Record is one record repointed at the new load balancer.
type Route53Record struct {
	ZoneID        string `yaml:"zone_id" drbot:"required"`
	Name          string `yaml:"name" drbot:"required"`
	Type          string `yaml:"type" drbot:"required,enum=A|AAAA|CNAME"`
	SetIdentifier string `yaml:"set_identifier"`
	Backend       `yaml:",inline"`
}

// CloudFrontOrigin is one distribution origin repointed at the new load balancer.
type CloudFrontOrigin struct {
	DistributionID string `yaml:"distribution_id" drbot:"required"`
	OriginID       string `yaml:"origin_id" drbot:"required"`
	Backend        `yaml:",inline"`
}

// APIGatewayIntegration is one integration repointed at the new load balancer.
// Kind rest needs ResourceID, HTTPMethod and Stage; kind http needs IntegrationID.
type APIGatewayIntegration struct {
	APIID         string `yaml:"api_id" drbot:"required"`
	Kind          string `yaml:"kind" drbot:"required,enum=rest|http"`
	ResourceID    string `yaml:"resource_id"`
	HTTPMethod    string `yaml:"http_method"`
	IntegrationID string `yaml:"integration_id"`
	Stage         string `yaml:"stage"`
	Backend       `yaml:",inline"`
}

// Drill is a scheduled rehearsal.
type Drill struct {
	Name     string     `yaml:"name" drbot:"required"`
	Schedule string     `yaml:"schedule" drbot:"required"` // 5-field cron or @descriptor
	Timezone string     `yaml:"timezone" drbot:"default=UTC"`
	Target   string     `yaml:"target" drbot:"required"`
	Announce []Duration `yaml:"announce" drbot:"default=[168h, 24h, 1h]"` // lead times before the start
	OnPoint  []string   `yaml:"on_point"`
	Teardown bool       `yaml:"teardown" drbot:"default=true"`
	// PreApprove lists gates (merge, cutover) that drill runs of this
	// drill's target pass without a person; never applies to recoveries.
	PreApprove []string `yaml:"pre_approve"`
}

// Readiness schedules the read-only readiness check and says who hears
// about it.
type Readiness struct {
	Schedule string   `yaml:"schedule" drbot:"default=0 7 * * *"` // 5-field cron or @descriptor; "off" disables the schedule
	Timezone string   `yaml:"timezone" drbot:"default=UTC"`
	Channel  string   `yaml:"channel"` // channel id (C…) or #name for the report; default slack.announce_channel
	Owners   []string `yaml:"owners"`  // user or user-group ids mentioned when a check regresses
	Targets  []string `yaml:"targets"` // targets to check; default every target
	// VaultRoles are roles the primary Vault mount (vault.source_mount)
	// must keep: a renamed or deleted one fails the vault check. Without
	// it the check only requires the mount to have roles to copy.
	VaultRoles []string `yaml:"vault_roles"`
}

// MTTR is the recovery time budget the post-mortem scores against.
type MTTR struct {
	Budget Duration            `yaml:"budget" drbot:"default=60m"`
	Phases map[string]Duration `yaml:"phases" drbot:"keys=provision|bootstrap|deploy|cutover|close"`
}

// Runbook tunes the engine.
type Runbook struct {
	Concurrency int                 `yaml:"concurrency" drbot:"default=8"`
	Retry       Retry               `yaml:"retry"`
	Estimates   map[string]Duration `yaml:"estimates"`                        // step id → expected duration (ids checked by the engine)
	Gates       map[string]Duration `yaml:"gates" drbot:"keys=merge|cutover"` // gate → approval timeout
}

// Retry is the backoff for retryable step errors.
type Retry struct {
	MaxAttempts    int      `yaml:"max_attempts" drbot:"default=5"`
	InitialBackoff Duration `yaml:"initial_backoff" drbot:"default=2s"`
	MaxBackoff     Duration `yaml:"max_backoff" drbot:"default=1m"`
}

// Target returns the target with the given name.
func (c *Config) Target(name string) (*Target, bool) {
	for i := range c.Targets {
		if c.Targets[i].Name == name {
			return &c.Targets[i], true
		}
	}
	return nil, false
}

// CutoverFor returns the cutover for a target: its own when set, else the top-level one.
func (c *Config) CutoverFor(t *Target) Cutover {
	if t != nil && t.Cutover != nil {
		return *t.Cutover
	}
	return c.Cutover
}

// TargetMountFor is the Vault auth mount for a target's DR cluster ({target} replaced).
func (v Vault) TargetMountFor(target string) string {
	return strings.ReplaceAll(v.TargetMount, "{target}", target)
}

// NewRelicKV splits NewRelicKeyPath into the KV v2 mount and the secret path.
func (v Vault) NewRelicKV() (mount, path string) {
	mount, path, _ = strings.Cut(v.NewRelicKeyPath, "/")
	return mount, path
}

// Kind is "service" or "ingress"; Ref is "namespace/name".
func (b Backend) Kind() string {
	if b.Ingress != "" {
		return "ingress"
	}
	return "service"
}

// Ref is the "namespace/name" of the service or ingress.
func (b Backend) Ref() string {
	if b.Ingress != "" {
		return b.Ingress
	}
	return b.Service
}

// Location is the drill's validated time zone.
func (d Drill) Location() *time.Location {
	loc, err := time.LoadLocation(d.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// Duration is a time.Duration written in YAML as "90s", "1h30m" or "7d"
// (whole days, optionally followed by a Go duration: "1d12h").
type Duration time.Duration

// Std returns the standard library duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalText writes the Go form ("1h0m0s") so the config round-trips through JSON.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText accepts the same forms as the YAML file.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

var daysPrefix = regexp.MustCompile(`^(\d+)d`)

// ParseDuration parses a Go duration, with whole days ("d") allowed as the leading unit.
// Negative durations are rejected: nothing in the config counts backwards.
func ParseDuration(s string) (Duration, error) {
	s = strings.TrimSpace(s)
	var total time.Duration
	rest := s
	if m := daysPrefix.FindStringSubmatch(s); m != nil {
		days, err := strconv.Atoi(m[1])
		if err != nil || days > 100000 {
			return 0, fmt.Errorf("duration %q: too many days", s)
		}
		total = time.Duration(days) * 24 * time.Hour
		rest = s[len(m[0]):]
	}
	if rest != "" {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return 0, fmt.Errorf("duration %q: want forms like 90s, 1h30m or 7d", s)
		}
		if d < 0 {
			return 0, fmt.Errorf("duration %q: must not be negative", s)
		}
		total += d
	}
	return Duration(total), nil
}

// Secret refers to a secret held outside the config file: an environment
// variable or a file. It never holds the value; Resolve reads it at use time.
type Secret struct {
	env  string
	file string
}

// EnvSecret refers to an environment variable (for tests and wiring).
func EnvSecret(name string) Secret { return Secret{env: name} }

// FileSecret refers to a file (for tests and wiring).
func FileSecret(path string) Secret { return Secret{file: path} }

// IsSet reports whether the secret was configured at all.
func (s Secret) IsSet() bool { return s.env != "" || s.file != "" }

// Source says where the value comes from: "env SLACK_BOT_TOKEN" or "file /run/secrets/x".
func (s Secret) Source() string {
	switch {
	case s.env != "":
		return "env " + s.env
	case s.file != "":
		return "file " + s.file
	}
	return "unset"
}

// String never reveals the value.
func (s Secret) String() string { return "secret(" + s.Source() + ")" }

// GoString keeps %#v as safe as %v.
func (s Secret) GoString() string { return s.String() }

// MarshalText writes the source, never the value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Resolve reads the secret now. A trailing newline (as left by most editors and
// `kubectl create secret --from-file`) is trimmed. Errors name the variable or
// file, never the value.
func (s Secret) Resolve() (string, error) {
	var v string
	switch {
	case s.env != "":
		val, ok := os.LookupEnv(s.env)
		if !ok {
			return "", fmt.Errorf("secret env %s is not set", s.env)
		}
		v = val
	case s.file != "":
		b, err := os.ReadFile(s.file)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err // the path is already in our message
			}
			return "", fmt.Errorf("reading secret file %s: %w", s.file, err)
		}
		v = string(b)
	default:
		return "", errors.New("secret is not configured")
	}
	v = strings.TrimSuffix(v, "\n")
	v = strings.TrimSuffix(v, "\r")
	if v == "" {
		return "", fmt.Errorf("secret %s is empty", s.Source())
	}
	return v, nil
}
