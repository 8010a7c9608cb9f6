package helm

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
)

// ChartRef says where a chart comes from:
//   - Repo "https://…" or "http://…": a chart repository (index.yaml); Name is the chart's name in it.
//   - Repo "oci://registry/path": an OCI registry; the chart is Repo + "/" + Name, tagged Version.
//   - Repo "" or "file://dir": a chart on disk; Name is a directory or .tgz, relative to dir when not absolute.
type ChartRef struct {
	Repo    string
	Name    string
	Version string // exact version to install; for a local chart, checked against Chart.yaml when set
}

func (r ChartRef) String() string {
	switch {
	case r.Repo == "":
		return r.Name
	case strings.HasPrefix(r.Repo, "oci://"):
		return strings.TrimSuffix(r.Repo, "/") + "/" + r.Name + ":" + r.Version
	}
	return strings.TrimSuffix(r.Repo, "/") + "/" + r.Name + "@" + r.Version
}

func (r ChartRef) local() (string, bool) {
	if r.Repo == "" {
		return r.Name, true
	}
	if dir, ok := strings.CutPrefix(r.Repo, "file://"); ok {
		if filepath.IsAbs(r.Name) {
			return r.Name, true
		}
		return filepath.Join(dir, r.Name), true
	}
	return "", false
}

// errChart marks errors in the chart reference itself (a version the
// repository does not have, a malformed archive): retrying cannot help.
var errChart = errors.New("chart not usable")

// loadChart finds the chart and loads it. Remote charts are kept in
// cacheDir by repository, name and version: a pinned version never
// changes, so a re-run (or a run while the repository is down) installs
// from the cache without asking the repository.
func (in *Installer) loadChart(ref ChartRef) (*chart.Chart, error) {
	if ref.Name == "" {
		return nil, fmt.Errorf("%w: no chart name", errChart)
	}
	if path, ok := ref.local(); ok {
		ch, err := loader.Load(path)
		if err != nil {
			return nil, fmt.Errorf("%w: loading chart %s: %v", errChart, path, err)
		}
		if ref.Version != "" && ch.Metadata.Version != ref.Version {
			return nil, fmt.Errorf("%w: chart %s is version %s, config pins %s", errChart, path, ch.Metadata.Version, ref.Version)
		}
		return ch, nil
	}
	if ref.Version == "" {
		return nil, fmt.Errorf("%w: chart %s has no version; pin one", errChart, ref)
	}
	u, err := url.Parse(ref.Repo)
	if err != nil {
		return nil, fmt.Errorf("%w: chart repository %q: %v", errChart, ref.Repo, err)
	}
	cached := filepath.Join(in.cacheDir(), "charts", repoKey(ref.Repo), fmt.Sprintf("%s-%s.tgz", ref.Name, ref.Version))
	if data, err := os.ReadFile(cached); err == nil {
		if ch, err := loader.LoadArchive(bytes.NewReader(data)); err == nil {
			return ch, nil
		}
		// A damaged cache entry is fetched again.
	}
	in.fetchMu.Lock()
	defer in.fetchMu.Unlock()
	var data []byte
	switch u.Scheme {
	case "oci":
		data, err = in.pullOCI(ref)
	case "http", "https":
		data, err = in.fetchFromRepo(ref)
	default:
		return nil, fmt.Errorf("%w: chart repository %q: want https://, http://, oci:// or file://", errChart, ref.Repo)
	}
	if err != nil {
		return nil, err
	}
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: reading chart archive of %s: %v", errChart, ref, err)
	}
	if ch.Metadata.Version != ref.Version {
		return nil, fmt.Errorf("%w: %s delivered version %s", errChart, ref, ch.Metadata.Version)
	}
	if err := writeFileAtomic(cached, data); err != nil {
		in.logger().Warn("caching chart archive", "chart", ref.String(), "err", err)
	}
	return ch, nil
}

