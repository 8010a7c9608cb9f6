package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/drbot/drbot/bot"
	"github.com/drbot/drbot/config"
	"github.com/drbot/drbot/recovery"
	"github.com/drbot/drbot/state"
)

// `drbot run` is the break-glass twin of the /dr commands and buttons, for
// when Slack is unreachable. The serving drbot owns the engine (and the
// bbolt file), so every action goes through its admin socket and is taken
// by the same code as in Slack; only status can read the state file
// directly when no drbot serves. The CLI does not run an engine itself:
// steps run for tens of minutes after the command returns, and serve keeps
// running, and driving runs, while Slack is down.

const runUsage = `usage: drbot run [-config FILE | -state PATH] -as NAME ACTION [flags]

  start [TARGET] [-drill] [-reason "…"]              start a recovery (or drill); its Slack channel
                                                     is created as soon as drbot reaches Slack
  status [-run ID]                                   where the runs are (also without drbot serve)
  approve [-run ID] [-step STEP]                     pass the gate a step waits at
  reject  [-run ID] [-step STEP] -reason "…"         refuse it
  retry|skip [-run ID] [-step STEP]                  decide a failed step
  abort [-run ID] -reason "…"                        stop a run
  rollback [-run ID] -reason "…"                     ask for the cutover to be rolled back
  rollback [-run ID] -confirm approve|reject         decide the latest rollback request

NAME is a key of access.break_glass; drbot acts as the Slack user it maps to,
with that user's permissions, and audits the action under both (source "cli").`

func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", stderr)
	cfgPath := configFlag(fs)
	statePath := fs.String("state", "", "state file (default: state.path from the config)")
	as := fs.String("as", "", "your break-glass name (a key of access.break_glass)")
	fs.Usage = func() { fmt.Fprintln(stderr, runUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return &exitError{code: 2, msg: runUsage}
	}
	action := rest[0]
	if !slices.Contains(bot.BreakGlassActions, action) {
		return &exitError{code: 2, msg: fmt.Sprintf("unknown action %q\n%s", action, runUsage)}
	}
	sub := newFlags("run "+action, stderr)
	runID := sub.String("run", "", "the run (default: the one in progress)")
	step := sub.String("step", "", "the step (default: the one waiting at a gate, or the one failed)")
	reason := sub.String("reason", "", "why (audit log and post-mortem)")
	drill := sub.Bool("drill", false, "start: a drill")
	confirm := sub.String("confirm", "", "rollback: approve or reject the latest request")
	words := rest[1:]
	var target string
	if action == "start" && len(words) > 0 && !strings.HasPrefix(words[0], "-") {
		target, words = words[0], words[1:]
	}
	if err := sub.Parse(words); err != nil {
		return err
	}
	if sub.NArg() > 0 {
		return &exitError{code: 2, msg: fmt.Sprintf("unexpected argument %q\n%s", sub.Arg(0), runUsage)}
	}
	if *as == "" {
		return &exitError{code: 2, msg: "say who you are: -as NAME, a key of access.break_glass\n" + runUsage}
	}

	var cfg *config.Config
	if *cfgPath != "" {
		c, err := config.Load(*cfgPath)
		if err != nil {
			return &exitError{code: 1, msg: err.Error()}
		}
		cfg = c
	}
	path := *statePath
	if path == "" {
		if cfg == nil {
			return &exitError{code: 2, msg: "no state file: pass -config FILE (or DRBOT_CONFIG) or -state PATH"}
		}
		path = cfg.State.Path
	}

	s, err := state.Open(path, state.Options{ReadOnly: true})
	if errors.Is(err, state.ErrLocked) {
		form := url.Values{"as": {*as}, "action": {action}, "target": {target}, "run": {*runID}, "step": {*step},
			"reason": {*reason}, "confirm": {*confirm}, "drill": {fmt.Sprint(*drill)}}
		return breakGlassViaServer(path, form, stdout)
	}
	if action != "status" {
		if err == nil {
			s.Close()
		}
		return &exitError{code: 1, msg: fmt.Sprintf("no drbot serve is running on %s. drbot serve owns the engine that drives runs, so `drbot run %s` acts through it; "+
			"start drbot serve (it runs, and drives runs, while Slack is unreachable, and posts to the channel when Slack answers), then repeat. "+
			"`drbot run status` works without it.", path, action)}
	}
	if err != nil {
		return err
	}
	defer s.Close()
	// Offline, the name is checked against the config the operator gave.
	if cfg != nil {
		if _, ok := cfg.Access.BreakGlass[*as]; !ok {
			names := make([]string, 0, len(cfg.Access.BreakGlass))
			for n := range cfg.Access.BreakGlass {
				names = append(names, n)
			}
			sort.Strings(names)
			return &exitError{code: 1, msg: fmt.Sprintf("unknown break-glass operator %q; access.break_glass lists: %s", *as, strings.Join(names, ", "))}
		}
	}
	return offlineStatus(s, *runID, stdout)
}

