package awsfake

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

const (
	amzDateFormat = "20060102T150405Z"
	// emptySHA256 is the payload hash of an empty body.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// identity is an access key the server knows: registered with AddIdentity
// or issued by AssumeRole.
type identity struct {
	akid    string
	secret  string
	token   string // session token of temporary credentials
	arn     string // caller ARN as GetCallerIdentity reports it
	userID  string
	expires time.Time // zero: never
}

// AddIdentity registers an access key and the caller ARN STS reports for it:
// an IAM user ("arn:aws:iam::123456789012:user/alice") or a role session
// ("arn:aws:sts::123456789012:assumed-role/drbot/session"). Requests signed
// with the key are then verified against secret.
func (s *Server) AddIdentity(accessKeyID, secret, arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.identities[accessKeyID] = &identity{
		akid: accessKeyID, secret: secret, arn: arn,
		userID: userIDFor(arn),
	}
}

// userIDFor makes the UserId GetCallerIdentity reports: AIDA… for users,
// AROA…:session for role sessions.
func userIDFor(arn string) string {
	if role, session, ok := assumedRoleParts(arn); ok {
		return "AROA" + hashID(17, alphaUpperNum, "role", role) + ":" + session
	}
	return "AIDA" + hashID(17, alphaUpperNum, "user", arn)
}

// assumedRoleParts splits arn:aws:sts::ACCT:assumed-role/ROLE/SESSION.
func assumedRoleParts(arn string) (role, session string, ok bool) {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "sts" || !strings.HasPrefix(parts[5], "assumed-role/") {
		return "", "", false
	}
	rest := strings.TrimPrefix(parts[5], "assumed-role/")
	i := strings.LastIndex(rest, "/")
	if i <= 0 {
		return "", "", false
	}
	return rest[:i], rest[i+1:], true
}

// accountOf returns the account field of an ARN.
func accountOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 {
		return ""
	}
	return parts[4]
}

// canonicalPrincipal maps an assumed-role session ARN to its role ARN, the
// way EKS and IAM name the principal; other ARNs are returned unchanged.
func canonicalPrincipal(arn string) string {
	if role, _, ok := assumedRoleParts(arn); ok {
		return "arn:" + strings.SplitN(arn, ":", 3)[1] + ":iam::" + accountOf(arn) + ":role/" + role
	}
	return arn
}

// sigInfo is what a request's SigV4 signature claims.
type sigInfo struct {
	akid          string
	region        string
	service       string
	signedHeaders []string
	signature     string
	presigned     bool
	date          time.Time
	expires       time.Duration // presigned X-Amz-Expires
}

// parseSignature reads the Authorization header or, for presigned
// requests, the X-Amz-* query parameters.
func parseSignature(r *http.Request) (*sigInfo, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		return parseAuthorization(auth, r.Header.Get("X-Amz-Date"))
	}
	if r.URL.Query().Get("X-Amz-Credential") != "" {
		return parsePresigned(r.URL.Query())
	}
	return nil, errors.New("request is not SigV4-signed (no Authorization header or X-Amz-Credential)")
}

func parseAuthorization(auth, amzDate string) (*sigInfo, error) {
	const alg = "AWS4-HMAC-SHA256 "
	if !strings.HasPrefix(auth, alg) {
		return nil, fmt.Errorf("authorization is not %s", strings.TrimSpace(alg))
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, alg), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("malformed authorization field %q", part)
		}
		fields[k] = v
	}
	si := &sigInfo{signature: fields["Signature"], signedHeaders: strings.Split(fields["SignedHeaders"], ";")}
	if err := si.setCredential(fields["Credential"]); err != nil {
		return nil, err
	}
	if si.signature == "" || fields["SignedHeaders"] == "" {
		return nil, errors.New("authorization lacks Signature or SignedHeaders")
	}
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return nil, fmt.Errorf("bad X-Amz-Date %q", amzDate)
	}
	si.date = t
	return si, nil
}

