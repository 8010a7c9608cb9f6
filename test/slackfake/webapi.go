package slackfake

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

type tokenKind int

const (
	botToken tokenKind = iota
	appToken
)

type handlerFunc func(s *Server, r *apiRequest) (map[string]any, *apiError)

type method struct {
	token  tokenKind
	handle handlerFunc
}

// methods is the Web API surface the fake answers. Every other method name is
// unknown_method and recorded as unexpected.
var methods map[string]method

func init() {
	methods = map[string]method{
		"auth.test":                    {botToken, (*Server).authTest},
		"apps.connections.open":        {appToken, (*Server).appsConnectionsOpen},
		"conversations.create":         {botToken, (*Server).conversationsCreate},
		"conversations.info":           {botToken, (*Server).conversationsInfo},
		"conversations.list":           {botToken, (*Server).conversationsList},
		"conversations.members":        {botToken, (*Server).conversationsMembers},
		"conversations.invite":         {botToken, (*Server).conversationsInvite},
		"conversations.setTopic":       {botToken, (*Server).conversationsSetTopic},
		"conversations.setPurpose":     {botToken, (*Server).conversationsSetPurpose},
		"conversations.history":        {botToken, (*Server).conversationsHistory},
		"conversations.replies":        {botToken, (*Server).conversationsReplies},
		"chat.postMessage":             {botToken, (*Server).chatPostMessage},
		"chat.update":                  {botToken, (*Server).chatUpdate},
		"chat.delete":                  {botToken, (*Server).chatDelete},
		"chat.postEphemeral":           {botToken, (*Server).chatPostEphemeral},
		"chat.getPermalink":            {botToken, (*Server).chatGetPermalink},
		"pins.add":                     {botToken, (*Server).pinsAdd},
		"pins.remove":                  {botToken, (*Server).pinsRemove},
		"views.open":                   {botToken, (*Server).viewsOpen},
		"users.info":                   {botToken, (*Server).usersInfo},
		"users.list":                   {botToken, (*Server).usersList},
		"usergroups.list":              {botToken, (*Server).usergroupsList},
		"usergroups.users.list":        {botToken, (*Server).usergroupsUsersList},
		"files.getUploadURLExternal":   {botToken, (*Server).filesGetUploadURLExternal},
		"files.completeUploadExternal": {botToken, (*Server).filesCompleteUploadExternal},
	}
}

// apiError is a Slack {"ok":false,"error":code} answer, with optional extra fields.
type apiError struct {
	code  string
	extra map[string]any
}

func errf(code string) *apiError { return &apiError{code: code} }

// errMessages is an error with response_metadata.messages, as Slack sends for
// invalid_blocks and invalid_arguments.
func errMessages(code string, msgs []string) *apiError {
	return &apiError{code: code, extra: map[string]any{
		"errors":            msgs,
		"response_metadata": map[string]any{"messages": msgs},
	}}
}

// apiRequest holds the arguments of one call, form-encoded or JSON.
type apiRequest struct {
	form url.Values
	json map[string]json.RawMessage
}

func (r *apiRequest) has(key string) bool {
	if _, ok := r.form[key]; ok {
		return true
	}
	_, ok := r.json[key]
	return ok
}

// get returns a form value, or a JSON field: strings unquoted, other values as JSON text.
func (r *apiRequest) get(key string) string {
	if v, ok := r.form[key]; ok && len(v) > 0 {
		return v[0]
	}
	raw, ok := r.json[key]
	if !ok {
		return ""
	}
	var str string
	if json.Unmarshal(raw, &str) == nil {
		return str
	}
	return string(raw)
}

func (r *apiRequest) bool(key string) bool {
	switch strings.ToLower(r.get(key)) {
	case "1", "true":
		return true
	}
	return false
}

func (r *apiRequest) optBool(key string) *bool {
	if !r.has(key) {
		return nil
	}
	b := r.bool(key)
	return &b
}

