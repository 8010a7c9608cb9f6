// Package namespaces implements the namespaces step: every namespace the
// services need in the DR cluster, labelled as configured, each holding the
// New Relic licence key Secret read from Vault KV v2.
//
// The licence key is a secret: it goes from Vault into the Secrets' data and
// nowhere else — never into outputs, progress lines, logs or errors.
package namespaces

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"

	vault "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/recovery/kube"
)

// ManagedByLabel marks the Secrets drbot created.
const ManagedByLabel = "app.kubernetes.io/managed-by"

// Options configure the step.
type Options struct {
	// DR reaches the DR cluster. Required.
	DR kube.ConfigSource
	// Labels go on every namespace (for example istio-injection: enabled).
	// Labels already there with other values are overwritten; others are kept.
	Labels map[string]string
	// NamespaceLabels adds labels per namespace, over Labels.
	NamespaceLabels map[string]map[string]string
	// More lists namespaces beyond vault.namespaces (for example the
	// destinations of the Argo CD templates); nil for none.
	More func(ctx context.Context, sc *recovery.StepContext) ([]string, error)
	// SecretKey is the key of the licence in the Secret; default the Vault
	// field name (vault.newrelic_key_field).
	SecretKey string
}

// Namespaces is the step's state; one value serves every run.
type Namespaces struct {
	cfg  *config.Config
	vc   *vault.Client
	opts Options
}

// New checks the options. vc is a Vault client already carrying drbot's token.
func New(cfg *config.Config, vc *vault.Client, opts Options) (*Namespaces, error) {
	switch {
	case cfg == nil:
		return nil, errors.New("namespaces: config is required")
	case vc == nil:
		return nil, errors.New("namespaces: a Vault client is required")
	case opts.DR == nil:
		return nil, errors.New("namespaces: Options.DR (the DR cluster's config source) is required")
	}
	for k, v := range opts.Labels {
		if err := checkLabel(k, v); err != nil {
			return nil, fmt.Errorf("namespaces: %w", err)
		}
	}
	for ns, labels := range opts.NamespaceLabels {
		for k, v := range labels {
			if err := checkLabel(k, v); err != nil {
				return nil, fmt.Errorf("namespaces: namespace %q: %w", ns, err)
			}
		}
	}
	return &Namespaces{cfg: cfg, vc: vc, opts: opts}, nil
}

func checkLabel(k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return fmt.Errorf("label %s value %q: %s", k, v, strings.Join(errs, "; "))
	}
	return nil
}

// counts are what one run did; they are the step's outputs.
type counts struct {
	nsCreated, nsLabelled, nsUnchanged            int
	secretCreated, secretUpdated, secretUnchanged int
}

// Action is the namespaces step.
func (n *Namespaces) Action(ctx context.Context, sc *recovery.StepContext) (recovery.Result, error) {
	names, err := n.namespaces(ctx, sc)
	if err != nil {
		return recovery.Result{}, err
	}
	secretName := n.cfg.Vault.NewRelicSecretName
	if secretName == "" {
		secretName = "newrelic-license"
	}
	field := n.cfg.Vault.NewRelicKeyField
	if field == "" {
		field = "license_key"
	}
	key := n.opts.SecretKey
	if key == "" {
		key = field
	}
	if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("secret key %q is not a valid Secret data key: %s", key, strings.Join(errs, "; ")))
	}

	licence, err := n.readLicence(ctx, field)
	if err != nil {
		return recovery.Result{}, err
	}

	rc, err := n.opts.DR.DRConfig(ctx, sc)
	if err != nil {
		return recovery.Result{}, fmt.Errorf("reaching the DR cluster: %w", err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return recovery.Result{}, recovery.Permanent(fmt.Errorf("building DR cluster client: %w", err))
	}

	var c counts
	for _, ns := range names {
		res, err := n.ensureNamespace(ctx, cs, ns)
		if err != nil {
			return recovery.Result{}, err
		}
		switch res {
		case created:
			c.nsCreated++
		case changed:
			c.nsLabelled++
		default:
			c.nsUnchanged++
		}
		res, err = ensureSecret(ctx, cs, ns, secretName, key, licence)
		if err != nil {
			return recovery.Result{}, err
		}
		switch res {
		case created:
			c.secretCreated++
		case changed:
			c.secretUpdated++
		default:
			c.secretUnchanged++
		}
	}
	sc.Progress("%d namespaces: %d created, %d relabelled, %d unchanged; Secret %s: %d created, %d updated, %d unchanged",
		len(names), c.nsCreated, c.nsLabelled, c.nsUnchanged, secretName, c.secretCreated, c.secretUpdated, c.secretUnchanged)
	list, _ := json.Marshal(names)
	return recovery.Result{Outputs: map[string]string{
		"namespaces":         string(list),
		"secret":             secretName,
		"namespaces_created": fmt.Sprint(c.nsCreated),
		"namespaces_labeled": fmt.Sprint(c.nsLabelled),
		"secrets_created":    fmt.Sprint(c.secretCreated),
		"secrets_updated":    fmt.Sprint(c.secretUpdated),
		"secrets_unchanged":  fmt.Sprint(c.secretUnchanged),
	}}, nil
}

