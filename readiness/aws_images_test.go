package readiness

import (
	"reflect"
	"testing"
)

func TestParseImageSplitsRegistryRepositoryTagAndDigest(t *testing.T) {
	digest := "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct {
		in   string
		want imageRef
	}{
		{"nginx", imageRef{raw: "nginx", registry: "docker.io", repo: "nginx", tag: "latest"}},
		{"bitnami/redis:7.2", imageRef{raw: "bitnami/redis:7.2", registry: "docker.io", repo: "bitnami/redis", tag: "7.2"}},
		{"localhost:5000/app:1", imageRef{raw: "localhost:5000/app:1", registry: "localhost:5000", repo: "app", tag: "1"}},
		{"public.ecr.aws/karpenter/controller:1.6.2@" + digest, imageRef{raw: "public.ecr.aws/karpenter/controller:1.6.2@" + digest,
			registry: "public.ecr.aws", repo: "karpenter/controller", tag: "1.6.2", digest: digest}},
		{"123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api@" + digest, imageRef{raw: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/api@" + digest,
			registry: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", repo: "team/api", digest: digest}},
	}
	for _, c := range cases {
		got, ok := parseImage(c.in)
		if !ok || got != c.want {
			t.Errorf("parseImage(%q) = %+v, %v; want %+v", c.in, got, ok, c.want)
		}
	}
	for _, bad := range []string{"", "{{ .Values.image }}", "two words", ":tag"} {
		if _, ok := parseImage(bad); ok {
			t.Errorf("parseImage(%q) accepted a non-image", bad)
		}
	}
}

func TestECRRegistryHostsNameAccountAndRegion(t *testing.T) {
	for in, want := range map[string][2]string{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com/a:1":          {"123456789012", "us-east-1"},
		"123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/a:1": {"123456789012", "us-gov-west-1"},
	} {
		ref, _ := parseImage(in)
		acct, region, ok := ref.ecr()
		if !ok || acct != want[0] || region != want[1] {
			t.Errorf("%s: ecr() = %q, %q, %v; want %v", in, acct, region, ok, want)
		}
	}
	for _, in := range []string{"public.ecr.aws/x/y:1", "docker.io/library/redis:7", "ghcr.io/org/app:1"} {
		ref, _ := parseImage(in)
		if _, _, ok := ref.ecr(); ok {
			t.Errorf("%s was taken for a private ECR registry", in)
		}
	}
}

func TestImagesOfApplicationReadsNestedImageKeysAndReportsTaglessOnes(t *testing.T) {
	app := []byte(`apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: shop}
spec:
  sources:
    - repoURL: https://charts.example.com
      chart: shop
      helm:
        valuesObject:
          image: {registry: ghcr.io, repository: org/shop, tag: "3"}
          initImage: busybox:1.36
          jobs:
            - name: migrate
              image: ghcr.io/org/migrate:3
          exporter:
            image: {repository: org/exporter}
    - repoURL: https://gitlab.example.com/values.git
      ref: values
`)
	got := imagesOfApplication("shop", app)
	var raws []string
	for _, r := range got.images {
		raws = append(raws, r.raw)
	}
	want := []string{"busybox:1.36", "ghcr.io/org/migrate:3", "ghcr.io/org/shop:3"}
	if !reflect.DeepEqual(raws, want) {
		t.Errorf("images = %v, want %v", raws, want)
	}
	if !reflect.DeepEqual(got.tagless, []string{"org/exporter"}) {
		t.Errorf("tagless = %v, want [org/exporter]", got.tagless)
	}
	if got.noValues {
		t.Error("an Application with Helm values was reported as having none")
	}
}