func repoKey(repoURL string) string {
	sum := sha256.Sum256([]byte(strings.TrimSuffix(repoURL, "/")))
	return hex.EncodeToString(sum[:8])
}

// httpGetters is Helm's HTTP getter alone: no plugins from the
// environment, and a timeout on every request.
func httpGetters(timeout time.Duration) getter.Providers {
	return getter.Providers{{Schemes: []string{"http", "https"}, New: func(o ...getter.Option) (getter.Getter, error) {
		return getter.NewHTTPGetter(append([]getter.Option{getter.WithTimeout(timeout)}, o...)...)
	}}}
}

// fetchFromRepo reads the repository's index.yaml, finds the pinned
// version and downloads its archive, checking the index's digest.
func (in *Installer) fetchFromRepo(ref ChartRef) ([]byte, error) {
	r, err := repo.NewChartRepository(&repo.Entry{Name: repoKey(ref.Repo), URL: ref.Repo}, httpGetters(in.fetchTimeout()))
	if err != nil {
		return nil, fmt.Errorf("%w: chart repository %q: %v", errChart, ref.Repo, err)
	}
	r.CachePath = filepath.Join(in.cacheDir(), "repository")
	idxPath, err := r.DownloadIndexFile()
	if err != nil {
		return nil, fmt.Errorf("downloading the index of chart repository %s: %w", ref.Repo, err)
	}
	idx, err := repo.LoadIndexFile(idxPath)
	if err != nil {
		return nil, fmt.Errorf("%w: reading the index of chart repository %s: %v", errChart, ref.Repo, err)
	}
	cv, err := idx.Get(ref.Name, ref.Version)
	if err != nil {
		return nil, fmt.Errorf("%w: chart %q version %q is not in repository %s", errChart, ref.Name, ref.Version, ref.Repo)
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("%w: chart %q version %q has no download URL in repository %s", errChart, ref.Name, ref.Version, ref.Repo)
	}
	chartURL, err := repo.ResolveReferenceURL(ref.Repo, cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("%w: chart URL %q: %v", errChart, cv.URLs[0], err)
	}
	g, err := httpGetters(in.fetchTimeout()).ByScheme(schemeOf(chartURL))
	if err != nil {
		return nil, fmt.Errorf("%w: chart URL %q: %v", errChart, chartURL, err)
	}
	buf, err := g.Get(chartURL, getter.WithURL(ref.Repo))
	if err != nil {
		return nil, fmt.Errorf("downloading chart %s: %w", chartURL, err)
	}
	data := buf.Bytes()
	if cv.Digest != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != cv.Digest {
			return nil, fmt.Errorf("chart %s has sha256 %s but the repository index says %s; the download was damaged or the repository changed", chartURL, got, cv.Digest)
		}
	}
	return data, nil
}

func schemeOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Scheme
}

// pullOCI pulls Repo/Name:Version with Helm's registry client.
func (in *Installer) pullOCI(ref ChartRef) ([]byte, error) {
	opts := []registry.ClientOption{
		registry.ClientOptWriter(io.Discard),
		registry.ClientOptCredentialsFile(filepath.Join(in.cacheDir(), "registry", "config.json")),
	}
	if in.PlainHTTPRegistries {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	rc, err := registry.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("making the OCI registry client: %w", err)
	}
	name := strings.TrimPrefix(strings.TrimSuffix(ref.Repo, "/"), "oci://") + "/" + ref.Name + ":" + ref.Version
	res, err := rc.Pull(name)
	if err != nil {
		return nil, fmt.Errorf("pulling chart oci://%s: %w", name, err)
	}
	if res.Chart == nil || len(res.Chart.Data) == 0 {
		return nil, fmt.Errorf("%w: oci://%s has no chart layer", errChart, name)
	}
	return res.Chart.Data, nil
}

func (in *Installer) fetchTimeout() time.Duration {
	if in.FetchTimeout > 0 {
		return in.FetchTimeout
	}
	return time.Minute
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		_ = os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		_ = os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
