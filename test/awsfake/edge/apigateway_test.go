package edge_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/apigateway"
	agtypes "github.com/aws/aws-sdk-go-v2/service/apigateway/types"
	"github.com/aws/aws-sdk-go-v2/service/apigatewayv2"
	ag2types "github.com/aws/aws-sdk-go-v2/service/apigatewayv2/types"

	"github.com/drbot/drbot/test/awsfake/edge"
)

func TestAPIGatewayV1PatchURIOnlyGoesLiveAfterCreateDeployment(t *testing.T) {
	f := newFixture(t, edge.Options{})
	apiID := f.svc.AddRestAPI("orders")
	f.svc.AddRestIntegration(apiID, "/orders/{id}", "GET", "http://old-nlb.us-west-2.elb.amazonaws.com/orders/{id}")
	f.svc.AddStage(apiID, "prod")
	c := f.apigateway()

	// Find the method the way a cutover would: list resources with methods embedded.
	var resourceID string
	p := apigateway.NewGetResourcesPaginator(c, &apigateway.GetResourcesInput{RestApiId: aws.String(apiID), Embed: []string{"methods"}})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx(t))
		if err != nil {
			t.Fatalf("GetResources: %v", err)
		}
		for _, r := range out.Items {
			if m, ok := r.ResourceMethods["GET"]; ok && aws.ToString(r.Path) == "/orders/{id}" {
				if m.MethodIntegration == nil || aws.ToString(m.MethodIntegration.Uri) != "http://old-nlb.us-west-2.elb.amazonaws.com/orders/{id}" {
					t.Fatalf("embedded integration = %+v, want the seeded URI", m.MethodIntegration)
				}
				resourceID = aws.ToString(r.Id)
			}
		}
	}
	if resourceID == "" {
		t.Fatal("GetResources did not list /orders/{id} with a GET method")
	}

	newURI := "http://new-nlb.us-east-1.elb.amazonaws.com/orders/{id}"
	upd, err := c.UpdateIntegration(ctx(t), &apigateway.UpdateIntegrationInput{
		RestApiId: aws.String(apiID), ResourceId: aws.String(resourceID), HttpMethod: aws.String("GET"),
		PatchOperations: []agtypes.PatchOperation{{Op: agtypes.OpReplace, Path: aws.String("/uri"), Value: aws.String(newURI)}},
	})
	if err != nil {
		t.Fatalf("UpdateIntegration: %v", err)
	}
	if aws.ToString(upd.Uri) != newURI || upd.ConnectionType != agtypes.ConnectionTypeInternet {
		t.Errorf("UpdateIntegration returned uri %q connectionType %q", aws.ToString(upd.Uri), upd.ConnectionType)
	}
	if live, _ := f.svc.StageIntegrations(apiID, "prod"); live["GET /orders/{id}"].URI == newURI {
		t.Fatal("the stage serves the new URI before any deployment")
	}

	dep, err := c.CreateDeployment(ctx(t), &apigateway.CreateDeploymentInput{
		RestApiId: aws.String(apiID), StageName: aws.String("prod"), Description: aws.String("drbot cutover"),
	})
	if err != nil {
		t.Fatalf("CreateDeployment: %v", err)
	}
	st, err := c.GetStage(ctx(t), &apigateway.GetStageInput{RestApiId: aws.String(apiID), StageName: aws.String("prod")})
	if err != nil {
		t.Fatalf("GetStage: %v", err)
	}
	if aws.ToString(st.DeploymentId) != aws.ToString(dep.Id) {
		t.Errorf("stage prod points at %q, want the new deployment %q", aws.ToString(st.DeploymentId), aws.ToString(dep.Id))
	}
	if live, _ := f.svc.StageIntegrations(apiID, "prod"); live["GET /orders/{id}"].URI != newURI {
		t.Errorf("stage prod serves %+v after the deployment, want %s", live, newURI)
	}
	deps, err := c.GetDeployments(ctx(t), &apigateway.GetDeploymentsInput{RestApiId: aws.String(apiID)})
	if err != nil {
		t.Fatalf("GetDeployments: %v", err)
	}
	if len(deps.Items) != 2 || aws.ToString(deps.Items[1].Description) != "drbot cutover" {
		t.Errorf("GetDeployments = %d items, want the seed deployment and the cutover's", len(deps.Items))
	}
	if got := f.svc.Deployments(apiID); len(got) != 2 || got[1].StageName != "prod" {
		t.Errorf("Deployments() = %+v, want two with the last for prod", got)
	}
	f.assertNoUnexpected(t)
}

