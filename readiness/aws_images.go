package readiness

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"gopkg.in/yaml.v3"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery/gitops"
)

// ECRAPI is the ECR call the images check makes.
type ECRAPI interface {
	DescribeImages(ctx context.Context, in *ecr.DescribeImagesInput, optFns ...func(*ecr.Options)) (*ecr.DescribeImagesOutput, error)
}

// ImagesCheck proves that every container image the services would deploy
// exists where the DR cluster can pull it: it reads the primary's Argo CD
// Application templates from GitLab (gitlab.project, default_branch,
// templates_path), derives the DR set with gitops.Generate (so
// gitlab.overrides apply, as in a recovery), collects the images in each
// Application's Helm values (valuesObject, values, parameters) and asks ECR
// for each by tag or digest:
//
//   - an image of the DR region's registry must exist there;
//   - an image of the primary region's registry must have its replica in
//     the same repository of the DR region (missing replication is the
//     classic DR failure);
//   - an image of another region's ECR registry is checked where it is;
//   - an image of another registry (docker.io, public.ecr.aws, ...) is a
//     warning: it is pulled over the internet during a recovery.
//
// Images the values do not name (a chart's default image, plain manifests,
// Kustomize) are not seen; the evidence says how many Applications carry
// no Helm values.
type ImagesCheck struct {
	Config *config.Config
	// GitOps generates the DR set from the primary's templates, with the
	// code (and cache) templates.generate uses; nil with ClientErr set
	// fails the check.
	GitOps    *gitops.GitOps
	ClientErr error
	// AWS returns the configuration of a region for the ECR clients.
	AWS AWSConfigFunc
	// Concurrency bounds parallel DescribeImages calls (default 8).
	Concurrency int
}

// ID is the check's id.
func (c *ImagesCheck) ID() string { return CheckImages }

const imagesTitle = "every image the services deploy exists in ECR where the DR cluster pulls it"

const imagesFix = "replicate the missing images into the DR region (an ECR replication rule for the repositories, or push them there); mirror images from other registries into ECR (pull-through cache) and point the values at the mirror"

// Run checks the images per target, in the DR set that target's run would
// commit.
func (c *ImagesCheck) Run(ctx context.Context, targets []*config.Target) []Result {
	var out []Result
	for _, t := range targets {
		apps, sha, err := c.applications(ctx, t.Name)
		if err != nil {
			out = append(out, ErrorResult(CheckImages, t.Name, imagesTitle, err, "check gitlab.url, gitlab.token, gitlab.project and gitlab.templates_path"))
			continue
		}
		out = append(out, c.runTarget(ctx, t, apps, sha))
	}
	return out
}

// appImages are the images one DR Application names.
type appImages struct {
	app      string
	images   []imageRef
	noValues bool // no Helm values at all: its images are not visible here
	tagless  []string
}

func (c *ImagesCheck) applications(ctx context.Context, target string) ([]appImages, string, error) {
	if c.GitOps == nil {
		if c.ClientErr != nil {
			return nil, "", c.ClientErr
		}
		return nil, "", errors.New("no GitLab client")
	}
	set, sha, err := c.GitOps.Generated(ctx, target)
	if err != nil {
		return nil, "", err
	}
	var apps []appImages
	for _, f := range set.Files {
		apps = append(apps, imagesOfApplication(f.App, f.Content))
	}
	return apps, sha, nil
}

// imageKey is one DescribeImages question.
type imageKey struct {
	region, registry, repo, tag, digest string
}

type imageAnswer struct {
	found bool
	why   string // when not found, or the error
	err   bool   // the answer is an error, not a verdict
}

