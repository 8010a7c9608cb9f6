package readiness

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-exec/tfexec"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/gitops"
	"github.com/drbot/drbot/recovery/helm"
)

// Check ids of the sources checks.
const (
	CheckTemplates = "sources.templates"
	CheckTerraform = "sources.terraform"
	CheckCharts    = "sources.charts"
)

// TemplatesCheck reads the primary's templates from GitLab and generates
// the DR set in memory, with the code templates.generate runs: every
// template must parse and become an Application.
type TemplatesCheck struct {
	Config *config.Config
	// GitOps is built over drbot's GitLab client (gitops.New); nil with
	// ClientErr set fails the check.
	GitOps    *gitops.GitOps
	ClientErr error
}

// ID is the check's id.
func (c *TemplatesCheck) ID() string { return CheckTemplates }

// Run generates per target (the destination differs per target).
func (c *TemplatesCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	const title = "the primary's templates parse and templates.generate would succeed"
	var out []Result
	for _, t := range targets {
		if c.GitOps == nil {
			err := c.ClientErr
			if err == nil {
				err = errors.New("no GitLab client")
			}
			out = append(out, ErrorResult(CheckTemplates, t.Name, title, err, "check gitlab.url and gitlab.token"))
			continue
		}
		rep, err := c.GitOps.Plan(ctx, t.Name)
		if err != nil {
			out = append(out, ErrorResult(CheckTemplates, t.Name, title, fmt.Errorf("reading the templates: %s", firstLine(err.Error())),
				"check gitlab.project, gitlab.default_branch and gitlab.templates_path"))
			continue
		}
		res := Result{Check: CheckTemplates, Target: t.Name, Title: title, Status: Pass,
			Evidence: []string{fmt.Sprintf("%d Application(s) generated from %s at %s", rep.Files, rep.Templates, shortSHA(rep.SourceSHA))}}
		if len(rep.Malformed) > 0 {
			res.Status = Fail
			if !c.Config.GitLab.FailOnUnparseable {
				res.Status = Warn // the run recovers without them
			}
			res.Evidence = nil
			for _, p := range rep.Malformed {
				res.Evidence = append(res.Evidence, fmt.Sprintf("malformed template %s: %s", p.File, p.Reason))
			}
			res.Evidence = append(res.Evidence, fmt.Sprintf("%d other Application(s) generate fine", rep.Files))
			res.Fix = "fix the template(s) in GitLab; a recovery stops at templates.generate until then"
			if res.Status == Warn {
				res.Fix = "fix the template(s) in GitLab: with gitlab.fail_on_unparseable false a recovery leaves these services out"
			}
		}
		if len(rep.Unused) > 0 {
			if res.Status == Pass {
				res.Status = Warn
				res.Fix = "remove or rename the overrides in gitlab.overrides"
			}
			res.Evidence = append(res.Evidence, "overrides naming no Application: "+strings.Join(rep.Unused, ", "))
		}
		out = append(out, res)
	}
	return out
}

