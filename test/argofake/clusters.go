package argofake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// SecretTypeLabel selects Argo CD's cluster Secrets (value "cluster").
const SecretTypeLabel = "argocd.argoproj.io/secret-type"

// ClusterConfig is the `config` JSON of an Argo CD cluster Secret (argo-cd pkg/apis/application/v1alpha1).
type ClusterConfig struct {
	Username           string              `json:"username,omitempty"`
	Password           string              `json:"password,omitempty"`
	BearerToken        string              `json:"bearerToken,omitempty"`
	TLSClientConfig    TLSClientConfig     `json:"tlsClientConfig"`
	AWSAuthConfig      *AWSAuthConfig      `json:"awsAuthConfig,omitempty"`
	ExecProviderConfig *ExecProviderConfig `json:"execProviderConfig,omitempty"`
}

// TLSClientConfig holds the TLS settings; the []byte fields are base64 in the JSON and PEM once decoded.
type TLSClientConfig struct {
	Insecure   bool   `json:"insecure"`
	ServerName string `json:"serverName,omitempty"`
	CertData   []byte `json:"certData,omitempty"`
	KeyData    []byte `json:"keyData,omitempty"`
	CAData     []byte `json:"caData,omitempty"`
}

// AWSAuthConfig is how Argo CD reaches an EKS cluster: a token for ClusterName, as RoleARN when set.
type AWSAuthConfig struct {
	ClusterName string `json:"clusterName,omitempty"`
	RoleARN     string `json:"roleARN,omitempty"`
	Profile     string `json:"profile,omitempty"`
}

// ExecProviderConfig is a client-go exec credential plugin.
type ExecProviderConfig struct {
	Command     string            `json:"command,omitempty"`
	Args        []string          `json:"args,omitempty"`
	Env         map[string]string `json:"env,omitempty"`
	APIVersion  string            `json:"apiVersion,omitempty"`
	InstallHint string            `json:"installHint,omitempty"`
}

// cluster is one registered destination.
type cluster struct {
	secret string // "" for the built-in in-cluster destination
	key    string // cache key: secret name and resourceVersion
	name   string
	server string
	config ClusterConfig
	bad    error // the Secret could not be read
}

// destination is a connected cluster.
type destination struct {
	cs kubernetes.Interface
}

// listClusters reads the cluster Secrets. The in-cluster destination is added unless a Secret claims its server.
func (c *Controller) listClusters(ctx context.Context) ([]*cluster, error) {
	ns := c.opts.Namespace
	secrets, err := c.mgmt.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: SecretTypeLabel + "=cluster"})
	if err != nil {
		return nil, fmt.Errorf("listing cluster secrets in %q: %w", ns, err)
	}
	var out []*cluster
	inCluster := true
	for _, s := range secrets.Items {
		cl := &cluster{
			secret: s.Name,
			key:    s.Name + "@" + s.ResourceVersion,
			name:   string(s.Data["name"]),
			server: strings.TrimSuffix(string(s.Data["server"]), "/"),
		}
		if raw := s.Data["config"]; len(raw) > 0 {
			if err := json.Unmarshal(raw, &cl.config); err != nil {
				cl.bad = fmt.Errorf("cluster secret %s/%s: config is not valid JSON: %w", ns, s.Name, err)
			}
		}
		if cl.server == "" {
			cl.bad = fmt.Errorf("cluster secret %s/%s has no server", ns, s.Name)
		}
		if cl.server == inClusterServer {
			inCluster = false
			if cl.name == "" {
				cl.name = inClusterName
			}
		}
		out = append(out, cl)
	}
	if inCluster {
		out = append(out, &cluster{key: inClusterName, name: inClusterName, server: inClusterServer})
	}
	return out, nil
}

// resolve finds the destination cluster of an Application, with Argo CD's messages when it cannot.
func resolve(clusters []*cluster, name, server string) (*cluster, error) {
	server = strings.TrimSuffix(server, "/")
	switch {
	case name != "" && server != "":
		return nil, fmt.Errorf("application destination can't have both name and server defined: %s %s", name, server)
	case name != "":
		var found []*cluster
		var servers []string
		for _, cl := range clusters {
			if cl.name == name {
				found = append(found, cl)
				servers = append(servers, cl.server)
			}
		}
		if len(found) > 1 {
			return nil, fmt.Errorf("unable to find destination server: there are %d clusters with the same name: %v", len(found), servers)
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("unable to find destination server: there are no clusters with this name: %s", name)
		}
		return found[0], nil
	case server != "":
		for _, cl := range clusters {
			if cl.server == server {
				return cl, nil
			}
		}
		return nil, fmt.Errorf("cluster '%s' has not been configured", server)
	}
	//lint:ignore ST1005 Argo CD's own wording, which callers may match
	return nil, errors.New("Destination server missing from app spec")
}

// connect returns a client for a registered cluster, cached until its Secret changes.
func (c *Controller) connect(cl *cluster) (*destination, error) {
	if cl.bad != nil {
		return nil, cl.bad
	}
	c.mu.Lock() // a pass reconciles several Applications at once
	defer c.mu.Unlock()
	if d, ok := c.dests[cl.key]; ok {
		return d, nil
	}
	cfg, err := c.restConfig(cl)
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = 100, 200
	// An unreachable destination must not stall the loop for every Application.
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building client for cluster %q: %w", cl.server, err)
	}
	// Drop clients of older versions of the same Secret.
	for k := range c.dests {
		if cl.secret != "" && strings.HasPrefix(k, cl.secret+"@") {
			delete(c.dests, k)
		}
	}
	d := &destination{cs: cs}
	c.dests[cl.key] = d
	return d, nil
}

func (c *Controller) restConfig(cl *cluster) (*rest.Config, error) {
	if cl.secret == "" {
		return c.opts.Management, nil
	}
	cfg := cl.config
	if cfg.AWSAuthConfig != nil || cfg.ExecProviderConfig != nil {
		if c.opts.DestinationConfig == nil {
			return nil, fmt.Errorf("cluster %q (secret %q) authenticates with awsAuthConfig/execProviderConfig; "+
				"argofake needs Options.DestinationConfig to reach it (Argo CD would run argocd-k8s-auth here)", cl.server, cl.secret)
		}
		rc, err := c.opts.DestinationConfig(cl.secret, cl.server, cfg)
		if err != nil {
			return nil, fmt.Errorf("building config for cluster %q (secret %q): %w", cl.server, cl.secret, err)
		}
		if rc == nil {
			return nil, fmt.Errorf("argofake: Options.DestinationConfig returned no config for cluster %q (secret %q)", cl.server, cl.secret)
		}
		return rc, nil
	}
	return &rest.Config{
		Host:        cl.server,
		BearerToken: cfg.BearerToken,
		Username:    cfg.Username,
		Password:    cfg.Password,
		TLSClientConfig: rest.TLSClientConfig{
			Insecure:   cfg.TLSClientConfig.Insecure,
			ServerName: cfg.TLSClientConfig.ServerName,
			CertData:   cfg.TLSClientConfig.CertData,
			KeyData:    cfg.TLSClientConfig.KeyData,
			CAData:     cfg.TLSClientConfig.CAData,
		},
	}, nil
}
