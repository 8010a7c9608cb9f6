package awsfake_test

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/drbot/drbot/test/awsfake"
)

const (
	drClusterArn    = "arn:aws:eks:eu-west-1:123456789012:cluster/dr"
	otherClusterArn = "arn:aws:eks:eu-west-1:123456789012:cluster/prod"
)

// simCase is one SimulatePrincipalPolicy question and the decision wanted.
type simCase struct {
	action   string
	resource string // "" sends no ResourceArns (IAM then simulates "*")
	context  map[string]string
	want     iamtypes.PolicyEvaluationDecisionType
}

// simulate asks the stand-in through the real IAM client.
func simulate(t *testing.T, srv *awsfake.Server, source string, c simCase) iamtypes.EvaluationResult {
	t.Helper()
	in := &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(source), ActionNames: []string{c.action}}
	if c.resource != "" {
		in.ResourceArns = []string{c.resource}
	}
	for k, v := range c.context {
		in.ContextEntries = append(in.ContextEntries, iamtypes.ContextEntry{
			ContextKeyName: aws.String(k), ContextKeyValues: []string{v}, ContextKeyType: iamtypes.ContextKeyTypeEnumString,
		})
	}
	out, err := iam.NewFromConfig(srv.Config(region, adminKey, adminSec)).SimulatePrincipalPolicy(ctx(t), in)
	if err != nil {
		t.Fatalf("SimulatePrincipalPolicy(%s on %q): %v", c.action, c.resource, err)
	}
	if len(out.EvaluationResults) != 1 {
		t.Fatalf("SimulatePrincipalPolicy(%s on %q) returned %d results, want 1", c.action, c.resource, len(out.EvaluationResults))
	}
	return out.EvaluationResults[0]
}

func checkDecisions(t *testing.T, srv *awsfake.Server, source string, cases []simCase) {
	t.Helper()
	for _, c := range cases {
		r := simulate(t, srv, source, c)
		if r.EvalDecision != c.want {
			t.Errorf("%s on %q with %v = %s, want %s", c.action, c.resource, c.context, r.EvalDecision, c.want)
		}
	}
}

func attach(t *testing.T, srv *awsfake.Server, principal, doc string) {
	t.Helper()
	if err := srv.AttachPolicyDocument(principal, doc); err != nil {
		t.Fatalf("AttachPolicyDocument: %v", err)
	}
}

func TestSimulateAllowsAScopedStatementOnlyOnItsResources(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Statement":{"Sid":"Dr","Effect":"Allow",
		"Action":"eks:DescribeCluster","Resource":"`+drClusterArn+`"}}`)
	checkDecisions(t, srv, drbotRole, []simCase{
		{action: "eks:DescribeCluster", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:DescribeCluster", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:DescribeCluster", resource: otherClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:DeleteCluster", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
	})
	r := simulate(t, srv, drbotRole, simCase{action: "eks:DescribeCluster", resource: drClusterArn})
	if aws.ToString(r.EvalResourceName) != drClusterArn || aws.ToString(r.EvalActionName) != "eks:DescribeCluster" {
		t.Errorf("result names %s on %s", aws.ToString(r.EvalActionName), aws.ToString(r.EvalResourceName))
	}
	if len(r.MatchedStatements) != 1 || aws.ToString(r.MatchedStatements[0].SourcePolicyId) != "document-1" ||
		r.MatchedStatements[0].SourcePolicyType != iamtypes.PolicySourceTypeRole {
		t.Errorf("MatchedStatements = %+v, want the role's document-1", r.MatchedStatements)
	}
}

func TestSimulateMatchesActionWildcardsCaseInsensitively(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":["eks:Describe*","ec2:DescribeVpc?"],"Resource":"*"},
		{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::state/*"}]}`)
	checkDecisions(t, srv, drbotRole, []simCase{
		{action: "eks:DescribeNodegroup", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "EKS:describecluster", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:CreateCluster", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "ec2:DescribeVpcs", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "ec2:DescribeVpcEndpoints", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "s3:PutObject", resource: "arn:aws:s3:::state/a/b:c", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "s3:PutObject", resource: "arn:aws:s3:::other/a", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
	})
}

