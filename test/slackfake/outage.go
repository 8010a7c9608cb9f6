package slackfake

// SetDown models Slack being unreachable from drbot (an outage at Slack's
// edge, or the network in between) and its return.
//
// While down, every Web API method answers HTTP 500 or 503 with an HTML
// error page, as Slack's load balancers do: slack-go reports a
// slack.StatusCodeError, which drbot retries. That includes
// apps.connections.open, so no Socket Mode ticket is issued and the live
// WebSocket connections are dropped: slack-go's socketmode client keeps
// reconnecting with backoff until SetDown(false). The calls are recorded
// in Calls with Injected set. Nothing a down Slack refuses
// has any effect on the fake's state.
//
// SetDown replaces any failure plan set with InjectFailures, and
// SetDown(false) clears it.
func (s *Server) SetDown(down bool) {
	if !down {
		s.InjectFailures(FailurePlan{})
		return
	}
	s.InjectFailures(FailurePlan{Rate: 1, Kinds: []FailureKind{ServerError}})
	s.mu.Lock()
	conns := append([]*wsConn(nil), s.conns...)
	s.live = nil
	s.changed()
	s.mu.Unlock()
	for _, c := range conns {
		c.close() // the reader in serveWebSocket drops it from s.conns
	}
}

// Down reports whether SetDown(true) is in force.
func (s *Server) Down() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.failures
	return f != nil && f.plan.Rate >= 1 && len(f.plan.Methods) == 0 && len(f.plan.Kinds) == 1 && f.plan.Kinds[0] == ServerError
}