func (s *Server) serveWebAPI(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/api/")
	m, ok := methods[name]
	if !ok {
		s.mu.Lock()
		s.unexpectedf("%s %s: unknown Web API method %q", r.Method, r.URL.Path, name)
		s.calls = append(s.calls, Call{Method: name, Status: http.StatusNotFound, Error: "unknown_method", Time: s.now()})
		s.mu.Unlock()
		writeJSON(w, http.StatusNotFound, map[string]any{"ok": false, "error": "unknown_method", "req_method": name})
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		s.unexpectedRequest(w, r, http.StatusMethodNotAllowed, "method must be GET or POST")
		return
	}
	req, err := parseAPIRequest(r)
	if err != nil {
		s.unexpectedRequest(w, r, http.StatusBadRequest, err.Error())
		return
	}

	s.mu.Lock()
	call := Call{Method: name, Status: http.StatusOK, Time: s.now()}
	var resp map[string]any
	var apiErr *apiError
	if code := s.checkToken(r, req, m.token); code != "" {
		apiErr = errf(code)
	} else if status := s.injectedFailure(name); status != 0 {
		call.Status, call.Injected = status, true
		call.Error = http.StatusText(status)
		s.calls = append(s.calls, call)
		s.changed()
		s.mu.Unlock()
		writeInjected(w, status)
		return
	} else {
		resp, apiErr = m.handle(s, req)
	}
	if apiErr != nil {
		call.Error = apiErr.code
		resp = map[string]any{"ok": false, "error": apiErr.code}
		for k, v := range apiErr.extra {
			resp[k] = v
		}
	} else {
		if resp == nil {
			resp = map[string]any{}
		}
		resp["ok"] = true
	}
	s.calls = append(s.calls, call)
	s.changed()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

func parseAPIRequest(r *http.Request) (*apiRequest, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	req := &apiRequest{form: r.URL.Query()}
	if len(bytes.TrimSpace(body)) == 0 {
		return req, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fmt.Errorf("parsing form body: %w", err)
		}
		for k, v := range vals {
			req.form[k] = append(req.form[k], v...)
		}
	case "application/json":
		if err := json.Unmarshal(body, &req.json); err != nil {
			return nil, fmt.Errorf("parsing JSON body: %w", err)
		}
	default:
		return nil, fmt.Errorf("unsupported Content-Type %q", r.Header.Get("Content-Type"))
	}
	return req, nil
}

// checkToken returns "" when the call carries the right token, else the Slack
// error code. Tokens travel as "Authorization: Bearer" or a "token" argument.
func (s *Server) checkToken(r *http.Request, req *apiRequest, want tokenKind) string {
	tok := ""
	if h := r.Header.Get("Authorization"); h != "" {
		var ok bool
		if tok, ok = strings.CutPrefix(h, "Bearer "); !ok {
			return "invalid_auth"
		}
	} else {
		tok = req.get("token")
	}
	switch {
	case tok == "":
		return "not_authed"
	case want == botToken && tok == s.botToken, want == appToken && tok == s.appToken:
		return ""
	case tok == s.botToken, tok == s.appToken:
		return "not_allowed_token_type"
	default:
		return "invalid_auth"
	}
}

func (s *Server) authTest(_ *apiRequest) (map[string]any, *apiError) {
	return map[string]any{
		"url":     "https://" + TeamDomain + ".slack.com/",
		"team":    TeamDomain,
		"user":    BotName,
		"team_id": TeamID,
		"user_id": BotUserID,
		"bot_id":  BotID,
	}, nil
}

func (s *Server) appsConnectionsOpen(_ *apiRequest) (map[string]any, *apiError) {
	ticket := randomHex(16)
	s.tickets[ticket] = true
	u := "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws?ticket=" + ticket + "&app_id=" + AppID
	return map[string]any{"url": u}, nil
}

