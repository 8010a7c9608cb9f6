package slackfake

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// validateBlocks checks a Block Kit array against the limits Slack enforces
// (https://docs.slack.dev/reference/block-kit/blocks). It returns ok=false
// with nil messages when raw is not a JSON array of objects
// (invalid_blocks_format), and with Slack-style messages otherwise
// (invalid_blocks).
func validateBlocks(raw json.RawMessage, maxBlocks int) ([]string, bool) {
	var blocks []map[string]any
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, false
	}
	v := &blockValidator{blockIDs: map[string]bool{}, actionIDs: map[string]bool{}}
	if len(blocks) > maxBlocks {
		v.errf("/blocks", "no more than %d items allowed", maxBlocks)
	}
	for i, b := range blocks {
		v.block(fmt.Sprintf("/blocks/%d", i), b)
	}
	return v.msgs, len(v.msgs) == 0
}

type blockValidator struct {
	msgs      []string
	blockIDs  map[string]bool
	actionIDs map[string]bool
}

func (v *blockValidator) errf(ptr, format string, args ...any) {
	v.msgs = append(v.msgs, fmt.Sprintf("[ERROR] "+format+" [json-pointer:%s]", append(args, ptr)...))
}

func (v *blockValidator) block(ptr string, b map[string]any) {
	if b == nil {
		v.errf(ptr, "must be an object")
		return
	}
	if id, ok := b["block_id"].(string); ok {
		v.maxLen(ptr+"/block_id", id, 255)
		if v.blockIDs[id] {
			v.errf(ptr+"/block_id", "duplicate block_id %q", id)
		}
		v.blockIDs[id] = true
	}
	switch t, _ := b["type"].(string); t {
	case "section":
		text, hasText := b["text"]
		fields, _ := b["fields"].([]any)
		if !hasText && len(fields) == 0 {
			v.errf(ptr, "must provide either text or fields")
		}
		if hasText {
			v.text(ptr+"/text", text, 3000, false)
		}
		if len(fields) > 10 {
			v.errf(ptr+"/fields", "no more than 10 items allowed")
		}
		for i, f := range fields {
			v.text(fmt.Sprintf("%s/fields/%d", ptr, i), f, 2000, false)
		}
		if acc, ok := b["accessory"]; ok {
			v.element(ptr+"/accessory", acc)
		}
	case "header":
		v.text(ptr+"/text", b["text"], 150, true)
	case "actions":
		els, _ := b["elements"].([]any)
		if len(els) == 0 || len(els) > 25 {
			v.errf(ptr+"/elements", "must have between 1 and 25 items")
		}
		for i, e := range els {
			v.element(fmt.Sprintf("%s/elements/%d", ptr, i), e)
		}
	case "context":
		els, _ := b["elements"].([]any)
		if len(els) == 0 || len(els) > 10 {
			v.errf(ptr+"/elements", "must have between 1 and 10 items")
		}
		for i, e := range els {
			p := fmt.Sprintf("%s/elements/%d", ptr, i)
			if m, _ := e.(map[string]any); m != nil && m["type"] == "image" {
				v.maxLen(p+"/alt_text", str(m["alt_text"]), 2000)
				continue
			}
			v.text(p, e, 3000, false)
		}
	case "input":
		v.text(ptr+"/label", b["label"], 2000, true)
		if hint, ok := b["hint"]; ok {
			v.text(ptr+"/hint", hint, 2000, true)
		}
		if el, ok := b["element"]; ok {
			v.element(ptr+"/element", el)
		} else {
			v.errf(ptr, "missing required field: element")
		}
	case "image":
		if str(b["image_url"]) == "" && b["slack_file"] == nil {
			v.errf(ptr, "must provide either image_url or slack_file")
		}
		v.maxLen(ptr+"/image_url", str(b["image_url"]), 3000)
		if str(b["alt_text"]) == "" {
			v.errf(ptr+"/alt_text", "must be more than 0 characters")
		}
		v.maxLen(ptr+"/alt_text", str(b["alt_text"]), 2000)
	case "markdown":
		if s := str(b["text"]); s == "" {
			v.errf(ptr+"/text", "must be more than 0 characters")
		} else {
			v.maxLen(ptr+"/text", s, 12000)
		}
	case "divider", "rich_text", "file", "video", "table", "context_actions":
	case "":
		v.errf(ptr, "missing required field: type")
	default:
		v.errf(ptr+"/type", "unsupported type %q", t)
	}
}