func TestAPIGatewayV1RejectsUnknownPatchPathAndIDs(t *testing.T) {
	f := newFixture(t, edge.Options{})
	apiID := f.svc.AddRestAPI("orders")
	resID := f.svc.AddRestIntegration(apiID, "/orders", "POST", "http://old.example.net/orders")
	c := f.apigateway()
	patch := func(path, value string) error {
		_, err := c.UpdateIntegration(ctx(t), &apigateway.UpdateIntegrationInput{
			RestApiId: aws.String(apiID), ResourceId: aws.String(resID), HttpMethod: aws.String("POST"),
			PatchOperations: []agtypes.PatchOperation{{Op: agtypes.OpReplace, Path: aws.String(path), Value: aws.String(value)}},
		})
		return err
	}
	var bad *agtypes.BadRequestException
	if err := patch("/endpoint", "x"); !errors.As(err, &bad) {
		t.Errorf("patch of /endpoint: %v, want *types.BadRequestException", err)
	}
	if err := patch("/uri", "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/net/x/y/z"); !errors.As(err, &bad) {
		t.Errorf("an ARN as an HTTP_PROXY URI: %v, want *types.BadRequestException", err)
	}
	if err := patch("/connectionType", "VPC_LINK"); !errors.As(err, &bad) {
		t.Errorf("VPC_LINK without a connectionId: %v, want *types.BadRequestException", err)
	}
	if in, _ := f.svc.RestIntegration(apiID, "/orders", "POST"); in.URI != "http://old.example.net/orders" || in.ConnectionType != "INTERNET" {
		t.Errorf("rejected patches changed the integration: %+v", in)
	}
	if u := f.svc.Unexpected(); len(u) != 0 {
		t.Errorf("paths API Gateway itself rejects were recorded as unexpected: %q", u)
	}

	var nf *agtypes.NotFoundException
	_, err := c.GetIntegration(ctx(t), &apigateway.GetIntegrationInput{RestApiId: aws.String("nosuchapi"), ResourceId: aws.String(resID), HttpMethod: aws.String("POST")})
	if !errors.As(err, &nf) {
		t.Errorf("GetIntegration on an unknown API: %v, want *types.NotFoundException", err)
	}
	_, err = c.GetStage(ctx(t), &apigateway.GetStageInput{RestApiId: aws.String(apiID), StageName: aws.String("prod")})
	if !errors.As(err, &nf) {
		t.Errorf("GetStage of a missing stage: %v, want *types.NotFoundException", err)
	}

	// A modelled-by-AWS but not-by-the-stand-in path is the stand-in's gap: it must show.
	if err := patch("/timeoutInMillis", "10000"); !errors.As(err, &bad) {
		t.Errorf("patch of /timeoutInMillis: %v, want a BadRequestException", err)
	}
	if u := f.svc.Unexpected(); len(u) != 1 {
		t.Errorf("Unexpected() = %q, want the unmodelled /timeoutInMillis patch recorded", u)
	}
}

