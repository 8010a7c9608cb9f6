package config

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// The semantic pass: rules that span fields or need more than a tag, plus the
// defaults that depend on other values. It runs after the walker, on the same
// positions, and stays quiet about paths the walker already complained about.

type validator struct {
	d        *decoder
	c        *Config
	warnings []Problem
}

func validate(c *Config, d *decoder) []Problem {
	v := &validator{d: d, c: c}
	v.slack()
	v.access()
	v.targets()
	v.addons()
	v.argocd()
	v.gitlab()
	v.vault()
	v.cutover("cutover", c.Cutover)
	v.drills()
	v.readiness()
	v.mttr()
	v.runbook()
	return v.warnings
}

func (v *validator) errf(p, format string, args ...any) {
	if v.d.failed(p) {
		return
	}
	v.d.add(v.d.at(p), p, format, args...)
}

func (v *validator) warnf(p, format string, args ...any) {
	at := v.d.at(p)
	v.warnings = append(v.warnings, Problem{Line: at.line, Column: at.col, Path: p, Msg: fmt.Sprintf(format, args...)})
}

// check reports msg at p unless ok or the value was left empty (required fields
// are the walker's business).
func (v *validator) check(p, value string, ok bool, format string, args ...any) {
	if value != "" && !ok {
		v.errf(p, format, args...)
	}
}