// validateChannelName applies conversations.create's rules; it returns the
// error code, or "" when the name is fine.
func validateChannelName(name string) string {
	switch {
	case name == "":
		return "invalid_name_required"
	case utf8.RuneCountInString(name) > 80:
		return "invalid_name_maxlength"
	}
	punct := true
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			punct = false
		case r == '-' || r == '_':
		default:
			return "invalid_name_specials"
		}
	}
	if punct {
		return "invalid_name_punctuation"
	}
	return ""
}

func (s *Server) conversationsCreate(r *apiRequest) (map[string]any, *apiError) {
	name := r.get("name")
	if code := validateChannelName(name); code != "" {
		return nil, errf(code)
	}
	if s.lookupChannel(name) != nil {
		return nil, errf("name_taken")
	}
	c := &channel{id: s.newID("C"), name: name, private: r.bool("is_private"),
		members: []string{BotUserID}, creator: BotUserID, created: s.now()}
	s.addChannel(c)
	return map[string]any{"channel": s.channelJSON(c, false)}, nil
}

func (s *Server) channelJSON(c *channel, numMembers bool) map[string]any {
	out := map[string]any{
		"id":                    c.id,
		"name":                  c.name,
		"name_normalized":       c.name,
		"is_channel":            true,
		"is_group":              false,
		"is_im":                 false,
		"is_mpim":               false,
		"is_private":            c.private,
		"is_archived":           false,
		"is_general":            false,
		"is_shared":             false,
		"is_ext_shared":         false,
		"is_org_shared":         false,
		"is_pending_ext_shared": false,
		"is_member":             c.isMember(BotUserID),
		"created":               c.created.Unix(),
		"creator":               c.creator,
		"unlinked":              0,
		"context_team_id":       TeamID,
		"shared_team_ids":       []string{TeamID},
		"previous_names":        []string{},
		"topic":                 map[string]any{"value": c.topic, "creator": c.topicBy, "last_set": unixOrZero(c.topicSet)},
		"purpose":               map[string]any{"value": c.purpose, "creator": c.purposeBy, "last_set": unixOrZero(c.purposeSet)},
	}
	if numMembers {
		out["num_members"] = len(c.members)
	}
	return out
}

// channelArg reads a channel ID argument. Most methods take IDs only; chat.postMessage
// and chat.postEphemeral also take a name (postableChannelArg).
func (s *Server) channelArg(r *apiRequest, key string) (*channel, *apiError) {
	c := s.channels[r.get(key)]
	if c == nil {
		return nil, errf("channel_not_found")
	}
	return c, nil
}

func (s *Server) postableChannelArg(r *apiRequest) (*channel, *apiError) {
	c := s.lookupChannel(r.get("channel"))
	if c == nil || r.get("channel") == "" {
		return nil, errf("channel_not_found")
	}
	return c, nil
}

func (s *Server) conversationsInfo(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	return map[string]any{"channel": s.channelJSON(c, r.bool("include_num_members"))}, nil
}

func (s *Server) conversationsList(r *apiRequest) (map[string]any, *apiError) {
	types := r.get("types")
	if types == "" {
		types = "public_channel"
	}
	var public, private bool
	for _, t := range strings.Split(types, ",") {
		switch strings.TrimSpace(t) {
		case "public_channel":
			public = true
		case "private_channel":
			private = true
		case "im", "mpim":
			// The fake has no direct messages.
		default:
			return nil, errf("invalid_types")
		}
	}
	var list []*channel
	for _, c := range s.channelOrder {
		// Private channels are listed only for members, as in Slack.
		if (c.private && private && c.isMember(BotUserID)) || (!c.private && public) {
			list = append(list, c)
		}
	}
	page, next, e := paginate(list, r, 100, 1000, "channel", func(c *channel) string { return c.id })
	if e != nil {
		return nil, e
	}
	chans := []map[string]any{}
	for _, c := range page {
		chans = append(chans, s.channelJSON(c, true))
	}
	return map[string]any{"channels": chans, "response_metadata": map[string]any{"next_cursor": next}}, nil
}