func parsePresigned(q url.Values) (*sigInfo, error) {
	if alg := q.Get("X-Amz-Algorithm"); alg != "AWS4-HMAC-SHA256" {
		return nil, fmt.Errorf("X-Amz-Algorithm %q is not AWS4-HMAC-SHA256", alg)
	}
	si := &sigInfo{presigned: true, signature: q.Get("X-Amz-Signature"), signedHeaders: strings.Split(q.Get("X-Amz-SignedHeaders"), ";")}
	if err := si.setCredential(q.Get("X-Amz-Credential")); err != nil {
		return nil, err
	}
	if si.signature == "" || q.Get("X-Amz-SignedHeaders") == "" {
		return nil, errors.New("presigned URL lacks X-Amz-Signature or X-Amz-SignedHeaders")
	}
	t, err := time.Parse(amzDateFormat, q.Get("X-Amz-Date"))
	if err != nil {
		return nil, fmt.Errorf("bad X-Amz-Date %q", q.Get("X-Amz-Date"))
	}
	si.date = t
	if e := q.Get("X-Amz-Expires"); e != "" {
		var secs int
		if _, err := fmt.Sscanf(e, "%d", &secs); err != nil || secs <= 0 {
			return nil, fmt.Errorf("bad X-Amz-Expires %q", e)
		}
		si.expires = time.Duration(secs) * time.Second
	}
	return si, nil
}

// setCredential parses AKID/20261125/us-east-1/eks/aws4_request.
func (si *sigInfo) setCredential(cred string) error {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[0] == "" || parts[2] == "" || parts[3] == "" {
		return fmt.Errorf("malformed credential scope %q", redactCredential(cred))
	}
	si.akid, si.region, si.service = parts[0], parts[2], parts[3]
	return nil
}

// redactCredential keeps only the scope, in case a caller put a secret there.
func redactCredential(cred string) string {
	if _, rest, ok := strings.Cut(cred, "/"); ok {
		return "…/" + rest
	}
	return "…"
}

func (si *sigInfo) signs(header string) bool {
	for _, h := range si.signedHeaders {
		if h == header {
			return true
		}
	}
	return false
}