var (
	slugRe        = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
	dnsLabelRe    = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	dnsSubdomain  = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	regionRe      = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)
	roleARNRe     = regexp.MustCompile(`^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$`)
	eksNameRe     = regexp.MustCompile(`^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$`)
	eksVersionRe  = regexp.MustCompile(`^1\.\d{2}$`)
	subnetRe      = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	sgRe          = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	principalRe   = regexp.MustCompile(`^[UWS][A-Z0-9]{2,}$`)
	userRe        = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)
	handleRe      = regexp.MustCompile(`^@[a-z0-9._-]+$`)
	channelRe     = regexp.MustCompile(`^([CG][A-Z0-9]{2,}|#[a-z0-9_-]{1,80})$`)
	prefixRe      = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,39}$`)
	k8sRefRe      = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	hostnameRe    = regexp.MustCompile(`(?i)^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$`)
	awsIDRe       = regexp.MustCompile(`^[A-Z0-9]+$`)
	apiIDRe       = regexp.MustCompile(`^[a-z0-9]+$`)
	gitRefRe      = regexp.MustCompile(`^[A-Za-z0-9._/-]+$`)
	vaultMountRe  = regexp.MustCompile(`^[A-Za-z0-9_.{}-]+(/[A-Za-z0-9_.{}-]+)*$`)
	projectPathRe = regexp.MustCompile(`^[\w.-]+(/[\w.-]+)+$`)
)

const (
	principalWant = "want a Slack user id (U…/W…) or user-group id (S…)"
	roleWant      = "want an IAM role ARN like arn:aws:iam::123456789012:role/name"
)

func (v *validator) slack() {
	s := &v.c.Slack
	if v.url("slack.api_url", s.APIURL, "http", "https") && !strings.HasSuffix(s.APIURL, "/") {
		s.APIURL += "/" // slack-go joins method names onto it
	}
	v.check("slack.announce_channel", s.AnnounceChannel, channelRe.MatchString(s.AnnounceChannel),
		"want a channel id (C…) or #name, got %q", s.AnnounceChannel)
	v.check("slack.incident_channel_prefix", s.IncidentChannelPrefix, prefixRe.MatchString(s.IncidentChannelPrefix),
		"want at most 40 lowercase letters, digits, - or _ (Slack channel name rules), got %q", s.IncidentChannelPrefix)
	for i, who := range s.Invite {
		v.check(fmt.Sprintf("slack.invite[%d]", i), who, principalRe.MatchString(who) || handleRe.MatchString(who),
			"%s or @handle, got %q", principalWant, who)
	}
}

func (v *validator) access() {
	a := &v.c.Access
	v.principals("access.starters", a.Starters)
	v.principals("access.admins", a.Admins)
	if a.Approvers != nil {
		for _, gate := range Gates {
			p := "access.approvers." + gate
			if len(a.Approvers[gate]) == 0 {
				v.errf(p, "missing required key (every gate needs at least one approver)")
			}
			v.principals(p, a.Approvers[gate])
		}
	}
	for _, name := range sortedKeys(a.BreakGlass) {
		p := "access.break_glass." + name
		v.check(p, name, slugRe.MatchString(name), "want an operator name [a-z0-9-] as the key, got %q", name)
		v.check(p, a.BreakGlass[name], userRe.MatchString(a.BreakGlass[name]), "want the operator's Slack user id (U…/W…), got %q", a.BreakGlass[name])
	}
	if cut := a.Approvers[GateCutover]; a.TwoPersonRule && len(cut) == 1 && userRe.MatchString(cut[0]) {
		v.warnf("access.approvers."+GateCutover,
			"two_person_rule is on and %s is the only cutover approver: a run they start cannot pass the cutover gate", cut[0])
	}
}

func (v *validator) principals(p string, ids []string) {
	for i, id := range ids {
		v.check(fmt.Sprintf("%s[%d]", p, i), id, principalRe.MatchString(id), "%s, got %q", principalWant, id)
	}
}

func (v *validator) targets() {
	firstLine := map[string]int{}
	for i := range v.c.Targets {
		t := &v.c.Targets[i]
		p := fmt.Sprintf("targets[%d]", i)
		v.check(p+".name", t.Name, slugRe.MatchString(t.Name) && len(t.Name) <= 40,
			"want a slug of at most 40 characters [a-z0-9-], got %q", t.Name)
		if line, dup := firstLine[t.Name]; dup && t.Name != "" {
			v.errf(p+".name", "duplicate target name %q (first on line %d)", t.Name, line)
		} else {
			firstLine[t.Name] = v.d.at(p + ".name").line
		}
		v.check(p+".primary.region", t.Primary.Region, regionRe.MatchString(t.Primary.Region), "want an AWS region like eu-west-1, got %q", t.Primary.Region)
		v.check(p+".dr.region", t.DR.Region, regionRe.MatchString(t.DR.Region), "want an AWS region like eu-central-1, got %q", t.DR.Region)
		if t.DR.Region != "" && t.DR.Region == t.Primary.Region {
			v.warnf(p+".dr.region", "the DR region is the primary's region (%s): a regional outage takes both", t.DR.Region)
		}
		v.check(p+".dr.cluster_name", t.DR.ClusterName, eksNameRe.MatchString(t.DR.ClusterName),
			"want an EKS cluster name (letters, digits, - and _, at most 100), got %q", t.DR.ClusterName)
		v.check(p+".drbot_role_arn", t.DrbotRoleARN, roleARNRe.MatchString(t.DrbotRoleARN), "%s, got %q", roleWant, t.DrbotRoleARN)
		v.cluster(p+".cluster", &t.Cluster)
		if t.Cutover != nil {
			v.cutover(p+".cutover", *t.Cutover)
		}
	}
}

func (v *validator) cluster(p string, c *Cluster) {
	if v.d.failed(p + ".provider") {
		return
	}
	blocks := map[string]bool{
		ProviderTerraform: c.Terraform != nil,
		ProviderEKS:       c.EKS != nil,
		ProviderExisting:  c.Existing != nil,
	}
	for _, name := range []string{ProviderTerraform, ProviderEKS, ProviderExisting} {
		switch {
		case name == c.Provider && !blocks[name]:
			v.errf(p+"."+name, "missing required key (provider is %s)", c.Provider)
		case name != c.Provider && blocks[name]:
			v.errf(p+"."+name, "not allowed when provider is %s (remove the block or change provider)", c.Provider)
		}
	}
	if e := c.EKS; e != nil && c.Provider == ProviderEKS {
		ep := p + ".eks"
		v.check(ep+".version", e.Version, eksVersionRe.MatchString(e.Version), `want a Kubernetes minor version like "1.31", got %q`, e.Version)
		v.check(ep+".role_arn", e.RoleARN, roleARNRe.MatchString(e.RoleARN), "%s, got %q", roleWant, e.RoleARN)
		if len(e.SubnetIDs) == 1 {
			v.errf(ep+".subnet_ids", "EKS needs subnets in at least two availability zones; got one subnet")
		}
		for i, s := range e.SubnetIDs {
			v.check(fmt.Sprintf("%s.subnet_ids[%d]", ep, i), s, subnetRe.MatchString(s), "want a subnet id like subnet-0abc12345, got %q", s)
		}
		for i, s := range e.SecurityGroupIDs {
			v.check(fmt.Sprintf("%s.security_group_ids[%d]", ep, i), s, sgRe.MatchString(s), "want a security group id like sg-0abc12345, got %q", s)
		}
		ng, np := e.NodeGroup, ep+".node_group"
		switch {
		case ng.Min < 0:
			v.errf(np+".min", "must not be negative")
		case ng.Max < 1:
			v.errf(np+".max", "must be at least 1")
		case ng.Desired < ng.Min || ng.Desired > ng.Max:
			v.errf(np+".desired", "must be between min (%d) and max (%d), got %d", ng.Min, ng.Max, ng.Desired)
		}
		v.check(np+".node_role_arn", ng.NodeRoleARN, roleARNRe.MatchString(ng.NodeRoleARN), "%s, got %q", roleWant, ng.NodeRoleARN)
	}
	if x := c.Existing; x != nil && c.Provider == ProviderExisting && x.Desired < 1 {
		v.errf(p+".existing.desired", "must be at least 1 (the node group is scaled up to it)")
	}
}

// addonDefaults fills what an add-on's name implies. For an oci:// repo the
// chart reference is repo + "/" + chart.
var addonDefaults = map[string]Addon{
	AddonLoadBalancerController: {Chart: "aws-load-balancer-controller", Repo: "https://aws.github.io/eks-charts", Namespace: "kube-system"},
	AddonKarpenter:              {Chart: "karpenter", Repo: "oci://public.ecr.aws/karpenter", Namespace: "kube-system"},
	AddonIstioBase:              {Chart: "base", Repo: "https://istio-release.storage.googleapis.com/charts", Namespace: "istio-system"},
	AddonIstiod:                 {Chart: "istiod", Repo: "https://istio-release.storage.googleapis.com/charts", Namespace: "istio-system"},
	AddonIstioGateway:           {Chart: "gateway", Repo: "https://istio-release.storage.googleapis.com/charts", Namespace: "istio-ingress"},
	AddonVaultInjector:          {Chart: "vault", Repo: "https://helm.releases.hashicorp.com", Namespace: "vault"},
}

func (v *validator) addons() {
	for name, a := range v.c.Addons {
		p := joinKey("addons", name)
		def := addonDefaults[name]
		if a.Chart == "" {
			a.Chart = def.Chart
		}
		if a.Repo == "" {
			a.Repo = def.Repo
		}
		if a.Namespace == "" {
			a.Namespace = def.Namespace
		}
		if dir, local := strings.CutPrefix(a.Repo, "file://"); local {
			v.check(p+".repo", a.Repo, strings.HasPrefix(dir, "/"), "want file:///absolute/path/to/charts, got %q", a.Repo)
		} else {
			v.url(p+".repo", a.Repo, "https", "http", "oci")
		}
		if a.IngressManifests != nil && name != AddonIstioGateway {
			v.errf(p+".ingress_manifests", "only the istio-gateway add-on takes ingress_manifests")
		}
		v.check(p+".namespace", a.Namespace, dnsLabelRe.MatchString(a.Namespace), "want a Kubernetes namespace name, got %q", a.Namespace)
		if name != AddonKarpenter {
			if a.NodePool != nil {
				v.errf(p+".node_pool", "only the karpenter add-on takes node_pool")
			}
			if a.EC2NodeClass != nil {
				v.errf(p+".ec2_node_class", "only the karpenter add-on takes ec2_node_class")
			}
		}
		v.c.Addons[name] = a
	}
}

func (v *validator) argocd() {
	a := v.c.ArgoCD
	v.check("argocd.namespace", a.Namespace, dnsLabelRe.MatchString(a.Namespace), "want a Kubernetes namespace name, got %q", a.Namespace)
	v.check("argocd.role_arn", a.RoleARN, roleARNRe.MatchString(a.RoleARN), "%s, got %q", roleWant, a.RoleARN)
}

func (v *validator) gitlab() {
	g := &v.c.GitLab
	if v.url("gitlab.url", g.URL, "https", "http") {
		g.URL = strings.TrimSuffix(g.URL, "/")
		if strings.HasSuffix(g.URL, "/api/v4") {
			v.errf("gitlab.url", "write the base URL without /api/v4 (drbot adds it)")
		}
	}
	if _, err := strconv.Atoi(g.Project); err != nil {
		v.check("gitlab.project", g.Project, projectPathRe.MatchString(g.Project), `want "group/project" or a numeric project id, got %q`, g.Project)
	}
	for _, f := range []struct{ key, val string }{{"templates_path", g.TemplatesPath}, {"dr_path", g.DRPath}, {"app_of_apps_path", g.AppOfAppsPath}} {
		clean := path.Clean(f.val)
		v.check("gitlab."+f.key, f.val, !strings.HasPrefix(f.val, "/") && clean != ".." && !strings.HasPrefix(clean, "../"),
			"want a path inside the repository (relative, no ..), got %q", f.val)
	}
	if within(g.DRPath, g.TemplatesPath) || within(g.TemplatesPath, g.DRPath) {
		v.errf("gitlab.dr_path", "must not overlap templates_path %q: DR templates would be read back as the primary's", g.TemplatesPath)
	}
	for _, f := range []struct{ key, val string }{{"default_branch", g.DefaultBranch}, {"branch_prefix", g.BranchPrefix}} {
		v.check("gitlab."+f.key, f.val, gitRefRe.MatchString(f.val) && !strings.Contains(f.val, "..") &&
			!strings.Contains(f.val, "//") && !strings.HasPrefix(f.val, "/") && !strings.HasPrefix(f.val, "-"),
			"want a valid git branch name, got %q", f.val)
	}
}

// within reports whether repository path a is b or below it.
func within(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	a, b = path.Clean(a), path.Clean(b)
	return a == b || b == "." || strings.HasPrefix(a, b+"/")
}

func (v *validator) vault() {
	vc := &v.c.Vault
	v.url("vault.address", vc.Address, "https", "http")
	method := "token"
	if vc.Auth != nil {
		method = vc.Auth.Method
		if vc.Auth.Mount == "" {
			vc.Auth.Mount = method
		}
	}
	switch method {
	case "token":
		if !vc.Token.IsSet() && !v.d.failed("vault.token") && !v.d.failed("vault.token_file") {
			v.errf("vault.token", `missing required key (write token: "${VAR}" or token_file: /path, or use auth.method kubernetes or aws)`)
		}
		if vc.Auth != nil && vc.Auth.Role != "" {
			v.errf("vault.auth.role", "only used with auth.method kubernetes or aws")
		}
	case "kubernetes", "aws":
		if vc.Auth.Role == "" {
			v.errf("vault.auth.role", "missing required key (auth.method %s needs a role)", method)
		}
		if vc.Token.IsSet() {
			v.errf("vault.token", "not used with auth.method %s; remove it", method)
		}
	}
	if vc.Auth != nil {
		for _, f := range []struct{ method, key, val string }{
			{"kubernetes", "token_path", vc.Auth.TokenPath},
			{"aws", "iam_server_id", vc.Auth.IAMServerID},
		} {
			if method != f.method && f.val != "" {
				v.errf("vault.auth."+f.key, "only used with auth.method %s", f.method)
			}
		}
		if vc.Auth.TokenPath != "" {
			v.check("vault.auth.token_path", vc.Auth.TokenPath, path.IsAbs(vc.Auth.TokenPath), "want an absolute file path, got %q", vc.Auth.TokenPath)
		}
		if method == "aws" {
			v.check("vault.auth.sts_region", vc.Auth.STSRegion, regionRe.MatchString(vc.Auth.STSRegion), "want an AWS region like us-east-1, got %q", vc.Auth.STSRegion)
		}
	}
	vc.SourceMount = strings.Trim(strings.TrimPrefix(vc.SourceMount, "auth/"), "/")
	vc.TargetMount = strings.Trim(strings.TrimPrefix(vc.TargetMount, "auth/"), "/")
	for _, f := range []struct{ key, val string }{{"source_mount", vc.SourceMount}, {"target_mount", vc.TargetMount}} {
		v.check("vault."+f.key, f.val, vaultMountRe.MatchString(f.val), "want an auth mount path like kubernetes or k8s/primary, got %q", f.val)
	}
	for _, t := range v.c.Targets {
		if vc.SourceMount != "" && vc.TargetMountFor(t.Name) == vc.SourceMount {
			v.errf("vault.target_mount", "must differ from source_mount (%s): the DR config would replace the primary's", vc.SourceMount)
			break
		}
	}
	if mount, p := vc.NewRelicKV(); vc.NewRelicKeyPath != "" {
		switch {
		case strings.HasPrefix(vc.NewRelicKeyPath, "/") || mount == "" || p == "":
			v.errf("vault.newrelic_key_path", `want "<kv mount>/<path>" like "secret/newrelic", got %q`, vc.NewRelicKeyPath)
		case strings.HasPrefix(p, "data/"):
			v.warnf("vault.newrelic_key_path", `KV v2 paths are written without "data/" (drbot adds it); did you mean %q?`, mount+"/"+strings.TrimPrefix(p, "data/"))
		}
	}
	v.check("vault.newrelic_secret_name", vc.NewRelicSecretName, dnsSubdomain.MatchString(vc.NewRelicSecretName),
		"want a Kubernetes Secret name, got %q", vc.NewRelicSecretName)
	seen := map[string]bool{}
	for i, ns := range vc.Namespaces {
		p := fmt.Sprintf("vault.namespaces[%d]", i)
		v.check(p, ns, dnsLabelRe.MatchString(ns), "want a Kubernetes namespace name, got %q", ns)
		if seen[ns] {
			v.errf(p, "duplicate namespace %q", ns)
		}
		seen[ns] = true
	}
}

func (v *validator) cutover(p string, c Cutover) {
	seen := map[string]int{}
	dup := func(rp, key string) {
		if line, ok := seen[key]; ok {
			v.errf(rp, "duplicate entry (first on line %d)", line)
			return
		}
		seen[key] = v.d.at(rp).line
	}
	for i, r := range c.Route53 {
		rp := fmt.Sprintf("%s.route53[%d]", p, i)
		zone := strings.TrimPrefix(r.ZoneID, "/hostedzone/")
		v.check(rp+".zone_id", r.ZoneID, awsIDRe.MatchString(zone), "want a hosted zone id like Z0123456789ABC, got %q", r.ZoneID)
		v.check(rp+".name", r.Name, hostnameRe.MatchString(r.Name), "want a DNS name like api.example.com, got %q", r.Name)
		v.backend(rp, r.Backend)
		dup(rp, strings.Join([]string{"r53", zone, strings.ToLower(strings.TrimSuffix(r.Name, ".")), r.Type, r.SetIdentifier}, "|"))
	}
	for i, o := range c.CloudFront {
		rp := fmt.Sprintf("%s.cloudfront[%d]", p, i)
		v.check(rp+".distribution_id", o.DistributionID, awsIDRe.MatchString(o.DistributionID), "want a distribution id like E1A2B3C4D5E6F7, got %q", o.DistributionID)
		v.backend(rp, o.Backend)
		dup(rp, "cf|"+o.DistributionID+"|"+o.OriginID)
	}
	for i, a := range c.APIGateway {
		rp := fmt.Sprintf("%s.apigateway[%d]", p, i)
		v.check(rp+".api_id", a.APIID, apiIDRe.MatchString(a.APIID), "want an API id like a1b2c3d4e5, got %q", a.APIID)
		switch a.Kind {
		case "rest":
			for _, f := range []struct{ key, val string }{{"resource_id", a.ResourceID}, {"http_method", a.HTTPMethod}, {"stage", a.Stage}} {
				if f.val == "" {
					v.errf(rp+"."+f.key, "missing required key (kind rest needs resource_id, http_method and stage)")
				}
			}
			if a.IntegrationID != "" {
				v.errf(rp+".integration_id", "only used with kind http")
			}
			methods := []string{"ANY", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"}
			v.check(rp+".http_method", a.HTTPMethod, contains(methods, a.HTTPMethod), "want one of %s; got %q", strings.Join(methods, ", "), a.HTTPMethod)
		case "http":
			if a.IntegrationID == "" {
				v.errf(rp+".integration_id", "missing required key (kind http needs integration_id)")
			}
			if a.ResourceID != "" || a.HTTPMethod != "" {
				v.errf(rp, "resource_id and http_method are only used with kind rest")
			}
		}
		v.backend(rp, a.Backend)
		dup(rp, strings.Join([]string{"apigw", a.APIID, a.ResourceID, a.HTTPMethod, a.IntegrationID}, "|"))
	}
}

func (v *validator) backend(p string, b Backend) {
	switch {
	case b.Service != "" && b.Ingress != "":
		v.errf(p+".ingress", "give either service or ingress, not both")
	case b.Service == "" && b.Ingress == "":
		if !v.d.failed(p+".service") && !v.d.failed(p+".ingress") {
			v.errf(p, `needs service or ingress ("namespace/name")`)
		}
	default:
		key := "service"
		if b.Ingress != "" {
			key = "ingress"
		}
		v.check(p+"."+key, b.Ref(), k8sRefRe.MatchString(b.Ref()), `want "namespace/name", got %q`, b.Ref())
	}
}

func (v *validator) drills() {
	firstLine := map[string]int{}
	var names []string
	for _, t := range v.c.Targets {
		names = append(names, t.Name)
	}
	for i := range v.c.Drills {
		dr := &v.c.Drills[i]
		p := fmt.Sprintf("drills[%d]", i)
		v.check(p+".name", dr.Name, slugRe.MatchString(dr.Name), "want a slug [a-z0-9-], got %q", dr.Name)
		if line, dup := firstLine[dr.Name]; dup && dr.Name != "" {
			v.errf(p+".name", "duplicate drill name %q (first on line %d)", dr.Name, line)
		} else {
			firstLine[dr.Name] = v.d.at(p + ".name").line
		}
		if dr.Schedule != "" {
			spec := strings.TrimSpace(dr.Schedule)
			if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
				v.errf(p+".schedule", "put the time zone in the timezone key, not in the schedule")
			} else if _, err := cron.ParseStandard(spec); err != nil {
				v.errf(p+".schedule", `want a 5-field cron like "0 9 * * 2" or a descriptor like @weekly, got %q (%v)`, dr.Schedule, err)
			}
		}
		if _, err := time.LoadLocation(dr.Timezone); err != nil || dr.Timezone == "Local" || dr.Timezone == "" {
			v.errf(p+".timezone", "want an IANA time zone like Europe/Berlin, got %q", dr.Timezone)
		}
		if dr.Target != "" {
			if t, ok := v.c.Target(dr.Target); !ok {
				v.errf(p+".target", "unknown target %q%s; targets are %s", dr.Target, suggest(dr.Target, names, " "), strings.Join(names, ", "))
			} else if !t.DrillOnly {
				v.warnf(p+".target", "target %q is not drill_only: this drill rehearses against a production recovery target", dr.Target)
			}
		}
		lead := map[Duration]bool{}
		for j, a := range dr.Announce {
			ap := fmt.Sprintf("%s.announce[%d]", p, j)
			switch {
			case a <= 0:
				v.errf(ap, "must be longer than zero")
			case lead[a]:
				v.errf(ap, "duplicate lead time %s", a)
			}
			lead[a] = true
		}
		for j, g := range dr.PreApprove {
			v.check(fmt.Sprintf("%s.pre_approve[%d]", p, j), g, g == GateMerge || g == GateCutover, "want a gate (merge or cutover), got %q", g)
		}
		for j, who := range dr.OnPoint {
			v.check(fmt.Sprintf("%s.on_point[%d]", p, j), who, userRe.MatchString(who), "want a Slack user id (U…/W…), got %q", who)
		}
	}
}

func (v *validator) readiness() {
	r := &v.c.Readiness
	if spec := strings.TrimSpace(r.Schedule); spec != "" && spec != "off" {
		if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
			v.errf("readiness.schedule", "put the time zone in the timezone key, not in the schedule")
		} else if _, err := cron.ParseStandard(spec); err != nil {
			v.errf("readiness.schedule", `want a 5-field cron like "0 7 * * *", a descriptor like @daily, or off, got %q (%v)`, r.Schedule, err)
		}
	}
	if _, err := time.LoadLocation(r.Timezone); err != nil || r.Timezone == "Local" || r.Timezone == "" {
		v.errf("readiness.timezone", "want an IANA time zone like Europe/Berlin, got %q", r.Timezone)
	}
	if r.Channel != "" {
		v.check("readiness.channel", r.Channel, channelRe.MatchString(r.Channel), "want a channel id (C…) or #name, got %q", r.Channel)
	}
	v.principals("readiness.owners", r.Owners)
	var names []string
	for _, t := range v.c.Targets {
		names = append(names, t.Name)
	}
	for i, name := range r.Targets {
		if _, ok := v.c.Target(name); !ok {
			v.errf(fmt.Sprintf("readiness.targets[%d]", i), "unknown target %q%s; targets are %s", name, suggest(name, names, " "), strings.Join(names, ", "))
		}
	}
}

func (v *validator) mttr() {
	m := v.c.MTTR
	if m.Budget <= 0 {
		v.errf("mttr.budget", "must be longer than zero")
	}
	var sum Duration
	for _, phase := range Phases {
		d, ok := m.Phases[phase]
		if ok && d <= 0 {
			v.errf("mttr.phases."+phase, "must be longer than zero")
		}
		sum += d
	}
	if m.Budget > 0 && sum > m.Budget {
		v.warnf("mttr.phases", "the phase budgets add up to %s, more than the MTTR budget %s", sum, m.Budget)
	}
}

func (v *validator) runbook() {
	r := v.c.Runbook
	if r.Concurrency < 1 || r.Concurrency > 64 {
		v.errf("runbook.concurrency", "want 1 to 64, got %d", r.Concurrency)
	}
	if r.Retry.MaxAttempts < 1 {
		v.errf("runbook.retry.max_attempts", "must be at least 1, got %d", r.Retry.MaxAttempts)
	}
	if r.Retry.InitialBackoff <= 0 {
		v.errf("runbook.retry.initial_backoff", "must be longer than zero")
	} else if r.Retry.MaxBackoff < r.Retry.InitialBackoff {
		v.errf("runbook.retry.max_backoff", "must be at least initial_backoff (%s), got %s", r.Retry.InitialBackoff, r.Retry.MaxBackoff)
	}
	for id, d := range r.Estimates {
		if d <= 0 {
			v.errf(joinKey("runbook.estimates", id), "must be longer than zero")
		}
	}
	for gate, d := range r.Gates {
		if d <= 0 {
			v.errf(joinKey("runbook.gates", gate), "must be longer than zero")
		}
	}
}

// url checks an absolute URL with one of the schemes; it reports whether the
// value is usable (so callers can normalise it).
func (v *validator) url(p, raw string, schemes ...string) bool {
	if raw == "" {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || !contains(schemes, u.Scheme) || u.Host == "" {
		v.errf(p, "want a %s URL, got %q", strings.Join(schemes, " or "), raw)
		return false
	}
	return true
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
