// Package kubeenv runs a real Kubernetes control plane on loopback for tests: etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler, with nodes simulated by KWOK, so Deployments really roll out.
// The binaries are built once by `make kube-bins` (hack/kube-bins.sh) and cached under .cache/kube/.
//
//	c := kubeenv.Start(t)
//	cs := c.Clientset()
//
// Each cluster has its own etcd and temporary directory; several can run in one test (management and DR).
package kubeenv

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Option changes how Start sets up a cluster.
type Option func(*options)

type nodeGroup struct {
	count       int
	cpu, memory string
	pods        int
}

type options struct {
	name         string
	nodeGroups   []nodeGroup
	webhookURL   string
	crdDir       string
	crdDirSet    bool
	startTimeout time.Duration
	podReady     []PodReadyDelay // WithPodReadyDelays (stages.go)
	audit        bool
	auditPath    string
}

// WithName sets the cluster's name (its kubeconfig context and the name in log lines).
func WithName(name string) Option {
	return func(o *options) { o.name = name }
}

// WithNodes adds n KWOK nodes, each with the given capacity (e.g. "32", "256Gi", 110). The first WithNodes replaces
// the default of one node with 32 CPUs, 256Gi of memory and room for 110 pods.
func WithNodes(n int, cpu, memory string, pods int) Option {
	return func(o *options) {
		o.nodeGroups = append(o.nodeGroups, nodeGroup{count: n, cpu: cpu, memory: memory, pods: pods})
	}
}

// WithTokenWebhook makes the API server ask url (a TokenReview webhook, authentication.k8s.io/v1) about bearer
// tokens it does not know itself, as EKS does for `k8s-aws-v1.` tokens. Answers are not cached, so a test can
// revoke a token. Plain http on loopback is accepted.
func WithTokenWebhook(url string) Option {
	return func(o *options) { o.webhookURL = url }
}

// WithCRDs installs the CustomResourceDefinitions in dir instead of CRDDir(); "" installs none.
func WithCRDs(dir string) Option {
	return func(o *options) { o.crdDir, o.crdDirSet = dir, true }
}

// WithStartTimeout bounds how long Start waits for the cluster to become ready (default 2 minutes, generous
// because CI shares two cores with compilers).
func WithStartTimeout(d time.Duration) Option {
	return func(o *options) { o.startTimeout = d }
}

// Cluster is a running control plane. Its methods are safe for concurrent use.
type Cluster struct {
	name       string
	dir        string
	endpoint   string
	caPEM      []byte
	adminToken string
	kubeconfig string
	procs      []*process
	auditPath  string
	clientset  kubernetes.Interface
	dynamic    dynamic.Interface
	stopOnce   sync.Once
}

var clusterSeq atomic.Int64

// Start runs a cluster for the test and stops it (every process, by process group) when the test ends.
// Without the binaries it skips the test, or fails it when CI=true, naming `make kube-bins`.
func Start(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	o := options{startTimeout: 2 * time.Minute}
	for _, opt := range opts {
		opt(&o)
	}
	if o.name == "" {
		o.name = fmt.Sprintf("kubeenv-%d", clusterSeq.Add(1))
	}
	if len(o.nodeGroups) == 0 {
		o.nodeGroups = []nodeGroup{{count: 1, cpu: "32", memory: "256Gi", pods: 110}}
	}
	if !o.crdDirSet {
		o.crdDir = CRDDir()
		if o.crdDir == "" {
			t.Fatalf("kubeenv: cannot find test/testdata/crds: no go.mod above the working directory")
		}
	}

	bins, err := binDir()
	if err != nil {
		if errors.Is(err, errNoBins) && os.Getenv("CI") != "true" {
			t.Skipf("kubeenv: %v", err)
		}
		t.Fatalf("kubeenv: %v", err)
	}

	began := time.Now()
	for attempt := 1; ; attempt++ {
		c := &Cluster{name: o.name, dir: t.TempDir()}
		// Registered after TempDir, so it runs before the directory is removed.
		t.Cleanup(func() {
			if t.Failed() {
				// The temporary directory goes away with the test; keep the logs' ends for whoever debugs it.
				for _, p := range c.procs {
					t.Logf("kubeenv: cluster %q: %s", c.name, p.describe(15))
				}
			}
			c.stop()
		})
		ctx, cancel := context.WithTimeout(context.Background(), o.startTimeout)
		err := c.start(ctx, bins, &o)
		cancel()
		if err == nil {
			t.Logf("kubeenv: cluster %q ready at %s in %s (logs in %s)", c.name, c.endpoint, time.Since(began).Round(time.Millisecond), c.dir)
			return c
		}
		c.stop()
		// Ports are picked free but may be taken by another process before a component binds them.
		if errors.Is(err, errAddrInUse) && attempt < 3 {
			t.Logf("kubeenv: cluster %q: %v; retrying with other ports", c.name, err)
			continue
		}
		t.Fatalf("kubeenv: starting cluster %q: %v", c.name, err)
	}
}

