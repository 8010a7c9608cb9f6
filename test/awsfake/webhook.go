package awsfake

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
)

const (
	webhookPathPrefix = "/_awsfake/eks-token-webhook/"
	// tokenPrefix is what aws-iam-authenticator and `aws eks get-token` put
	// before the base64url presigned URL.
	tokenPrefix = "k8s-aws-v1."
	// maxTokenLen is aws-iam-authenticator's limit on a token.
	maxTokenLen = 4 * 1024
	// tokenLifetime: tokens are valid 15 minutes after X-Amz-Date whatever
	// X-Amz-Expires says (aws-iam-authenticator's presignedURLExpiration).
	tokenLifetime         = 15 * time.Minute
	clusterIDHeader       = "x-k8s-aws-id"
	clusterAdminPolicyArn = accessPolicyPrefix + "AmazonEKSClusterAdminPolicy"
)

// TokenWebhookURL is the URL of the TokenReview webhook that authenticates
// EKS bearer tokens for cluster region/name, for kube-apiserver's
// --authentication-token-webhook-config-file (see WebhookKubeconfig).
func (s *Server) TokenWebhookURL(region, cluster string) string {
	return s.URL() + webhookPathPrefix + url.PathEscape(region) + "/" + url.PathEscape(cluster)
}

// WebhookKubeconfig writes the kubeconfig kube-apiserver reads to call the
// token webhook of region/cluster, and returns its path (inside dir).
func (s *Server) WebhookKubeconfig(dir, region, cluster string) (string, error) {
	cfg := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters": []any{map[string]any{
			"name":    "awsfake-eks-authenticator",
			"cluster": map[string]any{"server": s.TokenWebhookURL(region, cluster)},
		}},
		"users": []any{map[string]any{"name": "kube-apiserver", "user": map[string]any{}}},
		"contexts": []any{map[string]any{
			"name":    "webhook",
			"context": map[string]any{"cluster": "awsfake-eks-authenticator", "user": "kube-apiserver"},
		}},
		"current-context": "webhook",
	}
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encoding webhook kubeconfig: %w", err)
	}
	name := "awsfake-token-webhook-" + safeFileName(region) + "-" + safeFileName(cluster) + ".kubeconfig"
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("writing webhook kubeconfig %q: %w", path, err)
	}
	return path, nil
}

var unsafeFileChars = regexp.MustCompile(`[^A-Za-z0-9_.-]`)

func safeFileName(s string) string { return unsafeFileChars.ReplaceAllString(s, "_") }