func shortSHA(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// TerraformCheck runs `terraform init -backend=false` and `terraform
// validate` for targets with provider terraform, with TF_DATA_DIR in a
// temporary directory so the module directory and its state are left alone.
type TerraformCheck struct {
	// ExecPath is the terraform executable ("" looks it up in PATH).
	ExecPath string
}

// ID is the check's id.
func (c *TerraformCheck) ID() string { return CheckTerraform }

// Run validates each terraform target's module; other targets have no result.
func (c *TerraformCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	const title = "the Terraform module exists and `terraform validate` passes"
	var out []Result
	for _, t := range targets {
		if t.Cluster.Provider != config.ProviderTerraform || t.Cluster.Terraform == nil {
			continue
		}
		out = append(out, c.validate(ctx, t, title))
	}
	return out
}

func (c *TerraformCheck) validate(ctx context.Context, t *config.Target, title string) Result {
	dir := t.Cluster.Terraform.Dir
	fail := func(evidence, fix string) Result {
		return Result{Check: CheckTerraform, Target: t.Name, Title: title, Status: Fail, Evidence: []string{evidence}, Fix: fix}
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fail(fmt.Sprintf("the module directory %s does not exist in drbot's filesystem", dir), "mount the module at targets[].cluster.terraform.dir or fix the path")
	}
	execPath := c.ExecPath
	if execPath == "" {
		p, err := exec.LookPath("terraform")
		if err != nil {
			return fail("no terraform executable in drbot's PATH", "install terraform in drbot's image")
		}
		execPath = p
	}
	tf, err := tfexec.NewTerraform(dir, execPath)
	if err != nil {
		return fail(fmt.Sprintf("opening the module %s: %v", dir, err), "fix targets[].cluster.terraform.dir")
	}
	data, err := os.MkdirTemp("", "drbot-readiness-tf-")
	if err != nil {
		return fail(fmt.Sprintf("making a temporary data directory: %v", err), "free space in drbot's temp directory")
	}
	defer os.RemoveAll(data)
	env := tfexec.CleanEnv(environ())
	env["TF_DATA_DIR"] = data
	if err := tf.SetEnv(env); err != nil {
		return fail(fmt.Sprintf("setting terraform's environment: %v", err), "")
	}
	if err := tf.Init(ctx, tfexec.Backend(false)); err != nil {
		return fail(fmt.Sprintf("terraform init -backend=false in %s: %s", dir, firstLine(err.Error())), "run terraform init in the module and fix what it reports (providers and modules must be reachable from drbot)")
	}
	v, err := tf.Validate(ctx)
	if err != nil {
		return fail(fmt.Sprintf("terraform validate in %s: %s", dir, firstLine(err.Error())), "run terraform validate in the module")
	}
	if !v.Valid {
		res := fail(fmt.Sprintf("terraform validate in %s: %d error(s)", dir, v.ErrorCount), "fix the module so that terraform validate passes")
		for _, d := range v.Diagnostics {
			line := string(d.Severity) + ": " + d.Summary
			if d.Detail != "" {
				line += ": " + firstLine(d.Detail)
			}
			if d.Range != nil {
				line += fmt.Sprintf(" (%s:%d)", d.Range.Filename, d.Range.Start.Line)
			}
			res.Evidence = append(res.Evidence, line)
		}
		return res
	}
	return Result{Check: CheckTerraform, Target: t.Name, Title: title, Status: Pass,
		Evidence: []string{fmt.Sprintf("terraform validate in %s: valid, %d warning(s)", dir, v.WarningCount)}}
}

func environ() map[string]string {
	out := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok {
			out[k] = v
		}
	}
	return out
}

// ChartsCheck locates every configured add-on chart at its pinned version
// with recovery/helm (the code the add-on steps install with), as for a
// new cluster; nothing is installed.
type ChartsCheck struct {
	// Steps are the add-on steps (helm.New); nil with StepsErr set fails the check.
	Steps    *helm.Steps
	StepsErr error
}

// ID is the check's id.
func (c *ChartsCheck) ID() string { return CheckCharts }

// Run plans the add-ons per target.
func (c *ChartsCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	const title = "the configured charts and versions resolve"
	var out []Result
	for _, t := range targets {
		if c.Steps == nil {
			err := c.StepsErr
			if err == nil {
				err = errors.New("no add-on steps")
			}
			out = append(out, ErrorResult(CheckCharts, t.Name, title, err, "check the addons section of the config"))
			continue
		}
		byStep, err := c.Steps.Plan(ctx, t.Name, nil, nil)
		if err != nil {
			out = append(out, ErrorResult(CheckCharts, t.Name, title, err, "check the addons section of the config"))
			continue
		}
		res := Result{Check: CheckCharts, Target: t.Name, Title: title, Status: Pass}
		var ok []string
		for _, step := range sortedKeys(byStep) {
			for _, line := range byStep[step] {
				head, rest, _ := strings.Cut(line, ": ")
				if strings.HasPrefix(rest, "cannot") {
					res.Status = Fail
					res.Evidence = append(res.Evidence, step+": "+line)
					continue
				}
				if strings.HasPrefix(line, "cannot") {
					res.Status = Fail
					res.Evidence = append(res.Evidence, step+": "+line)
					continue
				}
				ok = append(ok, head)
			}
		}
		if res.Status == Fail {
			res.Fix = "pin a version the chart repository has (addons.<name>.version) or fix addons.<name>.repo and chart"
		}
		if len(ok) > 0 {
			res.Evidence = append(res.Evidence, "found: "+strings.Join(ok, "; "))
		}
		out = append(out, res)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