// paginate cuts one page out of list by Slack's limit and cursor arguments.
// Cursors are base64 of "<kind>:<key of the next item>", like Slack's.
func paginate[T any](list []T, r *apiRequest, def, maxLimit int, kind string, key func(T) string) ([]T, string, *apiError) {
	limit := def
	if l := r.get("limit"); l != "" && l != "0" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			return nil, "", errf("invalid_limit")
		}
		limit = min(n, maxLimit)
	}
	start := 0
	if cur := r.get("cursor"); cur != "" {
		k, ok := decodeCursor(cur, kind)
		if !ok {
			return nil, "", errf("invalid_cursor")
		}
		start = slices.IndexFunc(list, func(x T) bool { return key(x) == k })
		if start < 0 {
			return nil, "", errf("invalid_cursor")
		}
	}
	end := min(start+limit, len(list))
	next := ""
	if end < len(list) {
		next = encodeCursor(kind, key(list[end]))
	}
	return list[start:end], next, nil
}

func encodeCursor(kind, key string) string {
	return base64.StdEncoding.EncodeToString([]byte(kind + ":" + key))
}

func decodeCursor(cur, kind string) (string, bool) {
	b, err := base64.StdEncoding.DecodeString(cur)
	if err != nil {
		return "", false
	}
	return strings.CutPrefix(string(b), kind+":")
}

func (s *Server) conversationsMembers(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	page, next, e := paginate(c.members, r, 100, 1000, "member", func(id string) string { return id })
	if e != nil {
		return nil, e
	}
	return map[string]any{"members": slices.Clone(page), "response_metadata": map[string]any{"next_cursor": next}}, nil
}