func TestAPIGatewayV1VPCLinkSwitchAndResourcePaging(t *testing.T) {
	f := newFixture(t, edge.Options{})
	apiID := f.svc.AddRestAPI("many")
	for i := range 30 {
		f.svc.AddRestIntegration(apiID, fmt.Sprintf("/svc%02d", i), "ANY", fmt.Sprintf("http://old.example.net/svc%02d", i))
	}
	resID := f.svc.AddRestIntegration(apiID, "/svc29", "ANY", "http://old.example.net/svc29")
	c := f.apigateway()

	first, err := c.GetResources(ctx(t), &apigateway.GetResourcesInput{RestApiId: aws.String(apiID)})
	if err != nil {
		t.Fatalf("GetResources: %v", err)
	}
	if len(first.Items) != 25 || aws.ToString(first.Position) == "" {
		t.Errorf("first page has %d items, position %q; API Gateway's default limit is 25", len(first.Items), aws.ToString(first.Position))
	}

	out, err := c.UpdateIntegration(ctx(t), &apigateway.UpdateIntegrationInput{
		RestApiId: aws.String(apiID), ResourceId: aws.String(resID), HttpMethod: aws.String("ANY"),
		PatchOperations: []agtypes.PatchOperation{
			{Op: agtypes.OpReplace, Path: aws.String("/connectionType"), Value: aws.String("VPC_LINK")},
			{Op: agtypes.OpReplace, Path: aws.String("/connectionId"), Value: aws.String("vl1234")},
			{Op: agtypes.OpReplace, Path: aws.String("/uri"), Value: aws.String("http://new-nlb.internal/svc29")},
		},
	})
	if err != nil {
		t.Fatalf("UpdateIntegration to a VPC link: %v", err)
	}
	if out.ConnectionType != agtypes.ConnectionTypeVpcLink || aws.ToString(out.ConnectionId) != "vl1234" {
		t.Errorf("integration now %s/%s, want VPC_LINK/vl1234", out.ConnectionType, aws.ToString(out.ConnectionId))
	}
	f.assertNoUnexpected(t)
}

