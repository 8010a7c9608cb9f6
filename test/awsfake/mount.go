package awsfake

// mountEdge mounts the edge services (Route 53, CloudFront, API Gateway).
// Until package edge is integrated, nothing is mounted; callers can Mount
// their own handlers.
func (s *Server) mountEdge() {}