// Name is the cluster's name, also its kubeconfig context.
func (c *Cluster) Name() string { return c.name }

// Endpoint is the API server's https URL.
func (c *Cluster) Endpoint() string { return c.endpoint }

// CAData is the PEM of the CA that signed the API server's serving certificate.
func (c *Cluster) CAData() []byte { return bytes.Clone(c.caPEM) }

// Kubeconfig is the path of a kubeconfig file with the admin's credentials and the CA.
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// AdminConfig returns a fresh config authenticated as a cluster admin (system:masters), verifying TLS with CAData.
func (c *Cluster) AdminConfig() *rest.Config {
	return c.configWithToken(c.adminToken)
}

// Clientset is a typed client authenticated as the admin.
func (c *Cluster) Clientset() kubernetes.Interface { return c.clientset }

// Dynamic is a dynamic client authenticated as the admin.
func (c *Cluster) Dynamic() dynamic.Interface { return c.dynamic }

// ServiceAccountConfig returns a config authenticated as the service account namespace/name, creating the
// namespace and the service account if missing, with a one-hour token from the TokenRequest API.
func (c *Cluster) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := c.clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating namespace %q: %w", namespace, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if _, err := c.clientset.CoreV1().ServiceAccounts(namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating service account %s/%s: %w", namespace, name, err)
	}
	expiry := int64(3600)
	tr, err := c.clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting token for service account %s/%s: %w", namespace, name, err)
	}
	return c.configWithToken(tr.Status.Token), nil
}

func (c *Cluster) configWithToken(token string) *rest.Config {
	return &rest.Config{
		Host:            c.endpoint,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: bytes.Clone(c.caPEM)},
		// Tests create many objects quickly; client-side throttling would only slow them down.
		QPS:   100,
		Burst: 200,
	}
}