func (s *Server) conversationsInvite(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	var ids []string
	for _, id := range strings.Split(r.get("users"), ",") {
		if id = strings.TrimSpace(id); id != "" {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, errf("no_user")
	}
	force := r.bool("force")
	var perUser []map[string]any
	var add []string
	firstErr := ""
	for _, id := range ids {
		code := ""
		switch {
		case id == BotUserID:
			code = "cant_invite_self"
		case s.users[id] == nil:
			code = "user_not_found"
		case c.isMember(id):
			code = "already_in_channel"
		}
		if code == "" {
			if !slices.Contains(add, id) {
				add = append(add, id)
			}
			continue
		}
		perUser = append(perUser, map[string]any{"user": id, "ok": false, "error": code})
		// already_in_channel only fails the call when nobody is new.
		if code != "already_in_channel" && firstErr == "" {
			firstErr = code
		}
	}
	if firstErr != "" && !force {
		return nil, &apiError{code: firstErr, extra: map[string]any{"errors": perUser}}
	}
	if len(add) == 0 {
		code := firstErr
		if code == "" {
			code = "already_in_channel"
		}
		return nil, &apiError{code: code, extra: map[string]any{"errors": perUser}}
	}
	c.members = append(c.members, add...)
	out := map[string]any{"channel": s.channelJSON(c, false)}
	if len(perUser) > 0 && force {
		out["errors"] = perUser
	}
	return out, nil
}

func (s *Server) conversationsSetTopic(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	topic := r.get("topic")
	if utf8.RuneCountInString(topic) > 250 {
		return nil, errf("too_long")
	}
	c.topic, c.topicBy, c.topicSet = topic, BotUserID, s.now()
	return map[string]any{"channel": s.channelJSON(c, false)}, nil
}

func (s *Server) conversationsSetPurpose(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	purpose := r.get("purpose")
	if utf8.RuneCountInString(purpose) > 250 {
		return nil, errf("too_long")
	}
	c.purpose, c.purposeBy, c.purposeSet = purpose, BotUserID, s.now()
	return map[string]any{"channel": s.channelJSON(c, false)}, nil
}

// tsRange reads oldest/latest/inclusive into a filter on message timestamps.
func tsRange(r *apiRequest) (func(ts string) bool, *apiError) {
	oldest, latest := int64(-1), int64(-1)
	if v := r.get("oldest"); v != "" {
		n, ok := parseTS(v)
		if !ok {
			return nil, errf("invalid_ts_oldest")
		}
		oldest = n
	}
	if v := r.get("latest"); v != "" {
		n, ok := parseTS(v)
		if !ok {
			return nil, errf("invalid_ts_latest")
		}
		latest = n
	}
	inclusive := r.bool("inclusive")
	return func(ts string) bool {
		n, _ := parseTS(ts)
		if oldest >= 0 && (n < oldest || (n == oldest && !inclusive)) {
			return false
		}
		if latest >= 0 && (n > latest || (n == latest && !inclusive)) {
			return false
		}
		return true
	}, nil
}

// parseTS turns "1764100000.000100" into microseconds.
func parseTS(ts string) (int64, bool) {
	sec, frac, _ := strings.Cut(ts, ".")
	if len(frac) > 6 {
		return 0, false
	}
	frac += strings.Repeat("0", 6-len(frac))
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt(frac, 10, 64)
	if err1 != nil || err2 != nil || a < 0 || b < 0 {
		return 0, false
	}
	return a*1e6 + b, true
}

func (s *Server) conversationsHistory(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	in, e := tsRange(r)
	if e != nil {
		return nil, e
	}
	var list []*message // newest first
	for _, m := range slices.Backward(c.msgs) {
		if in(m.ts) {
			list = append(list, m)
		}
	}
	page, next, e := paginate(list, r, 100, 999, "next_ts", func(m *message) string { return m.ts })
	if e != nil {
		return nil, e
	}
	withMeta := r.bool("include_all_metadata")
	msgs := []map[string]any{}
	for _, m := range page {
		msgs = append(msgs, s.messageJSON(c, m, withMeta))
	}
	return map[string]any{
		"messages": msgs, "has_more": next != "", "pin_count": len(c.pins),
		"response_metadata": map[string]any{"next_cursor": next},
	}, nil
}

func (s *Server) conversationsReplies(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	m := c.byTS[r.get("ts")]
	if m == nil {
		return nil, errf("thread_not_found")
	}
	if m.threadTS != "" && m.threadTS != m.ts {
		m = c.byTS[m.threadTS]
	}
	in, e := tsRange(r)
	if e != nil {
		return nil, e
	}
	list := []*message{m} // the parent comes first, as in Slack
	for _, x := range m.replies {
		if in(x.ts) {
			list = append(list, x)
		}
	}
	page, next, e := paginate(list, r, 1000, 1000, "next_ts", func(m *message) string { return m.ts })
	if e != nil {
		return nil, e
	}
	withMeta := r.bool("include_all_metadata")
	msgs := []map[string]any{}
	for _, x := range page {
		msgs = append(msgs, s.messageJSON(c, x, withMeta))
	}
	return map[string]any{
		"messages": msgs, "has_more": next != "",
		"response_metadata": map[string]any{"next_cursor": next},
	}, nil
}

// messageJSON renders a message as conversations.history and chat.postMessage return it.
func (s *Server) messageJSON(c *channel, m *message, withMeta bool) map[string]any {
	out := map[string]any{
		"type": "message",
		"user": m.user,
		"text": m.text,
		"ts":   m.ts,
		"team": TeamID,
	}
	if m.user == BotUserID {
		out["bot_id"] = BotID
		out["app_id"] = AppID
		out["bot_profile"] = map[string]any{"id": BotID, "app_id": AppID, "name": BotName, "team_id": TeamID, "deleted": false}
	}
	if m.blocks != nil {
		out["blocks"] = m.blocks
	}
	if m.attachments != nil {
		out["attachments"] = m.attachments
	}
	if m.threadTS != "" {
		out["thread_ts"] = m.threadTS
		if m.threadTS != m.ts {
			out["parent_user_id"] = c.byTS[m.threadTS].user
			if m.replyBroadcast {
				out["subtype"] = "thread_broadcast"
			}
		}
	}
	if len(m.replies) > 0 {
		var users []string
		for _, r := range m.replies {
			if !slices.Contains(users, r.user) {
				users = append(users, r.user)
			}
		}
		out["reply_count"] = len(m.replies)
		out["reply_users_count"] = len(users)
		out["reply_users"] = users
		out["latest_reply"] = m.replies[len(m.replies)-1].ts
		out["is_locked"] = false
		out["subscribed"] = false
	}
	if m.edits > 0 {
		out["edited"] = map[string]any{"user": BotUserID, "ts": m.lastEditTS}
	}
	if withMeta && m.metadata != nil {
		out["metadata"] = m.metadata
	}
	if len(m.files) > 0 {
		var files []map[string]any
		for _, id := range m.files {
			files = append(files, s.fileJSON(s.files[id]))
		}
		out["files"] = files
		out["upload"] = true
		out["display_as_bot"] = false
	}
	if slices.Contains(c.pins, m.ts) {
		out["pinned_to"] = []string{c.id}
	}
	return out
}

// messageArgs reads text, blocks, attachments and metadata as chat.* methods take them.
type messageArgs struct {
	text        string
	hasText     bool
	blocks      json.RawMessage
	hasBlocks   bool
	attachments json.RawMessage
	metadata    *Metadata
	hasMetadata bool
}

func readMessageArgs(r *apiRequest) (messageArgs, *apiError) {
	a := messageArgs{text: r.get("text"), hasText: r.has("text")}
	if utf8.RuneCountInString(a.text) > 40000 {
		return a, errf("msg_too_long")
	}
	if r.has("blocks") && r.get("blocks") != "" {
		raw := json.RawMessage(r.get("blocks"))
		if msgs, ok := validateBlocks(raw, 50); !ok {
			if msgs == nil {
				return a, errf("invalid_blocks_format")
			}
			return a, errMessages("invalid_blocks", msgs)
		}
		a.blocks, a.hasBlocks = compactJSON(raw), true
	}
	if v := r.get("attachments"); v != "" {
		var list []json.RawMessage
		if json.Unmarshal([]byte(v), &list) != nil {
			return a, errf("invalid_attachments")
		}
		if len(list) > 0 {
			a.attachments = compactJSON(json.RawMessage(v))
		}
	}
	if v := r.get("metadata"); v != "" {
		md, e := parseMetadata(v)
		if e != nil {
			return a, e
		}
		a.metadata, a.hasMetadata = md, true
	}
	return a, nil
}

func parseMetadata(v string) (*Metadata, *apiError) {
	var raw map[string]json.RawMessage
	if json.Unmarshal([]byte(v), &raw) != nil {
		return nil, errf("invalid_metadata_format")
	}
	var md Metadata
	if json.Unmarshal(raw["event_type"], &md.EventType) != nil || md.EventType == "" {
		return nil, errMessages("invalid_metadata_schema", []string{"[ERROR] missing required field: event_type"})
	}
	if p, ok := raw["event_payload"]; ok && string(p) != "null" {
		if json.Unmarshal(p, &md.EventPayload) != nil {
			return nil, errMessages("invalid_metadata_schema", []string{"[ERROR] event_payload must be an object"})
		}
	} else {
		return nil, errMessages("invalid_metadata_schema", []string{"[ERROR] missing required field: event_payload"})
	}
	return &md, nil
}

func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return slices.Clone(raw)
	}
	return b.Bytes()
}

