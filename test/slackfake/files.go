package slackfake

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

func (s *Server) filesGetUploadURLExternal(r *apiRequest) (map[string]any, *apiError) {
	name := r.get("filename")
	length, err := strconv.Atoi(r.get("length"))
	if name == "" || err != nil || length <= 0 {
		return nil, errMessages("invalid_arguments", []string{"[ERROR] filename and a positive length are required"})
	}
	f := &File{ID: s.newID("F"), Filename: name, Length: length}
	s.files[f.ID] = f
	s.fileOrder = append(s.fileOrder, f.ID)
	secret := randomHex(12)
	s.uploads[secret] = f.ID
	return map[string]any{"upload_url": s.srv.URL + "/upload/v1/" + secret, "file_id": f.ID}, nil
}

// serveUpload takes the file bytes POSTed to an upload_url (slack-go sends
// multipart with a "file" part; a raw body works too).
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	secret := strings.TrimPrefix(r.URL.Path, "/upload/v1/")
	s.mu.Lock()
	id, ok := s.uploads[secret]
	s.mu.Unlock()
	if !ok {
		s.unexpectedRequest(w, r, http.StatusNotFound, "no such upload URL")
		return
	}
	if r.Method != http.MethodPost {
		s.unexpectedRequest(w, r, http.StatusMethodNotAllowed, "upload must be POST")
		return
	}
	var content []byte
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "multipart/form-data" {
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			s.unexpectedRequest(w, r, http.StatusBadRequest, "parsing multipart upload: "+err.Error())
			return
		}
		part, _, err := r.FormFile("file")
		if err != nil {
			s.unexpectedRequest(w, r, http.StatusBadRequest, "multipart upload has no \"file\" part")
			return
		}
		content, err = io.ReadAll(part)
		_ = part.Close()
		if err != nil {
			s.unexpectedRequest(w, r, http.StatusBadRequest, "reading upload: "+err.Error())
			return
		}
	} else {
		var err error
		if content, err = io.ReadAll(r.Body); err != nil {
			s.unexpectedRequest(w, r, http.StatusBadRequest, "reading upload: "+err.Error())
			return
		}
	}

	s.mu.Lock()
	f := s.files[id]
	delete(s.uploads, secret) // upload URLs are single use
	if len(content) != f.Length {
		// Slack would keep a truncated or padded file; a test wants to know.
		s.unexpectedf("upload of %s (%q): got %d bytes, files.getUploadURLExternal announced %d", f.ID, f.Filename, len(content), f.Length)
	}
	f.Content = content
	s.changed()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = fmt.Fprintf(w, "OK - %d", len(content))
}

func (s *Server) filesCompleteUploadExternal(r *apiRequest) (map[string]any, *apiError) {
	var list []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if json.Unmarshal([]byte(r.get("files")), &list) != nil || len(list) == 0 {
		return nil, errMessages("invalid_arguments", []string{"[ERROR] files must be a non-empty JSON array"})
	}
	for _, it := range list {
		f := s.files[it.ID]
		if f == nil || f.Content == nil || f.Channel != "" {
			return nil, errf("file_not_found")
		}
	}
	var chans []*channel
	ids := strings.Split(r.get("channels"), ",")
	if id := r.get("channel_id"); id != "" {
		ids = append(ids, id)
	}
	for _, id := range ids {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		c := s.channels[id]
		if c == nil {
			return nil, errf("channel_not_found")
		}
		chans = append(chans, c)
	}
	comment := r.get("initial_comment")
	var blocks json.RawMessage
	if comment == "" && r.get("blocks") != "" {
		if msgs, ok := validateBlocks(json.RawMessage(r.get("blocks")), 50); !ok {
			if msgs == nil {
				return nil, errf("invalid_blocks_format")
			}
			return nil, errMessages("invalid_blocks", msgs)
		}
		blocks = compactJSON(json.RawMessage(r.get("blocks")))
	}
	var fileIDs []string
	out := []map[string]any{}
	for _, it := range list {
		f := s.files[it.ID]
		f.Title = it.Title
		if f.Title == "" {
			f.Title = f.Filename
		}
		fileIDs = append(fileIDs, f.ID)
		out = append(out, map[string]any{"id": f.ID, "title": f.Title})
	}
	for _, c := range chans {
		m := &message{user: BotUserID, text: comment, blocks: blocks, files: slices.Clone(fileIDs)}
		s.postInChannel(c, m, r.get("thread_ts"), false)
		for _, id := range fileIDs {
			f := s.files[id]
			f.Channel, f.ThreadTS, f.MessageTS = c.id, m.threadTS, m.ts
		}
	}
	return map[string]any{"files": out}, nil
}