// text checks a text object; plainOnly rejects mrkdwn.
func (v *blockValidator) text(ptr string, t any, maxLen int, plainOnly bool) {
	m, _ := t.(map[string]any)
	if m == nil {
		v.errf(ptr, "must be a text object")
		return
	}
	switch m["type"] {
	case "plain_text":
	case "mrkdwn":
		if plainOnly {
			v.errf(ptr+"/type", "must be plain_text")
		}
	default:
		v.errf(ptr+"/type", "must be plain_text or mrkdwn")
	}
	s := str(m["text"])
	if s == "" {
		v.errf(ptr+"/text", "must be more than 0 characters")
	}
	v.maxLen(ptr+"/text", s, maxLen)
}

func (v *blockValidator) element(ptr string, e any) {
	m, _ := e.(map[string]any)
	if m == nil {
		v.errf(ptr, "must be an object")
		return
	}
	if id, ok := m["action_id"].(string); ok {
		v.maxLen(ptr+"/action_id", id, 255)
		if v.actionIDs[id] {
			v.errf(ptr+"/action_id", "duplicate action_id %q", id)
		}
		v.actionIDs[id] = true
	}
	if c, ok := m["confirm"].(map[string]any); ok {
		v.text(ptr+"/confirm/title", c["title"], 100, true)
		v.text(ptr+"/confirm/text", c["text"], 300, false)
		v.text(ptr+"/confirm/confirm", c["confirm"], 30, true)
		v.text(ptr+"/confirm/deny", c["deny"], 30, true)
	}
	switch t, _ := m["type"].(string); t {
	case "button":
		v.text(ptr+"/text", m["text"], 75, true)
		v.maxLen(ptr+"/value", str(m["value"]), 2000)
		v.maxLen(ptr+"/url", str(m["url"]), 3000)
		if st, ok := m["style"]; ok && st != "primary" && st != "danger" {
			v.errf(ptr+"/style", "must be primary or danger")
		}
	case "static_select", "multi_static_select", "radio_buttons", "checkboxes", "overflow":
		opts, _ := m["options"].([]any)
		groups, _ := m["option_groups"].([]any)
		if len(opts) == 0 && len(groups) == 0 {
			v.errf(ptr, "must provide options or option_groups")
		}
		if len(opts) > 100 {
			v.errf(ptr+"/options", "no more than 100 items allowed")
		}
		for i, o := range opts {
			om, _ := o.(map[string]any)
			p := fmt.Sprintf("%s/options/%d", ptr, i)
			v.text(p+"/text", om["text"], 75, false)
			v.maxLen(p+"/value", str(om["value"]), 150)
		}
		if ph, ok := m["placeholder"]; ok {
			v.text(ptr+"/placeholder", ph, 150, true)
		}
	case "plain_text_input":
		if ph, ok := m["placeholder"]; ok {
			v.text(ptr+"/placeholder", ph, 150, true)
		}
	case "image":
		v.maxLen(ptr+"/alt_text", str(m["alt_text"]), 2000)
	case "users_select", "multi_users_select", "conversations_select", "multi_conversations_select",
		"channels_select", "multi_channels_select", "external_select", "multi_external_select",
		"datepicker", "timepicker", "datetimepicker", "email_text_input", "url_text_input",
		"number_input", "rich_text_input", "file_input", "workflow_button":
	case "":
		v.errf(ptr, "missing required field: type")
	default:
		v.errf(ptr+"/type", "unsupported element type %q", t)
	}
}

func (v *blockValidator) maxLen(ptr, s string, n int) {
	if utf8.RuneCountInString(s) > n {
		v.errf(ptr, "must be less than %d characters", n+1)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