// authenticate checks the key, session token and signature of q.
func (s *Server) authenticate(q *request, si *sigInfo) *apiError {
	isJSON := q.proto == ProtocolRESTJSON
	s.mu.Lock()
	id := s.identities[si.akid]
	s.mu.Unlock()
	if id == nil {
		if q.service == ServiceSTS || s.opts.StrictAuth {
			if isJSON {
				return errorf(http.StatusForbidden, "UnrecognizedClientException", "The security token included in the request is invalid.")
			}
			return errorf(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
		}
		return nil
	}
	token := q.r.Header.Get("X-Amz-Security-Token")
	if si.presigned {
		token = q.r.URL.Query().Get("X-Amz-Security-Token")
	}
	if err := checkToken(id, token, q.now); err != nil {
		if isJSON && err.code == "InvalidClientTokenId" {
			err.code = "UnrecognizedClientException"
		}
		if isJSON && err.code == "ExpiredToken" {
			err.code = "ExpiredTokenException"
		}
		return err
	}
	var err error
	if si.presigned {
		if si.expires > 0 && q.now.After(si.date.Add(si.expires)) && q.service != ServiceSTS {
			return errorf(http.StatusForbidden, "AccessDenied", "Request has expired")
		}
		err = verifyPresigned(q.r.Method, q.r.URL, q.r.Host, q.r.Header, si, id)
	} else {
		err = verifyHeaderSignature(q.r, q.body, si, id)
	}
	if err != nil {
		if isJSON {
			return errorf(http.StatusForbidden, "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. (%v)", err)
		}
		return errorf(http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. (%v)", err)
	}
	q.caller = id
	q.principal = id.arn
	return nil
}

// checkToken verifies the session token and expiry of temporary credentials.
func checkToken(id *identity, token string, now time.Time) *apiError {
	if id.token != token {
		return errorf(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid.")
	}
	if !id.expires.IsZero() && now.After(id.expires) {
		return errorf(http.StatusForbidden, "ExpiredToken", "The security token included in the request is expired")
	}
	return nil
}

var signer = v4.NewSigner()

// verifyHeaderSignature recomputes an Authorization-header signature with the
// SDK's own signer over exactly the headers the client signed.
func verifyHeaderSignature(r *http.Request, body []byte, si *sigInfo, id *identity) error {
	u := *r.URL
	u.Scheme, u.Host = "http", r.Host
	req, err := http.NewRequest(r.Method, u.String(), nil)
	if err != nil {
		return fmt.Errorf("rebuilding request: %w", err)
	}
	req.URL = &u
	req.Host = r.Host
	for _, h := range si.signedHeaders {
		switch h {
		case "host":
		case "content-length":
			req.ContentLength = r.ContentLength
		default:
			req.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	payloadHash := r.Header.Get("X-Amz-Content-Sha256")
	if payloadHash == "" {
		sum := sha256.Sum256(body)
		payloadHash = hex.EncodeToString(sum[:])
	}
	creds := aws.Credentials{AccessKeyID: id.akid, SecretAccessKey: id.secret, SessionToken: id.token}
	if err := signer.SignHTTP(context.Background(), creds, req, payloadHash, si.service, si.region, si.date); err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	want, err := parseAuthorization(req.Header.Get("Authorization"), req.Header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	if strings.Join(want.signedHeaders, ";") != strings.Join(si.signedHeaders, ";") {
		return fmt.Errorf("signed headers %q, expected %q", strings.Join(si.signedHeaders, ";"), strings.Join(want.signedHeaders, ";"))
	}
	if !hmac.Equal([]byte(want.signature), []byte(si.signature)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// verifyPresigned recomputes a presigned URL's signature. headers supplies
// the values of the signed headers other than host (for an EKS token the
// verifier sets x-k8s-aws-id itself, which is what binds a token to a cluster).
func verifyPresigned(method string, u *url.URL, host string, headers http.Header, si *sigInfo, id *identity) error {
	query := u.Query()
	query.Del("X-Amz-Signature")
	uu := *u
	if uu.Scheme == "" {
		uu.Scheme = "http"
	}
	uu.Host = host
	uu.RawQuery = query.Encode()
	req, err := http.NewRequest(method, uu.String(), nil)
	if err != nil {
		return fmt.Errorf("rebuilding request: %w", err)
	}
	req.URL = &uu
	req.Host = host
	for _, h := range si.signedHeaders {
		if h == "host" {
			continue
		}
		v := headers.Values(h)
		if len(v) == 0 {
			return fmt.Errorf("signed header %q is missing", h)
		}
		req.Header[http.CanonicalHeaderKey(h)] = v
	}
	creds := aws.Credentials{AccessKeyID: id.akid, SecretAccessKey: id.secret, SessionToken: id.token}
	signed, _, err := signer.PresignHTTP(context.Background(), creds, req, emptySHA256, si.service, si.region, si.date)
	if err != nil {
		return fmt.Errorf("presigning: %w", err)
	}
	su, err := url.Parse(signed)
	if err != nil {
		return fmt.Errorf("parsing presigned URL: %w", err)
	}
	if su.Query().Get("X-Amz-SignedHeaders") != strings.Join(si.signedHeaders, ";") {
		return fmt.Errorf("signed headers %q, expected %q", strings.Join(si.signedHeaders, ";"), su.Query().Get("X-Amz-SignedHeaders"))
	}
	if !hmac.Equal([]byte(su.Query().Get("X-Amz-Signature")), []byte(si.signature)) {
		return errors.New("signature mismatch")
	}
	return nil
}

// randomString returns n characters of alphabet from crypto/rand (temporary
// credentials must not be guessable from the call order).
func randomString(n int, alphabet string) string {
	out := make([]byte, n)
	max := big.NewInt(int64(len(alphabet)))
	for i := range out {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(fmt.Sprintf("awsfake: reading random bytes: %v", err))
		}
		out[i] = alphabet[v.Int64()]
	}
	return string(out)
}