func TestSimulateResourceWildcardsKeepToTheirARNSegment(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"eks:DescribeNodegroup","Resource":"arn:aws:eks:eu-west-?:123456789012:nodegroup/dr/*"},
		{"Effect":"Allow","Action":"eks:DescribeCluster","Resource":"arn:aws:eks:*:123456789012:cluster/d?"}]}`)
	checkDecisions(t, srv, drbotRole, []simCase{
		// A simulated pattern matches a policy pattern literally.
		{action: "eks:DescribeNodegroup", resource: "arn:aws:eks:eu-west-1:123456789012:nodegroup/dr/*", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:DescribeNodegroup", resource: "arn:aws:eks:eu-west-1:123456789012:nodegroup/dr/ng/0a1b", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:DescribeNodegroup", resource: "arn:aws:eks:eu-west-12:123456789012:nodegroup/dr/ng", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:DescribeNodegroup", resource: "arn:aws:eks:eu-west-1:123456789012:nodegroup/prod/ng", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:DescribeCluster", resource: "arn:aws:eks:us-east-2:123456789012:cluster/dr", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:DescribeCluster", resource: "arn:aws:eks:us-east-2:123456789012:cluster/drx", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:DescribeCluster", resource: "arn:aws:eks:us-east-2:999999999999:cluster/dr", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
	})
}

func TestSimulateDenyStatementBeatsAllow(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`)
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Id":"guard","Statement":[
		{"Effect":"Deny","Action":"iam:*","Resource":"arn:aws:iam::123456789012:role/admin*"},
		{"Effect":"Deny","NotAction":["eks:*","iam:*"],"NotResource":"arn:aws:s3:::state*"}]}`)
	srv.DenyAction(drbotRole, "eks:DeleteCluster")
	checkDecisions(t, srv, drbotRole, []simCase{
		{action: "iam:PassRole", resource: "arn:aws:iam::123456789012:role/admin-eu", want: iamtypes.PolicyEvaluationDecisionTypeExplicitDeny},
		{action: "iam:PassRole", resource: "arn:aws:iam::123456789012:role/node", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:CreateCluster", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "s3:GetObject", resource: "arn:aws:s3:::state/x", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "s3:GetObject", resource: "arn:aws:s3:::logs/x", want: iamtypes.PolicyEvaluationDecisionTypeExplicitDeny},
		// DenyAction still denies explicitly when documents are attached.
		{action: "eks:DeleteCluster", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeExplicitDeny},
	})
	r := simulate(t, srv, drbotRole, simCase{action: "iam:PassRole", resource: "arn:aws:iam::123456789012:role/admin-eu"})
	if len(r.MatchedStatements) != 1 || aws.ToString(r.MatchedStatements[0].SourcePolicyId) != "guard" {
		t.Errorf("MatchedStatements = %+v, want only the Deny of document guard", r.MatchedStatements)
	}
}

func TestSimulateChecksAPassedToServiceCondition(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	role := "arn:aws:iam::123456789012:role/eks-cluster"
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iam:PassRole","Resource":"`+role+`",
		"Condition":{"StringEquals":{"iam:PassedToService":["eks.amazonaws.com","eks-nodegroup.amazonaws.com"]}}}}`)
	checkDecisions(t, srv, drbotRole, []simCase{
		{action: "iam:PassRole", resource: role, context: map[string]string{"iam:PassedToService": "eks.amazonaws.com"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "iam:PassRole", resource: role, context: map[string]string{"IAM:passedtoservice": "eks-nodegroup.amazonaws.com"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "iam:PassRole", resource: role, context: map[string]string{"iam:PassedToService": "ec2.amazonaws.com"}, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "iam:PassRole", resource: role, context: map[string]string{"iam:PassedToService": "EKS.amazonaws.com"}, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "iam:PassRole", resource: role, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
	})
	r := simulate(t, srv, drbotRole, simCase{action: "iam:PassRole", resource: role})
	if len(r.MissingContextValues) != 1 || r.MissingContextValues[0] != "iam:PassedToService" {
		t.Errorf("MissingContextValues = %v, want [iam:PassedToService]", r.MissingContextValues)
	}
}

func TestSimulateArnLikeAndNegatedConditions(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	nodeRole := "arn:aws:iam::123456789012:role/KarpenterNodeRole-dr"
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Statement":[
		{"Sid":"Attach","Effect":"Allow","Action":"iam:AttachRolePolicy","Resource":"arn:aws:iam::123456789012:role/KarpenterNodeRole-*",
		 "Condition":{"ArnLike":{"iam:PolicyARN":["arn:aws:iam::aws:policy/AmazonEKS*","arn:aws:iam::123456789012:policy/Karpenter*"]}}},
		{"Sid":"Tag","Effect":"Allow","Action":"eks:TagResource","Resource":"*",
		 "Condition":{"StringNotLike":{"aws:RequestTag/owner":"prod-*"},"BoolIfExists":{"aws:MultiFactorAuthPresent":"true"}}},
		{"Sid":"Untag","Effect":"Allow","Action":"eks:UntagResource","Resource":"*",
		 "Condition":{"StringEqualsIfExists":{"aws:ResourceTag/team":"dr"},"Null":{"aws:TagKeys":"false"}}}]}`)
	checkDecisions(t, srv, drbotRole, []simCase{
		{action: "iam:AttachRolePolicy", resource: nodeRole, context: map[string]string{"iam:PolicyARN": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "iam:AttachRolePolicy", resource: nodeRole, context: map[string]string{"iam:PolicyARN": "arn:aws:iam::123456789012:policy/KarpenterControllerPolicy-dr"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "iam:AttachRolePolicy", resource: nodeRole, context: map[string]string{"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		// A policy of another account does not match.
		{action: "iam:AttachRolePolicy", resource: nodeRole, context: map[string]string{"iam:PolicyARN": "arn:aws:iam::999999999999:policy/Karpenter-x"}, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "iam:AttachRolePolicy", resource: nodeRole, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		// Negated operators hold when the key is absent; IfExists holds when absent.
		{action: "eks:TagResource", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:TagResource", context: map[string]string{"aws:RequestTag/owner": "team-dr"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:TagResource", context: map[string]string{"aws:RequestTag/owner": "prod-web"}, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:TagResource", context: map[string]string{"aws:MultiFactorAuthPresent": "false"}, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:TagResource", context: map[string]string{"aws:MultiFactorAuthPresent": "TRUE"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:UntagResource", context: map[string]string{"aws:TagKeys": "team"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:UntagResource", context: map[string]string{"aws:TagKeys": "team", "aws:ResourceTag/team": "web"}, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:UntagResource", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
	})
}

func TestSimulateSetOperatorsOnMultiValuedKeys(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"eks:TagResource","Resource":"*","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}},
		{"Effect":"Allow","Action":"eks:UntagResource","Resource":"*","Condition":{"ForAnyValue:StringLike":{"aws:TagKeys":"team*"}}}]}`)
	c := iam.NewFromConfig(srv.Config(region, adminKey, adminSec))
	decide := func(action string, keys ...string) iamtypes.PolicyEvaluationDecisionType {
		in := &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(drbotRole), ActionNames: []string{action}}
		if keys != nil {
			in.ContextEntries = []iamtypes.ContextEntry{{ContextKeyName: aws.String("aws:TagKeys"), ContextKeyValues: keys, ContextKeyType: iamtypes.ContextKeyTypeEnumStringList}}
		}
		out, err := c.SimulatePrincipalPolicy(ctx(t), in)
		if err != nil {
			t.Fatal(err)
		}
		return out.EvaluationResults[0].EvalDecision
	}
	for _, tc := range []struct {
		action string
		keys   []string
		want   iamtypes.PolicyEvaluationDecisionType
	}{
		{"eks:TagResource", []string{"team", "env"}, iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{"eks:TagResource", []string{"team", "owner"}, iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{"eks:TagResource", nil, iamtypes.PolicyEvaluationDecisionTypeAllowed}, // ForAllValues holds with no values, as in IAM
		{"eks:UntagResource", []string{"owner", "team-lead"}, iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{"eks:UntagResource", []string{"owner"}, iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{"eks:UntagResource", nil, iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
	} {
		if got := decide(tc.action, tc.keys...); got != tc.want {
			t.Errorf("%s with aws:TagKeys %v = %s, want %s", tc.action, tc.keys, got, tc.want)
		}
	}
}

func TestSimulateAppliesARolesDocumentsToTheRoleAndItsSessions(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	attach(t, srv, drbotRole, `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"eks:CreateCluster","Resource":"`+drClusterArn+`"}}`)
	allowed := simCase{action: "eks:CreateCluster", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeAllowed}
	denied := simCase{action: "eks:DeleteCluster", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny}
	checkDecisions(t, srv, drbotRole, []simCase{allowed, denied})
	checkDecisions(t, srv, drbotArn, []simCase{allowed, denied})
	// A principal without documents keeps the stand-in's allow-all default.
	checkDecisions(t, srv, "arn:aws:iam::123456789012:role/other", []simCase{{action: "eks:DeleteCluster", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeAllowed}})
}

func TestAttachPolicyDocumentRefusesWhatItDoesNotModel(t *testing.T) {
	srv := newServer(t, awsfake.Options{})
	for _, tc := range []struct{ doc, want string }{
		{`{"Statement":`, "parsing policy JSON"},
		{`{"Version":"2012-10-17"}`, "no Statement"},
		{`{"Version":"2019-01-01","Statement":[]}`, "Version"},
		{`{"Statement":[{"Sid":"Trust","Effect":"Allow","Principal":{"Service":"eks.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}`, `statement 1 (Sid "Trust"): Principal is not modelled`},
		{`{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},{"Effect":"allow","Action":"s3:*","Resource":"*"}]}`, `statement 2: Effect "allow"`},
		{`{"Statement":{"Sid":"Both","Effect":"Allow","Action":"s3:*","NotAction":"s3:Get*","Resource":"*"}}`, `Sid "Both"): both Action and NotAction`},
		{`{"Statement":{"Effect":"Allow","Action":"s3:*"}}`, "neither Resource nor NotResource"},
		{`{"Statement":{"Effect":"Allow","Action":"GetObject","Resource":"*"}}`, "is not service:Action"},
		{`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"arn:aws:s3:::${aws:username}/*"}}`, "policy variables are not modelled"},
		{`{"Statement":{"Sid":"Num","Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"10"}}}}`, `Sid "Num"): condition operator "NumericLessThan" is not modelled`},
		{`{"Statement":{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"yes"}}}}`, `"yes" is not true or false`},
	} {
		err := srv.AttachPolicyDocument(drbotRole, tc.doc)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("AttachPolicyDocument(%s) = %v, want an error containing %q", tc.doc, err, tc.want)
		}
	}
	// Refused documents are not attached: the role keeps the allow-all default.
	checkDecisions(t, srv, drbotRole, []simCase{{action: "s3:GetObject", want: iamtypes.PolicyEvaluationDecisionTypeAllowed}})
}

func TestSimulateRefusesParametersItDoesNotModel(t *testing.T) {
	srv := newServer(t, awsfake.Options{AllowUnexpected: true})
	_, err := iam.NewFromConfig(srv.Config(region, adminKey, adminSec)).SimulatePrincipalPolicy(ctx(t), &iam.SimulatePrincipalPolicyInput{
		PolicySourceArn: aws.String(drbotRole), ActionNames: []string{"s3:GetObject"}, CallerArn: aws.String(adminArn),
	})
	if code := errorCode(err); code != "ValidationError" || !strings.Contains(err.Error(), "CallerArn") {
		t.Fatalf("SimulatePrincipalPolicy with CallerArn = %v, want a ValidationError naming CallerArn", err)
	}
	if u := srv.Unexpected(); len(u) != 1 {
		t.Errorf("Unexpected() = %v, want the refused call recorded", u)
	}
}

// TestSimulateEvaluatesTheGeneratedDrbotPolicy attaches the policy drbot
// generates (make generate) and checks its scoping the way readiness does.
func TestSimulateEvaluatesTheGeneratedDrbotPolicy(t *testing.T) {
	raw, err := os.ReadFile("../../manifests/iam/drbot-policy.json")
	if err != nil {
		t.Fatalf("reading the generated policy: %v", err)
	}
	doc := strings.NewReplacer(
		"${ACCOUNT_ID}", account, "${DR_REGION}", drRegion, "${DR_CLUSTER}", "dr", "${API_REGION}", region,
		"${EKS_CLUSTER_ROLE_NAME}", "dr-eks-cluster", "${EKS_NODE_ROLE_NAME}", "dr-eks-node",
		"${DRBOT_ROLE_NAME}", "drbot", "${STATE_BUCKET}", "drbot-state-made-up",
	).Replace(string(raw))
	if left := regexp.MustCompile(`\$\{[A-Z_]+\}`).FindAllString(doc, -1); len(left) > 0 {
		t.Fatalf("the generated policy has placeholders this test does not fill: %v", left)
	}
	srv := newServer(t, awsfake.Options{})
	attach(t, srv, drbotRole, doc)
	clusterRole := "arn:aws:iam::123456789012:role/dr-eks-cluster"
	checkDecisions(t, srv, drbotArn, []simCase{
		{action: "eks:CreateCluster", resource: drClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:CreateCluster", resource: otherClusterArn, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:CreateCluster", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:CreateNodegroup", resource: "arn:aws:eks:eu-west-1:123456789012:nodegroup/dr/*", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "eks:ListClusters", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "iam:PassRole", resource: clusterRole, context: map[string]string{"iam:PassedToService": "eks.amazonaws.com"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "iam:PassRole", resource: clusterRole, context: map[string]string{"iam:PassedToService": "pods.eks.amazonaws.com"}, want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
		{action: "eks:AssociateAccessPolicy", resource: "arn:aws:eks:eu-west-1:123456789012:access-entry/dr/*",
			context: map[string]string{"eks:policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"}, want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "s3:PutObject", resource: "arn:aws:s3:::drbot-state-made-up/dr/state.json", want: iamtypes.PolicyEvaluationDecisionTypeAllowed},
		{action: "s3:PutObject", resource: "arn:aws:s3:::drbot-state-made-up", want: iamtypes.PolicyEvaluationDecisionTypeImplicitDeny},
	})
}