func (s *Server) chatPostMessage(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.postableChannelArg(r)
	if e != nil {
		return nil, e
	}
	a, e := readMessageArgs(r)
	if e != nil {
		return nil, e
	}
	if a.text == "" && a.blocks == nil && a.attachments == nil {
		return nil, errf("no_text")
	}
	m := &message{channel: c.id, user: BotUserID, text: a.text, blocks: a.blocks, attachments: a.attachments,
		metadata: a.metadata, unfurlLinks: r.optBool("unfurl_links"), unfurlMedia: r.optBool("unfurl_media")}
	s.postInChannel(c, m, r.get("thread_ts"), r.bool("reply_broadcast"))
	return map[string]any{"channel": c.id, "ts": m.ts, "message": s.messageJSON(c, m, true)}, nil
}

// postInChannel stores a new message, as a reply when threadTS names an
// existing message (a reply's ts threads under its parent). As in Slack, a
// thread_ts that names no message posts to the channel. Callers hold s.mu.
func (s *Server) postInChannel(c *channel, m *message, threadTS string, broadcast bool) {
	m.channel = c.id
	m.ts = s.nextTS()
	c.byTS[m.ts] = m
	parent := c.byTS[threadTS]
	if parent != nil && parent.threadTS != "" && parent.threadTS != parent.ts {
		parent = c.byTS[parent.threadTS]
	}
	if parent == nil || parent == m {
		c.msgs = append(c.msgs, m)
		return
	}
	parent.threadTS = parent.ts
	m.threadTS = parent.ts
	m.replyBroadcast = broadcast
	parent.replies = append(parent.replies, m)
	if broadcast {
		c.msgs = append(c.msgs, m)
	}
}

