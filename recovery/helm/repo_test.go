package helm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/repo"

	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/test/kubeenv"
)

// actionConfig is Helm's own view of a namespace's releases, for tests
// that inspect or tamper with release records.
func actionConfig(t *testing.T, kc *kubeenv.Cluster, ns string) *action.Configuration {
	t.Helper()
	ac := new(action.Configuration)
	if err := ac.Init(newRESTGetter(kc.AdminConfig(), ns), ns, "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	return ac
}

// packageChart writes the test chart as <name>-<version>.tgz into dir, as
// `helm package` would, and returns the archive's path.
func packageChart(t *testing.T, name, version, dir string) string {
	t.Helper()
	ch, err := loader.Load(filepath.Join(chartsDir(t), name))
	if err != nil {
		t.Fatal(err)
	}
	ch.Metadata.Version = version
	p, err := chartutil.Save(ch, dir)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// requestLog records what a stand-in served; a stand-in fails the test on
// any request it does not understand.
type requestLog struct {
	mu   sync.Mutex
	seen []string
}

func (l *requestLog) add(r *http.Request) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seen = append(l.seen, r.Method+" "+r.URL.Path)
}

func (l *requestLog) since(n int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.seen[n:])
}

func (l *requestLog) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

func testHTTPRepository(ctx context.Context, t *testing.T, kc *kubeenv.Cluster, in *Installer) {
	dir := t.TempDir()
	packageChart(t, "istiod", "1.27.1", dir)
	packageChart(t, "istiod", "1.27.2", dir)
	// Relative chart URLs, as most repositories publish them.
	idx, err := repo.IndexDirectory(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	var log requestLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add(r)
		switch r.URL.Path {
		case "/charts/index.yaml", "/charts/istiod-1.27.1.tgz", "/charts/istiod-1.27.2.tgz":
			if r.Method == http.MethodGet {
				http.ServeFile(w, r, filepath.Join(dir, path.Base(r.URL.Path)))
				return
			}
		}
		t.Errorf("chart repository got unexpected request %s %q", r.Method, r.RequestURI)
		http.Error(w, "the test chart repository does not serve "+r.URL.Path, http.StatusNotFound)
	}))
	defer srv.Close()

	rel := Release{Name: "istiod", Namespace: "repo-test", Wait: true, Timeout: rolloutTimeout,
		Chart: ChartRef{Repo: srv.URL + "/charts", Name: "istiod", Version: "1.27.1"}}
	out, err := in.InstallOrUpgrade(ctx, kc.AdminConfig(), rel)
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != Installed || out.Revision != 1 || out.Version != "1.27.1" {
		t.Fatalf("outcome = %+v, want 1.27.1 installed as revision 1", out)
	}
	if got := log.since(0); !slices.Equal(got, []string{"GET /charts/index.yaml", "GET /charts/istiod-1.27.1.tgz"}) {
		t.Fatalf("requests = %q, want the index then the pinned archive", got)
	}
	assertAvailable(ctx, t, kc.Clientset(), "repo-test", "istiod", 1)

	n := log.len()
	out, err = in.InstallOrUpgrade(ctx, kc.AdminConfig(), rel)
	if err != nil || out.Action != Unchanged || out.Revision != 1 {
		t.Fatalf("second run = %+v, %v; want unchanged revision 1", out, err)
	}
	if got := log.since(n); len(got) != 0 {
		t.Fatalf("a pinned, cached chart was fetched again: %q", got)
	}

	n = log.len()
	rel.Chart.Version = "1.27.2"
	out, err = in.InstallOrUpgrade(ctx, kc.AdminConfig(), rel)
	if err != nil || out.Action != Upgraded || out.Revision != 2 || out.Version != "1.27.2" {
		t.Fatalf("new version = %+v, %v; want 1.27.2 upgraded as revision 2", out, err)
	}
	if got := log.since(n); !slices.Equal(got, []string{"GET /charts/index.yaml", "GET /charts/istiod-1.27.2.tgz"}) {
		t.Fatalf("requests = %q", got)
	}

	rel.Chart.Version = "9.9.9"
	_, err = in.InstallOrUpgrade(ctx, kc.AdminConfig(), rel)
	if err == nil || !strings.Contains(err.Error(), `version "9.9.9" is not in repository`) || recovery.IsRetryable(err) {
		t.Fatalf("err = %v, want a permanent error naming the missing version", err)
	}
	if revs := revisions(ctx, t, kc.Clientset(), "repo-test", "istiod"); !slices.Equal(revs, []int{1, 2}) {
		t.Fatalf("revisions = %v, want [1 2]", revs)
	}
}

