package slackfake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Envelope is a Socket Mode message as Slack sends it.
type Envelope struct {
	EnvelopeID             string          `json:"envelope_id"`
	Type                   string          `json:"type"` // "slash_commands" or "interactive"
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           int             `json:"retry_attempt"`
	RetryReason            string          `json:"retry_reason"`
	Payload                json.RawMessage `json:"payload"`

	redeliveryOf string
}

// EnvelopeOpt changes an envelope before it is sent.
type EnvelopeOpt func(*Envelope)

// Redelivery makes the envelope a redelivery of an earlier one: same envelope
// ID, type and payload (the other arguments of SlashCommand/Click/SubmitView
// are then ignored), with retry_attempt and retry_reason set, as Slack does
// when an ack is late ("timeout") or the connection dropped.
func Redelivery(of string, attempt int, reason string) EnvelopeOpt {
	return func(e *Envelope) {
		e.redeliveryOf = of
		e.RetryAttempt = attempt
		e.RetryReason = reason
	}
}

// Ack is an acknowledgement read from the Socket Mode connection.
type Ack struct {
	EnvelopeID   string
	Type         string          // type of the acknowledged envelope
	RetryAttempt int             // retry_attempt of the acknowledged delivery
	Payload      json.RawMessage // nil when the ack had none
	// Latency runs from the envelope write to the ack read (real time). Slack
	// shows the user an error when it exceeds 3 s.
	Latency time.Duration
}

type delivery struct {
	env    Envelope
	target *responseTarget // who sees an ack payload (slash commands)
	sentAt time.Time
	acked  bool
	failed bool
}

type wsConn struct {
	conn      *websocket.Conn
	wmu       sync.Mutex // gorilla allows one writer at a time
	done      chan struct{}
	closeOnce sync.Once
}

func (c *wsConn) writeJSON(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	return c.conn.WriteJSON(v)
}

func (c *wsConn) ping() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.WriteControl(websocket.PingMessage, []byte("slackfake"), time.Now().Add(5*time.Second))
}

func (c *wsConn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		_ = c.conn.Close()
	})
}

func (s *Server) serveWebSocket(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		http.Error(w, "slackfake: closing", http.StatusServiceUnavailable)
		return
	}
	ok := s.tickets[ticket]
	delete(s.tickets, ticket)
	s.mu.Unlock()
	if !ok {
		s.unexpectedRequest(w, r, http.StatusUnauthorized, "WebSocket dial without a ticket from apps.connections.open (or a reused one)")
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.mu.Lock()
		s.unexpectedf("upgrading /ws: %v", err)
		s.mu.Unlock()
		return
	}
	c := &wsConn{conn: conn, done: make(chan struct{})}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.close()
		return
	}
	s.connections++
	n := s.connections
	s.conns = append(s.conns, c)
	s.wg.Add(2)
	s.mu.Unlock()

	go s.pingLoop(c)
	defer s.wg.Done()
	defer s.dropConn(c)

	hello := map[string]any{
		"type":            "hello",
		"num_connections": 1,
		"debug_info":      map[string]any{"host": "slackfake", "build_number": 1, "approximate_connection_time": 18060},
		"connection_info": map[string]any{"app_id": AppID},
	}
	if err := c.writeJSON(hello); err != nil {
		s.t.Logf("slackfake: writing hello on connection %d: %v", n, err)
		return
	}
	s.mu.Lock()
	s.live = c
	s.changed()
	s.mu.Unlock()

	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		s.handleAck(data)
	}
}

func (s *Server) pingLoop(c *wsConn) {
	defer s.wg.Done()
	t := time.NewTicker(s.pingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			if c.ping() != nil {
				c.close()
				return
			}
		}
	}
}

func (s *Server) dropConn(c *wsConn) {
	c.close()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = slices.DeleteFunc(s.conns, func(x *wsConn) bool { return x == c })
	if s.live == c {
		s.live = nil
	}
	s.changed()
}