func (s *Server) chatUpdate(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	m := c.byTS[r.get("ts")]
	if m == nil {
		return nil, errf("message_not_found")
	}
	if m.user != BotUserID {
		return nil, errf("cant_update_message")
	}
	a, e := readMessageArgs(r)
	if e != nil {
		return nil, e
	}
	if !a.hasText && !a.hasBlocks && a.attachments == nil && !r.has("blocks") {
		return nil, errf("no_text")
	}
	if a.hasText {
		m.text = a.text
	}
	if r.has("blocks") {
		m.blocks = a.blocks
		if len(m.blocks) == 0 || string(m.blocks) == "[]" {
			m.blocks = nil
		}
	}
	if a.attachments != nil {
		m.attachments = a.attachments
	}
	if a.hasMetadata {
		m.metadata = a.metadata
	}
	m.edits++
	m.lastEditTS = s.nextTS()
	return map[string]any{"channel": c.id, "ts": m.ts, "text": m.text, "message": s.messageJSON(c, m, true)}, nil
}

func (s *Server) chatDelete(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	m := c.byTS[r.get("ts")]
	if m == nil {
		return nil, errf("message_not_found")
	}
	if m.user != BotUserID {
		return nil, errf("cant_delete_message")
	}
	c.removeMessage(m)
	return map[string]any{"channel": c.id, "ts": m.ts}, nil
}

func (s *Server) chatPostEphemeral(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.postableChannelArg(r)
	if e != nil {
		return nil, e
	}
	u := r.get("user")
	if s.users[u] == nil {
		return nil, errf("user_not_found")
	}
	a, e := readMessageArgs(r)
	if e != nil {
		return nil, e
	}
	if a.text == "" && a.blocks == nil && a.attachments == nil {
		return nil, errf("no_text")
	}
	m := &message{channel: c.id, ts: s.nextTS(), threadTS: r.get("thread_ts"), user: BotUserID,
		text: a.text, blocks: a.blocks, attachments: a.attachments}
	s.ephemerals[u] = append(s.ephemerals[u], m)
	return map[string]any{"message_ts": m.ts}, nil
}

func (s *Server) chatGetPermalink(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	ts := r.get("message_ts")
	m := c.byTS[ts]
	if m == nil {
		return nil, errf("message_not_found")
	}
	link := fmt.Sprintf("https://%s.slack.com/archives/%s/p%s", TeamDomain, c.id, strings.ReplaceAll(ts, ".", ""))
	if m.threadTS != "" && m.threadTS != m.ts {
		link += "?thread_ts=" + m.threadTS + "&cid=" + c.id
	}
	return map[string]any{"channel": c.id, "permalink": link}, nil
}

