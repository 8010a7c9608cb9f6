package cutover

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	elbv2 "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	"github.com/aws/aws-sdk-go-v2/service/route53"
)

// ELBv2API is the part of Elastic Load Balancing v2 discovery reads.
type ELBv2API interface {
	DescribeLoadBalancers(ctx context.Context, in *elbv2.DescribeLoadBalancersInput, optFns ...func(*elbv2.Options)) (*elbv2.DescribeLoadBalancersOutput, error)
	DescribeTags(ctx context.Context, in *elbv2.DescribeTagsInput, optFns ...func(*elbv2.Options)) (*elbv2.DescribeTagsOutput, error)
	DescribeListeners(ctx context.Context, in *elbv2.DescribeListenersInput, optFns ...func(*elbv2.Options)) (*elbv2.DescribeListenersOutput, error)
}

// Route53API reads and changes record sets and polls changes.
type Route53API interface {
	ListResourceRecordSets(ctx context.Context, in *route53.ListResourceRecordSetsInput, optFns ...func(*route53.Options)) (*route53.ListResourceRecordSetsOutput, error)
	ChangeResourceRecordSets(ctx context.Context, in *route53.ChangeResourceRecordSetsInput, optFns ...func(*route53.Options)) (*route53.ChangeResourceRecordSetsOutput, error)
	GetChange(ctx context.Context, in *route53.GetChangeInput, optFns ...func(*route53.Options)) (*route53.GetChangeOutput, error)
}

// CloudFrontAPI reads and updates distribution configs.
type CloudFrontAPI interface {
	GetDistributionConfig(ctx context.Context, in *cloudfront.GetDistributionConfigInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetDistributionConfigOutput, error)
	UpdateDistribution(ctx context.Context, in *cloudfront.UpdateDistributionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.UpdateDistributionOutput, error)
	GetDistribution(ctx context.Context, in *cloudfront.GetDistributionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetDistributionOutput, error)
}

// RestAPI is API Gateway v1 (REST APIs).
type RestAPI interface {
	GetIntegration(ctx context.Context, in *apigateway.GetIntegrationInput, optFns ...func(*apigateway.Options)) (*apigateway.GetIntegrationOutput, error)
	UpdateIntegration(ctx context.Context, in *apigateway.UpdateIntegrationInput, optFns ...func(*apigateway.Options)) (*apigateway.UpdateIntegrationOutput, error)
	CreateDeployment(ctx context.Context, in *apigateway.CreateDeploymentInput, optFns ...func(*apigateway.Options)) (*apigateway.CreateDeploymentOutput, error)
	GetStage(ctx context.Context, in *apigateway.GetStageInput, optFns ...func(*apigateway.Options)) (*apigateway.GetStageOutput, error)
	GetDeployment(ctx context.Context, in *apigateway.GetDeploymentInput, optFns ...func(*apigateway.Options)) (*apigateway.GetDeploymentOutput, error)
}

// HTTPAPI is API Gateway v2 (HTTP APIs).
type HTTPAPI interface {
	GetIntegration(ctx context.Context, in *apigatewayv2.GetIntegrationInput, optFns ...func(*apigatewayv2.Options)) (*apigatewayv2.GetIntegrationOutput, error)
	UpdateIntegration(ctx context.Context, in *apigatewayv2.UpdateIntegrationInput, optFns ...func(*apigatewayv2.Options)) (*apigatewayv2.UpdateIntegrationOutput, error)
	CreateDeployment(ctx context.Context, in *apigatewayv2.CreateDeploymentInput, optFns ...func(*apigatewayv2.Options)) (*apigatewayv2.CreateDeploymentOutput, error)
	GetStage(ctx context.Context, in *apigatewayv2.GetStageInput, optFns ...func(*apigatewayv2.Options)) (*apigatewayv2.GetStageOutput, error)
	GetDeployments(ctx context.Context, in *apigatewayv2.GetDeploymentsInput, optFns ...func(*apigatewayv2.Options)) (*apigatewayv2.GetDeploymentsOutput, error)
}

// Clients are the AWS clients of one cutover: ELBv2 in the DR region, API
// Gateway in the APIs' region, Route 53 and CloudFront global.
type Clients struct {
	ELB        ELBv2API
	Route53    Route53API
	CloudFront CloudFrontAPI
	REST       RestAPI
	HTTP       HTTPAPI
}

// ClientSource makes the clients for a cutover: elbRegion is the DR
// region, apiRegion the region of the API Gateway APIs.
type ClientSource interface {
	Clients(ctx context.Context, elbRegion, apiRegion string) (Clients, error)
}

// ClientFunc adapts a function to ClientSource.
type ClientFunc func(ctx context.Context, elbRegion, apiRegion string) (Clients, error)

// Clients calls f.
func (f ClientFunc) Clients(ctx context.Context, elbRegion, apiRegion string) (Clients, error) {
	return f(ctx, elbRegion, apiRegion)
}

// FromAWSConfig builds the real SDK clients from one base config (drbot's
// credentials); the regions of ELBv2 and API Gateway are set per cutover.
func FromAWSConfig(cfg aws.Config) ClientSource {
	return ClientFunc(func(_ context.Context, elbRegion, apiRegion string) (Clients, error) {
		elbCfg, apiCfg := cfg.Copy(), cfg.Copy()
		if elbRegion != "" {
			elbCfg.Region = elbRegion
		}
		if apiRegion != "" {
			apiCfg.Region = apiRegion
		}
		// Route 53 and CloudFront are global; their endpoints only need some region to resolve.
		globalCfg := cfg.Copy()
		if globalCfg.Region == "" {
			globalCfg.Region = "us-east-1"
		}
		return Clients{
			ELB:        elbv2.NewFromConfig(elbCfg),
			Route53:    route53.NewFromConfig(globalCfg),
			CloudFront: cloudfront.NewFromConfig(globalCfg),
			REST:       apigateway.NewFromConfig(apiCfg),
			HTTP:       apigatewayv2.NewFromConfig(apiCfg),
		}, nil
	})
}
