package slackfake

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Identity of the workspace and the bot the fake pretends to be.
const (
	TeamID     = "T0DRBOT00"
	TeamDomain = "drbot-test"
	AppID      = "A0DRBOT00"
	BotID      = "B0DRBOT00"
	BotUserID  = "U0DRBOT00"
	BotName    = "drbot"
)

// Channel is a snapshot of one conversation.
type Channel struct {
	ID        string
	Name      string
	Topic     string
	Purpose   string
	Members   []string // user IDs, in the order they joined
	Pins      []string // message timestamps, in the order they were pinned
	IsPrivate bool
	Creator   string
	Created   time.Time
}

// Metadata is message metadata as chat.postMessage takes it.
type Metadata struct {
	EventType    string         `json:"event_type"`
	EventPayload map[string]any `json:"event_payload"`
}

// Message is a snapshot of one message, ephemeral message or thread reply.
type Message struct {
	Channel        string
	TS             string
	ThreadTS       string // parent ts for replies; the own ts for a parent that has replies
	User           string
	Text           string
	Blocks         json.RawMessage // as posted; nil when none
	Attachments    json.RawMessage
	Metadata       *Metadata
	Files          []File
	Edits          int  // chat.update and replace_original count
	ReplyBroadcast bool // reply also shown in the channel
	UnfurlLinks    *bool
	UnfurlMedia    *bool
	Replies        []Message // filled by Messages for thread parents
}

// File is an uploaded file (files.getUploadURLExternal + upload + completeUploadExternal).
type File struct {
	ID       string
	Filename string
	Title    string
	Length   int // length announced in getUploadURLExternal
	Content  []byte
	Channel  string // set once shared
	ThreadTS string
	// MessageTS is the message that shared the file.
	MessageTS string
}

// View is a modal opened with views.open.
type View struct {
	ID              string
	User            string // user the trigger_id was issued to
	TriggerID       string
	CallbackID      string
	PrivateMetadata string
	Raw             json.RawMessage // the view object as sent
}

type user struct {
	id, name string
	admin    bool
	updated  time.Time
}

type userGroup struct {
	id, handle string
	members    []string
	created    time.Time
}

type channel struct {
	id, name, topic, purpose string
	topicSet, purposeSet     time.Time
	topicBy, purposeBy       string
	members                  []string
	pins                     []string
	private                  bool
	creator                  string
	created                  time.Time
	msgs                     []*message          // top-level, in posting order
	byTS                     map[string]*message // every message incl. replies
}

type message struct {
	channel        string
	ts, threadTS   string
	user           string
	text           string
	blocks         json.RawMessage
	attachments    json.RawMessage
	metadata       *Metadata
	files          []string // file IDs
	edits          int
	lastEditTS     string
	replyBroadcast bool
	unfurlLinks    *bool
	unfurlMedia    *bool
	replies        []*message // for a thread parent
}

func (c *channel) snapshot() Channel {
	return Channel{
		ID: c.id, Name: c.name, Topic: c.topic, Purpose: c.purpose,
		Members: slices.Clone(c.members), Pins: slices.Clone(c.pins),
		IsPrivate: c.private, Creator: c.creator, Created: c.created,
	}
}

func (c *channel) isMember(userID string) bool { return slices.Contains(c.members, userID) }

// removeMessage takes a message (top-level or reply) out of the channel.
func (c *channel) removeMessage(m *message) {
	delete(c.byTS, m.ts)
	if m.threadTS != "" && m.threadTS != m.ts {
		if parent := c.byTS[m.threadTS]; parent != nil {
			parent.replies = slices.DeleteFunc(parent.replies, func(r *message) bool { return r == m })
		}
		if !m.replyBroadcast {
			return
		}
	}
	for _, r := range m.replies {
		delete(c.byTS, r.ts)
	}
	c.msgs = slices.DeleteFunc(c.msgs, func(x *message) bool { return x == m })
	c.pins = slices.DeleteFunc(c.pins, func(ts string) bool { return ts == m.ts })
}

func (s *Server) snapshotMessage(m *message, withReplies bool) Message {
	out := Message{
		Channel: m.channel, TS: m.ts, ThreadTS: m.threadTS, User: m.user, Text: m.text,
		Blocks: cloneRaw(m.blocks), Attachments: cloneRaw(m.attachments), Edits: m.edits,
		ReplyBroadcast: m.replyBroadcast, UnfurlLinks: m.unfurlLinks, UnfurlMedia: m.unfurlMedia,
	}
	if m.metadata != nil {
		md := *m.metadata
		md.EventPayload = cloneAnyMap(md.EventPayload)
		out.Metadata = &md
	}
	for _, id := range m.files {
		if f := s.files[id]; f != nil {
			fc := *f
			fc.Content = slices.Clone(f.Content)
			out.Files = append(out.Files, fc)
		}
	}
	if withReplies {
		for _, r := range m.replies {
			out.Replies = append(out.Replies, s.snapshotMessage(r, false))
		}
	}
	return out
}