func (c *ImagesCheck) runTarget(ctx context.Context, t *config.Target, apps []appImages, sha string) Result {
	var f findings
	type use struct {
		app string
		ref imageRef
		key imageKey
	}
	var uses []use
	external := map[string][]string{} // app → refs outside ECR
	var noValues, tagless []string
	fromPrimary := map[string]bool{}
	services := map[string]bool{}
	for _, a := range apps {
		if a.noValues {
			noValues = append(noValues, a.app)
		}
		for _, tl := range a.tagless {
			tagless = append(tagless, a.app+": "+tl)
		}
		for _, ref := range a.images {
			services[a.app] = true
			acct, region, ok := ref.ecr()
			if !ok {
				external[a.app] = append(external[a.app], ref.raw)
				continue
			}
			where := region
			if region == t.Primary.Region {
				where = t.DR.Region
				fromPrimary[a.app] = true
			}
			uses = append(uses, use{app: a.app, ref: ref, key: imageKey{region: where, registry: acct, repo: ref.repo, tag: ref.tag, digest: ref.digest}})
		}
	}
	keys := map[imageKey]bool{}
	for _, u := range uses {
		keys[u.key] = true
	}
	answers, cfgErr := c.lookup(ctx, keys)
	if cfgErr != nil {
		return ErrorResult(CheckImages, t.Name, imagesTitle, cfgErr, "check drbot's AWS credentials and region configuration")
	}

	missing := map[string][]string{}
	var errs []string
	for _, u := range uses {
		a := answers[u.key]
		switch {
		case a.err:
			errs = append(errs, fmt.Sprintf("%s: %s in %s: %s", u.app, u.ref.raw, u.key.region, a.why))
		case !a.found:
			line := fmt.Sprintf("%s (%s)", u.ref.raw, a.why)
			if u.key.region != regionOf(u.ref) {
				line = fmt.Sprintf("%s has no replica in %s (%s)", u.ref.raw, u.key.region, a.why)
			}
			missing[u.app] = append(missing[u.app], line)
		}
	}
	for _, app := range sortedKeys(missing) {
		f.fail("%s: missing %s", app, strings.Join(missing[app], "; "))
	}
	for _, e := range errs {
		f.fail("%s", e)
	}
	for _, app := range sortedKeys(external) {
		f.warn("%s: %s not in ECR (pulled from outside AWS during a recovery; not checked)", app, strings.Join(external[app], ", "))
	}
	if len(tagless) > 0 {
		sort.Strings(tagless)
		f.warn("images without a tag or digest in the values (the chart's default applies; not checked): %s", clipList(tagless, 10))
	}
	found := 0
	for k := range keys {
		if answers[k].found {
			found++
		}
	}
	f.pass("%d of %d ECR image(s) named by %d service(s) found (templates %s at %s)", found, len(keys), len(services), c.Config.GitLab.TemplatesPath, shortSHA(sha))
	if n := len(fromPrimary); n > 0 {
		f.pass("%d service(s) name images of the primary region's registry (%s): their replicas in %s were checked; a recovery pulls them from %s unless gitlab.overrides point them at %s",
			n, t.Primary.Region, t.DR.Region, t.Primary.Region, t.DR.Region)
	}
	if len(noValues) > 0 {
		sort.Strings(noValues)
		f.pass("%d Application(s) carry no Helm values, so their images are not visible here: %s", len(noValues), clipList(noValues, 10))
	}
	return f.result(CheckImages, t.Name, imagesTitle, imagesFix)
}

func regionOf(r imageRef) string {
	_, region, _ := r.ecr()
	return region
}