// start brings the control plane up: etcd and the API server first, the rest as soon as the API server is ready.
func (c *Cluster) start(ctx context.Context, bins string, o *options) error {
	pki, err := writePKI(c.dir)
	if err != nil {
		return err
	}
	c.caPEM, c.adminToken = pki.caPEM, pki.adminToken

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdPort, peerPort, apiPort := ports[0], ports[1], ports[2]
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	c.endpoint = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	c.kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := c.writeKubeconfig(); err != nil {
		return err
	}

	etcd, err := c.run(bins, "etcd",
		"--name=kubeenv",
		"--data-dir="+filepath.Join(c.dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kubeenv="+peerURL,
		// Test data is thrown away; fsync would only make every write wait for the disk.
		"--unsafe-no-fsync=true",
		"--log-level=warn",
	)
	if err != nil {
		return err
	}

	apiArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort),
		"--cert-dir=" + filepath.Join(c.dir, "certs"),
		"--tls-cert-file=" + pki.serveCert,
		"--tls-private-key-file=" + pki.serveKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pki.saPublic,
		"--service-account-signing-key-file=" + pki.saPrivate,
		"--token-auth-file=" + pki.tokenFile,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.0.0.0/24",
		// A loopback advertise address must not be written into the kubernetes Service's endpoints.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	}
	if o.webhookURL != "" {
		path := filepath.Join(c.dir, "token-webhook.kubeconfig")
		if err := writeWebhookConfig(path, o.webhookURL); err != nil {
			return err
		}
		apiArgs = append(apiArgs,
			"--authentication-token-webhook-config-file="+path,
			// v1.37 defaults to v1beta1 and then fails converting the v1 TokenReview.
			"--authentication-token-webhook-version=v1",
			"--authentication-token-webhook-cache-ttl=0s",
		)
	}
	audit, err := c.auditArgs(o)
	if err != nil {
		return err
	}
	apiArgs = append(apiArgs, audit...)
	apiserver, err := c.run(bins, "kube-apiserver", apiArgs...)
	if err != nil {
		return err
	}
	if err := c.waitFor(ctx, "kube-apiserver /readyz", []*process{apiserver, etcd}, c.apiserverReady); err != nil {
		return err
	}

	kcm, err := c.run(bins, "kube-controller-manager",
		"--kubeconfig="+c.kubeconfig,
		"--service-account-private-key-file="+pki.saPrivate,
		"--root-ca-file="+pki.caCert,
		// nodeipam would need a cluster CIDR; KWOK gives pods their IPs itself.
		"--controllers=*,-nodeipam",
		"--leader-elect=false",
		"--secure-port=0",
		// The default 20 requests a second rolled 150 Deployments out in
		// half a minute: the control plane, not the code under test, set
		// the pace of a deploy.
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	)
	if err != nil {
		return err
	}
	scheduler, err := c.run(bins, "kube-scheduler",
		"--kubeconfig="+c.kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--kube-api-qps=200",
		"--kube-api-burst=400",
	)
	if err != nil {
		return err
	}
	stages, err := stagesFile(bins, c.dir, o)
	if err != nil {
		return err
	}
	kwok, err := c.run(bins, "kwok",
		"--kubeconfig="+c.kubeconfig,
		"--config="+stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--cidr=10.244.0.0/16",
		"--node-ip=10.0.0.2",
		// Without a lease duration KWOK keeps no node Leases, the node
		// lifecycle controller marks nodes NotReady about every 50 s and
		// pods flap unready.
		"--node-lease-duration-seconds=40",
	)
	if err != nil {
		return err
	}

	cfg := c.AdminConfig()
	if c.clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		return fmt.Errorf("creating clientset: %w", err)
	}
	if c.dynamic, err = dynamic.NewForConfig(cfg); err != nil {
		return fmt.Errorf("creating dynamic client: %w", err)
	}

	nodes, err := c.createNodes(ctx, o.nodeGroups)
	if err != nil {
		return err
	}
	var crds []string
	if o.crdDir != "" {
		if crds, err = c.installCRDs(ctx, o.crdDir); err != nil {
			return err
		}
	}

	all := []*process{etcd, apiserver, kcm, scheduler, kwok}
	if err := c.waitFor(ctx, "nodes Ready and untainted", all, func(ctx context.Context) error {
		return c.nodesReady(ctx, nodes)
	}); err != nil {
		return err
	}
	if err := c.waitFor(ctx, "default ServiceAccount in namespace default", all, func(ctx context.Context) error {
		_, err := c.clientset.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err
	}); err != nil {
		return err
	}
	return c.waitFor(ctx, "CustomResourceDefinitions Established", all, func(ctx context.Context) error {
		return c.crdsEstablished(ctx, crds)
	})
}

func (c *Cluster) run(bins, name string, args ...string) (*process, error) {
	p, err := startProcess(name, filepath.Join(bins, name), c.dir, args, nil)
	if err != nil {
		return nil, err
	}
	c.procs = append(c.procs, p)
	return p, nil
}

// waitFor polls check until it returns nil. It gives up when a watched process exits or ctx ends, saying why
// and how the logs of the watched processes end.
func (c *Cluster) waitFor(ctx context.Context, what string, watch []*process, check func(context.Context) error) error {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		for _, p := range watch {
			if done, _ := p.exited(); done {
				err := fmt.Errorf("waiting for %s: %s exited\n%s", what, p.name, p.describe(30))
				if logContains(p, "address already in use") {
					return fmt.Errorf("%w: %w", errAddrInUse, err)
				}
				return err
			}
		}
		checkCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		last = check(checkCtx)
		cancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("timed out waiting for %s (last check: %v)", what, last)
			for _, p := range watch {
				msg += "\n" + p.describe(20)
			}
			return errors.New(msg)
		case <-tick.C:
		}
	}
}