// Channel returns a snapshot of the channel with that ID or name ("#name" works too).
func (s *Server) Channel(nameOrID string) (Channel, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.lookupChannel(nameOrID)
	if c == nil {
		return Channel{}, false
	}
	return c.snapshot(), true
}

// Channels returns every channel in creation order.
func (s *Server) Channels() []Channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Channel, 0, len(s.channelOrder))
	for _, c := range s.channelOrder {
		out = append(out, c.snapshot())
	}
	return out
}

// Messages returns the top-level messages of a channel in posting order, each
// with its thread replies. Broadcast replies appear both in the channel and in
// their thread, as in Slack.
func (s *Server) Messages(channelID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.lookupChannel(channelID)
	if c == nil {
		return nil
	}
	out := make([]Message, 0, len(c.msgs))
	for _, m := range c.msgs {
		out = append(out, s.snapshotMessage(m, true))
	}
	return out
}

// Replies returns the replies of a thread (without the parent) in posting order.
func (s *Server) Replies(channelID, threadTS string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.lookupChannel(channelID)
	if c == nil {
		return nil
	}
	parent := c.byTS[threadTS]
	if parent == nil {
		return nil
	}
	var out []Message
	for _, r := range parent.replies {
		out = append(out, s.snapshotMessage(r, false))
	}
	return out
}

// Ephemerals returns the ephemeral messages shown to a user, in order. This
// includes chat.postEphemeral, ephemeral response_url posts and slash command
// ack payloads.
func (s *Server) Ephemerals(userID string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	for _, m := range s.ephemerals[userID] {
		out = append(out, s.snapshotMessage(m, false))
	}
	return out
}

// Files returns every file whose upload was started, in order.
func (s *Server) Files() []File {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]File, 0, len(s.fileOrder))
	for _, id := range s.fileOrder {
		f := *s.files[id]
		f.Content = slices.Clone(f.Content)
		out = append(out, f)
	}
	return out
}

// Views returns the modals opened with views.open, in order.
func (s *Server) Views() []View {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]View, 0, len(s.views))
	for _, v := range s.views {
		vc := *v
		vc.Raw = cloneRaw(v.Raw)
		out = append(out, vc)
	}
	return out
}

// AddUser adds a workspace member. Admins have is_admin set in users.info.
func (s *Server) AddUser(id, name string, admin bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[id]; !ok {
		s.userOrder = append(s.userOrder, id)
	}
	s.users[id] = &user{id: id, name: name, admin: admin, updated: s.now()}
	s.changed()
}

// AddUserGroup adds a user group (subteam) with its members.
func (s *Server) AddUserGroup(id, handle string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range members {
		if s.users[m] == nil {
			s.t.Errorf("slackfake: AddUserGroup(%q): member %q was not added with AddUser", id, m)
		}
	}
	if _, ok := s.groups[id]; !ok {
		s.groupOrder = append(s.groupOrder, id)
	}
	s.groups[id] = &userGroup{id: id, handle: handle, members: slices.Clone(members), created: s.now()}
	s.changed()
}

// AddChannel adds an existing public channel, such as the one where commands
// are typed. The bot and every user added so far are members.
func (s *Server) AddChannel(id, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.channels[id] != nil {
		s.t.Errorf("slackfake: AddChannel(%q): channel already exists", id)
		return
	}
	if msg := validateChannelName(name); msg != "" || s.lookupChannel(name) != nil {
		s.t.Errorf("slackfake: AddChannel(%q, %q): bad or duplicate name (%s)", id, name, msg)
		return
	}
	members := []string{BotUserID}
	members = append(members, s.userOrder...)
	s.addChannel(&channel{id: id, name: name, members: members, creator: BotUserID, created: s.now()})
}

func (s *Server) addChannel(c *channel) {
	c.byTS = map[string]*message{}
	s.channels[c.id] = c
	s.channelOrder = append(s.channelOrder, c)
	s.changed()
}

// lookupChannel finds a channel by ID, name or #name. Callers hold s.mu.
func (s *Server) lookupChannel(nameOrID string) *channel {
	if c := s.channels[nameOrID]; c != nil {
		return c
	}
	name := nameOrID
	if len(name) > 0 && name[0] == '#' {
		name = name[1:]
	}
	for _, c := range s.channelOrder {
		if c.name == name {
			return c
		}
	}
	return nil
}

// nextTS returns a message timestamp that is unique and increasing, derived
// from the clock like Slack's "1764100000.000100". Callers hold s.mu.
func (s *Server) nextTS() string {
	us := s.now().UnixMicro()
	if us <= s.lastTS {
		us = s.lastTS + 1
	}
	s.lastTS = us
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

func cloneRaw(r json.RawMessage) json.RawMessage {
	if r == nil {
		return nil
	}
	return slices.Clone(r)
}

func cloneAnyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	// A JSON round trip gives a deep copy of what came from JSON anyway.
	b, err := json.Marshal(m)
	if err != nil {
		return m
	}
	var out map[string]any
	if json.Unmarshal(b, &out) != nil {
		return m
	}
	return out
}