// lookup answers every key with DescribeImages, a few at a time.
func (c *ImagesCheck) lookup(ctx context.Context, keys map[imageKey]bool) (map[imageKey]imageAnswer, error) {
	clients := map[string]ECRAPI{}
	for k := range keys {
		if _, ok := clients[k.region]; ok {
			continue
		}
		cfg, err := c.AWS(ctx, k.region)
		if err != nil {
			return nil, fmt.Errorf("loading AWS configuration for %s: %w", k.region, err)
		}
		clients[k.region] = ecr.NewFromConfig(cfg)
	}
	n := c.Concurrency
	if n <= 0 {
		n = 8
	}
	out := map[imageKey]imageAnswer{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a := describeImage(ctx, clients[k.region], k)
			mu.Lock()
			out[k] = a
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, nil
}

func describeImage(ctx context.Context, api ECRAPI, k imageKey) imageAnswer {
	id := ecrtypes.ImageIdentifier{}
	what := "tag " + k.tag
	if k.digest != "" {
		// A digest is what the node pulls when both are given.
		id.ImageDigest = aws.String(k.digest)
		what = "digest " + k.digest
	} else {
		id.ImageTag = aws.String(k.tag)
	}
	_, err := api.DescribeImages(ctx, &ecr.DescribeImagesInput{
		RegistryId: aws.String(k.registry), RepositoryName: aws.String(k.repo), ImageIds: []ecrtypes.ImageIdentifier{id},
	})
	var inf *ecrtypes.ImageNotFoundException
	var rnf *ecrtypes.RepositoryNotFoundException
	switch {
	case err == nil:
		return imageAnswer{found: true}
	case errors.As(err, &inf):
		return imageAnswer{why: fmt.Sprintf("repository %s has no %s", k.repo, what)}
	case errors.As(err, &rnf):
		return imageAnswer{why: fmt.Sprintf("no repository %s in %s", k.repo, k.region)}
	}
	return imageAnswer{err: true, why: "DescribeImages: " + shortErr(err)}
}

// ---- images in Helm values --------------------------------------------------

// imagesOfApplication collects the images of one generated Application:
// from each Helm source's valuesObject (or else its values string), with
// its parameters applied, as Argo CD renders them.
func imagesOfApplication(app string, content []byte) appImages {
	out := appImages{app: app}
	var doc map[string]any
	if err := yaml.Unmarshal(content, &doc); err != nil {
		out.noValues = true
		return out
	}
	spec, _ := doc["spec"].(map[string]any)
	var sources []map[string]any
	if s, ok := spec["source"].(map[string]any); ok {
		sources = append(sources, s)
	}
	if list, ok := spec["sources"].([]any); ok {
		for _, s := range list {
			if m, ok := s.(map[string]any); ok {
				sources = append(sources, m)
			}
		}
	}
	seen := map[string]bool{}
	anyValues := false
	for _, src := range sources {
		helm, _ := src["helm"].(map[string]any)
		if helm == nil {
			continue
		}
		vals, _ := helm["valuesObject"].(map[string]any)
		if vals == nil {
			if s, ok := helm["values"].(string); ok && strings.TrimSpace(s) != "" {
				_ = yaml.Unmarshal([]byte(s), &vals) // unparseable values are the templates check's business
			}
		}
		if vals == nil {
			vals = map[string]any{}
		}
		if params, ok := helm["parameters"].([]any); ok {
			for _, p := range params {
				pm, _ := p.(map[string]any)
				name, _ := pm["name"].(string)
				if name != "" {
					setPath(vals, strings.Split(name, "."), fmt.Sprint(pm["value"]))
				}
			}
		}
		if len(vals) > 0 {
			anyValues = true
		}
		walkImages(vals, "", func(ref imageRef) {
			if !seen[ref.raw] {
				seen[ref.raw] = true
				out.images = append(out.images, ref)
			}
		}, func(desc string) { out.tagless = append(out.tagless, desc) })
	}
	out.noValues = !anyValues
	sort.Slice(out.images, func(i, j int) bool { return out.images[i].raw < out.images[j].raw })
	return out
}

func setPath(m map[string]any, path []string, v string) {
	for i, k := range path {
		if i == len(path)-1 {
			m[k] = v
			return
		}
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
}

// isImageKey: "image", "initImage", "sidecar_image", ...
func isImageKey(k string) bool { return strings.HasSuffix(strings.ToLower(k), "image") }

// walkImages finds images: a string under an image key ("image:
// repo:tag"), or a map under an image key with repository (and registry,
// tag, digest). A map with a repository but neither tag nor digest is
// reported to tagless.
func walkImages(v any, key string, found func(imageRef), tagless func(string)) {
	switch n := v.(type) {
	case map[string]any:
		if isImageKey(key) {
			if repo, ok := n["repository"].(string); ok && repo != "" {
				full := repo
				if reg, ok := n["registry"].(string); ok && reg != "" {
					full = strings.TrimSuffix(reg, "/") + "/" + repo
				}
				tag := scalarString(n["tag"])
				digest := scalarString(n["digest"])
				if tag == "" && digest == "" {
					tagless(full)
					full = ""
				}
				if tag != "" {
					full += ":" + tag
				}
				if digest != "" {
					full += "@" + digest
				}
				if ref, ok := parseImage(full); ok {
					found(ref)
				}
			}
		}
		for k, child := range n {
			walkImages(child, k, found, tagless)
		}
	case []any:
		for _, child := range n {
			walkImages(child, key, found, tagless)
		}
	case string:
		if isImageKey(key) {
			if ref, ok := parseImage(n); ok {
				found(ref)
			}
		}
	}
}

func scalarString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return fmt.Sprint(x)
	}
	return fmt.Sprint(v)
}

// imageRef is a parsed image reference.
type imageRef struct {
	raw      string
	registry string // host, "docker.io" when none is named
	repo     string
	tag      string // "latest" when neither tag nor digest is named
	digest   string
}

var imageRefRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._:/@+-]*$`)

// parseImage splits "[registry/]repository[:tag][@digest]".
func parseImage(s string) (imageRef, bool) {
	s = strings.TrimSpace(s)
	if s == "" || !imageRefRE.MatchString(s) || strings.Contains(s, "{{") {
		return imageRef{}, false
	}
	r := imageRef{raw: s}
	rest := s
	if i := strings.Index(rest, "@"); i >= 0 {
		r.digest = rest[i+1:]
		rest = rest[:i]
	}
	if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		r.tag = rest[i+1:]
		rest = rest[:i]
	}
	if i := strings.Index(rest, "/"); i > 0 {
		first := rest[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			r.registry, rest = first, rest[i+1:]
		}
	}
	if r.registry == "" {
		r.registry = "docker.io"
	}
	r.repo = rest
	if r.repo == "" {
		return imageRef{}, false
	}
	if r.tag == "" && r.digest == "" {
		r.tag = "latest"
	}
	return r, true
}

var ecrHostRE = regexp.MustCompile(`^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// ecr reports the account and region of an ECR private registry image.
func (r imageRef) ecr() (account, region string, ok bool) {
	m := ecrHostRE.FindStringSubmatch(r.registry)
	if m == nil {
		return "", "", false
	}
	return m[1], m[2], true
}
