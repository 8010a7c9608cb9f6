package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/test/slackfake"
)

// The sandbox shows the incident channel as text: Slack's mrkdwn turned
// into plain lines that fit 80 columns, emoji into one-column symbols.

const sandboxWidth = 80

var emojiSymbols = map[string]string{
	":white_check_mark:": "✓", ":x:": "✗", ":arrow_forward:": "▶", ":small_blue_diamond:": "·",
	":warning:": "!", ":fast_forward:": "»", ":no_entry_sign:": "⊘", ":raised_hand:": "?",
	":rotating_light:": "!!", ":arrows_counterclockwise:": "↻", ":white_circle:": "○",
	":hourglass:": "…", ":recycle:": "↻", ":leftwards_arrow_with_hook:": "↩",
}

var (
	emojiRE   = regexp.MustCompile(`:[a-z0-9_+-]+:`)
	mentionRE = regexp.MustCompile(`<@([A-Z0-9]+)>`)
	channelRE = regexp.MustCompile(`<#[A-Z0-9]+\|([^>]+)>`)
	linkRE    = regexp.MustCompile(`<([^|>]+)\|([^>]+)>`)
)

// plainText turns Slack mrkdwn into what a terminal shows.
func plainText(s string) string {
	s = strings.ReplaceAll(s, "```", "\n")
	s = strings.ReplaceAll(s, "`", "")
	s = strings.ReplaceAll(s, "*", "")
	s = mentionRE.ReplaceAllStringFunc(s, func(m string) string {
		id := mentionRE.FindStringSubmatch(m)[1]
		return "@" + strings.ToLower(strings.TrimPrefix(id, "U0"))
	})
	s = channelRE.ReplaceAllString(s, "#$1")
	s = linkRE.ReplaceAllString(s, "$2 ($1)")
	s = emojiRE.ReplaceAllStringFunc(s, func(e string) string {
		if sym, ok := emojiSymbols[e]; ok {
			return sym
		}
		return e
	})
	s = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(s)
	var lines []string
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimRight(l, " "); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// wrap breaks text into lines of at most width runes, continuation lines
// indented by indent.
func wrap(text string, width int, indent string) []string {
	var out []string
	for line := range strings.SplitSeq(text, "\n") {
		prefix := ""
		for {
			r := []rune(prefix + line)
			if len(r) <= width {
				out = append(out, string(r))
				break
			}
			cut := width
			for i := width; i > len([]rune(prefix))+width/3; i-- {
				if r[i] == ' ' {
					cut = i
					break
				}
			}
			out = append(out, strings.TrimRight(string(r[:cut]), " "))
			line = strings.TrimLeft(string(r[cut:]), " ")
			prefix = indent
			if line == "" {
				break
			}
		}
	}
	return out
}

// slackBlock is the part of a Block Kit block the sandbox reads.
type slackBlock struct {
	Type     string          `json:"type"`
	BlockID  string          `json:"block_id"`
	Text     *slackText      `json:"text"`
	Fields   []slackText     `json:"fields"`
	Elements json.RawMessage `json:"elements"`
	Element  *slackElement   `json:"element"`
}

type slackText struct {
	Text string `json:"text"`
}

type slackElement struct {
	Type     string     `json:"type"`
	ActionID string     `json:"action_id"`
	Value    string     `json:"value"`
	Text     *slackText `json:"text"`
}

// button is one button of a message still waiting for a click.
type button struct {
	ActionID, Label, Value string
}

// messageText is a message as terminal text, and its buttons.
func messageText(m slackfake.Message) (string, []button) {
	var blocks []slackBlock
	if len(m.Blocks) == 0 || json.Unmarshal(m.Blocks, &blocks) != nil || len(blocks) == 0 {
		return plainText(m.Text), nil
	}
	var parts []string
	var buttons []button
	for _, b := range blocks {
		switch b.Type {
		case "header", "section":
			if b.Text != nil {
				parts = append(parts, plainText(b.Text.Text))
			}
			for _, f := range b.Fields {
				parts = append(parts, plainText(f.Text))
			}
		case "context":
			var els []slackText
			_ = json.Unmarshal(b.Elements, &els)
			for _, e := range els {
				parts = append(parts, plainText(e.Text))
			}
		case "divider":
			parts = append(parts, strings.Repeat("─", 40))
		case "actions":
			var els []slackElement
			_ = json.Unmarshal(b.Elements, &els)
			var labels []string
			for _, e := range els {
				if e.Type != "button" || e.Text == nil {
					continue
				}
				buttons = append(buttons, button{ActionID: e.ActionID, Label: e.Text.Text, Value: e.Value})
				labels = append(labels, "["+e.Text.Text+"]")
			}
			if len(labels) > 0 {
				parts = append(parts, strings.Join(labels, " "))
			}
		}
	}
	return strings.Join(parts, "\n"), buttons
}

// modalInput finds the text input of a modal: its block and action ids.
func modalInput(raw json.RawMessage) (blockID, actionID string, ok bool) {
	var v struct {
		Blocks []slackBlock `json:"blocks"`
	}
	if json.Unmarshal(raw, &v) != nil {
		return "", "", false
	}
	for _, b := range v.Blocks {
		if b.Type == "input" && b.Element != nil {
			return b.BlockID, b.Element.ActionID, true
		}
	}
	return "", "", false
}

// channelView is what the sandbox has shown of the incident channel.
type channelView struct {
	seen    map[string]bool   // message ts already printed
	edits   map[string]string // last printed text of messages with buttons, by ts
	threads map[string]string // thread ts → label of its lines
	logRoot string            // the post-mortem log thread, not echoed
	board   string            // pinned board ts
}

func newChannelView() *channelView {
	return &channelView{seen: map[string]bool{}, edits: map[string]string{}, threads: map[string]string{}}
}

var phaseRootRE = regexp.MustCompile(`^Phase \d+ · (\w+)`)

// actionable is a message with buttons nobody has pressed yet.
type actionable struct {
	TS      string
	Text    string
	Buttons []button
}

// update reads the channel's messages and returns the lines to print (in
// posting order), the board's text and the messages waiting for a click.
func (v *channelView) update(msgs []slackfake.Message, pins []string) (lines []string, board string, open []actionable) {
	if len(pins) > 0 {
		v.board = pins[0]
	}
	type entry struct {
		ts, text string
	}
	var fresh []entry
	add := func(m slackfake.Message, label string) {
		text, buttons := messageText(m)
		if len(buttons) > 0 {
			open = append(open, actionable{TS: m.TS, Text: text, Buttons: buttons})
		}
		if v.seen[m.TS] {
			// A gate or a failure message is edited once decided: show who decided.
			if old, ok := v.edits[m.TS]; ok && old != text && len(buttons) == 0 {
				v.edits[m.TS] = text
				if last := lastLine(text); last != "" {
					fresh = append(fresh, entry{"\xff" + m.TS, "  → " + last}) // decided just now: after the rest
				}
			}
			return
		}
		v.seen[m.TS] = true
		if len(buttons) > 0 {
			v.edits[m.TS] = text
		}
		if label != "" {
			text = "[" + label + "] " + text
		}
		fresh = append(fresh, entry{m.TS, text})
	}
	for _, m := range msgs {
		if m.TS == v.board {
			board, _ = messageText(m)
			continue
		}
		if v.logRoot == "" && strings.HasPrefix(m.Text, "*Post-mortem log*") {
			v.logRoot = m.TS
		}
		if m.TS == v.logRoot {
			continue
		}
		text, _ := messageText(m)
		if sm := phaseRootRE.FindStringSubmatch(text); sm != nil {
			v.threads[m.TS] = strings.ToLower(sm[1])
		}
		add(m, "")
		for _, r := range m.Replies {
			if r.ReplyBroadcast && r.TS != m.TS {
				continue // also top-level: shown there
			}
			label := v.threads[m.TS]
			if label == "" {
				label = "thread"
			}
			add(r, label)
		}
	}
	slices.SortStableFunc(fresh, func(a, b entry) int { return strings.Compare(a.ts, b.ts) })
	for _, e := range fresh {
		lines = append(lines, e.text)
	}
	return lines, board, open
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndex(s, "\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}

// boardDigest is the board's state without its clocks: the run's status
// and each phase's status, steps done and progress bar. Plain output
// prints the lines whose digest changed.
var (
	boardPhaseRE  = regexp.MustCompile(`^(\S+) (\d+)\. (\w+).*· (\d+/\d+) steps`)
	boardStatusRE = regexp.MustCompile(`^(\S+) ([A-Z]+) · run `)
)

func boardLines(board string) map[string]string {
	out := map[string]string{}
	for l := range strings.SplitSeq(board, "\n") {
		switch {
		case boardStatusRE.MatchString(l):
			sm := boardStatusRE.FindStringSubmatch(l)
			out["status"] = sm[1] + " " + sm[2] + "\x00" + l
		case boardPhaseRE.MatchString(l):
			sm := boardPhaseRE.FindStringSubmatch(l)
			out["phase "+sm[2]] = sm[1] + sm[4] + "\x00" + l
		case strings.Contains(l, "▓") || strings.Contains(l, "░"):
			// 20 cells: print when a cell fills, not on every count.
			out["bar "+strings.Fields(l)[len(strings.Fields(l))-1]] = strings.Fields(l)[0] + "\x00" + l
		}
	}
	return out
}

// terminal writes the transcript: a scrolling log of the channel's lines
// with the board redrawn in place below them on a terminal, or plain lines
// (the board's changes as lines of their own) anywhere else.
type terminal struct {
	out    io.Writer
	tty    bool
	width  int               // columns: 80, or fewer on a narrower terminal
	footer int               // lines of the board drawn below the log
	last   map[string]string // board digests already printed (plain)
}

func (t *terminal) printf(format string, args ...any) {
	t.lines(wrap(fmt.Sprintf(format, args...), t.cols(), "    "))
}

// lines prints log lines above the board.
func (t *terminal) lines(lines []string) {
	if len(lines) == 0 {
		return
	}
	t.clearFooter()
	for _, l := range lines {
		fmt.Fprintln(t.out, l)
	}
}

// message prints a channel line, wrapped.
func (t *terminal) message(text string) {
	t.lines(wrap(text, t.cols(), "    "))
}

func (t *terminal) cols() int {
	if t.width > 0 && t.width < sandboxWidth {
		return t.width
	}
	return sandboxWidth
}

func (t *terminal) clearFooter() {
	if t.tty && t.footer > 0 {
		fmt.Fprintf(t.out, "\x1b[%dA\x1b[J", t.footer)
		t.footer = 0
	}
}

// drawBoard shows the board: in place on a terminal; as changed lines
// otherwise.
func (t *terminal) drawBoard(board string) {
	if board == "" {
		return
	}
	if t.tty {
		t.clearFooter()
		// Lines wrapped here, never by the terminal, so the count to move
		// back up is right.
		lines := append([]string{strings.Repeat("═", t.cols())}, wrap(board, t.cols(), "    ")...)
		for _, l := range lines {
			fmt.Fprintln(t.out, l)
		}
		t.footer = len(lines)
		return
	}
	if t.last == nil {
		t.last = map[string]string{}
	}
	cur := boardLines(board)
	keys := make([]string, 0, len(cur))
	for k := range cur {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		digest, line, _ := strings.Cut(cur[k], "\x00")
		if t.last[k] == digest {
			continue
		}
		t.last[k] = digest
		for _, l := range wrap("board │ "+line, sandboxWidth, "      │ ") {
			fmt.Fprintln(t.out, l)
		}
	}
}

// keepBoard leaves the board where it is and prints below it from now on
// (before a prompt, and at the end).
func (t *terminal) keepBoard() { t.footer = 0 }

// fullBoard prints the whole board as plain lines.
func (t *terminal) fullBoard(board string) {
	t.clearFooter()
	fmt.Fprintln(t.out, strings.Repeat("═", t.cols()))
	for _, l := range wrap(board, t.cols(), "    ") {
		fmt.Fprintln(t.out, l)
	}
	fmt.Fprintln(t.out, strings.Repeat("═", t.cols()))
}

// buttonFor finds a button by action id.
func buttonFor(bs []button, actionID string) (button, bool) {
	for _, b := range bs {
		if b.ActionID == actionID {
			return b, true
		}
	}
	return button{}, false
}

// isGate tells a gate prompt from a failure.
func isGate(a actionable) bool {
	_, ok := buttonFor(a.Buttons, bot.ActionApprove)
	return ok
}

// key names the decision a's buttons ask for: a gate and the failure a
// rejection leaves carry the same run, step and round.
func (a actionable) key() string { return a.Buttons[0].ActionID + "|" + a.Buttons[0].Value }