// breakGlassViaServer asks the serving drbot to carry out the action.
func breakGlassViaServer(statePath string, form url.Values, stdout io.Writer) error {
	resp, err := adminClient(statePath).PostForm("http://drbot/run", form)
	if err != nil {
		return fmt.Errorf("the state file is held by a running drbot, and its admin socket %s does not answer: %w", adminSocket(statePath), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("reading the answer of the running drbot: %w", err)
	}
	text := cliText(string(body))
	switch resp.StatusCode {
	case http.StatusOK:
		_, err = io.WriteString(stdout, text)
		return err
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return &exitError{code: 1, msg: "the running drbot does not take `drbot run` actions (an older version); upgrade it"}
	default:
		return &exitError{code: 1, msg: "refused: " + strings.TrimSpace(text)}
	}
}

var slackEmoji = regexp.MustCompile(`(?m)^:[a-z0-9_+-]+: `)

// cliText drops the Slack emoji that lead the bot's answers.
func cliText(s string) string { return slackEmoji.ReplaceAllString(s, "") }

// offlineStatus shows the runs from the state file alone, for when no
// drbot serves (and so nothing drives them).
func offlineStatus(s *state.Store, runID string, w io.Writer) error {
	return s.View(func(tx *state.Tx) error {
		runs, err := tx.Runs()
		if err != nil {
			return err
		}
		pending, err := tx.Outbox(true, 0)
		if err != nil {
			return err
		}
		var show []state.Run
		for _, r := range runs {
			if (runID == "" && !r.Status.Finished()) || r.ID == runID {
				show = append(show, r)
			}
		}
		fmt.Fprintln(w, "No drbot serve is running: nothing drives these runs until it starts (it resumes them).")
		if len(show) == 0 {
			if runID != "" {
				return &exitError{code: 1, msg: fmt.Sprintf("there is no run %q; `drbot state history` lists them", runID)}
			}
			fmt.Fprintln(w, "No run is in progress.")
			return nil
		}
		for _, r := range show {
			recs, err := tx.Steps(r.ID)
			if err != nil {
				return err
			}
			counts := map[state.StepStatus]int{}
			var waiting, failed []string
			for id, rec := range recs {
				counts[rec.Status]++
				switch rec.Status {
				case state.StepWaiting:
					waiting = append(waiting, id)
				case state.StepFailed:
					failed = append(failed, id)
				}
			}
			sort.Strings(waiting)
			sort.Strings(failed)
			undelivered := 0
			for _, e := range pending {
				if e.RunID == r.ID {
					undelivered++
				}
			}
			fmt.Fprintf(w, "%s  %s of %s — %s, started %s by %s, %d step(s) done, %d running\n", r.ID, strings.ToLower(string(r.Mode)), r.Target, r.Status,
				stamp(r.StartedAt), r.Initiator, counts[state.StepSucceeded]+counts[state.StepSkipped], counts[state.StepRunning])
			if len(waiting) > 0 {
				fmt.Fprintf(w, "  waiting for approval: %s\n", strings.Join(waiting, ", "))
			}
			if len(failed) > 0 {
				fmt.Fprintf(w, "  failed, needs retry/skip/abort: %s\n", strings.Join(failed, ", "))
			}
			switch {
			case r.Slack.ChannelID != "":
				fmt.Fprintf(w, "  channel: %s (#%s)\n", r.Slack.ChannelID, r.Slack.ChannelName)
			case r.Slack.ChannelName != "":
				fmt.Fprintf(w, "  channel: #%s, created when drbot reaches Slack\n", r.Slack.ChannelName)
			}
			if undelivered > 0 {
				fmt.Fprintf(w, "  %d message(s) wait in the outbox for Slack\n", undelivered)
			}
			if !r.Status.Finished() {
				fmt.Fprintf(w, "  elapsed %s\n", recovery.ShortDuration(s.Now().Sub(r.StartedAt)))
			}
		}
		return nil
	})
}
