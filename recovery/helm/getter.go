package helm

import (
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// restGetter gives Helm's kube client a cluster from a *rest.Config, so
// drbot never writes a kubeconfig: the config's transport (an EKS token
// that refreshes itself) is used as is.
type restGetter struct {
	cfg       *rest.Config
	namespace string

	once sync.Once
	disc discovery.CachedDiscoveryInterface
	err  error
}

var _ genericclioptions.RESTClientGetter = (*restGetter)(nil)

// newRESTGetter copies cfg and raises its client-side rate limit: Helm's
// discovery and waits make bursts of small requests.
func newRESTGetter(cfg *rest.Config, namespace string) *restGetter {
	c := rest.CopyConfig(cfg)
	if c.QPS == 0 {
		c.QPS, c.Burst = 50, 100
	}
	return &restGetter{cfg: c, namespace: namespace}
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

// ToDiscoveryClient is cached in memory for the getter's life (one
// install or upgrade), so a CRD a chart adds is seen by the next one.
func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	g.once.Do(func() {
		dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.cfg))
		if err != nil {
			g.err = err
			return
		}
		g.disc = memory.NewMemCacheClient(dc)
	})
	return g.disc, g.err
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	dc, err := g.ToDiscoveryClient()
	if err != nil {
		return nil, err
	}
	return restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(dc), dc, nil), nil
}

func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return staticClientConfig{cfg: g.cfg, namespace: g.namespace}
}

// staticClientConfig answers the kubeconfig questions kubectl's factory
// asks (chiefly the default namespace) without any kubeconfig file.
type staticClientConfig struct {
	cfg       *rest.Config
	namespace string
}

func (c staticClientConfig) RawConfig() (clientcmdapi.Config, error) {
	raw := clientcmdapi.NewConfig()
	raw.Clusters["drbot"] = &clientcmdapi.Cluster{Server: c.cfg.Host}
	raw.Contexts["drbot"] = &clientcmdapi.Context{Cluster: "drbot", Namespace: c.namespace}
	raw.CurrentContext = "drbot"
	return *raw, nil
}

func (c staticClientConfig) ClientConfig() (*rest.Config, error) { return rest.CopyConfig(c.cfg), nil }

func (c staticClientConfig) Namespace() (string, bool, error) { return c.namespace, false, nil }

// ConfigAccess is only used by kubectl commands that edit kubeconfig
// files, which Helm's install and upgrade never call.
func (c staticClientConfig) ConfigAccess() clientcmd.ConfigAccess {
	return &clientcmd.ClientConfigLoadingRules{}
}
