package slackfake

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// Slack lets an app use a response_url 5 times within 30 minutes.
const (
	responseURLUses = 5
	responseURLTTL  = 30 * time.Minute
)

// responseTarget says where replies to a command or click go.
type responseTarget struct {
	kind      string // "command" or "action"
	user      string
	channel   string
	message   *message // the clicked message (actions)
	ephemeral bool     // the clicked message is one of user's ephemerals
}

type responseURL struct {
	target  *responseTarget
	created time.Time
	uses    int
}

// ResponseURLPost is one POST to a response_url.
type ResponseURLPost struct {
	URL       string
	Kind      string // "command" or "action"
	User      string
	Channel   string
	MessageTS string          // the clicked message, for actions
	Body      json.RawMessage // as posted
	Text      string
	Blocks    json.RawMessage
	// ResponseType is "in_channel" or "ephemeral" ("" means ephemeral).
	ResponseType    string
	ReplaceOriginal bool
	DeleteOriginal  bool
	ThreadTS        string
	Status          int    // HTTP status answered
	Error           string // e.g. "used_url", "expired_url", "invalid_blocks"; "" on success
}

// ResponseURLPosts returns every POST to a response_url, in order.
func (s *Server) ResponseURLPosts() []ResponseURLPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ResponseURLPost, len(s.responsePost))
	for i, p := range s.responsePost {
		p.Body, p.Blocks = cloneRaw(p.Body), cloneRaw(p.Blocks)
		out[i] = p
	}
	return out
}

// newResponseURL issues a response_url on the fake's host, shaped like
// https://hooks.slack.com/commands/T…/123/abc. Callers hold s.mu.
func (s *Server) newResponseURL(t *responseTarget) string {
	s.seq++
	seg := "commands"
	if t.kind == "action" {
		seg = "actions"
	}
	path := fmt.Sprintf("/%s/%s/%d/%s", seg, TeamID, 1000000+s.seq, randomHex(12))
	s.responseURLs[path] = &responseURL{target: t, created: s.now()}
	return s.srv.URL + path
}

type responseBody struct {
	Text            string          `json:"text"`
	Blocks          json.RawMessage `json:"blocks"`
	Attachments     json.RawMessage `json:"attachments"`
	ResponseType    string          `json:"response_type"`
	ReplaceOriginal bool            `json:"replace_original"`
	DeleteOriginal  bool            `json:"delete_original"`
	ThreadTS        string          `json:"thread_ts"`
}

func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ru := s.responseURLs[r.URL.Path]
	s.mu.Unlock()
	if ru == nil {
		s.unexpectedRequest(w, r, http.StatusNotFound, "no such response_url")
		return
	}
	if r.Method != http.MethodPost {
		s.unexpectedRequest(w, r, http.StatusMethodNotAllowed, "response_url takes POST")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		s.unexpectedRequest(w, r, http.StatusBadRequest, "reading body: "+err.Error())
		return
	}
	var rb responseBody
	if err := json.Unmarshal(body, &rb); err != nil {
		s.unexpectedRequest(w, r, http.StatusBadRequest, "response_url body is not JSON: "+err.Error())
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	t := ru.target
	post := ResponseURLPost{
		URL: s.srv.URL + r.URL.Path, Kind: t.kind, User: t.user, Channel: t.channel, Body: cloneRaw(body),
		Text: rb.Text, Blocks: normBlocks(rb.Blocks), ResponseType: rb.ResponseType,
		ReplaceOriginal: rb.ReplaceOriginal, DeleteOriginal: rb.DeleteOriginal, ThreadTS: rb.ThreadTS,
		Status: http.StatusOK,
	}
	if t.message != nil {
		post.MessageTS = t.message.ts
	}
	switch {
	case ru.uses >= responseURLUses:
		post.Status, post.Error = http.StatusNotFound, "used_url"
	case s.now().Sub(ru.created) > responseURLTTL:
		post.Status, post.Error = http.StatusNotFound, "expired_url"
	default:
		ru.uses++
		if code, err := s.respond(t, body); err != nil {
			post.Status, post.Error = http.StatusBadRequest, code
		}
	}
	s.responsePost = append(s.responsePost, post)
	s.changed()
	if post.Error != "" {
		writeJSON(w, post.Status, map[string]any{"ok": false, "error": post.Error})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true})
}

func normBlocks(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	return compactJSON(b)
}

// respond applies a response_url post or a slash command's ack payload:
// delete or replace the clicked message, or show a new message in the
// channel (response_type in_channel) or to the user only. It returns a Slack
// error code with the error. Callers hold s.mu.
func (s *Server) respond(t *responseTarget, body []byte) (string, error) {
	var rb responseBody
	if err := json.Unmarshal(body, &rb); err != nil {
		return "invalid_payload", fmt.Errorf("decoding response: %w", err)
	}
	blocks := normBlocks(rb.Blocks)
	if blocks != nil {
		if msgs, ok := validateBlocks(blocks, 50); !ok {
			return "invalid_blocks", fmt.Errorf("invalid blocks: %v", msgs)
		}
		if string(blocks) == "[]" {
			blocks = nil
		}
	}
	attachments := normBlocks(rb.Attachments)
	if string(attachments) == "[]" {
		attachments = nil
	}
	c := s.channels[t.channel]
	orig := t.message
	if orig != nil && !t.ephemeral && c.byTS[orig.ts] != orig {
		orig = nil // deleted meanwhile
	}
	switch {
	case rb.DeleteOriginal && orig != nil:
		if t.ephemeral {
			s.ephemerals[t.user] = slices.DeleteFunc(s.ephemerals[t.user], func(m *message) bool { return m == orig })
		} else {
			c.removeMessage(orig)
		}
		return "", nil
	case rb.DeleteOriginal:
		return "", nil // nothing to delete
	}
	if rb.Text == "" && blocks == nil && attachments == nil {
		return "no_text", fmt.Errorf("response has no text, blocks or attachments")
	}
	if rb.ReplaceOriginal && orig != nil {
		orig.text, orig.blocks, orig.attachments = rb.Text, blocks, attachments
		orig.edits++
		orig.lastEditTS = s.nextTS()
		return "", nil
	}
	m := &message{user: BotUserID, text: rb.Text, blocks: blocks, attachments: attachments}
	if rb.ResponseType == "in_channel" {
		s.postInChannel(c, m, rb.ThreadTS, false)
		return "", nil
	}
	m.channel, m.ts, m.threadTS = c.id, s.nextTS(), rb.ThreadTS
	s.ephemerals[t.user] = append(s.ephemerals[t.user], m)
	return "", nil
}