func (s *Server) pinsAdd(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	ts := r.get("timestamp")
	if ts == "" {
		return nil, errf("no_item_specified")
	}
	if c.byTS[ts] == nil {
		return nil, errf("message_not_found")
	}
	if slices.Contains(c.pins, ts) {
		return nil, errf("already_pinned")
	}
	c.pins = append(c.pins, ts)
	return nil, nil
}

func (s *Server) pinsRemove(r *apiRequest) (map[string]any, *apiError) {
	c, e := s.channelArg(r, "channel")
	if e != nil {
		return nil, e
	}
	ts := r.get("timestamp")
	if ts == "" {
		return nil, errf("no_item_specified")
	}
	if !slices.Contains(c.pins, ts) {
		return nil, errf("no_pin")
	}
	c.pins = slices.DeleteFunc(c.pins, func(x string) bool { return x == ts })
	return nil, nil
}

func (s *Server) userJSON(u *user) map[string]any {
	return map[string]any{
		"id":        u.id,
		"team_id":   TeamID,
		"name":      u.name,
		"deleted":   false,
		"real_name": u.name,
		"tz":        "UTC",
		"tz_label":  "Coordinated Universal Time",
		"tz_offset": 0,
		"is_admin":  u.admin,
		"is_owner":  false,
		"is_bot":    u.id == BotUserID,
		"updated":   u.updated.Unix(),
		"profile": map[string]any{
			"real_name": u.name, "real_name_normalized": u.name,
			"display_name": u.name, "display_name_normalized": u.name,
			"team": TeamID,
		},
	}
}

// allUsers lists the bot user and the added users, as users.list does.
func (s *Server) allUsers() []*user {
	out := []*user{{id: BotUserID, name: BotName, updated: s.now()}}
	for _, id := range s.userOrder {
		out = append(out, s.users[id])
	}
	return out
}

func (s *Server) usersInfo(r *apiRequest) (map[string]any, *apiError) {
	id := r.get("user")
	for _, u := range s.allUsers() {
		if u.id == id {
			return map[string]any{"user": s.userJSON(u)}, nil
		}
	}
	return nil, errf("user_not_found")
}

func (s *Server) usersList(r *apiRequest) (map[string]any, *apiError) {
	page, next, e := paginate(s.allUsers(), r, 200, 1000, "user", func(u *user) string { return u.id })
	if e != nil {
		return nil, e
	}
	members := []map[string]any{}
	for _, u := range page {
		members = append(members, s.userJSON(u))
	}
	return map[string]any{"members": members, "cache_ts": s.now().Unix(), "response_metadata": map[string]any{"next_cursor": next}}, nil
}

func (s *Server) usergroupJSON(g *userGroup, withUsers bool) map[string]any {
	out := map[string]any{
		"id": g.id, "team_id": TeamID, "is_usergroup": true, "is_subteam": true,
		"name": g.handle, "description": "", "handle": g.handle, "is_external": false,
		"date_create": g.created.Unix(), "date_update": g.created.Unix(), "date_delete": 0,
		"auto_type": nil, "created_by": BotUserID, "updated_by": BotUserID, "deleted_by": nil,
		"prefs": map[string]any{"channels": []string{}, "groups": []string{}}, "user_count": len(g.members),
	}
	if withUsers {
		out["users"] = slices.Clone(g.members)
	}
	return out
}

func (s *Server) usergroupsList(r *apiRequest) (map[string]any, *apiError) {
	groups := []map[string]any{}
	for _, id := range s.groupOrder {
		groups = append(groups, s.usergroupJSON(s.groups[id], r.bool("include_users")))
	}
	return map[string]any{"usergroups": groups}, nil
}

func (s *Server) usergroupsUsersList(r *apiRequest) (map[string]any, *apiError) {
	g := s.groups[r.get("usergroup")]
	if g == nil {
		return nil, errf("no_such_subteam")
	}
	return map[string]any{"users": slices.Clone(g.members)}, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
