package awsfake_test

import (
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eks"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/drbot/drbot/test/awsfake"
)

func TestGetCallerIdentityReportsTheRegisteredARN(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	for _, tc := range []struct{ key, secret, arn string }{
		{adminKey, adminSec, adminArn},
		{drbotKey, drbotSec, drbotArn},
	} {
		out, err := sts.NewFromConfig(srv.Config(region, tc.key, tc.secret)).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
		if err != nil {
			t.Fatalf("GetCallerIdentity(%s): %v", tc.arn, err)
		}
		if aws.ToString(out.Arn) != tc.arn || aws.ToString(out.Account) != account || aws.ToString(out.UserId) == "" {
			t.Errorf("GetCallerIdentity = %s / %s / %s, want %s", aws.ToString(out.Arn), aws.ToString(out.Account), aws.ToString(out.UserId), tc.arn)
		}
	}
}

func TestSTSRejectsUnknownKeysAndBadSignatures(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	_, err := sts.NewFromConfig(srv.Config(region, "AKIDUNKNOWN000000000", "whatever")).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	if code := errorCode(err); code != "InvalidClientTokenId" {
		t.Errorf("unknown key: error %v (code %q), want InvalidClientTokenId", err, code)
	}
	_, err = sts.NewFromConfig(srv.Config(region, adminKey, "not-the-secret")).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	if code := errorCode(err); code != "SignatureDoesNotMatch" {
		t.Errorf("wrong secret: error %v (code %q), want SignatureDoesNotMatch", err, code)
	}
	// Other services verify registered keys too.
	_, err = eks.NewFromConfig(srv.Config(region, adminKey, "not-the-secret")).ListClusters(ctx(t), &eks.ListClustersInput{})
	if code := errorCode(err); code != "InvalidSignatureException" {
		t.Errorf("EKS with a wrong secret: %v (code %q), want InvalidSignatureException", err, code)
	}
	for _, c := range srv.Calls() {
		if c.Status != 403 {
			t.Errorf("call %+v: status %d, want 403", c, c.Status)
		}
	}
}

func TestStrictAuthRejectsUnknownKeysOnEveryService(t *testing.T) {
	lenient := newServer(t, awsfake.Options{})
	if _, err := eks.NewFromConfig(lenient.Config(region, "AKIDUNKNOWN000000000", "x")).ListClusters(ctx(t), &eks.ListClustersInput{}); err != nil {
		t.Fatalf("lenient server refused an unknown key on EKS: %v", err)
	}
	strict := newServer(t, awsfake.Options{StrictAuth: true})
	_, err := eks.NewFromConfig(strict.Config(region, "AKIDUNKNOWN000000000", "x")).ListClusters(ctx(t), &eks.ListClustersInput{})
	if code := errorCode(err); code != "UnrecognizedClientException" {
		t.Fatalf("strict server: %v (code %q), want UnrecognizedClientException", err, code)
	}
}

func TestAssumeRoleIssuesWorkingTemporaryCredentials(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	cfg := srv.Config(region, adminKey, adminSec)
	_, err := sts.NewFromConfig(cfg).AssumeRole(ctx(t), &sts.AssumeRoleInput{RoleArn: aws.String(drbotRole), RoleSessionName: aws.String("s1")})
	if code := errorCode(err); code != "AccessDenied" {
		t.Fatalf("AssumeRole of a role that does not exist = %v, want AccessDenied", err)
	}
	if _, err := iam.NewFromConfig(cfg).CreateRole(ctx(t), &iam.CreateRoleInput{
		RoleName: aws.String("drbot"), AssumeRolePolicyDocument: aws.String(trustPolicy),
	}); err != nil {
		t.Fatal(err)
	}
	out, err := sts.NewFromConfig(cfg).AssumeRole(ctx(t), &sts.AssumeRoleInput{RoleArn: aws.String(drbotRole), RoleSessionName: aws.String("dr-run-7")})
	if err != nil {
		t.Fatalf("AssumeRole: %v", err)
	}
	if got := aws.ToString(out.AssumedRoleUser.Arn); got != "arn:aws:sts::123456789012:assumed-role/drbot/dr-run-7" {
		t.Errorf("assumed role ARN = %s", got)
	}
	if out.Credentials.Expiration == nil || out.Credentials.Expiration.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("expiration = %v, want about an hour from now", out.Credentials.Expiration)
	}

	temp := cfg.Copy()
	temp.Credentials = credentials.NewStaticCredentialsProvider(*out.Credentials.AccessKeyId, *out.Credentials.SecretAccessKey, *out.Credentials.SessionToken)
	who, err := sts.NewFromConfig(temp).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{})
	if err != nil || aws.ToString(who.Arn) != "arn:aws:sts::123456789012:assumed-role/drbot/dr-run-7" {
		t.Fatalf("GetCallerIdentity with the temporary credentials = %v, %v", who, err)
	}

	noToken := cfg.Copy()
	noToken.Credentials = credentials.NewStaticCredentialsProvider(*out.Credentials.AccessKeyId, *out.Credentials.SecretAccessKey, "")
	if _, err := sts.NewFromConfig(noToken).GetCallerIdentity(ctx(t), &sts.GetCallerIdentityInput{}); errorCode(err) != "InvalidClientTokenId" {
		t.Fatalf("temporary key without its session token = %v, want InvalidClientTokenId", err)
	}
}

const trustPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"pods.eks.amazonaws.com"},"Action":["sts:AssumeRole","sts:TagSession"]}]}`

func TestIAMRolesAndPoliciesRoundTrip(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	c := iam.NewFromConfig(srv.Config(region, adminKey, adminSec))

	created, err := c.CreateRole(ctx(t), &iam.CreateRoleInput{
		RoleName: aws.String("karpenter"), Path: aws.String("/drbot/"), AssumeRolePolicyDocument: aws.String(trustPolicy),
		Tags: []iamtypes.Tag{{Key: aws.String("drbot/run"), Value: aws.String("r1")}},
	})
	if err != nil {
		t.Fatalf("CreateRole: %v", err)
	}
	if got := aws.ToString(created.Role.Arn); got != "arn:aws:iam::123456789012:role/drbot/karpenter" {
		t.Errorf("role ARN = %s", got)
	}
	_, err = c.CreateRole(ctx(t), &iam.CreateRoleInput{RoleName: aws.String("karpenter"), AssumeRolePolicyDocument: aws.String(trustPolicy)})
	var exists *iamtypes.EntityAlreadyExistsException
	if !errors.As(err, &exists) {
		t.Fatalf("duplicate CreateRole = %v, want EntityAlreadyExistsException", err)
	}

	got, err := c.GetRole(ctx(t), &iam.GetRoleInput{RoleName: aws.String("karpenter")})
	if err != nil {
		t.Fatal(err)
	}
	// Like IAM, the document comes back URL-encoded.
	if doc, err := url.QueryUnescape(aws.ToString(got.Role.AssumeRolePolicyDocument)); err != nil || doc != trustPolicy {
		t.Errorf("trust policy = %q (%v)", doc, err)
	}
	if len(got.Role.Tags) != 1 || aws.ToString(got.Role.Tags[0].Value) != "r1" {
		t.Errorf("tags = %+v", got.Role.Tags)
	}
	_, err = c.GetRole(ctx(t), &iam.GetRoleInput{RoleName: aws.String("nope")})
	var noSuch *iamtypes.NoSuchEntityException
	if !errors.As(err, &noSuch) {
		t.Fatalf("GetRole of a missing role = %v, want NoSuchEntityException", err)
	}

	pol, err := c.CreatePolicy(ctx(t), &iam.CreatePolicyInput{
		PolicyName: aws.String("KarpenterController"), PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:*","Resource":"*"}]}`),
	})
	if err != nil {
		t.Fatalf("CreatePolicy: %v", err)
	}
	for _, arn := range []string{aws.ToString(pol.Policy.Arn), "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"} {
		if _, err := c.AttachRolePolicy(ctx(t), &iam.AttachRolePolicyInput{RoleName: aws.String("karpenter"), PolicyArn: aws.String(arn)}); err != nil {
			t.Fatalf("AttachRolePolicy(%s): %v", arn, err)
		}
	}
	_, err = c.AttachRolePolicy(ctx(t), &iam.AttachRolePolicyInput{RoleName: aws.String("karpenter"), PolicyArn: aws.String("arn:aws:iam::123456789012:policy/Missing")})
	if !errors.As(err, &noSuch) {
		t.Fatalf("attaching a missing policy = %v, want NoSuchEntityException", err)
	}
	att, err := c.ListAttachedRolePolicies(ctx(t), &iam.ListAttachedRolePoliciesInput{RoleName: aws.String("karpenter")})
	if err != nil || len(att.AttachedPolicies) != 2 || aws.ToString(att.AttachedPolicies[1].PolicyName) != "AmazonEKSWorkerNodePolicy" {
		t.Fatalf("ListAttachedRolePolicies = %+v, %v", att, err)
	}
	gp, err := c.GetPolicy(ctx(t), &iam.GetPolicyInput{PolicyArn: pol.Policy.Arn})
	if err != nil || aws.ToInt32(gp.Policy.AttachmentCount) != 1 {
		t.Fatalf("GetPolicy = %+v, %v; want one attachment", gp, err)
	}

	if _, err := c.PutRolePolicy(ctx(t), &iam.PutRolePolicyInput{
		RoleName: aws.String("karpenter"), PolicyName: aws.String("inline"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sqs:*","Resource":"*"}]}`),
	}); err != nil {
		t.Fatal(err)
	}
	inl, err := c.GetRolePolicy(ctx(t), &iam.GetRolePolicyInput{RoleName: aws.String("karpenter"), PolicyName: aws.String("inline")})
	if err != nil || aws.ToString(inl.PolicyName) != "inline" {
		t.Fatalf("GetRolePolicy = %+v, %v", inl, err)
	}
	if _, err := c.TagRole(ctx(t), &iam.TagRoleInput{RoleName: aws.String("karpenter"), Tags: []iamtypes.Tag{{Key: aws.String("team"), Value: aws.String("sre")}}}); err != nil {
		t.Fatal(err)
	}

	_, err = c.DeleteRole(ctx(t), &iam.DeleteRoleInput{RoleName: aws.String("karpenter")})
	var conflict *iamtypes.DeleteConflictException
	if !errors.As(err, &conflict) {
		t.Fatalf("DeleteRole with attached policies = %v, want DeleteConflictException", err)
	}
	for _, arn := range []string{aws.ToString(pol.Policy.Arn), "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"} {
		if _, err := c.DetachRolePolicy(ctx(t), &iam.DetachRolePolicyInput{RoleName: aws.String("karpenter"), PolicyArn: aws.String(arn)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.DeleteRolePolicy(ctx(t), &iam.DeleteRolePolicyInput{RoleName: aws.String("karpenter"), PolicyName: aws.String("inline")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteRole(ctx(t), &iam.DeleteRoleInput{RoleName: aws.String("karpenter")}); err != nil {
		t.Fatalf("DeleteRole after detaching: %v", err)
	}
}

func TestListRolesPaginatesAcrossPages(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	c := iam.NewFromConfig(srv.Config(region, adminKey, adminSec))
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if _, err := c.CreateRole(ctx(t), &iam.CreateRoleInput{RoleName: aws.String("role-" + n), AssumeRolePolicyDocument: aws.String(trustPolicy)}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	p := iam.NewListRolesPaginator(c, &iam.ListRolesInput{MaxItems: aws.Int32(2)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Roles {
			names = append(names, aws.ToString(r.RoleName))
		}
	}
	if len(names) != 5 || names[0] != "role-a" || names[4] != "role-e" {
		t.Fatalf("roles over pages = %v", names)
	}
	if n := srv.CallsTo("iam", "ListRoles"); n != 3 {
		t.Errorf("ListRoles calls = %d, want 3 pages", n)
	}
}

func TestSimulatePrincipalPolicyAllowsAllButDeniedActions(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	srv.DenyAction(drbotRole, "route53:ChangeResourceRecordSets")
	c := iam.NewFromConfig(srv.Config(region, adminKey, adminSec))
	out, err := c.SimulatePrincipalPolicy(ctx(t), &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(drbotRole),
		ActionNames:     []string{"eks:DescribeCluster", "route53:ChangeResourceRecordSets"},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]iamtypes.PolicyEvaluationDecisionType{}
	for _, r := range out.EvaluationResults {
		got[aws.ToString(r.EvalActionName)] = r.EvalDecision
	}
	if got["eks:DescribeCluster"] != iamtypes.PolicyEvaluationDecisionTypeAllowed || got["route53:ChangeResourceRecordSets"] != iamtypes.PolicyEvaluationDecisionTypeExplicitDeny {
		t.Fatalf("decisions = %v", got)
	}
}

// TestPresignedGetCallerIdentityIsVerifiedWhenSentToSTS replays a token's
// presigned URL against the stand-in's STS, as aws-iam-authenticator does
// against real STS: it needs the x-k8s-aws-id header the token was signed with.
func TestPresignedGetCallerIdentityIsVerifiedWhenSentToSTS(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	token := eksToken(t, srv.Config(drRegion, drbotKey, drbotSec), "dr")
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(token, "k8s-aws-v1."))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(raw), srv.URL()+"/?") || !strings.Contains(string(raw), "X-Amz-SignedHeaders=host%3Bx-k8s-aws-id") {
		t.Fatalf("presigned URL %s does not point at the stand-in with x-k8s-aws-id signed", raw)
	}
	get := func(cluster string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, string(raw), nil)
		req.Header.Set("x-k8s-aws-id", cluster)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := get("dr"); status != http.StatusOK || !strings.Contains(body, "<Arn>"+drbotArn+"</Arn>") {
		t.Fatalf("presigned GetCallerIdentity = %d %s", status, body)
	}
	if status, body := get("prod"); status != http.StatusForbidden || !strings.Contains(body, "SignatureDoesNotMatch") {
		t.Fatalf("presigned GetCallerIdentity with another cluster id = %d %s", status, body)
	}
}