func (s *Server) fileJSON(f *File) map[string]any {
	if f == nil {
		return map[string]any{}
	}
	return map[string]any{
		"id": f.ID, "name": f.Filename, "title": f.Title, "user": BotUserID,
		"mimetype": "text/plain", "filetype": "text", "pretty_type": "Plain Text",
		"size": len(f.Content), "mode": "hosted", "is_external": false, "is_public": true,
		"url_private": s.srv.URL + "/files-pri/" + TeamID + "-" + f.ID + "/" + f.Filename,
	}
}

type trigger struct {
	user string
	used bool
}

// newTrigger issues a trigger_id for views.open, like Slack's "123.456.abc".
// Callers hold s.mu.
func (s *Server) newTrigger(userID string) string {
	s.seq++
	id := fmt.Sprintf("%d.%d.%s", 1000000+s.seq, s.now().Unix(), randomHex(16))
	s.triggers[id] = &trigger{user: userID}
	return id
}

func (s *Server) viewsOpen(r *apiRequest) (map[string]any, *apiError) {
	tid := r.get("trigger_id")
	tr := s.triggers[tid]
	switch {
	case tid == "":
		return nil, errf("invalid_arguments")
	case tr == nil:
		return nil, errf("invalid_trigger_id")
	case tr.used:
		return nil, errf("exchanged_trigger_id")
	}
	var view map[string]any
	raw := json.RawMessage(r.get("view"))
	if json.Unmarshal(raw, &view) != nil || view == nil {
		return nil, errMessages("invalid_arguments", []string{"[ERROR] view must be a JSON object [json-pointer:/view]"})
	}
	var msgs []string
	if view["type"] != "modal" {
		msgs = append(msgs, "[ERROR] must be modal [json-pointer:/view/type]")
	}
	title, _ := view["title"].(map[string]any)
	if title == nil || title["type"] != "plain_text" || str(title["text"]) == "" || utf8.RuneCountInString(str(title["text"])) > 24 {
		msgs = append(msgs, "[ERROR] title must be plain_text of 1 to 24 characters [json-pointer:/view/title]")
	}
	if utf8.RuneCountInString(str(view["private_metadata"])) > 3000 {
		msgs = append(msgs, "[ERROR] must be less than 3001 characters [json-pointer:/view/private_metadata]")
	}
	if utf8.RuneCountInString(str(view["callback_id"])) > 255 {
		msgs = append(msgs, "[ERROR] must be less than 256 characters [json-pointer:/view/callback_id]")
	}
	blocks, _ := json.Marshal(view["blocks"])
	if bm, ok := validateBlocks(blocks, 100); !ok {
		if bm == nil {
			bm = []string{"[ERROR] blocks must be an array [json-pointer:/view/blocks]"}
		}
		msgs = append(msgs, bm...)
	}
	if len(msgs) > 0 {
		return nil, errMessages("invalid_arguments", msgs)
	}
	tr.used = true
	v := &View{ID: s.newID("V"), User: tr.user, TriggerID: tid, CallbackID: str(view["callback_id"]),
		PrivateMetadata: str(view["private_metadata"])}
	view["id"] = v.ID
	view["team_id"] = TeamID
	view["state"] = map[string]any{"values": map[string]any{}}
	view["hash"] = randomHex(8)
	view["root_view_id"] = v.ID
	view["previous_view_id"] = nil
	view["app_id"] = AppID
	view["bot_id"] = BotID
	view["app_installed_team_id"] = TeamID
	v.Raw, _ = json.Marshal(view)
	s.views = append(s.views, v)
	return map[string]any{"view": json.RawMessage(v.Raw)}, nil
}