func (c *Cluster) apiserverReady(ctx context.Context) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint+"/readyz", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.adminToken)
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("readyz answered %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return nil
}

// createNodes registers the KWOK-managed nodes; KWOK then reports them Ready and keeps their leases fresh.
func (c *Cluster) createNodes(ctx context.Context, groups []nodeGroup) ([]string, error) {
	var names []string
	for _, g := range groups {
		capacity := corev1.ResourceList{}
		for res, q := range map[corev1.ResourceName]string{corev1.ResourceCPU: g.cpu, corev1.ResourceMemory: g.memory, corev1.ResourcePods: strconv.Itoa(g.pods)} {
			qty, err := resource.ParseQuantity(q)
			if err != nil {
				return nil, fmt.Errorf("parsing node %s %q: %w", res, q, err)
			}
			capacity[res] = qty
		}
		for i := 0; i < g.count; i++ {
			name := fmt.Sprintf("kwok-node-%d", len(names))
			node := &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{
					Name:        name,
					Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
					Labels: map[string]string{
						"kubernetes.io/hostname": name,
						"kubernetes.io/os":       "linux",
						"kubernetes.io/arch":     "amd64",
						"type":                   "kwok",
					},
				},
				Status: corev1.NodeStatus{Capacity: capacity, Allocatable: capacity.DeepCopy()},
			}
			if _, err := c.clientset.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
				return nil, fmt.Errorf("creating node %q: %w", name, err)
			}
			names = append(names, name)
		}
	}
	return names, nil
}

// nodesReady wants every node Ready and without taints (the node lifecycle controller lifts the not-ready taint).
func (c *Cluster) nodesReady(ctx context.Context, names []string) error {
	for _, name := range names {
		node, err := c.clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return fmt.Errorf("node %q is not Ready", name)
		}
		if len(node.Spec.Taints) > 0 {
			return fmt.Errorf("node %q still has taint %s", name, node.Spec.Taints[0].Key)
		}
	}
	return nil
}

func (c *Cluster) writeKubeconfig() error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[c.name] = &clientcmdapi.Cluster{Server: c.endpoint, CertificateAuthorityData: c.caPEM}
	cfg.AuthInfos[c.name+"-admin"] = &clientcmdapi.AuthInfo{Token: c.adminToken}
	cfg.Contexts[c.name] = &clientcmdapi.Context{Cluster: c.name, AuthInfo: c.name + "-admin"}
	cfg.CurrentContext = c.name
	if err := clientcmd.WriteToFile(*cfg, c.kubeconfig); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// writeWebhookConfig writes the kubeconfig-format file that points the API server at a token webhook.
func writeWebhookConfig(path, url string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["token-webhook"] = &clientcmdapi.Cluster{Server: url}
	cfg.AuthInfos["kube-apiserver"] = &clientcmdapi.AuthInfo{}
	cfg.Contexts["token-webhook"] = &clientcmdapi.Context{Cluster: "token-webhook", AuthInfo: "kube-apiserver"}
	cfg.CurrentContext = "token-webhook"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing token webhook config: %w", err)
	}
	return nil
}

// stop kills every component; it runs as a test cleanup, and earlier when a start attempt fails.
func (c *Cluster) stop() {
	c.stopOnce.Do(func() {
		for _, p := range c.procs {
			p.stop()
		}
	})
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// freePorts picks n distinct free loopback ports, never one already handed to another cluster of this process.
func freePorts(n int) ([]int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	var (
		ports []int
		lns   []net.Listener
	)
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		lns = append(lns, ln)
		port := ln.Addr().(*net.TCPAddr).Port
		if portsUsed[port] {
			continue
		}
		portsUsed[port] = true
		ports = append(ports, port)
	}
	return ports, nil
}