func TestAPIGatewayV2IntegrationURIRoundTripAndAutoDeploy(t *testing.T) {
	f := newFixture(t, edge.Options{})
	apiID := f.svc.AddHTTPAPI("public")
	oldARN := "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/old/1/2"
	intID := f.svc.PutHTTPIntegration(apiID, edge.HTTPIntegration{URI: oldARN, ConnectionType: "VPC_LINK", ConnectionID: "vlold1"})
	f.svc.AddHTTPStage(apiID, "$default", true)
	f.svc.AddHTTPStage(apiID, "manual", false)
	c := f.apigatewayv2()

	apis, err := c.GetApis(ctx(t), &apigatewayv2.GetApisInput{})
	if err != nil || len(apis.Items) != 1 || aws.ToString(apis.Items[0].ApiId) != apiID || apis.Items[0].ProtocolType != ag2types.ProtocolTypeHttp {
		t.Fatalf("GetApis = %+v, %v; want the one HTTP API", apis, err)
	}
	list, err := c.GetIntegrations(ctx(t), &apigatewayv2.GetIntegrationsInput{ApiId: aws.String(apiID)})
	if err != nil || len(list.Items) != 1 || aws.ToString(list.Items[0].IntegrationUri) != oldARN {
		t.Fatalf("GetIntegrations = %+v, %v; want the seeded integration", list, err)
	}

	newARN := "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/new/3/4"
	if _, err := c.UpdateIntegration(ctx(t), &apigatewayv2.UpdateIntegrationInput{
		ApiId: aws.String(apiID), IntegrationId: aws.String(intID), IntegrationUri: aws.String(newARN), ConnectionId: aws.String("vlnew1"),
	}); err != nil {
		t.Fatalf("UpdateIntegration: %v", err)
	}
	got, err := c.GetIntegration(ctx(t), &apigatewayv2.GetIntegrationInput{ApiId: aws.String(apiID), IntegrationId: aws.String(intID)})
	if err != nil {
		t.Fatalf("GetIntegration: %v", err)
	}
	if aws.ToString(got.IntegrationUri) != newARN || aws.ToString(got.ConnectionId) != "vlnew1" || got.ConnectionType != ag2types.ConnectionTypeVpcLink {
		t.Errorf("integration after update = %s %s %s", aws.ToString(got.IntegrationUri), aws.ToString(got.ConnectionId), got.ConnectionType)
	}

	// $default auto-deploys; "manual" keeps serving the old listener until deployed.
	if live, _ := f.svc.StageIntegrations(apiID, "$default"); live[intID].URI != newARN {
		t.Errorf("auto-deploy stage serves %+v, want the new listener", live)
	}
	if live, _ := f.svc.StageIntegrations(apiID, "manual"); live[intID].URI != oldARN {
		t.Errorf("manual stage serves %+v before a deployment, want the old listener", live)
	}
	stage, err := c.GetStage(ctx(t), &apigatewayv2.GetStageInput{ApiId: aws.String(apiID), StageName: aws.String("$default")})
	if err != nil || !aws.ToBool(stage.AutoDeploy) {
		t.Fatalf("GetStage($default) = %+v, %v; want AutoDeploy", stage, err)
	}
	_, err = c.CreateDeployment(ctx(t), &apigatewayv2.CreateDeploymentInput{ApiId: aws.String(apiID), StageName: aws.String("$default")})
	var bad *ag2types.BadRequestException
	if !errors.As(err, &bad) {
		t.Errorf("CreateDeployment on an auto-deploy stage: %v, want *types.BadRequestException", err)
	}
	dep, err := c.CreateDeployment(ctx(t), &apigatewayv2.CreateDeploymentInput{ApiId: aws.String(apiID), StageName: aws.String("manual")})
	if err != nil {
		t.Fatalf("CreateDeployment(manual): %v", err)
	}
	stages, err := c.GetStages(ctx(t), &apigatewayv2.GetStagesInput{ApiId: aws.String(apiID)})
	if err != nil || len(stages.Items) != 2 {
		t.Fatalf("GetStages = %+v, %v; want two stages", stages, err)
	}
	for _, s := range stages.Items {
		if aws.ToString(s.StageName) == "manual" && aws.ToString(s.DeploymentId) != aws.ToString(dep.DeploymentId) {
			t.Errorf("manual stage points at %q, want %q", aws.ToString(s.DeploymentId), aws.ToString(dep.DeploymentId))
		}
	}
	if live, _ := f.svc.StageIntegrations(apiID, "manual"); live[intID].URI != newARN {
		t.Errorf("manual stage serves %+v after its deployment, want the new listener", live)
	}
	f.assertNoUnexpected(t)
}

func TestAPIGatewayV2RejectsNonARNForVPCLinkAndUnknownIDs(t *testing.T) {
	f := newFixture(t, edge.Options{})
	apiID := f.svc.AddHTTPAPI("public")
	intID := f.svc.PutHTTPIntegration(apiID, edge.HTTPIntegration{URI: "arn:aws:elasticloadbalancing:us-west-2:123456789012:listener/app/old/1/2",
		ConnectionType: "VPC_LINK", ConnectionID: "vlold1"})
	c := f.apigatewayv2()
	_, err := c.UpdateIntegration(ctx(t), &apigatewayv2.UpdateIntegrationInput{
		ApiId: aws.String(apiID), IntegrationId: aws.String(intID), IntegrationUri: aws.String("new-alb.us-east-1.elb.amazonaws.com"),
	})
	var bad *ag2types.BadRequestException
	if !errors.As(err, &bad) {
		t.Errorf("a DNS name as a VPC_LINK integration URI: %v, want *types.BadRequestException", err)
	}
	_, err = c.GetIntegration(ctx(t), &apigatewayv2.GetIntegrationInput{ApiId: aws.String(apiID), IntegrationId: aws.String("nosuch")})
	var nf *ag2types.NotFoundException
	if !errors.As(err, &nf) || aws.ToString(nf.ResourceType) != "Integration" {
		t.Errorf("GetIntegration of an unknown id: %v, want *types.NotFoundException for an Integration", err)
	}
	f.assertNoUnexpected(t)
}
