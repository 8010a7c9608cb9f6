package permissions

import (
	"slices"
	"strings"
)

// unscoped are the actions drbot calls that do not support resource-level
// permissions: the AWS Service Authorization Reference
// (https://docs.aws.amazon.com/service-authorization/latest/reference/)
// lists no resource type for them, so a policy must grant them on "*".
// Every other action is granted on ARN patterns only.
var unscoped = []string{
	"cloudfront:ListDistributions",               // CloudFront: ListDistributions has no resource type
	"ec2:DescribeInstanceTypes",                  // EC2: Describe* actions have no resource types
	"ec2:DescribeSubnets",                        // idem
	"ec2:DescribeVpcs",                           // idem
	"eks:ListClusters",                           // EKS: ListClusters has no resource type
	"elasticloadbalancing:DescribeListeners",     // ELB v2: Describe* do not support resource-level permissions
	"elasticloadbalancing:DescribeLoadBalancers", // idem
	"elasticloadbalancing:DescribeTags",          // idem
	"route53:ListHostedZones",                    // Route 53: ListHostedZones has no resource type
	"servicequotas:GetAWSDefaultServiceQuota",    // Service Quotas: no resource type
	"servicequotas:GetServiceQuota",              // idem
	"sts:GetCallerIdentity",                      // STS: no resource type (and needs no grant at all)
}

// IsUnscoped says whether action is one AWS grants only on "*".
func IsUnscoped(action string) bool { return slices.Contains(unscoped, action) }

// iamPrefix maps an SDK signing name to the IAM service prefix.
var iamPrefix = map[string]string{
	"elasticloadbalancing": "elasticloadbalancing",
	"execute-api":          "execute-api",
}

// IAMAction is the IAM action an SDK call needs, from the signing name and
// the operation as the SDK names them. API Gateway's management API is
// authorised by HTTP verb (apigateway:GET, PATCH, POST, DELETE); S3's
// ListObjectsV2 is s3:ListBucket.
func IAMAction(signingName, operation string) string {
	switch signingName {
	case "apigateway":
		switch {
		case strings.HasPrefix(operation, "Get"):
			return "apigateway:GET"
		case strings.HasPrefix(operation, "Update"):
			return "apigateway:PATCH"
		case strings.HasPrefix(operation, "Create"):
			return "apigateway:POST"
		case strings.HasPrefix(operation, "Delete"):
			return "apigateway:DELETE"
		}
	case "s3":
		switch operation {
		case "ListObjectsV2", "ListObjects":
			return "s3:ListBucket"
		case "HeadObject":
			return "s3:GetObject"
		}
	}
	prefix := signingName
	if p, ok := iamPrefix[signingName]; ok {
		prefix = p
	}
	// CloudFront's SDK operations carry the API version (UpdateDistribution2020_05_31).
	if i := strings.Index(operation, "20"); signingName == "cloudfront" && i > 0 {
		operation = operation[:i]
	}
	return prefix + ":" + operation
}

// AllowsAction says whether the named steps (or everything) declare action.
func (s Set) AllowsAction(action string, names ...string) bool {
	return slices.Contains(s.AWSActions(names...), action)
}
