package slackfake

// DropConnection closes the live Socket Mode connection at the TCP level,
// without the disconnect message Disconnect sends — a network blip or a
// Slack edge dying. The client must notice and reconnect on its own. It
// reports whether there was a live connection to drop.
func (s *Server) DropConnection() bool {
	s.mu.Lock()
	c := s.live
	s.live = nil
	s.changed()
	s.mu.Unlock()
	if c == nil {
		return false
	}
	c.close() // the read loop in serveWebSocket ends and forgets the connection
	return true
}