func (s *Server) handleAck(data []byte) {
	var ack struct {
		EnvelopeID string          `json:"envelope_id"`
		Payload    json.RawMessage `json:"payload"`
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := json.Unmarshal(data, &ack); err != nil || ack.EnvelopeID == "" {
		s.unexpectedf("Socket Mode message that is not an ack: %.200s", data)
		return
	}
	// An ack answers the oldest unacknowledged delivery of its envelope.
	i := slices.IndexFunc(s.deliveries, func(d *delivery) bool {
		return d.env.EnvelopeID == ack.EnvelopeID && !d.acked && !d.failed
	})
	if i < 0 {
		s.unexpectedf("ack for envelope %q, which was not delivered or is already acknowledged", ack.EnvelopeID)
		return
	}
	d := s.deliveries[i]
	d.acked = true
	if string(ack.Payload) == "null" {
		ack.Payload = nil
	}
	s.acks = append(s.acks, Ack{
		EnvelopeID: ack.EnvelopeID, Type: d.env.Type, RetryAttempt: d.env.RetryAttempt,
		Payload: cloneRaw(ack.Payload), Latency: now.Sub(d.sentAt),
	})
	// A slash command's ack payload is Slack's immediate reply to the user;
	// one without text or blocks shows nothing.
	if d.env.Type == "slash_commands" && len(ack.Payload) > 0 && d.target != nil {
		if code, err := s.respond(d.target, ack.Payload); err != nil && code != "no_text" {
			s.unexpectedf("ack payload for envelope %q: %v", ack.EnvelopeID, err)
		}
	}
	s.changed()
}

// Acks returns every ack read so far, in order.
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Ack, len(s.acks))
	for i, a := range s.acks {
		a.Payload = cloneRaw(a.Payload)
		out[i] = a
	}
	return out
}

// WaitAck waits for the ack of the latest delivery of an envelope.
func (s *Server) WaitAck(ctx context.Context, envelopeID string) (Ack, error) {
	for {
		s.mu.Lock()
		var last *delivery
		n := 0 // index among the written deliveries of this envelope
		for _, d := range s.deliveries {
			if d.env.EnvelopeID == envelopeID && !d.failed {
				last = d
				n++
			}
		}
		if last == nil {
			s.mu.Unlock()
			return Ack{}, fmt.Errorf("waiting for ack of %q: no such envelope was delivered", envelopeID)
		}
		if last.acked {
			// Acks of one envelope are in delivery order, so the n-th ack is the latest delivery's.
			k := 0
			for _, a := range s.acks {
				if a.EnvelopeID == envelopeID {
					if k++; k == n {
						s.mu.Unlock()
						a.Payload = cloneRaw(a.Payload)
						return a, nil
					}
				}
			}
		}
		ch := s.notify
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return Ack{}, fmt.Errorf("waiting for ack of %q: %w", envelopeID, ctx.Err())
		}
	}
}

// Connections counts the Socket Mode connections opened so far.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.connections
}

// Disconnect asks the live client to reconnect, as Slack does before
// rotating a connection. No envelope goes to the old connection afterwards.
func (s *Server) Disconnect(reason string) {
	if reason == "" {
		reason = "refresh_requested"
	}
	s.mu.Lock()
	c := s.live
	s.live = nil
	s.changed()
	s.mu.Unlock()
	if c == nil {
		s.t.Errorf("slackfake: Disconnect(%q) with no live Socket Mode connection", reason)
		return
	}
	msg := map[string]any{"type": "disconnect", "reason": reason, "debug_info": map[string]any{"host": "slackfake"}}
	if err := c.writeJSON(msg); err != nil {
		s.t.Logf("slackfake: writing disconnect: %v", err)
		c.close()
	}
}