// ociRegistry serves one chart the way an OCI distribution registry does
// for `helm pull oci://…`: the manifest by tag or digest, and its blobs.
type ociRegistry struct {
	t        *testing.T
	log      requestLog
	repo     string // "charts/istiod"
	tag      string
	manifest []byte
	blobs    map[string][]byte // by digest
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func newOCIRegistry(t *testing.T, repoPath, tag string, chartArchive []byte, meta any) *ociRegistry {
	cfg, err := json.Marshal(meta)
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": digestOf(cfg), "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
			"digest": digestOf(chartArchive), "size": len(chartArchive)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &ociRegistry{t: t, repo: repoPath, tag: tag, manifest: manifest,
		blobs: map[string][]byte{digestOf(cfg): cfg, digestOf(chartArchive): chartArchive}}
}

func (o *ociRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.log.add(r)
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		prefix := "/v2/" + o.repo + "/"
		if ref, ok := strings.CutPrefix(r.URL.Path, prefix+"manifests/"); ok {
			if ref == o.tag || ref == digestOf(o.manifest) {
				o.serve(w, r, "application/vnd.oci.image.manifest.v1+json", o.manifest)
				return
			}
			// An unknown tag is a question the protocol answers, not a misunderstanding.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`))
			return
		}
		if d, ok := strings.CutPrefix(r.URL.Path, prefix+"blobs/"); ok {
			if b, ok := o.blobs[d]; ok {
				o.serve(w, r, "application/octet-stream", b)
				return
			}
		}
	}
	o.t.Errorf("OCI registry got unexpected request %s %q", r.Method, r.RequestURI)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"errors":[{"code":"NAME_UNKNOWN","message":"the test registry does not serve this"}]}`))
}

func (o *ociRegistry) serve(w http.ResponseWriter, r *http.Request, mediaType string, b []byte) {
	w.Header().Set("Content-Type", mediaType)
	w.Header().Set("Docker-Content-Digest", digestOf(b))
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(b)
}

func testOCIRegistry(ctx context.Context, t *testing.T, kc *kubeenv.Cluster, _ *Installer) {
	archive := packageChart(t, "istiod", "1.27.1", t.TempDir())
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := loader.LoadArchive(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	reg := newOCIRegistry(t, "charts/istiod", "1.27.1", data, ch.Metadata)
	srv := httptest.NewServer(reg)
	defer srv.Close()

	in := &Installer{CacheDir: t.TempDir(), PlainHTTPRegistries: true}
	rel := Release{Name: "istiod", Namespace: "oci-test", Wait: true, Timeout: rolloutTimeout,
		Chart: ChartRef{Repo: "oci://" + strings.TrimPrefix(srv.URL, "http://") + "/charts", Name: "istiod", Version: "1.27.1"}}
	out, err := in.InstallOrUpgrade(ctx, kc.AdminConfig(), rel)
	if err != nil {
		t.Fatal(err)
	}
	if out.Action != Installed || out.Revision != 1 || out.Version != "1.27.1" {
		t.Fatalf("outcome = %+v", out)
	}
	if reg.log.len() == 0 {
		t.Fatal("the chart did not come from the registry")
	}
	assertAvailable(ctx, t, kc.Clientset(), "oci-test", "istiod", 1)

	rel.Chart.Version = "2.0.0"
	if _, err := in.InstallOrUpgrade(ctx, kc.AdminConfig(), rel); err == nil || !strings.Contains(err.Error(), "2.0.0") {
		t.Fatalf("err = %v, want a pull error naming the missing tag", err)
	}
	if revs := revisions(ctx, t, kc.Clientset(), "oci-test", "istiod"); !slices.Equal(revs, []int{1}) {
		t.Fatalf("revisions = %v, want [1]", revs)
	}
}