// serveWebhook answers a TokenReview (authentication.k8s.io/v1 or v1beta1).
func (s *Server) serveWebhook(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	rest := strings.TrimPrefix(r.URL.EscapedPath(), webhookPathPrefix)
	regionEsc, clusterEsc, ok := strings.Cut(rest, "/")
	region, err1 := url.PathUnescape(regionEsc)
	cluster, err2 := url.PathUnescape(clusterEsc)
	if !ok || err1 != nil || err2 != nil || region == "" || cluster == "" || r.Method != http.MethodPost {
		s.recordUnexpected(r, ServiceWebhook, "not a TokenReview POST to /_awsfake/eks-token-webhook/<region>/<cluster>")
		http.Error(w, "awsfake: expected POST "+webhookPathPrefix+"<region>/<cluster>", http.StatusNotFound)
		return
	}
	var review authnv1.TokenReview
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err == nil {
		err = json.Unmarshal(body, &review)
	}
	if err != nil || review.Kind != "TokenReview" || !strings.HasPrefix(review.APIVersion, "authentication.k8s.io/") {
		s.recordUnexpected(r, ServiceWebhook, fmt.Sprintf("body is not a TokenReview (kind %q, apiVersion %q, err %v)", review.Kind, review.APIVersion, err))
		http.Error(w, "awsfake: body is not a TokenReview", http.StatusBadRequest)
		return
	}

	user, principal, authErr := s.reviewToken(region, cluster, review.Spec.Token, now, r.Host)
	resp := authnv1.TokenReview{TypeMeta: review.TypeMeta}
	if authErr != nil {
		resp.Status.Error = authErr.Error()
	} else {
		resp.Status.Authenticated = true
		resp.Status.User = user
		resp.Status.Audiences = review.Spec.Audiences
	}
	out, err := json.Marshal(resp)
	if err != nil {
		http.Error(w, "awsfake: encoding TokenReview: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)

	s.mu.Lock()
	defer s.mu.Unlock()
	c := Call{Service: ServiceWebhook, Operation: "TokenReview", Region: region, Status: http.StatusOK, Time: now, Principal: principal}
	if authErr != nil {
		c.ErrorCode = "Unauthenticated"
	}
	s.calls = append(s.calls, c)
}

// reviewToken verifies an EKS token the way aws-iam-authenticator and STS
// do together, then maps the caller to the cluster's access entries.
func (s *Server) reviewToken(region, cluster, token string, now time.Time, ownHost string) (authnv1.UserInfo, string, error) {
	id, session, err := s.verifyEKSToken(cluster, token, now, ownHost)
	if err != nil {
		return authnv1.UserInfo{}, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepEKS(now)
	cl := s.eksRegion(region).clusters[cluster]
	if cl == nil {
		return authnv1.UserInfo{}, id.arn, fmt.Errorf("eks cluster %q not found in %s", cluster, region)
	}
	canonical := canonicalPrincipal(id.arn)
	user := authnv1.UserInfo{
		UID: "aws-iam-authenticator:" + accountOf(id.arn) + ":" + strings.SplitN(id.userID, ":", 2)[0],
		Extra: map[string]authnv1.ExtraValue{
			"arn":          {id.arn},
			"canonicalArn": {canonical},
			"sessionName":  {session},
			"accessKeyId":  {id.akid},
			"principalId":  {id.userID},
		},
	}
	if cl.authMode != "CONFIG_MAP" {
		if e := findAccessEntry(cl, canonical); e != nil {
			user.Username = expandUsername(e.username, id, session)
			user.Groups = append([]string{}, e.groups...)
			for _, p := range e.policies {
				user.Groups = append(user.Groups, accessPolicyGroup(p))
			}
			return user, id.arn, nil
		}
	}
	// With CONFIG_MAP only, the cluster creator is an implicit admin (and
	// aws-auth, which the stand-in does not read, maps everyone else).
	if cl.authMode == "CONFIG_MAP" && cl.bootstrapAdmin && cl.creator != "" && cl.creator == canonical {
		user.Username = "kubernetes-admin"
		user.Groups = []string{"system:masters"}
		return user, id.arn, nil
	}
	return authnv1.UserInfo{}, id.arn, fmt.Errorf("no access entry on cluster %s for %s", cluster, canonical)
}

// findAccessEntry matches users exactly and roles by account and name (EKS
// ignores role paths when matching an assumed-role session).
func findAccessEntry(cl *eksCluster, canonical string) *eksAccessEntry {
	if e := cl.access[canonical]; e != nil {
		return e
	}
	if !strings.Contains(canonical, ":role/") {
		return nil
	}
	name := canonical[strings.LastIndex(canonical, "/")+1:]
	for _, p := range cl.accessOrder {
		if strings.Contains(p, ":role/") && accountOf(p) == accountOf(canonical) && p[strings.LastIndex(p, "/")+1:] == name {
			return cl.access[p]
		}
	}
	return nil
}

// accessPolicyGroup is the Kubernetes group standing in for an EKS access
// policy (real EKS authorizes these with its own webhook authorizer). A
// cluster-scoped AmazonEKSClusterAdminPolicy maps to system:masters; any
// other policy to "eks-access-policy:<Name>" (cluster scope) or
// "eks-access-policy:<Name>:<namespace,…>" so tests can bind RBAC to it.
func accessPolicyGroup(p *eksAssociatedPolicy) string {
	name := strings.TrimPrefix(p.policyArn, accessPolicyPrefix)
	if p.policyArn == clusterAdminPolicyArn && p.scopeType == "cluster" {
		return "system:masters"
	}
	if p.scopeType == "namespace" {
		return "eks-access-policy:" + name + ":" + strings.Join(p.namespaces, ",")
	}
	return "eks-access-policy:" + name
}

// expandUsername fills the templates EKS supports in access entry usernames.
func expandUsername(tmpl string, id *identity, session string) string {
	return strings.NewReplacer(
		"{{SessionName}}", strings.ReplaceAll(session, "@", "-"),
		"{{SessionNameRaw}}", session,
		"{{AccountID}}", accountOf(id.arn),
		"{{AccessKeyID}}", id.akid,
	).Replace(tmpl)
}

var stsHostRE = regexp.MustCompile(`^sts(\.[a-z]{2}(-gov)?-[a-z]+-\d)?\.amazonaws\.com(\.cn)?$`)

// verifyEKSToken checks a "k8s-aws-v1." token: a presigned STS
// GetCallerIdentity URL for a known identity, signed with x-k8s-aws-id set
// to cluster, at most 15 minutes old.
func (s *Server) verifyEKSToken(cluster, token string, now time.Time, ownHost string) (*identity, string, error) {
	if len(token) > maxTokenLen {
		return nil, "", errors.New("token is too large")
	}
	enc, ok := strings.CutPrefix(token, tokenPrefix)
	if !ok {
		return nil, "", fmt.Errorf("token is missing expected %q prefix", tokenPrefix)
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, "", fmt.Errorf("decoding token: %w", err)
	}
	u, err := url.Parse(string(raw))
	if err != nil {
		return nil, "", fmt.Errorf("parsing presigned URL: %w", err)
	}
	switch {
	case u.Host == ownHost && (u.Scheme == "http" || u.Scheme == "https"):
	case u.Scheme == "https" && stsHostRE.MatchString(u.Host):
	default:
		return nil, "", fmt.Errorf("unexpected presigned URL host %s://%s", u.Scheme, u.Host)
	}
	if u.Path != "" && u.Path != "/" {
		return nil, "", fmt.Errorf("unexpected path %q in presigned URL", u.Path)
	}
	q := u.Query()
	for k, v := range q {
		if len(v) != 1 {
			return nil, "", fmt.Errorf("query parameter %q appears more than once", k)
		}
	}
	if q.Get("Action") != "GetCallerIdentity" {
		return nil, "", fmt.Errorf("unexpected action %q", q.Get("Action"))
	}
	si, err := parsePresigned(q)
	if err != nil {
		return nil, "", err
	}
	if si.service != ServiceSTS {
		return nil, "", fmt.Errorf("presigned URL is signed for %q, not sts", si.service)
	}
	if !si.signs(clusterIDHeader) {
		return nil, "", fmt.Errorf("client did not sign the %s header in the presigned URL", clusterIDHeader)
	}
	if now.After(si.date.Add(tokenLifetime)) {
		return nil, "", fmt.Errorf("X-Amz-Date parameter is expired (%s expiration) in presigned URL", tokenLifetime)
	}
	s.mu.Lock()
	id := s.identities[si.akid]
	s.mu.Unlock()
	if id == nil {
		return nil, "", errors.New("sts getCallerIdentity failed: InvalidClientTokenId: the security token included in the request is invalid")
	}
	if aerr := checkToken(id, q.Get("X-Amz-Security-Token"), now); aerr != nil {
		return nil, "", fmt.Errorf("sts getCallerIdentity failed: %s", aerr)
	}
	headers := http.Header{}
	headers.Set(clusterIDHeader, cluster)
	if err := verifyPresigned(http.MethodGet, u, u.Host, headers, si, id); err != nil {
		return nil, "", fmt.Errorf("sts getCallerIdentity failed: SignatureDoesNotMatch (%v)", err)
	}
	_, session, _ := assumedRoleParts(id.arn)
	return id, session, nil
}