// waitLive waits (at most 5 s) for a live Socket Mode connection.
func (s *Server) waitLive(ctx context.Context) (*wsConn, error) {
	timer := time.NewTimer(5 * time.Second)
	defer timer.Stop()
	for {
		s.mu.Lock()
		c, ch, closed := s.live, s.notify, s.closed
		s.mu.Unlock()
		if c != nil {
			return c, nil
		}
		if closed {
			return nil, errors.New("slackfake is closed")
		}
		select {
		case <-ch:
		case <-timer.C:
			return nil, errors.New("no Socket Mode connection within 5s (is the socketmode client running?)")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// deliver sends an envelope built by build (under s.mu), or a redelivery.
func (s *Server) deliver(ctx context.Context, what string, opts []EnvelopeOpt, build func() (Envelope, *responseTarget, error)) (string, error) {
	var probe Envelope
	for _, o := range opts {
		o(&probe)
	}
	c, err := s.waitLive(ctx)
	if err != nil {
		return "", fmt.Errorf("sending %s: %w", what, err)
	}
	s.mu.Lock()
	d := &delivery{}
	if probe.redeliveryOf != "" {
		i := slices.IndexFunc(s.deliveries, func(x *delivery) bool { return x.env.EnvelopeID == probe.redeliveryOf })
		if i < 0 {
			s.mu.Unlock()
			return "", fmt.Errorf("sending %s: redelivery of unknown envelope %q", what, probe.redeliveryOf)
		}
		orig := s.deliveries[i]
		d.env, d.target = orig.env, orig.target
		d.env.RetryAttempt, d.env.RetryReason = probe.RetryAttempt, probe.RetryReason
	} else {
		env, target, err := build()
		if err != nil {
			s.mu.Unlock()
			return "", fmt.Errorf("sending %s: %w", what, err)
		}
		env.EnvelopeID = newEnvelopeID()
		for _, o := range opts {
			o(&env)
		}
		d.env, d.target = env, target
	}
	d.env.redeliveryOf = ""
	d.sentAt = time.Now()
	s.deliveries = append(s.deliveries, d)
	env := d.env
	s.mu.Unlock()

	if err := c.writeJSON(env); err != nil {
		s.mu.Lock()
		d.failed = true
		s.mu.Unlock()
		return "", fmt.Errorf("sending %s: %w", what, err)
	}
	return env.EnvelopeID, nil
}

func userJSONShort(u *user) map[string]any {
	return map[string]any{"id": u.id, "username": u.name, "name": u.name, "team_id": TeamID}
}

func teamJSON() map[string]any { return map[string]any{"id": TeamID, "domain": TeamDomain} }

// verificationToken is the deprecated token Slack still puts in payloads.
const verificationToken = "fake-verification-token"

// SlashCommand sends a slash_commands envelope over the live Socket Mode
// connection, as if user typed "command text" in the channel. It waits only
// for the write, not for the ack (see WaitAck).
func (s *Server) SlashCommand(ctx context.Context, userID, channelID, command, text string, opt ...EnvelopeOpt) (string, error) {
	return s.deliver(ctx, "slash command "+command, opt, func() (Envelope, *responseTarget, error) {
		u, c := s.users[userID], s.lookupChannel(channelID)
		switch {
		case u == nil:
			return Envelope{}, nil, fmt.Errorf("unknown user %q (use AddUser)", userID)
		case c == nil:
			return Envelope{}, nil, fmt.Errorf("unknown channel %q (use AddChannel)", channelID)
		case !strings.HasPrefix(command, "/"):
			return Envelope{}, nil, fmt.Errorf("command %q does not start with /", command)
		}
		target := &responseTarget{kind: "command", user: u.id, channel: c.id}
		payload := map[string]any{
			"token": verificationToken, "team_id": TeamID, "team_domain": TeamDomain,
			"channel_id": c.id, "channel_name": c.name, "user_id": u.id, "user_name": u.name,
			"command": command, "text": text, "api_app_id": AppID,
			"is_enterprise_install": "false", // a string in real slash command payloads
			"response_url":          s.newResponseURL(target),
			"trigger_id":            s.newTrigger(u.id),
		}
		b, err := json.Marshal(payload)
		return Envelope{Type: "slash_commands", AcceptsResponsePayload: true, Payload: b}, target, err
	})
}

// Click sends a block_actions envelope for a click on the element with
// actionID in the message messageTS (a channel message, a thread reply or one
// of the user's ephemeral messages). The element must exist in the message's
// blocks. For buttons, value must be "" or the button's value; for selects
// it is the chosen option's value.
func (s *Server) Click(ctx context.Context, userID, channelID, messageTS, actionID, value string, opt ...EnvelopeOpt) (string, error) {
	return s.deliver(ctx, "click on "+actionID, opt, func() (Envelope, *responseTarget, error) {
		u, c := s.users[userID], s.lookupChannel(channelID)
		if u == nil {
			return Envelope{}, nil, fmt.Errorf("unknown user %q (use AddUser)", userID)
		}
		if c == nil {
			return Envelope{}, nil, fmt.Errorf("unknown channel %q", channelID)
		}
		m, ephemeral := c.byTS[messageTS], false
		if m == nil {
			for _, e := range s.ephemerals[u.id] {
				if e.channel == c.id && e.ts == messageTS {
					m, ephemeral = e, true
				}
			}
		}
		if m == nil {
			return Envelope{}, nil, fmt.Errorf("no message %s in %s (nor an ephemeral one for %s)", messageTS, c.id, u.id)
		}
		actionTS := s.nextTS()
		action, err := blockAction(m.blocks, actionID, value, actionTS)
		if err != nil {
			return Envelope{}, nil, fmt.Errorf("message %s: %w", messageTS, err)
		}
		target := &responseTarget{kind: "action", user: u.id, channel: c.id, message: m, ephemeral: ephemeral}
		container := map[string]any{"type": "message", "message_ts": m.ts, "channel_id": c.id, "is_ephemeral": ephemeral}
		if m.threadTS != "" && m.threadTS != m.ts {
			container["thread_ts"] = m.threadTS
		}
		payload := map[string]any{
			"type": "block_actions", "user": userJSONShort(u), "api_app_id": AppID, "token": verificationToken,
			"container": container, "trigger_id": s.newTrigger(u.id), "team": teamJSON(),
			"enterprise": nil, "is_enterprise_install": false,
			"channel":      map[string]any{"id": c.id, "name": c.name},
			"state":        map[string]any{"values": map[string]any{}},
			"response_url": s.newResponseURL(target),
			"actions":      []any{action},
		}
		if !ephemeral {
			// Slack omits the message of an ephemeral one.
			payload["message"] = s.messageJSON(c, m, false)
		}
		b, err := json.Marshal(payload)
		return Envelope{Type: "interactive", Payload: b}, target, err
	})
}

// blockAction finds the element with actionID in blocks and renders the
// action Slack reports for a click on it.
func blockAction(blocks json.RawMessage, actionID, value, actionTS string) (map[string]any, error) {
	var list []map[string]any
	if len(blocks) > 0 {
		if err := json.Unmarshal(blocks, &list); err != nil {
			return nil, fmt.Errorf("decoding blocks: %w", err)
		}
	}
	for i, b := range list {
		els, _ := b["elements"].([]any)
		if acc, ok := b["accessory"]; ok {
			els = append(els, acc)
		}
		for _, e := range els {
			el, _ := e.(map[string]any)
			if el == nil || el["action_id"] != actionID {
				continue
			}
			blockID := str(b["block_id"])
			if blockID == "" {
				blockID = fmt.Sprintf("blk%d", i) // Slack fills in a block_id when posting
			}
			typ := str(el["type"])
			a := map[string]any{"action_id": actionID, "block_id": blockID, "type": typ, "action_ts": actionTS}
			switch typ {
			case "button":
				if bv := str(el["value"]); value == "" {
					value = bv
				} else if value != bv {
					return nil, fmt.Errorf("button %q has value %q, not %q", actionID, bv, value)
				}
				a["text"] = el["text"]
				a["value"] = value
				if st, ok := el["style"]; ok {
					a["style"] = st
				}
			case "static_select", "radio_buttons", "overflow":
				opt := findOption(el, value)
				if opt == nil {
					return nil, fmt.Errorf("%s %q has no option with value %q", typ, actionID, value)
				}
				a["selected_option"] = opt
			default:
				a["value"] = value
			}
			return a, nil
		}
	}
	return nil, fmt.Errorf("no element with action_id %q in its blocks", actionID)
}

func findOption(el map[string]any, value string) map[string]any {
	opts, _ := el["options"].([]any)
	groups, _ := el["option_groups"].([]any)
	for _, g := range groups {
		gm, _ := g.(map[string]any)
		more, _ := gm["options"].([]any)
		opts = append(opts, more...)
	}
	for _, o := range opts {
		om, _ := o.(map[string]any)
		if om != nil && om["value"] == value {
			return map[string]any{"text": om["text"], "value": value}
		}
	}
	return nil
}

// SubmitView sends a view_submission envelope for the latest modal with
// callbackID that the bot opened for user (views.open). values maps
// block_id → action_id → value; each pair must exist in the modal's blocks.
// privateMetadata, when not empty, replaces the view's private_metadata.
func (s *Server) SubmitView(ctx context.Context, userID, callbackID, privateMetadata string, values map[string]map[string]string, opt ...EnvelopeOpt) (string, error) {
	return s.deliver(ctx, "view submission "+callbackID, opt, func() (Envelope, *responseTarget, error) {
		u := s.users[userID]
		if u == nil {
			return Envelope{}, nil, fmt.Errorf("unknown user %q (use AddUser)", userID)
		}
		var v *View
		for _, x := range s.views {
			if x.User == u.id && x.CallbackID == callbackID {
				v = x
			}
		}
		if v == nil {
			return Envelope{}, nil, fmt.Errorf("no modal with callback_id %q was opened for %s", callbackID, u.id)
		}
		var view map[string]any
		if err := json.Unmarshal(v.Raw, &view); err != nil {
			return Envelope{}, nil, fmt.Errorf("decoding view %s: %w", v.ID, err)
		}
		state, err := viewState(view, values)
		if err != nil {
			return Envelope{}, nil, fmt.Errorf("view %s: %w", v.ID, err)
		}
		view["state"] = map[string]any{"values": state}
		if privateMetadata != "" {
			view["private_metadata"] = privateMetadata
		}
		payload := map[string]any{
			"type": "view_submission", "team": teamJSON(), "user": userJSONShort(u), "api_app_id": AppID,
			"token": verificationToken, "trigger_id": s.newTrigger(u.id), "view": view,
			"response_urls": []any{}, "is_enterprise_install": false, "enterprise": nil,
		}
		b, err := json.Marshal(payload)
		return Envelope{Type: "interactive", AcceptsResponsePayload: true, Payload: b}, nil, err
	})
}

// viewState renders submitted values as view.state.values, shaped by each
// input element's type.
func viewState(view map[string]any, values map[string]map[string]string) (map[string]any, error) {
	blocks, _ := view["blocks"].([]any)
	state := map[string]any{}
	for blockID, actions := range values {
		var block map[string]any
		for _, b := range blocks {
			if bm, _ := b.(map[string]any); bm != nil && bm["block_id"] == blockID {
				block = bm
			}
		}
		if block == nil {
			return nil, fmt.Errorf("no block %q", blockID)
		}
		els, _ := block["elements"].([]any)
		if el, ok := block["element"]; ok {
			els = append(els, el)
		}
		if acc, ok := block["accessory"]; ok {
			els = append(els, acc)
		}
		out := map[string]any{}
		for actionID, value := range actions {
			var el map[string]any
			for _, e := range els {
				if em, _ := e.(map[string]any); em != nil && em["action_id"] == actionID {
					el = em
				}
			}
			if el == nil {
				return nil, fmt.Errorf("block %q has no element %q", blockID, actionID)
			}
			typ := str(el["type"])
			a := map[string]any{"type": typ}
			switch typ {
			case "static_select", "radio_buttons":
				opt := findOption(el, value)
				if opt == nil {
					return nil, fmt.Errorf("%s %q has no option %q", typ, actionID, value)
				}
				a["selected_option"] = opt
			case "multi_static_select", "checkboxes":
				var sel []any
				for _, v := range strings.Split(value, ",") {
					opt := findOption(el, v)
					if opt == nil {
						return nil, fmt.Errorf("%s %q has no option %q", typ, actionID, v)
					}
					sel = append(sel, opt)
				}
				a["selected_options"] = sel
			case "datepicker":
				a["selected_date"] = value
			case "timepicker":
				a["selected_time"] = value
			case "users_select":
				a["selected_user"] = value
			case "conversations_select":
				a["selected_conversation"] = value
			case "channels_select":
				a["selected_channel"] = value
			default:
				a["value"] = value
			}
			out[actionID] = a
		}
		state[blockID] = out
	}
	return state, nil
}