// namespaces is vault.namespaces plus Options.More, checked, sorted and
// without duplicates.
func (n *Namespaces) namespaces(ctx context.Context, sc *recovery.StepContext) ([]string, error) {
	all := append([]string(nil), n.cfg.Vault.Namespaces...)
	if n.opts.More != nil {
		more, err := n.opts.More(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("listing the services' namespaces: %w", err)
		}
		all = append(all, more...)
	}
	seen := map[string]bool{}
	var out []string
	for _, ns := range all {
		ns = strings.TrimSpace(ns)
		if ns == "" || seen[ns] {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, recovery.Permanent(fmt.Errorf("namespace name %q is not valid: %s", ns, strings.Join(errs, "; ")))
		}
		seen[ns] = true
		out = append(out, ns)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil, recovery.Permanent(errors.New("no namespaces to create: set vault.namespaces"))
	}
	return out, nil
}

// readLicence reads the licence key from Vault KV v2. Errors name the path
// and the field, never the value.
func (n *Namespaces) readLicence(ctx context.Context, field string) ([]byte, error) {
	mount, path := n.cfg.Vault.NewRelicKV()
	if mount == "" || path == "" {
		return nil, recovery.Permanent(fmt.Errorf("vault.newrelic_key_path %q must be <kv mount>/<path>", n.cfg.Vault.NewRelicKeyPath))
	}
	sec, err := n.vc.KVv2(mount).Get(ctx, path)
	if err != nil {
		if errors.Is(err, vault.ErrSecretNotFound) {
			return nil, recovery.Permanent(fmt.Errorf("vault KV secret %s/%s not found: check vault.newrelic_key_path", mount, path))
		}
		return nil, classifyVault(fmt.Errorf("reading vault KV secret %s/%s: %w", mount, path, err))
	}
	v, ok := sec.Data[field]
	if !ok {
		return nil, recovery.Permanent(fmt.Errorf("vault KV secret %s/%s has no field %q: check vault.newrelic_key_field", mount, path, field))
	}
	s, ok := v.(string)
	if !ok {
		return nil, recovery.Permanent(fmt.Errorf("field %q of vault KV secret %s/%s is a %T, not a string", field, mount, path, v))
	}
	if s == "" {
		return nil, recovery.Permanent(fmt.Errorf("field %q of vault KV secret %s/%s is empty", field, mount, path))
	}
	return []byte(s), nil
}

type result int

const (
	unchanged result = iota
	created
	changed
)

func (n *Namespaces) labelsFor(ns string) map[string]string {
	out := map[string]string{}
	for k, v := range n.opts.Labels {
		out[k] = v
	}
	for k, v := range n.opts.NamespaceLabels[ns] {
		out[k] = v
	}
	return out
}

// ensureNamespace creates the namespace with its labels, or adds the labels
// it lacks, keeping the others.
func (n *Namespaces) ensureNamespace(ctx context.Context, cs kubernetes.Interface, name string) (result, error) {
	want := n.labelsFor(name)
	nss := cs.CoreV1().Namespaces()
	cur, err := nss.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = nss.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: want}}, metav1.CreateOptions{})
		if err == nil {
			return created, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return 0, classifyKube(fmt.Errorf("creating namespace %q: %w", name, err))
		}
		cur, err = nss.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return 0, classifyKube(fmt.Errorf("reading namespace %q: %w", name, err))
	}
	missing := map[string]string{}
	for k, v := range want {
		if got, ok := cur.Labels[k]; !ok || got != v {
			missing[k] = v
		}
	}
	if len(missing) == 0 {
		return unchanged, nil
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": missing}})
	if _, err := nss.Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return 0, classifyKube(fmt.Errorf("labelling namespace %q: %w", name, err))
	}
	return changed, nil
}

// ensureSecret creates the licence Secret or updates its key when it
// differs. Nothing here may mention value.
func ensureSecret(ctx context.Context, cs kubernetes.Interface, ns, name, key string, value []byte) (result, error) {
	secrets := cs.CoreV1().Secrets(ns)
	cur, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{ManagedByLabel: "drbot"}},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{key: value},
		}, metav1.CreateOptions{})
		if err == nil {
			return created, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return 0, classifyKube(fmt.Errorf("creating secret %s/%s: %w", ns, name, err))
		}
		cur, err = secrets.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return 0, classifyKube(fmt.Errorf("reading secret %s/%s: %w", ns, name, err))
	}
	if bytes.Equal(cur.Data[key], value) {
		return unchanged, nil
	}
	upd := cur.DeepCopy()
	if upd.Data == nil {
		upd.Data = map[string][]byte{}
	}
	upd.Data[key] = value
	if _, err := secrets.Update(ctx, upd, metav1.UpdateOptions{}); err != nil {
		return 0, classifyKube(fmt.Errorf("updating key %q of secret %s/%s: %w", key, ns, name, err))
	}
	return changed, nil
}

// classifyVault marks Vault errors: throttling, server errors and an
// unreachable Vault are retryable, other answers permanent.
func classifyVault(err error) error {
	var re *vault.ResponseError
	if errors.As(err, &re) {
		if re.StatusCode == 429 || re.StatusCode >= 500 {
			return recovery.Retryable(err)
		}
		return recovery.Permanent(err)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return recovery.Retryable(err)
	}
	return err
}

// classifyKube marks Kubernetes API errors with their retry class.
func classifyKube(err error) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err),
		apierrors.IsInternalError(err), apierrors.IsServiceUnavailable(err), apierrors.IsConflict(err),
		apierrors.IsUnexpectedServerError(err), apierrors.IsUnauthorized(err):
		return recovery.Retryable(err)
	case apierrors.IsForbidden(err), apierrors.IsInvalid(err), apierrors.IsBadRequest(err), apierrors.IsNotFound(err):
		return recovery.Permanent(err)
	}
	return err
}
