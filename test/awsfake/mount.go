package awsfake

import "github.com/drbot/drbot/test/awsfake/edge"

// Signing names of the edge services mounted from package edge.
const (
	ServiceRoute53    = "route53"
	ServiceCloudFront = "cloudfront"
	ServiceAPIGateway = "apigateway" // API Gateway v1 and v2 share it
)

// mountEdge mounts Route 53 (REST-XML), CloudFront (REST-XML) and API
// Gateway v1/v2 (REST-JSON) from package edge, sharing the server's clock.
// Their own unexpected requests show up in Unexpected().
func (s *Server) mountEdge() {
	eo := s.opts.Edge
	if eo.Clock == nil {
		eo.Clock = s.opts.Clock
	}
	s.edge = edge.New(eo)
	s.Mount(ServiceRoute53, s.edge.Route53(), ProtocolRESTXML)
	s.Mount(ServiceCloudFront, s.edge.CloudFront(), ProtocolRESTXML)
	s.Mount(ServiceAPIGateway, s.edge.APIGateway(), ProtocolRESTJSON)
	s.AddUnexpectedSource(s.edge.Unexpected)
}

// Edge is the state behind the edge services, for seeding hosted zones,
// distributions and APIs and for inspecting them after a cutover.
func (s *Server) Edge() *edge.Services { return s.edge }
